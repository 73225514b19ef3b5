"""The ERP sync, read-only, against the simulated ERP: its PostgreSQL schema through a SELECT-only
role (SQL adapter) and the same rows behind its REST API. The warehouse's work orders, parts and
BOM equal the ERP's; a re-run changes nothing; a changed work order is updated, once; and the
ERP connection cannot write."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from sync_support import FAST, KEY, open_wh, settings_for, sim_post, sim_reset, spec, watermarks

from workbench.errors import ConfigError
from workbench.simulate import PlantConfig, simulate_plant
from workbench.simulate.erp import erp_rest_app, erp_tables, install_erp
from workbench.simulate.http import ServedApp
from workbench.sources.erp import SqlErp, load_mapping
from workbench.sources.syncs import sync_erp

pytestmark = pytest.mark.postgres

#: ERP column → warehouse column, as pipelines/plant/erp.yaml maps them.
WORK_ORDER_COLUMNS = {
    "job_num": "work_order", "part_num": "part_number", "resource_id": "machine_id", "prod_qty": "order_qty",
    "qty_completed": "completed_qty", "qty_scrapped": "scrap_qty", "std_mtl_cost": "material_cost_per_unit",
    "labor_rate": "labor_rate_per_hour", "customer_name": "customer", "due_date": "due_date",
    "job_status": "status", "released_at": "released_at", "closed_at": "closed_at"}


@pytest.fixture(scope="module")
def plant():
    return simulate_plant(PlantConfig(seed=11, n_machines=4, n_lines=2, days=30, telemetry=False,
                                      cycle_events=False))


@pytest.fixture(scope="module")
def erp(plant, pg_url):
    """The simulated ERP in schema erp_sim of the test database; yields the read-only role's URL."""
    yield install_erp(pg_url, plant)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS erp_sim CASCADE")


def _same(expected: pd.DataFrame, got: pd.DataFrame, key: str) -> None:
    expected = expected.sort_values(key).reset_index(drop=True)
    got = got[list(expected.columns)].sort_values(key).reset_index(drop=True)
    for col in expected.columns:
        if pd.api.types.is_datetime64_any_dtype(got[col]) or col in ("released_at", "closed_at"):
            expected[col] = pd.to_datetime(expected[col], utc=True)
            got[col] = pd.to_datetime(got[col], utc=True)
        elif col == "due_date":
            expected[col] = pd.to_datetime(expected[col]).dt.date
            got[col] = pd.to_datetime(got[col]).dt.date
    pd.testing.assert_frame_equal(expected, got, check_dtype=False)


def _expected_work_orders(plant) -> pd.DataFrame:
    return erp_tables(plant)["job_header"].rename(columns=WORK_ORDER_COLUMNS)[list(WORK_ORDER_COLUMNS.values())]


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_the_warehouse_gets_the_erps_work_orders_parts_and_bom_and_a_rerun_changes_nothing(
        engine, plant, erp, pg_url, tmp_path, request):
    url = request.getfixturevalue("pg_schema_url") if engine == "postgres" else None
    s = settings_for(tmp_path, database_url=url, erp_adapter="sql", erp_database_url=erp)
    report = sync_erp(s, spec(overlap=dt.timedelta(minutes=15)), retry_policy=FAST)
    assert report.ok, report.lines()
    truth = erp_tables(plant)
    assert report.entities["work_orders"].written == len(truth["job_header"]) == 180
    with open_wh(s) as wh:
        stored = wh.read("work_orders")
        _same(_expected_work_orders(plant), stored, "work_order")
        assert (stored["source"] == "erp").all()
        # the costs the Pareto and downtime-cost analyses use are the ERP's
        assert stored["material_cost_per_unit"].notna().all() and stored["labor_rate_per_hour"].notna().all()
        _same(truth["part_master"].rename(columns={"part_num": "part_number", "part_description": "description",
                                                   "product_group": "part_family"})[
            ["part_number", "description", "part_family"]], wh.read("parts"), "part_number")
        bom = truth["bom_lines"].rename(columns={"mtl_part": "component_part"})
        got_bom = wh.read("bom").assign(k=lambda f: f["parent_part"] + "|" + f["component_part"])
        _same(bom[["parent_part", "component_part", "qty_per", "uom"]].assign(
            k=lambda f: f["parent_part"] + "|" + f["component_part"]), got_bom, "k")
        marks = watermarks(wh, "erp")
        assert marks["work_orders"] == pd.Timestamp(truth["job_header"]["last_modified"].max()).to_pydatetime()

    again = sync_erp(s, spec(overlap=dt.timedelta(minutes=15)), retry_policy=FAST)
    assert again.ok and again.total("written") == 0

    # the ERP closes one work order: the next run updates that one and leaves the rest alone
    job = truth["job_header"].sort_values("job_num")["job_num"].iloc[3]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE erp_sim.job_header SET qty_completed = qty_completed + 5, job_status = 'closed', "
                     "last_modified = now() WHERE job_num = %s", (job,))
    try:
        changed = sync_erp(s, spec(overlap=dt.timedelta(minutes=15)), retry_policy=FAST)
        assert changed.ok and changed.entities["work_orders"].written == 1
        assert changed.entities["work_orders"].fetched < 10, "only what changed since the watermark is read"
        with open_wh(s) as wh:
            row = wh.read("work_orders").set_index("work_order").loc[job]
            before = truth["job_header"].set_index("job_num").loc[job]
            assert row["status"] == "closed" and row["completed_qty"] == before["qty_completed"] + 5
            assert wh.count("work_orders") == 180
    finally:
        install_erp(pg_url, plant)  # the module's ERP as it was


def test_the_rest_adapter_reads_the_same_rows_and_dead_letters_a_bad_one(plant, erp, tmp_path):
    with ServedApp(erp_rest_app(erp, api_key=KEY)) as served:
        s = settings_for(tmp_path, erp_adapter="rest", erp_base_url=served.url, erp_api_key=KEY)
        sim_post(served.url, "/_sim/faults", {"malformed": 1, "http_503": 1, "path": "job_header"})
        report = sync_erp(s, spec(page_size=50), retry_policy=FAST)
        assert report.ok, report.lines()
        assert report.retries == 1 and report.entities["work_orders"].dead_lettered == 1
        with open_wh(s) as wh:
            dead = wh.read("dead_letters")
            assert len(dead) == 1 and "prod_qty" in dead["reason"].iloc[0] and "lots" in dead["reason"].iloc[0]
            assert "job_num=" in dead["location"].iloc[0]
            assert wh.count("work_orders") == 179
        sim_reset(served.url)
        again = sync_erp(s, spec(page_size=50), since=dt.datetime(2000, 1, 1, tzinfo=dt.UTC), retry_policy=FAST)
        assert again.entities["work_orders"].written == 1
        with open_wh(s) as wh:
            _same(_expected_work_orders(plant), wh.read("work_orders"), "work_order")


def test_the_erp_connection_cannot_write(erp, pg_url):
    """Read-only by construction: the adapter's session refuses writes even with a superuser's URL,
    and the demo's role cannot write even in a read-write session."""
    mapping = load_mapping(Path(__file__).resolve().parents[2] / "pipelines" / "plant" / "erp.yaml")
    for url in (erp, pg_url):
        with SqlErp(url, mapping).connect() as conn, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO erp_sim.part_master (part_num, last_modified) VALUES ('X', now())")
        with SqlErp(url, mapping).connect() as conn, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("CREATE TABLE erp_sim.sneaky (x int)")
    with psycopg.connect(erp, autocommit=True) as conn:
        conn.execute("SET default_transaction_read_only = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE erp_sim.job_header SET prod_qty = 0")


def test_without_its_connection_the_erp_sync_says_what_to_set(tmp_path):
    s = settings_for(tmp_path, erp_adapter="sql")
    with pytest.raises(ConfigError, match="WORKBENCH_ERP_DATABASE_URL"):
        sync_erp(s, spec())
