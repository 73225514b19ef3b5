"""Yield forecast: daily good output and yield per line for the next days, with intervals.

What is forecast
----------------
For each line and each production day of the horizon (7 days by default): ``produced`` (parts
completed), ``yield`` (good / produced) and ``good`` = produced × yield, each with a prediction
interval. The production day is the plant-local date the shift starts — the one definition of
:func:`workbench.oee.production_ledger`, reused here. Days the calendar does not schedule
(weekends, holidays, whole no-demand days) are part of the series with 0 output and are forecast
as exactly 0 (interval 0–0, yield undefined): nobody works them.

The model
---------
1. **Level (Prophet)**, one per line and target: the line's *rate*, parts per planned busy minute
   (scheduled minutes minus planned stops: breaks, no demand, preventive maintenance), and its
   yield, modelled as the log of the scrap rate (see ``_fit_core``). Trend plus weekly seasonality;
   yearly only with two years of data. Non-working days are masked (left out of the series), not
   modelled as holidays: the calendar says they are 0. The produced forecast is rate × the day's
   planned busy minutes, so a planned no-demand shift or a PM window lowers the forecast before any
   model sees it.
2. **Residual (gradient boosting)**: a ``HistGradientBoostingRegressor`` per target (absolute loss),
   pooled over lines, learns the relative correction of the produced forecast and the additive
   correction of the yield forecast from (pseudo-origin, horizon) rows of the history, each row's
   features computed as at its own pseudo-origin. Volume features (:data:`VOLUME_FEATURES`): the
   released work-order queue laid onto the coming days' planned busy time at each machine's recent
   efficiency (part mix → ideal cycle times from ``part_rates``, machines available, changeovers),
   the share of the day that queue covers, and the horizon. Yield features
   (:data:`YIELD_FEATURES`): the recent yield and how far the last day and the last three days were
   below it (a bad material lot lasts a few days), and the horizon. :data:`FEATURE_DOCS` says how
   each is known at the origin. Planned stops, scheduled minutes, no-demand time, orders due and
   the last day's rate were tried as features as well (they are in :func:`features_at`): on three
   simulated plants (seeds 3, 5, 11; 13 weeks) they made the backtest worse (relative MASE of good
   output 0.469 / 0.568 / 0.661 instead of 0.464 / 0.548 / 0.648; Prophet alone 0.483 / 0.576 /
   0.689), as the planned busy time already carries them into the level. The yield stage helps
   little (0.645 / 0.756 / 0.690 against 0.647 / 0.774 / 0.695 for Prophet alone).
   Tool changes due (the issue's example reason "3 tool changes due on M05, M06") were looked at
   as a yield reason: on the demo plant every line-day has tool changes (1–7 per line), and the
   line-day yield does not follow their number (Spearman ρ −0.16, 0.19, −0.06 on lines L1–L3 over
   22 days; p 0.40–0.79), so no recommendation names them — a worn tool shows per machine-hour,
   where the scrap detector ranks it among an anomaly's causes (:mod:`workbench.ml.scrap`).
   Why produced and yield rather than good directly: output follows the plan, yield follows the
   process and material; modelled apart, good = produced × yield never exceeds produced and a
   no-demand shift does not read as a yield loss.
3. **Intervals: normalized split conformal on rolling-origin residuals.** Prophet's own interval
   is not used (it ignores the boosting stage). :meth:`YieldForecaster.fit` runs a small
   rolling-origin backtest over the last weeks (``calibration_origins``) and keeps the
   out-of-sample residuals: relative for produced and good (actual / forecast − 1, so the interval
   scales with the planned time), absolute for yield, each divided by its line's typical in-sample
   residual (so a steady line gets a narrow interval and an erratic one a wide one), pooled over
   lines and horizons. The interval is the forecast moved by their finite-sample conformal
   quantiles (and always contains the forecast). :func:`backtest` checks the empirical coverage,
   each origin using only the residuals already known at it.

Leakage
-------
Everything about a forecast day must be known at the origin (the start of the day after the last
history day): :mod:`workbench.ml.forecast_data`, where the history, the planned work and the
features are built, says how each input is cut at it.

Gaps
----
A scheduled line-day (planned busy time > 0) with no production at all is treated as *missing*
(a collector outage or data not loaded, not a day of zero output): it is left out of training and
of scoring. Collector outages inside a day cannot be told from the counts and stay in the data
(the ground truth counts the same way). A line without any production in the history is not
forecast (:attr:`YieldForecast.skipped`), nor one with fewer than :data:`MIN_LINE_DAYS` worked
days with data. Fewer than :data:`MIN_HISTORY_DAYS` days of history raise
:class:`~workbench.errors.MLError`. The history runs from the first to the last day with
production: that last day is the forecast origin.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from workbench.errors import MLError

# The inputs and features live in forecast_data; they are re-exported here, so that
# ``from workbench.ml.forecast import daily_history`` and ``forecast.PlannedWork`` keep working
# (its other helpers through __getattr__ at the end).
from workbench.ml import forecast_data as _data
from workbench.ml.forecast_data import (
    FEATURE_DOCS,
    MIN_HISTORY_DAYS,
    RECENT_DAYS,
    PlannedWork,
    _feature_table,
    _Grid,
    _grid,
    _ratio,
    daily_history,
    features_at,
    from_tables,
    planned_work,
)

__all__ = [
    "FEATURE_DOCS", "MIN_GBM_ROWS", "MIN_HISTORY_DAYS", "MIN_LINE_DAYS", "MIN_TRAIN_DAYS", "NOT_SHOWN",
    "RECENT_DAYS", "SCRAP_FLOOR", "TARGETS", "VOLUME_FEATURES", "YIELD_FEATURES", "BacktestResult",
    "PlannedWork", "YieldForecast", "YieldForecaster", "backtest", "daily_history", "features_at",
    "from_tables", "planned_work", "recommendations",
]

#: Days of history a calibration or backtest model is trained on at least.
MIN_TRAIN_DAYS = 14
#: Worked days with data a line needs before it is forecast.
MIN_LINE_DAYS = 8
#: Scrap rate floor of the log-scrap yield model (a day without rejects is a 0.01 % scrap day).
SCRAP_FLOOR = 1e-4
#: Fewer GBM training rows than this: the residual stage is skipped (Prophet only).
MIN_GBM_ROWS = 40

VOLUME_FEATURES: tuple[str, ...] = ("horizon", "plan_ratio", "known_share", "changeovers")
YIELD_FEATURES: tuple[str, ...] = ("horizon", "yield_recent", "last_yield_dev", "yield3_dev")
TARGETS: tuple[str, ...] = ("good", "produced", "yield")
NOT_SHOWN = "forecast not better than last week's numbers; not shown"


# ---------------------------------------------------------------------------------------------
# one model at one origin: Prophet levels per line + boosted residuals


def _prophet_class() -> Any:
    try:
        from cmdstanpy.utils import get_logger
        from prophet import Prophet
    except ImportError as exc:  # pragma: no cover - prophet is a dependency
        raise MLError(f"the yield forecast needs prophet ({exc})") from None
    # cmdstanpy logs two INFO lines per fit and prophet a few more: keep warnings only. get_logger()
    # first, as it sets the logger up (level DEBUG) on its first call.
    get_logger().setLevel(logging.WARNING)
    for name in ("prophet", "prophet.models", "prophet.plot"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return Prophet


@dataclass
class _Core:
    origin: int
    rate: np.ndarray  # [L, N] Prophet rate (parts per planned busy minute), NaN where not fitted
    yld: np.ndarray  # [L, N] Prophet yield
    gbm_volume: HistGradientBoostingRegressor | None
    gbm_yield: HistGradientBoostingRegressor | None
    n_rows: int
    spread: dict[str, np.ndarray]  # target -> [L] typical in-sample residual of the Prophet level


def _prophet_path(ds: pd.DatetimeIndex, y: np.ndarray, future: pd.DatetimeIndex,
                  est: YieldForecaster) -> np.ndarray:
    prophet = _prophet_class()
    span = (ds.max() - ds.min()).days
    model = prophet(growth="linear", weekly_seasonality=True, daily_seasonality=False,
                    yearly_seasonality=span >= 730, changepoint_prior_scale=est.changepoint_prior_scale,
                    seasonality_prior_scale=est.seasonality_prior_scale, uncertainty_samples=0)
    # iter: L-BFGS on a near-perfect series (noise -> 0) crawls for thousands of iterations (3 s a fit
    # instead of 0.1 s) to the same forecast; 1000 is far more than noisy plant data needs.
    with warnings.catch_warnings():  # prophet's own pandas deprecations are not the user's business
        warnings.filterwarnings("ignore", module=r"prophet\.")
        model.fit(pd.DataFrame({"ds": ds, "y": y}), seed=int(est.random_state or 0), iter=1000)
        return model.predict(pd.DataFrame({"ds": future}))["yhat"].to_numpy()


def _gbm(est: YieldForecaster) -> HistGradientBoostingRegressor:
    # Absolute loss: the score is MAE, and bad-lot days make the residuals heavy-tailed (with squared
    # loss the yield stage chased them and made the forecast worse than Prophet alone).
    return HistGradientBoostingRegressor(loss="absolute_error", max_iter=est.max_iter,
                                         learning_rate=est.learning_rate,
                                         max_depth=est.max_depth, min_samples_leaf=est.min_samples_leaf,
                                         l2_regularization=1.0, random_state=est.random_state)


def _fit_core(g: _Grid, feats: pd.DataFrame, t: int, est: YieldForecaster) -> _Core:
    end = min(t + est.horizon, len(g.days) - 1)
    rate, yld = np.full((len(g.lines), len(g.days)), np.nan), np.full((len(g.lines), len(g.days)), np.nan)
    future = g.days[g.first: end + 1]
    for li, line in enumerate(g.lines):
        if line in g.skipped:
            continue
        idx = np.arange(g.first, t + 1)
        ok = g.ok_l[li, idx] & (g.pbm_l[li, idx] > 0)
        if ok.sum() < MIN_LINE_DAYS:
            continue  # not enough of this line yet: no forecast for it from this origin
        i = idx[ok]
        rate[li, g.first: end + 1] = np.maximum(
            _prophet_path(g.days[i], g.prod_l[li, i] / g.pbm_l[li, i], future, est), 0.0)
        i = i[g.prod_l[li, i] > 0]
        # Yield as the log of the scrap rate: scrap rates are multiplicative and a bad-lot week pulls a
        # log level (and its trend) far less than a yield level (relative MASE 0.68-0.82 instead of
        # 0.93-1.29 on three simulated plants).
        scrap = np.clip(1.0 - g.good_l[li, i] / g.prod_l[li, i], SCRAP_FLOOR, 1.0)
        level = _prophet_path(g.days[i], np.log(scrap), future, est)
        yld[li, g.first: end + 1] = np.clip(1.0 - np.exp(level), 0.0, 1.0)
    core = _Core(origin=t, rate=rate, yld=yld, gbm_volume=None, gbm_yield=None, n_rows=0,
                 spread=_spreads(g, rate, yld, t))
    if not est.use_gbm or feats.empty:
        return core
    rows = feats[(feats["origin"] < t) & (feats["d"] <= t)]
    li = rows["line"].map({ln: i for i, ln in enumerate(g.lines)}).to_numpy(int)
    d = rows["d"].to_numpy(int)
    pbm, prod, good = g.pbm_l[li, d], g.prod_l[li, d], g.good_l[li, d]
    base = rate[li, d] * pbm
    use = g.ok_l[li, d] & (pbm > 0) & np.isfinite(base) & (base > 0)
    if use.sum() < MIN_GBM_ROWS:
        return core
    weight = pbm[use] / pbm[use].mean()
    with threadpool_limits(1):  # two shared cores: no OpenMP fan-out
        vol = _gbm(est).fit(rows.loc[use, list(VOLUME_FEATURES)].to_numpy(float),
                            np.clip(prod[use] / base[use] - 1.0, -1.0, 1.0), sample_weight=weight)
        uy = use & (prod > 0) & np.isfinite(yld[li, d])
        yg = None
        if uy.sum() >= MIN_GBM_ROWS:
            yg = _gbm(est).fit(rows.loc[uy, list(YIELD_FEATURES)].to_numpy(float),
                               good[uy] / prod[uy] - yld[li, d][uy], sample_weight=pbm[uy] / pbm[uy].mean())
    core.gbm_volume, core.gbm_yield, core.n_rows = vol, yg, int(use.sum())
    return core


def _spreads(g: _Grid, rate: np.ndarray, yld: np.ndarray, t: int) -> dict[str, np.ndarray]:
    """Each line's median absolute in-sample residual of the Prophet level (relative for produced and
    good, absolute for yield), up to the origin. The conformal residuals are divided by it, so a
    steady line gets a narrow interval and an erratic one a wide one (normalized conformal)."""
    out = {k: np.full(len(g.lines), np.nan) for k in TARGETS}
    idx = np.arange(g.first, t + 1)
    for li in range(len(g.lines)):
        ok = g.ok_l[li, idx] & (g.pbm_l[li, idx] > 0) & np.isfinite(rate[li, idx]) & (rate[li, idx] > 0)
        i = idx[ok]
        if len(i) == 0:
            continue
        base = rate[li, i] * g.pbm_l[li, i]
        out["produced"][li] = np.median(np.abs(g.prod_l[li, i] / base - 1.0))
        out["good"][li] = np.median(np.abs(g.good_l[li, i] / (base * yld[li, i]) - 1.0))
        p = g.prod_l[li, i] > 0
        out["yield"][li] = np.median(np.abs(g.good_l[li, i][p] / g.prod_l[li, i][p] - yld[li, i][p]))
    for k in TARGETS:  # a perfectly flat in-sample fit must not give a zero-width interval
        typical = np.nanmedian(out[k]) if np.isfinite(out[k]).any() else 1.0
        out[k] = np.where(np.isfinite(out[k]), np.maximum(out[k], 0.1 * typical), typical)
        out[k] = np.maximum(out[k], 1e-6)
    return out


def _predict_core(g: _Grid, core: _Core, rows: pd.DataFrame) -> pd.DataFrame:
    li = rows["line"].map({ln: i for i, ln in enumerate(g.lines)}).to_numpy(int)
    d = rows["d"].to_numpy(int)
    pbm = g.pbm_l[li, d]
    produced_p = core.rate[li, d] * pbm
    yield_p = core.yld[li, d]
    produced, yld = produced_p.copy(), yield_p.copy()
    if core.gbm_volume is not None and len(rows):
        with threadpool_limits(1):
            corr = core.gbm_volume.predict(rows[list(VOLUME_FEATURES)].to_numpy(float))
        produced = produced_p * np.maximum(1.0 + corr, 0.0)
    if core.gbm_yield is not None and len(rows):
        with threadpool_limits(1):
            corr = core.gbm_yield.predict(rows[list(YIELD_FEATURES)].to_numpy(float))
        yld = np.clip(yield_p + corr, 0.0, 1.0)
    off = pbm <= 0  # not scheduled: nobody works, nothing is made
    out = pd.DataFrame({"line": rows["line"].to_numpy(), "origin": core.origin, "d": d,
                        "horizon": rows["horizon"].to_numpy(), "scheduled": ~off, "planned_busy_min": pbm,
                        "fitted": np.isfinite(core.rate[li, d])})
    for k in TARGETS:
        out["spread_" + k] = core.spread[k][li]
    for name, p, y in (("", produced, yld), ("_prophet", produced_p, yield_p)):
        out["produced" + name] = np.where(off, 0.0, p)
        out["yield" + name] = np.where(off, np.nan, y)
        out["good" + name] = np.where(off, 0.0, p * y)
    return out


# ---------------------------------------------------------------------------------------------
# rolling origins, seasonal naive, conformal intervals and metrics


def _actuals(g: _Grid, frame: pd.DataFrame) -> pd.DataFrame:
    li = frame["line"].map({ln: i for i, ln in enumerate(g.lines)}).to_numpy(int)
    d = frame["d"].to_numpy(int)
    known = (d <= g.last) & g.ok_l[li, np.minimum(d, len(g.days) - 1)]
    prod = np.where(known, g.prod_l[li, d], np.nan)
    good = np.where(known, g.good_l[li, d], np.nan)
    frame = frame.assign(actual_produced=prod, actual_good=good,
                         actual_yield=np.where(prod > 0, good / np.where(prod > 0, prod, 1.0), np.nan))
    # Seasonal naive: the same weekday last week (or the latest earlier one with data), known at origin.
    t = frame["origin"].to_numpy(int)
    sn = {k: np.full(len(frame), np.nan) for k in TARGETS}
    for i in range(len(frame)):
        found = {k: False for k in TARGETS}
        j = d[i] - 7
        while j >= g.first and not all(found.values()):
            if j <= t[i] and g.ok_l[li[i], j]:
                p, gd = g.prod_l[li[i], j], g.good_l[li[i], j]
                if not found["produced"]:
                    sn["produced"][i], sn["good"][i] = p, gd
                    found["produced"] = found["good"] = True
                if not found["yield"] and p > 0:
                    sn["yield"][i], found["yield"] = gd / p, True
            j -= 7
    for k in TARGETS:
        frame["naive_" + k] = sn[k]
    # Hyndman & Koehler's scale: in-sample MAE of the seasonal naive on the training days up to the origin.
    for k in TARGETS:
        frame["scale_" + k] = _hyndman_scale(g, li, t, k)
    return frame


def _hyndman_scale(g: _Grid, li: np.ndarray, t: np.ndarray, target: str) -> np.ndarray:
    n = len(g.days)
    out = np.full(len(li), np.nan)
    for line in np.unique(li):
        if target == "yield":
            with np.errstate(divide="ignore", invalid="ignore"):
                y = np.where(g.prod_l[line] > 0, g.good_l[line] / g.prod_l[line], np.nan)
            valid = g.ok_l[line] & (g.prod_l[line] > 0)
        else:
            y = g.prod_l[line] if target == "produced" else g.good_l[line]
            valid = g.ok_l[line].copy()
        diff = np.zeros(n)
        both = np.zeros(n, dtype=bool)
        both[7:] = valid[7:] & valid[:-7]
        diff[7:] = np.where(both[7:], np.abs(np.nan_to_num(y[7:]) - np.nan_to_num(y[:-7])), 0.0)
        cs, cn = np.cumsum(diff), np.cumsum(both)
        sel = li == line
        tt = t[sel]
        with np.errstate(divide="ignore", invalid="ignore"):
            out[sel] = np.where(cn[tt] > 0, cs[tt] / cn[tt], np.nan)
    return out


def _rolling(g: _Grid, feats: pd.DataFrame, origins: Sequence[int], est: YieldForecaster) -> pd.DataFrame:
    frames = []
    for t in origins:
        rows = feats[feats["origin"] == t]
        if rows.empty:
            continue
        frames.append(_predict_core(g, _fit_core(g, feats, t, est), rows))
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames, ignore_index=True)
    out = out[~out["line"].isin(g.skipped) & out["fitted"]].drop(columns="fitted")
    return _actuals(g, out.reset_index(drop=True))


def _residuals(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Normalized out-of-sample residuals: relative error / line spread (produced, good), absolute
    error / line spread (yield), scheduled line-days with actuals only."""
    s = frame[frame["scheduled"] & frame["actual_produced"].notna()]
    out = {}
    for k in ("produced", "good"):
        ok = s[k] > 0
        out[k] = ((s.loc[ok, "actual_" + k] / s.loc[ok, k] - 1.0) / s.loc[ok, "spread_" + k]).to_numpy()
    ok = s["actual_yield"].notna() & s["yield"].notna()
    out["yield"] = ((s.loc[ok, "actual_yield"] - s.loc[ok, "yield"]) / s.loc[ok, "spread_yield"]).to_numpy()
    return out


def _conformal(res: np.ndarray, level: float) -> tuple[float, float]:
    """Split-conformal quantiles of the residuals for a central interval of ``level`` (each tail
    (1 - level) / 2, with the finite-sample (n + 1) correction; the extremes when n is small)."""
    r = np.sort(res[np.isfinite(res)])
    n = len(r)
    if n == 0:
        return np.nan, np.nan
    a = (1.0 - level) / 2.0
    k_lo = math.floor((n + 1) * a + 1e-9)  # (1 - 0.8) / 2 is 0.0999..., not 0.1
    k_hi = math.ceil((n + 1) * (1.0 - a) - 1e-9)
    # An interval always contains its own forecast (a biased calibration window could otherwise give
    # 400-410 around 420).
    return min(float(r[max(k_lo, 1) - 1]), 0.0), max(float(r[min(k_hi, n) - 1]), 0.0)


def _apply_intervals(frame: pd.DataFrame, q: Mapping[str, tuple[float, float]]) -> pd.DataFrame:
    f = frame.copy()
    on = f["scheduled"].to_numpy()
    for k in ("produced", "good"):
        lo, hi = q.get(k, (np.nan, np.nan))
        f[k + "_low"] = np.where(on, np.maximum(f[k] * (1.0 + lo * f["spread_" + k]), 0.0), 0.0)
        f[k + "_high"] = np.where(on, f[k] * (1.0 + hi * f["spread_" + k]), 0.0)
    # Good parts are at most the parts produced: where the two separately calibrated ranges
    # disagree, the good range ends where the produced one does (its upper tail can then miss no
    # more often than the produced range's does).
    f["good_high"] = np.maximum(np.minimum(f["good_high"], f["produced_high"]), f["good"].where(on, 0.0))
    lo, hi = q.get("yield", (np.nan, np.nan))
    f["yield_low"] = np.where(on, np.clip(f["yield"] + lo * f["spread_yield"], 0.0, 1.0), np.nan)
    f["yield_high"] = np.where(on, np.clip(f["yield"] + hi * f["spread_yield"], 0.0, 1.0), np.nan)
    return f


def _metrics(frame: pd.DataFrame) -> pd.DataFrame:
    rows = []
    groups = [(line, frame[frame["line"] == line]) for line in sorted(frame["line"].unique())]
    groups.append(("all", frame))
    for line, f in groups:
        for k in TARGETS:
            s = f[f["actual_" + k].notna() & f[k].notna() & f["naive_" + k].notna()]
            a = s["actual_" + k]
            err, err_p, err_n = (a - s[k]).abs(), (a - s[k + "_prophet"]).abs(), (a - s["naive_" + k]).abs()
            scale = s["scale_" + k].where(s["scale_" + k] > 0)
            row = {"line": line, "target": k, "n": len(s), "mae": err.mean(), "mae_prophet": err_p.mean(),
                   "mae_naive": err_n.mean()}
            row["mase"] = _ratio(row["mae"], row["mae_naive"])
            row["mase_prophet"] = _ratio(row["mae_prophet"], row["mae_naive"])
            row["mase_hyndman"] = float((err / scale).mean())
            row["mase_hyndman_prophet"] = float((err_p / scale).mean())
            row["mase_hyndman_naive"] = float((err_n / scale).mean())
            # R² over the scheduled line-days only: days off are forecast 0 and are 0, which would
            # lift R² with variation nobody needs a model for.
            w = s[s["scheduled"]] if "scheduled" in s.columns else s
            ss_tot = float(((w["actual_" + k] - w["actual_" + k].mean()) ** 2).sum())
            row["r2"] = (1.0 - float(((w["actual_" + k] - w[k]) ** 2).sum()) / ss_tot
                         if len(w) > 1 and ss_tot > 0 else float("nan"))
            cov = np.nan
            n_cov = 0
            if k + "_low" in f.columns:
                c = s[s["scheduled"] & s[k + "_low"].notna() & s[k + "_high"].notna()]
                n_cov = len(c)
                if n_cov:
                    a = c["actual_" + k]
                    inside = (a >= c[k + "_low"] - 1e-9) & (a <= c[k + "_high"] + 1e-9)
                    cov = float(inside.mean())
            row["coverage"], row["n_coverage"] = cov, n_cov
            rows.append(row)
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class BacktestResult:
    """A rolling-origin backtest of the yield forecast against the seasonal naive.

    Definitions (per target: good, produced, yield; per line and ``all`` lines pooled):

    * seasonal naive: the value of the same weekday one week earlier (for a horizon of at most 7
      days always known at the origin); when that day is missing data, the latest earlier same
      weekday with data.
    * ``mase`` (relative MASE): MAE of the model / MAE of the seasonal naive over the *same*
      origins, lines and days. Below 1 the model beats "last week's numbers".
    * ``mase_hyndman`` (Hyndman & Koehler 2006): the mean over forecasts of |error| / scale, the
      scale being the in-sample MAE of the one-season (7-day) naive on the training days up to
      that forecast's origin, per line. ``mase_hyndman_naive`` is the same for the seasonal-naive
      forecast (it is not 1: out-of-sample vs in-sample).
    * ``*_prophet``: the same for the Prophet level alone (no boosted residual).
    * ``r2``: 1 − SSE/SST of the model over the scheduled line-days (the seed's retraining
      trigger is R² below 0.5).
    * ``coverage``: share of scheduled line-days whose actual lies inside the prediction interval
      (``n_coverage`` of them). In :func:`backtest` each origin's interval uses only residuals of
      earlier origins whose days were already known at it.

    Every calendar day is scored, non-working days included (both forecasts are 0 there, which
    does not change the relative MASE); missing line-days are not scored.

    Attributes
    ----------
    forecasts : pandas.DataFrame
        One row per origin, line and day: forecasts, Prophet-only forecasts, intervals, actuals,
        seasonal naive and Hyndman scale.
    metrics : pandas.DataFrame
        line, target, n, mae, mae_prophet, mae_naive, mase, mase_prophet, mase_hyndman,
        mase_hyndman_prophet, mase_hyndman_naive, r2, coverage, n_coverage.
    origins : tuple of datetime.date
    horizon : int
    interval : float
        Nominal coverage of the intervals.
    """

    forecasts: pd.DataFrame
    metrics: pd.DataFrame
    origins: tuple[dt.date, ...]
    horizon: int
    interval: float

    def value(self, metric: str = "mase", *, target: str = "good", line: str = "all") -> float:
        """One metric, e.g. ``value("mase", target="yield", line="L2")``; NaN when not there."""
        m = self.metrics[(self.metrics["line"] == line) & (self.metrics["target"] == target)]
        return float(m[metric].iloc[0]) if len(m) and metric in m.columns else float("nan")

    @property
    def mase(self) -> float:
        """Relative MASE of good output, all lines."""
        return self.value("mase", target="good")


def _with_dates(g: _Grid, frame: pd.DataFrame) -> pd.DataFrame:
    f = frame.copy()
    f.insert(1, "day", [g.days[d].date() for d in f["d"]])
    f["origin"] = [g.days[o].date() for o in f["origin"]]
    return f.drop(columns=["d"])


def _sequential_intervals(frame: pd.DataFrame, level: float, min_calibration: int) -> pd.DataFrame:
    parts = []
    for t, rows in frame.groupby("origin", sort=True):
        known = frame[(frame["origin"] < t) & (frame["d"] <= t)]
        res = _residuals(known)
        q = {k: _conformal(v, level) if len(v) >= min_calibration else (np.nan, np.nan)
             for k, v in res.items()}
        parts.append(_apply_intervals(rows, q))
    return pd.concat(parts) if parts else frame


# ---------------------------------------------------------------------------------------------
# the estimator and its result


@dataclass(frozen=True)
class YieldForecast:
    """Daily good output and yield per line for the days after :attr:`origin`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per line and day: line, day, horizon, scheduled, calendar_assumed,
        planned_busy_min, good, good_low, good_high, produced, produced_low, produced_high, yield,
        yield_low, yield_high, and the Prophet-only good_prophet, produced_prophet, yield_prophet.
        Not scheduled days are 0 (interval 0–0) with yield NaN.
    contributions : pandas.DataFrame
        line, day, target (produced: relative correction; yield: absolute), feature, value,
        contribution — the SHAP values of the boosted residual models (empty without them).
    features : pandas.DataFrame
        The planned-work features of each line-day (:func:`features_at`).
    origin : datetime.date
        Last day of the history.
    training_range : tuple of datetime.date
        First and last day of the history the models were trained on.
    interval : float
        Nominal coverage of the intervals.
    interval_method : str
        How the intervals were made.
    calibration : BacktestResult
        The rolling-origin backtest run by ``fit`` (its metrics are this forecast's backtest MASE).
    skipped : dict
        Lines not forecast, with the reason.
    notes : tuple of str
        Data treatments worth knowing (missing days, unused orders, assumed calendar days).
    """

    table: pd.DataFrame
    contributions: pd.DataFrame
    features: pd.DataFrame
    origin: dt.date
    training_range: tuple[dt.date, dt.date]
    interval: float
    interval_method: str
    calibration: BacktestResult
    skipped: Mapping[str, str]
    notes: tuple[str, ...]

    @property
    def mase(self) -> float:
        """Backtest relative MASE of good output (all lines) from the calibration origins."""
        return self.calibration.mase


class YieldForecaster(BaseEstimator):
    """Prophet level per line plus boosted residuals on planned work, with conformal intervals.

    Parameters
    ----------
    horizon : int
        Days forecast after the last history day (at most 28).
    use_gbm : bool
        Fit the gradient-boosting residual stage (False: Prophet level only).
    interval : float
        Nominal coverage of the prediction intervals (0.8 = 10 % below, 10 % above).
    calibration_origins : int
        Rolling origins of the backtest ``fit`` runs for the interval residuals and the reported
        MASE (each one refits the models: about 1 s per origin for three lines).
    calibration_step : int
        Days between two calibration origins.
    changepoint_prior_scale, seasonality_prior_scale : float
        Prophet's trend flexibility and seasonality shrinkage.
    max_iter, learning_rate, max_depth, min_samples_leaf : int, float, int, int
        The ``HistGradientBoostingRegressor`` of the residuals (kept small: a few hundred rows).
    random_state : int
        Seed of Prophet's optimiser and of the boosting.
    """

    def __init__(self, *, horizon: int = 7, use_gbm: bool = True, interval: float = 0.8,
                 calibration_origins: int = 7, calibration_step: int = 2,
                 changepoint_prior_scale: float = 0.01, seasonality_prior_scale: float = 1.0,
                 max_iter: int = 100, learning_rate: float = 0.03, max_depth: int = 3,
                 min_samples_leaf: int = 40, random_state: int = 0) -> None:
        self.horizon = horizon
        self.use_gbm = use_gbm
        self.interval = interval
        self.calibration_origins = calibration_origins
        self.calibration_step = calibration_step
        self.changepoint_prior_scale = changepoint_prior_scale
        self.seasonality_prior_scale = seasonality_prior_scale
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.random_state = random_state

    def _check_params(self) -> None:
        if not isinstance(self.horizon, int) or not 1 <= self.horizon <= 28:
            raise MLError(f"YieldForecaster: horizon must be an integer from 1 to 28 days, "
                          f"got {self.horizon!r}")
        if not 0.0 < float(self.interval) < 1.0:
            raise MLError(f"YieldForecaster: interval must be between 0 and 1, got {self.interval!r}")
        if not isinstance(self.calibration_origins, int) or self.calibration_origins < 1:
            raise MLError("YieldForecaster: calibration_origins must be a positive integer, "
                          f"got {self.calibration_origins!r}")
        if not isinstance(self.calibration_step, int) or self.calibration_step < 1:
            raise MLError(f"YieldForecaster: calibration_step must be a positive integer, "
                          f"got {self.calibration_step!r}")

    def fit(self, history: pd.DataFrame, planned_work: PlannedWork) -> YieldForecaster:
        """Fit on the line-day ``history`` (:func:`daily_history`) and ``planned_work``.

        Runs the calibration backtest (``calibration_origins`` rolling origins, every
        ``calibration_step`` days, the last one ``horizon`` days before the end) for the interval
        residuals and the reported MASE, then fits the models on the whole history.

        Returns
        -------
        YieldForecaster
            ``self``, with ``grid_``, ``core_``, ``quantiles_``, ``calibration_`` and
            ``training_range_`` set.
        """
        self._check_params()
        g = _grid(history, planned_work, horizon=self.horizon)
        start = g.first + RECENT_DAYS // 2 - 1
        feats = _feature_table(g, range(start, g.last + 1), self.horizon)
        lowest = g.first + MIN_TRAIN_DAYS - 1
        cal = sorted(t for t in (g.last - self.horizon - self.calibration_step * k
                                 for k in range(self.calibration_origins)) if t >= lowest)
        if not cal:  # short history: origins with part of the horizon known
            cal = [t for t in range(lowest, g.last)][-self.calibration_origins:]
        frame = _rolling(g, feats, cal, self)
        res = _residuals(frame) if not frame.empty else {k: np.empty(0) for k in TARGETS}
        self.quantiles_ = {k: _conformal(v, float(self.interval)) for k, v in res.items()}
        self.n_calibration_ = {k: len(v) for k, v in res.items()}
        scored = _apply_intervals(frame, self.quantiles_) if not frame.empty else frame
        self.calibration_ = BacktestResult(
            forecasts=_with_dates(g, scored) if not frame.empty else frame,
            metrics=_metrics(scored) if not frame.empty else pd.DataFrame(),
            origins=tuple(g.days[t].date() for t in cal), horizon=self.horizon, interval=float(self.interval))
        self.grid_, self.features_ = g, feats
        self.core_ = _fit_core(g, feats, g.last, self)
        self.training_range_ = (g.days[g.first].date(), g.days[g.last].date())
        return self

    def predict(self, horizon: int | None = None) -> YieldForecast:
        """Forecast the ``horizon`` days (default: the fitted horizon) after the history.

        Returns
        -------
        YieldForecast
        """
        if not hasattr(self, "core_"):
            raise MLError("YieldForecaster: call fit(history, planned_work) before predict")
        h = self.horizon if horizon is None else horizon
        if not isinstance(h, int) or not 1 <= h <= self.horizon:
            raise MLError(f"YieldForecaster.predict: horizon must be 1 to {self.horizon} (the fitted "
                          f"horizon), got {horizon!r}")
        g = self.grid_
        skipped = dict(g.skipped)
        for li, line in enumerate(g.lines):
            if line not in skipped and not np.isfinite(self.core_.rate[li, g.last]):
                skipped[line] = f"fewer than {MIN_LINE_DAYS} worked days with data"
        rows = self.features_[(self.features_["origin"] == g.last) & (self.features_["horizon"] <= h)]
        rows = rows[~rows["line"].isin(skipped)].reset_index(drop=True)
        pred = _apply_intervals(_predict_core(g, self.core_, rows), self.quantiles_).drop(columns="fitted")
        pred["calendar_assumed"] = rows["calendar_assumed"].to_numpy()
        table = _with_dates(g, pred).drop(columns=["origin"])
        cols = ["line", "day", "horizon", "scheduled", "calendar_assumed", "planned_busy_min", "good",
                "good_low", "good_high", "produced", "produced_low", "produced_high", "yield", "yield_low",
                "yield_high", "good_prophet", "produced_prophet", "yield_prophet"]
        feats = rows.assign(day=[g.days[d].date() for d in rows["d"]]).drop(columns=["origin", "d"])
        notes = list(g.notes)
        if rows["calendar_assumed"].any():
            notes.append("days beyond the shift calendar use each machine's weekday pattern of the last four "
                         "weeks (no PM or no-demand known)")
        small = [k for k, n in self.n_calibration_.items() if n < 30]
        if small:
            counts = ", ".join(f"{k}: {self.n_calibration_[k]}" for k in small)
            notes.append(f"intervals calibrated on few line-days ({counts}); "
                         "their coverage is uncertain")
        return YieldForecast(
            table=table[cols].reset_index(drop=True), contributions=self._contributions(rows, feats),
            features=feats, origin=g.days[g.last].date(), training_range=self.training_range_,
            interval=float(self.interval),
            interval_method=("split conformal: quantiles of the out-of-sample residuals of "
                             f"{len(self.calibration_.origins)} rolling origins (relative for produced and "
                             "good, absolute for yield), pooled over lines and horizons"),
            calibration=self.calibration_, skipped=skipped, notes=tuple(notes))

    def _contributions(self, rows: pd.DataFrame, feats: pd.DataFrame) -> pd.DataFrame:
        cols = ["line", "day", "target", "feature", "value", "contribution"]
        parts = []
        for target, model, names in (("produced", self.core_.gbm_volume, VOLUME_FEATURES),
                                     ("yield", self.core_.gbm_yield, YIELD_FEATURES)):
            if model is None or rows.empty:
                continue
            import shap

            x = rows[list(names)].to_numpy(float)
            with threadpool_limits(1):
                values = np.asarray(shap.TreeExplainer(model).shap_values(x))
            n, k = values.shape
            parts.append(pd.DataFrame({
                "line": np.repeat(rows["line"].to_numpy(), k), "day": np.repeat(feats["day"].to_numpy(), k),
                "target": target, "feature": np.tile(list(names), n), "value": x.ravel(),
                "contribution": values.ravel()}))
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)


def backtest(history: pd.DataFrame, *, planned: PlannedWork, origins: Sequence[dt.date] | None = None,
             horizon: int = 7, forecaster: YieldForecaster | None = None,
             min_calibration: int = 30) -> BacktestResult:
    """Rolling-origin backtest of the yield forecast against the seasonal naive.

    At each origin the models are fitted on the history up to it and forecast the ``horizon`` days
    after it; see :class:`BacktestResult` for the metrics (relative MASE = MAE of the model / MAE
    of the seasonal naive on the same origins and days; Hyndman's MASE scaled by the in-sample
    seasonal-naive MAE).

    Parameters
    ----------
    history : pandas.DataFrame
        Line-day history (:func:`daily_history`).
    planned : PlannedWork
        From :func:`planned_work`.
    origins : sequence of datetime.date, optional
        Last known day of each forecast. Default: every second day from four weeks after the
        history starts to ``horizon`` days before it ends.
    horizon : int
        Days forecast from each origin.
    forecaster : YieldForecaster, optional
        Hyperparameters to use (its own ``horizon`` is replaced by ``horizon``).
    min_calibration : int
        Residuals (scheduled line-days) an origin's interval needs from earlier origins; origins
        with fewer have no interval and do not count for coverage.

    Returns
    -------
    BacktestResult
    """
    est = YieldForecaster() if forecaster is None else forecaster
    est = est.__class__(**{**est.get_params(), "horizon": horizon})
    est._check_params()
    g = _grid(history, planned, horizon=horizon)
    lowest = g.first + MIN_TRAIN_DAYS - 1
    if origins is None:
        idx = list(range(g.first + 27, g.last - horizon + 1, 2))
        if not idx:
            raise MLError(f"backtest: the history ({g.last - g.first + 1} days) is too short for the default "
                          f"origins: it needs at least {28 + horizon} days, or pass origins=")
    else:
        idx = []
        for o in origins:
            ts = pd.Timestamp(o)
            if ts not in g.days or g.days.get_loc(ts) > g.last - 1:
                raise MLError(f"backtest: origin {o} is not a history day before the last one "
                              f"({g.days[g.first].date()} to {g.days[g.last - 1].date()})")
            i = int(g.days.get_loc(ts))
            if i < lowest:
                raise MLError(f"backtest: origin {o} leaves fewer than {MIN_TRAIN_DAYS} days to train on "
                              f"(the history starts {g.days[g.first].date()})")
            idx.append(i)
        idx = sorted(set(idx))
    feats = _feature_table(g, range(g.first + RECENT_DAYS // 2 - 1, max(idx) + 1), horizon)
    frame = _rolling(g, feats, idx, est)
    if frame.empty:
        raise MLError("backtest: no forecast could be made at the given origins")
    frame = _sequential_intervals(frame, float(est.interval), min_calibration)
    return BacktestResult(forecasts=_with_dates(g, frame).reset_index(drop=True), metrics=_metrics(frame),
                          origins=tuple(g.days[t].date() for t in idx), horizon=horizon,
                          interval=float(est.interval))


# ---------------------------------------------------------------------------------------------
# recommendations


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _parts(x: float) -> str:
    return f"{x:,.0f}".replace(",", " ")


def _when(day: dt.date) -> str:
    return f"{day:%A} {day.isoformat()}"


def _material(contrib: pd.DataFrame, shortfall: float, floor: float) -> pd.DataFrame:
    """The contributions that pushed the forecast down by a share of the shortfall that matters."""
    c = contrib[contrib["contribution"] < 0]
    c = c[-c["contribution"] >= max(0.25 * shortfall, floor)]
    return c.sort_values("contribution")


def _yield_reasons(row: pd.Series, feat: pd.Series, contrib: pd.DataFrame, target: float) -> list[str]:
    reasons: list[str] = []
    for f in _material(contrib, target - row["yield"], 0.001)["feature"]:
        if f == "last_yield_dev" and isinstance(feat.get("last_day"), dt.date):
            reasons.append(f"yield was {_pct(feat['last_yield'])} on {_when(feat['last_day'])}")
        elif f == "yield3_dev" and np.isfinite(feat.get("yield3", np.nan)):
            reasons.append(f"yield over the last three production days was {_pct(feat['yield3'])}")
        elif f == "yield_recent" and np.isfinite(feat.get("yield_recent", np.nan)):
            reasons.append(f"yield over the last {RECENT_DAYS} days was {_pct(feat['yield_recent'])}")
    recent = feat.get("yield_recent", np.nan)
    level = f"yield over the last {RECENT_DAYS} days was {_pct(recent)}"
    if np.isfinite(recent) and recent < target and row["yield_prophet"] < target and level not in reasons:
        reasons.append(level)  # the line runs below target as a rule, not just that day
    return reasons


def _output_reasons(row: pd.Series, feat: pd.Series, contrib: pd.DataFrame, target: float) -> list[str]:
    reasons: list[str] = []
    if feat.get("no_demand_min", 0) > 0:
        reasons.append(f"{feat['no_demand_min']:.0f} min of no-demand time planned")
    if feat.get("pm_min", 0) > 0 and feat.get("pm_machines"):
        reasons.append(f"planned maintenance on {feat['pm_machines']} ({feat['pm_min']:.0f} min)")
    shortfall = (target - row["good"]) / target if target > 0 else 0.0
    for f in _material(contrib, shortfall, 0.01)["feature"]:
        if f == "changeovers" and feat.get("changeover_machines"):
            reasons.append(f"{feat['changeovers']:.0f} changeover(s) due on {feat['changeover_machines']}")
        elif f == "plan_ratio" and np.isfinite(feat.get("plan_ratio", np.nan)):
            reasons.append(f"the released orders are slower parts than usual "
                           f"({_pct(feat['plan_ratio'])} of the usual rate)")
    return reasons


def recommendations(forecast: YieldForecast, *, target_yield: float | Mapping[str, float] = 0.95,
                    target_good: Mapping[str, float] | None = None, context: BacktestResult | None = None,
                    max_items: int = 20) -> list[str]:
    """Plain sentences for the plant manager, stated only where the data supports them.

    A line-day gets a sentence when its yield forecast is below ``target_yield`` (or its good
    output below ``target_good``), with the interval. A reason clause follows only when something
    in the data explains it: planned stops from the calendar, a boosted-residual feature whose SHAP
    contribution pushed the forecast down by at least a quarter of the shortfall, or the line's
    own recent level being below target. Nothing is stated for a target whose backtest relative
    MASE is not below 1: :data:`NOT_SHOWN` instead.

    Parameters
    ----------
    forecast : YieldForecast
        From :meth:`YieldForecaster.predict`.
    target_yield : float or mapping of line to float
        Yield target(s), e.g. 0.95.
    target_good : mapping of line to float, optional
        Daily good-output targets per line (parts); no output sentences without it.
    context : BacktestResult, optional
        A backtest whose MASE decides whether to speak; default the forecast's own calibration.
    max_items : int
        At most this many sentences (earliest days first).

    Returns
    -------
    list of str
    """
    bt = context if context is not None else forecast.calibration
    speak_yield = bt.value("mase", target="yield") < 1.0
    speak_good = bt.value("mase", target="good") < 1.0
    if not speak_yield and not speak_good:
        return [NOT_SHOWN]
    out: list[str] = []
    if not speak_yield:
        out.append(f"yield {NOT_SHOWN}")
    if target_good is not None and not speak_good:
        out.append(f"good output {NOT_SHOWN}")
    table = forecast.table[forecast.table["scheduled"]].sort_values(["day", "line"])
    feats = forecast.features.set_index(["line", "day"])
    contrib = forecast.contributions
    items: list[str] = []
    for _, row in table.iterrows():
        line, day = row["line"], row["day"]
        feat = feats.loc[(line, day)] if (line, day) in feats.index else pd.Series(dtype=object)
        mine = contrib[(contrib["line"] == line) & (contrib["day"] == day)]
        target = target_yield.get(line) if isinstance(target_yield, Mapping) else target_yield
        if speak_yield and target is not None and np.isfinite(row["yield"]) and row["yield"] < target:
            text = (f"line {line} yield forecast {_pct(row['yield'])} (interval {100 * row['yield_low']:.1f}–"
                    f"{_pct(row['yield_high'])}) below target {_pct(target)} on {_when(day)}")
            reasons = _yield_reasons(row, feat, mine[mine["target"] == "yield"], target)
            items.append(text + (": " + "; ".join(reasons) if reasons else ""))
        goal = target_good.get(line) if target_good is not None else None
        if speak_good and goal is not None and row["good"] < goal:
            text = (f"line {line} good output forecast {_parts(row['good'])} parts (interval "
                    f"{_parts(row['good_low'])}–{_parts(row['good_high'])}) below target {_parts(goal)} on "
                    f"{_when(day)}")
            if row.get("calendar_assumed", False):
                text += " (calendar assumed)"
            reasons = _output_reasons(row, feat, mine[mine["target"] == "produced"], goal)
            items.append(text + (": " + "; ".join(reasons) if reasons else ""))
    return out + items[:max_items]


# The input helpers that moved to forecast_data, still reachable as ``forecast._name`` (PEP 562).
_MOVED: frozenset[str] = frozenset({
    "_NEVER", "_check_history", "_covered", "_day_start", "_history_from_ledger", "_ledger", "_machine_days",
    "_merge", "_need", "_origin_features", "_planned_from", "_project", "_us"})


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        return getattr(_data, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_MOVED})
