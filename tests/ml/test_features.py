"""Stop and hourly features: exact values on a hand-built plant, leakage, empty inputs.

The tiny plant (times in minutes after T0 = 2026-01-05 06:00 UTC):

* M1 vibration_rms readings 1..6 at minutes 0, 10, …, 50 (slope 1 per 10 min = 6 per hour), an
  'uncertain' reading of 100 at 55 (excluded), 99 at -5 (outside the 60-min window) and 50 at 60
  (the first stop's start: not before it).
* M1 stops: S1 60-80 Tooling (F7101), S2 200-210 Mechanical Failure, S3 300-320 blank.
  M2 stops: S4 30-40 Changeover (setup), S5 100-130 Tooling.
* M1 states: running -60..60, down 60-80, running 80-150, idle 150-160, running 160-200,
  down 200-210, running 210-300, down 300-320.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.errors import MLError
from workbench.ml.features import (
    CATEGORIES,
    FEATURE_DOCS,
    HOURLY_FEATURE_DOCS,
    TELEMETRY_METRICS,
    hourly_features,
    slug,
    stop_features,
)
from workbench.simulate import PlantConfig, simulate_plant

T0 = pd.Timestamp("2026-01-05 06:00", tz="UTC")


def at(minutes: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(minutes=minutes)


def _stops() -> pd.DataFrame:
    rows = [("S1", "M1", 60, 80, "Tooling", "F7101", "A"), ("S2", "M1", 200, 210, "Mechanical Failure", None, "A"),
            ("S3", "M1", 300, 320, None, "F0900", "A"), ("S4", "M2", 30, 40, "Changeover", None, "A"),
            ("S5", "M2", 100, 130, "Tooling", "F7103", "A")]
    return pd.DataFrame({
        "event_id": [r[0] for r in rows], "machine_id": [r[1] for r in rows],
        "time_start": [at(r[2]) for r in rows], "time_end": [at(r[3]) for r in rows],
        "duration_min": [float(r[3] - r[2]) for r in rows], "reason_category": [r[4] for r in rows],
        "fault_code": [r[5] for r in rows], "shift": [r[6] for r in rows]})


def _telemetry() -> pd.DataFrame:
    rows = [(at(10 * i), "M1", "vibration_rms", float(i + 1), "good") for i in range(6)]
    rows += [(at(55), "M1", "vibration_rms", 100.0, "uncertain"), (at(-5), "M1", "vibration_rms", 99.0, "good"),
             (at(60), "M1", "vibration_rms", 50.0, "good"), (at(30), "M1", "part_count_total", 7.0, "good")]
    # M2 pressure falls 2 bar per 10 minutes before S5 (window 40..100): 80, 78, …, 70 at 40..90.
    rows += [(at(40 + 10 * i), "M2", "hydraulic_pressure", 80.0 - 2 * i, "good") for i in range(6)]
    return pd.DataFrame(rows, columns=["time", "machine_id", "metric", "value", "quality"])


def _states() -> pd.DataFrame:
    rows = [(-60, 60, "running"), (60, 80, "down"), (80, 150, "running"), (150, 160, "idle"),
            (160, 200, "running"), (200, 210, "down"), (210, 300, "running"), (300, 320, "down")]
    m1 = pd.DataFrame({"machine_id": "M1", "time_start": [at(a) for a, _, _ in rows],
                       "time_end": [at(b) for _, b, _ in rows], "state": [s for _, _, s in rows]})
    m2 = pd.DataFrame({"machine_id": "M2", "time_start": [at(0), at(30), at(40), at(100)],
                       "time_end": [at(30), at(40), at(100), at(130)],
                       "state": ["running", "setup", "running", "down"]})
    return pd.concat([m1, m2], ignore_index=True)


def _scrap() -> pd.DataFrame:
    return pd.DataFrame({"time": [at(30), at(59), at(60), at(50), at(250)], "machine_id": ["M1", "M1", "M1", "M2", "M1"],
                         "part_number": ["P1", "P1", "P1", "P9", "P2"], "quantity": [2, 1, 5, 7, 4],
                         "scrap_category": ["Material", "Quality Hold", "Material", "Material", "Quality Hold"]})


def _production() -> pd.DataFrame:
    return pd.DataFrame({"time": [at(10), at(20), at(190), at(240), at(245), at(50)],
                         "machine_id": ["M1", "M1", "M1", "M1", "M1", "M2"],
                         "part_number": ["P1", "P1", "P2", "P2", "P2", "P9"],
                         "work_order": ["W1", "W1", "W2", "W2", "W3", "W9"],
                         "operator_id": ["OP1", "OP1", "OP2", "OP2", "OP3", "OP9"],
                         "good_count": [1, 1, 1, 1, 0, 1], "reject_count": [0, 0, 0, 0, 1, 0]})


@pytest.fixture(scope="module")
def tiny() -> pd.DataFrame:
    return stop_features(_stops(), telemetry=_telemetry(), machine_states=_states(), scrap_events=_scrap(),
                         production_events=_production())


def test_rows_columns_and_docs(tiny: pd.DataFrame) -> None:
    assert list(tiny.index) == ["S1", "S2", "S3", "S4", "S5"] and tiny.index.name == "event_id"
    assert list(tiny.columns) == list(FEATURE_DOCS)
    assert all(FEATURE_DOCS[c] for c in tiny.columns)
    assert {f"min_since_{slug(c)}" for c in CATEGORIES} <= set(tiny.columns)
    assert not any(c.startswith(("part_count_total", "reject_count_total", "notes")) for c in tiny.columns)


def test_window_statistics_exact(tiny: pd.DataFrame) -> None:
    s1 = tiny.loc["S1"]
    assert s1["vibration_rms_last"] == 6.0  # not 100 (uncertain) nor 50 (at the start)
    assert s1["vibration_rms_mean"] == pytest.approx(3.5)
    assert s1["vibration_rms_slope"] == pytest.approx(6.0)  # per hour
    assert s1["vibration_rms_std"] == pytest.approx(np.std(np.arange(1, 7), ddof=1))
    assert np.isnan(s1["hydraulic_pressure_mean"])  # M1 has no pressure readings
    s5 = tiny.loc["S5"]
    assert s5["hydraulic_pressure_last"] == 70.0
    assert s5["hydraulic_pressure_slope"] == pytest.approx(-12.0)
    assert s5["hydraulic_pressure_mean"] == pytest.approx(75.0)
    assert np.isnan(s5["vibration_rms_mean"])  # M1's vibration does not leak into M2
    # S2's window (140..200) holds no reading: NaN, not 0.
    assert tiny.loc["S2", ["vibration_rms_last", "vibration_rms_mean", "vibration_rms_slope"]].isna().all()


def test_categorical_and_context_features(tiny: pd.DataFrame) -> None:
    assert tiny.loc["S1", "state"] == "down" and tiny.loc["S4", "state"] == "setup"
    assert tiny.loc["S1", "fault_code"] == "F7101" and tiny.loc["S2", "fault_code"] == "none"
    assert tiny.loc["S1", "part_number"] == "P1" and tiny.loc["S2", "part_number"] == "P2"
    assert tiny.loc["S4", "part_number"] == "unknown"  # M2's first cycle comes after S4 starts
    assert tiny.loc["S1", "hour_of_day"] == 7.0 and tiny.loc["S1", "duration_min"] == 20.0
    # Scrap in [0, 60) on M1: 2 Material + 1 Quality Hold; the 5 at minute 60 and M2's 7 are not counted.
    assert tiny.loc["S1", ["scrap_qty_window", "scrap_material_qty_window",
                           "scrap_quality_hold_qty_window"]].tolist() == [3.0, 2.0, 1.0]


def test_time_since_categories_and_tool_minutes(tiny: pd.DataFrame) -> None:
    assert tiny.loc["S2", "min_since_tooling"] == pytest.approx(120.0)  # S1 ended at 80
    assert tiny.loc["S2", "min_since_prev_stop"] == pytest.approx(120.0)
    assert tiny.loc["S3", "min_since_tooling"] == pytest.approx(220.0)
    assert tiny.loc["S3", "min_since_mechanical_failure"] == pytest.approx(90.0)
    assert np.isnan(tiny.loc["S3", "min_since_changeover"])  # M2's changeover is another machine's
    assert tiny.loc["S5", "min_since_changeover"] == pytest.approx(60.0)
    # Running minutes since S1 ended (80): 80-150 and 160-200 (idle 150-160 is not running).
    assert tiny.loc["S2", "tool_run_min"] == pytest.approx(110.0)
    assert tiny.loc["S3", "tool_run_min"] == pytest.approx(200.0)
    assert tiny.loc["S1", "run_min_window"] == pytest.approx(60.0)
    assert tiny.loc["S2", "run_min_window"] == pytest.approx(50.0)  # 140-150 and 160-200


def test_first_stop_has_no_history_nan_not_zero(tiny: pd.DataFrame) -> None:
    since = [f"min_since_{slug(c)}" for c in CATEGORIES] + ["min_since_prev_stop", "tool_run_min"]
    assert tiny.loc["S1", since].isna().all()
    assert tiny.loc["S4", since].isna().all()


def test_own_code_is_never_a_feature() -> None:
    """Relabelling a stop changes nothing in its own row (only in later stops' rows)."""
    stops = _stops()
    base = stop_features(stops, machine_states=_states())
    stops.loc[stops["event_id"] == "S2", "reason_category"] = "Operator"
    changed = stop_features(stops, machine_states=_states())
    pd.testing.assert_series_equal(base.loc["S2"], changed.loc["S2"])
    assert np.isnan(base.loc["S3", "min_since_operator"]) and changed.loc["S3", "min_since_operator"] == 90.0


def test_appending_later_data_changes_no_earlier_features() -> None:
    stops, tel, scrap, prod = _stops(), _telemetry(), _scrap(), _production()
    before = stop_features(stops, telemetry=tel, machine_states=_states(), scrap_events=scrap, production_events=prod)
    later_stop = pd.DataFrame({"event_id": ["S6"], "machine_id": ["M1"], "time_start": [at(61)], "time_end": [at(62)],
                               "duration_min": [1.0], "reason_category": ["Operator"], "fault_code": ["F0001"],
                               "shift": ["A"]})
    tel2 = pd.concat([tel, pd.DataFrame({"time": [at(61), at(60)], "machine_id": ["M1", "M1"],
                                         "metric": ["vibration_rms", "vibration_rms"], "value": [1e6, -1e6],
                                         "quality": ["good", "good"]})], ignore_index=True)
    scrap2 = pd.concat([scrap, pd.DataFrame({"time": [at(60)], "machine_id": ["M1"], "part_number": ["P7"],
                                             "quantity": [100], "scrap_category": ["Material"]})], ignore_index=True)
    prod2 = pd.concat([prod, pd.DataFrame({"time": [at(60)], "machine_id": ["M1"], "part_number": ["P7"],
                                           "work_order": ["W7"], "operator_id": ["OP7"], "good_count": [1],
                                           "reject_count": [0]})], ignore_index=True)
    after = stop_features(pd.concat([stops, later_stop], ignore_index=True), telemetry=tel2,
                          machine_states=_states(), scrap_events=scrap2, production_events=prod2)
    pd.testing.assert_series_equal(before.loc["S1"], after.loc["S1"])
    assert after.loc["S6", "min_since_tooling"] != after.loc["S6", "min_since_tooling"]  # S1 still open at 61
    assert after.loc["S2", "min_since_operator"] == pytest.approx(138.0)  # S6 (61-62) is earlier than S2


def test_truncating_a_simulated_plant_at_a_cutoff_changes_no_earlier_stop() -> None:
    """Every table cut at a cutoff: the stops that began before it get identical features."""
    plant = simulate_plant(PlantConfig(seed=5, n_machines=3, days=8, telemetry=True))
    t = plant.tables
    cut = t["downtime_events"]["time_start"].quantile(0.6)
    full = stop_features(t["downtime_events"], telemetry=t["machine_telemetry"], machine_states=t["machine_states"],
                         scrap_events=t["scrap_events"], production_events=t["production_events"])
    de = t["downtime_events"]
    cut_de = de[de["time_start"] < cut]
    cut_ms = t["machine_states"][t["machine_states"]["time_start"] < cut]
    part = stop_features(cut_de, telemetry=t["machine_telemetry"].query("time < @cut"), machine_states=cut_ms,
                         scrap_events=t["scrap_events"].query("time < @cut"),
                         production_events=t["production_events"].query("time < @cut"))
    assert len(part) > 20
    pd.testing.assert_frame_equal(full.loc[part.index], part)
    assert full.loc[part.index, "vibration_rms_slope"].notna().mean() > 0.9


def test_empty_or_missing_tables() -> None:
    empty_tel = pd.DataFrame({"time": pd.Series([], dtype="datetime64[us, UTC]"), "machine_id": [], "metric": [],
                              "value": pd.Series([], dtype=float), "quality": []})
    f = stop_features(_stops(), telemetry=empty_tel)
    assert len(f) == 5
    tel_cols = [f"{m}_{s}" for m in TELEMETRY_METRICS for s in ("last", "mean", "slope", "std")]
    assert f[tel_cols].isna().all().all()
    assert (f["state"] == "unknown").all() and f["tool_run_min"].isna().all()
    assert f.loc["S2", "min_since_tooling"] == pytest.approx(120.0)  # needs downtime_events only
    none = stop_features(_stops().iloc[:0])
    assert none.empty and list(none.columns) == list(f.columns)
    g = stop_features(_stops(), include_duration=False)
    assert "duration_min" not in g.columns


def test_bad_inputs_say_what_and_where() -> None:
    with pytest.raises(MLError, match="downtime_events lacks column.*time_start"):
        stop_features(_stops().drop(columns="time_start"))
    with pytest.raises(MLError, match="machine_telemetry lacks column.*metric"):
        stop_features(_stops(), telemetry=_telemetry().drop(columns="metric"))
    dup = pd.concat([_stops(), _stops().iloc[:1]], ignore_index=True)
    with pytest.raises(MLError, match="event_id repeats.*S1"):
        stop_features(dup)
    with pytest.raises(MLError, match="window_min"):
        stop_features(_stops(), window_min=0)


def test_hourly_features_exact() -> None:
    stops = _stops()
    h = hourly_features(_production(), scrap_events=_scrap(), downtime_events=stops, machine_states=_states())
    assert list(h.columns) == [c for c in HOURLY_FEATURE_DOCS if c in h.columns]
    assert len(h) == 4  # M1/P1 06h, M1/P2 09h, M1/P2 10h, M2/P9 06h
    m1p1 = h[(h["machine_id"] == "M1") & (h["part_number"] == "P1")].iloc[0]
    assert m1p1["hour"] == T0 and m1p1["produced"] == 2 and m1p1["rejects"] == 0
    # Scrap of M1/P1 in hour 06: 2 + 1 (the 5 at 07:00 falls in the next hour, without production).
    assert m1p1["scrap_qty"] == 3 and m1p1["scrap_material_qty"] == 2 and m1p1["scrap_quality_hold_qty"] == 1
    assert np.isnan(m1p1["min_since_tooling_stop"])
    m1p2 = h[(h["machine_id"] == "M1") & (h["part_number"] == "P2") & (h["hour"] == at(240))].iloc[0]
    assert m1p2["produced"] == 2 and m1p2["rejects"] == 1 and m1p2["scrap_rate"] == pytest.approx(0.5)
    assert m1p2["scrap_qty"] == 4 and m1p2["n_work_orders"] == 2 and m1p2["n_operators"] == 2
    assert m1p2["work_order"] in ("W2", "W3")
    assert m1p2["min_since_tooling_stop"] == pytest.approx(160.0)  # S1 ended at 80, hour starts at 240
    assert m1p2["tool_run_min"] == pytest.approx(70 + 40 + 30)  # running 80-150, 160-200, 210-240
    m2 = h[h["machine_id"] == "M2"].iloc[0]
    assert np.isnan(m2["min_since_changeover"])  # the setup 30-40 ends after the hour's start (06:00)


def test_hourly_spc_context() -> None:
    qm = pd.DataFrame({"time": [at(5), at(15), at(250)], "machine_id": ["M1", "M1", "M1"],
                       "part_number": ["P1", "P1", "P2"], "characteristic": ["od", "od", "od2"],
                       "value": [10.02, 10.04, 5.0]})
    ch = pd.DataFrame({"part_number": ["P1"], "characteristic": ["od"], "lsl": [9.9], "usl": [10.1],
                       "nominal": [10.0]})
    h = hourly_features(_production(), quality_measurements=qm, characteristics=ch)
    m1p1 = h[(h["machine_id"] == "M1") & (h["part_number"] == "P1")].iloc[0]
    assert m1p1["spc_n"] == 2 and m1p1["spc_abs_dev_tol"] == pytest.approx(0.3)  # |10.03 - 10| / 0.1
    m1p2 = h[(h["machine_id"] == "M1") & (h["hour"] == at(240))].iloc[0]
    assert m1p2["spc_n"] == 1 and np.isnan(m1p2["spc_abs_dev_tol"])  # no spec for od2
