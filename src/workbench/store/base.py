"""The warehouse interface shared by the embedded (DuckDB) and server (PostgreSQL) engines."""

from __future__ import annotations

import abc
import datetime as dt
import os
import sys
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self, TypeAlias

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from workbench import schema
from workbench.errors import SchemaError, StoreError

if TYPE_CHECKING:
    import polars as pl

#: What the store takes and returns (polars is imported only where it is used: a notebook kernel
#: that only reads never needs it).
Frame: TypeAlias = "pd.DataFrame | pl.DataFrame | pa.Table"
FrameKind = Literal["pandas", "polars", "arrow"]

#: Views every engine provides on top of the canonical tables.
PRODUCTION_HOURLY_VIEW = "production_hourly"


@dataclass(frozen=True)
class WriteResult:
    """What one :meth:`Warehouse.write` did.

    Attributes
    ----------
    table : str
        Canonical table written.
    rows : int
        Rows offered (after identical duplicates inside the batch were folded together).
    written : int
        Rows inserted, or updated because their content changed.
    unchanged : int
        Rows whose key was already stored with the same content (or, for insert-only fact tables,
        stored at all): a replay.
    """

    table: str
    rows: int
    written: int
    unchanged: int


@dataclass(frozen=True)
class SchemaStatus:
    """What :meth:`Warehouse.schema_status` found.

    Attributes
    ----------
    ok : bool
        The schema is complete, current and what the settings ask for.
    detail : str
        What it is (version, engine layout) and, when not ok, what is missing and what to run.
    """

    ok: bool
    detail: str


def to_arrow(data: Frame, *, where: str = "input") -> pa.Table:
    """Convert a pandas / polars / Arrow frame to an Arrow table without copying where possible."""
    if isinstance(data, pa.Table):
        return data
    polars = sys.modules.get("polars")  # a polars frame exists only if polars was imported
    if polars is not None and isinstance(data, polars.DataFrame):
        return data.to_arrow()
    if isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    raise SchemaError(f"{where}: expected a pandas, polars or Arrow frame, got {type(data).__name__}")


def from_arrow(data: pa.Table, as_: FrameKind) -> Frame:
    """Convert an Arrow table to the frame kind a caller asked for."""
    if as_ == "arrow":
        return data
    if as_ == "polars":
        import polars as pl

        return pl.from_arrow(data)
    if as_ == "pandas":
        # Arrow-backed strings would surprise notebook users; timestamps stay tz-aware UTC.
        return data.to_pandas(types_mapper=None)
    raise StoreError(f"unknown frame kind {as_!r}; use 'pandas', 'polars' or 'arrow'")


def prepare(tbl: schema.Table, data: Frame) -> pa.Table:
    """Conform a frame to ``tbl``: canonical columns and types, event ids filled, nulls checked,
    identical in-batch duplicates folded and conflicting ones refused.

    Raises
    ------
    SchemaError
        Missing / unknown columns, uncastable values, nulls in required columns, or two rows with
        the same key but different content.
    """
    arrow = schema.with_event_ids(tbl, to_arrow(data, where=tbl.name))
    for name in tbl.required:
        nulls = arrow.column(name).null_count
        if nulls:
            raise SchemaError(f"{tbl.name}.{name} is required but {nulls} row(s) have no value")
    return _fold_duplicates(tbl, arrow)


def _fold_duplicates(tbl: schema.Table, arrow: pa.Table) -> pa.Table:
    if arrow.num_rows < 2:
        return arrow
    key = list(tbl.key)
    if arrow.select(key).group_by(key).aggregate([]).num_rows == arrow.num_rows:
        return arrow  # the usual case: every key once
    import polars as pl

    frame = pl.from_arrow(arrow)
    distinct = frame.unique(maintain_order=True)
    still = distinct.select(key).is_duplicated()
    if still.any():
        example = distinct.filter(still).select(key).row(0)
        raise SchemaError(
            f"{tbl.name}: {int(still.sum())} rows share a key with different content "
            f"(first key {dict(zip(tbl.key, example, strict=True))}); a batch may not contradict itself"
        )
    return distinct.to_arrow().cast(arrow.schema)


def time_bounds(arrow: pa.Table, column: str) -> tuple[dt.datetime, dt.datetime] | None:
    """Inclusive min / max of a timestamp column (``None`` for an empty table)."""
    if arrow.num_rows == 0:
        return None
    mm = pc.min_max(arrow.column(column))
    return mm["min"].as_py(), mm["max"].as_py()


def order_columns(tbl: schema.Table) -> list[str]:
    """Deterministic read order: the time column, then the key."""
    first = [tbl.time_column] if tbl.time_column else []
    return first + [k for k in tbl.key if k not in first]


def check_columns(tbl: schema.Table, columns: Sequence[str] | None) -> list[str]:
    """Validate requested column names against the schema (they become SQL identifiers)."""
    if columns is None:
        return tbl.column_names
    for name in columns:
        tbl.column(name)
    return list(columns)


def partial_path(target: Path) -> Path:
    """Where to write ``target`` before moving it into place: a name of its own, so that two runs
    of a pipeline for the same day never write the same half-finished file."""
    return target.with_name(f"{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial")


def table_range(tbl: schema.Table, *, start: dt.datetime | None, end: dt.datetime | None,
                ranges: Mapping[str, tuple[dt.datetime | None, dt.datetime | None]] | None,
                ) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The range of ``tbl``'s rows an extract copies (see :meth:`Warehouse.export_extract`)."""
    if tbl.time_column is None:
        return None, None
    lo, hi = (ranges or {}).get(tbl.name, (start, end))
    for bound in (lo, hi):
        if bound is not None and bound.tzinfo is None:
            raise StoreError(f"export_extract: the range of {tbl.name} must be timezone-aware, got {bound!r}")
    return lo, hi


class Warehouse(abc.ABC):
    """One interface over the embedded DuckDB file and PostgreSQL / TimescaleDB.

    Every write is idempotent (see :meth:`write`); reads return pandas, polars or Arrow with the
    canonical column types (timestamps tz-aware UTC).
    """

    engine: str

    # -- lifecycle -------------------------------------------------------------------------
    @abc.abstractmethod
    def init_schema(self) -> None:
        """Create every canonical table, index and view if missing; record the schema version."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection."""

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abc.abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """Group several writes: all of them land or none does."""

    @contextmanager
    def held(self) -> Iterator[Self]:
        """Group several reads under one connection, so they see the same data.

        A warehouse that keeps its connection open (this one) has nothing to do; one that
        connects per call (:class:`~workbench.store.OnDemandWarehouse`) connects once here
        and releases the connection at the end of the block::

            with wh.held():
                machines = wh.read("machines")
                states = wh.read("machine_states", start=start, end=end)

        Yields
        ------
        Warehouse
            This warehouse.
        """
        yield self

    # -- writes ------------------------------------------------------------------------------
    def write(self, table: str, data: Frame) -> WriteResult:
        """Load rows into a canonical table, idempotently, in one transaction.

        Rows are conformed to the schema and get their ``event_id`` from the natural key. A row
        whose key is already stored is left alone (insert-only facts) or updated only if its
        content changed (tables with ``on_conflict="update"``): loading the same rows twice
        leaves the warehouse unchanged.

        Parameters
        ----------
        table : str
            Canonical table name.
        data : pandas.DataFrame, polars.DataFrame or pyarrow.Table
            Rows with canonical column names; missing nullable columns are filled with nulls.

        Returns
        -------
        WriteResult
        """
        tbl = schema.table(table)
        arrow = prepare(tbl, data)
        if arrow.num_rows == 0:
            return WriteResult(table, 0, 0, 0)
        try:
            written = self._write_arrow(tbl, arrow)
        except StoreError as exc:
            hint = self._older_schema_hint()  # first: the database's own message may run to lines
            raise StoreError(f"{hint}: {exc}" if hint else str(exc)) from None
        return WriteResult(table, arrow.num_rows, written, arrow.num_rows - written)

    def _older_schema_hint(self) -> str:
        """A sentence for a failed write when the warehouse's schema is older than the code's (a
        plant that updated the workbench but did not run `workbench db init`)."""
        try:
            version = self.schema_version()
        except Exception:  # the hint must never hide the write's own error
            return ""
        if version is None or version >= schema.SCHEMA_VERSION:
            return ""
        return (f"the warehouse is at schema version {version} and this workbench needs "
                f"{schema.SCHEMA_VERSION}: run `workbench db init` (it migrates, keeping every row)")

    #: How the engine's driver marks a bound parameter.
    placeholder = "?"

    def fill_stop_predictions(self, predictions: Sequence[tuple[str, str, float]]) -> None:
        """Set ``predicted_category`` / ``predicted_confidence`` of downtime events by ``event_id``,
        only where the reason code is still blank — never touching what an operator entered.

        An UPDATE of those two columns only (not a re-write of the rows), so a reason code entered
        between the model's read and this write is kept, and the stop is then left alone.
        """
        mark = self.placeholder
        statement = (f"UPDATE downtime_events SET predicted_category = {mark}, predicted_confidence = {mark} "
                     f"WHERE event_id = {mark} AND (reason_code IS NULL OR trim(reason_code) = '') "
                     "AND (reason_category IS NULL OR trim(reason_category) = '')")
        with self.transaction():
            for event_id, category, confidence in predictions:
                self.query(statement, [category, float(confidence), event_id])

    def delete_keys(self, table: str, column: str, values: Sequence[Any]) -> None:
        """Delete the rows of a canonical table whose ``column`` is one of ``values``.

        For operational tables (e.g. dead letters replayed successfully); table and column are
        checked against the schema, values are bound parameters.
        """
        tbl = schema.table(table)
        tbl.column(column)
        values = list(values)
        for i in range(0, len(values), 500):
            chunk = values[i:i + 500]
            marks = ", ".join([self.placeholder] * len(chunk))
            self.query(f'DELETE FROM {tbl.name} WHERE "{column}" IN ({marks})', chunk)

    @abc.abstractmethod
    def _write_arrow(self, tbl: schema.Table, arrow: pa.Table) -> int:
        """Write a prepared Arrow table; return rows inserted or changed."""

    # -- reads -------------------------------------------------------------------------------
    def read(
        self,
        table: str,
        *,
        columns: Sequence[str] | None = None,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        machines: Iterable[str] | None = None,
        overlap: bool = False,
        as_: FrameKind = "pandas",
    ) -> Frame:
        """Read a canonical table, optionally one time range ``[start, end)`` and some machines.

        Parameters
        ----------
        table : str
            Canonical table name.
        columns : sequence of str, optional
            Subset of columns (default all, in schema order).
        start, end : datetime, optional
            Tz-aware bounds on the table's time column (half-open).
        machines : iterable of str, optional
            Only these machine ids (tables with a ``machine_id`` column).
        overlap : bool
            For interval tables (``time_start`` / ``time_end``): every row whose interval overlaps
            ``[start, end)``, not only those starting in it.
        as_ : {"pandas", "polars", "arrow"}
            Frame kind returned.
        """
        tbl = schema.table(table)
        cols = check_columns(tbl, columns)
        conditions: list[tuple[str, str, Any]] = []
        if overlap and not {"time_start", "time_end"} <= set(tbl.column_names):
            raise StoreError(f"{table} has no time_start/time_end interval to overlap")
        lower = ("time_end", ">") if overlap else (tbl.time_column, ">=")
        for bound, (column, op) in ((start, lower), (end, (tbl.time_column, "<"))):
            if bound is None:
                continue
            if column is None:
                raise StoreError(f"{table} has no time column to filter on")
            if bound.tzinfo is None:
                raise StoreError(f"read({table}): start/end must be timezone-aware, got {bound!r}")
            conditions.append((column, op, bound))
        if machines is not None:
            if "machine_id" not in tbl.column_names:
                raise StoreError(f"{table} has no machine_id column to filter on")
            conditions.append(("machine_id", "IN", list(machines)))
        try:
            arrow = self._read_arrow(tbl, cols, conditions)
        except StoreError as exc:
            hint = self._older_schema_hint()  # a table the warehouse's older schema does not have yet
            raise StoreError(f"{hint}: {exc}" if hint else str(exc)) from None
        return from_arrow(arrow, as_)

    @abc.abstractmethod
    def _read_arrow(self, tbl: schema.Table, columns: list[str],
                    conditions: list[tuple[str, str, Any]]) -> pa.Table:
        """Read with simple ``column op value`` conditions, as Arrow with canonical types."""

    @abc.abstractmethod
    def query(self, statement: str, params: Sequence[Any] | dict[str, Any] | None = None, *,
              as_: FrameKind = "pandas") -> Frame:
        """Run a read-only SQL statement in the engine's dialect, parameters bound by the driver
        (DuckDB: ``?`` / ``$name``; PostgreSQL: ``%s`` / ``%(name)s``)."""

    @abc.abstractmethod
    def count(self, table: str) -> int:
        """Number of rows in a canonical table."""

    def counts(self) -> dict[str, int]:
        """Row count of every canonical table."""
        return {t.name: self.count(t.name) for t in schema.tables()}

    @abc.abstractmethod
    def schema_version(self) -> int | None:
        """The highest applied schema version, or ``None`` before :meth:`init_schema`."""

    def schema_status(self) -> SchemaStatus:
        """What the schema really is, for ``workbench doctor``: its version and (PostgreSQL)
        whether it is plain or TimescaleDB, and whether anything is missing."""
        version = self.schema_version()
        if version is None:
            return SchemaStatus(False, "not initialised — run `workbench db init`")
        if version < schema.SCHEMA_VERSION:
            return SchemaStatus(False, f"version {version}, {schema.SCHEMA_VERSION} is current — "
                                "run `workbench db init`")
        return SchemaStatus(True, f"version {version}")

    @property
    @abc.abstractmethod
    def location(self) -> str:
        """Where the data lives (file path or URL without password), for people to read."""

    # -- extract ------------------------------------------------------------------------------
    def export_extract(
        self,
        path: str | Path,
        *,
        tables: Iterable[str] | None = None,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        ranges: Mapping[str, tuple[dt.datetime | None, dt.datetime | None]] | None = None,
    ) -> dict[str, int]:
        """Copy tables into a DuckDB file for notebooks (time-filtered where a range is given).

        The file is written next to ``path`` and moved into place at the end, so a reader never
        sees a half-written extract.

        Parameters
        ----------
        tables : iterable of str, optional
            Default: every table.
        start, end : datetime, optional
            Timezone-aware range of the rows of tables with a time column (``[start, end)``).
        ranges : mapping of table name to (start, end), optional
            Another range for some tables (e.g. a month of production for a forecast, a week
            of telemetry), instead of ``start``/``end``.

        Returns
        -------
        dict
            Rows copied per table.
        """
        from workbench.store.embedded import DuckDBWarehouse

        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = partial_path(target)
        names = list(tables) if tables is not None else [t.name for t in schema.tables()]
        copied: dict[str, int] = {}
        try:
            with DuckDBWarehouse(tmp) as out:
                out.init_schema()
                with out.transaction():  # one commit for the whole extract, not one per table
                    for name in names:
                        tbl = schema.table(name)
                        lo, hi = table_range(tbl, start=start, end=end, ranges=ranges)
                        arrow = self.read(name, start=lo, end=hi, as_="arrow")
                        if arrow.num_rows:
                            # Rows read from a warehouse are canonical already (checked when they
                            # were written, event ids included): the snapshot takes them as they are.
                            out._snapshot(tbl, arrow)
                        copied[name] = arrow.num_rows
        except BaseException:
            tmp.unlink(missing_ok=True)  # a name of its own: nobody else would ever clean it up
            raise
        tmp.replace(target)
        return copied
