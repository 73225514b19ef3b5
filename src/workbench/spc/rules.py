"""Western Electric and Nelson run rules, one function each, on standardized values.

Every rule takes ``z = (statistic − center) / σ_point`` — the distance of each plotted point from
the center line in units of *that point's* standard error — so charts whose limits vary from
point to point (p and u charts with varying sample sizes, X̄ charts with varying subgroup sizes)
are tested exactly like charts with straight limits. The zones are the usual ones:
zone C within 1σ of the center line, zone B between 1σ and 2σ, zone A between 2σ and 3σ; a point
on a zone line belongs to the inner zone (|z| = 1 is in zone C, see the boundary convention below).

Conventions shared by all rules
-------------------------------
* A rule returns the (sorted) indexes of the points that *complete* its pattern. The point that
  completes a pattern must itself be part of it: with "two of three beyond 2σ", the flagged point
  is the second point beyond 2σ, never a zone C point that happens to end the window. When a run
  keeps going, every further point of the run is flagged too (as Minitab does).
* Windows at the start of a series count the points available: the first two points both beyond
  +2σ already are "two of three".
* Boundaries are strict: a point *on* a limit or zone line is not beyond it; a point exactly on the
  center line is on neither side and ends a "same side" run. "Beyond kσ" is |z| > k and "within
  kσ" is |z| ≤ k, so every point (not NaN, not on a clipped lower side) is exactly one of the
  two: a point on the ±1σ line is within 1σ (it counts for Nelson 7) and not beyond it (it
  counts for no WE 3 / Nelson 6 / Nelson 8 pattern). Such points are common on count charts: a
  c chart with c̄ = 9 has σ = 3, so counts 6 and 12 sit on the ±1σ lines.
* ``lower`` marks the points where the chart has a real lower side. Attribute charts whose lower
  3σ limit falls below zero are clipped to LCL = 0 and are one-sided there: the count cannot go
  far enough below the center line for the lower zones to have the tail probabilities the rules
  assume (a c chart with c̄ = 2 puts P(X = 0) = 0.135 "beyond 1σ below"). At such points a value
  below the center line counts for no lower-side pattern — not beyond −1σ, not beyond −2σ, not on
  the lower side of the center line, not in zone C — so lower-side rules cannot fire spuriously
  and such a point ends any run it interrupts. Upper-side patterns are tested as usual. The trend
  (Nelson 3) and alternation (Nelson 4) rules compare neighbours only and are unaffected.
* NaN values satisfy no condition and end every run.

Rule sets
---------
``"western_electric"`` (WE 1–4, Western Electric *Statistical Quality Control Handbook*, 1956),
``"nelson"`` (Nelson 1–8, L.S. Nelson, "The Shewhart Control Chart — Tests for Special Causes",
*Journal of Quality Technology* 16(4), 1984), ``"rule1"`` (beyond the limits only) and ``"none"``.
A sequence of rule names (``("we1", "nelson3")``) picks rules individually.

More rules mean more false alarms: with all four Western Electric rules an in-control process
raises a signal about every 92 points instead of every 370 with rule 1 alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from workbench.errors import SPCError

RuleFunction = Callable[..., NDArray[np.intp]]

__all__ = ["BEYOND_LIMITS_RULES", "RULES", "RULE_SETS", "describe", "evaluate", "nelson1", "nelson2",
           "nelson3", "nelson4", "nelson5", "nelson6", "nelson7", "nelson8", "resolve", "we1", "we2",
           "we3", "we4"]


# -- building blocks ---------------------------------------------------------------------------

def _prepare(z: ArrayLike, lower: ArrayLike | None) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    values = np.asarray(z, dtype=float).ravel()
    if lower is None:
        has_lower = np.ones(values.shape, dtype=bool)
    else:
        has_lower = np.asarray(lower, dtype=bool).ravel()
        if has_lower.shape != values.shape:
            raise SPCError(f"rules: 'lower' has {has_lower.size} flags for {values.size} points")
    return values, has_lower


def _above(z: NDArray[np.float64], k: float) -> NDArray[np.bool_]:
    return z > k


def _below(z: NDArray[np.float64], k: float, has_lower: NDArray[np.bool_]) -> NDArray[np.bool_]:
    return (z < -k) & has_lower


def _run_lengths(flags: NDArray[np.bool_]) -> NDArray[np.intp]:
    """Length of the run of True values ending at each position (0 where False)."""
    idx = np.arange(flags.size)
    last_false = np.maximum.accumulate(np.where(flags, -1, idx))
    return np.where(flags, idx - last_false, 0)


def _window_counts(flags: NDArray[np.bool_], width: int) -> NDArray[np.intp]:
    """Number of True values among the last ``width`` points (fewer at the start)."""
    total = np.concatenate(([0], np.cumsum(flags, dtype=np.intp)))
    end = np.arange(1, flags.size + 1)
    start = np.maximum(end - width, 0)
    return total[end] - total[start]


def _k_of_w(flags: NDArray[np.bool_], k: int, width: int) -> NDArray[np.bool_]:
    return flags & (_window_counts(flags, width) >= k)


def _indexes(mask: NDArray[np.bool_]) -> NDArray[np.intp]:
    return np.flatnonzero(mask).astype(np.intp)


def _beyond_limits(z: ArrayLike, lower: ArrayLike | None, limit: float) -> NDArray[np.intp]:
    v, has_lower = _prepare(z, lower)
    return _indexes(_above(v, limit) | _below(v, limit, has_lower))


def _k_of_w_beyond(z: ArrayLike, lower: ArrayLike | None, k: int, width: int,
                   zone: float) -> NDArray[np.intp]:
    v, has_lower = _prepare(z, lower)
    return _indexes(_k_of_w(_above(v, zone), k, width) | _k_of_w(_below(v, zone, has_lower), k, width))


def _run_same_side(z: ArrayLike, lower: ArrayLike | None, length: int) -> NDArray[np.intp]:
    v, has_lower = _prepare(z, lower)
    up = _run_lengths(_above(v, 0.0)) >= length
    down = _run_lengths(_below(v, 0.0, has_lower)) >= length
    return _indexes(up | down)


# -- Western Electric --------------------------------------------------------------------------

def we1(z: ArrayLike, *, lower: ArrayLike | None = None, limit: float = 3.0) -> NDArray[np.intp]:
    """Western Electric rule 1: one point beyond the control limits (more than 3σ from the center line).

    Flags every point with z > 3 or z < −3 (``limit`` replaces 3 for charts with other than
    3σ limits).
    """
    return _beyond_limits(z, lower, limit)


def we2(z: ArrayLike, *, lower: ArrayLike | None = None, limit: float = 3.0) -> NDArray[np.intp]:
    """Western Electric rule 2: two of three consecutive points beyond 2σ on the same side.

    Flags a point beyond 2σ (zone A or beyond) when at least two of the last three points,
    itself included, are beyond 2σ on that same side.
    """
    return _k_of_w_beyond(z, lower, 2, 3, 2.0)


def we3(z: ArrayLike, *, lower: ArrayLike | None = None, limit: float = 3.0) -> NDArray[np.intp]:
    """Western Electric rule 3: four of five consecutive points beyond 1σ on the same side.

    Flags a point beyond 1σ (zone B or beyond) when at least four of the last five points,
    itself included, are beyond 1σ on that same side.
    """
    return _k_of_w_beyond(z, lower, 4, 5, 1.0)


def we4(z: ArrayLike, *, lower: ArrayLike | None = None, limit: float = 3.0) -> NDArray[np.intp]:
    """Western Electric rule 4: eight consecutive points on the same side of the center line.

    Flags the eighth point of a run of points all above (or all below) the center line, and every
    further point while the run continues.
    """
    return _run_same_side(z, lower, 8)


# -- Nelson ------------------------------------------------------------------------------------

def nelson1(z: ArrayLike, *, lower: ArrayLike | None = None, limit: float = 3.0) -> NDArray[np.intp]:
    """Nelson rule 1: one point more than 3σ from the center line (beyond the control limits).

    The same test as Western Electric rule 1.
    """
    return _beyond_limits(z, lower, limit)


def nelson2(z: ArrayLike, *, lower: ArrayLike | None = None, limit: float = 3.0) -> NDArray[np.intp]:
    """Nelson rule 2: nine points in a row on the same side of the center line.

    Flags the ninth point of a run above (or below) the center line and every further point of it.
    """
    return _run_same_side(z, lower, 9)


def nelson3(z: ArrayLike, *, lower: ArrayLike | None = None, limit: float = 3.0) -> NDArray[np.intp]:
    """Nelson rule 3: six points in a row steadily increasing or steadily decreasing.

    Six points make five consecutive strict rises (or falls); a tie breaks the trend. Flags the
    sixth point and every further point while the trend continues.
    """
    v, _ = _prepare(z, lower)
    step = np.diff(v)
    rises = np.concatenate(([False], step > 0))
    falls = np.concatenate(([False], step < 0))
    return _indexes((_run_lengths(rises) >= 5) | (_run_lengths(falls) >= 5))


def nelson4(z: ArrayLike, *, lower: ArrayLike | None = None, limit: float = 3.0) -> NDArray[np.intp]:
    """Nelson rule 4: fourteen points in a row alternating up and down.

    Fourteen points make thirteen consecutive steps whose direction flips every time; a tie
    breaks the alternation. Flags the fourteenth point and every further point while it lasts.
    """
    v, _ = _prepare(z, lower)
    sign = np.sign(np.diff(v))
    alternating = np.zeros(v.size, dtype=np.intp)  # steps in the alternating run ending here
    for i in range(1, v.size):
        s = sign[i - 1]
        if not s or np.isnan(s):
            alternating[i] = 0
        elif i >= 2 and alternating[i - 1] and s == -sign[i - 2]:
            alternating[i] = alternating[i - 1] + 1
        else:
            alternating[i] = 1
    return _indexes(alternating >= 13)


def nelson5(z: ArrayLike, *, lower: ArrayLike | None = None, limit: float = 3.0) -> NDArray[np.intp]:
    """Nelson rule 5: two out of three points in a row more than 2σ from the center line, same side.

    Flags a point beyond 2σ when at least two of the last three points, itself included, are
    beyond 2σ on that same side (the same test as Western Electric rule 2).
    """
    return _k_of_w_beyond(z, lower, 2, 3, 2.0)


def nelson6(z: ArrayLike, *, lower: ArrayLike | None = None, limit: float = 3.0) -> NDArray[np.intp]:
    """Nelson rule 6: four out of five points in a row more than 1σ from the center line, same side.

    Flags a point beyond 1σ when at least four of the last five points, itself included, are
    beyond 1σ on that same side (the same test as Western Electric rule 3).
    """
    return _k_of_w_beyond(z, lower, 4, 5, 1.0)


def nelson7(z: ArrayLike, *, lower: ArrayLike | None = None, limit: float = 3.0) -> NDArray[np.intp]:
    """Nelson rule 7: fifteen points in a row within 1σ of the center line, on either side.

    Too little variation (zone C, |z| ≤ 1, fifteen times running) — often limits computed from
    mixed streams or a wrong sigma. A point on the ±1σ line is within 1σ, since on a line is not
    beyond it. Flags the fifteenth point and every further point of the run.
    """
    v, has_lower = _prepare(z, lower)
    # ≤, not <: "within 1σ" is the complement of "beyond 1σ" (|z| > 1, rules 6 and 8), so a point
    # on the line is in exactly one of them instead of neither.
    inside = (np.abs(v) <= 1.0) & (has_lower | (v >= 0))
    return _indexes(_run_lengths(inside) >= 15)


def nelson8(z: ArrayLike, *, lower: ArrayLike | None = None, limit: float = 3.0) -> NDArray[np.intp]:
    """Nelson rule 8: eight points in a row more than 1σ from the center line, on either side.

    No point of the run in zone C (|z| > 1 each time, above or below) — a mixture of two
    streams. A point on the ±1σ line is in zone C and ends the run. Flags the eighth point and
    every further point of the run. Following Minitab, the run does not have to visit both sides.
    """
    v, has_lower = _prepare(z, lower)
    outside = _above(v, 1.0) | _below(v, 1.0, has_lower)
    return _indexes(_run_lengths(outside) >= 8)


# -- registry ----------------------------------------------------------------------------------

RULES: dict[str, RuleFunction] = {
    "we1": we1, "we2": we2, "we3": we3, "we4": we4,
    "nelson1": nelson1, "nelson2": nelson2, "nelson3": nelson3, "nelson4": nelson4,
    "nelson5": nelson5, "nelson6": nelson6, "nelson7": nelson7, "nelson8": nelson8,
}

RULE_SETS: dict[str, tuple[str, ...]] = {
    "western_electric": ("we1", "we2", "we3", "we4"),
    "nelson": tuple(f"nelson{i}" for i in range(1, 9)),
    "rule1": ("we1",),
    "none": (),
}

# The only rules that stay valid on R, S and moving-range charts (see charts.py for why).
BEYOND_LIMITS_RULES = frozenset({"we1", "nelson1"})


def resolve(rules: str | Sequence[str]) -> tuple[str, ...]:
    """Turn a rule-set name or a sequence of rule names into rule names.

    Parameters
    ----------
    rules : str or sequence of str
        ``"western_electric"``, ``"nelson"``, ``"rule1"``, ``"none"``, or rule names from
        :data:`RULES` such as ``("we1", "nelson3")``.

    Returns
    -------
    tuple of str
        Rule names in evaluation order.

    Raises
    ------
    SPCError
        For an unknown rule set or rule name.
    """
    if isinstance(rules, str):
        key = rules.strip().lower().replace("-", "_").replace(" ", "_")
        if key in RULE_SETS:
            return RULE_SETS[key]
        if key in RULES:
            return (key,)
        raise SPCError(f"unknown rule set {rules!r}; use one of {', '.join(RULE_SETS)} "
                       f"or rule names ({', '.join(RULES)})")
    names: list[str] = []
    for name in rules:
        key = str(name).strip().lower()
        if key not in RULES:
            raise SPCError(f"unknown rule {name!r}; rules are {', '.join(RULES)}")
        if key not in names:
            names.append(key)
    return tuple(names)


def describe(rule: str) -> str:
    """The plain-English definition of a rule: the first line of its docstring."""
    try:
        doc = RULES[rule].__doc__ or rule
    except KeyError:
        raise SPCError(f"unknown rule {rule!r}; rules are {', '.join(RULES)}") from None
    return doc.strip().splitlines()[0].rstrip(".")


def evaluate(z: ArrayLike, *, rules: str | Sequence[str] = "western_electric",
             lower: ArrayLike | None = None, limit: float = 3.0) -> dict[str, NDArray[np.intp]]:
    """Run a rule set on standardized values.

    Parameters
    ----------
    z : array_like
        ``(statistic − center) / σ_point`` for each plotted point, in time order.
    rules : str or sequence of str
        Rule set name or rule names (see :func:`resolve`).
    lower : array_like of bool, optional
        Where the chart has a lower side (False where an attribute LCL was clipped at zero).
    limit : float
        Control limits in σ units (3 for the usual Shewhart chart).

    Returns
    -------
    dict
        Rule name → indexes of the points that trigger it (empty arrays included).
    """
    return {name: RULES[name](z, lower=lower, limit=limit) for name in resolve(rules)}
