"""Streaming normalisation: raw readings from any connector → canonical rows and dead letters.

Shared by every shop-floor protocol (MQTT / KEPServerEX, OPC UA, Modbus), so a counter, a state
or a fault means the same whichever way it arrived. :class:`Normalizer` is stateful — the last
value of every counter, the open state interval and active fault of every machine, what each
machine is making — and its state is a plain JSON-able dict that the spool saves in the same
transaction as the rows it produced, so a crash never counts an increment twice or loses one.

What each reading becomes (see :mod:`workbench.sources.tags` for the kinds):

* every reading that passes the data-quality rules is kept in ``machine_telemetry`` with its
  quality (``good``, or ``bad`` when the source flagged it — kept, flagged, never used to derive
  counts or states);
* counters → ``production_events`` increments (``event_type='count'``), telling a rollover
  (``2**bits - previous + value`` increments) from a reset to 0 (the value itself): a drop while the
  machine's state tag says it was stopped since the previous reading is a reset (a PLC restart in a
  stop); otherwise a rollover if ``max_rate_per_s`` makes that many parts plausible, else a reset if
  the value is, else a ``counter_backwards`` dead letter; the good and reject increments of one
  machine at one source time share a row;
* state codes → ``machine_states`` intervals, written when the state changes and, while it does
  not, up to every 15-minute boundary (``checkpoint_s``); a :class:`Gap` closes the open interval
  at the last good reading and writes ``no_data`` to the reconnect;
* faults → the fault code of the stop; every ``down`` or ``setup`` interval becomes a
  ``downtime_events`` row with the fault seen during it and its reason code from the tag
  dictionary's ``fault_codes`` (machines without a state tag get one per fault instead);
* context tags set the part number / work order / operator of the production rows that follow.

Data-quality rules, each a ``dead_letters`` row with the rule's name and the raw item (the
collector never stops for bad input): ``unknown_tag``, ``wrong_type``, ``not_finite``,
``out_of_range``, ``counter_backwards``, ``counter_jump``, ``unknown_state``,
``future_timestamp`` (beyond the dictionary's ``clock_skew_s``), ``late`` (older than the tag's
watermark), ``bad_timestamp``; plus whatever the connector rejected (``malformed`` …).
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from workbench.sources.base import Batch, Gap, Reading, item_text, now_ms
from workbench.sources.tags import Tag, TagDictionary

# Timestamps outside 2000-01-01 … 2100-01-01 are not plant data.
_MIN_MS, _MAX_MS = 946_684_800_000, 4_102_444_800_000
STOP_STATES = ("down", "setup")
PRODUCING = ("running", "idle")
# At one source time, counters are judged before the state of that instant takes over: the parts
# were made in the interval that ends there, under the state in force before it.
_ORDER = {"counter": 0, "context": 1, "gauge": 2, "fault": 3, "state": 4}


@dataclass
class Rows:
    """Canonical rows and dead letters from one :meth:`Normalizer.process` call."""

    tables: dict[str, pa.Table] = field(default_factory=dict)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    stats: Counter = field(default_factory=Counter)

    @property
    def n_rows(self) -> int:
        """Canonical rows, all tables."""
        return sum(t.num_rows for t in self.tables.values())


def dead_letter(
    *,
    source: str,
    reason: str,
    payload: str,
    location: str | None,
    received_ms: int,
    target_table: str | None = None,
) -> dict[str, Any]:
    """A ``dead_letters`` row; its id is a hash of what was rejected, so a replay is a no-op."""
    digest = hashlib.sha1(f"{source}|{location}|{reason}|{payload}".encode("utf-8", "surrogatepass"))
    return {
        "dead_letter_id": digest.hexdigest(),
        "received_at": received_ms,
        "source": source,
        "target_table": target_table,
        "location": location,
        "reason": reason,
        "payload": payload,
    }


def _ts(values: list[int]) -> pa.Array:
    return pa.array(values, pa.int64()).cast(pa.timestamp("ms", tz="UTC"))


class Normalizer:
    """Turn connector batches into canonical rows (see the module docstring).

    Parameters
    ----------
    tags : TagDictionary
        What every address means.
    reason_codes : mapping, optional
        ``code → (category, planned)`` from the warehouse's ``reason_codes``, to fill
        ``reason_category`` and ``planned`` of the downtime events a fault code maps to.
    state : dict, optional
        State saved by an earlier run (:attr:`state`), to continue exactly where it stopped.
    checkpoint_s : float
        An open state interval is written up to each multiple of this (source time) that passes,
        so a machine that stays in one state still shows in ``machine_states``.
    """

    def __init__(
        self,
        tags: TagDictionary,
        *,
        reason_codes: Mapping[str, tuple[str, bool]] | None = None,
        state: dict[str, Any] | None = None,
        checkpoint_s: float = 900.0,
    ) -> None:
        self.tags = tags
        self.checkpoint_ms = int(checkpoint_s * 1000)
        self.reason_codes = dict(reason_codes or {})
        self.skew_ms = int(tags.clock_skew_s * 1000)
        self.state: dict[str, Any] = state if state is not None else {}
        for key in (
            "last",
            "counter",
            "open_state",
            "fault",
            "context",
            "prod_last",
            "source_last",
            "ran_until",
        ):
            self.state.setdefault(key, {})
        self._has_state_tag = {t.machine_id for t in tags.tags if t.kind == "state"}
        self._kind_order = {(t.source, t.address): _ORDER[t.kind] for t in tags.tags}
        self._machines_of: dict[str, list[str]] = {}
        # Derived rows carry the source of the machine's counters / state (its natural-key source).
        self.source_of: dict[str, str] = {}
        for t in sorted(tags.tags, key=lambda t: t.kind not in ("counter", "state")):
            self.source_of.setdefault(t.machine_id, t.source)
        for t in tags.tags:
            if t.machine_id not in self._machines_of.setdefault(t.source, []):
                self._machines_of[t.source].append(t.machine_id)

    # -----------------------------------------------------------------------------------------
    def process(self, batch: Batch, *, received_ms: int | None = None) -> Rows:
        """Normalise one batch; update :attr:`state`."""
        received = now_ms() if received_ms is None else received_ms
        out = _Out()
        for rej in batch.rejected:
            out.dead.append(
                dead_letter(
                    source=rej.source,
                    reason=rej.reason,
                    payload=rej.payload,
                    location=rej.location,
                    received_ms=rej.received_ms or received,
                )
            )
            out.stats["rejected"] += 1
        for gap in batch.gaps:
            self._gap(gap, out)
        kind = self._kind_order
        for r in sorted(
            batch.readings,
            key=lambda r: (
                r.time_ms if isinstance(r.time_ms, int) else 0,
                kind.get((r.source, r.address), 5),
            ),
        ):
            self._reading(r, received, out)
        self._flush_production(out)
        return out.rows()

    # -----------------------------------------------------------------------------------------
    def _reject(
        self, out: _Out, r: Reading, reason: str, detail: str, received: int, table: str | None
    ) -> None:
        if isinstance(r.raw, str):
            payload = r.raw
        else:
            item = (
                r.raw if r.raw is not None else {"id": r.address, "v": r.value, "q": r.good, "t": r.time_ms}
            )
            payload = item_text(item)
        out.dead.append(
            dead_letter(
                source=r.source,
                reason=f"{reason}: {detail}",
                payload=payload,
                location=r.address,
                received_ms=received,
                target_table=table,
            )
        )
        out.stats[reason] += 1

    def _reading(self, r: Reading, received: int, out: _Out) -> None:
        tag = self.tags.tag(r.source, r.address)
        if tag is None:
            self._reject(
                out,
                r,
                "unknown_tag",
                f"{r.address!r} is not in the tag dictionary of source {r.source!r}",
                received,
                None,
            )
            return
        table = _TABLE_OF[tag.kind]
        t = r.time_ms
        if not isinstance(t, int) or isinstance(t, bool) or not _MIN_MS <= t < _MAX_MS:
            self._reject(
                out,
                r,
                "bad_timestamp",
                f"source time {t!r} is not a time between 2000 and 2100",
                received,
                table,
            )
            return
        if t > received + self.skew_ms:
            self._reject(
                out,
                r,
                "future_timestamp",
                f"source time is {(t - received) / 1000:.1f} s ahead of the "
                f"collector clock (tolerance {self.skew_ms / 1000:g} s)",
                received,
                table,
            )
            return
        key = f"{tag.source}|{tag.address}"
        last = self.state["last"].get(key)
        if last is not None and t < last:
            self._reject(
                out,
                r,
                "late",
                f"source time is older than this tag's watermark by {(last - t) / 1000:.3f} s",
                received,
                table,
            )
            return
        self._checkpoint(tag.machine_id, t, out)
        value = self._value(tag, r, received, out, table)
        if value is _BAD:
            return
        self.state["last"][key] = t
        src_last = self.state["source_last"]
        src_last[r.source] = max(src_last.get(r.source, t), t)
        if tag.kind != "context":
            out.telemetry(t, tag, float(value), r.good)
        if not r.good:
            out.stats["flagged"] += 1
            return
        if tag.kind == "counter":
            self._counter(tag, key, t, int(value), r, received, out)
        elif tag.kind == "state":
            self._state(tag, t, value, out)
        elif tag.kind == "fault":
            self._fault(tag, t, value, out)
        elif tag.kind == "context":
            self.state["context"].setdefault(tag.machine_id, {})[tag.field] = value
        out.stats["readings"] += 1

    def _value(self, tag: Tag, r: Reading, received: int, out: _Out, table: str) -> Any:
        v = r.value
        if tag.kind == "context":
            if isinstance(v, bool) or not isinstance(v, str | int):
                self._reject(
                    out, r, "wrong_type", f"a {tag.field} must be text, got {_type(v)}", received, table
                )
                return _BAD
            text = str(v).strip()
            if len(text) > 200:
                self._reject(
                    out, r, "out_of_range", f"a {tag.field} of {len(text)} characters", received, table
                )
                return _BAD
            return text
        if isinstance(v, bool):
            if tag.kind in ("state", "fault"):
                return int(v)
            self._reject(
                out, r, "wrong_type", f"a {tag.kind} must be a number, got a boolean", received, table
            )
            return _BAD
        if not isinstance(v, int | float):
            self._reject(
                out, r, "wrong_type", f"a {tag.kind} must be a number, got {_type(v)}", received, table
            )
            return _BAD
        if isinstance(v, float) and not math.isfinite(v):
            self._reject(out, r, "not_finite", f"{v!r} is not a finite number", received, table)
            return _BAD
        if abs(v) > 1e15:
            self._reject(out, r, "out_of_range", f"{v!r} is too large for any PLC value", received, table)
            return _BAD
        if tag.kind in ("counter", "state", "fault"):
            if v != int(v):
                self._reject(
                    out, r, "wrong_type", f"a {tag.kind} must be a whole number, got {v!r}", received, table
                )
                return _BAD
            v = int(v)
        if tag.kind == "state" and str(v) not in tag.states:
            self._reject(
                out,
                r,
                "unknown_state",
                f"state code {v} of {tag.machine_id} is not in states: ({', '.join(tag.states)})",
                received,
                table,
            )
            return _BAD
        if tag.kind == "counter" and not 0 <= v < tag.modulus:
            self._reject(
                out,
                r,
                "out_of_range",
                f"counter value {v} outside 0…{tag.modulus - 1} ({tag.bits}-bit)",
                received,
                table,
            )
            return _BAD
        if tag.low is not None and not tag.low <= v <= tag.high:
            self._reject(
                out,
                r,
                "out_of_range",
                f"{v!r} outside the physical range [{tag.low:g}, {tag.high:g}] "
                f"of {tag.machine_id}/{tag.metric}",
                received,
                table,
            )
            return _BAD
        return v

    # -- counters -------------------------------------------------------------------------------
    def _counter(self, tag: Tag, key: str, t: int, v: int, r: Reading, received: int, out: _Out) -> None:
        prev = self.state["counter"].get(key)
        if prev is None:
            self.state["counter"][key] = [t, v]  # the first reading is the baseline
            return
        t0, v0 = prev
        max_step = max(1, math.ceil(tag.max_rate_per_s * max((t - t0) / 1000.0, 1.0)))
        if v >= v0:
            inc = v - v0
            if inc > max_step:
                self._reject(
                    out,
                    r,
                    "counter_jump",
                    f"{tag.machine_id}/{tag.metric} rose by {inc} in "
                    f"{(t - t0) / 1000:g} s, more than max_rate_per_s={tag.max_rate_per_s:g} allows",
                    received,
                    "production_events",
                )
                return  # keep the baseline: a glitch must not cost counts
        else:
            wrapped = tag.modulus - v0 + v
            if not self._could_produce(tag.machine_id, t0):
                inc = v  # stopped all along (a PLC restart in a stop): only a reset explains the drop
                out.stats["counter_resets"] += 1
            elif wrapped <= max_step:
                inc = wrapped
                out.stats["counter_rollovers"] += 1
            elif v <= max_step:
                inc = v  # reset to 0, then v parts
                out.stats["counter_resets"] += 1
            else:
                self._reject(
                    out,
                    r,
                    "counter_backwards",
                    f"{tag.machine_id}/{tag.metric} went from {v0} to {v}: "
                    f"neither a {tag.bits}-bit rollover nor a reset to 0 at max_rate_per_s="
                    f"{tag.max_rate_per_s:g}",
                    received,
                    "production_events",
                )
                return
        self.state["counter"][key] = [t, v]
        if inc:
            slot = out.production.setdefault((tag.machine_id, t), [0, 0])
            slot[0 if tag.counts == "good" else 1] += inc

    def _could_produce(self, m: str, since: int) -> bool:
        """Whether machine ``m`` may have made parts after ``since`` (unknown without a state tag)."""
        if m not in self._has_state_tag:
            return True
        open_ = self.state["open_state"].get(m)
        if open_ is None or open_[1] in PRODUCING:
            return True
        return self.state["ran_until"].get(m, 0) > since

    def _flush_production(self, out: _Out) -> None:
        last = self.state["prod_last"]
        for (machine, t), (good, rej) in sorted(out.production.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            # One row per machine and time (the table's natural key): a later batch with an increment
            # at a time already written moves 1 ms on rather than being dropped as a replay.
            when = max(t, last.get(machine, -1) + 1)
            last[machine] = when
            ctx = self.state["context"].get(machine, {})
            out.prod_rows.append(
                (
                    when,
                    machine,
                    ctx.get("part_number"),
                    ctx.get("work_order"),
                    ctx.get("operator_id"),
                    good,
                    rej,
                    self.source_of[machine],
                )
            )

    # -- states and faults -------------------------------------------------------------------------
    def _state(self, tag: Tag, t: int, code: int, out: _Out) -> None:
        name = tag.states[str(code)]  # checked in _value
        m = tag.machine_id
        open_ = self.state["open_state"].get(m)
        if open_ is not None and open_[1] == name:
            return
        if open_ is not None and t > open_[0]:
            if open_[1] in PRODUCING:
                self.state["ran_until"][m] = t
            self._close_state(m, t, out)
        fault = self.state["fault"].get(m)
        # [start of the part not yet written, state, fault, start of the whole interval]
        self.state["open_state"][m] = [t, name, fault[1] if fault else None, t]

    def _checkpoint(self, m: str, t: int, out: _Out) -> None:
        """Write the open interval up to the last checkpoint boundary before ``t``.

        A machine that stays in one state for hours would otherwise have nothing in
        ``machine_states`` until it changes, and a report would read that time as no data.
        """
        open_ = self.state["open_state"].get(m)
        if open_ is None or t - open_[0] < self.checkpoint_ms:
            return
        boundary = t - t % self.checkpoint_ms
        if boundary > open_[0]:
            out.states.append((m, open_[0], boundary, open_[1], open_[2], self.source_of[m]))
            open_[0] = boundary

    def _close_state(self, m: str, t: int, out: _Out) -> None:
        open_ = self.state["open_state"].pop(m)
        start, name, fault = open_[:3]
        since = open_[3] if len(open_) > 3 else start
        if t > start:
            out.states.append((m, start, t, name, fault, self.source_of[m]))
        if name in STOP_STATES and t > since:
            out.downtime.append(self._downtime_row(m, since, t, fault))

    def _fault(self, tag: Tag, t: int, value: int, out: _Out) -> None:
        m = tag.machine_id
        code = None if value == 0 else str(value)
        current = self.state["fault"].get(m)
        if (current[1] if current else None) == code:
            return
        if current is not None and m not in self._has_state_tag and t > current[0]:
            out.downtime.append(self._downtime_row(m, current[0], t, current[1]))
        if code is None:
            self.state["fault"].pop(m, None)
            return
        self.state["fault"][m] = [t, code]
        open_ = self.state["open_state"].get(m)
        if open_ is not None and open_[1] in STOP_STATES and open_[2] is None:
            open_[2] = code  # the fault that came up during the stop explains it

    def _downtime_row(self, m: str, start: int, end: int, fault: str | None) -> tuple:
        reason = self.tags.fault_codes.get(fault) if fault else None
        category, planned = self.reason_codes.get(reason, (None, None)) if reason else (None, None)
        return (m, start, end, (end - start) / 60_000.0, reason, category, planned, fault, self.source_of[m])

    def _gap(self, gap: Gap, out: _Out) -> None:
        for m in self._machines_of.get(gap.source, []):
            open_ = self.state["open_state"].get(m)
            start = gap.start_ms
            if open_ is not None:
                start = max(start, open_[0])
                self._close_state(m, start, out)
            if gap.end_ms > start:
                out.states.append((m, start, gap.end_ms, "no_data", None, self.source_of[m]))
            # The first reading after the reconnect opens the next interval; until then nothing is known.
            self.state["open_state"].pop(m, None)
        out.stats["gaps"] += 1


_BAD = object()
_TABLE_OF = {
    "gauge": "machine_telemetry",
    "counter": "production_events",
    "state": "machine_states",
    "fault": "downtime_events",
    "context": "production_events",
}


def _type(v: Any) -> str:
    return "null" if v is None else type(v).__name__


class _Out:
    """Column-wise accumulators (fast at hundreds of thousands of readings a minute)."""

    def __init__(self) -> None:
        self.t_time: list[int] = []
        self.t_machine: list[str] = []
        self.t_metric: list[str] = []
        self.t_value: list[float] = []
        self.t_unit: list[str | None] = []
        self.t_quality: list[str] = []
        self.t_source: list[str] = []
        self.production: dict[tuple[str, int], list[int]] = {}
        self.prod_rows: list[tuple] = []
        self.states: list[tuple] = []
        self.downtime: list[tuple] = []
        self.dead: list[dict[str, Any]] = []
        self.stats: Counter = Counter()

    def telemetry(self, t: int, tag: Tag, value: float, good: bool) -> None:
        self.t_time.append(t)
        self.t_machine.append(tag.machine_id)
        self.t_metric.append(tag.metric)
        self.t_value.append(value)
        self.t_unit.append(tag.unit)
        self.t_quality.append("good" if good else "bad")
        self.t_source.append(tag.source)

    def rows(self) -> Rows:
        tables: dict[str, pa.Table] = {}
        if self.t_time:
            tables["machine_telemetry"] = pa.table(
                {
                    "time": _ts(self.t_time),
                    "machine_id": self.t_machine,
                    "metric": self.t_metric,
                    "value": pa.array(self.t_value, pa.float64()),
                    "unit": pa.array(self.t_unit, pa.string()),
                    "quality": self.t_quality,
                    "source": self.t_source,
                }
            )
        if self.prod_rows:
            cols = list(zip(*self.prod_rows, strict=True))
            tables["production_events"] = pa.table(
                {
                    "time": _ts(list(cols[0])),
                    "machine_id": list(cols[1]),
                    "event_type": ["count"] * len(cols[0]),
                    "part_number": pa.array(cols[2], pa.string()),
                    "work_order": pa.array(cols[3], pa.string()),
                    "operator_id": pa.array(cols[4], pa.string()),
                    "good_count": pa.array(cols[5], pa.int64()),
                    "reject_count": pa.array(cols[6], pa.int64()),
                    "source": list(cols[7]),
                }
            )
        if self.states:
            cols = list(zip(*self.states, strict=True))
            tables["machine_states"] = pa.table(
                {
                    "machine_id": list(cols[0]),
                    "time_start": _ts(list(cols[1])),
                    "time_end": _ts(list(cols[2])),
                    "state": list(cols[3]),
                    "fault_code": pa.array(cols[4], pa.string()),
                    "source": list(cols[5]),
                }
            )
        if self.downtime:
            cols = list(zip(*self.downtime, strict=True))
            tables["downtime_events"] = pa.table(
                {
                    "machine_id": list(cols[0]),
                    "time_start": _ts(list(cols[1])),
                    "time_end": _ts(list(cols[2])),
                    "duration_min": pa.array(cols[3], pa.float64()),
                    "reason_code": pa.array(cols[4], pa.string()),
                    "reason_category": pa.array(cols[5], pa.string()),
                    "planned": pa.array(cols[6], pa.bool_()),
                    "fault_code": pa.array(cols[7], pa.string()),
                    "source": list(cols[8]),
                }
            )
        return Rows(tables=tables, dead_letters=self.dead, stats=self.stats)


def dead_letter_table(rows: list[dict[str, Any]]) -> pa.Table:
    """``dead_letters`` rows as an Arrow table (``received_at`` given in epoch ms)."""
    return pa.table(
        {
            "dead_letter_id": [d["dead_letter_id"] for d in rows],
            "received_at": _ts([int(d["received_at"]) for d in rows]),
            "source": [d["source"] for d in rows],
            "target_table": pa.array([d["target_table"] for d in rows], pa.string()),
            "location": pa.array([d["location"] for d in rows], pa.string()),
            "reason": [d["reason"] for d in rows],
            "payload": pa.array([d["payload"] for d in rows], pa.string()),
        }
    )


__all__ = ["Normalizer", "Rows", "dead_letter", "dead_letter_table"]
