"""A MachineMetrics-shaped REST API over a simulated plant, for the sync flows' tests and the demo.

``machinemetrics_app(plant, api_key=...)`` is a Starlette app (serve it with
:class:`~workbench.simulate.http.ServedApp`). Every endpoint needs ``Authorization: Bearer <key>``.

* ``GET /v1/machines`` — the machines.
* ``GET /v1/report/production?machineId=M01&startDate=…&endDate=…`` — production events with
  ``startDate <= timestamp < endDate``.
* ``GET /v1/report/states?…`` and ``GET /v1/report/downtime?…`` — state intervals and stops whose
  ``end`` is in ``[startDate, endDate)``.

Lists are paged (``page`` from 1, ``pageSize`` up to ``max_page_size``) and answered as
``{"data": [...], "page": p, "pageSize": n, "nextPage": p + 1 | null}``, ordered by time, then
start. Times are UTC with millisecond precision and ``Z``: the simulator's times are whole
milliseconds, so a client parsing them gets exactly the instants of the plant's frames.

**Late data.** A record becomes visible once ``record time + delay <= now`` (record time: the
production timestamp, the end of a state or stop). The delay is a pseudo-random number of seconds
in ``[0, late_max_s]`` drawn from a hash of the machine id and the record time, so a record is
late by the same amount in every run and every request. ``now`` is the app's clock: fixed, a
callable (``simulate serve`` passes the wall clock), or the end of the simulated horizon; ``POST
/_sim/clock {"now": iso}`` moves it at run time.

Fault injection and the request log (``/_sim/faults``, ``/_sim/requests``) are shared with the
ERP simulator: see :mod:`workbench.simulate.http`. ``malformed`` spoils ``goodParts`` ("12 pcs")
of production, ``start`` ("yesterday") of states and downtime, and ``idealCycleTimeS`` ("fast") of
machines.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from workbench.errors import SimulationError
from workbench.simulate.http import (
    ApiError,
    SimControl,
    SimMiddleware,
    api_error_handler,
    json_response,
    loads,
    parse_instant,
    parse_int,
)

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request

    from workbench.simulate.plant import SimulatedPlant

Clock = Callable[[], dt.datetime]

#: Report endpoints: (canonical table, its record-time column, its start column or None).
REPORTS: dict[str, tuple[str, str, str | None]] = {
    "production": ("production_events", "time", None),
    "states": ("machine_states", "time_end", "time_start"),
    "downtime": ("downtime_events", "time_end", "time_start"),
}
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def horizon(plant: SimulatedPlant) -> tuple[dt.datetime, dt.datetime]:
    """Start and end instants of a simulated plant: 06:00 plant time on the first day and on the
    day after the last (see :class:`~workbench.simulate.config.PlantConfig`)."""
    cfg = plant.config
    six = dt.time(6)
    start = dt.datetime.combine(cfg.start, six, tzinfo=cfg.tz)
    end = dt.datetime.combine(cfg.start + dt.timedelta(days=cfg.days), six, tzinfo=cfg.tz)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def late_delay_ms(machine_id: str, time_ms: np.ndarray, late_max_s: float) -> np.ndarray:
    """Each record's reporting delay in milliseconds, in ``[0, late_max_s]``: a hash of the machine
    id and the record time (splitmix64), so the same record is always equally late."""
    time_ms = np.asarray(time_ms, dtype=np.int64)
    if late_max_s <= 0 or len(time_ms) == 0:
        return np.zeros(len(time_ms), dtype=np.int64)
    seed = np.uint64(int.from_bytes(hashlib.blake2b(machine_id.encode(), digest_size=8).digest(), "little"))
    with np.errstate(over="ignore"):
        z = time_ms.astype(np.uint64) ^ seed
        z = (z + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    unit = (z >> np.uint64(11)).astype(np.float64) / float(2**53)  # [0, 1)
    max_ms = round(late_max_s * 1000)
    return np.floor(unit * (max_ms + 1)).astype(np.int64)


def _ms(values: pd.Series) -> np.ndarray:
    """Milliseconds since the epoch of a tz-aware column; raises if a time is not whole ms."""
    us = values.dt.tz_convert("UTC").astype("datetime64[us, UTC]").astype("int64").to_numpy()
    if (us % 1000).any():
        raise SimulationError(f"column {values.name!r} has times that are not whole milliseconds")
    return us // 1000


def _objects(values: pd.Series, cast: Callable[[Any], Any] | None = None) -> np.ndarray:
    """A column as a numpy object array of plain Python values, missing values as ``None``."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values.tolist()):
        out[i] = None if v is None or v is pd.NA or (isinstance(v, float) and v != v) else (
            cast(v) if cast else v
        )
    return out


def _ceil_ms(when: dt.datetime) -> int:
    """Whole milliseconds at or after an instant (so ``t >= when`` ⇔ ``t_ms >= _ceil_ms(when)``)."""
    return -((-_epoch_us(when)) // 1000)


def _epoch_us(when: dt.datetime) -> int:
    """Microseconds since the epoch of a tz-aware instant (exact: no float on the way)."""
    delta = when - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _iso_ms(ms: np.ndarray) -> list[str]:
    return [s + "Z" for s in np.datetime_as_string(ms.astype("datetime64[ms]"), unit="ms").tolist()]


@dataclass(frozen=True)
class _Records:
    """One machine's records of one report, sorted by record time then start, as columns."""

    time_ms: np.ndarray  # record time: what the window and the order are about
    visible_ms: np.ndarray  # record time + its delay
    times: dict[str, np.ndarray]  # output name -> ms since the epoch
    values: dict[str, np.ndarray]  # output name -> object array (JSON-ready values)
    order: tuple[str, ...]  # output field order

    def rows(self, idx: np.ndarray, machine_id: str) -> list[dict[str, Any]]:
        cols: dict[str, list[Any]] = {name: _iso_ms(a[idx]) for name, a in self.times.items()}
        cols.update({name: a[idx].tolist() for name, a in self.values.items()})
        cols["machineId"] = [machine_id] * len(idx)
        lists = [cols[name] for name in self.order]
        return [dict(zip(self.order, vals, strict=True)) for vals in zip(*lists, strict=True)]


class MachineMetricsSim:
    """The state behind the MachineMetrics-shaped API: the plant's records per machine and report,
    precomputed as sorted arrays so that a request is a binary search and a slice.

    Parameters
    ----------
    plant : SimulatedPlant
        The plant whose tables are served.
    api_key : str
        The bearer key clients must send.
    now : datetime or callable, optional
        The app's clock: a tz-aware instant, a zero-argument callable returning one, or None for
        the end of the simulated horizon (plus ``late_max_s``, so that everything is visible).
    late_max_s : float
        Largest reporting delay of a record, seconds (0: every record up to now is visible).
    max_page_size : int
        Largest ``pageSize`` a client may ask for.
    """

    def __init__(
        self,
        plant: SimulatedPlant,
        *,
        api_key: str,
        now: dt.datetime | Clock | None = None,
        late_max_s: float = 0.0,
        max_page_size: int = 5000,
    ) -> None:
        if not api_key:
            raise SimulationError("the MachineMetrics simulator needs a non-empty api_key")
        if late_max_s < 0:
            raise SimulationError(f"late_max_s must be >= 0, got {late_max_s}")
        if max_page_size < 1:
            raise SimulationError(f"max_page_size must be >= 1, got {max_page_size}")
        if isinstance(now, dt.datetime) and now.tzinfo is None:
            raise SimulationError("now must be timezone-aware")
        self.plant = plant
        self.api_key = api_key
        self.late_max_s = float(late_max_s)
        self.max_page_size = int(max_page_size)
        self._now = now
        self._override: dt.datetime | None = None
        self._lock = threading.Lock()
        self.control = SimControl()
        self.horizon = horizon(plant)
        self.machines = self._machine_records(plant.tables["machines"])
        self.reports: dict[str, dict[str, _Records]] = {
            name: self._report(name, plant.tables[table], time_col, start_col)
            for name, (table, time_col, start_col) in REPORTS.items()
        }
        self.app = self._build_app()

    # -- clock ---------------------------------------------------------------------------------------
    def now(self) -> dt.datetime:
        """The app's current notion of now."""
        with self._lock:
            override = self._override
        if override is not None:
            return override
        if self._now is None:
            return self.horizon[1] + dt.timedelta(seconds=self.late_max_s)
        value = self._now() if callable(self._now) else self._now
        if value.tzinfo is None:
            raise SimulationError("the clock of the MachineMetrics simulator returned a naive datetime")
        return value

    def set_now(self, when: dt.datetime | None) -> None:
        """Move the clock to ``when`` (tz-aware); None goes back to the constructor's clock."""
        if when is not None and when.tzinfo is None:
            raise SimulationError("now must be timezone-aware")
        with self._lock:
            self._override = when

    # -- precomputation -------------------------------------------------------------------------------
    @staticmethod
    def _machine_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
        frame = frame.sort_values("machine_id", kind="stable")
        out = []
        for r in frame.itertuples(index=False):
            ideal = r.ideal_cycle_time_s
            out.append({
                "machineId": r.machine_id,
                "name": None if pd.isna(r.name) else r.name,
                "line": None if pd.isna(r.line) else r.line,
                "area": None if pd.isna(r.area) else r.area,
                "site": None if pd.isna(r.site) else r.site,
                "machineType": None if pd.isna(r.machine_type) else r.machine_type,
                "idealCycleTimeS": None if pd.isna(ideal) else float(ideal),
            })
        return out

    def _report(
        self, name: str, frame: pd.DataFrame, time_col: str, start_col: str | None
    ) -> dict[str, _Records]:
        out: dict[str, _Records] = {}
        for machine_id in self.plant.tables["machines"]["machine_id"]:
            part = frame[frame["machine_id"] == machine_id]
            t = _ms(part[time_col])
            s = _ms(part[start_col]) if start_col else t
            order = np.lexsort((s, t))  # by record time, then start
            part, t, s = part.iloc[order], t[order], s[order]
            visible = t + late_delay_ms(machine_id, t, self.late_max_s)
            if name == "production":
                times = {"timestamp": t}
                values = {
                    "type": _objects(part["event_type"]),
                    "partNumber": _objects(part["part_number"]),
                    "workOrder": _objects(part["work_order"]),
                    "goodParts": _objects(part["good_count"], int),
                    "rejectParts": _objects(part["reject_count"], int),
                    "rejectReason": _objects(part["reject_reason"]),
                    "cycleTimeMs": _objects(part["cycle_time_ms"], float),
                    "operator": _objects(part["operator_id"]),
                }
                fields = ("timestamp", "machineId", "type", "partNumber", "workOrder", "goodParts",
                          "rejectParts", "rejectReason", "cycleTimeMs", "operator")
            elif name == "states":
                times = {"start": s, "end": t}
                values = {"state": _objects(part["state"]), "faultCode": _objects(part["fault_code"])}
                fields = ("machineId", "start", "end", "state", "faultCode")
            else:
                times = {"start": s, "end": t}
                values = {
                    "reasonCode": _objects(part["reason_code"]),
                    "category": _objects(part["reason_category"]),
                    "planned": _objects(part["planned"], bool),
                    "workOrder": _objects(part["work_order"]),
                    "operator": _objects(part["operator_id"]),
                    "faultCode": _objects(part["fault_code"]),
                    "notes": _objects(part["notes"]),
                }
                fields = ("machineId", "start", "end", "reasonCode", "category", "planned", "workOrder",
                          "operator", "faultCode", "notes")
            out[str(machine_id)] = _Records(t, visible, times, values, fields)
        return out

    # -- endpoints --------------------------------------------------------------------------------------
    def _page_args(self, request: Request) -> tuple[int, int]:
        q = request.query_params
        page = parse_int(q.get("page"), "page", default=1, low=1)
        size = parse_int(q.get("pageSize"), "pageSize", default=1000, low=1, high=self.max_page_size)
        return page, size

    @staticmethod
    def _paged(data: list[dict[str, Any]], page: int, size: int, more: bool):
        return json_response(
            {"data": data, "page": page, "pageSize": size, "nextPage": page + 1 if more and data else None}
        )

    async def machines_endpoint(self, request: Request):
        """``GET /v1/machines``."""
        page, size = self._page_args(request)
        lo = (page - 1) * size
        data = self.machines[lo : lo + size]
        return self._paged(data, page, size, lo + size < len(self.machines))

    async def report_endpoint(self, request: Request):
        """``GET /v1/report/{production|states|downtime}``."""
        report = request.path_params["report"]
        if report not in self.reports:
            raise ApiError(404, f"unknown report {report!r} (known: {', '.join(self.reports)})")
        q = request.query_params
        machine_id = q.get("machineId")
        if not machine_id:
            raise ApiError(400, "missing query parameter machineId")
        start = parse_instant(q.get("startDate"), "startDate")
        end = parse_instant(q.get("endDate"), "endDate")
        assert start is not None and end is not None
        if start >= end:
            raise ApiError(
                400, f"startDate ({q.get('startDate')}) must be before endDate ({q.get('endDate')})"
            )
        page, size = self._page_args(request)
        records = self.reports[report].get(machine_id)
        if records is None:
            raise ApiError(404, f"unknown machineId {machine_id!r}")
        lo = int(np.searchsorted(records.time_ms, _ceil_ms(start), side="left"))
        hi = int(np.searchsorted(records.time_ms, _ceil_ms(end), side="left"))
        # Visible: record time + delay <= now, in microseconds so a sub-millisecond now is exact.
        now_us = _epoch_us(self.now())
        idx = lo + np.flatnonzero(records.visible_ms[lo:hi] * 1000 <= now_us)
        first = (page - 1) * size
        chosen = idx[first : first + size]
        data = records.rows(chosen, machine_id)
        return self._paged(data, page, size, first + size < len(idx))

    async def clock_endpoint(self, request: Request):
        """``POST /_sim/clock {"now": iso}`` sets the clock (``null`` restores the constructor's);
        ``GET /_sim/clock`` reads it."""
        if request.method == "POST":
            try:
                body = loads(await request.body() or b"{}")
            except ValueError:
                raise ApiError(400, "the body is not JSON") from None
            if not isinstance(body, dict) or "now" not in body:
                raise ApiError(400, 'expected {"now": "<ISO-8601 instant with offset>"}')
            value = body["now"]
            if value is not None and not isinstance(value, str):
                raise ApiError(400, "now must be an ISO-8601 string or null")
            self.set_now(parse_instant(value, "now") if value is not None else None)
        return json_response({"now": self.now().astimezone(dt.UTC).isoformat().replace("+00:00", "Z")})

    def _build_app(self) -> Starlette:
        from starlette.applications import Starlette
        from starlette.middleware import Middleware
        from starlette.routing import Route

        routes = [
            Route("/v1/machines", self.machines_endpoint, methods=["GET"]),
            Route("/v1/report/{report}", self.report_endpoint, methods=["GET"]),
            Route("/_sim/clock", self.clock_endpoint, methods=["GET", "POST"]),
        ]
        app = Starlette(
            routes=routes,
            middleware=[
                Middleware(SimMiddleware, api_key=self.api_key, control=self.control, malform=malform)
            ],
            exception_handlers={ApiError: api_error_handler, Exception: api_error_handler},
        )
        app.state.sim = self
        return app


def malform(path: str, body: dict[str, Any]) -> None:
    """Spoil the first record of a MachineMetrics answer the way a broken gateway would."""
    first = body["data"][0]
    if path.endswith("/production"):
        first["goodParts"] = "12 pcs"
    elif path.endswith(("/states", "/downtime")):
        first["start"] = "yesterday"
    elif path.endswith("/machines"):
        first["idealCycleTimeS"] = "fast"


def machinemetrics_app(
    plant: SimulatedPlant,
    *,
    api_key: str,
    now: dt.datetime | Clock | None = None,
    late_max_s: float = 0.0,
    max_page_size: int = 5000,
) -> Starlette:
    """The MachineMetrics-shaped API of a simulated plant, as a Starlette app.

    Parameters
    ----------
    plant : SimulatedPlant
        Whose machines, production events, states and downtime events are served.
    api_key : str
        Bearer key every request must carry (401 otherwise).
    now : datetime or callable, optional
        The app's clock: a tz-aware instant, a callable returning one (e.g. the wall clock), or
        None for the end of the simulated horizon (everything visible).
    late_max_s : float
        Largest reporting delay of a record, seconds.
    max_page_size : int
        Largest ``pageSize`` accepted (400 above).

    Returns
    -------
    starlette.applications.Starlette
        The app; ``app.state.sim`` is its :class:`MachineMetricsSim` (clock, faults, request log).
    """
    return MachineMetricsSim(
        plant, api_key=api_key, now=now, late_max_s=late_max_s, max_page_size=max_page_size
    ).app


__all__ = ["REPORTS", "MachineMetricsSim", "horizon", "late_delay_ms", "machinemetrics_app", "malform"]
