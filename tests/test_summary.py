"""The daily summary of a simulated day, checked against the simulator's ground truth."""

from __future__ import annotations

import dataclasses

import pytest

from workbench import jobs, summary
from workbench.demo import load_plant
from workbench.errors import WorkbenchError
from workbench.simulate import PlantConfig, simulate_plant
from workbench.store import DuckDBWarehouse


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """The default plant without its telemetry (the summary reads none; the other tables and the
    truth are the same as with it, and loading 3.6 million readings cost half a minute)."""
    plant = simulate_plant(dataclasses.replace(PlantConfig(), telemetry=False))
    path = tmp_path_factory.mktemp("summary") / "warehouse.duckdb"
    with DuckDBWarehouse(path) as wh:
        load_plant(plant, wh, truth_dir=path.parent / "truth")
    return plant, path


@pytest.fixture(scope="module")
def last_day(loaded) -> summary.DailySummary:
    """The summary of the plant's last production day."""
    plant, path = loaded
    tz = plant.config.timezone
    with DuckDBWarehouse(path, read_only=True) as wh:
        return jobs.daily_summary_from(wh, day=jobs.latest_production_day(wh, tz=tz), tz=tz)


def test_daily_summary_matches_the_truth(loaded, last_day) -> None:
    plant, _ = loaded
    s, day = last_day, last_day.day
    truth_all = plant.truth.oee
    assert day == truth_all.loc[truth_all["produced"] > 0, "shift_date"].max()
    truth = truth_all[truth_all["shift_date"] == day]
    # plant OEE is time-weighted: fully productive time / observed planned busy time
    expected = (truth["oee"] * truth["observed_pbt_min"]).sum() / truth["observed_pbt_min"].sum()
    assert s.plant["oee"] == pytest.approx(expected, abs=1e-9)
    assert s.plant["good"] == truth["good"].sum()
    m = s.machines.set_index("machine_id")
    t = truth.set_index("machine_id")
    assert m["oee"].to_dict() == pytest.approx(t["oee"].to_dict(), abs=1e-9)
    assert set(m["status"]) <= {"good", "watch", "poor", "no plan"}
    assert (m.loc[m["oee"] >= 0.85, "status"] == "good").all()
    assert (m.loc[m["oee"] < 0.65, "status"] == "poor").all()
    assert s.downtime_top["minutes"].is_monotonic_decreasing
    assert s.headline.startswith("Plant OEE ") and f"{day:%d %b %Y}" in s.headline
    assert {"machine_id", "rule", "subgroup"} <= set(s.spc_violations.columns)
    assert s.spc_by_series["violations"].sum() == len(s.spc_violations)


def test_status_bands() -> None:
    assert summary.status(0.9) == "good" and summary.status(0.7) == "watch" and summary.status(0.5) == "poor"
    assert summary.status(None) == "no plan"


def test_daily_summary_of_some_machines(loaded) -> None:
    plant, path = loaded
    tz = plant.config.timezone
    chosen = ["M01", "M02"]
    with DuckDBWarehouse(path, read_only=True) as wh:
        day = jobs.latest_production_day(wh, tz=tz)
        s = jobs.daily_summary_from(wh, day=day, tz=tz, machines=chosen)
    truth = plant.truth.oee
    truth = truth[(truth["shift_date"] == day) & truth["machine_id"].isin(chosen)]
    assert set(s.machines["machine_id"]) == set(chosen)
    expected = (truth["oee"] * truth["observed_pbt_min"]).sum() / truth["observed_pbt_min"].sum()
    assert s.plant["oee"] == pytest.approx(expected, abs=1e-9)
    assert s.plant["good"] == truth["good"].sum()
    assert set(s.spc_violations["machine_id"]) <= set(chosen)
    assert s.data["rows"]["machines"] == 2


def test_a_summary_survives_its_json_record(last_day) -> None:
    import json

    import pandas as pd

    s = last_day
    back = summary.DailySummary.from_record(json.loads(json.dumps(s.to_record(), allow_nan=False)))
    assert (back.day, back.tz, back.plant, back.data, back.thresholds) == (s.day, s.tz, s.plant, s.data,
                                                                            s.thresholds)
    for name in ("machines", "downtime_top", "scrap_top", "spc_violations", "spc_episodes"):
        pd.testing.assert_frame_equal(getattr(back, name), getattr(s, name), check_dtype=name != "spc_episodes")
    assert back.headline == s.headline
    assert not s.spc_episodes.empty and list(s.spc_episodes.columns) == summary.EPISODE_COLUMNS
    # a record kept before episodes existed still reads: no episodes, the violations as they were
    old = s.to_record()
    del old["frames"]["spc_episodes"]
    before = summary.DailySummary.from_record(json.loads(json.dumps(old)))
    assert before.spc_episodes.empty and len(before.spc_violations) == len(s.spc_violations)


def test_an_empty_day_survives_its_record_and_a_bad_record_is_refused() -> None:
    import datetime as dt
    import json

    import pandas as pd

    empty = summary.DailySummary(
        dt.date(2026, 11, 20), "America/Chicago", {"oee": None, "good": 0, "rejects": 0},
        pd.DataFrame(columns=["machine_id", "oee", "status"]),
        pd.DataFrame(columns=["reason_category", "minutes", "events", "share"]),
        pd.DataFrame(columns=["scrap_category", "quantity", "cost", "share"]),
        pd.DataFrame(columns=["machine_id", "part_number", "characteristic", "rule", "subgroup", "message"]))
    back = summary.DailySummary.from_record(json.loads(json.dumps(empty.to_record())))
    assert back.plant == empty.plant and back.machines.empty and back.spc_by_series.empty
    assert list(back.downtime_top.columns) == ["reason_category", "minutes", "events", "share"]
    with pytest.raises(WorkbenchError, match="not a DailySummary record"):
        summary.DailySummary.from_record({"kind": "something else"})
    broken = empty.to_record()
    del broken["frames"]["machines"]
    with pytest.raises(WorkbenchError, match="malformed"):
        summary.DailySummary.from_record(broken)


# -- a day without production data ---------------------------------------------------------------

TZ = "America/Chicago"


def _empty(name: str):
    """An empty canonical table with the warehouse's column types."""
    from workbench import schema

    return schema.table(name).arrow_schema.empty_table().to_pandas()


def _local(day: str, hhmm: str):
    import pandas as pd

    return pd.Timestamp(f"{day} {hhmm}", tz=TZ).tz_convert("UTC")


def _day_without_data(*, calendar: bool) -> dict:
    """Two machines on Thu 19 Nov 2026 (America/Chicago) whose collectors sent nothing: no
    production event, no state but one explicit ``no_data`` interval of M01 and a state of M02
    that ended when the day began — with the plant's shift calendar, or with none."""
    import datetime as dt

    import pandas as pd

    day = "2026-11-19"
    machines = pd.DataFrame({"machine_id": ["M01", "M02"], "name": ["Lathe 01", "Grinder 02"],
                             "line": ["L1", "L2"], "site": ["PLANT1", "PLANT1"],
                             "ideal_cycle_time_s": [30.0, 45.0]})
    states = pd.DataFrame({"machine_id": ["M02", "M01"],
                           "time_start": [_local("2026-11-18", "22:00"), _local(day, "06:00")],
                           "time_end": [_local(day, "06:00"), _local(day, "08:00")],
                           "state": ["running", "no_data"]})
    tables = {name: _empty(name) for name in ("production_events", "shift_calendar", "planned_stops",
                                              "downtime_events", "scrap_events", "quality_measurements")}
    tables |= {"machines": machines, "machine_states": states, "reason_codes": _empty("reason_codes")}
    if calendar:
        tables["shift_calendar"] = pd.DataFrame({
            "site": ["PLANT1", "PLANT1"], "shift_date": [dt.date(2026, 11, 19)] * 2, "shift": ["A", "B"],
            "time_start": [_local(day, "06:00"), _local(day, "14:00")],
            "time_end": [_local(day, "14:00"), _local(day, "22:00")]})
        tables["planned_stops"] = pd.DataFrame({
            "site": ["PLANT1", "PLANT1", "PLANT1"], "line": ["L1", None, None],
            "machine_id": [None, "M02", "M01"],
            "time_start": [_local(day, "10:00"), _local(day, "13:00"), _local(day, "22:30")],
            "time_end": [_local(day, "10:30"), _local(day, "15:00"), _local(day, "23:00")],
            "kind": ["break", "maintenance", "maintenance"]})
    return tables


def _summary_without_data(*, calendar: bool) -> summary.DailySummary:
    import datetime as dt
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(TZ)
    return summary.daily_summary(_day_without_data(calendar=calendar), day=dt.date(2026, 11, 19),
                                 start=dt.datetime(2026, 11, 19, 6, tzinfo=zone),
                                 end=dt.datetime(2026, 11, 20, 6, tzinfo=zone), tz=TZ)


def test_a_day_without_data_or_calendar_says_so_plainly() -> None:
    s = _summary_without_data(calendar=False)
    assert s.has_data is False and s.data["has_data"] is False and s.data["shifts"] == 0
    assert s.headline == "NO DATA — Thu 19 Nov 2026: no production and no shift calendar for this day"
    assert s.no_data_statement.startswith(
        "No production data for Thu 19 Nov 2026 (06:00 Thu 19 Nov to 06:00 Fri 20 Nov 2026, America/Chicago): "
        "no machine reported a state or a produced part.")
    assert "no shift on this day either" in s.no_data_statement
    assert s.plant["oee"] is None and s.plant["no_data_min"] == 0.0 and s.machines.empty


def test_a_day_with_a_calendar_but_no_data_counts_the_planned_minutes() -> None:
    s = _summary_without_data(calendar=True)
    # Counted by hand: shifts A 06:00-14:00 and B 14:00-22:00 = 960 min per machine.
    #   M01 (line L1): 960 - the L1 break 10:00-10:30 (30) = 930; its 22:30-23:00 PM is off shift.
    #   M02 (line L2): 960 - its maintenance 13:00-15:00 (120, across the shift change) = 840.
    #   Plant: 930 + 840 = 1,770 planned minutes, none with data (M01's explicit no_data interval
    #   is not data; M02's running state ended when the day began).
    assert s.has_data is False and s.data["shifts"] == 2
    assert s.plant["no_data_min"] == pytest.approx(1770.0) and s.plant["pbt_min"] == pytest.approx(1770.0)
    assert s.headline == "NO DATA — Thu 19 Nov 2026: no production recorded (1,770 planned min without data)"
    assert "The shift calendar planned 1,770 machine-minutes of production; all of them are without data." \
        in s.no_data_statement
    assert "quiet" in s.no_data_statement


def test_a_day_without_data_survives_its_record_and_old_records_still_read() -> None:
    import json

    s = _summary_without_data(calendar=True)
    back = summary.DailySummary.from_record(json.loads(json.dumps(s.to_record(), allow_nan=False)))
    assert (back.has_data, back.headline, back.no_data_statement) == (False, s.headline, s.no_data_statement)
    # A record kept before has_data / shifts existed is judged by its row counts: no production
    # event and no machine state read is no data; any state read (here M01's no_data interval and
    # M02's state of the night before) gives it the benefit of the doubt.
    old = s.to_record()
    del old["data"]["has_data"], old["data"]["shifts"]
    assert summary.DailySummary.from_record(old).has_data is True
    old["data"]["rows"]["machine_states"] = 0
    aged = summary.DailySummary.from_record(old)
    assert aged.has_data is False
    assert aged.headline == "NO DATA — Thu 19 Nov 2026: no production recorded (1,770 planned min without data)"


def test_a_normal_day_is_unchanged(last_day) -> None:
    s = last_day
    assert s.has_data is True and s.data["has_data"] is True and s.data["shifts"] > 0
    assert s.headline == f"Plant OEE {s.plant['oee']:.1%} — {s.day:%a %d %b %Y}"
    assert s.no_data_statement == ""
    old = s.to_record()
    del old["data"]["has_data"], old["data"]["shifts"]
    assert summary.DailySummary.from_record(old).headline == s.headline


def test_a_dead_collector_day_reports_the_planned_time_of_the_truth(loaded) -> None:
    """The simulated plant's last day with its collectors silent: every planned minute of the
    ground truth is a minute without data."""
    import dataclasses
    import datetime as dt

    plant, path = loaded
    tz = plant.config.timezone
    with DuckDBWarehouse(path, read_only=True) as wh:
        day = jobs.latest_production_day(wh, tz=tz)
        start, end = jobs.production_day_range(wh, first=day, last=day + dt.timedelta(days=1), tz=tz)
        frames = jobs.load_plant_frames(wh, start=start, end=end)
        after = jobs.daily_summary_from(wh, day=day + dt.timedelta(days=60), tz=tz)
    silent = dataclasses.replace(frames, machine_states=frames.machine_states.iloc[:0],
                                 production_events=frames.production_events.iloc[:0])
    tables = {f.name: getattr(silent, f.name) for f in dataclasses.fields(silent)}
    s = summary.daily_summary(tables, day=day, start=start, end=end, tz=tz)
    truth = plant.truth.oee
    planned = truth.loc[truth["shift_date"] == day, "planned_busy_min"].sum()
    assert planned > 0
    assert s.has_data is False and s.plant["no_data_min"] == pytest.approx(planned, abs=1e-6)
    assert s.headline == (f"NO DATA — {day:%a %d %b %Y}: no production recorded "
                          f"({planned:,.0f} planned min without data)")
    # two months after the simulation: no data and no calendar
    assert after.headline.endswith("no production and no shift calendar for this day")
