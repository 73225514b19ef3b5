"""MachineMetrics: machines, production counts, machine states and downtime from its REST API.

Endpoints (bearer key, JSON, ``page`` / ``pageSize`` pagination with ``nextPage``):

* ``GET /v1/machines`` → ``machines``
* ``GET /v1/report/production?machineId=&startDate=&endDate=`` → ``production_events`` (one record
  per cycle or count, by its ``timestamp``)
* ``GET /v1/report/states?…`` → ``machine_states`` and ``GET /v1/report/downtime?…`` →
  ``downtime_events`` (intervals, selected by their *end*: an interval is reported once it is over)

Every row gets ``source='machinemetrics'``. Each machine × report is a stream with its own
watermark (``production:M01``); a window is fetched a day at a time, and each day is stored with
its watermark in one transaction (:mod:`workbench.sources.sync`). A record that cannot be read —
a count that is text, a timestamp without offset, a record of another machine, two records for
the same instant that disagree — goes to ``dead_letters`` with the field and the reason; the rest
of the page is stored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from workbench.ingest.stream import dead_letter
from workbench.sources.base import item_text, now_ms
from workbench.sources.http import JsonApi, SourceUnreachable
from workbench.sources.records import (
    RecordError,
    as_bool,
    as_count,
    as_number,
    as_text,
    as_time,
    optional,
    required,
)
from workbench.sources.sync import Unit

SOURCE = "machinemetrics"
#: Canonical machine states (what ``machine_states.state`` may hold).
STATES = frozenset({"running", "idle", "down", "setup", "planned_stop", "no_data"})
#: Reports synced per machine: report name → (endpoint, canonical table, entity in the run report).
REPORTS = {
    "production": ("/v1/report/production", "production_events"),
    "states": ("/v1/report/states", "machine_states"),
    "downtime": ("/v1/report/downtime", "downtime_events"),
}


def iso(value: dt.datetime) -> str:
    """An instant as the API takes it: UTC, milliseconds, ``Z``."""
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def pages(api: JsonApi, path: str, params: dict[str, Any], *, page_size: int) -> Iterator[list[Any]]:
    """Every page of a paginated list endpoint, in order.

    Raises
    ------
    SourceUnreachable
        A page could not be fetched after its retries, or the answer is not a page at all.
    """
    page = 1
    while True:
        body = api.get(path, {**params, "page": page, "pageSize": page_size})
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise SourceUnreachable(
                f"{api.source}: GET {api.where(path, params)} page {page} is not a page "
                f'(expected {{"data": [...]}}, got {item_text(body)[:120]})'
            )
        yield body["data"]
        nxt = body.get("nextPage")
        if nxt is None or not body["data"]:
            return
        if not isinstance(nxt, int) or nxt <= page:
            raise SourceUnreachable(
                f"{api.source}: GET {api.where(path, params)}: nextPage {nxt!r} after "
                f"page {page} would not advance"
            )
        page = nxt


# -- records → canonical rows ---------------------------------------------------------------------


def machine_row(r: dict[str, Any]) -> dict[str, Any]:
    """A ``machines`` row from a ``/v1/machines`` record."""
    ideal = optional(as_number, r.get("idealCycleTimeS"), "idealCycleTimeS")
    if ideal is not None and ideal <= 0:
        raise RecordError("idealCycleTimeS", f"must be > 0, got {ideal!r}")
    return {
        "machine_id": as_text(required(r, "machineId"), "machineId"),
        "name": optional(as_text, r.get("name"), "name"),
        "line": optional(as_text, r.get("line"), "line"),
        "area": optional(as_text, r.get("area"), "area"),
        "site": optional(as_text, r.get("site"), "site"),
        "machine_type": optional(as_text, r.get("machineType"), "machineType"),
        "ideal_cycle_time_s": ideal,
        "source": SOURCE,
    }


def _same_machine(r: dict[str, Any], machine_id: str) -> str:
    got = as_text(required(r, "machineId"), "machineId")
    if got != machine_id:
        raise RecordError("machineId", f"a record of {got!r} in the answer for {machine_id!r}")
    return got


def production_row(r: dict[str, Any], machine_id: str) -> dict[str, Any]:
    """A ``production_events`` row from a ``/v1/report/production`` record."""
    kind = as_text(required(r, "type"), "type")
    if kind not in ("cycle", "count"):
        raise RecordError("type", f"expected 'cycle' or 'count', got {kind!r}")
    cycle = optional(as_number, r.get("cycleTimeMs"), "cycleTimeMs")
    if cycle is not None and cycle < 0:
        raise RecordError("cycleTimeMs", f"must not be negative, got {cycle!r}")
    return {
        "time": as_time(required(r, "timestamp"), "timestamp"),
        "machine_id": _same_machine(r, machine_id),
        "event_type": kind,
        "part_number": optional(as_text, r.get("partNumber"), "partNumber"),
        "work_order": optional(as_text, r.get("workOrder"), "workOrder"),
        "cycle_time_ms": cycle,
        "good_count": as_count(required(r, "goodParts"), "goodParts"),
        "reject_count": as_count(required(r, "rejectParts"), "rejectParts"),
        "reject_reason": optional(as_text, r.get("rejectReason"), "rejectReason"),
        "operator_id": optional(as_text, r.get("operator"), "operator"),
        "source": SOURCE,
    }


def _interval(r: dict[str, Any]) -> tuple[dt.datetime, dt.datetime]:
    start, end = as_time(required(r, "start"), "start"), as_time(required(r, "end"), "end")
    if end <= start:
        raise RecordError("end", f"{iso(end)} is not after start {iso(start)}")
    return start, end


def state_row(r: dict[str, Any], machine_id: str) -> dict[str, Any]:
    """A ``machine_states`` row from a ``/v1/report/states`` record."""
    start, end = _interval(r)
    state = as_text(required(r, "state"), "state")
    if state not in STATES:
        raise RecordError("state", f"unknown state {state!r}; known: {', '.join(sorted(STATES))}")
    return {
        "machine_id": _same_machine(r, machine_id),
        "time_start": start,
        "time_end": end,
        "state": state,
        "fault_code": optional(as_text, r.get("faultCode"), "faultCode"),
        "source": SOURCE,
    }


def downtime_row(r: dict[str, Any], machine_id: str) -> dict[str, Any]:
    """A ``downtime_events`` row from a ``/v1/report/downtime`` record."""
    start, end = _interval(r)
    return {
        "machine_id": _same_machine(r, machine_id),
        "time_start": start,
        "time_end": end,
        "duration_min": (end - start).total_seconds() / 60.0,
        "reason_code": optional(as_text, r.get("reasonCode"), "reasonCode"),
        "reason_category": optional(as_text, r.get("category"), "category"),
        "planned": optional(as_bool, r.get("planned"), "planned"),
        "work_order": optional(as_text, r.get("workOrder"), "workOrder"),
        "operator_id": optional(as_text, r.get("operator"), "operator"),
        "fault_code": optional(as_text, r.get("faultCode"), "faultCode"),
        "notes": optional(as_text, r.get("notes"), "notes"),
        "source": SOURCE,
    }


#: Report → (row builder, the row's key inside one machine's answer).
_ROWS: dict[str, tuple[Callable[[dict[str, Any], str], dict[str, Any]], tuple[str, ...]]] = {
    "production": (production_row, ("event_type", "time")),
    "states": (state_row, ("time_start",)),
    "downtime": (downtime_row, ("time_start",)),
}


def convert(
    records: list[Any],
    build: Callable[[dict[str, Any]], dict[str, Any]],
    *,
    key: tuple[str, ...],
    table: str,
    where: str,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows and dead letters from a list of records.

    Two records with the same key and different values cannot both be true: the first is kept,
    the other dead-lettered (a batch that contradicts itself would otherwise stop the write).
    """
    rows: dict[tuple, dict[str, Any]] = {}
    dead: list[dict[str, Any]] = []
    received = now_ms()
    for record in records:
        try:
            row = build(record)
        except RecordError as exc:
            reason = f"bad_record: {exc}"
        else:
            k = tuple(row[c] for c in key)
            kept = rows.setdefault(k, row)
            if kept is row or kept == row:
                continue
            reason = f"conflicting_record: another record has the same {', '.join(key)} with other values"
        stamp = record.get("timestamp") or record.get("start") if isinstance(record, dict) else None
        dead.append(
            dead_letter(
                source=SOURCE,
                reason=reason,
                payload=item_text(record),
                location=f"{where} {stamp or ''}".strip(),
                received_ms=received,
                target_table=table,
            )
        )
    return list(rows.values()), dead


#: Report → (API field → (canonical column, kind)) for the whole-page fast path; kinds: ``time``,
#: ``count``, ``number`` (≥ 0 or null), ``text`` (or null), ``required_text``.
_FAST: dict[str, dict[str, tuple[str, str]]] = {
    "production": {
        "timestamp": ("time", "time"),
        "machineId": ("machine_id", "required_text"),
        "type": ("event_type", "required_text"),
        "partNumber": ("part_number", "text"),
        "workOrder": ("work_order", "text"),
        "cycleTimeMs": ("cycle_time_ms", "number"),
        "goodParts": ("good_count", "count"),
        "rejectParts": ("reject_count", "count"),
        "rejectReason": ("reject_reason", "text"),
        "operator": ("operator_id", "text"),
    },
    "states": {
        "machineId": ("machine_id", "required_text"),
        "start": ("time_start", "time"),
        "end": ("time_end", "time"),
        "state": ("state", "required_text"),
        "faultCode": ("fault_code", "text"),
    },
}


def fast_frame(records: list[Any], report: str, machine_id: str) -> pa.Table | None:
    """The canonical rows of a page checked column by column in Arrow, or ``None`` when anything
    in it is unusual (then :func:`convert` reads it record by record and says which record is wrong).

    The two paths give the same rows for a clean page; this one only takes pages where every
    record has exactly the expected fields with exactly the expected types — a page the record
    checks would pass whole. Arrow is as strict as those checks: a column mixing numbers and text
    does not convert, a timestamp without a UTC offset does not cast to UTC.
    """
    fields = _FAST.get(report)
    if fields is None or not records or not all(type(r) is dict and len(r) == len(fields) for r in records):
        return None
    try:
        table = pa.Table.from_pylist(records)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    if set(table.column_names) != set(fields):
        return None
    cols: dict[str, pa.ChunkedArray] = {}
    for name, (column, kind) in fields.items():
        values = table.column(name)
        t = values.type
        if kind == "time":
            if not pa.types.is_string(t) or values.null_count:
                return None
            try:
                cols[column] = values.cast(pa.timestamp("us", tz="UTC"))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return None
        elif kind in ("count", "number"):
            numeric = pa.types.is_integer(t) or (
                kind == "number" and (pa.types.is_floating(t) or pa.types.is_null(t))
            )
            if not numeric or (kind == "count" and values.null_count):
                return None
            values = values.cast(pa.int64() if kind == "count" else pa.float64())
            if pc.any(pc.less(values, 0)).as_py():
                return None
            cols[column] = values
        else:
            if not (pa.types.is_string(t) or pa.types.is_null(t)) or (
                kind == "required_text" and values.null_count
            ):
                return None
            cols[column] = values.cast(pa.string())
    rows = pa.table(cols)
    if not pc.all(pc.equal(rows["machine_id"], machine_id)).as_py():
        return None
    if report == "production":
        if not pc.all(pc.is_in(rows["event_type"], value_set=pa.array(["cycle", "count"]))).as_py():
            return None
        key = ["event_type", "time"]
    else:
        if (
            not pc.all(pc.is_in(rows["state"], value_set=pa.array(sorted(STATES)))).as_py()
            or not pc.all(pc.greater(rows["time_end"], rows["time_start"])).as_py()
        ):
            return None
        key = ["time_start"]
    if rows.select(key).group_by(key).aggregate([]).num_rows != rows.num_rows:
        return None
    return rows.append_column("source", pa.array([SOURCE] * rows.num_rows, pa.string()))


@dataclass
class MachinesStream:
    """The machine list (fetched before the run, so the run knows its machines)."""

    records: list[Any]
    where: str
    name: str = "machines"
    entity: str = "machines"

    def units(self, start: dt.datetime | None, until: dt.datetime) -> Iterator[Unit]:
        """One unit: the machines."""
        rows, dead = convert(
            self.records, machine_row, key=("machine_id",), table="machines", where=self.where
        )
        yield Unit(self.name, self.entity, {"machines": pd.DataFrame(rows)}, dead, len(self.records), until)


@dataclass
class ReportStream:
    """One report of one machine, fetched a window (``chunk``) at a time."""

    api: JsonApi
    machine_id: str
    report: str
    page_size: int = 1000
    chunk: dt.timedelta = dt.timedelta(days=1)

    @property
    def name(self) -> str:
        """The watermark stream: ``production:M01``."""
        return f"{self.report}:{self.machine_id}"

    @property
    def entity(self) -> str:
        """The canonical table, which is also what the run report counts."""
        return REPORTS[self.report][1]

    def units(self, start: dt.datetime | None, until: dt.datetime) -> Iterator[Unit]:
        """One unit per window of at most ``chunk``, from ``start`` to ``until``."""
        if start is None:
            raise SourceUnreachable(
                f"{SOURCE}: {self.name} needs a start (a watermark, --since or the "
                "pipeline's initial back-fill)"
            )
        path, table = REPORTS[self.report]
        build, key = _ROWS[self.report]
        lo = start
        while lo < until:
            hi = min(until, lo + self.chunk)
            params = {"machineId": self.machine_id, "startDate": iso(lo), "endDate": iso(hi)}
            records: list[Any] = []
            for page in pages(self.api, path, params, page_size=self.page_size):
                records.extend(page)
            frame = fast_frame(records, self.report, self.machine_id)
            dead: list[dict[str, Any]] = []
            if frame is None:
                rows, dead = convert(
                    records,
                    lambda r: build(r, self.machine_id),
                    key=key,
                    table=table,
                    where=f"GET {path} machineId={self.machine_id}",
                )
                frame = pd.DataFrame(rows)
            yield Unit(self.name, self.entity, {table: frame}, dead, len(records), hi)
            lo = hi


def machine_list(api: JsonApi, *, page_size: int) -> list[Any]:
    """Every record of ``/v1/machines``."""
    out: list[Any] = []
    for page in pages(api, "/v1/machines", {}, page_size=page_size):
        out.extend(page)
    return out


def machine_ids(records: list[Any]) -> list[str]:
    """The ids of the machine records that have one (the others are dead-lettered by the machines stream)."""
    ids = []
    for r in records:
        if isinstance(r, dict) and isinstance(r.get("machineId"), str) and r["machineId"]:
            ids.append(r["machineId"])
    return sorted(set(ids))


def key_fingerprint(key: str) -> str:
    """A short, non-reversible mark of an API key (to tell two keys apart in a log, never the key)."""
    return hashlib.sha256(key.encode()).hexdigest()[:8]
