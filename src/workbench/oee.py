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
but no good output.

Where a state interval is classified: the whole interval decides whether a stop is a micro-stop
(before cutting at hour or shift boundaries); then the calendar decides what part of it was
planned. A cycle counts in the period in which it *completed*; a completion exactly on a
boundary belongs to the period that ends there.
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
    """

    table: pd.DataFrame
    by: tuple[str, ...]
    micro_stop_threshold_s: float

    def six_big_losses(self) -> pd.DataFrame:
        """Minutes lost per group to the six big losses (they add up with the fully productive
        time to the observed planned busy time)."""
        t = self.table
        out = t[list(self.by)].copy()
        out["unplanned_stops"] = t["down_min"]
        out["setup_and_adjustments"] = t["setup_min"]
        out["small_stops"] = t["micro_stop_min"]
        out["slow_cycles"] = t["apt_min"] - t["micro_stop_min"] - t["ideal_min"]
        out["production_rejects"] = t["ideal_reject_min"] - t["ideal_startup_reject_min"]
        out["startup_rejects"] = t["ideal_startup_reject_min"]
        out["fully_productive"] = t["ideal_good_min"]
        return out

    def waterfall(self) -> pd.DataFrame:
        """The OEE loss waterfall of the whole result (all groups summed): planned busy time →
        availability loss → performance loss → quality loss → fully productive time."""
        t = self.table
        pbt = float(t["pbt_observed_min"].sum())
        apt = float(t["apt_min"].sum())
        ideal = float(t["ideal_min"].sum())
        good = float(t["ideal_good_min"].sum())
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


def _stop_durations(s: pd.DataFrame) -> np.ndarray:
    """Duration of the whole stop each interval belongs to.

    Sources cut a stop at shift boundaries, and a planned break can fall in the middle of a
    repair; a stop is the run of idle / down intervals of one machine that follow each other
    with nothing but planned stops in between. So a 90-second remnant of a breakdown before a
    break is not mistaken for a micro-stop. The duration excludes the planned time. Input is
    sorted by machine and start.
    """
    machine = s["machine_id"].to_numpy()
    start, end = s["_s"].to_numpy(), s["_e"].to_numpy()
    state = s["state"].to_numpy()
    n = len(s)
    contiguous = np.zeros(n, dtype=bool)
    if n > 1:
        contiguous[1:] = (machine[1:] == machine[:-1]) & (start[1:] == end[:-1])
    breaks = np.cumsum(~contiguous)                 # changes wherever time is not back to back
    keep = state != "planned_stop"
    idx = np.flatnonzero(keep)
    stop = np.isin(state[idx], ("idle", "down"))
    joins = np.zeros(len(idx), dtype=bool)
    if len(idx) > 1:
        joins[1:] = stop[1:] & stop[:-1] & (breaks[idx[1:]] == breaks[idx[:-1]])
    run_id = np.cumsum(~joins)
    totals = np.bincount(run_id, weights=(end[idx] - start[idx]).astype(float))
    out = (end - start).astype(float)
    out[idx] = totals[run_id]
    return out


def _base_elements(
    s: pd.DataFrame, threshold_us: float, planned: np.ndarray, setup: np.ndarray
) -> np.ndarray:
    state = s["state"].to_numpy()
    dur = _stop_durations(s)
    el = np.full(len(s), "down", dtype=object)
    el[state == "running"] = "run"
    el[state == "no_data"] = "no_data"
    el[state == "planned_stop"] = "planned_down"
    el[state == "setup"] = "setup"
    stop = np.isin(state, ("idle", "down"))
    # The machine's own state is trusted where it is explicit: a fault ("down") stays an unplanned
    # stop even if an operator codes it as a changeover or PM (miscoding is common, and hiding a
    # breakdown as planned time would flatter OEE). Reason codes give meaning to "idle", the state
    # in which the machine does not know why it is stopped.
    idle = state == "idle"
    el[idle & setup] = "setup"
    el[idle & planned] = "planned_down"
    el[stop & ~(idle & (planned | setup)) & (dur < threshold_us)] = "micro_stop"
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
    planned, setup = _stop_reasons(s, frames.downtime_events, frames.reason_codes)
    s["_el"] = _base_elements(s, micro_stop_threshold_s * 1e6, planned, setup)
    lo = int(s["_s"].min()) if len(s) else 0
    hi = int(s["_e"].max()) if len(s) else 0
    cal = _calendar(frames.shift_calendar, zone, lo, hi)
    lo = int(start.timestamp() * 1e6) if start else int(min(lo, cal.shift_s.min(initial=lo)))
    hi = int(end.timestamp() * 1e6) if end else int(max(hi, cal.shift_e.max(initial=hi)))
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
        Limit the ledger to this range (default: the data's range).
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
        lo = pd.Timestamp(start) if start else None
        hi = pd.Timestamp(end) if end else None
        hours = prod["hour"]
        prod = prod[
            ((hours >= lo.floor("h")) if lo is not None else True)
            & ((hours < hi) if hi is not None else True)
        ]
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
    with np.errstate(divide="ignore", invalid="ignore"):
        t["availability"] = _ratio(t["apt_min"], t["pbt_observed_min"])
        t["performance"] = _ratio(t["ideal_min"], t["apt_min"])
        t["quality"] = _ratio(t["ideal_good_min"], t["ideal_min"])
        t["quality_ratio"] = _ratio(t["good"], t["produced"])
        # = A × P × Q; defined (0, not NaN) whenever there was planned time, even with no output.
        t["oee"] = _ratio(t["ideal_good_min"], t["pbt_observed_min"])
    t = t.reset_index() if group else t.reset_index(drop=True)
    return OEEResult(t, by, micro_stop_threshold_s)


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
