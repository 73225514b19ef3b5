"""Analytics at the edges: what the notebooks show across weekends and how they name machines.

On a plant that does not work weekends (the simulated plant's default calendar, Monday–Friday,
three shifts), ``days`` counts production days, the header says so, trend lines break where
nothing was produced, and a machine has one label in every figure and table.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from workbench import jobs, plots
from workbench import notebook as nb
from workbench.demo import load_plant
from workbench.oee import OEEResult
from workbench.simulate import PlantConfig, simulate_plant
from workbench.store import DuckDBWarehouse

ROOT = Path(__file__).resolve().parents[1]
TZ = "America/Chicago"
#: Mon 19 Oct … Tue 3 Nov 2026, shifts Monday to Friday only.
CONFIG = PlantConfig(seed=5, n_machines=3, n_lines=1, days=16, telemetry=False)
MONDAY = dt.date(2026, 11, 2)
WEEKENDS = [dt.date(2026, 10, 24), dt.date(2026, 10, 25), dt.date(2026, 10, 31), dt.date(2026, 11, 1)]


@pytest.fixture(scope="module")
def plant_file(tmp_path_factory) -> Path:
    """The small simulated plant (weekends off) in a DuckDB file."""
    assert CONFIG.workdays == (0, 1, 2, 3, 4)
    path = tmp_path_factory.mktemp("nits") / "warehouse.duckdb"
    with DuckDBWarehouse(path) as wh:
        load_plant(simulate_plant(CONFIG), wh, truth_dir=path.parent / "truth")
    return path


@pytest.fixture
def shown(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    bundles: list[dict] = []
    monkeypatch.setattr(nb, "_display", bundles.append)
    return bundles


# =============================================================================================
# 1. days are production days
# =============================================================================================

def test_seven_days_ending_on_a_monday_are_seven_production_days(plant_file: Path, capsys) -> None:
    s = nb.scope(date=MONDAY.isoformat(), days=7, warehouse=str(plant_file))
    # Mon 2 Nov and the six production days before it: Fri 23, Mon 26 … Fri 30 Oct
    assert (s.first_day, s.last_day, s.days) == (dt.date(2026, 10, 23), MONDAY, 7)
    assert s.days_without_shifts == WEEKENDS and s.calendar_days == 11
    assert (s.start.isoformat(), s.end.isoformat()) == ("2026-10-23T06:00:00-05:00", "2026-11-03T06:00:00-06:00")
    assert s.trend_grain == "day"
    # every counted day has planned time, and only they do
    by_day = s.oee(s.plant_frames(), by=("day",)).table
    assert sorted(by_day.loc[by_day["pbt_min"] > 0, "day"]) == sorted(s.shift_days) and len(s.shift_days) == 7

    nb.header(s, "OEE")
    out = capsys.readouterr().out
    assert "OEE — 7 production days: Fri 23 Oct 2026 – Mon 02 Nov 2026 (4 days without shifts skipped)" in out
    assert "skipped:   Sat 24 Oct, Sun 25 Oct, Sat 31 Oct, Sun 01 Nov (no shifts in the calendar)" in out


def test_one_day_is_the_day_asked_for_as_before(plant_file: Path, capsys) -> None:
    with DuckDBWarehouse(plant_file, read_only=True) as wh:
        latest = jobs.latest_production_day(wh, tz=TZ)
        assert nb.resolve_days(wh, "", 1, TZ)[:2] == (latest, latest)
        sunday = dt.date(2026, 11, 1)
        first, last, start, end = nb.resolve_days(wh, sunday, 1, TZ)   # a day without shifts stays itself
        assert (first, last) == (sunday, sunday) and end - start == dt.timedelta(days=1)
    s = nb.scope(warehouse=str(plant_file))
    assert (s.first_day, s.last_day, s.days, s.trend_grain) == (latest, latest, 1, "hour")
    nb.header(s, "OEE")
    assert capsys.readouterr().out.startswith(f"OEE — {latest:%a %d %b %Y}\n")


def test_fewer_production_days_than_asked_are_said(plant_file: Path, capsys) -> None:
    s = nb.scope(date="2026-10-21", days=7, warehouse=str(plant_file))
    assert (s.first_day, s.days, s.days_asked) == (dt.date(2026, 10, 19), 3, 7)
    nb.header(s, "Reliability")
    out = capsys.readouterr().out
    assert "Reliability — 3 production days: Mon 19 Oct 2026 – Wed 21 Oct 2026" in out
    assert "only 3 of the 7 production days asked for" in out


@pytest.mark.parametrize("name", ["oee", "pareto", "reliability"])
def test_the_days_parameter_says_production_days(name: str) -> None:
    book = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    (params,) = [c for c in book.cells if "parameters" in c.metadata.get("tags", [])]
    (line,) = [line for line in params.source.splitlines() if line.startswith("days:")]
    assert "production days ending at `date`" in line and "without shifts" in line and "skipped" in line


# =============================================================================================
# 2. trend lines break where nothing was produced
# =============================================================================================

def _points(trace) -> dict[pd.Timestamp, float]:
    return {pd.Timestamp(x): float(y) for x, y in zip(trace.x, trace.y, strict=True)}


def test_a_daily_trend_breaks_over_the_weekend(plant_file: Path) -> None:
    s = nb.scope(date=MONDAY.isoformat(), days=7, warehouse=str(plant_file))
    frames = s.plant_frames()
    result = s.oee(frames, by=("day",))
    fig = plots.oee_trend(result, tz=s.tz)
    for trace in fig.data:
        assert trace.connectgaps is False
        points = _points(trace)
        # Friday, the weekend as gaps, Monday — never a line from Friday to Monday
        assert list(points) == list(pd.date_range("2026-10-23", "2026-11-02", freq="D"))
        assert [d.date() for d, v in points.items() if np.isnan(v)] == WEEKENDS
    oee = _points(next(t for t in fig.data if t.name == "OEE"))
    table = result.table.set_index(pd.to_datetime(result.table["day"].astype(str)))
    assert {d: v for d, v in oee.items() if not np.isnan(v)} == pytest.approx(table["oee"].to_dict())

    # one line per machine: each breaks on the weekend too
    per_machine = plots.oee_trend(s.oee(frames, by=("machine_id", "day")), tz=s.tz)
    assert len(per_machine.data) == 3
    for trace in per_machine.data:
        assert [d.date() for d, v in _points(trace).items() if np.isnan(v)] == WEEKENDS


def test_an_hourly_trend_breaks_where_no_hour_was_planned(plant_file: Path) -> None:
    s = nb.scope(date=MONDAY.isoformat(), days=2, warehouse=str(plant_file))   # Fri 30 Oct and Mon 2 Nov
    result = s.oee(s.plant_frames(), by=("hour",))
    trace = next(t for t in plots.oee_trend(result, tz=s.tz).data if t.name == "OEE")
    hours, values = [pd.Timestamp(x) for x in trace.x], np.asarray(trace.y, dtype=float)
    assert trace.connectgaps is False
    # plant time, Sat 31 Oct 06:00 CDT … Mon 2 Nov 05:00 CST: 48 hours + the repeated 01:00 of
    # the end of daylight saving time, every one a gap
    weekend = [v for h, v in zip(hours, values, strict=True)
               if pd.Timestamp("2026-10-31 06:00") <= h < pd.Timestamp("2026-11-02 06:00")]
    assert len(weekend) == 49 and np.isnan(weekend).all()
    # the points drawn are the result's, in time order
    assert int(np.isfinite(values).sum()) == int(result.table["oee"].notna().sum())
    assert values[np.isfinite(values)] == pytest.approx(
        result.table.sort_values("hour")["oee"].dropna().to_numpy())


def test_a_day_missing_in_the_middle_is_a_gap() -> None:
    days = [dt.date(2026, 11, 5), dt.date(2026, 11, 6), dt.date(2026, 11, 9)]   # Thu, Fri, Mon
    table = pd.DataFrame({"day": days, "availability": [0.9, 0.8, 0.85], "performance": [0.9] * 3,
                          "quality": [0.99] * 3, "oee": [0.8, 0.7, 0.75]})
    trace = next(t for t in plots.oee_trend(OEEResult(table, ("day",), 120.0)).data if t.name == "OEE")
    assert [pd.Timestamp(x).date() for x in trace.x] == [dt.date(2026, 11, d) for d in (5, 6, 7, 8, 9)]
    assert list(trace.y[:2]) == [0.8, 0.7] and np.isnan(trace.y[2:4]).all() and trace.y[4] == 0.75


# =============================================================================================
# 3. one label per machine
# =============================================================================================

def test_machine_label_rule() -> None:
    assert plots.machine_label("M08", "Machining center 08") == "M08 · Machining center 08"
    for unnamed in (None, np.nan, "", "  ", "M08"):
        assert plots.machine_label("M08", unnamed) == "M08"
    machines = pd.DataFrame({"machine_id": ["M01", "M02"], "name": ["Press 01", None]})
    assert plots.machine_labels(["M02", "M01", "M09"], machines) == ["M02", "M01 · Press 01", "M09"]
    assert plots.machine_labels(["M01"], {"M01": "Press 01"}) == ["M01 · Press 01"]


def _run_notebook(name: str, parameters: dict) -> None:
    """Run a notebook's code cells in this process, as papermill would with ``parameters``."""
    book = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    namespace: dict = {}
    for cell in book.cells:
        if cell.cell_type == "code":
            exec(compile(cell.source, f"{name}.ipynb", "exec"), namespace)
            if "parameters" in cell.metadata.get("tags", []):
                namespace.update(parameters)


def _machine_texts(bundle: dict) -> tuple[str, list[str]]:
    """The title of what was shown and every text in it that can name a machine."""
    if "application/vnd.plotly.v1+json" in bundle:
        spec = bundle["application/vnd.plotly.v1+json"]
        texts = [spec["layout"].get("title", {}).get("text", "")]
        for trace in spec["data"]:
            texts.append(str(trace.get("name", "")))
            for axis in ("x", "y"):
                values = trace.get(axis)
                if isinstance(values, list):
                    texts += [v for v in values if isinstance(v, str)]
        return texts[0], texts
    return "table", [cell for row in bundle.get("text/plain", "").splitlines() for cell in row.split("\t")]


def _check_labels(bundles: list[dict], labels: dict[str, str], naming: dict[str, int]) -> None:
    for bundle in bundles:
        title, texts = _machine_texts(bundle)
        for text in texts:
            for machine, label in labels.items():
                ids = len(re.findall(rf"\b{machine}\b", text))
                if ids:
                    assert text.count(label) == ids, f"{title!r} names {machine} as {text!r}, not {label!r}"
                    naming[title] = naming.get(title, 0) + 1


def test_a_machine_has_one_label_in_every_figure_and_table(plant_file: Path, shown: list[dict],
                                                           capsys) -> None:
    with DuckDBWarehouse(plant_file, read_only=True) as wh:
        machines = wh.read("machines")
        summary = jobs.daily_summary_from(wh, day=MONDAY, tz=TZ)
    labels = {m: f"{m} · {n}" for m, n in zip(machines["machine_id"], machines["name"], strict=True)}
    assert labels["M01"] == "M01 · CNC mill 01"
    naming: dict[str, int] = {}

    common = {"warehouse": str(plant_file), "date": MONDAY.isoformat(), "days": 7}
    for name in ("oee", "pareto", "reliability"):
        _run_notebook(name, common)
    _check_labels(shown, labels, naming)
    # the figures and tables that show machines: every one of them was checked
    for title in ("OEE by machine", "Six big losses by machine", "Downtime by machine", "MTBF and MTTR",
                  "table"):
        assert any(t.startswith(title) for t in naming), f"no machine found in {title!r}: {sorted(naming)}"
    assert naming["table"] >= 3 * 3          # OEE by machine, MTBF and MTBF by category
    printed = capsys.readouterr().out
    weibull = re.search(r"Weibull fit: machine (M\d\d)( · [^—]+)? —", printed)
    if weibull:                               # the machine with most failures, named the same way
        assert f"machine {labels[weibull.group(1)]} —" in printed

    # the daily summary notebook's ranking, and a trend with a line per machine
    s = nb.scope(date=MONDAY.isoformat(), days=7, warehouse=str(plant_file))
    extra = [plots.machine_ranking(summary),
             plots.oee_trend(s.oee(s.plant_frames(), by=("machine_id", "day")), machines=s.machines)]
    _check_labels([{"application/vnd.plotly.v1+json": json.loads(f.to_json())} for f in extra], labels, naming)
    assert any(t.startswith("OEE by day") for t in naming)
