"""The ERP simulator: its tables in a real PostgreSQL, the read-only role, and the REST face over
real HTTP. The reference is :func:`erp_tables` (built from the simulated plant's frames) and what
the admin connection reads back; each module works in a schema of its own, dropped at the end.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pandas as pd
import psycopg
import pytest
from psycopg import errors, sql

from workbench.errors import ConfigError, SimulationError
from workbench.simulate import PlantConfig, SimulatedPlant, simulate_plant
from workbench.simulate.erp import COLUMNS, KEYS, erp_rest_app, erp_tables, install_erp, reader_url
from workbench.simulate.http import ServedApp

KEY = "test-key-erp"
AUTH = {"Authorization": f"Bearer {KEY}"}
CONFIG = PlantConfig(seed=3, n_machines=3, n_lines=1, days=3, start=dt.date(2026, 10, 19),
                     telemetry=False, cycle_events=False)
READ_ONLY_ERRORS = (errors.ReadOnlySqlTransaction, errors.InsufficientPrivilege)


@pytest.fixture(scope="module")
def plant() -> SimulatedPlant:
    return simulate_plant(CONFIG)


@pytest.fixture(scope="module")
def tables(plant: SimulatedPlant) -> dict[str, pd.DataFrame]:
    return erp_tables(plant)


@pytest.fixture
def erp_schema(pg_url: str) -> Iterator[str]:
    """A schema name of this test's own, dropped afterwards (the erp_reader role stays: it is
    cluster-wide and shared by every install)."""
    name = f"erp_sim_t{uuid.uuid4().hex[:10]}"
    yield name
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def installed(pg_url: str, plant: SimulatedPlant, erp_schema: str) -> tuple[str, str]:
    """(schema, reader URL) of a fresh install."""
    return erp_schema, install_erp(pg_url, plant, schema=erp_schema)


def stored(url: str, schema: str, table: str) -> pd.DataFrame:
    """A table as the admin reads it back, in primary-key order, typed like :func:`erp_tables`."""
    cols = [c for c, _, _ in COLUMNS[table]]
    query = sql.SQL("SELECT {} FROM {}.{} ORDER BY {}").format(
        sql.SQL(", ").join(map(sql.Identifier, cols)), sql.Identifier(schema), sql.Identifier(table),
        sql.SQL(", ").join(map(sql.Identifier, KEYS[table])))
    with psycopg.connect(url) as conn:
        rows = conn.execute(query).fetchall()
    frame = pd.DataFrame(rows, columns=cols)
    for c, typ, _ in COLUMNS[table]:
        if typ == "timestamptz":
            frame[c] = pd.to_datetime(frame[c], utc=True).astype("datetime64[us, UTC]")
        elif typ == "integer":
            frame[c] = frame[c].astype("Int32")
        elif typ == "double precision":
            frame[c] = frame[c].astype("float64")
        elif typ == "text":
            frame[c] = frame[c].astype("str")
    return frame


def client_for(reader: str, schema: str, **options: Any) -> tuple[ServedApp, httpx.Client]:
    served = ServedApp(erp_rest_app(reader, api_key=KEY, schema=schema, **options)).start()
    return served, httpx.Client(base_url=served.url, headers=AUTH, timeout=10)


@pytest.fixture
def rest(installed: tuple[str, str]) -> Iterator[httpx.Client]:
    schema, reader = installed
    served, client = client_for(reader, schema, max_page_size=50)
    with served, client:
        yield client


def fetch_all(client: httpx.Client, entity: str, **params: Any) -> tuple[list[dict], int]:
    """Every row by following next_page; also the number of pages."""
    rows, page, pages = [], 1, 0
    while page is not None:
        r = client.get(f"/v1/erp/{entity}", params={**params, "page": page})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["page"] == page
        rows += body["data"]
        pages += 1
        page = body["next_page"]
    return rows, pages


# ---------------------------------------------------------------------------------------------
# the tables (no database)


def test_erp_tables_map_the_plants_work_orders_and_parts(plant: SimulatedPlant, tables) -> None:
    job, wo = tables["job_header"], plant.tables["work_orders"].sort_values("work_order")
    assert list(job.columns) == [c for c, _, _ in COLUMNS["job_header"]]
    assert job["job_num"].tolist() == wo["work_order"].tolist()
    assert job["prod_qty"].tolist() == wo["order_qty"].tolist()
    assert job["qty_scrapped"].tolist() == wo["scrap_qty"].tolist()
    assert job["resource_id"].tolist() == wo["machine_id"].tolist()
    assert job["due_date"].tolist() == wo["due_date"].tolist()
    closed = wo["closed_at"].notna().to_numpy()
    assert (job["last_modified"].to_numpy()[closed] == wo["closed_at"].to_numpy()[closed]).all()
    assert (job["last_modified"].to_numpy()[~closed] == wo["released_at"].to_numpy()[~closed]).all()
    assert closed.any() and (~closed).any()

    part = tables["part_master"]
    assert sorted(part["part_num"]) == sorted(plant.tables["parts"]["part_number"])
    costs = dict(zip(wo["part_number"], wo["material_cost_per_unit"], strict=True))
    for p, cost in zip(part["part_num"], part["std_mtl_cost"], strict=True):
        assert (cost == costs[p]) if p in costs else pd.isna(cost)
    start = pd.Timestamp("2026-10-19T06:00", tz="America/Chicago")
    assert (part["last_modified"] == start).all() and (tables["bom_lines"]["last_modified"] == start).all()


def test_bom_lines_are_deterministic_per_seed(plant: SimulatedPlant, tables) -> None:
    bom = tables["bom_lines"]
    per_part = bom.groupby("parent_part").size()
    assert set(per_part.index) == set(plant.tables["parts"]["part_number"])
    assert per_part.between(1, 3).all()
    assert not bom.duplicated(["parent_part", "mtl_part"]).any()
    assert bom["mtl_part"].str.startswith("RM-").all() and set(bom["uom"]) <= {"kg", "ea", "l"}
    assert (bom["qty_per"] > 0).all() and (bom["qty_per"].round(3) == bom["qty_per"]).all()
    pd.testing.assert_frame_equal(erp_tables(plant)["bom_lines"], bom)
    other = erp_tables(simulate_plant(PlantConfig(seed=4, n_machines=3, n_lines=1, days=1, telemetry=False,
                                                  cycle_events=False)))["bom_lines"]
    assert not (len(other) == len(bom) and other["qty_per"].tolist() == bom["qty_per"].tolist())


def test_reader_url_keeps_the_server_and_drops_the_secrets() -> None:
    admin = "postgresql://admin:s3cret@db.plant.local:6543/erp?sslmode=require&options=-csearch_path%3Dx"
    assert reader_url(admin, "erp_reader") == "postgresql://erp_reader@db.plant.local:6543/erp?sslmode=require"
    assert reader_url("host=127.0.0.1 port=5432 dbname=test user=postgres password=x", "r") == (
        "postgresql://r@127.0.0.1:5432/test")


def test_names_that_are_not_plain_sql_names_are_refused(plant: SimulatedPlant) -> None:
    url = "postgresql://postgres@127.0.0.1:1/none"  # refused before any connection
    with pytest.raises(ConfigError, match="schema"):
        install_erp(url, plant, schema="erp; DROP SCHEMA public")
    with pytest.raises(ConfigError, match="reader_role"):
        install_erp(url, plant, schema="erp_sim_never", reader_role="Reader$$")
    with pytest.raises(ConfigError, match="schema"):
        erp_rest_app(url, api_key=KEY, schema='x"; --')


# ---------------------------------------------------------------------------------------------
# PostgreSQL


@pytest.mark.postgres
def test_stored_tables_equal_erp_tables_and_install_is_idempotent(
    pg_url: str, plant: SimulatedPlant, tables, erp_schema: str
) -> None:
    first = install_erp(pg_url, plant, schema=erp_schema)
    with psycopg.connect(pg_url, autocommit=True) as conn:  # a stray row from a previous run
        conn.execute(sql.SQL("INSERT INTO {}.bom_lines VALUES ('X', 'Y', 1, 'kg', now())")
                     .format(sql.Identifier(erp_schema)))
    second = install_erp(pg_url, plant, schema=erp_schema)
    assert first == second == "postgresql://erp_reader@127.0.0.1:5432/test"
    for name, want in tables.items():
        got = stored(pg_url, erp_schema, name)
        pd.testing.assert_frame_equal(got, want.astype({c: "str" for c, t, _ in COLUMNS[name] if t == "text"}),
                                      obj=name)
    with psycopg.connect(pg_url) as conn:
        role = conn.execute(
            "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolconfig FROM pg_roles "
            "WHERE rolname = 'erp_reader'").fetchone()
        assert role[:4] == (True, False, False, False)
        assert "default_transaction_read_only=on" in role[4]
        privileges = conn.execute(
            "SELECT has_schema_privilege('erp_reader', %(s)s, 'USAGE'), "
            "has_schema_privilege('erp_reader', %(s)s, 'CREATE'), "
            "has_table_privilege('erp_reader', %(t)s, 'SELECT'), "
            "has_table_privilege('erp_reader', %(t)s, 'INSERT'), "
            "has_table_privilege('erp_reader', %(t)s, 'UPDATE'), "
            "has_table_privilege('erp_reader', %(t)s, 'DELETE')",
            {"s": erp_schema, "t": f"{erp_schema}.job_header"}).fetchone()
        assert privileges == (True, False, True, False, False, False)


@pytest.mark.postgres
def test_the_reader_can_select_but_never_write(installed: tuple[str, str], tables) -> None:
    schema, reader = installed
    s = sql.Identifier(schema)
    with psycopg.connect(reader, autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("erp_reader",)
        n = conn.execute(sql.SQL("SELECT count(*) FROM {}.job_header").format(s)).fetchone()[0]
        assert n == len(tables["job_header"])
        writes = [
            sql.SQL("INSERT INTO {}.bom_lines VALUES ('A', 'B', 1, 'kg', now())").format(s),
            sql.SQL("UPDATE {}.job_header SET prod_qty = 1").format(s),
            sql.SQL("DELETE FROM {}.part_master").format(s),
            sql.SQL("CREATE TABLE {}.mine (a int)").format(s),
        ]
        for statement in writes:
            # Read-only by default, and without the privilege even when asking for read-write.
            with pytest.raises(errors.ReadOnlySqlTransaction):
                conn.execute(statement)
            with pytest.raises(READ_ONLY_ERRORS), conn.transaction():
                conn.execute("SET TRANSACTION READ WRITE")
                conn.execute(statement)
        with pytest.raises(errors.InsufficientPrivilege), conn.transaction():
            conn.execute("SET TRANSACTION READ WRITE")
            conn.execute(sql.SQL("CREATE TABLE {}.mine (a int)").format(s))


# ---------------------------------------------------------------------------------------------
# REST


@pytest.mark.postgres
def test_rest_needs_the_key_and_knows_its_entities(rest: httpx.Client) -> None:
    for headers in ({"Authorization": "Bearer nope"}, {"Authorization": ""}):
        r = rest.get("/v1/erp/job_header", headers=headers)
        assert r.status_code == 401 and r.json() == {"error": "unauthorized"}
    r = rest.get("/v1/erp/pg_authid")
    assert r.status_code == 404 and "pg_authid" in r.json()["error"]
    for params in ({"page_size": 51}, {"page_size": 0}, {"page": 0}, {"modified_after": "last week"},
                   {"modified_after": "2026-10-19T00:00:00"}):
        assert rest.get("/v1/erp/job_header", params=params).status_code == 400, params


@pytest.mark.postgres
def test_rest_pages_are_the_stored_rows_in_last_modified_order(rest: httpx.Client, tables) -> None:
    rows, pages = fetch_all(rest, "job_header", page_size=7)
    want = tables["job_header"].sort_values(["last_modified", "job_num"])
    assert pages == -(-len(want) // 7) >= 3
    assert [r["job_num"] for r in rows] == want["job_num"].tolist()
    got = pd.DataFrame(rows)
    assert got.columns.tolist() == [c for c, _, _ in COLUMNS["job_header"]]
    assert (pd.to_datetime(got["last_modified"], utc=True, format="ISO8601").to_numpy()
            == want["last_modified"].to_numpy()).all()
    closed = want["closed_at"].notna().to_numpy()
    assert (pd.to_datetime(got["closed_at"][closed], utc=True, format="ISO8601").to_numpy()
            == want["closed_at"].to_numpy()[closed]).all()
    assert got["closed_at"][~closed].isna().all()
    assert got["due_date"].tolist() == [d.isoformat() for d in want["due_date"]]
    assert got["prod_qty"].tolist() == want["prod_qty"].astype(int).tolist()
    assert got["std_mtl_cost"].tolist() == want["std_mtl_cost"].tolist()
    assert all(r["last_modified"].endswith("Z") for r in rows)

    bom, _ = fetch_all(rest, "bom_lines", page_size=4)
    want_bom = tables["bom_lines"]
    assert [(r["parent_part"], r["mtl_part"], r["qty_per"], r["uom"]) for r in bom] == list(
        zip(want_bom["parent_part"], want_bom["mtl_part"], want_bom["qty_per"], want_bom["uom"], strict=True))
    parts, _ = fetch_all(rest, "part_master")
    assert [p["part_num"] for p in parts] == tables["part_master"]["part_num"].tolist()
    assert sum(p["std_mtl_cost"] is None for p in parts) == tables["part_master"]["std_mtl_cost"].isna().sum()


@pytest.mark.postgres
def test_modified_after_returns_only_later_rows(rest: httpx.Client, tables) -> None:
    job = tables["job_header"]
    cut = job["last_modified"].sort_values().iloc[len(job) // 2]
    rows, _ = fetch_all(rest, "job_header", modified_after=cut.isoformat(), page_size=5)
    assert sorted(r["job_num"] for r in rows) == sorted(job.loc[job["last_modified"] > cut, "job_num"])
    assert 0 < len(rows) < len(job)
    # An offset other than UTC is the same instant.
    local = cut.tz_convert("America/Chicago").isoformat()
    assert fetch_all(rest, "job_header", modified_after=local, page_size=5)[0] == rows
    assert fetch_all(rest, "part_master", modified_after=cut.isoformat())[0] == []


@pytest.mark.postgres
def test_an_update_in_the_erp_shows_in_the_rest_api(pg_url: str, rest: httpx.Client, installed, tables) -> None:
    schema, _ = installed
    newest = max(r["last_modified"] for r in fetch_all(rest, "job_header")[0])
    assert fetch_all(rest, "job_header", modified_after=newest)[0] == []
    job = tables["job_header"]
    target = job.loc[job["job_status"] == "in_progress", "job_num"].iloc[0]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        bumped = conn.execute(
            sql.SQL("UPDATE {}.job_header SET qty_completed = qty_completed + 25, last_modified = now() "
                    "WHERE job_num = %s RETURNING last_modified, qty_completed").format(sql.Identifier(schema)),
            [target]).fetchone()
    rows, _ = fetch_all(rest, "job_header", modified_after=newest)
    assert [r["job_num"] for r in rows] == [target]
    assert rows[0]["qty_completed"] == bumped[1]
    # now() has microseconds: the API gives them back exactly, so the next sync starts after it.
    assert dt.datetime.fromisoformat(rows[0]["last_modified"]) == bumped[0]
    assert fetch_all(rest, "job_header", modified_after=rows[0]["last_modified"])[0] == []


@pytest.mark.postgres
def test_rest_faults_are_the_shared_ones(rest: httpx.Client) -> None:
    rest.post("/_sim/faults", json={"http_429": 1, "retry_after_s": 2, "http_503": 1, "path": "job_header"})
    assert rest.get("/v1/erp/part_master").status_code == 200
    first, second = rest.get("/v1/erp/job_header"), rest.get("/v1/erp/job_header")
    assert (first.status_code, first.headers["Retry-After"], second.status_code) == (429, "2", 503)
    whole = rest.get("/v1/erp/bom_lines")
    rest.post("/_sim/faults", json={"truncate": 1})
    cut = rest.get("/v1/erp/bom_lines")
    assert cut.status_code == 200 and cut.content == whole.content[: len(whole.content) // 2]
    rest.post("/_sim/faults", json={"malformed": 3})
    assert rest.get("/v1/erp/job_header").json()["data"][0]["prod_qty"] == "lots"
    assert rest.get("/v1/erp/bom_lines").json()["data"][0]["qty_per"] == "some"
    assert rest.get("/v1/erp/part_master").json()["data"][0]["part_description"] == {"x": 1}
    assert isinstance(rest.get("/v1/erp/job_header").json()["data"][0]["prod_qty"], int)
    log = rest.get("/_sim/requests").json()["data"]
    assert [e["status"] for e in log[:3]] == [200, 429, 503]
    assert all(e["path"].startswith("/v1/erp/") for e in log)


@pytest.mark.postgres
def test_a_database_that_is_gone_is_a_503(installed: tuple[str, str], pg_url: str) -> None:
    schema, reader = installed
    served, client = client_for(reader, schema)
    with served, client:
        assert client.get("/v1/erp/job_header").status_code == 200
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        r = client.get("/v1/erp/job_header")
        assert r.status_code == 503 and "ERP database" in r.json()["error"]


def test_install_into_an_unreachable_server_is_a_simulation_error(plant: SimulatedPlant) -> None:
    with pytest.raises(SimulationError, match="cannot install"):
        install_erp("postgresql://postgres@127.0.0.1:1/none?connect_timeout=2", plant, schema="erp_sim_x")
