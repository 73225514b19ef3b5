"""Attribute acceptance sampling per ISO 2859-1 / ANSI/ASQ Z1.4 (single sampling).

Implemented so far: sample-size code letters for every inspection level (ISO 2859-1 Table 1) and
single sampling plans for normal inspection (Table 2-A) with the table's arrows resolved, for
AQL 0.010 … 6.5 %. Tightened and reduced inspection and the switching rules come next.

Table 2-A is a diagonal table: along an AQL column, as the code letter (sample size) grows, the
plans run 0/1, ↑, ↓, 1/2, 2/3, 3/4, 5/6, 7/8, 10/11, 14/15, 21/22 and then ↑ to the end; above
the 0/1 cell every arrow points down to it. The 0/1 cell of an AQL sits at the sample size where
n × AQL / 100 ≈ 0.125 (e.g. AQL 1.0 → n = 13, letter E). The arrows are resolved as the standard
says: use the first plan below (↓) or above (↑) the arrow, *with that plan's sample size*; when
the sample size reaches the lot size, every unit is inspected.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from workbench.errors import SamplingError

LETTERS = "ABCDEFGHJKLMNPQR"
SAMPLE_SIZES = (2, 3, 5, 8, 13, 20, 32, 50, 80, 125, 200, 315, 500, 800, 1250, 2000)
LEVELS = ("S-1", "S-2", "S-3", "S-4", "I", "II", "III")

# ISO 2859-1 Table 1: upper lot-size bound of each row → code letter per level.
_LOT_UPPER = (8, 15, 25, 50, 90, 150, 280, 500, 1200, 3200, 10_000, 35_000, 150_000, 500_000)
_TABLE_1 = (
    #      S-1  S-2  S-3  S-4   I    II  III
    ("A", "A", "A", "A", "A", "A", "B"),   # 2–8
    ("A", "A", "A", "A", "A", "B", "C"),   # 9–15
    ("A", "A", "B", "B", "B", "C", "D"),   # 16–25
    ("A", "B", "B", "C", "C", "D", "E"),   # 26–50
    ("B", "B", "C", "C", "C", "E", "F"),   # 51–90
    ("B", "B", "C", "D", "D", "F", "G"),   # 91–150
    ("B", "C", "D", "E", "E", "G", "H"),   # 151–280
    ("B", "C", "D", "E", "F", "H", "J"),   # 281–500
    ("C", "C", "E", "F", "G", "J", "K"),   # 501–1 200
    ("C", "D", "E", "G", "H", "K", "L"),   # 1 201–3 200
    ("C", "D", "F", "G", "J", "L", "M"),   # 3 201–10 000
    ("C", "D", "F", "H", "K", "M", "N"),   # 10 001–35 000
    ("D", "E", "G", "J", "L", "N", "P"),   # 35 001–150 000
    ("D", "E", "G", "J", "M", "P", "Q"),   # 150 001–500 000
    ("D", "E", "H", "K", "N", "Q", "R"),   # 500 001 and over
)

# Preferred AQLs (percent nonconforming) of Table 2-A with the letter index of their 0/1 plan.
_ZERO_ONE_AT = {0.010: 14, 0.015: 13, 0.025: 12, 0.040: 11, 0.065: 10, 0.10: 9, 0.15: 8, 0.25: 7,
                0.40: 6, 0.65: 5, 1.0: 4, 1.5: 3, 2.5: 2, 4.0: 1, 6.5: 0}
_DIAGONAL = ((0, 1), None, None, (1, 2), (2, 3), (3, 4), (5, 6), (7, 8), (10, 11), (14, 15), (21, 22))


@dataclass(frozen=True)
class SamplingPlan:
    """A single sampling plan: inspect ``sample_size`` units, accept the lot with at most
    ``accept`` nonconforming units, reject it with ``reject`` or more."""

    lot_size: int
    aql: float
    level: str
    inspection: str
    code_letter: str
    plan_letter: str
    sample_size: int
    accept: int
    reject: int

    def decide(self, defects: int) -> str:
        """``"accept"`` or ``"reject"`` for the number of nonconforming units found."""
        if defects < 0:
            raise SamplingError(f"defects cannot be negative (got {defects})")
        if defects > self.sample_size:
            raise SamplingError(f"{defects} defects in a sample of {self.sample_size} is impossible")
        return "accept" if defects <= self.accept else "reject"


def code_letter(lot_size: int, level: str = "II") -> str:
    """Sample-size code letter for a lot (ISO 2859-1 Table 1)."""
    if level not in LEVELS:
        raise SamplingError(f"unknown inspection level {level!r}; use one of {', '.join(LEVELS)}")
    if lot_size < 2:
        raise SamplingError(f"lot size must be at least 2 (got {lot_size})")
    row = bisect.bisect_left(_LOT_UPPER, lot_size)
    return _TABLE_1[row][LEVELS.index(level)]


def _aql_key(aql: float) -> float:
    for key in _ZERO_ONE_AT:
        if abs(key - aql) < 1e-9:
            return key
    raise SamplingError(f"AQL {aql} is not a preferred AQL of the tables supported so far "
                        f"({', '.join(f'{k:g}' for k in _ZERO_ONE_AT)})")


def single_sampling_plan(lot_size: int, *, aql: float, level: str = "II",
                         inspection: str = "normal") -> SamplingPlan:
    """The single sampling plan for a lot (ISO 2859-1 Tables 1 and 2-A, arrows resolved).

    Parameters
    ----------
    lot_size : int
        Units in the lot (≥ 2).
    aql : float
        Acceptance quality limit in percent nonconforming (a preferred value, 0.010 … 6.5).
    level : str
        Inspection level: S-1 … S-4, I, II (the usual default) or III.
    inspection : str
        ``"normal"`` (tightened and reduced are not implemented yet).
    """
    if inspection != "normal":
        raise SamplingError(f"{inspection} inspection is not implemented yet; only normal")
    letter = code_letter(lot_size, level)
    k0 = _ZERO_ONE_AT[_aql_key(aql)]
    i = LETTERS.index(letter)
    pos = i - k0
    if pos < 0:
        pos = 0          # ↓ to the 0/1 plan
    elif pos == 1:
        pos = 0          # ↑ back to the 0/1 plan
    elif pos == 2:
        pos = 3          # ↓ to the 1/2 plan
    elif pos >= len(_DIAGONAL):
        pos = len(_DIAGONAL) - 1   # ↑ to 21/22
    j = k0 + pos
    if j >= len(LETTERS):
        raise SamplingError(f"no plan for AQL {aql} at letter {letter}")
    accept, reject = _DIAGONAL[pos]  # type: ignore[misc]
    n = min(SAMPLE_SIZES[j], lot_size)
    return SamplingPlan(lot_size, aql, level, inspection, letter, LETTERS[j], n, accept, reject)
