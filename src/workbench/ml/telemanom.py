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

The detector applied to data: :func:`~workbench.ml.telemanom_plant.telemetry_anomalies`
(:mod:`workbench.ml.telemanom_plant`) applies it to the plant (channels = machine × metric,
running readings only, see there); :func:`~workbench.ml.telemanom_series.detect_anomalies`
(:mod:`workbench.ml.telemanom_series`) to one series of an analyst's table, with the treatment of
gaps, duplicates, blanks and text stated there. Both are re-exported here.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import Ridge
from threadpoolctl import ThreadpoolController

from workbench.errors import MLError

#: Candidate ``z`` of the dynamic threshold: 2.5, 3.0, …, 12.0 (Telemanom's range, its fallback 12 included).
DEFAULT_Z: tuple[float, ...] = tuple(float(z) for z in np.arange(2.5, 12.01, 0.5))
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
# the table and plant API, re-exported

# They live in telemanom_series and telemanom_plant, which import this module: loaded on first use
# (PEP 562), so that any of the three can be imported first and
# ``from workbench.ml.telemanom import detect_anomalies`` keeps working.
_MOVED: dict[str, str] = {
    **dict.fromkeys(("AnomalyResult", "detect_anomalies", "_parse_times", "_parse_values", "_rows"),
                    "telemanom_series"),
    **dict.fromkeys(("COUNTER_METRICS", "DEFAULT_METRICS", "ML_ANOMALIES_COLUMNS", "anomaly_id",
                     "telemetry_anomalies", "_ns", "_running_from_levels", "running_from_states",
                     "_severity"), "telemanom_plant"),
}

__all__ = [
    "ANOMALY_COLUMNS", "COUNTER_METRICS", "DEFAULT_METRICS", "DEFAULT_Z", "DETECTOR", "ML_ANOMALIES_COLUMNS",
    "MODEL_VERSION", "SCORE_COLUMNS", "AnomalyResult", "LaggedGBR", "Predictor", "RidgeAR",
    "TelemanomDetector", "Threshold", "anomaly_id", "detect_anomalies", "dynamic_threshold", "judge_batches",
    "prune_sequences", "sequences", "telemetry_anomalies",
]

if TYPE_CHECKING:  # what static tools see; at run time __getattr__ below
    from workbench.ml.telemanom_plant import (
        COUNTER_METRICS,
        DEFAULT_METRICS,
        ML_ANOMALIES_COLUMNS,
        anomaly_id,
        telemetry_anomalies,
    )
    from workbench.ml.telemanom_series import AnomalyResult, detect_anomalies


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        return getattr(importlib.import_module(f"workbench.ml.{_MOVED[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_MOVED})
