"""Plotly figure builders: each takes a result object (or a result frame) and returns a figure.

Compute once, plot separately: the statistics, limits, shares and fits come from the analytics
modules (:mod:`workbench.oee`, :mod:`workbench.losses`, :mod:`workbench.reliability`,
:mod:`workbench.spc`, :mod:`workbench.summary`); a builder here only lays them out. It never
re-estimates anything — a control chart's lines are the chart's own center and limits, a Pareto's
cumulative line is the frame's ``cumulative_share``.

Every figure has a title, axis titles with units, hover text with the exact values, and a fixed
height (so exported HTML pages lay out without a container size). A machine is named by
:func:`machine_label` in every figure (``M08 · Machining center 08`` where its name is known: pass
``machines=`` the machines table); a time series breaks where nothing was produced. Display them
in notebooks with :func:`workbench.notebook.show`.

>>> result = oee.compute(frames, by=("day",), tz="America/Chicago")      # doctest: +SKIP
>>> plots.oee_trend(result)                                                # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from workbench.errors import PlotError
from workbench.oee import OEEResult
from workbench.reliability import WeibullFit
from workbench.spc import Capability, ChartPair, ControlChart, Study
from workbench.spc.nonnormal import fitted_cdf
from workbench.summary import DEFAULT_THRESHOLDS, DailySummary, status

__all__ = [
    "BAND_COLORS",
    "TEMPLATE",
    "capability_histogram",
    "control_chart",
    "downtime_cost",
    "kpis",
    "loss_waterfall",
    "machine_label",
    "machine_labels",
    "machine_ranking",
    "mtbf_mttr",
    "oee_trend",
    "pareto",
    "reliability_curve",
    "six_big_losses",
    "spc_study",
    "weibull_probability",
]

#: Colours of the OEE status bands (see :func:`workbench.summary.status`).
BAND_COLORS = {"good": "#2e7d32", "watch": "#f0a202", "poor": "#c62828", "no plan": "#9e9e9e"}
PRIMARY = "#1f4e79"
MUTED = "#78909c"
ALERT = "#d62728"
LIMIT = "#c62828"
LOSS_COLORS = {
    "unplanned_stops": "#c62828",
    "setup_and_adjustments": "#ef6c00",
    "small_stops": "#f9a825",
    "slow_cycles": "#8d6e63",
    "production_rejects": "#6a1b9a",
    "startup_rejects": "#ab47bc",
    "fully_productive": "#2e7d32",
}
LOSS_LABELS = {
    "unplanned_stops": "Unplanned stops",
    "setup_and_adjustments": "Setup and adjustments",
    "small_stops": "Small stops",
    "slow_cycles": "Slow cycles",
    "production_rejects": "Production rejects",
    "startup_rejects": "Startup rejects",
    "fully_productive": "Fully productive time",
}
_KPI_LABELS = {"availability": "Availability", "performance": "Performance", "quality": "Quality",
               "oee": "OEE"}
_UNITS = {"minutes": "min", "events": "stops", "cost": "$", "quantity": "parts"}
HEIGHT = 420

#: What a builder can be told machine names with: the ``machines`` table (``machine_id``,
#: ``name``), a mapping machine id → name, or None (ids alone).
MachineNames = pd.DataFrame | Mapping[str, Any] | None


def _template() -> go.layout.Template:
    base = go.layout.Template(pio.templates["plotly_white"])
    base.layout.update(
        font={"family": "Segoe UI, Helvetica Neue, Arial, sans-serif", "size": 13, "color": "#263238"},
        title={"x": 0.01, "xanchor": "left", "font": {"size": 16}},
        margin={"l": 70, "r": 30, "t": 70, "b": 60},
        hoverlabel={"font": {"size": 12}},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
        colorway=[PRIMARY, "#ef6c00", "#2e7d32", "#6a1b9a", "#00838f", "#ad1457", "#5d4037", MUTED],
    )
    return base


#: The shared look of every figure (plotly_white with the workbench fonts, margins and colours).
TEMPLATE = _template()


def _figure(fig: go.Figure, *, title: str, x: str | None = None, y: str | None = None,
            height: int = HEIGHT) -> go.Figure:
    fig.update_layout(template=TEMPLATE, title={"text": title}, height=height)
    if x is not None:
        fig.update_xaxes(title_text=x)
    if y is not None:
        fig.update_yaxes(title_text=y)
    return fig


def styled(fig: go.Figure, *, title: str, height: int = HEIGHT) -> go.Figure:
    """The workbench's look on a figure built elsewhere (e.g. :mod:`workbench.ml.ml_plots`)."""
    return _figure(fig, title=title, height=height)


def message(title: str, text: str) -> go.Figure:
    """A figure that says why there is no chart (no data, a section not shown and why)."""
    return _empty(title, text)


def _empty(title: str, message: str = "No data in the selected range") -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font={"size": 15, "color": MUTED})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _figure(fig, title=title, height=260)


def _need(frame: pd.DataFrame, what: str, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        have = ", ".join(map(str, frame.columns))
        raise PlotError(f"{what} needs column(s) {', '.join(missing)}; got {have}")


def _pct(value: Any) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{float(value):.1%}"


def _amount(value: Any, prefix: str = "") -> str:
    return "unknown" if value is None or pd.isna(value) else f"{prefix}{float(value):,.0f}"


def _label(frame: pd.DataFrame, columns: Sequence[str], machines: MachineNames = None) -> pd.Series:
    if not columns:
        return pd.Series(["plant"] * len(frame), index=frame.index)
    parts = frame[list(columns)].astype(str)
    if "machine_id" in parts.columns:
        parts["machine_id"] = machine_labels(frame["machine_id"], machines)
    return parts.agg(" · ".join, axis=1)


# =============================================================================================
# machine labels
# =============================================================================================

def machine_label(machine_id: Any, name: Any = None) -> str:
    """How every figure and table names a machine: ``"M08 · Machining center 08"`` where a name
    is known, the id alone otherwise.

    Parameters
    ----------
    machine_id : object
        The machine id.
    name : object, optional
        Its name from the ``machines`` table; missing, blank or equal to the id: no name.

    Returns
    -------
    str
        The label. It starts with the id, so labels sort and search like ids.
    """
    ident = str(machine_id)
    if name is None or (not isinstance(name, str) and pd.isna(name)):
        return ident
    text = str(name).strip()
    return ident if not text or text == ident else f"{ident} · {text}"


def _names(machines: MachineNames) -> dict[str, Any]:
    if machines is None:
        return {}
    if isinstance(machines, pd.DataFrame):
        _need(machines, "machine names", ("machine_id",))
        if "name" not in machines.columns:
            return {}
        return dict(zip(machines["machine_id"].astype(str), machines["name"], strict=True))
    return {str(k): v for k, v in machines.items()}


def machine_labels(ids: Iterable[Any], machines: MachineNames = None) -> list[str]:
    """The :func:`machine_label` of each id, names looked up in ``machines``.

    Parameters
    ----------
    ids : iterable
        Machine ids.
    machines : DataFrame, mapping or None
        The ``machines`` table (``machine_id``, ``name``) or a mapping id → name; None (or an
        id without a name): the id alone.

    Returns
    -------
    list of str
    """
    names = _names(machines)
    return [machine_label(m, names.get(str(m))) for m in ids]


# =============================================================================================
# OEE
# =============================================================================================

def kpis(source: OEEResult | DailySummary | Mapping[str, Any], *,
         thresholds: tuple[float, float] | None = None, title: str = "OEE and its factors") -> go.Figure:
    """Four number tiles: availability, performance, quality and OEE.

    Parameters
    ----------
    source : OEEResult, DailySummary or mapping
        A plant-level result (``by=()``, one row), a daily summary (its ``plant`` KPIs) or a
        mapping with the four keys (values are fractions).
    thresholds : (good, watch), optional
        OEE bands that colour the OEE tile; default the summary's or 85 % / 65 %.
    title : str
        Figure title.

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Indicator`` trace per KPI.
    """
    if isinstance(source, OEEResult):
        if len(source.table) != 1:
            raise PlotError(f"KPI tiles need one row (a result by=()), got {len(source.table)} rows by "
                            f"{source.by}")
        values = source.table.iloc[0].to_dict()
    elif isinstance(source, DailySummary):
        values = dict(source.plant)
        thresholds = thresholds or source.thresholds
    else:
        values = dict(source)
    thresholds = thresholds or DEFAULT_THRESHOLDS
    fig = go.Figure()
    for i, (key, label) in enumerate(_KPI_LABELS.items()):
        value = values.get(key)
        shown = None if value is None or pd.isna(value) else float(value) * 100
        color = BAND_COLORS[status(value, thresholds)] if key == "oee" else PRIMARY
        fig.add_trace(go.Indicator(
            mode="number", value=shown, name=label, title={"text": label},
            number={"suffix": " %", "valueformat": ".1f", "font": {"color": color, "size": 40}},
            domain={"row": 0, "column": i}))
    fig.update_layout(grid={"rows": 1, "columns": 4, "pattern": "independent"})
    return _figure(fig, title=title, height=200)


def _time_axis(table: pd.DataFrame, grain: str, tz: str | None) -> tuple[pd.Series, str]:
    if grain == "day":
        return pd.to_datetime(table["day"].astype(str)), "production day"
    hours = pd.to_datetime(table["hour"], utc=True)
    # Plotly draws wall-clock time; show the plant's hours when the zone is known.
    if tz:
        return hours.dt.tz_convert(tz).dt.tz_localize(None), f"hour ({tz})"
    return hours.dt.tz_localize(None), "hour (UTC)"


def _with_gaps(table: pd.DataFrame, grain: str, key: str | None) -> pd.DataFrame:
    """The table with a row of NaN KPIs for every period of the grain (day, or hour as a UTC
    instant) between its first and last that a group has no row for: the plant did not produce
    then (a weekend, a night without shifts), and a line joining across it would draw a value
    that was never measured. Periods with a row but no planned time already carry NaN KPIs."""
    if grain == "day":
        at = pd.to_datetime(table["day"].astype(str))
        grid = pd.date_range(at.min(), at.max(), freq="D")
    else:
        at = pd.to_datetime(table["hour"], utc=True)
        grid = pd.date_range(at.min(), at.max(), freq="h")
    parts = []
    for group, rows in ([(None, table)] if key is None else table.groupby(key, sort=True)):
        missing = grid.difference(pd.DatetimeIndex(at[rows.index]))
        gap = pd.DataFrame({grain: list(missing.date) if grain == "day" else missing, "_at": missing})
        if key is not None:
            gap[key] = group
        parts += [rows.assign(_at=at[rows.index].to_numpy()), gap]
    out = pd.concat([p for p in parts if len(p)], ignore_index=True)
    return out.sort_values([*([key] if key else []), "_at"], ignore_index=True).drop(columns="_at")


def oee_trend(result: OEEResult, *, thresholds: tuple[float, float] | None = DEFAULT_THRESHOLDS,
              tz: str | None = None, factors: bool = True, title: str | None = None,
              machines: MachineNames = None) -> go.Figure:
    """OEE over time, by production day or by hour.

    The lines break where the plant did not produce: a day or hour between the first and the
    last without a row (no shifts, e.g. a weekend) or without planned time is a gap (a NaN
    point, ``connectgaps=False``), never a line from Friday's last point to Monday's first.

    Parameters
    ----------
    result : OEEResult
        Grouped by ``day`` or ``hour`` — alone (OEE with its three factors) or with one more
        key such as ``machine_id`` or ``line`` (one OEE line per group).
    thresholds : (good, watch) or None
        Dashed reference lines for the OEE bands; None for none.
    tz : str, optional
        Plant time zone for the hour axis (hours are stored as UTC instants).
    factors : bool
        Also draw availability, performance and quality (time-only results).
    title : str, optional
        Figure title.
    machines : DataFrame or mapping, optional
        Machine names for the lines of a result by ``machine_id`` (see :func:`machine_labels`).

    Returns
    -------
    plotly.graph_objects.Figure
        Traces ``OEE`` (+ ``Availability``, ``Performance``, ``Quality``), or one per group.
    """
    grains = [g for g in ("day", "hour") if g in result.by]
    if len(grains) != 1:
        raise PlotError(f"an OEE trend needs a result grouped by 'day' or 'hour', got by={result.by}")
    grain = grains[0]
    others = [b for b in result.by if b != grain]
    if len(others) > 1:
        raise PlotError(f"an OEE trend shows one line per group of at most one key, got by={result.by}")
    title = title or f"OEE by {grain}"
    t = result.table.sort_values(list(result.by)).reset_index(drop=True)
    if t.empty:
        return _empty(title)
    mode = "lines+markers" if len(t) <= 60 else "lines"
    t = _with_gaps(t, grain, others[0] if others else None)
    x, x_title = _time_axis(t, grain, tz)
    fig = go.Figure()
    hover = "%{x}<br>%{fullData.name}: %{y:.1%}<extra></extra>"
    if others:
        key = others[0]
        for name, idx in t.groupby(key, sort=True).groups.items():
            label = machine_labels([name], machines)[0] if key == "machine_id" else str(name)
            fig.add_trace(go.Scatter(x=x[idx], y=t.loc[idx, "oee"], name=label, mode=mode,
                                     connectgaps=False, hovertemplate=hover))
    else:
        if factors:
            for col, dash, color in (("availability", "dot", "#00838f"), ("performance", "dash", "#ef6c00"),
                                     ("quality", "dashdot", "#6a1b9a")):
                fig.add_trace(go.Scatter(x=x, y=t[col], name=_KPI_LABELS[col], mode=mode, connectgaps=False,
                                         hovertemplate=hover,
                                         line={"width": 1.5, "dash": dash, "color": color}))
        fig.add_trace(go.Scatter(x=x, y=t["oee"], name="OEE", mode=mode, line={"width": 3, "color": PRIMARY},
                                 connectgaps=False, hovertemplate=hover))
    if thresholds:
        good, watch = thresholds
        for value, band in ((good, "good"), (watch, "watch")):
            fig.add_hline(y=value, line={"dash": "dash", "color": BAND_COLORS[band], "width": 1},
                          annotation_text=f"{band} {value:.0%}", annotation_position="bottom right")
    fig.update_yaxes(tickformat=".0%", range=[0, 1.05])
    return _figure(fig, title=title, x=x_title, y="OEE (%)")


def machine_ranking(source: DailySummary | OEEResult, *, thresholds: tuple[float, float] | None = None,
                    title: str | None = None, machines: MachineNames = None) -> go.Figure:
    """OEE per machine, best on top, each bar coloured by its band (good / watch / poor / no plan).

    Parameters
    ----------
    source : DailySummary or OEEResult
        A daily summary (its ``machines`` table and thresholds) or an OEE result by ``machine_id``.
    thresholds : (good, watch), optional
        Bands; default the summary's, else 85 % / 65 %.
    title : str, optional
        Figure title.
    machines : DataFrame or mapping, optional
        Machine names (see :func:`machine_labels`), over a ``name`` column of the source's table.

    Returns
    -------
    plotly.graph_objects.Figure
        One horizontal ``Bar`` trace named ``OEE``.
    """
    if isinstance(source, DailySummary):
        thresholds = thresholds or source.thresholds
        m = source.machines.copy()
    else:
        if tuple(source.by) != ("machine_id",):
            raise PlotError(f"a machine ranking needs a result by machine_id alone, got by={source.by}")
        m = source.table.copy()
    _need(m, "a machine ranking", ("machine_id", "oee"))
    thresholds = thresholds or DEFAULT_THRESHOLDS
    title = title or "OEE by machine"
    if m.empty:
        return _empty(title)
    bands = m["status"] if "status" in m.columns else pd.Series([status(v, thresholds) for v in m["oee"]],
                                                                 index=m.index)
    m = m.assign(_band=bands, _sort=m["oee"].fillna(-1.0)).sort_values(["_sort", "machine_id"],
                                                                         ascending=[True, False])
    names = dict(zip(m["machine_id"].astype(str), m["name"], strict=True)) if "name" in m.columns else {}
    labels = machine_labels(m["machine_id"], {**names, **_names(machines)})
    factors = [c for c in ("availability", "performance", "quality") if c in m.columns]
    custom = np.column_stack([m["_band"].to_numpy(), *[m[c].map(_pct).to_numpy() for c in factors]])
    hover = "<b>%{y}</b><br>OEE %{x:.1%} (%{customdata[0]})" + "".join(
        f"<br>{_KPI_LABELS[c]} %{{customdata[{i + 1}]}}" for i, c in enumerate(factors)) + "<extra></extra>"
    fig = go.Figure(go.Bar(
        x=m["oee"].fillna(0.0), y=labels, orientation="h", name="OEE",
        marker={"color": [BAND_COLORS[b] for b in m["_band"]]},
        text=[_pct(v) if not pd.isna(v) else "no plan" for v in m["oee"]], textposition="auto",
        customdata=custom, hovertemplate=hover))
    good, watch = thresholds
    for value, band in ((good, "good"), (watch, "watch")):
        fig.add_vline(x=value, line={"dash": "dash", "color": BAND_COLORS[band], "width": 1},
                      annotation_text=f"{band} {value:.0%}", annotation_position="top")
    fig.update_xaxes(tickformat=".0%", range=[0, 1.02])
    return _figure(fig, title=title, x="OEE (%)", y="machine", height=max(HEIGHT, 60 + 28 * len(m)))


def loss_waterfall(source: OEEResult | pd.DataFrame, *,
                   title: str = "Where the planned time went") -> go.Figure:
    """The OEE loss waterfall: planned busy time → losses → fully productive time.

    Parameters
    ----------
    source : OEEResult or DataFrame
        A result (its :meth:`~workbench.oee.OEEResult.waterfall`) or that frame (``step``,
        ``minutes``; first row the planned busy time, last the fully productive time).
    title : str
        Figure title.

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Waterfall`` trace.
    """
    frame = source.waterfall() if isinstance(source, OEEResult) else source
    _need(frame, "a loss waterfall", ("step", "minutes"))
    if frame.empty or not frame["minutes"].iloc[0] > 0:
        return _empty(title, "No planned time in the selected range")
    total = float(frame["minutes"].iloc[0])
    measure = ["absolute", *["relative"] * (len(frame) - 2), "total"]
    shares = frame["minutes"].abs() / total
    fig = go.Figure(go.Waterfall(
        x=frame["step"], y=frame["minutes"], measure=measure, name="minutes",
        text=[f"{abs(v):,.0f} min ({s:.1%})" for v, s in zip(frame["minutes"], shares, strict=True)],
        textposition="outside", connector={"line": {"color": MUTED, "width": 1}},
        decreasing={"marker": {"color": LOSS_COLORS["unplanned_stops"]}},
        increasing={"marker": {"color": LOSS_COLORS["fully_productive"]}},
        totals={"marker": {"color": LOSS_COLORS["fully_productive"]}},
        hovertemplate="%{x}: %{y:,.1f} min<extra></extra>"))
    fig.update_yaxes(rangemode="tozero")
    return _figure(fig, title=title, y="time (min)")


_LOSSES = ("unplanned_stops", "setup_and_adjustments", "small_stops", "slow_cycles", "production_rejects",
           "startup_rejects")


def six_big_losses(source: OEEResult | pd.DataFrame, *, productive: bool = False,
                   title: str = "Six big losses", machines: MachineNames = None) -> go.Figure:
    """The six big losses in minutes: one bar per loss for a single group (the plant), else a
    stacked bar per group (machine, line, day …).

    Parameters
    ----------
    source : OEEResult or DataFrame
        A result (its :meth:`~workbench.oee.OEEResult.six_big_losses`) or that frame.
    productive : bool
        Also stack the fully productive time (the bars then add up to the planned busy time).
    title : str
        Figure title.
    machines : DataFrame or mapping, optional
        Machine names for groups by ``machine_id`` (see :func:`machine_labels`).

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Bar`` trace for a single group; else one trace per loss (``Unplanned stops`` …).
    """
    frame = source.six_big_losses() if isinstance(source, OEEResult) else source
    _need(frame, "six big losses", _LOSSES)
    if frame.empty:
        return _empty(title)
    minutes = [*_LOSSES, *(("fully_productive",) if "fully_productive" in frame else ())]
    if not frame[minutes].to_numpy().any():
        return _empty(title, "No planned time in the selected range")
    keys = [c for c in frame.columns if c not in (*_LOSSES, "fully_productive")]
    if len(frame) == 1:
        row = frame.iloc[0]
        order = sorted(_LOSSES, key=lambda c: float(row[c]))
        fig = go.Figure(go.Bar(
            x=[float(row[c]) for c in order], y=[LOSS_LABELS[c] for c in order], orientation="h",
            name="minutes lost", marker={"color": [LOSS_COLORS[c] for c in order]},
            text=[f"{float(row[c]):,.0f}" for c in order], textposition="auto",
            hovertemplate="%{y}: %{x:,.1f} min<extra></extra>"))
        return _figure(fig, title=title, x="time lost (min)")
    labels = _label(frame, keys, machines)
    fig = go.Figure()
    for col in (*_LOSSES, *(("fully_productive",) if productive else ())):
        fig.add_trace(go.Bar(
            x=labels, y=frame[col], name=LOSS_LABELS[col], marker={"color": LOSS_COLORS[col]},
            hovertemplate="%{x}<br>" + LOSS_LABELS[col] + ": %{y:,.1f} min<extra></extra>"))
    fig.update_layout(barmode="stack", legend={"orientation": "v", "x": 1.02, "xanchor": "left", "y": 1,
                                               "yanchor": "top"})
    axis = " · ".join("machine" if k == "machine_id" else k for k in keys)
    return _figure(fig, title=title, x=axis or None, y="time (min)")


# =============================================================================================
# losses
# =============================================================================================

def pareto(frame: pd.DataFrame, *, measure: str | None = None, top: int | None = None,
           title: str | None = None, currency: str = "$", machines: MachineNames = None) -> go.Figure:
    """Pareto chart: bars largest first and the cumulative share on a secondary axis.

    Parameters
    ----------
    frame : DataFrame
        A :func:`~workbench.losses.downtime_pareto` or :func:`~workbench.losses.scrap_pareto`
        result: the category column first, the measures, ``share`` and ``cumulative_share``.
    measure : str, optional
        The column the Pareto was sorted by (its ``share`` refers to it): default ``minutes``
        for downtime, ``cost`` for scrap. Pass ``"events"`` or ``"quantity"`` for those.
    top : int, optional
        Show only the first ``top`` bars (the cumulative line still counts everything).
    title : str, optional
        Figure title.
    currency : str
        Currency symbol for costs.
    machines : DataFrame or mapping, optional
        Machine names for a Pareto by ``machine_id`` (see :func:`machine_labels`).

    Returns
    -------
    plotly.graph_objects.Figure
        Traces ``<measure>`` (bars) and ``cumulative %`` (line on ``y2``), and where the
        measure is unknown (a scrap cost nobody recorded: NaN, see
        :func:`~workbench.losses.scrap_pareto`) ``<measure> unknown``, a flat grey marker
        labelled so, never a $0 bar. Bars whose cost covers only part of their scrap are labelled
        with the ``units_without_cost`` they leave out.
    """
    _need(frame, "a Pareto chart", ("share", "cumulative_share"))
    key = str(frame.columns[0])
    if measure is None:
        measure = next((m for m in ("minutes", "cost") if m in frame.columns), None)
        if measure is None:
            raise PlotError("cannot tell what the Pareto measures: pass measure=")
    _need(frame, "a Pareto chart", (measure,))
    what = "machine" if key == "machine_id" else key.replace("_", " ")
    title = title or f"Pareto of {measure} by {what}"
    if frame.empty:
        return _empty(title)
    shown = frame.head(top) if top else frame
    if top and len(frame) > top:
        title += f" (top {top} of {len(frame)})"
    # Scrap without a known cost is named in the title, so it stays in view even when `top`
    # cuts its bar (unknown costs sort last).
    unpriced = float(frame["units_without_cost"].sum()) if "units_without_cost" in frame.columns else 0.0
    if measure == "cost" and unpriced > 0:
        title += f" — {unpriced:,.0f} units scrapped without a cost"
    unit = currency if measure == "cost" else _UNITS.get(measure, "")
    value_fmt = f"{currency}%{{y:,.0f}}" if measure == "cost" else f"%{{y:,.1f}} {unit}"
    extra = [c for c in ("minutes", "events", "quantity", "cost", "units_without_cost")
             if c in shown.columns and c != measure]
    # Hover values as text: an unknown cost reads "unknown", never "$nan" or "$0".
    custom = np.column_stack([[_pct(v) for v in shown["share"]],
                              *[[_amount(v, currency if c == "cost" else "") for v in shown[c]]
                                for c in extra]])
    extra_fmt = "".join(f"<br>{c.replace('_', ' ')}: %{{customdata[{i + 1}]}}" for i, c in enumerate(extra))
    labels = (pd.Series(machine_labels(shown[key], machines), index=shown.index) if key == "machine_id"
              else shown[key].astype(str))
    unknown = shown[measure].isna().to_numpy()
    gaps = (shown["units_without_cost"].to_numpy(dtype=float) if measure == "cost" and "units_without_cost"
            in shown.columns else np.zeros(len(shown)))
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Bar(
        x=labels, y=shown[measure], name=measure, marker={"color": PRIMARY},
        # a bar whose cost is only partly known says how much scrap it leaves out
        text=[f"+{g:,.0f} units, cost unknown" if g > 0 and not u else ""
              for g, u in zip(gaps, unknown, strict=True)],
        textposition="outside", cliponaxis=False, customdata=custom,
        hovertemplate=(f"<b>%{{x}}</b><br>{measure}: {value_fmt} (%{{customdata[0]}})"
                       f"{extra_fmt}<extra></extra>")),
        secondary_y=False)
    if unknown.any():
        # No height can stand for an unknown value: a flat, labelled marker instead of a bar that
        # would read as 0.
        fig.add_trace(go.Bar(
            x=labels[unknown], y=np.zeros(int(unknown.sum())), name=f"{measure} unknown",
            marker={"color": MUTED, "line": {"color": MUTED, "width": 2}},
            text=[f"{measure} unknown" + (f" ({g:,.0f} units)" if g > 0 else "") for g in gaps[unknown]],
            textposition="outside", cliponaxis=False, customdata=custom[unknown],
            hovertemplate=f"<b>%{{x}}</b><br>{measure} unknown{extra_fmt}<extra></extra>"),
            secondary_y=False)
        fig.update_layout(barmode="overlay")  # one slot per category: the traces never share one
    fig.add_trace(go.Scatter(
        x=labels, y=shown["cumulative_share"], name="cumulative %", mode="lines+markers",
        line={"color": "#ef6c00", "width": 2}, hovertemplate="%{x}<br>cumulative %{y:.1%}<extra></extra>"),
        secondary_y=True)
    # The 80 % line marks the "vital few" of the Pareto principle.
    fig.add_hline(y=0.8, line={"dash": "dot", "color": MUTED, "width": 1}, secondary_y=True)
    fig.update_yaxes(title_text=f"{measure} ({unit})", rangemode="tozero", secondary_y=False)
    fig.update_yaxes(title_text="cumulative share (%)", tickformat=".0%", range=[0, 1.05],
                     tickmode="array", tickvals=[0, 0.2, 0.4, 0.6, 0.8, 1.0], secondary_y=True,
                     showgrid=False)
    return _figure(fig, title=title, x=what)


def downtime_cost(frame: pd.DataFrame, *, currency: str = "$", top: int | None = None,
                  title: str = "Cost of downtime", machines: MachineNames = None) -> go.Figure:
    """Bars of the cost of downtime per category / reason / machine.

    Parameters
    ----------
    frame : DataFrame
        A :func:`~workbench.losses.downtime_cost` result (key column first, ``minutes``,
        ``cost``, ``minutes_without_rate``).
    currency : str
        Currency symbol.
    top : int, optional
        Show the first ``top`` rows only.
    title : str
        Figure title.
    machines : DataFrame or mapping, optional
        Machine names for costs by ``machine_id`` (see :func:`machine_labels`).

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Bar`` trace named ``cost``, labelled with the cost, or "rate unknown" where every
        minute of the bar lacks a labor rate and no overhead priced it (its cost of 0 is not a
        known zero).
    """
    _need(frame, "a downtime cost chart", ("minutes", "cost"))
    if frame.empty:
        return _empty(title)
    key = str(frame.columns[0])
    shown = frame.head(top) if top else frame
    unrated = (shown["minutes_without_rate"] if "minutes_without_rate" in shown.columns
               else shown["minutes"] * 0.0)
    # Stops without a labor rate are costed at the overhead only; with no overhead their $0 is
    # not a known zero, so such a bar says what is missing instead.
    no_rate = (shown["cost"].fillna(0.0) == 0) & (shown["minutes"] > 0) & (unrated >= shown["minutes"])
    labels = machine_labels(shown[key], machines) if key == "machine_id" else shown[key].astype(str)
    fig = go.Figure(go.Bar(
        x=labels, y=shown["cost"], name="cost", marker={"color": PRIMARY},
        text=["rate unknown" if missing else f"{currency}{v:,.0f}"
              for v, missing in zip(shown["cost"], no_rate, strict=True)],
        textposition="outside",
        customdata=np.column_stack([shown["minutes"].to_numpy(float), unrated.to_numpy(float)]),
        hovertemplate=(f"<b>%{{x}}</b><br>cost {currency}%{{y:,.0f}}<br>%{{customdata[0]:,.0f}} min stopped"
                       "<br>%{customdata[1]:,.0f} min without a labor rate<extra></extra>")))
    fig.update_yaxes(rangemode="tozero")
    return _figure(fig, title=title, x="machine" if key == "machine_id" else key.replace("_", " "),
                   y=f"cost ({currency})")


# =============================================================================================
# SPC
# =============================================================================================

def _gap_breaks(x: np.ndarray) -> np.ndarray:
    """Positions after which a time axis jumps over a stretch without subgroups (a night off, a
    weekend, a part not running): more than three times the usual spacing and at least two
    hours. A line drawn across such a gap would show values nobody measured."""
    if len(x) < 3 or not np.issubdtype(np.asarray(x).dtype, np.datetime64):
        return np.zeros(max(len(x) - 1, 0), dtype=bool)
    step = np.diff(np.asarray(x, dtype="datetime64[ns]")).astype("timedelta64[s]").astype(float)
    usual = float(np.median(step))
    return step > max(3 * usual, 7200.0)


def _gapped(x: np.ndarray, y: np.ndarray | pd.Series, breaks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x and y with a blank point after every break (plotly does not join across it)."""
    y = np.asarray(y, dtype=float)
    if not breaks.any():
        return x, y
    at = np.flatnonzero(breaks) + 1
    blank_x = x[at - 1] + (x[at] - x[at - 1]) / 2
    return np.insert(x, at, blank_x), np.insert(y, at, np.nan)


def _chart_x(chart: ControlChart, times: Mapping[Any, Any] | None, tz: str | None) -> np.ndarray:
    """Clock time of every point (its subgroup's first measurement, in ``tz``) when known, else
    the point number."""
    if not times:
        return np.arange(1, len(chart) + 1)
    stamps = pd.to_datetime(pd.Series([times.get(s) for s in chart.subgroups], dtype=object), utc=True)
    if stamps.isna().any():
        return np.arange(1, len(chart) + 1)
    if tz:
        stamps = stamps.dt.tz_convert(tz)
    # naive wall-clock values for plotly (it would render tz-aware values in UTC)
    return stamps.dt.tz_localize(None).to_numpy()


def _chart_traces(fig: go.Figure, chart: ControlChart, *, row: int | None, zones: bool,
                  show_legend: bool, x: np.ndarray | None = None) -> None:
    f = chart.to_frame()
    x = np.arange(1, len(f) + 1) if x is None else x
    clock = np.issubdtype(np.asarray(x).dtype, np.datetime64)
    breaks = _gap_breaks(x)
    where = {"row": row, "col": 1} if row else {}
    varying = {name: not np.allclose(f[name], f[name].iloc[0], equal_nan=True)
               for name in ("center", "lcl", "ucl")} if len(f) else {}
    fired = f["violations"].replace("", "—")
    when = (pd.Series(x).dt.strftime("%a %d %b %H:%M") if clock else pd.Series(x).astype(str)).to_numpy()
    custom = np.column_stack([f["subgroup"].astype(str), f["size"], f["lcl"], f["ucl"], fired, when])
    gx, gy = _gapped(np.asarray(x), f["statistic"], breaks)
    if breaks.any():  # hover data must line up with the blank points too
        custom = np.insert(custom, np.flatnonzero(breaks) + 1, "", axis=0)
    fig.add_trace(go.Scatter(
        x=gx, y=gy, name=chart.label, mode="lines+markers", showlegend=show_legend,
        legendgroup=chart.label, line={"color": PRIMARY, "width": 1.5}, marker={"size": 6},
        customdata=custom, connectgaps=False,
        hovertemplate=("%{customdata[5]} · subgroup %{customdata[0]} (n = %{customdata[1]})<br>"
                       f"{chart.label} = %{{y:.5g}}<br>"
                       "LCL %{customdata[2]:.5g} · UCL %{customdata[3]:.5g}"
                       "<br>rules: %{customdata[4]}<extra></extra>")), **where)

    def line(y: pd.Series | np.ndarray, name: str, color: str, dash: str, width: float = 1.5) -> None:
        # 'hvh' steps half-way between points, so each point sits in the middle of its own limit.
        lx, ly = _gapped(np.asarray(x), y, breaks)
        fig.add_trace(go.Scatter(x=lx, y=ly, name=name, mode="lines", line_shape="hvh",
                                 showlegend=show_legend, legendgroup=chart.label,
                                 line={"color": color, "dash": dash, "width": width}, connectgaps=False,
                                 hovertemplate=f"{name} %{{y:.5g}}<extra></extra>"), **where)

    def named(what: str, col: str) -> str:
        value = f[col].iloc[0]
        return f"{chart.label} {what}" if varying.get(col) else f"{chart.label} {what} = {value:.5g}"

    line(f["center"], named("CL", "center"), "#2e7d32", "solid")
    line(f["ucl"], named("UCL", "ucl"), LIMIT, "dash")
    line(f["lcl"], named("LCL", "lcl"), LIMIT, "dash")
    if zones and np.all(np.isfinite(np.asarray(chart.se, dtype=float))):
        se = np.broadcast_to(np.asarray(chart.se, dtype=float), x.shape)
        for k in (1, 2):
            for sign in (1, -1):
                name = f"{chart.label} {'+' if sign > 0 else '−'}{k}σ"
                line(f["center"] + sign * k * se, name, MUTED, "dot", 1)
    bad = f.index[f["violations"] != ""]
    if len(bad):
        fig.add_trace(go.Scatter(
            x=np.asarray(x)[bad], y=f.loc[bad, "statistic"], name=f"{chart.label} violations", mode="markers",
            showlegend=show_legend, legendgroup=chart.label,
            marker={"color": ALERT, "size": 11, "symbol": "circle-open", "line": {"width": 2.5}},
            customdata=np.column_stack([when[bad], f.loc[bad, "subgroup"].astype(str),
                                        f.loc[bad, "violations"]]),
            hovertemplate="%{customdata[0]} · subgroup %{customdata[1]}: %{customdata[2]}"
                          "<extra>violation</extra>"), **where)


def control_chart(chart: ControlChart | ChartPair, *, title: str | None = None, zones: bool = False,
                  unit: str | None = None, times: Mapping[Any, Any] | None = None,
                  tz: str | None = None) -> go.Figure:
    """A control chart: points, center line, control limits and rule violations.

    Limits are drawn as the chart holds them — flat when constant, stepped point by point when
    they vary with the subgroup size or, on an EWMA chart, with time. Points where a rule fired
    are circled in red (hover names the rules). An EWMA chart also shows the subgroup means it
    smooths; a CUSUM is one panel, C⁺ above zero and −C⁻ below, with the decision interval ±h.

    Parameters
    ----------
    chart : ControlChart or ChartPair
        A computed chart (phase I or II); a pair is drawn as two panels sharing the x axis,
        except a CUSUM (:class:`~workbench.spc.timeweighted.CusumChart`), drawn in one.
    title : str, optional
        Figure title; default names the chart, its phase and sigma estimator.
    zones : bool
        Also draw the ±1σ and ±2σ zone lines (center ± k · standard error).
    unit : str, optional
        Measurement unit for the y axis.
    times : mapping, optional
        Time of each subgroup id (e.g. :attr:`workbench.spc.Study.subgroup_times`): the x axis
        is then clock time (in ``tz``), hover shows the subgroup and its time, and the line is
        broken where no subgroup was measured for a while (nights off, weekends). Without it
        the x axis is the point number.
    tz : str, optional
        Time zone for the clock-time axis (the plant's); default UTC.

    Returns
    -------
    plotly.graph_objects.Figure
        Per chart: ``<label>`` (points), ``<label> CL``/``UCL``/``LCL`` lines and, when rules
        fired, ``<label> violations``.
    """
    from workbench.spc.timeweighted import CusumChart, EwmaChart

    charts = list(chart) if isinstance(chart, ChartPair) else [chart]
    first = charts[0]
    cusum = isinstance(chart, CusumChart)
    names = "CUSUM" if cusum else "-".join(c.label for c in charts)
    phase = ("phase I (limits from these points)" if first.phase == "I"
             else "phase II (against frozen phase I limits)")
    n_viol = sum(len(c.violations) for c in charts)
    title = title or f"{names} chart — {phase}"
    subtitle = (f"σ̂ = {first.sigma:.4g} ({first.sigma_method}), {first.nsigmas:g}σ limits, "
                f"{len(first)} points, {n_viol} violation{'s' if n_viol != 1 else ''}")
    if isinstance(chart, CusumChart):
        subtitle = (f"μ₀ = {chart.target:.5g}, σ̂ = {chart.sigma:.4g} ({first.sigma_method}), "
                    f"k = {chart.k:g}, h = {chart.h:g} (standard errors of the mean), {len(first)} points, "
                    f"{n_viol} signal{'s' if n_viol != 1 else ''}")
    elif isinstance(first, EwmaChart):
        subtitle = subtitle.replace("σ limits", f"σ limits, λ = {first.lam:g}")
    suffix = f" ({unit})" if unit else ""
    if len(charts) == 1 or cusum:
        fig = go.Figure()
        for c in charts:
            shown = len(fig.data)
            _chart_traces(fig, c, row=None, zones=zones and not cusum, show_legend=True,
                          x=_chart_x(c, times, tz))
            if c is not first:  # −C⁻ shares C⁺'s center line and decision interval: drop the repeats
                fig.data = fig.data[:shown] + tuple(t for t in fig.data[shown:] if t.mode != "lines")
                fig.data[shown].update(line={"color": MUTED}, marker={"color": MUTED})
        if isinstance(chart, CusumChart):
            h = chart.h  # the ±h lines are both sides' decision interval, not C⁺'s own limits
            renamed = {f"C⁺ UCL = {h:.5g}": f"h = {h:.5g}", f"C⁺ LCL = {-h:.5g}": f"−h = −{h:.5g}",
                       "C⁺ CL = 0": "0"}
            for t in fig.data:
                t.name = renamed.get(t.name, t.name)
        if isinstance(first, EwmaChart):
            fig.add_trace(go.Scatter(x=_chart_x(first, times, tz), y=first.means, name="subgroup mean",
                                     mode="markers", marker={"color": MUTED, "symbol": "cross", "size": 6},
                                     hovertemplate="%{x}: mean %{y:.5g}<extra></extra>"))
        fig.update_yaxes(title_text="cumulative sum (standard errors)" if cusum else f"{first.label}{suffix}")
        height = HEIGHT
    else:
        fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.65, 0.35],
                            vertical_spacing=0.06)
        for row, c in enumerate(charts, start=1):
            _chart_traces(fig, c, row=row, zones=zones and row == 1, show_legend=True,
                          x=_chart_x(c, times, tz))
            fig.update_yaxes(title_text=f"{c.label}{suffix}", row=row, col=1)
        height = 560
    axis = f"time ({tz or 'UTC'})" if times else "point (subgroup, in time order)"
    fig.update_xaxes(title_text=axis,
                     row=len(charts) if len(charts) > 1 and not cusum else None)
    fig.update_layout(legend={"orientation": "v", "x": 1.02, "xanchor": "left", "y": 1, "yanchor": "top",
                              "font": {"size": 11}}, margin={"r": 200})
    return _figure(fig, title=f"{title}<br><sup>{subtitle}</sup>", height=height)


def capability_histogram(values: Sequence[float] | pd.Series | np.ndarray, capability: Capability, *,
                         unit: str | None = None, title: str | None = None,
                         bins: int | str = "auto") -> go.Figure:
    """Histogram of the measurements with the specification limits and the fitted normal curves
    (within and overall sigma) of a capability study.

    Parameters
    ----------
    values : array-like
        The measurements the study was made from.
    capability : Capability
        The study (:func:`workbench.spc.capability`): mean, both sigmas, limits and indices.
    unit : str, optional
        Measurement unit for the x axis.
    title : str, optional
        Figure title; default lists Cp, Cpk, Pp and Ppk.
    bins : int or str
        Number of bins or a numpy rule (``"auto"``, ``"fd"`` …).

    Returns
    -------
    plotly.graph_objects.Figure
        Traces ``measurements`` (histogram), ``within (<method>)`` and ``overall`` (normal
        curves scaled to counts); LSL / USL / target as vertical lines.
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]

    def idx(name: str, value: float | None) -> str:
        return f"{name} {value:.2f}" if value is not None else f"{name} n/a"

    indices = ", ".join(idx(n, getattr(capability, n.lower())) for n in ("Cp", "Cpk", "Pp", "Ppk"))
    title = title or f"Capability — {indices}"
    if v.size == 0:
        return _empty(title)
    edges = np.histogram_bin_edges(v, bins=bins)
    width = float(edges[1] - edges[0]) if len(edges) > 1 else 1.0
    fig = go.Figure(go.Histogram(
        x=v, name="measurements", marker={"color": "#90a4ae", "line": {"color": "white", "width": 1}},
        xbins={"start": float(edges[0]), "end": float(edges[-1]), "size": width},
        hovertemplate="%{x}<br>%{y} measurements<extra></extra>"))
    limits = [x for x in (capability.lsl, capability.usl) if x is not None]
    lo = min([float(v.min()), *limits, capability.mean - 4 * capability.sigma_overall])
    hi = max([float(v.max()), *limits, capability.mean + 4 * capability.sigma_overall])
    grid = np.linspace(lo, hi, 300)
    cdf = fitted_cdf(capability.distribution) if capability.method != "normal" else None
    if cdf is not None:
        # The fitted model the indices rest on: probability per histogram bin from its
        # distribution function, as counts (no density formula per family to keep in step).
        edges_fine = np.linspace(lo, hi, 301)
        per_bin = np.diff(cdf(edges_fine)) / np.diff(edges_fine) * width * v.size
        fig.add_trace(go.Scatter(x=(edges_fine[:-1] + edges_fine[1:]) / 2, y=per_bin,
                                 name=f"fitted: {_METHOD_LABEL.get(capability.method, capability.method)}",
                                 mode="lines", line={"width": 2}, hoverinfo="skip"))
    curves = ((capability.sigma_within, f"within ({capability.within_method})", "solid"),
              (capability.sigma_overall, "overall", "dash")) if cdf is None else (
        (capability.sigma_overall, "normal, for comparison", "dot"),)
    for sigma, name, dash in curves:
        # The fitted normal, scaled from density to counts per bin of this histogram.
        density = np.exp(-0.5 * ((grid - capability.mean) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
        fig.add_trace(go.Scatter(x=grid, y=density * v.size * width,
                                 name=f"{name}, σ = {sigma:.4g}", mode="lines",
                                 line={"dash": dash, "width": 2}, hoverinfo="skip"))
    for value, name, color in ((capability.lsl, "LSL", LIMIT), (capability.usl, "USL", LIMIT),
                               (capability.target, "target", "#2e7d32")):
        if value is not None:
            dash = "dot" if name == "target" else "solid"
            fig.add_vline(x=value, line={"color": color, "width": 2, "dash": dash},
                          annotation_text=f"{name} {value:g}", annotation_position="top")
    suffix = f" ({unit})" if unit else ""
    fig.update_layout(bargap=0.02, legend={"orientation": "v", "x": 1.02, "xanchor": "left", "y": 1,
                                           "yanchor": "top"}, margin={"r": 220})
    return _figure(fig, title=title, x=f"measurement{suffix}", y="count (measurements)")


def spc_study(study: Study, *, zones: bool = False, tz: str | None = None,
              small_shifts: bool = False) -> list[go.Figure]:
    """The figures of one SPC study: its phase II control chart on clock time, its capability
    histogram and, when asked, the EWMA and CUSUM of its standardized points.

    Parameters
    ----------
    study : Study
        From :func:`workbench.spc.studies`.
    zones : bool
        Draw the ±1σ / ±2σ zones on the control chart.
    tz : str, optional
        Plant time zone for the time axis (default UTC).
    small_shifts : bool
        Add :meth:`~workbench.spc.Study.small_shift_charts` (EWMA λ = 0.2, L = 3 and CUSUM
        k = 0.5, h = 5 of the standardized points).

    Returns
    -------
    list of plotly.graph_objects.Figure
        The control chart (or a note saying why there is none), the EWMA and CUSUM charts when
        asked, and, when the study has one, the capability histogram.
    """
    chart = {"xbar_r": "X̄-R", "xbar_s": "X̄-S", "imr": "I-MR", "ewma": "EWMA", "cusum": "CUSUM",
             "tool_wear": "wear-adjusted X̄-R"}.get(study.chart, study.chart)
    times = study.subgroup_times
    if study.current is None:
        figures = [_empty(f"{study.name} — no control chart", study.problem or "no control limits")]
    else:
        loc = study.current.location if isinstance(study.current, ChartPair) else study.current
        base = study.baseline.location if isinstance(study.baseline, ChartPair) else study.baseline
        n_base = len(base) if base is not None else 0
        rules = "" if study.chart in ("ewma", "cusum") else f" ({study.rules})"
        figures = [control_chart(study.current, zones=zones, unit=study.unit, times=times, tz=tz,
                                 title=f"{study.name} — {chart} chart, {len(loc)} subgroups judged against "
                                       f"limits from {n_base} baseline subgroups{rules}")]
        extra = study.small_shift_charts() if small_shifts else None
        if extra is not None:
            ewma_chart, cusum_chart = extra
            figures.append(control_chart(ewma_chart, times=times, tz=tz, title=(
                f"{study.name} — small shifts: EWMA of the {loc.label} chart's standardized points")))
            figures.append(control_chart(cusum_chart, times=times, tz=tz, title=(
                f"{study.name} — small shifts: CUSUM of the {loc.label} chart's standardized points")))
    if study.capability is not None:
        cap = study.capability
        figures.append(capability_histogram(
            study.values, cap, unit=study.unit, title=f"{study.name} — capability: {capability_label(cap)}"))
    return figures


_METHOD_LABEL = {"normal": "normal", "box_cox": "Box-Cox", "johnson": "Johnson", "weibull": "Weibull",
                 "lognormal": "lognormal"}


def capability_label(capability: Capability) -> str:
    """The indices of a capability study and what they rest on, in one line, e.g.
    "Cpk 1.12, Ppk 1.05 (normal; n = 120)" or "Cpk 1.27, Ppk 1.20 (normal; n = 120) — data not
    normal (Anderson-Darling p < 0.001)".

    Parameters
    ----------
    capability : Capability
        The study.

    Returns
    -------
    str
    """
    cap = capability
    shown = [f"{name} {value:.2f}" for name, value in (("Cpk", cap.cpk), ("Ppk", cap.ppk))
             if value is not None]
    basis = _METHOD_LABEL.get(cap.method, cap.method)
    if cap.method in ("weibull", "lognormal"):
        basis += ", percentile method"
    elif cap.method in ("box_cox", "johnson"):
        basis += " transformation"
    text = f"{', '.join(shown) or 'no index'} ({basis}; n = {cap.n})"
    if cap.normality is not None and not cap.normality.normal:
        text += f" — data not normal ({cap.normality.describe()})"
    return text


# =============================================================================================
# reliability
# =============================================================================================

def _plotting_positions(tbf: pd.DataFrame) -> pd.DataFrame:
    """Median-rank plotting positions of the failures, with Johnson's adjusted ranks for
    right-censored times and Bernard's approximation F ≈ (j − 0.3) / (n + 0.4).

    These place the data on the probability paper; they are not used for the fit (the fit is
    the maximum-likelihood one of the :class:`WeibullFit`).
    """
    d = tbf.sort_values("time_h", kind="stable").reset_index(drop=True)
    n = len(d)
    rank, rows = 0.0, []
    for i, r in d.iterrows():
        if bool(r["censored"]):
            continue
        reverse = n - int(i)           # items still at risk, this one included
        rank += (n + 1 - rank) / (1 + reverse)
        rows.append((float(r["time_h"]), (rank - 0.3) / (n + 0.4)))
    return pd.DataFrame(rows, columns=["time_h", "unreliability"])


def _weibull_y(f: np.ndarray | float) -> np.ndarray:
    return np.log(-np.log1p(-np.asarray(f, dtype=float)))


def weibull_probability(fit: WeibullFit, tbf: pd.DataFrame | None = None, *, machine: str | None = None,
                        unit: str = "h", title: str | None = None,
                        machines: MachineNames = None) -> go.Figure:
    """Weibull probability plot: the fitted line and, given the data, the failures at their
    median ranks (censored times count in the ranks but are not drawn).

    Parameters
    ----------
    fit : WeibullFit
        The maximum-likelihood fit.
    tbf : DataFrame, optional
        The :func:`~workbench.reliability.times_between_failures` rows the fit was made from.
    machine : str, optional
        Use only this machine's rows of ``tbf`` (as ``fit_weibull_tbf(machine=)`` did); the
        default title names it.
    unit : str
        Time unit of the data.
    title : str, optional
        Figure title; default shows the machine, β and η.
    machines : DataFrame or mapping, optional
        Machine names (see :func:`machine_labels`).

    Returns
    -------
    plotly.graph_objects.Figure
        Traces ``Weibull fit`` and (with data) ``failures``.
    """
    which = f"{machine_labels([machine], machines)[0]}: " if machine is not None else ""
    title = title or (f"Weibull probability plot — {which}β = {fit.shape:.2f} "
                      f"[{fit.shape_ci[0]:.2f}, {fit.shape_ci[1]:.2f}], η = {fit.scale:,.1f} {unit}")
    fig = go.Figure()
    lo, hi = fit.b_life(1), fit.b_life(99)
    points = None
    if tbf is not None:
        _need(tbf, "a Weibull plot", ("time_h", "censored"))
        rows = tbf if machine is None else tbf[tbf["machine_id"] == machine]
        points = _plotting_positions(rows)
        if len(points):
            lo, hi = min(lo, points["time_h"].min()), max(hi, points["time_h"].max())
    t = np.geomspace(lo * 0.8, hi * 1.2, 200)
    unrel = 1.0 - np.asarray(fit.reliability(t))
    fig.add_trace(go.Scatter(x=t, y=_weibull_y(unrel), name="Weibull fit", mode="lines",
                             line={"color": PRIMARY, "width": 2}, customdata=unrel,
                             hovertemplate=(f"%{{x:,.1f}} {unit}: %{{customdata:.1%}} failed"
                                            "<extra>fit</extra>")))
    if points is not None and len(points):
        fig.add_trace(go.Scatter(x=points["time_h"], y=_weibull_y(points["unreliability"]), name="failures",
                                 mode="markers", marker={"color": "#ef6c00", "size": 7},
                                 customdata=points["unreliability"],
                                 hovertemplate=f"%{{x:,.2f}} {unit}<br>median rank %{{customdata:.1%}}"
                                               "<extra>failure</extra>"))
    ticks = np.array([0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.632, 0.8, 0.9, 0.95, 0.99])
    fig.update_yaxes(tickvals=_weibull_y(ticks), ticktext=[f"{round(p * 100, 1):g}" for p in ticks])
    fig.update_xaxes(type="log")
    return _figure(fig, title=title, x=f"time between failures ({unit}, log scale)",
                   y="unreliability F(t) (%)")


def reliability_curve(fit: WeibullFit, *, t_max: float | None = None, b_life: float = 10.0, unit: str = "h",
                      title: str | None = None) -> go.Figure:
    """Reliability R(t) and hazard rate h(t) of a Weibull fit, with the B-life and mean life.

    Parameters
    ----------
    fit : WeibullFit
        The fit.
    t_max : float, optional
        End of the time axis; default the B99 life.
    b_life : float
        Which B-life to mark (10 → the time by which 10 % have failed).
    unit : str
        Time unit of the fit.
    title : str, optional
        Figure title.

    Returns
    -------
    plotly.graph_objects.Figure
        Traces ``R(t)`` and ``h(t)`` (secondary axis).
    """
    title = title or (f"Reliability — B{b_life:g} = {fit.b_life(b_life):,.1f} {unit}, "
                      f"mean life {fit.mean:,.1f} {unit}")
    t_max = t_max or fit.b_life(99)
    t = np.linspace(0.0, t_max, 300)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=t, y=fit.reliability(t), name="R(t)", mode="lines",
                             line={"color": PRIMARY, "width": 2.5},
                             hovertemplate=f"%{{x:,.1f}} {unit}: R = %{{y:.1%}}<extra></extra>"),
                  secondary_y=False)
    # h(0) is infinite for β < 1 (infant mortality): start the hazard just after 0.
    fig.add_trace(go.Scatter(x=t[1:], y=fit.hazard(t[1:]), name="h(t)", mode="lines",
                             line={"color": "#ef6c00", "dash": "dash"},
                             hovertemplate=f"%{{x:,.1f}} {unit}: h = %{{y:.3g}} per {unit}<extra></extra>"),
                  secondary_y=True)
    for value, name in ((fit.b_life(b_life), f"B{b_life:g}"), (fit.mean, "mean life")):
        if value <= t_max:
            fig.add_vline(x=value, line={"dash": "dot", "color": MUTED},
                          annotation_text=f"{name} {value:,.1f}")
    fig.update_yaxes(title_text="reliability R(t) (%)", tickformat=".0%", range=[0, 1.02], secondary_y=False)
    fig.update_yaxes(title_text=f"hazard rate h(t) (per {unit})", secondary_y=True, showgrid=False,
                     rangemode="tozero", tickmode="auto")
    return _figure(fig, title=title, x=f"time since the last failure ({unit})")


def mtbf_mttr(frame: pd.DataFrame, *, title: str = "MTBF and MTTR", sort: bool = True,
              machines: MachineNames = None) -> go.Figure:
    """MTBF (hours) and MTTR (minutes) per machine (or machine × category) side by side.

    Parameters
    ----------
    frame : DataFrame
        A :func:`~workbench.reliability.mtbf_mttr` result.
    title : str
        Figure title.
    sort : bool
        Lowest MTBF (least reliable) first; machines without failures last.
    machines : DataFrame or mapping, optional
        Machine names (see :func:`machine_labels`).

    Returns
    -------
    plotly.graph_objects.Figure
        Traces ``MTBF`` and ``MTTR`` in two panels.
    """
    _need(frame, "an MTBF/MTTR chart", ("machine_id", "mtbf_h", "mttr_min", "failures"))
    if frame.empty:
        return _empty(title)
    f = frame.sort_values(["mtbf_h", "machine_id"], na_position="last") if sort else frame
    labels = _label(f, [c for c in ("machine_id", "category") if c in f.columns], machines)
    custom = np.column_stack([f["failures"].to_numpy(), f["uptime_h"].to_numpy(float)
                              if "uptime_h" in f.columns else np.full(len(f), math.nan)])
    fig = make_subplots(rows=1, cols=2, subplot_titles=("MTBF — mean time between failures",
                                                        "MTTR — mean time to repair"), horizontal_spacing=0.1)
    fig.add_trace(go.Bar(x=labels, y=f["mtbf_h"], name="MTBF", marker={"color": PRIMARY}, customdata=custom,
                         hovertemplate="%{x}<br>MTBF %{y:,.1f} h<br>%{customdata[0]} failures in "
                                       "%{customdata[1]:,.1f} h up<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Bar(x=labels, y=f["mttr_min"], name="MTTR", marker={"color": "#ef6c00"},
                         customdata=custom,
                         hovertemplate="%{x}<br>MTTR %{y:,.1f} min<br>%{customdata[0]} failures"
                                       "<extra></extra>"), row=1, col=2)
    fig.update_yaxes(title_text="MTBF (h)", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="MTTR (min)", rangemode="tozero", row=1, col=2)
    fig.update_xaxes(title_text="machine", row=1, col=1)
    fig.update_xaxes(title_text="machine", row=1, col=2)
    fig.update_layout(showlegend=False)
    return _figure(fig, title=title)
