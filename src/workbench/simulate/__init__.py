"""Synthetic discrete-manufacturing plant with ground truth, for the demo, tests and benchmarks.

>>> from workbench.simulate import PlantConfig, simulate_plant
>>> plant = simulate_plant(PlantConfig(seed=7, n_machines=12, days=30))  # doctest: +SKIP
>>> plant.tables["production_events"]  # canonical tables     # doctest: +SKIP
>>> plant.truth.oee                    # what really happened  # doctest: +SKIP

See :mod:`workbench.simulate.plant` for the design decisions and
:data:`workbench.simulate.truth.DEFINITIONS` for the ground-truth definitions.
"""

from workbench.simulate.config import PlantConfig
from workbench.simulate.plant import SimulatedPlant, simulate_plant
from workbench.simulate.truth import GroundTruth

#: The canonical tables a simulated plant has.
TABLE_NAMES: tuple[str, ...] = (
    "machines", "parts", "part_rates", "shift_calendar", "planned_stops", "reason_codes",
    "machine_telemetry", "production_events", "machine_states", "downtime_events", "scrap_events",
    "work_orders", "quality_measurements", "characteristics", "inspections",
)

__all__ = ["TABLE_NAMES", "GroundTruth", "PlantConfig", "SimulatedPlant", "simulate_plant"]
