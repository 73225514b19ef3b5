"""The MachineMetrics and ERP sync flows: one library call each, then the health of every source.

A run ends Failed (with the reason) only when a source stayed unreachable after its retries or the
warehouse could not be written; a malformed record is a dead letter, not a failure. Either way the
sources' health is checked afterwards, so a sync that keeps failing becomes a stale-source alert.
"""

from __future__ import annotations

import datetime as dt

from prefect import flow, get_run_logger, task

from flows import hooks
from workbench import config, pipelines
from workbench.pipelines import Pipeline
from workbench.sources import health, syncs
from workbench.sources.sync import SyncBusy
from workbench.store import open_warehouse


class SyncFailed(RuntimeError):  # noqa: N818 — it names the run's outcome
    """A source was unreachable after its retries, or the warehouse could not be written."""


def _when(value: str | None, name: str) -> dt.datetime | None:
    if not value:
        return None
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"{name} must carry a UTC offset, got {value!r}")
    return parsed


@task(name="sync", task_run_name="sync-{pipeline.name}")
def sync(pipeline: Pipeline, since: str | None, until: str | None) -> dict[str, object]:
    settings = config.settings()
    assert pipeline.sync is not None and pipeline.sync_source is not None  # a *_sync pipeline
    logger = get_run_logger()
    try:
        report = syncs.run(
            settings,
            pipeline.sync_source,
            pipeline.sync,
            retries=pipeline.retries,
            since=_when(since, "since"),
            until=_when(until, "until"),
        )
    except SyncBusy as exc:  # the previous run is still at it (a long back-fill): not a failure
        logger.warning("%s", exc)
        return {"source": pipeline.sync_source, "skipped": str(exc)}
    for line in report.lines():
        logger.info("%s: %s", report.source, line)
    _publish(pipeline, report)
    if not report.ok:
        raise SyncFailed(f"{report.source}: {report.reason()}")
    return report.as_dict()


@task(name="check-sources", task_run_name="check-sources", retries=2, retry_delay_seconds=10)
def check_sources() -> list[dict[str, object]]:
    settings = config.settings()
    with open_warehouse(settings) as wh:
        found = health.check_sources(wh, settings)
    for h in found:
        if h.stale:
            get_run_logger().warning("%s", h.message(settings.tz))
    return [{"source": h.source, "status": h.status} for h in found]


def _publish(pipeline: Pipeline, report: syncs.SyncReport) -> None:
    """The run's counts per entity as a Prefect table artifact (the scheduler's view)."""
    from prefect.artifacts import create_table_artifact

    rows = [{"entity": name, **counts.as_dict()} for name, counts in sorted(report.entities.items())]
    rows += [
        {
            "entity": f"NOT SYNCED {stream}",
            "fetched": 0,
            "written": 0,
            "unchanged": 0,
            "dead_lettered": 0,
            "error": why,
        }
        for stream, why in sorted(report.failures.items())
    ]
    try:
        create_table_artifact(
            rows,
            key=f"{pipeline.name}-counts".replace("_", "-"),
            description=f"{report.source}: rows per entity of this run",
        )
    except Exception as exc:  # the artifact is a convenience; the sync's outcome must not depend on it
        get_run_logger().warning("could not publish the counts artifact: %s", exc)


def _run(pipeline: str, since: str | None, until: str | None) -> dict[str, object]:
    settings = config.settings()
    p = pipelines.get(pipeline, home=settings.home, default_timezone=settings.plant_timezone)
    if p.sync is None:
        raise SyncFailed(f"pipeline {p.name} is a {p.kind} pipeline, not a sync")
    hooks.name_run(p, what=f"since {since}" if since else None)
    state = sync(p, since, until, return_state=True)
    check_sources()  # also after a failed sync: a sync that keeps failing is what the stale alert is for
    if state.is_failed() or state.is_crashed():
        raise SyncFailed(state.message or f"{p.name} failed")
    return state.result()


@flow(
    name="machinemetrics-sync",
    log_prints=True,
    on_failure=[hooks.notify_failure],
    on_crashed=[hooks.notify_failure],
)
def machinemetrics_sync(
    pipeline: str = "machinemetrics_sync", since: str | None = None, until: str | None = None
) -> dict[str, object]:
    """Sync machines, production, states and downtime from MachineMetrics since each stream's
    watermark (``since``: back-fill from there; ISO timestamps with offset)."""
    return _run(pipeline, since, until)


@flow(name="erp-sync", log_prints=True, on_failure=[hooks.notify_failure], on_crashed=[hooks.notify_failure])
def erp_sync(
    pipeline: str = "erp_sync", since: str | None = None, until: str | None = None
) -> dict[str, object]:
    """Sync work orders, parts and the BOM from the ERP (read-only) since each entity's watermark."""
    return _run(pipeline, since, until)
