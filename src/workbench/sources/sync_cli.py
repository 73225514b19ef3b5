"""``workbench sync machinemetrics|erp`` and ``workbench sources status``."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from workbench import config as wb_config
from workbench.cliutil import console, err_console
from workbench.errors import ConfigError


class SyncSource(StrEnum):
    """Sources ``workbench sync`` knows."""

    machinemetrics = "machinemetrics"
    erp = "erp"


_PIPELINE_OF = {"machinemetrics": "machinemetrics_sync", "erp": "erp_sync"}


def _instant(value: str | None, option: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"{option} must be an ISO timestamp like 2026-11-01T00:00:00Z, got {value!r}"
        ) from None
    if parsed.tzinfo is None:
        # A date or a wall-clock time means the plant's (as on every other command).
        parsed = parsed.replace(tzinfo=wb_config.settings().tz)
    return parsed


def sync_command(
    source: Annotated[SyncSource, typer.Argument(help="What to sync.")],
    since: Annotated[
        str | None,
        typer.Option(
            help="Back-fill from here (ISO date or timestamp; plant time without an offset). "
            "Default: each stream's watermark minus the overlap."
        ),
    ] = None,
    until: Annotated[str | None, typer.Option(help="Up to here (default now).")] = None,
    pipeline: Annotated[
        str | None, typer.Option(help="Pipeline whose sync settings to use (default <source>_sync).")
    ] = None,
) -> None:
    """Run one sync now, by hand (a back-fill with --since). The watermarks move forward only, so a
    back-fill never makes the scheduled runs fetch again what they already have; rows already
    stored are left alone (event ids), so nothing is counted twice."""
    import logging

    from workbench import pipelines
    from workbench.sources import syncs

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = wb_config.settings()
    p = pipelines.get(
        pipeline or _PIPELINE_OF[source.value], home=settings.home, default_timezone=settings.plant_timezone
    )
    if p.sync is None or p.sync_source != source.value:
        raise ConfigError(f"pipeline {p.name} is not a {source.value} sync (kind {p.kind})")
    report = syncs.run(
        settings,
        source.value,
        p.sync,
        retries=p.retries,
        since=_instant(since, "--since"),
        until=_instant(until, "--until"),
    )
    table = Table(title=f"{source.value} sync", title_justify="left")
    for col in ("entity", "fetched", "written", "unchanged", "dead-lettered"):
        table.add_column(col, justify="left" if col == "entity" else "right")
    for name, c in sorted(report.entities.items()):
        table.add_row(name, f"{c.fetched:,}", f"{c.written:,}", f"{c.unchanged:,}", f"{c.dead_lettered:,}")
    console.print(table)
    if report.retries:
        console.print(f"{report.retries} request(s) retried.")
    if not report.ok:
        for stream, why in sorted(report.failures.items()):
            err_console.print(f"[red]not synced[/] {stream}: {why}", highlight=False)
        if report.error:
            err_console.print(f"[bold red]stopped:[/] {report.error}", highlight=False)
        raise typer.Exit(1)


def status_command(
    stale_min: Annotated[
        float | None,
        typer.Option(
            help="Minutes of silence before a source is stale (default WORKBENCH_SOURCE_STALE_MIN, 15)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every source — the collector's, MachineMetrics, the ERP: last success, newest data and its
    lag, failed runs, dead letters of the last 24 h, and whether it is stale. Exits 1 when a
    source is stale."""
    from workbench.sources import health
    from workbench.store import open_reader

    settings = wb_config.settings()
    if stale_min is not None:
        settings = settings.model_copy(update={"source_stale_min": stale_min})
    collector, syncs = health.configured_sources(settings)
    now = dt.datetime.now(dt.UTC)
    with open_reader(settings).held() as wh:
        rows = health.source_health(
            wh, now=now, stale_min=settings.source_stale_min, collector_sources=collector, sync_sources=syncs
        )
    if as_json:
        typer.echo(health.health_json(rows))
    else:
        tz = settings.tz
        table = Table(title="Sources", title_justify="left")
        for col in (
            "source",
            "kind",
            "last success",
            "newest data",
            "lag",
            "failed runs",
            "dead letters 24 h",
            "status",
            "last error",
        ):
            table.add_column(col, overflow="fold")
        for h in rows:
            lag = "-" if h.lag is None else _duration(h.lag)
            table.add_row(
                h.source,
                h.kind,
                f"{h.last_success.astimezone(tz):%Y-%m-%d %H:%M:%S %Z}" if h.last_success else "never",
                f"{h.newest_data.astimezone(tz):%Y-%m-%d %H:%M %Z}" if h.newest_data else "-",
                lag,
                str(h.errors),
                str(h.dead_letters_24h),
                h.status,
                (h.last_error or "")[:160],
            )
        console.print(table)
    if any(h.stale for h in rows):
        raise typer.Exit(1)


def _duration(value: dt.timedelta) -> str:
    seconds = value.total_seconds()
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
