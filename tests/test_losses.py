"""Pareto, yields, cost of downtime and micro-stops on small hand-computed tables."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from workbench import losses
from workbench.errors import LossesError

T0 = pd.Timestamp("2026-11-03T12:00Z")


def downtime() -> pd.DataFrame:
    return pd.DataFrame({
        "machine_id": ["M1", "M1", "M2", "M2", "M3", "M3"],
        "time_start": [T0 + pd.Timedelta(hours=h) for h in range(6)],
        "duration_min": [30.0, 10.0, 45.0, 5.0, 20.0, 60.0],
        "reason_code": ["MECH-BRG", None, "TOOL-WEAR", "MECH-BRG", "PM-PM", None],
        "reason_category": [None, None, None, None, None, None],
        "work_order": ["WO1", "WO1", "WO2", None, "WO3", "WO3"],
        "shift": ["A", "A", "B", "B", "C", "C"],
    })


CODES = pd.DataFrame({"code": ["MECH-BRG", "TOOL-WEAR", "PM-PM"],
                      "category": ["Mechanical Failure", "Tooling", "Scheduled Maintenance"],
                      "planned": [False, False, True]})


def test_downtime_pareto_by_category_keeps_uncoded() -> None:
    p = losses.downtime_pareto(downtime(), by="reason_category", reason_codes=CODES)
    # planned PM (20 min) left out; uncoded 10 + 60 = 70; Tooling 45; Mechanical 30 + 5 = 35
    assert p["reason_category"].tolist() == ["(uncoded)", "Tooling", "Mechanical Failure"]
    assert p["minutes"].tolist() == [70.0, 45.0, 35.0]
    assert p["events"].tolist() == [2, 1, 2]
    assert p["cumulative_share"].tolist() == pytest.approx([70 / 150, 115 / 150, 1.0])
    with_planned = losses.downtime_pareto(downtime(), by="reason_category", reason_codes=CODES,
                                          include_planned=True)
    assert with_planned["minutes"].sum() == pytest.approx(170)


def test_downtime_pareto_by_events_and_machine() -> None:
    p = losses.downtime_pareto(downtime(), by="machine_id", measure="events", include_planned=True)
    assert p["machine_id"].tolist() == ["M1", "M2", "M3"]   # 2 events each: ties in key order
    assert p["share"].tolist() == pytest.approx([1 / 3] * 3)


def test_scrap_pareto_with_cost_from_work_orders() -> None:
    scrap = pd.DataFrame({
        "machine_id": ["M1", "M1", "M2"], "part_number": ["P1", "P2", "P1"],
        "work_order": ["WO1", "WO2", "WO1"],
        "quantity": [10, 4, 1], "scrap_category": ["Dimension", "Material", "Dimension"],
        "material_cost": [None, 50.0, None], "labor_cost": [5.0, None, None],
    })
    wos = pd.DataFrame({"work_order": ["WO1", "WO2"], "material_cost_per_unit": [2.5, 100.0]})
    p = losses.scrap_pareto(scrap, by="scrap_category", work_orders=wos)
    # Material: 50 (given); Dimension: 10 × 2.5 + 5 labor + 1 × 2.5 = 32.5
    assert p["scrap_category"].tolist() == ["Material", "Dimension"]
    assert p["cost"].tolist() == pytest.approx([50.0, 32.5])
    assert p["quantity"].tolist() == [4, 11]
    q = losses.scrap_pareto(scrap, by="part_number", measure="quantity", work_orders=wos)
    assert q["part_number"].tolist() == ["P1", "P2"]


def test_yields_by_family() -> None:
    prod = pd.DataFrame({"machine_id": "M1", "part_number": ["P1", "P1", "P2"],
                         "good_count": [90, 5, 48], "reject_count": [10, 0, 2]})
    parts = pd.DataFrame({"part_number": ["P1", "P2"], "part_family": ["shafts", "flanges"]})
    scrap = pd.DataFrame({"part_number": ["P1", "P2"], "quantity": [4, 2]})
    y = losses.yields(prod, scrap=scrap, parts=parts).set_index("part_family")
    assert y.loc["shafts", "first_pass_yield"] == pytest.approx(95 / 105)
    assert y.loc["shafts", "final_yield"] == pytest.approx((105 - 4) / 105)   # 6 reworked
    assert y.loc["flanges", "final_yield"] == pytest.approx(48 / 50)
    with pytest.raises(LossesError, match="without a family"):
        losses.yields(prod.assign(part_number="P9"), parts=parts)


def test_downtime_cost_from_erp_rates() -> None:
    wos = pd.DataFrame({"work_order": ["WO1", "WO2", "WO3"], "labor_rate_per_hour": [60.0, 90.0, 30.0]})
    c = losses.downtime_cost(downtime(), work_orders=wos, by="machine_id", overhead_per_hour=30.0,
                             reason_codes=CODES).set_index("machine_id")
    # M1: 40 min × (60 + 30)/h = 60; M2: 45 min × 120/h = 90 + 5 min without WO at 30/h = 2.5
    assert c.loc["M1", "cost"] == pytest.approx(60.0)
    assert c.loc["M2", "cost"] == pytest.approx(92.5)
    assert c.loc["M2", "minutes_without_rate"] == pytest.approx(5.0)
    assert c.loc["M3", "minutes"] == pytest.approx(60.0)   # PM (planned) excluded


def test_micro_stop_stats() -> None:
    starts = [0, 600, 630, 3600, 3690]
    ends = [600, 630, 3600, 3690, 7200]
    states = pd.DataFrame({"machine_id": "M1", "state": ["running", "idle", "running", "down", "running"],
                           "time_start": [T0 + pd.Timedelta(seconds=s) for s in starts],
                           "time_end": [T0 + pd.Timedelta(seconds=e) for e in ends]})
    m = losses.micro_stop_stats(states, threshold_s=120).iloc[0]
    assert m.micro_stops == 2
    assert m.minutes == pytest.approx(2.0)
    assert m.mean_s == pytest.approx(60.0)
    assert m.per_running_hour == pytest.approx(2 / ((7200 - 120) / 3600))


def test_bad_inputs_are_clear_errors() -> None:
    with pytest.raises(LossesError, match="negative duration -5.0 min on M1"):
        losses.downtime_pareto(downtime().assign(duration_min=[-5.0, 1, 1, 1, 1, 1]))
    with pytest.raises(LossesError, match="choose from"):
        losses.downtime_pareto(downtime(), by="colour")


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c", None, ""]), st.floats(0, 1e4)), min_size=1))
def test_pareto_cumulative_reaches_100_percent(rows) -> None:
    d = pd.DataFrame({"machine_id": "M1", "reason_code": [r for r, _ in rows],
                      "duration_min": [m for _, m in rows]})
    p = losses.downtime_pareto(d, by="reason_code")
    assert p["minutes"].sum() == pytest.approx(sum(m for _, m in rows))
    if p["minutes"].sum() > 0:
        assert p["cumulative_share"].iloc[-1] == 1.0
        assert p["cumulative_share"].is_monotonic_increasing
        assert p["minutes"].is_monotonic_decreasing


def test_losses_of_a_day_without_any() -> None:
    # As read from a warehouse for a quiet day: no rows, but typed (text) columns.
    empty = pd.DataFrame({"machine_id": pd.Series([], dtype="str"), "reason_category": pd.Series([], dtype="str"),
                          "duration_min": pd.Series([], dtype=float), "work_order": pd.Series([], dtype="str"),
                          "planned": pd.Series([], dtype=bool)})
    orders = pd.DataFrame({"work_order": ["W1"], "labor_rate_per_hour": [50.0]})
    cost = losses.downtime_cost(empty, work_orders=orders)
    assert cost.empty and list(cost.columns) == ["reason_category", "minutes", "cost", "minutes_without_rate"]
    assert losses.downtime_pareto(empty, by="reason_category").empty
