"""Static PNG charts of a :class:`~workbench.summary.DailySummary` for the e-mail.

Mail clients run no JavaScript, so the e-mail carries small matplotlib images (Agg, no display,
fonts bundled with matplotlib) instead of plotly figures. The charts draw the summary's fields as
they are: colours come from its ``status`` column, lines from its thresholds.
"""

from __future__ import annotations

import io

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from workbench.summary import DailySummary

#: Colours of the OEE bands, shared with the e-mail tables.
STATUS_COLOURS = {"good": "#15803d", "watch": "#d97706", "poor": "#b91c1c", "no plan": "#9ca3af"}
#: At most this many machines in the OEE chart (the worst, as the summary sorts them).
MAX_MACHINES = 40
_DPI = 100


def _png(fig: Figure) -> bytes:
    # Figure + Agg canvas rather than pyplot: no global figure registry, safe in worker threads.
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
    return buf.getvalue()


def _missing(value: object) -> bool:
    return value is None or bool(pd.isna(value))


def oee_by_machine_png(summary: DailySummary) -> bytes:
    """Horizontal bars of OEE per machine, coloured by the summary's status band.

    Parameters
    ----------
    summary : DailySummary

    Returns
    -------
    bytes
        A PNG, 640 px wide. Machines without planned time are drawn as an empty row marked
        "no plan". With more than :data:`MAX_MACHINES` machines, the first ones of
        ``summary.machines`` (the lowest OEE) are drawn.
    """
    machines = summary.machines.head(MAX_MACHINES)
    n = max(len(machines), 1)
    fig = Figure(figsize=(6.4, 0.9 + 0.32 * n), layout="constrained")
    ax = fig.add_subplot()
    labels = [f"{m} · {name}" if name and name != m else str(m)
              for m, name in zip(machines["machine_id"], machines["name"], strict=True)]
    values = [0.0 if _missing(v) else float(v) * 100 for v in machines["oee"]]
    colours = [STATUS_COLOURS.get(s, "#6b7280") for s in machines["status"]]
    # Worst first in the summary; barh draws bottom-up, so reverse to keep the worst on top.
    y = list(range(len(machines)))[::-1]
    ax.barh(y, values, color=colours, height=0.7)
    for yi, value, raw in zip(y, values, machines["oee"], strict=True):
        ax.text(value + 1, yi, "no plan" if _missing(raw) else f"{value:.1f} %", va="center", fontsize=8)
    good, watch = summary.thresholds
    for level, colour in ((good, STATUS_COLOURS["good"]), (watch, STATUS_COLOURS["poor"])):
        ax.axvline(level * 100, color=colour, linestyle="--", linewidth=1)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlim(0, 110)
    ax.set_xlabel("OEE %", fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    total = len(summary.machines)
    shown = "" if total <= MAX_MACHINES else f" ({MAX_MACHINES} lowest of {total})"
    ax.set_title(f"OEE per machine{shown} — lines at {good:.0%} and {watch:.0%}", fontsize=10, loc="left")
    ax.spines[["top", "right"]].set_visible(False)
    if machines.empty:
        ax.text(50, 0, "no machines", ha="center", va="center")
    return _png(fig)


def downtime_pareto_png(summary: DailySummary) -> bytes:
    """Bars of unplanned downtime minutes per reason category (the summary's top causes).

    Parameters
    ----------
    summary : DailySummary

    Returns
    -------
    bytes
        A PNG, 640 px wide; each bar is labelled with its minutes and its share of all
        unplanned downtime.
    """
    top = summary.downtime_top
    fig = Figure(figsize=(6.4, 3.2), layout="constrained")
    ax = fig.add_subplot()
    if top.empty:
        ax.text(0.5, 0.5, "no unplanned downtime", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return _png(fig)
    x = list(range(len(top)))
    minutes = [float(v) for v in top["minutes"]]
    ax.bar(x, minutes, color="#1d4ed8", width=0.6)
    for xi, value, share in zip(x, minutes, top["share"], strict=True):
        ax.text(xi, value, f"{value:,.0f} min\n{float(share):.0%}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, [str(c) for c in top["reason_category"]], fontsize=8, rotation=15, ha="right")
    ax.set_ylabel("minutes", fontsize=8)
    ax.set_ylim(0, max(minutes) * 1.3)
    ax.tick_params(axis="y", labelsize=8)
    ax.set_title("Top unplanned downtime causes", fontsize=10, loc="left")
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)
