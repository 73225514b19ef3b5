"""Telemanom on the simulated plant, scored against the simulator's ground truth.

Plants: seeds 3 and 5, 6 machines × 28 days with telemetry. The first 7 days train every
channel's predictor (unlabelled: they contain precursors too); the remaining 21 days are judged.

What is counted:

* event recall, per kind: a precursor window (``truth.anomaly_windows`` of kind vibration,
  hydraulic or drive — one event per stop, the drive kind has two metric rows) that *starts* in
  the judged period is caught when at least one detection on the same machine, on a metric of
  that kind (vibration_rms; hydraulic_pressure; motor_current or drive_temp), overlaps it;
* precision: the share of detections that overlap a precursor window of the same machine *and
  metric*. Tool-wear, scrap and process-shift windows are not in these metrics (their evidence is
  in rejects and SPC characteristics), so a detection that overlaps only them counts as a false
  positive, as does one that overlaps a window of another metric;
* lead time: stop time (window end) − ``detected_at`` of the first detection overlapping the
  window, i.e. from when a live system would have raised it (the end of the batch that first
  flagged it), not from the start of the flagged run; median over the caught events.

Baselines on the same channels and period: ``3-sigma raw`` flags readings outside mean ± 3σ of
the channel's training readings, whatever the machine state; ``random`` places as many
detections as Telemanom made, with the same durations, at random times on random channels.

Measured (this code, seeds 3 / 5): recall 1.00 / 1.00 for every kind, precision 0.93 / 0.88,
median lead 2.6 h / 3.5 h; 3-sigma raw: recall 0.66 / 0.56 (hydraulic 0 / 0), precision
1.00 / 1.00, F1 0.79 / 0.72 against Telemanom's 0.96 / 0.94. The floors below leave margin.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from workbench.errors import MLError
from workbench.ml.telemanom import (
    DETECTOR,
    MODEL_VERSION,
    TelemanomDetector,
    anomaly_id,
    telemetry_anomalies,
)
from workbench.schema import conform, table
from workbench.simulate import PlantConfig, simulate_plant
from workbench.simulate.scoring import precursor_scores

pytestmark = pytest.mark.slow

SEEDS = (3, 5)
TRAIN_DAYS = 7
ML_COLUMNS = ["anomaly_id", "machine_id", "time_start", "time_end", "detector", "target", "score", "severity",
              "model_version"]


def sigma_raw(telemetry: pd.DataFrame, *, cut: pd.Timestamp, merge: int = 30) -> pd.DataFrame:
    rows = []
    data = telemetry[telemetry["metric"].isin(["vibration_rms", "hydraulic_pressure", "motor_current",
                                                "drive_temp"]) & (telemetry["quality"] == "good")]
    for (machine, metric), g in data.groupby(["machine_id", "metric"], sort=True):
        g = g.sort_values("time")
        v = g["value"].to_numpy(float)
        train = (g["time"] < cut).to_numpy()
        mu, sd = v[train].mean(), v[train].std()
        idx = np.flatnonzero((np.abs(v - mu) > 3 * sd) & ~train)
        if idx.size:
            breaks = np.flatnonzero(np.diff(idx) > merge)
            for a, z in zip(np.r_[0, breaks + 1], np.r_[breaks, idx.size - 1], strict=True):
                rows.append((machine, metric, g["time"].iloc[idx[a]], g["time"].iloc[idx[z]], g["time"].iloc[idx[a]]))
    return pd.DataFrame(rows, columns=["machine_id", "target", "time_start", "time_end", "detected_at"])


def random_detections(found: pd.DataFrame, *, channels: list[tuple[str, str]], cut: pd.Timestamp,
                      end: pd.Timestamp, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    durations = (found["time_end"] - found["time_start"]).to_numpy()
    span = (end - cut).total_seconds()
    starts = [cut + pd.Timedelta(seconds=float(s)) for s in rng.uniform(0, span, len(found))]
    picks = rng.integers(0, len(channels), len(found))
    return pd.DataFrame({"machine_id": [channels[i][0] for i in picks], "target": [channels[i][1] for i in picks],
                         "time_start": starts, "time_end": [s + d for s, d in zip(starts, durations, strict=True)],
                         "detected_at": starts})


@pytest.fixture(scope="module")
def runs():
    out = {}
    for seed in SEEDS:
        plant = simulate_plant(PlantConfig(seed=seed, n_machines=6, days=28))
        tel = plant.tables["machine_telemetry"]
        states = plant.tables["machine_states"]
        cut = tel["time"].min() + pd.Timedelta(days=TRAIN_DAYS)
        found = telemetry_anomalies(tel, machine_states=states, train_until=cut)
        out[seed] = {"plant": plant, "cut": cut, "found": found,
                     "scores": precursor_scores(found, plant.truth.anomaly_windows, scored_from=cut),
                     "sigma": precursor_scores(sigma_raw(tel, cut=cut), plant.truth.anomaly_windows, scored_from=cut)}
        channels = sorted({(m, k) for m in tel["machine_id"].unique() for k in ("vibration_rms", "hydraulic_pressure",
                                                                               "motor_current", "drive_temp")})
        rand = random_detections(found, channels=channels, cut=cut, end=tel["time"].max(), seed=seed)
        out[seed]["random"] = precursor_scores(rand, plant.truth.anomaly_windows, scored_from=cut)
        s, b, r = out[seed]["scores"], out[seed]["sigma"], out[seed]["random"]
        print(f"\nseed {seed}: {s['events']} precursor events {s['per_kind_n']}, {s['detections']} detections")
        print(f"  telemanom   recall {s['recall']:.2f} {({k: round(v, 2) for k, v in s['per_kind'].items()})} "
              f"precision {s['precision']:.2f} F1 {s['f1']:.2f} median lead {s['lead_h']:.1f} h")
        print(f"  3-sigma raw recall {b['recall']:.2f} {({k: round(v, 2) for k, v in b['per_kind'].items()})} "
              f"precision {b['precision']:.2f} F1 {b['f1']:.2f}")
        print(f"  random      recall {r['recall']:.2f} precision {r['precision']:.2f} F1 {r['f1']:.2f}")
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_recall_per_kind_and_precision_beat_the_floors(runs, seed):
    s = runs[seed]["scores"]
    assert s["events"] >= 20  # enough events for the shares to mean something
    assert set(s["per_kind"]) == {"vibration", "hydraulic", "drive"}
    for kind, recall in s["per_kind"].items():
        assert recall >= 0.8, (kind, recall)
    assert s["recall"] >= 0.9
    assert s["precision"] >= 0.75
    assert s["lead_h"] >= 1.0  # warned at least an hour (median) before the stop


@pytest.mark.parametrize("seed", SEEDS)
def test_baselines_do_not_reach_the_floors_and_lose_on_f1(runs, seed):
    s, sigma, rand = runs[seed]["scores"], runs[seed]["sigma"], runs[seed]["random"]
    # A 3-sigma band on raw readings misses what hides inside the state mix (hydraulic drops).
    assert sigma["recall"] < 0.9 and sigma["per_kind"]["hydraulic"] < 0.5
    assert s["f1"] >= sigma["f1"] + 0.1
    # Random detections of the same number and length are rarely right.
    assert rand["precision"] < 0.5 and s["precision"] >= rand["precision"] + 0.3
    assert s["f1"] >= rand["f1"] + 0.3


@pytest.mark.parametrize("seed", SEEDS)
def test_only_running_readings_are_judged(runs, seed):
    found = runs[seed]["found"]
    states = runs[seed]["plant"].tables["machine_states"]
    for r in found.itertuples():
        st = states[states["machine_id"] == r.machine_id]
        for t in (r.time_start, r.time_end):
            here = st[(st["time_start"] <= t) & (st["time_end"] > t)]
            assert list(here["state"]) == ["running"], (r.machine_id, r.target, t, list(here["state"]))
    assert (found["detected_at"] >= found["time_start"]).all()
    assert (found["time_start"] >= runs[seed]["cut"]).all()


def test_rows_fit_the_ml_anomalies_table(runs):
    found = runs[SEEDS[0]]["found"]
    assert list(found.columns) == [*ML_COLUMNS, "detected_at"]
    conform(table("ml_anomalies"), pa.Table.from_pandas(found[ML_COLUMNS], preserve_index=False))
    assert found["anomaly_id"].is_unique
    r = found.iloc[0]
    assert r["anomaly_id"] == anomaly_id(r["machine_id"], r["target"], r["time_start"])
    assert (found["detector"] == DETECTOR).all() and (found["model_version"] == MODEL_VERSION).all()
    assert set(found["severity"]) <= {"low", "medium", "high"}
    assert set(found["target"]) <= {"vibration_rms", "hydraulic_pressure", "motor_current", "drive_temp"}


def test_without_machine_states_a_level_rule_stands_in(runs):
    seed = SEEDS[0]
    plant, cut = runs[seed]["plant"], runs[seed]["cut"]
    found = telemetry_anomalies(plant.tables["machine_telemetry"], train_until=cut)
    assert any("running taken as motor_current" in n for n in found.attrs["notes"])
    s = precursor_scores(found, plant.truth.anomaly_windows, scored_from=cut)
    print(f"\nseed {seed} without machine_states: recall {s['recall']:.2f} precision {s['precision']:.2f}")
    assert s["recall"] >= 0.9 and s["precision"] >= 0.75


def test_counters_and_bad_frames_are_refused(runs):
    tel = runs[SEEDS[0]]["plant"].tables["machine_telemetry"]
    with pytest.raises(MLError, match="part_count_total are cumulative counters"):
        telemetry_anomalies(tel, metrics=("vibration_rms", "part_count_total"))
    with pytest.raises(MLError, match="missing column"):
        telemetry_anomalies(tel.drop(columns="metric"))
    # Too little history for a channel: it is skipped with a note, not an exception.
    short = telemetry_anomalies(tel, train_until=tel["time"].min() + pd.Timedelta(minutes=20),
                                detector=TelemanomDetector())
    assert short.empty and any("not judged" in n for n in short.attrs["notes"])


def test_live_run_on_data_so_far_gives_the_same_earlier_anomalies(runs):
    """Causality on the plant: running on the data up to T (the current state interval still open)
    finds the same anomalies, with the same ids, as running on the whole month, for every anomaly
    that ended more than a day before T."""
    seed = SEEDS[0]
    plant, cut = runs[seed]["plant"], runs[seed]["cut"]
    machines = ["M01", "M02"]
    tel = plant.tables["machine_telemetry"]
    tel = tel[tel["machine_id"].isin(machines)]
    states = plant.tables["machine_states"]
    states = states[states["machine_id"].isin(machines)]
    now = cut + pd.Timedelta(days=10, hours=3)  # a Thursday morning
    so_far = states[states["time_start"] < now].copy()
    so_far.loc[so_far["time_end"] > now, "time_end"] = pd.NaT
    live = telemetry_anomalies(tel[tel["time"] < now], machine_states=so_far, train_until=cut)
    full = telemetry_anomalies(tel, machine_states=states, train_until=cut)
    settled = now - pd.Timedelta(days=1)
    a = live[live["time_end"] < settled].reset_index(drop=True)
    b = full[full["time_end"] < settled].reset_index(drop=True)
    assert len(a) >= 3  # something to compare
    pd.testing.assert_frame_equal(a, b)
    assert len(full) > len(live)
