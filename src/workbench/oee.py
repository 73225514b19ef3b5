"""OEE per ISO 22400-2: the time model, the KPIs and their roll-ups.

Time elements (minutes), per machine and any grain:

==================  =============================================================================
``pot``             planned operation time: scheduled shift time (plus running outside shifts)
``pdt``             planned down time: breaks, no demand, preventive maintenance — from the calendar
                    (``planned_stops``), ``planned_stop`` states and stops whose reason code is planned
``pbt``             planned busy time = POT − PDT
``no_data``         time inside PBT with no data from the machine: reported, never guessed, and left
                    out of the KPIs (``pbt_observed`` = PBT − no data)
``apt``             actual production time = running + micro-stops (stops shorter than the
                    micro-stop threshold are performance losses, ISO 22400's "delay" inside APT)
``down``            unplanned stops (breakdowns, waiting) ≥ threshold — availability loss
``setup``           changeovers / setup — availability loss
``ideal``           Σ ideal cycle time × produced quantity, with product-specific rates
                    (``part_rates``, falling back to the machine's ``ideal_cycle_time_s``)
==================  =============================================================================

KPIs: availability = APT / PBT (observed), performance (effectiveness) = ideal / APT,
quality = ideal time of good parts / ideal time of all parts, OEE = A × P × Q = fully productive
time / PBT. Quality is weighted by ideal time so that OEE, the loss waterfall and the six big
losses reconcile at every level of aggregation (a plant's OEE is its fully productive time over
its planned time, whatever mix of parts it made); with one ideal rate it equals good / produced,
which is also reported as ``quality_ratio`` (ISO 22400's GQ / PQ). A KPI whose denominator is
zero is NaN (no planned time, nothing produced); OEE is 0, not NaN, when there was planned time
but no good output, and 0 when there was no production time (APT 0) — parts counted in such a
period are a data problem, reported per group as ``output_without_run``, never a perfect hour.

A stop (see :func:`stops`) is the contiguous non-running, non-planned time of a machine, its
pieces merged (sources cut stops at shift boundaries, planned breaks fall inside repairs); its
duration is its time in planned busy time, however the plan is recorded (``planned_stop``
state, planned reason code, ``planned_stops`` window). The whole stop decides whether it is a
micro-stop, before any cutting at hour or shift boundaries; then the calendar decides what part
of it was planned. :func:`workbench.losses.micro_stop_stats` counts the same stops. A cycle
counts in the period in which it *completed*; a completion exactly on a boundary belongs to the
period that ends there.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from workbench.errors import OEEError

US_PER_MIN = 60_000_000
ELEMENTS = ("run", "micro_stop", "down", "setup", "planned_down", "no_data")
STATES = ("running", "idle", "down", "setup", "planned_stop", "no_data")
GRAINS = ("machine_id", "line", "site", "hour", "shift", "day", "week")
#: reason categories that are changeovers (setup loss) rather than breakdowns
SETUP_CATEGORIES = ("Changeover",)


@dataclass(frozen=True)
class PlantFrames:
    """The canonical tables OEE is computed from (pandas frames, schema column names).

    ``downtime_events`` and ``reason_codes`` are optional: without them only the states and the
    calendar say what is planned.
    """

    machine_states: pd.DataFrame
    production_events: pd.DataFrame
    shift_calendar: pd.DataFrame
    machines: pd.DataFrame
    part_rates: pd.DataFrame = field(default_factory=pd.DataFrame)
    planned_stops: pd.DataFrame = field(default_factory=pd.DataFrame)
    downtime_events: pd.DataFrame = field(default_factory=pd.DataFrame)
    reason_codes: pd.DataFrame = field(default_factory=pd.DataFrame)

    @classmethod
    def from_tables(cls, tables: dict[str, pd.DataFrame]) -> PlantFrames:
        """Pick the frames from a ``{table name: frame}`` mapping (e.g. a simulated plant)."""
        names = (
            "machine_states",
            "production_events",
            "shift_calendar",
            "machines",
            "part_rates",
            "planned_stops",
            "downtime_events",
            "reason_codes",
        )
        missing = [n for n in names[:4] if n not in tables]
        if missing:
            raise OEEError(f"OEE needs the table(s) {', '.join(missing)}")
        return cls(**{n: tables[n] for n in names if n in tables})


@dataclass(frozen=True)
class OEEResult:
    """Time elements, counts and KPIs per group.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per group (the ``by`` columns), time elements in minutes, counts and KPIs.
    by : tuple of str
        The grouping.
    micro_stop_threshold_s : float
        Stops shorter than this were counted as performance (not availability) losses.

    The table's ``output_without_run`` column (parts) is a data-quality flag: output counted in a
    group that had no actual production time; see :func:`compute`.
    """

    table: pd.DataFrame
    by: tuple[str, ...]
    micro_stop_threshold_s: float

    def six_big_losses(self) -> pd.DataFrame:
        """Minutes lost per group to the six big losses (they add up with the fully productive
        time to the observed planned busy time). Output of a group without production time
        (``output_without_run``) earns no productive time, as in its OEE."""
        t = self.table
        out = t[list(self.by)].copy()
        out["unplanned_stops"] = t["down_min"]
        out["setup_and_adjustments"] = t["setup_min"]
        out["small_stops"] = t["micro_stop_min"]
        ideal, good = _credited(t, "ideal_min"), _credited(t, "ideal_good_min")
        startup = _credited(t, "ideal_startup_reject_min")
        out["slow_cycles"] = t["apt_min"] - t["micro_stop_min"] - ideal
        out["production_rejects"] = _credited(t, "ideal_reject_min") - startup
        out["startup_rejects"] = startup
        out["fully_productive"] = good
        return out

    def waterfall(self) -> pd.DataFrame:
        """The OEE loss waterfall of the whole result (all groups summed): planned busy time →
        availability loss → performance loss → quality loss → fully productive time."""
        t = self.table
        pbt = float(t["pbt_observed_min"].sum())
        apt = float(t["apt_min"].sum())
        ideal = float(_credited(t, "ideal_min").sum())
        good = float(_credited(t, "ideal_good_min").sum())
        steps = [
            ("planned busy time", pbt),
            ("availability loss", -(pbt - apt)),
            ("performance loss", -(apt - ideal)),
            ("quality loss", -(ideal - good)),
            ("fully productive time", good),
        ]
        return pd.DataFrame(steps, columns=["step", "minutes"])


# ---------------------------------------------------------------------------------------------
# input checks


def _us(series: pd.Series, *, what: str) -> np.ndarray:
    if not isinstance(series.dtype, pd.DatetimeTZDtype):
        raise OEEError(f"{what} must be timezone-aware timestamps (got {series.dtype})")
    return series.dt.tz_convert("UTC").astype("datetime64[us, UTC]").array.asi8.astype(np.int64)


def _instant_us(value: dt.datetime, *, what: str) -> int:
    """µs since the epoch of a timezone-aware instant (exact, unlike ``datetime.timestamp()``)."""
    t = pd.Timestamp(value)
    if t.tzinfo is None:
        raise OEEError(f"{what} must be a timezone-aware datetime (got {value!r})")
    return int((t - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(microseconds=1))


def _local_hour_start(t_us: int, zone: ZoneInfo) -> int:
    """Start (µs, UTC) of the local hour containing the instant.

    Worked out from the instant rather than by flooring the wall-clock time, which is ambiguous
    in the repeated hour of a fall-back night (01:30 CDT and 01:30 CST read the same).
    """
    local = pd.Timestamp(t_us, unit="us", tz="UTC").tz_convert(zone)
    return t_us - ((local.minute * 60 + local.second) * 1_000_000 + local.microsecond)


def _require(frame: pd.DataFrame, name: str, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise OEEError(f"{name} lacks column(s) {', '.join(missing)}")


def _check_states(states: pd.DataFrame) -> pd.DataFrame:
    _require(states, "machine_states", ("machine_id", "time_start", "time_end", "state"))
    s = states.copy()
    s["_s"] = _us(s["time_start"], what="machine_states.time_start")
    s["_e"] = _us(s["time_end"], what="machine_states.time_end")
    bad = s[s["_e"] < s["_s"]]
    if len(bad):
        r = bad.iloc[0]
        raise OEEError(
            f"machine_states: {len(bad)} interval(s) end before they start, first on "
            f"{r.machine_id} at {r.time_start} (ends {r.time_end})"
        )
    unknown = sorted(set(s["state"].dropna()) - set(STATES))
    if unknown or s["state"].isna().any():
        raise OEEError(
            f"machine_states: unknown state(s) {unknown or ['<null>']}; expected one of {', '.join(STATES)}"
        )
    s = s.sort_values(["machine_id", "_s", "_e"], kind="stable").reset_index(drop=True)
    same = s["machine_id"].to_numpy()[1:] == s["machine_id"].to_numpy()[:-1]
    overlap = same & (s["_s"].to_numpy()[1:] < s["_e"].to_numpy()[:-1])
    if overlap.any():
        i = int(np.flatnonzero(overlap)[0])
        a, b = s.iloc[i], s.iloc[i + 1]
        raise OEEError(
            f"machine_states: overlapping intervals on {a.machine_id}: "
            f"{a.state} {a.time_start}–{a.time_end} and {b.state} {b.time_start}–{b.time_end}"
        )
    return s


# ---------------------------------------------------------------------------------------------
# classification


def _stop_reasons(
    s: pd.DataFrame, downtime: pd.DataFrame, codes: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """Per state interval: is it a planned stop / a changeover, according to the downtime event
    whose span contains the interval's midpoint (same machine) and that event's reason code."""
    n = len(s)
    planned = np.zeros(n, dtype=bool)
    setup = np.zeros(n, dtype=bool)
    if downtime.empty:
        return planned, setup
    _require(downtime, "downtime_events", ("machine_id", "time_start", "time_end"))
    d = downtime.copy()
    d["_s"] = _us(d["time_start"], what="downtime_events.time_start")
    d["_e"] = _us(d["time_end"], what="downtime_events.time_end")
    d_planned = np.zeros(len(d), dtype=bool)
    d_setup = np.zeros(len(d), dtype=bool)
    if not codes.empty and "reason_code" in d.columns:
        lookup = codes.set_index("code")
        known = d["reason_code"].isin(lookup.index)
        d_planned[known.to_numpy()] = (
            lookup.loc[d.loc[known, "reason_code"], "planned"].astype(bool).to_numpy()
        )
        d_setup[known.to_numpy()] = (
            lookup.loc[d.loc[known, "reason_code"], "category"].isin(SETUP_CATEGORIES).to_numpy()
        )
    if "planned" in d.columns:
        # An explicit flag on the event (e.g. from the ERP) wins over the code's default.
        flag = d["planned"]
        has = flag.notna().to_numpy()
        d_planned[has] = flag[has].astype(bool).to_numpy()
    mid = (s["_s"].to_numpy() + s["_e"].to_numpy()) // 2
    for machine, idx in s.groupby("machine_id", sort=False).indices.items():
        dm = d.index[d["machine_id"] == machine]
        if len(dm) == 0:
            continue
        ds = d.loc[dm, "_s"].to_numpy()
        order = np.argsort(ds, kind="stable")
        ds = ds[order]
        de = d.loc[dm, "_e"].to_numpy()[order]
        pos = np.searchsorted(ds, mid[idx], side="right") - 1
        hit = (pos >= 0) & (mid[idx] < de[np.clip(pos, 0, None)])
        sel = np.asarray(dm)[order][np.clip(pos, 0, None)]
        planned[idx[hit]] = d_planned[d.index.get_indexer(sel[hit])]
        setup[idx[hit]] = d_setup[d.index.get_indexer(sel[hit])]
    return planned, setup


def _spans(frame: pd.DataFrame, name: str) -> tuple[np.ndarray, np.ndarray]:
    _require(frame, name, ("time_start", "time_end"))
    return (
        _us(frame["time_start"], what=f"{name}.time_start"),
        _us(frame["time_end"], what=f"{name}.time_end"),
    )


def _busy_time(
    start: np.ndarray,
    end: np.ndarray,
    *,
    shifts: tuple[np.ndarray, np.ndarray] | None,
    windows: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """µs of each ``[start, end)`` that lie in planned busy time: inside a shift (any time when
    ``shifts`` is None) and outside every planned-stop window."""
    bounds = np.unique(np.concatenate([start, end, *(shifts or ()), *windows]))
    if len(bounds) < 2:
        return np.zeros(len(start), dtype=np.int64)
    mid = bounds[:-1] + (bounds[1:] - bounds[:-1]) // 2
    busy = ~_in_windows(mid, *windows)
    if shifts is not None:
        busy &= _in_windows(mid, *shifts)
    cum = np.concatenate([[0], np.cumsum(np.where(busy, np.diff(bounds), 0))])
    # start and end are among the bounds, so the busy time up to each is read off exactly
    return cum[np.searchsorted(bounds, end)] - cum[np.searchsorted(bounds, start)]


@dataclass(frozen=True)
class _Stops:
    """What :func:`_find_stops` found, aligned with the sorted state intervals it was given."""

    planned: np.ndarray  # interval is a planned stop by its reason code
    setup: np.ndarray  # interval is a changeover by its reason code
    stop_id: np.ndarray  # index into ``table`` of the stop the interval is part of; -1: none
    table: pd.DataFrame  # one row per stop: machine_id, _s, _e, busy_us


def _find_stops(
    s: pd.DataFrame,
    *,
    downtime: pd.DataFrame,
    codes: pd.DataFrame,
    shifts: tuple[np.ndarray, np.ndarray] | None,
    planned_stops: pd.DataFrame,
    machines: pd.DataFrame | None,
) -> _Stops:
    """The one definition of a stop, shared by the OEE ledger and the micro-stop statistics.

    A stop is the contiguous non-running, non-planned time of one machine: idle / down
    intervals that follow each other back to back, with nothing but planned time in between,
    merged whatever pieces the source cut them into (shift boundaries, hourly files). Its
    duration is its time in planned busy time — inside a shift and outside planned stops,
    however the plan is recorded: a ``planned_stop`` state, an idle interval whose reason code
    is planned, or a ``planned_stops`` window. So 30 s of stop, a 15-minute break, 30 s of
    stop is one 60-second stop in each of those recordings. Running, setup (a ``setup`` state
    or an idle interval coded as a changeover), ``no_data`` and gaps in the data end a stop.
    ``s`` is sorted by machine and start (see :func:`_check_states`).
    """
    planned, setup = _stop_reasons(s, downtime, codes)
    state = s["state"].to_numpy()
    idle = state == "idle"
    # Same trust rule as the elements: a fault stays a fault whatever the operator coded.
    stop_like = np.isin(state, ("idle", "down")) & ~(idle & (planned | setup))
    bridge = stop_like | (state == "planned_stop") | (idle & planned)
    machine = s["machine_id"].to_numpy()
    start, end = s["_s"].to_numpy(), s["_e"].to_numpy()
    busy = np.zeros(len(s), dtype=np.int64)
    lookup = machines.set_index("machine_id") if machines is not None else pd.DataFrame()
    for m, idx in s.groupby("machine_id", sort=False).indices.items():
        idx = idx[stop_like[idx]]
        if len(idx) == 0:
            continue
        line = lookup.at[m, "line"] if "line" in lookup.columns and m in lookup.index else None
        site = lookup.at[m, "site"] if "site" in lookup.columns and m in lookup.index else None
        windows = _machine_planned_windows(planned_stops, m, line, site)
        busy[idx] = _busy_time(start[idx], end[idx], shifts=shifts, windows=windows)
    joins = np.zeros(len(s), dtype=bool)
    if len(s) > 1:
        joins[1:] = bridge[1:] & bridge[:-1] & (machine[1:] == machine[:-1]) & (start[1:] == end[:-1])
    chain = np.cumsum(~joins) - 1
    chain_busy = np.bincount(chain, weights=np.where(stop_like, busy, 0))
    member = stop_like & (chain_busy[chain] > 0)
    # Only the intervals that carry busy time place a stop in time; planned time merely joins them.
    carries = member & (busy > 0)
    table = (
        pd.DataFrame(
            {
                "chain": chain[carries],
                "machine_id": machine[carries],
                "_s": start[carries],
                "_e": end[carries],
            }
        )
        .groupby("chain", sort=True)
        .agg(machine_id=("machine_id", "first"), _s=("_s", "min"), _e=("_e", "max"))
    )
    table["busy_us"] = chain_busy[table.index.to_numpy()].astype(np.int64)
    stop_id = np.where(member, np.searchsorted(table.index.to_numpy(), chain), -1)
    table = table.reset_index(drop=True)
    return _Stops(planned, setup, stop_id, table)


def stops(
    states: pd.DataFrame,
    *,
    shift_calendar: pd.DataFrame | None = None,
    planned_stops: pd.DataFrame | None = None,
    downtime_events: pd.DataFrame | None = None,
    reason_codes: pd.DataFrame | None = None,
    machines: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The stops of each machine, as OEE judges them (micro-stop or not).

    A stop is the contiguous non-running, non-planned time of a machine: its idle / down
    intervals merged across the pieces a source cut them into and across planned time in
    between; its duration counts only planned busy time. The OEE ledger decides micro-stops on
    exactly these stops.

    Parameters
    ----------
    states : DataFrame
        ``machine_states`` rows (machine_id, time_start, time_end, state).
    shift_calendar : DataFrame, optional
        Shifts (time_start, time_end); time outside them is not part of a stop. Without it every
        instant is scheduled.
    planned_stops : DataFrame, optional
        Planned-stop windows (breaks, no demand, PM), scoped by site / line / machine_id.
    downtime_events, reason_codes : DataFrame, optional
        Reason-coded stops: an idle interval coded with a planned reason is planned time, one
        coded as a changeover is setup, not a stop.
    machines : DataFrame, optional
        machine_id, line, site: needed for windows scoped to a line or site.

    Returns
    -------
    DataFrame
        One row per stop: machine_id, time_start, time_end (UTC; first and last instant of stop
        time, planned time inside included), seconds (its time in planned busy time).

    Raises
    ------
    OEEError
        Invalid state intervals or timestamps without a time zone.
    """
    s = _check_states(states)
    found = _find_stops(
        s,
        downtime=downtime_events if downtime_events is not None else pd.DataFrame(),
        codes=reason_codes if reason_codes is not None else pd.DataFrame(),
        shifts=_spans(shift_calendar, "shift_calendar") if shift_calendar is not None else None,
        planned_stops=planned_stops if planned_stops is not None else pd.DataFrame(),
        machines=machines,
    )
    t = found.table
    return pd.DataFrame(
        {
            "machine_id": t["machine_id"],
            "time_start": pd.to_datetime(t["_s"], unit="us", utc=True),
            "time_end": pd.to_datetime(t["_e"], unit="us", utc=True),
            "seconds": t["busy_us"] / 1e6,
        }
    )


def _base_elements(s: pd.DataFrame, threshold_us: float, found: _Stops) -> np.ndarray:
    state = s["state"].to_numpy()
    planned, setup = found.planned, found.setup
    in_stop = found.stop_id >= 0
    short = np.zeros(len(s), dtype=bool)
    short[in_stop] = found.table["busy_us"].to_numpy()[found.stop_id[in_stop]] < threshold_us
    el = np.full(len(s), "down", dtype=object)
    el[state == "running"] = "run"
    el[state == "no_data"] = "no_data"
    el[state == "planned_stop"] = "planned_down"
    el[state == "setup"] = "setup"
    # The machine's own state is trusted where it is explicit: a fault ("down") stays an unplanned
    # stop even if an operator codes it as a changeover or PM (miscoding is common, and hiding a
    # breakdown as planned time would flatter OEE). Reason codes give meaning to "idle", the state
    # in which the machine does not know why it is stopped.
    idle = state == "idle"
    el[idle & setup] = "setup"
    el[idle & planned] = "planned_down"
    # The whole stop decides, measured in planned busy time (see _find_stops); the calendar then
    # turns the pieces of it inside planned windows into planned time.
    el[short] = "micro_stop"
    return el


# ---------------------------------------------------------------------------------------------
# the ledger: classified pieces cut at hour, shift and planned-stop boundaries


@dataclass(frozen=True)
class _Calendar:
    tz: ZoneInfo
    shift_s: np.ndarray
    shift_e: np.ndarray
    shift_date: np.ndarray
    shift_name: np.ndarray
    hours: np.ndarray  # local hour starts (UTC µs), sorted


def _calendar(shifts: pd.DataFrame, tz: ZoneInfo, lo: int, hi: int) -> _Calendar:
    _require(shifts, "shift_calendar", ("shift_date", "shift", "time_start", "time_end"))
    c = shifts.sort_values("time_start")
    s = _us(c["time_start"], what="shift_calendar.time_start")
    e = _us(c["time_end"], what="shift_calendar.time_end")
    if len(s) > 1 and (s[1:] < e[:-1]).any():
        i = int(np.flatnonzero(s[1:] < e[:-1])[0])
        raise OEEError(f"shift_calendar: shifts overlap at {c['time_start'].iloc[i + 1]}")
    start = min(lo, int(s.min()) if len(s) else lo)
    end = max(hi, int(e.max()) if len(e) else hi)
    # Local hour boundaries: correct across DST and for zones with half-hour offsets.
    first = (
        pd.Timestamp(start, unit="us", tz="UTC")
        .tz_convert(tz)
        .floor("h", ambiguous=True, nonexistent="shift_forward")
    )
    hours = pd.date_range(first.tz_convert("UTC"), pd.Timestamp(end, unit="us", tz="UTC"), freq="h")
    local = hours.tz_convert(tz)
    keep = local.minute == first.minute  # whole local hours only (drops nothing for whole-hour zones)
    hours_us = hours[keep].as_unit("us").asi8.astype(np.int64)
    return _Calendar(tz, s, e, c["shift_date"].to_numpy(), c["shift"].astype(str).to_numpy(), hours_us)


def _machine_planned_windows(
    planned_stops: pd.DataFrame, machine: str, line: str | None, site: str | None
) -> tuple[np.ndarray, np.ndarray]:
    if planned_stops.empty:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    p = planned_stops
    scope = np.ones(len(p), dtype=bool)
    if "site" in p.columns and site is not None:
        scope &= (p["site"].isna() | (p["site"] == site)).to_numpy()
    if "line" in p.columns:
        scope &= (p["line"].isna() | (p["line"] == line)).to_numpy()
    if "machine_id" in p.columns:
        scope &= (p["machine_id"].isna() | (p["machine_id"] == machine)).to_numpy()
    p = p[scope]
    if p.empty:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return (
        _us(p["time_start"], what="planned_stops.time_start"),
        _us(p["time_end"], what="planned_stops.time_end"),
    )


def _in_windows(t: np.ndarray, ws: np.ndarray, we: np.ndarray) -> np.ndarray:
    """Whether each instant lies in one of the (possibly overlapping) half-open windows."""
    if len(ws) == 0:
        return np.zeros(len(t), dtype=bool)
    order = np.argsort(ws)
    ws, we = ws[order], np.maximum.accumulate(we[order])
    pos = np.searchsorted(ws, t, side="right") - 1
    return (pos >= 0) & (t < we[np.clip(pos, 0, None)])


def _fill_gaps(s: pd.DataFrame, lo: int, hi: int) -> pd.DataFrame:
    """Add ``no_data`` intervals wherever a machine has no state in [lo, hi)."""
    gaps = []
    for machine, g in s.groupby("machine_id", sort=False):
        starts = np.concatenate([[lo], g["_e"].to_numpy()])
        ends = np.concatenate([g["_s"].to_numpy(), [hi]])
        starts = np.maximum.accumulate(starts)
        keep = ends > starts
        if keep.any():
            gaps.append(
                pd.DataFrame(
                    {
                        "machine_id": machine,
                        "_s": starts[keep],
                        "_e": ends[keep],
                        "state": "no_data",
                        "_el": "no_data",
                    }
                )
            )
    if not gaps:
        return s
    return pd.concat([s, *gaps], ignore_index=True).sort_values(["machine_id", "_s"], kind="stable")


def ledger(
    frames: PlantFrames,
    *,
    tz: str | dt.tzinfo,
    micro_stop_threshold_s: float = 120.0,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> pd.DataFrame:
    """Cut every machine's time into classified pieces at hour, shift and planned-stop boundaries.

    Returns one row per piece: machine_id, line, site, start/end (µs since epoch, UTC), minutes,
    element (see ``ELEMENTS``), scheduled (inside a shift), hour (local hour start, UTC), shift,
    day (production day = the shift's date) — the common ground of every OEE roll-up.
    """
    if micro_stop_threshold_s <= 0:
        raise OEEError(f"micro_stop_threshold_s must be positive (got {micro_stop_threshold_s})")
    zone = ZoneInfo(str(tz)) if not isinstance(tz, ZoneInfo) else tz
    s = _check_states(frames.machine_states)
    machines = frames.machines.set_index("machine_id")
    unknown = sorted(set(s["machine_id"]) - set(machines.index))
    if unknown:
        raise OEEError(f"machine_states has machine(s) not in machines: {', '.join(map(str, unknown[:10]))}")
    found = _find_stops(
        s,
        downtime=frames.downtime_events,
        codes=frames.reason_codes,
        shifts=_spans(frames.shift_calendar, "shift_calendar"),
        planned_stops=frames.planned_stops,
        machines=frames.machines,
    )
    s["_el"] = _base_elements(s, micro_stop_threshold_s * 1e6, found)
    lo = int(s["_s"].min()) if len(s) else 0
    hi = int(s["_e"].max()) if len(s) else 0
    cal = _calendar(frames.shift_calendar, zone, lo, hi)
    lo = _instant_us(start, what="start") if start is not None else int(min(lo, cal.shift_s.min(initial=lo)))
    hi = _instant_us(end, what="end") if end is not None else int(max(hi, cal.shift_e.max(initial=hi)))
    s = _fill_gaps(s[["machine_id", "_s", "_e", "state", "_el"]], lo, hi)

    pieces = []
    shift_bounds = np.concatenate([cal.shift_s, cal.shift_e])
    for machine, g in s.groupby("machine_id", sort=False):
        line = machines.at[machine, "line"] if "line" in machines.columns else None
        site = machines.at[machine, "site"] if "site" in machines.columns else None
        ps, pe = _machine_planned_windows(frames.planned_stops, machine, line, site)
        bounds = np.unique(np.concatenate([cal.hours, shift_bounds, ps, pe, [lo, hi]]))
        gs = np.clip(g["_s"].to_numpy(), lo, hi)
        ge = np.clip(g["_e"].to_numpy(), lo, hi)
        keep = ge > gs
        gs, ge, el = gs[keep], ge[keep], g["_el"].to_numpy()[keep]
        first = np.searchsorted(bounds, gs, side="right")
        last = np.searchsorted(bounds, ge, side="left")
        n = np.maximum(last - first, 0) + 1
        rep = np.repeat(np.arange(len(gs)), n)
        k = np.arange(len(rep)) - np.repeat(np.cumsum(n) - n, n)
        cut_lo = np.where(k == 0, gs[rep], bounds[np.clip(first[rep] + k - 1, 0, len(bounds) - 1)])
        cut_hi = np.where(k == n[rep] - 1, ge[rep], bounds[np.clip(first[rep] + k, 0, len(bounds) - 1)])
        pel = el[rep]
        mid = (cut_lo + cut_hi) // 2
        in_planned = _in_windows(mid, ps, pe)
        pel = np.where(in_planned & (pel != "run"), "planned_down", pel)
        pieces.append(
            pd.DataFrame(
                {
                    "machine_id": machine,
                    "line": line,
                    "site": site,
                    "start": cut_lo,
                    "end": cut_hi,
                    "element": pel,
                    "_mid": mid,
                }
            )
        )
    led = (
        pd.concat(pieces, ignore_index=True)
        if pieces
        else pd.DataFrame(columns=["machine_id", "line", "site", "start", "end", "element", "_mid"])
    )
    led = led[led["end"] > led["start"]].reset_index(drop=True)
    mid = led["_mid"].to_numpy()
    pos, scheduled, names = _shift_of(cal, mid)
    led["scheduled"] = scheduled
    led["shift"] = names
    led["day"] = _day(mid, scheduled, cal, pos)
    hpos = np.clip(np.searchsorted(cal.hours, mid, side="right") - 1, 0, None)
    led["hour"] = pd.to_datetime(cal.hours[hpos], unit="us", utc=True)
    led["minutes"] = (led["end"] - led["start"]) / US_PER_MIN
    # Only running counts outside the schedule (it extends planned time); idle time off shift is
    # not a loss.
    led = led[led["scheduled"] | (led["element"] == "run")]
    return led.drop(columns="_mid").reset_index(drop=True)


def _shift_of(cal: _Calendar, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index of the shift each instant falls in, whether it is in one, and the shift's name.

    A range with no shift at all (a weekend, a plant shut down) is simply unscheduled.
    """
    pos = np.searchsorted(cal.shift_s, t, side="right") - 1
    if len(cal.shift_s) == 0:
        return pos, np.zeros(len(t), dtype=bool), np.full(len(t), None, dtype=object)
    scheduled = (pos >= 0) & (t < cal.shift_e[np.clip(pos, 0, None)])
    return pos, scheduled, np.where(scheduled, cal.shift_name[np.clip(pos, 0, None)], None)


def _day(t: np.ndarray, scheduled: np.ndarray, cal: _Calendar, pos: np.ndarray) -> np.ndarray:
    local_dates = pd.to_datetime(t, unit="us", utc=True).tz_convert(cal.tz).date
    days = np.asarray(local_dates, dtype=object)
    shift_days = np.asarray([pd.Timestamp(d).date() for d in cal.shift_date], dtype=object)
    if len(shift_days):
        days[scheduled] = shift_days[np.clip(pos, 0, None)][scheduled]
    return days


# ---------------------------------------------------------------------------------------------
# production


def _ideal_seconds(events: pd.DataFrame, frames: PlantFrames) -> np.ndarray:
    machines = frames.machines.set_index("machine_id")
    fallback = (
        events["machine_id"].map(machines["ideal_cycle_time_s"])
        if "ideal_cycle_time_s" in machines.columns
        else pd.Series(np.nan, index=events.index)
    )
    ct = fallback.astype(float)
    if not frames.part_rates.empty and "part_number" in events.columns:
        rates = frames.part_rates.set_index(["machine_id", "part_number"])["ideal_cycle_time_s"]
        keys = pd.MultiIndex.from_arrays([events["machine_id"], events["part_number"]])
        specific = pd.Series(rates.reindex(keys).to_numpy(), index=events.index)
        ct = specific.fillna(ct)
    missing = ct.isna() | (ct <= 0)
    if missing.any():
        row = events[missing].iloc[0]
        raise OEEError(
            f"no ideal cycle time for machine {row.machine_id} part "
            f"{row.get('part_number')}: add it to part_rates or machines.ideal_cycle_time_s "
            f"({int(missing.sum())} event(s) affected)"
        )
    return ct.to_numpy()


def production_ledger(
    frames: PlantFrames, *, tz: str | dt.tzinfo, startup_window_min: float = 0.0
) -> pd.DataFrame:
    """Production events with their period (hour, shift, day) and ideal time.

    A count completed exactly at a boundary belongs to the period ending there. Rejects within
    ``startup_window_min`` after a setup ends are startup rejects.
    """
    zone = ZoneInfo(str(tz)) if not isinstance(tz, ZoneInfo) else tz
    e = frames.production_events
    if e.empty:
        return pd.DataFrame(
            columns=[
                "machine_id",
                "hour",
                "shift",
                "day",
                "good",
                "rejects",
                "produced",
                "ideal_s",
                "ideal_reject_s",
                "ideal_startup_reject_s",
                "scheduled",
            ]
        )
    _require(e, "production_events", ("time", "machine_id", "good_count", "reject_count"))
    good = e["good_count"].fillna(0).to_numpy()
    rej = e["reject_count"].fillna(0).to_numpy()
    if (good < 0).any() or (rej < 0).any():
        i = int(np.flatnonzero((good < 0) | (rej < 0))[0])
        raise OEEError(
            f"production_events: negative count at row {i} ({e.iloc[i].machine_id}, {e.iloc[i].time})"
        )
    t = _us(e["time"], what="production_events.time") - 1  # boundary completions → earlier period
    ct = _ideal_seconds(e, frames)
    cal = _calendar(frames.shift_calendar, zone, int(t.min()), int(t.max()) + 1)
    pos, scheduled, names = _shift_of(cal, t)
    hpos = np.clip(np.searchsorted(cal.hours, t, side="right") - 1, 0, None)
    startup = np.zeros(len(e), dtype=bool)
    if startup_window_min > 0:
        startup = _after_setup(e, t, frames, startup_window_min)
    out = pd.DataFrame(
        {
            "machine_id": e["machine_id"].to_numpy(),
            "hour": pd.to_datetime(cal.hours[hpos], unit="us", utc=True),
            "shift": names,
            "day": _day(t, scheduled, cal, pos),
            "good": good,
            "rejects": rej,
            "produced": good + rej,
            "ideal_s": ct * (good + rej),
            "ideal_reject_s": ct * rej,
            "ideal_startup_reject_s": np.where(startup, ct * rej, 0.0),
            "scheduled": scheduled,
        }
    )
    return out


def _after_setup(e: pd.DataFrame, t: np.ndarray, frames: PlantFrames, window_min: float) -> np.ndarray:
    s = frames.machine_states
    setups = s[s["state"] == "setup"]
    flag = np.zeros(len(e), dtype=bool)
    if setups.empty:
        return flag
    ends = _us(setups["time_end"], what="machine_states.time_end")
    for machine, idx in e.groupby("machine_id", sort=False).indices.items():
        m_ends = np.sort(ends[(setups["machine_id"] == machine).to_numpy()])
        if len(m_ends) == 0:
            continue
        pos = np.searchsorted(m_ends, t[idx], side="right") - 1
        since = t[idx] - m_ends[np.clip(pos, 0, None)]
        flag[idx] = (pos >= 0) & (since < window_min * US_PER_MIN)
    return flag


# ---------------------------------------------------------------------------------------------
# roll-up


def _keys(frame: pd.DataFrame, by: Sequence[str], machines: pd.DataFrame) -> pd.DataFrame:
    out = frame
    for level in ("line", "site"):
        if level in by and level not in out.columns:
            out = out.assign(**{level: out["machine_id"].map(machines.set_index("machine_id")[level])})
    if "week" in by:
        days = pd.to_datetime(pd.Series(out["day"]).astype(str))
        out = out.assign(week=(days - pd.to_timedelta(days.dt.weekday, unit="D")).dt.date.to_numpy())
    return out


def compute(
    frames: PlantFrames,
    *,
    by: Sequence[str] = ("machine_id", "day"),
    tz: str | dt.tzinfo,
    micro_stop_threshold_s: float = 120.0,
    startup_window_min: float = 0.0,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> OEEResult:
    """OEE time elements, counts and KPIs rolled up by any of ``GRAINS``.

    Parameters
    ----------
    frames : PlantFrames
        The canonical tables.
    by : sequence of str
        Grouping: any of machine_id, line, site, hour, shift, day (production day), week
        (Monday of the production day's ISO week); ``()`` for the whole plant. Ratios are
        computed from summed times and counts — plant OEE is weighted by time, never a mean of
        percentages.
    tz : str or tzinfo
        Plant time zone (local hours, days, weeks).
    micro_stop_threshold_s : float
        Stops shorter than this are performance losses (small stops).
    startup_window_min : float
        Rejects within this many minutes after a setup are startup rejects (0: none).
    start, end : datetime, optional
        Limit the ledger to this range (default: the data's range); timezone-aware instants,
        any zone (an instant in the repeated hour of a fall-back night is unambiguous).

    Returns
    -------
    OEEResult
        Its table has, besides the time elements, counts and KPIs, the data-quality column
        ``output_without_run``: parts counted in a group with no actual production time (APT 0,
        e.g. a batch count stamped just after the machine stopped, or counts from a machine
        reported idle). They stay in the counts and ``quality``, but no production time made
        them there, so they earn nothing: performance is NaN and OEE is 0 (A = 0). It is per
        group, so it does not add up across grains (at the day the same parts may have run
        time to match).
    """
    bad = [b for b in by if b not in GRAINS]
    if bad:
        raise OEEError(f"cannot group by {bad}; choose from {', '.join(GRAINS)}")
    by = tuple(by)
    led = _keys(
        ledger(frames, tz=tz, micro_stop_threshold_s=micro_stop_threshold_s, start=start, end=end),
        by,
        frames.machines,
    )
    prod = _keys(production_ledger(frames, tz=tz, startup_window_min=startup_window_min), by, frames.machines)
    if start is not None or end is not None:
        # The hour in which the range starts keeps all its counts.
        zone = ZoneInfo(str(tz)) if not isinstance(tz, ZoneInfo) else tz
        hours = prod["hour"]
        keep = pd.Series(True, index=prod.index)
        if start is not None:
            first = _local_hour_start(_instant_us(start, what="start"), zone)
            keep &= hours >= pd.Timestamp(first, unit="us", tz="UTC")
        if end is not None:
            keep &= hours < pd.Timestamp(_instant_us(end, what="end"), unit="us", tz="UTC")
        prod = prod[keep]
    group = list(by)
    wide = (
        led.pivot_table(
            index=group or None,
            columns="element",
            values="minutes",
            aggfunc="sum",
            fill_value=0.0,
            observed=True,
        )
        if group
        else led.groupby("element")["minutes"].sum().to_frame().T
    )
    wide = wide.reindex(columns=list(ELEMENTS), fill_value=0.0)
    counts_cols = ["good", "rejects", "produced", "ideal_s", "ideal_reject_s", "ideal_startup_reject_s"]
    counts = (
        prod.groupby(group, observed=True)[counts_cols].sum()
        if group
        else prod[counts_cols].sum().to_frame().T
    )
    table = (
        wide.join(counts, how="outer")
        if group
        else pd.concat([wide.reset_index(drop=True), counts.reset_index(drop=True)], axis=1)
    )
    table = table.fillna(0.0)
    t = pd.DataFrame(index=table.index)
    t["run_min"] = table["run"]
    t["micro_stop_min"] = table["micro_stop"]
    t["apt_min"] = table["run"] + table["micro_stop"]
    t["down_min"] = table["down"]
    t["setup_min"] = table["setup"]
    t["pdt_min"] = table["planned_down"]
    t["no_data_min"] = table["no_data"]
    t["pbt_observed_min"] = t["apt_min"] + t["down_min"] + t["setup_min"]
    t["pbt_min"] = t["pbt_observed_min"] + t["no_data_min"]
    t["pot_min"] = t["pbt_min"] + t["pdt_min"]
    t["good"] = table["good"].astype("int64")
    t["rejects"] = table["rejects"].astype("int64")
    t["produced"] = table["produced"].astype("int64")
    t["ideal_min"] = table["ideal_s"] / 60.0
    t["ideal_reject_min"] = table["ideal_reject_s"] / 60.0
    t["ideal_startup_reject_min"] = table["ideal_startup_reject_s"] / 60.0
    t["ideal_good_min"] = t["ideal_min"] - t["ideal_reject_min"]
    t["output_without_run"] = t["produced"].where(t["apt_min"] <= 0, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        t["availability"] = _ratio(t["apt_min"], t["pbt_observed_min"])
        t["performance"] = _ratio(t["ideal_min"], t["apt_min"])
        t["quality"] = _ratio(t["ideal_good_min"], t["ideal_min"])
        t["quality_ratio"] = _ratio(t["good"], t["produced"])
        # = A × P × Q; defined (0, not NaN) whenever there was planned time, even with no output.
        # Output counted where the machine had no production time is a data problem (see
        # output_without_run), not productive time: with A = 0, OEE is 0.
        t["oee"] = _ratio(_credited(t, "ideal_good_min"), t["pbt_observed_min"])
    t = t.reset_index() if group else t.reset_index(drop=True)
    return OEEResult(t, by, micro_stop_threshold_s)


def _credited(t: pd.DataFrame, column: str) -> pd.Series:
    """An ideal-time column counting only output made with production time (APT > 0), so that
    OEE, the waterfall and the six big losses agree with A × P × Q in every group."""
    return t[column].where(t["apt_min"] > 0, 0.0)


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    den = den.astype(float)
    return (num.astype(float) / den).where(den > 0)


def oee_hourly_rows(result: OEEResult, *, computed_at: dt.datetime) -> pd.DataFrame:
    """Rows for the ``oee_hourly`` table from a result grouped by ``("machine_id", "hour")``."""
    if set(result.by) != {"machine_id", "hour"}:
        raise OEEError(f"oee_hourly needs a result by machine_id and hour, not {result.by}")
    t = result.table
    return pd.DataFrame(
        {
            "hour": t["hour"],
            "machine_id": t["machine_id"],
            "planned_min": t["pbt_min"],
            "run_min": t["apt_min"],
            "no_data_min": t["no_data_min"],
            "availability": t["availability"],
            "performance": t["performance"],
            "quality": t["quality"],
            "oee": t["oee"],
            "good": t["good"],
            "rejects": t["rejects"],
            "computed_at": computed_at,
        }
    )
