"""The two business syncs wired from settings and a pipeline's ``sync:`` block: what the Prefect
flows and ``workbench sync`` call.

Connection details come from settings (``WORKBENCH_MM_*``, ``WORKBENCH_ERP_*``, from the
environment or ``.env``); how to fetch (overlap, back-fill, page size) from the pipeline file.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from workbench.config import Settings
from workbench.errors import ConfigError, SourceError
from workbench.pipelines import SyncSpec
from workbench.sources import machinemetrics as mm
from workbench.sources.erp import EntityStream, adapter_for, load_mapping
from workbench.sources.http import JsonApi, RetryPolicy, SourceUnreachable
from workbench.sources.sync import Stream, SyncReport, run_sync, source_lock
from workbench.store.base import Warehouse

log = logging.getLogger("workbench.sync")


def warehouse_opener(settings: Settings) -> Callable[[], Warehouse]:
    """Open the configured warehouse for one short piece of work (a DuckDB file is not held
    between writes, so notebooks and reports get their turn)."""
    from workbench.store import DuckDBWarehouse, PostgresWarehouse

    if settings.database_url is not None:
        url = settings.database_url.get_secret_value()
        return lambda: PostgresWarehouse(url, timescale=settings.timescale)
    path, timeout = settings.warehouse_path, settings.lock_timeout_s
    return lambda: DuckDBWarehouse(path, lock_timeout_s=timeout)


def policy(spec: SyncSpec, retries: int) -> RetryPolicy:
    """The HTTP retry policy of a sync pipeline: ``retries`` tries after the first."""
    return RetryPolicy(attempts=retries + 1, timeout_s=spec.request_timeout_s)


class _Failed:
    """A stream that could not even be listed (the machine list did not come): reported as such."""

    def __init__(self, name: str, entity: str, reason: str) -> None:
        self.name, self.entity, self.reason = name, entity, reason

    def units(self, start, until):
        raise SourceUnreachable(self.reason)


def sync_machinemetrics(
    settings: Settings,
    spec: SyncSpec,
    *,
    retries: int = 4,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    retry_policy: RetryPolicy | None = None,
) -> SyncReport:
    """Sync machines, production, states and downtime from MachineMetrics.

    Raises
    ------
    ConfigError
        When ``WORKBENCH_MM_BASE_URL`` or ``WORKBENCH_MM_API_KEY`` is not set.
    SourceError
        When another sync of MachineMetrics is running.
    """
    if not settings.mm_base_url or settings.mm_api_key is None:
        raise ConfigError(
            "the MachineMetrics sync needs WORKBENCH_MM_BASE_URL and WORKBENCH_MM_API_KEY "
            "(in the environment or .env)"
        )
    until = until or dt.datetime.now(dt.UTC)
    with (
        source_lock(settings.data_path / "sync" / "machinemetrics.lock", mm.SOURCE),
        JsonApi(
            mm.SOURCE,
            settings.mm_base_url,
            settings.mm_api_key.get_secret_value(),
            policy=retry_policy or policy(spec, retries),
        ) as api,
    ):
        streams: list[Stream] = []
        try:
            records = mm.machine_list(api, page_size=spec.page_size)
        except SourceUnreachable as exc:
            streams.append(_Failed("machines", "machines", str(exc)))
        else:
            streams.append(mm.MachinesStream(records, where=f"GET {api.base_url}/v1/machines"))
            ids = mm.machine_ids(records)
            if spec.machines:
                unknown = sorted(set(spec.machines) - set(ids))
                for m in unknown:
                    streams.append(
                        _Failed(
                            f"machine:{m}",
                            "machines",
                            f"{mm.SOURCE}: machine {m} of the pipeline is not in /v1/machines",
                        )
                    )
                ids = [m for m in ids if m in spec.machines]
            streams += [
                mm.ReportStream(api, m, report, page_size=spec.page_size, chunk=spec.chunk)
                for m in ids
                for report in mm.REPORTS
            ]
        return run_sync(
            mm.SOURCE,
            streams,
            open_warehouse=warehouse_opener(settings),
            until=until,
            overlap=spec.overlap,
            initial=spec.initial_backfill,
            since=since,
            workers=spec.workers,
            retries=lambda: api.retries,
        )


def sync_erp(
    settings: Settings,
    spec: SyncSpec,
    *,
    retries: int = 4,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    retry_policy: RetryPolicy | None = None,
) -> SyncReport:
    """Sync work orders, the part master and the BOM from the ERP (read-only).

    Raises
    ------
    ConfigError
        When the adapter's connection settings are missing or the mapping file is wrong.
    SourceError
        When another sync of the ERP is running.
    """
    mapping = load_mapping(settings.erp_mapping_path)
    names = list(spec.entities or mapping.entities)
    unknown = sorted(set(names) - set(mapping.entities))
    if unknown:
        raise ConfigError(f"sync.entities {', '.join(unknown)} are not in {mapping.path}")
    adapter = adapter_for(settings, mapping, policy=retry_policy or policy(spec, retries))
    with source_lock(settings.data_path / "sync" / "erp.lock", "erp"):
        try:
            streams: list[Stream] = [
                EntityStream(adapter, mapping.entities[n], page_size=spec.page_size) for n in names
            ]
            # ERP rows have no event time: a first load reads everything, whatever the back-fill says.
            return run_sync(
                "erp",
                streams,
                open_warehouse=warehouse_opener(settings),
                until=until or dt.datetime.now(dt.UTC),
                overlap=spec.overlap,
                initial=None,
                since=since,
                workers=min(spec.workers, len(streams)),
                retries=(lambda: adapter.api.retries) if hasattr(adapter, "api") else None,
            )
        finally:
            api = getattr(adapter, "api", None)
            if api is not None:
                api.close()


SYNCS: dict[str, Callable[..., SyncReport]] = {"machinemetrics": sync_machinemetrics, "erp": sync_erp}


def run(
    settings: Settings,
    source: str,
    spec: SyncSpec,
    *,
    retries: int,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> SyncReport:
    """Run the sync of ``source`` (``machinemetrics`` or ``erp``)."""
    try:
        sync = SYNCS[source]
    except KeyError:
        raise SourceError(f"no sync for {source!r}; known: {', '.join(SYNCS)}") from None
    return sync(settings, spec, retries=retries, since=since, until=until)
