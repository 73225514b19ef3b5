"""ISO 2859-1 look-ups against the published tables.

Expected values are read from ISO 2859-1:1999 Table 1 (sample size code letters) and Table 2-A
(single sampling plans for normal inspection, master table) — identical in ANSI/ASQ Z1.4-2003
Tables I and II-A and MIL-STD-105E.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workbench.errors import SamplingError
from workbench.sampling import LEVELS, code_letter, single_sampling_plan


@pytest.mark.parametrize(
    ("lot", "level", "letter"),
    [
        (8, "II", "A"), (9, "II", "B"), (1000, "II", "J"), (1200, "II", "J"), (1201, "II", "K"),
        (3200, "II", "K"), (3201, "II", "L"), (500_001, "II", "Q"), (1000, "I", "G"),
        (1000, "III", "K"), (10_000, "S-1", "C"), (10_000, "S-4", "G"), (150, "S-3", "C"),
        (2, "III", "B"), (35_001, "S-2", "E"), (1_000_000, "S-4", "K"),
    ],
)
def test_code_letters_table_1(lot: int, level: str, letter: str) -> None:
    assert code_letter(lot, level) == letter


@pytest.mark.parametrize(
    ("lot", "aql", "n", "ac", "re"),
    [
        # Table 2-A, level II: letter J (n = 80) across AQLs
        (1000, 0.65, 80, 1, 2), (1000, 1.0, 80, 2, 3), (1000, 1.5, 80, 3, 4),
        (1000, 2.5, 80, 5, 6), (1000, 4.0, 80, 7, 8),
        # letter H (n = 50) and L (n = 200)
        (500, 1.0, 50, 1, 2), (5000, 1.0, 200, 5, 6), (5000, 0.65, 200, 3, 4),
        # arrows: AQL 1.0 at F (↑ to E, n = 13, 0/1) and at G (↓ to H, n = 50, 1/2)
        (100, 1.0, 13, 0, 1), (200, 1.0, 50, 1, 2),
        # ↓ above the 0/1 cell: AQL 0.10 at letter J → K, n = 125, 0/1
        (1000, 0.10, 125, 0, 1),
        # ↑ below 21/22: AQL 1.0 at R → Q, n = 1250, 21/22
        (600_000, 1.0, 1250, 21, 22),
        # sample larger than the lot → 100 % inspection with the plan's Ac/Re
        (5, 1.0, 5, 0, 1),
    ],
)
def test_normal_single_sampling_table_2a(lot: int, aql: float, n: int, ac: int, re: int) -> None:
    plan = single_sampling_plan(lot, aql=aql, level="II")
    assert (plan.sample_size, plan.accept, plan.reject) == (n, ac, re)


def test_decision() -> None:
    plan = single_sampling_plan(1000, aql=1.0)
    assert plan.decide(2) == "accept" and plan.decide(3) == "reject"
    with pytest.raises(SamplingError, match="negative"):
        plan.decide(-1)


def test_bad_requests_are_clear_errors() -> None:
    with pytest.raises(SamplingError, match="inspection level 'IV'"):
        code_letter(100, "IV")
    with pytest.raises(SamplingError, match="lot size must be at least 2"):
        code_letter(1)
    with pytest.raises(SamplingError, match=r"AQL 0\.7 is not a preferred AQL"):
        single_sampling_plan(100, aql=0.7)


@given(lot=st.integers(2, 2_000_000), aql=st.sampled_from([0.010, 0.065, 0.25, 1.0, 2.5, 6.5]),
       level=st.sampled_from(LEVELS))
def test_plans_are_consistent(lot: int, aql: float, level: str) -> None:
    plan = single_sampling_plan(lot, aql=aql, level=level)
    assert plan.reject == plan.accept + 1
    assert 1 <= plan.sample_size <= lot
    assert plan.decide(plan.accept) == "accept"
    if plan.reject <= plan.sample_size:
        assert plan.decide(plan.reject) == "reject"
