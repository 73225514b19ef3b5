"""An ERP simulator: a simulated plant's work orders, parts and bills of material in PostgreSQL,
with a read-only role, and the same data behind a REST API.

The tables use ERP-native names (as an Epicor-like ERP would), deliberately not the warehouse's
canonical ones: mapping them is the sync's job.

* ``job_header`` — work orders (``job_num``, ``part_num``, ``resource_id``, ``prod_qty``, …,
  ``last_modified``).
* ``part_master`` — parts (``part_num``, ``part_description``, ``product_group``, ``std_mtl_cost``).
* ``bom_lines`` — raw-material components per part (``parent_part``, ``mtl_part``, ``qty_per``,
  ``uom``), generated from the plant's seed.

:func:`erp_tables` is the ground truth: exactly the rows :func:`install_erp` stores.
:func:`install_erp` (re)creates the schema with an admin connection and returns the URL of the
read-only role, without a password: the local test server trusts it. A plant's real ERP role has
a password, which the plant keeps in ``.env`` (``WORKBENCH_ERP_DATABASE_URL``), never in code.
:func:`erp_rest_app` serves ``GET /v1/erp/{entity}`` through that read-only role, so an update
made in the tables shows in both adapters.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import numpy as np
import pandas as pd

from workbench.errors import ConfigError, SimulationError
from workbench.simulate.http import (
    ApiError,
    SimControl,
    SimMiddleware,
    api_error_handler,
    iso_z,
    json_response,
    parse_instant,
    parse_int,
)
from workbench.simulate.machinemetrics import horizon

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request

    from workbench.simulate.plant import SimulatedPlant

#: Columns of each ERP table: (name, PostgreSQL type, NOT NULL).
COLUMNS: dict[str, tuple[tuple[str, str, bool], ...]] = {
    "job_header": (
        ("job_num", "text", True), ("part_num", "text", True), ("resource_id", "text", False),
        ("prod_qty", "integer", True), ("qty_completed", "integer", False),
        ("qty_scrapped", "integer", False), ("std_mtl_cost", "double precision", False),
        ("labor_rate", "double precision", False), ("customer_name", "text", False),
        ("due_date", "date", False), ("job_status", "text", False),
        ("released_at", "timestamptz", False), ("closed_at", "timestamptz", False),
        ("last_modified", "timestamptz", True),
    ),
    "part_master": (
        ("part_num", "text", True), ("part_description", "text", False), ("product_group", "text", False),
        ("std_mtl_cost", "double precision", False), ("last_modified", "timestamptz", True),
    ),
    "bom_lines": (
        ("parent_part", "text", True), ("mtl_part", "text", True), ("qty_per", "double precision", True),
        ("uom", "text", False), ("last_modified", "timestamptz", True),
    ),
}
#: Primary key of each ERP table (also the tie-break of the REST order).
KEYS: dict[str, tuple[str, ...]] = {
    "job_header": ("job_num",),
    "part_master": ("part_num",),
    "bom_lines": ("parent_part", "mtl_part"),
}
#: Raw materials of the generated bills of material: (part, unit, low, high quantity per part).
METALS: tuple[tuple[str, str, float, float], ...] = (
    ("RM-STEEL-4140-BAR", "kg", 0.4, 4.0),
    ("RM-STEEL-1045-BAR", "kg", 0.4, 4.0),
    ("RM-AL-6061-PLATE", "kg", 0.2, 2.5),
    ("RM-AL-7075-BAR", "kg", 0.2, 2.5),
    ("RM-BRASS-C360-ROD", "kg", 0.1, 1.5),
)
CONSUMABLES: tuple[tuple[str, str, float, float], ...] = (
    ("RM-PAINT-GREY", "l", 0.01, 0.25),
    ("RM-COOLANT-5PCT", "l", 0.02, 0.40),
    ("RM-ORING-NBR-20", "ea", 1, 4),
    ("RM-FASTENER-M6", "ea", 2, 8),
    ("RM-PACK-CARTON-S", "ea", 1, 1),
)
#: Malformed values of the ``malformed`` fault, per entity: (field, value).
MALFORMED: dict[str, tuple[str, Any]] = {
    "job_header": ("prod_qty", "lots"),
    "bom_lines": ("qty_per", "some"),
    "part_master": ("part_description", {"x": 1}),
}
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_INT_COLS = {c for cols in COLUMNS.values() for c, t, _ in cols if t == "integer"}


def _check_name(value: str, what: str) -> str:
    # Identifiers are quoted with sql.Identifier everywhere; the DO block also needs the role name
    # inside a dollar-quoted body, so only plain lower-case names are accepted.
    if not isinstance(value, str) or not _NAME.match(value):
        raise ConfigError(f"{what} must be a lower-case SQL name ([a-z_][a-z0-9_]*), got {value!r}")
    return value


# -- the tables -------------------------------------------------------------------------------------


def erp_tables(plant: SimulatedPlant) -> dict[str, pd.DataFrame]:
    """The ERP's tables for a simulated plant, exactly as :func:`install_erp` stores them.

    Parameters
    ----------
    plant : SimulatedPlant
        Source of the work orders and parts; its seed draws the bills of material.

    Returns
    -------
    dict of str to pandas.DataFrame
        ``job_header``, ``part_master`` and ``bom_lines``, with the columns of :data:`COLUMNS` in
        order; timestamps ``datetime64[us, UTC]``, dates ``datetime.date``, integers ``Int32``.
        Rows are in primary-key order.
    """
    start = pd.Timestamp(horizon(plant)[0]).tz_convert("UTC").as_unit("us")
    wo = plant.tables["work_orders"]
    job = pd.DataFrame({
        "job_num": wo["work_order"],
        "part_num": wo["part_number"],
        "resource_id": wo["machine_id"],
        "prod_qty": wo["order_qty"],
        "qty_completed": wo["completed_qty"],
        "qty_scrapped": wo["scrap_qty"],
        "std_mtl_cost": wo["material_cost_per_unit"],
        "labor_rate": wo["labor_rate_per_hour"],
        "customer_name": wo["customer"],
        "due_date": wo["due_date"],
        "job_status": wo["status"],
        "released_at": wo["released_at"],
        "closed_at": wo["closed_at"],
    })
    job["last_modified"] = job["closed_at"].fillna(job["released_at"]).fillna(start)

    parts = plant.tables["parts"]
    # One standard cost per part: the one of its most recently released order (they agree in the
    # simulator; an ERP keeps one standard cost per part anyway).
    cost = (wo.sort_values(["released_at", "work_order"]).groupby("part_number")["material_cost_per_unit"]
            .last())
    part = pd.DataFrame({
        "part_num": parts["part_number"],
        "part_description": parts["description"],
        "product_group": parts["part_family"],
        "std_mtl_cost": parts["part_number"].map(cost).astype("float64"),
        "last_modified": start,
    })

    bom = _bom_lines(sorted(parts["part_number"].astype(str)), seed=plant.config.seed)
    bom["last_modified"] = start

    out = {"job_header": job, "part_master": part, "bom_lines": bom}
    for name, frame in out.items():
        frame = frame.sort_values(list(KEYS[name]), kind="stable").reset_index(drop=True)
        for col, typ, _ in COLUMNS[name]:
            if typ == "integer":
                frame[col] = frame[col].astype("Int32")
            elif typ == "double precision":
                frame[col] = frame[col].astype("float64")
            elif typ == "timestamptz":
                frame[col] = pd.to_datetime(frame[col], utc=True).astype("datetime64[us, UTC]")
        out[name] = frame[[c for c, _, _ in COLUMNS[name]]]
    return out


def _bom_lines(parts: list[str], *, seed: int) -> pd.DataFrame:
    """1–3 raw-material components per part: one metal, then up to two consumables."""
    # A stream of its own (not the plant's): the ERP's BOMs must not shift any plant table.
    rng = np.random.default_rng([seed, 0xE4B])
    rows = []
    for part in parts:
        n_extra = int(rng.integers(0, 3))
        picks = [METALS[int(rng.integers(len(METALS)))]]
        picks += [CONSUMABLES[int(i)] for i in rng.choice(len(CONSUMABLES), size=n_extra, replace=False)]
        for mtl, uom, low, high in picks:
            qty = float(rng.integers(int(low), int(high) + 1)) if uom == "ea" else rng.uniform(low, high)
            rows.append({"parent_part": part, "mtl_part": mtl, "qty_per": round(float(qty), 3), "uom": uom})
    return pd.DataFrame(rows, columns=["parent_part", "mtl_part", "qty_per", "uom"])


# -- PostgreSQL ----------------------------------------------------------------------------------------


def _python_rows(frame: pd.DataFrame) -> Iterator[tuple[Any, ...]]:
    """Rows of plain Python values (None for missing) for COPY."""
    cols = []
    for name in frame.columns:
        s = frame[name]
        if isinstance(s.dtype, pd.DatetimeTZDtype):
            values = [None if pd.isna(v) else v.to_pydatetime() for v in s]
        elif name in _INT_COLS:
            values = [None if pd.isna(v) else int(v) for v in s]
        else:
            values = [None if v is None or v is pd.NA or (isinstance(v, float) and v != v) else v
                      for v in s.tolist()]
        cols.append(values)
    return zip(*cols, strict=True)


def reader_url(admin_url: str, role: str) -> str:
    """The URL of ``role`` on the server and database of ``admin_url``, without a password.

    ``admin_url`` may be a URL or a libpq key=value string; its user, password and options are
    left out (``sslmode`` is kept).
    """
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(admin_url)
    except Exception as exc:
        raise ConfigError(f"the ERP admin URL is not a PostgreSQL connection string: {exc}") from None
    host = str(info.get("host") or "")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    port = f":{info['port']}" if info.get("port") else ""
    db = quote(str(info.get("dbname") or ""), safe="")
    url = f"postgresql://{quote(role, safe='')}@{quote(host, safe='[]:')}{port}/{db}"
    if info.get("sslmode"):
        url += f"?sslmode={quote(str(info['sslmode']), safe='')}"
    return url


def install_erp(
    admin_url: str, plant: SimulatedPlant, *, schema: str = "erp_sim", reader_role: str = "erp_reader"
) -> str:
    """(Re)create the ERP schema for ``plant`` and a read-only role that can read it.

    Drops ``schema`` (with everything in it), creates the three tables, bulk-loads
    :func:`erp_tables` with COPY, creates ``reader_role`` if missing (``LOGIN``, no superuser,
    createdb or createrole; roles are cluster-wide, so this is idempotent) and lets it read the
    schema's tables and nothing else; its transactions are read-only by default. Running it again
    gives the same tables and the same privileges.

    Parameters
    ----------
    admin_url : str
        PostgreSQL connection string of a role that may create schemas and roles.
    plant : SimulatedPlant
        Whose work orders, parts and bills of material to store.
    schema : str
        Schema of the ERP tables.
    reader_role : str
        The read-only role.

    Returns
    -------
    str
        The reader's URL: same host, port and database as ``admin_url``, user ``reader_role``, no
        password (the local server trusts it; a plant gives its ERP password in ``.env``).

    Raises
    ------
    ConfigError
        For a schema or role name that is not a plain lower-case SQL name, or an unusable URL.
    SimulationError
        When PostgreSQL refuses (unreachable, not allowed to create the schema or the role).
    """
    import psycopg
    from psycopg import sql

    _check_name(schema, "schema")
    _check_name(reader_role, "reader_role")
    tables = erp_tables(plant)
    sch, role = sql.Identifier(schema), sql.Identifier(reader_role)
    try:
        with psycopg.connect(admin_url, connect_timeout=10) as conn, conn.cursor() as cur:
            cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sch))
            cur.execute(sql.SQL("CREATE SCHEMA {}").format(sch))
            for name, cols in COLUMNS.items():
                defs = [
                    sql.SQL("{} {}{}").format(
                        sql.Identifier(c), sql.SQL(t), sql.SQL(" NOT NULL" if not_null else "")
                    )
                    for c, t, not_null in cols
                ]
                defs.append(sql.SQL("PRIMARY KEY ({})").format(
                    sql.SQL(", ").join(map(sql.Identifier, KEYS[name]))))
                cur.execute(sql.SQL("CREATE TABLE {}.{} ({})").format(
                    sch, sql.Identifier(name), sql.SQL(", ").join(defs)))
                copy = sql.SQL("COPY {}.{} ({}) FROM STDIN").format(
                    sch, sql.Identifier(name), sql.SQL(", ").join(sql.Identifier(c) for c, _, _ in cols))
                with cur.copy(copy) as cp:
                    for row in _python_rows(tables[name]):
                        cp.write_row(row)
            # CREATE ROLE has no IF NOT EXISTS; two installs at once may both pass the check, so
            # the loser's duplicate_object is swallowed too. The name passed _check_name, so it
            # cannot break out of the dollar-quoted body.
            cur.execute(sql.SQL(
                "DO $erp$ BEGIN "
                "IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = {name}) THEN "
                "CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE; END IF; "
                "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $erp$"
            ).format(name=sql.Literal(reader_role), role=role))
            # A role that existed before may have been given more: put it back to a plain login
            # (only when needed: changing some of these attributes takes a superuser).
            cur.execute(
                "SELECT rolcanlogin AND NOT (rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication"
                " OR rolbypassrls) FROM pg_catalog.pg_roles WHERE rolname = %s",
                [reader_role],
            )
            plain = cur.fetchone()
            if not (plain and plain[0]):
                cur.execute(sql.SQL(
                    "ALTER ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
                ).format(role))
            cur.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(sch, role))
            cur.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM {}").format(sch, role))
            cur.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sch, role))
            cur.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(sch, role))
            cur.execute(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(role))
    except psycopg.Error as exc:
        raise SimulationError(f"cannot install the ERP simulator in schema {schema!r}: {exc}") from exc
    return reader_url(admin_url, reader_role)


# -- REST ----------------------------------------------------------------------------------------------


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return iso_z(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def malform(path: str, body: dict[str, Any]) -> None:
    """Spoil the first record of an ERP answer the way a broken middleware would."""
    entity = path.rstrip("/").rsplit("/", 1)[-1]
    if entity in MALFORMED:
        field, value = MALFORMED[entity]
        body["data"][0][field] = value


class ErpRestSim:
    """The ERP's REST face: ``GET /v1/erp/{entity}``, read through the read-only role.

    Parameters
    ----------
    reader_url : str
        Connection string of the read-only role (:func:`install_erp` returns it).
    api_key : str
        The bearer key clients must send.
    schema : str
        Schema of the ERP tables.
    max_page_size : int
        Largest ``page_size`` a client may ask for.
    """

    def __init__(self, reader_url: str, *, api_key: str, schema: str = "erp_sim", max_page_size: int = 5000):
        if not api_key:
            raise SimulationError("the ERP simulator needs a non-empty api_key")
        if max_page_size < 1:
            raise SimulationError(f"max_page_size must be >= 1, got {max_page_size}")
        self.reader_url = reader_url
        self.api_key = api_key
        self.schema = _check_name(schema, "schema")
        self.max_page_size = int(max_page_size)
        self.control = SimControl()
        self.app = self._build_app()

    def query(self, entity: str, *, after: bool):
        """The page query of ``entity``: names from the whitelist, values as parameters
        (``modified_after`` when ``after``, then LIMIT and OFFSET)."""
        from psycopg import sql

        cols = sql.SQL(", ").join(sql.Identifier(c) for c, _, _ in COLUMNS[entity])
        order = sql.SQL(", ").join(sql.Identifier(c) for c in ("last_modified", *KEYS[entity]))
        where = sql.SQL("WHERE last_modified > %s ") if after else sql.SQL("")
        return sql.SQL("SELECT {} FROM {}.{} {}ORDER BY {} LIMIT %s OFFSET %s").format(
            cols, sql.Identifier(self.schema), sql.Identifier(entity), where, order
        )

    def fetch(self, entity: str, *, modified_after: dt.datetime | None, page: int, page_size: int):
        """One page of rows (as JSON-ready dicts) and whether another page follows."""
        import psycopg

        params: list[Any] = [modified_after] if modified_after is not None else []
        params += [page_size + 1, (page - 1) * page_size]
        try:
            # One short connection per request: simple, and every request sees the latest commit.
            with psycopg.connect(self.reader_url, connect_timeout=10, autocommit=True) as conn:
                cur = conn.execute(self.query(entity, after=modified_after is not None), params)
                names = [d.name for d in cur.description or []]
                rows = cur.fetchall()
        except psycopg.Error as exc:
            raise ApiError(503, f"ERP database unavailable: {str(exc).strip()}") from None
        data = [{k: _json_value(v) for k, v in zip(names, row, strict=True)} for row in rows[:page_size]]
        return data, len(rows) > page_size

    def entity_endpoint(self, request: Request):
        """``GET /v1/erp/{entity}?modified_after=&page=&page_size=``."""
        entity = request.path_params["entity"]
        if entity not in COLUMNS:
            raise ApiError(404, f"unknown entity {entity!r} (known: {', '.join(COLUMNS)})")
        q = request.query_params
        after = parse_instant(q.get("modified_after"), "modified_after", required=False)
        page = parse_int(q.get("page"), "page", default=1, low=1)
        size = parse_int(q.get("page_size"), "page_size", default=1000, low=1, high=self.max_page_size)
        data, more = self.fetch(entity, modified_after=after, page=page, page_size=size)
        return json_response({"data": data, "page": page, "next_page": page + 1 if more else None})

    def _build_app(self) -> Starlette:
        from starlette.applications import Starlette
        from starlette.middleware import Middleware
        from starlette.routing import Route

        app = Starlette(
            # A plain function: Starlette runs it in its thread pool, so the blocking database
            # call never stalls the event loop (where delay faults sleep).
            routes=[Route("/v1/erp/{entity}", self.entity_endpoint, methods=["GET"])],
            middleware=[
                Middleware(SimMiddleware, api_key=self.api_key, control=self.control, malform=malform)
            ],
            exception_handlers={ApiError: api_error_handler, Exception: api_error_handler},
        )
        app.state.sim = self
        return app


def erp_rest_app(
    reader_url: str, *, api_key: str, schema: str = "erp_sim", max_page_size: int = 5000
) -> Starlette:
    """The ERP tables behind a REST API, as a Starlette app.

    ``GET /v1/erp/{entity}`` for ``job_header``, ``part_master`` and ``bom_lines``; query
    ``modified_after`` (ISO-8601 with offset; rows with ``last_modified`` after it), ``page`` (from
    1) and ``page_size`` (default 1000, at most ``max_page_size``). Ordered by ``last_modified``,
    then the primary key; answered as ``{"data": [...], "page": p, "next_page": p + 1 | null}``
    with the SQL column names, timestamps ISO-8601 UTC with ``Z``, dates ``YYYY-MM-DD``.

    Parameters
    ----------
    reader_url : str
        Connection string of the read-only role (:func:`install_erp` returns it).
    api_key : str
        Bearer key every request must carry (401 otherwise).
    schema : str
        Schema of the ERP tables.
    max_page_size : int
        Largest ``page_size`` accepted (400 above).

    Returns
    -------
    starlette.applications.Starlette
        The app; ``app.state.sim`` is its :class:`ErpRestSim` (faults, request log).
    """
    return ErpRestSim(reader_url, api_key=api_key, schema=schema, max_page_size=max_page_size).app


__all__ = [
    "COLUMNS",
    "KEYS",
    "ErpRestSim",
    "erp_rest_app",
    "erp_tables",
    "install_erp",
    "malform",
    "reader_url",
]
