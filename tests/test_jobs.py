"""Jobs read the warehouse, run the analytics and write back — on both engines."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from workbench import jobs
from workbench.demo import load_plant
from workbench.store import Warehouse


def test_oee_from_the_warehouse_matches_the_truth_and_rolls_up_idempotently(
        small_plant, warehouse: Warehouse, tmp_path) -> None:
    load_plant(small_plant, warehouse, truth_dir=tmp_path / "truth")
    cfg = small_plant.config
    tz = cfg.timezone
    # three production days in the middle of the horizon, across the DST change
    first = cfg.start + dt.timedelta(days=4)
    start = pd.Timestamp(f"{first} 06:00", tz=tz).to_pydatetime()
    end = pd.Timestamp(f"{first + dt.timedelta(days=3)} 06:00", tz=tz).to_pydatetime()

    daily = jobs.compute_oee(warehouse, start=start, end=end, tz=tz, by=("machine_id", "day"),
                             micro_stop_threshold_s=cfg.micro_stop_threshold_s).table
    truth = small_plant.truth.oee.rename(columns={"shift_date": "day"})
    truth = truth[(truth["day"] >= first) & (truth["day"] < first + dt.timedelta(days=3))]
    both = daily.merge(truth, on=["machine_id", "day"], suffixes=("", "_truth"), validate="1:1")
    assert len(both) == len(truth) > 0
    assert (both["oee"] - both["oee_truth"]).abs().max() < 1e-9

    first_run = jobs.roll_up_oee_hourly(warehouse, start=start, end=end, tz=tz,
                                        micro_stop_threshold_s=cfg.micro_stop_threshold_s)
    assert first_run.written == warehouse.count("oee_hourly") > 0
    again = jobs.roll_up_oee_hourly(warehouse, start=start, end=end, tz=tz,
                                    micro_stop_threshold_s=cfg.micro_stop_threshold_s)
    assert again.written == 0 and again.unchanged == first_run.rows
    hourly = warehouse.read("oee_hourly")
    # hours add up to the day: good parts and run minutes per machine
    per_machine = hourly.groupby("machine_id")[["good", "run_min"]].sum()
    expected = daily.groupby("machine_id")[["good", "apt_min"]].sum()
    assert per_machine["good"].to_dict() == expected["good"].to_dict()
    assert per_machine["run_min"].to_numpy() == pytest.approx(expected["apt_min"].to_numpy())


def test_ranges_must_be_aware_and_ordered(warehouse: Warehouse) -> None:
    from workbench.errors import WorkbenchError

    with pytest.raises(WorkbenchError, match="timezone-aware"):
        jobs.load_plant_frames(warehouse, start=dt.datetime(2026, 11, 1), end=dt.datetime(2026, 11, 2))
    t = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    with pytest.raises(WorkbenchError, match="is not after"):
        jobs.load_plant_frames(warehouse, start=t, end=t)
