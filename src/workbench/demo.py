"""Build the demo plant: simulate it, load every table into the warehouse, keep its ground truth."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from workbench.config import Settings
from workbench.simulate import PlantConfig, SimulatedPlant, simulate_plant
from workbench.store import Warehouse, WriteResult

#: Load order: dimensions before the facts that refer to them.
LOAD_ORDER = (
    "reason_codes", "machines", "parts", "part_rates", "shift_calendar", "planned_stops",
    "work_orders", "characteristics", "machine_states", "downtime_events", "production_events",
    "scrap_events", "quality_measurements", "inspections", "machine_telemetry",
)


@dataclass(frozen=True)
class LoadSummary:
    """What loading a simulated plant did."""

    config: PlantConfig
    results: dict[str, WriteResult]
    truth_dir: Path
    warehouse: str

    @property
    def first_day(self) -> dt.date:
        """First simulated production day."""
        return self.config.start

    @property
    def last_day(self) -> dt.date:
        """Last simulated production day."""
        return self.config.start + dt.timedelta(days=self.config.days - 1)


def default_start(days: int, tz: dt.tzinfo, *, today: dt.date | None = None) -> dt.date:
    """First day of a ``days``-long simulation whose last day is yesterday in the plant."""
    today = today or dt.datetime.now(tz).date()
    return today - dt.timedelta(days=days)


def load_plant(plant: SimulatedPlant, warehouse: Warehouse, *, truth_dir: Path) -> LoadSummary:
    """Write every table of ``plant`` into ``warehouse`` (idempotently) and its ground truth to
    ``truth_dir``.

    Each table is written in one transaction; loading the same plant twice writes nothing.
    """
    warehouse.init_schema()
    missing = set(plant.tables) - set(LOAD_ORDER)
    order = [t for t in LOAD_ORDER if t in plant.tables] + sorted(missing)
    results = {name: warehouse.write(name, plant.tables[name]) for name in order}
    plant.truth.save(truth_dir)
    return LoadSummary(plant.config, results, truth_dir, warehouse.location)


def build_demo(config: PlantConfig, settings: Settings, warehouse: Warehouse) -> LoadSummary:
    """Simulate the demo plant and load it (ground truth to ``<data>/ground_truth``)."""
    plant = simulate_plant(config)
    return load_plant(plant, warehouse, truth_dir=settings.data_path / "ground_truth")
