"""Run rules at the zone lines: a point *on* a line is not beyond it, so on the ±1σ line it is
within 1σ (Nelson 7) and not beyond 1σ (WE 3, Nelson 6, Nelson 8) — exactly one of the two.

Issue 11, defect 6: Nelson 7 used |z| < 1 while the "beyond 1σ" rules use |z| > 1, so a point
at z = ±1 counted for neither. Count charts put points exactly there: a c chart with c̄ = 9 has
σ = √9 = 3, so counts 6 and 12 sit on the −1σ and +1σ lines.
"""

from __future__ import annotations

import pandas as pd
import pytest

from workbench import spc
from workbench.spc import rules

# Baseline of a c chart with c̄ exactly 9: each block of ten sums to
# 5 + 13 + 9 + 7 + 11 + 10 + 8 + 12 + 6 + 9 = 90, so c̄ = 180 / 20 = 9 and σ = √9 = 3.
BASELINE = [5, 13, 9, 7, 11, 10, 8, 12, 6, 9] * 2
# Fifteen points alternating 6, 12, …, 6 (eight 6s, seven 12s).
ON_THE_LINES = [6, 12] * 7 + [6]


def test_c_chart_counts_on_the_one_sigma_lines_fire_nelson_7() -> None:
    base = spc.c_chart(pd.DataFrame({"x": BASELINE}), defects="x", rules="nelson")
    assert base.center == 9.0 and base.sigma == 3.0
    # LCL = 9 − 3·3 = 0: not clipped, the chart is two-sided, so the lower zones count.
    assert base.lcl == 0.0 and not base.one_sided.any()
    chart = base.apply(pd.DataFrame({"x": ON_THE_LINES}))
    # z(6) = (6 − 9) / 3 = −1 and z(12) = (12 − 9) / 3 = +1, exactly (no rounding: 3 / 3).
    assert list(chart.z) == [-1.0, 1.0] * 7 + [-1.0]
    fired: dict[str, list[int]] = {}
    for v in chart.violations:
        fired.setdefault(v.rule, []).append(v.index)
    # Nelson 7: fifteen in a row within 1σ → the 15th point, index 14.
    # Nelson 4: fourteen alternating up/down → the 14th and 15th points, indexes 13 and 14.
    # Nelson 8 (eight beyond 1σ), Nelson 6 (four of five beyond 1σ): none — on the line is not beyond.
    assert fired == {"nelson7": [14], "nelson4": [13, 14]}


def test_nelson_7_counts_a_point_on_the_line_as_within() -> None:
    # 15 points at |z| = 1 → index 14; before the fix, [] (counted neither within nor beyond).
    assert list(rules.nelson7([-1.0, 1.0] * 7 + [-1.0])) == [14]
    assert list(rules.nelson7([1.0] * 15)) == [14]
    # the smallest step beyond the line breaks the run: 14 within, then 1.0000001 beyond → nothing
    assert list(rules.nelson7([1.0] * 14 + [1.0000001])) == []


@pytest.mark.parametrize(("rule", "series"), [
    ("we1", [3.0, -3.0, 3.0]),            # on the control limits: not beyond them
    ("nelson1", [3.0, -3.0, 3.0]),
    ("we2", [2.0, 2.0, 2.0]),             # on the +2σ line three times: not "beyond 2σ"
    ("nelson5", [-2.0, -2.0, -2.0]),
    ("we3", [1.0] * 5),                   # on the +1σ line five times: not "beyond 1σ"
    ("nelson6", [-1.0] * 5),
    ("nelson8", [1.0, -1.0] * 4),         # eight on the ±1σ lines: all in zone C, none beyond
    ("nelson8", [1.5] * 7 + [1.0] + [1.5] * 7),   # a point on the line ends the run: 7 + 7, never 8
    ("we4", [0.5] * 7 + [0.0] + [0.5] * 7),       # on the center line: neither side, ends the run
])
def test_a_point_on_a_line_is_not_beyond_it(rule: str, series: list[float]) -> None:
    assert list(rules.RULES[rule](series)) == []


@pytest.mark.parametrize("z", [0.0, 0.5, 1.0, -1.0, 1.5, -2.0, 2.0, 3.0, -3.5])
def test_every_point_is_within_or_beyond_one_sigma_never_both_or_neither(z: float) -> None:
    # A constant series of 15: Nelson 7 fires (at 14) iff |z| ≤ 1, Nelson 8 (from index 7) iff |z| > 1.
    series = [z] * 15
    within = list(rules.nelson7(series)) == [14]
    beyond = list(rules.nelson8(series)) == list(range(7, 15))
    assert within != beyond
    assert within == (abs(z) <= 1.0)


def test_one_sided_lower_side_stays_excluded_at_the_line() -> None:
    # Where the LCL was clipped at 0 a value below the center line counts for no lower-side
    # pattern, zone C included — also at exactly −1σ. The upper line still counts as within.
    assert list(rules.nelson7([-1.0] * 15, lower=[False] * 15)) == []
    assert list(rules.nelson7([1.0] * 15, lower=[False] * 15)) == [14]
