"""Shared fixtures: a fresh warehouse on each engine.

PostgreSQL is a real server (``WORKBENCH_TEST_DATABASE_URL``, default the local ``test``
database). Each test gets its own schema, dropped afterwards. In CI (``CI`` set) an unreachable
server is a failure, not a skip: ``.ci/run`` starts it.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import psycopg
import pytest

from workbench.simulate import PlantConfig, SimulatedPlant, simulate_plant
from workbench.store import DuckDBWarehouse, PostgresWarehouse, Warehouse

# Prefect's temporary test server must not try to send telemetry out of this machine.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

PG_URL = os.environ.get("WORKBENCH_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
#: A server with TimescaleDB preloaded, for the TimescaleDB modes (else the test server, if it has it).
TIMESCALE_URL = os.environ.get("WORKBENCH_TEST_TIMESCALE_URL")


def _pg_or_fail() -> str:
    try:
        with psycopg.connect(PG_URL, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        msg = f"PostgreSQL not reachable at {PG_URL}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(msg + " (CI must provide it: .ci/run starts it)")
        pytest.skip(msg)
    return PG_URL


@pytest.fixture
def use_home(monkeypatch: pytest.MonkeyPatch):
    """``use_home(path)`` points the workbench settings at a project directory: no WORKBENCH_*
    variable of the developer's shell leaks in, and the cached settings are re-read."""
    from workbench import config

    def point(home) -> None:
        for key in list(os.environ):
            if key.startswith("WORKBENCH_"):
                monkeypatch.delenv(key)
        monkeypatch.setenv("WORKBENCH_HOME", str(home))
        monkeypatch.setenv("WORKBENCH_ENV_FILE", str(home / ".env"))
        monkeypatch.setenv("COLUMNS", "200")
        config.reset()

    yield point
    config.reset()


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """One temporary Prefect server for the whole session (it takes ~20 s to start), shared by
    every test that runs a flow (tests/flows, the report e-mail's end-to-end test)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def pg_url() -> str:
    """URL of the test PostgreSQL server (fails in CI, skips elsewhere when unreachable)."""
    return _pg_or_fail()


@contextmanager
def _fresh_schema(url: str) -> Iterator[str]:
    name = f"wb_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options={quote(f'-csearch_path={name}')}"
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            # TimescaleDB: a policy job running while its hypertable is dropped (or while another
            # job is deleted in the same transaction) deadlocks; delete_job, one per transaction,
            # waits for the run instead.
            ext = conn.execute("SELECT extnamespace::regnamespace::text FROM pg_extension "
                               "WHERE extname = 'timescaledb'").fetchone()
            if ext is not None:
                jobs = conn.execute("SELECT job_id FROM timescaledb_information.jobs "
                                    "WHERE hypertable_schema = %s", (name,)).fetchall()
                for (job_id,) in jobs:
                    conn.execute(f"SELECT {ext[0]}.delete_job(%s)", (job_id,))
            conn.execute(f"DROP SCHEMA {name} CASCADE")


@pytest.fixture
def pg_schema_url(pg_url: str) -> Iterator[str]:
    """A URL whose search_path is a fresh, empty schema (dropped after the test)."""
    with _fresh_schema(pg_url) as url:
        yield url


@pytest.fixture(scope="session")
def timescale_url() -> str:
    """A server where TimescaleDB is usable (preloaded, licence ``timescale``).

    ``WORKBENCH_TEST_TIMESCALE_URL`` (a failure when set but unusable), else the test server when
    it has TimescaleDB; skipped with the reason otherwise (CI has plain PostgreSQL).
    """
    from workbench.store import timescale

    url = TIMESCALE_URL or PG_URL
    try:
        with psycopg.connect(url, connect_timeout=5, autocommit=True) as conn:
            support = timescale.probe(conn, url)
    except psycopg.OperationalError as exc:
        support = timescale.Support(False, f"not reachable: {exc}")
    if not support.usable:
        msg = f"no usable TimescaleDB at {url.rsplit('@', 1)[-1]}: {support.reason}"
        if TIMESCALE_URL:
            pytest.fail(msg)
        pytest.skip(msg + " (WORKBENCH_TEST_TIMESCALE_URL names a server that has it)")
    return url


@pytest.fixture
def ts_schema_url(timescale_url: str) -> Iterator[str]:
    """As ``pg_schema_url``, on the TimescaleDB server."""
    with _fresh_schema(timescale_url) as url:
        yield url


def _open_test_warehouse(request: pytest.FixtureRequest, tmp_path, variant: str) -> Warehouse:
    """An initialised, empty warehouse of one variant.

    ``duckdb``; ``postgres`` (the test server, ``off``); ``postgres-auto`` (the test server,
    ``auto``); ``timescale-on`` / ``timescale-auto`` (the TimescaleDB server, skipped where there
    is none).
    """
    if variant == "duckdb":
        wh: Warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    elif variant.startswith("timescale-"):
        wh = PostgresWarehouse(request.getfixturevalue("ts_schema_url"), timescale=variant.split("-")[1])
    else:
        mode = "auto" if variant == "postgres-auto" else "off"
        wh = PostgresWarehouse(request.getfixturevalue("pg_schema_url"), timescale=mode)
    try:
        wh.init_schema()
    except BaseException:
        wh.close()
        raise
    return wh


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request: pytest.FixtureRequest, tmp_path) -> Iterator[Warehouse]:
    """An initialised, empty warehouse on each engine."""
    wh = _open_test_warehouse(request, tmp_path, request.param)
    try:
        yield wh
    finally:
        wh.close()


@pytest.fixture
def open_variant(request: pytest.FixtureRequest, tmp_path):
    """``open_variant(variant)``: an initialised, empty warehouse of that variant (see
    ``_open_test_warehouse``), for fixtures that parametrise more variants; the caller closes it."""
    return lambda variant: _open_test_warehouse(request, tmp_path, variant)


# -- simulated plants, simulated once per session -------------------------------------------

#: 4 machines x 10 days across the end of US daylight saving time (Sunday 2026-11-01). Saturday is
#: scheduled, so the C shift of Saturday 2026-10-31 runs 22:00 CDT -> 06:00 CST: 9 hours.
SMALL = PlantConfig(seed=11, n_machines=4, n_lines=2, days=10, start=dt.date(2026, 10, 26),
                    workdays=(0, 1, 2, 3, 4, 5))


@pytest.fixture(scope="session")
def small_plant() -> SimulatedPlant:
    """The small plant across the DST change."""
    return simulate_plant(SMALL)


@pytest.fixture(scope="session")
def default_plant() -> SimulatedPlant:
    """The default plant (12 machines, 3 lines, 30 days from 2026-10-19, America/Chicago)."""
    return simulate_plant(PlantConfig())
