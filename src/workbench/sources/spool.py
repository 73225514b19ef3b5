"""Store-and-forward: a durable local spool between the collector and the warehouse.

The collector appends what it normalised — canonical rows (Arrow IPC), dead letters, the
normaliser's state and the ids of the raw messages consumed — to a SQLite database in WAL mode,
in **one transaction** with ``synchronous=FULL`` (the commit is on disk before the source is
acknowledged). A :class:`Forwarder` drains the oldest batches to the warehouse through its bulk
path, and deletes them from the spool only after the warehouse commit. So:

* a crash before the spool commit loses nothing: the source was not acknowledged and sends again,
  and the normaliser's state rolls back with the rows;
* a crash after the spool commit and before the acknowledgement: the source redelivers, the
  message id is already in ``seen`` and the redelivery is skipped;
* a crash between the warehouse commit and the spool delete: the batch is forwarded again and the
  store's ``event_id`` makes it a no-op.

The spool is bounded (``max_bytes``): past ``warn_fraction`` of it every append logs a warning;
at the bound :meth:`Spool.append` raises :class:`SpoolFullError` and the collector stops taking
input (an MQTT broker keeps the unacknowledged messages) until the forwarder makes room.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from workbench import schema
from workbench.errors import SourceError, StoreError, WorkbenchError
from workbench.ingest.stream import Rows, dead_letter_table

log = logging.getLogger("workbench.collect")

DEAD_LETTERS = "dead_letters"
SEEN_KEEP_MS = 24 * 3600 * 1000


class SpoolFullError(SourceError):
    """The spool reached its size bound: the warehouse has been unreachable for too long."""


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


@dataclass(frozen=True)
class SpoolStatus:
    """How much waits in the spool."""

    batches: int
    rows: int
    bytes: int
    max_bytes: int
    oldest_ms: int | None

    @property
    def fill(self) -> float:
        """Fraction of the bound in use."""
        return self.bytes / self.max_bytes if self.max_bytes else 0.0


class Spool:
    """The durable spool (see the module docstring).

    Parameters
    ----------
    path : Path
        SQLite file (created with its folder).
    max_bytes : int
        Bound on the rows waiting to be forwarded.
    warn_fraction : float
        Fill above which every append logs a warning.
    """

    def __init__(self, path: Path | str, *, max_bytes: int = 2 * 1024**3, warn_fraction: float = 0.8) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes = int(max_bytes)
        self.warn_fraction = warn_fraction
        # One SQLite connection per thread: the collector appends from its event loop while the
        # forwarder takes and deletes from a worker thread; WAL lets them overlap, and SQLite
        # serialises the two writers (busy timeout 30 s).
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._con.executescript("""
            CREATE TABLE IF NOT EXISTS batches (
                seq INTEGER PRIMARY KEY AUTOINCREMENT, created_ms INTEGER NOT NULL,
                target TEXT NOT NULL, rows INTEGER NOT NULL, bytes INTEGER NOT NULL, data BLOB NOT NULL);
            CREATE TABLE IF NOT EXISTS state (name TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS seen (message_id TEXT PRIMARY KEY, at_ms INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS totals (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS quarantine (
                seq INTEGER PRIMARY KEY, created_ms INTEGER NOT NULL, target TEXT NOT NULL,
                rows INTEGER NOT NULL, bytes INTEGER NOT NULL, data BLOB NOT NULL, reason TEXT NOT NULL);
        """)
        self._bytes = self._con.execute("SELECT coalesce(sum(bytes), 0) FROM batches").fetchone()[0]

    @property
    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            self._local.con = con
            with self._lock:
                self._all.append(con)
        return con

    def close(self) -> None:
        """Close the database (everything committed is already on disk)."""
        with self._lock:
            for con in self._all:
                con.close()
            self._all.clear()
        self._local = threading.local()

    # -- collector side -------------------------------------------------------------------------
    def seen(self, message_ids: Iterable[str]) -> set[str]:
        """Which of ``message_ids`` were already appended (a broker's redelivery after a crash)."""
        ids = list(message_ids)
        found: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            q = f"SELECT message_id FROM seen WHERE message_id IN ({','.join('?' * len(chunk))})"
            found.update(r[0] for r in self._con.execute(q, chunk))
        return found

    def append(
        self,
        rows: Rows,
        *,
        state: dict[str, Any] | None = None,
        message_ids: Iterable[str] = (),
        now_ms: int | None = None,
    ) -> int:
        """Append normalised rows, the normaliser state and consumed message ids in one transaction.

        Returns
        -------
        int
            Bytes added.

        Raises
        ------
        SpoolFullError
            The spool is at its bound; nothing was appended.
        """
        now = int(time.time() * 1000) if now_ms is None else now_ms
        blobs: list[tuple[str, int, bytes]] = []
        tables = dict(rows.tables)
        if rows.dead_letters:
            tables[DEAD_LETTERS] = dead_letter_table(rows.dead_letters)
        for name, table in tables.items():
            if table.num_rows:
                # event_id is computed here, before the spool: every forward of this batch is the same rows.
                conformed = schema.with_event_ids(schema.table(name), table)
                blobs.append((name, conformed.num_rows, _ipc(conformed)))
        added = sum(len(b) for _, _, b in blobs)
        if added and self._bytes + added > self.max_bytes:
            raise SpoolFullError(
                f"spool {self.path} is full ({self._bytes / 1e6:.0f} of {self.max_bytes / 1e6:.0f} MB):"
                " the warehouse has not taken data for too long; input is paused until it does"
            )
        con = self._con
        con.execute("BEGIN IMMEDIATE")
        try:
            for name, n, blob in blobs:
                con.execute(
                    "INSERT INTO batches (created_ms, target, rows, bytes, data) VALUES (?, ?, ?, ?, ?)",
                    (now, name, n, len(blob), blob),
                )
            if state is not None:
                con.execute(
                    "INSERT OR REPLACE INTO state (name, value) VALUES ('normalizer', ?)",
                    (json.dumps(state, separators=(",", ":")),),
                )
            ids = list(message_ids)
            if ids:
                con.executemany(
                    "INSERT OR IGNORE INTO seen (message_id, at_ms) VALUES (?, ?)", [(i, now) for i in ids]
                )
            for key, value in rows.stats.items():
                con.execute(
                    "INSERT INTO totals (name, value) VALUES (?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                    (key, int(value)),
                )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self._bytes += added
        if self._bytes > self.warn_fraction * self.max_bytes:
            log.warning(
                "spool %s is %.0f %% full (%.0f of %.0f MB): the warehouse is not keeping up or is "
                "unreachable; input stops at 100 %%",
                self.path,
                100 * self._bytes / self.max_bytes,
                self._bytes / 1e6,
                self.max_bytes / 1e6,
            )
        return added

    def load_state(self) -> dict[str, Any] | None:
        """The normaliser state saved with the last append, if any."""
        row = self._con.execute("SELECT value FROM state WHERE name = 'normalizer'").fetchone()
        return json.loads(row[0]) if row else None

    def prune_seen(self, *, older_than_ms: int = SEEN_KEEP_MS) -> None:
        """Forget message ids older than a day (a broker redelivers within minutes, not days)."""
        self._con.execute("DELETE FROM seen WHERE at_ms < ?", (int(time.time() * 1000) - older_than_ms,))

    def totals(self) -> dict[str, int]:
        """Running totals of the normaliser's counters (readings, rejected, rollovers …)."""
        return dict(self._con.execute("SELECT name, value FROM totals").fetchall())

    # -- forwarder side -------------------------------------------------------------------------
    def status(self) -> SpoolStatus:
        """What waits to be forwarded."""
        n, rows, size, oldest = self._con.execute(
            "SELECT count(*), coalesce(sum(rows), 0), coalesce(sum(bytes), 0), min(created_ms) FROM batches"
        ).fetchone()
        self._bytes = size
        return SpoolStatus(batches=n, rows=rows, bytes=size, max_bytes=self.max_bytes, oldest_ms=oldest)

    def take(self, *, max_rows: int = 200_000) -> list[tuple[int, str, pa.Table]]:
        """The oldest batches, in order, up to about ``max_rows`` rows (at least one batch)."""
        out, total = [], 0
        for seq, target, n, data in self._con.execute(
            "SELECT seq, target, rows, data FROM batches ORDER BY seq"
        ):
            if out and total + n > max_rows:
                break
            out.append((seq, target, _from_ipc(data)))
            total += n
        return out

    def quarantine(self, seq: int, reason: str) -> None:
        """Move batch ``seq`` out of the forwarding queue, keeping it and the reason for inspection."""
        con = self._con
        con.execute("BEGIN IMMEDIATE")
        try:
            con.execute(
                "INSERT INTO quarantine SELECT seq, created_ms, target, rows, bytes, data, ? "
                "FROM batches WHERE seq = ?",
                (reason, seq),
            )
            con.execute("DELETE FROM batches WHERE seq = ?", (seq,))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def quarantined(self) -> list[tuple[int, str, int, str]]:
        """Batches set aside: ``(seq, target table, rows, reason)``."""
        return self._con.execute("SELECT seq, target, rows, reason FROM quarantine ORDER BY seq").fetchall()

    def ack(self, seqs: Iterable[int]) -> None:
        """Delete forwarded batches (call only after the warehouse committed them)."""
        seqs = list(seqs)
        con = self._con
        con.execute("BEGIN IMMEDIATE")
        try:
            for i in range(0, len(seqs), 500):
                chunk = seqs[i : i + 500]
                con.execute(f"DELETE FROM batches WHERE seq IN ({','.join('?' * len(chunk))})", chunk)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self._bytes = con.execute("SELECT coalesce(sum(bytes), 0) FROM batches").fetchone()[0]


@dataclass(frozen=True)
class ForwardResult:
    """One drain: what went to the warehouse."""

    batches: int
    rows: int
    written: int
    by_table: dict[str, int]


def latest_per_key(tbl: schema.Table, data: pa.Table) -> pa.Table:
    """Keep the last row of each key (rows in spool order): later state supersedes earlier state."""
    key = list(tbl.key)
    if data.num_rows < 2 or tbl.on_conflict != "update":
        return data
    numbered = data.append_column("__row", pa.array(range(data.num_rows), pa.int64()))
    last = numbered.group_by(key, use_threads=False).aggregate([("__row", "max")])
    return data.take(sorted(last.column("__row_max").to_pylist()))


class Forwarder:
    """Drain the spool to the warehouse in order, acknowledging only after the commit.

    Parameters
    ----------
    spool : Spool
    open_warehouse : callable
        Returns an open :class:`~workbench.store.Warehouse`. With ``keep_open`` the connection is
        kept between drains (PostgreSQL) and reopened after an error; without it (DuckDB, whose
        file admits one writer process) each drain opens, writes and closes.
    max_rows : int
        Rows per drain (one warehouse transaction).
    """

    def __init__(
        self,
        spool: Spool,
        open_warehouse: Callable[[], Any],
        *,
        keep_open: bool = False,
        max_rows: int = 200_000,
    ) -> None:
        self.spool = spool
        self.open_warehouse = open_warehouse
        self.keep_open = keep_open
        self.max_rows = max_rows
        self._wh: Any = None
        self.failures = 0
        self.last_error: str | None = None
        self.last_success_ms: int | None = None

    def close(self) -> None:
        """Release a kept warehouse connection."""
        if self._wh is not None:
            try:
                self._wh.close()
            finally:
                self._wh = None

    def _write(self, taken: list[tuple[int, str, pa.Table]]) -> dict[str, int]:
        by_table: dict[str, list[pa.Table]] = {}
        for _, target, table in taken:
            by_table.setdefault(target, []).append(table)
        written: dict[str, int] = {}
        try:
            wh = self._wh if self._wh is not None else self.open_warehouse()
            try:
                with wh.transaction():
                    for name in sorted(by_table):
                        data = pa.concat_tables(by_table[name], promote_options="default")
                        result = wh.write(name, latest_per_key(schema.table(name), data))
                        written[name] = result.written
            finally:
                if self.keep_open:
                    self._wh = wh
                else:
                    wh.close()
        except Exception as exc:
            self.failures += 1
            self.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            self.close()
            if isinstance(exc, WorkbenchError) and not isinstance(exc, StoreError):
                raise
            rows = sum(t.num_rows for _, _, t in taken)
            raise StoreError(
                f"forwarding {rows} rows failed, they stay in the spool: {self.last_error}"
            ) from exc
        return written

    def drain_once(self) -> ForwardResult:
        """Forward the oldest batches (up to ``max_rows``) in one warehouse transaction.

        Raises
        ------
        StoreError
            The warehouse could not take them; they stay in the spool.
        """
        taken = self.spool.take(max_rows=self.max_rows)
        if not taken:
            return ForwardResult(0, 0, 0, {})
        rows = sum(t.num_rows for _, _, t in taken)
        try:
            written = self._write(taken)
        except WorkbenchError as exc:
            if isinstance(exc, StoreError):
                raise
            # The warehouse refused the content (not the connection): find the batch at fault, set it
            # aside with the reason, and let the rest through — one bad batch must not block the spool.
            written = {}
            for item in taken:
                try:
                    for name, n in self._write([item]).items():
                        written[name] = written.get(name, 0) + n
                except WorkbenchError as one:
                    if isinstance(one, StoreError):
                        raise
                    self.spool.quarantine(item[0], str(one))
                    log.error(
                        "spool batch %d (%s, %d rows) refused by the warehouse and set aside in %s: %s",
                        item[0],
                        item[1],
                        item[2].num_rows,
                        self.spool.path,
                        one,
                    )
        self.spool.ack(seq for seq, _, _ in taken)
        self.failures = 0
        self.last_error = None
        self.last_success_ms = int(time.time() * 1000)
        return ForwardResult(batches=len(taken), rows=rows, written=sum(written.values()), by_table=written)
