"""Configuration of the simulated plant."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, fields
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from workbench.errors import SimulationError

#: Monday–Friday (``datetime.date.weekday`` numbering).
WEEKDAYS: tuple[int, ...] = (0, 1, 2, 3, 4)


@dataclass(frozen=True, kw_only=True)
class PlantConfig:
    """What to simulate. Every field has a default; invalid values raise :class:`SimulationError`.

    Parameters
    ----------
    seed : int
        Seed of the whole plant; the same seed gives the same tables and ground truth.
    n_machines : int
        Number of machines, spread over ``n_lines`` lines.
    n_lines : int
        Number of lines (``L1`` … ``Ln``); at most ``n_machines``.
    days : int
        Production days simulated, starting on ``start``. The horizon runs from 06:00 plant time on
        ``start`` to 06:00 on ``start + days`` (so the C shift of the last day is complete).
    start : datetime.date
        First production day (a date, not a datetime: shifts are defined in plant time).
    timezone : str
        IANA time zone of the plant; shifts are local times, stored as UTC instants.
    site : str
        Site id written to the site columns.
    telemetry_interval_s : int
        Seconds between two telemetry readings of a machine.
    telemetry : bool
        Whether to produce ``machine_telemetry`` (the biggest table by far).
    cycle_events : bool
        One ``cycle`` production event per part when true; one ``count`` event per machine-minute of
        running with summed counts when false (for benchmarks with thousands of machines).
    micro_stop_threshold_s : float
        Stops shorter than this are micro-stops (``idle``, a performance loss, no downtime event);
        longer ones are ``down`` with a downtime event.
    collector_outages : bool
        Whether to lay 1–3 collector outages a month (``no_data``) over each machine. Off for the
        protocol simulators: a PLC keeps running whether or not anyone is reading it, and the
        live collector's own outages are the ones that matter there.
    workdays : tuple of int
        Scheduled weekdays (0 = Monday); Monday–Friday by default. Weekend days are not scheduled.
    process_shift_sigma : tuple of float
        ``(low, high)``: each injected step shift of the process mean is ±U(low, high) process
        sigmas (1.5–3 σ by default: large for an X̄ chart of five). Smaller steps, e.g.
        ``(0.5, 1.5)``, exercise the charts meant for small shifts (EWMA, CUSUM). ``0 < low ≤ high``.
    process_shift_hours : tuple of float
        ``(low, high)``: each injected step lasts U(low, high) hours (4–12 h by default), cut at
        the end of its work order. ``0 < low ≤ high ≤ 240``.
    tool_wear_sigma : tuple of float
        ``(low, high)``: each tool drifts the mean by U(low, high) process sigmas at the planned
        end of its life (2–3 σ by default); ``(0, 0)`` turns the wear drift off (tools still
        wear out, slow the cycle and are changed). ``0 ≤ low ≤ high``.
    """

    seed: int = 7
    n_machines: int = 12
    n_lines: int = 3
    days: int = 30
    start: dt.date = dt.date(2026, 10, 19)
    timezone: str = "America/Chicago"
    site: str = "PLANT1"
    telemetry_interval_s: int = 60
    telemetry: bool = True
    cycle_events: bool = True
    micro_stop_threshold_s: float = 120.0
    collector_outages: bool = True
    workdays: tuple[int, ...] = WEEKDAYS
    process_shift_sigma: tuple[float, float] = (1.5, 3.0)
    process_shift_hours: tuple[float, float] = (4.0, 12.0)
    tool_wear_sigma: tuple[float, float] = (2.0, 3.0)

    def __post_init__(self) -> None:
        for name in ("workdays", "process_shift_sigma", "process_shift_hours", "tool_wear_sigma"):
            value = getattr(self, name)
            if isinstance(value, list):  # accept a list (e.g. from JSON) but store a tuple
                object.__setattr__(self, name, tuple(value))
        _validate(self)

    @property
    def tz(self) -> ZoneInfo:
        """The plant time zone."""
        return ZoneInfo(self.timezone)

    @property
    def machine_ids(self) -> list[str]:
        """Machine ids ``M01`` … zero-padded to the width the count needs (at least two digits)."""
        width = max(2, len(str(self.n_machines)))
        return [f"M{i + 1:0{width}d}" for i in range(self.n_machines)]

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as JSON-compatible values (the date as ISO text)."""
        out = asdict(self)
        out["start"] = self.start.isoformat()
        out["workdays"] = list(self.workdays)
        out["process_shift_sigma"] = list(self.process_shift_sigma)
        out["process_shift_hours"] = list(self.process_shift_hours)
        out["tool_wear_sigma"] = list(self.tool_wear_sigma)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlantConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`SimulationError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SimulationError(f"unknown PlantConfig field(s): {', '.join(unknown)}")
        values = dict(data)
        if isinstance(values.get("start"), str):
            values["start"] = dt.date.fromisoformat(values["start"])
        for name in ("workdays", "process_shift_sigma", "process_shift_hours", "tool_wear_sigma"):
            if isinstance(values.get(name), list):
                values[name] = tuple(values[name])
        return cls(**values)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _sigma_range(value: object, *, zero_ok: bool) -> str | None:
    """Why ``value`` is not a ``(low, high)`` range of process sigmas, or None when it is."""
    if not isinstance(value, tuple) or len(value) != 2:
        return "a (low, high) pair of numbers"
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        return "a (low, high) pair of numbers"
    low, high = (float(v) for v in value)
    floor = "0 <= low" if zero_ok else "0 < low"
    if not (low >= 0.0 if zero_ok else low > 0.0) or not low <= high <= 10.0:
        return f"a (low, high) pair with {floor} <= high <= 10 (process sigmas)"
    return None


def _validate(cfg: PlantConfig) -> None:
    def fail(msg: str) -> None:
        raise SimulationError(f"invalid PlantConfig: {msg}")

    if not _is_int(cfg.seed) or cfg.seed < 0:
        fail(f"seed must be a non-negative integer, got {cfg.seed!r}")
    if not _is_int(cfg.n_machines) or cfg.n_machines < 1:
        fail(f"n_machines must be an integer >= 1, got {cfg.n_machines!r}")
    if not _is_int(cfg.n_lines) or cfg.n_lines < 1:
        fail(f"n_lines must be an integer >= 1, got {cfg.n_lines!r}")
    if cfg.n_lines > cfg.n_machines:
        fail(f"n_lines ({cfg.n_lines}) cannot exceed n_machines ({cfg.n_machines}): "
             "every line needs at least one machine")
    if not _is_int(cfg.days) or cfg.days < 1:
        fail(f"days must be an integer >= 1, got {cfg.days!r}")
    if cfg.days > 3660:
        fail(f"days must be at most 3660 (ten years), got {cfg.days}")
    if isinstance(cfg.start, dt.datetime) or not isinstance(cfg.start, dt.date):
        fail(f"start must be a datetime.date (a plant-local production day), got {cfg.start!r}")
    if not isinstance(cfg.timezone, str) or not cfg.timezone:
        fail(f"timezone must be an IANA time zone name, got {cfg.timezone!r}")
    try:
        ZoneInfo(cfg.timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        fail(f"unknown timezone {cfg.timezone!r} (expected an IANA name such as 'America/Chicago')")
    if not isinstance(cfg.site, str) or not cfg.site.strip():
        fail(f"site must be a non-empty string, got {cfg.site!r}")
    if not _is_int(cfg.telemetry_interval_s) or not 1 <= cfg.telemetry_interval_s <= 86_400:
        fail(f"telemetry_interval_s must be an integer between 1 and 86400, got {cfg.telemetry_interval_s!r}")
    if not all(isinstance(v, bool) for v in (cfg.telemetry, cfg.cycle_events, cfg.collector_outages)):
        fail("telemetry, cycle_events and collector_outages must be booleans")
    thr = cfg.micro_stop_threshold_s
    if isinstance(thr, bool) or not isinstance(thr, int | float) or not 10.0 <= float(thr) <= 3600.0:
        fail(f"micro_stop_threshold_s must be a number of seconds between 10 and 3600, got {thr!r}")
    wd = cfg.workdays
    if (not isinstance(wd, tuple) or not wd or len(set(wd)) != len(wd)
            or not all(_is_int(d) and 0 <= d <= 6 for d in wd)):
        fail(f"workdays must be a non-empty tuple of distinct weekdays 0..6 (0 = Monday), got {wd!r}")
    for name, zero_ok in (("process_shift_sigma", False), ("tool_wear_sigma", True)):
        problem = _sigma_range(getattr(cfg, name), zero_ok=zero_ok)
        if problem:
            fail(f"{name} must be {problem}, got {getattr(cfg, name)!r}")
    hours = cfg.process_shift_hours
    if (not isinstance(hours, tuple) or len(hours) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in hours)
            or not 0 < hours[0] <= hours[1] <= 240):
        fail(f"process_shift_hours must be a (low, high) pair of hours with 0 < low <= high <= 240, "
             f"got {hours!r}")
