"""The chart-type registry: each chart is a few small pure functions found by name.

Like qcc's ``stats.*`` / ``sd.*`` / ``limits.*`` triplets, a :class:`ChartType` ties together

* ``statistic(subgroups)`` — the plotted points;
* ``center(subgroups, include)`` and ``sigma(subgroups, include)`` — phase I estimates from the
  subgroups not excluded;
* ``limits(center, sigma, sizes, nsigmas)`` — center line, control limits and the standard error
  of every point, which is all phase II needs.

:data:`CHART_TYPES` holds the ten chart types; :data:`CHARTS` says which of them a public chart
name builds (X̄-R builds the X̄ and R chart types). Adding a chart type means writing its four
functions and registering one :class:`ChartType`. See :mod:`workbench.spc.charts` for the sigma
estimators, the conventions for unequal subgroup sizes and why R, S and MR charts only get the
beyond-limits rule (``run_rules=False``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from workbench.errors import SPCError
from workbench.spc import constants as const

FloatArray = NDArray[np.float64]

__all__ = ["CHARTS", "CHART_TYPES", "SIGMAS", "TIME_WEIGHTED", "ChartType", "Limits", "Points",
           "Subgroups", "chart_name", "chart_type"]


# =============================================================================================
# Data holders
# =============================================================================================

@dataclass(frozen=True, eq=False)
class Subgroups:
    """Parsed input: one entry per subgroup (or per individual, or per attribute sample).

    Attributes
    ----------
    ids : ndarray of object
        Subgroup ids in chart order.
    sizes : ndarray of float
        Observations per subgroup (variables) or sample size / inspection units (attributes).
    values : ndarray of float, optional
        Variables data, one row per subgroup, padded with NaN to the largest subgroup.
    counts : ndarray of float, optional
        Attribute counts (defectives or defects) per sample.
    """

    ids: NDArray[np.object_]
    sizes: FloatArray
    values: FloatArray | None = None
    counts: FloatArray | None = None

    def __len__(self) -> int:
        return int(self.ids.size)


@dataclass(frozen=True, eq=False)
class Points:
    """The plotted points of one chart: ids, statistic and the size each point stands for."""

    ids: NDArray[np.object_]
    values: FloatArray
    sizes: FloatArray


@dataclass(frozen=True, eq=False)
class Limits:
    """Center line, control limits and standard error per point, plus where a lower side exists."""

    center: FloatArray
    lcl: FloatArray
    ucl: FloatArray
    se: FloatArray
    lower: NDArray[np.bool_]


# =============================================================================================
# statistic functions
# =============================================================================================

def _values(sub: Subgroups) -> FloatArray:
    if sub.values is None:
        raise SPCError("this chart needs variables data (values per subgroup)")
    return sub.values


def _counts(sub: Subgroups) -> FloatArray:
    if sub.counts is None:
        raise SPCError("this chart needs attribute data (counts per sample)")
    return sub.counts


def _subgroup_ranges(sub: Subgroups) -> FloatArray:
    v = _values(sub)
    return np.nanmax(v, axis=1) - np.nanmin(v, axis=1)


def _subgroup_sds(sub: Subgroups) -> FloatArray:
    v = _values(sub)
    return np.nanstd(v, axis=1, ddof=1)


def _moving_ranges(sub: Subgroups) -> FloatArray:
    return np.abs(np.diff(_values(sub)[:, 0]))


def stat_mean(sub: Subgroups) -> Points:
    """Subgroup means (X̄ chart)."""
    return Points(sub.ids, np.nanmean(_values(sub), axis=1), sub.sizes)


def stat_range(sub: Subgroups) -> Points:
    """Subgroup ranges, max − min (R chart)."""
    return Points(sub.ids, _subgroup_ranges(sub), sub.sizes)


def stat_sd(sub: Subgroups) -> Points:
    """Subgroup sample standard deviations, n − 1 in the denominator (S chart)."""
    return Points(sub.ids, _subgroup_sds(sub), sub.sizes)


def stat_individual(sub: Subgroups) -> Points:
    """The individual values (I chart)."""
    return Points(sub.ids, _values(sub)[:, 0].copy(), sub.sizes)


def stat_moving_range(sub: Subgroups) -> Points:
    """|xᵢ − xᵢ₋₁|, labelled with the later point (MR chart: one point fewer than the I chart)."""
    return Points(sub.ids[1:], _moving_ranges(sub), np.full(max(len(sub) - 1, 0), 2.0))


def stat_proportion(sub: Subgroups) -> Points:
    """Fraction nonconforming Dᵢ/nᵢ (p chart)."""
    return Points(sub.ids, _counts(sub) / sub.sizes, sub.sizes)


def stat_count(sub: Subgroups) -> Points:
    """The count itself (np and c charts)."""
    return Points(sub.ids, _counts(sub).copy(), sub.sizes)


def stat_rate(sub: Subgroups) -> Points:
    """Nonconformities per unit xᵢ/nᵢ (u chart)."""
    return Points(sub.ids, _counts(sub) / sub.sizes, sub.sizes)


# =============================================================================================
# center estimates (phase I, from the included subgroups)
# =============================================================================================

def center_grand_mean(sub: Subgroups, include: NDArray[np.bool_]) -> float:
    """x̿ = Σ nᵢ x̄ᵢ / Σ nᵢ: the mean of every included observation."""
    v = _values(sub)[include]
    return float(np.nanmean(v))


def center_mean_range(sub: Subgroups, include: NDArray[np.bool_]) -> float:
    """R̄ over the included subgroups (reported; the limits use σ̂)."""
    return float(np.mean(_subgroup_ranges(sub)[include]))


def center_mean_sd(sub: Subgroups, include: NDArray[np.bool_]) -> float:
    """S̄ over the included subgroups (reported; the limits use σ̂)."""
    return float(np.mean(_subgroup_sds(sub)[include]))


def center_mean_moving_range(sub: Subgroups, include: NDArray[np.bool_]) -> float:
    """MR̄ over the moving ranges whose both ends are included."""
    return float(np.mean(_usable_moving_ranges(sub, include)))


def center_proportion(sub: Subgroups, include: NDArray[np.bool_]) -> float:
    """p̄ = Σ Dᵢ / Σ nᵢ (p and np charts)."""
    return float(_counts(sub)[include].sum() / sub.sizes[include].sum())


def center_mean_count(sub: Subgroups, include: NDArray[np.bool_]) -> float:
    """c̄, the mean count (c chart)."""
    return float(_counts(sub)[include].mean())


def center_rate(sub: Subgroups, include: NDArray[np.bool_]) -> float:
    """ū = Σ xᵢ / Σ nᵢ (u chart)."""
    return float(_counts(sub)[include].sum() / sub.sizes[include].sum())


# =============================================================================================
# sigma estimates (phase I)
# =============================================================================================

def _usable_moving_ranges(sub: Subgroups, include: NDArray[np.bool_]) -> FloatArray:
    # A moving range touching an excluded point carries that point's special cause, so it is
    # dropped rather than bridged across the gap (to bridge, delete the row from the data).
    ok = include[1:] & include[:-1]
    return _moving_ranges(sub)[ok]


def sigma_rbar_d2(sub: Subgroups, include: NDArray[np.bool_]) -> float:
    """σ̂ = mean of Rᵢ/d2(nᵢ) over the included subgroups (R̄/d2 for equal sizes)."""
    ranges = _subgroup_ranges(sub)[include]
    d2 = np.array([const.d2(int(n)) for n in sub.sizes[include]])
    return float(np.mean(ranges / d2))


def sigma_sbar_c4(sub: Subgroups, include: NDArray[np.bool_]) -> float:
    """σ̂ = mean of Sᵢ/c4(nᵢ) over the included subgroups (S̄/c4 for equal sizes)."""
    sds = _subgroup_sds(sub)[include]
    c4 = np.array([const.c4(int(n)) for n in sub.sizes[include]])
    return float(np.mean(sds / c4))


def sigma_mrbar_d2(sub: Subgroups, include: NDArray[np.bool_]) -> float:
    """σ̂ = MR̄/d2(2) over moving ranges of two included consecutive individuals."""
    mr = _usable_moving_ranges(sub, include)
    if mr.size == 0:
        raise SPCError("no moving range is left to estimate sigma: at least two consecutive "
                       "individuals must be included")
    return float(np.mean(mr) / const.d2(2))


def sigma_binomial(sub: Subgroups, include: NDArray[np.bool_]) -> float:
    """σ̂ = √(p̄(1 − p̄)) per inspected unit."""
    p = center_proportion(sub, include)
    return float(np.sqrt(p * (1.0 - p)))


def sigma_poisson_count(sub: Subgroups, include: NDArray[np.bool_]) -> float:
    """σ̂ = √c̄ for a Poisson count."""
    return float(np.sqrt(center_mean_count(sub, include)))


def sigma_poisson_rate(sub: Subgroups, include: NDArray[np.bool_]) -> float:
    """σ̂ = √ū per inspection unit."""
    return float(np.sqrt(center_rate(sub, include)))


# Sigma estimators by name (shared with the capability study).
SIGMAS: dict[str, Callable[[Subgroups, NDArray[np.bool_]], float]] = {
    "rbar_d2": sigma_rbar_d2, "sbar_c4": sigma_sbar_c4, "mrbar_d2": sigma_mrbar_d2,
    "binomial": sigma_binomial, "poisson_count": sigma_poisson_count,
    "poisson_rate": sigma_poisson_rate,
}


# =============================================================================================
# limits
# =============================================================================================

def _sizes_int(sizes: FloatArray) -> list[int]:
    return [int(n) for n in sizes]


def _finish(center: FloatArray, se: FloatArray, nsigmas: float, *, floor: float | None = None,
            ceiling: FloatArray | float | None = None) -> Limits:
    raw_lcl = center - nsigmas * se
    ucl = center + nsigmas * se
    lower = np.ones(center.shape, dtype=bool) if floor is None else raw_lcl >= floor
    lcl = raw_lcl if floor is None else np.maximum(raw_lcl, floor)
    if ceiling is not None:
        ucl = np.minimum(ucl, ceiling)
    return Limits(center=center, lcl=lcl, ucl=ucl, se=se, lower=lower)


def limits_xbar(center: float, sigma: float, sizes: FloatArray, nsigmas: float) -> Limits:
    """x̿ ± k σ̂/√nᵢ."""
    c = np.full(sizes.shape, center, dtype=float)
    return _finish(c, sigma / np.sqrt(sizes), nsigmas)


def limits_individual(center: float, sigma: float, sizes: FloatArray, nsigmas: float) -> Limits:
    """x̄ ± k σ̂ (individuals are not clipped: negative values can be real)."""
    c = np.full(sizes.shape, center, dtype=float)
    return _finish(c, np.full(sizes.shape, sigma, dtype=float), nsigmas)


def limits_range(center: float, sigma: float, sizes: FloatArray, nsigmas: float) -> Limits:
    """Center d2(nᵢ)σ̂, limits d2σ̂ ± k d3σ̂, the lower one floored at 0 (D3, D4 for k = 3)."""
    ns = _sizes_int(sizes)
    c = sigma * np.array([const.d2(n) for n in ns])
    se = sigma * np.array([const.d3(n) for n in ns])
    return _finish(c, se, nsigmas, floor=0.0)


def limits_sd(center: float, sigma: float, sizes: FloatArray, nsigmas: float) -> Limits:
    """Center c4(nᵢ)σ̂, limits c4σ̂ ± k σ̂√(1 − c4²), the lower one floored at 0 (B3, B4)."""
    c4 = np.array([const.c4(n) for n in _sizes_int(sizes)])
    return _finish(sigma * c4, sigma * np.sqrt(1.0 - c4**2), nsigmas, floor=0.0)


def limits_moving_range(center: float, sigma: float, sizes: FloatArray, nsigmas: float) -> Limits:
    """Center MR̄ = d2(2)σ̂, UCL = MR̄ + k d3(2)σ̂ (D4 MR̄ = 3.267 MR̄ for k = 3), LCL 0."""
    c = np.full(sizes.shape, const.d2(2) * sigma)
    return _finish(c, np.full(sizes.shape, const.d3(2) * sigma), nsigmas, floor=0.0)


def limits_p(center: float, sigma: float, sizes: FloatArray, nsigmas: float) -> Limits:
    """p̄ ± k √(p̄(1 − p̄)/nᵢ), clipped to [0, 1]."""
    c = np.full(sizes.shape, center, dtype=float)
    return _finish(c, sigma / np.sqrt(sizes), nsigmas, floor=0.0, ceiling=1.0)


def limits_np(center: float, sigma: float, sizes: FloatArray, nsigmas: float) -> Limits:
    """n p̄ ± k √(n p̄(1 − p̄)), clipped to [0, n]."""
    return _finish(sizes * center, sigma * np.sqrt(sizes), nsigmas, floor=0.0, ceiling=sizes)


def limits_c(center: float, sigma: float, sizes: FloatArray, nsigmas: float) -> Limits:
    """c̄ ± k √c̄, the lower limit clipped at 0."""
    c = np.full(sizes.shape, center, dtype=float)
    return _finish(c, np.full(sizes.shape, sigma), nsigmas, floor=0.0)


def limits_u(center: float, sigma: float, sizes: FloatArray, nsigmas: float) -> Limits:
    """ū ± k √(ū/nᵢ), the lower limit clipped at 0."""
    c = np.full(sizes.shape, center, dtype=float)
    return _finish(c, sigma / np.sqrt(sizes), nsigmas, floor=0.0)


# =============================================================================================
# registry
# =============================================================================================

@dataclass(frozen=True)
class ChartType:
    """One chart type: its four functions and what the rules may do on it.

    Attributes
    ----------
    name : str
        Registry key.
    label : str
        Name shown on plots and in messages ("X̄", "R", "p", …).
    statistic, center, sigma, limits : callable
        See the module docstring.
    sigma_method : str
        How sigma is estimated, e.g. ``"R̄/d2"``.
    run_rules : bool
        False where only the beyond-limits rule is valid (R, S, MR).
    parameter : str
        What the frozen center stands for ("x̿", "p̄", …).
    """

    name: str
    label: str
    statistic: Callable[[Subgroups], Points]
    center: Callable[[Subgroups, NDArray[np.bool_]], float]
    sigma: Callable[[Subgroups, NDArray[np.bool_]], float]
    limits: Callable[[float, float, FloatArray, float], Limits]
    sigma_method: str
    run_rules: bool
    parameter: str


def _register(*types: ChartType) -> dict[str, ChartType]:
    return {t.name: t for t in types}


CHART_TYPES: dict[str, ChartType] = _register(
    ChartType("xbar_rbar", label="X̄", statistic=stat_mean, center=center_grand_mean,
              sigma=sigma_rbar_d2, sigma_method="R̄/d2", limits=limits_xbar,
              run_rules=True, parameter="x̿"),
    ChartType("r", label="R", statistic=stat_range, center=center_mean_range,
              sigma=sigma_rbar_d2, sigma_method="R̄/d2", limits=limits_range,
              run_rules=False, parameter="R̄"),
    ChartType("xbar_sbar", label="X̄", statistic=stat_mean, center=center_grand_mean,
              sigma=sigma_sbar_c4, sigma_method="S̄/c4", limits=limits_xbar,
              run_rules=True, parameter="x̿"),
    ChartType("s", label="S", statistic=stat_sd, center=center_mean_sd,
              sigma=sigma_sbar_c4, sigma_method="S̄/c4", limits=limits_sd,
              run_rules=False, parameter="S̄"),
    ChartType("i", label="I", statistic=stat_individual, center=center_grand_mean,
              sigma=sigma_mrbar_d2, sigma_method="MR̄/d2", limits=limits_individual,
              run_rules=True, parameter="x̄"),
    ChartType("mr", label="MR", statistic=stat_moving_range, center=center_mean_moving_range,
              sigma=sigma_mrbar_d2, sigma_method="MR̄/d2", limits=limits_moving_range,
              run_rules=False, parameter="MR̄"),
    ChartType("p", label="p", statistic=stat_proportion, center=center_proportion,
              sigma=sigma_binomial, sigma_method="binomial", limits=limits_p,
              run_rules=True, parameter="p̄"),
    ChartType("np", label="np", statistic=stat_count, center=center_proportion,
              sigma=sigma_binomial, sigma_method="binomial", limits=limits_np,
              run_rules=True, parameter="p̄"),
    ChartType("c", label="c", statistic=stat_count, center=center_mean_count,
              sigma=sigma_poisson_count, sigma_method="Poisson", limits=limits_c,
              run_rules=True, parameter="c̄"),
    ChartType("u", label="u", statistic=stat_rate, center=center_rate,
              sigma=sigma_poisson_rate, sigma_method="Poisson", limits=limits_u,
              run_rules=True, parameter="ū"),
)

# Which chart types a public chart name builds: (location, dispersion) pairs or one chart.
CHARTS: dict[str, tuple[str, ...]] = {
    "xbar_r": ("xbar_rbar", "r"), "xbar_s": ("xbar_sbar", "s"), "imr": ("i", "mr"),
    "p": ("p",), "np": ("np",), "c": ("c",), "u": ("u",),
}


# Time-weighted charts (EWMA, CUSUM): found by name too, but they are recursions over the
# subgroups rather than four-function chart types (see workbench.spc.timeweighted).
TIME_WEIGHTED: tuple[str, ...] = ("ewma", "cusum")


def chart_type(name: str) -> ChartType:
    """Look a chart type up by registry name, with a clear error for unknown names."""
    try:
        return CHART_TYPES[name]
    except KeyError:
        raise SPCError(f"unknown chart type {name!r}; chart types are {', '.join(CHART_TYPES)}") from None


def chart_name(name: str) -> str:
    """Normalise a public chart name (``"xbar-r"`` → ``"xbar_r"``) or raise for an unknown one."""
    key = str(name).strip().lower().replace("-", "_").replace(" ", "_")
    key = {"xbarr": "xbar_r", "xbars": "xbar_s", "i_mr": "imr", "xmr": "imr"}.get(key, key)
    if key not in CHARTS and key not in TIME_WEIGHTED:
        raise SPCError(f"unknown chart {name!r}; charts are {', '.join([*CHARTS, *TIME_WEIGHTED])} "
                       "(hyphens work too: xbar-r, xbar-s)")
    return key
