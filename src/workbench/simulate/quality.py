"""Process quality of a machine: the measured characteristic, tool-wear drift, process shifts,
SPC subgroups and lot inspections.

The measured dimension of a part is ``nominal + bias + drift + shift + noise`` with ``noise`` ~
N(0, σ) (σ from a capability Cp of 1.25–1.8), ``drift`` growing with tool age as
``sign × D × σ × (age / life)^1.5`` (D = 2–3 σ at the planned end of tool life by default,
``PlantConfig.tool_wear_sigma``) and ``shift`` a step of ±1.5–3 σ by default
(``PlantConfig.process_shift_sigma``) during injected process-shift windows. The same
distribution decides whether a part is out of tolerance, so dimension scrap rises exactly where
the SPC data drifts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from workbench.simulate.timeline import HOUR, Clock

#: Characteristic limits as multiples of the half tolerance T around nominal (see module docs of
#: workbench.simulate.plant for the order and why).
LIMIT_FACTORS: dict[str, float] = {
    "engineering_low": -3.0, "alarm_low_low": -1.25, "lsl": -1.0, "alarm_low": -0.8,
    "operating_low": -0.5, "nominal": 0.0, "operating_high": 0.5, "alarm_high": 0.8, "usl": 1.0,
    "alarm_high_high": 1.25, "engineering_high": 3.0,
}
SUBGROUP_SIZE = 5
GAUGE_RESOLUTION = 0.001


@dataclass(frozen=True)
class ProcessShifts:
    """Injected step changes of the process mean (wall time) for one machine."""

    order: np.ndarray
    start: np.ndarray
    end: np.ndarray
    sigma: np.ndarray  # signed size in process sigmas


def draw_process_shifts(*, rng: np.random.Generator, busy: Clock, run_b0: np.ndarray,
                        run_b1: np.ndarray, run_order: np.ndarray, order_wall_end: np.ndarray,
                        rate_per_30d: float, days: int,
                        shift_sigma: tuple[float, float] = (1.5, 3.0),
                        shift_hours: tuple[float, float] = (4.0, 12.0)) -> ProcessShifts:
    """Place step shifts of U(``shift_hours``) hours (4–12 h by default, cut at the end of their
    work order) inside work orders that ran at least two hours.

    Each step is ±U(``shift_sigma``) process sigmas, the sign a fair coin.
    """
    n_orders = len(order_wall_end)
    length = run_b1 - run_b0
    per_order = np.bincount(run_order, weights=length, minlength=n_orders) if len(length) else np.zeros(0)
    eligible = np.flatnonzero(per_order >= 2 * HOUR)
    n = int(rng.poisson(rate_per_30d * days / 30.0))
    rows: list[tuple[int, int, int, float]] = []
    if len(eligible) and n:
        run = Clock.from_pieces(run_b0, run_b1)
        q0 = np.r_[0, np.cumsum(per_order)[:-1]]
        for o in rng.choice(eligible, size=min(n, len(eligible)), replace=False):
            # Start somewhere in the first 80 % of the order's running time.
            q = int(q0[o] + rng.uniform(0.0, 0.8) * per_order[o])
            start = int(busy.to_host(run.to_host(q)))
            end = min(start + int(rng.uniform(*shift_hours) * HOUR), int(order_wall_end[o]))
            # One uniform draw whatever the range, so the default range gives the plant it always did.
            size = float(rng.uniform(*shift_sigma)) * (1.0 if rng.random() < 0.5 else -1.0)
            if end > start:
                rows.append((int(o), start, end, size))
    rows.sort(key=lambda r: r[1])
    kept: list[tuple[int, int, int, float]] = []
    for r in rows:  # one shift at a time on a machine
        if not kept or r[1] >= kept[-1][2]:
            kept.append(r)
    arr = np.asarray(kept, dtype=float).reshape(-1, 4)
    return ProcessShifts(order=arr[:, 0].astype(np.int64), start=arr[:, 1].astype(np.int64),
                         end=arr[:, 2].astype(np.int64), sigma=arr[:, 3])


def shift_offset(shifts: ProcessShifts, order: np.ndarray, wall: np.ndarray) -> np.ndarray:
    """Step shift (in sigmas) seen by parts of ``order`` completed at ``wall``."""
    out = np.zeros(len(wall))
    for o, s, e, size in zip(shifts.order, shifts.start, shifts.end, shifts.sigma, strict=True):
        out[(order == o) & (wall >= s) & (wall < e)] += size
    return out


def out_of_tolerance_p(mean_offset: np.ndarray, sigma: np.ndarray, tol: np.ndarray) -> np.ndarray:
    """Probability that a part with process mean ``nominal + mean_offset`` is outside ±tol."""
    return ndtr((-tol - mean_offset) / sigma) + ndtr((mean_offset - tol) / sigma)


@dataclass(frozen=True)
class Subgroups:
    """SPC subgroups of one machine: one of five consecutive parts per running hour."""

    cycle: np.ndarray  # (n, 5) indices into the machine's cycles
    values: np.ndarray  # (n, 5) measured values


def draw_subgroups(*, rng: np.random.Generator, time: np.ndarray, order: np.ndarray,
                   nominal: np.ndarray, mean_offset: np.ndarray, sigma: np.ndarray) -> Subgroups:
    """Measure five consecutive observed parts in every clock hour with at least five of them.

    ``time`` are the completion times of the observed cycles (sorted); the other arrays are per
    cycle.
    """
    if len(time) < SUBGROUP_SIZE:
        return Subgroups(np.zeros((0, SUBGROUP_SIZE), np.int64), np.zeros((0, SUBGROUP_SIZE)))
    hour = time // HOUR
    _, first, count = np.unique(hour, return_index=True, return_counts=True)
    ok = count >= SUBGROUP_SIZE
    first, count = first[ok], count[ok]
    start = first + np.floor(rng.random(len(first)) * (count - SUBGROUP_SIZE + 1)).astype(np.int64)
    idx = start[:, None] + np.arange(SUBGROUP_SIZE)[None, :]
    same_order = order[idx[:, 0]] == order[idx[:, -1]]
    idx = idx[same_order]
    noise = rng.standard_normal(idx.shape)
    values = nominal[idx] + mean_offset[idx] + sigma[idx] * noise
    values = np.round(values / GAUGE_RESOLUTION) * GAUGE_RESOLUTION
    return Subgroups(cycle=idx, values=values)
