"""What the report's model notebooks read, and their sections computed ahead by the morning run.

One place says which tables each model section reads over which range (:func:`root_cause_reads`,
:func:`anomaly_reads`, :func:`forecast_reads`): the notebooks read them through
:meth:`workbench.notebook.Scope.read_many`, the morning model run (``flows/retrain.py``) through
:func:`read_many` — so both compute from the same rows, and a section the run stored is found
again by the report (:mod:`workbench.ml.stored`: same day, same settings, same data).

:func:`day_sections` computes the three sections of one production day with the settings of the
report pipeline's notebooks (their parameters in ``pipelines/daily_report.yaml``, else the
notebooks' defaults), for ``ml_sections`` — and the day's anomalies for ``ml_anomalies``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from workbench.errors import WorkbenchError
from workbench.store.base import from_arrow

#: The report notebooks whose sections the morning run computes ahead.
NOTEBOOKS = ("root_cause", "anomalies", "yield_forecast")


@dataclass(frozen=True)
class Read:
    """One table read: rows in ``[start, end)`` (both None: the whole table); ``overlap``: every
    interval overlapping the range (interval tables)."""

    start: dt.datetime | None = None
    end: dt.datetime | None = None
    overlap: bool = False


def root_cause_reads(start: dt.datetime, end: dt.datetime, *, history_days: float) -> dict[str, Read]:
    """The root-cause section's tables: stops and machine states from ``history_days`` before the
    day (time since the last stop of each category, tool run time), scrap and telemetry from one
    hour before it (the stop features' window)."""
    history, hour_before = start - dt.timedelta(days=history_days), start - dt.timedelta(hours=1)
    return {"downtime_events": Read(history, end), "machine_states": Read(history, end, overlap=True),
            "scrap_events": Read(hour_before, end), "machine_telemetry": Read(hour_before, end)}


def anomaly_reads(start: dt.datetime, end: dt.datetime, *, train_days: float,
                  history_days: float) -> dict[str, Read]:
    """The anomalies section's tables: telemetry from ``train_days`` before the day; states,
    production, scrap, stops and measurements from ``history_days`` (at least ``train_days``);
    the analysts' verdicts on the anomalies of the ``history_days`` before the day
    (:mod:`workbench.ml.reviews`)."""
    history = start - dt.timedelta(days=max(history_days, train_days))
    return {"machine_telemetry": Read(start - dt.timedelta(days=train_days), end),
            "machine_states": Read(history, end, overlap=True),
            **{t: Read(history, end) for t in ("production_events", "scrap_events", "downtime_events",
                                              "quality_measurements")},
            "characteristics": Read(),
            # the verdicts on the anomalies of the days before (not ml_anomalies, which the morning
            # run rewrites after computing this section: it would never be found again)
            "ml_anomaly_reviews": Read(start - dt.timedelta(days=history_days), start)}


def forecast_reads(start: dt.datetime, end: dt.datetime, *, history_days: float,
                   horizon: int) -> dict[str, Read]:
    """The week-ahead section's tables: production over ``history_days`` before the day; the
    shift calendar and planned stops up to ``horizon + 1`` days after it; machines, part rates and
    work orders whole."""
    history, ahead = start - dt.timedelta(days=history_days), end + dt.timedelta(days=horizon + 1)
    return {"production_events": Read(history, end), "machines": Read(), "part_rates": Read(),
            "work_orders": Read(), "shift_calendar": Read(history, ahead),
            "planned_stops": Read(history, ahead)}


class Tables(Mapping[str, pd.DataFrame]):
    """Tables read as Arrow, each turned into a DataFrame the first time it is asked for.

    A section read back from ``ml_sections`` needs only the fingerprint of its inputs
    (:func:`workbench.ml.stored.fingerprint` hashes the Arrow tables) and, for the anomalies page,
    a few telemetry channels (:meth:`where`): a week of telemetry is then never turned into a
    DataFrame of a million rows. Indexing gives what :meth:`Warehouse.read` gives for the range.
    """

    def __init__(self, arrow: Mapping[str, pa.Table]) -> None:
        self._arrow = dict(arrow)
        self._frames: dict[str, pd.DataFrame] = {}

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self._frames:
            self._frames[name] = from_arrow(self._arrow[name], "pandas")
        return self._frames[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrow)

    def __len__(self) -> int:
        return len(self._arrow)

    def arrow(self, name: str) -> pa.Table:
        """The table as read (canonical Arrow types)."""
        return self._arrow[name]

    def rows(self, name: str) -> int:
        """Its number of rows, without turning it into a DataFrame."""
        return self._arrow[name].num_rows

    def where(self, name: str, **equal: str) -> pd.DataFrame:
        """The rows whose columns equal the given values (e.g. ``machine_id="M05",
        metric="vibration_mm_s"``), as a DataFrame — filtered before conversion."""
        import pyarrow.compute as pc

        table = self._arrow[name]
        if name in self._frames or not equal:
            frame = self[name]
            mask = pd.Series(True, index=frame.index)
            for col, value in equal.items():
                mask &= frame[col].astype(str) == value
            return frame[mask].reset_index(drop=True)
        mask = None
        for col, value in equal.items():
            hit = pc.equal(pc.cast(table[col], pa.string()), value)
            mask = hit if mask is None else pc.and_(mask, hit)
        return from_arrow(table.filter(mask), "pandas")


def read_many(warehouse: Any, reads: Mapping[str, Read], *, machines: list[str] | None = None) -> Tables:
    """Read every table of ``reads`` from a warehouse under one connection (see
    :meth:`workbench.notebook.Scope.read_many` for a notebook's selection); each becomes a
    DataFrame when first used (:class:`Tables`)."""
    from workbench import schema

    out = {}
    with warehouse.held():
        for name, r in reads.items():
            tbl = schema.table(name)
            ranged = tbl.time_column is not None and (r.start is not None or r.end is not None)
            out[name] = warehouse.read(name, start=r.start if ranged else None, end=r.end if ranged else None,
                                       machines=machines if "machine_id" in tbl.column_names else None,
                                       overlap=r.overlap and ranged, as_="arrow")
    return Tables(out)


@dataclass(frozen=True)
class DaySections:
    """The model sections of one production day computed ahead.

    Attributes
    ----------
    rows : DataFrame
        ``ml_sections`` rows (one per section computed).
    anomalies : DataFrame
        The day's ``ml_anomalies`` rows (empty when the anomalies section was not computed).
    done : dict
        Per notebook: "stored" with its status, or why it was not computed ahead.
    anomaly_settings : dict or None
        ``train_days`` and ``history_days`` the day's anomalies were detected with (None when the
        anomalies section was not computed): the morning run detects the other days' anomalies
        with the same, so that ``ml_anomalies`` and the report agree on what an anomaly is.
    """

    rows: pd.DataFrame
    anomalies: pd.DataFrame
    done: dict[str, str]
    anomaly_settings: dict[str, float] | None = None


def notebook_settings(report: Any, *, home: Path) -> dict[str, dict[str, Any]]:
    """The parameters each model notebook of the report pipeline runs with: the pipeline's values,
    else the notebook's defaults (as :func:`workbench.runs.run_notebook` gives them)."""
    from workbench.reports.sources import complete_parameters

    out = {}
    for spec in report.notebooks:
        if spec.name in NOTEBOOKS:
            path = spec.path if Path(spec.path).is_absolute() else home / spec.path
            out[spec.name] = complete_parameters(Path(path), report.notebook_parameters(spec))
    return out


def _selected(params: Mapping[str, Any]) -> str:
    chosen = [k for k in ("site", "lines", "machines") if params.get(k)]
    return f"the report's notebook selects {', '.join(chosen)}: computed by the report" if chosen else ""


def day_sections(warehouse: Any, day: dt.date, *, tz: str, settings: Mapping[str, Mapping[str, Any]],
                 registry_uri: str, created_at: dt.datetime) -> DaySections:
    """The report's model sections of production day ``day``, as the notebooks compute them.

    Parameters
    ----------
    warehouse : Warehouse
        Only read.
    day : date
        The production day.
    tz : str
        Plant time zone.
    settings : mapping
        :func:`notebook_settings` of the report pipeline (a notebook missing is not computed).
    registry_uri : str
        The MLflow registry (the root-cause section uses the model under the notebook's
        ``model_alias``).
    created_at : datetime
        When the rows are stored.

    Returns
    -------
    DaySections
    """
    from workbench import jobs
    from workbench.ml import sections
    from workbench.ml.anomaly_rows import anomaly_rows
    from workbench.ml.forecast import YieldForecaster
    from workbench.ml.stored import fingerprint, section_row

    start, end = jobs.production_day_range(warehouse, first=day, last=day + dt.timedelta(days=1), tz=tz)
    rows: list[dict[str, Any]] = []
    found = pd.DataFrame()
    done: dict[str, str] = {}
    anomaly_settings: dict[str, float] | None = None

    def keep(record: str, section: Any, params: Mapping[str, Any],
             tables: Mapping[str, pd.DataFrame]) -> None:
        rows.append(section_row(record, section, day_start=start, day_end=end, params=params,
                                inputs=fingerprint(tables), created_at=created_at))

    for name in NOTEBOOKS:
        p = settings.get(name)
        if p is None:
            done[name] = "not in the report pipeline"
            continue
        if why := _selected(p):
            done[name] = why
            continue
        try:
            if name == "root_cause":
                alias = str(p.get("model_alias") or "champion")
                loaded, missing = sections.load_model(str(p.get("registry") or registry_uri), alias=alias,
                                                      deferred=True)
                if loaded is None:
                    done[name] = missing
                    continue
                tables = read_many(warehouse, root_cause_reads(start, end, history_days=p["history_days"]))
                section = sections.uncoded_stops(tables, model=loaded, day_start=start, day_end=end, tz=tz,
                                                 min_accuracy=p["min_accuracy"],
                                                 suspect_threshold=p["suspect_threshold"])
                keep(sections.UNCODED_RECORD, section,
                     sections.uncoded_params(loaded.card, min_accuracy=p["min_accuracy"],
                                             suspect_threshold=p["suspect_threshold"],
                                             top=sections.TOP_CONTRIBUTIONS), tables)
            elif name == "anomalies":
                tables = read_many(warehouse, anomaly_reads(start, end, train_days=p["train_days"],
                                                            history_days=p["history_days"]))
                section = sections.anomalies_needing_a_look(tables, day_start=start, day_end=end,
                                                            train_days=p["train_days"], tz=tz)
                keep(sections.ANOMALIES_RECORD, section,
                     sections.anomaly_params(train_days=p["train_days"], tz=tz), tables)
                found = anomaly_rows(section, created_at=created_at)
                anomaly_settings = {"train_days": p["train_days"], "history_days": p["history_days"]}
            else:
                tables = read_many(warehouse, forecast_reads(start, end, history_days=p["history_days"],
                                                             horizon=p["horizon"]))
                forecaster = YieldForecaster(horizon=p["horizon"], random_state=0)
                section = sections.week_ahead(tables, origin_day=day, tz=tz, target_yield=p["target_yield"],
                                              day_end=end, forecaster=forecaster)
                keep(sections.WEEK_AHEAD_RECORD, section,
                     sections.week_ahead_params(origin_day=day, tz=tz, target_yield=p["target_yield"],
                                                forecaster=forecaster,
                                                history_shown=sections.HISTORY_SHOWN_DAYS), tables)
        except KeyError as exc:
            raise WorkbenchError(f"the report's {name} notebook has no parameter {exc}: its section cannot "
                                 "be computed ahead") from None
        done[name] = f"stored ({rows[-1]['status']})"
    return DaySections(pd.DataFrame(rows), found, done, anomaly_settings)
