"""Inputs of the yield forecast (:mod:`workbench.ml.forecast`): line-day history, planned work,
the day grid and the planned-work features known at an origin.

:func:`daily_history` and :func:`planned_work` (or both at once, :func:`from_tables`) turn the
canonical tables into what :class:`~workbench.ml.forecast.YieldForecaster` is fitted on;
:func:`features_at` shows the features of the residual model as known at one origin
(:data:`FEATURE_DOCS`). The day grid (``_grid``) lays plans and actuals out as arrays over
consecutive days, so that the rolling origins of the backtest are cheap slices.

Leakage
-------
Everything about a forecast day must be known at the origin (the start of the day after the last
history day). The shift calendar and planned stops are *plans* published ahead (a no-demand shift or
a PM is planned, not observed); a work order counts from its ``released_at`` (its quantity, part,
machine and due date, never ``completed_qty``, ``scrap_qty``, ``status`` or ``closed_at``); an
order's progress is counted from the production events before the origin. Orders without
``released_at`` count only once production on them has started. Orders without ``machine_id`` are
not used (a note says how many).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from workbench import oee
from workbench.errors import MLError, WorkbenchError

#: Days of history a forecast needs at least (three weeks: three of each weekday).
MIN_HISTORY_DAYS = 21
#: Window of the "recent" rate, efficiency and yield features (days before the origin).
RECENT_DAYS = 14

#: The planned-work features (:func:`features_at`) and how each is known at the forecast origin.
FEATURE_DOCS: dict[str, str] = {
    "horizon": "days from the origin to the forecast day (known)",
    "avail_share": "planned busy / scheduled minutes of the line: shift_calendar and planned_stops (plans)",
    "pm_share": "planned-maintenance minutes / scheduled minutes: planned_stops kind maintenance (plan)",
    "no_demand_share": "no-demand minutes / scheduled minutes: planned_stops kind no_demand (plan)",
    "machines_share": "share of the line's machines with planned busy time that day (plan)",
    "plan_ratio": ("projected parts (the released-order queue laid onto the planned busy time at each "
                   "machine's recent efficiency) / (the line's recent rate × planned busy minutes): "
                   "orders released before the origin, progress from events before it"),
    "mix_ratio": ("projected parts / the same time at each machine's recent mean cycle time: the part "
                  "mix effect of the queue (released orders, part_rates)"),
    "known_share": "share of the day's projected work covered by released orders (released orders)",
    "changeovers": "orders projected to start that day on the line (released orders)",
    "due_orders": "orders released before the origin with due_date on the forecast day",
    "last_rate_ratio": "rate on the last production day before the origin / the recent rate (measured)",
    "yield_recent": "good / produced over the last 14 days before the origin (measured)",
    "last_yield_dev": "yield on the last production day before the origin − yield_recent (measured)",
    "yield3_dev": "yield over the last 3 production days before the origin − yield_recent (measured)",
}


# ---------------------------------------------------------------------------------------------
# inputs: line-day history and planned work


@dataclass(frozen=True)
class PlannedWork:
    """What is planned and known about the plant, by machine and day (see :func:`planned_work`).

    Attributes
    ----------
    tz : str
        Plant time zone.
    day_start : datetime.time
        Local time a production day starts (its first shift), e.g. 06:00.
    machines : pandas.DataFrame
        machine_id, line, ideal_ct_s (fallback ideal cycle time in seconds).
    machine_days : pandas.DataFrame
        machine_id, line, day, scheduled_min, planned_min, break_min, pm_min, no_demand_min,
        planned_busy_min — every calendar day of the shift calendar that has shifts.
    calendar_first, calendar_last : datetime.date or None
        The days the shift calendar covers (days in between without shifts are not scheduled).
    orders : pandas.DataFrame
        work_order, machine_id, part_number, order_qty, ideal_ct_s, released_at (UTC), due_date.
    progress : pandas.DataFrame
        machine_id, work_order, day, produced, ideal_min, last_time: production per machine, order
        and production day (from the production events).
    notes : tuple of str
        What was left out and why.
    """

    tz: str
    day_start: dt.time
    machines: pd.DataFrame
    machine_days: pd.DataFrame
    calendar_first: dt.date | None
    calendar_last: dt.date | None
    orders: pd.DataFrame
    progress: pd.DataFrame
    notes: tuple[str, ...] = ()


def _need(frame: pd.DataFrame, name: str, columns: Sequence[str]) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise MLError(f"yield forecast: {name} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise MLError(f"yield forecast: {name} lacks column(s) {', '.join(missing)}")


def _ledger(production_events: pd.DataFrame, *, machines: pd.DataFrame, shift_calendar: pd.DataFrame,
            part_rates: pd.DataFrame | None, tz: str) -> pd.DataFrame:
    """Production events with their production day (``oee.production_ledger``) and line."""
    _need(production_events, "production_events", ("time", "machine_id", "good_count", "reject_count"))
    _need(machines, "machines", ("machine_id", "line"))
    _need(shift_calendar, "shift_calendar", ("shift_date", "shift", "time_start", "time_end"))
    unknown = sorted(set(production_events["machine_id"].dropna().unique()) - set(machines["machine_id"]))
    if unknown:
        raise MLError(f"yield forecast: production_events has machine(s) not in machines: "
                      f"{', '.join(map(str, unknown[:10]))}")
    events = production_events.reset_index(drop=True)
    frames = oee.PlantFrames(machine_states=pd.DataFrame(), production_events=events,
                             shift_calendar=shift_calendar, machines=machines,
                             part_rates=part_rates if part_rates is not None else pd.DataFrame())
    try:
        led = oee.production_ledger(frames, tz=tz)
    except WorkbenchError as exc:
        raise MLError(f"yield forecast: {exc}") from None
    led = led[["machine_id", "day", "good", "produced", "ideal_s"]].reset_index(drop=True)
    # production_ledger keeps the events' order: attach what the forecast needs besides the counts
    # (factorized: a million arrow strings or dates converted one by one take seconds).
    if "work_order" in events.columns:
        codes, names = pd.factorize(events["work_order"])
        led["work_order"] = pd.Categorical.from_codes(codes, categories=pd.Index(names).astype(str))
    else:
        led["work_order"] = pd.Categorical.from_codes(np.full(len(led), -1), categories=[])
    led["time_ns"] = pd.to_datetime(events["time"], utc=True).dt.as_unit("ns").astype("int64").to_numpy()
    codes, days = pd.factorize(led["day"])
    led["day"] = pd.DatetimeIndex(pd.to_datetime(pd.Series(days, dtype=object))).take(codes)
    line = machines.drop_duplicates("machine_id").set_index("machine_id")["line"]
    codes, ids = pd.factorize(led["machine_id"])
    led["line"] = line.reindex(ids).to_numpy()[codes]
    return led


def _history_from_ledger(led: pd.DataFrame, lines: Sequence[str]) -> pd.DataFrame:
    if led.empty:
        return pd.DataFrame({"line": pd.Series(dtype=str), "day": pd.Series(dtype=object),
                             "good": pd.Series(dtype=np.int64), "produced": pd.Series(dtype=np.int64)})
    per = led.groupby(["line", "day"])[["good", "produced"]].sum()
    days = pd.date_range(led["day"].min(), led["day"].max(), freq="D")
    full = pd.MultiIndex.from_product([sorted(map(str, lines)), days], names=["line", "day"])
    out = per.reindex(full, fill_value=0).reset_index()
    out["day"] = out["day"].dt.date
    out[["good", "produced"]] = out[["good", "produced"]].astype(np.int64)
    return out


def daily_history(production_events: pd.DataFrame, *, machines: pd.DataFrame, shift_calendar: pd.DataFrame,
                  part_rates: pd.DataFrame | None = None, tz: str) -> pd.DataFrame:
    """Good and produced parts per line and production day.

    Parameters
    ----------
    production_events : pandas.DataFrame
        Canonical ``production_events`` (time, machine_id, good_count, reject_count, ...).
    machines : pandas.DataFrame
        Canonical ``machines`` (machine_id, line, ideal_cycle_time_s).
    shift_calendar : pandas.DataFrame
        Canonical ``shift_calendar``: decides the production day of each event.
    part_rates : pandas.DataFrame, optional
        Ideal cycle time per machine and part (needed by the production ledger).
    tz : str
        Plant time zone.

    Returns
    -------
    pandas.DataFrame
        line, day (``datetime.date``), good, produced: every line of ``machines`` and every day from
        the first to the last production day, 0 where nothing was produced (weekends included).
    """
    led = _ledger(production_events, machines=machines, shift_calendar=shift_calendar,
                  part_rates=part_rates, tz=tz)
    return _history_from_ledger(led, machines["line"].dropna().unique())


def _merge(ws: np.ndarray, we: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union of possibly overlapping windows as sorted disjoint ones."""
    if len(ws) == 0:
        return ws, we
    order = np.argsort(ws, kind="stable")
    ws, we = ws[order], we[order]
    reach = np.maximum.accumulate(we)
    first = np.flatnonzero(np.r_[True, ws[1:] > reach[:-1]])
    return ws[first], np.maximum.reduceat(we, first)


def _covered(ws: np.ndarray, we: np.ndarray, s: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Microseconds of each [s, e) covered by the union of the windows [ws, we)."""
    ms, me = _merge(ws, we)
    if len(ms) == 0:
        return np.zeros(len(s), dtype=np.float64)
    cum = np.r_[0, np.cumsum(me - ms)]

    def upto(t: np.ndarray) -> np.ndarray:
        k = np.searchsorted(ms, t, side="right") - 1
        kc = np.clip(k, 0, None)
        return np.where(k < 0, 0, cum[kc] + np.minimum(t, me[kc]) - ms[kc])

    return (upto(e) - upto(s)).astype(np.float64)


def _us(series: pd.Series) -> np.ndarray:
    return pd.to_datetime(series, utc=True).dt.as_unit("us").astype("int64").to_numpy()


def _machine_days(machines: pd.DataFrame, shift_calendar: pd.DataFrame,
                  planned_stops: pd.DataFrame) -> pd.DataFrame:
    cal = shift_calendar.sort_values("time_start")
    s, e = _us(cal["time_start"]), _us(cal["time_end"])
    day = pd.to_datetime(pd.Series(cal["shift_date"].to_numpy(), dtype=object))
    stops = planned_stops if planned_stops is not None else pd.DataFrame()
    if not stops.empty:
        _need(stops, "planned_stops", ("time_start", "time_end", "kind"))
    rows = []
    for m in machines.itertuples(index=False):
        site = getattr(m, "site", None)
        cover = {}
        for kind in ("all", "break", "maintenance", "no_demand"):
            sub = stops if kind == "all" or stops.empty else stops[stops["kind"] == kind]
            # The same rule as OEE for which planned stops apply to a machine (its own, its line's,
            # the site's): one definition of planned time.
            ws, we = oee._machine_planned_windows(sub, m.machine_id, m.line, site)
            cover[kind] = _covered(ws, we, s, e) / 60e6
        rows.append(pd.DataFrame({
            "machine_id": m.machine_id, "line": m.line, "day": day, "scheduled_min": (e - s) / 60e6,
            "planned_min": cover["all"], "break_min": cover["break"], "pm_min": cover["maintenance"],
            "no_demand_min": cover["no_demand"]}))
    md = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    md = md.groupby(["machine_id", "line", "day"], as_index=False).sum()
    md["planned_busy_min"] = (md["scheduled_min"] - md["planned_min"]).clip(lower=0.0)
    return md


def _day_start(shift_calendar: pd.DataFrame, tz: str) -> dt.time:
    if shift_calendar.empty:
        return dt.time()
    firsts = shift_calendar.groupby("shift_date")["time_start"].min()
    return pd.to_datetime(firsts, utc=True).dt.tz_convert(ZoneInfo(tz)).dt.time.mode().iloc[0]


def _planned_from(led: pd.DataFrame, *, machines: pd.DataFrame, shift_calendar: pd.DataFrame,
                  planned_stops: pd.DataFrame | None, work_orders: pd.DataFrame | None,
                  part_rates: pd.DataFrame | None, tz: str) -> PlannedWork:
    notes: list[str] = []
    if shift_calendar.empty:
        raise MLError("yield forecast: shift_calendar is empty; the forecast needs the plant's shift "
                      "calendar to know which days are worked")
    mach = machines[["machine_id", "line"]].copy()
    mach["ideal_ct_s"] = (machines["ideal_cycle_time_s"].astype(float).to_numpy()
                          if "ideal_cycle_time_s" in machines.columns else np.nan)
    rates = part_rates if part_rates is not None and not part_rates.empty else None
    if rates is not None:
        mean_rate = rates.groupby("machine_id")["ideal_cycle_time_s"].mean()
        mach["ideal_ct_s"] = mach["ideal_ct_s"].fillna(mach["machine_id"].map(mean_rate))
    stops = planned_stops if planned_stops is not None else pd.DataFrame()
    md = _machine_days(machines, shift_calendar, stops)
    days = pd.to_datetime(pd.Series(shift_calendar["shift_date"].to_numpy(), dtype=object))

    cols = ["work_order", "machine_id", "part_number", "order_qty", "ideal_ct_s", "released_at", "due_date"]
    orders = pd.DataFrame(columns=cols)
    if work_orders is not None and not work_orders.empty:
        _need(work_orders, "work_orders", ("work_order", "part_number", "order_qty"))
        wo = work_orders.copy()
        for c in ("machine_id", "released_at", "due_date"):
            if c not in wo.columns:
                wo[c] = None
                notes.append(f"work_orders has no {c} column")
        no_machine = wo["machine_id"].isna()
        if no_machine.any():
            notes.append(f"{int(no_machine.sum())} work order(s) without machine_id not used")
        wo = wo[~no_machine & wo["machine_id"].isin(mach["machine_id"])]
        ct = wo["machine_id"].map(mach.set_index("machine_id")["ideal_ct_s"]).astype(float)
        if rates is not None:
            key = rates.set_index(["machine_id", "part_number"])["ideal_cycle_time_s"]
            pairs = pd.MultiIndex.from_arrays([wo["machine_id"], wo["part_number"]])
            specific = key.reindex(pairs).to_numpy()
            ct = pd.Series(specific, index=wo.index).astype(float).fillna(ct)
        orders = pd.DataFrame({
            "work_order": wo["work_order"].astype(str).to_numpy(), "machine_id": wo["machine_id"].to_numpy(),
            "part_number": wo["part_number"].to_numpy(),
            "order_qty": pd.to_numeric(wo["order_qty"], errors="coerce").fillna(0).to_numpy(float),
            "ideal_ct_s": ct.to_numpy(),
            "released_at": pd.to_datetime(wo["released_at"], utc=True).to_numpy(),
            "due_date": pd.to_datetime(pd.Series(wo["due_date"].to_numpy(), dtype=object)).to_numpy()})
    else:
        notes.append("no work orders: the queue features are flat")
    if led.empty:
        progress = pd.DataFrame(columns=["machine_id", "work_order", "day", "produced", "ideal_min",
                                         "last_time"])
    else:
        wo = led["work_order"].cat.add_categories([""]).fillna("")
        lp = led.assign(work_order=wo, ideal_min=led["ideal_s"] / 60.0)
        progress = lp.groupby(["machine_id", "work_order", "day"], as_index=False, observed=True).agg(
            produced=("produced", "sum"), ideal_min=("ideal_min", "sum"), last_time=("time_ns", "max"))
        progress["work_order"] = progress["work_order"].astype(str)
        progress["last_time"] = pd.to_datetime(progress["last_time"], utc=True)
    return PlannedWork(tz=tz, day_start=_day_start(shift_calendar, tz), machines=mach, machine_days=md,
                       calendar_first=days.min().date(), calendar_last=days.max().date(), orders=orders,
                       progress=progress, notes=tuple(notes))


def planned_work(*, machines: pd.DataFrame, shift_calendar: pd.DataFrame, production_events: pd.DataFrame,
                 tz: str, planned_stops: pd.DataFrame | None = None, work_orders: pd.DataFrame | None = None,
                 part_rates: pd.DataFrame | None = None) -> PlannedWork:
    """Collect the planned work the residual model reads (see :class:`PlannedWork`).

    Parameters
    ----------
    machines, shift_calendar, production_events : pandas.DataFrame
        Canonical tables. The calendar should reach into the forecast horizon; beyond its last day
        each machine's weekday pattern of its last four weeks is assumed (and flagged).
    tz : str
        Plant time zone.
    planned_stops, work_orders, part_rates : pandas.DataFrame, optional
        Canonical tables; without them planned stops, the order queue or part-specific cycle
        times are simply not known.

    Returns
    -------
    PlannedWork
    """
    led = _ledger(production_events, machines=machines, shift_calendar=shift_calendar,
                  part_rates=part_rates, tz=tz)
    return _planned_from(led, machines=machines, shift_calendar=shift_calendar, planned_stops=planned_stops,
                         work_orders=work_orders, part_rates=part_rates, tz=tz)


def from_tables(tables: Mapping[str, pd.DataFrame], *, tz: str) -> tuple[pd.DataFrame, PlannedWork]:
    """:func:`daily_history` and :func:`planned_work` from a ``{table name: frame}`` mapping (one pass
    over the production events), e.g. ``simulate_plant(...).tables``."""
    for name in ("production_events", "machines", "shift_calendar"):
        if name not in tables:
            raise MLError(f"yield forecast needs the table {name}")
    led = _ledger(tables["production_events"], machines=tables["machines"],
                  shift_calendar=tables["shift_calendar"], part_rates=tables.get("part_rates"), tz=tz)
    history = _history_from_ledger(led, tables["machines"]["line"].dropna().unique())
    planned = _planned_from(led, machines=tables["machines"], shift_calendar=tables["shift_calendar"],
                            planned_stops=tables.get("planned_stops"), work_orders=tables.get("work_orders"),
                            part_rates=tables.get("part_rates"), tz=tz)
    return history, planned


# ---------------------------------------------------------------------------------------------
# the day grid: plans and actuals as arrays over consecutive days


@dataclass(frozen=True)
class _Grid:
    days: pd.DatetimeIndex  # consecutive days, naive midnight
    lines: tuple[str, ...]
    machines: tuple[str, ...]
    m_line: np.ndarray  # line index of each machine
    m_ct: np.ndarray  # fallback ideal cycle time (s) per machine
    sched_m: np.ndarray  # [M, N] minutes
    pbm_m: np.ndarray
    pm_m: np.ndarray
    nd_m: np.ndarray
    sched_l: np.ndarray  # [L, N]
    pbm_l: np.ndarray
    assumed: np.ndarray  # [N] calendar assumed (beyond the published calendar)
    prod_m: np.ndarray  # [M, N] history per machine
    ideal_m: np.ndarray
    good_l: np.ndarray  # [L, N], NaN where not known
    prod_l: np.ndarray
    ok_l: np.ndarray  # [L, N] the actual is usable (inside history and calendar, not missing)
    first: int  # history day range (grid indices)
    last: int
    origin_ns: np.ndarray  # [N] the instant after day i (start of the next production day), UTC ns
    orders: dict[int, dict[str, np.ndarray]]
    progress: dict[int, dict[str, np.ndarray]]
    due_l: dict[int, tuple[np.ndarray, np.ndarray]]  # line -> (due day index, released ns)
    skipped: dict[str, str]
    notes: tuple[str, ...]


_NEVER = np.iinfo(np.int64).max


def _check_history(history: pd.DataFrame) -> pd.DataFrame:
    _need(history, "history", ("line", "day", "good", "produced"))
    h = history[["line", "day", "good", "produced"]].reset_index(drop=True)
    for c in ("good", "produced"):
        values = pd.to_numeric(h[c], errors="coerce")
        bad = values.isna() & h[c].notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise MLError(f"yield forecast: history.{c} is not numeric at row {i} ({h[c].iloc[i]!r})")
        h[c] = values.fillna(0.0).astype(float)
        if (h[c] < 0).any():
            i = int(np.flatnonzero((h[c] < 0).to_numpy())[0])
            raise MLError(f"yield forecast: history.{c} is negative at row {i} (line {h['line'].iloc[i]})")
    over = h["good"] > h["produced"]
    if over.any():
        i = int(np.flatnonzero(over.to_numpy())[0])
        raise MLError(f"yield forecast: history has good > produced at row {i} "
                      f"(line {h['line'].iloc[i]}, day {h['day'].iloc[i]})")
    try:
        h["day"] = pd.to_datetime(pd.Series(h["day"].to_numpy(), dtype=object)).dt.normalize()
    except (ValueError, TypeError) as exc:
        raise MLError(f"yield forecast: history.day is not a date column ({exc})") from None
    if h["day"].dt.tz is not None:
        raise MLError("yield forecast: history.day must be plant-local dates, not instants")
    h["line"] = h["line"].astype(str)
    dup = h.duplicated(["line", "day"])
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise MLError(f"yield forecast: history has line {h['line'].iloc[i]} day {h['day'].iloc[i].date()} "
                      "twice")
    return h


def _grid(history: pd.DataFrame, planned: PlannedWork, *, horizon: int) -> _Grid:
    if not isinstance(planned, PlannedWork):
        raise MLError(f"yield forecast: planned must be a PlannedWork (see planned_work), "
                      f"got {type(planned).__name__}")
    h = _check_history(history)
    if h.empty:
        raise MLError(f"yield forecast: the history is empty; it needs at least {MIN_HISTORY_DAYS} days")
    first_day, last_day = h["day"].min(), h["day"].max()
    span = (last_day - first_day).days + 1
    if span < MIN_HISTORY_DAYS:
        raise MLError(f"yield forecast needs at least {MIN_HISTORY_DAYS} days of history (three of each "
                      f"weekday); got {span} ({first_day.date()} to {last_day.date()})")
    mach = planned.machines.sort_values("machine_id").reset_index(drop=True)
    lines = tuple(sorted(mach["line"].dropna().astype(str).unique()))
    foreign = sorted(set(h["line"]) - set(lines))
    if foreign:
        raise MLError(f"yield forecast: history has line(s) without machines: {', '.join(foreign[:10])}")
    days = pd.date_range(first_day, last_day + pd.Timedelta(days=horizon), freq="D")
    n, machines = len(days), tuple(mach["machine_id"].astype(str))
    m_index = {m: i for i, m in enumerate(machines)}
    l_index = {ln: i for i, ln in enumerate(lines)}
    m_line = mach["line"].astype(str).map(l_index).to_numpy(int)
    mm = len(machines)

    md = planned.machine_days
    arrays = {c: np.zeros((mm, n)) for c in ("scheduled_min", "planned_busy_min", "pm_min", "no_demand_min")}
    beyond = days[-1] + pd.Timedelta(days=1)
    cal_first = pd.Timestamp(planned.calendar_first) if planned.calendar_first else beyond
    cal_last = pd.Timestamp(planned.calendar_last) if planned.calendar_last else cal_first
    if not md.empty:
        di = days.get_indexer(pd.to_datetime(md["day"]))
        mi = md["machine_id"].astype(str).map(m_index).to_numpy()
        keep = (di >= 0) & ~pd.isna(mi)
        for c, a in arrays.items():
            a[mi[keep].astype(int), di[keep]] = md[c].to_numpy(float)[keep]
    covered = (days >= cal_first) & (days <= cal_last)
    assumed = days > cal_last
    if assumed.any():
        # Beyond the published calendar: each machine's weekday pattern of the calendar's last four
        # weeks (median, so one no-demand day does not set the pattern); no PM or no-demand known.
        recent = md[pd.to_datetime(md["day"]) > cal_last - pd.Timedelta(days=28)]
        recent = recent.assign(_m=recent["machine_id"].astype(str).map(m_index),
                               _wd=pd.to_datetime(recent["day"]).dt.day_of_week).dropna(subset=["_m"])
        recent = recent.astype({"_m": int})
        full = pd.MultiIndex.from_product([range(mm), range(7)])
        for c in ("scheduled_min", "planned_busy_min"):
            table = np.zeros((mm, 7))
            if not recent.empty:
                # a weekday worked fewer than twice in those four weeks is taken as not worked
                cnt = recent.groupby(["_m", "_wd"]).size()
                med = recent.groupby(["_m", "_wd"])[c].median()
                med = med.where(cnt >= 2, 0.0).reindex(full, fill_value=0.0)
                table = med.to_numpy().reshape(mm, 7)
            a = np.flatnonzero(assumed)
            arrays[c][:, a] = table[:, days[a].day_of_week]
    sched_m, pbm_m = arrays["scheduled_min"], arrays["planned_busy_min"]
    onehot = np.zeros((len(lines), mm))
    onehot[m_line, np.arange(mm)] = 1.0

    prod_m, ideal_m = np.zeros((mm, n)), np.zeros((mm, n))
    pg = planned.progress
    if not pg.empty:
        di = days.get_indexer(pd.to_datetime(pg["day"]))
        mi = pg["machine_id"].astype(str).map(m_index)
        keep = (di >= 0) & mi.notna().to_numpy()
        np.add.at(prod_m, (mi[keep].astype(int).to_numpy(), di[keep]), pg["produced"].to_numpy(float)[keep])
        np.add.at(ideal_m, (mi[keep].astype(int).to_numpy(), di[keep]), pg["ideal_min"].to_numpy(float)[keep])

    good_l, prod_l = np.full((len(lines), n), np.nan), np.full((len(lines), n), np.nan)
    first, last = 0, int(days.get_loc(last_day))
    good_l[:, : last + 1] = 0.0
    prod_l[:, : last + 1] = 0.0
    li, di = h["line"].map(l_index).to_numpy(int), days.get_indexer(h["day"])
    good_l[li, di] = h["good"].to_numpy()
    prod_l[li, di] = h["produced"].to_numpy()
    pbm_l = onehot @ pbm_m
    inside = np.zeros(n, dtype=bool)
    inside[: last + 1] = True
    missing = (pbm_l > 0) & (prod_l == 0)
    ok_l = inside[None, :] & covered[None, :] & ~missing
    notes = list(planned.notes)
    n_missing = int((missing & inside[None, :] & covered[None, :]).sum())
    if n_missing:
        notes.append(f"{n_missing} scheduled line-day(s) without any production treated as missing data")
    n_uncovered = int((inside & ~covered).sum())
    if n_uncovered:
        notes.append(f"{n_uncovered} history day(s) outside the shift calendar not used")
    skipped = {ln: "no production in the history" for i, ln in enumerate(lines)
               if np.nansum(prod_l[i, : last + 1]) == 0}
    if len(skipped) == len(lines):
        raise MLError("yield forecast: no line has any production in the history")

    zone = ZoneInfo(planned.tz)
    starts = [dt.datetime.combine((d + pd.Timedelta(days=1)).date(), planned.day_start, tzinfo=zone)
              for d in days]
    origin_ns = pd.DatetimeIndex(starts).tz_convert("UTC").as_unit("ns").asi8

    orders: dict[int, dict[str, np.ndarray]] = {}
    due_l: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    o = planned.orders
    if not o.empty:
        o = o.assign(_m=o["machine_id"].astype(str).map(m_index)).dropna(subset=["_m"])
        o = o.sort_values(["due_date", "released_at", "work_order"], na_position="last", kind="stable")
        rel = pd.to_datetime(o["released_at"], utc=True)
        rel_ns = np.where(rel.isna(), _NEVER, rel.dt.as_unit("ns").astype("int64").fillna(0)).astype(np.int64)
        due_idx = days.get_indexer(pd.to_datetime(o["due_date"]).dt.normalize())
        o = o.assign(_rel=rel_ns, _due=due_idx, _line=m_line[o["_m"].astype(int)])
        for m, g in o.groupby("_m"):
            orders[int(m)] = {"name": g["work_order"].to_numpy(str), "qty": g["order_qty"].to_numpy(float),
                              "ct": g["ideal_ct_s"].fillna(mach["ideal_ct_s"].iloc[int(m)]).to_numpy(float),
                              "released": g["_rel"].to_numpy(np.int64)}
        for ln, g in o.groupby("_line"):
            due_l[int(ln)] = (g["_due"].to_numpy(int), g["_rel"].to_numpy(np.int64))
    progress: dict[int, dict[str, np.ndarray]] = {}
    if not pg.empty:
        pg = pg.assign(_m=pg["machine_id"].astype(str).map(m_index),
                       _d=days.get_indexer(pd.to_datetime(pg["day"])))
        pg = pg[pg["_m"].notna() & (pg["_d"] >= 0)]
        for m, g in pg.groupby("_m"):
            names = orders.get(int(m), {}).get("name", np.empty(0, str))
            lookup = {name: i for i, name in enumerate(names)}
            progress[int(m)] = {
                "order": g["work_order"].astype(str).map(lookup).fillna(-1).to_numpy(int),
                "day": g["_d"].to_numpy(int), "produced": g["produced"].to_numpy(float),
                "last": pd.to_datetime(g["last_time"], utc=True).dt.as_unit("ns").astype("int64").to_numpy()}
    m_ct = mach["ideal_ct_s"].astype(float).fillna(60.0).to_numpy()
    return _Grid(days=days, lines=lines, machines=machines, m_line=m_line, m_ct=m_ct, sched_m=sched_m,
                 pbm_m=pbm_m, pm_m=arrays["pm_min"], nd_m=arrays["no_demand_min"], sched_l=onehot @ sched_m,
                 pbm_l=pbm_l, assumed=assumed, prod_m=prod_m, ideal_m=ideal_m, good_l=good_l, prod_l=prod_l,
                 ok_l=ok_l, first=first, last=last, origin_ns=origin_ns, orders=orders, progress=progress,
                 due_l=due_l, skipped=skipped, notes=tuple(notes))


# ---------------------------------------------------------------------------------------------
# features known at an origin


def _ratio(num: float, den: float, default: float = np.nan) -> float:
    return float(num / den) if den > 0 else default


def _project(g: _Grid, m: int, t: int, targets: np.ndarray, eff: float,
             ct_recent: float) -> dict[str, np.ndarray]:
    """Lay the machine's known work (current order's remainder, then the released queue by due date)
    onto the planned busy time of the target days at the machine's recent efficiency."""
    o, p = g.orders.get(m), g.progress.get(m)
    n_orders = len(o["qty"]) if o else 0
    items: list[tuple[float, float, bool]] = []  # (ideal ct s, ideal minutes, starts with a changeover)
    started = np.zeros(n_orders, dtype=bool)
    if p is not None:
        sel = p["day"] <= t
        if sel.any():
            known = sel & (p["order"] >= 0)
            done = np.bincount(p["order"][known], weights=p["produced"][known], minlength=n_orders)
            started[np.unique(p["order"][known])] = True
            cur = int(p["order"][sel][np.argmax(p["last"][sel])])
            if cur >= 0 and o is not None:
                rem = o["qty"][cur] - done[cur]
                if rem > 0:
                    items.append((o["ct"][cur], rem * o["ct"][cur] / 60.0, False))
    if o is not None:
        queue = np.flatnonzero((o["released"] <= g.origin_ns[t]) & ~started)
        items.extend((o["ct"][i], o["qty"][i] * o["ct"][i] / 60.0, True) for i in queue)
    k = len(targets)
    parts, base, known_min, work, chg = (np.zeros(k) for _ in range(5))
    i, left = 0, items[0][1] if items else 0.0
    opened = False
    for j, d in enumerate(targets):
        cap = g.pbm_m[m, d] * eff
        work[j], base[j] = cap, cap * 60.0 / ct_recent
        while cap > 1e-9 and i < len(items):
            if not opened:
                chg[j] += items[i][2]
                opened = True
            take = min(cap, left)
            parts[j] += take * 60.0 / items[i][0]
            known_min[j] += take
            cap -= take
            left -= take
            if left <= 1e-9:
                i += 1
                opened = False
                left = items[i][1] if i < len(items) else 0.0
        parts[j] += cap * 60.0 / ct_recent
    return {"parts": parts, "base": base, "known": known_min, "work": work, "changeovers": chg}


def _origin_features(g: _Grid, t: int, horizon: int) -> pd.DataFrame:
    targets = np.arange(t + 1, min(t + horizon, len(g.days) - 1) + 1)
    if len(targets) == 0:
        return pd.DataFrame()
    lo = max(g.first, t - RECENT_DAYS + 1)
    w = slice(lo, t + 1)
    okw = g.ok_l[:, w] & (g.pbm_l[:, w] > 0)
    prod_w = np.where(okw, g.prod_l[:, w], 0.0)
    good_w = np.where(okw, g.good_l[:, w], 0.0)
    rho = np.array([_ratio(prod_w[i].sum(), g.pbm_l[i, w][okw[i]].sum()) for i in range(len(g.lines))])
    eff = np.full(len(g.machines), np.nan)
    ct_recent = g.m_ct.copy()
    for m in range(len(g.machines)):
        ok = okw[g.m_line[m]]
        ideal, prod, pbm = g.ideal_m[m, w][ok].sum(), g.prod_m[m, w][ok].sum(), g.pbm_m[m, w][ok].sum()
        eff[m] = _ratio(ideal, pbm)
        if prod > 0:
            ct_recent[m] = 60.0 * ideal / prod
    typical_eff = float(np.nanmedian(eff)) if np.isfinite(eff).any() else 0.75
    eff = np.where(np.isfinite(eff) & (eff > 0), eff, typical_eff)
    proj = [_project(g, m, t, targets, eff[m], ct_recent[m]) for m in range(len(g.machines))]

    rows = []
    for li, line in enumerate(g.lines):
        ms = np.flatnonzero(g.m_line == li)
        hist = np.flatnonzero(g.ok_l[li, g.first: t + 1] & (g.prod_l[li, g.first: t + 1] > 0)) + g.first
        last_rate = last_yield = yield3 = np.nan
        last_day = None
        if len(hist):
            j = hist[-1]
            last_day = g.days[j].date()
            last_rate = _ratio(g.prod_l[li, j], g.pbm_l[li, j])
            last_yield = g.good_l[li, j] / g.prod_l[li, j]
            k3 = hist[-3:]
            yield3 = g.good_l[li, k3].sum() / g.prod_l[li, k3].sum()
        yield_recent = _ratio(good_w[li].sum(), prod_w[li].sum())
        due_days, due_rel = g.due_l.get(li, (np.empty(0, int), np.empty(0, np.int64)))
        due_known = due_days[due_rel <= g.origin_ns[t]]
        for j, d in enumerate(targets):
            parts = sum(proj[m]["parts"][j] for m in ms)
            base = sum(proj[m]["base"][j] for m in ms)
            work = sum(proj[m]["work"][j] for m in ms)
            known = sum(proj[m]["known"][j] for m in ms)
            sched, pbm = g.sched_l[li, d], g.pbm_l[li, d]
            pm = g.pm_m[ms, d].sum()
            rows.append({
                "line": line, "origin": t, "d": d, "horizon": j + 1,
                "scheduled_min": sched, "planned_busy_min": pbm, "pm_min": pm,
                "no_demand_min": g.nd_m[ms, d].sum(), "calendar_assumed": bool(g.assumed[d]),
                "avail_share": _ratio(pbm, sched, 0.0), "pm_share": _ratio(pm, sched, 0.0),
                "no_demand_share": _ratio(g.nd_m[ms, d].sum(), sched, 0.0),
                "machines_share": float((g.pbm_m[ms, d] > 0).mean()),
                "plan_ratio": _ratio(parts, rho[li] * pbm), "mix_ratio": _ratio(parts, base),
                "known_share": _ratio(known, work),
                "changeovers": float(sum(proj[m]["changeovers"][j] for m in ms)),
                "due_orders": float((due_known == d).sum()),
                "last_rate_ratio": _ratio(last_rate, rho[li]), "yield_recent": yield_recent,
                "last_yield_dev": last_yield - yield_recent, "yield3_dev": yield3 - yield_recent,
                "rate_recent": rho[li], "last_yield": last_yield, "yield3": yield3, "last_day": last_day,
                "pm_machines": ", ".join(g.machines[m] for m in ms if g.pm_m[m, d] > 0),
                "changeover_machines": ", ".join(g.machines[m] for m in ms if proj[m]["changeovers"][j] > 0),
                "projected_parts": parts,
            })
    return pd.DataFrame(rows)


def _feature_table(g: _Grid, origins: Sequence[int], horizon: int) -> pd.DataFrame:
    frames = [_origin_features(g, t, horizon) for t in origins]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def features_at(history: pd.DataFrame, planned: PlannedWork, *, origin: dt.date,
                horizon: int = 7) -> pd.DataFrame:
    """The planned-work features of the days after ``origin``, as known at the end of ``origin``.

    Parameters
    ----------
    history : pandas.DataFrame
        Line-day history (:func:`daily_history`); only days up to ``origin`` are read.
    planned : PlannedWork
        From :func:`planned_work`.
    origin : datetime.date
        Last production day whose data is known.
    horizon : int
        Number of days after ``origin``.

    Returns
    -------
    pandas.DataFrame
        One row per line and day: line, day, horizon and the columns of :data:`FEATURE_DOCS` plus
        the raw figures they come from.
    """
    h = _check_history(history)
    h = h[h["day"] <= pd.Timestamp(origin)]
    g = _grid(h, planned, horizon=horizon)
    if g.days[g.last].date() != origin:
        raise MLError(f"yield forecast: the history ends {g.days[g.last].date()}, before the origin {origin}")
    f = _origin_features(g, g.last, horizon)
    f.insert(1, "day", [g.days[d].date() for d in f["d"]])
    return f.drop(columns=["origin", "d"])
