"""Attribute acceptance sampling per ISO 2859-1 / ANSI/ASQ Z1.4 (single sampling).

What is here
------------
* Sample-size code letters for every inspection level (ISO 2859-1 Table 1 = Z1.4 Table I).
* Single sampling plans for normal, tightened and reduced inspection over all 26 preferred AQLs
  (0.010 … 10 percent nonconforming, and up to 1000 nonconformities per 100 units), with the
  table arrows resolved as the standard says: use the first plan below (↓) or above (↑) the
  arrow *with that plan's sample size*; when the sample size reaches the lot size, every unit is
  inspected (100 %).
* Lot decisions, including the reduced-inspection rule for defect counts between Ac and Re.
* The switching rules as a small pure state machine (:class:`SwitchingState`, :func:`next_state`)
  and :func:`inspection_schedule`, which replays an inspection history.

Which tables
------------
The three master tables below are the published cells, row by row (one row per code letter, one
token per AQL column; ``v``/``^`` are the arrows, ``.`` is an empty cell). Normal (2-A / II-A)
and tightened (2-B / II-B) are those of MIL-STD-105E and ANSI/ASQ Z1.4-2003/2008; the
ISO 2859-1:1999 foreword lists no change to the single normal and tightened plans (published
ISO 1999 normal plans checked in the tests agree). The reduced table is **Z1.4 Table II-C**
(= MIL-STD-105E and ISO 2859-1:1989 Table II-C), whose Ac/Re pairs have a gap (0/2, 1/3,
1/4, 2/5 …): a lot with Ac < d < Re is accepted but normal inspection is reinstated
(Z1.4 §8.3.4 b and §10.1.4).
ISO 2859-1:1999 changed Table 2-C to "eliminate the gap between the acceptance and rejection
numbers" (its foreword); that table is *not* encoded here because no copy could be checked cell by
cell — use reduced inspection only under a Z1.4 (or ISO 2859-1:1989) contract.

The switching score (normal → reduced) is ISO 2859-1:1999's (clause 9.3); Z1.4 uses limit
numbers (its Table VIII), which are not implemented.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from workbench.errors import SamplingError

LETTERS = "ABCDEFGHJKLMNPQR"
SAMPLE_SIZES = (2, 3, 5, 8, 13, 20, 32, 50, 80, 125, 200, 315, 500, 800, 1250, 2000)
LEVELS = ("S-1", "S-2", "S-3", "S-4", "I", "II", "III")
INSPECTIONS = ("normal", "tightened", "reduced")
MEASURES = ("nonconforming", "nonconformities")

# The 26 preferred AQLs of the master tables, in column order. Above 10 they are nonconformities
# per 100 units only.
AQLS = (0.010, 0.015, 0.025, 0.040, 0.065, 0.10, 0.15, 0.25, 0.40, 0.65, 1.0, 1.5, 2.5, 4.0, 6.5,
        10.0, 15.0, 25.0, 40.0, 65.0, 100.0, 150.0, 250.0, 400.0, 650.0, 1000.0)
MAX_PERCENT_AQL = 10.0

# Tightened inspection has one more row, S (n = 3150), used only at AQL 0.025.
TIGHTENED_LETTERS = LETTERS + "S"
TIGHTENED_SAMPLE_SIZES = (*SAMPLE_SIZES, 3150)
REDUCED_SAMPLE_SIZES = (2, 2, 2, 3, 5, 8, 13, 20, 32, 50, 80, 125, 200, 315, 500, 800)

# ISO 2859-1 Table 1: upper lot-size bound of each row → code letter per level. Checked row by
# row against two published copies (see tests/test_sampling.py).
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

# Master tables. Columns: 0.010 0.015 0.025 0.040 0.065 0.10 0.15 0.25 0.40 0.65 1.0 1.5 2.5 4.0
# 6.5 10 15 25 40 65 100 150 250 400 650 1000.
_TABLE_2A = """
A v v v v v v v v v v v v v v 0/1 v v 1/2 2/3 3/4 5/6 7/8 10/11 14/15 21/22 30/31
B v v v v v v v v v v v v v 0/1 ^ v 1/2 2/3 3/4 5/6 7/8 10/11 14/15 21/22 30/31 44/45
C v v v v v v v v v v v v 0/1 ^ v 1/2 2/3 3/4 5/6 7/8 10/11 14/15 21/22 30/31 44/45 ^
D v v v v v v v v v v v 0/1 ^ v 1/2 2/3 3/4 5/6 7/8 10/11 14/15 21/22 30/31 44/45 ^ ^
E v v v v v v v v v v 0/1 ^ v 1/2 2/3 3/4 5/6 7/8 10/11 14/15 21/22 30/31 44/45 ^ ^ ^
F v v v v v v v v v 0/1 ^ v 1/2 2/3 3/4 5/6 7/8 10/11 14/15 21/22 ^ ^ ^ ^ ^ ^
G v v v v v v v v 0/1 ^ v 1/2 2/3 3/4 5/6 7/8 10/11 14/15 21/22 ^ ^ ^ ^ ^ ^ ^
H v v v v v v v 0/1 ^ v 1/2 2/3 3/4 5/6 7/8 10/11 14/15 21/22 ^ ^ ^ ^ ^ ^ ^ ^
J v v v v v v 0/1 ^ v 1/2 2/3 3/4 5/6 7/8 10/11 14/15 21/22 ^ ^ ^ ^ ^ ^ ^ ^ ^
K v v v v v 0/1 ^ v 1/2 2/3 3/4 5/6 7/8 10/11 14/15 21/22 ^ ^ ^ ^ ^ ^ ^ ^ ^ ^
L v v v v 0/1 ^ v 1/2 2/3 3/4 5/6 7/8 10/11 14/15 21/22 ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^
M v v v 0/1 ^ v 1/2 2/3 3/4 5/6 7/8 10/11 14/15 21/22 ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^
N v v 0/1 ^ v 1/2 2/3 3/4 5/6 7/8 10/11 14/15 21/22 ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^
P v 0/1 ^ v 1/2 2/3 3/4 5/6 7/8 10/11 14/15 21/22 ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^
Q 0/1 ^ v 1/2 2/3 3/4 5/6 7/8 10/11 14/15 21/22 ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^
R ^ ^ 1/2 2/3 3/4 5/6 7/8 10/11 14/15 21/22 ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^
"""

_TABLE_2B = """
A v v v v v v v v v v v v v v v v v v 1/2 2/3 3/4 5/6 8/9 12/13 18/19 27/28
B v v v v v v v v v v v v v v 0/1 v v 1/2 2/3 3/4 5/6 8/9 12/13 18/19 27/28 41/42
C v v v v v v v v v v v v v 0/1 v v 1/2 2/3 3/4 5/6 8/9 12/13 18/19 27/28 41/42 ^
D v v v v v v v v v v v v 0/1 v v 1/2 2/3 3/4 5/6 8/9 12/13 18/19 27/28 41/42 ^ ^
E v v v v v v v v v v v 0/1 v v 1/2 2/3 3/4 5/6 8/9 12/13 18/19 27/28 41/42 ^ ^ ^
F v v v v v v v v v v 0/1 v v 1/2 2/3 3/4 5/6 8/9 12/13 18/19 ^ ^ ^ ^ ^ ^
G v v v v v v v v v 0/1 v v 1/2 2/3 3/4 5/6 8/9 12/13 18/19 ^ ^ ^ ^ ^ ^ ^
H v v v v v v v v 0/1 v v 1/2 2/3 3/4 5/6 8/9 12/13 18/19 ^ ^ ^ ^ ^ ^ ^ ^
J v v v v v v v 0/1 v v 1/2 2/3 3/4 5/6 8/9 12/13 18/19 ^ ^ ^ ^ ^ ^ ^ ^ ^
K v v v v v v 0/1 v v 1/2 2/3 3/4 5/6 8/9 12/13 18/19 ^ ^ ^ ^ ^ ^ ^ ^ ^ ^
L v v v v v 0/1 v v 1/2 2/3 3/4 5/6 8/9 12/13 18/19 ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^
M v v v v 0/1 v v 1/2 2/3 3/4 5/6 8/9 12/13 18/19 ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^
N v v v 0/1 v v 1/2 2/3 3/4 5/6 8/9 12/13 18/19 ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^
P v v 0/1 v v 1/2 2/3 3/4 5/6 8/9 12/13 18/19 ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^
Q v 0/1 v v 1/2 2/3 3/4 5/6 8/9 12/13 18/19 ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^
R 0/1 ^ v 1/2 2/3 3/4 5/6 8/9 12/13 18/19 ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^
S . . 1/2 . . . . . . . . . . . . . . . . . . . . . . .
"""

_TABLE_2C_Z14 = """
A v v v v v v v v v v v v v v 0/1 v v 1/2 2/3 3/4 5/6 7/8 10/11 14/15 21/22 30/31
B v v v v v v v v v v v v v 0/1 ^ v 0/2 1/3 2/4 3/5 5/6 7/8 10/11 14/15 21/22 30/31
C v v v v v v v v v v v v 0/1 ^ v 0/2 1/3 1/4 2/5 3/6 5/8 7/10 10/13 14/17 21/24 ^
D v v v v v v v v v v v 0/1 ^ v 0/2 1/3 1/4 2/5 3/6 5/8 7/10 10/13 14/17 21/24 ^ ^
E v v v v v v v v v v 0/1 ^ v 0/2 1/3 1/4 2/5 3/6 5/8 7/10 10/13 14/17 21/24 ^ ^ ^
F v v v v v v v v v 0/1 ^ v 0/2 1/3 1/4 2/5 3/6 5/8 7/10 10/13 ^ ^ ^ ^ ^ ^
G v v v v v v v v 0/1 ^ v 0/2 1/3 1/4 2/5 3/6 5/8 7/10 10/13 ^ ^ ^ ^ ^ ^ ^
H v v v v v v v 0/1 ^ v 0/2 1/3 1/4 2/5 3/6 5/8 7/10 10/13 ^ ^ ^ ^ ^ ^ ^ ^
J v v v v v v 0/1 ^ v 0/2 1/3 1/4 2/5 3/6 5/8 7/10 10/13 ^ ^ ^ ^ ^ ^ ^ ^ ^
K v v v v v 0/1 ^ v 0/2 1/3 1/4 2/5 3/6 5/8 7/10 10/13 ^ ^ ^ ^ ^ ^ ^ ^ ^ ^
L v v v v 0/1 ^ v 0/2 1/3 1/4 2/5 3/6 5/8 7/10 10/13 ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^
M v v v 0/1 ^ v 0/2 1/3 1/4 2/5 3/6 5/8 7/10 10/13 ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^
N v v 0/1 ^ v 0/2 1/3 1/4 2/5 3/6 5/8 7/10 10/13 ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^
P v 0/1 ^ v 0/2 1/3 1/4 2/5 3/6 5/8 7/10 10/13 ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^
Q 0/1 ^ v 0/2 1/3 1/4 2/5 3/6 5/8 7/10 10/13 ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^
R ^ ^ 0/2 1/3 1/4 2/5 3/6 5/8 7/10 10/13 ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^
"""

_Cell = tuple[int, int] | str | None


def _parse_table(text: str, letters: str) -> tuple[tuple[_Cell, ...], ...]:
    rows: list[tuple[_Cell, ...]] = []
    for line, letter in zip(text.strip().splitlines(), letters, strict=True):
        head, *tokens = line.split()
        if head != letter or len(tokens) != len(AQLS):
            raise AssertionError(f"malformed master-table row {line!r}")  # pragma: no cover
        cells: list[_Cell] = []
        for tok in tokens:
            if tok in ("v", "^"):
                cells.append(tok)
            elif tok == ".":
                cells.append(None)
            else:
                ac, re_ = tok.split("/")
                cells.append((int(ac), int(re_)))
        rows.append(tuple(cells))
    return tuple(rows)


_MASTER: dict[str, tuple[tuple[tuple[_Cell, ...], ...], str, tuple[int, ...]]] = {
    "normal": (_parse_table(_TABLE_2A, LETTERS), LETTERS, SAMPLE_SIZES),
    "tightened": (_parse_table(_TABLE_2B, TIGHTENED_LETTERS), TIGHTENED_LETTERS, TIGHTENED_SAMPLE_SIZES),
    "reduced": (_parse_table(_TABLE_2C_Z14, LETTERS), LETTERS, REDUCED_SAMPLE_SIZES),
}
TABLE_NAMES = {
    "normal": "ISO 2859-1 Table 2-A / Z1.4 Table II-A",
    "tightened": "ISO 2859-1 Table 2-B / Z1.4 Table II-B",
    "reduced": "ANSI/ASQ Z1.4 Table II-C (= ISO 2859-1:1989 Table II-C)",
}


@dataclass(frozen=True)
class SamplingPlan:
    """A single sampling plan: inspect ``sample_size`` units, accept the lot with at most
    ``accept`` nonconforming units (or nonconformities), reject it with ``reject`` or more.

    ``code_letter`` is the letter of the lot (Table 1), ``plan_letter`` the letter whose plan is
    used after following the table's arrows. ``table_sample_size`` is the plan's sample size in
    the table; ``sample_size`` is smaller only when the lot is smaller (100 % inspection).
    Under reduced inspection ``reject`` may exceed ``accept + 1``.
    """

    lot_size: int
    aql: float
    level: str
    inspection: str
    code_letter: str
    plan_letter: str
    sample_size: int
    accept: int
    reject: int
    measure: str = "nonconforming"
    table_sample_size: int = 0

    @property
    def full_inspection(self) -> bool:
        """Whether the table's sample size reached the lot size, so every unit is inspected."""
        return self.sample_size >= self.lot_size

    def _check(self, defects: int) -> int:
        if isinstance(defects, bool) or not float(defects).is_integer():
            raise SamplingError(f"defects must be a whole number (got {defects!r})")
        d = int(defects)
        if d < 0:
            raise SamplingError(f"defects cannot be negative (got {d})")
        if self.measure == "nonconforming" and d > self.sample_size:
            raise SamplingError(f"{d} nonconforming units in a sample of {self.sample_size} is impossible")
        return d

    def decide(self, defects: int) -> str:
        """``"accept"`` or ``"reject"``: what happens to the lot.

        Under reduced inspection a count between Ac and Re still accepts the lot (but reinstates
        normal inspection — see :meth:`outcome`).
        """
        return "reject" if self._check(defects) >= self.reject else "accept"

    def outcome(self, defects: int) -> str:
        """``"accept"``, ``"reject"`` or ``"accept_reinstate_normal"`` (reduced, Ac < d < Re)."""
        d = self._check(defects)
        if d <= self.accept:
            return "accept"
        if d >= self.reject:
            return "reject"
        return "accept_reinstate_normal"


def code_letter(lot_size: int, level: str = "II") -> str:
    """Sample-size code letter for a lot (ISO 2859-1 Table 1).

    Examples
    --------
    >>> code_letter(1000, "II")
    'J'
    """
    if level not in LEVELS:
        raise SamplingError(f"unknown inspection level {level!r}; use one of {', '.join(LEVELS)}")
    if isinstance(lot_size, bool) or not float(lot_size).is_integer():
        raise SamplingError(f"lot size must be a whole number (got {lot_size!r})")
    if lot_size < 2:
        raise SamplingError(f"lot size must be at least 2 (got {lot_size})")
    row = bisect.bisect_left(_LOT_UPPER, lot_size)
    return _TABLE_1[row][LEVELS.index(level)]


def _aql_index(aql: float) -> int:
    for i, key in enumerate(AQLS):
        if math.isclose(key, aql, rel_tol=1e-9):
            return i
    raise SamplingError(f"AQL {aql} is not a preferred AQL of the tables "
                        f"({', '.join(f'{k:g}' for k in AQLS)})")


def _measure(aql: float, measure: str | None) -> str:
    if measure is None:
        return "nonconforming" if aql <= MAX_PERCENT_AQL else "nonconformities"
    if measure not in MEASURES:
        raise SamplingError(f"unknown measure {measure!r}; use one of {', '.join(MEASURES)}")
    if measure == "nonconforming" and aql > MAX_PERCENT_AQL:
        raise SamplingError(f"AQL {aql:g} exists only for nonconformities per 100 units; percent "
                            f"nonconforming goes up to AQL {MAX_PERCENT_AQL:g}")
    return measure


def _check_inspection(inspection: str) -> None:
    if inspection not in INSPECTIONS:
        raise SamplingError(f"unknown inspection type {inspection!r}; use one of {', '.join(INSPECTIONS)}")


def table_plan(letter: str, *, aql: float, inspection: str = "normal") -> tuple[str, int, int, int]:
    """Look up the master table: ``(plan_letter, sample_size, accept, reject)`` for a code letter.

    Arrows are followed to the first plan below (↓) or above (↑); the sample size is that plan's.

    Examples
    --------
    >>> table_plan("F", aql=1.0)          # ↑ to E
    ('E', 13, 0, 1)
    >>> table_plan("J", aql=1.0, inspection="reduced")
    ('J', 32, 1, 3)
    """
    _check_inspection(inspection)
    if letter not in LETTERS:
        raise SamplingError(f"unknown code letter {letter!r}; use one of {', '.join(LETTERS)}")
    grid, letters, sizes = _MASTER[inspection]
    col = _aql_index(aql)
    row = letters.index(letter)
    cell = grid[row][col]
    while isinstance(cell, str):
        step = 1 if cell == "v" else -1
        row += step
        # The published tables never point off their edge; a failure here is a table typo.
        if not 0 <= row < len(grid):  # pragma: no cover
            raise AssertionError(f"arrow leaves the table at {letter}/{aql}")
        cell = grid[row][col]
    if cell is None:  # pragma: no cover - every arrow lands on a plan (checked by the tests)
        raise AssertionError(f"arrow ends on an empty cell at {letter}/{aql}")
    return letters[row], sizes[row], cell[0], cell[1]


def single_sampling_plan(lot_size: int, *, aql: float, level: str = "II",
                         inspection: str = "normal", measure: str | None = None) -> SamplingPlan:
    """The single sampling plan for a lot (Table 1 and the master tables, arrows resolved).

    Parameters
    ----------
    lot_size : int
        Units in the lot (≥ 2).
    aql : float
        Acceptance quality limit: a preferred value, 0.010 … 10 (percent nonconforming) or
        0.010 … 1000 (nonconformities per 100 units).
    level : str
        Inspection level: S-1 … S-4, I, II (the usual default) or III.
    inspection : str
        ``"normal"``, ``"tightened"`` or ``"reduced"`` (Z1.4 Table II-C; see the module notes).
    measure : str, optional
        ``"nonconforming"`` (units) or ``"nonconformities"`` (per 100 units). Defaults to
        nonconforming up to AQL 10 and nonconformities above.

    Returns
    -------
    SamplingPlan

    Examples
    --------
    >>> p = single_sampling_plan(1000, aql=1.0)
    >>> p.code_letter, p.sample_size, p.accept, p.reject
    ('J', 80, 2, 3)
    >>> single_sampling_plan(1000, aql=1.0, inspection="tightened").sample_size
    80
    """
    _check_inspection(inspection)
    kind = _measure(aql, measure)
    letter = code_letter(lot_size, level)
    plan_letter, n, ac, re_ = table_plan(letter, aql=aql, inspection=inspection)
    return SamplingPlan(lot_size=int(lot_size), aql=AQLS[_aql_index(aql)], level=level,
                        inspection=inspection, code_letter=letter, plan_letter=plan_letter,
                        sample_size=min(n, int(lot_size)), accept=ac, reject=re_, measure=kind,
                        table_sample_size=n)


def tighter_accept_number(plan: SamplingPlan) -> int | None:
    """Ac of the normal plan one AQL step tighter, at the plan's letter (for the switching score).

    ``None`` when there is no tighter AQL or the tighter cell is an arrow (only happens for
    Ac ≤ 1, where the switching score does not use it).
    """
    col = _aql_index(plan.aql)
    if col == 0 or plan.plan_letter not in LETTERS:
        return None
    cell = _MASTER["normal"][0][LETTERS.index(plan.plan_letter)][col - 1]
    return cell[0] if isinstance(cell, tuple) else None


# ---------------------------------------------------------------------------------------------
# Switching rules (ISO 2859-1:1999 clause 9; Z1.4 §8)

SWITCH_TO_TIGHTENED_NOT_ACCEPTED = 2    # … of 5 or fewer consecutive lots on normal
WINDOW_NORMAL = 5
SWITCH_TO_NORMAL_ACCEPTED = 5           # consecutive lots accepted on tightened
DISCONTINUE_NOT_ACCEPTED = 5            # cumulative lots not accepted on tightened
SWITCHING_SCORE_LIMIT = 30


@dataclass(frozen=True)
class SwitchingState:
    """Where a sequence of lots stands in the switching scheme.

    Attributes
    ----------
    inspection : str
        ``normal``, ``tightened``, ``reduced`` or ``discontinued`` — what applies to the next lot.
    recent_normal : tuple of bool
        Acceptance of the last (up to 5) lots since normal inspection began.
    tightened_accepted_run : int
        Consecutive lots accepted since tightened inspection began.
    tightened_not_accepted : int
        Lots not accepted since tightened inspection began (cumulative).
    switching_score : int
        ISO 2859-1:1999 switching score (normal inspection only; 0 elsewhere).
    reason : str
        Why the state is what it is after the last lot (empty when nothing changed).
    """

    inspection: str = "normal"
    recent_normal: tuple[bool, ...] = ()
    tightened_accepted_run: int = 0
    tightened_not_accepted: int = 0
    switching_score: int = 0
    reason: str = ""


@dataclass(frozen=True)
class LotResult:
    """One lot inspected under ``plan`` with ``defects`` nonconforming units / nonconformities."""

    plan: SamplingPlan
    defects: int


def _fresh(inspection: str, reason: str) -> SwitchingState:
    return SwitchingState(inspection=inspection, reason=reason)


def next_state(state: SwitchingState, lot: LotResult, *, production_steady: bool = True,
               reduced_approved: bool = False, other_conditions: bool = False) -> SwitchingState:
    """Apply the switching rules to one lot inspected under ``state.inspection``.

    Parameters
    ----------
    state : SwitchingState
        State before the lot (its ``inspection`` must match the lot's plan).
    lot : LotResult
        The lot's plan and defect count (original inspection, not resubmission).
    production_steady : bool
        Production is at a steady rate. Needed for normal → reduced; ``False`` while on reduced
        reinstates normal. Defaults to ``True`` (no evidence of irregular production).
    reduced_approved : bool
        The responsible authority approves reduced inspection. Defaults to ``False``: the
        standard never switches to reduced on the score alone.
    other_conditions : bool
        Other conditions warrant normal inspection (reduced → normal).

    Returns
    -------
    SwitchingState
        The state for the next lot, with ``reason`` explaining any switch.

    Notes
    -----
    Rules (ISO 2859-1:1999 clauses 9.3 and 9.4; ANSI/ASQ Z1.4 §8.3 and 8.4):

    * Normal → tightened: 2 lots not accepted within 5 or fewer consecutive lots.
    * Tightened → normal: 5 consecutive lots accepted.
    * Normal → reduced: switching score ≥ 30, production steady, authority approves.
      Score (single sampling): Ac ≥ 2 — add 3 if the lot would have been accepted at the AQL one
      step tighter, else reset to 0; Ac ≤ 1 — add 2 if the lot is accepted, else reset to 0.
    * Reduced → normal: a lot not accepted, a count between Ac and Re (Z1.4 reduced table),
      irregular production or other conditions.
    * Tightened → discontinued: 5 lots (cumulative) not accepted while on tightened.
    """
    if state.inspection == "discontinued":
        raise SamplingError("inspection is discontinued (5 lots not accepted on tightened inspection); "
                            "call resume_inspection() once corrective action has been taken")
    if lot.plan.inspection != state.inspection:
        raise SamplingError(f"lot inspected under {lot.plan.inspection} inspection but the scheme "
                            f"is on {state.inspection}")
    outcome = lot.plan.outcome(lot.defects)
    accepted = outcome != "reject"
    d, ac = int(lot.defects), lot.plan.accept

    if state.inspection == "normal":
        recent = (*state.recent_normal, accepted)[-WINDOW_NORMAL:]
        if recent.count(False) >= SWITCH_TO_TIGHTENED_NOT_ACCEPTED:
            return _fresh("tightened", f"{recent.count(False)} of the last {len(recent)} lots on "
                                       "normal inspection not accepted → tightened")
        if ac >= 2:
            tighter = tighter_accept_number(lot.plan)
            ok = tighter is not None and d <= tighter
            score = state.switching_score + 3 if ok else 0
        else:
            score = state.switching_score + 2 if accepted else 0
        nxt = replace(state, recent_normal=recent, switching_score=score, reason="")
        if score >= SWITCHING_SCORE_LIMIT:
            if production_steady and reduced_approved:
                return _fresh("reduced", f"switching score {score} ≥ {SWITCHING_SCORE_LIMIT}, production "
                                         "steady and reduced inspection approved → reduced")
            missing = [w for w, ok in (("production steady", production_steady),
                                       ("approval by the responsible authority", reduced_approved))
                       if not ok]
            return replace(nxt, reason=f"switching score {score} ≥ {SWITCHING_SCORE_LIMIT} but no "
                                       f"{' or '.join(missing)}: stays normal")
        return nxt

    if state.inspection == "tightened":
        if not accepted:
            bad = state.tightened_not_accepted + 1
            if bad >= DISCONTINUE_NOT_ACCEPTED:
                return _fresh("discontinued", f"{bad} lots not accepted on tightened inspection → "
                                              "inspection discontinued until corrective action")
            return replace(state, tightened_not_accepted=bad, tightened_accepted_run=0, reason="")
        run = state.tightened_accepted_run + 1
        if run >= SWITCH_TO_NORMAL_ACCEPTED:
            return _fresh("normal", f"{run} consecutive lots accepted on tightened inspection → normal")
        return replace(state, tightened_accepted_run=run, reason="")

    # reduced
    if outcome == "reject":
        return _fresh("normal", "lot not accepted on reduced inspection → normal")
    if outcome == "accept_reinstate_normal":
        return _fresh("normal", f"{d} defects between Ac {ac} and Re {lot.plan.reject} on reduced "
                                "inspection: lot accepted, normal reinstated")
    if not production_steady:
        return _fresh("normal", "production irregular or delayed → normal")
    if other_conditions:
        return _fresh("normal", "other conditions warrant normal inspection → normal")
    return replace(state, reason="")


def resume_inspection(state: SwitchingState) -> SwitchingState:
    """Resume a discontinued scheme after corrective action: tightened inspection."""
    if state.inspection != "discontinued":
        raise SamplingError(f"inspection is not discontinued (it is {state.inspection})")
    return _fresh("tightened", "resumed after corrective action → tightened")


_HISTORY_FLAGS = ("production_steady", "reduced_approved", "other_conditions", "resume")


def _history_rows(history: pd.DataFrame | Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = (history.to_dict("records") if isinstance(history, pd.DataFrame)
            else [dict(r) for r in history])
    for i, r in enumerate(rows, start=1):
        for col in ("lot_size", "defects"):
            if col not in r or r[col] is None or (isinstance(r[col], float) and math.isnan(r[col])):
                raise SamplingError(f"inspection history row {i}: column '{col}' is missing")
    return rows


def inspection_schedule(history: pd.DataFrame | Sequence[Mapping[str, Any]], *, aql: float,
                        level: str = "II", measure: str | None = None,
                        initial: SwitchingState | None = None, production_steady: bool = True,
                        reduced_approved: bool = False) -> pd.DataFrame:
    """Replay a lot history through the switching rules.

    Parameters
    ----------
    history : DataFrame or sequence of mappings
        Lots in time order, shaped like the ``inspections`` table: ``lot_size`` and ``defects``
        are required; ``lot_id`` is carried through. Optional boolean columns override the keyword
        defaults lot by lot: ``production_steady``, ``reduced_approved``, ``other_conditions``
        and ``resume`` (corrective action taken: a discontinued scheme restarts on tightened).
        ``defects`` must have been counted on the sample this schedule prescribes.
    aql, level, measure
        As in :func:`single_sampling_plan`.
    initial : SwitchingState, optional
        Where the scheme stands before the first lot (default: start of normal inspection).
    production_steady, reduced_approved : bool
        Defaults for every lot (see :func:`next_state`).

    Returns
    -------
    DataFrame
        One row per lot: ``lot_id``, ``lot_size``, ``inspection_type``, ``code_letter``,
        ``plan_letter``, ``sample_size``, ``accept``, ``reject``, ``defects``, ``decision``
        (accept / reject; empty while discontinued), ``outcome``, ``switching_score`` (after
        the lot), ``next_inspection`` and ``reason`` (why the next lot's inspection changed).

    Examples
    --------
    >>> lots = [{"lot_size": 1000, "defects": d} for d in (3, 0, 4)]
    >>> inspection_schedule(lots, aql=1.0)["next_inspection"].tolist()
    ['normal', 'normal', 'tightened']
    """
    _aql_index(aql)
    state = initial or SwitchingState()
    out: list[dict[str, Any]] = []
    for i, row in enumerate(_history_rows(history), start=1):
        flags = {k: bool(row[k]) if k in row and row[k] is not None and not pd.isna(row[k]) else None
                 for k in _HISTORY_FLAGS}
        rec: dict[str, Any] = {"lot_id": row.get("lot_id", i), "lot_size": int(row["lot_size"])}
        prefix = ""
        if state.inspection == "discontinued" and flags["resume"]:
            state = resume_inspection(state)
            prefix = state.reason + "; "
        if state.inspection == "discontinued":
            rec.update(inspection_type="discontinued", code_letter=None, plan_letter=None,
                       sample_size=None, accept=None, reject=None, defects=row["defects"],
                       decision=None, outcome=None, switching_score=0,
                       next_inspection="discontinued",
                       reason="inspection discontinued: no lot is accepted under the scheme until "
                              "corrective action (set resume=True)")
            out.append(rec)
            continue
        try:
            plan = single_sampling_plan(int(row["lot_size"]), aql=aql, level=level,
                                        inspection=state.inspection, measure=measure)
            outcome = plan.outcome(row["defects"])
        except SamplingError as exc:
            raise SamplingError(f"inspection history row {i} (lot {rec['lot_id']}): {exc}") from None
        new = next_state(
            state, LotResult(plan, int(row["defects"])),
            production_steady=production_steady if flags["production_steady"] is None
            else flags["production_steady"],
            reduced_approved=reduced_approved if flags["reduced_approved"] is None
            else flags["reduced_approved"],
            other_conditions=bool(flags["other_conditions"]))
        rec.update(inspection_type=state.inspection, code_letter=plan.code_letter,
                   plan_letter=plan.plan_letter, sample_size=plan.sample_size, accept=plan.accept,
                   reject=plan.reject, defects=int(row["defects"]), decision=plan.decide(row["defects"]),
                   outcome=outcome, switching_score=new.switching_score,
                   next_inspection=new.inspection, reason=prefix + new.reason)
        out.append(rec)
        state = new
    columns = ["lot_id", "lot_size", "inspection_type", "code_letter", "plan_letter", "sample_size",
               "accept", "reject", "defects", "decision", "outcome", "switching_score",
               "next_inspection", "reason"]
    return pd.DataFrame(out, columns=columns)


__all__ = [
    "AQLS", "INSPECTIONS", "LETTERS", "LEVELS", "MEASURES", "REDUCED_SAMPLE_SIZES", "SAMPLE_SIZES",
    "TABLE_NAMES", "TIGHTENED_SAMPLE_SIZES", "LotResult", "SamplingPlan", "SwitchingState",
    "code_letter", "inspection_schedule", "next_state", "resume_inspection", "single_sampling_plan",
    "table_plan", "tighter_accept_number",
]
