"""Time-weighted control charts for the process mean: EWMA and the tabular CUSUM.

Montgomery, *Introduction to Statistical Quality Control*, chapter 9; qcc's ``ewma``
and ``cusum``. Both accumulate evidence over many subgroups, so they see a small sustained shift
(about 0.5–1.5 standard errors of the plotted mean) in far fewer subgroups than a Shewhart X̄
chart with rule 1, at a comparable false-alarm rate. They are slower than X̄ for large shifts.

What is charted
---------------
The subgroup means x̄ᵢ of subgrouped data (one row per measurement, ``subgroup`` naming the
subgroup; σ_x̄ᵢ = σ̂/√nᵢ) or individual values (``subgroup`` omitted, or naming a column whose
ids are all unique; σ_x̄ = σ̂). Phase I estimates μ₀ (x̿, the mean of every included
observation) and σ̂ within subgroups — ``R̄/d2`` by default for subgroups (qcc's default
"UWAVE-R"), ``S̄/c4`` with ``within="sbar_c4"``, ``MR̄/d2`` for individuals — unless ``target=``
and ``sigma=`` give them. ``exclude=`` leaves subgroups with known causes out of the estimates.

* **EWMA** (Montgomery eq. 9.22): zᵢ = λx̄ᵢ + (1 − λ)zᵢ₋₁, z₀ = μ₀, with the exact time-varying
  limits μ₀ ± L·σ(zᵢ). For equal subgroup sizes σ(zᵢ) = σ_x̄ √(λ/(2 − λ)·[1 − (1 − λ)^{2i}]);
  with unequal sizes the exact variance Σ λ²(1 − λ)^{2(i−j)} σ̂²/nⱼ is used (qcc puts the current
  nᵢ into the closed form instead). The result is an :class:`EwmaChart`, a
  :class:`~workbench.spc.charts.ControlChart` whose statistic is z, center μ₀, per-point
  ``lcl``/``ucl``/``se`` and ``nsigmas`` = L; each point beyond its limits is a violation of rule
  ``"ewma"``.
* **Tabular CUSUM** in standardized units (Montgomery §9.1.3, eq. 9.2/9.3 with K = kσ, H = hσ):
  with zᵢ = (x̄ᵢ − μ₀)/σ_x̄ᵢ, C⁺ᵢ = max(0, zᵢ − k + C⁺ᵢ₋₁) and C⁻ᵢ = max(0, −zᵢ − k + C⁻ᵢ₋₁),
  C₀ = ``headstart`` (fast initial response; 0 by default). A point with C⁺ > h or C⁻ > h is a
  signal. N⁺ / N⁻ count the consecutive subgroups the sum has been nonzero (Montgomery Table 9.2),
  and at a signal the new process mean is estimated as μ₀ + σ̂(k + C⁺/N⁺)/mean(√nⱼ) (or
  μ₀ − σ̂(k + C⁻/N⁻)/mean(√nⱼ)) over the N subgroups of the run — Montgomery eq. 9.4/9.5. The
  result is a :class:`CusumChart`: a :class:`~workbench.spc.charts.ChartPair` of the upper side
  (statistic C⁺, label "C⁺") and the lower side (statistic −C⁻, label "C⁻", plotted below zero as
  qcc and Montgomery draw it), both with center 0 and limits ±h in standard errors; signals are
  violations of rules ``"cusum_upper"`` / ``"cusum_lower"``. The sums are not reset after a
  signal here (the chart shows them as Montgomery's table does); restart by applying the chart to
  the data after the cause was removed.

Rules
-----
The Western Electric / Nelson run rules do not apply to EWMA or CUSUM statistics: consecutive
values share most of their history, so they are strongly autocorrelated and runs, trends and
"2 of 3 beyond 2σ" patterns appear by construction. Each chart applies only its own signal rule,
whose run-length behaviour is what its design (λ, L or k, h) is chosen for — see
:func:`ewma_arl` and :func:`cusum_arl`.

Phase II
--------
``chart.apply(new)`` reads new data the same way and judges it against the frozen μ₀, σ̂ and
design; the statistics restart (z₀ = μ₀, C₀ = ``headstart``) and, for EWMA, so do the narrow
first limits. qcc instead continues the phase I statistics into the new data.

Average run length
------------------
:func:`cusum_arl` (Brook & Evans 1972) and :func:`ewma_arl` (Lucas & Saccucci 1990) compute the
zero-state ARL by a Markov-chain approximation, for a shift of the plotted mean given in its
standard errors. The EWMA value is for the asymptotic limits (as in the published tables); the
exact limits used by the chart are narrower for the first ~1/λ subgroups, which shortens the run
length slightly.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.signal import lfilter
from scipy.special import ndtr

from workbench.errors import SPCError
from workbench.spc._input import InputSpec, Phase, as_pandas, plain, read
from workbench.spc.charts import (
    MIN_SUBGROUPS,
    ChartPair,
    ControlChart,
    Violation,
    _include_mask,
    _plain_id,
    _readonly,
    violations_summary,
)
from workbench.spc.registry import SIGMAS, FloatArray, Subgroups, center_grand_mean

__all__ = ["RULES", "CusumChart", "CusumSide", "EwmaChart", "arl", "cusum", "cusum_arl", "ewma",
           "ewma_arl", "from_params"]

#: The signal rule of each time-weighted chart, in plain English (they are not run rules and are
#: not in :data:`workbench.spc.rules.RULES`).
RULES: dict[str, str] = {
    "ewma": "EWMA beyond its control limits",
    "cusum_upper": "upper CUSUM C⁺ above the decision interval h (the mean shifted up)",
    "cusum_lower": "lower CUSUM C⁻ above the decision interval h (the mean shifted down)",
}

_WITHIN = {"rbar_d2": "R̄/d2", "sbar_c4": "S̄/c4", "mrbar_d2": "MR̄/d2"}
_GIVEN = "given"

# Markov-chain sizes. The discretisation error falls as 1/states², so each ARL is extrapolated
# (Richardson) from the chain with these states and one with half as many; that reproduces the
# integral-equation values of R's spc package (xcusum.arl, xewma.arl) to about six digits.
CUSUM_STATES = 400
EWMA_STATES = 301


# =============================================================================================
# results
# =============================================================================================

@dataclass(frozen=True, eq=False, kw_only=True)
class EwmaChart(ControlChart):
    """An EWMA chart (phase I or II): a :class:`ControlChart` with the EWMA design.

    ``statistic`` is z, ``center`` and ``parameter`` are μ₀, ``lcl``/``ucl``/``se`` are per point
    (σ(zᵢ)), ``nsigmas`` is L and ``sigma`` the per-observation σ̂.

    Attributes
    ----------
    lam : float
        The smoothing constant λ.
    means : ndarray
        The subgroup means (or individual values) that were smoothed.
    """

    lam: float
    means: FloatArray = field(default_factory=lambda: np.zeros(0))

    @property
    def target(self) -> float:
        """μ₀, the in-control mean the chart is centred on (z₀)."""
        return self.parameter

    def to_frame(self) -> pd.DataFrame:
        """One row per point, as :meth:`ControlChart.to_frame` plus the smoothed ``mean``."""
        frame = super().to_frame()
        frame.insert(1, "mean", self.means)
        return frame

    def summary(self) -> dict[str, Any]:
        """:meth:`ControlChart.summary` plus λ (``nsigmas`` is L)."""
        return {**super().summary(), "lambda": self.lam, "L": self.nsigmas}

    def apply(self, new_data: Any) -> EwmaChart:
        """Phase II: judge new data against the frozen μ₀, σ̂, λ and L (z restarts at μ₀).

        Parameters
        ----------
        new_data : pandas.DataFrame or polars.DataFrame
            New data with the same columns as the phase I data.

        Returns
        -------
        EwmaChart
        """
        sub = read(new_data, self._source(), phase="II")
        return _ewma(sub, source=self._source(), target=self.parameter, sigma=self.sigma,
                     sigma_method=self.sigma_method, lam=self.lam, L=self.nsigmas, phase="II", excluded=())

    def _source(self) -> InputSpec:
        if self.source is None:
            raise SPCError("this chart does not know how its data was read; build it with spc "
                           "timeweighted.ewma to use apply()")
        return self.source


@dataclass(frozen=True, eq=False, kw_only=True)
class CusumSide(ControlChart):
    """One side of a tabular CUSUM: the upper sums C⁺ or the lower sums plotted as −C⁻.

    Center 0, limits ±h, ``se`` 1 and ``nsigmas`` h: the sums are in standard errors of the
    subgroup mean. ``parameter`` is μ₀ and ``sigma`` the per-observation σ̂.

    Attributes
    ----------
    k, h, headstart : float
        The CUSUM design (standard errors).
    counter : ndarray of int
        N⁺ (or N⁻): consecutive subgroups the sum has been nonzero.
    new_mean : ndarray
        Estimated new process mean at the points that signal on this side (NaN elsewhere).
    """

    k: float
    h: float
    headstart: float
    counter: NDArray[np.intp] = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    new_mean: FloatArray = field(default_factory=lambda: np.zeros(0))

    @property
    def sums(self) -> FloatArray:
        """The CUSUM itself, C⁺ or C⁻ (both ≥ 0, as Montgomery tabulates them)."""
        return np.abs(self.statistic)

    def apply(self, new_data: Any) -> CusumSide:
        """Phase II of this side (see :meth:`CusumChart.apply`)."""
        pair = _cusum_apply(self, new_data)
        return pair.upper if self.chart_type == "cusum_upper" else pair.lower


@dataclass(frozen=True, eq=False)
class CusumChart(ChartPair):
    """A two-sided tabular CUSUM: ``location`` is the upper side, ``dispersion`` the lower one.

    Unpacks like any pair (``upper, lower = spc.timeweighted.cusum(...)``); ``violations`` lists
    the signals of both sides in time order.

    Attributes
    ----------
    means : ndarray
        Subgroup means (or individual values).
    z : ndarray
        The standardized means (x̄ᵢ − μ₀)/σ_x̄ᵢ that are accumulated.
    """

    means: FloatArray
    z: FloatArray

    @property
    def upper(self) -> CusumSide:
        """The upper side: C⁺ (statistic), N⁺ (``counter``)."""
        return self.location  # type: ignore[return-value]

    @property
    def lower(self) -> CusumSide:
        """The lower side: −C⁻ (statistic; ``sums`` is C⁻), N⁻ (``counter``)."""
        return self.dispersion  # type: ignore[return-value]

    @property
    def target(self) -> float:
        """μ₀."""
        return self.upper.parameter

    @property
    def sigma(self) -> float:
        """σ̂ per observation."""
        return self.upper.sigma

    @property
    def k(self) -> float:
        """Reference value k (standard errors)."""
        return self.upper.k

    @property
    def h(self) -> float:
        """Decision interval h (standard errors)."""
        return self.upper.h

    @property
    def headstart(self) -> float:
        """Starting value of both sums (standard errors)."""
        return self.upper.headstart

    def __len__(self) -> int:
        return len(self.upper)

    @property
    def violations(self) -> tuple[Violation, ...]:
        """Signals of both sides, in time order (upper first at the same point)."""
        both = self.upper.violations + self.lower.violations
        return tuple(sorted(both, key=lambda v: (v.index, v.rule != "cusum_upper")))

    @property
    def signals(self) -> NDArray[np.intp]:
        """Sorted indexes of the points where either sum exceeds h."""
        return np.array(sorted({v.index for v in self.violations}), dtype=np.intp)

    def to_frame(self) -> pd.DataFrame:
        """One row per point: subgroup, mean, z, C⁺, N⁺, C⁻, N⁻, the signal and the new mean."""
        up, lo = self.upper, self.lower
        signal = np.where(up.sums > self.h, "up", np.where(lo.sums > self.h, "down", ""))
        return pd.DataFrame({
            "subgroup": up.subgroups, "mean": self.means, "size": up.sizes, "z": self.z,
            "c_upper": up.sums, "n_upper": up.counter, "c_lower": lo.sums, "n_lower": lo.counter,
            "signal": signal, "new_mean": np.where(np.isnan(up.new_mean), lo.new_mean, up.new_mean),
        })

    def summary(self) -> dict[str, Any]:
        """Plain-Python summary: design, estimates and signals (JSON-ready)."""
        return {
            "chart": "CUSUM", "phase": self.phase, "points": len(self), "target": self.target,
            "sigma": self.sigma, "sigma_method": self.upper.sigma_method, "k": self.k, "h": self.h,
            "headstart": self.headstart, "excluded": [_plain_id(s) for s in self.upper.excluded],
            "violations": violations_summary(self.violations),
        }

    def apply(self, new_data: Any) -> CusumChart:
        """Phase II: new data against the frozen μ₀, σ̂, k and h (the sums restart at ``headstart``).

        Parameters
        ----------
        new_data : pandas.DataFrame or polars.DataFrame
            New data with the same columns as the phase I data.

        Returns
        -------
        CusumChart
        """
        return _cusum_apply(self.upper, new_data)


# =============================================================================================
# reading, phase I estimates, checks
# =============================================================================================

def _source(data: Any, chart: str, value: str, subgroup: str | None, time: str | None) -> InputSpec:
    # Individual values when there is no subgroup column or every id in it is unique (qcc's
    # "xbar.one"); otherwise subgroups of several measurements.
    if subgroup is not None:
        df = as_pandas(data)
        if subgroup not in df.columns or not df[subgroup].is_unique:
            return InputSpec("subgrouped", chart, value, subgroup=subgroup, time=time)
    return InputSpec("individuals", chart, value, subgroup=subgroup, time=time)


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise SPCError(f"{name} must be a number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise SPCError(f"{name} must be finite, got {value!r}")
    return out


def _check_ewma(lam: float, L: float) -> tuple[float, float]:  # noqa: N803 - Montgomery's L
    lam, L = _number(lam, "lam"), _number(L, "L")  # noqa: N806
    if not 0.0 < lam <= 1.0:
        raise SPCError(f"the EWMA smoothing constant λ (lam) must be in (0, 1], got {lam:g} "
                       "(0.05–0.25 detect small shifts; λ = 1 is the Shewhart chart)")
    if not L > 0.0:
        raise SPCError(f"the EWMA limit width L must be positive, got {L:g} (2.7–3 is usual)")
    return lam, L


def _check_cusum(k: float, h: float, headstart: float) -> tuple[float, float, float]:
    k, h, headstart = _number(k, "k"), _number(h, "h"), _number(headstart, "headstart")
    if k < 0.0:
        raise SPCError(f"the CUSUM reference value k must be >= 0, got {k:g} (k = 0.5 detects a "
                       "shift of one standard error of the mean fastest)")
    if not h > 0.0:
        raise SPCError(f"the CUSUM decision interval h must be positive, got {h:g} (4 or 5 is usual "
                       "with k = 0.5)")
    if not 0.0 <= headstart < h:
        raise SPCError(f"the CUSUM headstart must be >= 0 and below h = {h:g}, got {headstart:g} "
                       "(h/2 is the usual fast initial response)")
    return k, h, headstart


@dataclass(frozen=True)
class _PhaseOne:
    source: InputSpec
    sub: Subgroups
    target: float
    sigma: float
    sigma_method: str
    excluded: tuple[Hashable, ...]


def _phase_one(data: Any, *, chart: str, label: str, value: str, subgroup: str | None, time: str | None,
               target: float | None, sigma: float | None, within: str | None,
               exclude: Iterable[Hashable], min_subgroups: int) -> _PhaseOne:
    source = _source(data, chart, value, subgroup, time)
    individuals = source.kind == "individuals"
    method = within or ("mrbar_d2" if individuals else "rbar_d2")
    if method not in _WITHIN:
        raise SPCError(f"within={within!r} is not a sigma estimator; use one of {', '.join(_WITHIN)}")
    if individuals != (method == "mrbar_d2"):
        kind = "individual values" if individuals else "subgroups of several measurements"
        raise SPCError(f"within={method!r} does not fit {kind}: use 'mrbar_d2' for individuals, "
                       "'rbar_d2' or 'sbar_c4' for subgroups")
    mu = None if target is None else _number(target, "target")
    given = None if sigma is None else _number(sigma, "sigma")
    if given is not None and given <= 0:
        raise SPCError(f"sigma must be positive, got {given:g}")
    sub = read(data, source, phase="I")
    include = _include_mask(sub, exclude)
    excluded = tuple(plain(s) for s in sub.ids[~include])
    if mu is None or given is None:
        floor = max(min_subgroups, 2) if individuals else min_subgroups
        used = int(include.sum())
        if used < floor:
            left = f"{used} of {len(sub)}" if used < len(sub) else str(used)
            raise SPCError(f"too few subgroups to estimate the {label} chart's in-control mean and "
                           f"sigma: {left} subgroups are usable, at least {floor} are needed (pass "
                           "target= and sigma= when they are known, or min_subgroups= to accept fewer)")
    if mu is None:
        mu = center_grand_mean(sub, include)
    if given is None:
        given = SIGMAS[method](sub, include)
        if not math.isfinite(given) or given <= 0:
            raise SPCError(f"cannot set {label} chart limits: the estimated sigma is {given:g} "
                           f"({_WITHIN[method]}) — every included subgroup shows no variation")
        sigma_method = _WITHIN[method]
    else:
        sigma_method = _GIVEN
    return _PhaseOne(source, sub, float(mu), float(given), sigma_method, excluded)


def _means(sub: Subgroups) -> FloatArray:
    if sub.values is None:  # pragma: no cover - read() always gives variables data here
        raise SPCError("time-weighted charts need variables data")
    return np.nanmean(sub.values, axis=1)


# =============================================================================================
# EWMA
# =============================================================================================

def _ewma(sub: Subgroups, *, source: InputSpec, target: float, sigma: float, sigma_method: str,
          lam: float, L: float, phase: Phase, excluded: tuple[Hashable, ...]) -> EwmaChart:  # noqa: N803
    means = _means(sub)
    sizes = sub.sizes
    # zᵢ = λx̄ᵢ + (1 − λ)zᵢ₋₁ from z₀ = μ₀, and its exact variance Vᵢ = (1 − λ)²Vᵢ₋₁ + λ²σ²/nᵢ from
    # V₀ = 0, which is σ²/n · λ/(2 − λ)·[1 − (1 − λ)^{2i}] for equal sizes (Montgomery eq. 9.22).
    z = lfilter([lam], [1.0, -(1.0 - lam)], means, zi=[(1.0 - lam) * target])[0]
    var = lfilter([lam**2], [1.0, -(1.0 - lam) ** 2], sigma**2 / sizes)
    se = np.sqrt(var)
    lcl, ucl = target - L * se, target + L * se
    found: list[Violation] = []
    for i in np.flatnonzero((z > ucl) | (z < lcl)):
        sid = sub.ids[int(i)]
        up = bool(z[i] > ucl[i])
        limit = f"UCL = {ucl[i]:.5g}" if up else f"LCL = {lcl[i]:.5g}"
        found.append(Violation(
            rule="ewma", index=int(i), subgroup=sid, chart="EWMA",
            message=(f"EWMA chart, subgroup {sid!r}: z = {z[i]:.5g} {'>' if up else '<'} {limit} "
                     f"(mean shifted {'up' if up else 'down'}; λ = {lam:g}, L = {L:g})")))
    return EwmaChart(
        chart_type="ewma", label="EWMA", subgroups=_readonly(sub.ids), statistic=_readonly(z),
        sizes=_readonly(sizes), center=float(target), lcl=_readonly(lcl), ucl=_readonly(ucl),
        se=_readonly(se), sigma=float(sigma), sigma_method=sigma_method, parameter=float(target),
        nsigmas=float(L), phase=phase, rules=("ewma",), violations=tuple(found), excluded=excluded,
        one_sided=_readonly(np.zeros(len(sub), dtype=bool)), requested_rules="ewma", source=source,
        lam=float(lam), means=_readonly(means))


def ewma(data: Any, *, value: str, subgroup: str | None = None, time: str | None = None,
         lam: float = 0.2, L: float = 3.0, target: float | None = None,  # noqa: N803 - Montgomery's L
         sigma: float | None = None, within: str | None = None, exclude: Iterable[Hashable] = (),
         min_subgroups: int = MIN_SUBGROUPS) -> EwmaChart:
    """EWMA chart of the subgroup means (or individual values), exact time-varying limits.

    zᵢ = λx̄ᵢ + (1 − λ)zᵢ₋₁ with z₀ = μ₀; limits μ₀ ± L σ_x̄ √(λ/(2 − λ)[1 − (1 − λ)^{2i}])
    (Montgomery eq. 9.22, qcc ``ewma``). Only the chart's own signal — z beyond its limits, rule
    ``"ewma"`` — is tested: the Western Electric / Nelson run rules do not apply to EWMA values,
    which are autocorrelated by construction.

    Parameters
    ----------
    data : pandas.DataFrame or polars.DataFrame
        One row per measurement.
    value : str
        Column with the measurements.
    subgroup : str, optional
        Subgroup column. Omitted, or naming a column of unique ids: individual values.
    time : str, optional
        Column ordering the subgroups by their earliest time (default: order of appearance).
    lam : float
        Smoothing constant λ in (0, 1]; 0.05–0.25 for small shifts.
    L : float
        Width of the limits in standard deviations of z (2.7–3 is usual).
    target : float, optional
        In-control mean μ₀ (and z₀); default x̿ of the included phase I data.
    sigma : float, optional
        Within-subgroup (per observation) σ; default estimated by ``within``.
    within : {"rbar_d2", "sbar_c4", "mrbar_d2"}, optional
        σ estimator: R̄/d2 (default for subgroups, as qcc), S̄/c4, MR̄/d2 (individuals).
    exclude : iterable
        Subgroup ids left out of the phase I estimates (still charted).
    min_subgroups : int
        Fewest subgroups the estimates may rest on (not checked when target and sigma are given).

    Returns
    -------
    EwmaChart
        A :class:`~workbench.spc.charts.ControlChart` (statistic z, center μ₀, per-point
        limits, ``nsigmas`` = L) with ``lam`` and the smoothed ``means``.

    Raises
    ------
    SPCError
        λ outside (0, 1], L ≤ 0, too few subgroups, no variation, bad columns.

    Examples
    --------
    >>> chart = ewma(df, value="value", subgroup="subgroup_id", lam=0.1, L=2.7)  # doctest: +SKIP
    >>> chart.apply(new_df).violations                                          # doctest: +SKIP
    """
    lam, L = _check_ewma(lam, L)  # noqa: N806
    est = _phase_one(data, chart="ewma", label="EWMA", value=value, subgroup=subgroup, time=time,
                     target=target, sigma=sigma, within=within, exclude=exclude,
                     min_subgroups=min_subgroups)
    return _ewma(est.sub, source=est.source, target=est.target, sigma=est.sigma,
                 sigma_method=est.sigma_method, lam=lam, L=L, phase="I", excluded=est.excluded)


# =============================================================================================
# CUSUM
# =============================================================================================

def _cusum(sub: Subgroups, *, source: InputSpec, target: float, sigma: float, sigma_method: str,
           k: float, h: float, headstart: float, phase: Phase,
           excluded: tuple[Hashable, ...]) -> CusumChart:
    means = _means(sub)
    sizes = sub.sizes
    root_n = np.sqrt(sizes)
    z = (means - target) / (sigma / root_n)
    n = len(z)
    sums = np.zeros((2, n))
    counts = np.zeros((2, n), dtype=np.intp)
    c = [headstart, headstart]
    run = [0, 0]
    for i in range(n):
        for side, step in ((0, z[i]), (1, -z[i])):
            c[side] = max(0.0, step - k + c[side])
            run[side] = run[side] + 1 if c[side] > 0.0 else 0
            sums[side, i], counts[side, i] = c[side], run[side]
    sides = []
    for side, (name, label, word, sign) in enumerate((("cusum_upper", "C⁺", "upper", 1.0),
                                                      ("cusum_lower", "C⁻", "lower", -1.0))):
        new_mean = np.full(n, np.nan)
        found: list[Violation] = []
        for i in np.flatnonzero(sums[side] > h):
            i = int(i)
            length = int(counts[side, i])
            first = i - length + 1
            # The run's mean standardized deviation is k + C/N; a run that reaches back to the
            # start also carries the headstart, which is no evidence of a shift.
            carried = headstart if first == 0 else 0.0
            shift = k + (sums[side, i] - carried) / length
            new_mean[i] = target + sign * shift * sigma / float(np.mean(root_n[first:i + 1]))
            sid = sub.ids[i]
            found.append(Violation(
                rule=name, index=i, subgroup=sid, chart=label,
                message=(f"CUSUM chart, subgroup {sid!r}: {word} CUSUM {label} = {sums[side, i]:.3g} > "
                         f"h = {h:g} (shift {'up' if sign > 0 else 'down'} for the last {length} "
                         f"subgroups, since subgroup {sub.ids[first]!r}; estimated new mean "
                         f"{new_mean[i]:.5g})")))
        sides.append(CusumSide(
            chart_type=name, label=label, subgroups=_readonly(sub.ids),
            statistic=_readonly(sign * sums[side]), sizes=_readonly(sizes), center=0.0, lcl=-h, ucl=h,
            se=1.0, sigma=float(sigma), sigma_method=sigma_method, parameter=float(target),
            nsigmas=float(h), phase=phase, rules=(name,), violations=tuple(found), excluded=excluded,
            one_sided=_readonly(np.zeros(n, dtype=bool)), requested_rules="cusum", source=source,
            k=float(k), h=float(h), headstart=float(headstart), counter=_readonly(counts[side]),
            new_mean=_readonly(new_mean)))
    return CusumChart(sides[0], sides[1], means=_readonly(means), z=_readonly(z))


def _cusum_apply(side: CusumSide, new_data: Any) -> CusumChart:
    if side.source is None:
        raise SPCError("this chart does not know how its data was read; build it with spc "
                       "timeweighted.cusum to use apply()")
    sub = read(new_data, side.source, phase="II")
    return _cusum(sub, source=side.source, target=side.parameter, sigma=side.sigma,
                  sigma_method=side.sigma_method, k=side.k, h=side.h, headstart=side.headstart,
                  phase="II", excluded=())


def cusum(data: Any, *, value: str, subgroup: str | None = None, time: str | None = None,
          k: float = 0.5, h: float = 5.0, target: float | None = None, sigma: float | None = None,
          within: str | None = None, exclude: Iterable[Hashable] = (),
          min_subgroups: int = MIN_SUBGROUPS, headstart: float = 0.0) -> CusumChart:
    """Two-sided tabular CUSUM of the subgroup means (or individual values), standardized.

    C⁺ᵢ = max(0, zᵢ − k + C⁺ᵢ₋₁), C⁻ᵢ = max(0, −zᵢ − k + C⁻ᵢ₋₁) with zᵢ = (x̄ᵢ − μ₀)/σ_x̄ᵢ and
    C₀ = ``headstart``; a sum above h signals (Montgomery §9.1, qcc ``cusum``). Only those two
    signals are tested (rules ``"cusum_upper"``, ``"cusum_lower"``): run rules do not apply to
    cumulative sums, which are autocorrelated by construction.

    Parameters
    ----------
    data : pandas.DataFrame or polars.DataFrame
        One row per measurement.
    value, subgroup, time, target, sigma, within, exclude, min_subgroups
        As for :func:`ewma`.
    k : float
        Reference value in standard errors of the mean: half the shift to detect fastest (0.5 for
        a one-standard-error shift).
    h : float
        Decision interval in standard errors (4 or 5 with k = 0.5: in-control ARL 168 / 465).
    headstart : float
        Starting value of both sums, in [0, h): h/2 gives a fast initial response (Lucas &
        Crosier 1982).

    Returns
    -------
    CusumChart
        A pair of :class:`CusumSide` charts — upper (C⁺) and lower (−C⁻) — with N⁺/N⁻,
        signals and new-mean estimates.

    Raises
    ------
    SPCError
        k < 0, h ≤ 0, headstart outside [0, h), too few subgroups, no variation, bad columns.

    Examples
    --------
    >>> chart = cusum(df, value="value", subgroup="subgroup_id", k=0.5, h=4)  # doctest: +SKIP
    >>> chart.to_frame()[["c_upper", "n_upper", "c_lower", "n_lower"]]        # doctest: +SKIP
    """
    k, h, headstart = _check_cusum(k, h, headstart)
    est = _phase_one(data, chart="cusum", label="CUSUM", value=value, subgroup=subgroup, time=time,
                     target=target, sigma=sigma, within=within, exclude=exclude,
                     min_subgroups=min_subgroups)
    return _cusum(est.sub, source=est.source, target=est.target, sigma=est.sigma,
                  sigma_method=est.sigma_method, k=k, h=h, headstart=headstart, phase="I",
                  excluded=est.excluded)


# =============================================================================================
# by name (spc.control_chart)
# =============================================================================================

_PARAMS: dict[str, tuple[str, ...]] = {
    "ewma": ("lam", "L", "target", "sigma"),
    "cusum": ("k", "h", "headstart", "target", "sigma"),
}


def from_params(name: Literal["ewma", "cusum"], data: Any, *, value: str, subgroup: str | None,
                time: str | None, exclude: Iterable[Hashable], min_subgroups: int,
                params: Mapping[str, float] | None) -> EwmaChart | CusumChart:
    """Build ``"ewma"`` or ``"cusum"`` with its design given as a mapping (for
    :func:`workbench.spc.charts.control_chart` and configuration-driven use).

    Parameters
    ----------
    name : {"ewma", "cusum"}
        The chart.
    data, value, subgroup, time, exclude, min_subgroups
        As for :func:`ewma`.
    params : mapping, optional
        ``"ewma"``: ``lam``, ``L``, ``target``, ``sigma``; ``"cusum"``: ``k``, ``h``,
        ``headstart``, ``target``, ``sigma``. Missing keys take the function defaults.

    Returns
    -------
    EwmaChart or CusumChart
    """
    given = dict(params or {})
    unknown = sorted(set(given) - set(_PARAMS[name]))
    if unknown:
        raise SPCError(f"unknown {name} parameter(s) {', '.join(map(repr, unknown))}; "
                       f"the {name} chart takes {', '.join(_PARAMS[name])}")
    if name == "ewma":
        return ewma(data, value=value, subgroup=subgroup, time=time, exclude=exclude,
                    min_subgroups=min_subgroups, **given)
    return cusum(data, value=value, subgroup=subgroup, time=time, exclude=exclude,
                 min_subgroups=min_subgroups, **given)


# =============================================================================================
# average run length (Markov-chain approximations)
# =============================================================================================

def _solve_arl(transient: FloatArray, start: int) -> float:
    # ARL vector of a chain with transient-to-transient matrix R: (I − R)·ARL = 1.
    arl_vector = np.linalg.solve(np.eye(transient.shape[0]) - transient, np.ones(transient.shape[0]))
    return float(arl_vector[start])


def _extrapolated(chain: Any, fine: int, coarse: int) -> float:
    # ARL(m) ≈ ARL + c/m²: eliminate c between a fine and a coarse chain.
    a_fine, a_coarse = chain(fine), chain(coarse)
    return (fine**2 * a_fine - coarse**2 * a_coarse) / (fine**2 - coarse**2)


def _cusum_one_sided(k: float, h: float, shift: float, headstart: float, states: int) -> float:
    # Brook & Evans (1972): states 0 … m−1 cover [0, h); state 0 is C < w/2 (mostly C = 0), state j
    # is C ∈ [(j − ½)w, (j + ½)w) with w = 2h/(2m − 1), represented by its midpoint jw.
    m = states
    w = 2.0 * h / (2 * m - 1)
    mid = np.arange(m) * w
    upper_edges = (np.arange(m) + 0.5) * w
    # P(C' < edge | C = mid_i) with C' = mid_i + X − k, X ~ N(shift, 1).
    cdf = ndtr(upper_edges[None, :] - mid[:, None] + k - shift)
    transient = np.diff(np.concatenate([np.zeros((m, 1)), cdf], axis=1), axis=1)
    start = min(round(headstart / w), m - 1)
    return _solve_arl(transient, start)


def cusum_arl(*, k: float, h: float, shift: float = 0.0, headstart: float = 0.0,
              sided: Literal["one", "two"] = "two", states: int = CUSUM_STATES) -> float:
    """Zero-state average run length of a tabular CUSUM (Brook & Evans 1972 Markov chain).

    Parameters
    ----------
    k, h : float
        Reference value and decision interval, in standard errors of the plotted mean.
    shift : float
        Shift of the process mean in standard errors of the plotted mean (0: in control).
    headstart : float
        Starting value of the sums (one-sided only: with both sums starting above zero the
        two-sided relation below no longer holds).
    sided : {"two", "one"}
        Two-sided scheme (C⁺ and C⁻; 1/ARL = 1/ARL⁺ + 1/ARL⁻, the relation Montgomery §9.1.5
        uses, exact when the two sums cannot both be positive) or the upper side alone.
    states : int
        Markov-chain states for [0, h) (the result is extrapolated from this chain and one with
        half as many states).

    Returns
    -------
    float
        Expected number of subgroups until the first signal. Montgomery Table 9.3 (k = 0.5):
        h = 4 → 168 in control, 8.38 for a one-standard-error shift; h = 5 → 465 and 10.4.
    """
    k, h, headstart = _check_cusum(k, h, headstart)
    shift = _number(shift, "shift")
    if sided not in ("one", "two"):
        raise SPCError(f"sided must be 'one' or 'two', got {sided!r}")
    if states < 20:
        raise SPCError(f"states must be at least 20, got {states}")
    if sided == "two" and headstart > 0:
        raise SPCError("the two-sided ARL of a CUSUM with a headstart needs the joint chain of both "
                       "sums, which is not implemented; use sided='one' for each side")

    def one_sided(delta: float) -> float:
        return _extrapolated(lambda m: _cusum_one_sided(k, h, delta, headstart, m), states, states // 2)

    up = one_sided(shift)
    if sided == "one":
        return up
    return 1.0 / (1.0 / up + 1.0 / one_sided(-shift))


def ewma_arl(*, lam: float, L: float, shift: float = 0.0,  # noqa: N803 - Montgomery's L
             states: int = EWMA_STATES) -> float:
    """Zero-state average run length of a two-sided EWMA chart (Lucas & Saccucci 1990 Markov chain).

    The limits are the asymptotic ones, ±L√(λ/(2 − λ)) standard errors, as in the published
    tables; the chart's exact limits are narrower over its first subgroups, which shortens the
    run length a little.

    Parameters
    ----------
    lam, L : float
        Smoothing constant and limit width.
    shift : float
        Shift of the process mean in standard errors of the plotted mean (0: in control).
    states : int
        Markov-chain states across the limits (made odd, so that z₀ = μ₀ is a state's midpoint;
        the result is extrapolated from this chain and one with half as many states).

    Returns
    -------
    float
        Expected number of subgroups until the first signal. Montgomery Table 9.11 (Lucas &
        Saccucci): λ = 0.1, L = 2.7 → 500 in control, 10.3 for a one-standard-error shift.
    """
    lam, L = _check_ewma(lam, L)  # noqa: N806
    shift = _number(shift, "shift")
    if states < 21:
        raise SPCError(f"states must be at least 21, got {states}")
    fine = states | 1
    return _extrapolated(lambda m: _ewma_chain(lam, L, shift, m), fine, (fine // 2) | 1)


def _ewma_chain(lam: float, L: float, shift: float, m: int) -> float:  # noqa: N803
    # Lucas & Saccucci (1990): m (odd) intervals of width w across the limits ±c; state j stands
    # for its midpoint, and the middle state holds z₀ = μ₀.
    c = L * math.sqrt(lam / (2.0 - lam))
    w = 2.0 * c / m
    lower = -c + np.arange(m) * w
    mid = lower + w / 2.0
    # z' = (1 − λ)zᵢ + λX with X ~ N(shift, 1) falls in [lowerⱼ, lowerⱼ + w).
    edges = np.concatenate([lower, [c]])
    cdf = ndtr((edges[None, :] - (1.0 - lam) * mid[:, None]) / lam - shift)
    transient = np.diff(cdf, axis=1)
    return _solve_arl(transient, m // 2)


def arl(chart: EwmaChart | CusumChart, *, shift: float = 0.0) -> float:
    """Zero-state ARL of a computed chart's design (:func:`ewma_arl` / :func:`cusum_arl`).

    Parameters
    ----------
    chart : EwmaChart or CusumChart
        A chart from :func:`ewma` or :func:`cusum`.
    shift : float
        Shift of the mean in standard errors of the plotted mean.

    Returns
    -------
    float
    """
    if isinstance(chart, EwmaChart):
        return ewma_arl(lam=chart.lam, L=chart.nsigmas, shift=shift)
    if isinstance(chart, CusumChart):
        return cusum_arl(k=chart.k, h=chart.h, shift=shift, headstart=chart.headstart)  # two-sided
    raise SPCError(f"arl() takes an EWMA or CUSUM chart, got {type(chart).__name__}")
