"""Shift calendar and planned stops of the simulated plant.

Shifts are defined in plant-local time (A 06–14, B 14–22, C 22–06, the shift date being the
local date the shift starts) and stored as UTC instants, so the C shift of the night the clocks
go back lasts 9 h and the one of the night they go forward 7 h. Only ``workdays`` are scheduled.

Planned stops, all inside shifts and never overlapping one another:

* one 30-min meal break per shift and line, 3 h 30 after the shift start, staggered by 15 min
  between lines (canteen capacity);
* occasional *no demand* shifts for a line (the whole shift, no break that shift);
* preventive-maintenance windows per machine (1–3 h at the start of an A shift, never on a
  no-demand shift; they end before the break).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from workbench.simulate.config import PlantConfig
from workbench.simulate.timeline import MINUTE, overlay

SHIFTS: tuple[tuple[str, int, int], ...] = (("A", 6, 14), ("B", 14, 22), ("C", 22, 6))
BREAK_OFFSET_MIN = 210
BREAK_STAGGER_MIN = 15
BREAK_MIN = 30
NO_DEMAND_P = {"A": 0.02, "B": 0.03, "C": 0.07}
PM_EVERY_DAYS = 12.0

KIND_UNSCHEDULED, KIND_BREAK, KIND_NO_DEMAND, KIND_MAINTENANCE = 0, 1, 2, 3
KIND_NAMES = ("unscheduled", "break", "no_demand", "maintenance")


def _ms(ts: dt.datetime) -> int:
    return round(ts.timestamp() * 1000)


@dataclass(frozen=True)
class Calendar:
    """Shift occurrences and planned stops as UTC milliseconds."""

    horizon_start: int
    horizon_end: int
    shift_date: list[dt.date]
    shift_name: np.ndarray  # "A" / "B" / "C"
    shift_start: np.ndarray
    shift_end: np.ndarray
    # planned stops (sorted by start); line / machine -1 = all
    stop_line: np.ndarray
    stop_machine: np.ndarray
    stop_start: np.ndarray
    stop_end: np.ndarray
    stop_kind: np.ndarray
    stop_code: list[str | None]
    stop_notes: list[str | None]

    def shift_of(self, t: np.ndarray) -> np.ndarray:
        """Index of the shift occurrence containing each time, -1 outside shifts."""
        t = np.asarray(t, dtype=np.int64)
        if not len(self.shift_start):
            return np.full(t.shape, -1)
        j = np.searchsorted(self.shift_start, t, side="right") - 1
        ok = (j >= 0) & (t < self.shift_end[np.clip(j, 0, None)])
        return np.where(ok, j, -1)

    def machine_stops(self, machine: int, line: int) -> np.ndarray:
        """Indices of the planned stops that apply to a machine."""
        applies = ((self.stop_machine == machine)
                   | ((self.stop_machine < 0) & ((self.stop_line == line) | (self.stop_line < 0))))
        return np.flatnonzero(applies)

    def machine_layout(self, machine: int, line: int) -> MachineLayout:
        """Split the horizon of one machine into productive windows and planned intervals."""
        stops = self.machine_stops(machine, line)
        # Base timeline: shift occurrences and the unscheduled gaps between them.
        bounds = np.unique(np.concatenate([[self.horizon_start, self.horizon_end],
                                           self.shift_start, self.shift_end]))
        s, e = bounds[:-1], bounds[1:]
        shift = self.shift_of(s)
        seg_s, seg_e, base_i, win_j = overlay(s, e, self.stop_start[stops], self.stop_end[stops])
        seg_shift = np.where(base_i >= 0, shift[np.clip(base_i, 0, None)], -1)
        # A planned stop always sits inside one shift.
        seg_shift = np.where(win_j >= 0, self.shift_of(seg_s), seg_shift)
        productive = (win_j < 0) & (seg_shift >= 0)
        planned = ~productive
        stop_idx = np.full(len(seg_s), -1, dtype=np.int64)
        kind = np.full(len(seg_s), KIND_UNSCHEDULED, dtype=np.int64)
        if len(stops):
            in_stop = win_j >= 0
            stop_idx[in_stop] = stops[win_j[in_stop]]
            kind[in_stop] = self.stop_kind[stop_idx[in_stop]]
        return MachineLayout(
            work_start=seg_s[productive], work_end=seg_e[productive], work_shift=seg_shift[productive],
            plan_start=seg_s[planned], plan_end=seg_e[planned], plan_shift=seg_shift[planned],
            plan_kind=kind[planned], plan_stop=stop_idx[planned])


@dataclass(frozen=True)
class MachineLayout:
    """Productive windows (busy time) and planned intervals of one machine, in wall time."""

    work_start: np.ndarray
    work_end: np.ndarray
    work_shift: np.ndarray
    plan_start: np.ndarray
    plan_end: np.ndarray
    plan_shift: np.ndarray  # -1 for unscheduled time
    plan_kind: np.ndarray
    plan_stop: np.ndarray  # index into Calendar stops, -1 for unscheduled time


def build_calendar(cfg: PlantConfig, rng: np.random.Generator,
                   machine_rngs: list[np.random.Generator], machine_line: np.ndarray) -> Calendar:
    """Build shift occurrences, breaks, no-demand shifts and PM windows."""
    tz = cfg.tz
    six = dt.time(6, 0)
    horizon_start = _ms(dt.datetime.combine(cfg.start, six, tzinfo=tz))
    horizon_end = _ms(dt.datetime.combine(cfg.start + dt.timedelta(days=cfg.days), six, tzinfo=tz))

    dates: list[dt.date] = []
    names: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for d in range(cfg.days):
        day = cfg.start + dt.timedelta(days=d)
        if day.weekday() not in cfg.workdays:
            continue
        for name, h0, h1 in SHIFTS:
            end_day = day + dt.timedelta(days=1) if h1 <= h0 else day
            dates.append(day)
            names.append(name)
            starts.append(_ms(dt.datetime.combine(day, dt.time(h0), tzinfo=tz)))
            ends.append(_ms(dt.datetime.combine(end_day, dt.time(h1), tzinfo=tz)))
    shift_start = np.asarray(starts, dtype=np.int64)
    shift_end = np.asarray(ends, dtype=np.int64)
    shift_name = np.asarray(names, dtype=object)

    rows: list[tuple[int, int, int, int, int, str | None, str | None]] = []
    no_demand = np.zeros((len(starts), cfg.n_lines), dtype=bool)
    for j in range(len(starts)):
        for ln in range(cfg.n_lines):
            if rng.random() < NO_DEMAND_P[names[j]]:
                no_demand[j, ln] = True
                code = "ND-NOORD" if rng.random() < 0.7 else "ND-SCHED"
                note = "no orders for the line" if code == "ND-NOORD" else "line not scheduled"
                rows.append((ln, -1, starts[j], ends[j], KIND_NO_DEMAND, code, note))
            else:
                b0 = starts[j] + (BREAK_OFFSET_MIN + BREAK_STAGGER_MIN * (ln % 3)) * MINUTE
                rows.append((ln, -1, b0, b0 + BREAK_MIN * MINUTE, KIND_BREAK, None, None))

    a_shifts = [j for j in range(len(starts)) if names[j] == "A"]
    for m, mrng in enumerate(machine_rngs):
        # Draw from the machine's own stream so a machine's PM plan does not depend on the others.
        if not a_shifts:
            continue
        n_pm = int(mrng.poisson(cfg.days / PM_EVERY_DAYS))
        ln = int(machine_line[m])
        free = [j for j in a_shifts if not no_demand[j, ln]]
        if not free or n_pm == 0:
            continue
        chosen = np.sort(mrng.choice(free, size=min(n_pm, len(free)), replace=False))
        for j in chosen:
            dur = int(mrng.choice([60, 90, 120, 150, 180]))
            u = mrng.random()
            code, note = (("PM-PM", "monthly PM") if u < 0.7 else ("PM-CAL", "calibration")
                          if u < 0.85 else ("PM-CLN", "deep clean"))
            rows.append((-1, m, starts[j], starts[j] + dur * MINUTE, KIND_MAINTENANCE, code, note))

    rows.sort(key=lambda r: (r[2], r[0], r[1]))
    return Calendar(
        horizon_start=horizon_start, horizon_end=horizon_end, shift_date=dates, shift_name=shift_name,
        shift_start=shift_start, shift_end=shift_end,
        stop_line=np.asarray([r[0] for r in rows], dtype=np.int64),
        stop_machine=np.asarray([r[1] for r in rows], dtype=np.int64),
        stop_start=np.asarray([r[2] for r in rows], dtype=np.int64),
        stop_end=np.asarray([r[3] for r in rows], dtype=np.int64),
        stop_kind=np.asarray([r[4] for r in rows], dtype=np.int64),
        stop_code=[r[5] for r in rows], stop_notes=[r[6] for r in rows])
