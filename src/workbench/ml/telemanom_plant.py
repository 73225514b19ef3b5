"""Telemanom (:mod:`workbench.ml.telemanom`) on the plant: one channel per machine × metric.

:func:`telemetry_anomalies` judges every channel of ``machine_telemetry`` (running readings only)
and returns ``ml_anomalies`` rows, each with a deterministic :func:`anomaly_id`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from workbench.errors import MLError
from workbench.ml.telemanom import DETECTOR, MODEL_VERSION, TelemanomDetector

#: Telemetry metrics judged by :func:`telemetry_anomalies` by default (the ones that carry precursors).
DEFAULT_METRICS: tuple[str, ...] = ("vibration_rms", "hydraulic_pressure", "motor_current", "drive_temp")
#: Cumulative PLC counters: their level is a running total, not a physical reading.
COUNTER_METRICS: frozenset[str] = frozenset({"part_count_total", "reject_count_total"})
#: Columns of ``ml_anomalies`` that :func:`telemetry_anomalies` fills (``created_at`` is the writer's).
ML_ANOMALIES_COLUMNS: tuple[str, ...] = ("anomaly_id", "machine_id", "time_start", "time_end", "detector",
                                         "target", "score", "severity", "model_version")


def _ns(times: pd.Series | pd.Index) -> np.ndarray:
    """Timezone-aware times as int64 ns since the epoch (NaT → the smallest int64)."""
    return pd.DatetimeIndex(times).as_unit("ns").asi8


def running_from_states(times: pd.Index, machine: Any, states: pd.DataFrame) -> np.ndarray:
    """Whether ``machine`` was running at each of ``times``, from its ``machine_states`` intervals.

    True inside an interval with state ``running`` (one without an end is still open); False in
    any other state and outside every interval (no data is not running).
    """
    st = states[states["machine_id"] == machine].sort_values("time_start", kind="stable")
    if st.empty:
        return np.zeros(len(times), bool)
    start, end, t = _ns(st["time_start"]), _ns(st["time_end"]), _ns(times)
    k = np.clip(np.searchsorted(start, t, side="right") - 1, 0, None)
    open_end = st["time_end"].isna().to_numpy()  # the current state of a live machine has no end yet
    inside = (start[k] <= t) & ((t < end[k]) | open_end[k])
    return inside & (st["state"].to_numpy()[k] == "running")


def _running_from_levels(levels: pd.DataFrame, times: pd.Index,
                         cut: pd.Timestamp) -> tuple[np.ndarray | None, str]:
    """Running = motor_current (else spindle_load) above half its 90th percentile before ``cut``."""
    for metric in ("motor_current", "spindle_load"):
        rows = levels[levels["metric"] == metric]
        if rows.empty:
            continue
        level = rows.groupby("time")["value"].last().reindex(times)
        ref = level[(level.index < cut) & level.notna()].to_numpy(float)
        if ref.size:
            return (level > 0.5 * float(np.quantile(ref, 0.9))).to_numpy(bool), metric
    return None, ""


def _severity(score: float) -> str:
    return "high" if score >= 2.0 else "medium" if score >= 0.5 else "low"


def anomaly_id(machine_id: Any, metric: str, start: Any, *, detector: str = DETECTOR,
               model_version: str = MODEL_VERSION) -> str:
    """Deterministic id of an anomaly.

    The md5 of ``ml_anomalies``, machine, metric, start (µs since the epoch), detector and model
    version joined with ``|``: a rerun on the same data with the same model gives the same id (the
    start of a run is causal, so later data does not move it).
    """
    start_us = int(pd.Timestamp(start).as_unit("us").value)
    key = f"ml_anomalies|{machine_id}|{metric}|{start_us}|{detector}|{model_version}"
    return hashlib.md5(key.encode(), usedforsecurity=False).hexdigest()


def telemetry_anomalies(telemetry: pd.DataFrame, *, machine_states: pd.DataFrame | None = None,
                        metrics: Sequence[str] = DEFAULT_METRICS, train_until: Any = None,
                        train_days: float = 7.0, detector: TelemanomDetector | None = None,
                        model_version: str = MODEL_VERSION) -> pd.DataFrame:
    """Telemanom on every machine × metric channel of ``machine_telemetry`` → ``ml_anomalies`` rows.

    The plant's readings depend on the machine state (levels at idle, setup, down and planned
    stops are a fraction of those while running), so a predictor would fire at every stop.
    Only readings taken while the machine is **running** are judged and are training targets;
    the ``l_s`` readings before each may be in any state (they tell the predictor e.g. that the
    drive is still warming up after a stop). Running means: inside a ``machine_states`` interval
    with state ``running`` (an interval without an end is still open); without
    ``machine_states``, ``motor_current`` (else ``spindle_load``) of that minute above half of its
    90th percentile in the training stretch; with neither, every reading is judged (said in the
    notes). Readings whose ``quality`` is not ``good`` are dropped (no ``quality`` column: all
    good). Cumulative counters (``part_count_total``, ``reject_count_total``) are refused.

    Parameters
    ----------
    telemetry : pandas.DataFrame
        ``machine_telemetry`` rows: time (timezone-aware), machine_id, metric, value (and quality).
    machine_states : pandas.DataFrame, optional
        ``machine_states`` rows: machine_id, time_start, time_end, state.
    metrics : sequence of str
        Metrics to judge (by default the four that carry the plant's failure precursors).
    train_until : timestamp, optional
        Readings before it train each channel's predictor; readings from it on are judged. By
        default the first reading plus ``train_days``.
    train_days : float
        Length of the default training stretch.
    detector : TelemanomDetector, optional
        Unfitted detector with the wanted options, cloned per channel.
    model_version : str
        Written to ``model_version`` and part of ``anomaly_id``.

    Returns
    -------
    pandas.DataFrame
        :data:`ML_ANOMALIES_COLUMNS` (anomaly_id, machine_id, time_start, time_end, detector,
        target = the metric, score, severity: high ≥ 2, medium ≥ 0.5, else low; model_version)
        plus ``detected_at``, when a live run would have raised the anomaly (the morning model
        run stores them with their likely cause: :mod:`workbench.ml.anomaly_rows`).
        ``attrs["notes"]`` says what was dropped or skipped and why (e.g. a channel with too
        little training history).
    """
    missing = [c for c in ("time", "machine_id", "metric", "value") if c not in telemetry.columns]
    if missing:
        raise MLError(f"telemetry: missing column(s) {', '.join(missing)}; machine_telemetry has "
                      "time, machine_id, metric, value, unit, quality")
    counters = sorted(set(metrics) & COUNTER_METRICS)
    if counters:
        raise MLError(f"telemetry: {', '.join(counters)} are cumulative counters (a running total that rolls "
                      "over and resets), not readings Telemanom can predict; judge their increments instead")
    if machine_states is not None:
        missing = [c for c in ("machine_id", "time_start", "time_end", "state")
                   if c not in machine_states.columns]
        if missing:
            raise MLError(f"machine_states: missing column(s) {', '.join(missing)}")
    if not isinstance(telemetry["time"].dtype, pd.DatetimeTZDtype):
        raise MLError("telemetry: column 'time' must hold timezone-aware timestamps, not "
                      f"{telemetry['time'].dtype}")
    template = TelemanomDetector() if detector is None else detector
    notes: list[str] = []
    good = telemetry
    if "quality" in telemetry.columns:
        ok = (telemetry["quality"].astype("string") == "good").fillna(False).to_numpy(bool)
        good = telemetry[ok]
        dropped = int((~ok & telemetry["metric"].isin(list(metrics)).to_numpy(bool)).sum())
        if dropped:
            notes.append(f"{dropped} reading(s) with quality other than 'good' dropped")
    data = good[good["metric"].isin(list(metrics))]
    columns = [*ML_ANOMALIES_COLUMNS, "detected_at"]
    if data.empty:
        out = pd.DataFrame(columns=columns)
        out.attrs["notes"] = [*notes, "no readings of the requested metrics"]
        return out
    if train_until is None:
        cut = data["time"].min() + pd.Timedelta(days=train_days)
    else:
        cut = pd.Timestamp(train_until)
    if cut.tzinfo is None:
        raise MLError(f"train_until {train_until!r} has no time zone")
    levels = good[good["metric"].isin(["motor_current", "spindle_load"])]
    rows = []
    for machine, mdata in data.groupby("machine_id", sort=True):
        wide = mdata.pivot_table(index="time", columns="metric", values="value", aggfunc="last").sort_index()
        if machine_states is not None:
            running = running_from_states(wide.index, machine, machine_states)
        else:
            running, basis = _running_from_levels(levels[levels["machine_id"] == machine], wide.index, cut)
            if running is None:
                running = np.ones(len(wide), bool)
                notes.append(f"{machine}: no machine_states and no motor_current / spindle_load: "
                             "every reading judged")
            else:
                notes.append(f"{machine}: running taken as {basis} above half its training 90th percentile")
        for metric in wide.columns:
            col = wide[metric].to_numpy(float)
            ok = np.isfinite(col)
            series = pd.Series(col[ok], index=wide.index[ok], name=metric)
            judge = running[ok]
            train = series.index < cut
            det = clone(template)
            try:
                det.fit(series[train], judge=judge[train])
            except MLError as exc:
                notes.append(f"{machine} {metric}: not judged ({exc})")
                continue
            for r in det.detect(series, judge=judge, start=cut).itertuples(index=False):
                rows.append((anomaly_id(machine, metric, r.start, model_version=model_version), machine,
                             r.start, r.end, DETECTOR, metric, float(r.score), _severity(float(r.score)),
                             model_version, r.detected_at))
    out = pd.DataFrame(rows, columns=columns)
    for col in ("time_start", "time_end", "detected_at"):
        out[col] = pd.to_datetime(out[col], utc=True)
    out["score"] = out["score"].astype(float)
    out = out.sort_values(["time_start", "machine_id", "target"], kind="stable").reset_index(drop=True)
    out.attrs["notes"] = notes
    return out
