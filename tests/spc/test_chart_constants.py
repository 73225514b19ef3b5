"""Control-chart constants computed from their definitions vs. the published table.

Source of the expected values: D.C. Montgomery, *Introduction to Statistical Quality Control*,
Appendix VI "Factors for Constructing Variables Control Charts" (identical in the 5th–8th
editions; e.g. 6th ed. p. 702). The table prints A2, A3, B3, B4, d2, d3, D3, D4 to three
decimals and c4 to four. It derives each factor from *rounded* d2, d3 and c4, so an entry may
differ from the exact value by up to one unit in the last printed digit (D4 for n = 3 is printed
2.574; 1 + 3·0.88837/1.69257 = 2.5746) — the tolerance below is therefore one unit in the last
place, not half of one.
"""

from __future__ import annotations

import math

import pytest

from workbench.errors import SPCError
from workbench.spc import constants

# n: (A2, A3, c4, B3, B4, d2, d3, D3, D4) — Montgomery, Appendix VI.
MONTGOMERY_APPENDIX_VI = {
    2: (1.880, 2.659, 0.7979, 0, 3.267, 1.128, 0.853, 0, 3.267),
    3: (1.023, 1.954, 0.8862, 0, 2.568, 1.693, 0.888, 0, 2.574),
    4: (0.729, 1.628, 0.9213, 0, 2.266, 2.059, 0.880, 0, 2.282),
    5: (0.577, 1.427, 0.9400, 0, 2.089, 2.326, 0.864, 0, 2.114),
    6: (0.483, 1.287, 0.9515, 0.030, 1.970, 2.534, 0.848, 0, 2.004),
    7: (0.419, 1.182, 0.9594, 0.118, 1.882, 2.704, 0.833, 0.076, 1.924),
    8: (0.373, 1.099, 0.9650, 0.185, 1.815, 2.847, 0.820, 0.136, 1.864),
    9: (0.337, 1.032, 0.9693, 0.239, 1.761, 2.970, 0.808, 0.184, 1.816),
    10: (0.308, 0.975, 0.9727, 0.284, 1.716, 3.078, 0.797, 0.223, 1.777),
    11: (0.285, 0.927, 0.9754, 0.321, 1.679, 3.173, 0.787, 0.256, 1.744),
    12: (0.266, 0.886, 0.9776, 0.354, 1.646, 3.258, 0.778, 0.283, 1.717),
    13: (0.249, 0.850, 0.9794, 0.382, 1.618, 3.336, 0.770, 0.307, 1.693),
    14: (0.235, 0.817, 0.9810, 0.406, 1.594, 3.407, 0.763, 0.328, 1.672),
    15: (0.223, 0.789, 0.9823, 0.428, 1.572, 3.472, 0.756, 0.347, 1.653),
    16: (0.212, 0.763, 0.9835, 0.448, 1.552, 3.532, 0.750, 0.363, 1.637),
    17: (0.203, 0.739, 0.9845, 0.466, 1.534, 3.588, 0.744, 0.378, 1.622),
    18: (0.194, 0.718, 0.9854, 0.482, 1.518, 3.640, 0.739, 0.391, 1.608),
    19: (0.187, 0.698, 0.9862, 0.497, 1.503, 3.689, 0.734, 0.403, 1.597),
    20: (0.180, 0.680, 0.9869, 0.510, 1.490, 3.735, 0.729, 0.415, 1.585),
    21: (0.173, 0.663, 0.9876, 0.523, 1.477, 3.778, 0.724, 0.425, 1.575),
    22: (0.167, 0.647, 0.9882, 0.534, 1.466, 3.819, 0.720, 0.434, 1.566),
    23: (0.162, 0.633, 0.9887, 0.545, 1.455, 3.858, 0.716, 0.443, 1.557),
    24: (0.157, 0.619, 0.9892, 0.555, 1.445, 3.895, 0.712, 0.451, 1.548),
    25: (0.153, 0.606, 0.9896, 0.565, 1.435, 3.931, 0.708, 0.459, 1.541),
}
FUNCTIONS = (constants.a2, constants.a3, constants.c4, constants.b3, constants.b4, constants.d2,
             constants.d3, constants.d3_factor, constants.d4_factor)
NAMES = ("A2", "A3", "c4", "B3", "B4", "d2", "d3", "D3", "D4")


@pytest.mark.parametrize("n", sorted(MONTGOMERY_APPENDIX_VI))
def test_factors_match_montgomery_appendix_vi(n: int) -> None:
    for name, fn, printed in zip(NAMES, FUNCTIONS, MONTGOMERY_APPENDIX_VI[n], strict=True):
        ulp = 1e-4 if name == "c4" else 1e-3
        assert fn(n) == pytest.approx(printed, abs=ulp + 1e-9), f"{name}({n})"


def test_e2_matches_aiag_table() -> None:
    # AIAG, Statistical Process Control reference manual (2nd ed., 2005), Appendix E:
    # E2 for individuals charts with moving ranges of span n = 2 … 10.
    aiag = {2: 2.660, 3: 1.772, 4: 1.457, 5: 1.290, 6: 1.184, 7: 1.109, 8: 1.054, 9: 1.010, 10: 0.975}
    # AIAG divides 3 by d2 already rounded to three decimals (3/1.128 = 2.660 while 3/d2 is
    # 2.6587), so the printed value is reproduced exactly from our d2 rounded the same way.
    for n, printed in aiag.items():
        assert round(3 / round(constants.d2(n), 3), 3) == printed
        assert constants.e2(n) == pytest.approx(printed, abs=2e-3)


def test_closed_forms() -> None:
    # For n = 2 the range is |X1 − X2| with X1 − X2 ~ N(0, 2): E = 2/√π, Var = 2 − 4/π;
    # for n = 3, E[R] = 3/√π; c4(2) = √(2/π). (Textbook identities, e.g. Harter 1960.)
    assert constants.d2(2) == pytest.approx(2 / math.sqrt(math.pi), rel=1e-12)
    assert constants.d3(2) == pytest.approx(math.sqrt(2 - 4 / math.pi), rel=1e-10)
    assert constants.d2(3) == pytest.approx(3 / math.sqrt(math.pi), rel=1e-12)
    assert constants.c4(2) == pytest.approx(math.sqrt(2 / math.pi), rel=1e-12)


def test_more_digits_than_the_book() -> None:
    # Four-decimal values from the SixSigma R package vignette "Shewhart Constants for Control
    # Charts" (Cano, Moguerza & Redchuk), also computed by numerical integration.
    sixsigma = {2: (1.1284, 0.8525), 5: (2.3259, 0.8641), 10: (3.0775, 0.7971), 24: (3.8953, 0.7121)}
    for n, (d2, d3) in sixsigma.items():
        assert constants.d2(n) == pytest.approx(d2, abs=5e-5)
        assert constants.d3(n) == pytest.approx(d3, abs=5e-5)


def test_large_subgroups_and_table() -> None:
    assert 5.0 < constants.d2(100) < 5.03  # E[R] of 100 normals ≈ 5.015 (Harter 1960)
    assert constants.c4(500) == pytest.approx(1 - 1 / (4 * 499), abs=1e-6)  # c4 ≈ 1 − 1/(4(n−1))
    table = constants.table(10)
    assert list(table.index) == list(range(2, 11))
    assert table.loc[5, "A2"] == pytest.approx(0.577, abs=1e-3)


@pytest.mark.parametrize("bad", [1, 0, -3, 2.5, True])
def test_bad_subgroup_size(bad: object) -> None:
    with pytest.raises(SPCError, match="n ≥ 2"):
        constants.d2(bad)  # type: ignore[arg-type]
