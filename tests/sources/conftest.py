"""Fixtures of the shop-floor collection tests."""

from __future__ import annotations

import datetime as dt

import pytest

from workbench.simulate import PlantConfig, SimulatedPlant, simulate_plant


@pytest.fixture(scope="session")
def plant() -> SimulatedPlant:
    """4 machines, 2 days from Monday 2026-11-16, no collector outages (the PLCs keep counting)."""
    return simulate_plant(PlantConfig(seed=5, n_machines=4, n_lines=2, days=2, start=dt.date(2026, 11, 16),
                                      collector_outages=False, telemetry_interval_s=10))
