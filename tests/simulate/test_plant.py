"""Tests of the simulated plant: determinism, schema, timelines, OEE, counters, traces, configs.

The OEE and counter checks recompute everything from the canonical tables with code written
here, independent of the simulator's own bookkeeping, and compare with its ground truth.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from pandas.testing import assert_frame_equal

from workbench import schema
from workbench.errors import SimulationError
from workbench.simulate import TABLE_NAMES, GroundTruth, PlantConfig, SimulatedPlant, simulate_plant

MODULO = 65536


def us(values: pd.Series) -> np.ndarray:
    """Microseconds since the epoch of a tz-aware timestamp column."""
    return values.astype("int64").to_numpy()


def overlap_us(s: np.ndarray, e: np.ndarray, ws: int, we: int) -> np.ndarray:
    return np.clip(np.minimum(e, we) - np.maximum(s, ws), 0, None)


# ---------------------------------------------------------------------------------------------
# 1. determinism


def test_same_seed_same_plant_and_other_seed_differs(small_plant: SimulatedPlant) -> None:
    again = simulate_plant(small_plant.config)
    assert set(again.tables) == set(small_plant.tables)
    for name, frame in small_plant.tables.items():
        assert_frame_equal(again.tables[name], frame, obj=name)
    for name, frame in small_plant.truth.frames().items():
        assert_frame_equal(again.truth.frames()[name], frame, obj=f"truth.{name}")

    other = simulate_plant(dataclasses.replace(small_plant.config, seed=12, telemetry=False))
    for name in ("production_events", "machine_states", "downtime_events", "work_orders"):
        a, b = other.tables[name], small_plant.tables[name]
        assert a.shape != b.shape or not a.equals(b), name


def test_flags_change_only_what_they_are_about(small_plant: SimulatedPlant) -> None:
    """Telemetry off / counts instead of cycles must not change the rest of the plant."""
    lean = simulate_plant(dataclasses.replace(small_plant.config, telemetry=False, cycle_events=False))
    assert lean.tables["machine_telemetry"].empty
    for name in ("machine_states", "downtime_events", "work_orders", "scrap_events", "quality_measurements"):
        assert_frame_equal(lean.tables[name], small_plant.tables[name], obj=name)
    assert_frame_equal(lean.truth.oee, small_plant.truth.oee)
    counts, cycles = lean.tables["production_events"], small_plant.tables["production_events"]
    assert set(counts["event_type"]) == {"count"} and set(cycles["event_type"]) == {"cycle"}
    assert counts["good_count"].sum() == cycles["good_count"].sum()
    assert counts["reject_count"].sum() == cycles["reject_count"].sum()
    # One count event per machine-minute with cycles.
    minutes = cycles.assign(minute=us(cycles["time"]) // 60_000_000).groupby(["machine_id", "minute"]).ngroups
    assert len(counts) == minutes


# ---------------------------------------------------------------------------------------------
# 2. schema


def test_tables_conform_to_the_schema(small_plant: SimulatedPlant) -> None:
    assert set(small_plant.tables) == set(TABLE_NAMES)
    for name, frame in small_plant.tables.items():
        tbl = schema.table(name)
        assert list(frame.columns) == tbl.column_names, name
        assert len(frame) > 0, name
        schema.conform(tbl, pa.Table.from_pandas(frame, preserve_index=False), where=name)
        for col in tbl.required:
            assert frame[col].notna().all(), f"{name}.{col} has nulls"
        for col in tbl.columns:
            if col.type == "timestamptz":
                assert str(frame[col.name].dtype) == "datetime64[us, UTC]", f"{name}.{col.name}"
        assert (frame["source"] == "simulator").all()
        if tbl.has_event_id:
            assert frame["event_id"].is_unique, name
            # The ids are the schema's definition of the id, not something of our own.
            recomputed = schema.with_event_ids(tbl, pa.Table.from_pandas(frame.drop(columns="event_id"),
                                                                         preserve_index=False))
            assert recomputed.column("event_id").to_pylist() == frame["event_id"].tolist(), name


def test_master_data(default_plant: SimulatedPlant) -> None:
    t = default_plant.tables
    assert list(t["machines"]["machine_id"]) == [f"M{i:02d}" for i in range(1, 13)]
    assert set(t["machines"]["line"]) == {"L1", "L2", "L3"}
    assert 4 <= len(t["parts"]) <= 8 and 2 <= t["parts"]["part_family"].nunique() <= 3
    rates = t["part_rates"].merge(t["machines"][["machine_id", "ideal_cycle_time_s"]], on="machine_id",
                                  suffixes=("", "_machine"))
    assert rates["ideal_cycle_time_s"].between(15, 110).all()
    assert (rates["ideal_cycle_time_s"] != rates["ideal_cycle_time_s_machine"]).all()
    rc = t["reason_codes"]
    assert rc["category"].nunique() == 9
    assert set(rc.loc[rc["planned"].astype(bool), "category"]) == {"Scheduled Maintenance", "No Demand"}
    assert {"MECH-BRG", "ELEC-DRV", "TOOL-WEAR", "MAT-DEF", "OPR-SETUP", "QH-DIM", "CHG-SETUP", "PM-PM",
            "ND-NOORD"} <= set(rc["code"])
    ch = t["characteristics"]
    order = ["engineering_low", "alarm_low_low", "lsl", "alarm_low", "operating_low", "nominal",
             "operating_high", "alarm_high", "usl", "alarm_high_high", "engineering_high"]
    assert (np.diff(ch[order].to_numpy(dtype=float), axis=1) > 0).all()
    # every simulated dimension is cut by a wearing tool: configured with the tool-wear chart
    assert set(ch["chart_type"]) == {"tool_wear"} and set(ch["subgroup_size"]) == {5}


# ---------------------------------------------------------------------------------------------
# 3. calendar and timelines


def test_shift_calendar_is_dst_correct(small_plant: SimulatedPlant) -> None:
    cal = small_plant.tables["shift_calendar"]
    hours = (cal["time_end"] - cal["time_start"]).dt.total_seconds() / 3600
    lengths = dict(zip(zip(cal["shift_date"], cal["shift"], strict=True), hours, strict=True))
    assert lengths[(dt.date(2026, 10, 31), "C")] == 9.0  # 22:00 CDT -> 06:00 CST
    assert lengths[(dt.date(2026, 10, 30), "C")] == 8.0
    assert dt.date(2026, 11, 1) not in set(cal["shift_date"])  # Sunday is not scheduled
    local = cal["time_start"].dt.tz_convert(ZoneInfo("America/Chicago"))
    assert set(local.dt.hour) == {6, 14, 22}
    # Spring forward: 2027-03-14 02:00 CST -> 03:00 CDT, so that night's C shift lasts 7 hours.
    spring = simulate_plant(PlantConfig(seed=1, n_machines=1, n_lines=1, days=2, start=dt.date(2027, 3, 13),
                                        workdays=tuple(range(7)), telemetry=False))
    c = spring.tables["shift_calendar"]
    c_shift = c[(c["shift_date"] == dt.date(2027, 3, 13)) & (c["shift"] == "C")]
    assert (c_shift["time_end"] - c_shift["time_start"]).iloc[0] == pd.Timedelta(hours=7)


def test_machine_states_cover_the_horizon(small_plant: SimulatedPlant) -> None:
    t = small_plant.tables
    states = t["machine_states"]
    cal = t["shift_calendar"]
    cfg = small_plant.config
    tz = ZoneInfo(cfg.timezone)
    h0 = pd.Timestamp(dt.datetime.combine(cfg.start, dt.time(6), tzinfo=tz))
    h1 = pd.Timestamp(dt.datetime.combine(cfg.start + dt.timedelta(days=cfg.days), dt.time(6), tzinfo=tz))
    assert set(states["state"]) == {"running", "idle", "down", "setup", "planned_stop", "no_data"}
    bounds = np.sort(np.r_[us(cal["time_start"]), us(cal["time_end"])])
    for mid, g in states.groupby("machine_id"):
        g = g.sort_values("time_start")
        s, e = us(g["time_start"]), us(g["time_end"])
        assert (e > s).all()
        assert s[0] == h0.value // 1000 and e[-1] == h1.value // 1000, mid
        assert (s[1:] == e[:-1]).all(), f"{mid}: gap or overlap"
        # No interval crosses a shift boundary.
        inner = bounds[(bounds > s[0]) & (bounds < e[-1])]
        k = np.searchsorted(s, inner, side="right") - 1
        assert (s[k] == inner).all(), f"{mid}: an interval crosses a shift boundary"
    # Outside the shifts every machine is in planned_stop.
    in_shift = np.zeros(len(states), bool)
    for ws, we in zip(us(cal["time_start"]), us(cal["time_end"]), strict=True):
        in_shift |= (us(states["time_start"]) >= ws) & (us(states["time_end"]) <= we)
    assert (states.loc[~in_shift, "state"] == "planned_stop").all()
    # Micro-stops are shorter than the threshold; they are not downtime events.
    idle = states[states["state"] == "idle"]
    assert ((idle["time_end"] - idle["time_start"]).dt.total_seconds() < cfg.micro_stop_threshold_s).all()


def test_nothing_is_reported_inside_no_data(small_plant: SimulatedPlant) -> None:
    t = small_plant.tables
    nd = t["machine_states"][t["machine_states"]["state"] == "no_data"]
    assert len(nd) >= 1
    assert ((nd["time_end"] - nd["time_start"]) <= pd.Timedelta(minutes=90)).all()
    for name in ("machine_telemetry", "production_events", "quality_measurements"):
        frame = t[name]
        for mid, g in nd.groupby("machine_id"):
            times = us(frame.loc[frame["machine_id"] == mid, "time"])
            for s, e in zip(us(g["time_start"]), us(g["time_end"]), strict=True):
                assert not ((times >= s) & (times < e)).any(), f"{name} inside no_data of {mid}"


def test_events_lie_in_running_intervals(small_plant: SimulatedPlant) -> None:
    t = small_plant.tables
    states = t["machine_states"]
    for mid, g in t["production_events"].groupby("machine_id"):
        st = states[states["machine_id"] == mid].sort_values("time_start")
        k = np.searchsorted(us(st["time_start"]), us(g["time"]), side="right") - 1
        assert (st["state"].to_numpy()[k] == "running").all(), mid
        assert (g["cycle_time_ms"] > 0).all()
    ev = t["production_events"].merge(t["part_rates"], on=["machine_id", "part_number"])
    assert (ev["cycle_time_ms"] >= ev["ideal_cycle_time_s"] * 1000 - 1e-6).all()


def test_downtime_events_match_the_states(small_plant: SimulatedPlant) -> None:
    t = small_plant.tables
    states, dt_ev = t["machine_states"], t["downtime_events"]
    key = ["machine_id", "time_start", "time_end"]
    merged = dt_ev.merge(states[[*key, "state"]], on=key, how="left")
    assert merged["state"].isin(["down", "setup", "planned_stop"]).all()
    stops = states[states["state"].isin(["down", "setup"])]
    assert len(merged[merged["state"].isin(["down", "setup"])]) == len(stops)
    # Planned-stop events are maintenance or no demand (breaks are only in planned_stops).
    planned = merged[merged["state"] == "planned_stop"]
    assert planned["reason_code"].str[:3].isin(["PM-", "ND-"]).all()
    assert planned["planned"].astype(bool).all()
    np.testing.assert_allclose(dt_ev["duration_min"],
                               (dt_ev["time_end"] - dt_ev["time_start"]).dt.total_seconds() / 60)
    assert set(dt_ev["shift"]) <= {"A", "B", "C"}
    truth = small_plant.truth.stops
    assert list(truth["event_id"]) == list(dt_ev["event_id"])
    down = truth[truth["state"] == "down"]
    thr = pd.Timedelta(seconds=small_plant.config.micro_stop_threshold_s)
    # A whole stop (all pieces of one stop_id) lasts at least the micro-stop threshold.
    per_stop = (down["time_end"] - down["time_start"]).groupby(down["stop_id"]).sum()
    assert (per_stop >= thr).all()
    ps = t["planned_stops"]
    assert set(ps["kind"]) <= {"break", "no_demand", "maintenance"}
    assert ps.loc[ps["kind"] == "break", "reason_code"].isna().all()
    assert ps.loc[ps["kind"] != "break", "reason_code"].notna().all()


# ---------------------------------------------------------------------------------------------
# 4. OEE recomputed from the tables alone


def recompute_oee(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """ISO 22400 OEE per machine and shift date from the canonical tables (independent code).

    Besides the truth's columns it returns the minutes in each state inside the shifts
    (``state_<name>``) so the test can check that they add up.
    """
    cal = tables["shift_calendar"]
    states = tables["machine_states"]
    ps = tables["planned_stops"]
    machines = tables["machines"]
    ev = tables["production_events"].merge(tables["part_rates"], on=["machine_id", "part_number"],
                                           how="left")
    assert ev["ideal_cycle_time_s"].notna().all()
    names = ("running", "idle", "down", "setup", "no_data", "planned_stop")
    rows = []
    for mid, line in zip(machines["machine_id"], machines["line"], strict=True):
        st = states[states["machine_id"] == mid]
        s, e, state = us(st["time_start"]), us(st["time_end"]), st["state"].to_numpy()
        applies = (ps["machine_id"] == mid) | (
            ps["machine_id"].isna() & ((ps["line"] == line) | ps["line"].isna()))
        p0, p1 = us(ps.loc[applies, "time_start"]), us(ps.loc[applies, "time_end"])
        evm = ev[ev["machine_id"] == mid]
        et = us(evm["time"])
        n = (evm["good_count"] + evm["reject_count"]).to_numpy(dtype=float)
        rej = evm["reject_count"].to_numpy(dtype=float)
        ideal_s = evm["ideal_cycle_time_s"].to_numpy(dtype=float) * n
        ideal_good_s = evm["ideal_cycle_time_s"].to_numpy(dtype=float) * (n - rej)
        for day, shifts in cal.groupby("shift_date"):
            acc = dict.fromkeys(["scheduled", "planned", "produced", "rejects", "ideal", "ideal_good",
                                 *(f"state_{x}" for x in names)], 0.0)
            for ws, we in zip(us(shifts["time_start"]), us(shifts["time_end"]), strict=True):
                acc["scheduled"] += (we - ws) / 60e6
                acc["planned"] += overlap_us(p0, p1, ws, we).sum() / 60e6
                ov = overlap_us(s, e, ws, we)
                for x in names:
                    acc[f"state_{x}"] += ov[state == x].sum() / 60e6
                sel = (et >= ws) & (et < we)
                acc["produced"] += n[sel].sum()
                acc["rejects"] += rej[sel].sum()
                acc["ideal"] += ideal_s[sel].sum() / 60.0
                acc["ideal_good"] += ideal_good_s[sel].sum() / 60.0
            rows.append({"machine_id": mid, "shift_date": day, **acc})
    r = pd.DataFrame(rows)
    pbt = r["scheduled"] - r["planned"]
    observed = pbt - r["state_no_data"]
    apt = r["state_running"] + r["state_idle"]
    good = r["produced"] - r["rejects"]
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(observed > 0, apt / observed, np.nan)
        p = np.where(apt > 0, r["ideal"] / apt, np.nan)
        q = np.where(r["ideal"] > 0, r["ideal_good"] / r["ideal"], np.nan)
        qr = np.where(r["produced"] > 0, good / r["produced"], np.nan)
        oee = np.where(observed > 0, r["ideal_good"] / observed, np.nan)
    return pd.DataFrame({
        "machine_id": r["machine_id"], "shift_date": r["shift_date"], "scheduled_min": r["scheduled"],
        "planned_stop_min": r["planned"], "planned_busy_min": pbt, "no_data_min": r["state_no_data"],
        "observed_pbt_min": observed, "run_min": r["state_running"], "micro_stop_min": r["state_idle"],
        "apt_min": apt, "down_min": r["state_down"], "setup_min": r["state_setup"], "produced": r["produced"],
        "good": good, "rejects": r["rejects"], "ideal_min": r["ideal"], "ideal_good_min": r["ideal_good"],
        "availability": a, "performance": p, "quality": q, "quality_ratio": qr, "oee": oee,
        **{c: r[c] for c in r.columns if c.startswith("state_")}})


@pytest.mark.parametrize("which", ["small_plant", "default_plant"])
def test_truth_oee_is_reproduced_from_the_tables(which: str, request: pytest.FixtureRequest) -> None:
    plant: SimulatedPlant = request.getfixturevalue(which)
    mine = recompute_oee(plant.tables)
    truth = plant.truth.oee
    n_days = plant.tables["shift_calendar"]["shift_date"].nunique()
    assert len(truth) == len(mine) == plant.config.n_machines * n_days
    m = truth.merge(mine, on=["machine_id", "shift_date"], suffixes=("", "_recomputed"),
                    validate="one_to_one")
    # The time elements add up: every minute of a shift is in exactly one state, and the
    # planned_stop state inside shifts is exactly the scheduled planned stops.
    in_states = sum(m[f"state_{x}"] for x in ("running", "idle", "down", "setup", "no_data", "planned_stop"))
    np.testing.assert_allclose(in_states, m["scheduled_min_recomputed"], atol=1e-6)
    np.testing.assert_allclose(m["state_planned_stop"], m["planned_stop_min_recomputed"], atol=1e-6)
    np.testing.assert_allclose(m["observed_pbt_min"], m["apt_min"] + m["down_min"] + m["setup_min"],
                               atol=1e-6)
    for col in truth.columns.drop(["machine_id", "shift_date"]):
        np.testing.assert_allclose(m[col].to_numpy(dtype=float),
                                   m[f"{col}_recomputed"].to_numpy(dtype=float), rtol=1e-9, atol=1e-6,
                                   err_msg=col)
    assert m["oee"].between(0.3, 1.0).mean() > 0.95
    if which == "small_plant":  # fall-back Saturday: its C shift lasts 9 h, the day 25 h
        sat = truth[truth["shift_date"] == dt.date(2026, 10, 31)]
        assert (sat["scheduled_min"] == 25 * 60).all()


# ---------------------------------------------------------------------------------------------
# 5. counters


def test_counters_reconstruct_the_production(small_plant: SimulatedPlant) -> None:
    t, truth = small_plant.tables, small_plant.truth
    tel = t["machine_telemetry"]
    ev = t["production_events"]
    assert (tel.loc[tel["metric"].isin(["part_count_total", "reject_count_total"]), "value"] < MODULO).all()
    checked = 0
    for metric, count_col in (("part_count_total", None), ("reject_count_total", "reject_count")):
        events = truth.counter_resets[truth.counter_resets["metric"] == metric]
        for mid, g in tel[tel["metric"] == metric].groupby("machine_id"):
            g = g.sort_values("time")
            tt, v = us(g["time"]), g["value"].to_numpy().astype(np.int64)
            inc = np.diff(v)
            r = events[events["machine_id"] == mid]
            j = np.searchsorted(tt, us(r["time"]), side="left")  # first reading that includes it
            ok = (j > 0) & (j < len(tt))
            add = np.zeros(len(inc), np.int64)
            np.add.at(add, j[ok] - 1, np.where(r["kind"].to_numpy()[ok] == "rollover", MODULO,
                                               r["value_before"].to_numpy()[ok]))
            reconstructed = inc + add
            e = ev[ev["machine_id"] == mid]
            counts = e["reject_count"] if count_col else e["good_count"] + e["reject_count"]
            cum = np.r_[0, np.cumsum(counts.to_numpy(dtype=np.int64))]
            upto = cum[np.searchsorted(us(e["time"]), tt, side="right")]
            expected = np.diff(upto)
            # Production hidden by collector outages reaches the PLC counter, not the events.
            nd = truth.no_data[truth.no_data["machine_id"] == mid]
            k = np.searchsorted(tt, us(nd["time_start"]), side="left") - 1
            hidden = nd["rejects"] if count_col else nd["produced"]
            np.add.at(expected, k, hidden.to_numpy(dtype=np.int64))
            np.testing.assert_array_equal(reconstructed, expected, err_msg=f"{mid} {metric}")
            checked += 1
    assert checked == 2 * small_plant.config.n_machines
    kinds = set(truth.counter_resets["kind"])
    assert kinds <= {"rollover", "reset"}


def test_default_plant_has_rollovers_and_resets(default_plant: SimulatedPlant) -> None:
    kinds = default_plant.truth.counter_resets["kind"].value_counts()
    assert kinds.get("rollover", 0) >= 1 and kinds.get("reset", 0) >= 1
    q = default_plant.tables["machine_telemetry"]["quality"].value_counts()
    assert set(q.index) == {"good", "uncertain"} and q["uncertain"] < 0.01 * q.sum()


# ---------------------------------------------------------------------------------------------
# 6. traces of the hidden causes


def _with_state(tel: pd.DataFrame, states: pd.DataFrame) -> pd.DataFrame:
    out = []
    for mid, g in tel.groupby("machine_id"):
        st = states[states["machine_id"] == mid].sort_values("time_start")
        k = np.searchsorted(us(st["time_start"]), us(g["time"]), side="right") - 1
        out.append(g.assign(state=st["state"].to_numpy()[k]))
    return pd.concat(out)


def _precursor_effect(plant: SimulatedPlant, code: str, metric: str) -> list[tuple[float, float]]:
    """(mean while running inside each precursor window, the machine's running baseline)."""
    t, truth = plant.tables, plant.truth
    tel = _with_state(t["machine_telemetry"][t["machine_telemetry"]["metric"] == metric], t["machine_states"])
    tel = tel[tel["state"] == "running"]
    stops = truth.stops[(truth.stops["true_code"] == code) & truth.stops["precursor_start"].notna()]
    stops = stops.drop_duplicates("stop_id")
    windows = truth.anomaly_windows[truth.anomaly_windows["metric"] == metric]
    out = []
    for mid, g in stops.groupby("machine_id"):
        x = tel[tel["machine_id"] == mid]
        tt = us(x["time"])
        in_any = np.zeros(len(x), bool)
        for s, e in zip(us(windows.loc[windows["machine_id"] == mid, "time_start"]),
                        us(windows.loc[windows["machine_id"] == mid, "time_end"]), strict=True):
            in_any |= (tt >= s) & (tt < e)
        baseline = float(x.loc[~in_any, "value"].mean())
        for s, e in zip(us(g["precursor_start"]), us(g["precursor_end"]), strict=True):
            sel = (tt >= s) & (tt < e)
            if sel.sum() >= 5:
                out.append((float(x.loc[sel, "value"].mean()), baseline))
    return out


def test_bearing_wear_shows_in_vibration(default_plant: SimulatedPlant) -> None:
    effects = _precursor_effect(default_plant, "MECH-BRG", "vibration_rms")
    assert len(effects) >= 5
    above = [w - b for w, b in effects]
    assert np.mean(above) > 0.8  # mm/s
    assert np.mean([d > 0.3 for d in above]) >= 0.8


def test_hydraulic_and_drive_precursors(default_plant: SimulatedPlant) -> None:
    hyd = _precursor_effect(default_plant, "MECH-HYD", "hydraulic_pressure")
    assert len(hyd) >= 3 and np.mean([w / b for w, b in hyd]) < 0.96
    temp = _precursor_effect(default_plant, "ELEC-DRV", "drive_temp")
    assert len(temp) >= 3 and np.mean([w - b for w, b in temp]) > 2.0  # degC


def test_bad_material_raises_scrap_on_its_part(default_plant: SimulatedPlant) -> None:
    ev = default_plant.tables["production_events"]
    lots = default_plant.truth.material_lots
    assert len(lots) >= 1
    inside = np.zeros(len(ev), bool)
    for part, s, e in zip(lots["part_number"], us(lots["time_start"]), us(lots["time_end"]), strict=True):
        inside |= (ev["part_number"] == part).to_numpy() & (us(ev["time"]) >= s) & (us(ev["time"]) < e)
    parts = ev["part_number"].isin(lots["part_number"]).to_numpy()
    mat = (ev["reject_reason"] == "MAT-DEF").to_numpy()
    rate_in = mat[inside].mean()
    rate_out = mat[parts & ~inside].mean()
    assert inside.sum() > 200
    assert rate_in > 0.03 and rate_in > 5 * rate_out


def test_tool_wear_raises_dimension_scrap_near_end_of_life(default_plant: SimulatedPlant) -> None:
    ev = default_plant.tables["production_events"]
    w = default_plant.truth.anomaly_windows
    w = w[w["kind"] == "tool_wear"]
    inside = np.zeros(len(ev), bool)
    for mid, g in w.groupby("machine_id"):
        sel = (ev["machine_id"] == mid).to_numpy()
        tt = us(ev.loc[sel, "time"])
        hit = np.zeros(len(tt), bool)
        for s, e in zip(us(g["time_start"]), us(g["time_end"]), strict=True):
            hit |= (tt >= s) & (tt < e)
        inside[np.flatnonzero(sel)[hit]] = True
    dim = (ev["reject_reason"] == "QH-DIM").to_numpy()
    assert dim[inside].mean() > 2 * dim[~inside].mean()


def test_process_shifts_move_the_subgroup_means(default_plant: SimulatedPlant) -> None:
    q = default_plant.tables["quality_measurements"]
    sub = default_plant.truth.subgroups
    xbar = q.groupby("subgroup_id")["value"].mean().rename("xbar")
    s = sub.merge(xbar, left_on="subgroup_id", right_index=True, validate="one_to_one")
    # Remove what the truth says is not the shift (bias, tool drift); what is left is shift + noise.
    s["resid"] = (s["xbar"] - s["nominal"] - s["bias"] - s["drift"]) / s["sigma"]
    steps = default_plant.truth.process_shifts
    steps = steps[steps["kind"] == "step"]
    assert len(steps) >= 5
    in_any = np.zeros(len(s), bool)
    errors = []
    for row in steps.itertuples():
        sel = ((s["machine_id"] == row.machine_id) & (s["part_number"] == row.part_number)
               & (s["time_start"] >= row.time_start) & (s["time_start"] < row.time_end)).to_numpy()
        in_any |= sel
        if sel.sum() >= 3:
            errors.append(s.loc[sel, "resid"].mean() - row.shift_sigma)
    assert len(errors) >= 4
    assert abs(np.mean(errors)) < 0.3 and np.max(np.abs(errors)) < 1.2
    assert abs(s.loc[~in_any, "resid"].mean()) < 0.1
    # Subgroups: five consecutive parts with distinct times, one per running hour at most.
    g = q.groupby("subgroup_id")
    assert (g.size() == 5).all() and (g["sample_no"].apply(sorted).map(tuple) == (1, 2, 3, 4, 5)).all()
    assert (g["time"].nunique() == 5).all()
    hours = q.assign(h=q["time"].dt.floor("h")).groupby(["machine_id", "h"])["subgroup_id"].nunique()
    assert (hours <= 1).all()


def test_operators_leave_about_15_percent_blank(default_plant: SimulatedPlant) -> None:
    truth = default_plant.truth.stops
    entered = truth[truth["state"] != "planned_stop"]
    assert 0.11 <= entered["blank"].mean() <= 0.19
    assert 0.03 <= entered["mislabelled"].mean() <= 0.09
    dt_ev = default_plant.tables["downtime_events"].set_index("event_id").loc[entered["event_id"]]
    assert dt_ev["reason_code"].isna().to_numpy().tolist() == entered["blank"].tolist()
    wrong = entered[entered["mislabelled"]]
    assert (dt_ev.loc[wrong["event_id"], "reason_code"].to_numpy() != wrong["true_code"].to_numpy()).all()
    # The PLC fault code correlates with the true cause.
    brg = default_plant.tables["downtime_events"].set_index("event_id").loc[
        truth.loc[truth["true_code"] == "MECH-BRG", "event_id"], "fault_code"]
    assert (brg == "F2110").mean() > 0.5


# ---------------------------------------------------------------------------------------------
# 7. scrap and work orders


def test_scrap_and_work_orders_match_the_events(small_plant: SimulatedPlant) -> None:
    t, truth = small_plant.tables, small_plant.truth
    ev, scrap, wo = t["production_events"], t["scrap_events"], t["work_orders"]
    assert scrap["quantity"].sum() == ev["reject_count"].sum()
    per_wo = scrap.groupby(["work_order", "scrap_reason"])["quantity"].sum()
    rej = ev[ev["reject_count"] > 0].groupby(["work_order", "reject_reason"])["reject_count"].sum()
    assert per_wo.sort_index().to_dict() == rej.sort_index().to_dict()
    assert (scrap["quantity"] > 0).all()
    cost = scrap.merge(wo[["work_order", "material_cost_per_unit"]], on="work_order")
    np.testing.assert_allclose(cost["material_cost"], cost["quantity"] * cost["material_cost_per_unit"],
                               atol=0.006)
    hidden = truth.no_data.dropna(subset=["work_order"]).groupby("work_order")[["good", "rejects"]].sum()
    seen = ev.groupby("work_order")[["good_count", "reject_count"]].sum()
    both = wo.set_index("work_order").join(seen).join(hidden)
    both[["good_count", "reject_count", "good", "rejects"]] = both[
        ["good_count", "reject_count", "good", "rejects"]].fillna(0)
    np.testing.assert_array_equal(both["completed_qty"], both["good_count"] + both["good"])
    np.testing.assert_array_equal(both["scrap_qty"], both["reject_count"] + both["rejects"])
    assert set(wo["status"]) == {"closed", "in_progress", "released"}
    closed = wo[wo["status"] == "closed"]
    assert closed["closed_at"].notna().all() and (closed["released_at"] < closed["closed_at"]).all()
    assert wo.loc[wo["status"] != "closed", "closed_at"].isna().all()
    assert ((closed["completed_qty"] / closed["order_qty"]).between(0.8, 1.2)).mean() > 0.9


def test_inspections_follow_the_sampling_plan(small_plant: SimulatedPlant) -> None:
    sampling = pytest.importorskip("workbench.sampling")
    ins, wo = small_plant.tables["inspections"], small_plant.tables["work_orders"]
    closed = wo[(wo["status"] == "closed") & (wo["completed_qty"] >= 2)]
    assert sorted(ins["work_order"]) == sorted(closed["work_order"])
    m = ins.merge(wo[["work_order", "completed_qty"]], on="work_order")
    assert (m["lot_size"] == m["completed_qty"]).all()
    for row in m.itertuples():
        plan = sampling.single_sampling_plan(int(row.lot_size), aql=1.0, level="II", inspection="normal")
        assert row.sample_size == plan.sample_size
        assert row.decision == ("accept" if row.defects <= plan.accept else "reject")
    assert set(ins["level"]) == {"II"} and set(ins["inspection_type"]) == {"normal"}
    assert set(ins["aql"]) == {1.0}


# ---------------------------------------------------------------------------------------------
# ground truth on disk


def test_truth_round_trips_through_a_directory(small_plant: SimulatedPlant, tmp_path) -> None:
    path = small_plant.truth.save(tmp_path / "truth")
    assert (path / "manifest.json").exists()
    loaded = GroundTruth.load(path)
    assert loaded.config == small_plant.config
    for name, frame in small_plant.truth.frames().items():
        assert_frame_equal(loaded.frames()[name], frame, obj=name)
    import json

    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["counts"]["oee"] == len(small_plant.truth.oee)
    assert "availability" in manifest["definitions"]["oee"]
    with pytest.raises(SimulationError, match="manifest"):
        GroundTruth.load(tmp_path / "nowhere")


# ---------------------------------------------------------------------------------------------
# 8. configuration errors


@pytest.mark.parametrize(("changes", "message"), [
    ({"n_machines": 0}, "n_machines"),
    ({"days": 0}, "days"),
    ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
    ({"n_machines": 4, "n_lines": 5}, "n_lines"),
    ({"telemetry_interval_s": 0}, "telemetry_interval_s"),
    ({"start": dt.datetime(2026, 10, 19, tzinfo=dt.UTC)}, "start"),
    ({"micro_stop_threshold_s": 1.0}, "micro_stop_threshold_s"),
    ({"workdays": (0, 7)}, "workdays"),
    ({"seed": -1}, "seed"),
])
def test_bad_config_is_refused(changes: dict, message: str) -> None:
    with pytest.raises(SimulationError, match=message):
        PlantConfig(**changes)


def test_config_is_frozen_keyword_only_and_serialisable() -> None:
    cfg = PlantConfig(seed=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 4  # type: ignore[misc]
    with pytest.raises(TypeError):
        PlantConfig(3)  # type: ignore[misc]
    assert PlantConfig.from_dict(cfg.to_dict()) == cfg
    assert PlantConfig(n_machines=1000, n_lines=10).machine_ids[:2] == ["M0001", "M0002"]
