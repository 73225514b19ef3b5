"""Jobs: read what an analysis needs from the warehouse, run it, write the result back.

This is the I/O edge the CLI, the notebooks and the Prefect flows share; the analytics modules
themselves never touch the warehouse.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import pandas as pd

from workbench import oee
from workbench.errors import WorkbenchError
from workbench.store import Warehouse, WriteResult

_ALL = ("machines", "part_rates", "reason_codes")
_INTERVALS = ("machine_states", "shift_calendar", "planned_stops", "downtime_events")


def _check_range(start: dt.datetime, end: dt.datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise WorkbenchError(f"start and end must be timezone-aware (got {start!r}, {end!r})")
    if end <= start:
        raise WorkbenchError(f"end {end} is not after start {start}")


def production_day_range(warehouse: Warehouse, *, first: dt.date, last: dt.date,
                         tz: str) -> tuple[dt.datetime, dt.datetime]:
    """Instants bounding production days ``first`` … ``last - 1``.

    A production day starts with its first shift (e.g. 06:00), not at midnight: the start time is
    the local time at which the calendar's production days most often begin (midnight when the
    calendar is empty).
    """
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(tz)
    cal = warehouse.read("shift_calendar", columns=["shift_date", "time_start"])
    day_start = dt.time()
    if not cal.empty:
        firsts = cal.groupby("shift_date")["time_start"].min().dt.tz_convert(zone)
        day_start = firsts.dt.time.mode().iloc[0]
    return (dt.datetime.combine(first, day_start, tzinfo=zone),
            dt.datetime.combine(last, day_start, tzinfo=zone))


def load_plant_frames(warehouse: Warehouse, *, start: dt.datetime, end: dt.datetime,
                      machines: list[str] | None = None) -> oee.PlantFrames:
    """The tables OEE and the loss analyses need for ``[start, end)``.

    Interval tables are read by overlap, so a stop that began before ``start`` is included;
    production events completing exactly at ``end`` are included (they belong to the period
    ending there).
    """
    _check_range(start, end)
    with warehouse.held():  # one connection for all the tables (a notebook's reader connects per call)
        frames: dict[str, pd.DataFrame] = {name: warehouse.read(name) for name in _ALL}
        for name in _INTERVALS:
            kwargs = {"machines": machines} if machines is not None and name != "shift_calendar" \
                and name != "planned_stops" else {}
            frames[name] = warehouse.read(name, start=start, end=end, overlap=True, **kwargs)
        events = warehouse.read("production_events", start=start, end=end + dt.timedelta(microseconds=1),
                                machines=machines)
    if machines is not None:
        frames["machines"] = frames["machines"][frames["machines"]["machine_id"].isin(machines)]
    frames["production_events"] = events[events["time"] > pd.Timestamp(start)]
    return oee.PlantFrames.from_tables(frames)


def compute_oee(warehouse: Warehouse, *, start: dt.datetime, end: dt.datetime, tz: str,
                by: tuple[str, ...] = ("machine_id", "day"), micro_stop_threshold_s: float = 120.0,
                machines: list[str] | None = None) -> oee.OEEResult:
    """OEE for ``[start, end)`` straight from the warehouse."""
    frames = load_plant_frames(warehouse, start=start, end=end, machines=machines)
    return oee.compute(frames, by=by, tz=tz, micro_stop_threshold_s=micro_stop_threshold_s,
                       start=start, end=end)


def roll_up_oee_hourly(warehouse: Warehouse, *, start: dt.datetime, end: dt.datetime, tz: str,
                       micro_stop_threshold_s: float = 120.0,
                       computed_at: dt.datetime | None = None) -> WriteResult:
    """Compute hourly OEE per machine for ``[start, end)`` and upsert it into ``oee_hourly``.

    Re-running it over the same data writes nothing (``computed_at`` alone does not make a row
    changed); late data or corrected reason codes update just the hours they touch.
    """
    result = compute_oee(warehouse, start=start, end=end, tz=tz, by=("machine_id", "hour"),
                         micro_stop_threshold_s=micro_stop_threshold_s)
    rows = oee.oee_hourly_rows(result, computed_at=computed_at or dt.datetime.now(dt.UTC))
    return warehouse.write("oee_hourly", rows)


def latest_production_day(warehouse: Warehouse, *, tz: str) -> dt.date:
    """The last production day with production data (the default "yesterday" of a report)."""
    from zoneinfo import ZoneInfo

    with warehouse.held():
        row = warehouse.read("shift_calendar", columns=["shift_date", "time_start"])
        events = warehouse.query("SELECT max(time) AS last FROM production_events")
    if row.empty or events.empty or pd.isna(events["last"].iloc[0]):
        raise WorkbenchError("the warehouse has no production data yet: run `workbench demo` or load data")
    last = pd.Timestamp(events["last"].iloc[0])
    last = last.tz_localize("UTC") if last.tzinfo is None else last
    started = row[row["time_start"] < last]
    if started.empty:
        return last.tz_convert(ZoneInfo(tz)).date()
    return started.sort_values("time_start")["shift_date"].iloc[-1]


def daily_summary_from(warehouse: Warehouse, *, day: dt.date, tz: str,
                       thresholds: tuple[float, float] | None = None, top: int = 5,
                       micro_stop_threshold_s: float = 120.0,
                       machines: list[str] | None = None):  # -> summary.DailySummary
    """The :class:`workbench.summary.DailySummary` of production day ``day`` from the warehouse
    (of the given ``machines`` only, when given: the plant figures are then theirs)."""
    from workbench import summary

    with warehouse.held():  # every table from one connection: they describe the same moment
        start, end = production_day_range(warehouse, first=day, last=day + dt.timedelta(days=1), tz=tz)
        frames = load_plant_frames(warehouse, start=start, end=end, machines=machines)
        tables = {name: getattr(frames, name) for name in frames.__dataclass_fields__}
        tables["scrap_events"] = warehouse.read("scrap_events", start=start, end=end, machines=machines)
        tables["work_orders"] = warehouse.read("work_orders")
        tables["characteristics"] = warehouse.read("characteristics")
        since = start - dt.timedelta(days=summary.SPC_BASELINE_DAYS)
        tables["quality_measurements"] = warehouse.read("quality_measurements", start=since, end=end,
                                                        machines=machines)
        # Tool changes and run time over the SPC baseline too: a tool-wear chart's phase I needs
        # the age of the tool at every baseline subgroup.
        spc_tables = {name: warehouse.read(name, start=since, end=end, overlap=True, machines=machines)
                      for name in ("downtime_events", "machine_states")}
    return summary.daily_summary(tables, day=day, start=start, end=end, tz=tz,
                                 thresholds=thresholds or summary.DEFAULT_THRESHOLDS, top=top,
                                 micro_stop_threshold_s=micro_stop_threshold_s, spc_tables=spc_tables)


def day_anomaly_tables(warehouse: Warehouse, *, start: dt.datetime, end: dt.datetime, train_days: float,
                       history_days: float) -> Mapping[str, pd.DataFrame]:
    """What :func:`workbench.ml.sections.anomalies_needing_a_look` reads for the day ``[start, end)``
    (:func:`workbench.ml.daily.anomaly_reads`, as the anomalies notebook reads them)."""
    from workbench.ml import daily

    return daily.read_many(warehouse, daily.anomaly_reads(start, end, train_days=train_days,
                                                          history_days=history_days))


def day_anomalies(warehouse: Warehouse, day: dt.date, *, tz: str, train_days: float = 7,
                  history_days: float = 14,
                  created_at: dt.datetime) -> tuple[pd.DataFrame, dict[str, object]]:
    """The telemetry and scrap anomalies of one production day, as ``ml_anomalies`` rows.

    The same computation as the report's "anomalies needing a look"
    (:func:`workbench.ml.sections.anomalies_needing_a_look`), rows by
    :func:`workbench.ml.anomaly_rows.anomaly_rows` (deterministic ids: storing them again updates
    the same rows). Only reads: store them with :func:`write_anomalies`.

    Returns
    -------
    rows : DataFrame
        Every column of ``ml_anomalies``.
    info : dict
        day, found (rows), shown (whether the detectors had enough history) and why not.
    """
    from workbench.ml import sections
    from workbench.ml.anomaly_rows import anomaly_rows

    start, end = production_day_range(warehouse, first=day, last=day + dt.timedelta(days=1), tz=tz)
    tables = day_anomaly_tables(warehouse, start=start, end=end, train_days=train_days,
                                history_days=history_days)
    section = sections.anomalies_needing_a_look(tables, day_start=start, day_end=end, train_days=train_days,
                                                tz=tz)
    rows = anomaly_rows(section, created_at=created_at)
    return rows, {"day": day.isoformat(), "stored": len(rows), "shown": section.shown,
                  "why_not": section.reason}


def write_anomalies(warehouse: Warehouse, rows: pd.DataFrame) -> int:
    """Store ``ml_anomalies`` rows (:func:`day_anomalies`) in one transaction; rows written."""
    if rows.empty:
        return 0
    with warehouse.transaction():
        return warehouse.write("ml_anomalies", rows).written


def write_stop_predictions(warehouse: Warehouse, predictions: pd.DataFrame, *,
                           created_at: dt.datetime) -> dict[str, int]:
    """Store a root-cause model's predictions (:func:`workbench.ml.retrain.score_stops`) in one
    transaction: every one into ``ml_predictions``, and ``predicted_category`` /
    ``predicted_confidence`` of the stops whose code is still blank (never an operator's code).

    Returns
    -------
    dict
        scored, filled (uncoded stops given a prediction), suspect (entered codes the model doubts).
    """
    from workbench.ml.retrain import prediction_rows

    if predictions.empty:
        return {"scored": 0, "filled": 0, "suspect": 0}
    blank = predictions[predictions["fills_blank"].astype(bool)]
    with warehouse.transaction():
        warehouse.write("ml_predictions", prediction_rows(predictions, created_at=created_at))
        warehouse.fill_stop_predictions(list(zip(blank["event_id"].astype(str),
                                                 blank["predicted_category"].astype(str),
                                                 blank["predicted_confidence"].astype(float), strict=True)))
    return {"scored": len(predictions), "filled": len(blank), "suspect": int(predictions["suspect"].sum())}
