"""The plant's process-shift and tool-wear sizes are configurable, and the defaults are untouched.

``PlantConfig.process_shift_sigma`` and ``PlantConfig.tool_wear_sigma`` set the ranges the step
shifts and the tool-wear drift are drawn from. Each size is still one uniform draw from the same
random stream, so (1) the default ranges give exactly the plant they gave before the options
existed — checked against digests taken before the change — and (2) another range changes the
sizes and nothing else: same windows, same tools, same timeline, every size mapped linearly.
Everything is scored against the simulator's ground truth.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from workbench.errors import SimulationError
from workbench.simulate import PlantConfig, SimulatedPlant, simulate_plant

# A small plant with one injected step shift (seed 2: 2 machines × 10 days).
SMALL = PlantConfig(seed=2, n_machines=2, n_lines=1, days=10, start=dt.date(2026, 10, 19), telemetry=False)

# SHA-256 of DataFrame.to_csv(index=False) of each frame of SMALL with its float columns rounded to
# 9 decimals, taken on the simulator before process_shift_sigma / tool_wear_sigma existed (commit
# 77bca08~1; pandas as pinned in constraints.txt). Rounded, because the last bit of a float drawn
# through exp / power differs between CPUs (the unrounded truth.subgroups digest did across two
# machines) and such a difference is not a change of the plant.
BEFORE = {
    "quality_measurements": (1850, "5bd38a61b82b3992cab47681f3b931d5606e7dc5faa8cdbccf8fbf506f410c60"),
    "production_events": (16248, "878c45fa17cb35d0928351f1b51616106083dc925ac4a675567815de3fede57c"),
    "scrap_events": (303, "6b3997d29f7aa6769833326b90afc906b340a848f4c2dbb9036fd67719900f2a"),
    "truth.subgroups": (370, "e0580e0a2be8d146917f67ff9d2fb5bab63432d92cff223e612a936e8efc4c35"),
    "truth.process_shifts": (21, "61a46e9790cb88c2c9fa87fe055fbcec030cabdd7c7710262fde220c12cfc63e"),
}

# A plant big enough for a few step shifts, with the default ranges and with small steps / no wear.
BASE = PlantConfig(seed=9, n_machines=3, n_lines=1, days=20, start=dt.date(2026, 10, 19), telemetry=False)
SMALL_STEPS = (0.5, 1.0)


def digest(frame: pd.DataFrame) -> str:
    floats = frame.select_dtypes("floating").columns
    rounded = frame.assign(**{c: frame[c].round(9) for c in floats})
    return hashlib.sha256(rounded.to_csv(index=False).encode()).hexdigest()


@pytest.fixture(scope="module")
def base() -> SimulatedPlant:
    return simulate_plant(BASE)


@pytest.fixture(scope="module")
def quiet() -> SimulatedPlant:
    return simulate_plant(dataclasses.replace(BASE, process_shift_sigma=SMALL_STEPS, tool_wear_sigma=(0.0, 0.0)))


def test_default_ranges_give_the_plant_they_gave_before() -> None:
    assert (PlantConfig().process_shift_sigma, PlantConfig().tool_wear_sigma) == ((1.5, 3.0), (2.0, 3.0))
    plant = simulate_plant(SMALL)
    frames = {**{k: plant.tables[k] for k in ("quality_measurements", "production_events", "scrap_events")},
              "truth.subgroups": plant.truth.subgroups, "truth.process_shifts": plant.truth.process_shifts}
    assert {k: (len(v), digest(v)) for k, v in frames.items()} == BEFORE


def test_small_steps_and_no_wear_change_only_the_sizes(base: SimulatedPlant, quiet: SimulatedPlant) -> None:
    old, new = base.truth.process_shifts, quiet.truth.process_shifts
    # Same windows on the same tools and work orders: only the sizes differ.
    keys = ["machine_id", "part_number", "characteristic", "kind", "time_start", "time_end", "work_order"]
    assert_frame_equal(old[keys], new[keys])
    steps = (old["kind"] == "step").to_numpy()
    assert steps.sum() >= 3, "the test plant should inject a few step shifts"
    # Each step is sign × U: U = 1.5 + 1.5u by default, 0.5 + 0.5u here, with the same u and sign.
    u = (old.loc[steps, "shift_sigma"].abs().to_numpy() - 1.5) / 1.5
    expected = np.sign(old.loc[steps, "shift_sigma"].to_numpy()) * (0.5 + 0.5 * u)
    np.testing.assert_allclose(new.loc[steps, "shift_sigma"].to_numpy(), expected, rtol=0, atol=1e-12)
    sizes = new.loc[steps, "shift_sigma"].abs()
    assert sizes.between(*SMALL_STEPS).all()
    # No wear: every tool's drift at end of life is 0 (and so is the drift it reached).
    wear = new[new["kind"] == "tool_wear"]
    assert len(wear) > 0 and (wear["drift_end_sigma"] == 0).all() and (wear["shift_sigma"] == 0).all()
    # The timeline does not depend on the sizes: same states, same production.
    assert_frame_equal(base.tables["machine_states"], quiet.tables["machine_states"])
    assert len(base.tables["production_events"]) == len(quiet.tables["production_events"])


def test_subgroup_truth_follows_the_configured_steps(base: SimulatedPlant, quiet: SimulatedPlant) -> None:
    truth = quiet.truth.subgroups
    # No wear: the true mean is nominal + bias + step shift, never any drift.
    assert (truth["drift"] == 0).all()
    np.testing.assert_allclose(truth["true_mean"], truth["nominal"] + truth["bias"] + truth["shift"], atol=1e-9)
    # Subgroup shifts (the mean over its 5 parts) stay within the configured step range; the
    # default plant's reach the default range.
    in_shift = truth["shift"] != 0
    assert in_shift.sum() >= 10
    assert (truth.loc[in_shift, "shift"].abs() / truth.loc[in_shift, "sigma"] <= SMALL_STEPS[1] + 1e-9).all()
    old = base.truth.subgroups
    assert (old["drift"] != 0).mean() > 0.5  # wear drifts most default subgroups
    assert (old.loc[old["shift"] != 0, "shift"].abs() / old.loc[old["shift"] != 0, "sigma"]).max() > SMALL_STEPS[1]
    # The measurements follow the truth: a subgroup's measured mean is within 5σ/√5 of its true mean.
    q = quiet.tables["quality_measurements"].groupby("subgroup_id")["value"].mean()
    t = truth.set_index("subgroup_id")
    gap = (q.reindex(t.index) - t["true_mean"]).abs() / (t["sigma"] / np.sqrt(5))
    assert gap.max() < 5


def test_config_round_trip_and_validation() -> None:
    cfg = PlantConfig(process_shift_sigma=(0.5, 1.5), tool_wear_sigma=(0, 0))
    data = json.loads(json.dumps(cfg.to_dict()))
    assert data["process_shift_sigma"] == [0.5, 1.5] and data["tool_wear_sigma"] == [0, 0]
    assert PlantConfig.from_dict(data) == cfg
    assert PlantConfig(process_shift_sigma=[1, 2]).process_shift_sigma == (1, 2)  # type: ignore[arg-type]
    # A manifest written before the options existed still loads, with the defaults.
    old = {k: v for k, v in PlantConfig().to_dict().items() if k not in ("process_shift_sigma", "tool_wear_sigma")}
    assert PlantConfig.from_dict(old) == PlantConfig()


@pytest.mark.parametrize(("changes", "message"), [
    ({"process_shift_sigma": (0.0, 1.0)}, r"process_shift_sigma must be a \(low, high\) pair with 0 < low"),
    ({"process_shift_sigma": (2.0, 1.0)}, r"process_shift_sigma must be .* <= high <= 10"),
    ({"process_shift_sigma": (1.0, 11.0)}, r"<= high <= 10 \(process sigmas\), got \(1.0, 11.0\)"),
    ({"process_shift_sigma": (1.0,)}, r"process_shift_sigma must be a \(low, high\) pair of numbers"),
    ({"tool_wear_sigma": (-0.5, 1.0)}, r"tool_wear_sigma must be a \(low, high\) pair with 0 <= low"),
    ({"tool_wear_sigma": ("2", 3)}, r"tool_wear_sigma must be a \(low, high\) pair of numbers"),
    ({"tool_wear_sigma": (True, 3)}, r"tool_wear_sigma must be a \(low, high\) pair of numbers"),
    ({"tool_wear_sigma": 2.0}, r"tool_wear_sigma must be a \(low, high\) pair of numbers"),
])
def test_invalid_ranges(changes: dict, message: str) -> None:
    with pytest.raises(SimulationError, match=message):
        PlantConfig(**changes)


def test_longer_steps_last_longer(base: SimulatedPlant) -> None:
    assert PlantConfig().process_shift_hours == (4.0, 12.0)
    longer = simulate_plant(dataclasses.replace(BASE, process_shift_hours=(24.0, 48.0)))
    old, new = (p.truth.process_shifts for p in (base, longer))
    old, new = old[old["kind"] == "step"], new[new["kind"] == "step"]
    # the same steps (same start, order and size: one uniform draw per step either way) …
    keys = ["machine_id", "part_number", "characteristic", "time_start", "work_order", "shift_sigma"]
    assert_frame_equal(old[keys].reset_index(drop=True), new[keys].reset_index(drop=True))
    hours = (new["time_end"] - new["time_start"]).dt.total_seconds() / 3600
    # … each at most 48 h (less where its work order ends first) and never shorter than before
    assert (hours <= 48.0 + 1e-9).all()
    assert (new["time_end"].to_numpy() >= old["time_end"].to_numpy()).all()
    assert len(new) >= 3 and hours.max() > 12.0
    with pytest.raises(SimulationError, match=r"process_shift_hours must be a \(low, high\) pair of hours"):
        PlantConfig(process_shift_hours=(0.0, 5.0))
