"""Pipelines: one YAML file per scheduled job in ``pipelines/`` — the one source of truth for
schedules, notebooks, parameters and recipients.

Unknown keys are errors, not warnings: a typo in a recipient list or a parameter name must not
silently change what the plant receives at 05:00.

Example (``pipelines/daily_report.yaml``)::

    description: Yesterday's production report and the managers' e-mail
    kind: report
    schedule: {cron: "0 5 * * *", timezone: America/Chicago}   # or {interval: 30m}
    parameters: {days: 1}                 # for every notebook; the flow adds date and warehouse
    notebooks:
      - {name: daily_summary, path: notebooks/daily_summary.ipynb}
      - {name: oee, path: notebooks/oee.ipynb, parameters: {oee_good: 0.85}}
    email: {recipients: [manager@plant.example], subject_prefix: "[PLANT1]"}
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from workbench.errors import ConfigError, SchemaError

KINDS = ("report", "oee_rollup", "machinemetrics_sync", "erp_sync", "retrain")
#: Pipeline kind → the source it syncs.
SYNC_SOURCES = {"machinemetrics_sync": "machinemetrics", "erp_sync": "erp"}
_TOP_KEYS = {"description", "kind", "schedule", "parameters", "notebooks", "email", "thresholds",
             "concurrency", "retries", "baseline_days", "lookback_hours", "enabled", "notify_on_failure",
             "sync", "retrain", "extract"}
_EXTRACT_KEYS = {"days_before", "days_after"}
_RETRAIN_KEYS = {"train_days", "holdout_days", "weekly_on", "trigger_days", "score_days", "rootcause",
                 "anomalies", "report"}
_ANOMALY_KEYS = {"train_days", "history_days"}
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_SYNC_KEYS = {"overlap", "initial_backfill", "chunk", "page_size", "request_timeout_s", "workers",
              "machines", "entities"}
_DURATION_UNITS = {**{"s": 1, "m": 60, "h": 3600}, "d": 86400}
_SCHEDULE_KEYS = {"cron", "interval", "timezone"}
_INTERVAL_UNITS = {"s": 1, "m": 60, "h": 3600}
#: Shortest interval schedule: a flow run every few seconds would be a service, not a schedule.
MIN_INTERVAL = dt.timedelta(seconds=5)
_NOTEBOOK_KEYS = {"name", "path", "parameters"}
_EMAIL_KEYS = {"recipients", "subject_prefix", "attach_report"}
_THRESHOLD_KEYS = {"oee_good", "oee_watch"}
#: parameters every report notebook receives from the flow itself
FLOW_PARAMETERS = ("date", "warehouse")


@dataclass(frozen=True)
class NotebookSpec:
    """One section of a report: a notebook and the parameters it gets on top of the common ones."""

    name: str
    path: Path
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EmailSpec:
    """Who receives a report and how its subject starts."""

    recipients: tuple[str, ...]
    subject_prefix: str = ""
    attach_report: bool = False


@dataclass(frozen=True)
class SyncSpec:
    """How a sync pipeline fetches (the ``sync:`` block of a ``*_sync`` pipeline).

    Attributes
    ----------
    overlap : timedelta
        Each run starts this long before the stream's watermark, to pick up late data.
    initial_backfill : timedelta or None
        How far back a stream without a watermark starts (``None``: everything the source has).
    chunk : timedelta
        Largest time window of one request (and one commit).
    page_size : int
        Records per page requested.
    request_timeout_s : float
        Timeout of one HTTP request.
    workers : int
        Streams fetched at once.
    machines : tuple of str
        MachineMetrics only: sync these machines (empty: every machine the API lists).
    entities : tuple of str
        ERP only: sync these entities (empty: every entity of the mapping file).
    """

    overlap: dt.timedelta = dt.timedelta(minutes=60)
    initial_backfill: dt.timedelta | None = dt.timedelta(days=7)
    chunk: dt.timedelta = dt.timedelta(days=1)
    page_size: int = 1000
    request_timeout_s: float = 30.0
    workers: int = 4
    machines: tuple[str, ...] = ()
    entities: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExtractRange:
    """Days of one table a report run copies into its extract, around the report day.

    Attributes
    ----------
    days_before : int
        Days before the report day's start.
    days_after : int
        Days after its end (the coming week's shifts and planned stops for a forecast).
    """

    days_before: int
    days_after: int = 0


def _extract_ranges(where: str, raw: Any, *, baseline_days: int) -> dict[str, ExtractRange]:
    from workbench import schema

    data = _mapping(f"{where}: extract", raw)
    ranges = {}
    for name, spec in data.items():
        try:
            tbl = schema.table(str(name))
        except SchemaError:
            raise ConfigError(f"{where}: extract.{name} is not a table of the warehouse") from None
        if tbl.time_column is None:
            raise ConfigError(f"{where}: extract.{name} has no time column: it is always copied whole")
        body = _mapping(f"{where}: extract.{name}", spec)
        _unknown(f"{where}: extract.{name}", body, _EXTRACT_KEYS)
        if not body:
            raise ConfigError(f"{where}: extract.{name} needs days_before and/or days_after")
        values = {"days_before": baseline_days, "days_after": 0}
        for key in _EXTRACT_KEYS & set(body):
            value = body[key]
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 3660:
                raise ConfigError(f"{where}: extract.{name}.{key} must be a whole number of days ≥ 0, "
                                  f"got {value!r}")
            values[key] = value
        ranges[str(name)] = ExtractRange(**values)
    return ranges


@dataclass(frozen=True)
class RetrainSpec:
    """When and on what the models are retrained (the ``retrain:`` block of a retrain pipeline).

    Attributes
    ----------
    train_days : int
        Days of coded stops a challenger trains on (ending where the held-out window starts).
    holdout_days : int
        The last days before the run, on which champion and challenger are both scored.
    weekly_on : str
        The weekday (plant time) of the regular round; on other days a round runs only when the
        champion's accuracy on the last ``trigger_days`` fell below the floor.
    trigger_days : int
        Days of recent coded stops the daily check scores the champion on.
    score_days : int
        Days before the run whose stops the champion scores every run (predictions for the
        uncoded ones, suspect flags for the coded ones).
    rootcause : dict
        Hyperparameters of the root-cause classifier (RootCauseClassifier keyword arguments).
    anomaly_train_days, anomaly_history_days : int
        The ``anomalies:`` block: days of telemetry each channel's detector learns from before a
        day, and days of production the scrap detector learns the usual rates from — as the
        anomalies notebook's ``train_days`` / ``history_days``. Every run stores the anomalies of
        the production days in its scoring window in ``ml_anomalies`` — with the ``report``
        pipeline's anomalies notebook settings instead when it has one.
    report : str
        The report pipeline whose model sections every run computes ahead for its last day, with
        that pipeline's notebook settings (``ml_sections``; the report reads them back instead of
        computing them while the managers wait). Empty: none.
    """

    train_days: int = 28
    holdout_days: int = 7
    weekly_on: str = "sunday"
    trigger_days: int = 7
    score_days: int = 2
    rootcause: dict[str, Any] = field(default_factory=dict)
    anomaly_train_days: int = 7
    anomaly_history_days: int = 14
    report: str = "daily_report"


def _retrain_spec(where: str, raw: Any) -> RetrainSpec:
    data = _mapping(f"{where}: retrain", raw)
    _unknown(f"{where}: retrain", data, _RETRAIN_KEYS)
    default = RetrainSpec()

    def days(key: str, low: int) -> int:
        value = data.get(key, getattr(default, key))
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= 3660:
            raise ConfigError(f"{where}: retrain.{key} must be a whole number of days ≥ {low}, got {value!r}")
        return value

    weekday = str(data.get("weekly_on", default.weekly_on)).lower()
    if weekday not in WEEKDAYS:
        raise ConfigError(f"{where}: retrain.weekly_on must be a weekday ({', '.join(WEEKDAYS)}), "
                          f"got {data.get('weekly_on')!r}")
    anomalies = _mapping(f"{where}: retrain.anomalies", data.get("anomalies"))
    _unknown(f"{where}: retrain.anomalies", anomalies, _ANOMALY_KEYS)
    anomaly_days = {}
    for key in _ANOMALY_KEYS:
        value = anomalies.get(key, getattr(default, f"anomaly_{key}"))
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 3660:
            raise ConfigError(f"{where}: retrain.anomalies.{key} must be a whole number of days ≥ 1, "
                              f"got {value!r}")
        anomaly_days[f"anomaly_{key}"] = value
    return RetrainSpec(train_days=days("train_days", 7), holdout_days=days("holdout_days", 1),
                       weekly_on=weekday, trigger_days=days("trigger_days", 1),
                       score_days=days("score_days", 1),
                       rootcause=dict(_mapping(f"{where}: retrain.rootcause", data.get("rootcause"))),
                       report=_report_name(where, data.get("report", default.report)), **anomaly_days)


def _report_name(where: str, value: Any) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", value):
        raise ConfigError(f"{where}: retrain.report must be the name of a report pipeline (e.g. "
                          f"daily_report) or empty, got {value!r}")
    return value


def parse_duration(where: str, text: object, *, allow_zero: bool = True) -> dt.timedelta:
    """``"90s"``, ``"60m"``, ``"2h"``, ``"7d"`` as a timedelta.

    Raises
    ------
    ConfigError
        Naming ``where`` for anything else.
    """
    raw = str(text).strip().lower()
    number, unit = (raw[:-1], raw[-1]) if raw[-1:] in _DURATION_UNITS else (raw, "?")
    if isinstance(text, bool) or unit == "?" or not number.isdigit() or (not allow_zero and int(number) == 0):
        raise ConfigError(f"{where} must look like 90s, 60m, 2h or 7d{'' if allow_zero else ' (not 0)'}, "
                          f"not {text!r}")
    return dt.timedelta(seconds=int(number) * _DURATION_UNITS[unit])


def _sync_spec(where: str, kind: str, raw: Any) -> SyncSpec:
    data = _mapping(f"{where}: sync", raw)
    _unknown(f"{where}: sync", data, _SYNC_KEYS)
    if kind != "machinemetrics_sync" and "machines" in data:
        raise ConfigError(f"{where}: sync.machines is for machinemetrics_sync pipelines")
    if kind != "erp_sync" and "entities" in data:
        raise ConfigError(f"{where}: sync.entities is for erp_sync pipelines")
    default = SyncSpec(overlap=dt.timedelta(minutes=60 if kind == "machinemetrics_sync" else 15))
    initial = data.get("initial_backfill", "7d")
    names = {}
    for key in ("machines", "entities"):
        value = data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: sync.{key} must be a list of names, got {value!r}")
        names[key] = tuple(value)

    def count(key: str, default: int, low: int = 1) -> int:
        value = data.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(f"{where}: sync.{key} must be a whole number ≥ {low}, got {value!r}")
        return value

    timeout = data.get("request_timeout_s", default.request_timeout_s)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigError(f"{where}: sync.request_timeout_s must be a number of seconds > 0, got {timeout!r}")
    overlap = data.get("overlap")
    return SyncSpec(
        overlap=default.overlap if overlap is None else parse_duration(f"{where}: sync.overlap", overlap),
        initial_backfill=None if initial in (None, "all") else parse_duration(
            f"{where}: sync.initial_backfill (or 'all')", initial, allow_zero=False),
        chunk=parse_duration(f"{where}: sync.chunk", data.get("chunk", "1d"), allow_zero=False),
        page_size=count("page_size", default.page_size), request_timeout_s=float(timeout),
        workers=count("workers", default.workers), **names)


@dataclass(frozen=True)
class Pipeline:
    """A scheduled pipeline read from ``pipelines/<name>.yaml``."""

    name: str
    source: Path
    kind: str
    cron: str | None
    timezone: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    notebooks: tuple[NotebookSpec, ...] = ()
    email: EmailSpec | None = None
    thresholds: tuple[float, float] = (0.85, 0.65)
    concurrency: int = 2
    retries: int = 2
    baseline_days: int = 14
    lookback_hours: int = 26
    enabled: bool = True
    interval: dt.timedelta | None = None
    notify_on_failure: tuple[str, ...] = ()
    sync: SyncSpec | None = None
    retrain: RetrainSpec | None = None
    extract: dict[str, ExtractRange] = field(default_factory=dict)

    def extract_range(self, table: str) -> ExtractRange:
        """Days of ``table`` a report run's extract holds: its ``extract:`` entry, else
        ``baseline_days`` before the report day."""
        return self.extract.get(table, ExtractRange(self.baseline_days))

    @property
    def sync_source(self) -> str | None:
        """The source a sync pipeline syncs (``machinemetrics``, ``erp``), else ``None``."""
        return SYNC_SOURCES.get(self.kind)

    @property
    def schedule_text(self) -> str:
        """The schedule as people write it: ``0 5 * * * (America/Chicago)`` or ``every 30s``."""
        if self.interval is not None:
            return f"every {_interval_text(self.interval)}"
        return f"{self.cron} ({self.timezone})"

    def notebook_parameters(self, spec: NotebookSpec, **flow_values: Any) -> dict[str, Any]:
        """The parameters a notebook gets: the pipeline's, the notebook's, then the flow's."""
        return {**self.parameters, **spec.parameters, **flow_values}

    def next_runs(self, after: dt.datetime, count: int = 3) -> list[dt.datetime]:
        """The next scheduled times after ``after`` (in the pipeline's time zone).

        Interval schedules count from midnight UTC of 2026-01-01 (the anchor the deployment
        gets), so what this says is what the server schedules.
        """
        zone = ZoneInfo(self.timezone)
        if self.interval is not None:
            step = self.interval.total_seconds()
            done = (after - INTERVAL_ANCHOR).total_seconds() // step
            return [(INTERVAL_ANCHOR + self.interval * (done + 1 + i)).astimezone(zone) for i in range(count)]
        from cronsim import CronSim

        it = CronSim(self.cron or "", after.astimezone(zone))
        return [next(it) for _ in range(count)]


#: Interval schedules are counted from this instant (see :meth:`Pipeline.next_runs`).
INTERVAL_ANCHOR = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _interval_text(value: dt.timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_interval(where: str, text: object) -> dt.timedelta:
    """``"30s"``, ``"5m"``, ``"2h"`` (or a whole number of seconds) as a timedelta.

    Raises
    ------
    ConfigError
        Naming ``where`` for anything else, or an interval shorter than :data:`MIN_INTERVAL`.
    """
    raw = str(text).strip().lower()
    number, unit = (raw[:-1], raw[-1]) if raw[-1:] in _INTERVAL_UNITS else (raw, "s")
    if isinstance(text, bool) or not number.isdigit():
        raise ConfigError(f"{where}: schedule.interval must look like 30s, 5m or 2h, not {text!r}")
    value = dt.timedelta(seconds=int(number) * _INTERVAL_UNITS[unit])
    if value < MIN_INTERVAL:
        raise ConfigError(f"{where}: schedule.interval {text!r} is shorter than "
                          f"{int(MIN_INTERVAL.total_seconds())}s")
    return value


def _unknown(where: str, data: dict[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(data) - allowed)
    if extra:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(extra)}; "
                          f"allowed: {', '.join(sorted(allowed))}")


def _mapping(where: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def load_pipeline(path: Path, *, home: Path, default_timezone: str) -> Pipeline:
    """Read and validate one pipeline file.

    Raises
    ------
    ConfigError
        Naming the file and the key for any unknown key, bad cron, zone, path or value.
    """
    where = str(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {exc}") from None
    data = _mapping(where, data)
    _unknown(where, data, _TOP_KEYS)
    kind = data.get("kind", "report")
    if kind not in KINDS:
        raise ConfigError(f"{where}: kind must be one of {', '.join(KINDS)}, not {kind!r}")
    schedule = _mapping(f"{where}: schedule", data.get("schedule"))
    _unknown(f"{where}: schedule", schedule, _SCHEDULE_KEYS)
    if ("cron" in schedule) == ("interval" in schedule):
        raise ConfigError(f"{where}: schedule needs either cron (e.g. \"0 5 * * *\") or interval "
                          "(e.g. 30m), not both")
    tz = str(schedule.get("timezone", default_timezone))
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{where}: schedule.timezone {tz!r} is not an IANA time zone") from None
    cron = interval = None
    if "interval" in schedule:
        interval = parse_interval(where, schedule["interval"])
    else:
        cron = str(schedule["cron"])
        try:
            from cronsim import CronSim, CronSimError

            CronSim(cron, dt.datetime(2026, 1, 1, tzinfo=ZoneInfo(tz)))
        except CronSimError as exc:
            raise ConfigError(f"{where}: schedule.cron {cron!r} is not a valid cron expression: "
                              f"{exc}") from None

    notebooks = []
    seen: set[str] = set()
    for i, raw in enumerate(data.get("notebooks") or []):
        nb_where = f"{where}: notebooks[{i}]"
        raw = _mapping(nb_where, raw)
        _unknown(nb_where, raw, _NOTEBOOK_KEYS)
        if "name" not in raw or "path" not in raw:
            raise ConfigError(f"{nb_where}: needs name and path")
        name = str(raw["name"])
        if name in seen:
            raise ConfigError(f"{nb_where}: section name {name!r} is used twice")
        seen.add(name)
        nb_path = (home / raw["path"]).resolve()
        if not nb_path.is_file():
            raise ConfigError(f"{nb_where}: notebook {raw['path']} does not exist (looked in {home})")
        params = _mapping(f"{nb_where}.parameters", raw.get("parameters"))
        clash = sorted(set(params) & set(FLOW_PARAMETERS))
        if clash:
            raise ConfigError(f"{nb_where}: {', '.join(clash)} are set by the flow, not the pipeline")
        notebooks.append(NotebookSpec(name, nb_path, dict(params)))
    if kind == "report" and not notebooks:
        raise ConfigError(f"{where}: a report pipeline needs at least one notebook")
    common = _mapping(f"{where}: parameters", data.get("parameters"))
    clash = sorted(set(common) & set(FLOW_PARAMETERS))
    if clash:
        raise ConfigError(f"{where}: parameters {', '.join(clash)} are set by the flow, not the pipeline")

    email = None
    if data.get("email") is not None:
        raw = _mapping(f"{where}: email", data["email"])
        _unknown(f"{where}: email", raw, _EMAIL_KEYS)
        recipients = _addresses(f"{where}: email.recipients", raw.get("recipients"))
        if not recipients:
            raise ConfigError(f"{where}: email.recipients is empty")
        email = EmailSpec(tuple(recipients), str(raw.get("subject_prefix", "")),
                          bool(raw.get("attach_report", False)))

    thresholds_raw = _mapping(f"{where}: thresholds", data.get("thresholds"))
    _unknown(f"{where}: thresholds", thresholds_raw, _THRESHOLD_KEYS)
    good = float(thresholds_raw.get("oee_good", 0.85))
    watch = float(thresholds_raw.get("oee_watch", 0.65))
    if not 0 <= watch <= good <= 1:
        raise ConfigError(f"{where}: thresholds need 0 ≤ oee_watch ≤ oee_good ≤ 1 (got {watch}, {good})")

    def positive_int(key: str, default: int) -> int:
        value = data.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{where}: {key} must be a whole number ≥ 0, got {value!r}")
        return value

    if "sync" in data and kind not in SYNC_SOURCES:
        raise ConfigError(f"{where}: a sync block belongs to a {' or '.join(SYNC_SOURCES)} pipeline")
    sync = _sync_spec(where, kind, data.get("sync")) if kind in SYNC_SOURCES else None
    if "retrain" in data and kind != "retrain":
        raise ConfigError(f"{where}: a retrain block belongs to a retrain pipeline")
    retrain = _retrain_spec(where, data.get("retrain")) if kind == "retrain" else None
    if "extract" in data and kind != "report":
        raise ConfigError(f"{where}: an extract block belongs to a report pipeline")
    baseline_days = positive_int("baseline_days", 14)
    extract = _extract_ranges(where, data.get("extract"), baseline_days=baseline_days)

    return Pipeline(
        name=path.stem, source=path, sync=sync, retrain=retrain, kind=kind, cron=cron, timezone=tz,
        description=str(data.get("description", "")), parameters=dict(common), notebooks=tuple(notebooks),
        email=email, thresholds=(good, watch), concurrency=max(1, positive_int("concurrency", 2)),
        retries=positive_int("retries", 2), baseline_days=baseline_days, extract=extract,
        lookback_hours=max(1, positive_int("lookback_hours", 26)), enabled=bool(data.get("enabled", True)),
        interval=interval, notify_on_failure=tuple(_addresses(f"{where}: notify_on_failure",
                                                                 data.get("notify_on_failure"))),
    )


def _addresses(where: str, value: Any) -> list[str]:
    """A YAML list of e-mail addresses (None: empty)."""
    found = value or []
    if isinstance(found, str) or not isinstance(found, list) or \
            not all(isinstance(r, str) and "@" in r for r in found):
        raise ConfigError(f"{where} must be a list of addresses, got {value!r}")
    return [r.strip() for r in found]


def pipelines_dir(home: Path) -> Path:
    """Where the pipeline files live."""
    return home / "pipelines"


def load_all(home: Path, *, default_timezone: str) -> dict[str, Pipeline]:
    """Every ``pipelines/*.yaml``, by name."""
    folder = pipelines_dir(home)
    if not folder.is_dir():
        raise ConfigError(f"no pipelines directory at {folder}")
    return {p.stem: load_pipeline(p, home=home, default_timezone=default_timezone)
            for p in sorted(folder.glob("*.yaml"))}


def get(name: str, *, home: Path, default_timezone: str) -> Pipeline:
    """One pipeline by name (``pipelines/<name>.yaml``) or by path."""
    candidate = Path(name)
    path = candidate if candidate.suffix in (".yaml", ".yml") and candidate.exists() else \
        pipelines_dir(home) / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in pipelines_dir(home).glob("*.yaml"))) or "none"
        raise ConfigError(f"no pipeline {name!r} (known: {known})")
    return load_pipeline(path, home=home, default_timezone=default_timezone)
