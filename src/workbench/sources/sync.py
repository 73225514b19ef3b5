"""Incremental syncs of business APIs into the warehouse: MachineMetrics, an ERP.

A sync is a set of *streams* (one per machine and report, or one per ERP entity). Each stream has a
watermark in ``ingest_watermarks`` (``source``, ``stream``) and produces :class:`Unit` s: the
canonical rows of one window or page, the records it could not read (bound for
``dead_letters``), and the watermark that is true once those rows are stored. The engine writes a
unit's rows, dead letters and watermark **in one transaction**, so the watermark never passes what
was committed; the next run starts at the watermark minus an overlap, and ``event_id`` makes the
overlap harmless. Nothing is spooled: what a failed run did not write, the next run fetches again.

Streams fetch concurrently (threads); one writer stores what they fetched, a few units per
transaction. A stream whose source stays unreachable after its retries is reported and the
others go on; a warehouse that cannot be written stops the run (every further write would fail
the same way). The run is recorded in ``sync_runs``, which ``workbench sources status`` and the
stale-source alert read.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pandas as pd
import pyarrow as pa

from workbench.errors import SourceError
from workbench.sources.http import SourceUnreachable
from workbench.store.base import Warehouse, to_arrow

log = logging.getLogger("workbench.sync")


@dataclass
class Unit:
    """What one stream fetched in one go, stored in one transaction.

    Attributes
    ----------
    stream : str
        The stream's watermark key (``production:M01``, ``work_orders``).
    entity : str
        What the run report counts it under (``production_events``, ``work_orders`` …).
    tables : dict
        Canonical table name → rows (a DataFrame or Arrow table with canonical column names).
    dead_letters : list of dict
        ``dead_letters`` rows for the records that could not be read.
    fetched : int
        Records received (good and bad).
    watermark : datetime or None
        The stream's watermark once this unit is stored (``None``: leave it).
    """

    stream: str
    entity: str
    tables: dict[str, pd.DataFrame | pa.Table] = field(default_factory=dict)
    dead_letters: list[dict] = field(default_factory=list)
    fetched: int = 0
    watermark: dt.datetime | None = None


class Stream(Protocol):
    """One incrementally synced stream of a source."""

    name: str
    entity: str

    def units(self, start: dt.datetime | None, until: dt.datetime) -> Iterator[Unit]:
        """Fetch what changed from ``start`` (``None``: everything) up to ``until``, unit by unit."""


@dataclass
class EntityCounts:
    """Rows of one entity in one run."""

    fetched: int = 0
    written: int = 0
    unchanged: int = 0
    dead_lettered: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counts as a plain dict (JSON, Prefect artifacts)."""
        return {
            "fetched": self.fetched,
            "written": self.written,
            "unchanged": self.unchanged,
            "dead_lettered": self.dead_lettered,
        }


@dataclass
class SyncReport:
    """What one sync run did.

    Attributes
    ----------
    failures : dict
        Stream → why it could not be synced (its source unreachable after the retries); those
        streams keep their watermark and are fetched again by the next run.
    error : str or None
        Why the whole run stopped (the warehouse could not be written), if it did.
    """

    source: str
    run_id: str
    started_at: dt.datetime
    finished_at: dt.datetime | None = None
    entities: dict[str, EntityCounts] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    retries: int = 0

    @property
    def ok(self) -> bool:
        """Every stream synced and stored."""
        return not self.failures and self.error is None

    def total(self, what: str) -> int:
        """Sum of one count (``fetched``, ``written`` …) over the entities."""
        return sum(getattr(c, what) for c in self.entities.values())

    def reason(self) -> str:
        """Why the run failed, for people (empty when it did not)."""
        if self.error:
            return self.error
        if not self.failures:
            return ""
        first = next(iter(self.failures.values()))
        more = f" (and {len(self.failures) - 1} more stream(s))" if len(self.failures) > 1 else ""
        return f"{len(self.failures)} stream(s) not synced: {first}{more}"

    def lines(self) -> list[str]:
        """One line per entity and per failure, for logs and the command line."""
        out = [
            f"{name}: {c.fetched:,} fetched, {c.written:,} written, {c.unchanged:,} unchanged, "
            f"{c.dead_lettered:,} dead-lettered"
            for name, c in sorted(self.entities.items())
        ]
        out += [f"NOT SYNCED {stream}: {why}" for stream, why in sorted(self.failures.items())]
        if self.error:
            out.append(f"STOPPED: {self.error}")
        return out

    def as_dict(self) -> dict[str, object]:
        """The report as plain data (the flow's return value)."""
        return {
            "source": self.source,
            "ok": self.ok,
            "entities": {k: v.as_dict() for k, v in sorted(self.entities.items())},
            "failures": dict(self.failures),
            "error": self.error,
        }

    def sync_run_row(self) -> dict[str, object]:
        """The ``sync_runs`` row of this run."""
        return {
            "run_id": self.run_id,
            "source": self.source,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "status": "ok" if self.ok else "failed",
            "fetched": self.total("fetched"),
            "written": self.total("written"),
            "unchanged": self.total("unchanged"),
            "dead_lettered": self.total("dead_lettered"),
            "entities": json.dumps({k: v.as_dict() for k, v in sorted(self.entities.items())}),
            "error": self.reason() or None,
        }


class SyncBusy(SourceError):  # noqa: N818 — it names the situation
    """Another run is syncing the same source (this one leaves it alone)."""


class WarehouseWriteError(SourceError):
    """The warehouse could not store what a sync fetched (the run stops; nothing is half-stored)."""


@contextlib.contextmanager
def source_lock(path: Path, source: str) -> Iterator[None]:
    """Hold the lock of one source's sync, so two runs never sync the same source at once.

    Raises
    ------
    SyncBusy
        When another process holds it (the message says which).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise SyncBusy(
                f"{source}: another sync of this source is running ({holder}); this run leaves it alone"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%S}Z")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_watermarks(wh: Warehouse, source: str) -> dict[str, dt.datetime]:
    """Stream → watermark of one source."""
    marks = wh.read("ingest_watermarks")
    marks = marks[(marks["source"] == source) & marks["watermark"].notna()]
    return {s: w.to_pydatetime() for s, w in zip(marks["stream"], marks["watermark"], strict=True)}


def run_sync(
    source: str,
    streams: list[Stream],
    *,
    open_warehouse: Callable[[], Warehouse],
    until: dt.datetime,
    overlap: dt.timedelta,
    initial: dt.timedelta | None,
    since: dt.datetime | None = None,
    workers: int = 4,
    units_per_commit: int = 256,
    gather_s: float = 2.0,
    retries: Callable[[], int] | None = None,
) -> SyncReport:
    """Sync ``streams`` of ``source`` into the warehouse (see the module docstring).

    Parameters
    ----------
    open_warehouse : callable
        Returns an open warehouse; it is opened for the watermarks, for each group of writes and
        for the run's record, and closed in between (a DuckDB file is not held while fetching).
    until : datetime
        Fetch up to this instant (tz-aware; normally now).
    overlap : timedelta
        Each stream starts this long before its watermark, so late data is picked up.
    initial : timedelta or None
        A stream without a watermark starts this long before ``until`` (``None``: from the
        beginning of what the source has).
    since : datetime, optional
        Back-fill: start every stream here instead. Watermarks never move backwards.
    workers : int
        Streams fetched at once.
    units_per_commit, gather_s : int, float
        A transaction stores at most this many units, gathered for at most this long.
    retries : callable, optional
        Returns the number of HTTP retries made so far (for the report).

    Returns
    -------
    SyncReport
        Also written to ``sync_runs`` (when the warehouse can be written).
    """
    if until.tzinfo is None or (since is not None and since.tzinfo is None):
        raise SourceError(f"{source}: since/until must be timezone-aware")
    report = SyncReport(source, uuid.uuid4().hex, dt.datetime.now(dt.UTC))
    try:
        with _opened(open_warehouse) as wh:
            marks = read_watermarks(wh, source)
    except Exception as exc:
        report.error = f"the warehouse cannot be read: {_short(exc)}"
        report.finished_at = dt.datetime.now(dt.UTC)
        log.error("%s: %s", source, report.error)
        return report

    def start_of(stream: Stream) -> dt.datetime | None:
        if since is not None:
            return since
        if stream.name in marks:
            return marks[stream.name] - overlap
        return None if initial is None else until - initial

    done: queue.Queue[Unit | tuple[str, str] | None] = queue.Queue(maxsize=2 * units_per_commit)
    cancel = threading.Event()

    def produce(stream: Stream) -> None:
        try:
            for unit in stream.units(start_of(stream), until):
                if cancel.is_set():
                    return
                done.put(unit)
        except (SourceUnreachable, SourceError) as exc:
            done.put((stream.name, str(exc)))
        except Exception as exc:  # a bug must not hang the writer: report it as the stream's failure
            log.exception("%s: stream %s failed", source, stream.name)
            done.put((stream.name, f"{type(exc).__name__}: {exc}"))

    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix=f"sync-{source}")
    futures = [pool.submit(produce, s) for s in streams]
    finisher = threading.Thread(target=lambda: ([f.result() for f in futures], done.put(None)), daemon=True)
    finisher.start()
    try:
        _write_all(source, done, open_warehouse, marks, report, units_per_commit, gather_s)
    except WarehouseWriteError as exc:
        report.error = str(exc)
        cancel.set()
        while finisher.is_alive():  # let the producers see the cancel flag and leave
            with contextlib.suppress(queue.Empty):
                done.get(timeout=0.2)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    report.retries = retries() if retries else 0
    report.finished_at = dt.datetime.now(dt.UTC)
    _record(report, open_warehouse)
    for line in report.lines():
        log.info("%s: %s", source, line)
    return report


def _write_all(
    source: str,
    done: queue.Queue,
    open_warehouse: Callable[[], Warehouse],
    marks: dict[str, dt.datetime],
    report: SyncReport,
    units_per_commit: int,
    gather_s: float,
) -> None:
    """Store what the streams fetched: groups of up to ``units_per_commit`` units, gathered for up
    to ``gather_s`` seconds — a few big writes (one ``COPY`` per table) instead of one per machine."""
    finished = False
    while not finished:
        item = done.get()
        batch: list[Unit] = []
        deadline = time.monotonic() + gather_s
        while True:
            if item is None:
                finished = True
                break
            if isinstance(item, tuple):
                report.failures[item[0]] = item[1]
                log.error("%s: %s", source, item[1])
            else:
                batch.append(item)
            if len(batch) >= units_per_commit:
                break
            try:
                item = done.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
        if batch:
            _store(source, batch, open_warehouse, marks, report)


def _store(
    source: str,
    batch: list[Unit],
    open_warehouse: Callable[[], Warehouse],
    marks: dict[str, dt.datetime],
    report: SyncReport,
) -> None:
    """Write a group of units, their dead letters and their watermarks in one transaction."""
    counts: dict[str, EntityCounts] = {}
    new_marks: dict[str, dt.datetime] = {}
    frames: dict[str, list[pa.Table]] = {}
    entity_of: dict[str, str] = {}
    dead: list[dict] = []
    for unit in batch:
        c = counts.setdefault(unit.entity, EntityCounts())
        c.fetched += unit.fetched
        c.dead_lettered += len(unit.dead_letters)
        dead += unit.dead_letters
        for table, rows in unit.tables.items():
            if len(rows):
                frames.setdefault(table, []).append(to_arrow(rows, where=f"{unit.stream} {table}"))
                entity_of[table] = unit.entity
        old = new_marks.get(unit.stream) or marks.get(unit.stream)
        if unit.watermark is not None and (old is None or unit.watermark > old):
            new_marks[unit.stream] = unit.watermark
    try:
        # One write per table for the whole group: the per-write cost (conforming, event ids, the
        # engine's round trips) is paid once, not once per machine and day.
        with _opened(open_warehouse) as wh, wh.transaction():
            for table, parts in frames.items():
                result = wh.write(table, pa.concat_tables(parts, promote_options="permissive"))
                c = counts[entity_of[table]]
                c.written += result.written
                c.unchanged += result.unchanged
            if dead:
                letters = pd.DataFrame(dead)
                letters["received_at"] = pd.to_datetime(letters["received_at"], unit="ms", utc=True)
                wh.write("dead_letters", letters)
            if new_marks:
                now = dt.datetime.now(dt.UTC)
                wh.write(
                    "ingest_watermarks",
                    pd.DataFrame(
                        {
                            "source": source,
                            "stream": list(new_marks),
                            "watermark": list(new_marks.values()),
                            "updated_at": now,
                        }
                    ),
                )
    except Exception as exc:
        raise WarehouseWriteError(
            f"the warehouse could not store {sum(u.fetched for u in batch):,} fetched record(s) "
            f"({', '.join(sorted({u.stream for u in batch})[:3])}…): {_short(exc)}; nothing of them "
            "was stored and the watermarks stay where they were"
        ) from exc
    marks.update(new_marks)
    for entity, c in counts.items():
        total = report.entities.setdefault(entity, EntityCounts())
        for key in ("fetched", "written", "unchanged", "dead_lettered"):
            setattr(total, key, getattr(total, key) + getattr(c, key))


def _record(report: SyncReport, open_warehouse: Callable[[], Warehouse]) -> None:
    try:
        with _opened(open_warehouse) as wh:
            wh.write("sync_runs", pd.DataFrame([report.sync_run_row()]))
    except Exception as exc:
        log.error("%s: the run could not be recorded in sync_runs: %s", report.source, _short(exc))


@contextlib.contextmanager
def _opened(open_warehouse: Callable[[], Warehouse]) -> Iterator[Warehouse]:
    wh = open_warehouse()
    try:
        yield wh
    finally:
        wh.close()


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:500]
