"""ML benchmarks: stop features set-based vs a per-event loop on the same stops.

**Features.** ``workbench.ml.features.stop_features`` builds every stop's features for the whole
plant at once (sorted searches over (series, time) keys, ``bincount`` aggregates). The baseline is the
seed's approach: for each stop, one filter of the telemetry table (a pandas boolean mask on
machine, window and quality — the in-memory analogue of one SQL query per event), then per metric
last / mean / least-squares slope (``numpy.polyfit``) / standard deviation; the same for the
stop's scrap window and the machine's earlier stops per category. Both run on the same stops of
the same simulated plant in the same process; the overlapping features must agree
(``numpy.allclose``), and the script prints both wall times (set-based: best of three runs after
a warm-up) and their ratio (target ≥ 100×). The loop takes tens of milliseconds per stop, so by
default it runs on ``--events`` stops spread evenly over the plant and its time is extrapolated to
all stops (the output says so); ``--events 0`` loops over every stop.

**Models.** Each model trained on the whole plant but its last day, then scoring that day, wall time
each (one run, same process): the root-cause classifier (features, calibrated forest with SMOTE;
the day's stops predicted with their SHAP contributions), the scrap anomaly detector (hourly
features, baselines; the day's episodes with hypotheses), Telemanom (one predictor per machine ×
metric channel on the running readings; the day judged) and the yield forecast (Prophet and the
second stage with its backtest for the intervals; the next 7 days).

Run: ``python benchmarks/bench_ml.py`` (12 machines × 30 days with telemetry) or
``--machines 4 --days 10 --events 50`` for a quick look; ``--skip-models`` for the features only.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from workbench.ml.features import CATEGORIES, SCRAP_CATEGORIES, TELEMETRY_METRICS, slug, stop_features
from workbench.simulate import PlantConfig, simulate_plant


def loop_stop_features(stops: pd.DataFrame, tables: dict[str, pd.DataFrame], *,
                       window_min: float = 60) -> pd.DataFrame:
    """The same telemetry, scrap and time-since features, one stop at a time (the seed's way)."""
    tel, scrap, de = tables["machine_telemetry"], tables["scrap_events"], tables["downtime_events"]
    window = pd.Timedelta(minutes=window_min)
    rows = []
    for stop in stops.itertuples():
        start, machine = stop.time_start, stop.machine_id
        row: dict[str, float] = {}
        w = tel[(tel["machine_id"] == machine) & (tel["time"] >= start - window) & (tel["time"] < start)
                & (tel["quality"] == "good")]
        for metric in TELEMETRY_METRICS:
            m = w[w["metric"] == metric].sort_values("time")
            v = m["value"].to_numpy(dtype=float)
            x = ((m["time"] - start) / pd.Timedelta(hours=1)).to_numpy(dtype=float)
            row[f"{metric}_last"] = v[-1] if len(v) else np.nan
            row[f"{metric}_mean"] = v.mean() if len(v) else np.nan
            row[f"{metric}_slope"] = np.polyfit(x, v, 1)[0] if len(v) >= 2 else np.nan
            row[f"{metric}_std"] = v.std(ddof=1) if len(v) >= 2 else np.nan
        s = scrap[(scrap["machine_id"] == machine) & (scrap["time"] >= start - window)
                  & (scrap["time"] < start)]
        row["scrap_qty_window"] = float(s["quantity"].sum())
        for c in SCRAP_CATEGORIES:
            row[f"scrap_{slug(c)}_qty_window"] = float(s.loc[s["scrap_category"] == c, "quantity"].sum())
        earlier = de[(de["machine_id"] == machine) & (de["time_end"] <= start) & (de["time_start"] < start)]
        row["min_since_prev_stop"] = ((start - earlier["time_end"].max()) / pd.Timedelta(minutes=1)
                                      if len(earlier) else np.nan)
        for c in CATEGORIES:
            ends = earlier.loc[earlier["reason_category"] == c, "time_end"]
            since = (start - ends.max()) / pd.Timedelta(minutes=1) if len(ends) else np.nan
            row[f"min_since_{slug(c)}"] = since
        rows.append(row)
    return pd.DataFrame(rows, index=pd.Index(stops["event_id"].astype(str).to_numpy(), name="event_id"))


def bench_features(tables: dict[str, pd.DataFrame], *, events: int) -> None:
    de = tables["downtime_events"]
    others = {"telemetry": tables["machine_telemetry"], "machine_states": tables["machine_states"],
              "scrap_events": tables["scrap_events"], "production_events": tables["production_events"]}
    stop_features(de.head(20), **others)  # warm-up: first-use costs of pandas / pyarrow kernels
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        ours = stop_features(de, **others)
        times.append(time.perf_counter() - t0)
    t_set = min(times)

    n = len(de) if events <= 0 or events >= len(de) else events
    sample = de.iloc[np.linspace(0, len(de) - 1, n).round().astype(int)]
    t0 = time.perf_counter()
    loop = loop_stop_features(sample, tables)
    t_loop = time.perf_counter() - t0
    t_loop_all = t_loop * len(de) / n

    cols = list(loop.columns)
    a, b = ours.loc[loop.index, cols].to_numpy(dtype=float), loop.to_numpy(dtype=float)
    same_nan = np.array_equal(np.isnan(a), np.isnan(b))
    close = np.allclose(a, b, rtol=1e-7, atol=1e-9, equal_nan=True)
    worst = float(np.nanmax(np.abs(a - b))) if np.isfinite(a - b).any() else 0.0
    assert same_nan and close, f"set-based and loop features differ (largest difference {worst:.3g})"
    loop_text = (f"per-event loop {t_loop_all:.1f} s" if n == len(de) else
                 f"per-event loop {t_loop:.1f} s for {n} stops → {t_loop_all:.0f} s for all {len(de):,} "
                 "(extrapolated)")
    print(f"stop features, {len(de):,} stops: set-based {t_set:.2f} s (best of 3), {loop_text}; speed-up "
          f"{t_loop_all / t_set:.0f}× (target ≥ 100×); {len(cols)} overlapping features agree "
          f"(largest difference {worst:.1e})")


def _timed(func: Callable[[], str]) -> tuple[str, float]:
    t0 = time.perf_counter()
    out = func()
    return out, time.perf_counter() - t0


def bench_models(tables: dict[str, pd.DataFrame], *, tz: str) -> None:
    """Train each model on all days but the last, score the last day; print the wall times."""
    from workbench.ml.features import hourly_features
    from workbench.ml.forecast import YieldForecaster, from_tables
    from workbench.ml.rootcause import RootCauseClassifier, predict_stops, training_frame
    from workbench.ml.scrap import ScrapAnomalyDetector, scrap_mix
    from workbench.ml.telemanom import telemetry_anomalies

    de = tables["downtime_events"]
    last = pd.Timestamp(de["time_start"].max()).tz_convert(tz).normalize().tz_convert("UTC")
    rows = []

    def rootcause() -> str:
        feats = stop_features(de, telemetry=tables["machine_telemetry"],
                              machine_states=tables["machine_states"], scrap_events=tables["scrap_events"])
        X, y = training_frame(feats, de)  # noqa: N806
        before = (pd.to_datetime(de.set_index("event_id")["time_start"], utc=True) < last).reindex(X.index)
        model = RootCauseClassifier().fit(X[before.to_numpy()], y[before.to_numpy()])
        today = de[pd.to_datetime(de["time_start"], utc=True) >= last]
        pred = predict_stops(model, feats.loc[today["event_id"].astype(str)], today, model_version="bench")
        return f"{int(before.sum())} coded stops; {len(pred)} stops of the day predicted and explained"

    def scrap() -> str:
        hourly = hourly_features(tables["production_events"], scrap_events=tables["scrap_events"],
                                 downtime_events=de, machine_states=tables["machine_states"],
                                 quality_measurements=tables["quality_measurements"],
                                 characteristics=tables["characteristics"])
        mix = scrap_mix(tables["scrap_events"])
        det = ScrapAnomalyDetector().fit(hourly[hourly["hour"] < last], mix=mix)
        found = det.detect(hourly[hourly["hour"] >= last], mix=mix)
        return f"{int((hourly['hour'] < last).sum()):,} machine-part-hours; {len(found)} episodes on the day"

    def telemetry() -> str:
        first = pd.to_datetime(tables["machine_telemetry"]["time"], utc=True).min()
        days = (last - first) / pd.Timedelta(days=1)
        found = telemetry_anomalies(tables["machine_telemetry"], machine_states=tables["machine_states"],
                                    train_until=last, train_days=days)
        return f"{days:.0f} days of readings; {len(found)} anomalies on the day"

    def forecast() -> str:
        history, planned = from_tables(tables, tz=tz)
        fc = YieldForecaster().fit(history, planned).predict()
        return f"{len(history):,} line-days; {len(fc.table)} line-days forecast"

    for label, func in (("root-cause classifier", rootcause), ("scrap anomalies", scrap),
                        ("telemetry anomalies (Telemanom)", telemetry), ("yield forecast", forecast)):
        what, seconds = _timed(func)
        rows.append((label, seconds, what))
    for label, seconds, what in rows:
        print(f"{label}: train + score the last day {seconds:.1f} s ({what})")
    print(f"all models: {sum(r[1] for r in rows):.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=12)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--events", type=int, default=150,
                        help="stops the per-event loop runs on (spread over the plant; its time is "
                             "extrapolated to all stops); 0 for all")
    parser.add_argument("--skip-models", action="store_true", help="only the feature benchmark")
    args = parser.parse_args()

    t0 = time.perf_counter()
    cfg = PlantConfig(seed=args.seed, n_machines=args.machines, days=args.days, telemetry=True)
    tables = simulate_plant(cfg).tables
    print(f"plant: {args.machines} machines × {args.days} days, {len(tables['downtime_events']):,} stops, "
          f"{len(tables['machine_telemetry']):,} telemetry readings "
          f"(simulated in {time.perf_counter() - t0:.0f} s)")
    bench_features(tables, events=args.events)
    if not args.skip_models:
        bench_models(tables, tz=cfg.timezone)


if __name__ == "__main__":
    main()
