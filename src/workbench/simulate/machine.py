"""The life of one machine: work orders, changeovers, failures, micro-stops, outages and cycles.

Generation happens on the clock where each phenomenon is natural and is then mapped to wall
time (see :mod:`workbench.simulate.timeline`):

1. *busy time* (scheduled time outside planned stops): a Python loop over work orders and stops
   lays out changeovers, run stretches and unplanned stops. Failures accrue on *APT* (time running
   or micro-stopped): constant-hazard causes, Weibull wear-out causes (bearing, hydraulic, drive,
   spindle) and the tool-life model (tool change / early change for wear / tool break).
2. micro-stops are carved out of the run stretches (numpy, on the APT clock);
3. busy intervals are split over the productive windows of the shifts and interleaved with the
   planned intervals (breaks, no demand, PM, unscheduled time) — so every interval lies inside one
   shift or outside all shifts;
4. collector outages (``no_data``) are laid over the wall timeline;
5. cycles follow each other on *running* time per work order (numpy cumsum) and are mapped back to
   wall time; a cycle interrupted by a stop completes when running resumes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from workbench.simulate.calendar import KIND_MAINTENANCE, KIND_NO_DEMAND, MachineLayout
from workbench.simulate.catalog import CAUSES, CHANGEOVERS, TOOL_CAUSES, Cause
from workbench.simulate.timeline import HOUR, MINUTE, SECOND, Clock, overlay

RUNNING, IDLE, DOWN, SETUP, PLANNED, NODATA = range(6)
STATE_NAMES: tuple[str, ...] = ("running", "idle", "down", "setup", "planned_stop", "no_data")

#: Every stop cause: the random causes, the tool-life endings and the changeovers (by code).
ALL_CAUSES: tuple[Cause, ...] = (
    *CAUSES, *TOOL_CAUSES.values(),
    *(Cause(f"changeover_{code.split('-')[1].lower()}", code, "changeover", median_min=med, sigma=sig)
      for code, (med, sig) in CHANGEOVERS.items()),
)
CAUSE_INDEX: dict[str, int] = {c.name: i for i, c in enumerate(ALL_CAUSES)}
CHANGEOVER_CAUSE: dict[str, int] = {c.code: i for i, c in enumerate(ALL_CAUSES) if c.hazard == "changeover"}
PRECURSOR_KINDS: tuple[str, ...] = ("vibration", "hydraulic", "drive")
#: Scales every random failure hazard; tuned so a typical machine reaches 80–88 % availability.
FAILURE_SCALE = 1.8


@dataclass(frozen=True)
class MachineParams:
    """Per-machine behaviour, drawn once from the machine's parameter stream."""

    slow: float  # how much slower than ideal the machine runs on average
    cycle_sigma: float
    p_other: float  # surface / visual rejects, independent of wear
    micro_rate_h: float
    micro_median_s: float
    cause_mult: np.ndarray
    tool_life_h: float
    order_hours: tuple[float, float]
    no_data_per_30d: float
    part_sigma: np.ndarray  # process sigma per machine part (characteristic unit)
    part_bias: np.ndarray  # process mean offset per machine part
    shifts_per_30d: float  # expected quality process shifts per 30 days


def draw_params(rng: np.random.Generator, n_parts: int, tolerance: np.ndarray) -> MachineParams:
    """Draw the behaviour of one machine; ``tolerance`` is the half tolerance of each of its parts."""
    cp = rng.uniform(1.25, 1.8, size=n_parts)
    sigma = tolerance / (3.0 * cp)
    return MachineParams(
        slow=float(rng.uniform(0.03, 0.12)), cycle_sigma=float(rng.uniform(0.015, 0.04)),
        p_other=float(rng.uniform(0.004, 0.02)), micro_rate_h=float(rng.uniform(1.0, 5.0)),
        micro_median_s=float(rng.uniform(25.0, 50.0)),
        cause_mult=rng.lognormal(0.0, 0.35, size=len(CAUSES)), tool_life_h=float(rng.uniform(10.0, 28.0)),
        order_hours=(4.0, float(rng.uniform(12.0, 24.0))),
        no_data_per_30d=2.0, part_sigma=sigma, part_bias=rng.normal(0.0, 0.25, size=n_parts) * sigma,
        shifts_per_30d=float(rng.uniform(0.8, 1.6)))


@dataclass
class Timeline:
    """Result of laying out one machine's horizon (all times int64 ms)."""

    busy: Clock  # busy time inside wall time
    # activities on the busy clock (contiguous over [0, busy.total))
    act_kind: np.ndarray  # RUNNING (run stretch) / DOWN / SETUP
    act_b0: np.ndarray
    act_b1: np.ndarray
    act_a0: np.ndarray  # APT clock at the start of run stretches
    act_order: np.ndarray
    act_stop: np.ndarray
    # stops (down and setup), one per occurrence, on the busy clock
    stop_cause: np.ndarray  # index into ALL_CAUSES
    stop_b0: np.ndarray
    stop_b1: np.ndarray
    stop_state: np.ndarray  # DOWN / SETUP
    stop_order: np.ndarray
    # precursor ramps (busy clock; ramp_start may lie before 0 or before the previous repair)
    pre_stop: np.ndarray
    pre_kind: np.ndarray  # index into PRECURSOR_KINDS
    pre_b0: np.ndarray
    pre_b1: np.ndarray
    pre_mag: np.ndarray
    # tools (APT clock)
    tool_a0: np.ndarray
    tool_life: np.ndarray
    tool_drift: np.ndarray  # drift at planned end of life, in process sigmas
    tool_end_a: np.ndarray  # APT when the tool was taken out (inf if still in)
    tool_stop: np.ndarray  # stop that ended the tool, -1 if none
    # work orders
    order_part: np.ndarray  # index into the machine's parts
    order_qty: np.ndarray
    order_b_setup: np.ndarray
    order_b_end: np.ndarray
    order_finished: np.ndarray
    order_started: np.ndarray  # got past its changeover
    # running segments on the busy clock (after micro-stops)
    run_b0: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    run_b1: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    run_order: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    # final wall intervals
    st_start: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    st_end: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    st_state: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    st_stop: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    st_order: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    st_plan: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # calendar stop index
    st_plan_kind: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    st_nodata: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # no-data window index
    nd_start: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    nd_end: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def apt_of_busy(self, b: np.ndarray) -> np.ndarray:
        """APT clock at busy positions (constant during stops and changeovers)."""
        runs = np.flatnonzero(self.act_kind == RUNNING)
        b = np.asarray(b, dtype=np.int64)
        if not len(runs):
            return np.zeros_like(b)
        r0, r1, a0 = self.act_b0[runs], self.act_b1[runs], self.act_a0[runs]
        k = np.searchsorted(r0, b, side="right") - 1
        kc = np.clip(k, 0, None)
        return np.where(k < 0, 0, a0[kc] + np.clip(b - r0[kc], 0, r1[kc] - r0[kc]))

    def busy_of_apt(self, a: np.ndarray) -> np.ndarray:
        """Busy position at APT positions (the start of the next run stretch on a boundary)."""
        runs = np.flatnonzero(self.act_kind == RUNNING)
        a = np.asarray(a, dtype=np.int64)
        if not len(runs):
            return np.zeros_like(a)
        r0, a0 = self.act_b0[runs], self.act_a0[runs]
        k = np.clip(np.searchsorted(a0, a, side="right") - 1, 0, None)
        return r0[k] + (a - a0[k])


def _stop_duration(rng: np.random.Generator, cause: Cause, min_ms: int) -> int:
    minutes = cause.median_min * float(np.exp(cause.sigma * rng.standard_normal()))
    return int(np.clip(round(minutes * 60.0) * SECOND, min_ms, 10 * HOUR))


def _next_failure(rng: np.random.Generator, cause: Cause, mult: float, *, first: bool) -> float:
    """Run time (ms) until the next failure of a random cause."""
    if cause.hazard == "exp":
        return float(rng.exponential(1.0 / (cause.rate_per_h * mult * FAILURE_SCALE))) * HOUR
    eta = cause.eta_h / (mult * FAILURE_SCALE)
    age = float(rng.uniform(0.0, eta)) if first else 0.0
    # Residual life of a Weibull unit of age `age` (inverse of the conditional survival function).
    life = eta * ((age / eta) ** cause.shape - np.log(rng.random())) ** (1.0 / cause.shape) - age
    return life * HOUR


def layout_machine(*, layout: MachineLayout, params: MachineParams, n_parts: int,
                   part_ideal_s: np.ndarray, threshold_s: float, days: int,
                   rng: np.random.Generator, micro_rng: np.random.Generator,
                   nodata_rng: np.random.Generator, outages: bool = True,
                   tool_wear_sigma: tuple[float, float] = (2.0, 3.0)) -> Timeline:
    """Lay out one machine's horizon: orders, stops, micro-stops, planned time and outages.

    ``tool_wear_sigma`` is the range of each tool's drift at the planned end of its life, in
    process sigmas (``(0, 0)``: no drift).
    """
    busy = Clock.from_pieces(layout.work_start, layout.work_end)
    tl = _macro(busy, params, n_parts, part_ideal_s, threshold_s, rng, tool_wear_sigma)
    _micro_and_wall(tl, layout, params, threshold_s, micro_rng)
    _no_data(tl, layout, params, days, nodata_rng, outages=outages)
    return tl


def _macro(busy: Clock, params: MachineParams, n_parts: int, part_ideal_s: np.ndarray,
           threshold_s: float, rng: np.random.Generator,
           tool_wear_sigma: tuple[float, float] = (2.0, 3.0)) -> Timeline:
    total = busy.total
    down_min_ms = max(int(threshold_s * SECOND) + SECOND, MINUTE)
    n_c = len(CAUSES)
    nxt = np.array([_next_failure(rng, CAUSES[c], params.cause_mult[c], first=True) for c in range(n_c)])

    acts: list[tuple[int, int, int, int, int, int]] = []  # kind, b0, b1, a0, order, stop
    stops: list[list[int]] = []  # cause, b0, b1, state, order
    tools: list[list[float]] = []  # a0, life, drift, end_a, stop
    orders: list[list[int]] = []  # part, qty, b_setup, b_end, finished, started

    def new_tool(a0: float, initial: bool) -> tuple[float, int]:
        life = params.tool_life_h * HOUR * float(rng.uniform(0.7, 1.3))
        if initial:
            a0 -= float(rng.uniform(0.0, 0.8)) * life
        u = rng.random()
        if u < 0.6:
            kind, frac = "tool_change", 1.0
        elif u < 0.85:
            kind, frac = "tool_wear", float(rng.uniform(0.8, 1.0))
        else:
            kind, frac = "tool_break", float(rng.uniform(0.85, 1.0))
        # One uniform draw whatever the range: the default range gives the plant it always did.
        tools.append([a0, life, float(rng.uniform(*tool_wear_sigma)), np.inf, -1])
        return max(a0 + frac * life, 0.0), CAUSE_INDEX[kind]

    b = 0
    a = 0
    tool_end, tool_cause = new_tool(0.0, True)
    part = -1
    while b < total:
        same = part >= 0 and (n_parts == 1 or rng.random() < 0.25)
        if not same:
            choices = [p for p in range(n_parts) if p != part] or [part]
            part = int(choices[int(rng.integers(0, len(choices)))])
        code = "CHG-FA" if same else ("CHG-PROG" if rng.random() < 0.2 else "CHG-SETUP")
        o = len(orders)
        cause_i = CHANGEOVER_CAUSE[code]
        dur = _stop_duration(rng, ALL_CAUSES[cause_i], 5 * MINUTE)
        stops.append([cause_i, b, b + dur, SETUP, o])
        acts.append((SETUP, b, b + dur, a, o, len(stops) - 1))
        ideal_ms = part_ideal_s[part] * SECOND
        hours = float(rng.uniform(*params.order_hours))
        qty = max(20, round(hours * HOUR / (ideal_ms * (1 + params.slow)) / 10.0) * 10)
        orders.append([part, qty, b, b + dur, 0, 0])
        b += dur
        if b >= total:
            break
        orders[o][5] = 1
        # Planned run (APT) long enough to make the quantity despite rejects and micro-stops.
        micro_frac = params.micro_rate_h * params.micro_median_s * 1.1 / 3600.0
        remaining = int(qty * ideal_ms * (1 + params.slow + 0.02) / ((1 - 0.02) * (1 - micro_frac)))
        while remaining > 0 and b < total:
            c = int(np.argmin(nxt))
            is_tool = tool_end <= nxt[c]
            t = tool_end if is_tool else float(nxt[c])
            if t < a + remaining:
                run = max(int(t) - a, 0)
                if run > 0:
                    acts.append((RUNNING, b, b + run, a, o, -1))
                    b += run
                    a += run
                    remaining -= run
                if b >= total:
                    break
                cause_i = tool_cause if is_tool else c
                dur = _stop_duration(rng, ALL_CAUSES[cause_i], down_min_ms)
                stops.append([cause_i, b, b + dur, DOWN, o])
                acts.append((DOWN, b, b + dur, a, o, len(stops) - 1))
                b += dur
                if is_tool:
                    tools[-1][3] = float(a)
                    tools[-1][4] = len(stops) - 1
                    tool_end, tool_cause = new_tool(float(a), False)
                else:
                    nxt[c] = a + _next_failure(rng, CAUSES[c], params.cause_mult[c], first=False)
            else:
                acts.append((RUNNING, b, b + remaining, a, o, -1))
                b += remaining
                a += remaining
                remaining = 0
        orders[o][3] = min(b, total)
        orders[o][4] = int(remaining == 0 and b <= total)

    act = np.asarray(acts, dtype=np.int64).reshape(-1, 6)
    act = act[act[:, 1] < total]
    act[:, 2] = np.minimum(act[:, 2], total)
    st = np.asarray(stops, dtype=np.int64).reshape(-1, 5)
    st = st[st[:, 1] < total]
    st[:, 2] = np.minimum(st[:, 2], total)
    tl_tools = np.asarray(tools, dtype=float).reshape(-1, 5)
    od = np.asarray(orders, dtype=np.int64).reshape(-1, 6)

    tl = Timeline(
        busy=busy, act_kind=act[:, 0], act_b0=act[:, 1], act_b1=act[:, 2], act_a0=act[:, 3],
        act_order=act[:, 4], act_stop=act[:, 5],
        stop_cause=st[:, 0], stop_b0=st[:, 1], stop_b1=st[:, 2], stop_state=st[:, 3], stop_order=st[:, 4],
        pre_stop=np.zeros(0, np.int64), pre_kind=np.zeros(0, np.int64), pre_b0=np.zeros(0, np.int64),
        pre_b1=np.zeros(0, np.int64), pre_mag=np.zeros(0),
        tool_a0=tl_tools[:, 0], tool_life=tl_tools[:, 1], tool_drift=tl_tools[:, 2],
        tool_end_a=tl_tools[:, 3], tool_stop=tl_tools[:, 4].astype(np.int64),
        order_part=od[:, 0], order_qty=od[:, 1], order_b_setup=od[:, 2], order_b_end=od[:, 3],
        order_finished=od[:, 4].astype(bool), order_started=od[:, 5].astype(bool))
    _precursors(tl, rng)
    return tl


def _precursors(tl: Timeline, rng: np.random.Generator) -> None:
    """Precursor ramps (busy clock) before the stops whose cause has one."""
    rows: list[tuple[int, int, int, int, float]] = []
    last_repair: dict[int, int] = {}
    for s in range(len(tl.stop_cause)):
        cause = ALL_CAUSES[int(tl.stop_cause[s])]
        if cause.precursor is not None:
            length = int(rng.uniform(*cause.precursor_h) * HOUR)
            b1 = int(tl.stop_b0[s])
            # A repaired unit starts from baseline: the ramp cannot begin before the last repair.
            b0 = max(b1 - length, last_repair.get(int(tl.stop_cause[s]), -10**15))
            mag = {"vibration": rng.uniform(3.0, 6.0), "hydraulic": rng.uniform(0.12, 0.3),
                   "drive": rng.uniform(12.0, 25.0)}[cause.precursor]
            rows.append((s, PRECURSOR_KINDS.index(cause.precursor), b0, b1, float(mag)))
        last_repair[int(tl.stop_cause[s])] = int(tl.stop_b1[s])
    arr = np.asarray(rows, dtype=float).reshape(-1, 5)
    tl.pre_stop = arr[:, 0].astype(np.int64)
    tl.pre_kind = arr[:, 1].astype(np.int64)
    tl.pre_b0 = arr[:, 2].astype(np.int64)
    tl.pre_b1 = arr[:, 3].astype(np.int64)
    tl.pre_mag = arr[:, 4]


def _micro_and_wall(tl: Timeline, layout: MachineLayout, params: MachineParams, threshold_s: float,
                    rng: np.random.Generator) -> None:
    runs = np.flatnonzero(tl.act_kind == RUNNING)
    r0, r1, ra0 = tl.act_b0[runs], tl.act_b1[runs], tl.act_a0[runs]
    apt_total = int((r1 - r0).sum())
    # Micro-stops as an alternating renewal process on the APT clock.
    max_ms = int(threshold_s * SECOND) - SECOND
    mean_gap = HOUR / params.micro_rate_h
    starts: list[np.ndarray] = []
    durs: list[np.ndarray] = []
    pos = 0.0
    while pos < apt_total:
        n = int(max(32, (apt_total - pos) / mean_gap * 1.2))
        gap = np.maximum(rng.exponential(mean_gap, size=n), 2 * SECOND)
        dur = np.clip(params.micro_median_s * SECOND * rng.lognormal(0.0, 0.5, size=n), 5 * SECOND, max_ms)
        dur = np.round(dur / SECOND) * SECOND
        s = pos + np.cumsum(gap + np.r_[0.0, dur[:-1]])
        starts.append(s)
        durs.append(dur)
        pos = float(s[-1] + dur[-1])
    ms_a = np.concatenate(starts).astype(np.int64) if starts else np.zeros(0, np.int64)
    ms_d = np.concatenate(durs).astype(np.int64) if durs else np.zeros(0, np.int64)
    keep = ms_a < apt_total
    ms_a, ms_d = ms_a[keep], ms_d[keep]
    if len(runs) and len(ms_a):
        k = np.searchsorted(ra0, ms_a, side="right") - 1
        w0 = r0[k] + (ms_a - ra0[k])
        w1 = w0 + ms_d
        # A micro-stop sits inside a run: running before and after it. One that would touch the
        # next stop is not a micro-stop but the start of that stop, so it is not drawn.
        ok = (w0 > r0[k]) & (w1 < r1[k])
        w0, w1 = w0[ok], w1[ok]
    else:
        w0 = w1 = np.zeros(0, np.int64)

    if len(tl.act_b0):
        s, e, bi, wj = overlay(tl.act_b0, tl.act_b1, w0, w1)
        act = np.where(bi >= 0, bi, np.searchsorted(tl.act_b0, s, side="right") - 1)
        state = np.where(wj >= 0, IDLE, tl.act_kind[act])
    else:
        s = e = act = state = np.zeros(0, np.int64)
    running = state == RUNNING
    tl.run_b0, tl.run_b1, tl.run_order = s[running], e[running], tl.act_order[act[running]]

    # Busy intervals into wall pieces (each inside one productive window), plus planned time.
    idx, ws, we = tl.busy.split(s, e)
    n_plan = len(layout.plan_start)
    st_start = np.concatenate([ws, layout.plan_start])
    st_end = np.concatenate([we, layout.plan_end])
    st_state = np.concatenate([state[idx], np.full(n_plan, PLANNED)])
    st_stop = np.concatenate([tl.act_stop[act[idx]], np.full(n_plan, -1)])
    st_order = np.concatenate([tl.act_order[act[idx]], np.full(n_plan, -1)])
    st_plan = np.concatenate([np.full(len(ws), -1), layout.plan_stop])
    st_kind = np.concatenate([np.full(len(ws), -1), layout.plan_kind])
    order = np.argsort(st_start, kind="stable")
    tl.st_start, tl.st_end, tl.st_state = st_start[order], st_end[order], st_state[order]
    tl.st_stop, tl.st_order = st_stop[order], st_order[order]
    tl.st_plan, tl.st_plan_kind = st_plan[order], st_kind[order]
    # Only down and setup intervals belong to a stop; running and idle ones keep just their order.
    tl.st_stop = np.where(np.isin(tl.st_state, (DOWN, SETUP)), tl.st_stop, -1)


def _no_data(tl: Timeline, layout: MachineLayout, params: MachineParams, days: int,
             rng: np.random.Generator, *, outages: bool = True) -> None:
    """Collector outages of 10–90 min, drawn inside productive windows (planned busy time)."""
    total = tl.busy.total
    months = days / 30.0
    # 1–3 outages a month (at least one in any horizon), Poisson around two.
    n = 0
    if total and outages:
        n = int(np.clip(rng.poisson(params.no_data_per_30d * months), 1, int(np.ceil(3 * months))))
    if n:
        u = np.sort(rng.integers(0, total, size=n))
        dur = rng.integers(10, 91, size=n) * MINUTE
        w0 = tl.busy.to_host(u)
        k = np.searchsorted(layout.work_start, w0, side="right") - 1
        # Keep the outage inside one productive window, at full length where the window allows.
        w1 = np.minimum(w0 + dur, layout.work_end[k])
        w0 = np.maximum(layout.work_start[k], w1 - dur)
        keep = np.r_[True, w0[1:] >= np.maximum.accumulate(w1)[:-1]]
        w0, w1 = w0[keep], w1[keep]
    else:
        w0 = w1 = np.zeros(0, np.int64)
    s, e, bi, wj = overlay(tl.st_start, tl.st_end, w0, w1)
    base = np.clip(bi, 0, None)
    nd = wj >= 0

    def pick(arr: np.ndarray, fill: int) -> np.ndarray:
        return np.where(nd, fill, arr[base])

    tl.st_state = pick(tl.st_state, NODATA)
    tl.st_stop, tl.st_order = pick(tl.st_stop, -1), pick(tl.st_order, -1)
    tl.st_plan, tl.st_plan_kind = pick(tl.st_plan, -1), pick(tl.st_plan_kind, -1)
    tl.st_start, tl.st_end, tl.st_nodata = s, e, wj
    tl.nd_start, tl.nd_end = w0, w1


def planned_downtime_mask(tl: Timeline) -> np.ndarray:
    """Wall intervals that become downtime events: down, setup, maintenance and no-demand stops."""
    planned_event = (tl.st_state == PLANNED) & np.isin(tl.st_plan_kind, (KIND_MAINTENANCE, KIND_NO_DEMAND))
    return np.isin(tl.st_state, (DOWN, SETUP)) | planned_event
