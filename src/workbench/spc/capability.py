"""Process capability (Cp, Cpk, Cpm) and performance (Pp, Ppk) with confidence intervals.

Two sigmas, always named:

* **within** (short-term, for Cp/Cpk/Cpm): from subgroup ranges ``R̄/d2`` (default with a
  subgroup column), subgroup standard deviations ``S̄/c4``, or moving ranges ``MR̄/d2`` (default
  for individual values) — the same estimators, and the same code, as the control charts;
* **overall** (long-term, for Pp/Ppk): the sample standard deviation of all values (n − 1).

Indices follow Montgomery, *Introduction to Statistical Quality Control*, ch. 8:
``Cp = (USL − LSL)/6σ``, ``Cpu = (USL − μ)/3σ``, ``Cpl = (μ − LSL)/3σ``, ``Cpk = min(Cpu, Cpl)``,
``Cpm = (USL − LSL) / 6√(σ² + (μ − T)²)`` with target T (default: the mid-specification).
With one specification limit only Cpl or Cpu (= Cpk) exist; Cp, Pp and Cpm are ``None``.

Confidence intervals (two-sided, ``confidence_level``), with n the number of observations:

* Cp, Pp — chi-square: ``Ĉp √(χ²_{α/2, n−1}/(n−1)) … Ĉp √(χ²_{1−α/2, n−1}/(n−1))``
  (Chou, Owen & Borrego 1990; Montgomery eq. 8.19);
* Cpk, Ppk — normal approximation ``Ĉpk ∓ z_{α/2} √(1/(9n) + Ĉpk²/(2(n−1)))`` (Bissell 1990;
  Montgomery eq. 8.20);
* Cpm — chi-square with Patnaik's degrees of freedom ``ν = n(1+ξ²)²/(1+2ξ²)``,
  ``ξ = (μ − T)/σ`` (Boyles 1991). (qcc 3.0 uses ``n(1+ξ²)/(1+2ξ²)``; the two agree when the
  mean is near the target.)

These intervals treat σ̂ as if it were a sample standard deviation of n values, as qcc and the
textbook do; for R̄/d2 and MR̄/d2 they are approximate.

Non-normal data (``method=``; the fitting is in :mod:`workbench.spc.nonnormal`):

* every study with n ≥ 8 carries an Anderson-Darling normality test, and a warning when it
  rejects normality and the normal indices are used;
* ``"box_cox"`` — indices (within and overall, with intervals) of the Box-Cox-transformed data
  against the transformed limits, as Minitab does;
* ``"johnson"`` — overall indices (Pp, Ppk; no within sigma, as in Minitab) of the
  Johnson-transformed data against the transformed limits;
* ``"weibull"``, ``"lognormal"`` — ISO 22514-2 percentile indices of the fitted distribution:
  Pp, Ppl, Ppu, Ppk only (no within capability, no intervals);
* ``"auto"`` — normal when normality is not rejected, otherwise the rule of
  :func:`workbench.spc.nonnormal.choose_method`.

A specification limit outside the range a transformation accepts (≤ 0 for Box-Cox, beyond the
bounds of a Johnson SB/SL) cannot be transformed: when no value can fall beyond it, it is left
out of the indices with a warning (expected fraction 0); when every value is beyond it, or no
limit is left, the study is an error.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import special  # not scipy.stats: three quantiles do not need its 0.5 s import

from workbench.errors import SPCError
from workbench.spc._input import InputSpec, read
from workbench.spc.nonnormal import (
    MIN_N,
    BoxCox,
    FittedDistribution,
    Johnson,
    NormalityTest,
    box_cox,
    choose_method,
    fit_distribution,
    format_p,
    johnson,
    normality_test,
    percentile_indices,
)
from workbench.spc.registry import SIGMAS, FloatArray, Subgroups

WITHIN_METHODS: dict[str, tuple[str, str]] = {
    # option → (chart sigma function name, display name)
    "range": ("rbar_d2", "R̄/d2"),
    "stdev": ("sbar_c4", "S̄/c4"),
    "moving_range": ("mrbar_d2", "MR̄/d2"),
}
_ALIASES = {"r̄/d2": "range", "rbar_d2": "range", "s̄/c4": "stdev", "sbar_c4": "stdev",
            "mr̄/d2": "moving_range", "mrbar_d2": "moving_range", "sd": "stdev"}
OVERALL_METHOD = "sample standard deviation (n − 1)"
CI_METHODS = {
    "cp": "chi-square (Chou, Owen & Borrego 1990)",
    "pp": "chi-square (Chou, Owen & Borrego 1990)",
    "cpk": "normal approximation (Bissell 1990)",
    "ppk": "normal approximation (Bissell 1990)",
    "cpm": "chi-square, Patnaik degrees of freedom (Boyles 1991)",
}

#: The ``method=`` options of :func:`capability`.
METHODS = ("normal", "auto", "box_cox", "johnson", "weibull", "lognormal")
_METHOD_ALIASES = {"box-cox": "box_cox", "boxcox": "box_cox", "log-normal": "lognormal"}
_METHOD_NAMES = {"normal": "normal distribution", "box_cox": "Box-Cox transformation",
                 "johnson": "Johnson transformation", "weibull": "Weibull distribution",
                 "lognormal": "lognormal distribution"}

Interval = tuple[float, float]

__all__ = ["CI_METHODS", "METHODS", "Capability", "capability", "capability_indices"]


@dataclass(frozen=True)
class Capability:
    """A capability study.

    Attributes
    ----------
    n : int
        Number of observations.
    mean : float
        Process mean (all observations).
    sigma_within, within_method : float, str
        Short-term sigma and its estimator ("R̄/d2", "S̄/c4", "MR̄/d2" or "given").
    sigma_overall, overall_method : float, str
        Long-term sigma (sample standard deviation).
    lsl, usl, target : float or None
        Specification limits and target (target defaults to the mid-specification).
    cp, cpl, cpu, cpk, cpm : float or None
        Capability indices from the within sigma (None where a specification is missing).
        ``method="box_cox"``: on the transformed scale. ``"johnson"``, ``"weibull"``,
        ``"lognormal"``: None — a fitted distribution has no within sigma.
    pp, ppl, ppu, ppk : float or None
        Performance indices from the overall sigma. ``"box_cox"``, ``"johnson"``: normal indices
        of the transformed data against the transformed limits; ``"weibull"``,
        ``"lognormal"``: ISO 22514-2 percentile indices of the fitted distribution.
    confidence_level : float
        Level of the intervals.
    cp_ci, cpk_ci, cpm_ci, pp_ci, ppk_ci : tuple of float or None
        Two-sided confidence intervals (methods in :data:`CI_METHODS`); on the transformed
        scale for Box-Cox and Johnson, None for the percentile methods (no such formula).
    expected_below, expected_above : float or None
        Fraction expected beyond LSL / USL: ``"normal"``, for a normal process with the within
        sigma; other methods, from the fitted distribution of all values (the normal with the
        overall sigma on the transformed scale for Box-Cox and Johnson).
    observed_below, observed_above : float or None
        Fraction of the observations beyond LSL / USL.
    method : str
        Method the indices come from: "normal", "box_cox", "johnson", "weibull" or "lognormal".
    method_reason : str
        Why that method, in words (for ``method="auto"``, the selection rule's verdict).
    normality : NormalityTest or None
        Anderson-Darling normality test of the values (None below 8 values).
    warnings : tuple of str
        What the reader must know, e.g. that normality is rejected while the normal indices
        are shown, or that a specification limit could not be transformed.
    distribution : dict or None
        Non-normal methods: family, parameters, goodness of fit and, for transformations, the
        transformed limits, mean and sigmas. ``mean``, ``sigma_within`` and ``sigma_overall``
        above always describe the original values.
    """

    n: int
    mean: float
    sigma_within: float
    within_method: str
    sigma_overall: float
    overall_method: str
    lsl: float | None
    usl: float | None
    target: float | None
    cp: float | None
    cpl: float | None
    cpu: float | None
    cpk: float | None
    cpm: float | None
    pp: float | None
    ppl: float | None
    ppu: float | None
    ppk: float
    confidence_level: float
    cp_ci: Interval | None
    cpk_ci: Interval | None
    cpm_ci: Interval | None
    pp_ci: Interval | None
    ppk_ci: Interval | None
    expected_below: float | None
    expected_above: float | None
    observed_below: float | None
    observed_above: float | None
    method: str = "normal"
    method_reason: str = ""
    normality: NormalityTest | None = None
    warnings: tuple[str, ...] = ()
    distribution: dict[str, Any] | None = None

    def summary(self) -> dict[str, Any]:
        """Plain-Python summary (JSON-ready)."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        if self.normality is not None:
            out["normality"] = self.normality.summary()
        if self.distribution is not None:
            out["distribution"] = _plain(self.distribution)
        out["ci_methods"] = dict(CI_METHODS)
        return out


def _plain(value: Any) -> Any:
    # Nested dicts, tuples and numpy scalars as plain Python (for json.dumps).
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _check_specs(lsl: float | None, usl: float | None, target: float | None) -> None:
    for name, v in (("LSL", lsl), ("USL", usl), ("target", target)):
        if v is not None and not math.isfinite(v):
            raise SPCError(f"{name} must be a finite number (got {v})")
    if lsl is None and usl is None:
        raise SPCError("capability needs at least one specification limit (lsl= or usl=)")
    if lsl is not None and usl is not None and not lsl < usl:
        raise SPCError(f"specification limits in the wrong order: LSL = {lsl:g} must be below "
                       f"USL = {usl:g}")
    if target is not None:
        if lsl is not None and target < lsl:
            raise SPCError(f"target {target:g} is below the LSL {lsl:g}; it must lie within the "
                           "specification")
        if usl is not None and target > usl:
            raise SPCError(f"target {target:g} is above the USL {usl:g}; it must lie within the "
                           "specification")


def _chisq_interval(index: float, df: float, alpha: float) -> Interval:
    # chdtri(df, p) is the chi-square quantile with upper tail p (= chi2.ppf(1 - p, df))
    lo, hi = special.chdtri(df, [1 - alpha / 2, alpha / 2])
    return (float(index * math.sqrt(lo / df)), float(index * math.sqrt(hi / df)))


def _bissell_interval(index: float, n: int, alpha: float) -> Interval:
    half = special.ndtri(1 - alpha / 2) * math.sqrt(1 / (9 * n) + index**2 / (2 * (n - 1)))
    return (float(index - half), float(index + half))


def _sided(mean: float, sigma: float, lsl: float | None,
           usl: float | None) -> tuple[float | None, float | None, float | None, float]:
    upper = None if usl is None else (usl - mean) / (3 * sigma)
    lower = None if lsl is None else (mean - lsl) / (3 * sigma)
    both = None if lsl is None or usl is None else (usl - lsl) / (6 * sigma)
    k = min(v for v in (upper, lower) if v is not None)
    return both, lower, upper, k


def capability_indices(*, n: int, mean: float, sigma_within: float, sigma_overall: float,
                       lsl: float | None = None, usl: float | None = None,
                       target: float | None = None, within_method: str = "given",
                       confidence_level: float = 0.95, observed_below: float | None = None,
                       observed_above: float | None = None) -> Capability:
    """Capability indices from summary statistics (what :func:`capability` calls).

    Parameters
    ----------
    n : int
        Number of observations (for the intervals), at least 2.
    mean : float
        Process mean.
    sigma_within, sigma_overall : float
        Short- and long-term sigma, both positive.
    lsl, usl : float, optional
        Specification limits; at least one.
    target : float, optional
        Target for Cpm; default mid-specification (two-sided specs only).
    within_method : str
        Name of the within estimator, recorded in the result.
    confidence_level : float
        Level of the two-sided intervals, in (0, 1).
    observed_below, observed_above : float, optional
        Observed fractions beyond the limits, recorded as given.

    Returns
    -------
    Capability
    """
    _check_specs(lsl, usl, target)
    if n < 2:
        raise SPCError(f"capability needs at least 2 observations (got {n})")
    if not 0 < confidence_level < 1:
        raise SPCError(f"confidence_level must be between 0 and 1 (got {confidence_level})")
    for name, s in (("within", sigma_within), ("overall", sigma_overall)):
        if not (math.isfinite(s) and s > 0):
            raise SPCError(f"the {name} sigma is {s:g}: capability needs variation in the data")
    alpha = 1 - confidence_level
    cp, cpl, cpu, cpk = _sided(mean, sigma_within, lsl, usl)
    pp, ppl, ppu, ppk = _sided(mean, sigma_overall, lsl, usl)

    cpm = cpm_ci = None
    if lsl is not None and usl is not None:
        target = (lsl + usl) / 2 if target is None else target
        xi = (mean - target) / sigma_within
        cpm = (usl - lsl) / (6 * math.sqrt(sigma_within**2 + (mean - target) ** 2))
        cpm_ci = _chisq_interval(cpm, n * (1 + xi**2) ** 2 / (1 + 2 * xi**2), alpha)

    def tail(limit: float | None, upper: bool) -> float | None:
        if limit is None:
            return None
        zval = (limit - mean) / sigma_within
        return float(special.ndtr(-zval) if upper else special.ndtr(zval))

    return Capability(
        n=n, mean=mean, sigma_within=sigma_within, within_method=within_method,
        sigma_overall=sigma_overall, overall_method=OVERALL_METHOD, lsl=lsl, usl=usl, target=target,
        cp=cp, cpl=cpl, cpu=cpu, cpk=cpk, cpm=cpm, pp=pp, ppl=ppl, ppu=ppu, ppk=ppk,
        confidence_level=confidence_level,
        cp_ci=None if cp is None else _chisq_interval(cp, n - 1, alpha),
        cpk_ci=_bissell_interval(cpk, n, alpha), cpm_ci=cpm_ci,
        pp_ci=None if pp is None else _chisq_interval(pp, n - 1, alpha),
        ppk_ci=_bissell_interval(ppk, n, alpha),
        expected_below=tail(lsl, upper=False), expected_above=tail(usl, upper=True),
        observed_below=observed_below, observed_above=observed_above)


def _within_option(within: str | None, subgroup: str | None) -> str:
    if within is None:
        return "range" if subgroup is not None else "moving_range"
    key = within.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in WITHIN_METHODS:
        raise SPCError(f"unknown within-sigma method {within!r}; use one of {', '.join(WITHIN_METHODS)}")
    if key in ("range", "stdev") and subgroup is None:
        raise SPCError(f"within={key!r} needs subgroups (subgroup=...); for individual values use "
                       "within='moving_range'")
    if key == "moving_range" and subgroup is not None:
        raise SPCError("within='moving_range' is for individual values; with subgroups use "
                       "within='range' or 'stdev'")
    return key


def _method_option(method: str) -> str:
    key = _METHOD_ALIASES.get(method.strip().lower(), method.strip().lower())
    if key not in METHODS:
        raise SPCError(f"unknown capability method {method!r}; use one of {', '.join(METHODS)}")
    return key


def _normal_warnings(normality: NormalityTest | None, n: int) -> tuple[str, ...]:
    if normality is None:
        return (f"normality not tested: the Anderson-Darling test needs at least {MIN_N} values "
                f"(got {n})",)
    if normality.normal:
        return ()
    return (f"data are not normal ({normality.describe()}): the normal indices and expected "
            "fractions misstate the tails (on skewed data they understate the long tail); use "
            "method='auto'",)


def _limits_on_scale(label: str, support: tuple[float, float], lsl: float | None,
                     usl: float | None) -> tuple[bool, bool, list[str]]:
    """Which limits a transformation defined on the open interval ``support`` can take.

    Returns (keep LSL, keep USL, notes). A limit beyond the end of the support that no value can
    cross is dropped with a note; one that every value crosses is an error.
    """
    lo, hi = support
    where_lo = "at or below 0" if lo == 0 else f"at or below the lower bound {lo:.6g}"
    where_hi = f"at or above the upper bound {hi:.6g}"
    if usl is not None and usl <= lo:
        raise SPCError(f"the USL {usl:g} cannot be transformed by the {label}: it is {where_lo} "
                       "of the values, so every value lies above it")
    if lsl is not None and lsl >= hi:
        raise SPCError(f"the LSL {lsl:g} cannot be transformed by the {label}: it is {where_hi} "
                       "of the values, so every value lies below it")
    keep_lsl, keep_usl, notes = lsl is not None, usl is not None, []
    if lsl is not None and lsl <= lo:
        keep_lsl = False
        notes.append(f"the LSL {lsl:g} cannot be transformed by the {label} (it is {where_lo}); "
                     "no value can fall below it, so it is left out of the indices and the "
                     "expected fraction below is 0")
    if usl is not None and usl >= hi:
        keep_usl = False
        notes.append(f"the USL {usl:g} cannot be transformed by the {label} (it is {where_hi}); "
                     "no value can exceed it, so it is left out of the indices and the expected "
                     "fraction above is 0")
    if not (keep_lsl or keep_usl):
        if len(notes) == 2:
            raise SPCError(f"both specification limits lie beyond the range of the {label} "
                           f"({lo:.6g} … {hi:.6g}): the fitted model puts no value out of "
                           "specification and has no finite indices; choose another method=")
        raise SPCError(f"no specification limit is left after the {label}: " + "; ".join(notes))
    return keep_lsl, keep_usl, notes


def _transformed_study(base: Capability, *, name: str, transform: Callable[[Any], FloatArray],
                       support: tuple[float, float], values: FloatArray,
                       sub: Subgroups | None, within_fn: str | None, fit_summary: dict[str, Any],
                       normality_after: NormalityTest, reason: str) -> Capability:
    """Normal indices of transformed values against transformed limits (Box-Cox, Johnson).

    With ``sub`` and ``within_fn`` the within sigma is re-estimated on the transformed subgroups
    (Box-Cox); without, only the overall indices exist (Johnson).
    """
    label = "Box-Cox transformation" if name == "box_cox" else "Johnson transformation"
    lsl, usl = base.lsl, base.usl
    keep_lsl, keep_usl, notes = _limits_on_scale(label, support, lsl, usl)
    lsl_t = float(transform(lsl)) if keep_lsl else None
    usl_t = float(transform(usl)) if keep_usl else None
    t = transform(values)
    mean_t, overall_t = float(t.mean()), float(t.std(ddof=1))
    within_t = overall_t
    if sub is not None and within_fn is not None:
        sub_t = replace(sub, values=transform(sub.values))
        within_t = SIGMAS[within_fn](sub_t, np.ones(len(sub_t), dtype=bool))
    target_t = None
    if keep_lsl and keep_usl and base.target is not None:
        target_t = float(transform(base.target))
    idx = capability_indices(
        n=base.n, mean=mean_t, sigma_within=within_t, sigma_overall=overall_t, lsl=lsl_t,
        usl=usl_t, target=target_t, within_method=base.within_method,
        confidence_level=base.confidence_level)

    def expected(limit_t: float | None, limit: float | None, upper: bool) -> float | None:
        if limit is None:
            return None
        if limit_t is None:
            return 0.0
        zval = (limit_t - mean_t) / overall_t
        return float(special.ndtr(-zval) if upper else special.ndtr(zval))

    warnings = list(notes)
    if not normality_after.normal:
        warnings.append(f"the {label} does not make the data normal ({normality_after.describe()} "
                        "after transforming): the indices are approximate")
    distribution = dict(fit_summary)
    distribution["transformed"] = {
        "lsl": lsl_t, "usl": usl_t, "target": target_t, "mean": mean_t,
        "sigma_within": within_t if within_fn is not None else None, "sigma_overall": overall_t}
    if within_fn is None:  # no within sigma: no Cp, Cpk, Cpm
        idx = replace(idx, cp=None, cpl=None, cpu=None, cpk=None, cpm=None, cp_ci=None,
                      cpk_ci=None, cpm_ci=None)
    return replace(
        idx, mean=base.mean, sigma_within=base.sigma_within, sigma_overall=base.sigma_overall,
        lsl=lsl, usl=usl, target=base.target, expected_below=expected(lsl_t, lsl, upper=False),
        expected_above=expected(usl_t, usl, upper=True), observed_below=base.observed_below,
        observed_above=base.observed_above, method=name, method_reason=reason,
        normality=base.normality, warnings=tuple(warnings), distribution=distribution)


def _percentile_study(base: Capability, dist: FittedDistribution, reason: str) -> Capability:
    pct = percentile_indices(dist, lsl=base.lsl, usl=base.usl)
    name = "Weibull" if dist.family == "weibull" else dist.family
    warnings = () if dist.fits else (
        f"the {name} fit is rejected by the Anderson-Darling test "
        f"({format_p(dist.p_value, note=dist.p_bound)}): the percentile indices rest on a "
        "distribution the data do not follow",)
    distribution = {
        "family": dist.family, "parameters": dict(dist.parameters),
        "estimation": "maximum likelihood" if dist.family != "normal" else
                      "mean and sample standard deviation",
        "percentiles": {"0.135%": pct.x_lower, "50%": pct.x_median, "99.865%": pct.x_upper},
        "goodness_of_fit": {"test": "Anderson-Darling", "statistic": dist.ad_statistic,
                            "p_value": dist.p_value, "p_bound": dist.p_bound,
                            "p_method": dist.p_method, "fits": dist.fits},
    }
    return replace(
        base, cp=None, cpl=None, cpu=None, cpk=None, cpm=None, pp=pct.pp, ppl=pct.ppl,
        ppu=pct.ppu, ppk=pct.ppk, cp_ci=None, cpk_ci=None, cpm_ci=None, pp_ci=None, ppk_ci=None,
        expected_below=pct.expected_below, expected_above=pct.expected_above,
        method=dist.family, method_reason=reason, warnings=warnings, distribution=distribution)


def capability(data: Any, *, value: str, subgroup: str | None = None, lsl: float | None = None,
               usl: float | None = None, target: float | None = None, within: str | None = None,
               sigma: float | None = None, time: str | None = None,
               confidence_level: float = 0.95, method: str = "normal",
               box_cox_lambda: float | None = None, round_lambda: bool = True) -> Capability:
    """Capability study of one characteristic.

    Parameters
    ----------
    data : pandas.DataFrame or polars.DataFrame
        One row per measurement (the ``quality_measurements`` shape).
    value : str
        Measurement column.
    subgroup : str, optional
        Subgroup column; without it the values are individuals in row (or ``time``) order.
    lsl, usl : float, optional
        Specification limits; at least one. LSL must be below USL.
    target : float, optional
        Target for Cpm (within the specification); default mid-specification.
    within : {"range", "stdev", "moving_range"}, optional
        Within-sigma estimator: R̄/d2 (default with subgroups), S̄/c4, or MR̄/d2 (default for
        individuals).
    sigma : float, optional
        Use this within sigma instead (e.g. the frozen σ̂ of a phase I chart); recorded as
        ``"given"``. Not with ``method="box_cox"`` (it would be on the wrong scale).
    time : str, optional
        Column ordering the data (matters for moving ranges).
    confidence_level : float
        Level of the two-sided confidence intervals.
    method : {"normal", "auto", "box_cox", "johnson", "weibull", "lognormal"}
        How the indices are computed (see the module docstring). "normal" (default) is the
        classical study; it still tests normality and warns when it is rejected. "auto"
        chooses by :func:`workbench.spc.nonnormal.choose_method`. Every method but "normal"
        needs at least 8 values.
    box_cox_lambda : float, optional
        Fixed λ for ``method="box_cox"``; default estimated by maximum likelihood ("auto"
        always estimates it).
    round_lambda : bool
        Round the estimated Box-Cox λ to the nearest 0.5 when that lies in its 95 % interval
        (Minitab's default); False uses the maximum-likelihood λ as it is. Applies to "box_cox"
        and "auto".

    Returns
    -------
    Capability

    Examples
    --------
    >>> spc.capability(df, value="diameter", subgroup="sample", lsl=73.95, usl=74.05)  # doctest: +SKIP
    >>> spc.capability(df, value="flatness", usl=0.05, method="auto").method_reason  # doctest: +SKIP
    """
    _check_specs(lsl, usl, target)
    option = _within_option(within, subgroup)
    chosen = _method_option(method)
    if chosen == "box_cox" and sigma is not None:
        raise SPCError("sigma= is a within sigma on the original scale and cannot be used with "
                       "method='box_cox', which estimates it on the transformed scale; leave "
                       "sigma out")
    kind = "subgrouped" if subgroup is not None else "individuals"
    source = InputSpec(kind, "xbar_r" if kind == "subgrouped" else "imr", value, subgroup=subgroup,
                       time=time)
    sub = read(data, source, phase="I")
    values = sub.values[~np.isnan(sub.values)] if sub.values is not None else np.array([])
    include = np.ones(len(sub), dtype=bool)
    fn_name, method_name = WITHIN_METHODS[option]
    if sigma is None:
        sigma_within = SIGMAS[fn_name](sub, include)
    else:
        sigma_within, method_name = float(sigma), "given"
    n = int(values.size)
    if n < 2:
        raise SPCError(f"capability needs at least 2 observations (got {n})")
    base = capability_indices(
        n=n, mean=float(values.mean()), sigma_within=sigma_within,
        sigma_overall=float(values.std(ddof=1)), lsl=lsl, usl=usl, target=target,
        within_method=method_name, confidence_level=confidence_level,
        observed_below=None if lsl is None else float(np.mean(values < lsl)),
        observed_above=None if usl is None else float(np.mean(values > usl)))
    normality = normality_test(values) if n >= MIN_N else None
    base = replace(base, normality=normality)
    if chosen == "normal":
        return replace(base, method_reason="normal distribution (the default method)",
                       warnings=_normal_warnings(normality, n))
    if n < MIN_N:
        raise SPCError(f"method={method!r} needs at least {MIN_N} values to test the fit (got {n}); "
                       "with so few values only method='normal' is available")

    fitted: dict[str, Any] = {}
    extra: tuple[str, ...] = ()
    if chosen == "auto":
        choice = choose_method(values, round_lambda=round_lambda)
        if choice.method == "normal":
            return replace(base, method_reason=choice.reason)
        chosen, reason, fitted = choice.method, choice.reason, choice.candidates
        if not choice.fits:
            extra = ("no method fits the data at the 5 % level; the indices use the closest one "
                     "and are approximate",)
    else:
        reason = f"{_METHOD_NAMES[chosen]} (requested)"

    def study_by(chosen: str, reason: str) -> tuple[Capability, tuple[str, ...]]:
        extra: tuple[str, ...] = ()
        if chosen in ("weibull", "lognormal"):
            dist = fitted.get(chosen) or fit_distribution(values, chosen)
            out = _percentile_study(base, dist, reason)
        elif chosen == "box_cox":
            bc: BoxCox = fitted.get("box_cox") or box_cox(values, lam=box_cox_lambda,
                                                          round_lambda=round_lambda)
            out = _transformed_study(
                base, name="box_cox", transform=bc.transform, support=(0.0, math.inf),
                values=values, sub=sub, within_fn=None if sigma is not None else fn_name,
                fit_summary=bc.summary(), normality_after=bc.normality,
                reason=f"{reason}; {bc.note}")
            if sigma is not None:  # only reachable through "auto": the given sigma is not transformed
                extra += ("the given sigma is on the original scale, so no within indices (Cp, Cpk, "
                          "Cpm) are computed on the Box-Cox scale",)
        else:
            jt: Johnson = fitted.get("johnson") or johnson(values)
            out = _transformed_study(
                base, name="johnson", transform=jt.transform, support=jt.support, values=values,
                sub=None, within_fn=None, fit_summary=jt.summary(), normality_after=jt.normality,
                reason=f"{reason}; Johnson {jt.family} (z = {jt.z:g})")
        return out, extra

    try:
        out, more = study_by(chosen, reason)
    except SPCError as exc:
        if _method_option(method) != "auto":
            raise
        # The model that fits the data best cannot be judged against these limits (e.g. a
        # Johnson SB bounded inside them): say so and show the normal indices, never nothing.
        return replace(base, method_reason=f"{reason}; but {exc}",
                       warnings=(f"the {_METHOD_NAMES[chosen]} chosen for these data cannot be used with "
                                 f"the specification limits ({exc}); the normal indices are shown "
                                 "instead and misstate the tails", *_normal_warnings(normality, n)))
    extra = extra + more
    return replace(out, warnings=out.warnings + extra) if extra else out
