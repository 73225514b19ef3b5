"""Fixtures of the shop-floor collection and sync tests."""

from __future__ import annotations

import datetime as dt
import uuid

import psycopg
import pytest

from workbench.simulate import PlantConfig, SimulatedPlant, simulate_plant


@pytest.fixture(scope="session")
def plant() -> SimulatedPlant:
    """4 machines, 2 days from Monday 2026-11-16, no collector outages (the PLCs keep counting)."""
    return simulate_plant(PlantConfig(seed=5, n_machines=4, n_lines=2, days=2, start=dt.date(2026, 11, 16),
                                      collector_outages=False, telemetry_interval_s=10))


@pytest.fixture
def pg_role_url(pg_url):
    """A schema owned by its own login role, so a test can lock a writer (the collector, a sync) out of
    PostgreSQL: ``(url, role)``."""
    role = f"wb_role_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"CREATE SCHEMA {role} AUTHORIZATION {role}")
    from urllib.parse import quote, urlsplit, urlunsplit

    parts = urlsplit(pg_url)
    netloc = f"{role}@{parts.hostname}:{parts.port or 5432}"
    url = urlunsplit((parts.scheme, netloc, parts.path, f"options={quote(f'-csearch_path={role}')}", ""))
    yield url, role
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"ALTER ROLE {role} LOGIN")
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
        conn.execute(f"DROP SCHEMA {role} CASCADE")
        conn.execute(f"DROP ROLE {role}")
