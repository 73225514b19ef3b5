"""Capability for non-normal data: normality test, transformations and fitted distributions.

The normal capability indices assume the values are normal. On skewed data they misstate the
tails: a right-skewed process can show Cpk ≈ 1.3 with a few ppm expected above the USL while
more than 1 % of the parts are there. This module provides what ISO 22514-2 and Minitab offer
instead (the report itself is :func:`workbench.spc.capability` with ``method=``):

* :func:`normality_test` — Anderson-Darling test of normality with the p-value of D'Agostino &
  Stephens (1986, Table 4.9), as Minitab and R ``nortest::ad.test`` compute it;
* :func:`box_cox` — power transformation with λ by maximum likelihood, optionally rounded to the
  nearest 0.5 as Minitab does;
* :func:`johnson` — Johnson SB/SL/SU transformation by the quantile method of Slifker & Shapiro
  (1980), chosen over a grid of z values by the Anderson-Darling p-value of the transformed data
  (Chou, Polansky & Mason 1998; Minitab's algorithm);
* :func:`fit_distribution` and :func:`percentile_indices` — maximum-likelihood Weibull (2
  parameters), lognormal (and normal) fits and the ISO 22514-2 percentile indices
  ``Pp = (USL − LSL)/(X₉₉.₈₆₅ − X₀.₁₃₅)``, ``Ppu = (USL − X₅₀)/(X₉₉.₈₆₅ − X₅₀)``,
  ``Ppl = (X₅₀ − LSL)/(X₅₀ − X₀.₁₃₅)`` (Clements 1989; Minitab's "ISO method");
* :func:`choose_method` — the ``method="auto"`` rule (see its docstring).

Only ``scipy.special`` is imported at module level (as in :mod:`workbench.spc.capability`);
``scipy.optimize`` is imported inside the two functions that solve equations.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from workbench.errors import SPCError

FloatArray = NDArray[np.float64]

#: Fewest values the Anderson-Darling p-value formulas are used for (as ``nortest::ad.test``).
MIN_N = 8
#: Default significance level of the normality and goodness-of-fit tests.
ALPHA = 0.05
#: Tail probability of the ISO 22514-2 percentiles (the ±3σ points of a normal distribution).
TAIL = 0.00135
#: Families :func:`fit_distribution` knows.
FAMILIES = ("normal", "lognormal", "weibull")

# D'Agostino & Stephens (1986), Table 4.17 (from Stephens 1977, Biometrika 64, 583-588):
# upper-tail percentage points of A²(1 + 0.2/√n) for the extreme-value distribution with both
# parameters estimated by maximum likelihood — the case of a 2-parameter Weibull fitted to the
# data (ln X is extreme-value distributed, and A² is the same on either scale).
_WEIBULL_P = (0.25, 0.10, 0.05, 0.025, 0.01)
_WEIBULL_A = (0.474, 0.637, 0.757, 0.877, 1.038)

# Grid of z for the Johnson quantile method: 0.25, 0.26, …, 1.25 (Chou et al. 1998; Minitab).
_JOHNSON_Z = np.round(np.arange(25, 126) / 100, 2)

__all__ = [
    "ALPHA", "FAMILIES", "MIN_N", "TAIL", "BoxCox", "FittedDistribution", "Johnson",
    "MethodChoice", "NormalityTest", "PercentileIndices", "anderson_darling", "box_cox",
    "choose_method", "fit_distribution", "fitted_cdf", "format_p", "johnson", "normality_test",
    "percentile_indices",
]


# =============================================================================================
# Helpers
# =============================================================================================

def _values(values: ArrayLike, what: str) -> FloatArray:
    arr = np.asarray(values, dtype=float).ravel()
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise SPCError(f"{what}: {bad.size} missing or infinite value(s), the first at position "
                       f"{int(bad[0])}; drop them first")
    return arr


def _enough(arr: FloatArray, what: str) -> None:
    if arr.size < MIN_N:
        raise SPCError(f"{what} needs at least {MIN_N} values (got {arr.size}): the "
                       "Anderson-Darling p-value is not defined for fewer")
    if np.ptp(arr) == 0:
        raise SPCError(f"{what}: all {arr.size} values are equal ({arr[0]:g}); there is no "
                       "variation to describe")


def _positive(arr: FloatArray, what: str) -> None:
    bad = arr <= 0
    if bad.any():
        raise SPCError(f"{what} needs values > 0; {int(bad.sum())} value(s) are ≤ 0, the smallest "
                       f"is {arr.min():g} (use method='johnson', which accepts any values)")


def format_p(p: float, *, note: str = "") -> str:
    """A p-value in words: ``"p = 0.003"``, ``"p < 0.001"`` or a bound from a table.

    Parameters
    ----------
    p : float
        The p-value.
    note : str
        ``"above"`` when ``p`` is only a lower bound, ``"below"`` when only an upper bound
        (the ends of a table of percentage points).

    Returns
    -------
    str
    """
    if note == "above":
        return f"p > {p:g}"
    if note == "below":
        return f"p < {p:g}"
    return "p < 0.001" if p < 0.0005 else f"p = {p:.3f}"


# =============================================================================================
# Anderson-Darling
# =============================================================================================

def anderson_darling(log_cdf: ArrayLike, log_sf: ArrayLike) -> float:
    """Anderson-Darling statistic A² from the fitted distribution at the sorted data.

    ``A² = −n − (1/n) Σ (2i − 1) [ln F(x₍ᵢ₎) + ln(1 − F(x₍ₙ₊₁₋ᵢ₎))]`` (D'Agostino & Stephens
    1986, eq. 4.2), with logarithms passed in so that far tails do not round to 0 or 1.

    Parameters
    ----------
    log_cdf, log_sf : array_like
        ``ln F(x)`` and ``ln(1 − F(x))`` at the data sorted ascending.

    Returns
    -------
    float
    """
    lc = np.asarray(log_cdf, dtype=float)
    ls = np.asarray(log_sf, dtype=float)
    n = lc.size
    i = np.arange(1, n + 1)
    return float(-n - np.sum((2 * i - 1) * (lc + ls[::-1])) / n)


def _normal_ad_p(adjusted: float) -> float:
    # D'Agostino & Stephens (1986) Table 4.9 / nortest::ad.test, on A*² = A²(1 + 0.75/n + 2.25/n²).
    a = adjusted
    if a < 0.2:
        return 1 - math.exp(-13.436 + 101.14 * a - 223.73 * a**2)
    if a < 0.34:
        return 1 - math.exp(-8.318 + 42.796 * a - 59.938 * a**2)
    if a < 0.6:
        return math.exp(0.9177 - 4.279 * a - 1.38 * a**2)
    if a < 10:
        return math.exp(1.2937 - 5.709 * a + 0.0186 * a**2)
    return 3.7e-24


@dataclass(frozen=True)
class NormalityTest:
    """Anderson-Darling test of normality (mean and standard deviation estimated).

    Attributes
    ----------
    statistic : float
        A², with the sample mean and standard deviation (n − 1).
    adjusted : float
        A*² = A²(1 + 0.75/n + 2.25/n²), the statistic the p-value formula takes.
    p_value : float
        D'Agostino & Stephens (1986) piecewise formula (as Minitab and ``nortest::ad.test``).
    n : int
        Number of values.
    normal : bool
        True when normality is not rejected, i.e. ``p_value >= alpha``.
    method : str
        "Anderson-Darling".
    alpha : float
        Significance level ``normal`` refers to.
    """

    statistic: float
    adjusted: float
    p_value: float
    n: int
    normal: bool
    method: str = "Anderson-Darling"
    alpha: float = ALPHA

    def describe(self) -> str:
        """One phrase for messages, e.g. ``"Anderson-Darling p = 0.003"``."""
        return f"{self.method} {format_p(self.p_value)}"

    def summary(self) -> dict[str, Any]:
        """Plain-Python summary (JSON-ready)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def normality_test(values: ArrayLike, *, alpha: float = ALPHA) -> NormalityTest:
    """Anderson-Darling test of normality.

    Parameters
    ----------
    values : array_like
        At least 8 finite values, not all equal.
    alpha : float
        Significance level for :attr:`NormalityTest.normal`, in (0, 1).

    Returns
    -------
    NormalityTest

    Raises
    ------
    SPCError
        Fewer than 8 values, missing values or no variation.

    Examples
    --------
    >>> normality_test(df["diameter"]).p_value  # doctest: +SKIP
    """
    if not 0 < alpha < 1:
        raise SPCError(f"alpha must be between 0 and 1 (got {alpha})")
    arr = _values(values, "the Anderson-Darling normality test")
    _enough(arr, "the Anderson-Darling normality test")
    n = arr.size
    z = np.sort((arr - arr.mean()) / arr.std(ddof=1))
    a2 = anderson_darling(special.log_ndtr(z), special.log_ndtr(-z))
    adjusted = a2 * (1 + 0.75 / n + 2.25 / n**2)
    p = _normal_ad_p(adjusted)
    return NormalityTest(statistic=a2, adjusted=adjusted, p_value=p, n=n, normal=bool(p >= alpha),
                         alpha=alpha)


# =============================================================================================
# Fitted distributions and percentile indices
# =============================================================================================

@dataclass(frozen=True)
class FittedDistribution:
    """A distribution fitted to the data, with its Anderson-Darling goodness of fit.

    Attributes
    ----------
    family : {"normal", "lognormal", "weibull"}
        Distribution family.
    parameters : dict
        ``normal``: ``mean``, ``sd`` (sample standard deviation, n − 1, so the percentile indices
        equal the usual Pp/Ppk); ``lognormal``: ``meanlog``, ``sdlog`` (maximum likelihood, as
        ``MASS::fitdistr``); ``weibull``: ``shape``, ``scale`` (maximum likelihood).
    n : int
        Number of values.
    ad_statistic : float
        Anderson-Darling A² of the data against the fitted distribution. For the lognormal it
        is the normality test of ln x (sample standard deviation), which its p-value needs.
    p_value : float
        Goodness-of-fit p-value. Normal and lognormal: the D'Agostino & Stephens formula (on
        ln x for the lognormal). Weibull: no formula exists; the value is interpolated (log p
        linear in the statistic) in D'Agostino & Stephens (1986) Table 4.17, and is only a
        bound beyond the table (see ``p_bound``).
    p_bound : str
        ``""`` for a p-value, ``"above"`` when the value is a lower bound (p > 0.25) and
        ``"below"`` when it is an upper bound (p < 0.01).
    p_method : str
        How the p-value was obtained, in words.
    fits : bool
        True when the fit is not rejected at ``alpha``.
    alpha : float
        Significance level of ``fits``.
    """

    family: str
    parameters: dict[str, float]
    n: int
    ad_statistic: float
    p_value: float
    p_bound: str
    p_method: str
    fits: bool
    alpha: float = ALPHA

    def describe(self) -> str:
        """One phrase for messages, e.g. ``"Weibull (p > 0.25)"``."""
        return f"{_FAMILY_NAMES[self.family]} ({format_p(self.p_value, note=self.p_bound)})"

    def cdf(self, x: ArrayLike) -> FloatArray:
        """Fitted distribution function at ``x``."""
        x = np.asarray(x, dtype=float)
        par = self.parameters
        if self.family == "normal":
            return special.ndtr((x - par["mean"]) / par["sd"])
        pos = np.where(x > 0, x, 1.0)
        if self.family == "lognormal":
            out = special.ndtr((np.log(pos) - par["meanlog"]) / par["sdlog"])
        else:
            out = -np.expm1(-((pos / par["scale"]) ** par["shape"]))
        return np.where(x > 0, out, 0.0)

    def sf(self, x: ArrayLike) -> FloatArray:
        """Fitted survival function ``1 − F(x)`` (accurate in the upper tail)."""
        x = np.asarray(x, dtype=float)
        par = self.parameters
        if self.family == "normal":
            return special.ndtr(-(x - par["mean"]) / par["sd"])
        pos = np.where(x > 0, x, 1.0)
        if self.family == "lognormal":
            out = special.ndtr(-(np.log(pos) - par["meanlog"]) / par["sdlog"])
        else:
            out = np.exp(-((pos / par["scale"]) ** par["shape"]))
        return np.where(x > 0, out, 1.0)

    def ppf(self, q: ArrayLike) -> FloatArray:
        """Fitted quantile function at probabilities ``q``."""
        q = np.asarray(q, dtype=float)
        par = self.parameters
        if self.family == "normal":
            return par["mean"] + par["sd"] * special.ndtri(q)
        if self.family == "lognormal":
            return np.exp(par["meanlog"] + par["sdlog"] * special.ndtri(q))
        return par["scale"] * (-np.log1p(-q)) ** (1 / par["shape"])

    def summary(self) -> dict[str, Any]:
        """Plain-Python summary (JSON-ready)."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["parameters"] = dict(self.parameters)
        return out


_FAMILY_NAMES = {"normal": "normal", "lognormal": "lognormal", "weibull": "Weibull"}


def _weibull_mle(x: FloatArray) -> tuple[float, float]:
    from scipy import optimize  # solving one equation; not worth a module-level import

    # Profile score of the shape k (shift-invariant in ln x, so x is scaled by its maximum to
    # keep x^k finite): Σ tᵏ ln t / Σ tᵏ − 1/k − mean(ln t) = 0, increasing in k.
    top = float(x.max())
    lt = np.log(x / top)
    mean_lt = float(lt.mean())

    def score(k: float) -> float:
        w = np.exp(k * lt)
        return float(np.sum(w * lt) / np.sum(w)) - 1 / k - mean_lt

    lo, hi = 0.5, 5.0
    while score(lo) > 0:
        lo /= 2
    while score(hi) < 0:
        hi *= 2
        if hi > 1e6:
            raise SPCError("the Weibull fit did not converge: the values are too close together "
                           "relative to their size")
    k = float(optimize.brentq(score, lo, hi, xtol=1e-14, rtol=1e-14, maxiter=500))
    scale = top * float(np.mean(np.exp(k * lt))) ** (1 / k)
    return k, scale


def _weibull_p(modified: float) -> tuple[float, str]:
    if modified <= _WEIBULL_A[0]:
        return _WEIBULL_P[0], "above"
    if modified >= _WEIBULL_A[-1]:
        return _WEIBULL_P[-1], "below"
    return float(np.exp(np.interp(modified, _WEIBULL_A, np.log(_WEIBULL_P)))), ""


def fit_distribution(values: ArrayLike, family: str, *, alpha: float = ALPHA) -> FittedDistribution:
    """Fit a distribution by maximum likelihood and test the fit (Anderson-Darling).

    Parameters
    ----------
    values : array_like
        At least 8 finite values, not all equal; positive for lognormal and Weibull.
    family : {"normal", "lognormal", "weibull"}
        Distribution family (the Weibull has 2 parameters: shape and scale, no threshold).
    alpha : float
        Significance level of :attr:`FittedDistribution.fits`.

    Returns
    -------
    FittedDistribution

    Raises
    ------
    SPCError
        Unknown family, too few values, no variation, or values ≤ 0 for lognormal/Weibull.
    """
    if family not in FAMILIES:
        raise SPCError(f"unknown distribution {family!r}; use one of {', '.join(FAMILIES)}")
    what = f"the {_FAMILY_NAMES[family]} fit"
    arr = _values(values, what)
    _enough(arr, what)
    n = arr.size
    if family == "normal":
        test = normality_test(arr, alpha=alpha)
        params = {"mean": float(arr.mean()), "sd": float(arr.std(ddof=1))}
        return FittedDistribution(
            family=family, parameters=params, n=n, ad_statistic=test.statistic,
            p_value=test.p_value, p_bound="", p_method="D'Agostino & Stephens (1986) formula",
            fits=test.normal, alpha=alpha)
    _positive(arr, what)
    logs = np.log(arr)
    if family == "lognormal":
        if np.ptp(logs) == 0:
            raise SPCError(f"{what}: all values are equal")
        test = normality_test(logs, alpha=alpha)
        params = {"meanlog": float(logs.mean()), "sdlog": float(logs.std(ddof=0))}
        return FittedDistribution(
            family=family, parameters=params, n=n, ad_statistic=test.statistic,
            p_value=test.p_value, p_bound="",
            p_method="D'Agostino & Stephens (1986) formula, normality test of ln x",
            fits=test.normal, alpha=alpha)
    shape, scale = _weibull_mle(arr)
    # ln F and ln(1 − F) of the Weibull at the sorted data, without rounding in the tails.
    h = (np.sort(arr) / scale) ** shape
    a2 = anderson_darling(np.log(-np.expm1(-h)), -h)
    p, bound = _weibull_p(a2 * (1 + 0.2 / math.sqrt(n)))
    fits = bound == "above" or (bound == "" and p >= alpha)
    return FittedDistribution(
        family=family, parameters={"shape": shape, "scale": scale}, n=n, ad_statistic=a2,
        p_value=p, p_bound=bound,
        p_method="interpolated in D'Agostino & Stephens (1986) Table 4.17 (A²(1 + 0.2/√n)); "
                 "no formula exists for the Weibull",
        fits=fits, alpha=alpha)


@dataclass(frozen=True)
class PercentileIndices:
    """ISO 22514-2 percentile ("M4") performance indices of a fitted distribution.

    Attributes
    ----------
    x_lower, x_median, x_upper : float
        Fitted 0.135 %, 50 % and 99.865 % points.
    pp : float or None
        ``(USL − LSL)/(x_upper − x_lower)`` (two-sided specifications only).
    ppl, ppu : float or None
        ``(x_median − LSL)/(x_median − x_lower)`` and ``(USL − x_median)/(x_upper − x_median)``.
    ppk : float
        The smaller of ``ppl`` and ``ppu``.
    expected_below, expected_above : float or None
        Fitted probability below the LSL / above the USL.
    """

    x_lower: float
    x_median: float
    x_upper: float
    pp: float | None
    ppl: float | None
    ppu: float | None
    ppk: float
    expected_below: float | None
    expected_above: float | None


def percentile_indices(dist: FittedDistribution, *, lsl: float | None = None,
                       usl: float | None = None) -> PercentileIndices:
    """Percentile (ISO 22514-2, Clements 1989) indices of a fitted distribution.

    Parameters
    ----------
    dist : FittedDistribution
        The fitted distribution.
    lsl, usl : float, optional
        Specification limits; at least one.

    Returns
    -------
    PercentileIndices
    """
    if lsl is None and usl is None:
        raise SPCError("percentile indices need at least one specification limit (lsl= or usl=)")
    lo, med, hi = (float(v) for v in dist.ppf([TAIL, 0.5, 1 - TAIL]))
    ppl = None if lsl is None else (med - lsl) / (med - lo)
    ppu = None if usl is None else (usl - med) / (hi - med)
    pp = None if lsl is None or usl is None else (usl - lsl) / (hi - lo)
    return PercentileIndices(
        x_lower=lo, x_median=med, x_upper=hi, pp=pp, ppl=ppl, ppu=ppu,
        ppk=min(v for v in (ppl, ppu) if v is not None),
        expected_below=None if lsl is None else float(dist.cdf(lsl)),
        expected_above=None if usl is None else float(dist.sf(usl)))


# =============================================================================================
# Box-Cox
# =============================================================================================

def _power(x: FloatArray, lam: float) -> FloatArray:
    # (x^λ − 1)/λ, ln x at λ = 0: increasing in x for every λ, so limits keep their order.
    logs = np.log(x)
    if lam == 0:
        return logs
    return np.expm1(lam * logs) / lam


@dataclass(frozen=True)
class BoxCox:
    """A Box-Cox transformation ``(x^λ − 1)/λ`` (``ln x`` for λ = 0) fitted to the data.

    Minitab writes the transformation as ``x^λ``; ``(x^λ − 1)/λ`` is an increasing linear
    function of it (for λ < 0 too), so it gives the same capability indices without swapping
    the specification limits.

    Attributes
    ----------
    lam : float
        λ used.
    lam_mle : float or None
        Maximum-likelihood λ in [−5, 5] (None when λ was given).
    ci : tuple of float or None
        95 % likelihood interval of λ: ``ℓ(λ) ≥ ℓ(λ̂) − χ²₁,₀.₉₅/2`` (as ``MASS::boxcox``).
    rounded : bool
        True when ``lam`` is ``lam_mle`` rounded to the nearest 0.5.
    note : str
        Which λ is used and why, in words.
    normality : NormalityTest
        Anderson-Darling test of the transformed data.
    """

    lam: float
    lam_mle: float | None
    ci: tuple[float, float] | None
    rounded: bool
    note: str
    normality: NormalityTest

    def transform(self, x: ArrayLike) -> FloatArray:
        """Transform values; NaN where a value is ≤ 0 (or NaN), which has no image."""
        x = np.asarray(x, dtype=float)
        ok = x > 0
        out = np.full(x.shape, np.nan)
        out[ok] = _power(x[ok], self.lam)
        return out

    def summary(self) -> dict[str, Any]:
        """Plain-Python summary (JSON-ready)."""
        return {"family": "box-cox", "lambda": self.lam, "lambda_mle": self.lam_mle,
                "lambda_ci": None if self.ci is None else list(self.ci), "rounded": self.rounded,
                "lambda_note": self.note, "goodness_of_fit": self.normality.summary()}


def _box_cox_profile(x: FloatArray) -> Callable[[float], float]:
    # Profile log-likelihood of λ up to a constant, on x divided by its geometric mean so that
    # x^λ stays in range for |λ| ≤ 5: ℓ(λ) = −n/2 ln σ̂²(λ) (σ̂² with divisor n).
    w = x / math.exp(float(np.log(x).mean()))
    n = x.size

    def loglik(lam: float) -> float:
        var = float(np.var(_power(w, lam)))
        # x^λ can overflow for extreme λ and widely spread data: such λ are simply not chosen.
        return -n / 2 * math.log(var) if math.isfinite(var) and var > 0 else -math.inf

    return loglik


def box_cox(values: ArrayLike, *, lam: float | None = None, round_lambda: bool = True,
            alpha: float = ALPHA) -> BoxCox:
    """Fit a Box-Cox transformation.

    λ maximises the profile likelihood of ``(x^λ − 1)/λ ~ normal`` over [−5, 5] (Box & Cox
    1964; the λ of ``MASS::boxcox`` and of Minitab, whose "minimum standard deviation of the
    standardised transformed values" is the same criterion). With ``round_lambda`` the
    maximum-likelihood λ is rounded to the nearest multiple of 0.5 (Minitab: "rounds the
    optimal lambda to 0.5 or the nearest integer"), and the rounded value is used when it lies
    in the 95 % likelihood interval of λ — otherwise the unrounded one, and the note says so.

    Parameters
    ----------
    values : array_like
        At least 8 values, all > 0.
    lam : float, optional
        Use this λ instead of estimating it (e.g. 0 for ln x, 0.5 for √x).
    round_lambda : bool
        Round the estimated λ as Minitab does (default, as in Minitab).
    alpha : float
        Significance level of the normality test of the transformed data.

    Returns
    -------
    BoxCox

    Raises
    ------
    SPCError
        Too few values, values ≤ 0, or λ outside [−5, 5].
    """
    from scipy import optimize

    what = "the Box-Cox transformation"
    arr = _values(values, what)
    _enough(arr, what)
    _positive(arr, what)
    if lam is not None:
        if not (math.isfinite(lam) and -5 <= lam <= 5):
            raise SPCError(f"Box-Cox λ must be between −5 and 5 (got {lam})")
        lam = float(lam)
        return BoxCox(lam=lam, lam_mle=None, ci=None, rounded=False, note=f"λ = {lam:g} (given)",
                      normality=normality_test(_power(arr, lam), alpha=alpha))
    loglik = _box_cox_profile(arr)
    grid = np.linspace(-5, 5, 201)
    best = float(grid[int(np.argmax([loglik(v) for v in grid]))])
    res = optimize.minimize_scalar(lambda v: -loglik(v), bounds=(max(-5.0, best - 0.05),
                                   min(5.0, best + 0.05)), method="bounded",
                                   options={"xatol": 1e-10})
    mle = float(res.x)
    cut = loglik(mle) - float(special.chdtri(1, 0.05)) / 2

    def end(bound: float) -> float:
        # Bisection (robust where x^λ overflows and ℓ is −inf) between λ̂, inside the interval,
        # and the end of the range, outside it unless the interval reaches it.
        if loglik(bound) >= cut:
            return bound
        inside, outside = mle, bound
        while abs(outside - inside) > 1e-10:
            mid = (inside + outside) / 2
            inside, outside = (mid, outside) if loglik(mid) >= cut else (inside, mid)
        return (inside + outside) / 2

    ci = (end(-5.0), end(5.0))
    used, rounded = mle, False
    note = f"λ = {mle:.4g}, the maximum-likelihood λ"
    if round_lambda:
        nice = round(mle * 2) / 2 + 0.0  # + 0.0 turns −0.0 into 0.0
        if ci[0] <= nice <= ci[1]:
            used, rounded = nice, True
            note = (f"λ = {nice:g}: the maximum-likelihood λ {mle:.4g} rounded to the nearest 0.5 "
                    f"(as Minitab does), inside its 95 % interval [{ci[0]:.3g}, {ci[1]:.3g}]")
        else:
            note += (f"; its rounded value {nice:g} lies outside the 95 % interval "
                     f"[{ci[0]:.3g}, {ci[1]:.3g}], so it is not used")
    return BoxCox(lam=used, lam_mle=mle, ci=ci, rounded=rounded, note=note,
                  normality=normality_test(_power(arr, used), alpha=alpha))


# =============================================================================================
# Johnson
# =============================================================================================

def _johnson_support(family: str, eps: float, lam: float) -> tuple[float, float]:
    if family == "SU":
        return (-math.inf, math.inf)
    if family == "SL":
        return (eps, math.inf)
    return (eps, eps + lam)


def _johnson_transform(family: str, gamma: float, eta: float, eps: float, lam: float,
                       x: ArrayLike) -> FloatArray:
    x = np.asarray(x, dtype=float)
    lo, hi = _johnson_support(family, eps, lam)
    ok = (x > lo) & (x < hi)
    u = np.where(ok, (x - eps) / lam, 0.5)
    if family == "SU":
        f = np.arcsinh(u)
    elif family == "SL":
        f = np.log(u)
    else:
        f = np.log(u) - np.log1p(-u)
    return np.where(ok, gamma + eta * f, np.nan)


@dataclass(frozen=True)
class Johnson:
    """A Johnson transformation ``z = γ + η f((x − ε)/λ)`` fitted to the data.

    ``f`` is ``ln(u/(1 − u))`` for SB (bounded, ε < x < ε + λ), ``ln u`` for SL (lognormal,
    x > ε; λ = 1) and ``sinh⁻¹ u`` for SU (unbounded).

    Attributes
    ----------
    family : {"SB", "SL", "SU"}
        Johnson family.
    gamma, eta, epsilon, lam : float
        Parameters γ, η (> 0), ε (location) and λ (> 0; 1 for SL).
    z : float
        The z of the quantile method that gave the best fit.
    quantile_ratio : float
        Slifker & Shapiro's ``mn/p²`` at that z (> 1 points to SU, < 1 to SB).
    normality : NormalityTest
        Anderson-Darling test of the transformed data (the selection criterion).
    """

    family: str
    gamma: float
    eta: float
    epsilon: float
    lam: float
    z: float
    quantile_ratio: float
    normality: NormalityTest

    @property
    def support(self) -> tuple[float, float]:
        """Range of x the transformation is defined on."""
        return _johnson_support(self.family, self.epsilon, self.lam)

    def transform(self, x: ArrayLike) -> FloatArray:
        """Transform values; NaN outside the support."""
        return _johnson_transform(self.family, self.gamma, self.eta, self.epsilon, self.lam, x)

    def summary(self) -> dict[str, Any]:
        """Plain-Python summary (JSON-ready)."""
        return {"family": f"johnson {self.family}",
                "parameters": {"gamma": self.gamma, "eta": self.eta, "epsilon": self.epsilon,
                               "lambda": self.lam},
                "z": self.z, "quantile_ratio": self.quantile_ratio,
                "goodness_of_fit": self.normality.summary()}


def _slifker_shapiro(q: FloatArray, z: float) -> list[tuple[str, float, float, float, float]]:
    # Slifker & Shapiro (1980) estimates from the sample quantiles at Φ(−3z), Φ(−z), Φ(z), Φ(3z):
    # the family the quantile ratio points to, and SL (its boundary case, which an exact ratio
    # of 1 would pick) whenever its formula applies. Returns (family, γ, η, ε, λ) tuples.
    xm3, xm1, x1, x3 = (float(v) for v in q)
    m, n, p = x3 - x1, xm1 - xm3, x1 - xm1
    if min(m, n, p) <= 0:
        return []
    mp, np_ = m / p, n / p
    qr = mp * np_
    mid = (x1 + xm1) / 2
    out = []
    if qr > 1:
        eta = 2 * z / math.acosh(0.5 * (mp + np_))
        gamma = eta * math.asinh((np_ - mp) / (2 * math.sqrt(qr - 1)))
        lam = 2 * p * math.sqrt(qr - 1) / ((mp + np_ - 2) * math.sqrt(mp + np_ + 2))
        eps = mid + p * (np_ - mp) / (2 * (mp + np_ - 2))
        out.append(("SU", gamma, eta, eps, lam))
    elif qr < 1:
        pm, pn = p / m, p / n
        prod = (1 + pm) * (1 + pn)
        if prod > 4:
            eta = z / math.acosh(0.5 * math.sqrt(prod))
            gamma = eta * math.asinh((pn - pm) * math.sqrt(prod - 4) / (2 * (pm * pn - 1)))
            lam = p * math.sqrt((prod - 2) ** 2 - 4) / (pm * pn - 1)
            eps = mid - lam / 2 + p * (pn - pm) / (2 * (pm * pn - 1))
            out.append(("SB", gamma, eta, eps, lam))
    if mp > 1:
        eta = 2 * z / math.log(mp)
        gamma = eta * math.log((mp - 1) / (p * math.sqrt(mp)))
        eps = mid - p / 2 * (mp + 1) / (mp - 1)
        out.append(("SL", gamma, eta, eps, 1.0))
    return out


def johnson(values: ArrayLike, *, alpha: float = ALPHA) -> Johnson:
    """Fit a Johnson transformation by the quantile method (Minitab's algorithm).

    For each z in 0.25, 0.26, …, 1.25 the parameters follow from the sample quantiles at
    Φ(−3z), Φ(−z), Φ(z) and Φ(3z) (Hazen plotting positions) by the formulas of Slifker &
    Shapiro (1980), for the family their quantile ratio ``mn/p²`` selects (SU above 1, SB below)
    and for SL; candidates whose parameters are invalid or whose support does not cover every
    value are dropped. The transformation whose transformed data have the largest
    Anderson-Darling p-value is returned (Chou, Polansky & Mason 1998, with the Anderson-Darling
    test in place of Shapiro-Wilk, as Minitab does). Whether it is good enough is the caller's
    call: see :attr:`Johnson.normality`.

    Parameters
    ----------
    values : array_like
        At least 8 finite values, not all equal (any sign).
    alpha : float
        Significance level of the normality test of the transformed data.

    Returns
    -------
    Johnson

    Raises
    ------
    SPCError
        Too few values, no variation, or no valid transformation at any z.
    """
    what = "the Johnson transformation"
    arr = _values(values, what)
    _enough(arr, what)
    best: Johnson | None = None
    key = (-1.0, 0.0)
    for z in _JOHNSON_Z:
        z = float(z)
        q = np.quantile(arr, special.ndtr([-3 * z, -z, z, 3 * z]), method="hazen")
        m, n, p = q[3] - q[2], q[1] - q[0], q[2] - q[1]
        for family, gamma, eta, eps, lam in _slifker_shapiro(q, z):
            if not (eta > 0 and lam > 0 and all(map(math.isfinite, (gamma, eta, eps, lam)))):
                continue
            t = _johnson_transform(family, gamma, eta, eps, lam, arr)
            if not np.all(np.isfinite(t)) or np.ptp(t) == 0:
                continue
            test = normality_test(t, alpha=alpha)
            if (test.p_value, -test.statistic) > key:
                key = (test.p_value, -test.statistic)
                best = Johnson(family=family, gamma=gamma, eta=eta, epsilon=eps, lam=lam, z=z,
                               quantile_ratio=float(m * n / p**2), normality=test)
    if best is None:
        raise SPCError(f"{what}: no Johnson SB, SL or SU transformation could be fitted to these "
                       f"{arr.size} values (too many ties?)")
    return best


# =============================================================================================
# Method selection
# =============================================================================================

@dataclass(frozen=True)
class MethodChoice:
    """What ``method="auto"`` picked, why, and everything it tried.

    Attributes
    ----------
    method : {"normal", "lognormal", "weibull", "box_cox", "johnson"}
        Method chosen.
    reason : str
        Why, in plain words.
    normality : NormalityTest
        Anderson-Darling normality test of the data.
    candidates : dict
        What was fitted: ``"lognormal"``/``"weibull"`` → :class:`FittedDistribution`,
        ``"box_cox"`` → :class:`BoxCox`, ``"johnson"`` → :class:`Johnson` (only those tried).
    skipped : dict
        Candidates not tried, with the reason (e.g. values ≤ 0).
    fits : bool
        False when nothing fitted at ``alpha`` and the best of a bad lot was taken.
    """

    method: str
    reason: str
    normality: NormalityTest
    candidates: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    fits: bool = True


def _rank(p: float, statistic: float, bound: str = "") -> tuple[float, float]:
    # p-values above 0.25 count as equal (the Weibull table stops there), then smaller A²; a
    # Weibull p known only to be below 0.01 could be any smaller value, so it ranks last.
    return (0.0 if bound == "below" else min(p, 0.25), -statistic)


def choose_method(values: ArrayLike, *, alpha: float = ALPHA,
                  round_lambda: bool = True) -> MethodChoice:
    """The ``method="auto"`` rule.

    1. **Normal** when the Anderson-Darling test does not reject normality at ``alpha``.
    2. Otherwise the **fitted distribution** (lognormal, 2-parameter Weibull; positive data
       only) whose Anderson-Darling test does not reject the fit and whose p-value is highest;
       p-values above 0.25 count as equal (the Weibull table ends there) and ties go to the
       smaller A².
    3. When no distribution fits: the **Box-Cox** transformation if the transformed data pass
       the normality test (positive data only), else the **Johnson** transformation if they
       pass.
    4. When nothing passes, the candidate with the highest p-value (a Weibull p-value known
       only to be below 0.01 ranks last), and ``fits`` is False.

    Parameters
    ----------
    values : array_like
        At least 8 finite values, not all equal.
    alpha : float
        Significance level of every test (≤ 0.25, the top of the Weibull table).
    round_lambda : bool
        Passed to :func:`box_cox`.

    Returns
    -------
    MethodChoice
    """
    if not 0 < alpha <= 0.25:
        raise SPCError(f"alpha for choosing a method must be in (0, 0.25] (got {alpha})")
    arr = _values(values, "choosing a capability method")
    test = normality_test(arr, alpha=alpha)
    if test.normal:
        return MethodChoice(
            method="normal", normality=test,
            reason=f"the data are consistent with a normal distribution ({test.describe()}, "
                   f"not rejected at α = {alpha:g}), so the normal indices apply")
    rejected = f"the data are not normal ({test.describe()}, rejected at α = {alpha:g})"
    candidates: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    if arr.min() <= 0:
        why = f"needs values > 0 (smallest {arr.min():g})"
        skipped = {"lognormal": why, "weibull": why, "box_cox": why}
    else:
        for family in ("lognormal", "weibull"):
            try:
                candidates[family] = fit_distribution(arr, family, alpha=alpha)
            except SPCError as exc:
                skipped[family] = str(exc)
        try:
            candidates["box_cox"] = box_cox(arr, round_lambda=round_lambda, alpha=alpha)
        except SPCError as exc:
            skipped["box_cox"] = str(exc)
    try:
        candidates["johnson"] = johnson(arr, alpha=alpha)
    except SPCError as exc:
        skipped["johnson"] = str(exc)

    def p_of(name: str) -> tuple[float, float]:
        c = candidates[name]
        if isinstance(c, FittedDistribution):
            return _rank(c.p_value, c.ad_statistic, c.p_bound)
        return _rank(c.normality.p_value, c.normality.statistic)

    def words(name: str) -> str:
        c = candidates[name]
        if isinstance(c, FittedDistribution):
            return f"{c.describe()}, {'fits' if c.fits else 'rejected'}"
        label = f"Box-Cox λ = {c.lam:g}" if isinstance(c, BoxCox) else f"Johnson {c.family}"
        return f"{label}, {c.normality.describe()} after transforming"

    dists = [f for f in ("lognormal", "weibull") if f in candidates]
    fitting = [f for f in dists if candidates[f].fits]
    tried = "; ".join(words(f) for f in dists)
    if fitting:
        best = max(fitting, key=p_of)
        why = ("the only distribution that fits" if len(fitting) == 1
               else "the better fit (higher Anderson-Darling p-value)")
        return MethodChoice(
            method=best, normality=test, candidates=candidates, skipped=skipped,
            reason=f"{rejected}; fitted distributions: {tried}. {_FAMILY_NAMES[best].capitalize()} "
                   f"is {why}, "
                   "so the ISO 22514-2 percentile indices of the fitted distribution are used")
    if dists:
        lead = f"{rejected}; no distribution fits ({tried})"
    else:
        lead = f"{rejected}; no distribution could be fitted (" + "; ".join(
            f"{_FAMILY_NAMES[k]}: {skipped[k]}" for k in ("lognormal", "weibull")) + ")"
    for name in ("box_cox", "johnson"):
        c = candidates.get(name)
        if c is not None and c.normality.normal:
            label = "Box-Cox" if name == "box_cox" else "Johnson"
            return MethodChoice(
                method=name, normality=test, candidates=candidates, skipped=skipped,
                reason=f"{lead}; the {label} transformation makes them normal ({words(name)}), "
                       "so the normal indices are computed on the transformed scale")
    if not candidates:
        raise SPCError("no non-normal method could be fitted: " + "; ".join(
            f"{k}: {v}" for k, v in skipped.items()))
    best = max(candidates, key=p_of)
    return MethodChoice(
        method=best, normality=test, candidates=candidates, skipped=skipped, fits=False,
        reason=f"{lead}, and no transformation makes them normal. The closest (highest "
               f"Anderson-Darling p-value) is used, but the indices are approximate: {words(best)}")


def fitted_cdf(distribution: dict[str, Any] | None) -> Callable[[ArrayLike], FloatArray] | None:
    """The distribution function, on the original scale, of a capability study's fitted model.

    Parameters
    ----------
    distribution : dict or None
        :attr:`workbench.spc.Capability.distribution` (family, parameters and, for the
        transformations, the transformed mean and overall sigma).

    Returns
    -------
    callable or None
        ``F(x)`` — for the transformations, the normal distribution of the transformed values
        (their mean and overall sigma) read back through the transformation, which is what the
        study's expected fractions use; None for a normal study (no ``distribution``).
    """
    if not distribution:
        return None
    family = str(distribution.get("family", ""))
    par = distribution.get("parameters") or {}
    if family in ("normal", "lognormal", "weibull"):
        return FittedDistribution(family=family, parameters=dict(par), n=0, ad_statistic=float("nan"),
                                  p_value=float("nan"), p_bound="", p_method="", fits=True).cdf
    moved = distribution.get("transformed") or {}
    mean, sd = moved.get("mean"), moved.get("sigma_overall")
    if mean is None or sd is None:
        return None
    if family == "box-cox":
        lam = float(distribution["lambda"])

        def box_cox_cdf(x: ArrayLike) -> FloatArray:
            x = np.asarray(x, dtype=float)
            pos = np.where(x > 0, x, 1.0)
            return np.where(x > 0, special.ndtr((_power(pos, lam) - mean) / sd), 0.0)

        return box_cox_cdf
    if family.startswith("johnson "):
        kind = family.split()[1]
        lo, hi = _johnson_support(kind, float(par["epsilon"]), float(par["lambda"]))

        def johnson_cdf(x: ArrayLike) -> FloatArray:
            x = np.asarray(x, dtype=float)
            inside = np.clip(x, np.nextafter(lo, np.inf), np.nextafter(hi, -np.inf))
            z = _johnson_transform(kind, float(par["gamma"]), float(par["eta"]), float(par["epsilon"]),
                                   float(par["lambda"]), inside)
            return np.where(x <= lo, 0.0, np.where(x >= hi, 1.0, special.ndtr((z - mean) / sd)))

        return johnson_cdf
    return None
