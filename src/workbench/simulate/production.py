"""Cycles of one machine: completion times, actual cycle times, rejects and their reasons."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench.simulate.machine import Timeline
from workbench.simulate.quality import ProcessShifts, out_of_tolerance_p, shift_offset
from workbench.simulate.timeline import SECOND, Clock, inside, segment_cumsum

#: Reject reasons (codes of the downtime taxonomy, so scrap and stops share one code list).
REJECT_REASONS: tuple[str, ...] = ("QH-DIM", "MAT-DEF", "QH-SURF", "QH-VIS")
WEAR_SLOWDOWN = 0.06  # cycle time grows by up to 6 % as the tool reaches end of life


@dataclass(frozen=True)
class MaterialLots:
    """Bad material lots of the plant (wall time); parts are global part indices."""

    lot_id: list[str]
    part: np.ndarray
    start: np.ndarray
    end: np.ndarray
    rate: np.ndarray  # added nonconforming rate while the lot is used


@dataclass(frozen=True)
class CycleLog:
    """The compact record of a machine's cycles kept for the tables (24 bytes a cycle)."""

    time: np.ndarray  # int64 wall ms
    order: np.ndarray  # int32
    part: np.ndarray  # int16 machine-local part index
    cycle_ms: np.ndarray  # int32
    ideal_ms: np.ndarray  # int32
    reject: np.ndarray  # bool
    reason: np.ndarray  # int8, -1 for good parts
    observed: np.ndarray  # bool


@dataclass(frozen=True)
class Cycles:
    """Every completed cycle of a machine, in time order, including the unobserved ones."""

    time: np.ndarray  # wall ms of completion
    order: np.ndarray  # machine order index
    part: np.ndarray  # machine-local part index
    cycle_ms: np.ndarray
    ideal_ms: np.ndarray
    reject: np.ndarray
    reason: np.ndarray  # index into REJECT_REASONS, -1 for good parts
    p_reject: np.ndarray
    mean_offset: np.ndarray  # process mean offset from nominal (characteristic unit)
    drift: np.ndarray  # tool-wear part of it
    shift: np.ndarray  # process-shift part of it
    observed: np.ndarray  # False inside no-data windows

    def log(self) -> CycleLog:
        """Drop the generative detail, keep what the tables need, in compact dtypes."""
        return CycleLog(time=self.time.astype(np.int64), order=self.order.astype(np.int32),
                        part=self.part.astype(np.int16), cycle_ms=self.cycle_ms.astype(np.int32),
                        ideal_ms=self.ideal_ms.astype(np.int32), reject=self.reject.astype(bool),
                        reason=self.reason.astype(np.int8), observed=self.observed.astype(bool))

    @classmethod
    def empty(cls) -> Cycles:
        """No cycles (a machine without productive time)."""
        i = np.zeros(0, np.int64)
        f = np.zeros(0)
        return cls(i, i, i, i, i, np.zeros(0, bool), i, f, f, f, f, np.zeros(0, bool))


def simulate_cycles(*, tl: Timeline, rng: np.random.Generator, slow: float, cycle_sigma: float,
                    p_other: float, ideal_s: np.ndarray, part_global: np.ndarray, sigma: np.ndarray,
                    bias: np.ndarray, tol: np.ndarray, wear_sign: np.ndarray, shifts: ProcessShifts,
                    lots: MaterialLots) -> Cycles:
    """Generate the cycles of one machine on its running clock (see :mod:`.machine`).

    Per-part arrays (``ideal_s``, ``sigma``, ``bias``, ``tol``, ``wear_sign``, ``part_global``) are
    indexed by the machine-local part index.
    """
    n_orders = len(tl.order_part)
    run = Clock.from_pieces(tl.run_b0, tl.run_b1)
    if run.total == 0 or n_orders == 0:
        return Cycles.empty()
    seg_len = tl.run_b1 - tl.run_b0
    r_len = np.zeros(n_orders, np.int64)
    np.add.at(r_len, tl.run_order, seg_len)
    q0 = np.r_[0, np.cumsum(r_len)[:-1]]
    ideal_o = np.round(ideal_s[tl.order_part] * SECOND).astype(np.int64)
    n_o = np.where(r_len > 0, r_len // ideal_o + 1, 0)
    oid = np.repeat(np.arange(n_orders), n_o)
    gstart = (np.cumsum(n_o) - n_o)[n_o > 0]
    ideal = ideal_o[oid]
    noise = np.exp(cycle_sigma * rng.standard_normal(len(oid)))
    ct = np.maximum(np.round(ideal * (1.0 + slow) * noise), ideal).astype(np.int64)

    def place(ct: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        pos = segment_cumsum(ct, gstart)
        keep = np.flatnonzero(pos < r_len[oid])
        busy = run.to_host(q0[oid[keep]] + pos[keep])
        apt = tl.apt_of_busy(busy)
        tool = np.clip(np.searchsorted(tl.tool_a0, apt, side="right") - 1, 0, None)
        frac = np.clip((apt - tl.tool_a0[tool]) / tl.tool_life[tool], 0.0, 1.0)
        return keep, busy, tool, frac

    # Two passes: the wear slowdown depends on the tool age, which depends on where cycles fall.
    keep, _, _, frac = place(ct)
    ct = ct.copy()
    ct[keep] = np.round(ct[keep] * (1.0 + WEAR_SLOWDOWN * frac**2)).astype(np.int64)
    keep, busy, tool, frac = place(ct)
    order = oid[keep]
    ct = ct[keep]
    wall = tl.busy.to_host(busy)
    part = tl.order_part[order]

    drift = wear_sign[part] * tl.tool_drift[tool] * sigma[part] * frac**1.5
    shift = shift_offset(shifts, order, wall) * sigma[part]
    mean_offset = bias[part] + drift + shift
    p_dim = out_of_tolerance_p(mean_offset, sigma[part], tol[part])
    p_mat = np.full(len(wall), 0.001)
    gpart = part_global[part]
    for lp, ls, le, lr in zip(lots.part, lots.start, lots.end, lots.rate, strict=True):
        p_mat[(gpart == lp) & (wall >= ls) & (wall < le)] += lr
    p_surf = np.full(len(wall), 0.6 * p_other)
    p_vis = np.full(len(wall), 0.4 * p_other)
    comp = np.stack([p_dim, p_mat, p_surf, p_vis], axis=1)
    p = np.minimum(comp.sum(axis=1), 0.9)
    u = rng.random(len(wall))
    reject = u < p
    # Which component caused the reject, proportionally to the components (reusing u keeps it cheap).
    cum = np.cumsum(comp, axis=1)
    reason = np.where(reject, (u[:, None] >= cum).sum(axis=1), -1)
    reason = np.where(reject, np.minimum(reason, len(REJECT_REASONS) - 1), -1)
    observed = ~inside(wall, tl.nd_start, tl.nd_end)
    return Cycles(time=wall, order=order, part=part, cycle_ms=ct, ideal_ms=ideal_o[order],
                  reject=reject, reason=reason, p_reject=p, mean_offset=mean_offset, drift=drift,
                  shift=shift, observed=observed)
