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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special  # not scipy.stats: three quantiles do not need its 0.5 s import

from workbench.errors import SPCError
from workbench.spc._input import InputSpec, read
from workbench.spc.registry import SIGMAS

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

Interval = tuple[float, float]

__all__ = ["CI_METHODS", "Capability", "capability", "capability_indices"]


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
    pp, ppl, ppu, ppk : float or None
        Performance indices from the overall sigma.
    confidence_level : float
        Level of the intervals.
    cp_ci, cpk_ci, cpm_ci, pp_ci, ppk_ci : tuple of float or None
        Two-sided confidence intervals (methods in :data:`CI_METHODS`).
    expected_below, expected_above : float or None
        Fraction expected beyond LSL / USL for a normal process with the within sigma.
    observed_below, observed_above : float or None
        Fraction of the observations beyond LSL / USL.
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
    cpk: float
    cpm: float | None
    pp: float | None
    ppl: float | None
    ppu: float | None
    ppk: float
    confidence_level: float
    cp_ci: Interval | None
    cpk_ci: Interval
    cpm_ci: Interval | None
    pp_ci: Interval | None
    ppk_ci: Interval
    expected_below: float | None
    expected_above: float | None
    observed_below: float | None
    observed_above: float | None

    def summary(self) -> dict[str, Any]:
        """Plain-Python summary (JSON-ready)."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        out["ci_methods"] = dict(CI_METHODS)
        return out


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


def capability(data: Any, *, value: str, subgroup: str | None = None, lsl: float | None = None,
               usl: float | None = None, target: float | None = None, within: str | None = None,
               sigma: float | None = None, time: str | None = None,
               confidence_level: float = 0.95) -> Capability:
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
        ``"given"``.
    time : str, optional
        Column ordering the data (matters for moving ranges).
    confidence_level : float
        Level of the two-sided confidence intervals.

    Returns
    -------
    Capability

    Examples
    --------
    >>> spc.capability(df, value="diameter", subgroup="sample", lsl=73.95, usl=74.05)  # doctest: +SKIP
    """
    _check_specs(lsl, usl, target)
    option = _within_option(within, subgroup)
    kind = "subgrouped" if subgroup is not None else "individuals"
    source = InputSpec(kind, "xbar_r" if kind == "subgrouped" else "imr", value, subgroup=subgroup,
                       time=time)
    sub = read(data, source, phase="I")
    values = sub.values[~np.isnan(sub.values)] if sub.values is not None else np.array([])
    include = np.ones(len(sub), dtype=bool)
    if sigma is None:
        fn_name, method = WITHIN_METHODS[option]
        sigma_within = SIGMAS[fn_name](sub, include)
    else:
        sigma_within, method = float(sigma), "given"
    n = int(values.size)
    if n < 2:
        raise SPCError(f"capability needs at least 2 observations (got {n})")
    return capability_indices(
        n=n, mean=float(values.mean()), sigma_within=sigma_within,
        sigma_overall=float(values.std(ddof=1)), lsl=lsl, usl=usl, target=target,
        within_method=method, confidence_level=confidence_level,
        observed_below=None if lsl is None else float(np.mean(values < lsl)),
        observed_above=None if usl is None else float(np.mean(values > usl)))
