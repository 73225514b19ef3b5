"""The canonical tables of the warehouse: names, columns, types, keys — and DDL for both engines.

This module is the single description of the data model (see DESIGN.md, "Canonical data model").
The stores, the simulator, the importers and the analytics all read it instead of repeating
column lists.

Conventions
-----------
* Time columns are ``timestamptz``: UTC in storage, converted to the plant time zone only for
  shift and day boundaries.
* Every fact row carries ``source`` and a deterministic ``event_id``: the MD5 (hex) of the
  table's *natural key* (see :func:`event_id_sql`), so a replay or a re-sync of the same event
  produces the same id and is ignored by the store.
* Dimension tables are keyed by their business key and are *upserted* (a later load of the same
  key updates the row); fact tables are keyed by ``event_id`` and a repeated event is *ignored*,
  except downtime events, whose reason code an operator may fill in after the fact.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa

from workbench.errors import SchemaError

ColumnType = Literal["text", "int", "bigint", "double", "bool", "timestamptz", "date", "json"]
OnConflict = Literal["ignore", "update"]
TableKind = Literal["dimension", "fact", "derived", "operational"]

_DUCKDB_TYPES: dict[str, str] = {
    "text": "VARCHAR",
    "int": "INTEGER",
    "bigint": "BIGINT",
    "double": "DOUBLE",
    "bool": "BOOLEAN",
    "timestamptz": "TIMESTAMPTZ",
    "date": "DATE",
    # JSON is kept as text in DuckDB: the json extension may need a download, which is not allowed.
    "json": "VARCHAR",
}
_POSTGRES_TYPES: dict[str, str] = {
    "text": "text",
    "int": "integer",
    "bigint": "bigint",
    "double": "double precision",
    "bool": "boolean",
    "timestamptz": "timestamptz",
    "date": "date",
    "json": "jsonb",
}
_ARROW_TYPES: dict[str, pa.DataType] = {
    "text": pa.string(),
    "int": pa.int32(),
    "bigint": pa.int64(),
    "double": pa.float64(),
    "bool": pa.bool_(),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "date": pa.date32(),
    "json": pa.string(),
}


@dataclass(frozen=True)
class Column:
    """One column of a canonical table."""

    name: str
    type: ColumnType
    nullable: bool = True
    doc: str = ""

    @property
    def arrow_type(self) -> pa.DataType:
        """The Arrow type the stores exchange this column as."""
        return _ARROW_TYPES[self.type]


@dataclass(frozen=True)
class Table:
    """A canonical table.

    Attributes
    ----------
    name : str
        Table name, the same on both engines.
    columns : tuple of Column
        Columns in storage order.
    key : tuple of str
        Primary key. Hypertables need the time column in every unique index, so time-series
        facts use ``(event_id, <time column>)``.
    natural_key : tuple of str
        Columns hashed into ``event_id`` (empty for tables keyed by a business key).
    time_column : str or None
        The column a hypertable is partitioned on and reads filter on.
    on_conflict : {"ignore", "update"}
        What a load does with a row whose key is already stored.
    retention_days : int or None
        TimescaleDB retention for raw time series; ``None`` keeps everything.
    hypertable : bool
        Whether the table becomes a hypertable when TimescaleDB is present.
    volatile : tuple of str
        Bookkeeping columns (e.g. ``computed_at``) that are updated with a changed row but do not
        by themselves make a row "changed": recomputing the same numbers is a no-op.
    """

    name: str
    kind: TableKind
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    natural_key: tuple[str, ...] = ()
    time_column: str | None = None
    on_conflict: OnConflict = "ignore"
    volatile: tuple[str, ...] = ()
    retention_days: int | None = None
    hypertable: bool = False
    doc: str = ""
    _index: dict[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = {c.name: c for c in self.columns}
        object.__setattr__(self, "_index", index)
        for name in (*self.key, *self.natural_key, *([self.time_column] if self.time_column else [])):
            if name not in index:
                raise SchemaError(f"table {self.name}: key column {name!r} is not a column")

    @property
    def column_names(self) -> list[str]:
        """Column names in storage order."""
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        """Return the column called ``name`` or raise :class:`SchemaError`."""
        try:
            return self._index[name]
        except KeyError:
            raise SchemaError(f"table {self.name} has no column {name!r}") from None

    @property
    def required(self) -> list[str]:
        """Columns that may not be null."""
        return [c.name for c in self.columns if not c.nullable]

    @property
    def arrow_schema(self) -> pa.Schema:
        """The Arrow schema of the table (what reads return and writes accept)."""
        return pa.schema([pa.field(c.name, c.arrow_type, nullable=c.nullable) for c in self.columns])

    @property
    def has_event_id(self) -> bool:
        """Whether rows are identified by a hashed ``event_id``."""
        return bool(self.natural_key)


def _c(name: str, type_: ColumnType, nullable: bool = True, doc: str = "") -> Column:
    return Column(name, type_, nullable, doc)


def _fact_tail() -> tuple[Column, ...]:
    return (_c("source", "text", False, "system the row came from"),
            _c("event_id", "text", False, "md5 of the natural key; see schema.event_id_sql"))


TABLES: dict[str, Table] = {}


def _register(table: Table) -> Table:
    TABLES[table.name] = table
    return table


_register(Table(
    "machines", "dimension",
    (_c("machine_id", "text", False), _c("name", "text"), _c("line", "text"), _c("area", "text"),
     _c("site", "text"), _c("machine_type", "text"),
     _c("ideal_cycle_time_s", "double", doc="machine default ideal cycle time; part_rates override it"),
     _c("source", "text", False)),
    key=("machine_id",), on_conflict="update", doc="one row per machine"))

_register(Table(
    "parts", "dimension",
    (_c("part_number", "text", False), _c("description", "text"), _c("part_family", "text"),
     _c("source", "text", False)),
    key=("part_number",), on_conflict="update", doc="part master (families for yield roll-ups)"))

_register(Table(
    "bom", "dimension",
    (_c("parent_part", "text", False), _c("component_part", "text", False),
     _c("qty_per", "double", False, "component quantity per parent unit"), _c("uom", "text"),
     _c("source", "text", False)),
    key=("parent_part", "component_part"), on_conflict="update",
    doc="bill of materials (ERP, read-only source)"))

_register(Table(
    "part_rates", "dimension",
    (_c("machine_id", "text", False), _c("part_number", "text", False),
     _c("ideal_cycle_time_s", "double", False), _c("source", "text", False)),
    key=("machine_id", "part_number"), on_conflict="update",
    doc="product-specific ideal cycle time per machine"))

_register(Table(
    "shift_calendar", "dimension",
    (_c("site", "text", False), _c("shift_date", "date", False, "plant-local production date"),
     _c("shift", "text", False), _c("time_start", "timestamptz", False),
     _c("time_end", "timestamptz", False), _c("source", "text", False)),
    key=("site", "shift_date", "shift"), time_column="time_start", on_conflict="update",
    doc="one row per scheduled shift occurrence (DST-correct because stored as instants)"))

_register(Table(
    "planned_stops", "fact",
    (_c("site", "text", False), _c("line", "text", doc="null: every line of the site"),
     _c("machine_id", "text", doc="null: every machine of the line/site"),
     _c("time_start", "timestamptz", False), _c("time_end", "timestamptz", False),
     _c("kind", "text", False, "break / no_demand / maintenance"),
     _c("reason_code", "text", doc="taxonomy code for no demand and maintenance; null for breaks"),
     _c("notes", "text"), *_fact_tail()),
    key=("event_id",), natural_key=("source", "site", "line", "machine_id", "time_start", "kind"),
    time_column="time_start", on_conflict="update",
    doc="planned-stop windows inside shifts: breaks, no demand, preventive maintenance"))

_register(Table(
    "reason_codes", "dimension",
    (_c("code", "text", False), _c("category", "text", False), _c("subcode", "text", False),
     _c("planned", "bool", False), _c("description", "text"), _c("source", "text", False)),
    key=("code",), on_conflict="update", doc="downtime taxonomy; planned is data, not code"))

_register(Table(
    "machine_telemetry", "fact",
    (_c("time", "timestamptz", False), _c("machine_id", "text", False), _c("metric", "text", False),
     _c("value", "double"), _c("unit", "text"), _c("quality", "text", doc="good / uncertain / bad"),
     *_fact_tail()),
    key=("event_id", "time"), natural_key=("source", "machine_id", "metric", "time"),
    time_column="time", retention_days=90, hypertable=True, doc="one sensor or PLC tag reading"))

_register(Table(
    "production_events", "fact",
    (_c("time", "timestamptz", False), _c("machine_id", "text", False),
     _c("event_type", "text", False, "cycle / count / state / alarm"), _c("part_number", "text"),
     _c("work_order", "text"), _c("cycle_time_ms", "double"),
     _c("good_count", "int", doc="increment, not the cumulative counter"), _c("reject_count", "int"),
     _c("reject_reason", "text"), _c("machine_state", "text"), _c("fault_code", "text"),
     _c("operator_id", "text"), *_fact_tail()),
    key=("event_id", "time"), natural_key=("source", "machine_id", "event_type", "time"),
    time_column="time", retention_days=365, hypertable=True))

_register(Table(
    "machine_states", "fact",
    (_c("machine_id", "text", False), _c("time_start", "timestamptz", False),
     _c("time_end", "timestamptz", False),
     _c("state", "text", False, "running / idle / down / setup / planned_stop / no_data"),
     _c("fault_code", "text"), *_fact_tail()),
    key=("event_id", "time_start"), natural_key=("source", "machine_id", "time_start"),
    time_column="time_start", hypertable=True, doc="contiguous state intervals per machine"))

_register(Table(
    "downtime_events", "fact",
    (_c("machine_id", "text", False), _c("time_start", "timestamptz", False),
     _c("time_end", "timestamptz", False), _c("duration_min", "double", False),
     _c("reason_code", "text", doc="as entered by the operator; may be blank"),
     _c("reason_category", "text"), _c("planned", "bool"), _c("shift", "text"),
     _c("work_order", "text"), _c("operator_id", "text"), _c("fault_code", "text"), _c("notes", "text"),
     _c("predicted_category", "text"), _c("predicted_confidence", "double"), *_fact_tail()),
    key=("event_id", "time_start"), natural_key=("source", "machine_id", "time_start"),
    time_column="time_start", on_conflict="update", hypertable=True,
    doc="one stop; reason codes may be filled in later, so a re-load updates the row"))

_register(Table(
    "scrap_events", "fact",
    (_c("time", "timestamptz", False), _c("machine_id", "text", False), _c("part_number", "text"),
     _c("work_order", "text"), _c("quantity", "int", False), _c("scrap_reason", "text"),
     _c("scrap_category", "text"), _c("material_cost", "double"), _c("labor_cost", "double"),
     *_fact_tail()),
    key=("event_id", "time"), natural_key=("source", "machine_id", "time", "part_number", "scrap_reason"),
    time_column="time", hypertable=True))

_register(Table(
    "work_orders", "dimension",
    (_c("work_order", "text", False), _c("part_number", "text", False), _c("machine_id", "text"),
     _c("order_qty", "int", False), _c("completed_qty", "int"), _c("scrap_qty", "int"),
     _c("material_cost_per_unit", "double"), _c("labor_rate_per_hour", "double"),
     _c("customer", "text"), _c("due_date", "date"), _c("status", "text"),
     _c("released_at", "timestamptz"), _c("closed_at", "timestamptz"), _c("source", "text", False)),
    key=("work_order",), on_conflict="update", doc="ERP work orders (read-only source)"))

_register(Table(
    "quality_measurements", "fact",
    (_c("time", "timestamptz", False), _c("machine_id", "text", False),
     _c("part_number", "text", False), _c("characteristic", "text", False),
     _c("subgroup_id", "text", False), _c("sample_no", "int", False, "position within the subgroup"),
     _c("value", "double", False), _c("unit", "text"), *_fact_tail()),
    key=("event_id", "time"),
    natural_key=("source", "machine_id", "part_number", "characteristic", "subgroup_id", "sample_no"),
    time_column="time", hypertable=True, doc="variables data for SPC"))

_register(Table(
    "characteristics", "dimension",
    (_c("part_number", "text", False), _c("characteristic", "text", False), _c("unit", "text"),
     _c("lsl", "double"), _c("usl", "double"), _c("nominal", "double"),
     _c("chart_type", "text", doc="xbar_r / xbar_s / imr / p / np / c / u"),
     _c("subgroup_size", "int"), _c("rules", "text", doc="rule set, e.g. 'western_electric'"),
     _c("engineering_low", "double"), _c("engineering_high", "double"),
     _c("alarm_low_low", "double"), _c("alarm_low", "double"), _c("alarm_high", "double"),
     _c("alarm_high_high", "double"), _c("operating_low", "double"), _c("operating_high", "double"),
     _c("source", "text", False)),
    key=("part_number", "characteristic"), on_conflict="update",
    doc="specification and control configuration of a measured characteristic"))

_register(Table(
    "inspections", "fact",
    (_c("time", "timestamptz", False), _c("lot_id", "text", False), _c("part_number", "text"),
     _c("work_order", "text"), _c("lot_size", "int", False), _c("aql", "double"), _c("level", "text"),
     _c("inspection_type", "text", doc="normal / tightened / reduced"), _c("sample_size", "int"),
     _c("defects", "int"), _c("decision", "text", doc="accept / reject"), *_fact_tail()),
    key=("event_id",), natural_key=("source", "lot_id"), time_column="time", on_conflict="update",
    doc="lot acceptance sampling results"))

_register(Table(
    "oee_hourly", "derived",
    (_c("hour", "timestamptz", False), _c("machine_id", "text", False),
     _c("planned_min", "double"), _c("run_min", "double"), _c("no_data_min", "double"),
     _c("availability", "double"), _c("performance", "double"), _c("quality", "double"),
     _c("oee", "double"), _c("good", "bigint"), _c("rejects", "bigint"),
     _c("computed_at", "timestamptz")),
    key=("machine_id", "hour"), time_column="hour", on_conflict="update", volatile=("computed_at",),
    doc="hourly OEE roll-up written by workbench.oee"))

_register(Table(
    "ml_anomalies", "derived",
    (_c("anomaly_id", "text", False), _c("machine_id", "text"), _c("time_start", "timestamptz", False),
     _c("time_end", "timestamptz"), _c("detector", "text", False), _c("target", "text"),
     _c("score", "double"), _c("severity", "text"), _c("model_version", "text"),
     _c("created_at", "timestamptz"),
     _c("detected_at", "timestamptz", doc="when a live run raised it (causal detection)"),
     _c("likely_cause", "text", doc="the most likely cause, or what to check"),
     _c("hypotheses", "json", doc="causes ranked by evidence: [[cause, evidence, sentence], …]"),
     _c("detail", "text")),
    key=("anomaly_id",), time_column="time_start", on_conflict="update"))

_register(Table(
    "ml_sections", "derived",
    (_c("section", "text", False, "ml_uncoded_stops, ml_anomalies or ml_week_ahead"),
     _c("day_start", "timestamptz", False), _c("day_end", "timestamptz", False),
     _c("params", "text", False, "every setting the section depends on, canonical JSON"),
     _c("inputs", "text", False, "fingerprint of the rows it was computed from"),
     _c("status", "text"), _c("created_at", "timestamptz"),
     _c("payload", "json", doc="the whole section (workbench.ml.records.MLSection.to_payload)")),
    key=("section", "day_start", "params"), time_column="day_start", on_conflict="update",
    doc="the report's model sections computed ahead by the morning model run (workbench.ml.stored)"))

_register(Table(
    "ml_anomaly_reviews", "operational",
    (_c("anomaly_id", "text", False, "the reviewed ml_anomalies row"),
     _c("detector", "text", False, "its detector (copied: the morning run rewrites ml_anomalies)"),
     _c("anomaly_start", "timestamptz", False, "its time_start"),
     _c("verdict", "text", False, "confirmed or false_alarm"),
     _c("reviewed_at", "timestamptz", False), _c("reviewed_by", "text"), _c("note", "text")),
    key=("anomaly_id",), time_column="anomaly_start", on_conflict="update",
    doc="an analyst's verdict on a stored anomaly (a later one replaces it): the detectors' false-alarm "
        "rate (workbench.ml.reviews)"))

_register(Table(
    "ml_predictions", "derived",
    (_c("target_table", "text", False), _c("target_id", "text", False), _c("model_name", "text", False),
     _c("model_version", "text", False), _c("predicted", "text"), _c("confidence", "double"),
     _c("created_at", "timestamptz")),
    key=("target_table", "target_id", "model_name", "model_version"), on_conflict="update"))

_register(Table(
    "alerts", "operational",
    (_c("alert_id", "text", False), _c("rule", "text", False), _c("machine_id", "text"),
     _c("severity", "text"), _c("status", "text"), _c("message", "text"), _c("dedupe_key", "text"),
     _c("time_start", "timestamptz", False), _c("time_end", "timestamptz"),
     _c("created_at", "timestamptz"), _c("updated_at", "timestamptz")),
    key=("alert_id",), time_column="time_start", on_conflict="update"))

_register(Table(
    "dead_letters", "operational",
    (_c("dead_letter_id", "text", False), _c("received_at", "timestamptz", False),
     _c("source", "text", False), _c("target_table", "text"), _c("location", "text"),
     _c("reason", "text", False), _c("payload", "json")),
    key=("dead_letter_id",), time_column="received_at", on_conflict="ignore",
    doc="rows rejected by ingest, with the reason and where they came from"))

_register(Table(
    "sync_runs", "operational",
    (_c("run_id", "text", False), _c("source", "text", False), _c("started_at", "timestamptz", False),
     _c("finished_at", "timestamptz"), _c("status", "text", False, "ok / failed"),
     _c("fetched", "bigint"), _c("written", "bigint"), _c("unchanged", "bigint"),
     _c("dead_lettered", "bigint"), _c("entities", "json", doc="counts per entity"),
     _c("error", "text", doc="why the run failed")),
    key=("run_id",), time_column="started_at", on_conflict="update",
    doc="one row per MachineMetrics / ERP sync run: what it fetched and wrote, or why it failed"))

_register(Table(
    "ingest_watermarks", "operational",
    (_c("source", "text", False), _c("stream", "text", False), _c("watermark", "timestamptz"),
     _c("updated_at", "timestamptz")),
    key=("source", "stream"), on_conflict="update"))


def table(name: str) -> Table:
    """Return the canonical table called ``name``.

    Raises
    ------
    SchemaError
        If there is no such table; the message lists the known tables.
    """
    try:
        return TABLES[name]
    except KeyError:
        raise SchemaError(f"unknown table {name!r}; known tables: {', '.join(TABLES)}") from None


# ---------------------------------------------------------------------------------------------
# DDL


def _column_ddl(col: Column, types: Mapping[str, str]) -> str:
    return f"{col.name} {types[col.type]}" + ("" if col.nullable else " NOT NULL")


def create_table_sql(tbl: Table, engine: Literal["duckdb", "postgres"], *, name: str | None = None) -> str:
    """Return the idempotent ``CREATE TABLE IF NOT EXISTS`` statement of ``tbl`` for ``engine``."""
    types = _DUCKDB_TYPES if engine == "duckdb" else _POSTGRES_TYPES
    cols = ",\n  ".join(_column_ddl(c, types) for c in tbl.columns)
    return (f"CREATE TABLE IF NOT EXISTS {name or tbl.name} (\n  {cols},\n"
            f"  PRIMARY KEY ({', '.join(tbl.key)})\n)")


def index_sql(tbl: Table, engine: Literal["duckdb", "postgres"]) -> list[str]:
    """Secondary indexes for the common read pattern (one machine, a time range).

    DuckDB reads by zone maps and needs no secondary index (ART indexes only slow its loads).
    """
    if engine == "duckdb" or not tbl.time_column:
        return []
    cols = [c for c in ("machine_id",) if c in tbl.column_names] + [tbl.time_column]
    return [f"CREATE INDEX IF NOT EXISTS {tbl.name}_{'_'.join(cols)}_idx ON {tbl.name} ({', '.join(cols)})"]


def schema_version_sql() -> str:
    """DDL of the table recording which schema versions were applied."""
    return ("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
            "applied_at TIMESTAMPTZ NOT NULL)")


# ---------------------------------------------------------------------------------------------
# schema versions


Engine = Literal["duckdb", "postgres"]


@dataclass(frozen=True)
class Migration:
    """One change of the canonical schema, applied to warehouses created before it.

    A new warehouse is created from the table definitions above (which already hold every change)
    and records every version at once; an existing one runs the migrations after its version,
    each in a transaction of its own that also records it (see ``workbench.store.migrations``).

    Attributes
    ----------
    version : int
        Consecutive, starting at 1.
    description : str
        What changes, for people (it names the step when it fails).
    statements : callable
        ``statements(engine)`` returns the DDL for ``"duckdb"`` or ``"postgres"``. Write it so it
        can run twice (``IF NOT EXISTS``).
    """

    version: int
    description: str
    statements: Callable[[Engine], list[str]]


def add_column(table_name: str, column: str) -> Callable[[Engine], list[str]]:
    """The DDL adding ``table_name.column``, typed from its definition in :data:`TABLES`.

    To add a column: add it to the table above (nullable), then append
    ``Migration(<next>, "<table>.<column>", add_column("<table>", "<column>"))`` to
    :data:`MIGRATIONS`.
    """
    col = table(table_name).column(column)
    if not col.nullable:
        raise SchemaError(f"{table_name}.{column}: a column added to existing rows must be nullable")

    def statements(engine: Engine) -> list[str]:
        types = _DUCKDB_TYPES if engine == "duckdb" else _POSTGRES_TYPES
        return [f"ALTER TABLE {table_name} ADD COLUMN IF NOT EXISTS {_column_ddl(col, types)}"]

    return statements


#: The canonical schema's history, oldest first. Version 1 is the schema as first released.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "the canonical tables", lambda engine: []),
    Migration(2, "ml_anomalies: detected_at, likely_cause, hypotheses, detail",
              lambda engine: [stmt for col in ("detected_at", "likely_cause", "hypotheses", "detail")
                              for stmt in add_column("ml_anomalies", col)(engine)]),
    # The table itself is created by init_schema (as every table missing from an older warehouse);
    # the version tells a writer of an older warehouse to run `workbench db init` first.
    Migration(3, "ml_sections: the report's model sections computed ahead", lambda engine: []),
    Migration(4, "ml_anomaly_reviews: analysts' verdicts on anomalies", lambda engine: []),
)

#: The current schema version (the last migration's).
SCHEMA_VERSION = MIGRATIONS[-1].version


# ---------------------------------------------------------------------------------------------
# event ids


def event_id_sql(tbl: Table, *, relation: str | None = None) -> str:
    """The SQL (DuckDB dialect) expression computing ``event_id`` from the natural key.

    The id is ``md5`` of the table name and the key values joined with ``|``; timestamps enter as
    integer microseconds since the epoch (independent of any session time zone), nulls as empty
    strings. This expression *is* the definition of the id: every writer computes it through
    :func:`with_event_ids`, so the same event always gets the same id.
    """
    prefix = f"{relation}." if relation else ""
    parts = [f"'{tbl.name}'"]
    for name in tbl.natural_key:
        col = tbl.column(name)
        ref = f'{prefix}"{name}"'
        if col.type == "timestamptz":
            parts.append(f"coalesce(CAST(epoch_us({ref}) AS VARCHAR), '')")
        else:
            parts.append(f"coalesce(CAST({ref} AS VARCHAR), '')")
    return f"md5(concat_ws('|', {', '.join(parts)}))"


def conform(tbl: Table, data: pa.Table, *, where: str = "input") -> pa.Table:
    """Return ``data`` with exactly the columns of ``tbl``, in order, cast to the canonical types.

    Missing nullable columns (and a missing ``event_id``) are added as nulls; a missing required
    column, an unknown column or a value that cannot be cast raises :class:`SchemaError`.
    """
    names = set(data.column_names)
    unknown = sorted(names - set(tbl.column_names))
    if unknown:
        raise SchemaError(f"{where}: table {tbl.name} has no column(s) {', '.join(unknown)}")
    missing = [c for c in tbl.required if c not in names and not (c == "event_id" and tbl.has_event_id)]
    if missing:
        raise SchemaError(f"{where}: table {tbl.name} needs column(s) {', '.join(missing)}")
    arrays = []
    for col in tbl.columns:
        if col.name in names:
            arr = data.column(col.name)
            if arr.type != col.arrow_type:
                arr = _cast(arr, col, tbl, where)
        else:
            arr = pa.nulls(data.num_rows, col.arrow_type)
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=pa.schema(
        [pa.field(c.name, c.arrow_type) for c in tbl.columns]))


def _cast(arr: pa.ChunkedArray, col: Column, tbl: Table, where: str) -> pa.ChunkedArray:
    target = col.arrow_type
    if col.type == "timestamptz":
        if not pa.types.is_timestamp(arr.type):
            raise SchemaError(f"{where}: {tbl.name}.{col.name} must be a timestamp, got {arr.type}")
        if arr.type.tz is None:
            raise SchemaError(f"{where}: {tbl.name}.{col.name} has timestamps without a time zone; "
                              "give them a zone (UTC or the plant's) before loading")
    try:
        return arr.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SchemaError(f"{where}: {tbl.name}.{col.name} cannot be read as {col.type}: {exc}") from None


_ids = threading.local()


def _id_connection():
    # One in-memory DuckDB per thread: a streaming collector computes ids several times a second,
    # and opening a connection costs more than hashing a batch.
    con = getattr(_ids, "con", None)
    if con is None:
        import duckdb  # local: schema must stay importable without touching an engine

        con = _ids.con = duckdb.connect()
    return con


def with_event_ids(tbl: Table, data: pa.Table) -> pa.Table:
    """Fill ``event_id`` (where null or absent) from the natural key; return the conformed table."""
    data = conform(tbl, data)
    if not tbl.has_event_id or data.num_rows == 0:
        return data
    ids_missing = data.column("event_id").null_count
    if ids_missing == 0:
        return data
    con = _id_connection()
    try:
        con.register("_rows", data)
        ids = con.sql(
            f"SELECT coalesce(event_id, {event_id_sql(tbl)}) AS event_id FROM _rows"
        ).to_arrow_table()
    finally:
        con.unregister("_rows")
    idx = data.column_names.index("event_id")
    return data.set_column(idx, "event_id", ids.column("event_id").cast(pa.string()))


def tables(kinds: Iterable[TableKind] | None = None) -> list[Table]:
    """All canonical tables, optionally only those of the given kinds, in creation order."""
    wanted = set(kinds) if kinds is not None else None
    return [t for t in TABLES.values() if wanted is None or t.kind in wanted]
