"""The server engine: PostgreSQL 15+ through psycopg 3, with TimescaleDB features when present."""

from __future__ import annotations

import datetime as dt
import io
import logging
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
from workbench.store import migrations, timescale
from workbench.store.base import (
    PRODUCTION_HOURLY_VIEW,
    Frame,
    FrameKind,
    SchemaStatus,
    Warehouse,
    from_arrow,
    order_columns,
    time_bounds,
)
from workbench.store.embedded import probe_allowed, production_hourly_sql, upsert_clause

log = logging.getLogger(__name__)

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


def _merge(windows: list[tuple[dt.datetime, dt.datetime]]) -> list[tuple[dt.datetime, dt.datetime]]:
    """Overlapping or touching windows joined (one refresh each)."""
    out: list[tuple[dt.datetime, dt.datetime]] = []
    for lo, hi in sorted(windows):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


#: production_hourly on plain PostgreSQL (on TimescaleDB the same query over time_bucket).
_PLAIN_HOURLY = production_hourly_sql("date_bin('1 hour', time, TIMESTAMPTZ '2000-01-01')")


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
        self._support: timescale.Support | None = None
        self._decision: timescale.Decision | None = None
        # Schema of the extension when this warehouse has the continuous aggregate ('' when not;
        # None: not looked up yet). Loads refresh the aggregate over what they wrote.
        self._aggregate_ext: str | None = None
        self._tx_depth = 0
        self._to_refresh: list[tuple[dt.datetime, dt.datetime]] = []

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
        """All writes in the block land or none does. The continuous aggregate (TimescaleDB) is
        refreshed over what the block wrote after the outermost block committed: PostgreSQL
        refuses a refresh inside a transaction."""
        self._tx_depth += 1
        try:
            with self.conn.transaction():
                yield
        except BaseException:
            if self._tx_depth == 1:
                self._to_refresh.clear()
            raise
        finally:
            self._tx_depth -= 1
        if self._tx_depth == 0:
            self._refresh_aggregate()

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
        """Whether the TimescaleDB extension is installed or installable on this server (it may
        still not be usable: see :meth:`timescale_support`)."""
        row = self.conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')"
        ).fetchone()
        return bool(row and row[0])

    def timescale_support(self) -> timescale.Support:
        """What this server offers of TimescaleDB and why (found once, without changing anything)."""
        if self._support is None:
            try:
                self._support = timescale.probe(self.conn, self._url)
            except psycopg.Error as exc:
                raise StoreError(f"cannot tell whether TimescaleDB is usable here: {exc}") from None
        return self._support

    def timescale_decision(self) -> timescale.Decision:
        """Whether this warehouse is to use TimescaleDB under its ``timescale`` mode, and why.

        Raises
        ------
        StoreError
            Mode ``on`` and the server cannot give TimescaleDB (the message says what to change).
        """
        if self._decision is None:
            support = None if self._timescale_mode == "off" else self.timescale_support()
            self._decision = timescale.decide(self._timescale_mode, support)  # logs the reason once
        return self._decision

    def uses_timescale(self) -> bool:
        """Whether this warehouse applies TimescaleDB features (see the ``timescale`` mode)."""
        return self.timescale_decision().use

    def layout(self) -> timescale.Layout:
        """What the catalog holds of TimescaleDB for this warehouse (its current schema)."""
        return timescale.inspect(self.conn, steps_table=migrations.STEPS_TABLE)

    def init_schema(self) -> None:
        """Create or upgrade the warehouse, then bring it to the layout the mode asks for.

        The canonical tables first (a new warehouse from the current definitions, an older one
        migration by migration); then, with TimescaleDB, each missing step (extension,
        hypertables keeping their rows, the continuous aggregate refreshed over all stored data);
        with ``off`` on a TimescaleDB warehouse, the way back to plain tables, every row kept.
        Each step is recorded only when it succeeded; a failure names the statement.

        Raises
        ------
        StoreError
            ``on`` and no usable TimescaleDB (before any change); a warehouse that holds
            TimescaleDB objects the server can no longer read; or a failed step.
        """
        decision = self.timescale_decision()  # "on" without TimescaleDB stops here, nothing changed
        self.conn.execute("SELECT pg_advisory_lock(hashtext('workbench.init_schema'))")
        try:
            self._init_canonical()
            layout = self.layout()
            if decision.use:
                assert decision.support is not None
                steps = timescale.to_timescale(layout, decision.support, hourly_sql=production_hourly_sql,
                                               plain_view_sql=_PLAIN_HOURLY)
            elif layout.has_timescale:
                steps = self._back_to_plain(layout, decision)
            else:
                stale = tuple(s for s in layout.recorded if s.startswith("timescale."))
                steps = [migrations.Step("plain", "forget TimescaleDB steps", forgets=stale, record=False)
                         ] if stale else []
            try:
                migrations.apply_steps(self.conn, steps)
            finally:
                self._aggregate_ext = None
        finally:
            self.conn.execute("SELECT pg_advisory_unlock(hashtext('workbench.init_schema'))")

    def _back_to_plain(self, layout: timescale.Layout, decision: timescale.Decision) -> list[migrations.Step]:
        support = decision.support or self.timescale_support()
        built = f"hypertables {', '.join(sorted(layout.hypertables))}" if layout.hypertables \
            else f"the continuous aggregate {timescale.AGGREGATE}"
        if not support.usable:
            raise StoreError(
                f"this warehouse is a TimescaleDB warehouse ({built}) but {support.reason}: "
                f"{support.fix}. Nothing was changed. With TimescaleDB working again, `workbench db init` "
                "with WORKBENCH_TIMESCALE=off copies it back into plain tables.")
        log.warning("WORKBENCH_TIMESCALE=off on a TimescaleDB warehouse (%s): copying it back into plain "
                    "tables, every row kept", built)
        return timescale.to_plain(layout, plain_view_sql=_PLAIN_HOURLY)

    def _init_canonical(self) -> int | None:
        """The canonical tables, indexes and view (in one transaction), then pending migrations."""
        statement: str = ""
        try:
            with self.conn.transaction():
                for statement in (schema.schema_version_sql(), migrations.steps_table_sql()):
                    self.conn.execute(statement)
                applied = self.schema_version()
                for tbl in schema.tables():  # a table added to the schema appears in older warehouses
                    for statement in (schema.create_table_sql(tbl, "postgres"),
                                      *schema.index_sql(tbl, "postgres")):
                        self.conn.execute(statement)
                exists = self.conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                                           (PRODUCTION_HOURLY_VIEW,)).fetchone()
                if not (exists and exists[0]):
                    # Only where nothing is: never CREATE OR REPLACE over a continuous aggregate.
                    statement = f"CREATE VIEW {PRODUCTION_HOURLY_VIEW} AS {_PLAIN_HOURLY}"
                    self.conn.execute(statement)
                if applied is None:
                    statement = "recording the schema versions"
                    for migration in schema.MIGRATIONS:
                        self.conn.execute(migrations.record_version_sql("postgres"),
                                          (migration.version, dt.datetime.now(dt.UTC)))
        except psycopg.Error as exc:
            raise migrations.step_error("the canonical tables", statement, exc) from None
        for migration in migrations.pending(applied):
            statement = ""
            try:
                with self.conn.transaction():
                    for statement in migration.statements("postgres"):
                        self.conn.execute(statement)  # type: ignore[arg-type]
                    statement = f"recording version {migration.version}"
                    self.conn.execute(migrations.record_version_sql("postgres"),
                                      (migration.version, dt.datetime.now(dt.UTC)))
            except psycopg.Error as exc:
                raise migrations.step_error(f"version {migration.version}: {migration.description}",
                                            statement, exc) from None
        return applied

    def schema_version(self) -> int | None:
        row = self.conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
        if not row or not row[0]:
            return None
        row = self.conn.execute("SELECT max(version) FROM schema_version").fetchone()
        return None if row is None else row[0]

    def schema_status(self) -> SchemaStatus:
        """As :meth:`Warehouse.schema_status`, with what the warehouse is: plain PostgreSQL or
        TimescaleDB (hypertables, continuous aggregate), half-built or not as the mode asks."""
        status = super().schema_status()
        if self.schema_version() is None:
            return status
        try:
            layout = self.layout()
        except psycopg.Error as exc:
            return SchemaStatus(False, f"{status.detail}; cannot read the TimescaleDB catalog: {exc}")
        problems: list[str] = [] if status.ok else [status.detail]
        if layout.has_timescale:
            what = (f"TimescaleDB {layout.extension_version}: {len(layout.hypertables)} hypertable(s), "
                    + (f"continuous aggregate {timescale.AGGREGATE}" if layout.aggregate
                       else f"no continuous aggregate {timescale.AGGREGATE}"))
            missing = layout.missing()
            if missing:
                problems.append("half-built, missing " + ", ".join(missing) + " — run `workbench db init`")
            stray = layout.unrecorded()
            if stray and not missing:
                problems.append("built and recorded steps differ (" + ", ".join(stray)
                                + ") — run `workbench db init`")
            if self._timescale_mode == "off":
                problems.append("WORKBENCH_TIMESCALE=off: `workbench db init` copies it back into "
                                "plain tables")
        else:
            what = "plain PostgreSQL (" + (f"{timescale.AGGREGATE} is a view)" if layout.view
                                           else f"{timescale.AGGREGATE} missing)")
            if not layout.view:
                problems.append(f"{timescale.AGGREGATE} is missing — run `workbench db init`")
            stale = sorted(s for s in layout.recorded if s.startswith("timescale."))
            if stale:
                problems.append("records TimescaleDB steps it does not have (" + ", ".join(stale)
                                + ") — run `workbench db init`")
            if self._timescale_mode != "off":
                try:
                    decision = self.timescale_decision()
                except StoreError as exc:
                    problems.append(str(exc))
                else:
                    if decision.use:
                        problems.append(f"{decision.reason} is usable here (WORKBENCH_TIMESCALE="
                                        f"{self._timescale_mode}): `workbench db init` moves the "
                                        "warehouse to it")
        version = self.schema_version()
        detail = f"version {version}, {what}"
        return SchemaStatus(not problems, detail + ("; " + "; ".join(problems) if problems else ""))

    # -- writes ------------------------------------------------------------------------------
    def _write_arrow(self, tbl: schema.Table, arrow: pa.Table) -> int:
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in tbl.column_names)
        try:
            with self.transaction(), self.conn.cursor() as cur:
                self._note_written(tbl, arrow)
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

    def _note_written(self, tbl: schema.Table, arrow: pa.Table) -> None:
        """Remember the hours a load of production events touches, for the aggregate's refresh."""
        if tbl.name != timescale.AGGREGATE_SOURCE or not self._aggregate_schema():
            return
        bounds = time_bounds(arrow, tbl.time_column)  # type: ignore[arg-type]
        if bounds is not None:
            self._to_refresh.append(timescale.hour_window(*bounds))

    def _aggregate_schema(self) -> str:
        """The extension's schema when this warehouse has the continuous aggregate, else ''."""
        if self._aggregate_ext is None:
            row = self.conn.execute("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n "
                                    "ON n.oid = e.extnamespace WHERE e.extname = 'timescaledb'").fetchone()
            found = ""
            if row is not None:
                agg = self.conn.execute(
                    "SELECT 1 FROM timescaledb_information.continuous_aggregates "
                    "WHERE view_schema = current_schema() AND view_name = %s",
                    (timescale.AGGREGATE,)).fetchone()
                found = row[0] if agg is not None else ""
            self._aggregate_ext = found
        return self._aggregate_ext

    def _refresh_aggregate(self) -> None:
        """Refresh the continuous aggregate over the hours written since the last refresh.

        Real-time aggregation shows rows newer than the materialized range, but not rows loaded
        below it (a back-fill): only a refresh of the written range makes those appear.
        """
        if not self._to_refresh:
            return
        if self.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            return  # inside a transaction opened around this warehouse: refreshed by a later write
        windows, self._to_refresh = _merge(self._to_refresh), []
        ext = self._aggregate_schema()
        for lo, hi in windows:
            try:
                self.conn.execute(timescale.refresh_sql(ext), (lo, hi))
            except psycopg.Error as exc:
                raise StoreError(
                    f"the rows were written, but refreshing {timescale.AGGREGATE} over {lo:%Y-%m-%d %H:%M} - "
                    f"{hi:%Y-%m-%d %H:%M} UTC failed: {exc}; that range stays stale until "
                    f"CALL {ext}.refresh_continuous_aggregate('{timescale.AGGREGATE}', '{lo.isoformat()}', "
                    f"'{hi.isoformat()}') succeeds") from None

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
