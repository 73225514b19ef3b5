"""Telemetry anomaly detection after NASA Telemanom (Hundman et al., KDD 2018).

Hundman, Constantinou, Laporte, Colwell and Soderstrom, *Detecting Spacecraft Anomalies Using
LSTMs and Nonparametric Dynamic Thresholding*, KDD 2018 (arXiv:1802.04431); reference code
github.com/khundman/telemanom. The method, per channel (here: one machine × one metric):

1. A predictor of the next reading from the previous ``l_s`` readings, trained on a stretch of
   history (:class:`Predictor`; the default :class:`RidgeAR` needs no deep-learning stack and beat
   :class:`LaggedGBR` in ``benchmarks/bench_telemanom.py``). The paper's LSTM would plug in through
   the same protocol; it is not shipped: PyTorch is not a dependency, and on the simulated plant
   the ridge predictor already catches every precursor, so an LSTM has nothing to earn its cost on
   yet.
2. Prediction errors ``e_t = |y_t - ŷ_t|``, smoothed by an EWMA with span
   ``batch_size * window_size * smoothing_perc``.
3. The nonparametric dynamic threshold: in the window of the last ``window_size * batch_size``
   smoothed errors ``e_s`` (mean μ, standard deviation σ), ``ε = μ + zσ`` for the ``z`` in
   ``z_values`` maximising ``(Δμ/μ + Δσ/σ) / (|e_a| + |E_seq|²)``, where Δμ and Δσ are the drops
   of mean and standard deviation when the errors at or above ε are removed, ``e_a`` are the
   errors at or above ε (widened by ``error_buffer`` readings on each side) and ``E_seq`` their
   runs; candidates with more than 5 runs or half the window anomalous are refused (the
   reference code's guard rails); when none qualifies, ε uses the largest ``z``.
4. Flagging: a reading of the current batch is anomalous when ``e_s ≥ ε`` and ``e_s`` exceeds
   ``min_error_fraction`` of the window's 5–95 % value range (Telemanom's "minimum percent
   difference" rule: errors too small against the signal's own spread are never anomalies); the
   flags are widened by ``error_buffer`` readings inside the batch.
5. Pruning: the maxima of the batch's anomalous runs, sorted descending, plus the largest
   non-anomalous smoothed error of the window; with ``d_i = (m_i - m_{i+1}) / m_i``, runs after
   the last position with ``d_i ≥ p`` are dropped (they do not stand out from normal errors).
6. Score of a run: ``max (e_s - ε) / (μ + σ)`` over its readings (Telemanom's severity).
   Runs fewer than ``batch_size`` judged readings apart are reported as one anomaly. Its start is
   within a few readings of the first bad one; its end runs late by up to a few EWMA spans (the
   smoothed error needs that long to fall back below ε).

What is causal (the detector must run on live data):

* the predictor is fitted only on readings before the judged stretch (``fit`` on history,
  ``detect`` from ``start``), and ŷ_t uses only the ``l_s`` readings before ``t``;
* the EWMA at ``t`` uses errors up to ``t``;
* readings are judged in batches of ``batch_size`` judged readings (counted from ``start``), as
  Telemanom does: batch k is judged from the window of smoothed errors that *ends with batch k*
  (threshold, value range, pruning) — nothing after its last reading. A flag is final when its
  batch is complete; the trailing incomplete batch is judged from what has arrived (column
  ``final`` is False for it) and may change as the batch fills. ``batch_size=1`` judges every
  reading from data up to and including itself;
* the gap rule uses the median interval of the *training* readings;
* ``detected_at`` of an anomaly is when the batch that first flagged it was complete: when a live
  system would have raised it. Lead times are measured from it, not from ``start``.

Deviations from the reference code, on purpose: one-step-ahead prediction only; the
inverted-error ("lower threshold") pass is not implemented (a drop of a value is already a large
``|y - ŷ|``); the absolute ``max(e_s) > 0.05`` check is left out (it depends on the unit); single
readings are valid anomalous runs; the first smoothed errors are not back-filled with a later mean
(that would look ahead). Two additions, both measured on the simulated plant
(``benchmarks/bench_telemanom.py``): errors already flagged are left out of μ and σ of later
windows (``exclude_anomalies``: otherwise one bearing's vibration ramp masks the next one for a
whole window), and training targets farther than ``train_trim`` robust σ from the training
median are left out (``train_trim``: the training stretch is unlabelled, and a precursor ramp in
it teaches the predictor to follow ramps instead of flagging them).

:func:`telemetry_anomalies` applies this to the plant (channels = machine × metric, running
readings only, see there); :func:`detect_anomalies` to one series of an analyst's table, with the
treatment of gaps, duplicates, blanks and text stated there.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import Ridge
from threadpoolctl import ThreadpoolController

from workbench.errors import MLError

#: Candidate ``z`` of the dynamic threshold: 2.5, 3.0, …, 12.0 (Telemanom's range, its fallback 12 included).
DEFAULT_Z: tuple[float, ...] = tuple(float(z) for z in np.arange(2.5, 12.01, 0.5))
#: Telemetry metrics judged by :func:`telemetry_anomalies` by default (the ones that carry precursors).
DEFAULT_METRICS: tuple[str, ...] = ("vibration_rms", "hydraulic_pressure", "motor_current", "drive_temp")
#: Cumulative PLC counters: their level is a running total, not a physical reading.
COUNTER_METRICS: frozenset[str] = frozenset({"part_count_total", "reject_count_total"})
DETECTOR = "telemanom"
MODEL_VERSION = "telemanom-ridge-1"

ANOMALY_COLUMNS = ("start", "end", "detected_at", "score", "readings", "channel")
SCORE_COLUMNS = ("time", "value", "predicted", "error", "smoothed_error", "threshold", "judged",
                 "anomaly", "score", "final", "decided_at")


# --------------------------------------------------------------------------------------------
# predictors

_controller: ThreadpoolController | None = None


def _one_thread(api: str = "blas") -> Any:
    """Context limiting BLAS / OpenMP to one thread: on a busy machine their pools make these small
    fits up to 100x slower, and the workbench runs channels side by side rather than threads."""
    global _controller
    if _controller is None:  # scanning the loaded libraries costs ~10 ms: do it once
        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api=api)


@runtime_checkable
class Predictor(Protocol):
    """Predicts a channel's next reading from windows of its previous ``l_s`` readings.

    ``windows`` has shape ``(n, l_s)``, oldest reading first; ``targets`` shape ``(n,)``. An LSTM
    (PyTorch) would implement the same two methods.
    """

    def fit(self, windows: np.ndarray, targets: np.ndarray) -> Predictor:
        """Learn from ``windows`` and the reading that followed each one; return self."""
        ...

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """The predicted next reading of each window, shape ``(n,)``."""
        ...


class RidgeAR(BaseEstimator):
    """Ridge autoregression on the standardised lagged readings (the default predictor).

    Chosen by ``benchmarks/bench_telemanom.py``: on the simulated plant it gives the same recall
    as :class:`LaggedGBR` with far fewer false alarms, in a third of the time.

    Parameters
    ----------
    alpha : float
        Ridge penalty on the standardised lags.
    """

    def __init__(self, *, alpha: float = 1.0) -> None:
        self.alpha = alpha

    def fit(self, windows: np.ndarray, targets: np.ndarray) -> RidgeAR:
        x = np.asarray(windows, float)
        self.mean_ = x.mean(axis=0)
        scale = x.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        with _one_thread():
            self.model_ = Ridge(alpha=self.alpha).fit((x - self.mean_) / self.scale_,
                                                      np.asarray(targets, float))
        return self

    def predict(self, windows: np.ndarray) -> np.ndarray:
        x = np.asarray(windows, float)
        with _one_thread():
            return self.model_.predict((x - self.mean_) / self.scale_)


class LaggedGBR(BaseEstimator):
    """Histogram gradient boosting on the lagged readings (and the window's mean and slope).

    Trees do not extrapolate: a reading outside the training range is predicted at the edge of
    that range, which makes a slow ramp a growing error instead of something to follow.

    Parameters
    ----------
    max_iter, learning_rate, max_leaf_nodes : int, float, int
        Passed to :class:`sklearn.ensemble.HistGradientBoostingRegressor`.
    random_state : int
        Seed of the booster.
    """

    def __init__(self, *, max_iter: int = 100, learning_rate: float = 0.1, max_leaf_nodes: int = 31,
                 random_state: int = 0) -> None:
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.random_state = random_state

    @staticmethod
    def _features(windows: np.ndarray) -> np.ndarray:
        return np.hstack([windows, windows.mean(axis=1, keepdims=True),
                          windows[:, -1:] - windows[:, :1]])

    def fit(self, windows: np.ndarray, targets: np.ndarray) -> LaggedGBR:
        with _one_thread("openmp"):
            self.model_ = HistGradientBoostingRegressor(
                max_iter=self.max_iter, learning_rate=self.learning_rate, max_leaf_nodes=self.max_leaf_nodes,
                random_state=self.random_state, early_stopping=False,
            ).fit(self._features(np.asarray(windows, float)), np.asarray(targets, float))
        return self

    def predict(self, windows: np.ndarray) -> np.ndarray:
        with _one_thread("openmp"):
            return self.model_.predict(self._features(np.asarray(windows, float)))


# --------------------------------------------------------------------------------------------
# the dynamic threshold and pruning (pure functions on arrays)


@dataclass(frozen=True)
class Threshold:
    """The threshold chosen for one window of smoothed errors."""

    epsilon: float
    z: float
    mean: float
    std: float
    fallback: bool  # True when no candidate z passed the guard rails
    score: float = float("nan")  # the criterion (Δμ/μ + Δσ/σ) / (|e_a| + |E_seq|²) at the chosen z


def _dilate(mask: np.ndarray, buffer: int) -> np.ndarray:
    """Widen the True runs of a 1-d mask by ``buffer`` positions each side."""
    if buffer <= 0:
        return mask
    n = mask.size
    c = np.concatenate([[0], np.cumsum(mask)])
    idx = np.arange(n)
    return (c[np.minimum(idx + buffer + 1, n)] - c[np.maximum(idx - buffer, 0)]) > 0


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``(first, last)`` positions of each run of True in a 1-d mask."""
    m = np.concatenate([[False], mask, [False]])
    d = np.diff(m.astype(np.int8))
    return list(zip(np.flatnonzero(d == 1).tolist(), (np.flatnonzero(d == -1) - 1).tolist(), strict=True))


def dynamic_threshold(smoothed: np.ndarray, *, z_values: Sequence[float] = DEFAULT_Z, error_buffer: int = 0,
                      max_sequences: int = 5, max_anomalous_fraction: float = 0.5) -> Threshold:
    """Telemanom's nonparametric threshold for one window of smoothed errors.

    Parameters
    ----------
    smoothed : numpy.ndarray
        The window's smoothed errors ``e_s``.
    z_values : sequence of float
        Candidate multiples of σ.
    error_buffer : int
        Readings added on each side of every error at or above ε when counting ``e_a`` and
        ``E_seq``.
    max_sequences, max_anomalous_fraction : int, float
        Guard rails: a candidate with more runs, or at least this share of the window anomalous,
        is refused.

    Returns
    -------
    Threshold
        ε, the chosen z (ties go to the larger z), μ and σ of the window, the criterion's value.
    """
    e = np.asarray(smoothed, float)
    n = e.size
    z = np.asarray(sorted(z_values), float)
    if n == 0 or z.size == 0:
        return Threshold(np.inf, float(z.max()) if z.size else 0.0, 0.0, 0.0, True)
    mu, sd = float(e.mean()), float(e.std())
    if sd <= 1e-12 * abs(mu):  # constant up to rounding
        sd = 0.0
    eps = mu + z * sd
    if sd == 0:
        return Threshold(float(eps[-1]), float(z[-1]), mu, sd, True)
    # Only readings above the lowest candidate ε matter (at most 1/(1+z²) of the window, by
    # Cantelli), so every candidate is scored on those few positions instead of the whole window.
    pos = np.flatnonzero(e >= eps[0])
    if pos.size == 0:
        return Threshold(float(eps[-1]), float(z[-1]), mu, sd, True)
    d = e[pos] - mu
    sel = d[None, :] >= (eps - mu)[:, None]  # (candidates, positions), rows nested
    n_above = sel.sum(axis=1)
    n_below = n - n_above
    dev = e - mu
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_d = (dev.sum() - (sel * d).sum(axis=1)) / n_below
        var_b = np.maximum(((dev * dev).sum() - (sel * d * d).sum(axis=1)) / n_below - mean_d**2, 0.0)
        mu_b, sd_b = mu + mean_d, np.sqrt(var_b)
    # e_a and E_seq with the buffer: intervals [i - b, i + b] of the selected readings, merged.
    lo = np.maximum(pos - error_buffer, 0)
    hi = np.minimum(pos + error_buffer, n - 1)
    hi_sel = np.where(sel, hi[None, :], -2)
    prev_hi = np.concatenate([np.full((len(z), 1), -2), np.maximum.accumulate(hi_sel, axis=1)[:, :-1]],
                             axis=1)
    new_part = np.clip(hi[None, :] - np.maximum(lo[None, :], prev_hi + 1) + 1, 0, None)
    n_anom = np.where(sel, new_part, 0).sum(axis=1)
    n_seq = (sel & (lo[None, :] > prev_hi + 1)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        score = ((mu - mu_b) / mu + (sd - sd_b) / sd) / (n_seq**2 + n_anom)
    ok = (n_above > 0) & (n_below > 0) & (n_seq <= max_sequences) & (n_anom < max_anomalous_fraction * n)
    if not ok.any():
        return Threshold(float(eps[-1]), float(z[-1]), mu, sd, True)
    score = np.where(ok, score, -np.inf)
    best = len(z) - 1 - int(np.argmax(score[::-1]))  # ties → larger z, as the reference code's ">="
    return Threshold(float(eps[best]), float(z[best]), mu, sd, False, float(score[best]))


def prune_sequences(sequence_max: Sequence[float], non_anomalous_max: float, *, p: float) -> np.ndarray:
    """Telemanom's pruning: which anomalous runs stand out from the others and from normal errors.

    Parameters
    ----------
    sequence_max : sequence of float
        Maximum smoothed error of each run.
    non_anomalous_max : float
        Largest smoothed error of the window that is not anomalous.
    p : float
        Minimum relative decrease ``(m_i - m_{i+1}) / m_i`` between consecutive sorted maxima.

    Returns
    -------
    numpy.ndarray
        Boolean mask over the runs, True for those kept.
    """
    m = np.asarray(sequence_max, float)
    if m.size == 0:
        return np.zeros(0, bool)
    order = np.argsort(-m, kind="stable")
    chain = np.append(m[order], non_anomalous_max)
    with np.errstate(invalid="ignore", divide="ignore"):
        drop = (chain[:-1] - chain[1:]) / chain[:-1]
    big = np.flatnonzero(drop >= p)
    keep_sorted = np.zeros(m.size, bool)
    if big.size:
        keep_sorted[: big[-1] + 1] = True
    keep = np.zeros(m.size, bool)
    keep[order] = keep_sorted
    return keep


def judge_batches(smoothed: np.ndarray, values: np.ndarray, *, start: int, batch_size: int,
                  window_size: int, z_values: Sequence[float] = DEFAULT_Z, error_buffer: int = 0,
                  p: float = 0.13, min_error_fraction: float = 0.05,
                  exclude_anomalies: bool = True) -> dict[str, np.ndarray]:
    """Judge positions ``start…`` of a smoothed-error sequence batch by batch (steps 3–6 above).

    Parameters
    ----------
    smoothed : numpy.ndarray
        Smoothed errors of the judged readings, in time order.
    values : numpy.ndarray
        The readings at the same positions (for the value-range rule).
    start : int
        First position to judge; earlier ones only fill the first windows.
    batch_size, window_size, z_values, error_buffer, p, min_error_fraction
        See :class:`TelemanomDetector`.
    exclude_anomalies : bool
        Leave errors already flagged out of μ and σ of later windows.

    Returns
    -------
    dict of numpy.ndarray
        Over all positions: ``anomaly``, ``threshold``, ``score`` (NaN where not anomalous;
        negative where a reading is flagged only by the buffer),
        ``judged``, ``final`` and ``decided`` (position of the reading whose arrival completed the
        batch, -1 where not judged).
    """
    e = np.asarray(smoothed, float)
    y = pd.Series(np.asarray(values, float))
    n = e.size
    anomaly = np.zeros(n, bool)
    threshold = np.full(n, np.nan)
    score = np.full(n, np.nan)
    judged = np.zeros(n, bool)
    final = np.zeros(n, bool)
    decided = np.full(n, -1, np.int64)
    span = batch_size * window_size
    # The value range and spread of every trailing window at once (window i ends at position i).
    roll = y.rolling(span, min_periods=1)
    v_range = (roll.quantile(0.95) - roll.quantile(0.05)).to_numpy()
    v_std = roll.std(ddof=0).to_numpy()
    for b0 in range(max(start, 0), n, batch_size):
        b1 = min(b0 + batch_size, n)
        w0 = max(0, b1 - span)
        win = e[w0:b1]
        past = anomaly[w0:b1]
        # A flagged anomaly in the window would raise μ and σ and mask the next one.
        basis = win[~past] if exclude_anomalies and past.any() else win
        th = dynamic_threshold(basis, z_values=z_values, error_buffer=error_buffer)
        judged[b0:b1] = True
        final[b0:b1] = b1 - b0 == batch_size
        decided[b0:b1] = b1 - 1
        threshold[b0:b1] = th.epsilon
        if th.std == 0:
            continue
        floor = min_error_fraction * v_range[b1 - 1]
        # The window must show errors that matter against the signal's spread at all.
        if not (th.std > min_error_fraction * v_std[b1 - 1] or float(win.max()) > floor):
            continue
        # Readings just before the batch that pass ε widen into it, as in the reference code.
        off = b0 - w0
        lo = max(off - error_buffer, 0)
        part = win[lo:]
        wide = _dilate((part >= th.epsilon) & (part > floor), error_buffer)
        flags = np.zeros(win.size, bool)
        flags[off:] = wide[off - lo:]
        if not flags.any():
            continue
        normal = ~(flags | past)
        non_max = float(win[normal].max()) if normal.any() else 0.0
        runs = _runs(flags)
        keep = prune_sequences([win[a:z + 1].max() for a, z in runs], non_max, p=p)
        denom = th.mean + th.std
        for (a, z), k in zip(runs, keep, strict=True):
            if k:
                anomaly[w0 + a:w0 + z + 1] = True
                score[w0 + a:w0 + z + 1] = (win[a:z + 1] - th.epsilon) / denom
    return {"anomaly": anomaly, "threshold": threshold, "score": score, "judged": judged, "final": final,
            "decided": decided}


# --------------------------------------------------------------------------------------------
# the detector


def _positions(index: pd.Index) -> np.ndarray:
    """The index as numbers for the gap rule: ns since the epoch, the numbers themselves, or 0, 1, 2…"""
    if isinstance(index, pd.DatetimeIndex):
        return index.as_unit("ns").asi8.astype(float)
    if pd.api.types.is_numeric_dtype(index):
        return np.asarray(index, float)
    return np.arange(len(index), dtype=float)


def _time_dtype(index: pd.Index) -> Any:
    return index.dtype if isinstance(index, pd.DatetimeIndex) else "float64"


class TelemanomDetector(BaseEstimator):
    """Telemanom for one channel: predictor, smoothed errors, dynamic threshold, pruning.

    Parameters
    ----------
    l_s : int
        Readings the predictor looks back.
    batch_size : int
        Judged readings per batch (the decision latency, see the module docstring).
    window_size : int
        Batches in the trailing window the threshold is chosen from.
    smoothing_perc : float
        EWMA span as a share of ``batch_size * window_size``.
    error_buffer : int
        Readings added on each side of an anomalous reading (merges nearby runs).
    p : float
        Minimum relative decrease for pruning (:func:`prune_sequences`).
    z_values : tuple of float
        Candidate multiples of σ for ε.
    min_error_fraction : float
        Smoothed errors below this share of the window's 5–95 % value range are never anomalous.
    exclude_anomalies : bool
        Leave errors already flagged out of μ and σ of later windows.
    max_gap : float
        A step longer than ``max_gap`` times the median interval of the training readings starts a
        new segment: no prediction looks across it, so the first ``l_s`` readings after it are
        not judged.
    train_trim : float or None
        Training targets farther than this many robust σ (1.4826 MAD) from the training median
        are not used to fit the predictor; None uses them all.
    predictor : Predictor, optional
        Unfitted predictor, cloned by :meth:`fit` (deep-copied when it is not a scikit-learn
        estimator); :class:`RidgeAR` when None.
    random_state : int
        Seed given to the predictor when it takes one.

    Attributes
    ----------
    predictor_ : Predictor
        The fitted predictor.
    interval_ : float
        Median step between training readings (ns for a time index), for the gap rule.
    n_train_, n_trimmed_ : int
        Training windows used, training targets left out by ``train_trim``.
    train_error_ : float
        Mean absolute error of the predictor on its training windows.
    """

    def __init__(self, *, l_s: int = 30, batch_size: int = 30, window_size: int = 48,
                 smoothing_perc: float = 0.05, error_buffer: int = 5, p: float = 0.13,
                 z_values: tuple[float, ...] = DEFAULT_Z, min_error_fraction: float = 0.05,
                 exclude_anomalies: bool = True, max_gap: float = 5.0, train_trim: float | None = 4.0,
                 predictor: Predictor | None = None, random_state: int = 0) -> None:
        self.l_s = l_s
        self.batch_size = batch_size
        self.window_size = window_size
        self.smoothing_perc = smoothing_perc
        self.error_buffer = error_buffer
        self.p = p
        self.z_values = z_values
        self.min_error_fraction = min_error_fraction
        self.exclude_anomalies = exclude_anomalies
        self.max_gap = max_gap
        self.train_trim = train_trim
        self.predictor = predictor
        self.random_state = random_state

    # -- helpers ----------------------------------------------------------------------------

    def _check_params(self) -> None:
        for name in ("l_s", "batch_size", "window_size"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise MLError(f"TelemanomDetector: {name} must be a positive integer, got {v!r}")
        if not 0 < self.smoothing_perc <= 1:
            raise MLError(f"TelemanomDetector: smoothing_perc must be in (0, 1], got {self.smoothing_perc!r}")
        if not 0 <= self.p < 1:
            raise MLError(f"TelemanomDetector: p must be in [0, 1), got {self.p!r}")
        if not self.z_values:
            raise MLError("TelemanomDetector: z_values is empty")

    def _segments(self, pos: np.ndarray, interval: float) -> np.ndarray:
        step = np.diff(pos)
        if np.any(step < 0):
            raise MLError("TelemanomDetector: the series must be sorted by time")
        gap = step > self.max_gap * interval if interval > 0 else np.zeros(step.size, bool)
        return np.concatenate([[0], np.cumsum(gap)])

    def _windows(self, values: np.ndarray, seg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Targets with ``l_s`` readings of the same segment before them, and those windows."""
        ls = self.l_s
        if values.size <= ls:
            return np.zeros(0, np.int64), np.zeros((0, ls))
        view = np.lib.stride_tricks.sliding_window_view(values, ls + 1)
        ok = seg[:-ls] == seg[ls:]
        rows = np.flatnonzero(ok)
        return rows + ls, view[rows, :ls]

    @staticmethod
    def _judge_mask(series: pd.Series, judge: Any) -> np.ndarray:
        if judge is None:
            return np.ones(len(series), bool)
        mask = np.asarray(judge, bool)
        if mask.shape != (len(series),):
            raise MLError(f"TelemanomDetector: judge has {mask.size} entries for {len(series)} readings")
        return mask

    def _values(self, series: pd.Series) -> np.ndarray:
        values = np.asarray(series, float)
        if not np.all(np.isfinite(values)):
            bad = int((~np.isfinite(values)).sum())
            raise MLError(f"TelemanomDetector: series {series.name!r} has {bad} missing or infinite values; "
                          "drop them first")
        return values

    def _smooth(self, err: np.ndarray) -> np.ndarray:
        # Counted in judged readings, as the reference code does. (Counting in time instead makes
        # the first error after a weekend weigh like a whole window: many false alarms at restarts.)
        span = max(1.0, self.batch_size * self.window_size * self.smoothing_perc)
        return pd.Series(err).ewm(span=span, adjust=True).mean().to_numpy()

    # -- estimator API ------------------------------------------------------------------------

    def fit(self, series: pd.Series, *, judge: Any = None) -> TelemanomDetector:
        """Fit the predictor on a training stretch.

        Parameters
        ----------
        series : pandas.Series
            Readings in time order, indexed by time (or by anything ordered).
        judge : array-like of bool, optional
            Which readings are of the kind that will be judged (e.g. running): only those are
            training targets; their windows may hold any readings.

        Returns
        -------
        TelemanomDetector
            self
        """
        self._check_params()
        values = self._values(series)
        pos = _positions(series.index)
        step = np.diff(pos)
        self.interval_ = float(np.median(step)) if step.size else 0.0
        seg = self._segments(pos, self.interval_)
        tgt, win = self._windows(values, seg)
        keep = self._judge_mask(series, judge)[tgt]
        tgt, win = tgt[keep], win[keep]
        self.n_trimmed_ = 0
        if self.train_trim is not None and tgt.size:
            # The training stretch is not labelled: readings far from its typical level (a precursor
            # ramp, a fault) would teach the predictor to follow a drift instead of flagging it.
            med = float(np.median(values[tgt]))
            mad = 1.4826 * float(np.median(np.abs(values[tgt] - med)))
            if mad > 0:
                typical = np.abs(values[tgt] - med) <= self.train_trim * mad
                self.n_trimmed_ = int((~typical).sum())
                tgt, win = tgt[typical], win[typical]
        needed = max(2 * self.l_s, 10)
        if tgt.size < needed:
            raise MLError(f"TelemanomDetector: the training stretch gives {tgt.size} prediction windows; at "
                          f"least {needed} are needed (each window is l_s={self.l_s} readings followed by "
                          "the reading to predict)")
        if self.predictor is None:
            predictor: Any = RidgeAR()
        elif hasattr(self.predictor, "get_params"):
            predictor = clone(self.predictor)
            if "random_state" in predictor.get_params():
                predictor.set_params(random_state=self.random_state)
        else:  # a plain object following the Predictor protocol
            predictor = copy.deepcopy(self.predictor)
        self.predictor_ = predictor.fit(win, values[tgt])
        self.n_train_ = int(tgt.size)
        self.train_error_ = float(np.mean(np.abs(self.predictor_.predict(win) - values[tgt])))
        return self

    def score(self, series: pd.Series, *, judge: Any = None, start: Any = None) -> pd.DataFrame:
        """Predictions, errors, thresholds and flags for every reading.

        Parameters
        ----------
        series : pandas.Series
            Readings in time order, including the history before ``start`` (its errors seed the
            threshold window and its readings the predictor's first windows).
        judge : array-like of bool, optional
            Readings to judge (others get no error and no flag); all when None.
        start : index value, optional
            First reading to judge (earlier ones only give history); the first reading when None.

        Returns
        -------
        pandas.DataFrame
            One row per reading: time, value, predicted (NaN where not judged or not predictable),
            error, smoothed_error, threshold (ε of the reading's batch), judged, anomaly, score
            (``(e_s - ε) / (μ + σ)`` where flagged), final (its batch was complete), decided_at
            (the reading that completed its batch).
        """
        if not hasattr(self, "predictor_"):
            raise MLError("TelemanomDetector: call fit() before score() or detect()")
        values = self._values(series)
        pos = _positions(series.index)
        seg = self._segments(pos, self.interval_)
        tgt, win = self._windows(values, seg)
        keep = self._judge_mask(series, judge)[tgt]
        tgt, win = tgt[keep], win[keep]
        n = len(series)
        out = {name: np.full(n, np.nan)
               for name in ("predicted", "error", "smoothed_error", "threshold", "score")}
        out.update({name: np.zeros(n, bool) for name in ("judged", "anomaly", "final")})
        decided_at = pd.Series(pd.NaT, index=range(n), dtype=_time_dtype(series.index))
        if tgt.size:
            pred = self.predictor_.predict(win)
            err = np.abs(values[tgt] - pred)
            smooth = self._smooth(err)
            first = 0 if start is None else int(series.index[tgt].searchsorted(start, side="left"))
            res = judge_batches(smooth, values[tgt], start=first, batch_size=self.batch_size,
                                window_size=self.window_size, z_values=self.z_values,
                                error_buffer=self.error_buffer, p=self.p,
                                min_error_fraction=self.min_error_fraction,
                                exclude_anomalies=self.exclude_anomalies)
            out["predicted"][tgt] = pred
            out["error"][tgt] = err
            out["smoothed_error"][tgt] = smooth
            for name in ("threshold", "score", "judged", "anomaly", "final"):
                out[name][tgt] = res[name]
            done = res["decided"] >= 0
            decided_at.iloc[tgt[done]] = np.asarray(series.index[tgt[res["decided"][done]]])
        frame = pd.DataFrame({"time": series.index, "value": values, **out,
                              "decided_at": decided_at.to_numpy()}, columns=list(SCORE_COLUMNS))
        return frame.reset_index(drop=True)

    def detect(self, series: pd.Series, *, judge: Any = None, start: Any = None) -> pd.DataFrame:
        """Anomalies: start, end, detected_at, score, readings, channel (see :func:`sequences`).

        Parameters are those of :meth:`score`. Runs fewer than ``batch_size`` judged readings apart
        are one anomaly; readings that are not judged (e.g. a stop between two running stretches)
        do not separate runs.
        """
        return sequences(self.score(series, judge=judge, start=start), channel=series.name,
                         merge_gap=self.batch_size)


def sequences(scored: pd.DataFrame, *, channel: Any = None, merge_gap: int = 0) -> pd.DataFrame:
    """Group the flagged readings of a :meth:`TelemanomDetector.score` frame into anomalous runs.

    Parameters
    ----------
    scored : pandas.DataFrame
        Output of :meth:`TelemanomDetector.score`.
    channel : object, optional
        Written to the ``channel`` column.
    merge_gap : int
        Runs separated by fewer than this many unflagged judged readings are one anomaly.

    Returns
    -------
    pandas.DataFrame
        start, end (first and last flagged reading), detected_at (when the batch that first flagged
        it was complete: when a live system would have raised it), score (the largest reading
        score), readings (flagged readings), channel.
    """
    judged = scored[scored["judged"].to_numpy(bool)]
    flags = judged["anomaly"].to_numpy(bool)
    runs = _runs(flags)
    merged: list[list[int]] = []
    for a, z in runs:
        if merged and a - merged[-1][1] - 1 < merge_gap:
            merged[-1][1] = z
        else:
            merged.append([a, z])
    first = np.array([a for a, _ in merged], np.int64)
    last = np.array([z for _, z in merged], np.int64)
    score = judged["score"].to_numpy(float)
    return pd.DataFrame({
        "start": judged["time"].iloc[first].reset_index(drop=True),
        "end": judged["time"].iloc[last].reset_index(drop=True),
        "detected_at": judged["decided_at"].iloc[first].reset_index(drop=True),
        "score": np.array([float(np.nanmax(score[a:z + 1])) for a, z in merged], float),
        "readings": np.array([int(flags[a:z + 1].sum()) for a, z in merged], np.int64),
        "channel": pd.Series([channel] * len(merged), dtype=object),
    }, columns=list(ANOMALY_COLUMNS))


# --------------------------------------------------------------------------------------------
# one series from a table (the analyst's CSV)


@dataclass(frozen=True, eq=False)
class AnomalyResult:
    """Telemanom on one series: the anomalies, every reading's score and what was done to the input.

    Attributes
    ----------
    anomalies : pandas.DataFrame
        One row per anomaly: start, end (first and last flagged reading), detected_at, score,
        readings (see :func:`sequences`).
    scores : pandas.DataFrame
        One row per reading (see :meth:`TelemanomDetector.score`).
    notes : tuple of str
        Treatments applied to the input (sorted, blanks dropped, gaps, naive times read as UTC …).
    train_end : pandas.Timestamp
        First judged time: readings before it trained the predictor and are not judged.
    n_readings, n_train, n_judged : int
        Readings used, readings in the training stretch, readings judged.
    """

    anomalies: pd.DataFrame
    scores: pd.DataFrame
    notes: tuple[str, ...]
    train_end: pd.Timestamp | None
    n_readings: int
    n_train: int
    n_judged: int


def _rows(positions: Sequence[int] | np.ndarray, limit: int = 5) -> str:
    """Spreadsheet row numbers (header = row 1) of 0-based data positions."""
    rows = [str(int(i) + 2) for i in positions[:limit]]
    more = len(positions) - limit
    return ", ".join(rows) + (f" and {more} more" if more > 0 else "")


def _parse_times(raw: pd.Series, column: str, notes: list[str]) -> pd.Series:
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        raise MLError(f"column '{column}' holds numbers, not times; give ISO-8601 times such as "
                      "2026-10-19T06:00:00+00:00")
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        times = raw.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(raw):
        times = raw.dt.tz_localize("UTC")
        notes.append(f"times in '{column}' have no time zone: read as UTC")
    else:
        text = raw.astype("string").str.strip()
        try:
            times = pd.to_datetime(text, errors="coerce", format="ISO8601")
        except (ValueError, TypeError):  # mixed offsets or mixed naive/aware: go through UTC
            times = pd.to_datetime(text, errors="coerce", format="mixed", utc=True)
        bad = np.flatnonzero(times.isna().to_numpy() & text.notna().to_numpy() & (text != "").to_numpy())
        if bad.size:
            shown = ", ".join(f"row {i + 2} {text.iloc[i]!r}" for i in bad[:5])
            more = f" and {bad.size - 5} more" if bad.size > 5 else ""
            raise MLError(f"column '{column}' has text that is not a time: {shown}{more} "
                          "(rows as a spreadsheet shows them, header = row 1); use ISO-8601 times "
                          "such as 2026-10-19T06:00:00+00:00")
        if isinstance(times.dtype, pd.DatetimeTZDtype):
            times = times.dt.tz_convert("UTC")
        else:
            times = times.dt.tz_localize("UTC")
            notes.append(f"times in '{column}' have no time zone: read as UTC")
    return times.astype("datetime64[ns, UTC]")


def _parse_values(raw: pd.Series, column: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(raw):
        raise MLError(f"column '{column}' holds true/false values, not numbers")
    values = pd.to_numeric(raw, errors="coerce") if not pd.api.types.is_numeric_dtype(raw) else raw
    values = values.astype(float)
    text = raw.astype("string").str.strip()
    blank_words = text.str.lower().isin(["", "nan", "na", "n/a", "null", "none"]).fillna(True).to_numpy(bool)
    bad = np.flatnonzero(values.isna().to_numpy() & raw.notna().to_numpy() & ~blank_words)
    if bad.size:
        shown = ", ".join(f"row {i + 2} {text.iloc[i]!r}" for i in bad[:5])
        more = f" and {bad.size - 5} more" if bad.size > 5 else ""
        raise MLError(f"column '{column}' has text where numbers are expected: {shown}{more} "
                      "(rows as a spreadsheet shows them, header = row 1)")
    return values


def detect_anomalies(df: pd.DataFrame, *, time: str, value: str, train_fraction: float = 0.25,
                     detector: TelemanomDetector | None = None, max_missing: float = 0.5) -> AnomalyResult:
    """Telemanom on one series of a table: train on its first stretch, judge the rest.

    Treatment of awkward input (each one is also written to ``notes``):

    * missing column → :class:`MLError` naming the columns present;
    * times: ISO-8601 text or datetimes; text that is not a time → :class:`MLError` with the rows;
      times without a zone are read as UTC; numbers in the time column → :class:`MLError`;
    * values: text that is not a number → :class:`MLError` naming the rows (as a spreadsheet shows
      them, header = row 1) and the text; blank / NaN / infinite values are dropped and counted,
      more than ``max_missing`` of them → :class:`MLError`; rows with a blank time likewise;
    * duplicate times → :class:`MLError` naming the first ones (a series needs one value per time);
    * unsorted times → sorted;
    * gaps: a step longer than ``max_gap`` (detector option, 5 by default) times the training
      stretch's median interval starts a new segment (nothing is resampled or interpolated); the
      first ``l_s`` readings after a gap are not judged;
    * a constant series → no anomalies;
    * too few readings → :class:`MLError` saying how many are needed and why.

    Parameters
    ----------
    df : pandas.DataFrame
        The table.
    time, value : str
        Time column and value column.
    train_fraction : float
        Share of the readings (the first ones) that trains the predictor; they are not judged.
    detector : TelemanomDetector, optional
        Unfitted detector with the wanted options (cloned); defaults otherwise.
    max_missing : float
        Largest share of blank values tolerated.

    Returns
    -------
    AnomalyResult
    """
    template = TelemanomDetector() if detector is None else detector
    if not 0 < train_fraction < 1:
        raise MLError(f"train_fraction must be between 0 and 1 (exclusive), got {train_fraction!r}")
    missing = [c for c in (time, value) if c not in df.columns]
    if missing:
        raise MLError(f"column(s) {', '.join(repr(c) for c in missing)} not in the table; its columns are: "
                      f"{', '.join(map(str, df.columns))}")
    if time == value:
        raise MLError(f"the time and value columns must differ (both are '{time}')")
    if len(df) == 0:
        raise MLError("the table has no rows")
    notes: list[str] = []
    frame = df[[time, value]].reset_index(drop=True)
    times = _parse_times(frame[time], time, notes)
    values = _parse_values(frame[value], value)
    n_rows = len(frame)
    blank = (times.isna() | ~np.isfinite(values)).to_numpy()
    if n_rows and blank.mean() > max_missing:
        raise MLError(f"{int(blank.sum())} of {n_rows} rows have a blank time or a blank / non-finite "
                      f"'{value}' (more than {max_missing:.0%}); nothing sensible can be judged")
    if blank.any():
        notes.append(f"{int(blank.sum())} row(s) with a blank time or a blank / non-finite '{value}' dropped "
                     f"(rows {_rows(np.flatnonzero(blank))})")
    keep = np.flatnonzero(~blank)
    t = pd.DatetimeIndex(times).asi8[keep]  # ns since the epoch, UTC
    v = values.to_numpy()[keep]
    order = np.argsort(t, kind="stable")
    ts = t[order]
    dup = np.flatnonzero(ts[1:] == ts[:-1])
    if dup.size:
        first_time = ts[dup[0]]
        where = keep[order][np.flatnonzero(ts == first_time)]
        others = np.unique(ts[dup]).size - 1
        raise MLError(f"time {pd.Timestamp(first_time, tz='UTC').isoformat()} appears more than once (rows "
                      f"{_rows(np.sort(where))})" + (f", and {others} more time(s) repeat" if others else "")
                      + "; a series needs one value per time: aggregate or remove the duplicates")
    if np.any(order != np.arange(order.size)):
        back = int(np.flatnonzero(np.diff(t) < 0)[0]) + 1
        notes.append(f"times were not in order (first step back at row {keep[back] + 2}): sorted")
    series = pd.Series(v[order], index=pd.to_datetime(ts, unit="ns", utc=True), name=value)
    n = len(series)
    det = clone(template)
    ls = det.l_s
    windows_needed = max(2 * ls, 10)
    need = int(np.ceil((ls + windows_needed) / train_fraction)) + 1
    if n < need:
        raise MLError(f"only {n} usable reading(s) in '{value}'; at least {need} are needed: each "
                      f"prediction uses the {ls} readings before it (l_s), the predictor needs "
                      f"{windows_needed} such windows to learn from, and only the first {train_fraction:.0%} "
                      "of the series trains it (train fraction); the rest is judged")
    if np.nanmax(v) == np.nanmin(v):
        notes.append(f"constant series: every value of '{value}' is {v[0]:g}; nothing can be anomalous")
        scores = pd.DataFrame({"time": series.index, "value": series.to_numpy()})
        scores = scores.reindex(columns=list(SCORE_COLUMNS))
        for col in ("judged", "anomaly", "final"):
            scores[col] = False
        empty = sequences(scores).drop(columns="channel")
        return AnomalyResult(empty, scores, tuple(notes), None, n, 0, 0)
    n_train = int(np.floor(train_fraction * n))
    train_end = series.index[n_train]
    det.fit(series.iloc[:n_train])
    step = np.diff(series.index.as_unit("ns").asi8)
    n_gaps = int((step > det.max_gap * det.interval_).sum()) if det.interval_ > 0 else 0
    if n_gaps:
        notes.append(f"{n_gaps} gap(s) longer than {det.max_gap:g}x the median interval "
                     f"({pd.Timedelta(det.interval_, 'ns')}): each starts a new segment, its first {ls} "
                     "readings are not judged")
    scores = det.score(series, start=train_end)
    notes.append(f"the first {n_train} readings (until {train_end.isoformat()}) trained the predictor "
                 "and are not judged")
    anomalies = sequences(scores, merge_gap=det.batch_size).drop(columns="channel")
    return AnomalyResult(anomalies, scores, tuple(notes), train_end, n, n_train, int(scores["judged"].sum()))


# --------------------------------------------------------------------------------------------
# the plant: one channel per machine × metric

#: Columns of ``ml_anomalies`` that :func:`telemetry_anomalies` fills (``created_at`` is the writer's).
ML_ANOMALIES_COLUMNS: tuple[str, ...] = ("anomaly_id", "machine_id", "time_start", "time_end", "detector",
                                         "target", "score", "severity", "model_version")


def _ns(times: pd.Series | pd.Index) -> np.ndarray:
    """Timezone-aware times as int64 ns since the epoch (NaT → the smallest int64)."""
    return pd.DatetimeIndex(times).as_unit("ns").asi8


def _running_from_states(times: pd.Index, machine: Any, states: pd.DataFrame) -> np.ndarray:
    st = states[states["machine_id"] == machine].sort_values("time_start", kind="stable")
    if st.empty:
        return np.zeros(len(times), bool)
    start, end, t = _ns(st["time_start"]), _ns(st["time_end"]), _ns(times)
    k = np.clip(np.searchsorted(start, t, side="right") - 1, 0, None)
    open_end = st["time_end"].isna().to_numpy()  # the current state of a live machine has no end yet
    inside = (start[k] <= t) & ((t < end[k]) | open_end[k])
    return inside & (st["state"].to_numpy()[k] == "running")


def _running_from_levels(levels: pd.DataFrame, times: pd.Index,
                         cut: pd.Timestamp) -> tuple[np.ndarray | None, str]:
    """Running = motor_current (else spindle_load) above half its 90th percentile before ``cut``."""
    for metric in ("motor_current", "spindle_load"):
        rows = levels[levels["metric"] == metric]
        if rows.empty:
            continue
        level = rows.groupby("time")["value"].last().reindex(times)
        ref = level[(level.index < cut) & level.notna()].to_numpy(float)
        if ref.size:
            return (level > 0.5 * float(np.quantile(ref, 0.9))).to_numpy(bool), metric
    return None, ""


def _severity(score: float) -> str:
    return "high" if score >= 2.0 else "medium" if score >= 0.5 else "low"


def anomaly_id(machine_id: Any, metric: str, start: Any, *, detector: str = DETECTOR,
               model_version: str = MODEL_VERSION) -> str:
    """Deterministic id of an anomaly.

    The md5 of ``ml_anomalies``, machine, metric, start (µs since the epoch), detector and model
    version joined with ``|``: a rerun on the same data with the same model gives the same id (the
    start of a run is causal, so later data does not move it).
    """
    start_us = int(pd.Timestamp(start).as_unit("us").value)
    key = f"ml_anomalies|{machine_id}|{metric}|{start_us}|{detector}|{model_version}"
    return hashlib.md5(key.encode(), usedforsecurity=False).hexdigest()


def telemetry_anomalies(telemetry: pd.DataFrame, *, machine_states: pd.DataFrame | None = None,
                        metrics: Sequence[str] = DEFAULT_METRICS, train_until: Any = None,
                        train_days: float = 7.0, detector: TelemanomDetector | None = None,
                        model_version: str = MODEL_VERSION) -> pd.DataFrame:
    """Telemanom on every machine × metric channel of ``machine_telemetry`` → ``ml_anomalies`` rows.

    The plant's readings depend on the machine state (levels at idle, setup, down and planned
    stops are a fraction of those while running), so a predictor would fire at every stop.
    Only readings taken while the machine is **running** are judged and are training targets;
    the ``l_s`` readings before each may be in any state (they tell the predictor e.g. that the
    drive is still warming up after a stop). Running means: inside a ``machine_states`` interval
    with state ``running`` (an interval without an end is still open); without
    ``machine_states``, ``motor_current`` (else ``spindle_load``) of that minute above half of its
    90th percentile in the training stretch; with neither, every reading is judged (said in the
    notes). Readings whose ``quality`` is not ``good`` are dropped (no ``quality`` column: all
    good). Cumulative counters (``part_count_total``, ``reject_count_total``) are refused.

    Parameters
    ----------
    telemetry : pandas.DataFrame
        ``machine_telemetry`` rows: time (timezone-aware), machine_id, metric, value (and quality).
    machine_states : pandas.DataFrame, optional
        ``machine_states`` rows: machine_id, time_start, time_end, state.
    metrics : sequence of str
        Metrics to judge (by default the four that carry the plant's failure precursors).
    train_until : timestamp, optional
        Readings before it train each channel's predictor; readings from it on are judged. By
        default the first reading plus ``train_days``.
    train_days : float
        Length of the default training stretch.
    detector : TelemanomDetector, optional
        Unfitted detector with the wanted options, cloned per channel.
    model_version : str
        Written to ``model_version`` and part of ``anomaly_id``.

    Returns
    -------
    pandas.DataFrame
        :data:`ML_ANOMALIES_COLUMNS` (anomaly_id, machine_id, time_start, time_end, detector,
        target = the metric, score, severity: high ≥ 2, medium ≥ 0.5, else low; model_version)
        plus ``detected_at``, when a live run would have raised the anomaly — the table has no
        such column: write ``frame[list(ML_ANOMALIES_COLUMNS)]``. ``attrs["notes"]`` says what was
        dropped or skipped and why (e.g. a channel with too little training history).
    """
    missing = [c for c in ("time", "machine_id", "metric", "value") if c not in telemetry.columns]
    if missing:
        raise MLError(f"telemetry: missing column(s) {', '.join(missing)}; machine_telemetry has "
                      "time, machine_id, metric, value, unit, quality")
    counters = sorted(set(metrics) & COUNTER_METRICS)
    if counters:
        raise MLError(f"telemetry: {', '.join(counters)} are cumulative counters (a running total that rolls "
                      "over and resets), not readings Telemanom can predict; judge their increments instead")
    if machine_states is not None:
        missing = [c for c in ("machine_id", "time_start", "time_end", "state")
                   if c not in machine_states.columns]
        if missing:
            raise MLError(f"machine_states: missing column(s) {', '.join(missing)}")
    if not isinstance(telemetry["time"].dtype, pd.DatetimeTZDtype):
        raise MLError("telemetry: column 'time' must hold timezone-aware timestamps, not "
                      f"{telemetry['time'].dtype}")
    template = TelemanomDetector() if detector is None else detector
    notes: list[str] = []
    good = telemetry
    if "quality" in telemetry.columns:
        ok = (telemetry["quality"].astype("string") == "good").fillna(False).to_numpy(bool)
        good = telemetry[ok]
        dropped = int((~ok & telemetry["metric"].isin(list(metrics)).to_numpy(bool)).sum())
        if dropped:
            notes.append(f"{dropped} reading(s) with quality other than 'good' dropped")
    data = good[good["metric"].isin(list(metrics))]
    columns = [*ML_ANOMALIES_COLUMNS, "detected_at"]
    if data.empty:
        out = pd.DataFrame(columns=columns)
        out.attrs["notes"] = [*notes, "no readings of the requested metrics"]
        return out
    if train_until is None:
        cut = data["time"].min() + pd.Timedelta(days=train_days)
    else:
        cut = pd.Timestamp(train_until)
    if cut.tzinfo is None:
        raise MLError(f"train_until {train_until!r} has no time zone")
    levels = good[good["metric"].isin(["motor_current", "spindle_load"])]
    rows = []
    for machine, mdata in data.groupby("machine_id", sort=True):
        wide = mdata.pivot_table(index="time", columns="metric", values="value", aggfunc="last").sort_index()
        if machine_states is not None:
            running = _running_from_states(wide.index, machine, machine_states)
        else:
            running, basis = _running_from_levels(levels[levels["machine_id"] == machine], wide.index, cut)
            if running is None:
                running = np.ones(len(wide), bool)
                notes.append(f"{machine}: no machine_states and no motor_current / spindle_load: "
                             "every reading judged")
            else:
                notes.append(f"{machine}: running taken as {basis} above half its training 90th percentile")
        for metric in wide.columns:
            col = wide[metric].to_numpy(float)
            ok = np.isfinite(col)
            series = pd.Series(col[ok], index=wide.index[ok], name=metric)
            judge = running[ok]
            train = series.index < cut
            det = clone(template)
            try:
                det.fit(series[train], judge=judge[train])
            except MLError as exc:
                notes.append(f"{machine} {metric}: not judged ({exc})")
                continue
            for r in det.detect(series, judge=judge, start=cut).itertuples(index=False):
                rows.append((anomaly_id(machine, metric, r.start, model_version=model_version), machine,
                             r.start, r.end, DETECTOR, metric, float(r.score), _severity(float(r.score)),
                             model_version, r.detected_at))
    out = pd.DataFrame(rows, columns=columns)
    for col in ("time_start", "time_end", "detected_at"):
        out[col] = pd.to_datetime(out[col], utc=True)
    out["score"] = out["score"].astype(float)
    out = out.sort_values(["time_start", "machine_id", "target"], kind="stable").reset_index(drop=True)
    out.attrs["notes"] = notes
    return out
