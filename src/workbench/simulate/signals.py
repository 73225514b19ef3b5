"""Telemetry of one machine: analog sensors with precursor traces and 16-bit PLC counters.

Readings are taken every ``telemetry_interval_s`` on a grid aligned to the epoch, whatever the
machine is doing (values at idle / standstill level when it is not running), except inside
collector outages (no-data windows).

Counters: ``part_count_total`` counts every completed cycle (good and reject) and
``reject_count_total`` the rejects. Both are 16-bit: after 65535 comes 0 (a *rollover*), and a
PLC restart after some electrical failures sets them to 0 (a *reset*). A reading at time ``t``
includes every cycle completed at or before ``t``; a reset at ``r`` happens after the cycles
completed at or before ``r``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from workbench.simulate.machine import DOWN, IDLE, RUNNING, SETUP, Timeline
from workbench.simulate.timeline import MINUTE, inside

COUNTER_MODULO = 65536
METRICS: tuple[tuple[str, str], ...] = (
    ("spindle_load", "%"), ("vibration_rms", "mm/s"), ("hydraulic_pressure", "bar"),
    ("motor_current", "A"), ("drive_temp", "degC"), ("part_count_total", "count"),
    ("reject_count_total", "count"),
)
METRIC_INDEX = {m: i for i, (m, _) in enumerate(METRICS)}
UNCERTAIN_P = 0.002


@dataclass(frozen=True)
class CounterEvents:
    """Rollovers and resets of one counter (ground truth)."""

    time: np.ndarray
    kind: np.ndarray  # 0 rollover, 1 reset
    value_before: np.ndarray


def counter_values(event_times: np.ndarray, reset_times: np.ndarray, offset: int,
                   at: np.ndarray) -> tuple[np.ndarray, CounterEvents]:
    """Value of a 16-bit cumulative counter at times ``at`` and its rollovers and resets.

    ``event_times`` are sorted times of the increments; the counter starts at ``offset`` and is set
    to zero at each of the sorted ``reset_times``.
    """
    cnt_at = np.searchsorted(event_times, at, side="right")
    cnt_reset = np.searchsorted(event_times, reset_times, side="right")
    seg = np.searchsorted(reset_times, at, side="right")  # resets at or before each reading
    seg_base = np.r_[offset, np.zeros(len(reset_times), np.int64)]
    seg_cnt0 = np.r_[0, cnt_reset]
    values = (seg_base[seg] + cnt_at - seg_cnt0[seg]) % COUNTER_MODULO

    times, kinds, before = [], [], []
    seg_cnt1 = np.r_[cnt_reset, len(event_times)]
    for s in range(len(seg_base)):
        base, c0, c1 = int(seg_base[s]), int(seg_cnt0[s]), int(seg_cnt1[s])
        # The k-th increment of the segment (1-based) wraps the counter when base + k ≡ 0 (mod 2^16).
        k = np.arange(COUNTER_MODULO - base % COUNTER_MODULO, c1 - c0 + 1, COUNTER_MODULO)
        times.append(event_times[c0 + k - 1])
        kinds.append(np.zeros(len(k), np.int64))
        before.append(np.full(len(k), COUNTER_MODULO - 1, np.int64))
        if s < len(reset_times):
            times.append(reset_times[s:s + 1])
            kinds.append(np.ones(1, np.int64))
            before.append(np.array([(base + c1 - c0) % COUNTER_MODULO], np.int64))
    t = np.concatenate(times) if times else np.zeros(0, np.int64)
    order = np.argsort(t, kind="stable")
    ev = CounterEvents(time=t[order], kind=np.concatenate(kinds)[order] if kinds else t,
                       value_before=np.concatenate(before)[order] if before else t)
    return values, ev


@dataclass(frozen=True)
class Telemetry:
    """Readings of one machine, metric-major: ``value[i, j]`` is metric ``i`` at ``time[j]``."""

    time: np.ndarray
    value: np.ndarray
    uncertain: np.ndarray


def simulate_telemetry(*, tl: Timeline, rng: np.random.Generator, interval_ms: int,
                       horizon_start: int, horizon_end: int, pressure_bar: float,
                       cycle_time: np.ndarray, reject_time: np.ndarray, reset_times: np.ndarray,
                       offsets: tuple[int, int]) -> Telemetry:
    """Sample every metric of one machine on the telemetry grid (outside no-data windows)."""
    first = -(-horizon_start // interval_ms) * interval_ms
    t = np.arange(first, horizon_end, interval_ms, dtype=np.int64)
    t = t[~inside(t, tl.nd_start, tl.nd_end)]
    k = np.clip(np.searchsorted(tl.st_start, t, side="right") - 1, 0, None)
    state = tl.st_state[k]
    n = len(t)
    lvl = rng.uniform(0.9, 1.1, size=5)  # machine-to-machine differences of the levels

    def by_state(values: dict[int, float], default: float) -> np.ndarray:
        out = np.full(n, default)
        for s, v in values.items():
            out[state == s] = v
        return out

    running = state == RUNNING
    powered = np.isin(state, (RUNNING, IDLE, SETUP, DOWN))
    b = tl.busy.from_host(t)
    apt = tl.apt_of_busy(b)
    tool = np.clip(np.searchsorted(tl.tool_a0, apt, side="right") - 1, 0, None)
    wear = np.clip((apt - tl.tool_a0[tool]) / tl.tool_life[tool], 0.0, 1.0) if len(tl.tool_a0) else 0.0

    ramps = np.zeros((3, n))  # vibration, hydraulic, drive: 0 at baseline .. magnitude at the stop
    for kind, b0, b1, mag in zip(tl.pre_kind, tl.pre_b0, tl.pre_b1, tl.pre_mag, strict=True):
        lo, hi = np.searchsorted(b, [b0, b1], side="left")
        if hi > lo:
            x = (b[lo:hi] - b0) / max(b1 - b0, 1)
            ramps[kind, lo:hi] = np.maximum(ramps[kind, lo:hi], mag * x**2)

    spindle = by_state({RUNNING: 55.0 * lvl[0], IDLE: 4.0, SETUP: 6.0, DOWN: 0.5}, 0.3)
    spindle += np.where(running, 4.0, 0.4) * rng.standard_normal(n)
    spindle += np.where(running, 12.0 * wear**2, 0.0)  # a dull tool cuts harder
    vib = by_state({RUNNING: 2.2 * lvl[1], IDLE: 0.4, SETUP: 0.5, DOWN: 0.1}, 0.08)
    vib += np.where(running, 0.15, 0.03) * rng.standard_normal(n)
    vib += ramps[0] * by_state({RUNNING: 1.0, IDLE: 0.3, SETUP: 0.3}, 0.0)
    pres = np.where(powered, pressure_bar * lvl[2] * np.where(running, 1.0, 0.96), 1.0)
    pres *= 1.0 - ramps[1] * powered
    pres += np.where(powered, 0.01 * pressure_bar, 0.2) * rng.standard_normal(n)
    cur = by_state({RUNNING: 28.0 * lvl[3], IDLE: 3.0, SETUP: 3.5, DOWN: 0.8}, 0.3)
    cur += np.where(running, 1.5, 0.2) * rng.standard_normal(n)
    # A failing drive draws current spikes, more of them as the failure approaches.
    drive_frac = ramps[2] / np.maximum(ramps[2].max(initial=0.0), 1e-9)
    spike = running & (rng.random(n) < 0.05 + 0.4 * drive_frac) & (ramps[2] > 0)
    cur = np.where(spike, cur * rng.uniform(1.5, 2.5, size=n), cur)
    temp_target = by_state({RUNNING: 50.0 * lvl[4], IDLE: 36.0, SETUP: 36.0, DOWN: 30.0}, 26.0)
    temp_target += ramps[2] * by_state({RUNNING: 1.0, IDLE: 0.5, SETUP: 0.5}, 0.0)
    # Thermal lag: first-order response with a 10-minute time constant.
    alpha = float(np.exp(-interval_ms / (10 * MINUTE)))
    temp = temp_target
    if n:
        temp = lfilter([1.0 - alpha], [1.0, -alpha], temp_target, zi=[alpha * temp_target[0]])[0]
    temp += 0.3 * rng.standard_normal(n)

    parts, _ = counter_values(cycle_time, reset_times, offsets[0], t)
    rejects, _ = counter_values(reject_time, reset_times, offsets[1], t)
    value = np.stack([np.maximum(spindle, 0.0), np.maximum(vib, 0.0), np.maximum(pres, 0.0),
                      np.maximum(cur, 0.0), temp, parts.astype(float), rejects.astype(float)])
    uncertain = rng.random(value.shape) < UNCERTAIN_P
    return Telemetry(time=t, value=value, uncertain=uncertain)
