"""The daily summary of a simulated day, checked against the simulator's ground truth."""

from __future__ import annotations

import pytest

from workbench import jobs, summary
from workbench.demo import load_plant
from workbench.errors import WorkbenchError
from workbench.store import DuckDBWarehouse


@pytest.fixture(scope="module")
def loaded(default_plant, tmp_path_factory):
    path = tmp_path_factory.mktemp("summary") / "warehouse.duckdb"
    with DuckDBWarehouse(path) as wh:
        load_plant(default_plant, wh, truth_dir=path.parent / "truth")
    return default_plant, path


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
    for name in ("machines", "downtime_top", "scrap_top", "spc_violations"):
        pd.testing.assert_frame_equal(getattr(back, name), getattr(s, name))
    assert back.headline == s.headline


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
