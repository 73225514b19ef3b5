"""The ERP: work orders, the part master and the bill of materials — read-only, by construction.

Two adapters read the same entities:

* **SQL** (:class:`SqlErp`): a PostgreSQL connection opened read-only twice over — the session
  runs with ``default_transaction_read_only=on`` and psycopg's ``read_only`` — and, in a plant, a
  database role that has SELECT and nothing else. Each entity is read by **one query**, composed
  from the mapping file with :mod:`psycopg.sql` (table and column names as quoted identifiers,
  never pasted text) and with every value a bound parameter::

      SELECT <mapped columns> FROM <schema>.<table>
      WHERE (<modified>, <key…>) > (%s, %s…)        -- keyset: where the last page ended
      ORDER BY <modified>, <key…> LIMIT %s

  The first page of an incremental run uses ``WHERE <modified> > %s`` (the watermark minus the
  overlap); a first load reads everything.
* **REST** (:class:`RestErp`): ``GET <rest_path>?modified_after=…&page=…&page_size=…`` with a
  bearer key, answering ``{"data": [...], "next_page": n | null}`` with the same column names.

The mapping (``pipelines/plant/erp.yaml``, see :func:`load_mapping`) names, per entity, the ERP
table, its key, its last-modified column and which ERP column fills which warehouse column; a
plant adapts that file, not code. Each entity is a stream whose watermark is the newest
last-modified time stored; a changed work order (more parts completed, closed) is re-read and
updated, an unchanged one is left alone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from workbench import schema, yamlconf
from workbench.errors import ConfigError
from workbench.ingest.stream import dead_letter
from workbench.sources.base import item_text, now_ms
from workbench.sources.http import JsonApi, SourceUnreachable
from workbench.sources.records import RecordError, as_count, as_date, as_number, as_text, as_time
from workbench.sources.sync import Unit

SOURCE = "erp"
#: Entities the ERP sync knows: entity → canonical table.
ENTITIES = {"work_orders": "work_orders", "parts": "parts", "bom": "bom"}
_ENTITY_KEYS = {"sql_table", "rest_path", "key", "modified", "columns", "values"}
_CONVERT = {
    "text": as_text,
    "int": as_count,
    "bigint": as_count,
    "double": as_number,
    "date": as_date,
    "timestamptz": as_time,
}


@dataclass(frozen=True)
class EntityMap:
    """How one entity is read from the ERP (one block of the mapping file)."""

    name: str
    table: str
    sql_table: tuple[str, ...]
    rest_path: str | None
    key: tuple[str, ...]
    modified: str
    columns: dict[str, str]
    values: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def erp_columns(self) -> list[str]:
        """ERP columns read: the mapped ones, the key and the last-modified column, once each."""
        out: list[str] = []
        for c in (*self.columns.values(), *self.key, self.modified):
            if c not in out:
                out.append(c)
        return out


@dataclass(frozen=True)
class ErpMapping:
    """The whole mapping file."""

    path: Path
    entities: dict[str, EntityMap]


def _identifier_parts(where: str, text: Any, *, parts: tuple[int, ...] = (1,)) -> tuple[str, ...]:
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{where}: expected a name, got {text!r}")
    found = tuple(p.strip() for p in text.split("."))
    if len(found) not in parts or not all(found):
        raise ConfigError(f"{where}: {text!r} is not a {'schema.table' if 2 in parts else 'column'} name")
    return found


def load_mapping(path: Path) -> ErpMapping:
    """Read and check the ERP mapping file (every error names file and line).

    Example::

        entities:
          work_orders:
            sql_table: erp.job_header        # schema.table (or table)
            rest_path: /v1/erp/job_header    # for the REST adapter
            key: [job_num]
            modified: last_modified          # when the ERP last changed the row
            columns:                         # warehouse column: ERP column
              work_order: job_num
              part_number: part_num
              order_qty: prod_qty
            values:                          # optional: ERP code → warehouse value
              status: {R: released, A: in_progress, C: closed}

    Raises
    ------
    ConfigError
        Unknown entity or key, a warehouse column that does not exist or is required and not
        mapped, a name that is not a plain identifier.
    """
    data = yamlconf.load(path)
    if not isinstance(data, dict) or not isinstance(data.get("entities"), dict):
        raise ConfigError(f"{path}: expected a mapping with an 'entities' block")
    blocks = data["entities"]
    entities: dict[str, EntityMap] = {}
    for name, block in blocks.items():
        where = f"{path}:{blocks.line_of(name)}"
        if name not in ENTITIES:
            raise ConfigError(f"{where}: unknown entity {name!r}; known: {', '.join(ENTITIES)}")
        if not isinstance(block, dict):
            raise ConfigError(f"{where}: entity {name} must be a mapping")
        extra = sorted(set(block) - _ENTITY_KEYS)
        if extra:
            raise ConfigError(
                f"{path}:{block.line_of(extra[0])}: unknown key {extra[0]!r} in {name}; "
                f"allowed: {', '.join(sorted(_ENTITY_KEYS))}"
            )
        for need in ("sql_table", "key", "modified", "columns"):
            if need not in block:
                raise ConfigError(f"{where}: entity {name} needs {need!r}")
        tbl = schema.table(ENTITIES[name])
        cols = block["columns"]
        if not isinstance(cols, dict):
            raise ConfigError(
                f"{path}:{block.line_of('columns')}: columns must map warehouse column: ERP column"
            )
        columns: dict[str, str] = {}
        for target, erp_col in cols.items():
            at = f"{path}:{cols.line_of(target)}"
            if target not in tbl.column_names or target == "source":
                raise ConfigError(
                    f"{at}: {tbl.name} has no column {target!r}; columns: "
                    f"{', '.join(c for c in tbl.column_names if c != 'source')}"
                )
            columns[target] = _identifier_parts(at, erp_col)[0]
        missing = [c for c in tbl.required if c not in columns and c != "source"]
        if missing:
            raise ConfigError(
                f"{path}:{block.line_of('columns')}: {name} must map {', '.join(missing)} "
                f"(required in {tbl.name})"
            )
        key = block["key"]
        if isinstance(key, str):
            key = [key]
        if not isinstance(key, list) or not key:
            raise ConfigError(f"{path}:{block.line_of('key')}: key must be a column or a list of columns")
        values = block.get("values") or {}
        if not isinstance(values, dict) or any(
            k not in columns or not isinstance(v, dict) for k, v in values.items()
        ):
            raise ConfigError(
                f"{path}:{block.line_of('values')}: values must map a mapped warehouse column "
                "to {ERP code: warehouse value}"
            )
        rest = block.get("rest_path")
        if rest is not None and (not isinstance(rest, str) or not rest.startswith("/")):
            raise ConfigError(
                f"{path}:{block.line_of('rest_path')}: rest_path must start with /, got {rest!r}"
            )
        entities[name] = EntityMap(
            name=name,
            table=tbl.name,
            sql_table=_identifier_parts(
                f"{path}:{block.line_of('sql_table')}", block["sql_table"], parts=(1, 2)
            ),
            rest_path=rest,
            key=tuple(_identifier_parts(f"{path}:{block.line_of('key')}", k)[0] for k in key),
            modified=_identifier_parts(f"{path}:{block.line_of('modified')}", block["modified"])[0],
            columns=columns,
            values={k: {str(a): str(b) for a, b in v.items()} for k, v in values.items()},
        )
    if not entities:
        raise ConfigError(f"{path}: no entities")
    return ErpMapping(Path(path), entities)


# -- adapters -------------------------------------------------------------------------------------


class SqlErp:
    """The ERP's PostgreSQL, read-only (see the module docstring).

    Parameters
    ----------
    url : str
        ``postgresql://reader:…@erp-host/erp`` (a role with SELECT only).
    mapping : ErpMapping
    connect_timeout_s : float
    """

    def __init__(self, url: str, mapping: ErpMapping, *, connect_timeout_s: float = 10.0) -> None:
        self.url = url
        self.mapping = mapping
        self.connect_timeout_s = connect_timeout_s

    def connect(self):
        """A new read-only connection (the session and every transaction in it).

        Raises
        ------
        SourceUnreachable
            When the ERP database cannot be reached (the message leaves the password out).
        """
        import psycopg

        try:
            conn = psycopg.connect(
                self.url,
                connect_timeout=int(self.connect_timeout_s),
                options="-c default_transaction_read_only=on",
            )
        except psycopg.Error as exc:
            raise SourceUnreachable(
                f"{SOURCE}: the ERP database cannot be reached: "
                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc}"
            ) from None
        conn.read_only = True
        return conn

    @staticmethod
    def query(entity: EntityMap, *, after: bool, keyset: bool):
        """The entity's one parameterized query (a :class:`psycopg.sql.Composed`).

        Parameters: ``after`` adds ``<modified> > %s``; ``keyset`` adds
        ``(<modified>, <key…>) > (%s, …)`` instead; the last parameter is the page size.
        """
        from psycopg import sql

        cols = sql.SQL(", ").join(sql.Identifier(c) for c in entity.erp_columns)
        order = [sql.Identifier(entity.modified), *(sql.Identifier(k) for k in entity.key)]
        where = sql.SQL("")
        if keyset:
            where = sql.SQL(" WHERE ({}) > ({})").format(
                sql.SQL(", ").join(order), sql.SQL(", ").join(sql.Placeholder() for _ in order)
            )
        elif after:
            where = sql.SQL(" WHERE {} > {}").format(sql.Identifier(entity.modified), sql.Placeholder())
        return sql.SQL("SELECT {} FROM {}{} ORDER BY {} LIMIT {}").format(
            cols, sql.Identifier(*entity.sql_table), where, sql.SQL(", ").join(order), sql.Placeholder()
        )

    def fetch(self, entity: EntityMap, after: dt.datetime | None, *, page_size: int) -> Iterator[list[dict]]:
        """Pages of rows (ERP column → value) modified after ``after`` (``None``: all), oldest first."""
        import psycopg
        from psycopg.rows import dict_row

        with self.connect() as conn, conn.cursor(row_factory=dict_row) as cur:
            last: tuple | None = None
            while True:
                try:
                    if last is not None:
                        cur.execute(self.query(entity, after=False, keyset=True), [*last, page_size])
                    elif after is not None:
                        cur.execute(self.query(entity, after=True, keyset=False), [after, page_size])
                    else:
                        cur.execute(self.query(entity, after=False, keyset=False), [page_size])
                    rows = cur.fetchall()
                except psycopg.Error as exc:
                    raise SourceUnreachable(
                        f"{SOURCE}: reading {'.'.join(entity.sql_table)} failed: "
                        f"{str(exc).strip().splitlines()[0]}"
                    ) from None
                if rows:
                    yield rows
                if len(rows) < page_size:
                    return
                tail = rows[-1]
                last = (tail[entity.modified], *(tail[k] for k in entity.key))


class RestErp:
    """The ERP's REST API (see the module docstring).

    Pages are numbered, as the API offers them. An API without a snapshot can shift its pages
    when a row changes while a run pages through: a row changed meanwhile moves to the end and is
    read there, but the row that slid back over the page boundary is not read by this run. The
    SQL adapter has no such gap (keyset pagination); with REST, keep runs short (a small
    ``page_size`` is not the cure — fewer, larger pages are) and run a back-fill
    (``workbench sync erp --since …``) after a mass change in the ERP.
    """

    def __init__(self, api: JsonApi, mapping: ErpMapping) -> None:
        self.api = api
        self.mapping = mapping

    def fetch(self, entity: EntityMap, after: dt.datetime | None, *, page_size: int) -> Iterator[list[dict]]:
        """Pages of rows modified after ``after`` (``None``: all), oldest first."""
        if not entity.rest_path:
            raise SourceUnreachable(f"{SOURCE}: entity {entity.name} has no rest_path in {self.mapping.path}")
        page = 1
        params: dict[str, Any] = {"page_size": page_size}
        if after is not None:
            params["modified_after"] = after.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        while True:
            body = self.api.get(entity.rest_path, {**params, "page": page})
            if not isinstance(body, dict) or not isinstance(body.get("data"), list):
                raise SourceUnreachable(
                    f"{SOURCE}: GET {self.api.where(entity.rest_path, params)} page {page} "
                    f"is not a page: {item_text(body)[:120]}"
                )
            if body["data"]:
                yield body["data"]
            nxt = body.get("next_page")
            if nxt is None or not body["data"]:
                return
            if not isinstance(nxt, int) or nxt <= page:
                raise SourceUnreachable(f"{SOURCE}: next_page {nxt!r} after page {page} would not advance")
            page = nxt


# -- rows -----------------------------------------------------------------------------------------


def canonical_row(entity: EntityMap, record: Any) -> tuple[dict[str, Any], dt.datetime]:
    """The warehouse row of one ERP record, and the record's last-modified time.

    Raises
    ------
    RecordError
        Naming the ERP column whose value cannot be read.
    """
    if not isinstance(record, dict):
        raise RecordError("record", f"expected an object, got {item_text(record)[:60]}")
    tbl = schema.table(entity.table)
    row: dict[str, Any] = {"source": SOURCE}
    for target, erp_col in entity.columns.items():
        value = record.get(erp_col)
        if value is not None and target in entity.values:
            code = str(value)
            if code not in entity.values[target]:
                raise RecordError(
                    erp_col,
                    f"code {code!r} is not in the mapping's values for {target} "
                    f"({', '.join(entity.values[target])})",
                )
            value = entity.values[target][code]
        col = tbl.column(target)
        if value is None:
            if not col.nullable:
                raise RecordError(erp_col, f"is empty, but {tbl.name}.{target} is required")
            row[target] = None
            continue
        row[target] = _CONVERT[col.type](value, erp_col)
    modified = record.get(entity.modified)
    if modified is None:
        raise RecordError(entity.modified, "no last-modified time")
    return row, as_time(modified, entity.modified)


@dataclass
class EntityStream:
    """One ERP entity, page by page; each page is stored with its newest last-modified time."""

    adapter: SqlErp | RestErp
    spec: EntityMap
    page_size: int = 1000

    @property
    def name(self) -> str:
        """The watermark stream: the entity name."""
        return self.spec.name

    @property
    def entity(self) -> str:
        """What the run report counts: the canonical table."""
        return self.spec.table

    def units(self, start: dt.datetime | None, until: dt.datetime) -> Iterator[Unit]:
        """Everything modified after ``start`` (``until`` is not used: an ERP row has no event time)."""
        spec = self.spec
        tbl = schema.table(spec.table)
        where = ".".join(spec.sql_table) if isinstance(self.adapter, SqlErp) else f"GET {spec.rest_path}"
        for page in self.adapter.fetch(spec, start, page_size=self.page_size):
            rows: dict[tuple, dict[str, Any]] = {}
            dead: list[dict[str, Any]] = []
            newest: dt.datetime | None = None
            received = now_ms()
            for record in page:
                key_text = (
                    ", ".join(f"{k}={record.get(k)!r}" for k in spec.key) if isinstance(record, dict) else "?"
                )
                try:
                    row, modified = canonical_row(spec, record)
                except RecordError as exc:
                    dead.append(
                        dead_letter(
                            source=SOURCE,
                            reason=f"bad_record: {exc}",
                            payload=item_text(_jsonable(record)),
                            location=f"{where} {key_text}",
                            received_ms=received,
                            target_table=tbl.name,
                        )
                    )
                    continue
                newest = modified if newest is None or modified > newest else newest
                rows[tuple(row[k] for k in tbl.key)] = row  # a later version of the same row wins
            yield Unit(
                self.name, self.entity, {tbl.name: pd.DataFrame(list(rows.values()))}, dead, len(page), newest
            )


def _jsonable(record: Any) -> Any:
    """A database row as JSON-friendly values (dates, decimals) for its dead letter."""
    if not isinstance(record, dict):
        return record
    out = {}
    for k, v in record.items():
        out[k] = (
            v.isoformat()
            if isinstance(v, dt.date | dt.datetime)
            else (float(v) if type(v).__name__ == "Decimal" else v)
        )
    return out


def adapter_for(settings: Any, mapping: ErpMapping, *, policy: Any = None) -> SqlErp | RestErp:
    """The adapter the settings choose (``WORKBENCH_ERP_ADAPTER``), with its connection settings.

    Raises
    ------
    ConfigError
        When the chosen adapter's URL or key is not set.
    """
    if settings.erp_adapter == "rest":
        if not settings.erp_base_url or settings.erp_api_key is None:
            raise ConfigError(
                "the ERP REST adapter needs WORKBENCH_ERP_BASE_URL and WORKBENCH_ERP_API_KEY "
                "(in the environment or .env)"
            )
        return RestErp(
            JsonApi(SOURCE, settings.erp_base_url, settings.erp_api_key.get_secret_value(), policy=policy),
            mapping,
        )
    if settings.erp_database_url is None:
        raise ConfigError(
            "the ERP SQL adapter needs WORKBENCH_ERP_DATABASE_URL (a read-only role; in the "
            "environment or .env), or set WORKBENCH_ERP_ADAPTER=rest"
        )
    return SqlErp(settings.erp_database_url.get_secret_value(), mapping)
