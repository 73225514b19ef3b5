"""The shop-floor collector: connectors → normaliser → spool → forwarder → warehouse.

``workbench collect`` runs :class:`Collector` as a long-lived service (not a Prefect flow: it
reads every second, for months). One asyncio task per source reads its connector; every batch is
normalised, appended to the spool in one transaction with the normaliser's state, and only then
acknowledged to the source. A forwarder task drains the spool to the warehouse; when the warehouse
is unreachable the spool grows (with warnings) and drains in order when it is back. Every
``health_s`` a row per source goes to ``ingest_watermarks`` (stream ``collector``: the newest
source time stored) through the same spool, which ``workbench sources status`` and
``workbench doctor`` read.

SIGTERM / SIGINT stop it cleanly: the connectors close (unacknowledged MQTT messages stay with the
broker), the last batches are spooled, and the spool is drained for up to ``drain_on_stop_s``;
what is left stays in the spool for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from workbench.errors import SourceError, StoreError
from workbench.ingest.stream import Normalizer, Rows
from workbench.sources.base import Batch, Connector, Gap, ms_to_datetime, now_ms
from workbench.sources.spool import Forwarder, Spool, SpoolFullError
from workbench.sources.tags import TagDictionary

log = logging.getLogger("workbench.collect")


def make_connector(
    tags: TagDictionary, name: str, *, seen: Callable[[list[str]], set[str]] | None = None
) -> Connector:
    """The connector for source ``name`` of the tag dictionary."""
    source = tags.sources[name]
    if source.protocol == "mqtt":
        from workbench.sources.mqtt import MqttConnector

        return MqttConnector(source, seen=seen)
    if source.protocol == "opcua":
        from workbench.sources.opcua import OpcUaConnector

        return OpcUaConnector(source, tags.tags_of(name))
    from workbench.sources.modbus import ModbusConnector

    return ModbusConnector(source, tags.tags_of(name))


class Collector:
    """Collect every source of a tag dictionary into the warehouse (see the module docstring).

    Parameters
    ----------
    tags : TagDictionary
    spool : Spool
    open_warehouse : callable
        Opens the warehouse for the forwarder.
    keep_open : bool
        Keep the warehouse connection between drains (PostgreSQL); DuckDB opens per drain.
    reason_codes : mapping, optional
        ``code → (category, planned)`` for the downtime events fault codes map to.
    sources : list of str, optional
        Only these sources (default: all in the dictionary).
    forward_interval_s, health_s, drain_on_stop_s : float
        How often the forwarder drains, how often health rows are written, how long a stop
        keeps draining.
    """

    def __init__(
        self,
        tags: TagDictionary,
        *,
        spool: Spool,
        open_warehouse: Callable[[], Any],
        keep_open: bool = False,
        reason_codes: Mapping[str, tuple[str, bool]] | None = None,
        sources: list[str] | None = None,
        forward_interval_s: float = 0.5,
        health_s: float = 10.0,
        drain_on_stop_s: float = 30.0,
        connector_factory: Callable[..., Connector] = make_connector,
    ) -> None:
        self.tags = tags
        self.spool = spool
        self.forwarder = Forwarder(spool, open_warehouse, keep_open=keep_open)
        state = spool.load_state()
        self.normalizer = Normalizer(tags, reason_codes=reason_codes, state=state)
        self._saved_state = json.dumps(self.normalizer.state)
        self.sources = list(sources or tags.sources)
        unknown = [s for s in self.sources if s not in tags.sources]
        if unknown:
            raise SourceError(
                f"unknown source(s) {', '.join(unknown)} (tag dictionary {tags.path} has "
                f"{', '.join(tags.sources)})"
            )
        self.forward_interval_s = forward_interval_s
        self.health_s = health_s
        self.drain_on_stop_s = drain_on_stop_s
        self.connector_factory = connector_factory
        self.stats: Counter = Counter()
        self.errors: Counter = Counter()
        self.connectors: dict[str, Connector] = {}
        # Sources whose first batch after this start still has to be checked for a downtime gap.
        self._fresh = {s for s in self.sources if tags.sources[s].protocol != "mqtt"}
        self._warehouse_down_since: float | None = None

    # -- one batch ------------------------------------------------------------------------------
    def _downtime_gap(self, batch: Batch) -> None:
        """Add the time this collector was not running as a gap, for sources that do not keep it.

        An MQTT broker keeps the session's messages while the collector is away, so nothing is
        missing; an OPC UA server or a Modbus device only has the present: from the last reading
        before the stop to the first after the start, their machines are ``no_data``.
        """
        if batch.source not in self._fresh or not batch.readings:
            return
        self._fresh.discard(batch.source)
        last = self.normalizer.state.get("source_last", {}).get(batch.source)
        first = min((r.time_ms for r in batch.readings if isinstance(r.time_ms, int)), default=None)
        if last is not None and first is not None and first > last:
            batch.gaps.insert(0, Gap(batch.source, last, first, "the collector was not running"))

    async def handle(self, batch: Batch) -> Rows:
        """Normalise, spool (waiting while the spool is full), then acknowledge one batch."""
        self._downtime_gap(batch)
        while True:
            rows = self.normalizer.process(batch)
            try:
                self.spool.append(rows, state=self.normalizer.state, message_ids=batch.message_ids)
            except SpoolFullError as exc:
                # Undo the normaliser's advance: the same batch is processed again once there is room.
                self.normalizer.state = json.loads(self._saved_state)
                log.error("%s", exc)
                await asyncio.sleep(5.0)
                continue
            break
        self._saved_state = json.dumps(self.normalizer.state)
        if batch.ack is not None:
            batch.ack()
        self.stats.update(rows.stats)
        self.stats["batches"] += 1
        self.stats["rows"] += rows.n_rows
        self.stats["dead_letters"] += len(rows.dead_letters)
        return rows

    def health_rows(self) -> Rows:
        """``ingest_watermarks`` rows: the newest source time per source, stamped now."""
        last = self.normalizer.state.get("source_last", {})
        names = [s for s in self.sources if s in last]
        rows = Rows()
        if names:
            now = ms_to_datetime(now_ms())
            rows.tables["ingest_watermarks"] = pa.table(
                {
                    "source": names,
                    "stream": ["collector"] * len(names),
                    "watermark": pa.array(
                        [ms_to_datetime(last[s]) for s in names], pa.timestamp("us", tz="UTC")
                    ),
                    "updated_at": pa.array([now] * len(names), pa.timestamp("us", tz="UTC")),
                }
            )
        return rows

    # -- service ----------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Collect until ``stop`` is set, then stop cleanly (see the module docstring)."""
        self.spool.prune_seen()
        readers = [asyncio.create_task(self._read(name, stop), name=f"read-{name}") for name in self.sources]
        forward = asyncio.create_task(self._forward(stop), name="forward")
        health = asyncio.create_task(self._health(stop), name="health")
        await stop.wait()
        log.info("stopping: closing %d source(s)", len(self.connectors))
        for c in list(self.connectors.values()):
            try:
                await asyncio.wait_for(c.close(), 10)
            except Exception as exc:
                log.warning("closing %s: %s", c.name, exc)
        await asyncio.gather(*readers, return_exceptions=True)
        health.cancel()
        await asyncio.gather(forward, health, return_exceptions=True)
        await self._append(self.health_rows())
        await self._drain_until_empty(self.drain_on_stop_s)
        self.forwarder.close()
        left = self.spool.status()
        if left.rows:
            log.warning(
                "stopped with %d rows still in the spool %s (forwarded at the next start)",
                left.rows,
                self.spool.path,
            )
        else:
            log.info("stopped; spool empty")

    async def _append(self, rows: Rows) -> None:
        if rows.n_rows or rows.dead_letters:
            self.spool.append(rows)

    async def _read(self, name: str, stop: asyncio.Event) -> None:
        delay = 1.0
        while not stop.is_set():
            connector = self.connector_factory(self.tags, name, seen=self.spool.seen)
            self.connectors[name] = connector
            try:
                await connector.connect()
                delay = 1.0
                async for batch in connector.stream():
                    await self.handle(batch)
                    if stop.is_set():
                        break
            except SourceError as exc:
                self.errors[name] += 1
                log.error("source %s: %s; retrying in %.0f s", name, exc, delay)
            except Exception:
                self.errors[name] += 1
                log.exception("source %s failed; restarting it in %.0f s", name, delay)
            finally:
                if not stop.is_set():
                    # already failing: the retry reconnects
                    with contextlib.suppress(Exception):
                        await connector.close()
            if stop.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 30.0)

    async def _forward(self, stop: asyncio.Event) -> None:
        delay = self.forward_interval_s
        while not stop.is_set():
            moved = await self._drain_step()
            delay = self.forward_interval_s if moved is not None else min(max(delay * 2, 1.0), 30.0)
            if moved:
                continue  # more may be waiting: drain without sleeping
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    async def _drain_step(self) -> int | None:
        """Forward one batch of spooled rows; rows moved, or None when forwarding failed."""
        try:
            result = await asyncio.to_thread(self.forwarder.drain_once)
        except StoreError as exc:
            if self._warehouse_down_since is None:
                self._warehouse_down_since = time.monotonic()
                log.error("warehouse unreachable, spooling: %s", exc)
            return None
        except Exception:
            # Never let the forwarder die quietly while the readers go on filling the spool.
            self.errors["forwarder"] += 1
            log.exception("forwarding failed; the rows stay in the spool and are tried again")
            return None
        if self._warehouse_down_since is not None:
            log.info(
                "warehouse reachable again after %.0f s; draining the spool (%d rows waiting)",
                time.monotonic() - self._warehouse_down_since,
                self.spool.status().rows,
            )
            self._warehouse_down_since = None
        self.stats["forwarded_rows"] += result.rows
        return result.rows

    async def _drain_until_empty(self, budget_s: float) -> None:
        deadline = time.monotonic() + budget_s
        while time.monotonic() < deadline and self.spool.status().batches:
            if await self._drain_step() is None:
                await asyncio.sleep(1.0)

    async def _health(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.health_s)
            try:
                await self._append(self.health_rows())
            except Exception:
                log.exception("could not spool the health rows")
            st = self.spool.status()
            log.info(
                "collected: %d readings, %d dead letters, %d forwarded; spool %d rows (%.1f MB, %.0f %%)",
                self.stats["readings"],
                self.stats["dead_letters"],
                self.stats["forwarded_rows"],
                st.rows,
                st.bytes / 1e6,
                100 * st.fill,
            )


def reason_code_map(wh: Any) -> dict[str, tuple[str, bool]]:
    """``code → (category, planned)`` from the warehouse's ``reason_codes`` (empty when none)."""
    try:
        df = wh.read("reason_codes")
    except Exception:
        return {}
    return {str(r.code): (str(r.category), bool(r.planned)) for r in df.itertuples()}


def spool_for(path: Path, *, max_mb: float) -> Spool:
    """Open the collector's spool at ``path``."""
    return Spool(path, max_bytes=int(max_mb * 1024 * 1024))


__all__ = ["Collector", "make_connector", "reason_code_map", "spool_for"]
