"""Model features from the canonical tables, computed set-based and leakage-safe.

:func:`stop_features` gives one row per downtime event (the root-cause classifier's input);
:func:`hourly_features` gives one row per machine × part × hour (the scrap anomaly detector's).

Set-based means whole tables at once: windows are found with one sorted search over all events
(``numpy.searchsorted`` on a (series, time) key), aggregates with ``bincount`` over the gathered
window rows, "latest earlier X" with ``pandas.merge_asof`` — never one query or loop iteration
per event (``benchmarks/bench_ml.py`` compares the two on the same stops).

Leakage-safe means a stop's features use only what was known when the stop began: telemetry,
scrap, production and earlier stops strictly before its ``time_start``; the only exceptions are
the stop's own duration, state and fault code, which the operator sees when coding the stop (and
the duration only once the stop has ended: pass ``include_duration=False`` for an open stop).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from workbench.errors import MLError

#: Analog channels summarised over the window before a stop (the cumulative counters
#: ``part_count_total`` / ``reject_count_total`` are not levels and are left out).
TELEMETRY_METRICS: tuple[str, ...] = (
    "vibration_rms", "hydraulic_pressure", "motor_current", "drive_temp", "spindle_load")
#: The plant's downtime taxonomy (DESIGN.md), in its agreed order.
CATEGORIES: tuple[str, ...] = (
    "Mechanical Failure", "Electrical Failure", "Tooling", "Material", "Operator", "Quality Hold",
    "Changeover", "Scheduled Maintenance", "No Demand")
#: Scrap categories counted separately before a stop (rejects carry these taxonomy codes).
SCRAP_CATEGORIES: tuple[str, ...] = ("Material", "Quality Hold")
TELEMETRY_STATS: tuple[str, ...] = ("last", "mean", "slope", "std")
NONE_LEVEL = "none"
UNKNOWN_LEVEL = "unknown"
_US_PER_MIN = 60_000_000


def slug(text: str) -> str:
    """Column-name form of a category: ``"Quality Hold"`` → ``"quality_hold"``."""
    return re.sub(r"[^0-9a-z]+", "_", str(text).lower()).strip("_")


def _build_feature_docs() -> dict[str, str]:
    docs = {
        "machine_id": "categorical: the machine (failure rates and telemetry levels differ per machine)",
        "state": ("categorical: machine state at time_start from machine_states (down, setup, "
                  "planned_stop; 'unknown' without machine_states)"),
        "fault_code": "categorical: PLC fault code of the stop; 'none' when the PLC raised none",
        "part_number": ("categorical: part of the latest production event before time_start; "
                        "'unknown' without production_events or before the first one"),
        "shift": "categorical: shift letter of the stop ('unknown' if blank)",
        "hour_of_day": "hour of time_start in the plant time zone (tz), 0-23",
        "duration_min": ("minutes the stop lasted: known once it ended, so a prediction for a stop that is "
                         "still open must be made with include_duration=False"),
    }
    for m in TELEMETRY_METRICS:
        docs[f"{m}_last"] = f"last good {m} reading in the window before time_start"
        docs[f"{m}_mean"] = f"mean of the good {m} readings in the window"
        docs[f"{m}_slope"] = (f"least-squares slope of {m} against time over the window, per hour "
                              "(NaN with fewer than 2 readings)")
        docs[f"{m}_std"] = f"sample standard deviation (ddof=1) of the good {m} readings in the window"
    for c in CATEGORIES:
        docs[f"min_since_{slug(c)}"] = (
            f"minutes from the end of the machine's latest earlier stop whose ENTERED category is {c} to "
            "time_start (NaN: none in the data; blank-coded earlier stops count for no category)"
            + (" — i.e. time since the last maintenance" if c == "Scheduled Maintenance" else ""))
    docs["min_since_prev_stop"] = ("minutes from the end of the machine's latest earlier stop (any code, "
                                   "blank included) to time_start; 0 when the stop continues one cut at a "
                                   "shift boundary")
    docs["tool_run_min"] = ("running minutes (machine_states) between the end of the machine's latest "
                            "earlier stop entered as Tooling and time_start (NaN: no Tooling stop yet)")
    docs["run_min_window"] = "running minutes (machine_states) in the window before time_start"
    docs["scrap_qty_window"] = ("scrapped quantity (scrap_events) on the machine in the window before "
                                "time_start")
    for c in SCRAP_CATEGORIES:
        docs[f"scrap_{slug(c)}_qty_window"] = f"the part of scrap_qty_window whose scrap_category is {c}"
    return docs


#: Every column :func:`stop_features` returns, with what it means. "The window" is the
#: ``window_min`` minutes before the stop's ``time_start`` (start excluded).
FEATURE_DOCS: dict[str, str] = _build_feature_docs()
CATEGORICAL_FEATURES: tuple[str, ...] = ("machine_id", "state", "fault_code", "part_number", "shift")

#: Every column :func:`hourly_features` returns, with what it means.
HOURLY_FEATURE_DOCS: dict[str, str] = {
    "machine_id": "key: machine", "part_number": "key: part produced",
    "hour": "key: start of the UTC hour (production events in [hour, hour + 1 h))",
    "produced": "cycles completed in the hour (good_count + reject_count of production_events)",
    "rejects": "reject_count in the hour", "scrap_rate": "rejects / produced (NaN when nothing was produced)",
    "scrap_qty": "scrapped quantity (scrap_events) in the hour",
    **{f"scrap_{slug(c)}_qty": f"scrapped quantity whose scrap_category is {c}" for c in SCRAP_CATEGORIES},
    "work_order": "most frequent work order of the hour's production events",
    "operator_id": "most frequent operator of the hour's production events",
    "n_work_orders": "distinct work orders in the hour (> 1: a changeover inside the hour)",
    "n_operators": "distinct operators in the hour (> 1: an operator change inside the hour)",
    "min_since_tooling_stop": ("minutes from the end of the machine's latest stop entered as Tooling to the "
                               "hour's start (NaN: none yet)"),
    "tool_run_min": "running minutes since that Tooling stop, at the hour's start (needs machine_states)",
    "min_since_changeover": ("minutes from the end of the machine's latest setup interval (machine_states; "
                             "or stop entered as Changeover without them) to the hour's start"),
    "spc_n": "quality measurements of the part on the machine in the hour (0 without them)",
    "spc_abs_dev_tol": ("largest |mean - nominal| / (half tolerance) over the part's characteristics in the "
                        "hour: 1 = the hour's mean sits on a specification limit (NaN without data)"),
}


# --------------------------------------------------------------------------------------------
# helpers


def _require(df: pd.DataFrame | None, name: str, columns: Sequence[str]) -> None:
    if df is None:
        return
    if not isinstance(df, pd.DataFrame):
        raise MLError(f"{name} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise MLError(f"{name} lacks column(s) {', '.join(missing)} (has: {', '.join(map(str, df.columns))})")


def _utc(s: pd.Series, what: str) -> pd.Series:
    try:
        out = pd.to_datetime(s, utc=True)
    except (ValueError, TypeError) as exc:
        raise MLError(f"{what} is not a timestamp column: {exc}") from None
    if out.dt.tz is None:  # pragma: no cover - to_datetime(utc=True) always localizes
        raise MLError(f"{what} must be timezone-aware")
    return out.astype("datetime64[us, UTC]")


def _us(s: pd.Series) -> np.ndarray:
    """UTC timestamps as int64 microseconds since the epoch (NaT → min int)."""
    naive = s.astype("datetime64[us, UTC]").dt.tz_convert(None)
    return naive.to_numpy().astype("datetime64[us]").astype(np.int64)


def _text(s: pd.Series, missing: str) -> np.ndarray:
    """A text column as an object array with ``missing`` for null or empty values."""
    t = s.astype("string")
    t = t.where(t.str.strip().str.len() > 0)
    return t.fillna(missing).to_numpy(dtype=object)


class _Series:
    """Events sorted by (series key, time) for window look-ups of many queries at once.

    The composite key ``key * span + time`` turns "the events of series k in [lo, hi)" into two
    ``searchsorted`` calls over one sorted array for all queries together.
    """

    def __init__(self, key: np.ndarray, t_us: np.ndarray, t0: int, t1: int) -> None:
        self.t0 = int(t0)
        self.span = int(t1 - t0 + 2)
        if (int(key.max(initial=0)) + 1) * self.span >= 2**62:
            days = self.span / _US_PER_MIN / 60 / 24
            raise MLError("time range × number of series too large for window look-ups "
                          f"({days:.0f} days × {int(key.max(initial=0)) + 1} series)")
        comp = key.astype(np.int64) * self.span + (t_us - self.t0)
        if len(comp) < 2 or bool(np.all(comp[1:] >= comp[:-1])):
            # Tables usually arrive grouped by series and sorted by time: no sort needed then.
            self.order = np.arange(len(comp))
            self.comp = comp
        else:
            self.order = np.argsort(comp, kind="stable")
            self.comp = comp[self.order]

    def bounds(self, key: np.ndarray, lo_us: np.ndarray, hi_us: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions (in sorted order) of the events of ``key`` with ``lo <= t < hi``."""
        base = key.astype(np.int64) * self.span - self.t0
        lo = np.searchsorted(self.comp, base + np.clip(lo_us, self.t0, self.t0 + self.span - 1), side="left")
        hi = np.searchsorted(self.comp, base + np.clip(hi_us, self.t0, self.t0 + self.span - 1), side="left")
        return lo, np.maximum(hi, lo)


def _codes(values: pd.Series | np.ndarray, levels: list[str]) -> np.ndarray:
    """Position of each value in ``levels`` (-1 when absent); factorizes first, which is fast."""
    codes, uniques = pd.factorize(pd.Series(values).astype("string"), use_na_sentinel=True)
    pos = pd.Index(levels).get_indexer(pd.Index(uniques).astype(object))
    return np.where(codes >= 0, np.r_[pos, -1][codes], -1).astype(np.int64)


def _window_sums(ev_key: np.ndarray, ev_t: np.ndarray, weights: list[np.ndarray], q_key: np.ndarray,
                 q_lo: np.ndarray, q_hi: np.ndarray) -> list[np.ndarray]:
    """For each query, the sum of each weight over events of its key with ``lo <= t < hi``."""
    if len(ev_key) == 0:
        return [np.zeros(len(q_key)) for _ in weights]
    t0 = int(min(ev_t.min(), q_lo.min(initial=ev_t.min())))
    t1 = int(max(ev_t.max(), q_hi.max(initial=ev_t.max())))
    ser = _Series(ev_key, ev_t, t0, t1)
    lo, hi = ser.bounds(q_key, q_lo, q_hi)
    out = []
    for w in weights:
        cum = np.r_[0.0, np.cumsum(np.asarray(w, dtype=float)[ser.order])]
        out.append(cum[hi] - cum[lo])
    return out


def _telemetry_stats(tel: pd.DataFrame, machines: np.ndarray, start_us: np.ndarray,
                     window_us: int) -> dict[str, np.ndarray]:
    """last / mean / slope (per hour) / std of each metric over [start - window, start)."""
    n = len(machines)
    out = {f"{m}_{s}": np.full(n, np.nan) for m in TELEMETRY_METRICS for s in TELEMETRY_STATS}
    if tel is None or tel.empty or n == 0:
        return out
    # Series keys in order of first appearance, so a table grouped by machine and metric and sorted
    # by time (as stores and the simulator deliver it) is already in key order.
    m_code, m_levels = pd.factorize(tel["machine_id"].astype("string"))
    k_code, k_levels = pd.factorize(tel["metric"].astype("string"))
    k_levels = pd.Index(k_levels).astype(object)
    wanted = k_levels.isin(TELEMETRY_METRICS)
    values = pd.to_numeric(tel["value"], errors="coerce").to_numpy(dtype=float)
    keep = (k_code >= 0) & (m_code >= 0) & np.isfinite(values)
    keep &= np.r_[wanted, False][k_code]
    if "quality" in tel.columns:
        # Only good readings: 'uncertain' / 'bad' values are what the sensor could not vouch for.
        q_code, q_levels = pd.factorize(tel["quality"].astype("string"))
        good = pd.Index(q_levels).astype(str).str.strip().str.lower() == "good"
        keep &= np.r_[good, True][q_code]  # a missing quality counts as good
    if not keep.any():
        return out
    nk = len(k_levels)
    ev_key = m_code[keep].astype(np.int64) * nk + k_code[keep]
    values = values[keep]
    ev_t = _us(_utc(tel["time"], "machine_telemetry.time"))[keep]
    t0 = int(min(ev_t.min(), start_us.min() - window_us))
    t1 = int(max(ev_t.max(), start_us.max()))
    ser = _Series(ev_key, ev_t, t0, t1)
    v_sorted, t_sorted = values[ser.order], ev_t[ser.order]

    # One query per (stop, metric); gather every reading of every window into one flat array.
    nm = len(TELEMETRY_METRICS)
    q_machine = pd.Index(m_levels).astype(object).get_indexer(machines.astype(object))
    q_metric = k_levels.get_indexer(list(TELEMETRY_METRICS))
    q_key = (q_machine[:, None] * nk + q_metric[None, :]).ravel()
    absent = ((q_machine[:, None] < 0) | (q_metric[None, :] < 0)).ravel()
    q_hi = np.repeat(start_us, nm)
    lo, hi = ser.bounds(np.where(absent, 0, q_key), q_hi - window_us, q_hi)
    hi = np.where(absent, lo, hi)
    cnt = hi - lo
    group = np.repeat(np.arange(len(q_key)), cnt)
    pos = np.repeat(lo - np.r_[0, np.cumsum(cnt)[:-1]], cnt) + np.arange(cnt.sum())
    v = v_sorted[pos]
    x = (t_sorted[pos] - q_hi[group]) / (60 * _US_PER_MIN)  # hours before the stop (negative)
    g = len(q_key)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = cnt.astype(float)
        mean = np.bincount(group, v, g) / c
        xm = np.bincount(group, x, g) / c
        dv, dx = v - mean[group], x - xm[group]
        sxx = np.bincount(group, dx * dx, g)
        sxy = np.bincount(group, dx * dv, g)
        svv = np.bincount(group, dv * dv, g)
        slope = np.where((cnt >= 2) & (sxx > 0), sxy / sxx, np.nan)
        std = np.where(cnt >= 2, np.sqrt(svv / (c - 1)), np.nan)
    last = np.where(cnt > 0, v_sorted[np.maximum(hi - 1, 0)], np.nan)
    for j, m in enumerate(TELEMETRY_METRICS):
        sl = slice(j, None, nm)
        out[f"{m}_last"], out[f"{m}_mean"] = last[sl], np.where(cnt[sl] > 0, mean[sl], np.nan)
        out[f"{m}_slope"], out[f"{m}_std"] = slope[sl], std[sl]
    return out


class _RunClock:
    """Cumulative running minutes per machine (from machine_states), queried at any times."""

    def __init__(self, states: pd.DataFrame) -> None:
        s = _us(_utc(states["time_start"], "machine_states.time_start"))
        e = _us(_utc(states["time_end"], "machine_states.time_end"))
        st = pd.DataFrame({"machine_id": _text(states["machine_id"], UNKNOWN_LEVEL), "_t": s,
                           "running": (_text(states["state"], "") == "running")})
        run = np.where(st["running"], (e - s) / _US_PER_MIN, 0.0)
        st["run"] = run
        st = st.sort_values(["machine_id", "_t"], kind="stable")
        st["before"] = st.groupby("machine_id", sort=False)["run"].cumsum() - st["run"]
        self.st = st.sort_values("_t", kind="stable").reset_index(drop=True)

    def at(self, machine: np.ndarray, t_us: np.ndarray) -> np.ndarray:
        """Running minutes of ``machine`` up to ``t_us`` (float µs; NaN → NaN, as before the first state)."""
        t_us = np.asarray(t_us, dtype=float)
        out = np.full(len(t_us), np.nan)
        valid = np.isfinite(t_us)
        if not valid.any() or self.st.empty:
            return out
        q = pd.DataFrame({"machine_id": np.asarray(machine, dtype=object)[valid],
                          "_t": t_us[valid].astype(np.int64), "_row": np.flatnonzero(valid)})
        m = pd.merge_asof(q.sort_values("_t", kind="stable"), self.st.rename(columns={"_t": "_s"}),
                          left_on="_t", right_on="_s", by="machine_id", direction="backward")
        inside = np.clip((m["_t"] - m["_s"]) / _US_PER_MIN, 0.0, None)
        running = m["running"].fillna(False).astype(bool)
        part = np.where(running, np.minimum(inside, m["run"].fillna(0.0)), 0.0)
        out[m["_row"].to_numpy()] = (m["before"] + part).to_numpy(dtype=float)
        return out


def _latest_index(machine: np.ndarray, t_us: np.ndarray, r_machine: pd.Series | np.ndarray,
                  r_t_us: np.ndarray, *, allow_exact: bool = True) -> np.ndarray:
    """For each query (machine, t), the position of the machine's latest right row with time <= t
    (< t with ``allow_exact=False``; ties: the last such row), -1 when there is none."""
    n = len(t_us)
    out = np.full(n, -1, dtype=np.int64)
    if len(r_t_us) == 0 or n == 0:
        return out
    levels = sorted(set(map(str, pd.unique(np.asarray(machine, dtype=object)))))
    q_key, r_key = _codes(machine, levels), _codes(r_machine, levels)
    r_pos = np.flatnonzero(r_key >= 0)
    if not len(r_pos):
        return out
    r_t, q_t = np.asarray(r_t_us, dtype=np.int64)[r_pos], np.asarray(t_us, dtype=np.int64)
    ser = _Series(r_key[r_pos], r_t, min(r_t.min(), q_t.min()), max(r_t.max(), q_t.max()))
    series_start = q_key * ser.span
    side = "right" if allow_exact else "left"
    idx = np.searchsorted(ser.comp, series_start + (q_t - ser.t0), side=side) - 1
    ok = (q_key >= 0) & (idx >= 0)
    ok[ok] = ser.comp[idx[ok]] >= series_start[ok]  # the row found belongs to the same machine
    out[ok] = r_pos[ser.order[idx[ok]]]
    return out


def _latest_before(machine: np.ndarray, t_us: np.ndarray, r_machine: pd.Series | np.ndarray,
                   r_t_us: np.ndarray, r_value: pd.Series | np.ndarray | None = None, *,
                   allow_exact: bool = True) -> np.ndarray:
    """For each query (machine, t), the value (default: the time, float µs) of the machine's
    latest right row with time <= t (< t with ``allow_exact=False``); NaN / None when none."""
    idx = _latest_index(machine, t_us, r_machine, r_t_us, allow_exact=allow_exact)
    ok = idx >= 0
    if r_value is None:
        out = np.full(len(idx), np.nan)
        out[ok] = np.asarray(r_t_us, dtype=np.int64)[idx[ok]]
        return out
    out = np.full(len(idx), None, dtype=object)
    out[ok] = pd.Series(r_value).iloc[idx[ok]].to_numpy(dtype=object)
    return out


# --------------------------------------------------------------------------------------------
# stops


def stop_features(downtime_events: pd.DataFrame, *, telemetry: pd.DataFrame | None = None,
                  machine_states: pd.DataFrame | None = None, scrap_events: pd.DataFrame | None = None,
                  production_events: pd.DataFrame | None = None, window_min: float = 60,
                  include_duration: bool = True, tz: str = "UTC") -> pd.DataFrame:
    """Features of each downtime event from what was known when it began.

    Parameters
    ----------
    downtime_events : DataFrame
        Canonical ``downtime_events`` (event_id, machine_id, time_start, time_end, duration_min,
        reason_category, shift, fault_code). ``reason_category`` is the operator's ENTERED code:
        only earlier stops' codes are used, never the stop's own.
    telemetry, machine_states, scrap_events, production_events : DataFrame, optional
        Canonical tables; the features that need a missing table are NaN / ``'unknown'``.
        Telemetry readings whose ``quality`` is not ``good`` are left out.
    window_min : float
        Length of the window before ``time_start`` for telemetry, running time and scrap.
    include_duration : bool
        Whether to return ``duration_min``. The duration is known once a stop has ended; features
        for a stop that is still open must be built with ``include_duration=False`` (and the
        model trained without it).
    tz : str
        Plant time zone for ``hour_of_day``.

    Returns
    -------
    DataFrame
        One row per downtime event, indexed by ``event_id`` in the input's order; columns as
        documented in :data:`FEATURE_DOCS` (categorical ones are text).

    Notes
    -----
    The operators' free-text ``notes`` are not used: they are written after the stop, often by
    the same person who leaves the code blank or enters a wrong one, and a model that reads them
    learns the operator's wording instead of the machine's evidence.

    Raises
    ------
    MLError
        If a table lacks a needed column, a timestamp column cannot be read or event ids repeat.
    """
    _require(downtime_events, "downtime_events", ("event_id", "machine_id", "time_start", "time_end"))
    _require(telemetry, "machine_telemetry", ("time", "machine_id", "metric", "value"))
    _require(machine_states, "machine_states", ("machine_id", "time_start", "time_end", "state"))
    _require(scrap_events, "scrap_events", ("time", "machine_id", "quantity"))
    _require(production_events, "production_events", ("time", "machine_id", "part_number"))
    if window_min <= 0:
        raise MLError(f"window_min must be positive, got {window_min}")
    de = downtime_events
    ids = de["event_id"].astype(str)
    if ids.duplicated().any():
        dup = ids[ids.duplicated()].unique()[:5]
        raise MLError(f"downtime_events: event_id repeats ({', '.join(dup)}); features are keyed by event_id")
    n = len(de)
    machines = _text(de["machine_id"], UNKNOWN_LEVEL)
    start = _utc(de["time_start"], "downtime_events.time_start").reset_index(drop=True)
    end = _utc(de["time_end"], "downtime_events.time_end").reset_index(drop=True)
    if start.isna().any():
        raise MLError(f"downtime_events: time_start is missing in {int(start.isna().sum())} row(s)")
    start_us = _us(start)
    window_us = round(window_min * _US_PER_MIN)
    cols: dict[str, np.ndarray] = {}

    cols["machine_id"] = machines
    cols["fault_code"] = (_text(de["fault_code"], NONE_LEVEL) if "fault_code" in de.columns
                          else np.full(n, NONE_LEVEL, dtype=object))
    cols["shift"] = (_text(de["shift"], UNKNOWN_LEVEL) if "shift" in de.columns
                     else np.full(n, UNKNOWN_LEVEL, dtype=object))
    if machine_states is not None and len(machine_states):
        ms = machine_states
        ms_machine = _text(ms["machine_id"], UNKNOWN_LEVEL)
        ms_start = _us(_utc(ms["time_start"], "machine_states.time_start"))
        ms_end = _us(_utc(ms["time_end"], "machine_states.time_end"))
        state = _latest_before(machines, start_us, ms_machine, ms_start, _text(ms["state"], UNKNOWN_LEVEL))
        st_end = _latest_before(machines, start_us, ms_machine, ms_start, ms_end.astype(float))
        st_end = np.array([np.nan if v is None else float(v) for v in st_end])
        covered = np.nan_to_num(st_end, nan=-np.inf) > start_us  # the interval still runs at time_start
        cols["state"] = np.where(covered, state, UNKNOWN_LEVEL).astype(object)
    else:
        cols["state"] = np.full(n, UNKNOWN_LEVEL, dtype=object)

    if production_events is not None and len(production_events):
        pe = production_events
        pe_t = _us(_utc(pe["time"], "production_events.time"))
        part = _latest_before(machines, start_us, pe["machine_id"], pe_t, pe["part_number"],
                              allow_exact=False)
        cols["part_number"] = _text(pd.Series(part, dtype=object), UNKNOWN_LEVEL)
    else:
        cols["part_number"] = np.full(n, UNKNOWN_LEVEL, dtype=object)

    cols["hour_of_day"] = start.dt.tz_convert(tz).dt.hour.to_numpy(dtype=float)
    if include_duration:
        if "duration_min" in de.columns:
            cols["duration_min"] = pd.to_numeric(de["duration_min"], errors="coerce").to_numpy(dtype=float)
        else:
            cols["duration_min"] = ((end - start) / pd.Timedelta(minutes=1)).to_numpy(dtype=float)

    cols.update(_telemetry_stats(telemetry, machines, start_us, window_us))

    # Earlier stops: a stop's code is known once it has ended, so it is "available" at its end — and
    # never before its own start plus a tick, which keeps a zero-length stop from seeing itself.
    end_us = np.where(end.isna().to_numpy(), start_us, _us(end.fillna(start)))
    avail = np.maximum(end_us, start_us + 1)
    entered = (_text(de["reason_category"], "") if "reason_category" in de.columns
               else np.full(n, "", dtype=object))
    for cat in CATEGORIES:
        sel = entered == cat
        latest = _latest_before(machines, start_us, machines[sel], avail[sel])
        cols[f"min_since_{slug(cat)}"] = (start_us - latest) / _US_PER_MIN
    prev_any = _latest_before(machines, start_us, machines, avail)
    cols["min_since_prev_stop"] = (start_us - prev_any) / _US_PER_MIN

    if machine_states is not None and len(machine_states):
        clock = _RunClock(machine_states)
        run_now = clock.at(machines, start_us.astype(float))
        tool = entered == "Tooling"
        last_tool = _latest_before(machines, start_us, machines[tool], avail[tool])
        cols["tool_run_min"] = run_now - clock.at(machines, last_tool)
        cols["run_min_window"] = run_now - clock.at(machines, (start_us - window_us).astype(float))
    else:
        cols["tool_run_min"] = np.full(n, np.nan)
        cols["run_min_window"] = np.full(n, np.nan)

    if scrap_events is not None and len(scrap_events):
        sc = scrap_events
        levels = sorted(set(machines) | set(_text(sc["machine_id"], UNKNOWN_LEVEL)))
        qty = pd.to_numeric(sc["quantity"], errors="coerce").fillna(0).to_numpy(dtype=float)
        cat = (_text(sc["scrap_category"], "") if "scrap_category" in sc.columns
               else np.full(len(sc), "", dtype=object))
        sums = _window_sums(_codes(_text(sc["machine_id"], UNKNOWN_LEVEL), levels),
                            _us(_utc(sc["time"], "scrap_events.time")),
                            [qty, *[qty * (cat == c) for c in SCRAP_CATEGORIES]],
                            _codes(machines, levels), start_us - window_us, start_us)
    else:
        sums = [np.full(n, np.nan) for _ in range(1 + len(SCRAP_CATEGORIES))]
    cols["scrap_qty_window"] = sums[0]
    for c, s in zip(SCRAP_CATEGORIES, sums[1:], strict=True):
        cols[f"scrap_{slug(c)}_qty_window"] = s

    order = [c for c in FEATURE_DOCS if c in cols]
    out = pd.DataFrame({c: cols[c] for c in order}, index=pd.Index(ids.to_numpy(), name="event_id"))
    for c in CATEGORICAL_FEATURES:
        out[c] = out[c].astype(object)
    return out


# --------------------------------------------------------------------------------------------
# machine × part × hour


def _mode_by(keys: pd.DataFrame, value: pd.Series, group: list[str]) -> pd.Series:
    """Most frequent non-null ``value`` per group (ties: the first in sort order)."""
    df = keys.assign(_v=value.to_numpy()).dropna(subset=["_v"])
    if df.empty:
        return pd.Series(dtype=object)
    counts = df.groupby([*group, "_v"], sort=True, observed=True).size().rename("_n").reset_index()
    counts = counts.sort_values([*group, "_n"], ascending=[True] * len(group) + [False], kind="stable")
    return counts.drop_duplicates(group).set_index(group)["_v"]


def hourly_features(production_events: pd.DataFrame, *, scrap_events: pd.DataFrame | None = None,
                    downtime_events: pd.DataFrame | None = None,
                    machine_states: pd.DataFrame | None = None,
                    quality_measurements: pd.DataFrame | None = None,
                    characteristics: pd.DataFrame | None = None) -> pd.DataFrame:
    """Scrap and its context per machine × part × UTC hour with production.

    Parameters
    ----------
    production_events : DataFrame
        Canonical ``production_events`` (time, machine_id, part_number, good_count,
        reject_count, work_order, operator_id); a row per cycle or per count both work.
    scrap_events, downtime_events, machine_states, quality_measurements, characteristics : DataFrame, optional
        Canonical tables for the context columns; a missing one leaves its columns NaN.

    Returns
    -------
    DataFrame
        One row per (machine_id, part_number, hour) with production, sorted by those keys; columns
        documented in :data:`HOURLY_FEATURE_DOCS`. The "since" columns look back from the hour's
        start only. (No material-lot column: neither production nor scrap events carry the lot.)

    Raises
    ------
    MLError
        If a table lacks a needed column or a timestamp column cannot be read.
    """
    _require(production_events, "production_events", ("time", "machine_id", "part_number"))
    _require(scrap_events, "scrap_events", ("time", "machine_id", "part_number", "quantity"))
    _require(downtime_events, "downtime_events", ("machine_id", "time_start", "time_end"))
    _require(machine_states, "machine_states", ("machine_id", "time_start", "time_end", "state"))
    _require(quality_measurements, "quality_measurements",
             ("time", "machine_id", "part_number", "characteristic", "value"))
    _require(characteristics, "characteristics", ("part_number", "characteristic", "lsl", "usl", "nominal"))
    keys = ["machine_id", "part_number", "hour"]
    pe = production_events
    t = _utc(pe["time"], "production_events.time")
    good = pd.to_numeric(pe.get("good_count", pd.Series(1, index=pe.index)), errors="coerce").fillna(0)
    rej = pd.to_numeric(pe.get("reject_count", pd.Series(0, index=pe.index)), errors="coerce").fillna(0)
    k = pd.DataFrame({"machine_id": _text(pe["machine_id"], UNKNOWN_LEVEL),
                      "part_number": _text(pe["part_number"], UNKNOWN_LEVEL),
                      "hour": t.dt.floor("h").to_numpy()})
    agg = k.assign(produced=(good + rej).to_numpy(dtype=float), rejects=rej.to_numpy(dtype=float))
    out = agg.groupby(keys, sort=True).agg(produced=("produced", "sum"), rejects=("rejects", "sum"))
    with np.errstate(invalid="ignore", divide="ignore"):
        out["scrap_rate"] = np.where(out["produced"] > 0, out["rejects"] / out["produced"], np.nan)

    scrap_cols = ["scrap_qty", *[f"scrap_{slug(c)}_qty" for c in SCRAP_CATEGORIES]]
    if scrap_events is not None and len(scrap_events):
        sc = scrap_events
        qty = pd.to_numeric(sc["quantity"], errors="coerce").fillna(0).to_numpy(dtype=float)
        cat = (_text(sc["scrap_category"], "") if "scrap_category" in sc.columns
               else np.full(len(sc), "", dtype=object))
        sk = pd.DataFrame({"machine_id": _text(sc["machine_id"], UNKNOWN_LEVEL),
                           "part_number": _text(sc["part_number"], UNKNOWN_LEVEL),
                           "hour": _utc(sc["time"], "scrap_events.time").dt.floor("h").to_numpy(),
                           "scrap_qty": qty,
                           **{f"scrap_{slug(c)}_qty": qty * (cat == c) for c in SCRAP_CATEGORIES}})
        out = out.join(sk.groupby(keys, sort=True)[scrap_cols].sum(), how="left")
        out[scrap_cols] = out[scrap_cols].fillna(0.0)
    else:
        for c in scrap_cols:
            out[c] = np.nan

    for col, count in (("work_order", "n_work_orders"), ("operator_id", "n_operators")):
        if col in pe.columns:
            vals = pd.Series(_text(pe[col], ""), dtype=object).replace("", None)
            out[col] = _mode_by(k, vals, keys).reindex(out.index)
            out[count] = (k.assign(_v=vals.to_numpy()).dropna(subset=["_v"]).groupby(keys)["_v"]
                          .nunique().reindex(out.index).fillna(0).astype(int))
        else:
            out[col] = None
            out[count] = 0
    out = out.reset_index()

    hour_us = _us(out["hour"].astype("datetime64[us, UTC]"))
    machines = out["machine_id"].to_numpy(dtype=object)
    tool_end = np.full(len(out), np.nan)
    chg_end = np.full(len(out), np.nan)
    if downtime_events is not None and len(downtime_events):
        de = downtime_events
        dstart = _utc(de["time_start"], "downtime_events.time_start")
        dend = _us(_utc(de["time_end"], "downtime_events.time_end").fillna(dstart))
        dmach = _text(de["machine_id"], UNKNOWN_LEVEL)
        cat = (_text(de["reason_category"], "") if "reason_category" in de.columns
               else np.full(len(de), "", dtype=object))
        tool_end = _latest_before(machines, hour_us, dmach[cat == "Tooling"], dend[cat == "Tooling"])
        chg_end = _latest_before(machines, hour_us, dmach[cat == "Changeover"], dend[cat == "Changeover"])
    out["min_since_tooling_stop"] = (hour_us - tool_end) / _US_PER_MIN

    if machine_states is not None and len(machine_states):
        clock = _RunClock(machine_states)
        out["tool_run_min"] = clock.at(machines, hour_us.astype(float)) - clock.at(machines, tool_end)
        ms = machine_states
        setup = _text(ms["state"], "") == "setup"
        chg_end = _latest_before(machines, hour_us, _text(ms["machine_id"], UNKNOWN_LEVEL)[setup],
                                 _us(_utc(ms["time_end"], "machine_states.time_end"))[setup])
    else:
        out["tool_run_min"] = np.nan
    out["min_since_changeover"] = (hour_us - chg_end) / _US_PER_MIN

    out["spc_n"] = 0
    out["spc_abs_dev_tol"] = np.nan
    if quality_measurements is not None and len(quality_measurements):
        qm = quality_measurements
        q = pd.DataFrame({"machine_id": _text(qm["machine_id"], UNKNOWN_LEVEL),
                          "part_number": _text(qm["part_number"], UNKNOWN_LEVEL),
                          "hour": _utc(qm["time"], "quality_measurements.time").dt.floor("h").to_numpy(),
                          "characteristic": _text(qm["characteristic"], ""),
                          "value": pd.to_numeric(qm["value"], errors="coerce").to_numpy(dtype=float)})
        q = q.dropna(subset=["value"])
        n_meas = q.groupby(keys)["value"].size()
        out["spc_n"] = n_meas.reindex(pd.MultiIndex.from_frame(out[keys])).fillna(0).astype(int).to_numpy()
        if characteristics is not None and len(characteristics):
            ch = pd.DataFrame({"part_number": _text(characteristics["part_number"], UNKNOWN_LEVEL),
                               "characteristic": _text(characteristics["characteristic"], ""),
                               "nominal": pd.to_numeric(characteristics["nominal"], errors="coerce"),
                               "half": (pd.to_numeric(characteristics["usl"], errors="coerce")
                                        - pd.to_numeric(characteristics["lsl"], errors="coerce")) / 2})
            means = q.groupby([*keys, "characteristic"])["value"].mean().rename("mean").reset_index()
            means = means.merge(ch, on=["part_number", "characteristic"], how="inner")
            with np.errstate(invalid="ignore", divide="ignore"):
                half = means["half"].where(means["half"] > 0)
                means["dev"] = (means["mean"] - means["nominal"]).abs() / half
            dev = means.groupby(keys)["dev"].max()
            out["spc_abs_dev_tol"] = dev.reindex(pd.MultiIndex.from_frame(out[keys])).to_numpy(dtype=float)
    return out[[c for c in HOURLY_FEATURE_DOCS if c in out.columns]]
