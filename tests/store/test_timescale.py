"""TimescaleDB for real: the complete layout in a warehouse of its own schema, ``production_hourly``
kept equal to the plain query through loads and back-fills, the ways from plain PostgreSQL and back
keeping every row, and a failing step. Runs where a server has TimescaleDB preloaded
(``WORKBENCH_TEST_TIMESCALE_URL``); skipped with the reason elsewhere."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from workbench import schema
from workbench.demo import load_plant
from workbench.errors import StoreError
from workbench.store import PostgresWarehouse, timescale

pytestmark = pytest.mark.postgres

#: The plain view's query, run against whatever production_hourly is.
PLAIN_HOURLY = ("SELECT date_bin('1 hour', time, TIMESTAMPTZ '2000-01-01') AS hour, machine_id, part_number, "
                "sum(good_count) AS good, sum(reject_count) AS rejects, "
                "count(*) FILTER (WHERE event_type = 'cycle') AS cycles "
                "FROM production_events GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")
AGGREGATE = "SELECT * FROM production_hourly ORDER BY 1, 2, 3"
STEPS = {timescale.EXTENSION_STEP, timescale.AGGREGATE_STEP,
         *(timescale.hypertable_step_name(t.name) for t in timescale.hypertables())}


def events(start: dt.datetime, minutes: int, *, machine: str = "M01") -> pd.DataFrame:
    times = [start + dt.timedelta(minutes=m) for m in range(minutes)]
    return pd.DataFrame({"time": times, "machine_id": machine, "event_type": "cycle", "part_number": "P-100",
                         "good_count": [1 - m % 7 // 6 for m in range(minutes)],
                         "reject_count": [m % 7 // 6 for m in range(minutes)], "source": "test"})


def hourly(wh: PostgresWarehouse, query: str) -> pd.DataFrame:
    return wh.query(query).astype({"good": "int64", "rejects": "int64", "cycles": "int64"})


def assert_aggregate_is_current(wh: PostgresWarehouse) -> int:
    want = hourly(wh, PLAIN_HOURLY)
    pd.testing.assert_frame_equal(hourly(wh, AGGREGATE), want)
    return len(want)


def counts(wh: PostgresWarehouse) -> dict[str, int]:
    return wh.counts()


def test_a_timescale_warehouse_in_its_own_schema_is_complete_and_recorded(ts_schema_url: str) -> None:
    with PostgresWarehouse(ts_schema_url, timescale="on") as wh:
        wh.init_schema()
        first = wh.query("SELECT step, applied_at FROM schema_steps ORDER BY step")
        wh.init_schema()  # idempotent: nothing to do, nothing re-recorded
        pd.testing.assert_frame_equal(wh.query("SELECT step, applied_at FROM schema_steps ORDER BY step"), first)
        layout = wh.layout()
        assert layout.schema_name.startswith("wb_test_") and layout.extension_schema != layout.schema_name
        assert layout.missing() == [] and layout.unrecorded() == []
        assert layout.hypertables == {t.name for t in timescale.hypertables()} == layout.compressed
        assert ("machine_telemetry", "policy_retention") in layout.jobs
        assert layout.aggregate and layout.aggregate_realtime
        assert set(first["step"]) == STEPS
        status = wh.schema_status()
        assert status.ok and status.detail.startswith(f"version {schema.SCHEMA_VERSION}, TimescaleDB ") and "6 hypertable(s)" in status.detail


def test_production_hourly_equals_the_plain_query_after_loads_and_back_fills(ts_schema_url: str) -> None:
    now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)  # loads start on the hour
    with PostgresWarehouse(ts_schema_url, timescale="on") as wh:
        wh.init_schema()
        wh.write("production_events", events(now - dt.timedelta(hours=3), 150))
        assert assert_aggregate_is_current(wh) == 3
        # Older than the refresh policy's 3 days and below what is materialized: only the
        # refresh after the load makes it appear (real-time aggregation does not reach it).
        wh.write("production_events", events(now - dt.timedelta(days=40), 90, machine="M02"))
        assert assert_aggregate_is_current(wh) == 5
        with wh.transaction():  # a load inside a caller's transaction is refreshed after its commit
            wh.write("production_events", events(now - dt.timedelta(days=20), 60, machine="M03"))
            wh.write("production_events", events(now - dt.timedelta(days=50), 30, machine="M03"))
        assert assert_aggregate_is_current(wh) == 7
        with pytest.raises(RuntimeError), wh.transaction():
            wh.write("production_events", events(now - dt.timedelta(days=30), 60, machine="M04"))
            raise RuntimeError("rolled back")
        assert assert_aggregate_is_current(wh) == 7
        table = wh.query("SELECT format('%I.%I', materialization_hypertable_schema, "
                         "materialization_hypertable_name) AS t FROM timescaledb_information.continuous_aggregates "
                         "WHERE view_schema = current_schema()")["t"][0]
        materialized = wh.query(f"SELECT count(*) AS n FROM {table}")["n"][0]
        assert materialized == 7  # every hour written was refreshed, none left to real-time aggregation


def test_plain_to_timescale_and_back_keep_every_row(ts_schema_url: str, small_plant, tmp_path) -> None:
    with PostgresWarehouse(ts_schema_url, timescale="off") as wh:
        load_plant(small_plant, wh, truth_dir=tmp_path / "truth")
        before = counts(wh)
        plain_hours = hourly(wh, AGGREGATE)
        assert before["production_events"] > 0 and not wh.layout().has_timescale
    with PostgresWarehouse(ts_schema_url, timescale="auto") as wh:  # TimescaleDB installed meanwhile
        wh.init_schema()
        assert wh.layout().missing() == [] and counts(wh) == before
        pd.testing.assert_frame_equal(hourly(wh, AGGREGATE), plain_hours)
        assert wh.schema_status().ok
        # Compressed chunks must come back too.
        ext = wh.layout().extension_schema
        chunks = wh.query(f"SELECT c::text AS c FROM {ext}.show_chunks('production_events') c")["c"]
        for chunk in chunks:
            try:
                wh.query(f"SELECT {ext}.compress_chunk(%s::regclass, if_not_compressed => TRUE)", (chunk,))
            except StoreError as exc:  # the compression policy's job got there first
                if "already compressed" not in str(exc):
                    raise
        compressed = wh.query("SELECT count(*) AS n FROM timescaledb_information.chunks WHERE is_compressed "
                              "AND hypertable_schema = current_schema() AND hypertable_name = 'production_events'")
        assert compressed["n"][0] > 0
        assert counts(wh) == before
    with PostgresWarehouse(ts_schema_url, timescale="off") as wh:
        status = wh.schema_status()
        assert not status.ok and "copies it back into plain tables" in status.detail
        wh.init_schema()
        layout = wh.layout()
        assert not layout.has_timescale and layout.view
        assert layout.recorded == set()  # the way back forgets the steps, it records nothing of its own
        assert counts(wh) == before
        pd.testing.assert_frame_equal(hourly(wh, AGGREGATE), plain_hours)
        pkey = wh.query("SELECT conname FROM pg_constraint WHERE conrelid = 'production_events'::regclass "
                        "AND contype = 'p'")["conname"].tolist()
        assert pkey == ["production_events_pkey"]
        assert wh.schema_status().ok
        wh.init_schema()
        assert counts(wh) == before


def test_a_failing_timescale_step_names_the_statement_and_records_only_what_was_built(ts_schema_url: str) -> None:
    with PostgresWarehouse(ts_schema_url, timescale="off") as wh:
        wh.init_schema()
        # A unique index without the time column: PostgreSQL refuses to partition the table by time.
        wh.conn.execute("CREATE UNIQUE INDEX wb_event_only ON scrap_events (event_id)")
    with PostgresWarehouse(ts_schema_url, timescale="on") as wh:
        with pytest.raises(StoreError, match=r"schema step 'hypertable scrap_events' failed at `SELECT "
                                             r".*\"create_hypertable\"\('scrap_events'.*wb_event_only|"
                                             r"schema step 'hypertable scrap_events' failed at `SELECT .*"
                                             r"create_hypertable"):
            wh.init_schema()
        layout = wh.layout()
        assert "scrap_events" not in layout.hypertables
        assert timescale.hypertable_step_name("scrap_events") not in layout.recorded
        assert timescale.hypertable_step_name("production_events") in layout.recorded
        assert wh.schema_version() == schema.SCHEMA_VERSION  # the canonical tables are complete
        status = wh.schema_status()
        assert not status.ok and "half-built, missing hypertable scrap_events" in status.detail
        assert "continuous aggregate production_hourly" in status.detail
        wh.conn.execute("DROP INDEX wb_event_only")
        wh.init_schema()
        assert wh.layout().missing() == [] and wh.schema_status().ok


def test_a_warehouse_built_before_the_steps_were_recorded_is_adopted(ts_schema_url: str) -> None:
    old = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)
    with PostgresWarehouse(ts_schema_url, timescale="on") as wh:
        wh.init_schema()
        ext = wh.layout().extension_schema
        # What the first release left: no records, a materialized-only aggregate, rows it never saw.
        wh.conn.execute("DELETE FROM schema_steps")
        wh.conn.execute("ALTER MATERIALIZED VIEW production_hourly SET (timescaledb.materialized_only = true)")
        wh.conn.execute(f"SELECT {ext}.delete_job(job_id) FROM timescaledb_information.jobs "
                        "WHERE hypertable_schema = current_schema() AND hypertable_name = 'production_hourly'")
        wh._aggregate_ext = ""  # as the old code: no refresh after the load
        wh.write("production_events", events(old, 120))
        assert wh.query("SELECT count(*) AS n FROM production_hourly")["n"][0] == 0
        assert not wh.schema_status().ok
        wh.init_schema()
        assert wh.layout().missing() == [] and set(wh.layout().recorded) == STEPS
        assert assert_aggregate_is_current(wh) == 2
