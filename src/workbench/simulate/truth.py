"""Ground truth of a simulated plant: what really happened, for scoring analyses against.

:class:`GroundTruth` is a frozen set of pandas frames plus the configuration that produced them;
:meth:`GroundTruth.save` writes a directory with ``manifest.json`` (configuration, row counts and
the definitions below) and one Parquet file per frame, :meth:`GroundTruth.load` reads it back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import SimulationError
from workbench.simulate.config import PlantConfig

TRUTH_FORMAT = "workbench.simulate.truth"
TRUTH_VERSION = 1

#: Written to the manifest so a reader knows exactly what each number means.
DEFINITIONS: dict[str, Any] = {
    "oee": {
        "grain": "machine x production day (shift_date = plant-local date the shift starts)",
        "scheduled_min": "sum of the day's scheduled shift lengths (instants, so DST nights count 7 h / 9 h)",
        "planned_stop_min": "planned stops inside those shifts: breaks, no demand, scheduled maintenance",
        "planned_busy_min": "PBT = scheduled_min - planned_stop_min",
        "no_data_min": "collector outages inside PBT (machine state no_data)",
        "observed_pbt_min": "PBT - no_data_min = apt_min + down_min + setup_min",
        "run_min": "time in state running",
        "micro_stop_min": "time in state idle: stops shorter than micro_stop_threshold_s",
        "apt_min": "APT = run_min + micro_stop_min (ISO 22400: micro-stops are a performance loss)",
        "down_min": "unplanned stops >= threshold (state down)",
        "setup_min": "changeovers (state setup), an availability loss",
        "produced": "cycles completed in the day's shifts ([start, end)) and observed (not in no_data)",
        "good": "produced - rejects",
        "ideal_min": "sum over produced parts of the part_rates ideal cycle time of (machine, part), /60",
        "ideal_good_min": "the same sum over good parts only: fully productive time",
        "availability": "apt_min / observed_pbt_min",
        "performance": "ideal_min / apt_min",
        "quality": ("ideal_good_min / ideal_min: good output weighted by ideal time (equals good / "
                    "produced when one ideal rate applies), so that oee = A x P x Q = "
                    "ideal_good_min / observed_pbt_min at every level of aggregation"),
        "quality_ratio": "good / produced (ISO 22400 GQ / PQ)",
        "oee": "availability x performance x quality = ideal_good_min / observed_pbt_min",
        "undefined": ("a ratio is NaN when its denominator is 0; oee is NaN only when observed_pbt_min is "
                      "0 and is 0 when there was observed planned time but no good output"),
    },
    "stops": ("one row per downtime_events row (same event_id): the true cause/code, what the operator "
              "entered (blank or mislabelled), and the precursor window if the cause has one; stop_id "
              "groups the rows of one physical stop split at shift / outage boundaries"),
    "downtime_events": ("one row per down, setup, maintenance or no-demand interval of machine_states; "
                        "breaks are only in planned_stops"),
    "anomaly_windows": ("vibration / hydraulic / drive precursors (the stop_event_id they announce), "
                        "material scrap windows per machine that ran the bad lot, tool end-of-life "
                        "scrap windows and process-shift windows"),
    "process_shifts": ("kind=step: a step of shift_sigma process sigmas in the characteristic's mean; "
                       "kind=tool_wear: drift of drift_end_sigma * (age/life)^1.5 over a tool's life "
                       "(slope_sigma_per_h = average drift per hour of APT)"),
    "counter_resets": ("16-bit PLC counters part_count_total (all cycles) and reject_count_total: "
                       "rollover 65535 -> 0 (value_before 65535) or reset to 0 by a PLC restart; a "
                       "reading at t includes cycles completed at or before t"),
    "no_data": ("collector outages per machine and work order with the production hidden in them "
                "(in work_orders and the counters, not in production_events)"),
    "subgroups": ("each SPC subgroup's true process mean: nominal + bias + drift + shift, with sigma"),
    "lots": ("true nonconforming rate of each inspected lot: 0.35 (the share in-process checks miss) x "
             "the mean reject probability of its cycles; defects ~ Binomial(sample_size, rate)"),
    "material_lots": "bad material lots: added nonconforming rate on one part number on every machine",
    "limits": ("characteristic limits, nominal ± T x: engineering 3, alarm_low_low/high_high 1.25, "
               "spec (lsl/usl) 1, alarm_low/high 0.8, operating 0.5"),
}


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """What really happened in a simulated plant (see :data:`DEFINITIONS`)."""

    config: PlantConfig
    oee: pd.DataFrame
    stops: pd.DataFrame
    anomaly_windows: pd.DataFrame
    process_shifts: pd.DataFrame
    counter_resets: pd.DataFrame
    material_lots: pd.DataFrame
    no_data: pd.DataFrame
    subgroups: pd.DataFrame
    lots: pd.DataFrame
    table_counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def frame_names(cls) -> list[str]:
        """Names of the truth frames, in a fixed order."""
        return [f.name for f in fields(cls) if f.name not in ("config", "table_counts")]

    def frames(self) -> dict[str, pd.DataFrame]:
        """The truth frames by name."""
        return {name: getattr(self, name) for name in self.frame_names()}

    def save(self, dirpath: str | Path) -> Path:
        """Write ``manifest.json`` and one Parquet file per frame into ``dirpath`` (created if needed).

        Returns
        -------
        pathlib.Path
            The directory written.
        """
        path = Path(dirpath)
        path.mkdir(parents=True, exist_ok=True)
        for name, frame in self.frames().items():
            frame.to_parquet(path / f"{name}.parquet", index=False)
        manifest = {
            "format": TRUTH_FORMAT, "version": TRUTH_VERSION, "config": self.config.to_dict(),
            "counts": {name: len(frame) for name, frame in self.frames().items()},
            "table_counts": dict(self.table_counts), "definitions": DEFINITIONS,
        }
        (path / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, dirpath: str | Path) -> GroundTruth:
        """Read a directory written by :meth:`save`.

        Raises
        ------
        SimulationError
            If the directory has no valid manifest or a frame file is missing.
        """
        path = Path(dirpath)
        try:
            manifest = json.loads((path / "manifest.json").read_text())
        except (OSError, ValueError) as exc:
            raise SimulationError(f"{path}: no readable ground-truth manifest.json ({exc})") from None
        if manifest.get("format") != TRUTH_FORMAT:
            raise SimulationError(f"{path}/manifest.json is not a {TRUTH_FORMAT} manifest")
        if manifest.get("version") != TRUTH_VERSION:
            raise SimulationError(f"{path}/manifest.json has version {manifest.get('version')}, "
                                  f"this code reads version {TRUTH_VERSION}")
        frames = {}
        for name in cls.frame_names():
            file = path / f"{name}.parquet"
            if not file.exists():
                raise SimulationError(f"{path}: ground-truth frame {file.name} is missing")
            frames[name] = pd.read_parquet(file)
        return cls(config=PlantConfig.from_dict(manifest["config"]),
                   table_counts=dict(manifest.get("table_counts", {})), **frames)


# --------------------------------------------------------------------------------------------
# OEE from the generative model

OEE_COLUMNS: tuple[str, ...] = (
    "machine_id", "shift_date", "scheduled_min", "planned_stop_min", "planned_busy_min", "no_data_min",
    "observed_pbt_min", "run_min", "micro_stop_min", "apt_min", "down_min", "setup_min", "produced",
    "good", "rejects", "ideal_min", "ideal_good_min", "availability", "performance", "quality",
    "quality_ratio", "oee",
)


def oee_frame(*, machine_id: list[str], day: list[Any], state_ms: np.ndarray, scheduled_ms: np.ndarray,
              produced: np.ndarray, rejects: np.ndarray, ideal_ms: np.ndarray,
              ideal_good_ms: np.ndarray) -> pd.DataFrame:
    """Build the OEE truth from time elements per machine-day.

    ``state_ms`` has one column per machine state (running, idle, down, setup, planned_stop,
    no_data), each the milliseconds spent in it inside the day's shifts.
    """
    run, idle, down, setup, planned, nodata = (state_ms[:, i] / 60_000.0 for i in range(6))
    scheduled = scheduled_ms / 60_000.0
    pbt = scheduled - planned
    observed = pbt - nodata
    apt = run + idle
    ideal = ideal_ms / 60_000.0
    ideal_good = ideal_good_ms / 60_000.0
    produced = produced.astype(np.int64)
    good = produced - rejects
    with np.errstate(divide="ignore", invalid="ignore"):
        availability = np.where(observed > 0, apt / observed, np.nan)
        performance = np.where(apt > 0, ideal / apt, np.nan)
        quality = np.where(ideal > 0, ideal_good / ideal, np.nan)
        quality_ratio = np.where(produced > 0, good / produced, np.nan)
        # Planned time without good output is an OEE of 0, not "undefined".
        oee = np.where(observed > 0, ideal_good / observed, np.nan)
    return pd.DataFrame({
        "machine_id": machine_id, "shift_date": day, "scheduled_min": scheduled,
        "planned_stop_min": planned, "planned_busy_min": pbt, "no_data_min": nodata,
        "observed_pbt_min": observed, "run_min": run, "micro_stop_min": idle, "apt_min": apt,
        "down_min": down, "setup_min": setup, "produced": produced, "good": good,
        "rejects": rejects.astype(np.int64), "ideal_min": ideal, "ideal_good_min": ideal_good,
        "availability": availability, "performance": performance, "quality": quality,
        "quality_ratio": quality_ratio, "oee": oee,
    }, columns=list(OEE_COLUMNS))
