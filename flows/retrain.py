"""The retrain flow: the daily champion check, the weekly (or triggered) retraining round.

Thin: read the tables, call :mod:`workbench.ml.retrain`, publish the decision. Scheduled by
``pipelines/retrain.yaml``; ``workbench run retrain --force`` runs a round whatever the day.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from flows import hooks
from workbench import config, jobs, pipelines
from workbench.errors import ConfigError
from workbench.ml import daily, reviews, stored
from workbench.ml import retrain as ml_retrain
from workbench.ml.registry import Registry, default_tracking_uri
from workbench.store import open_warehouse


@task(name="read-stops-and-context", retries=2, retry_delay_seconds=30)
def read_tables(start: dt.datetime, end: dt.datetime) -> dict[str, pd.DataFrame]:
    settings = config.settings()
    # The stop features look one hour back: telemetry, states and scrap from an hour earlier.
    early = start - dt.timedelta(hours=1)
    with open_warehouse(settings, read_only=True) as wh:
        return {"downtime_events": wh.read("downtime_events", start=start, end=end),
                "machine_telemetry": wh.read("machine_telemetry", start=early, end=end),
                "machine_states": wh.read("machine_states", start=early, end=end, overlap=True),
                "scrap_events": wh.read("scrap_events", start=early, end=end)}


def _registry() -> Registry:
    return Registry(default_tracking_uri(config.settings().data_path))


@task(name="build-stop-features")
def build_features(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return ml_retrain.model_features(tables)


@task(name="check-champion")
def check_champion(tables: dict[str, pd.DataFrame], features: pd.DataFrame, end: dt.datetime,
                   days: int) -> ml_retrain.Health:
    health = ml_retrain.champion_health(tables, registry=_registry(), end=end, days=days, features=features)
    get_run_logger().info("%s", health.reason)
    return health


@task(name="retrain-rootcause")
def retrain_rootcause(tables: dict[str, pd.DataFrame], features: pd.DataFrame, end: dt.datetime,
                      spec: pipelines.RetrainSpec) -> dict:
    result = ml_retrain.retrain_rootcause(tables, registry=_registry(), end=end, train_days=spec.train_days,
                                          holdout_days=spec.holdout_days, params=spec.rootcause,
                                          features=features)
    get_run_logger().info("rootcause: %s — %s", result.action, result.reason)
    return result.as_dict()


@task(name="score-stops", retries=2, retry_delay_seconds=30)
def score_stops(tables: dict[str, pd.DataFrame], features: pd.DataFrame, start: dt.datetime,
                end: dt.datetime) -> dict[str, int]:
    """The champion's predictions for the stops of the scored days, stored
    (:func:`workbench.jobs.write_stop_predictions`)."""
    predictions = ml_retrain.score_stops(tables, registry=_registry(), start=start, end=end,
                                         features=features)
    with open_warehouse(config.settings()) as wh:
        counts = jobs.write_stop_predictions(wh, predictions, created_at=dt.datetime.now(dt.UTC))
    get_run_logger().info("rootcause: %(scored)d stops scored, %(filled)d uncoded filled, "
                          "%(suspect)d suspect codes", counts)
    return counts


@task(name="compute-report-sections", retries=2, retry_delay_seconds=30)
def compute_report_sections(day: dt.date, spec: pipelines.RetrainSpec) -> dict[str, Any]:
    """The report pipeline's model sections of ``day`` → ``ml_sections`` (and that day's
    anomalies → ``ml_anomalies``), computed with its notebooks' settings: the report reads them
    back instead of computing them (:mod:`workbench.ml.daily`)."""
    settings = config.settings()
    logger = get_run_logger()
    try:
        report = pipelines.get(spec.report, home=settings.home, default_timezone=settings.plant_timezone)
    except ConfigError as exc:
        logger.info("report sections not computed ahead: %s", exc)
        return {"day": day.isoformat(), "done": {}, "anomaly_params": None}
    notebook_settings = daily.notebook_settings(report, home=settings.home)
    now = dt.datetime.now(dt.UTC)
    with open_warehouse(settings, read_only=True) as wh:  # written below, in two short transactions
        result = daily.day_sections(wh, day, tz=settings.plant_timezone, settings=notebook_settings,
                                    registry_uri=default_tracking_uri(settings.data_path), created_at=now)
    if len(result.rows) or len(result.anomalies):
        with open_warehouse(settings) as wh:
            jobs.write_anomalies(wh, result.anomalies)
            if len(result.rows):
                wh.write(stored.TABLE, result.rows)
    for name, what in result.done.items():
        logger.info("report section %s of %s: %s", name, day, what)
    return {"day": day.isoformat(), "done": result.done, "anomaly_params": result.anomaly_settings}


@task(name="store-anomalies", retries=2, retry_delay_seconds=30)
def store_anomalies(first: dt.date, last: dt.date, spec: pipelines.RetrainSpec) -> list[dict[str, Any]]:
    """The telemetry and scrap anomalies of the production days ``first`` … ``last`` → ``ml_anomalies``."""
    settings = config.settings()
    now = dt.datetime.now(dt.UTC)
    found, done = [], []
    # Detected from a read-only warehouse, written in one short transaction: the DuckDB file's
    # single writer (a collector, a sync) is not held off while the detectors run.
    with open_warehouse(settings, read_only=True) as wh:
        day = first
        while day <= last:
            rows, info = jobs.day_anomalies(wh, day, tz=settings.plant_timezone, created_at=now,
                                            train_days=spec.anomaly_train_days,
                                            history_days=spec.anomaly_history_days)
            if len(rows):
                found.append(rows)
            done.append(info)
            day += dt.timedelta(days=1)
    if found:  # an episode across the boundary of two days is found by both: one row
        rows = pd.concat(found, ignore_index=True).drop_duplicates("anomaly_id", keep="last")
        with open_warehouse(settings) as wh:
            jobs.write_anomalies(wh, rows)
    logger = get_run_logger()
    for d in done:
        logger.info("anomalies of %s (detectors trained on %d days, usual scrap rates from %d): %s", d["day"],
                    spec.anomaly_train_days, spec.anomaly_history_days,
                    f"{d['stored']} stored" if d["shown"] else f"none — {d['why_not']}")
    return done


@task(name="check-anomaly-reviews", retries=2, retry_delay_seconds=30)
def check_anomaly_reviews(end: dt.datetime) -> dict[str, Any]:
    """The seed's third trigger, daily: each detector's false-alarm share among the anomalies
    analysts reviewed (``workbench reviews mark``) over the last weeks."""
    settings = config.settings()
    logger = get_run_logger()
    with open_warehouse(settings, read_only=True) as wh:
        rates = reviews.detector_reviews(wh, end=end)
    for r in rates.values():
        if r.triggered:
            logger.warning("anomaly reviews of the last %d days: %s — above the %.0f %% false-alarm trigger: "
                           "have the detector's settings looked at", reviews.REVIEW_DAYS, r.text(),
                           100 * reviews.FALSE_ALARM_TRIGGER)
        else:
            logger.info("anomaly reviews of the last %d days: %s", reviews.REVIEW_DAYS, r.text())
    return {s: {"anomalies": r.anomalies, "reviewed": r.reviewed, "false_alarms": r.false_alarms,
                "triggered": r.triggered} for s, r in rates.items()}


def _publish(summary: dict[str, Any]) -> None:
    lines = ["| model | decision | champion | challenger | reason |", "|---|---|---|---|---|"]
    for name, r in summary.get("rounds", {}).items():
        champ = r["champion_metrics"].get("balanced_accuracy")
        chall = r["challenger_metrics"].get("balanced_accuracy")
        lines.append(f"| {name} | {r['action']} | v{r['champion_version']} "
                     f"{'' if champ is None else f'{champ:.3f}'} | v{r['challenger_version']} {chall:.3f} | "
                     f"{r['reason']} |")
    if not summary.get("rounds"):
        lines.append(f"| rootcause | no round | | | {summary.get('why', '')} |")
    for source, r in summary.get("reviews", {}).items():
        rate = (f"{r['false_alarms']} false alarms of {r['reviewed']} reviewed" if r["reviewed"]
                else "none reviewed")
        action = "trigger: look at the detector" if r["triggered"] else "no action"
        lines.append(f"| {source} anomalies | {action} | | | {rate} ({r['anomalies']} stored, last "
                     f"{reviews.REVIEW_DAYS} days) |")
    create_markdown_artifact(key="model-decisions", markdown="\n".join(lines),
                             description="balanced accuracy on the held-out window")


@flow(name="retrain-models", log_prints=True,
      on_failure=[hooks.notify_failure], on_crashed=[hooks.notify_failure])
def retrain_models(pipeline: str = "retrain", until: str | None = None,
                   force: bool = False) -> dict[str, Any]:
    """Check the champion on the latest coded stops; retrain on the weekly day, when the check
    fails, or with ``force``. ``until`` (ISO date or timestamp with offset; default today 00:00
    plant time) ends the held-out window."""
    settings = config.settings()
    p = pipelines.get(pipeline, home=settings.home, default_timezone=settings.plant_timezone)
    spec = p.retrain or pipelines.RetrainSpec()
    now = dt.datetime.now(settings.tz)
    if until:
        end = dt.datetime.fromisoformat(until)
        if end.tzinfo is None:
            end = end.replace(tzinfo=settings.tz) if len(until) == 10 else None  # a date means plant midnight
            if end is None:
                raise ValueError(f"until must be a date or carry a UTC offset, got {until!r}")
    else:
        end = now.replace(hour=0, minute=0, second=0, microsecond=0)
    hooks.name_run(p, what=f"until {end.astimezone(settings.tz):%Y-%m-%d %H:%M %Z}")
    start = end - dt.timedelta(days=spec.train_days + spec.holdout_days)
    tables = read_tables(start, end)
    features = build_features(tables)  # once: the check, the round and the scoring share them
    health = check_champion(tables, features, end, spec.trigger_days)
    weekly = pipelines.WEEKDAYS[end.astimezone(settings.tz).weekday()] == spec.weekly_on
    summary: dict[str, Any] = {"health": health.reason, "rounds": {}}
    if force or weekly or health.retrain:
        why = "forced" if force else "weekly round" if weekly else health.reason
        print(f"retraining rootcause: {why}")
        summary["rounds"]["rootcause"] = retrain_rootcause(tables, features, end, spec)
    else:
        summary["why"] = f"not {spec.weekly_on} and {health.reason}"
        print(f"no retraining today: {summary['why']}")
    # The champion (perhaps just promoted) scores the stops of the last days, whose codes are
    # still open: the 05:00 report shows its guesses beside the blanks.
    summary["scored"] = score_stops(tables, features, end - dt.timedelta(days=spec.score_days), end)
    # The report's model sections of the last day, computed now rather than while the managers wait
    # for the 05:00 e-mail (its anomalies go to ml_anomalies too)…
    last_day = (end.astimezone(settings.tz) - dt.timedelta(seconds=1)).date()
    first_day = last_day - dt.timedelta(days=spec.score_days - 1)
    if spec.report:
        summary["sections"] = compute_report_sections(last_day, spec)
        report_settings = summary["sections"]["anomaly_params"]
        if report_settings is not None:
            # Its anomalies are stored already, with the report's settings: the other days get the
            # same, so that ml_anomalies and the report never disagree on what an anomaly is.
            last_day -= dt.timedelta(days=1)
            spec = dataclasses.replace(spec, anomaly_train_days=report_settings["train_days"],
                                       anomaly_history_days=report_settings["history_days"])
    # …and the anomalies of the other days go to ml_anomalies, for the report, alerts and analysts.
    summary["anomalies"] = store_anomalies(first_day, last_day, spec) if first_day <= last_day else []
    summary["reviews"] = check_anomaly_reviews(end)
    _publish(summary)
    return summary
