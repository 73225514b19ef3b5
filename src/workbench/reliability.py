"""Reliability of machines: MTBF and MTTR from downtime events, and Weibull fits of the times
between failures with right-censoring.

Definitions used here
---------------------
* A **failure** is an unplanned stop (``planned`` is not true) whose ``reason_category`` is in
  ``categories``. By default every unplanned category counts except ``Changeover`` (a changeover
  is a set-up, not a breakdown); unplanned stops without a category count as failures too,
  reported under ``"(uncategorised)"`` — a blank reason code is far more often a breakdown
  nobody coded than a non-event.
* **Uptime** is the observation window minus every stop in it (failures, changeovers, planned
  stops — all clipped to the window), minus optional unscheduled time per machine.
* **MTBF** = uptime / failures; **MTTR** = mean duration of the failure stops (inside the window).
* A failure recorded in pieces — cut at a shift boundary, or interrupted by a break or another
  stop with no running time in between — is **one** failure: it counts once, its repair time is
  the sum of its failure pieces (the break is not repair time), and it never yields a time
  between failures of zero. Its category is that of its first piece.
* Times between failures are uptime intervals: from the end of one failure to the start of the
  next, less any other stop in between. The interval from the last failure to the end of the
  window is right-censored (the machine had not failed yet). The interval before the first
  failure is left out by default: the previous failure lies before the window, so its length is
  unknown.

The Weibull fit is maximum likelihood on failures and right-censored times, with Fisher-matrix
confidence intervals (observed information, normal on the log scale) — the convention of
Weibull++, Minitab and the Python ``reliability`` package.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from workbench.errors import ReliabilityError

EXCLUDED_BY_DEFAULT = ("Changeover",)
UNCATEGORISED = "(uncategorised)"
_REQUIRED = ("machine_id", "time_start", "time_end")


# ---------------------------------------------------------------------------------------------
# downtime → failures, uptime


def _timestamp(value: Any, what: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise ReliabilityError(f"{what} is not a timestamp: {value!r}") from None
    if ts is pd.NaT:
        raise ReliabilityError(f"{what} is missing")
    if ts.tzinfo is None:
        raise ReliabilityError(f"{what} has no time zone ({ts}); give a tz-aware timestamp")
    return ts


def _windows(machines: Iterable[str], start: Any, end: Any,
             windows: pd.DataFrame | None) -> dict[str, tuple[pd.Timestamp, pd.Timestamp]]:
    out: dict[str, tuple[pd.Timestamp, pd.Timestamp]] = {}
    if windows is not None:
        for col in ("machine_id", "start", "end"):
            if col not in windows.columns:
                raise ReliabilityError(f"windows needs column '{col}'")
        for _, w in windows.iterrows():
            out[str(w["machine_id"])] = (_timestamp(w["start"], f"window start of {w['machine_id']}"),
                                         _timestamp(w["end"], f"window end of {w['machine_id']}"))
    elif start is None or end is None:
        raise ReliabilityError("give the observation window: start= and end=, or windows= per machine")
    else:
        s, e = _timestamp(start, "start"), _timestamp(end, "end")
        out = {m: (s, e) for m in machines}
    for m, (s, e) in out.items():
        if e <= s:
            raise ReliabilityError(f"observation window of machine {m} ends ({e}) before it starts ({s})")
    return out


def _prepare(downtime: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in _REQUIRED if c not in downtime.columns]
    if missing:
        raise ReliabilityError(f"downtime_events frame needs column(s) {', '.join(missing)}")
    df = downtime.copy()
    df["_row"] = np.arange(1, len(df) + 1)
    for col in ("time_start", "time_end"):
        df[col] = pd.to_datetime(df[col])
        if len(df) and df[col].dt.tz is None:
            raise ReliabilityError(f"downtime_events.{col} has timestamps without a time zone")
        bad = df[df[col].isna()]
        if len(bad):
            r = bad.iloc[0]
            raise ReliabilityError(f"downtime_events row {r['_row']} (machine {r['machine_id']}): "
                                   f"{col} is missing")
    neg = df[df["time_end"] < df["time_start"]]
    if len(neg):
        r = neg.iloc[0]
        raise ReliabilityError(f"downtime_events row {r['_row']} (machine {r['machine_id']}): negative "
                               f"duration, time_end {r['time_end']} before time_start {r['time_start']}")
    if "duration_min" in df.columns:
        negd = df[df["duration_min"] < 0]
        if len(negd):
            r = negd.iloc[0]
            raise ReliabilityError(f"downtime_events row {r['_row']} (machine {r['machine_id']}): negative "
                                   f"duration_min {r['duration_min']}")
    df["machine_id"] = df["machine_id"].astype(str)
    planned = df["planned"] if "planned" in df.columns else pd.Series(False, index=df.index)
    df["_planned"] = planned.astype("boolean").fillna(False).astype(bool)
    cat = df["reason_category"] if "reason_category" in df.columns else pd.Series(None, index=df.index)
    df["_category"] = cat.astype(object).where(cat.notna(), UNCATEGORISED).astype(str)
    df = df.sort_values(["machine_id", "time_start", "time_end"], kind="stable")
    # Overlapping stops of one machine would count the same minutes twice.
    prev_end = df.groupby("machine_id")["time_end"].shift()
    prev_row = df.groupby("machine_id")["_row"].shift()
    over = df[prev_end.notna() & (df["time_start"] < prev_end)]
    if len(over):
        r = over.iloc[0]
        raise ReliabilityError(
            f"overlapping stops on machine {r['machine_id']}: row {int(prev_row[r.name])} ends "
            f"{prev_end[r.name]} after row {r['_row']} starts {r['time_start']}")
    return df


def _is_failure(df: pd.DataFrame, categories: Sequence[str] | None) -> pd.Series:
    unplanned = ~df["_planned"]
    if categories is None:
        return unplanned & ~df["_category"].isin(EXCLUDED_BY_DEFAULT)
    wanted = {UNCATEGORISED if c is None else str(c) for c in categories}
    return unplanned & df["_category"].isin(wanted)


#: Less uptime than this (minutes) between two failure pieces makes them one failure.
_SAME_FAILURE_MIN = 1e-6


def _failure_runs(stops: pd.DataFrame, is_fail: np.ndarray) -> np.ndarray:
    """Failure id of each row of one machine's clipped, time-ordered stops (−1: not a failure).

    Consecutive failure rows share an id when no uptime lies between them (only other stops, or
    nothing): a source that cuts a stop at shift boundaries or around a break must not turn one
    breakdown into several.
    """
    runs = np.full(len(stops), -1, dtype=np.int64)
    run, prev_end, down = -1, None, 0.0
    for i, (s, e, minutes, fail) in enumerate(zip(stops["_s"], stops["_e"], stops["_min"], is_fail,
                                                   strict=True)):
        if not fail:
            down += minutes
            continue
        if prev_end is None or (s - prev_end).total_seconds() / 60.0 - down > _SAME_FAILURE_MIN:
            run += 1
        runs[i], prev_end, down = run, e, 0.0
    return runs


def _clip(df: pd.DataFrame, s: pd.Timestamp, e: pd.Timestamp) -> pd.DataFrame:
    inside = df[(df["time_end"] > s) & (df["time_start"] < e)].copy()
    inside["_s"] = inside["time_start"].clip(lower=s)
    inside["_e"] = inside["time_end"].clip(upper=e)
    inside["_min"] = (inside["_e"] - inside["_s"]).dt.total_seconds() / 60.0
    return inside


def _unscheduled(unscheduled: pd.DataFrame | Mapping[str, float] | None) -> dict[str, float]:
    if unscheduled is None:
        return {}
    if isinstance(unscheduled, pd.DataFrame):
        for col in ("machine_id", "minutes"):
            if col not in unscheduled.columns:
                raise ReliabilityError(f"unscheduled needs column '{col}'")
        items = zip(unscheduled["machine_id"].astype(str), unscheduled["minutes"], strict=True)
    else:
        items = ((str(k), v) for k, v in unscheduled.items())
    out: dict[str, float] = {}
    for m, v in items:
        if not v >= 0:
            raise ReliabilityError(f"unscheduled minutes of machine {m} must be ≥ 0 (got {v})")
        out[m] = out.get(m, 0.0) + float(v)
    return out


def mtbf_mttr(downtime: pd.DataFrame, *, start: Any = None, end: Any = None,
              windows: pd.DataFrame | None = None, categories: Sequence[str] | None = None,
              by_category: bool = False, machines: Sequence[str] | None = None,
              unscheduled: pd.DataFrame | Mapping[str, float] | None = None) -> pd.DataFrame:
    """MTBF and MTTR per machine (and optionally per failure category) from downtime events.

    Parameters
    ----------
    downtime : DataFrame
        Rows of ``downtime_events``: ``machine_id``, ``time_start``, ``time_end`` (tz-aware),
        ``planned`` and ``reason_category`` (both optional; missing means unplanned and
        uncategorised). Stops are clipped to the window.
    start, end : timestamp
        Observation window for every machine (tz-aware). Or give ``windows``.
    windows : DataFrame, optional
        One window per machine: ``machine_id``, ``start``, ``end``.
    categories : sequence of str, optional
        Failure categories. Default: every unplanned category except ``Changeover``, blank
        categories included (see the module notes). ``None`` inside the list means blank.
    by_category : bool
        One row per machine and failure category instead of per machine. The category's MTBF
        uses the machine's whole uptime (each category is a competing failure mode).
    machines : sequence of str, optional
        Machines to report even without any stop (with ``start``/``end``).
    unscheduled : DataFrame or mapping, optional
        Minutes per machine inside the window when it was not scheduled to run (no shift, no
        demand) that are *not* already downtime events; subtracted from uptime. DataFrame
        columns ``machine_id`` and ``minutes``.

    Returns
    -------
    DataFrame
        ``machine_id`` [, ``category``], ``window_h``, ``uptime_h``, ``failures``,
        ``failure_downtime_h``, ``mtbf_h`` (NaN without failures), ``mttr_min`` (NaN without
        failures), ``censored_h`` (uptime from the end of the last failure to the end of the
        window — the running time not yet ended by a failure; the whole uptime if none).

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.Timestamp("2026-01-05 06:00", tz="UTC")
    >>> stops = pd.DataFrame({"machine_id": ["M1", "M1"],
    ...     "time_start": [t + pd.Timedelta(hours=2), t + pd.Timedelta(hours=6)],
    ...     "time_end": [t + pd.Timedelta(hours=3), t + pd.Timedelta(hours=6.5)],
    ...     "planned": [False, False], "reason_category": ["Mechanical Failure", "Tooling"]})
    >>> r = mtbf_mttr(stops, start=t, end=t + pd.Timedelta(hours=10))
    >>> r[["failures", "uptime_h", "mtbf_h", "mttr_min"]].to_dict("records")
    [{'failures': 2, 'uptime_h': 8.5, 'mtbf_h': 4.25, 'mttr_min': 45.0}]
    """
    df = _prepare(downtime)
    names = sorted(set(df["machine_id"]) | set(map(str, machines or ())))
    if windows is not None:
        names = sorted(set(names) | set(windows["machine_id"].astype(str)))
    wins = _windows(names, start, end, windows)
    skipped = sorted(set(df["machine_id"]) - set(wins))
    if skipped:
        raise ReliabilityError(f"no observation window for machine(s) {', '.join(skipped)}")
    off = _unscheduled(unscheduled)
    rows: list[dict[str, Any]] = []
    for m in names:
        s, e = wins[m]
        stops = _clip(df[df["machine_id"] == m], s, e)
        is_fail = _is_failure(stops, categories).to_numpy()
        fail = stops[is_fail].assign(_run=_failure_runs(stops, is_fail)[is_fail])
        fail["_category"] = fail.groupby("_run")["_category"].transform("first")
        window_min = (e - s).total_seconds() / 60.0
        uptime_min = window_min - stops["_min"].sum() - off.get(m, 0.0)
        if uptime_min < 0:
            raise ReliabilityError(f"machine {m}: stops and unscheduled time exceed the window")
        last_end = fail["_e"].max() if len(fail) else s
        after = stops[stops["_s"] >= last_end]["_min"].sum()
        censored_min = ((e - last_end).total_seconds() / 60.0 - after if len(fail)
                        else uptime_min)
        groups = ([(c, g) for c, g in fail.groupby("_category")] if by_category else [(None, fail)])
        for cat, g in groups:
            n = int(g["_run"].nunique())
            rec: dict[str, Any] = {"machine_id": m}
            if by_category:
                rec["category"] = cat
            rec.update(window_h=window_min / 60.0, uptime_h=uptime_min / 60.0, failures=n,
                       failure_downtime_h=g["_min"].sum() / 60.0,
                       mtbf_h=uptime_min / 60.0 / n if n else math.nan,
                       mttr_min=g["_min"].sum() / n if n else math.nan,
                       censored_h=censored_min / 60.0)
            rows.append(rec)
    cols = ["machine_id", *(["category"] if by_category else []), "window_h", "uptime_h", "failures",
            "failure_downtime_h", "mtbf_h", "mttr_min", "censored_h"]
    return pd.DataFrame(rows, columns=cols)


def times_between_failures(downtime: pd.DataFrame, *, start: Any = None, end: Any = None,
                           windows: pd.DataFrame | None = None,
                           categories: Sequence[str] | None = None,
                           include_first: bool = False) -> pd.DataFrame:
    """Uptime between failures per machine, with the open interval at the end right-censored.

    Parameters
    ----------
    downtime, start, end, windows, categories
        As in :func:`mtbf_mttr`.
    include_first : bool
        Also return the interval from the window start to the first failure as a failure time.
        Off by default: the failure before it lies outside the window, so it is not a complete
        time between failures.

    Returns
    -------
    DataFrame
        ``machine_id``, ``time_h`` (uptime in hours), ``censored`` (True for the last, open
        interval), ``ends_at`` (start of the failure ending the interval, or the window end).
    """
    df = _prepare(downtime)
    wins = _windows(sorted(set(df["machine_id"])), start, end, windows)
    out: list[dict[str, Any]] = []
    for m in sorted(set(df["machine_id"])):
        if m not in wins:
            raise ReliabilityError(f"no observation window for machine {m}")
        s, e = wins[m]
        stops = _clip(df[df["machine_id"] == m], s, e)
        is_fail = _is_failure(stops, categories).to_numpy()
        runs = _failure_runs(stops, is_fail)
        cursor, down, first, last_run = s, 0.0, True, -1
        for (_, st), f, run in zip(stops.iterrows(), is_fail, runs, strict=True):
            if not f:
                down += st["_min"]
                continue
            if run == last_run:  # the next piece of the same failure: no interval ends here
                cursor, down = st["_e"], 0.0
                continue
            last_run = run
            up_h = ((st["_s"] - cursor).total_seconds() / 60.0 - down) / 60.0
            if include_first or not first:
                out.append({"machine_id": m, "time_h": up_h, "censored": False, "ends_at": st["_s"]})
            cursor, down, first = st["_e"], 0.0, False
        if not first or include_first:
            up_h = ((e - cursor).total_seconds() / 60.0 - down) / 60.0
            if up_h > 0:
                out.append({"machine_id": m, "time_h": up_h, "censored": True, "ends_at": e})
    return pd.DataFrame(out, columns=["machine_id", "time_h", "censored", "ends_at"])


NOT_SCHEDULED = "(not scheduled)"
#: Machine states in which the machine counts as available (up, or stopped for a reason that is
#: a stop of its own); any other time is not scheduled.
AVAILABLE_STATES = ("running", "idle", "down", "setup")


def _union(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], ends[order]
    out_s: list[Any] = []
    out_e: list[Any] = []
    for s, e in zip(starts, ends, strict=True):
        if out_e and s <= out_e[-1]:
            out_e[-1] = max(out_e[-1], e)
        else:
            out_s.append(s)
            out_e.append(e)
    return np.array(out_s, dtype=starts.dtype), np.array(out_e, dtype=ends.dtype)


def unscheduled_stops(states: pd.DataFrame, downtime: pd.DataFrame, *, start: Any, end: Any,
                      machines: Sequence[str] | None = None) -> pd.DataFrame:
    """The time in a window when a machine was not scheduled, as planned pseudo-stops.

    Uptime in :func:`mtbf_mttr` and :func:`times_between_failures` is the window minus the
    stops. Weekends, shift gaps, breaks and time without data are usually not downtime events,
    so without these rows they would count as uptime and inflate MTBF. Appended to the downtime
    events they are subtracted like any planned stop and never count as failures.

    Parameters
    ----------
    states : DataFrame
        ``machine_states`` rows (``machine_id``, ``time_start``, ``time_end``, ``state``).
    downtime : DataFrame
        The downtime events the result will be combined with (``machine_id``, ``time_start``,
        ``time_end``); their time is left out, so the combination never overlaps.
    start, end : timestamp
        The observation window (tz-aware).
    machines : sequence of str, optional
        Machines to cover even without any state in the window (then the whole window is not
        scheduled: no data is never counted as uptime).

    Returns
    -------
    DataFrame
        ``machine_id``, ``time_start``, ``time_end``, ``duration_min``, ``planned`` (True),
        ``reason_category`` (:data:`NOT_SCHEDULED`): every stretch of the window in which the
        machine was in none of :data:`AVAILABLE_STATES` and had no downtime event.
    """
    s, e = _timestamp(start, "start"), _timestamp(end, "end")
    if e <= s:
        raise ReliabilityError(f"the window ends ({e}) before it starts ({s})")
    for frame, name in ((states, "machine_states"), (downtime, "downtime_events")):
        missing = [c for c in _REQUIRED if c not in frame.columns] if len(frame) else []
        if missing:
            raise ReliabilityError(f"{name} frame needs column(s) {', '.join(missing)}")
    if len(states) and "state" not in states.columns:
        raise ReliabilityError("machine_states frame needs column 'state'")

    def micros(values: Any) -> np.ndarray:
        return pd.DatetimeIndex(pd.to_datetime(values, utc=True)).as_unit("us").asi8

    lo, hi = micros([s, e])
    available = states[states["state"].isin(AVAILABLE_STATES)] if len(states) else states
    busy = [f for f in (available, downtime) if len(f)]
    names = set(map(str, machines or ())) | {str(m) for f in (states, downtime) if len(f)
                                             for m in f["machine_id"].unique()}
    rows = []
    for m in sorted(names):
        parts = [f[f["machine_id"].astype(str) == m] for f in busy]
        bs = np.concatenate([micros(p["time_start"]) for p in parts] or [np.array([], np.int64)])
        be = np.concatenate([micros(p["time_end"]) for p in parts] or [np.array([], np.int64)])
        bs, be = np.clip(bs, lo, hi), np.clip(be, lo, hi)
        keep = be > bs
        us, ue = _union(bs[keep], be[keep])
        # The gaps between the busy stretches (and before the first / after the last one).
        for gs, ge in zip(np.concatenate([[lo], ue]), np.concatenate([us, [hi]]), strict=True):
            if ge > gs:
                rows.append((m, gs, ge))
    out = pd.DataFrame(rows, columns=["machine_id", "time_start", "time_end"])
    for col in ("time_start", "time_end"):
        out[col] = pd.to_datetime(out[col].astype("int64"), unit="us", utc=True)
    out["duration_min"] = (out["time_end"] - out["time_start"]).dt.total_seconds() / 60.0
    out["planned"] = True
    out["reason_category"] = NOT_SCHEDULED
    return out


# ---------------------------------------------------------------------------------------------
# Weibull


@dataclass(frozen=True)
class WeibullFit:
    """A two-parameter Weibull fitted by maximum likelihood.

    ``R(t) = exp(-(t/η)^β)``. Standard errors come from the observed Fisher information;
    intervals are normal on the log scale: ``θ · exp(± z · se(θ)/θ)`` (``ci_method``).
    """

    shape: float
    scale: float
    shape_se: float
    scale_se: float
    shape_ci: tuple[float, float]
    scale_ci: tuple[float, float]
    confidence: float
    covariance: tuple[tuple[float, float], tuple[float, float]]
    log_likelihood: float
    n_failures: int
    n_censored: int
    ci_method: str = "fisher-matrix (observed information, log-normal)"

    @property
    def mean(self) -> float:
        """Mean life η·Γ(1 + 1/β) (the MTBF implied by the fit)."""
        return float(self.scale * special.gamma(1.0 + 1.0 / self.shape))

    def reliability(self, t: float | np.ndarray) -> float | np.ndarray:
        """Probability of surviving past ``t`` (same unit as the data)."""
        arr = np.asarray(t, dtype=float)
        if np.any(arr < 0):
            raise ReliabilityError("reliability is defined for t ≥ 0")
        out = np.exp(-np.power(arr / self.scale, self.shape))
        return float(out) if out.ndim == 0 else out

    def hazard(self, t: float | np.ndarray) -> float | np.ndarray:
        """Instantaneous failure rate at ``t``: (β/η)(t/η)^(β-1)."""
        arr = np.asarray(t, dtype=float)
        if np.any(arr < 0):
            raise ReliabilityError("the hazard is defined for t ≥ 0")
        with np.errstate(divide="ignore"):
            out = (self.shape / self.scale) * np.power(arr / self.scale, self.shape - 1.0)
        return float(out) if out.ndim == 0 else out

    def b_life(self, p: float) -> float:
        """Time by which ``p`` percent of units have failed (``b_life(10)`` is the B10 life)."""
        if not 0 < p < 100:
            raise ReliabilityError(f"B-life percentage must be between 0 and 100 (got {p})")
        return float(self.scale * (-math.log1p(-p / 100.0)) ** (1.0 / self.shape))


def _as_times(values: Iterable[float], what: str) -> np.ndarray:
    arr = np.asarray(list(values), dtype=float)
    bad = np.flatnonzero(~np.isfinite(arr) | (arr <= 0))
    if bad.size:
        i = int(bad[0])
        raise ReliabilityError(f"{what}[{i}] = {float(arr[i])!r}: times must be positive and finite")
    return arr


def fit_weibull(failures: Iterable[float], *, right_censored: Iterable[float] = (),
                confidence: float = 0.95) -> WeibullFit:
    """Fit a 2-parameter Weibull by maximum likelihood, with right-censored times.

    Parameters
    ----------
    failures : iterable of float
        Times to failure (or between failures), > 0.
    right_censored : iterable of float
        Times at which units were still running (suspensions), > 0.
    confidence : float
        Two-sided confidence level of the intervals.

    Returns
    -------
    WeibullFit

    Notes
    -----
    The shape solves the profile score equation
    ``Σ t^β ln t / Σ t^β − 1/β − mean(ln t_failures) = 0`` (sums over all times), which is
    monotone in β, so a bracketing root finder is exact and cannot wander; then
    ``η = (Σ t^β / r)^(1/β)``.

    Examples
    --------
    >>> fit = fit_weibull([58, 75, 36, 52, 63, 65, 22, 17, 28, 64, 23, 40, 73, 45, 52,
    ...                    36, 52, 60, 13, 55, 82, 55, 34, 57, 23, 42, 66, 35, 34, 25])
    >>> round(fit.scale, 3), round(fit.shape, 4)
    (51.858, 2.8009)
    """
    f = _as_times(failures, "failures")
    c = _as_times(right_censored, "right_censored")
    if f.size < 2:
        raise ReliabilityError(f"a Weibull fit needs at least 2 failures (got {f.size})")
    if np.unique(f).size < 2:
        raise ReliabilityError("a Weibull fit needs at least 2 distinct failure times")
    if not 0 < confidence < 1:
        raise ReliabilityError(f"confidence must be between 0 and 1 (got {confidence})")
    everything = np.concatenate([f, c])
    # Scaling by the largest time keeps t^β finite for any β the root finder tries.
    unit = everything.max()
    t, tf = everything / unit, f / unit
    lt, mean_lf, r = np.log(t), np.log(tf).mean(), f.size

    def score(beta: float) -> float:
        w = np.power(t, beta)
        return float((w * lt).sum() / w.sum() - 1.0 / beta - mean_lf)

    lo, hi = 1e-3, 1.0
    while score(hi) < 0:
        hi *= 2.0
        if hi > 1e4:  # pragma: no cover - only for degenerate data
            raise ReliabilityError("the Weibull shape does not converge (failure times nearly equal)")
    from scipy import optimize  # imported by the one function that needs it (0.3 s)

    beta = float(optimize.brentq(score, lo, hi, xtol=1e-14, rtol=1e-13, maxiter=500))
    eta = float((np.power(t, beta).sum() / r) ** (1.0 / beta) * unit)

    z = np.power(everything / eta, beta)
    u = np.log(everything / eta)
    lf = np.log(f / eta)
    loglik = float(r * math.log(beta) - r * math.log(eta) + (beta - 1.0) * lf.sum() - z.sum())
    # Observed information (negative Hessian of the log-likelihood) in (β, η).
    i_bb = r / beta**2 + float((z * u * u).sum())
    i_ee = (beta / eta**2) * ((beta + 1.0) * float(z.sum()) - r)
    i_be = (r - float(z.sum()) - beta * float((z * u).sum())) / eta
    info = np.array([[i_bb, i_be], [i_be, i_ee]])
    cov = np.linalg.inv(info)
    se_b, se_e = math.sqrt(cov[0, 0]), math.sqrt(cov[1, 1])
    q = float(special.ndtri(0.5 + confidence / 2.0))
    return WeibullFit(
        shape=float(beta), scale=eta, shape_se=se_b, scale_se=se_e,
        shape_ci=(beta * math.exp(-q * se_b / beta), beta * math.exp(q * se_b / beta)),
        scale_ci=(eta * math.exp(-q * se_e / eta), eta * math.exp(q * se_e / eta)),
        confidence=confidence,
        covariance=((float(cov[0, 0]), float(cov[0, 1])), (float(cov[1, 0]), float(cov[1, 1]))),
        log_likelihood=loglik, n_failures=int(r), n_censored=int(c.size))


def fit_weibull_tbf(tbf: pd.DataFrame, *, confidence: float = 0.95,
                    machine: str | None = None) -> WeibullFit:
    """Fit a Weibull to the output of :func:`times_between_failures` (one machine or pooled).

    Parameters
    ----------
    tbf : DataFrame
        ``machine_id``, ``time_h``, ``censored``.
    confidence : float
        Two-sided confidence level.
    machine : str, optional
        Fit only this machine's intervals; by default all rows are pooled (machines of one type).
    """
    rows = tbf if machine is None else tbf[tbf["machine_id"] == machine]
    where = f"machine {machine}" if machine is not None else "the pooled machines"
    n_fail = int((~rows["censored"].astype(bool)).sum())
    if n_fail < 2:
        raise ReliabilityError(f"a Weibull fit needs at least 2 failures; {where} has {n_fail}")
    cens = rows["censored"].astype(bool)
    return fit_weibull(rows.loc[~cens, "time_h"], right_censored=rows.loc[cens, "time_h"],
                       confidence=confidence)


__all__ = ["AVAILABLE_STATES", "NOT_SCHEDULED", "WeibullFit", "fit_weibull", "fit_weibull_tbf", "mtbf_mttr",
           "times_between_failures", "unscheduled_stops"]
