"""Edges of the loss tables (issue 11): unknown scrap cost stays unknown, and blank reasons are
one "(uncoded)" row in every table. Small hand-built frames; the hand calculation is beside each
expected value.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from workbench import losses, plots

# -- defect 4: missing scrap cost is unknown, not 0 --------------------------------------------

WORK_ORDERS = pd.DataFrame({"work_order": ["W1"], "material_cost_per_unit": [5.0]})


def scrap() -> pd.DataFrame:
    return pd.DataFrame({
        "scrap_category": ["Burr", "Dimension", "Dimension", "Porosity"],
        "work_order": ["W9", "W1", "W9", "W1"],        # W9 is not in the ERP: no unit cost
        "quantity": [100, 4, 10, 3],
        "material_cost": [None, 20.0, None, None],
        "labor_cost": [None, 2.0, 3.0, None],
    })


def test_scrap_cost_is_nan_where_no_material_cost_is_known() -> None:
    cost = losses.scrap_cost(scrap(), work_orders=WORK_ORDERS)
    # row 0: no material, W9 has no unit cost, no labor                → unknown
    # row 1: 20 material + 2 labor                                     = 22
    # row 2: no material, W9 has no unit cost; its 3 labor is not the whole cost → unknown
    # row 3: no material, 3 × 5 (W1's unit cost), no labor (counts 0)  = 15
    assert math.isnan(cost[0]) and math.isnan(cost[2])
    assert cost[[1, 3]].tolist() == pytest.approx([22.0, 15.0])


def test_scrap_pareto_shows_unknown_cost_as_unknown() -> None:
    p = losses.scrap_pareto(scrap(), by="scrap_category", work_orders=WORK_ORDERS)
    # Dimension: known 22 (row 1), 10 units unknown (row 2); Porosity 15; Burr: 100 units, nothing
    # known → cost NaN (was 0). Known total 22 + 15 = 37. Burr cannot be ranked: it comes last.
    assert p["scrap_category"].tolist() == ["Dimension", "Porosity", "Burr"]
    assert p["quantity"].tolist() == [14, 3, 100]
    assert p["cost"].iloc[:2].tolist() == pytest.approx([22.0, 15.0]) and math.isnan(p["cost"].iloc[2])
    assert p["units_without_cost"].tolist() == [10, 0, 100]
    # share of the known cost: 22/37, 15/37; Burr has none (was 0.0)
    assert p["share"].iloc[:2].tolist() == pytest.approx([22 / 37, 15 / 37]) and math.isnan(p["share"].iloc[2])
    # the cumulative line reaches exactly 100 % on the last bar with a known cost
    assert p["cumulative_share"].iloc[:2].tolist() == [pytest.approx(22 / 37), 1.0]
    assert math.isnan(p["cumulative_share"].iloc[2])


def test_scrap_pareto_by_quantity_still_ranks_unknown_cost_scrap() -> None:
    q = losses.scrap_pareto(scrap(), by="scrap_category", measure="quantity", work_orders=WORK_ORDERS)
    # quantities 100, 14, 3 of 117: Burr first however unknown its cost
    assert q["scrap_category"].tolist() == ["Burr", "Dimension", "Porosity"]
    assert q["share"].tolist() == pytest.approx([100 / 117, 14 / 117, 3 / 117])
    assert math.isnan(q["cost"].iloc[0]) and q["units_without_cost"].iloc[0] == 100


def test_scrap_pareto_with_no_cost_at_all() -> None:
    p = losses.scrap_pareto(scrap().drop(columns=["material_cost", "labor_cost"]), by="scrap_category")
    # no cost anywhere: every bar unknown, no share; all 117 units without a cost
    assert p["cost"].isna().all() and p["share"].isna().all() and p["cumulative_share"].isna().all()
    assert p["units_without_cost"].sum() == 117


def test_cost_pareto_draws_unknown_cost_as_cost_unknown_not_0() -> None:
    p = losses.scrap_pareto(scrap(), by="scrap_category", work_orders=WORK_ORDERS)
    fig = plots.pareto(p, title="Scrap cost by category")
    bars = next(t for t in fig.data if t.name == "cost")
    unknown = next(t for t in fig.data if t.name == "cost unknown")
    # the cost bars are the frame's: 22, 15 and no bar (NaN, not 0) for Burr
    assert list(bars.x) == ["Dimension", "Porosity", "Burr"]
    assert list(bars.y[:2]) == pytest.approx([22.0, 15.0]) and math.isnan(bars.y[2])
    # Dimension's bar leaves 10 units out, and says so
    assert list(bars.text) == ["+10 units, cost unknown", "", ""]
    # Burr is a flat grey marker labelled "cost unknown", with its 100 units
    assert list(unknown.x) == ["Burr"] and list(unknown.y) == [0.0]
    assert list(unknown.text) == ["cost unknown (100 units)"]
    assert list(unknown.customdata[0]) == ["n/a", "100", "100"]   # share, quantity, units without cost
    assert "$0" not in unknown.hovertemplate and "cost unknown" in unknown.hovertemplate
    # 10 + 100 units without a cost, named even when `top` cuts Burr's bar
    assert "110 units scrapped without a cost" in fig.layout.title.text
    assert "110 units" in plots.pareto(p, top=2).layout.title.text


def test_scrap_quantity_pareto_hover_says_cost_unknown() -> None:
    q = losses.scrap_pareto(scrap(), by="scrap_category", measure="quantity", work_orders=WORK_ORDERS)
    bars = next(t for t in plots.pareto(q, measure="quantity").data if t.name == "quantity")
    # customdata: share, cost, units without cost — Burr's cost reads "unknown", not "$nan"/"$0"
    assert list(bars.customdata[0]) == ["85.5%", "unknown", "100"]     # 100 / 117 = 85.5 %
    assert list(bars.customdata[1]) == ["12.0%", "$22", "10"]          # 14 / 117 = 12.0 %


def test_downtime_cost_bar_without_any_rate_says_rate_unknown() -> None:
    downtime = pd.DataFrame({"reason_category": ["Tooling", "Material"], "duration_min": [60.0, 30.0],
                             "work_order": ["W1", None]})
    orders = pd.DataFrame({"work_order": ["W1"], "labor_rate_per_hour": [60.0]})
    frame = losses.downtime_cost(downtime, work_orders=orders)
    # Tooling 1 h × 60/h = 60; Material 30 min without a work order, no overhead → 0, all unrated
    assert frame["cost"].tolist() == pytest.approx([60.0, 0.0])
    assert frame["minutes_without_rate"].tolist() == pytest.approx([0.0, 30.0])
    bar = next(t for t in plots.downtime_cost(frame).data if t.name == "cost")
    assert list(bar.text) == ["$60", "rate unknown"]
    # with an overhead of 30/h the Material stop has a known (overhead) cost: 0.5 h × 30 = 15
    priced = losses.downtime_cost(downtime, work_orders=orders, overhead_per_hour=30.0)
    assert list(next(t for t in plots.downtime_cost(priced).data if t.name == "cost").text) == ["$90", "$15"]


# -- defect 7: one normalisation of blank reasons ----------------------------------------------

def blank_reasons() -> pd.DataFrame:
    return pd.DataFrame({
        "machine_id": ["M1"] * 5,
        "reason_category": ["Tooling", None, "", "   ", "\t"],
        "duration_min": [10.0, 20.0, 30.0, 40.0, 5.0],
        "work_order": ["W1"] * 5,
    })


def test_downtime_cost_merges_blank_reasons_into_uncoded() -> None:
    orders = pd.DataFrame({"work_order": ["W1"], "labor_rate_per_hour": [60.0]})
    cost = losses.downtime_cost(blank_reasons(), work_orders=orders).set_index("reason_category")
    # None, "", "   " and "\t" are one row: 20 + 30 + 40 + 5 = 95 min, 95/60 h × 60/h = 95
    assert cost.index.tolist() == ["(uncoded)", "Tooling"]
    assert cost.loc["(uncoded)", "minutes"] == pytest.approx(95.0)
    assert cost.loc["(uncoded)", "cost"] == pytest.approx(95.0)
    assert cost.loc["Tooling", "cost"] == pytest.approx(10.0)   # 10 min × 60/h


def test_downtime_pareto_and_cost_agree_on_blank_reasons() -> None:
    orders = pd.DataFrame({"work_order": ["W1"], "labor_rate_per_hour": [60.0]})
    pareto = losses.downtime_pareto(blank_reasons(), by="reason_category").set_index("reason_category")
    cost = losses.downtime_cost(blank_reasons(), work_orders=orders).set_index("reason_category")
    # same bars, same minutes: (uncoded) 95, Tooling 10 (whitespace-only was a bar of its own before)
    assert sorted(pareto.index) == sorted(cost.index) == ["(uncoded)", "Tooling"]
    assert pareto["minutes"].to_dict() == cost["minutes"].to_dict() == {"(uncoded)": 95.0, "Tooling": 10.0}
    assert pareto.loc["(uncoded)", "events"] == 4


def test_scrap_pareto_merges_blank_reasons_too() -> None:
    s = pd.DataFrame({"scrap_reason": ["burr", " ", None], "quantity": [1, 2, 3], "material_cost": [1.0, 2.0, 3.0]})
    p = losses.scrap_pareto(s, by="scrap_reason")
    # " " and None: 2 + 3 = 5 → one (uncoded) bar of cost 5, then burr 1
    assert p["scrap_reason"].tolist() == ["(uncoded)", "burr"]
    assert p["cost"].tolist() == pytest.approx([5.0, 1.0])
