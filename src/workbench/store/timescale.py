"""TimescaleDB for the PostgreSQL engine: whether this server can give it, what a warehouse has of
it, and the schema steps that move a warehouse to it (and back to plain PostgreSQL).

One place decides "TimescaleDB or not" (:func:`probe` then :func:`decide`) and says why. What the
warehouse *is* comes from the catalog (:func:`inspect`), never from the setting: a warehouse
opened with ``off`` that holds hypertables is still a TimescaleDB warehouse until ``db init``
converts it.

Every TimescaleDB function is called qualified by the schema the extension lives in, so a
warehouse in its own schema (``search_path=wb``) works wherever the extension was installed.
Written against TimescaleDB 2.21 (``by_range`` needs 2.13 or later).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from psycopg import sql

from workbench import schema
from workbench.errors import StoreError
from workbench.store.migrations import Check, Step

log = logging.getLogger(__name__)

#: Raw readings older than this are compressed (segment by machine, newest first).
COMPRESS_AFTER = "7 days"
#: The oldest TimescaleDB with everything used here (``by_range`` came in 2.13).
MIN_VERSION = (2, 13)
#: Where the extension is created when this tool creates it.
EXTENSION_SCHEMA = "public"
#: The continuous aggregate (a plain view on plain PostgreSQL).
AGGREGATE = "production_hourly"
#: Its source table.
AGGREGATE_SOURCE = "production_events"
#: The background refresh covers this much history; loads refresh what they wrote themselves.
REFRESH_START_OFFSET = "3 days"

#: Names of the steps recorded in ``schema_steps``.
EXTENSION_STEP = "timescale.extension"
AGGREGATE_STEP = f"timescale.aggregate.{AGGREGATE}"


def hypertable_step_name(table: str) -> str:
    """Name under which turning ``table`` into a hypertable is recorded."""
    return f"timescale.hypertable.{table}"


def hypertables() -> list[schema.Table]:
    """The canonical tables that become hypertables."""
    return [t for t in schema.tables() if t.hypertable and t.time_column]


# -- can this server do it? ----------------------------------------------------------------------

@dataclass(frozen=True)
class Support:
    """What this server offers of TimescaleDB, found without changing anything.

    Attributes
    ----------
    usable : bool
        Hypertables, compression and continuous aggregates all work here.
    reason : str
        Why (not), for people.
    fix : str
        What to change on the server to make it usable ('' when it is).
    schema : str or None
        The schema the extension is (or would be) installed in.
    version : str or None
        Installed version, else the version the server would install.
    installed : bool
        The extension exists in this database.
    licence : str or None
        ``timescaledb.license`` (``timescale`` is needed; ``apache`` lacks compression and
        continuous aggregates).
    """

    usable: bool
    reason: str
    fix: str = ""
    schema: str | None = None
    version: str | None = None
    installed: bool = False
    licence: str | None = None


_INSTALL = ("install TimescaleDB {min} or later (with its TSL features) for this PostgreSQL, add "
            "'timescaledb' to shared_preload_libraries in postgresql.conf and restart the server")


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])


def probe(conn: psycopg.Connection, url: str) -> Support:
    """Find out, without changing anything, whether TimescaleDB is usable for this database.

    Checks, in order: installed in this database or available on the server; recent enough;
    preloaded (``shared_preload_libraries``, or where that may not be read, the loader's own
    settings); the licence; and, when the extension is not installed yet, that it can be created
    (tried in a transaction that is rolled back, on a connection of its own).

    Parameters
    ----------
    conn : psycopg.Connection
        The warehouse's connection (autocommit).
    url : str
        Its connection string, for the trial connection.

    Returns
    -------
    Support
    """
    minimum = ".".join(map(str, MIN_VERSION))
    install = _INSTALL.format(min=minimum)
    row = conn.execute("SELECT e.extversion, n.nspname FROM pg_extension e "
                       "JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'timescaledb'"
                       ).fetchone()
    installed = row is not None
    if row is not None:
        version, ext_schema = row
    else:
        avail = conn.execute("SELECT default_version FROM pg_available_extensions "
                             "WHERE name = 'timescaledb'").fetchone()
        if avail is None:
            return Support(False, "the timescaledb extension is not available on this server", install)
        version, ext_schema = avail[0], EXTENSION_SCHEMA
    base = {"schema": ext_schema, "version": version, "installed": installed}
    if _version_tuple(version) < MIN_VERSION:
        what = "installed" if installed else "available"
        return Support(False, f"TimescaleDB {version} is {what}; the workbench needs {minimum} or later",
                       "ALTER EXTENSION timescaledb UPDATE after installing a newer TimescaleDB"
                       if installed else install, **base)
    preloaded = _preloaded(conn)
    if not preloaded:
        return Support(False, f"TimescaleDB {version} is installed on the server but not preloaded",
                       "add 'timescaledb' to shared_preload_libraries in postgresql.conf and restart "
                       "PostgreSQL", **base)
    try:
        licence = _licence(conn, url, installed=installed)
    except psycopg.Error as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        fix = ("ask a superuser to run CREATE EXTENSION timescaledb WITH SCHEMA "
               f"{EXTENSION_SCHEMA} in this database" if isinstance(exc, psycopg.errors.InsufficientPrivilege)
               else "see the server's log; " + install)
        return Support(False, f"TimescaleDB {version} cannot be loaded here: {message}", fix, **base)
    if licence != "timescale":
        return Support(False, f"TimescaleDB {version} runs with timescaledb.license = {licence!r}, "
                       "which has no compression and no continuous aggregates",
                       "set timescaledb.license = 'timescale' in postgresql.conf and restart PostgreSQL",
                       licence=licence, **base)
    where = f"installed in schema {ext_schema}" if installed else f"to be installed in schema {ext_schema}"
    return Support(True, f"TimescaleDB {version} ({where}, licence timescale)", licence=licence, **base)


def _preloaded(conn: psycopg.Connection) -> bool:
    try:
        row = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
    except psycopg.errors.InsufficientPrivilege:
        # Only superusers and pg_read_all_settings may read it; the preloaded loader defines its
        # own settings in every backend, which anyone may read.
        row = conn.execute("SELECT current_setting('timescaledb.max_background_workers', true)").fetchone()
        return bool(row and row[0] is not None)
    libs = [p.strip().strip('"').rsplit("/", 1)[-1] for p in (row[0] if row else "").split(",")]
    return "timescaledb" in libs


def _licence(conn: psycopg.Connection, url: str, *, installed: bool) -> str | None:
    """The licence the extension runs with; raises the server's error when it cannot load."""
    if installed:
        # Installed and preloaded: the library is loaded with the session, its setting is real.
        row = conn.execute("SELECT current_setting('timescaledb.license', true)").fetchone()
        return row[0] if row else None
    # Before the extension exists the setting is at best a placeholder: create it for real on a
    # connection of its own, read the licence, roll back (nothing is kept, nothing stays loaded).
    with psycopg.connect(url, connect_timeout=10) as trial:
        try:
            trial.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS timescaledb WITH SCHEMA {}")
                          .format(sql.Identifier(EXTENSION_SCHEMA)))
            row = trial.execute("SELECT current_setting('timescaledb.license', true)").fetchone()
        finally:
            trial.rollback()
    return row[0] if row else None


@dataclass(frozen=True)
class Decision:
    """Whether a warehouse uses TimescaleDB, and why."""

    use: bool
    reason: str
    support: Support | None = None


def decide(mode: str, support: Support | None) -> Decision:
    """Apply the ``timescale`` mode to what the server offers.

    Parameters
    ----------
    mode : {"auto", "on", "off"}
        The setting (``WORKBENCH_TIMESCALE``).
    support : Support or None
        What :func:`probe` found (not needed for ``off``).

    Raises
    ------
    StoreError
        ``on`` and TimescaleDB is not usable: says what to change on the server. Raised before
        anything is changed.
    """
    if mode == "off":
        return Decision(False, "WORKBENCH_TIMESCALE=off", support)
    assert support is not None
    if support.usable:
        return Decision(True, support.reason, support)
    if mode == "on":
        raise StoreError(f"WORKBENCH_TIMESCALE=on but {support.reason}: {support.fix} "
                         "(or set WORKBENCH_TIMESCALE=auto to use plain PostgreSQL). Nothing was changed.")
    level = logging.INFO if support.version is None else logging.WARNING
    log.log(level, "TimescaleDB not used, plain PostgreSQL instead: %s (to use it: %s)",
            support.reason, support.fix)
    return Decision(False, f"plain PostgreSQL: {support.reason}", support)


# -- what does the warehouse have? ---------------------------------------------------------------

@dataclass(frozen=True)
class Layout:
    """What the catalog says about the warehouse in the connection's current schema."""

    extension_schema: str | None = None
    extension_version: str | None = None
    hypertables: frozenset[str] = frozenset()
    compressed: frozenset[str] = frozenset()
    jobs: frozenset[tuple[str, str]] = frozenset()  # (table or view, policy proc name)
    job_ids: tuple[tuple[str, int], ...] = ()  # (table or view, job id)
    aggregate: bool = False
    aggregate_realtime: bool = False
    view: bool = False  # production_hourly is a plain view
    recorded: frozenset[str] = frozenset()
    schema_name: str = ""

    @property
    def has_timescale(self) -> bool:
        """Whether anything of TimescaleDB is in this warehouse."""
        return bool(self.hypertables or self.aggregate)

    def hypertable_complete(self, tbl: schema.Table) -> bool:
        """A hypertable, compressed, with its compression (and retention) policy."""
        name = tbl.name
        want = {"policy_compression"} | ({"policy_retention"} if tbl.retention_days is not None else set())
        return (name in self.hypertables and name in self.compressed
                and want <= {p for t, p in self.jobs if t == name})

    @property
    def aggregate_complete(self) -> bool:
        """The continuous aggregate, real-time, with its refresh policy."""
        return (self.aggregate and self.aggregate_realtime
                and (AGGREGATE, "policy_refresh_continuous_aggregate") in self.jobs)

    def missing(self) -> list[str]:
        """What a complete TimescaleDB warehouse has and this one lacks (empty: complete)."""
        out = []
        if self.extension_schema is None:
            out.append("the timescaledb extension")
        for tbl in hypertables():
            if tbl.name not in self.hypertables:
                out.append(f"hypertable {tbl.name}")
            elif not self.hypertable_complete(tbl):
                out.append(f"compression/retention of {tbl.name}")
        if not self.aggregate:
            out.append(f"continuous aggregate {AGGREGATE}")
        elif not self.aggregate_complete:
            out.append(f"real-time aggregation / refresh policy of {AGGREGATE}")
        return out

    def unrecorded(self) -> list[str]:
        """Steps that are built but not recorded, or recorded but not built."""
        built = {EXTENSION_STEP} if self.extension_schema else set()
        built |= {hypertable_step_name(t.name) for t in hypertables() if self.hypertable_complete(t)}
        built |= {AGGREGATE_STEP} if self.aggregate_complete else set()
        ts_recorded = {s for s in self.recorded if s.startswith("timescale.")}
        return sorted(ts_recorded ^ built) if self.has_timescale else sorted(ts_recorded)


def inspect(conn: psycopg.Connection, *, steps_table: str) -> Layout:
    """Read the warehouse's TimescaleDB objects (current schema) from the catalog."""
    row = conn.execute("SELECT e.extversion, n.nspname FROM pg_extension e "
                       "JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'timescaledb'"
                       ).fetchone()
    current = conn.execute("SELECT current_schema()").fetchone()
    schema_name = current[0] if current and current[0] else ""
    view_row = conn.execute(
        "SELECT c.relkind FROM pg_class c WHERE c.oid = to_regclass(%s)", (AGGREGATE,)).fetchone()
    recorded: frozenset[str] = frozenset()
    if conn.execute("SELECT to_regclass(%s) IS NOT NULL", (steps_table,)).fetchone()[0]:  # type: ignore[index]
        recorded = frozenset(r[0] for r in conn.execute(
            sql.SQL("SELECT step FROM {}").format(sql.Identifier(steps_table))).fetchall())
    if row is None:
        return Layout(view=view_row is not None and view_row[0] == "v", recorded=recorded,
                      schema_name=schema_name)
    version, ext_schema = row[0], row[1]
    hts = conn.execute("SELECT hypertable_name, compression_enabled FROM timescaledb_information.hypertables "
                       "WHERE hypertable_schema = current_schema()").fetchall()
    jobs = conn.execute("SELECT hypertable_name, proc_name, job_id FROM timescaledb_information.jobs "
                        "WHERE hypertable_schema = current_schema() ORDER BY job_id").fetchall()
    agg = conn.execute("SELECT materialized_only FROM timescaledb_information.continuous_aggregates "
                       "WHERE view_schema = current_schema() AND view_name = %s", (AGGREGATE,)).fetchone()
    return Layout(
        extension_schema=ext_schema, extension_version=version,
        hypertables=frozenset(h for h, _ in hts), compressed=frozenset(h for h, c in hts if c),
        jobs=frozenset((t, p) for t, p, _ in jobs), job_ids=tuple((t, j) for t, _, j in jobs),
        aggregate=agg is not None, aggregate_realtime=agg is not None and not agg[0],
        view=agg is None and view_row is not None and view_row[0] == "v",
        recorded=recorded, schema_name=schema_name,
    )


# -- steps: plain PostgreSQL -> TimescaleDB --------------------------------------------------------

def _fn(ext_schema: str, name: str) -> sql.Composable:
    return sql.SQL("{}.{}").format(sql.Identifier(ext_schema), sql.Identifier(name))


def extension_step(layout: Layout) -> Step:
    """Create the extension in a known schema (or adopt the one already installed)."""
    stmts: tuple[sql.Composable, ...] = ()
    if layout.extension_schema is None:
        stmts = (sql.SQL("CREATE EXTENSION IF NOT EXISTS timescaledb WITH SCHEMA {}").format(
            sql.Identifier(EXTENSION_SCHEMA)),)
    return Step(EXTENSION_STEP, "the timescaledb extension", stmts)


def hypertable_step(tbl: schema.Table, layout: Layout, ext_schema: str) -> Step:
    """Turn ``tbl`` into a compressed hypertable with its policies, keeping every row."""
    name, time = sql.Literal(tbl.name), sql.Literal(tbl.time_column)
    stmts: list[sql.Composable] = []
    if tbl.name not in layout.hypertables:
        stmts.append(sql.SQL("SELECT {}({}, {}({}), if_not_exists => TRUE, migrate_data => TRUE)").format(
            _fn(ext_schema, "create_hypertable"), name, _fn(ext_schema, "by_range"), time))
    if tbl.name not in layout.compressed:
        options = ["timescaledb.compress"]
        if "machine_id" in tbl.column_names:
            options.append("timescaledb.compress_segmentby = 'machine_id'")
        options.append(f"timescaledb.compress_orderby = '{tbl.time_column} DESC'")
        stmts.append(sql.SQL("ALTER TABLE {} SET (" + ", ".join(options) + ")").format(
            sql.Identifier(tbl.name)))
    stmts.append(sql.SQL("SELECT {}({}, INTERVAL {}, if_not_exists => TRUE)").format(
        _fn(ext_schema, "add_compression_policy"), name, sql.Literal(COMPRESS_AFTER)))
    if tbl.retention_days is not None:
        stmts.append(sql.SQL("SELECT {}({}, INTERVAL {}, if_not_exists => TRUE)").format(
            _fn(ext_schema, "add_retention_policy"), name, sql.Literal(f"{tbl.retention_days} days")))
    return Step(hypertable_step_name(tbl.name), f"hypertable {tbl.name}", tuple(stmts))


def aggregate_step(layout: Layout, ext_schema: str, hourly_sql: Callable[[str], str],
                   plain_view_sql: str) -> Step:
    """Replace the plain view by the continuous aggregate, refreshed over all stored data.

    Creating a continuous aggregate and refreshing it cannot run in a transaction block, so this
    step runs statement by statement; when one fails, ``undo`` puts the plain view back.
    """
    view = sql.Identifier(AGGREGATE)
    bucket = sql.SQL("{}(INTERVAL '1 hour', time)").format(_fn(ext_schema, "time_bucket"))
    select_sql = hourly_sql(bucket.as_string(None))
    stmts: list[sql.Composable] = []
    if not layout.aggregate:
        if layout.view:
            stmts.append(sql.SQL("DROP VIEW {}").format(view))
        stmts.append(sql.SQL(
            "CREATE MATERIALIZED VIEW {} WITH (timescaledb.continuous, "
            "timescaledb.materialized_only = false) AS {} WITH NO DATA").format(view, sql.SQL(select_sql)))
    elif not layout.aggregate_realtime:
        # Rows newer than the last refresh are aggregated at query time.
        stmts.append(sql.SQL("ALTER MATERIALIZED VIEW {} SET (timescaledb.materialized_only = false)")
                     .format(view))
    stmts.append(sql.SQL(
        "SELECT {}({}, start_offset => INTERVAL {}, end_offset => INTERVAL '1 hour', "
        "schedule_interval => INTERVAL '1 hour', if_not_exists => TRUE)").format(
        _fn(ext_schema, "add_continuous_aggregate_policy"), sql.Literal(AGGREGATE),
        sql.Literal(REFRESH_START_OFFSET)))
    # Everything stored so far (an upgraded warehouse has history below any refresh window).
    stmts.append(sql.SQL("CALL {}({}, NULL, NULL)").format(
        _fn(ext_schema, "refresh_continuous_aggregate"), sql.Literal(AGGREGATE)))
    return Step(AGGREGATE_STEP, f"continuous aggregate {AGGREGATE}", tuple(stmts), transactional=False,
                undo=None if layout.aggregate else _restore_plain_view(plain_view_sql))


def _restore_plain_view(plain_view_sql: str) -> Callable[[psycopg.Connection], str]:
    """Undo of a failed :func:`aggregate_step`: the aggregate (if it was created) goes, the plain
    view comes back. Never ``CREATE OR REPLACE`` over an aggregate."""
    def undo(conn: psycopg.Connection) -> str:
        agg = None
        catalog = conn.execute("SELECT to_regclass('timescaledb_information.continuous_aggregates') "
                               "IS NOT NULL").fetchone()
        if catalog and catalog[0]:
            agg = conn.execute("SELECT 1 FROM timescaledb_information.continuous_aggregates "
                               "WHERE view_schema = current_schema() AND view_name = %s",
                               (AGGREGATE,)).fetchone()
        if agg is not None:
            conn.execute(sql.SQL("DROP MATERIALIZED VIEW {}").format(sql.Identifier(AGGREGATE)))
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (AGGREGATE,)).fetchone()
        if not (exists and exists[0]):
            conn.execute(sql.SQL("CREATE VIEW {} AS {}").format(sql.Identifier(AGGREGATE),
                                                                sql.SQL(plain_view_sql)))
        return f"{AGGREGATE} is the plain view again"
    return undo


def to_timescale(layout: Layout, support: Support, *, hourly_sql: Callable[[str], str],
                 plain_view_sql: str) -> list[Step]:
    """The steps still missing for a complete TimescaleDB warehouse (re-running a recorded step
    whose objects are gone; recording, without statements, what is built but unrecorded)."""
    ext_schema = layout.extension_schema or support.schema or EXTENSION_SCHEMA
    steps = []
    if layout.extension_schema is None or EXTENSION_STEP not in layout.recorded:
        steps.append(extension_step(layout))
    for tbl in hypertables():
        name = hypertable_step_name(tbl.name)
        if not layout.hypertable_complete(tbl):
            steps.append(hypertable_step(tbl, layout, ext_schema))
        elif name not in layout.recorded:
            steps.append(Step(name, f"hypertable {tbl.name}", ()))
    if not layout.aggregate_complete or AGGREGATE_STEP not in layout.recorded:
        steps.append(aggregate_step(layout, ext_schema, hourly_sql, plain_view_sql))
    return steps


# -- steps: TimescaleDB -> plain PostgreSQL --------------------------------------------------------

def to_plain(layout: Layout, *, plain_view_sql: str) -> list[Step]:
    """The steps turning a TimescaleDB warehouse back into plain tables, keeping every row.

    Each hypertable is copied into a plain table of the canonical definition inside one
    transaction that locks it against writes, checks the row counts, drops the hypertable (its
    chunks and policies with it) and takes its name: a failure leaves the hypertable as it was.
    The continuous aggregate goes with ``production_events`` and becomes the plain view again.
    The extension itself stays installed (other schemas of the database may use it).
    """
    ext_schema = layout.extension_schema or EXTENSION_SCHEMA
    steps: list[Step] = []
    if layout.job_ids:
        # The policies go first, each in a transaction of its own: delete_job waits for a running
        # job, and a job deleted in the same transaction as another (or as the drop of its table)
        # can deadlock with that job's run. The hypertables without policies are still whole (and
        # `db init` with TimescaleDB puts the policies back).
        steps.append(Step("plain.policies", "remove the TimescaleDB policies", tuple(
            sql.SQL("SELECT {}({})").format(_fn(ext_schema, "delete_job"), sql.Literal(job_id))
            for _, job_id in layout.job_ids), transactional=False, record=False))
    for tbl in hypertables():
        if tbl.name not in layout.hypertables:
            continue
        forgets = [hypertable_step_name(tbl.name)]
        pre: list[sql.Composable] = []
        post: list[sql.Composable] = []
        if tbl.name == AGGREGATE_SOURCE and layout.aggregate:
            pre.append(sql.SQL("DROP MATERIALIZED VIEW {}").format(sql.Identifier(AGGREGATE)))
            post.append(sql.SQL("CREATE VIEW {} AS {}").format(sql.Identifier(AGGREGATE),
                                                               sql.SQL(plain_view_sql)))
            forgets.append(AGGREGATE_STEP)
        steps.append(Step(f"plain.{tbl.name}", f"plain table {tbl.name}",
                          (*pre, *copy_back(tbl), *post), forgets=tuple(forgets), record=False))
    if layout.aggregate and not any(s.name == f"plain.{AGGREGATE_SOURCE}" for s in steps):
        steps.append(Step(f"plain.{AGGREGATE}", f"plain view {AGGREGATE}", (
            sql.SQL("DROP MATERIALIZED VIEW {}").format(sql.Identifier(AGGREGATE)),
            sql.SQL("CREATE VIEW {} AS {}").format(sql.Identifier(AGGREGATE), sql.SQL(plain_view_sql)),
        ), forgets=(AGGREGATE_STEP,), record=False))
    if EXTENSION_STEP in layout.recorded:
        steps.append(Step("plain.extension", "forget the extension (left installed)", (),
                          forgets=(EXTENSION_STEP,), record=False))
    return steps


def copy_back(tbl: schema.Table) -> list[sql.Composable | Check]:
    """Statements copying hypertable ``tbl`` into a plain table that takes its name."""
    name = sql.Identifier(tbl.name)
    tmp_name = f"_wb_plain_{tbl.name}"
    tmp = sql.Identifier(tmp_name)
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in tbl.column_names)
    out: list[sql.Composable | Check] = [
        # Writers wait (readers do not) until the copy has taken the table's place.
        sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(name),
        sql.SQL(schema.create_table_sql(tbl, "postgres", name=tmp_name)),
        sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(tmp, cols, cols, name),
        Check(sql.SQL("SELECT (SELECT count(*) FROM {}) = (SELECT count(*) FROM {})").format(tmp, name),
              f"the plain copy of {tbl.name} does not hold every row of the hypertable"),
        sql.SQL("DROP TABLE {}").format(name),
        sql.SQL("ALTER TABLE {} RENAME TO {}").format(tmp, name),
        sql.SQL("ALTER TABLE {} RENAME CONSTRAINT {} TO {}").format(
            name, sql.Identifier(f"{tmp_name}_pkey"), sql.Identifier(f"{tbl.name}_pkey")),
    ]
    out += [sql.SQL(stmt) for stmt in schema.index_sql(tbl, "postgres")]
    return out


# -- keeping the aggregate current ---------------------------------------------------------------

def hour_window(start: dt.datetime, end: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The whole hour buckets covering ``[start, end]`` (a refresh must cover whole buckets)."""
    lo = start.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    hi = end.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    return lo, hi


def refresh_sql(ext_schema: str) -> sql.Composable:
    """``CALL refresh_continuous_aggregate`` of the aggregate over a window (two parameters)."""
    return sql.SQL("CALL {}({}::regclass, %s::timestamptz, %s::timestamptz)").format(
        _fn(ext_schema, "refresh_continuous_aggregate"), sql.Literal(AGGREGATE))
