"""OEE edge cases from issue 11, each on a small hand-built plant with its hand calculation.

1. a stop is judged the same whichever way the plan around it is recorded;
2. output counted without production time is flagged, never a perfect hour;
3. ``start`` may be any timezone-aware instant, also in the repeated hour of a fall-back night;
5. a stop cut into pieces by the source is one stop, for OEE and the micro-stop statistics alike.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from workbench import losses, oee, schema
from workbench.errors import OEEError

TZ = "America/Chicago"
DAY = pd.Timestamp("2026-11-03 06:00", tz=TZ)  # a Tuesday; no DST change near it


def at(minutes: float, base: pd.Timestamp = DAY) -> pd.Timestamp:
    return (base + pd.Timedelta(minutes=minutes)).tz_convert("UTC")


def plant(
    states: list[tuple[pd.Timestamp, pd.Timestamp, str]],
    *,
    shifts: list[tuple[pd.Timestamp, pd.Timestamp]],
    counts: list[tuple[pd.Timestamp, int]] = (),
    windows: list[tuple[pd.Timestamp, pd.Timestamp]] = (),
    downtime: pd.DataFrame | None = None,
    reason_codes: pd.DataFrame | None = None,
    ideal_s: float = 1.0,
) -> oee.PlantFrames:
    """One machine M1 on line L1, site S; counts are good parts of P-1."""
    machine_states = pd.DataFrame(
        [{"machine_id": "M1", "time_start": a, "time_end": b, "state": s} for a, b, s in states]
    )
    events = pd.DataFrame(
        [
            {"time": t, "machine_id": "M1", "event_type": "count", "part_number": "P-1", "good_count": n,
             "reject_count": 0}
            for t, n in counts
        ],
        columns=["time", "machine_id", "event_type", "part_number", "good_count", "reject_count"],
    )
    calendar = pd.DataFrame(
        {
            "site": "S",
            "shift_date": [a.tz_convert(TZ).date() for a, _ in shifts],
            "shift": [f"S{i}" for i in range(len(shifts))],
            "time_start": [a for a, _ in shifts],
            "time_end": [b for _, b in shifts],
        }
    )
    planned = pd.DataFrame(
        [{"site": "S", "line": None, "machine_id": None, "time_start": a, "time_end": b, "kind": "break"}
         for a, b in windows]
    )
    machines = pd.DataFrame({"machine_id": ["M1"], "line": ["L1"], "site": ["S"], "ideal_cycle_time_s": [ideal_s]})
    return oee.PlantFrames(
        machine_states,
        events,
        calendar,
        machines,
        planned_stops=planned,
        downtime_events=downtime if downtime is not None else pd.DataFrame(),
        reason_codes=reason_codes if reason_codes is not None else pd.DataFrame(),
    )


def micro_stats(f: oee.PlantFrames, *, threshold_s: float) -> pd.Series:
    """losses.micro_stop_stats given the same plan as OEE."""
    return losses.micro_stop_stats(
        f.machine_states, threshold_s=threshold_s, shift_calendar=f.shift_calendar,
        planned_stops=f.planned_stops, downtime_events=f.downtime_events, reason_codes=f.reason_codes,
        machines=f.machines,
    ).iloc[0]


# ---------------------------------------------------------------------------------------------
# 1. the same stop, whichever way the plan is recorded

SHIFT = [(at(0), at(480))]  # 06:00–14:00
BREAK_CODES = pd.DataFrame({"code": ["ND-GAP"], "category": ["No Demand"], "planned": [True]})


def _break_as_state() -> oee.PlantFrames:
    # the PLC reports the break itself as a planned stop
    return plant([(at(0), at(100), "running"), (at(100), at(100.5), "idle"),
                  (at(100.5), at(115.5), "planned_stop"), (at(115.5), at(116), "idle"),
                  (at(116), at(480), "running")], shifts=SHIFT)


def _break_in_the_calendar() -> oee.PlantFrames:
    # the usual plant data: the machine is idle throughout, the break is a calendar window
    return plant([(at(0), at(100), "running"), (at(100), at(116), "idle"), (at(116), at(480), "running")],
                 shifts=SHIFT, windows=[(at(100.5), at(115.5))])


def _break_as_a_planned_reason() -> oee.PlantFrames:
    # the operator codes the 15 idle minutes with a planned reason (No Demand)
    downtime = pd.DataFrame({"machine_id": ["M1"], "time_start": [at(100.5)], "time_end": [at(115.5)],
                             "reason_code": ["ND-GAP"]})
    return plant([(at(0), at(100), "running"), (at(100), at(100.5), "idle"), (at(100.5), at(115.5), "idle"),
                  (at(115.5), at(116), "idle"), (at(116), at(480), "running")],
                 shifts=SHIFT, downtime=downtime, reason_codes=BREAK_CODES)


RECORDINGS = {"planned_stop state": _break_as_state, "calendar window": _break_in_the_calendar,
              "planned reason code": _break_as_a_planned_reason}
KPI_COLUMNS = ["run_min", "micro_stop_min", "apt_min", "down_min", "setup_min", "pdt_min", "no_data_min",
               "pbt_min", "pot_min", "availability"]


@pytest.mark.parametrize(
    ("threshold_s", "micro_min", "down_min"),
    [
        # 30 s + 30 s = 60 s of unplanned stop < 120 s: one 1-minute micro-stop, inside APT.
        (120, 1.0, 0.0),
        # 60 s ≥ 30 s: the same stop is 1 minute of down time (availability loss).
        (30, 0.0, 1.0),
    ],
)
def test_a_stop_around_a_break_is_judged_the_same_however_the_break_is_recorded(
    threshold_s: float, micro_min: float, down_min: float
) -> None:
    by_machine, by_hour = {}, {}
    for name, make in RECORDINGS.items():
        f = make()
        r = oee.compute(f, by=("machine_id",), tz=TZ, micro_stop_threshold_s=threshold_s).table.iloc[0]
        # POT 480; PDT 15 (the break); PBT 465; run 100 + 364 = 464; the stop 0.5 + 0.5 = 1 min
        assert r.pot_min == pytest.approx(480), name
        assert r.pdt_min == pytest.approx(15), name
        assert r.run_min == pytest.approx(464), name
        assert r.micro_stop_min == pytest.approx(micro_min), name
        assert r.down_min == pytest.approx(down_min), name
        # APT = 464 + micro; A = APT / 465: 465/465 = 1.0 or 464/465 = 0.99785
        assert r.availability == pytest.approx((464 + micro_min) / 465), name
        by_machine[name] = r[KPI_COLUMNS]
        by_hour[name] = oee.compute(f, by=("machine_id", "hour"), tz=TZ,
                                    micro_stop_threshold_s=threshold_s).table[["hour", *KPI_COLUMNS]]
        # one stop 07:40–07:56 local (its first and last instant of stop time), 60 s of it busy time
        found = oee.stops(f.machine_states, shift_calendar=f.shift_calendar, planned_stops=f.planned_stops,
                          downtime_events=f.downtime_events, reason_codes=f.reason_codes, machines=f.machines)
        assert found[["time_start", "time_end"]].to_numpy().tolist() == [[at(100), at(116)]], name
        assert found["seconds"].tolist() == [60.0], name
        m = micro_stats(f, threshold_s=threshold_s)
        assert m.micro_stops == (1 if micro_min else 0), name
        assert m.minutes == pytest.approx(micro_min), name
    first = next(iter(RECORDINGS))
    for name in RECORDINGS:
        pd.testing.assert_series_equal(by_machine[name], by_machine[first], check_names=False)
        pd.testing.assert_frame_equal(by_hour[name], by_hour[first])


def test_time_outside_the_shifts_is_not_part_of_a_stop() -> None:
    # The machine stops 30 s before the shift ends (14:00) and nobody restarts it before the next
    # shift. Recorded as idle to 15:00 (nothing scheduled after 14:00) or as idle to 14:00 and a
    # planned stop after it, the stop has 30 s of busy time: a 0.5-minute micro-stop either way.
    for states in (
        [(at(0), at(479.5), "running"), (at(479.5), at(540), "idle")],
        [(at(0), at(479.5), "running"), (at(479.5), at(480), "idle"), (at(480), at(540), "planned_stop")],
    ):
        f = plant(states, shifts=SHIFT)
        r = oee.compute(f, by=("machine_id",), tz=TZ).table.iloc[0]
        assert r.micro_stop_min == pytest.approx(0.5)
        assert r.down_min == 0
        assert micro_stats(f, threshold_s=120).micro_stops == 1


# ---------------------------------------------------------------------------------------------
# 2. output without production time


def test_output_without_run_time_is_flagged_not_a_perfect_hour() -> None:
    # Shift 07:00–09:00; running 07–08, down 08–09; one batch count of 60 parts (ideal 60 s each,
    # i.e. 60 ideal minutes) stamped 08:00:30, in hour 08, where the machine never ran.
    seven = pd.Timestamp("2026-11-03 07:00", tz=TZ)
    f = plant([(at(0, seven), at(60, seven), "running"), (at(60, seven), at(120, seven), "down")],
              shifts=[(at(0, seven), at(120, seven))], counts=[(at(60.5, seven), 60)], ideal_s=60.0)
    res = oee.compute(f, by=("machine_id", "hour"), tz=TZ)
    h7, h8 = (row for _, row in res.table.iterrows())
    # hour 07: PBT 60, APT 60, no output → A 1, P 0/60 = 0, Q NaN (nothing produced), OEE 0
    assert (h7.availability, h7.performance, h7.oee, h7.output_without_run) == (1.0, 0.0, 0.0, 0)
    assert np.isnan(h7.quality)
    # hour 08: PBT 60, APT 0 → A 0, P = 60/0 undefined, Q = 60/60 = 1; no production time made
    # those parts here, so OEE = A × P × Q with A = 0 is 0 (was 1.0) and the 60 parts are flagged
    assert (h8.availability, h8.quality, h8.oee) == (0.0, 1.0, 0.0)
    assert np.isnan(h8.performance)
    assert h8.good == 60 and h8.output_without_run == 60
    # the six big losses credit nothing productive to hour 08: 60 min unplanned stop, 0 fully
    # productive, 0 slow cycles; each hour still adds up to its 60 minutes
    six = res.six_big_losses().set_index("hour")
    assert six.loc[h8.hour, "fully_productive"] == 0 and six.loc[h8.hour, "slow_cycles"] == 0
    assert six.drop(columns="machine_id").sum(axis=1).tolist() == pytest.approx([60.0, 60.0])
    # over the shift the parts have run time to match: PBT 120, APT 60, ideal 60 min →
    # A 60/120 = 0.5, P 60/60 = 1, Q 1, OEE 0.5 = A × P × Q, nothing flagged
    shift = oee.compute(f, by=("machine_id", "shift"), tz=TZ).table.iloc[0]
    assert (shift.availability, shift.performance, shift.quality, shift.oee) == (0.5, 1.0, 1.0, 0.5)
    assert shift.output_without_run == 0
    # the oee_hourly rows keep exactly the schema's columns (the flag stays in the result)
    rows = oee.oee_hourly_rows(res, computed_at=dt.datetime(2026, 11, 4, tzinfo=dt.UTC))
    assert list(rows.columns) == [c.name for c in schema.table("oee_hourly").columns]
    assert rows["oee"].tolist() == [0.0, 0.0]


def test_an_idle_shift_with_counts_has_oee_zero() -> None:
    # 8 h idle (one 480-minute stop: down), 100 parts counted (ideal 60 s): was OEE = 100 ideal
    # min / 480 = 0.208 with A 0; now A 0, P undefined, Q 1, OEE 0 and 100 parts flagged
    f = plant([(at(0), at(480), "idle")], shifts=SHIFT, counts=[(at(200), 100)], ideal_s=60.0)
    r = oee.compute(f, by=("machine_id",), tz=TZ).table.iloc[0]
    assert (r.availability, r.quality, r.oee, r.output_without_run) == (0.0, 1.0, 0.0, 100)
    assert np.isnan(r.performance)
    assert r.oee == pytest.approx(oee.compute(f, by=(), tz=TZ).waterfall().set_index("step").loc[
        "fully productive time", "minutes"] / r.pbt_observed_min)


# ---------------------------------------------------------------------------------------------
# 3. start in the repeated hour of the fall-back night

CDT, CST = dt.timezone(dt.timedelta(hours=-5)), dt.timezone(dt.timedelta(hours=-6))


def _fall_back_night() -> oee.PlantFrames:
    # 2026-11-01: clocks go from 02:00 CDT back to 01:00 CST. Night shift 22:00 CDT (03:00 UTC)
    # to 06:00 CST (12:00 UTC), running throughout; 60 parts completed at 01:10 CDT (06:10 UTC),
    # 01:10 CST (07:10 UTC) and 02:10 CST (08:10 UTC).
    def utc(h: int, m: int = 0) -> pd.Timestamp:
        return pd.Timestamp(2026, 11, 1, h, m, tz="UTC")

    start, end = pd.Timestamp(2026, 10, 31, 22, tz=CDT), pd.Timestamp(2026, 11, 1, 6, tz=CST)
    return plant([(start, end, "running")], shifts=[(start, end)],
                 counts=[(utc(6, 10), 60), (utc(7, 10), 60), (utc(8, 10), 60)])


@pytest.mark.parametrize(
    ("fold", "utc_hour", "hours", "good"),
    [
        # 01:30 CDT = 06:30 UTC: hours 01:00 CDT (06 UTC, 30 min from 06:30), 01:00 CST (07 UTC),
        # 02:00 CST (08 UTC) to the end at 09:00 UTC; the first hour keeps its count → 180 parts
        (0, 6, [(6, 30.0), (7, 60.0), (8, 60.0)], 180),
        # 01:30 CST = 07:30 UTC: hours 01:00 CST (07 UTC, 30 min) and 02:00 CST → 120 parts
        (1, 7, [(7, 30.0), (8, 60.0)], 120),
    ],
)
def test_start_in_the_repeated_hour_of_the_fall_back_night(
    fold: int, utc_hour: int, hours: list[tuple[int, float]], good: int
) -> None:
    f = _fall_back_night()
    local = dt.datetime(2026, 11, 1, 1, 30, tzinfo=ZoneInfo(TZ), fold=fold)
    end = dt.datetime(2026, 11, 1, 9, tzinfo=dt.UTC)
    res = oee.compute(f, by=("hour",), tz=TZ, start=local, end=end).table
    assert [(h.hour, m) for h, m in zip(res["hour"], res["pot_min"], strict=True)] == hours
    assert res["good"].sum() == good
    same_instant = dt.datetime(2026, 11, 1, utc_hour, 30, tzinfo=dt.UTC)
    pd.testing.assert_frame_equal(res, oee.compute(f, by=("hour",), tz=TZ, start=same_instant, end=end).table)


def test_a_naive_start_is_a_clear_error() -> None:
    with pytest.raises(OEEError, match="start must be a timezone-aware datetime"):
        oee.compute(_fall_back_night(), tz=TZ, start=dt.datetime(2026, 11, 1, 1, 30))


# ---------------------------------------------------------------------------------------------
# 5. a stop cut by the source is one stop


@pytest.mark.parametrize(
    ("piece_s", "micro_stops", "micro_min", "down_min"),
    [
        # 90 s + 90 s = one 180-second stop ≥ 120 s: no micro-stop, 3 minutes down (was 2 micro-stops)
        (90, 0, 0.0, 3.0),
        # 50 s + 50 s = one 100-second stop < 120 s: 1 micro-stop of 100/60 min (was 2)
        (50, 1, 100 / 60, 0.0),
    ],
)
def test_a_stop_cut_at_a_shift_boundary_is_one_stop(
    piece_s: float, micro_stops: int, micro_min: float, down_min: float
) -> None:
    # Shifts 14:00–22:00 and 22:00–06:00; the source cuts the down interval at 22:00.
    two = pd.Timestamp("2026-11-03 14:00", tz=TZ)
    cut = at(480, two)
    before, after = cut - pd.Timedelta(seconds=piece_s), cut + pd.Timedelta(seconds=piece_s)
    f = plant([(at(0, two), before, "running"), (before, cut, "down"), (cut, after, "down"),
               (after, at(960, two), "running")], shifts=[(at(0, two), cut), (cut, at(960, two))])
    m = micro_stats(f, threshold_s=120)
    assert m.micro_stops == micro_stops
    assert m.minutes == pytest.approx(micro_min)
    r = oee.compute(f, by=("machine_id",), tz=TZ).table.iloc[0]
    assert r.micro_stop_min == pytest.approx(micro_min)  # the same stops as OEE's
    assert r.down_min == pytest.approx(down_min)
    found = oee.stops(f.machine_states, shift_calendar=f.shift_calendar)
    assert found[["time_start", "time_end", "seconds"]].to_numpy().tolist() == [[before, after, 2 * piece_s]]
