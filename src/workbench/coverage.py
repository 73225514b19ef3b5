"""Whether a time range has production data at all, and how much planned time went without it.

A range in which no machine reported a state or a produced part computes to empty tables and
undefined KPIs, which read like a quiet day. A dead collector, a failed sync and a wrong date
look exactly like that, so whoever shows such a range says so plainly, with the planned time the
shift calendar had for it (:func:`data_coverage`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pandas as pd

from workbench import oee
from workbench.errors import WorkbenchError


@dataclass(frozen=True)
class Coverage:
    """What production data a time range has (:func:`data_coverage`).

    Attributes
    ----------
    start, end : datetime
        The range ``[start, end)``, timezone-aware.
    production_events : int
        Production events in the range.
    machine_states : int
        Machine-state intervals overlapping the range that say something (any state but
        ``no_data``: an explicit ``no_data`` interval is no more data than a gap).
    shifts : int
        Shifts of the calendar overlapping the range.
    planned_min : float or None
        For a range without data: the planned busy time the calendar had for it, summed over the
        machines (shift time less planned-stop windows) — all of it without data. None when the
        range has data (the OEE result's ``no_data_min`` then says how much had none).
    """

    start: dt.datetime
    end: dt.datetime
    production_events: int
    machine_states: int
    shifts: int
    planned_min: float | None

    @property
    def has_data(self) -> bool:
        """Some machine reported a state or a produced part in the range."""
        return self.production_events > 0 or self.machine_states > 0

    def message(self, *, tz: str, where: str = "") -> str:
        """A plain sentence for a range without data (empty when it has data).

        Parameters
        ----------
        tz : str
            Plant time zone the range is shown in.
        where : str
            The warehouse, e.g. its location ("" leaves it out).

        Returns
        -------
        str
            ``"No production data between Wed 01 Jan 2020 06:00 and Thu 02 Jan 2020 06:00
            (America/Chicago) in data/warehouse.duckdb (900 planned minutes without data)"``, or
            ``"… (no production events or machine states, and no shift calendar either)"``.
        """
        if self.has_data:
            return ""
        zone = ZoneInfo(tz)
        span = (f"between {self.start.astimezone(zone):%a %d %b %Y %H:%M} and "
                f"{self.end.astimezone(zone):%a %d %b %Y %H:%M} ({tz})")
        place = f" in {where}" if where else ""
        if self.shifts == 0:
            return (f"No production data {span}{place} (no production events or machine states, "
                    "and no shift calendar either)")
        planned = self.planned_min or 0.0
        return f"No production data {span}{place} ({planned:,.0f} planned minutes without data)"


def _count_between(frame: pd.DataFrame, start: dt.datetime, end: dt.datetime, *, lo: str,
                   hi: str) -> pd.Series:
    """Rows of an interval table overlapping ``[start, end)`` (an open end overlaps)."""
    return (frame[lo] < pd.Timestamp(end)) & (frame[hi].isna() | (frame[hi] > pd.Timestamp(start)))


def data_coverage(frames: oee.PlantFrames, *, start: dt.datetime, end: dt.datetime, tz: str,
                  micro_stop_threshold_s: float = 120.0) -> Coverage:
    """Whether ``[start, end)`` has any production data, and the planned time it had without.

    Parameters
    ----------
    frames : PlantFrames
        The canonical tables of the range (e.g. :func:`workbench.jobs.load_plant_frames`); rows
        outside the range are ignored.
    start, end : datetime
        The range, timezone-aware.
    tz : str
        Plant time zone.
    micro_stop_threshold_s : float
        As for :func:`workbench.oee.compute` (it does not change planned time).

    Returns
    -------
    Coverage

    Raises
    ------
    WorkbenchError
        When ``start`` or ``end`` is naive or ``end`` is not after ``start``.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise WorkbenchError(f"start and end must be timezone-aware (got {start!r}, {end!r})")
    if end <= start:
        raise WorkbenchError(f"end {end} is not after start {start}")
    events = frames.production_events
    n_events = 0
    if not events.empty:
        inside = (events["time"] >= pd.Timestamp(start)) & (events["time"] <= pd.Timestamp(end))
        n_events = int(inside.sum())
    states = frames.machine_states
    n_states = 0
    if not states.empty:
        said = states[states["state"] != "no_data"]
        n_states = int(_count_between(said, start, end, lo="time_start", hi="time_end").sum())
    cal = frames.shift_calendar
    n_shifts = 0 if cal.empty else int(_count_between(cal, start, end, lo="time_start", hi="time_end").sum())
    planned: float | None = None
    if n_events == 0 and n_states == 0:
        planned = 0.0
        if n_shifts and not frames.machines.empty:
            planned = _planned_without_data(frames, start=start, end=end, tz=tz,
                                            micro_stop_threshold_s=micro_stop_threshold_s)
    return Coverage(start, end, n_events, n_states, n_shifts, planned)


def _planned_without_data(frames: oee.PlantFrames, *, start: dt.datetime, end: dt.datetime, tz: str,
                          micro_stop_threshold_s: float) -> float:
    # OEE leaves a machine that reported nothing at all out of its ledger; told that every machine
    # had no data for the whole range, its time model gives exactly the planned busy time without
    # data (shift time less breaks and planned-stop windows), the same minutes it counts as
    # no_data on a day with gaps.
    ids = frames.machines["machine_id"].drop_duplicates().reset_index(drop=True)
    silent = pd.DataFrame({"machine_id": ids, "time_start": pd.Timestamp(start).tz_convert("UTC"),
                           "time_end": pd.Timestamp(end).tz_convert("UTC"), "state": "no_data"})
    nothing = dataclasses.replace(frames, machine_states=silent,
                                  production_events=frames.production_events.iloc[:0],
                                  downtime_events=frames.downtime_events.iloc[:0])
    table = oee.compute(nothing, by=(), tz=tz, micro_stop_threshold_s=micro_stop_threshold_s,
                        start=start, end=end).table
    return float(table["no_data_min"].sum()) if len(table) else 0.0
