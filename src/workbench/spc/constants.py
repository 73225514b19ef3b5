"""Control-chart constants computed from their definitions, not typed in from a table.

* ``d2(n)`` — expected range of ``n`` independent standard normal observations,
  ``E[R] = ∫ (1 − Φ(x)ⁿ − (1 − Φ(x))ⁿ) dx``.
* ``d3(n)`` — standard deviation of that range, ``sqrt(E[R²] − d2²)`` with
  ``E[R²] = 2 ∫₀^∞ w (1 − F(w)) dw`` and the range distribution
  ``F(w) = n ∫ φ(x) (Φ(x + w) − Φ(x))ⁿ⁻¹ dx`` (Tippett 1925; Harter 1960).
* ``c4(n)`` — ``E[S]/σ`` for a normal sample, ``sqrt(2/(n−1)) Γ(n/2) / Γ((n−1)/2)``.

The derived factors follow their textbook definitions with ``k = 3`` (Montgomery, *Introduction
to Statistical Quality Control*, Appendix VI; SAS/QC "Deriving Control Chart Constants"):
``A2 = 3/(d2√n)``, ``A3 = 3/(c4√n)``, ``B3,B4 = 1 ∓ 3√(1−c4²)/c4`` (B3 floored at 0),
``D3,D4 = 1 ∓ 3 d3/d2`` (D3 floored at 0), ``E2 = 3/d2``.

Published tables round each factor from *rounded* d2, d3 and c4, so a few entries differ from the
exact value in the last printed digit (e.g. D4(3) is printed 2.574; exactly it is 2.5746).

All functions take an integer subgroup size ``n ≥ 2`` and are cached: each constant is integrated
once per process.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pandas as pd
from scipy import special

from workbench.errors import SPCError

K_SIGMA = 3.0

# The inner integral over x is done with the trapezoidal rule on a fixed grid: for a smooth
# integrand that decays like the normal density, that rule converges exponentially fast, so a
# 0.01 step on ±10 is exact to double precision and much faster than nested adaptive quadrature.
_X = np.linspace(-10.0, 10.0, 2001)
_STEP = _X[1] - _X[0]
_PHI = np.exp(-0.5 * _X**2) / math.sqrt(2.0 * math.pi)
_CDF = special.ndtr(_X)

__all__ = ["a2", "a3", "b3", "b4", "c4", "d2", "d3", "d3_factor", "d4_factor", "e2", "table"]


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not float(n).is_integer() or n < 2:
        raise SPCError(f"control-chart constants need a subgroup size n ≥ 2 (got {n!r})")
    return int(n)


@cache
def _d2(n: int) -> float:
    from scipy import integrate  # only to compute a constant the first time it is needed

    def integrand(x: float) -> float:
        p = special.ndtr(x)
        return 1.0 - p**n - (1.0 - p) ** n

    value, _ = integrate.quad(integrand, -np.inf, np.inf, epsabs=1e-13, epsrel=1e-13, limit=200)
    return float(value)


def _range_survival(w: float, n: int) -> float:
    """P(R > w) for the range of n standard normal observations."""
    inner = (special.ndtr(_X + w) - _CDF) ** (n - 1)
    cdf = n * float(np.sum(_PHI * inner)) * _STEP
    return 1.0 - min(cdf, 1.0)


@cache
def _d3(n: int) -> float:
    from scipy import integrate

    second_moment, _ = integrate.quad(lambda w: 2.0 * w * _range_survival(w, n), 0.0, np.inf,
                                      epsabs=1e-12, epsrel=1e-12, limit=200)
    return math.sqrt(second_moment - _d2(n) ** 2)


def d2(n: int) -> float:
    """Expected range of ``n`` standard normal observations (``R̄/d2`` estimates σ).

    Parameters
    ----------
    n : int
        Subgroup size, at least 2.

    Returns
    -------
    float
        ``E[R]/σ``; e.g. ``d2(2) = 2/√π = 1.128…``, ``d2(5) = 2.326…``.
    """
    return _d2(_check_n(n))


def d3(n: int) -> float:
    """Standard deviation of the range of ``n`` standard normal observations (``σ_R = d3 σ``).

    Parameters
    ----------
    n : int
        Subgroup size, at least 2.

    Returns
    -------
    float
        ``SD[R]/σ``; e.g. ``d3(2) = √(2 − 4/π) = 0.8525…``.
    """
    return _d3(_check_n(n))


def c4(n: int) -> float:
    """Bias of the sample standard deviation of ``n`` normal observations, ``E[S] = c4 σ``.

    Parameters
    ----------
    n : int
        Subgroup size, at least 2.

    Returns
    -------
    float
        ``sqrt(2/(n−1)) Γ(n/2)/Γ((n−1)/2)``, computed with log-gamma so large ``n`` do not overflow.
    """
    n = _check_n(n)
    return math.sqrt(2.0 / (n - 1)) * math.exp(math.lgamma(n / 2) - math.lgamma((n - 1) / 2))


def a2(n: int) -> float:
    """X̄-chart factor with ranges: limits ``x̿ ± A2 R̄``; ``A2 = 3/(d2 √n)``."""
    return K_SIGMA / (d2(n) * math.sqrt(n))


def a3(n: int) -> float:
    """X̄-chart factor with standard deviations: limits ``x̿ ± A3 S̄``; ``A3 = 3/(c4 √n)``."""
    return K_SIGMA / (c4(n) * math.sqrt(n))


def b3(n: int) -> float:
    """S-chart lower factor: ``LCL = B3 S̄``; ``B3 = max(0, 1 − 3√(1−c4²)/c4)``."""
    c = c4(n)
    return max(0.0, 1.0 - K_SIGMA * math.sqrt(1.0 - c * c) / c)


def b4(n: int) -> float:
    """S-chart upper factor: ``UCL = B4 S̄``; ``B4 = 1 + 3√(1−c4²)/c4``."""
    c = c4(n)
    return 1.0 + K_SIGMA * math.sqrt(1.0 - c * c) / c


def d3_factor(n: int) -> float:
    """R-chart lower factor ``D3 = max(0, 1 − 3 d3/d2)``: ``LCL = D3 R̄``.

    Named ``d3_factor`` because ``d3`` (lower case) is the standard deviation of the range.
    """
    return max(0.0, 1.0 - K_SIGMA * d3(n) / d2(n))


def d4_factor(n: int) -> float:
    """R-chart upper factor ``D4 = 1 + 3 d3/d2``: ``UCL = D4 R̄``."""
    return 1.0 + K_SIGMA * d3(n) / d2(n)


def e2(n: int) -> float:
    """Individuals-chart factor with moving ranges of span ``n``: limits ``x̄ ± E2 MR̄``; ``3/d2``."""
    return K_SIGMA / d2(n)


def table(n_max: int = 25) -> pd.DataFrame:
    """All factors for subgroup sizes 2 … ``n_max``, like Montgomery's Appendix VI.

    Parameters
    ----------
    n_max : int
        Largest subgroup size in the table.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``n``; columns d2, d3, c4, A2, A3, B3, B4, D3, D4, E2.
    """
    rows = [{"n": n, "d2": d2(n), "d3": d3(n), "c4": c4(n), "A2": a2(n), "A3": a3(n), "B3": b3(n),
             "B4": b4(n), "D3": d3_factor(n), "D4": d4_factor(n), "E2": e2(n)}
            for n in range(2, _check_n(n_max) + 1)]
    return pd.DataFrame(rows).set_index("n")
