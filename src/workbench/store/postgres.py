"""The server engine: PostgreSQL 15+ through psycopg 3, with TimescaleDB features when present."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from workbench import schema
from workbench.errors import ConfigError, StoreError
from workbench.store import timescale
from workbench.store.base import (
    PRODUCTION_HOURLY_VIEW,
    Frame,
    FrameKind,
    Warehouse,
    from_arrow,
    order_columns,
    time_bounds,
)
from workbench.store.embedded import probe_allowed, production_hourly_sql, upsert_clause

#: Rows serialised per COPY chunk: bounded memory for any batch size.
COPY_CHUNK_ROWS = 200_000
_CSV_OPTIONS = pacsv.WriteOptions(include_header=False, batch_size=COPY_CHUNK_ROWS)


def copy_csv_chunks(arrow: pa.Table) -> Iterator[bytes]:
    """Serialise an Arrow table as PostgreSQL CSV (null = unquoted empty, '' = quoted empty)."""
    for batch in arrow.to_batches(max_chunksize=COPY_CHUNK_ROWS):
        buf = io.BytesIO()
        pacsv.write_csv(batch, buf, _CSV_OPTIONS)
        yield buf.getvalue()


def _select_expr(col: schema.Column) -> sql.Composable:
    ident = sql.Identifier(col.name)
    if col.type == "timestamptz":
        # Integer microseconds: exact, and independent of the session's DateStyle / TimeZone.
        return sql.SQL("(extract(epoch from {}) * 1000000)::bigint").format(ident)
    if col.type == "json":
        return sql.SQL("{}::text").format(ident)
    return ident


def _read_types(col: schema.Column) -> pa.DataType:
    return pa.int64() if col.type == "timestamptz" else col.arrow_type


class PostgresWarehouse(Warehouse):
    """Warehouse in PostgreSQL (TimescaleDB hypertables, compression, retention when available).

    Parameters
    ----------
    url : str
        libpq connection string or ``postgresql://`` URL (password from the environment).
    timescale : {"auto", "on", "off"}
        Use TimescaleDB when the extension can be created (``auto``), insist on it (``on``), or
        never use it (``off``).
    """

    engine = "postgres"

    placeholder = "%s"

    def __init__(self, url: str, *, timescale: str = "auto") -> None:
        if timescale not in ("auto", "on", "off"):
            raise ConfigError(f"timescale must be auto, on or off, not {timescale!r}")
        self._timescale_mode = timescale
        try:
            self.conn = psycopg.connect(url, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL at {self._safe(url)}: {exc}".strip()) from None
        self.conn.execute("SET TimeZone = 'UTC'")
        self._url = url

    @staticmethod
    def _safe(url: str) -> str:
        try:
            info = conninfo_to_dict(url)
        except psycopg.Error:
            return "<unparseable connection string>"
        user = info.get("user", "")
        host = info.get("host", "localhost")
        port = info.get("port", "5432")
        return f"postgresql://{user + '@' if user else ''}{host}:{port}/{info.get('dbname', '')}"

    @property
    def location(self) -> str:
        return self._safe(self._url)

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.conn.transaction():
            yield

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads inside the block see one snapshot of the database (a ``REPEATABLE READ,
        READ ONLY`` transaction), whatever other sessions commit meanwhile."""
        saved = self.conn.isolation_level, self.conn.read_only
        self.conn.isolation_level, self.conn.read_only = psycopg.IsolationLevel.REPEATABLE_READ, True
        try:
            with self.conn.transaction():
                yield
        finally:
            self.conn.isolation_level, self.conn.read_only = saved

    # -- schema ------------------------------------------------------------------------------
    def timescale_available(self) -> bool:
        """Whether the TimescaleDB extension is installed or installable on this server."""
        row = self.conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')"
        ).fetchone()
        return bool(row and row[0])

    def uses_timescale(self) -> bool:
        """Whether this warehouse applies TimescaleDB features (see the ``timescale`` mode)."""
        if self._timescale_mode == "off":
            return False
        available = self.timescale_available()
        if self._timescale_mode == "on" and not available:
            raise StoreError("WORKBENCH_TIMESCALE=on but the timescaledb extension is not available "
                             "on this server (install it, or set WORKBENCH_TIMESCALE=auto)")
        return available

    def init_schema(self) -> None:
        use_ts = self.uses_timescale()
        with self.transaction():
            # Two processes initialising at once would race on CREATE ... IF NOT EXISTS.
            self.conn.execute("SELECT pg_advisory_xact_lock(hashtext('workbench.init_schema'))")
            for tbl in schema.tables():
                self.conn.execute(schema.create_table_sql(tbl, "postgres"))
                for stmt in schema.index_sql(tbl, "postgres"):
                    self.conn.execute(stmt)
            self.conn.execute(schema.schema_version_sql())
            self.conn.execute(
                "INSERT INTO schema_version VALUES (%s, %s) ON CONFLICT (version) DO NOTHING",
                (schema.SCHEMA_VERSION, dt.datetime.now(dt.UTC)),
            )
            if not use_ts:
                self.conn.execute(
                    f"CREATE OR REPLACE VIEW {PRODUCTION_HOURLY_VIEW} AS "
                    + production_hourly_sql("date_bin('1 hour', time, TIMESTAMPTZ '2000-01-01')")
                )
        if use_ts:
            # Continuous aggregates cannot be created inside a transaction block.
            for stmt in timescale.all_statements(
                production_hourly_sql("time_bucket(INTERVAL '1 hour', time)"), PRODUCTION_HOURLY_VIEW
            ):
                self.conn.execute(stmt)

    def schema_version(self) -> int | None:
        row = self.conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
        if not row or not row[0]:
            return None
        row = self.conn.execute("SELECT max(version) FROM schema_version").fetchone()
        return None if row is None else row[0]

    # -- writes ------------------------------------------------------------------------------
    def _write_arrow(self, tbl: schema.Table, arrow: pa.Table) -> int:
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in tbl.column_names)
        try:
            with self.transaction(), self.conn.cursor() as cur:
                if self._range_is_empty(cur, tbl, arrow):
                    return self._copy(cur, sql.Identifier(tbl.name), cols, arrow)
                stage = sql.Identifier(f"_wb_stage_{tbl.name}")
                cur.execute(sql.SQL("CREATE TEMP TABLE {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP")
                            .format(stage, sql.Identifier(tbl.name)))
                self._copy(cur, stage, cols, arrow)
                cur.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ").format(
                    sql.Identifier(tbl.name), cols, cols, stage) + sql.SQL(upsert_clause(tbl)))
                return max(cur.rowcount, 0)
        except psycopg.Error as exc:
            raise StoreError(f"writing {arrow.num_rows} rows to {tbl.name} failed: {exc}") from None

    @staticmethod
    def _copy(cur: psycopg.Cursor, target: sql.Composable, cols: sql.Composable, arrow: pa.Table) -> int:
        with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(target, cols)) as copy:
            for chunk in copy_csv_chunks(arrow):
                copy.write(chunk)
        return max(cur.rowcount, 0)

    @staticmethod
    def _range_is_empty(cur: psycopg.Cursor, tbl: schema.Table, arrow: pa.Table) -> bool:
        if not probe_allowed(tbl):
            return False
        bounds = time_bounds(arrow, tbl.time_column)  # type: ignore[arg-type]
        if bounds is None:
            return True
        cur.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE {} BETWEEN %s AND %s)").format(
            sql.Identifier(tbl.name), sql.Identifier(tbl.time_column)), bounds)  # type: ignore[arg-type]
        row = cur.fetchone()
        return not (row and row[0])

    # -- reads -------------------------------------------------------------------------------
    def _read_arrow(self, tbl: schema.Table, columns: list[str],
                    conditions: list[tuple[str, str, Any]]) -> pa.Table:
        cols = [tbl.column(c) for c in columns]
        where: list[sql.Composable] = []
        params: list[Any] = []
        for col, op, value in conditions:
            if op == "IN":
                where.append(sql.SQL("{} = ANY(%s)").format(sql.Identifier(col)))
            else:
                where.append(sql.SQL("{} " + op + " %s").format(sql.Identifier(col)))
            params.append(value)
        query = sql.SQL("SELECT {} FROM {}").format(
            sql.SQL(", ").join(_select_expr(c) for c in cols), sql.Identifier(tbl.name))
        if where:
            query += sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where)
        query += sql.SQL(" ORDER BY ") + sql.SQL(", ").join(sql.Identifier(c) for c in order_columns(tbl))
        buf = io.BytesIO()
        try:
            with self.conn.cursor() as cur, cur.copy(
                sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(query), params or None
            ) as copy:
                for block in copy:
                    buf.write(block)
        except psycopg.Error as exc:
            raise StoreError(f"reading {tbl.name} failed: {exc}") from None
        return self._parse_csv(buf.getvalue(), cols)

    @staticmethod
    def _parse_csv(data: bytes, cols: list[schema.Column]) -> pa.Table:
        target = pa.schema([pa.field(c.name, c.arrow_type) for c in cols])
        if not data:
            return target.empty_table()
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(column_names=[c.name for c in cols]),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={c.name: _read_types(c) for c in cols},
                null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=False,
                true_values=["t"], false_values=["f"],
            ),
        )
        arrays = []
        for col in cols:
            arr = table.column(col.name)
            if col.type == "timestamptz":
                arr = arr.cast(pa.timestamp("us", tz="UTC"))
            arrays.append(arr)
        return pa.Table.from_arrays(arrays, schema=target)

    def query(self, statement: str, params: Sequence[Any] | dict[str, Any] | None = None, *,
              as_: FrameKind = "pandas") -> Frame:
        try:
            with self.conn.cursor() as cur:
                cur.execute(statement, params)
                if cur.description is None:
                    return from_arrow(pa.table({}), as_)
                names = [d.name for d in cur.description]
                rows = cur.fetchall()
        except psycopg.Error as exc:
            raise StoreError(f"query failed: {exc}") from None
        columns = {n: [r[i] for r in rows] for i, n in enumerate(names)}
        return from_arrow(pa.table(columns), as_)

    def count(self, table: str) -> int:
        tbl = schema.table(table)
        stmt = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(tbl.name))
        row = self.conn.execute(stmt).fetchone()
        return int(row[0]) if row else 0
