"""Out-of-control episodes: what a quality engineer acts on, instead of a list of points.

A control chart flags points; a process that drifts for two hours flags twenty of them under
three rules. An :class:`Episode` is one stretch of one series during which it was out of
control: consecutive rule violations (and the points that make up each violated pattern) merged
into one span with a start, an end, the rules involved, the direction and size of the shift in
process sigmas, and — against the specification — its consequence: the expected fraction out of
specification while it lasted and the Cpk the process had during it.

Ranking is by consequence, not by the number of points: an episode that put the mean 1σ from the
USL (Cpk 0.33, 16 % expected out of specification) comes before a 1.5σ shift of a process with
Cpk 2 (nothing out of specification), however many points either flagged. "Out of control but
capable" is still listed — the process did change — but below "drifting toward the USL".

Assumption, stated: the expected fraction out of specification treats the measurements at the
episode's worst — the subgroup whose mean came closest to a specification limit — as normal
with that mean and the chart's within-subgroup sigma (the short-term variation the limits rest
on). A long episode is judged by its worst moment, not diluted by its average; the worst of
several subgroup means is biased toward the limit by chance, which errs on the side of
attention. It is an estimate of the tail, not a count; the observed fraction (measurements
beyond a limit over the whole episode) is given beside it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from workbench.errors import SPCError
from workbench.spc.charts import ChartPair, ControlChart
from workbench.spc.registry import FloatArray
from workbench.spc.studies import SERIES_KEYS, Study

__all__ = ["RULE_SPAN", "Episode", "by_consequence", "episodes", "episodes_table"]

#: Points a pattern of each rule spans, ending at the flagged point: eight in a row on one side
#: flagged at point i is a shift that began at point i − 7, and the episode starts there. A CUSUM
#: signal spans its N⁺ / N⁻ subgroups (since the sum left zero); rules not listed (EWMA,
#: tool-wear signals) span their flagged point.
RULE_SPAN: dict[str, int] = {
    "we1": 1, "we2": 3, "we3": 5, "we4": 8,
    "nelson1": 1, "nelson2": 9, "nelson3": 6, "nelson4": 14, "nelson5": 3, "nelson6": 5,
    "nelson7": 15, "nelson8": 8,
}
#: Violations at most this many points apart belong to the same episode: a shift that keeps
#: going flags most, not all, of its points.
MAX_GAP = 3
#: Cpk bands of the consequence (Montgomery: 1.33 for existing processes, 1.0 = 0.27 % out).
CPK_AT_RISK, CPK_WATCH = 1.0, 1.33
#: The consequence is judged where the episode was at its worst: the mean of this many
#: consecutive subgroups that came closest to a specification limit. One subgroup: on the
#: simulated plant (tests/spc/test_episodes_truth.py) a window of three diluted a shift that
#: peaked in one subgroup after a tool change (true Cpk 0.90, estimated 1.45 with three,
#: 0.80 with one).
WORST_WINDOW = 1


@dataclass(frozen=True)
class Episode:
    """One out-of-control stretch of one series.

    Attributes
    ----------
    machine_id, part_number, characteristic : str
        The series.
    unit : str or None
        Measurement unit.
    chart : str
        The chart(s) that flagged it ("X̄", "R", "X̄, R" …).
    start, end : datetime
        Time of the first measurement of the first subgroup and of the last measurement of the
        last subgroup of the episode.
    first_subgroup, last_subgroup : hashable
        Subgroup ids at either end.
    subgroups : int
        Points in the episode (from the start of the first violated pattern to the last flagged
        point).
    violations : int
        Rule violations in it.
    rules : tuple of str
        Rules that fired.
    direction : str
        ``"up"``, ``"down"`` (subgroup means above / below what they should have been on
        average), ``"mixed"`` (less than :data:`NO_NET_SHIFT` σ net: they moved both ways), or
        ``"spread"`` when only the dispersion chart flagged (variation grew).
    shift_sigma : float
        Mean distance of the subgroup means from what they should have been — the X̄ chart's
        center line, the expected wear on a tool-wear chart, the target μ₀ of an EWMA or CUSUM
        chart — during the episode, in process sigmas (σ̂ of the chart); NaN for a change of
        spread alone.
    mean : float
        Where the episode was at its worst: the mean of the :data:`WORST_WINDOW` consecutive
        subgroup(s) that came closest to a specification limit (without specification: the mean
        of all its measurements).
    sigma : float
        The within sigma of the chart (what the expected fraction is computed with).
    lsl, usl : float or None
        Specification limits.
    cpk : float or None
        Cpk at the episode's worst (:attr:`mean`): distance to the nearer limit over 3σ (None
        without specification).
    expected_out : float or None
        Expected fraction out of specification at the episode's worst (normal, :attr:`mean`,
        within sigma); None without specification.
    observed_out : float or None
        Fraction of the episode's measurements beyond a specification limit.
    measurements : int
        Measurements in the episode.
    consequence : str
        ``"out of spec"`` (measurements beyond a limit, or Cpk < 1 during it), ``"watch"``
        (1 ≤ Cpk < 1.33), ``"capable"`` (Cpk ≥ 1.33: out of control, still within
        specification) or ``"no specification"``.
    """

    machine_id: str
    part_number: str
    characteristic: str
    unit: str | None
    chart: str
    start: dt.datetime
    end: dt.datetime
    first_subgroup: Any
    last_subgroup: Any
    subgroups: int
    violations: int
    rules: tuple[str, ...]
    direction: str
    shift_sigma: float
    mean: float
    sigma: float
    lsl: float | None
    usl: float | None
    cpk: float | None
    expected_out: float | None
    observed_out: float | None
    measurements: int
    consequence: str

    @property
    def name(self) -> str:
        """``machine · part · characteristic``."""
        return f"{self.machine_id} · {self.part_number} · {self.characteristic}"

    @property
    def rank_key(self) -> tuple[float, ...]:
        """Sort key, most consequential first: expected out-of-specification fraction, then the
        observed one, then the size of the shift, then the length."""
        expected = -1.0 if self.expected_out is None else self.expected_out
        observed = -1.0 if self.observed_out is None else self.observed_out
        shift = 0.0 if np.isnan(self.shift_sigma) else abs(self.shift_sigma)
        return (-expected, -observed, -shift, -self.subgroups)

    @property
    def description(self) -> str:
        """One plain sentence: what happened and what it cost, e.g. "shift up of +2.1σ over
        7 subgroups (we1, we2); Cpk 0.62 at its worst, 3.1 % expected above the USL (2 of 35
        measured)"."""
        if self.direction == "spread":
            what = f"variation grew over {self.subgroups} subgroup{'s' * (self.subgroups != 1)}"
        elif self.direction == "mixed":
            what = (f"points out of pattern both ways over {self.subgroups} subgroup"
                    f"{'s' * (self.subgroups != 1)}, no net shift ({self.shift_sigma:+.2f}σ)")
        else:
            what = (f"shift {self.direction} of {self.shift_sigma:+.1f}σ over {self.subgroups} "
                    f"subgroup{'s' * (self.subgroups != 1)}")
        text = f"{what} ({', '.join(self.rules)})"
        if self.cpk is None:
            return text + "; no specification to judge it against"
        side = self._near_side()
        outside = round((self.observed_out or 0.0) * self.measurements)
        text += (f"; Cpk {self.cpk:.2f} at its worst, {_fraction(self.expected_out or 0.0)} expected "
                 f"{side} ({outside} of {self.measurements} measured)")
        return text

    def _near_side(self) -> str:
        if self.lsl is None:
            return "above the USL"
        if self.usl is None:
            return "below the LSL"
        return "above the USL" if self.usl - self.mean <= self.mean - self.lsl else "below the LSL"


def _fraction(p: float) -> str:
    if p >= 0.001:
        return f"{p:.1%}"
    return f"{p * 1e6:,.0f} ppm"


def _charts(study: Study) -> list[ControlChart]:
    current = study.current
    if current is None:
        return []
    if isinstance(current, ChartPair):
        return [current.location, current.dispersion]
    return [current]


#: "k of w beyond a zone" rules: their window may begin with points that are not part of the
#: pattern (the first of "two of three beyond 2σ" can sit at the center line); the episode starts
#: at the first point of the window beyond the zone on the flagged point's side.
ZONE_OF_RULE = {"we2": 2.0, "nelson5": 2.0, "we3": 1.0, "nelson6": 1.0}


def _spans(chart: ControlChart) -> list[tuple[int, int, list[str]]]:
    """Index spans [first, last] of each violation's pattern, sorted by start."""
    z = chart.z
    out = []
    counter = getattr(chart, "counter", None)  # a CUSUM side: N, subgroups since its sum left 0
    for v in chart.violations:
        span = RULE_SPAN.get(v.rule, 1)
        if counter is not None and v.rule in ("cusum_upper", "cusum_lower"):
            # Montgomery §9.1.3: the shift began N subgroups before the signal.
            span = max(int(counter[v.index]), 1)
        lo = max(v.index - span + 1, 0)
        zone = ZONE_OF_RULE.get(v.rule)
        if zone is not None:
            side = np.sign(z[v.index])
            while lo < v.index and not (np.sign(z[lo]) == side and abs(z[lo]) > zone):
                lo += 1
        out.append((lo, v.index, [v.rule]))
    return sorted(out)


def _merge(spans: list[tuple[int, int, list[str]]], gap: int) -> list[tuple[int, int, list[str], int]]:
    merged: list[tuple[int, int, list[str], int]] = []
    for lo, hi, rules in spans:
        if merged and lo <= merged[-1][1] + gap:
            a, b, r, n = merged[-1]
            merged[-1] = (a, max(b, hi), r + rules, n + 1)
        else:
            merged.append((lo, hi, rules, 1))
    return merged


def _norm_tail(z: float) -> float:
    return float(special.ndtr(z))


def episodes(found: Iterable[Study], *, max_gap: int = MAX_GAP) -> list[Episode]:
    """Out-of-control episodes of every study, most consequential first.

    Parameters
    ----------
    found : iterable of Study
        From :func:`workbench.spc.studies`.
    max_gap : int
        Violations at most this many points apart (after extending each back to the start of
        its pattern, see :data:`RULE_SPAN`) form one episode.

    Returns
    -------
    list of Episode
        Sorted by :attr:`Episode.rank_key`.
    """
    if max_gap < 0:
        raise SPCError(f"max_gap must be 0 or more points (got {max_gap})")
    out: list[Episode] = []
    for study in found:
        charts = _charts(study)
        if not charts or not study.violations:
            continue
        # Both charts of a pair index the same subgroups except MR (one point fewer, shifted by
        # one): map every chart's spans onto subgroup ids, then onto the first chart's positions.
        ids = list(charts[0].subgroups)
        position = {sid: i for i, sid in enumerate(ids)}
        spans: list[tuple[int, int, list[str]]] = []
        flagged_by: dict[int, set[str]] = {}
        for chart in charts:
            for lo, hi, rules in _spans(chart):
                a = position.get(chart.subgroups[lo])
                b = position.get(chart.subgroups[hi])
                if a is None or b is None:
                    continue
                if chart.chart_type == "mr":
                    a = max(a - 1, 0)  # a moving range spans its point and the one before
                spans.append((a, b, rules))
                for i in range(a, b + 1):
                    flagged_by.setdefault(i, set()).add(chart.label)
        spans.sort()
        out.extend(_episode(study, charts, ids, lo, hi, rules, count, flagged_by)
                   for lo, hi, rules, count in _merge(spans, max_gap))
    return sorted(out, key=lambda e: e.rank_key)


def _worst_window(means: np.ndarray, counts: np.ndarray, score: Any) -> slice:
    """The WORST_WINDOW consecutive subgroups with the highest score of their pooled mean."""
    w = min(WORST_WINDOW, means.size)
    best, best_score = slice(0, w), -np.inf
    for i in range(means.size - w + 1):
        pooled = float(np.sum(means[i:i + w] * counts[i:i + w]) / np.sum(counts[i:i + w]))
        value = score(pooled)
        if value > best_score:
            best, best_score = slice(i, i + w), value
    return best


#: A mean shift smaller than this (in process sigmas) is no net shift: the points moved both
#: ways (e.g. a run of alternating alarms), and the episode is "mixed", not "up" or "down".
NO_NET_SHIFT = 0.1
#: Charts of the spread: an episode flagged only by them is a change in variation, not a shift.
DISPERSION_CHARTS = ("r", "s", "mr")
#: Charts whose plotted statistic is not a subgroup mean (the mean should be their target μ₀).
TIME_WEIGHTED_TYPES = ("ewma", "cusum_upper", "cusum_lower")


def _expected_means(charts: list[ControlChart], lo: int, hi: int) -> FloatArray:
    """What the subgroup means should have been at each point of the span: the X̄ / I chart's
    center line (per point on a tool-wear chart), or the target μ₀ of an EWMA or CUSUM chart,
    whose plotted statistic is not a subgroup mean."""
    first = charts[0]
    if first.chart_type in TIME_WEIGHTED_TYPES:
        return np.full(hi - lo + 1, float(first.parameter))
    return np.asarray(first._full(first.center), dtype=float)[lo:hi + 1]


def _episode(study: Study, charts: list[ControlChart], ids: Sequence[Any], lo: int, hi: int,
             rules: list[str], count: int, flagged_by: dict[int, set[str]]) -> Episode:
    members = list(ids[lo:hi + 1])
    data = study.data[study.data["subgroup_id"].isin(members)]
    dispersion = {c.label for c in charts if c.chart_type in DISPERSION_CHARTS}
    labels = sorted({c for i in range(lo, hi + 1) for c in flagged_by.get(i, ())},
                    key=lambda c: (c in dispersion, c))
    sigma = float(charts[0].sigma)
    lsl = study.capability.lsl if study.capability is not None else None
    usl = study.capability.usl if study.capability is not None else None
    if lsl is None and usl is None and study.limits is not None:
        lsl, usl = study.limits.lsl, study.limits.usl
    per = data.groupby("subgroup_id", sort=False)["value"].agg(["mean", "size"]).reindex(members).dropna()
    means, counts = per["mean"].to_numpy(float), per["size"].to_numpy(float)
    center_of = dict(zip(members, _expected_means(charts, lo, hi), strict=True))
    centers = np.array([center_of[m] for m in per.index], dtype=float)

    def nearness(m: float) -> float:  # how close the mean comes to a limit, in sigmas (larger = worse)
        if lsl is None and usl is None:
            return float(np.nanmax(np.abs(m - centers))) if centers.size else 0.0
        return -min((usl - m) if usl is not None else np.inf, (m - lsl) if lsl is not None else np.inf)

    if any(label not in dispersion for label in labels) and means.size and np.isfinite(centers).any():
        shift = float(np.nanmean(means - centers) / sigma)
        direction = "mixed" if abs(shift) < NO_NET_SHIFT else "up" if shift > 0 else "down"
    else:
        shift, direction = float("nan"), "spread"
    cpk = expected = observed = None
    mean = float(np.sum(means * counts) / np.sum(counts)) if means.size else float("nan")
    if (lsl is not None or usl is not None) and means.size and sigma > 0:
        worst = _worst_window(means, counts, nearness)
        at = float(np.sum(means[worst] * counts[worst]) / np.sum(counts[worst]))
        cpk = float(min((usl - at) / (3 * sigma) if usl is not None else np.inf,
                        (at - lsl) / (3 * sigma) if lsl is not None else np.inf))
        expected = ((_norm_tail((lsl - at) / sigma) if lsl is not None else 0.0)
                    + (_norm_tail((at - usl) / sigma) if usl is not None else 0.0))
        values = data["value"].to_numpy(dtype=float)
        beyond = np.zeros(values.size, dtype=bool)
        if lsl is not None:
            beyond |= values < lsl
        if usl is not None:
            beyond |= values > usl
        observed = float(beyond.mean())
        mean = at
    if cpk is None:
        consequence = "no specification"
    elif (observed or 0.0) > 0 or cpk < CPK_AT_RISK:
        consequence = "out of spec"
    elif cpk < CPK_WATCH:
        consequence = "watch"
    else:
        consequence = "capable"
    times = pd.to_datetime(data["time"], utc=True)
    return Episode(
        machine_id=study.machine_id, part_number=study.part_number, characteristic=study.characteristic,
        unit=study.unit, chart=", ".join(labels), start=times.min().to_pydatetime(),
        end=times.max().to_pydatetime(), first_subgroup=_plain(ids[lo]), last_subgroup=_plain(ids[hi]),
        subgroups=hi - lo + 1, violations=count, rules=tuple(sorted(set(rules))), direction=direction,
        shift_sigma=shift, mean=mean, sigma=sigma, lsl=lsl, usl=usl, cpk=cpk, expected_out=expected,
        observed_out=observed, measurements=len(data), consequence=consequence)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


EPISODE_COLUMNS = [*SERIES_KEYS, "start", "end", "subgroups", "violations", "rules", "direction",
                   "shift_sigma", "cpk", "expected_out", "observed_out", "consequence", "description"]


def episodes_table(found: Sequence[Episode]) -> pd.DataFrame:
    """One row per episode, in the given (ranked) order.

    Parameters
    ----------
    found : sequence of Episode
        From :func:`episodes`.

    Returns
    -------
    DataFrame
        ``machine_id``, ``part_number``, ``characteristic``, ``start``, ``end``, ``subgroups``,
        ``violations``, ``rules`` (comma-separated), ``direction``, ``shift_sigma``, ``cpk``,
        ``expected_out``, ``observed_out``, ``consequence``, ``description``.
    """
    rows = [{"machine_id": e.machine_id, "part_number": e.part_number, "characteristic": e.characteristic,
             "start": e.start, "end": e.end, "subgroups": e.subgroups, "violations": e.violations,
             "rules": ", ".join(e.rules), "direction": e.direction, "shift_sigma": e.shift_sigma,
             "cpk": np.nan if e.cpk is None else e.cpk,
             "expected_out": np.nan if e.expected_out is None else e.expected_out,
             "observed_out": np.nan if e.observed_out is None else e.observed_out,
             "consequence": e.consequence, "description": e.description} for e in found]
    frame = pd.DataFrame(rows, columns=EPISODE_COLUMNS)
    for col in ("start", "end"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame


def by_consequence(found: Sequence[Study], ranked: Sequence[Episode]) -> list[Study]:
    """The studies in the order of their most consequential episode, then the rest (in the
    order given) — what to chart first.

    Parameters
    ----------
    found : sequence of Study
        From :func:`workbench.spc.studies`.
    ranked : sequence of Episode
        From :func:`episodes` (ranked).

    Returns
    -------
    list of Study
    """
    first: dict[tuple[str, str, str], int] = {}
    for i, e in enumerate(ranked):
        first.setdefault((e.machine_id, e.part_number, e.characteristic), i)
    return sorted(found, key=lambda s: first.get((s.machine_id, s.part_number, s.characteristic),
                                                 len(ranked)))
