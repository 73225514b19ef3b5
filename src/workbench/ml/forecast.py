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
history day). The shift calendar and planned stops are *plans* published ahead (a no-demand shift or
a PM is planned, not observed); a work order counts from its ``released_at`` (its quantity, part,
machine and due date, never ``completed_qty``, ``scrap_qty``, ``status`` or ``closed_at``); an
order's progress is counted from the production events before the origin. Orders without
``released_at`` count only once production on them has started. Orders without ``machine_id`` are
not used (a note says how many).

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
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from workbench import oee
from workbench.errors import MLError, WorkbenchError

#: Days of history a forecast needs at least (three weeks: three of each weekday).
MIN_HISTORY_DAYS = 21
#: Days of history a calibration or backtest model is trained on at least.
MIN_TRAIN_DAYS = 14
#: Window of the "recent" rate, efficiency and yield features (days before the origin).
RECENT_DAYS = 14
#: Worked days with data a line needs before it is forecast.
MIN_LINE_DAYS = 8
#: Scrap rate floor of the log-scrap yield model (a day without rejects is a 0.01 % scrap day).
SCRAP_FLOOR = 1e-4
#: Fewer GBM training rows than this: the residual stage is skipped (Prophet only).
MIN_GBM_ROWS = 40

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
VOLUME_FEATURES: tuple[str, ...] = ("horizon", "plan_ratio", "known_share", "changeovers")
YIELD_FEATURES: tuple[str, ...] = ("horizon", "yield_recent", "last_yield_dev", "yield3_dev")
TARGETS: tuple[str, ...] = ("good", "produced", "yield")
NOT_SHOWN = "forecast not better than last week's numbers; not shown"


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
        mase_hyndman_prophet, mase_hyndman_naive, coverage, n_coverage.
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
