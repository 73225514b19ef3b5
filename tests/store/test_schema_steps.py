"""Schema steps without TimescaleDB: a failing step names its statement and leaves nothing behind,
migrations run once and are recorded only when they succeeded, and ``workbench doctor`` says what
the schema really is. The TimescaleDB steps are run for real against a server that cannot do them
(plain PostgreSQL), which is how they fail in the field."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from workbench import config, schema
from workbench.cli import app, doctor_checks
from workbench.errors import StoreError
from workbench.store import PostgresWarehouse, Warehouse, migrations, timescale

T0 = pd.Timestamp("2026-11-01T05:00:00Z")


def events() -> pd.DataFrame:
    return pd.DataFrame({
        "time": [T0 + pd.Timedelta(minutes=m) for m in (1, 2, 61)], "machine_id": "M01",
        "event_type": "cycle", "part_number": "P-100", "good_count": [1, 0, 1], "reject_count": [0, 1, 0],
        "source": "test"})


@pytest.fixture
def plain(pg_schema_url: str):
    with PostgresWarehouse(pg_schema_url, timescale="off") as wh:
        wh.init_schema()
        yield wh


def _recorded(wh: PostgresWarehouse) -> set[str]:
    return wh.layout().recorded


@pytest.mark.postgres
def test_a_failing_step_names_the_statement_and_keeps_nothing(plain: PostgresWarehouse) -> None:
    step = migrations.Step("test.two_statements", "a test step",
                           ("CREATE TABLE wb_step_probe (a integer)", "SELECT 1 / 0"))
    with pytest.raises(StoreError, match=r"schema step 'a test step' failed at `SELECT 1 / 0`: division by zero"
                                         r".*Nothing of this step was kept or recorded"):
        migrations.apply_step(plain.conn, step)
    assert plain.query("SELECT to_regclass('wb_step_probe') IS NULL AS gone")["gone"][0]
    assert "test.two_statements" not in _recorded(plain)
    migrations.apply_step(plain.conn, migrations.Step("test.ok", "a test step", ("CREATE TABLE wb_step_ok (a int)",)))
    assert "test.ok" in _recorded(plain)


@pytest.mark.postgres
def test_timescale_steps_on_a_server_without_it_fail_cleanly(plain: PostgresWarehouse) -> None:
    if plain.timescale_available():
        pytest.skip("this server has TimescaleDB: its steps would not fail here")
    plain.write("production_events", events())
    layout = plain.layout()
    support = timescale.Support(True, "as if the server had it", schema="public", version="2.21.4")
    steps = timescale.to_timescale(layout, support, hourly_sql=lambda b: f"SELECT {b}",
                                   plain_view_sql="SELECT 1")
    assert [s.name for s in steps][:2] == [timescale.EXTENSION_STEP, "timescale.hypertable.machine_telemetry"]

    with pytest.raises(StoreError, match="schema step 'the timescaledb extension' failed at "
                                         "`CREATE EXTENSION IF NOT EXISTS timescaledb WITH SCHEMA \"public\"`"):
        migrations.apply_steps(plain.conn, steps)
    table = schema.table("production_events")
    with pytest.raises(StoreError, match=r"'hypertable production_events' failed at `SELECT \"public\"."
                                         r"\"create_hypertable\"\('production_events'"):
        migrations.apply_step(plain.conn, timescale.hypertable_step(table, layout, "public"))
    aggregate = timescale.aggregate_step(layout, "public", lambda b: f"SELECT {b} AS hour FROM production_events",
                                         "SELECT 1")
    # Runs DROP VIEW, then fails creating the continuous aggregate: the undo brings the view back.
    with pytest.raises(StoreError, match=r"continuous aggregate production_hourly' failed at `CREATE MATERIALIZED "
                                         r"VIEW .*production_hourly is the plain view again"):
        migrations.apply_step(plain.conn, aggregate)
    assert not any(s.startswith("timescale.") for s in _recorded(plain))
    assert plain.count("production_events") == 3
    status = plain.schema_status()
    assert status.ok and "plain PostgreSQL (production_hourly is a view)" in status.detail, status.detail


#: The schema version of today's warehouses, and the one a test adds after it.
NOW = schema.SCHEMA_VERSION
NEXT = NOW + 1


@pytest.fixture
def newer_schema(monkeypatch: pytest.MonkeyPatch):
    """``newer_schema(statements)``: the schema gains a version NEXT made of ``statements``."""
    def bump(statements: list[str]) -> None:
        extra = schema.Migration(NEXT, "ml_anomalies.wb_test_note", lambda engine: list(statements))
        monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS, extra))
        monkeypatch.setattr(schema, "SCHEMA_VERSION", NEXT)
    return bump


def test_a_pending_migration_runs_once_and_is_recorded(warehouse: Warehouse, newer_schema) -> None:
    assert warehouse.schema_version() == NOW
    newer_schema(["ALTER TABLE ml_anomalies ADD COLUMN IF NOT EXISTS wb_test_note TEXT"])
    status = warehouse.schema_status()
    assert not status.ok and f"version {NOW}, {NEXT} is current" in status.detail
    warehouse.init_schema()
    warehouse.init_schema()
    assert warehouse.schema_version() == NEXT
    assert warehouse.query("SELECT count(*) AS n FROM schema_version")["n"][0] == NEXT
    assert "wb_test_note" in set(warehouse.query("SELECT * FROM ml_anomalies").columns)
    assert warehouse.schema_status().ok


def test_a_failing_migration_names_it_and_leaves_the_version(warehouse: Warehouse, newer_schema) -> None:
    newer_schema(["ALTER TABLE ml_anomalies ADD COLUMN IF NOT EXISTS wb_test_note TEXT",
                  "ALTER TABLE wb_no_such_table ADD COLUMN x INTEGER"])
    with pytest.raises(StoreError, match=f"schema step 'version {NEXT}: ml_anomalies.wb_test_note' failed at "
                                         "`ALTER TABLE wb_no_such_table ADD COLUMN x INTEGER`"):
        warehouse.init_schema()
    assert warehouse.schema_version() == NOW
    assert "wb_test_note" not in set(warehouse.query("SELECT * FROM ml_anomalies").columns)
    assert not warehouse.schema_status().ok


def test_a_new_warehouse_records_every_version_without_running_them(tmp_path, newer_schema) -> None:
    from workbench.store import DuckDBWarehouse

    newer_schema(["ALTER TABLE wb_no_such_table ADD COLUMN x INTEGER"])  # would fail if it ran
    with DuckDBWarehouse(tmp_path / "new.duckdb") as wh:
        wh.init_schema()
        assert wh.query("SELECT version FROM schema_version ORDER BY 1")["version"].tolist() == [
            *range(1, NEXT + 1)]


def test_add_column_types_the_column_from_the_schema() -> None:
    stmts = schema.add_column("ml_anomalies", "score")
    assert stmts("postgres") == ["ALTER TABLE ml_anomalies ADD COLUMN IF NOT EXISTS score double precision"]
    assert stmts("duckdb") == ["ALTER TABLE ml_anomalies ADD COLUMN IF NOT EXISTS score DOUBLE"]
    with pytest.raises(Exception, match="must be nullable"):
        schema.add_column("ml_anomalies", "anomaly_id")


def _schema_line() -> tuple[bool, str]:
    return next((ok, detail) for what, ok, detail in doctor_checks() if what == "schema")


@pytest.mark.postgres
def test_doctor_and_db_init_say_what_the_schema_is(pg_schema_url: str, tmp_path, use_home,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def setting(key: str, value: str) -> None:
        monkeypatch.setenv(key, value)
        config.reset()  # the settings are cached per process

    use_home(tmp_path)
    setting("WORKBENCH_DATABASE_URL", pg_schema_url)
    setting("WORKBENCH_FORK_KERNELS", "false")
    runner = CliRunner()
    with PostgresWarehouse(pg_schema_url) as probe:
        has_timescale = probe.timescale_support().usable
    if not has_timescale:
        setting("WORKBENCH_TIMESCALE", "on")
        refused = runner.invoke(app, ["db", "init"], catch_exceptions=False)
        assert refused.exit_code == 2 and "Traceback" not in refused.output
        assert "error: WORKBENCH_TIMESCALE=on but the timescaledb extension is not available" in refused.output
        assert _schema_line() == (False, "not initialised — run `workbench db init`")
    setting("WORKBENCH_TIMESCALE", "off")
    done = runner.invoke(app, ["db", "init"], catch_exceptions=False)
    assert done.exit_code == 0 and f"Schema version {NOW} ready in postgres (plain PostgreSQL)" in done.output
    assert _schema_line() == (True, f"version {NOW}, plain PostgreSQL (production_hourly is a view)")
    with PostgresWarehouse(pg_schema_url, timescale="off") as wh:  # a record without the hypertable
        wh.conn.execute("INSERT INTO schema_steps VALUES ('timescale.hypertable.machine_telemetry', now())")
    ok, detail = _schema_line()
    assert not ok and "records TimescaleDB steps it does not have (timescale.hypertable.machine_telemetry)" in detail
    with PostgresWarehouse(pg_schema_url, timescale="off") as wh:
        wh.init_schema()  # forgets the stray record
        wh.conn.execute("DROP VIEW production_hourly")
    ok, detail = _schema_line()
    assert not ok and "production_hourly is missing — run `workbench db init`" in detail


def test_a_version_1_warehouse_gains_the_ml_anomalies_columns(warehouse: Warehouse) -> None:
    # As a warehouse made before version 2 is: ml_anomalies without its four later columns.
    new = ("detected_at", "likely_cause", "hypotheses", "detail")
    for col in new:
        warehouse.query(f"ALTER TABLE ml_anomalies DROP COLUMN {col}")
    warehouse.query("DELETE FROM schema_version WHERE version > 1")
    assert warehouse.schema_version() == 1 and not warehouse.schema_status().ok
    warehouse.init_schema()
    assert warehouse.schema_version() == schema.SCHEMA_VERSION >= 2
    assert set(new) <= set(warehouse.query("SELECT * FROM ml_anomalies").columns)
    assert warehouse.schema_status().ok


def test_a_write_to_an_older_schema_says_to_run_db_init(warehouse: Warehouse) -> None:
    warehouse.query("ALTER TABLE ml_anomalies DROP COLUMN detected_at")
    warehouse.query("DELETE FROM schema_version WHERE version > 1")
    row = pd.DataFrame({"anomaly_id": ["a1"], "machine_id": ["M01"], "time_start": [T0], "detector": ["scrap"],
                        "detected_at": [T0]})
    with pytest.raises(StoreError, match=r"^the warehouse is at schema version 1 and this workbench needs \d+: "
                                         r"run `workbench db init` .*: writing 1 rows to ml_anomalies failed"):
        warehouse.write("ml_anomalies", row)
