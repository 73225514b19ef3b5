"""Plotly figures of the model sections: they take a result and draw it, never recompute.

* :func:`stop_explanations` — why the root-cause model predicted each stop's cause (SHAP bars);
* :func:`anomaly_timeline` — the day's anomalies on a time axis, per machine;
* :func:`telemetry_trace` — a telemetry channel over the day with what the detector predicted, its
  smoothed error against the dynamic threshold and the anomalies shaded;
* :func:`week_ahead` — the forecast per line with its interval after the last weeks' actuals;
* :func:`validation_scores` and :func:`confusion_matrix` — a training run's validation.

The look is the one of :mod:`workbench.plots` (its template, colours and machine labels).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench import plots
from workbench.ml.sections import AnomalyTrace, MLSection
from workbench.ml.training import TrainingRun
from workbench.plots import ALERT, HEIGHT, LIMIT, MUTED, PRIMARY, MachineNames, machine_labels

__all__ = ["anomaly_timeline", "confusion_matrix", "stop_explanations", "telemetry_trace",
           "validation_scores", "week_ahead"]


def _finish(fig: go.Figure, *, title: str, height: int = HEIGHT) -> go.Figure:
    return plots.styled(fig, title=title, height=height)


def _message(title: str, message: str) -> go.Figure:
    return plots.message(title, message)


def _value(v: Any) -> str:
    if isinstance(v, float | np.floating):
        return "missing" if np.isnan(v) else f"{v:.3g}"
    return "missing" if v is None else str(v)


def _local(times: Any, tz: str | None) -> pd.Series:
    t = pd.to_datetime(pd.Series(times), utc=True)
    return t.dt.tz_convert(tz).dt.tz_localize(None) if tz else t.dt.tz_localize(None)


# =============================================================================================
# root cause


def stop_explanations(section: MLSection, *, top: int = 5, tz: str | None = None,
                      machines: MachineNames = None) -> go.Figure:
    """SHAP contributions behind the predicted cause of the section's first ``top`` stops.

    One panel per stop (blank codes first): each bar is an input feature with its value and how
    many probability points it added to (blue) or took from (red) the predicted category.

    Parameters
    ----------
    section : MLSection
        From :func:`workbench.ml.sections.uncoded_stops`.
    top : int
        Stops drawn at most.
    tz : str, optional
        Time zone of the stop times in the panel titles.
    machines : DataFrame or mapping, optional
        Machine names for the labels.
    """
    title = "Why the model predicted each stop's cause"
    contrib = section.details.get("contributions")
    if not section.shown or contrib is None or section.table.empty:
        why = section.reason if not section.shown else "No uncoded or suspect stops in the day"
        return _message(title, why)
    rows = section.table.head(top)
    labels = machine_labels(rows["machine_id"], machines)
    starts = _local(rows["time_start"], tz)
    facts = zip(labels, starts, rows["kind"], rows["predicted_category"], rows["predicted_confidence"],
                strict=True)
    titles = [f"{label} {start:%a %H:%M} ({kind}) → {cat} ({100 * conf:.0f} %)"
              for label, start, kind, cat, conf in facts]
    fig = make_subplots(rows=len(rows), cols=1, subplot_titles=titles, shared_xaxes=True,
                        vertical_spacing=0.5 / max(len(rows), 1))
    for i, event_id in enumerate(rows["event_id"], start=1):
        c = contrib[contrib["event_id"] == event_id].sort_values("rank", ascending=False)
        text = [f"{f}={_value(v)}" for f, v in zip(c["feature"], c["value"], strict=True)]
        fig.add_trace(go.Bar(x=c["shap"], y=text, orientation="h", showlegend=False,
                             marker_color=np.where(c["shap"] >= 0, PRIMARY, ALERT),
                             hovertemplate="%{y}: %{x:+.3f}<extra></extra>"), row=i, col=1)
    fig.update_xaxes(title_text="contribution to the predicted category's probability", row=len(rows), col=1)
    fig.update_layout(margin={"l": 260})
    return _finish(fig, title=title, height=120 + 150 * len(rows))


# =============================================================================================
# anomalies


def anomaly_timeline(section: MLSection, *, tz: str | None = None,
                     machines: MachineNames = None) -> go.Figure:
    """The day's anomalies as bars on a time axis, one row per machine, coloured by severity."""
    title = "Anomalies of the day by machine"
    if not section.shown:
        return _message(title, section.reason)
    table = section.table
    if table.empty:
        return _message(title, section.notes[0] if section.notes else "No anomaly in the day")
    colors = {"high": ALERT, "medium": "#ef6c00", "low": MUTED}
    fig = go.Figure()
    labels = machine_labels(table["machine_id"], machines)
    starts, ends = _local(table["time_start"], tz), _local(table["time_end"], tz)
    for severity in ("high", "medium", "low"):
        rows = np.flatnonzero((table["severity"] == severity).to_numpy())
        if not len(rows):
            continue
        fig.add_trace(go.Bar(
            y=[labels[i] for i in rows], base=starts.iloc[rows],
            x=[(ends.iloc[i] - starts.iloc[i]).total_seconds() * 1000 for i in rows], orientation="h",
            name=severity, marker_color=colors[severity], text=table["what"].iloc[rows],
            textposition="inside", insidetextanchor="start",
            customdata=np.stack([table["source"].iloc[rows], table["what"].iloc[rows],
                                 table["likely_cause"].iloc[rows]], axis=-1),
            hovertemplate="%{y}<br>%{customdata[0]}: %{customdata[1]}<br>%{customdata[2]}<extra></extra>"))
    fig.update_xaxes(type="date", title_text=f"time ({tz or 'UTC'})")
    fig.update_yaxes(categoryorder="category descending")
    fig.update_layout(barmode="overlay")
    return _finish(fig, title=title, height=160 + 40 * len(set(labels)))


def telemetry_trace(trace: AnomalyTrace, *, tz: str | None = None,
                    machines: MachineNames = None) -> go.Figure:
    """A channel over the day: readings and prediction above, smoothed error and threshold below.

    Readings not judged (taken while the machine was not running) are drawn grey; the anomalies
    of the section are shaded.
    """
    frame = trace.frame
    label = machine_labels([trace.machine_id], machines)[0]
    title = f"{label} · {trace.metric}: readings, prediction and the dynamic threshold"
    if frame.empty:
        return _message(title, "No readings of this channel in the day")
    x = _local(frame["time"], tz)
    judged = frame["judged"].to_numpy(bool)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.6, 0.4], vertical_spacing=0.08)
    fig.add_trace(go.Scattergl(x=x[~judged], y=frame["value"][~judged], mode="markers", name="not running",
                               marker={"color": MUTED, "size": 3}), row=1, col=1)
    fig.add_trace(go.Scattergl(x=x[judged], y=frame["value"][judged], mode="markers", name="reading",
                               marker={"color": PRIMARY, "size": 3}), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=frame["predicted"], mode="lines", name="predicted",
                             line={"color": "#ef6c00", "width": 1}, connectgaps=False), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=frame["smoothed_error"], mode="lines", name="smoothed error",
                             line={"color": PRIMARY, "width": 1.5}), row=2, col=1)
    fig.add_trace(go.Scatter(x=x, y=frame["threshold"], mode="lines", name="threshold",
                             line={"color": LIMIT, "width": 1.5, "dash": "dash", "shape": "hv"}),
                  row=2, col=1)
    for a in trace.anomalies.itertuples(index=False):
        lo, hi = _local([a.time_start, a.time_end], tz)
        fig.add_vrect(x0=lo, x1=hi, fillcolor=ALERT, opacity=0.12, line_width=0, row="all", col=1)
    fig.update_yaxes(title_text=trace.metric, row=1, col=1)
    fig.update_yaxes(title_text="|reading − predicted|", row=2, col=1)
    fig.update_xaxes(title_text=f"time ({tz or 'UTC'})", row=2, col=1)
    return _finish(fig, title=title, height=520)


# =============================================================================================
# the week ahead


def week_ahead(section: MLSection, *, target: str = "good") -> go.Figure:
    """The forecast of ``target`` (good, produced or yield) per line with its interval, after the
    actuals of the last weeks (``section.details["history"]``)."""
    title = f"The week ahead: {target} per line, forecast with its interval"
    if not section.shown:
        return _message(title, section.reason)
    table = section.table
    if target not in table.columns or table[target].isna().all():
        why = [n for n in section.notes if n.startswith(f"{target} not shown")]
        return _message(title, why[0] if why else f"No {target} forecast to show")
    lines = sorted(table["line"].astype(str).unique())
    history = section.details.get("history", pd.DataFrame(columns=["line", "day", target]))
    fig = make_subplots(rows=len(lines), cols=1, shared_xaxes=True,
                        subplot_titles=[f"line {x}" for x in lines],
                        vertical_spacing=0.25 / max(len(lines), 1))
    for i, line in enumerate(lines, start=1):
        f = table[table["line"].astype(str) == line].sort_values("day")
        h = history[history["line"].astype(str) == line].sort_values("day")
        days = pd.to_datetime(f["day"])
        fig.add_trace(go.Scatter(x=pd.to_datetime(h["day"]), y=h[target], mode="lines+markers", name="actual",
                                 line={"color": MUTED}, marker={"size": 4}, showlegend=i == 1), row=i, col=1)
        fig.add_trace(go.Scatter(x=pd.concat([days, days[::-1]]),
                                 y=pd.concat([f[f"{target}_high"], f[f"{target}_low"][::-1]]),
                                 fill="toself", fillcolor="rgba(31,78,121,0.15)", line={"width": 0},
                                 mode="lines", name="interval", hoverinfo="skip", showlegend=i == 1),
                      row=i, col=1)
        fig.add_trace(go.Scatter(x=days, y=f[target], mode="lines+markers", name="forecast",
                                 line={"color": PRIMARY, "dash": "dash"}, showlegend=i == 1), row=i, col=1)
        if target == "yield":
            fig.update_yaxes(tickformat=".0%", row=i, col=1)
    return _finish(fig, title=title, height=160 + 200 * len(lines))


# =============================================================================================
# training


def validation_scores(run: TrainingRun, *, metric: str = "balanced_accuracy") -> go.Figure:
    """The model beside the majority class and the fault-code lookup, time-ordered hold-out vs
    stratified CV."""
    scores = run.scores
    fig = go.Figure()
    colors = {"model": PRIMARY, "majority class": MUTED, "fault-code lookup": "#ef6c00"}
    for predictor, rows in scores.groupby("predictor", sort=False):
        fig.add_trace(go.Bar(x=rows["validation"], y=rows[metric], name=predictor,
                             marker_color=colors.get(predictor, MUTED),
                             text=[f"{v:.2f}" for v in rows[metric]], textposition="outside"))
    fig.update_layout(barmode="group")
    fig.update_yaxes(title_text=metric.replace("_", " "), range=[0, 1.05])
    name = metric.replace("_", " ").capitalize()
    return _finish(fig, title=f"{name}: time-ordered hold-out vs stratified CV")


def confusion_matrix(run: TrainingRun) -> go.Figure:
    """Entered category (rows) × predicted category (columns) on the hold-out, counts."""
    m = run.confusion
    fig = go.Figure(go.Heatmap(z=m.to_numpy(), x=list(m.columns), y=list(m.index), colorscale="Blues",
                               text=m.to_numpy(), texttemplate="%{text}", showscale=False,
                               hovertemplate="entered %{y}<br>predicted %{x}<br>%{z} stops<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title_text="entered")
    fig.update_xaxes(title_text="predicted")
    return _finish(fig, title=f"Confusion matrix on the hold-out ({run.n_holdout} coded stops)", height=520)
