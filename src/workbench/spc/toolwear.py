"""Tool-wear control chart: an X̄ chart whose center line follows the expected wear of the tool.

A machined dimension drifts as the cutting tool wears and jumps back when the tool is changed.
Against flat X̄ limits (from within-subgroup σ̂) that designed drift is "out of control" most of
the time — statistically right and of no use on the shop floor. The tool-wear chart (Montgomery,
*Introduction to Statistical Quality Control*, the regression / tool-wear control chart) regresses
X̄ on the tool's age and draws the limits parallel to the expected wear line, resetting at each
tool change, so expected wear raises no alarm while an unexpected jump does.

Two steps:

1. :func:`tool_age` — the age of the tool at every measurement: hours spent *running* (from
   ``machine_states``) since the end of the last tool-replacing stop on that machine (from
   ``downtime_events``: reason category ``Tooling`` by default; reason codes and PLC fault codes
   can be added). Also the time that tool was fitted, which identifies it.
2. :func:`tool_wear_chart` — phase I estimates the wear model and returns a
   :class:`ToolWearChart` (a :class:`~workbench.spc.charts.ControlChart`); ``chart.apply(new)``
   judges new data against the frozen model (phase II).

The model
---------
For subgroup *i* measured on tool *k* at age *aᵢ* (hours)::

    x̄ᵢ = μ₀ + b_k · g(aᵢ) + eᵢ,   g(a) = aᵖ,   eᵢ ~ N(0, σ²/nᵢ),   b_k ~ N(b̄, τ²)

* μ₀ is the level of a fresh tool, b_k the wear rate of tool *k* — tools of one kind wear at
  different rates (the simulated plant's rates differ by a factor of about four), so the rate is a
  random effect with mean b̄ and between-tool variance τ²; p shapes the wear curve.
* σ̂ is the within-subgroup sigma, R̄/d2, as on the X̄-R chart: wear does not widen a subgroup.
* Phase I, for each exponent of a small grid (1, 1.5, 2 by default; or fixed with ``exponent=``):
  start from μ₀ of a weighted least-squares fit with one free slope per tool; then alternate
  (a) each tool's slope through μ₀, b̂_k = Σ nᵢgᵢ(x̄ᵢ − μ₀) / Σ nᵢgᵢ² with variance
  v_k = σ̂²/Σ nᵢgᵢ², and τ² from them by the method of moments of DerSimonian & Laird (1986), with
  (b) μ₀ and b̄ by generalized least squares given τ² (each tool's means have covariance
  σ̂²/nᵢ on the diagonal plus τ² g gᵀ), until μ₀ settles (a few rounds). Keep the exponent with the
  highest Gaussian likelihood of that model. Step (b) matters: with free slopes only the points near
  age 0 pin μ₀ down, and an error in μ₀ is an offset on every later prediction (on the simulated
  plant, phase II false alarms 3.2 % instead of 3.6 % with the free-slope μ₀).
* Limits are causal: point *i* is predicted from the earlier points of the *same* tool only
  (never from itself), by the empirical-Bayes posterior of that tool's line. The prior of the
  tool's level and rate βₖ = (μₖ, bₖ) is N((μ₀, b̄), C + diag(0, τ²)), C the covariance of the
  phase I estimates of (μ₀, b̄); each earlier point j updates it as one Kalman step with
  hⱼ = (1, gⱼ) and observation variance σ²/nⱼ. Point *i* is then expected at hᵢ·E[βₖ | earlier]
  with se² = σ²/nᵢ + hᵢᵀ Cov[βₖ | earlier] hᵢ, and the limits are center ± nsigmas · se.
  Taking the phase I estimates as exact (C = 0) this is the textbook random-slope prediction:
  with Aᵢ = Σⱼ nⱼgⱼ² and Bᵢ = Σⱼ nⱼgⱼ(x̄ⱼ − μ₀ − b̄gⱼ) over the earlier points j of the tool::

      E[b_k | earlier] = b̄ + τ² Bᵢ / (σ² + τ² Aᵢ)        Var[b_k | earlier] = τ² σ² / (σ² + τ² Aᵢ)
      center_i = μ₀ + gᵢ E[b_k | earlier]               se_i² = σ²/nᵢ + gᵢ² Var[b_k | earlier]

  C adds the estimation error of μ₀ and b̄ to the limits of a tool's first points and lets the
  tool's own points correct it — without C, a slightly wrong μ₀ is a small offset persisting
  through every tool's life, which the run rules 3 and 4 are built to find (on the simulated
  plant C brought the phase II alarm rate of step-free subgroups from ~4.6 % to ~3.7 %).
  The first point of a tool is judged against the plant's typical wear curve μ₀ + b̄ g(a) widened
  by the between-tool spread; later points learn the tool's own line.
* A point beyond the limits does not inform the later points of its tool: a step shift is a
  special cause, not wear — learned as wear it would tilt the rest of that tool's line towards
  itself, turning every later point of the tool into a false alarm and hiding the shift. A step
  that is there from the moment a tool is fitted (a wrong offset at the tool change) shows on the
  tool's first points; within the limits it is then partly learned as that tool's line.
* The standardized points (x̄ − center)/se are one-step prediction errors (innovations): under
  the model they are independent N(0, 1), which is what the run rules need.
* Uncertainty of τ², p and σ̂ is ignored, as on every Shewhart chart: use enough phase I data
  (``min_subgroups``, ``min_tools``).

Points that are not judged
--------------------------
A subgroup has no prediction — center, limits and se are NaN, no rule can fire on it, it ends
any run, and it is listed in :attr:`ToolWearChart.unjudged` — when its tool age is unknown
(measured before the first tool change the downtime log knows of: the age of the tool fitted
before the data starts is not known, and guessing it would put the limits anywhere) or when its
measurements span a tool change (the subgroup mixes a worn and a fresh tool). Such subgroups are
left out of the phase I fit; subgroups of unknown age still count for σ̂, mixed ones do not (their
range includes the tool change).

Which tool a point belongs to
-----------------------------
With ``tool=`` naming a column (``tool_fitted`` from :func:`tool_age`), points with the same value
share a tool. Without it a new tool starts wherever the age goes down from one measurement to the
next in chart order — which misses a change hidden between two runs of the part when the new tool
is already older than the old one was (other parts ran in between): pass ``tool=`` when the series
interleaves with other parts on the machine.

Phase II starts every tool afresh with the prior (a tool fitted in the phase I period and still in
use is not remembered), like the Shewhart charts' runs that do not straddle the boundary.

Rules
-----
The Western Electric rules 1–4 by default, as on the other charts: under the model the
standardized points are independent N(0, 1) within and across tools, so the rules' false-alarm
rates are the textbook ones (per point: rule 1 0.27 %, all four together about 1.6 %). Rule 4
(eight on one side) does not fire on the between-tool spread of the wear rate — that spread is in
the model — and on the simulated plant's step-free subgroups all four rules together fired at
their nominal rate in phase I. In phase II they fire about twice as often (rules 3 and 4 most):
the model's parameters are estimates, and what is left of their error is a small offset that
persists along a tool's life — what those rules are built to see. A longer phase I shrinks it;
``rules="rule1"`` ignores it.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from workbench.errors import SPCError
from workbench.spc import rules as rulebook
from workbench.spc._input import InputSpec, Phase, as_pandas, plain, read
from workbench.spc.charts import (
    DEFAULT_RULES,
    ControlChart,
    RuleSpec,
    Violation,
    _include_mask,
    _plain_id,
)
from workbench.spc.registry import FloatArray, Subgroups, sigma_rbar_d2

__all__ = ["DEFAULT_EXPONENTS", "TOOLING_CATEGORIES", "ToolWearChart", "WearModel", "tool_age",
           "tool_wear_chart"]

CHART_TYPE = "tool_wear"
LABEL = "X̄ (wear-adjusted)"
#: Exponents p of the wear curve g(a) = aᵖ tried in phase I: linear, the classic 3/2 flank-wear
#: law, and quadratic.
DEFAULT_EXPONENTS: tuple[float, ...] = (1.0, 1.5, 2.0)
#: Downtime reason categories whose stops replace the tool (the plant taxonomy's Tooling:
#: tool break, tool wear, tool change — each ends with a new tool or insert).
TOOLING_CATEGORIES: tuple[str, ...] = ("Tooling",)
MIN_SUBGROUPS = 20
MIN_TOOLS = 3
_HOUR_US = 3_600 * 10**6
_MISSING = np.iinfo(np.int64).min
_MAX_ROUNDS = 100


# =============================================================================================
# tool age from the downtime log and the machine states
# =============================================================================================

def _instants(frame: pd.DataFrame, column: str, role: str) -> tuple[NDArray[np.int64], bool | None]:
    """A time column as int64 µs since the epoch (UTC when tz-aware) and whether it is tz-aware.

    Microseconds, not nanoseconds: merge_asof turns unmatched integer columns into floats, and
    today's instants in µs (~1.8e15) are still exact in a float64, in ns they are not.
    """
    if column not in frame.columns:
        cols = ", ".join(map(str, frame.columns))
        raise SPCError(f"{role}: column {column!r} is not in the data (columns: {cols})")
    try:
        values = pd.to_datetime(frame[column])
    except (TypeError, ValueError) as exc:
        raise SPCError(f"{role}: column {column!r} does not hold times ({exc})") from None
    aware = values.dt.tz is not None
    if aware:
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    us = values.to_numpy(dtype="datetime64[us]").view(np.int64).copy()
    us[values.isna().to_numpy()] = _MISSING
    return us, (aware if len(values) else None)


def _machines(frame: pd.DataFrame, column: str, role: str) -> NDArray[np.object_]:
    if column not in frame.columns:
        cols = ", ".join(map(str, frame.columns))
        raise SPCError(f"{role}: machine column {column!r} is not in the data (columns: {cols})")
    col = frame[column]
    if col.isna().any():
        raise SPCError(f"{role}: machine column {column!r} is empty in {int(col.isna().sum())} row(s)")
    return col.astype(str).to_numpy(dtype=object)


def _machine_codes(*machines: NDArray[np.object_]) -> list[NDArray[np.intp]]:
    """One integer code per machine id, shared by every frame.

    merge_asof's ``by`` needs the same dtype on both sides; categoricals with different
    categories, object vs string columns and empty frames all break that — integers do not.
    """
    index = pd.Index(pd.unique(np.concatenate(machines)) if machines else [], dtype=object)
    return [index.get_indexer(pd.Index(m, dtype=object)) for m in machines]


def _run_clock(machine: NDArray[np.intp], start: NDArray[np.int64],
               end: NDArray[np.int64]) -> pd.DataFrame:
    """Cumulative running time per machine at the start of every running interval."""
    runs = pd.DataFrame({"_m": machine, "_s": start, "_d": np.maximum(end - start, 0)})
    runs = runs.sort_values(["_m", "_s"], kind="stable")
    runs["_cum"] = runs.groupby("_m", sort=False)["_d"].cumsum() - runs["_d"]
    return runs.sort_values("_s", kind="stable")


def _running_us(machine: NDArray[np.intp], t: NDArray[np.int64], runs: pd.DataFrame) -> NDArray[np.int64]:
    """Running time (µs) accumulated on each machine up to each instant, by merge_asof."""
    query = pd.DataFrame({"_m": machine, "_t": t, "_row": np.arange(len(t))}).sort_values("_t", kind="stable")
    hit = pd.merge_asof(query, runs, left_on="_t", right_on="_s", by="_m", direction="backward")
    within = np.clip(hit["_t"].to_numpy() - hit["_s"].fillna(0).to_numpy(np.int64), 0, None)
    length = hit["_d"].fillna(0).to_numpy(np.int64)
    clock = hit["_cum"].fillna(0).to_numpy(np.int64) + np.minimum(within, length)
    out = np.empty(len(t), dtype=np.int64)
    out[hit["_row"].to_numpy()] = clock
    return out


def tool_age(measurements: Any, *, downtime_events: Any, machine_states: Any, machine: str = "machine_id",
             time: str = "time", categories: Iterable[str] = TOOLING_CATEGORIES, codes: Iterable[str] = (),
             fault_codes: Iterable[str] = (), states: Iterable[str] = ("running",),
             age_column: str = "tool_age_h", tool_column: str = "tool_fitted") -> pd.DataFrame:
    """The age of the tool at every measurement, in running hours since the last tool change.

    A tool change is a downtime event whose ``reason_category`` is in ``categories``, or whose
    ``reason_code`` is in ``codes``, or whose ``fault_code`` is in ``fault_codes``; the tool is
    fitted at the end of that stop. The age is the time the machine spent in ``states`` (running)
    between then and the measurement, from ``machine_states`` — so breaks, changeovers and other
    stops do not age the tool. Computed set-based with ``merge_asof`` and cumulative sums.

    Parameters
    ----------
    measurements : pandas.DataFrame or polars.DataFrame
        One row per measurement (``quality_measurements``): a machine and a time column.
    downtime_events : pandas.DataFrame or polars.DataFrame
        The downtime log: ``machine_id``, ``time_end`` and the columns the criteria use
        (``reason_category``, ``reason_code``, ``fault_code``).
    machine_states : pandas.DataFrame or polars.DataFrame
        State intervals: ``machine_id``, ``time_start``, ``time_end``, ``state``.
    machine : str
        Machine column, the same name in all three frames.
    time : str
        Time column of the measurements (the part's completion or measuring time).
    categories : iterable of str
        Reason categories of tool-replacing stops (default: ``Tooling`` — TOOL-BRK, TOOL-WEAR,
        TOOL-CHG in the plant taxonomy). Pass ``()`` to rely on codes only.
    codes : iterable of str
        Further reason codes that replace the tool.
    fault_codes : iterable of str
        PLC fault codes that mark a tool change even when the operator left the reason blank
        (e.g. the tool-break / tool-wear / tool-life faults of the plant's fault mapping).
    states : iterable of str
        Machine states that age the tool (default: running only). Collector outages
        (``no_data``) do not count, so a machine that ran through one gets too young a tool;
        add ``"no_data"`` to count outages as running, ``"idle"`` if short stops wear the tool.
    age_column, tool_column : str
        Names of the added columns.

    Returns
    -------
    pandas.DataFrame
        The measurements (same index and row order) with ``age_column`` (float hours; NaN when no
        tool change is known before the measurement on that machine) and ``tool_column`` (the
        end of the tool-replacing stop, i.e. when the tool was fitted, in the measurements' time
        zone; NaT when unknown), which identifies the tool for :func:`tool_wear_chart`.

    Raises
    ------
    SPCError
        For a missing column or a mix of time-zone-aware and naive times.

    Examples
    --------
    >>> q = tool_age(tables["quality_measurements"], downtime_events=tables["downtime_events"],
    ...              machine_states=tables["machine_states"])                 # doctest: +SKIP
    >>> q[["subgroup_id", "tool_age_h", "tool_fitted"]]                      # doctest: +SKIP
    """
    meas = as_pandas(measurements)
    events = as_pandas(downtime_events)
    st = as_pandas(machine_states)
    categories, codes, fault_codes, states = (tuple(categories), tuple(codes), tuple(fault_codes),
                                              tuple(states))
    if not (categories or codes or fault_codes):
        raise SPCError("tool_age: no criterion for a tool change — give categories, codes or fault_codes")

    t_meas, aware_m = _instants(meas, time, "measurements")
    m_meas = _machines(meas, machine, "measurements")
    if (t_meas == _MISSING).any():
        raise SPCError(f"measurements: time column {time!r} is empty in "
                       f"{int((t_meas == _MISSING).sum())} row(s)")

    is_change = np.zeros(len(events), dtype=bool)
    for column, wanted in (("reason_category", categories), ("reason_code", codes),
                           ("fault_code", fault_codes)):
        if not wanted:
            continue
        if column not in events.columns:
            raise SPCError(f"downtime_events: column {column!r} is needed to find tool changes "
                           f"({column} in {list(wanted)}) but is not in the data")
        is_change |= events[column].astype(object).isin(wanted).to_numpy()
    changes = events.loc[is_change]
    t_change, aware_d = _instants(changes, "time_end", "downtime_events")
    m_change = _machines(changes, machine, "downtime_events")
    known = t_change != _MISSING  # a stop still open has fitted no tool yet
    t_change, m_change = t_change[known], m_change[known]

    if "state" not in st.columns:
        raise SPCError("machine_states: column 'state' is not in the data")
    running = st.loc[st["state"].astype(object).isin(states).to_numpy()]
    r_start, aware_s1 = _instants(running, "time_start", "machine_states")
    r_end, aware_s2 = _instants(running, "time_end", "machine_states")
    awareness = {a for a in (aware_m, aware_d, aware_s1, aware_s2) if a is not None}
    if len(awareness) > 1:
        raise SPCError("tool_age: some time columns are time-zone aware and some are naive; "
                       "make them all aware (UTC in storage) before computing tool ages")
    whole = (r_start != _MISSING) & (r_end != _MISSING)  # an open interval has not run yet
    m_run = _machines(running, machine, "machine_states")[whole]
    m_meas, m_change, m_run = _machine_codes(m_meas, m_change, m_run)
    runs = _run_clock(m_run, r_start[whole], r_end[whole])

    # Last tool change ending at or before each measurement, on the same machine.
    query = pd.DataFrame({"_m": m_meas, "_t": t_meas, "_row": np.arange(len(meas))}).sort_values(
        "_t", kind="stable")
    fitted = pd.DataFrame({"_m": m_change, "_fit": t_change}).sort_values("_fit", kind="stable")
    hit = pd.merge_asof(query, fitted, left_on="_t", right_on="_fit", by="_m", direction="backward")
    fit_us = np.full(len(meas), _MISSING, dtype=np.int64)
    has_fit = hit["_fit"].notna().to_numpy()
    fit_us[hit["_row"].to_numpy()[has_fit]] = hit["_fit"].to_numpy()[has_fit].astype(np.int64)

    have = fit_us != _MISSING
    age = np.full(len(meas), np.nan)
    if have.any():
        ran = (_running_us(m_meas[have], t_meas[have], runs)
               - _running_us(m_meas[have], fit_us[have], runs))
        age[have] = ran / _HOUR_US

    out = meas.copy()
    out[age_column] = age
    stamp = pd.Series(pd.to_datetime(np.where(have, fit_us, 0), unit="us"), index=meas.index).where(have)
    if aware_m:
        stamp = stamp.dt.tz_localize("UTC").dt.tz_convert(pd.to_datetime(meas[time]).dt.tz)
    out[tool_column] = stamp
    return out


# =============================================================================================
# the wear model
# =============================================================================================

@dataclass(frozen=True)
class WearModel:
    """The frozen tool-wear model: x̄ = μ_tool + b_tool · ageᵖ, one line per tool.

    A tool's level and rate (μ_tool, b_tool) are drawn from N((mu0, rate), cov + diag(0, tau2)).

    Attributes
    ----------
    mu0 : float
        Level of a fresh tool (characteristic unit).
    rate : float
        Mean wear rate b̄ across tools (unit per hourᵖ).
    tau2 : float
        Between-tool variance of the wear rate (method of moments; 0 when the tools agree).
    exponent : float
        p of the wear curve g(a) = aᵖ.
    sigma : float
        Within-subgroup sigma per measurement (R̄/d2).
    tools : int
        Tools the phase I fit rested on (0 for a model built by hand).
    cov : ((float, float), (float, float))
        Covariance matrix of the estimates of (mu0, rate); zero: take them as exact.
    """

    mu0: float
    rate: float
    tau2: float
    exponent: float
    sigma: float
    tools: int = 0
    cov: tuple[tuple[float, float], tuple[float, float]] = ((0.0, 0.0), (0.0, 0.0))

    def curve(self, age: Any) -> FloatArray:
        """g(a) = aᵖ (NaN where the age is unknown)."""
        a = np.asarray(age, dtype=float)
        return np.where(np.isfinite(a), np.abs(a) ** self.exponent, np.nan)

    def predict(self, *, age: Any, tool: Any, mean: Any, size: Any, update: Any | None = None,
                limit: float | None = None) -> tuple[FloatArray, FloatArray]:
        """Causal prediction of each subgroup mean from the earlier subgroups of its tool.

        Per tool, a Kalman filter over the tool's (level, rate) starting from the prior
        N((mu0, rate), cov + diag(0, tau2)); see the module docstring.

        Parameters
        ----------
        age : array_like of float
            Tool age of each subgroup (NaN: unknown — no prediction).
        tool : array_like
            Tool label of each subgroup; the subgroups are in time order.
        mean : array_like of float
            Subgroup means.
        size : array_like of float
            Subgroup sizes nᵢ.
        update : array_like of bool, optional
            Which subgroups may inform the later predictions of their tool (default: every
            subgroup of known age).
        limit : float, optional
            A subgroup further than ``limit`` prediction standard errors from its prediction does
            not inform the later ones (the chart passes its ``nsigmas``): a step shift or an
            outlier is a special cause, not evidence of how fast the tool wears.

        Returns
        -------
        center, se : ndarray
            Expected mean and its prediction standard error; NaN where the age is unknown.
        """
        g = self.curve(age)
        x = np.asarray(mean, dtype=float)
        n = np.asarray(size, dtype=float)
        use = np.isfinite(g) & np.isfinite(x)
        if update is not None:
            use &= np.asarray(update, dtype=bool)
        codes, _ = pd.factorize(pd.Series(list(tool), dtype=object), use_na_sentinel=True)
        s2 = self.sigma**2
        center = np.full(x.shape, np.nan)
        se = np.full(x.shape, np.nan)
        prior_mean = np.array([self.mu0, self.rate])
        prior_cov = np.array(self.cov, dtype=float) + np.diag([0.0, self.tau2])
        # Sequential on purpose: whether a point informs the next ones depends on its own
        # prediction, which depends on the points before it. A few hundred points a chart.
        state: dict[int, tuple[FloatArray, FloatArray]] = {}
        for i in np.flatnonzero(np.isfinite(g)):
            m, cov = state.get(int(codes[i]), (prior_mean, prior_cov))
            h = np.array([1.0, g[i]])
            ch = cov @ h
            spread = float(h @ ch)
            center[i] = float(h @ m)
            se[i] = np.sqrt(s2 / n[i] + spread)
            if use[i] and (limit is None or abs(x[i] - center[i]) <= limit * se[i]):
                gain = ch / (spread + s2 / n[i])
                state[int(codes[i])] = (m + gain * (x[i] - center[i]), cov - np.outer(gain, ch))
        return center, se


def _dersimonian_laird(slopes: FloatArray, variances: FloatArray) -> tuple[float, float]:
    """Between-tool variance τ² by DerSimonian & Laird's method of moments, and the mean slope.

    With weights wₖ = 1/vₖ, the fixed-effect mean b̃ = Σwₖb̂ₖ/Σwₖ and Cochran's
    Q = Σwₖ(b̂ₖ − b̃)²: τ² = max(0, (Q − (K − 1)) / (Σwₖ − Σwₖ²/Σwₖ)); the mean slope is then
    weighted by 1/(vₖ + τ²).
    """
    w = 1.0 / variances
    fixed = float(np.sum(w * slopes) / np.sum(w))
    q = float(np.sum(w * (slopes - fixed) ** 2))
    c = float(np.sum(w) - np.sum(w**2) / np.sum(w))
    tau2 = max(0.0, (q - (slopes.size - 1)) / c) if c > 0 else 0.0
    w_star = 1.0 / (variances + tau2)
    return tau2, float(np.sum(w_star * slopes) / np.sum(w_star))


@dataclass(frozen=True)
class _ToolSums:
    """Per-tool weighted sums (weights nᵢ/σ²) of 1, g, g², y, g·y, y² — all the fit needs."""

    s1: FloatArray
    sg: FloatArray
    sgg: FloatArray
    sy: FloatArray
    sgy: FloatArray
    syy: FloatArray

    @classmethod
    def of(cls, y: FloatArray, size: FloatArray, g: FloatArray, codes: NDArray[np.intp],
           sigma: float) -> _ToolSums:
        w = size / sigma**2
        k = int(codes.max()) + 1

        def total(v: FloatArray) -> FloatArray:
            return np.bincount(codes, weights=v, minlength=k)

        return cls(total(w), total(w * g), total(w * g * g), total(w * y), total(w * g * y),
                   total(w * y * y))


def _gls(s: _ToolSums, tau2: float) -> tuple[float, float, float, FloatArray]:
    """μ₀ and b̄ by generalized least squares given τ², the negative log-likelihood, and the
    covariance matrix of (μ₀, b̄).

    Each tool's means have covariance V = W⁻¹ + τ² g gᵀ (W = diag(nᵢ/σ²)), whose inverse
    W − τ² W g gᵀ W / (1 + τ² gᵀWg) (Sherman–Morrison) needs only the per-tool sums; so does
    log|V| = log|W⁻¹| + log(1 + τ² gᵀWg). Terms that do not depend on μ₀, b̄, τ² or the exponent
    are left out of the likelihood.
    """
    d = 1.0 + tau2 * s.sgg
    xtx = np.array([[np.sum(s.s1 - tau2 * s.sg**2 / d), np.sum(s.sg / d)],
                    [np.sum(s.sg / d), np.sum(s.sgg / d)]])
    xty = np.array([np.sum(s.sy - tau2 * s.sg * s.sgy / d), np.sum(s.sgy / d)])
    cov = np.linalg.inv(xtx)
    mu0, rate = cov @ xty
    r_w_r = (s.syy - 2 * mu0 * s.sy - 2 * rate * s.sgy + mu0**2 * s.s1 + 2 * mu0 * rate * s.sg
             + rate**2 * s.sgg)
    g_w_r = s.sgy - mu0 * s.sg - rate * s.sgg
    nll = 0.5 * float(np.sum(r_w_r - tau2 * g_w_r**2 / d) + np.sum(np.log(d)))
    return float(mu0), float(rate), nll, cov


def _fit(mean: FloatArray, size: FloatArray, age: FloatArray, tool: NDArray[np.object_],
         sigma: float, exponents: tuple[float, ...]) -> WearModel:
    """Phase I: μ₀, b̄ and τ² for each exponent; keep the exponent of highest likelihood.

    Per exponent: start from μ₀ of the least-squares fit with one free slope per tool, then
    alternate (a) the per-tool slopes through μ₀ and τ² by the method of moments with (b) μ₀ and
    b̄ by generalized least squares given τ², until μ₀ settles. Step (b) lets every tool inform
    μ₀ in proportion to what it knows — with free slopes only the points near age 0 pin it down,
    and an error in μ₀ shifts every prediction of every later tool.
    """
    codes = pd.factorize(pd.Series(tool, dtype=object))[0]
    k = int(codes.max()) + 1
    offset = float(np.average(mean, weights=size))  # centred sums keep y² from swamping the rest
    y = mean - offset
    rows = np.arange(y.size)
    best: tuple[float, WearModel] | None = None
    for p in exponents:
        g = age**p
        design = np.zeros((y.size, k + 1))
        design[:, 0] = 1.0
        design[rows, 1 + codes] = g
        root_n = np.sqrt(size)
        mu0 = float(np.linalg.lstsq(design * root_n[:, None], y * root_n, rcond=None)[0][0])
        sums = _ToolSums.of(y, size, g, codes, sigma)
        informative = sums.sgg > 0  # a tool seen only at age 0 says nothing about its rate
        for _ in range(_MAX_ROUNDS):
            slopes = (sums.sgy[informative] - mu0 * sums.sg[informative]) / sums.sgg[informative]
            tau2, _ = _dersimonian_laird(slopes, 1.0 / sums.sgg[informative])
            previous, (mu0, rate, nll, cov) = mu0, _gls(sums, tau2)
            if abs(mu0 - previous) <= 1e-9 * sigma:
                break
        if best is None or nll < best[0] - 1e-9:
            best = (nll, WearModel(mu0=mu0 + offset, rate=rate, tau2=tau2, exponent=float(p),
                                   sigma=float(sigma), tools=int(informative.sum()),
                                   cov=((float(cov[0, 0]), float(cov[0, 1])),
                                        (float(cov[1, 0]), float(cov[1, 1])))))
    assert best is not None  # the grid is never empty (checked by the caller)
    return best[1]


# =============================================================================================
# reading the age and the tool of each subgroup
# =============================================================================================

@dataclass(frozen=True)
class _WearInput:
    """How the chart reads age and tool, kept so ``apply`` reads new data the same way."""

    age: str
    tool: str | None


@dataclass(frozen=True, eq=False)
class _PerSubgroup:
    age: FloatArray  # NaN: not judged (unknown age or mixed tools)
    tool: NDArray[np.object_]  # tool label per subgroup (None when not judged)
    unknown: NDArray[np.bool_]  # age unknown
    mixed: NDArray[np.bool_]  # measurements span a tool change


def _require_age(df: pd.DataFrame, age: str) -> None:
    if age not in df.columns:
        cols = ", ".join(map(str, df.columns))
        raise SPCError(f"age column {age!r} is not in the data (columns: {cols}); add the tool age "
                       "with spc.toolwear.tool_age(measurements, downtime_events=..., machine_states=...)")


def _per_subgroup(df: pd.DataFrame, sub: Subgroups, source: InputSpec, wear: _WearInput) -> _PerSubgroup:
    _require_age(df, wear.age)
    raw = df[wear.age]
    age = np.array(pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float, na_value=np.nan))
    bad = np.flatnonzero(np.isnan(age) & raw.notna().to_numpy())
    if bad.size:
        raise SPCError(f"age column {wear.age!r} is not numeric at row {df.index[bad[0]]!r}: "
                       f"{raw.iloc[bad[0]]!r}")
    if (age < 0).any():
        i = int(np.flatnonzero(age < 0)[0])
        raise SPCError(f"age column {wear.age!r} is negative at row {df.index[i]!r} ({age[i]:g}): "
                       "a tool age counts hours since the tool was fitted")
    age[~np.isfinite(age)] = np.nan

    ids = df[source.subgroup].astype(object).map(plain)  # type: ignore[index]
    position = pd.Index(sub.ids).get_indexer(ids)
    # Rows in chart order (subgroup, then time or appearance): the order tool changes are read in.
    within = np.arange(len(df))
    if source.time is not None:
        within[np.argsort(df[source.time].to_numpy(), kind="stable")] = np.arange(len(df))
    order = np.lexsort((np.arange(len(df)), within, position))
    known = np.isfinite(age)

    if wear.tool is not None:
        if wear.tool not in df.columns:
            cols = ", ".join(map(str, df.columns))
            raise SPCError(f"tool column {wear.tool!r} is not in the data (columns: {cols})")
        tool_col = df[wear.tool]
        missing = np.flatnonzero(known & tool_col.isna().to_numpy())
        if missing.size:
            raise SPCError(f"tool column {wear.tool!r} is empty at row {df.index[missing[0]]!r} "
                           "although its tool age is known")
        labels: NDArray[np.object_] | None = tool_col.astype(object).map(plain).to_numpy(dtype=object)
        codes = np.where(known, pd.factorize(pd.Series(labels, dtype=object))[0], -1)
    else:
        # A new tool wherever the age goes down (or becomes known) from one row to the next.
        a = age[order]
        prev = np.r_[np.nan, a[:-1]]
        new = np.isfinite(a) & ~(prev <= a)
        codes = np.empty(len(df), dtype=np.int64)
        codes[order] = np.where(np.isfinite(a), np.cumsum(new) - 1, -1)
        labels = None  # named "tool 1", "tool 2" … below

    frame = pd.DataFrame({"pos": position, "age": age, "unknown": ~known, "code": codes})
    grouped = frame.groupby("pos", sort=True)
    m = len(sub)
    unknown = grouped["unknown"].any().reindex(range(m), fill_value=True).to_numpy(dtype=bool)
    lo = grouped["code"].min().reindex(range(m)).to_numpy()
    hi = grouped["code"].max().reindex(range(m)).to_numpy()
    mixed = ~unknown & (lo != hi)
    mean_age = grouped["age"].mean().reindex(range(m)).to_numpy(dtype=float)
    judged = ~unknown & ~mixed
    first_row = pd.Series(np.arange(len(df))).groupby(position).first().reindex(range(m)).to_numpy()
    tool = np.full(m, None, dtype=object)
    for i in np.flatnonzero(judged):
        tool[i] = labels[int(first_row[i])] if labels is not None else f"tool {int(lo[i]) + 1}"
    return _PerSubgroup(age=np.where(judged, mean_age, np.nan), tool=tool, unknown=unknown, mixed=mixed)


# =============================================================================================
# the chart
# =============================================================================================

@dataclass(frozen=True, eq=False, kw_only=True)
class ToolWearChart(ControlChart):
    """A tool-wear (wear-adjusted X̄) chart: a :class:`ControlChart` plus the frozen wear model.

    ``center``, ``lcl``, ``ucl`` and ``se`` are per-point arrays (the expected mean at that tool
    age and its prediction limits); ``parameter`` is μ₀, the fresh-tool level; ``sigma`` is the
    within-subgroup σ̂ (R̄/d2).

    Attributes
    ----------
    model : WearModel
        μ₀, mean wear rate, between-tool variance, exponent and σ̂ — what phase II reuses.
    ages : ndarray
        Tool age of each point (NaN where the point is not judged).
    tools : ndarray of object
        Tool label of each point (None where it is not judged).
    unjudged : tuple
        Subgroup ids without a prediction: tool age unknown, or measurements spanning a tool
        change.
    """

    model: WearModel
    ages: FloatArray
    tools: NDArray[np.object_]
    unjudged: tuple[Hashable, ...] = ()
    wear_input: _WearInput | None = None

    def to_frame(self) -> pd.DataFrame:
        """One row per point, as :meth:`ControlChart.to_frame` plus ``age`` and ``tool``."""
        return super().to_frame().assign(age=self.ages, tool=self.tools)

    def summary(self) -> dict[str, Any]:
        """As :meth:`ControlChart.summary` plus the wear model and the unjudged subgroups."""
        out = super().summary()
        m = self.model
        out["model"] = {"mu0": m.mu0, "rate": m.rate, "tau2": m.tau2, "exponent": m.exponent,
                        "sigma": m.sigma, "tools": m.tools}
        out["unjudged"] = [_plain_id(s) for s in self.unjudged]
        return out

    def apply(self, new_data: Any) -> ToolWearChart:
        """Phase II: judge new data against the frozen wear model.

        Parameters
        ----------
        new_data : pandas.DataFrame or polars.DataFrame
            New measurements with the same columns as the phase I data (value, subgroup, the
            age column and, if used, the tool and time columns).

        Returns
        -------
        ToolWearChart
            Phase II chart: each tool's rate learned afresh from its points in ``new_data``,
            rules evaluated on the new points alone.
        """
        if self.source is None or self.wear_input is None:
            raise SPCError("this chart does not know how its data was read; build it with "
                           "tool_wear_chart() to use apply()")
        df = as_pandas(new_data)
        sub = read(df, self.source, phase="II")
        per = _per_subgroup(df, sub, self.source, self.wear_input)
        return _evaluate(sub, per, self.model, nsigmas=self.nsigmas, rules=self.requested_rules,
                         phase="II", excluded=(), update=np.isfinite(per.age), source=self.source,
                         wear=self.wear_input)


def _decimals(se: FloatArray) -> int:
    """Decimals that show the expected value to about a tenth of its standard error."""
    finite = se[np.isfinite(se) & (se > 0)]
    if not finite.size:
        return 3
    return int(max(0, -np.floor(np.log10(float(np.median(finite)))) + 1))


def _evaluate(sub: Subgroups, per: _PerSubgroup, model: WearModel, *, nsigmas: float, rules: RuleSpec,
              phase: Phase, excluded: tuple[Hashable, ...], update: NDArray[np.bool_],
              source: InputSpec, wear: _WearInput) -> ToolWearChart:
    assert sub.values is not None  # read() of a subgrouped source always fills the values
    mean = np.nanmean(sub.values, axis=1)
    center, se = model.predict(age=per.age, tool=per.tool, mean=mean, size=sub.sizes, update=update,
                               limit=nsigmas)
    z = (mean - center) / se
    names = rulebook.resolve(rules)
    digits = _decimals(se)
    found: list[Violation] = []
    for name in names:
        text = rulebook.describe(name)
        for i in rulebook.RULES[name](z, lower=None, limit=nsigmas):
            i = int(i)
            sid = sub.ids[i]
            found.append(Violation(
                rule=name, index=i, subgroup=sid, chart=LABEL,
                message=(f"{LABEL} chart, subgroup {sid!r}: {text} (expected {center[i]:.{digits}f} "
                         f"at {per.age[i]:.1f} run-hours on this tool, measured {mean[i]:.{digits}f})")))

    def frozen(values: np.ndarray) -> np.ndarray:
        out = np.array(values, copy=True)
        out.setflags(write=False)
        return out

    unjudged = tuple(plain(s) for s in sub.ids[~np.isfinite(per.age)])
    return ToolWearChart(
        chart_type=CHART_TYPE, label=LABEL, subgroups=frozen(sub.ids), statistic=frozen(mean),
        sizes=frozen(sub.sizes), center=frozen(center), lcl=frozen(center - nsigmas * se),
        ucl=frozen(center + nsigmas * se), se=frozen(se), sigma=model.sigma, sigma_method="R̄/d2",
        parameter=model.mu0, nsigmas=float(nsigmas), phase=phase, rules=names,
        violations=tuple(found), excluded=excluded, one_sided=frozen(np.zeros(len(sub), dtype=bool)),
        requested_rules=rules, source=source, model=model, ages=frozen(per.age), tools=frozen(per.tool),
        unjudged=unjudged, wear_input=wear)


def _exponents(exponent: float | Sequence[float] | None) -> tuple[float, ...]:
    if exponent is None:
        return DEFAULT_EXPONENTS
    grid = (float(exponent),) if isinstance(exponent, (int, float)) else tuple(float(p) for p in exponent)
    if not grid or not all(np.isfinite(p) and p > 0 for p in grid):
        raise SPCError(f"exponent must be a positive number or a non-empty sequence of them, "
                       f"got {exponent!r}")
    return grid


def tool_wear_chart(data: Any, *, value: str, subgroup: str, age: str, tool: str | None = None,
                    time: str | None = None, exponent: float | Sequence[float] | None = None,
                    rules: RuleSpec = DEFAULT_RULES, nsigmas: float = 3.0,
                    exclude: Iterable[Hashable] = (), min_subgroups: int = MIN_SUBGROUPS,
                    min_tools: int = MIN_TOOLS) -> ToolWearChart:
    """Tool-wear chart (phase I): X̄ against the expected wear line of each tool.

    Parameters
    ----------
    data : pandas.DataFrame or polars.DataFrame
        One row per measurement, with the tool age (see :func:`tool_age`).
    value : str
        Measurement column.
    subgroup : str
        Subgroup id column (at least 2 measurements per subgroup).
    age : str
        Tool age column in hours (``tool_age_h``); NaN where unknown.
    tool : str, optional
        Column identifying the tool (``tool_fitted``). Default: a new tool wherever the age goes
        down in chart order (see the module docstring for when that misses a change).
    time : str, optional
        Column ordering the subgroups by their earliest time (default: order of appearance).
    exponent : float or sequence of float, optional
        p of the wear curve ageᵖ, or the grid to choose it from by likelihood
        (default :data:`DEFAULT_EXPONENTS`).
    rules : str or sequence of str
        Rule set or rule names (default: Western Electric 1–4; see the module docstring).
    nsigmas : float
        Width of the limits in prediction standard errors.
    exclude : iterable
        Subgroup ids left out of the phase I estimates and of their tool's rate updates (they are
        still plotted and judged).
    min_subgroups : int
        Fewest subgroups of known tool age the estimates may rest on.
    min_tools : int
        Fewest tools with at least two such subgroups (at least 2: the between-tool spread of
        the wear rate needs two tools).

    Returns
    -------
    ToolWearChart
        Per-point center line (expected mean at that tool age), limits and standard errors, the
        frozen :class:`WearModel`, violations, and ``apply`` for phase II.

    Raises
    ------
    SPCError
        Missing or invalid columns (the age column above all), too few subgroups or tools,
        or a zero within-subgroup sigma.

    Examples
    --------
    >>> q = tool_age(qm, downtime_events=dt, machine_states=ms)                      # doctest: +SKIP
    >>> chart = tool_wear_chart(q[base], value="value", subgroup="subgroup_id", age="tool_age_h",
    ...                         tool="tool_fitted", time="time")                     # doctest: +SKIP
    >>> chart.model.exponent, chart.apply(q[later]).violations                        # doctest: +SKIP
    """
    if not nsigmas > 0:
        raise SPCError(f"nsigmas must be positive (got {nsigmas})")
    if min_tools < 2:
        raise SPCError(f"min_tools must be at least 2 (got {min_tools}): the spread of the wear rate "
                       "between tools cannot be estimated from one tool")
    grid = _exponents(exponent)
    rulebook.resolve(rules)  # fail on a bad rule set before any work
    df = as_pandas(data)
    source = InputSpec("subgrouped", CHART_TYPE, value, subgroup=subgroup, time=time)
    wear = _WearInput(age=age, tool=tool)
    _require_age(df, age)  # before read(): the most likely mistake gets the clearest message
    sub = read(df, source, phase="I")
    per = _per_subgroup(df, sub, source, wear)

    include = _include_mask(sub, exclude)
    fit = include & np.isfinite(per.age)
    used = int(fit.sum())
    if used < min_subgroups:
        why = (f" ({int(per.unknown.sum())} of unknown tool age, {int(per.mixed.sum())} spanning a "
               f"tool change, {int((~include).sum())} excluded)" if used < len(sub) else "")
        raise SPCError(f"too few subgroups to estimate the {LABEL} chart: {used} of {len(sub)} have a "
                       f"known tool age{why}, at least {min_subgroups} are needed "
                       "(pass min_subgroups= to accept fewer)")
    tools_fit = pd.Series(per.tool[fit], dtype=object).value_counts()
    n_tools = int((tools_fit >= 2).sum())
    if n_tools < min_tools:
        raise SPCError(f"too few tools to estimate the {LABEL} chart: {n_tools} tool(s) have at least "
                       f"2 subgroups of known age, at least {min_tools} are needed to estimate how much "
                       "the wear rate varies from tool to tool (pass min_tools= to accept fewer)")
    sigma = sigma_rbar_d2(sub, include & ~per.mixed)
    if not np.isfinite(sigma) or sigma <= 0:
        raise SPCError(f"cannot set {LABEL} chart limits: the within-subgroup sigma is {sigma:g} "
                       "(R̄/d2) — every included subgroup shows no variation")
    assert sub.values is not None
    mean = np.nanmean(sub.values, axis=1)
    model = _fit(mean[fit], sub.sizes[fit], per.age[fit], per.tool[fit], sigma, grid)
    excluded = tuple(plain(s) for s in sub.ids[~include])
    return _evaluate(sub, per, model, nsigmas=nsigmas, rules=rules, phase="I", excluded=excluded,
                     update=fit, source=source, wear=wear)
