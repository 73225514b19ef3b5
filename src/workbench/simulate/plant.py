"""The simulated plant: ``simulate_plant(PlantConfig(...))`` → canonical tables + ground truth.

Determinism: one :class:`numpy.random.SeedSequence` per seed; the plant-level draws (catalog,
calendar, material lots) and every machine get their own child sequence (by index), and each
machine splits its sequence into independent streams (timeline, micro-stops, outages, cycles,
quality, labels, telemetry, …). Nothing depends on iteration order or the wall clock, and turning
telemetry off or aggregating cycles to counts changes nothing else in the plant.

Design decisions (see also :data:`workbench.simulate.truth.DEFINITIONS`, written to the truth
manifest):

* The horizon runs from 06:00 plant time on ``start`` to 06:00 on ``start + days``; shifts
  A 06–14, B 14–22, C 22–06 on ``workdays`` (Mon–Fri), stored as instants (DST nights: 7 h / 9 h).
* ``machine_states`` covers the horizon per machine without gaps; time outside shifts and inside
  planned stops is ``planned_stop``; intervals are split at shift, planned-stop and outage
  boundaries.
* ``downtime_events``: one row per ``down``, ``setup``, maintenance or no-demand interval of
  ``machine_states`` (a stop that crosses a shift boundary, a break or an outage gives one row per
  piece, linked by ``stop_id`` in the truth; a repair interrupted by a break resumes after it).
* Failures accrue on run time (APT): constant-hazard causes, Weibull wear-out (bearing, hydraulic,
  drive, spindle) and a tool-life model. Rates are compressed (``FAILURE_SCALE``) so that a month
  has enough stops of every kind to analyse; availability lands around 80–90 %, OEE around 75 %.
* Meal breaks are *not* downtime events: they are in ``planned_stops`` only. Operators leave ~15 %
  of reasons blank and mislabel ~6 % (with a plausible sibling code); planned stops carry the code
  of the schedule. Rejects carry taxonomy codes (QH-DIM, MAT-DEF, QH-SURF, QH-VIS), so scrap and
  stops share one code list; a scrap event sums one (machine, hour, work order, reason) and is
  stamped at its last reject, which keeps its natural key unique.
* Collector outages (``no_data``, 1–3 per machine-month, 10–90 min) fall inside planned busy
  time. Production continues in them: the parts reach the ERP (work-order quantities) and the PLC
  counters but not ``production_events``; the truth's ``no_data`` frame has the hidden counts.
* Characteristic limits, nominal ± T × factor (T = half tolerance): engineering 3 (gauge / design
  range) > alarm_high_high 1.25 (beyond spec: stop and contain) > USL 1 > alarm_high 0.8 (warning
  guard band inside spec) > operating 0.5 (normal running window) > nominal; mirrored below.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from workbench.errors import SimulationError
from workbench.sampling import single_sampling_plan
from workbench.simulate import assemble
from workbench.simulate.calendar import Calendar, build_calendar
from workbench.simulate.catalog import CUSTOMERS, Catalog, build_catalog
from workbench.simulate.config import PlantConfig
from workbench.simulate.machine import (
    ALL_CAUSES,
    DOWN,
    Timeline,
    draw_params,
    layout_machine,
    planned_downtime_mask,
)
from workbench.simulate.production import CycleLog, MaterialLots, simulate_cycles
from workbench.simulate.quality import ProcessShifts, Subgroups, draw_process_shifts, draw_subgroups
from workbench.simulate.signals import CounterEvents, Telemetry, counter_values, simulate_telemetry
from workbench.simulate.timeline import DAY, HOUR, SECOND
from workbench.simulate.truth import GroundTruth

#: Share of nonconforming parts that in-process checks miss: they end up in the shipped lot.
LOT_ESCAPE = 0.35
N_STREAMS = 10
(S_CALENDAR, S_PARAMS, S_TIMELINE, S_MICRO, S_NODATA, S_CYCLES, S_QUALITY, S_LABELS, S_TELEMETRY,
 S_ORDERS) = range(N_STREAMS)


@dataclass(frozen=True, eq=False)
class SimulatedPlant:
    """A simulated plant: its configuration, canonical tables and ground truth.

    Attributes
    ----------
    config : PlantConfig
        What was simulated.
    tables : dict of str to pandas.DataFrame
        Canonical tables keyed by name; columns exactly as ``schema.TABLES[name].column_names``.
    truth : GroundTruth
        What really happened.
    """

    config: PlantConfig
    tables: dict[str, pd.DataFrame]
    truth: GroundTruth


@dataclass
class MachineRun:
    """Everything one machine produced (numpy arrays, assembled into tables by :mod:`.assemble`)."""

    m: int
    tl: Timeline
    cycles: CycleLog
    shifts: ProcessShifts
    subgroups: Subgroups
    sub_drift: np.ndarray  # per subgroup: mean tool-wear drift of its five parts
    sub_shift: np.ndarray  # mean process shift
    sub_offset: np.ndarray  # mean total offset of the process mean from nominal
    telemetry: Telemetry | None
    part_events: CounterEvents
    reject_events: CounterEvents
    stop_fault: list[str | None]
    dt_index: np.ndarray  # indices of tl.st_* intervals that are downtime events
    dt_code: list[str | None]  # entered by the operator (or the schedule)
    dt_blank: np.ndarray
    dt_mislabel: np.ndarray
    dt_notes: list[str | None]
    operator_of_shift: np.ndarray  # operator index per calendar shift occurrence
    order_wall_setup: np.ndarray
    order_wall_end: np.ndarray
    order_released: np.ndarray
    order_due_ms: np.ndarray
    order_customer: np.ndarray
    order_good: np.ndarray
    order_rejects: np.ndarray
    order_p: np.ndarray  # mean reject probability of the order's cycles
    lot_p: np.ndarray  # true nonconforming rate of the shipped lot
    extra_order: tuple[int, int, int, int, int]  # part, qty, released, due, customer: one not started
    insp_order: np.ndarray  # inspected (closed) orders
    insp_sample: np.ndarray
    insp_defects: np.ndarray
    insp_accept: np.ndarray  # acceptance number of the plan
    sigma: np.ndarray
    bias: np.ndarray
    tol: np.ndarray


def simulate_plant(config: PlantConfig) -> SimulatedPlant:
    """Simulate a plant.

    Parameters
    ----------
    config : PlantConfig
        What to simulate (validated when it was built).

    Returns
    -------
    SimulatedPlant
        Canonical tables (``machines``, ``parts``, ``part_rates``, ``shift_calendar``,
        ``planned_stops``, ``reason_codes``, ``machine_telemetry``, ``production_events``,
        ``machine_states``, ``downtime_events``, ``scrap_events``, ``work_orders``,
        ``quality_measurements``, ``characteristics``, ``inspections``) and the ground truth.
    """
    if not isinstance(config, PlantConfig):
        raise SimulationError(f"simulate_plant needs a PlantConfig, got {type(config).__name__}")
    root = np.random.SeedSequence(config.seed)
    plant_ss, machines_ss = root.spawn(2)
    cat_rng, cal_rng, lot_rng = (np.random.default_rng(s) for s in plant_ss.spawn(3))
    machine_streams = [ss.spawn(N_STREAMS) for ss in machines_ss.spawn(config.n_machines)]

    catalog = build_catalog(config, cat_rng)
    calendar = build_calendar(config, cal_rng,
                              [np.random.default_rng(s[S_CALENDAR]) for s in machine_streams],
                              catalog.machine_line)
    lots = _material_lots(config, catalog, calendar, lot_rng)
    runs = [_simulate_machine(config, catalog, calendar, lots, m, machine_streams[m])
            for m in range(config.n_machines)]
    tables, truth_frames = assemble.build(config, catalog, calendar, lots, runs)
    truth = GroundTruth(config=config, table_counts={k: len(v) for k, v in tables.items()}, **truth_frames)
    return SimulatedPlant(config=config, tables=tables, truth=truth)


def _material_lots(cfg: PlantConfig, catalog: Catalog, cal: Calendar,
                   rng: np.random.Generator) -> MaterialLots:
    """Bad material lots: 1–3 days during which one part number comes out worse everywhere."""
    n_parts = len(catalog.part_numbers)
    n = max(2, int(rng.poisson(n_parts * cfg.days / 50.0))) if len(cal.shift_start) else 0
    # A lot is bought for a part that is made: the more machines run a part, the more lots it uses.
    users = np.bincount(np.concatenate(catalog.machine_parts), minlength=n_parts).astype(float)
    part = rng.choice(n_parts, size=n, p=users / users.sum())
    start = cal.shift_start[rng.integers(0, len(cal.shift_start), size=n)] if n else np.zeros(0, np.int64)
    end = start + (rng.uniform(24.0, 72.0, size=n) * HOUR).astype(np.int64)
    rate = rng.uniform(0.05, 0.15, size=n)
    order = np.lexsort((part, start))
    part, start, end, rate = part[order], start[order], end[order], rate[order]
    ids = [f"ML-{catalog.part_numbers[p]}-{i + 1:02d}" for i, p in enumerate(part)]
    return MaterialLots(lot_id=ids, part=part, start=start, end=end, rate=rate)


def _simulate_machine(cfg: PlantConfig, catalog: Catalog, cal: Calendar, lots: MaterialLots, m: int,
                      streams: list[np.random.SeedSequence]) -> MachineRun:
    rng = [np.random.default_rng(s) for s in streams]
    line = int(catalog.machine_line[m])
    parts = catalog.machine_parts[m]
    fams = [catalog.part_family[p] for p in parts]
    tol = np.array([f.tolerance for f in fams])
    wear_sign = np.array([f.wear_sign for f in fams])
    params = draw_params(rng[S_PARAMS], len(parts), tol)

    layout = cal.machine_layout(m, line)
    tl = layout_machine(layout=layout, params=params, n_parts=len(parts),
                        part_ideal_s=catalog.rate_ideal_s[m], days=cfg.days,
                        threshold_s=float(cfg.micro_stop_threshold_s),
                        rng=rng[S_TIMELINE], micro_rng=rng[S_MICRO], nodata_rng=rng[S_NODATA],
                        outages=cfg.collector_outages, tool_wear_sigma=cfg.tool_wear_sigma)
    order_wall_setup = tl.busy.to_host(tl.order_b_setup)
    order_wall_end = tl.busy.to_host(np.minimum(tl.order_b_end, tl.busy.total), at_end=True)
    shifts = draw_process_shifts(rng=rng[S_QUALITY], busy=tl.busy, run_b0=tl.run_b0, run_b1=tl.run_b1,
                                 run_order=tl.run_order, order_wall_end=order_wall_end,
                                 rate_per_30d=params.shifts_per_30d, days=cfg.days,
                                 shift_sigma=cfg.process_shift_sigma, shift_hours=cfg.process_shift_hours)
    cycles = simulate_cycles(tl=tl, rng=rng[S_CYCLES], slow=params.slow, cycle_sigma=params.cycle_sigma,
                             p_other=params.p_other, ideal_s=catalog.rate_ideal_s[m], part_global=parts,
                             sigma=params.part_sigma, bias=params.part_bias, tol=tol, wear_sign=wear_sign,
                             shifts=shifts, lots=lots)
    obs = np.flatnonzero(cycles.observed)
    nominal = catalog.part_nominal[parts][cycles.part]
    sub = draw_subgroups(rng=rng[S_QUALITY], time=cycles.time[obs], order=cycles.order[obs],
                         nominal=nominal[obs], mean_offset=cycles.mean_offset[obs],
                         sigma=params.part_sigma[cycles.part[obs]])
    sub = Subgroups(cycle=obs[sub.cycle], values=sub.values)
    sub_drift = cycles.drift[sub.cycle].mean(axis=1)
    sub_shift = cycles.shift[sub.cycle].mean(axis=1)
    sub_offset = cycles.mean_offset[sub.cycle].mean(axis=1)

    lab = rng[S_LABELS]
    stop_fault = _fault_codes(tl, lab)
    operator_of_shift = _operators(catalog, cal, m, lab)
    dt_index, dt_code, dt_blank, dt_mislabel, dt_notes = _downtime_labels(tl, cal, catalog, operator_of_shift,
                                                                           lab)
    # PLC restarts after some electrical failures reset the counters, mid-repair.
    reset_b = [int((tl.stop_b0[s] + tl.stop_b1[s]) // 2) for s in range(len(tl.stop_cause))
               if tl.stop_state[s] == DOWN and lab.random() < ALL_CAUSES[int(tl.stop_cause[s])].reset_prob]
    reset_times = np.sort(tl.busy.to_host(np.asarray(reset_b, np.int64)))
    # The counters have been running for a while: start high enough that some roll over.
    offsets = (int(lab.integers(30_000, 65536)), int(lab.integers(0, 65536)))
    rej_time = cycles.time[cycles.reject]
    _, part_events = counter_values(cycles.time, reset_times, offsets[0], np.zeros(0, np.int64))
    _, reject_events = counter_values(rej_time, reset_times, offsets[1], np.zeros(0, np.int64))

    telemetry = None
    if cfg.telemetry:
        telemetry = simulate_telemetry(
            tl=tl, rng=rng[S_TELEMETRY], interval_ms=cfg.telemetry_interval_s * SECOND,
            horizon_start=cal.horizon_start, horizon_end=cal.horizon_end,
            pressure_bar=catalog.machine_type[m].pressure_bar, cycle_time=cycles.time, reject_time=rej_time,
            reset_times=reset_times, offsets=offsets)

    n_orders = len(tl.order_part)
    good = np.bincount(cycles.order[~cycles.reject], minlength=n_orders)[:n_orders]
    rej = np.bincount(cycles.order[cycles.reject], minlength=n_orders)[:n_orders]
    p_sum = np.bincount(cycles.order, weights=cycles.p_reject, minlength=n_orders)[:n_orders]
    with np.errstate(invalid="ignore", divide="ignore"):
        order_p = np.where(good + rej > 0, p_sum / np.maximum(good + rej, 1), np.nan)
    orng = rng[S_ORDERS]
    released = order_wall_setup - (orng.uniform(1.0, 6.0, size=n_orders) * DAY).astype(np.int64)
    released = released // HOUR * HOUR
    due = order_wall_setup + (orng.uniform(2.0, 10.0, size=n_orders) * DAY).astype(np.int64)
    customer = orng.integers(0, len(CUSTOMERS), size=n_orders)
    x_part = int(orng.integers(0, len(parts)))
    x_rel = cal.horizon_end - int(orng.uniform(0.2, 3.0) * DAY) // HOUR * HOUR
    x_due = cal.horizon_end + int(orng.uniform(3.0, 12.0) * DAY)
    x_qty = int(orng.integers(20, 200)) * 10
    extra = (x_part, x_qty, x_rel, x_due, int(orng.integers(0, len(CUSTOMERS))))
    # Final lot inspection of every closed order: ISO 2859-1, AQL 1.0, level II, normal.
    insp_order = np.flatnonzero(tl.order_finished & (good >= 2))
    sample = np.array([_plan(int(good[o]))[0] for o in insp_order], dtype=np.int64)
    accept = np.array([_plan(int(good[o]))[1] for o in insp_order], dtype=np.int64)
    lot_p = LOT_ESCAPE * np.nan_to_num(order_p)
    defects = orng.binomial(sample, lot_p[insp_order]) if len(insp_order) else sample

    return MachineRun(
        m=m, tl=tl, cycles=cycles.log(), shifts=shifts, subgroups=sub, sub_drift=sub_drift,
        sub_shift=sub_shift, sub_offset=sub_offset, telemetry=telemetry,
        part_events=part_events, reject_events=reject_events, stop_fault=stop_fault, dt_index=dt_index,
        dt_code=dt_code, dt_blank=dt_blank, dt_mislabel=dt_mislabel, dt_notes=dt_notes,
        operator_of_shift=operator_of_shift, order_wall_setup=order_wall_setup,
        order_wall_end=order_wall_end, order_released=released, order_due_ms=due, order_customer=customer,
        order_good=good, order_rejects=rej, order_p=order_p, lot_p=lot_p, extra_order=extra,
        insp_order=insp_order, insp_sample=sample, insp_defects=np.asarray(defects, np.int64),
        insp_accept=accept,
        sigma=params.part_sigma, bias=params.part_bias, tol=tol)


@functools.lru_cache(maxsize=4096)
def _plan(lot_size: int) -> tuple[int, int]:
    plan = single_sampling_plan(lot_size, aql=1.0, level="II", inspection="normal")
    return plan.sample_size, plan.accept


def _fault_codes(tl: Timeline, rng: np.random.Generator) -> list[str | None]:
    """PLC fault code per stop: usually the cause's own, sometimes a generic one or none."""
    from workbench.simulate.catalog import GENERIC_FAULTS

    out: list[str | None] = []
    u = rng.random(len(tl.stop_cause))
    g = rng.integers(0, len(GENERIC_FAULTS), size=len(tl.stop_cause))
    for s, c in enumerate(tl.stop_cause):
        cause = ALL_CAUSES[int(c)]
        if cause.hazard == "changeover":
            out.append(None)
        elif cause.fault is not None:
            out.append(cause.fault if u[s] < 0.7 else GENERIC_FAULTS[g[s]] if u[s] < 0.82 else None)
        else:
            out.append(GENERIC_FAULTS[g[s]] if u[s] < 0.15 else None)
    return out


def _operators(catalog: Catalog, cal: Calendar, m: int, rng: np.random.Generator) -> np.ndarray:
    """Operator of the machine in each shift occurrence: the crew's usual one or a floater."""
    line = int(catalog.machine_line[m])
    pos = int(np.sum(catalog.machine_line[:m] == line))
    n = len(cal.shift_start)
    sub = rng.random(n) < 0.08
    pick = rng.integers(0, 1 << 30, size=n)
    out = np.empty(n, np.int64)
    for j in range(n):
        name = str(cal.shift_name[j])
        if sub[j]:
            fl = catalog.floaters[name]
            out[j] = fl[int(pick[j]) % len(fl)]
        else:
            crew = catalog.crew_operators[(line, name)]
            out[j] = crew[(pos // 2) % len(crew)]
    return out


def _downtime_labels(tl: Timeline, cal: Calendar, catalog: Catalog, operator_of_shift: np.ndarray,
                     rng: np.random.Generator) -> tuple[np.ndarray, list[str | None], np.ndarray,
                                                        np.ndarray, list[str | None]]:
    """What was entered for each downtime event: blanks, plausible mislabels, short notes."""
    from workbench.simulate.catalog import CHANGEOVER_NOTES, CONFUSIONS

    idx = np.flatnonzero(planned_downtime_mask(tl))
    n = len(idx)
    u, v = rng.random(n), rng.random(n)
    pick = rng.integers(0, 1 << 30, size=n)
    shift = cal.shift_of(tl.st_start[idx])
    codes: list[str | None] = []
    notes: list[str | None] = []
    blank = np.zeros(n, bool)
    mislabel = np.zeros(n, bool)
    for i, k in enumerate(idx):
        stop = int(tl.st_stop[k])
        if stop < 0:  # maintenance / no demand: the schedule carries the code
            plan = int(tl.st_plan[k])
            codes.append(cal.stop_code[plan])
            notes.append(cal.stop_notes[plan])
            continue
        cause = ALL_CAUSES[int(tl.stop_cause[stop])]
        op = int(operator_of_shift[shift[i]])
        p_blank = catalog.operator_blank_p[op]
        if u[i] < p_blank:
            codes.append(None)
            blank[i] = True
        elif u[i] < p_blank + catalog.operator_mislabel_p[op]:
            wrong = CONFUSIONS[cause.code]
            codes.append(wrong[int(pick[i]) % len(wrong)])
            mislabel[i] = True
        else:
            codes.append(cause.code)
        pool = cause.notes or (CHANGEOVER_NOTES if cause.hazard == "changeover" else ())
        notes.append(pool[int(pick[i] // 7) % len(pool)] if pool and v[i] < 0.3 else None)
    return idx, codes, blank, mislabel, notes

