"""Every Western Electric and Nelson rule on a hand-made series: it fires exactly where its
definition says and nowhere else.

Definitions: Western Electric, *Statistical Quality Control Handbook* (1956), rules 1–4; L.S.
Nelson, "The Shewhart Control Chart — Tests for Special Causes", *JQT* 16(4), 1984, tests 1–8
(in Minitab's wording). The series are z-values (distance from the center line in σ).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench import spc
from workbench.errors import SPCError
from workbench.spc import rules

QUIET = [0.5, -0.5, 0.3, -0.2, 0.8, -0.9, 0.1, -0.4, 0.6, -0.7]  # triggers nothing

TWO_OF_THREE = [0.0, 2.5, 0.3, 2.1, 0.0, -2.2, 0.5, -2.6, 2.5, -0.1]
# i=3: +2.5 at 1 and +2.1 at 3 within three points → 3 (not the in-between 0.3, not 4 after it);
# i=7: −2.2 at 5 and −2.6 at 7 → 7; i=8: +2.5 but only one above +2σ in 6..8 → no.
FOUR_OF_FIVE = [1.5, 1.2, 0.5, 1.1, 1.3, 0.2, -1.5, -1.2, -1.1, 0.0, -1.9, -2.0]
# i=4: 1.5, 1.2, 1.1, 1.3 in 0..4 → 4; i=10: −1.5, −1.2, −1.1, −1.9 in 6..10 → 10;
# i=11: −1.2, −1.1, −1.9, −2.0 in 7..11 → 11; i=8: only three in 4..8 → no.

CASES = {
    # rule: (series, expected indexes)
    "we1": ([0.0, 3.5, -0.5, -3.01, 3.0, -3.0, 2.9], [1, 3]),  # on the limit is not beyond
    "we2": (TWO_OF_THREE, [3, 7]),
    "we3": (FOUR_OF_FIVE, [4, 10, 11]),
    # 7 above (no), a point below, 9 above (8th and 9th flagged), 0 on the line, 8 below.
    "we4": ([0.1] * 7 + [-0.2] + [0.5] * 9 + [0.0] + [-0.4] * 8, [15, 16, 25]),
    "nelson1": ([0.0, -4.0, 1.0, 3.2], [1, 3]),
    # 8 above (no), one below, 9 above (→ 17), 9 below (→ 26).
    "nelson2": ([0.2] * 8 + [-1.0] + [0.3] * 9 + [-0.1] * 9, [17, 26]),
    # rises 0→0.6 over points 0..6 (6th and 7th point flagged), a tie at 7, falls 8..13.
    "nelson3": ([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, -0.1], [5, 6, 12, 13]),
    # 15 points alternating: the 14th and 15th are flagged.
    "nelson4": ([0.0, 1.0] * 7 + [0.0], [13, 14]),
    "nelson5": (TWO_OF_THREE, [3, 7]),
    "nelson6": (FOUR_OF_FIVE, [4, 10, 11]),
    # 15 in zone C → 14; a point at 1.5 breaks it; 14 more in zone C → nothing.
    "nelson7": ([0.5, -0.5] * 7 + [0.2] + [1.5] + [0.1] * 14, [14]),
    # 8 beyond 1σ on alternating sides → 7; zone C breaks it; 7 beyond → nothing.
    "nelson8": ([1.5, -1.5] * 4 + [0.5] + [1.2] * 7, [7]),
}


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_fires_exactly_where_defined(rule: str) -> None:
    series, expected = CASES[rule]
    assert list(rules.RULES[rule](series)) == expected


@pytest.mark.parametrize("rule", sorted(rules.RULES))
def test_quiet_series_triggers_nothing(rule: str) -> None:
    assert list(rules.RULES[rule](QUIET)) == []


@pytest.mark.parametrize(("rule", "series"), [
    ("we2", [2.5, 2.5]),                # the first two points already are "two of three"
    ("we3", [1.5, 1.5, 1.5, 1.5]),
])
def test_windows_at_the_start_count_the_points_available(rule: str, series: list[float]) -> None:
    assert list(rules.RULES[rule](series)) == [len(series) - 1]


@pytest.mark.parametrize(("rule", "series"), [
    ("we4", [0.5] * 7),                                  # seven, not eight
    ("nelson2", [0.5] * 8),
    ("nelson3", [0.1, 0.2, 0.3, 0.4, 0.5]),              # five rising points
    ("nelson3", [0.1, 0.2, 0.3, 0.3, 0.4, 0.5, 0.6]),    # a tie breaks the trend
    ("nelson4", [0.0, 1.0] * 6 + [0.0]),                 # thirteen alternating points
    ("nelson7", [0.5] * 14),
    ("nelson8", [1.5, -1.5] * 3 + [1.5]),
    ("we2", [2.5, 1.0, 1.0, 2.5]),                       # two beyond 2σ, but four points apart
    ("we2", [2.5, -2.5, 0.0]),                           # opposite sides
])
def test_near_misses(rule: str, series: list[float]) -> None:
    assert list(rules.RULES[rule](series)) == []


def test_nan_satisfies_nothing_and_breaks_runs() -> None:
    series = [0.5] * 4 + [float("nan")] + [0.5] * 4
    assert list(rules.we4(series)) == []
    assert list(rules.we1([float("nan"), 4.0])) == [1]


def test_rule_sets_and_descriptions() -> None:
    assert rules.resolve("western_electric") == ("we1", "we2", "we3", "we4")
    assert rules.resolve("Nelson") == tuple(f"nelson{i}" for i in range(1, 9))
    assert rules.resolve("rule1") == ("we1",)
    assert rules.resolve("none") == ()
    assert rules.resolve(["we1", "nelson3", "we1"]) == ("we1", "nelson3")
    assert rules.describe("nelson3").startswith("Nelson rule 3: six points in a row")
    for name, fn in rules.RULES.items():  # every rule carries its plain-English definition
        assert fn.__doc__ and ("rule" in rules.describe(name))
    found = rules.evaluate(CASES["we2"][0], rules="western_electric")
    assert list(found["we2"]) == [3, 7] and list(found["we4"]) == []


@pytest.mark.parametrize("bad", ["westinghouse", ["we9"], "nelson9"])
def test_unknown_rule_set(bad: object) -> None:
    with pytest.raises(SPCError, match="unknown rule"):
        rules.resolve(bad)  # type: ignore[arg-type]


def test_unknown_rule_set_on_a_chart() -> None:
    df = pd.DataFrame({"v": np.arange(20.0) % 3})
    with pytest.raises(SPCError, match="unknown rule set 'wecos'"):
        spc.imr(df, value="v", rules="wecos")


# -- where rules do not belong -------------------------------------------------------------------

def test_moving_range_chart_never_gets_run_rules() -> None:
    # 20 small swings then 20 large ones: 19 moving ranges of 1 below MR̄ ≈ 2, then 20 of 3 above
    # it — a textbook "nine on one side" pattern, produced only by the overlap of moving ranges.
    x = [0.0, 1.0] * 10 + [0.0, 3.0] * 10
    i, mr = spc.imr(pd.DataFrame({"x": x}), value="x", rules="nelson")
    assert mr.rules == ("nelson1",)
    assert mr.violations == ()
    assert len(rules.nelson2(mr.z)) > 0  # what would have fired
    assert i.rules == rules.RULE_SETS["nelson"]


def test_r_and_s_charts_only_get_the_beyond_limits_rule(pistonrings: pd.DataFrame) -> None:
    df = pistonrings[pistonrings["trial"]]
    for pair in (spc.xbar_r(df, value="diameter", subgroup="sample", rules="nelson"),
                 spc.xbar_s(df, value="diameter", subgroup="sample", rules="western_electric")):
        assert pair.dispersion.rules in (("nelson1",), ("we1",))
        assert len(pair.location.rules) > 1
    assert spc.xbar_r(df, value="diameter", subgroup="sample", rules="none").dispersion.rules == ()


def test_one_sided_lower_zones_do_not_fire() -> None:
    # A c chart with c̄ ≈ 1.6: 3√c̄ > c̄, so LCL is clipped at 0 and a zero count sits "1.3σ below"
    # the center line. Eight zeros in a row would satisfy WE 3 and WE 4 on a two-sided chart;
    # on this one-sided chart they must not.
    counts = [2, 3, 1, 2, 4, 2, 3, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 1, 2]
    c = spc.c_chart(pd.DataFrame({"x": counts}), defects="x")
    assert c.lcl == 0.0 and c.one_sided.all()
    zeros = set(range(10, 18))
    assert not zeros & {v.index for v in c.violations}
    assert set(rules.we4(c.z)) & zeros  # without the one-sided guard they would fire
    assert list(rules.we3([-1.5] * 5, lower=[False] * 5)) == []
    assert list(rules.we3([1.5] * 5, lower=[False] * 5)) == [3, 4]  # the upper side still works
    assert list(rules.nelson7([-0.5] * 15, lower=[False] * 15)) == []


def test_upper_side_rules_still_fire_on_one_sided_charts() -> None:
    counts = [1, 2, 1, 0, 1, 2, 1, 1, 0, 2, 1, 1, 3, 4, 3, 4, 3, 3, 4, 3]
    c = spc.c_chart(pd.DataFrame({"x": counts}), defects="x", rules="western_electric")
    assert c.one_sided.all()
    assert any(v.rule == "we4" for v in c.violations)  # eight above the center line


def test_with_rules_reevaluates_without_touching_limits(orangejuice: pd.DataFrame) -> None:
    p = spc.p_chart(orangejuice[orangejuice["trial"]], defectives="D", size="size", rules="rule1")
    q = spc.with_rules(p, "nelson")
    assert (q.center, q.lcl, q.ucl) == (p.center, p.lcl, p.ucl)
    assert q.rules == rules.RULE_SETS["nelson"] and len(q.violations) >= len(p.violations)
