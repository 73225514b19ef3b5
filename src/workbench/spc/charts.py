"""Shewhart control charts: X̄-R, X̄-S, I-MR, p, np, c and u.

Compute once, plot separately: every function here returns a frozen :class:`ControlChart` (or a
:class:`ChartPair` of a location chart and its dispersion chart) holding the plotted statistics,
center line, limits, the sigma estimate and how it was made, and the rule violations. Plotting
code reads these; it never recomputes them.

Each chart type is four small pure functions found by name in
:data:`~workbench.spc.registry.CHART_TYPES`, like qcc's ``stats.*`` / ``sd.*`` / ``limits.*``
triplets: ``statistic`` (the plotted points), ``center`` and ``sigma`` (phase I estimates from the
subgroups not excluded) and ``limits`` (center line, limits and the standard error of each point,
from a center, a sigma and the subgroup sizes). Reading the frames is in :mod:`._input`.

Phase I estimates the limits from the data (optionally leaving out subgroups with known causes,
or iterating: remove the points beyond the limits and recompute). Phase II, ``chart.apply(new)``,
judges new data against the frozen center and sigma.

Input
-----
Tidy frames (pandas, or polars — converted with ``to_pandas``), column names as keyword-only
arguments. Variables charts take one row per measurement (the ``quality_measurements`` shape:
``subgroup_id``, ``value``); attribute charts take one row per sample (count and sample size).

Order of the points: subgroups are plotted in order of first appearance in the frame, or — when
``time=`` names a column — in order of each subgroup's earliest time (ties keep appearance
order). Without a ``subgroup`` column (individuals and attribute charts) each row is a point and
is labelled with the frame's index label (its row position if the index has duplicates).

Phase II
--------
``apply`` reads new data the same way, computes the limits from the frozen center and sigma at
the new subgroup sizes, and runs the rules on the new points alone (a run that straddles the
phase I/II boundary is not seen). The moving ranges of new individuals start within the new data.

Iterating (``iterate=True``) drops the subgroups beyond the limits — of the X̄ or the R/S chart,
of the I chart for I-MR (a moving range does not say which of its two points is unusual) — and
re-estimates until no included subgroup is beyond; do it only for points whose cause was found.

Sigma estimates
---------------
* X̄-R: ``R̄/d2`` — with unequal subgroup sizes the unweighted mean of ``Rᵢ/d2(nᵢ)`` (qcc's and
  SAS's default "UWAVE-R"), which is R̄/d2 when all sizes are equal.
* X̄-S: ``S̄/c4`` — likewise the mean of ``Sᵢ/c4(nᵢ)``.
* I-MR: ``MR̄/d2`` with d2(2) = 1.128, moving ranges of two consecutive individuals.
* p, np: binomial, ``√(p̄(1 − p̄))`` per unit; c, u: Poisson, ``√c̄`` / ``√ū`` per unit.

With unequal subgroup sizes the R and S charts get a center line per point, ``d2(nᵢ)σ̂`` and
``c4(nᵢ)σ̂`` — the expected range and standard deviation at that size (SAS/QC's convention; qcc
keeps one weighted-mean center line). With equal sizes both are R̄ and S̄.

Rules and where they do not belong
----------------------------------
Run rules assume independent points with a symmetric, roughly normal distribution about the
center line. R and S are skewed (their zone probabilities are not the normal ones), and
consecutive moving ranges share an observation, so they are correlated and runs appear by
construction. On R, S and MR charts only the beyond-limits rule is applied; the requested rule set
is filtered accordingly (and :attr:`ControlChart.rules` says what was applied). For one-sided
attribute limits (LCL clipped at 0) see :mod:`workbench.spc.rules`.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from workbench.errors import SPCError
from workbench.spc import rules as rulebook
from workbench.spc._input import InputSpec, Phase, plain, read
from workbench.spc.registry import (
    CHART_TYPES,
    CHARTS,
    SIGMAS,
    TIME_WEIGHTED,
    ChartType,
    FloatArray,
    Limits,
    Points,
    Subgroups,
    chart_name,
    chart_type,
)

RuleSpec = str | Sequence[str]

DEFAULT_RULES = "western_electric"
MIN_SUBGROUPS = 10
MAX_ITERATIONS = 25

__all__ = ["CHARTS", "CHART_TYPES", "SIGMAS", "ChartPair", "ChartType", "ControlChart", "Limits",
           "Points", "Subgroups", "Violation", "c_chart", "control_chart", "imr", "np_chart", "p_chart",
           "u_chart", "with_rules", "xbar_r", "xbar_s"]


# =============================================================================================
# results
# =============================================================================================

@dataclass(frozen=True)
class Violation:
    """One point that triggered one rule.

    Attributes
    ----------
    rule : str
        Rule name (``"we2"``, ``"nelson3"`` …; see :data:`workbench.spc.rules.RULES`).
    index : int
        Position of the point on its chart (0-based).
    subgroup : hashable
        Subgroup id of the point.
    chart : str
        Label of the chart the point is on ("X̄", "R", …).
    message : str
        Plain-English description of what happened where.
    """

    rule: str
    index: int
    subgroup: Hashable
    chart: str
    message: str


def _squeeze(values: FloatArray) -> float | FloatArray:
    """A float when every point has the same value, else the array (read-only)."""
    if values.size and np.all(values == values[0]):
        return float(values[0])
    out = values.copy()
    out.setflags(write=False)
    return out


def _readonly(values: np.ndarray) -> np.ndarray:
    out = values.copy()
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class ControlChart:
    """A computed control chart (phase I or phase II).

    Attributes
    ----------
    chart_type : str
        Registry key in :data:`CHART_TYPES` (``"xbar_rbar"``, ``"r"``, ``"p"`` …).
    label : str
        Chart name for display ("X̄", "R", "S", "I", "MR", "p", "np", "c", "u").
    subgroups : ndarray of object
        Subgroup id of each plotted point, in chart order.
    statistic : ndarray
        The plotted values.
    sizes : ndarray
        Subgroup size (or sample size / units) of each point.
    center, lcl, ucl : float or ndarray
        Center line and control limits: a float when constant, an array (one per point) when
        they vary with the subgroup size. Attribute and dispersion LCLs are floored at 0.
    se : float or ndarray
        Standard error of each plotted point (σ̂/√n on an X̄ chart, √(p̄(1−p̄)/n) on a p chart …).
    sigma : float
        The process sigma estimate the limits come from (per observation; per unit for attribute
        charts).
    sigma_method : str
        How it was estimated: ``"R̄/d2"``, ``"S̄/c4"``, ``"MR̄/d2"``, ``"binomial"``, ``"Poisson"``.
    parameter : float
        The frozen process parameter phase II reuses: x̿, R̄, S̄, MR̄, p̄, c̄ or ū.
    nsigmas : float
        Width of the limits in standard errors.
    phase : {"I", "II"}
        "I": limits estimated from these data; "II": data judged against frozen limits.
    rules : tuple of str
        Rules applied to this chart (after dropping the ones that do not belong on it).
    violations : tuple of Violation
        Every rule violation, by rule then point.
    excluded : tuple
        Subgroup ids left out of the phase I estimates (given or found by iterating).
    one_sided : ndarray of bool
        Points whose lower limit was clipped at 0 (no lower zones there; see rules).
    """

    chart_type: str
    label: str
    subgroups: NDArray[np.object_]
    statistic: FloatArray
    sizes: FloatArray
    center: float | FloatArray
    lcl: float | FloatArray
    ucl: float | FloatArray
    se: float | FloatArray
    sigma: float
    sigma_method: str
    parameter: float
    nsigmas: float
    phase: Phase
    rules: tuple[str, ...]
    violations: tuple[Violation, ...]
    excluded: tuple[Hashable, ...] = ()
    one_sided: NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))
    requested_rules: RuleSpec = DEFAULT_RULES
    source: InputSpec | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.statistic.size)

    def _full(self, value: float | FloatArray) -> FloatArray:
        return np.broadcast_to(np.asarray(value, dtype=float), self.statistic.shape)

    @property
    def z(self) -> FloatArray:
        """Standardized points, (statistic − center) / se — what the rules look at."""
        return (self.statistic - self._full(self.center)) / self._full(self.se)

    @property
    def out_of_control(self) -> NDArray[np.intp]:
        """Sorted indexes of the points with at least one violation."""
        return np.array(sorted({v.index for v in self.violations}), dtype=np.intp)

    @property
    def beyond_limits(self) -> NDArray[np.intp]:
        """Indexes of the points above the UCL or below the LCL."""
        s = self.statistic
        return np.flatnonzero((s > self._full(self.ucl)) | (s < self._full(self.lcl))).astype(np.intp)

    @property
    def in_control(self) -> bool:
        """True when no rule fired."""
        return not self.violations

    def to_frame(self) -> pd.DataFrame:
        """One row per point: subgroup, statistic, size, center, lcl, ucl, z, rules fired."""
        fired: dict[int, list[str]] = {}
        for v in self.violations:
            fired.setdefault(v.index, []).append(v.rule)
        return pd.DataFrame({
            "subgroup": self.subgroups, "statistic": self.statistic, "size": self.sizes,
            "center": self._full(self.center), "lcl": self._full(self.lcl),
            "ucl": self._full(self.ucl), "z": self.z,
            "violations": [",".join(fired.get(i, [])) for i in range(len(self))],
        })

    def summary(self) -> dict[str, Any]:
        """Plain-Python summary (JSON-ready): limits, sigma, method and violations."""
        def listed(x: float | FloatArray) -> float | list[float]:
            return [float(v) for v in x] if isinstance(x, np.ndarray) else float(x)

        return {
            "chart": self.label, "chart_type": self.chart_type, "phase": self.phase,
            "points": len(self), "center": listed(self.center), "lcl": listed(self.lcl),
            "ucl": listed(self.ucl), "sigma": self.sigma, "sigma_method": self.sigma_method,
            "nsigmas": self.nsigmas, "rules": list(self.rules),
            "excluded": [_plain_id(s) for s in self.excluded],
            "violations": violations_summary(self.violations),
        }

    def apply(self, new_data: Any) -> ControlChart:
        """Phase II: judge new data against this chart's frozen center and sigma.

        Parameters
        ----------
        new_data : pandas.DataFrame or polars.DataFrame
            New data with the same columns as the phase I data.

        Returns
        -------
        ControlChart
            A phase II chart: limits from the frozen estimates (per point for new subgroup
            sizes), rules evaluated on the new points alone.
        """
        if self.source is None:
            raise SPCError("this chart does not know how its data was read; build it with the "
                           "spc chart functions to use apply()")
        sub = read(new_data, self.source, phase="II")
        spec = chart_type(self.chart_type)
        return _evaluate(spec, sub, center=self.parameter, sigma=self.sigma, nsigmas=self.nsigmas,
                         rules=self.requested_rules, phase="II", excluded=(), source=self.source)


def violations_summary(violations: Iterable[Violation]) -> list[dict[str, Any]]:
    """Violations as plain dicts (rule, index, subgroup, message) for a JSON summary."""
    return [{"rule": v.rule, "index": v.index, "subgroup": _plain_id(v.subgroup), "message": v.message}
            for v in violations]


def _plain_id(value: Hashable) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


@dataclass(frozen=True, eq=False)
class ChartPair:
    """A location chart and its dispersion chart (X̄ with R or S, I with MR).

    Unpacks like a tuple: ``xbar, r = spc.xbar_r(df, value="v", subgroup="s")``.
    """

    location: ControlChart
    dispersion: ControlChart

    def __iter__(self) -> Iterator[ControlChart]:
        return iter((self.location, self.dispersion))

    @property
    def violations(self) -> tuple[Violation, ...]:
        """Violations of both charts, location chart first."""
        return self.location.violations + self.dispersion.violations

    @property
    def in_control(self) -> bool:
        """True when neither chart has a violation."""
        return not self.violations

    @property
    def phase(self) -> Phase:
        """Phase of both charts."""
        return self.location.phase

    def summary(self) -> dict[str, Any]:
        """Summaries of both charts."""
        return {"location": self.location.summary(), "dispersion": self.dispersion.summary()}

    def apply(self, new_data: Any) -> ChartPair:
        """Phase II for both charts (see :meth:`ControlChart.apply`)."""
        return ChartPair(self.location.apply(new_data), self.dispersion.apply(new_data))


# =============================================================================================
# building charts
# =============================================================================================

def _applicable_rules(spec: ChartType, rules: RuleSpec) -> tuple[str, ...]:
    names = rulebook.resolve(rules)
    if spec.run_rules:
        return names
    # Dispersion charts: only the beyond-limits test is meaningful (see module docstring).
    return tuple(n for n in names if n in rulebook.BEYOND_LIMITS_RULES)


def _violations(spec: ChartType, points: Points, limits: Limits, rule_names: tuple[str, ...],
                nsigmas: float) -> tuple[Violation, ...]:
    z = (points.values - limits.center) / limits.se
    found: list[Violation] = []
    for name in rule_names:
        text = rulebook.describe(name)
        for i in rulebook.RULES[name](z, lower=limits.lower, limit=nsigmas):
            sid = points.ids[int(i)]
            found.append(Violation(rule=name, index=int(i), subgroup=sid, chart=spec.label,
                                   message=f"{spec.label} chart, subgroup {sid!r}: {text}"))
    return tuple(found)


def _evaluate(spec: ChartType, sub: Subgroups, *, center: float, sigma: float, nsigmas: float,
              rules: RuleSpec, phase: Phase, excluded: tuple[Hashable, ...],
              source: InputSpec | None) -> ControlChart:
    points = spec.statistic(sub)
    limits = spec.limits(center, sigma, points.sizes, nsigmas)
    rule_names = _applicable_rules(spec, rules)
    return ControlChart(
        chart_type=spec.name, label=spec.label, subgroups=_readonly(points.ids),
        statistic=_readonly(points.values), sizes=_readonly(points.sizes),
        center=_squeeze(limits.center), lcl=_squeeze(limits.lcl), ucl=_squeeze(limits.ucl),
        se=_squeeze(limits.se), sigma=float(sigma), sigma_method=spec.sigma_method,
        parameter=float(center), nsigmas=float(nsigmas), phase=phase, rules=rule_names,
        violations=_violations(spec, points, limits, rule_names, nsigmas), excluded=excluded,
        one_sided=_readonly(~limits.lower), requested_rules=rules, source=source)


def _include_mask(sub: Subgroups, exclude: Iterable[Hashable]) -> NDArray[np.bool_]:
    include = np.ones(len(sub), dtype=bool)
    lookup = {plain(s): i for i, s in enumerate(sub.ids)}
    for sid in exclude:
        i = lookup.get(plain(sid))
        if i is None:
            raise SPCError(f"exclude: subgroup {sid!r} is not in the data")
        include[i] = False
    return include


def _estimate(spec: ChartType, sub: Subgroups, include: NDArray[np.bool_],
              min_subgroups: int) -> tuple[float, float]:
    used = int(include.sum())
    if used < min_subgroups:
        left = f"{used} of {len(sub)}" if used < len(sub) else str(used)
        raise SPCError(f"too few subgroups to estimate {spec.label} chart limits: {left} "
                       f"subgroups are usable, at least {min_subgroups} are needed (Montgomery "
                       "recommends 20–25 for trial limits; pass min_subgroups= to accept fewer)")
    center = spec.center(sub, include)
    sigma = spec.sigma(sub, include)
    if not np.isfinite(sigma) or sigma <= 0:
        raise SPCError(f"cannot set {spec.label} chart limits: the estimated sigma is {sigma:g} "
                       f"({spec.sigma_method}) — every included subgroup shows no variation "
                       "(all counts zero, or measurements identical at the gauge's resolution)")
    return center, sigma


def _phase_one(data: Any, source: InputSpec, *, nsigmas: float, rules: RuleSpec,
               exclude: Iterable[Hashable], iterate: bool, min_subgroups: int) -> ChartPair | ControlChart:
    if not nsigmas > 0:
        raise SPCError(f"nsigmas must be positive (got {nsigmas})")
    rulebook.resolve(rules)  # fail on a bad rule set before any work
    specs = [CHART_TYPES[name] for name in CHARTS[source.chart]]
    sub = read(data, source, phase="I")
    include = _include_mask(sub, exclude)
    if source.kind == "individuals" and min_subgroups < 2:
        min_subgroups = 2

    for _ in range(MAX_ITERATIONS):
        charts = []
        for spec in specs:
            center, sigma = _estimate(spec, sub, include, min_subgroups)
            excluded = tuple(plain(s) for s in sub.ids[~include])
            charts.append(_evaluate(spec, sub, center=center, sigma=sigma, nsigmas=nsigmas,
                                    rules=rules, phase="I", excluded=excluded, source=source))
        if not iterate:
            break
        flagged = _newly_beyond(charts, sub, include)
        if not flagged.any():
            break
        include = include & ~flagged
    else:  # pragma: no cover - MAX_ITERATIONS only guards against a pathological loop
        raise SPCError(f"limits did not settle after {MAX_ITERATIONS} rounds of removing points")
    return ChartPair(charts[0], charts[1]) if len(charts) == 2 else charts[0]


def _newly_beyond(charts: list[ControlChart], sub: Subgroups,
                  include: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Included subgroups that are beyond the limits of a chart that may exclude them."""
    flagged = np.zeros(len(sub), dtype=bool)
    position = {plain(s): i for i, s in enumerate(sub.ids)}
    for chart in charts:
        # A moving range spans two individuals and does not say which one is unusual: I-MR
        # iterations remove the points beyond the I chart's limits only.
        if chart.chart_type == "mr":
            continue
        for i in chart.beyond_limits:
            flagged[position[plain(chart.subgroups[i])]] = True
    return flagged & include


# =============================================================================================
# public chart functions
# =============================================================================================

def xbar_r(data: Any, *, value: str, subgroup: str, time: str | None = None,
           rules: RuleSpec = DEFAULT_RULES, nsigmas: float = 3.0, exclude: Iterable[Hashable] = (),
           iterate: bool = False, min_subgroups: int = MIN_SUBGROUPS) -> ChartPair:
    """X̄ and R charts, σ̂ = R̄/d2.

    Parameters
    ----------
    data : pandas.DataFrame or polars.DataFrame
        One row per measurement.
    value : str
        Column with the measurements.
    subgroup : str
        Column with the subgroup id (every subgroup needs at least 2 measurements).
    time : str, optional
        Column ordering the subgroups by their earliest time (default: order of appearance).
    rules : str or sequence of str
        Rule set for the X̄ chart (``"western_electric"``, ``"nelson"``, ``"rule1"``, ``"none"``
        or rule names); the R chart only ever gets the beyond-limits rule.
    nsigmas : float
        Width of the limits in standard errors.
    exclude : iterable
        Subgroup ids to leave out of the estimates (they are still plotted and tested).
    iterate : bool
        Repeatedly drop the subgroups beyond the X̄ or R limits and re-estimate until none is
        left beyond (the textbook phase I procedure; do it only for points with causes found).
    min_subgroups : int
        Fewest subgroups the estimates may rest on.

    Returns
    -------
    ChartPair
        ``location`` (X̄) and ``dispersion`` (R) charts.

    Examples
    --------
    >>> xbar, r = spc.xbar_r(df, value="value", subgroup="subgroup_id")  # doctest: +SKIP
    >>> xbar.ucl, r.center, xbar.sigma_method                             # doctest: +SKIP
    """
    source = InputSpec("subgrouped", "xbar_r", value, subgroup=subgroup, time=time)
    return _phase_one(data, source, nsigmas=nsigmas, rules=rules, exclude=exclude, iterate=iterate,
                      min_subgroups=min_subgroups)  # type: ignore[return-value]


def xbar_s(data: Any, *, value: str, subgroup: str, time: str | None = None,
           rules: RuleSpec = DEFAULT_RULES, nsigmas: float = 3.0, exclude: Iterable[Hashable] = (),
           iterate: bool = False, min_subgroups: int = MIN_SUBGROUPS) -> ChartPair:
    """X̄ and S charts, σ̂ = S̄/c4 (better than R for subgroups larger than about 10).

    Parameters are those of :func:`xbar_r`.

    Returns
    -------
    ChartPair
        ``location`` (X̄) and ``dispersion`` (S) charts.
    """
    source = InputSpec("subgrouped", "xbar_s", value, subgroup=subgroup, time=time)
    return _phase_one(data, source, nsigmas=nsigmas, rules=rules, exclude=exclude, iterate=iterate,
                      min_subgroups=min_subgroups)  # type: ignore[return-value]


def imr(data: Any, *, value: str, subgroup: str | None = None, time: str | None = None,
        rules: RuleSpec = DEFAULT_RULES, nsigmas: float = 3.0, exclude: Iterable[Hashable] = (),
        iterate: bool = False, min_subgroups: int = MIN_SUBGROUPS) -> ChartPair:
    """Individuals and moving-range charts, σ̂ = MR̄/d2 (d2 = 1.128 for ranges of two).

    Parameters
    ----------
    data : pandas.DataFrame or polars.DataFrame
        One row per individual value, in time order (or give ``time``).
    value : str
        Column with the values.
    subgroup : str, optional
        Column labelling each point (batch, lot …; must be unique). Default: the frame's index.
    time, rules, nsigmas, min_subgroups
        As for :func:`xbar_r`.
    exclude : iterable
        Point ids to leave out; the moving ranges touching them are left out too.
    iterate : bool
        Repeatedly drop the points beyond the I chart limits and re-estimate.

    Returns
    -------
    ChartPair
        ``location`` (I) and ``dispersion`` (MR, one point fewer) charts.
    """
    source = InputSpec("individuals", "imr", value, subgroup=subgroup, time=time)
    return _phase_one(data, source, nsigmas=nsigmas, rules=rules, exclude=exclude, iterate=iterate,
                      min_subgroups=min_subgroups)  # type: ignore[return-value]


def p_chart(data: Any, *, defectives: str, size: str, subgroup: str | None = None,
            time: str | None = None, rules: RuleSpec = DEFAULT_RULES, nsigmas: float = 3.0,
            exclude: Iterable[Hashable] = (), iterate: bool = False,
            min_subgroups: int = MIN_SUBGROUPS) -> ControlChart:
    """Fraction nonconforming (p) chart; sample sizes may vary (limits per point).

    Parameters
    ----------
    data : pandas.DataFrame or polars.DataFrame
        One row per sample.
    defectives : str
        Column with the number of nonconforming units in the sample.
    size : str
        Column with the number of units inspected.
    subgroup : str, optional
        Column labelling each sample (unique). Default: the frame's index.
    time, rules, nsigmas, exclude, iterate, min_subgroups
        As for :func:`xbar_r`.

    Returns
    -------
    ControlChart
        Center p̄ = ΣD/Σn, limits p̄ ± 3√(p̄(1−p̄)/nᵢ) clipped to [0, 1].
    """
    source = InputSpec("attributes", "p", defectives, subgroup=subgroup, size=size, time=time)
    return _phase_one(data, source, nsigmas=nsigmas, rules=rules, exclude=exclude, iterate=iterate,
                      min_subgroups=min_subgroups)  # type: ignore[return-value]


def np_chart(data: Any, *, defectives: str, size: str, subgroup: str | None = None,
             time: str | None = None, rules: RuleSpec = DEFAULT_RULES, nsigmas: float = 3.0,
             exclude: Iterable[Hashable] = (), iterate: bool = False,
             min_subgroups: int = MIN_SUBGROUPS) -> ControlChart:
    """Number nonconforming (np) chart; every sample must have the same size.

    Parameters are those of :func:`p_chart`.

    Returns
    -------
    ControlChart
        Center n p̄, limits n p̄ ± 3√(n p̄(1−p̄)) clipped to [0, n].
    """
    source = InputSpec("attributes", "np", defectives, subgroup=subgroup, size=size, time=time)
    return _phase_one(data, source, nsigmas=nsigmas, rules=rules, exclude=exclude, iterate=iterate,
                      min_subgroups=min_subgroups)  # type: ignore[return-value]


def c_chart(data: Any, *, defects: str, size: str | None = None, subgroup: str | None = None,
            time: str | None = None, rules: RuleSpec = DEFAULT_RULES, nsigmas: float = 3.0,
            exclude: Iterable[Hashable] = (), iterate: bool = False,
            min_subgroups: int = MIN_SUBGROUPS) -> ControlChart:
    """Count of nonconformities (c) chart for a constant area of opportunity.

    Parameters
    ----------
    data : pandas.DataFrame or polars.DataFrame
        One row per inspection unit.
    defects : str
        Column with the number of nonconformities found.
    size : str, optional
        Inspection-unit column; if given it must be constant (else use :func:`u_chart`).
    subgroup, time, rules, nsigmas, exclude, iterate, min_subgroups
        As for :func:`p_chart`.

    Returns
    -------
    ControlChart
        Center c̄, limits c̄ ± 3√c̄, the lower one clipped at 0.
    """
    source = InputSpec("attributes", "c", defects, subgroup=subgroup, size=size, time=time)
    return _phase_one(data, source, nsigmas=nsigmas, rules=rules, exclude=exclude, iterate=iterate,
                      min_subgroups=min_subgroups)  # type: ignore[return-value]


def u_chart(data: Any, *, defects: str, size: str, subgroup: str | None = None,
            time: str | None = None, rules: RuleSpec = DEFAULT_RULES, nsigmas: float = 3.0,
            exclude: Iterable[Hashable] = (), iterate: bool = False,
            min_subgroups: int = MIN_SUBGROUPS) -> ControlChart:
    """Nonconformities per unit (u) chart; the number of units may vary (limits per point).

    Parameters
    ----------
    data : pandas.DataFrame or polars.DataFrame
        One row per sample.
    defects : str
        Column with the number of nonconformities in the sample.
    size : str
        Column with the number of inspection units (may be fractional, e.g. m² of sheet).
    subgroup, time, rules, nsigmas, exclude, iterate, min_subgroups
        As for :func:`p_chart`.

    Returns
    -------
    ControlChart
        Center ū = Σx/Σn, limits ū ± 3√(ū/nᵢ), the lower one clipped at 0.
    """
    source = InputSpec("attributes", "u", defects, subgroup=subgroup, size=size, time=time)
    return _phase_one(data, source, nsigmas=nsigmas, rules=rules, exclude=exclude, iterate=iterate,
                      min_subgroups=min_subgroups)  # type: ignore[return-value]


def control_chart(data: Any, *, chart: str, value: str, subgroup: str | None = None,
                  size: str | None = None, time: str | None = None, rules: RuleSpec = DEFAULT_RULES,
                  nsigmas: float = 3.0, exclude: Iterable[Hashable] = (), iterate: bool = False,
                  min_subgroups: int = MIN_SUBGROUPS,
                  params: Mapping[str, float] | None = None) -> ChartPair | ControlChart:
    """Any chart by name — for configuration-driven use (``characteristics.chart_type``, the CLI).

    Parameters
    ----------
    data : pandas.DataFrame or polars.DataFrame
        Measurements or attribute samples.
    chart : str
        ``"xbar_r"``, ``"xbar_s"``, ``"imr"``, ``"p"``, ``"np"``, ``"c"`` or ``"u"`` (hyphens work),
        or the time-weighted ``"ewma"`` and ``"cusum"`` (:mod:`workbench.spc.timeweighted`).
    value : str
        Measurement column, or the defectives / defects column of an attribute chart.
    subgroup, size, time, rules, nsigmas, exclude, iterate, min_subgroups
        As for the specific chart functions. For ``"ewma"`` and ``"cusum"`` ``rules`` is ignored
        (only their own signal rule applies), and ``size``, ``nsigmas`` and ``iterate`` must be
        left at their defaults.
    params : mapping, optional
        The design of a time-weighted chart: ``lam``, ``L``, ``target``, ``sigma`` for
        ``"ewma"``; ``k``, ``h``, ``headstart``, ``target``, ``sigma`` for ``"cusum"``
        (missing keys take the defaults of :func:`~workbench.spc.timeweighted.ewma` /
        :func:`~workbench.spc.timeweighted.cusum`). Not accepted for the Shewhart charts.

    Returns
    -------
    ChartPair or ControlChart
        A pair for X̄-R, X̄-S, I-MR and CUSUM (upper and lower sums), one chart otherwise.
    """
    name = chart_name(chart)
    if name in TIME_WEIGHTED:
        if size is not None or iterate or nsigmas != 3.0:
            design = "lam, L" if name == "ewma" else "k, h"
            raise SPCError(f"the {name} chart takes its design in params= ({design} …); size=, "
                           "nsigmas= and iterate= do not apply to it")
        from workbench.spc import timeweighted  # imports this module: import here, not at the top

        return timeweighted.from_params(name, data, value=value, subgroup=subgroup,  # type: ignore[arg-type]
                                        time=time, exclude=exclude, min_subgroups=min_subgroups,
                                        params=params)
    if params:
        raise SPCError(f"params= sets the design of the ewma and cusum charts; the {name} chart takes none")
    if name in ("xbar_r", "xbar_s"):
        if subgroup is None:
            raise SPCError(f"the {name.replace('_', '-')} chart needs the subgroup column")
        kind: Literal["subgrouped", "individuals", "attributes"] = "subgrouped"
    elif name == "imr":
        kind = "individuals"
    else:
        kind = "attributes"
    source = InputSpec(kind, name, value, subgroup=subgroup, size=size, time=time)
    return _phase_one(data, source, nsigmas=nsigmas, rules=rules, exclude=exclude, iterate=iterate,
                      min_subgroups=min_subgroups)


def with_rules(chart: ControlChart, rules: RuleSpec) -> ControlChart:
    """The same chart with a different rule set evaluated (limits unchanged).

    Parameters
    ----------
    chart : ControlChart
        A computed chart.
    rules : str or sequence of str
        Rule set or rule names.

    Returns
    -------
    ControlChart
        A copy with ``rules``, ``requested_rules`` and ``violations`` replaced.
    """
    spec = chart_type(chart.chart_type)
    names = _applicable_rules(spec, rules)
    full = chart._full
    limits = Limits(center=full(chart.center), lcl=full(chart.lcl), ucl=full(chart.ucl),
                    se=full(chart.se), lower=~chart.one_sided)
    points = Points(chart.subgroups, chart.statistic, chart.sizes)
    return replace(chart, rules=names, requested_rules=rules,
                   violations=_violations(spec, points, limits, names, chart.nsigmas))
