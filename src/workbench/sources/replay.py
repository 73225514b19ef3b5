"""Replaying dead letters once their cause is fixed (``workbench dlq replay``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from workbench.ingest.stream import Normalizer
from workbench.sources.base import Batch, Reading
from workbench.sources.tags import TagDictionary


@dataclass(frozen=True)
class ReplayResult:
    """What a replay did."""

    replayed: int
    written: int
    still_rejected: int
    not_replayable: int


def _reading(source: str, payload: Any) -> Reading | None:
    try:
        item = json.loads(payload) if isinstance(payload, str) else None
    except json.JSONDecodeError:
        return None
    if not isinstance(item, dict) or not {"id", "v", "t"} <= set(item) or not isinstance(item["id"], str):
        return None
    t = item["t"]
    if isinstance(t, float) and t.is_integer():
        t = int(t)
    return Reading(
        source,
        item["id"],
        item["v"],
        t if isinstance(t, int) and not isinstance(t, bool) else -1,
        bool(item.get("q", True)),
        payload,
    )


def replay_dead_letters(
    wh: Any, tags: TagDictionary, *, source: str | None = None, rule: str | None = None
) -> ReplayResult:
    """Run dead-lettered readings through a fresh normaliser, in source-time order per source.

    Readings that pass are written and their dead letters deleted in one transaction, so a second
    replay finds nothing: exactly once. Counters replayed on their own start from the first replayed
    value (a baseline), as after any gap in a counter's readings.
    """
    dead = wh.read("dead_letters")
    if source:
        dead = dead[dead["source"] == source]
    if rule:
        dead = dead[dead["reason"].str.split(":").str[0] == rule]
    replayable: dict[str, list[tuple[str, Reading]]] = {}
    not_replayable = 0
    for row in dead.itertuples():
        r = _reading(row.source, row.payload)
        if r is None:
            not_replayable += 1
        else:
            replayable.setdefault(row.source, []).append((row.dead_letter_id, r))
    written = still = 0
    passed: list[str] = []
    frames: dict[str, list] = {}
    for src, items in replayable.items():
        norm = Normalizer(tags)
        for dl_id, r in sorted(items, key=lambda x: x[1].time_ms):
            rows = norm.process(Batch(source=src, readings=[r]), received_ms=max(r.time_ms, 0) + 1)
            if rows.dead_letters:
                still += 1
                continue
            passed.append(dl_id)
            for name, table in rows.tables.items():
                frames.setdefault(name, []).append(table)
    with wh.transaction():
        for name, tables in frames.items():
            written += wh.write(name, pa.concat_tables(tables)).written
        wh.delete_keys("dead_letters", "dead_letter_id", passed)
    return ReplayResult(
        replayed=len(passed), written=written, still_rejected=still, not_replayable=not_replayable
    )
