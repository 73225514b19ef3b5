"""A read-only warehouse that holds no connection between calls: what notebooks read through.

DuckDB lets one process hold the file read-write *or* several hold it read-only: a read-only
connection kept in a Jupyter kernel for the kernel's life locks every writer out (the 05:00
report flow's ``prepare-data``, ``workbench simulate``, the collectors). An
:class:`OnDemandWarehouse` opens the underlying warehouse for each call (``read``, ``query``,
``count``, ``counts``, ``schema_version``, ``export_extract``), does the work and closes it, so
between cells the kernel holds nothing. :meth:`OnDemandWarehouse.held` groups several reads
under one open when they must see the same data (``jobs.load_plant_frames`` does).

>>> wh = OnDemandWarehouse.duckdb("data/warehouse.duckdb")       # doctest: +SKIP
>>> machines = wh.read("machines")                                # opened and closed again
>>> with wh.held():                                               # doctest: +SKIP
...     states = wh.read("machine_states", start=start, end=end)
...     events = wh.read("production_events", start=start, end=end)
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, NoReturn, Self

import pyarrow as pa

from workbench import schema
from workbench.errors import StoreError
from workbench.store.base import Frame, FrameKind, Warehouse, WriteResult
from workbench.store.embedded import DuckDBWarehouse
from workbench.store.postgres import PostgresWarehouse

__all__ = ["OnDemandWarehouse"]


class OnDemandWarehouse(Warehouse):
    """Read-only access to a warehouse that connects per call and holds nothing in between.

    Build one with :meth:`duckdb` or :meth:`postgres` (or :func:`workbench.store.open_reader`
    for the configured warehouse). Reads behave exactly like the underlying engine's; writes,
    :meth:`init_schema` and :meth:`transaction` raise :class:`~workbench.errors.StoreError`.

    Parameters
    ----------
    opener : callable
        Returns a newly opened, read-only warehouse; called once per call, or per :meth:`held` block.
    engine : str
        The underlying engine (``"duckdb"`` or ``"postgres"``).
    location : str
        Where the data lives, for people to read (no password).

    Notes
    -----
    A held connection belongs to the thread that entered :meth:`held`; other threads keep
    connecting per call.
    """

    def __init__(self, opener: Callable[[], Warehouse], *, engine: str, location: str) -> None:
        self._opener = opener
        self.engine = engine
        self._location = location
        self._local = threading.local()

    @classmethod
    def duckdb(cls, path: str | Path, *, lock_timeout_s: float | None = None) -> OnDemandWarehouse:
        """Read a DuckDB file (the warehouse or an extract), opening it read-only per call.

        Parameters
        ----------
        path : str or Path
            The database file.
        lock_timeout_s : float, optional
            How long each open waits while a writer holds the file (default: the setting
            ``WORKBENCH_LOCK_TIMEOUT_S``); see :class:`~workbench.store.DuckDBWarehouse`.

        Returns
        -------
        OnDemandWarehouse
        """
        file = Path(path)
        return cls(lambda: DuckDBWarehouse(file, read_only=True, lock_timeout_s=lock_timeout_s),
                   engine=DuckDBWarehouse.engine, location=str(file))

    @classmethod
    def postgres(cls, url: str, *, timescale: str = "auto") -> OnDemandWarehouse:
        """Read PostgreSQL / TimescaleDB, connecting per call.

        PostgreSQL has no file lock, so holding a connection would block nobody; it connects per
        call anyway: a kernel left open for days would otherwise keep an idle server connection
        (one of ``max_connections``), which breaks on a server restart, an
        ``idle_session_timeout`` or a pooler, while a connection costs milliseconds next to a
        notebook's reads. Sessions are ``default_transaction_read_only``, so even
        :meth:`query` cannot write.

        Parameters
        ----------
        url : str
            libpq connection string or ``postgresql://`` URL.
        timescale : {"auto", "on", "off"}
            As for :class:`~workbench.store.PostgresWarehouse`.

        Returns
        -------
        OnDemandWarehouse
        """
        def opener() -> Warehouse:
            wh = PostgresWarehouse(url, timescale=timescale)
            wh.conn.execute("SET default_transaction_read_only = on")
            return wh

        return cls(opener, engine=PostgresWarehouse.engine, location=PostgresWarehouse._safe(url))

    def __repr__(self) -> str:
        return f"OnDemandWarehouse({self.engine}: {self.location})"

    @property
    def location(self) -> str:
        return self._location

    # -- connections ----------------------------------------------------------------------------
    @contextmanager
    def _connection(self) -> Iterator[Warehouse]:
        held = getattr(self._local, "warehouse", None)
        if held is not None:
            yield held
            return
        with self._opener() as wh:
            yield wh

    @contextmanager
    def held(self) -> Iterator[Self]:
        """Keep one connection open for the block: every call inside uses it, and sees one
        state of the data (DuckDB: no writer can open the file meanwhile; PostgreSQL: one
        ``REPEATABLE READ`` snapshot). Blocks nest; the outermost one closes the connection.

        Yields
        ------
        OnDemandWarehouse
            This warehouse.
        """
        if getattr(self._local, "warehouse", None) is not None:
            yield self
            return
        with self._opener() as wh:
            self._local.warehouse = wh
            try:
                if isinstance(wh, PostgresWarehouse):
                    with wh.snapshot():
                        yield self
                else:
                    yield self
            finally:
                self._local.warehouse = None

    def close(self) -> None:
        """Nothing to release: every call closes its own connection."""

    # -- refused: this warehouse only reads ----------------------------------------------------------
    def _refuse(self, what: str) -> NoReturn:
        raise StoreError(f"{what}: {self.location} is open read-only here (the notebook reader holds no "
                         "connection); write with workbench.store.open_warehouse() in a short `with` block")

    def init_schema(self) -> None:
        self._refuse("init_schema")

    def transaction(self) -> AbstractContextManager[None]:
        self._refuse("transaction (to group reads, use held())")

    def write(self, table: str, data: Frame) -> WriteResult:
        self._refuse(f"write({table!r})")

    def _write_arrow(self, tbl: schema.Table, arrow: pa.Table) -> int:
        self._refuse(f"write({tbl.name!r})")

    # -- reads: open, work, close ----------------------------------------------------------------
    def _read_arrow(self, tbl: schema.Table, columns: list[str],
                    conditions: list[tuple[str, str, Any]]) -> pa.Table:
        with self._connection() as wh:
            return wh._read_arrow(tbl, columns, conditions)

    def query(self, statement: str, params: Sequence[Any] | dict[str, Any] | None = None, *,
              as_: FrameKind = "pandas") -> Frame:
        with self._connection() as wh:
            return wh.query(statement, params, as_=as_)

    def count(self, table: str) -> int:
        with self._connection() as wh:
            return wh.count(table)

    def counts(self) -> dict[str, int]:
        with self.held():  # one open for every table, not one each
            return super().counts()

    def schema_version(self) -> int | None:
        with self._connection() as wh:
            return wh.schema_version()

    def export_extract(self, path: str | Path, *, tables: Iterable[str] | None = None,
                       start: dt.datetime | None = None, end: dt.datetime | None = None,
                       ranges: Mapping[str, tuple[dt.datetime | None, dt.datetime | None]] | None = None,
                       ) -> dict[str, int]:
        """As :meth:`Warehouse.export_extract`, done by the underlying engine in one open."""
        with self._connection() as wh:
            return wh.export_extract(path, tables=tables, start=start, end=end, ranges=ranges)
