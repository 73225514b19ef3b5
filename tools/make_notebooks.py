"""Write the analysis notebooks in ``notebooks/`` from the cell sources below.

Run ``.venv/bin/python tools/make_notebooks.py`` after changing a notebook here, and review the
diff. The notebooks are written without outputs (execution counts null), with the ``workbench``
kernel and exactly one cell tagged ``parameters``. A notebook changed in JupyterLab instead
should have its change copied back here before the next run, or this script would undo it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]

# Papermill reads each parameter's comment as its help text; a second "=" on the line would stop
# it from reading the parameter at all, so the comments below never contain one.
COMMON = '''\
date: str = ""  # production day YYYY-MM-DD; empty: the latest day with production data
days: int = {days}  # number of production days ending at `date`
warehouse: str = ""  # empty: the configured warehouse; else a DuckDB file or a postgresql:// URL
site: str = ""  # empty: every site
lines: list = []  # e.g. ["L1"]; empty: every line
machines: list = []  # e.g. ["M01", "M02"]; empty: every machine'''

SCOPE = ("scope = nb.scope(date=date, days=days, warehouse=warehouse, site=site, lines=lines, "
         "machines=machines)")

THRESHOLDS = '''
oee_good: float = 0.85  # OEE at or above this is good
oee_watch: float = 0.65  # OEE below this is poor; in between is watch'''


def _params(extra: str = "", *, days: int = 1) -> str:
    return COMMON.format(days=days) + extra


NOTEBOOKS: dict[str, list[tuple[str, str]]] = {
    "oee": [
        ("md", """\
# OEE — where the planned time went

Availability × performance × quality of the selected machines and production days, per
ISO 22400-2: planned stops leave the planned time, stops shorter than the micro-stop threshold are
performance losses, time without data is reported and left out — never guessed. Plant figures
are weighted by time, never a mean of percentages."""),
        ("params", _params(THRESHOLDS)),
        ("code", f"""\
from workbench import notebook as nb
from workbench import plots

{SCOPE}
frames = scope.plant_frames()
nb.header(scope, "OEE", frames)"""),
        ("md", """\
## Plant KPIs and the loss waterfall

The waterfall starts from the planned busy time with data and takes away the availability,
performance and quality losses; what is left is the fully productive time (OEE × planned time)."""),
        ("code", """\
plant = scope.oee(frames, by=())
nb.show(plots.kpis(plant, thresholds=(oee_good, oee_watch)))
nb.show(plots.loss_waterfall(plant))"""),
        ("md", "## Trend\n\nBy hour for one day, by production day for several."),
        ("code", """\
trend = scope.oee(frames, by=(scope.trend_grain,))
nb.show(plots.oee_trend(trend, thresholds=(oee_good, oee_watch), tz=scope.tz))"""),
        ("md", "## Machines ranked\n\nColoured by band: good, watch, poor (no planned time: no plan)."),
        ("code", """\
by_machine = scope.oee(frames, by=("machine_id",))
nb.show(plots.machine_ranking(by_machine, thresholds=(oee_good, oee_watch)))
nb.show_table(by_machine.table, columns=["machine_id", "availability", "performance", "quality", "oee",
                                         "good", "rejects", "pbt_min", "down_min", "setup_min",
                                         "micro_stop_min", "no_data_min"])"""),
        ("md", """\
## Six big losses

Minutes lost to unplanned stops, setup and adjustments, small stops, slow cycles, production
rejects and startup rejects; with the fully productive time they add up to the planned time."""),
        ("code", """\
nb.show(plots.six_big_losses(plant, title="Six big losses — all selected machines"))
nb.show(plots.six_big_losses(by_machine, title="Six big losses by machine"))"""),
    ],
    "pareto": [
        ("md", """\
# Losses — downtime and scrap Pareto, cost of downtime

Which few causes account for most of the lost time and scrap cost. Stops without a reason code
are their own bar, *(uncoded)*, so every minute is accounted for. Planned stops (maintenance, no
demand) are not losses and are left out unless `include_planned` is set."""),
        ("params", _params('''
top: int = 10  # bars per Pareto chart
include_planned: bool = False  # also count planned stops (maintenance, no demand)
overhead_per_hour: float = 0.0  # machine overhead added to the labor rate when costing downtime''')),
        ("code", f"""\
from workbench import losses, plots
from workbench import notebook as nb

{SCOPE}
downtime = scope.read("downtime_events")
scrap = scope.read("scrap_events")
reason_codes = scope.read("reason_codes")
work_orders = scope.read("work_orders")
nb.header(scope, "Losses", {{"downtime_events": downtime, "scrap_events": scrap, "reason_codes": reason_codes,
                            "work_orders": work_orders}})"""),
        ("md", "## Downtime by category"),
        ("code", """\
by_category = losses.downtime_pareto(downtime, by="reason_category", reason_codes=reason_codes,
                                     include_planned=include_planned)
nb.show(plots.pareto(by_category, top=top, title="Downtime by category"))
nb.show_table(by_category, max_rows=top)"""),
        ("md", "## Downtime by machine"),
        ("code", """\
by_machine = losses.downtime_pareto(downtime, by="machine_id", reason_codes=reason_codes,
                                    include_planned=include_planned)
nb.show(plots.pareto(by_machine, top=top, title="Downtime by machine"))"""),
        ("md", "## Downtime by reason code"),
        ("code", """\
by_reason = losses.downtime_pareto(downtime, by="reason_code", reason_codes=reason_codes,
                                   include_planned=include_planned)
nb.show(plots.pareto(by_reason, top=top, title="Downtime by reason code"))
nb.show_table(by_reason, max_rows=top)"""),
        ("md", "## Scrap, with cost\n\nCost is material plus labor of each scrapped part (from the work "
               "order where the row has none)."),
        ("code", """\
scrap_by_category = losses.scrap_pareto(scrap, by="scrap_category", work_orders=work_orders)
nb.show(plots.pareto(scrap_by_category, top=top, title="Scrap cost by category"))
nb.show_table(scrap_by_category, max_rows=top)
scrap_by_reason = losses.scrap_pareto(scrap, by="scrap_reason", work_orders=work_orders)
nb.show(plots.pareto(scrap_by_reason, top=top, title="Scrap cost by reason"))"""),
        ("md", """\
## Cost of downtime

Hours stopped × the labor rate of the work order that was running (plus `overhead_per_hour`).
Stops without a work order or rate are costed at the overhead only and counted in
*minutes without rate*."""),
        ("code", """\
cost = losses.downtime_cost(downtime, work_orders=work_orders, by="reason_category",
                            overhead_per_hour=overhead_per_hour, include_planned=include_planned,
                            reason_codes=reason_codes)
nb.show(plots.downtime_cost(cost))
nb.show_table(cost)"""),
    ],
    "spc": [
        ("md", """\
# SPC — control charts and capability of the configured characteristics

For every machine × part × characteristic measured in the selected days: phase I limits from the
`baseline_days` before them, the selected days judged against those frozen limits (phase II) with
the rules configured in the `characteristics` table, and a capability study against the
specification. Charts are shown for the series with the most rule violations first."""),
        ("params", _params('''
baseline_days: int = 14  # days before `date` that set the phase I control limits
rules: str = ""  # empty: each characteristic's configured rule set; or "western_electric", "nelson" …
min_subgroups: int = 20  # fewest baseline subgroups the limits may rest on
max_charts: int = 6  # series to chart (most violations first)''')),
        ("code", f"""\
from workbench import notebook as nb
from workbench import plots, spc

{SCOPE}
measurements = scope.read("quality_measurements", start=scope.before(baseline_days))
characteristics = scope.read("characteristics")
nb.header(scope, "SPC", {{"quality_measurements": measurements, "characteristics": characteristics}},
          notes=[f"phase I limits from the {{baseline_days}} days before {{scope.first_day}}"])"""),
        ("md", "## Every series"),
        ("code", """\
studies = spc.studies(measurements, characteristics, start=scope.start, end=scope.end,
                      baseline_start=scope.before(baseline_days), rules=rules or None,
                      min_subgroups=min_subgroups)
nb.show_table(spc.studies_table(studies),
              formats={"center": "{:.4f}", "sigma": "{:.5f}", "cpk": "{:.2f}", "ppk": "{:.2f}"})"""),
        ("md", "## Rule violations"),
        ("code", """\
nb.show_table(spc.violations_table(studies), max_rows=100)"""),
        ("md", "## Charts and capability — most violations first"),
        ("code", """\
for study in studies[:max_charts]:
    for figure in plots.spc_study(study):
        nb.show(figure)"""),
    ],
    "reliability": [
        ("md", """\
# Reliability — MTBF, MTTR and Weibull

A failure is an unplanned stop other than a changeover (blank reasons count: an uncoded stop is
more often a breakdown nobody coded than a non-event). Uptime is scheduled time not stopped:
time outside the shifts, breaks and time without data are not uptime. A failure cut into pieces
at a shift boundary or around a break counts once."""),
        ("params", _params('''
weibull_machine: str = ""  # empty: the machine with most failures; "all": all pooled; or an id''',
                           days=30)),
        ("code", f"""\
from workbench import notebook as nb
from workbench import plots, reliability

{SCOPE}
downtime = scope.read("downtime_events", overlap=True)
states = scope.read("machine_states", overlap=True)
nb.header(scope, "Reliability", {{"downtime_events": downtime, "machine_states": states}})
stops = nb.with_unscheduled_time(scope, downtime, states)"""),
        ("md", "## MTBF and MTTR per machine"),
        ("code", """\
mtbf = reliability.mtbf_mttr(stops, start=scope.start, end=scope.end, machines=scope.machine_ids)
nb.show(plots.mtbf_mttr(mtbf))
nb.show_table(mtbf)"""),
        ("md", "## By failure category\n\nEach category's MTBF uses the machine's whole uptime "
               "(competing failure modes)."),
        ("code", """\
by_category = reliability.mtbf_mttr(stops, start=scope.start, end=scope.end, by_category=True)
nb.show_table(by_category, max_rows=100)"""),
        ("md", """\
## Weibull of the times between failures

Maximum-likelihood fit with the open interval after the last failure right-censored. β < 1:
failures cluster early (infant mortality, poor repairs); β ≈ 1: random; β > 1: wear-out."""),
        ("code", """\
tbf = reliability.times_between_failures(stops, start=scope.start, end=scope.end)
weibull = nb.weibull_fit(tbf, mtbf, machine=weibull_machine)
if weibull.fit is not None:
    nb.show(plots.weibull_probability(weibull.fit, tbf, machine=weibull.machine))
    nb.show(plots.reliability_curve(weibull.fit))"""),
    ],
    "daily_summary": [
        ("md", """\
# Daily summary

The one-page overview of a production day — the same figures as the morning e-mail, which is
made from the same summary: plant OEE, machines against the thresholds, the top downtime and scrap
causes and the SPC rule violations. With `days` > 1 the OEE of the preceding days is shown too."""),
        ("params", _params(THRESHOLDS + '''
top: int = 5  # causes listed in the downtime and scrap tables''')),
        ("code", f"""\
from workbench import jobs, plots
from workbench import notebook as nb

{SCOPE}
summary = jobs.daily_summary_from(scope.warehouse, day=scope.last_day, tz=scope.tz,
                                  thresholds=(oee_good, oee_watch), top=top,
                                  micro_stop_threshold_s=scope.micro_stop_threshold_s,
                                  machines=scope.machine_filter)
nb.header(scope, "Daily summary", summary.data["rows"], notes=[f"summary of {{summary.day:%a %d %b %Y}}"])
nb.heading(summary.headline)
nb.show(plots.kpis(summary))"""),
        ("md", "## Machines against the thresholds"),
        ("code", """\
nb.show(plots.machine_ranking(summary))
nb.show_table(summary.machines)"""),
        ("md", "## Top downtime causes\n\nUnplanned stops; blank reasons are *(uncoded)*."),
        ("code", "nb.show_table(summary.downtime_top)"),
        ("md", "## Top scrap causes, with cost"),
        ("code", "nb.show_table(summary.scrap_top)"),
        ("md", """\
## SPC rule violations

X̄ charts of every machine × part × characteristic measured that day, against limits from the
14 days before; a series without enough history is listed as *no limits*."""),
        ("code", """\
nb.show_table(summary.spc_by_series)
nb.show_table(summary.spc_violations, max_rows=30)"""),
        ("md", "## OEE of the preceding days"),
        ("code", """\
if scope.days > 1:
    nb.show(plots.oee_trend(scope.oee(scope.plant_frames(), by=("day",)), thresholds=(oee_good, oee_watch)))
else:
    print("Set days > 1 to see the OEE of the days before.")"""),
    ],
}


def build(name: str, cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    """One notebook from ``(kind, source)`` pairs: kind is ``md``, ``code`` or ``params``."""
    nb = new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "workbench", "display_name": "Python (workbench)", "language": "python"},
        "language_info": {"name": "python"},
    }
    for kind, source in cells:
        if kind == "md":
            cell = new_markdown_cell(source)
        else:
            cell = new_code_cell(source)
            if kind == "params":
                cell.metadata["tags"] = ["parameters"]
        cell.pop("id", None)
        nb.cells.append(cell)
    # Stable cell ids keep diffs small when the script is run again.
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{name}-{i:02d}"
    return nb


def main(argv: list[str]) -> int:
    out = ROOT / "notebooks"
    out.mkdir(exist_ok=True)
    for name, cells in NOTEBOOKS.items():
        if argv and name not in argv:
            continue
        nb = build(name, cells)
        nbformat.validate(nb)
        nbformat.write(nb, out / f"{name}.ipynb")
        print(f"wrote notebooks/{name}.ipynb ({len(nb.cells)} cells)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
