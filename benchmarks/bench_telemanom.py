"""Telemanom on the simulated plant: which predictor, and is it better than simple baselines?

Runs :func:`workbench.ml.telemanom.telemetry_anomalies` on plants with telemetry (seeds 3 and 5,
6 machines × 28 days by default; the first 7 days train, the rest is judged) with each predictor,
and two baselines on the same channels, and prints for each: event recall per precursor kind
(vibration / hydraulic / drive windows of the ground truth with at least one detection on the
machine and a metric of that kind overlapping them), precision (share of detections overlapping a
precursor window of the same machine and metric), false alarms per machine-week, median lead time
(stop − ``detected_at`` of the first detection), and wall time.

Baselines: ``3-sigma raw`` flags every reading outside mean ± 3σ of the channel's training
readings (all states, as a naive threshold on the raw values would); ``3-sigma running`` does the
same on running readings only (a fair, state-aware simple rule). Consecutive flags within 30
readings form one detection.

    python benchmarks/bench_telemanom.py [--seeds 3 5] [--machines 6] [--days 28] [--predictors ridge gbr]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from workbench.ml.telemanom import LaggedGBR, RidgeAR, TelemanomDetector, telemetry_anomalies
from workbench.simulate import PlantConfig, simulate_plant
from workbench.simulate.scoring import precursor_scores

METRICS = ("vibration_rms", "hydraulic_pressure", "motor_current", "drive_temp")


def _brief(s: dict) -> str:
    kinds = ", ".join(f"{k} {v:.2f}" for k, v in s["per_kind"].items())
    return (f"recall {s['recall']:.3f} ({kinds}), precision {s['precision']:.3f}, F1 {s['f1']:.3f}, "
            f"{s['detections']} detections, {s['false_per_machine_week']:.2f} false per machine-week, "
            f"median lead {s['lead_h']:.2f} h")


def _utc64(times: pd.Series) -> np.ndarray:
    return times.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()


def sigma_baseline(telemetry: pd.DataFrame, states: pd.DataFrame | None, *, train_until: pd.Timestamp,
                   merge: int = 30) -> pd.DataFrame:
    """Flag readings outside mean ± 3σ of the training readings (running only when states are given)."""
    rows = []
    data = telemetry[telemetry["metric"].isin(METRICS) & (telemetry["quality"] == "good")]
    for (machine, metric), g in data.groupby(["machine_id", "metric"], sort=True):
        g = g.sort_values("time")
        t = _utc64(g["time"])
        v = g["value"].to_numpy(float)
        keep = np.ones(len(g), bool)
        if states is not None:
            st = states[states["machine_id"] == machine].sort_values("time_start")
            k = np.searchsorted(_utc64(st["time_start"]), t, side="right") - 1
            keep = (k >= 0) & (st["state"].to_numpy()[np.clip(k, 0, None)] == "running")
        t, v = t[keep], v[keep]
        train = t < train_until.tz_convert("UTC").tz_localize(None).to_datetime64()
        mu, sd = v[train].mean(), v[train].std()
        flag = (np.abs(v - mu) > 3 * sd) & ~train
        idx = np.flatnonzero(flag)
        if not idx.size:
            continue
        breaks = np.flatnonzero(np.diff(idx) > merge)
        for a, z in zip(np.r_[0, breaks + 1], np.r_[breaks, idx.size - 1], strict=True):
            rows.append((machine, metric, t[idx[a]], t[idx[z]], t[idx[a]]))
    out = pd.DataFrame(rows, columns=["machine_id", "target", "time_start", "time_end", "detected_at"])
    for col in ("time_start", "time_end", "detected_at"):
        out[col] = pd.to_datetime(out[col], utc=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 5])
    parser.add_argument("--machines", type=int, default=6)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--train-days", type=float, default=7.0)
    parser.add_argument("--predictors", nargs="+", choices=["ridge", "gbr"], default=["ridge", "gbr"],
                        help="ridge = RidgeAR (the default), gbr = LaggedGBR (HistGradientBoosting)")
    args = parser.parse_args()
    makers = {"ridge": lambda: TelemanomDetector(predictor=RidgeAR()),
              "gbr": lambda: TelemanomDetector(predictor=LaggedGBR())}
    candidates = {name: makers[name] for name in args.predictors}
    for seed in args.seeds:
        plant = simulate_plant(PlantConfig(seed=seed, n_machines=args.machines, days=args.days))
        tel, states = plant.tables["machine_telemetry"], plant.tables["machine_states"]
        cut = tel["time"].min() + pd.Timedelta(days=args.train_days)
        weeks = args.machines * (tel["time"].max() - cut).total_seconds() / (7 * 86400)
        print(f"\nseed {seed}: {args.machines} machines x {args.days} days, "
              f"judged from {cut:%Y-%m-%d %H:%M} UTC")
        for name, make in candidates.items():
            t = time.perf_counter()
            found = telemetry_anomalies(tel, machine_states=states, train_until=cut, detector=make())
            wall = time.perf_counter() - t
            s = precursor_scores(found, plant.truth.anomaly_windows, scored_from=cut, machine_weeks=weeks)
            print(f"  telemanom {name:15s} {wall:6.1f} s  {_brief(s)}")
        for name, st in (("3-sigma raw", None), ("3-sigma running", states)):
            t = time.perf_counter()
            found = sigma_baseline(tel, st, train_until=cut)
            wall = time.perf_counter() - t
            s = precursor_scores(found, plant.truth.anomaly_windows, scored_from=cut, machine_weeks=weeks)
            print(f"  baseline  {name:15s} {wall:6.1f} s  {_brief(s)}")


if __name__ == "__main__":
    main()
