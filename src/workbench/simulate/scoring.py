"""Detections scored against the simulated plant's ground truth (for tests and benchmarks).

The definitions live here once, so a test's floors and a benchmark's comparison count the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

#: Precursor kinds of ``truth.anomaly_windows`` and the telemetry metrics that show them.
KIND_METRICS: dict[str, tuple[str, ...]] = {
    "vibration": ("vibration_rms",), "hydraulic": ("hydraulic_pressure",),
    "drive": ("motor_current", "drive_temp")}


def precursor_scores(found: pd.DataFrame, windows: pd.DataFrame, *, scored_from: pd.Timestamp,
                     machine_weeks: float | None = None) -> dict[str, Any]:
    """Telemetry detections against the truth's precursor windows.

    Parameters
    ----------
    found : DataFrame
        Detections: machine_id, target (the metric), time_start, time_end, detected_at.
    windows : DataFrame
        ``truth.anomaly_windows``.
    scored_from : Timestamp
        Only precursor windows starting at or after this count (the judged period).
    machine_weeks : float, optional
        Judged machine-weeks, for ``false_per_machine_week``.

    Returns
    -------
    dict
        ``events`` (precursor windows, one per stop), ``recall`` (share with at least one detection
        on the machine and a metric of the kind overlapping it), ``per_kind`` / ``per_kind_n``,
        ``precision`` (share of detections overlapping a precursor window of the same machine and
        metric; one overlapping only tool-wear, scrap or process-shift windows is a false
        positive), ``f1``, ``lead_h`` (median hours from the first overlapping detection's
        ``detected_at`` to the stop), ``detections`` and, with ``machine_weeks``,
        ``false_per_machine_week``.
    """
    pre = windows[windows["kind"].isin(list(KIND_METRICS))]
    events = pre.groupby(["machine_id", "kind", "time_start", "time_end"], as_index=False).size()
    events = events[events["time_start"] >= scored_from]
    hits, leads = [], []
    for ev in events.itertuples():
        d = found[(found["machine_id"] == ev.machine_id) & found["target"].isin(KIND_METRICS[ev.kind])
                  & (found["time_start"] <= ev.time_end) & (found["time_end"] >= ev.time_start)]
        hits.append(len(d) > 0)
        if len(d):
            leads.append((ev.time_end - d["detected_at"].min()).total_seconds() / 3600)
    events = events.assign(hit=hits)
    true = [bool(((pre["machine_id"] == r.machine_id) & (pre["metric"] == r.target)
                  & (pre["time_start"] <= r.time_end) & (pre["time_end"] >= r.time_start)).any())
            for r in found.itertuples()]
    recall = float(events["hit"].mean()) if len(events) else float("nan")
    precision = float(np.mean(true)) if true else 0.0
    out: dict[str, Any] = {
        "events": len(events), "recall": recall, "precision": precision,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "per_kind": events.groupby("kind")["hit"].mean().to_dict(),
        "per_kind_n": events.groupby("kind").size().to_dict(),
        "lead_h": float(np.median(leads)) if leads else float("nan"), "detections": len(found)}
    if machine_weeks:
        out["false_per_machine_week"] = (len(true) - sum(true)) / machine_weeks
    return out
