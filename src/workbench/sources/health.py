"""Health of every data source, and the alert when one goes stale.

Sources are the shop-floor collector's (one per tag-dictionary source; the collector writes a
heartbeat row to ``ingest_watermarks`` every few seconds, stream ``collector``) and the business
syncs (MachineMetrics, the ERP; each run is a row of ``sync_runs``). For each: when it last
succeeded, the newest data stored (its lag behind now), failed runs since the last success, the
last error and the dead letters of the last 24 hours.

A source is *expected* once it has reported at all (or, for a sync, once its connection is
configured): a source that never ran in this warehouse is shown as such (``NEVER RUN``), not
alerted about — the demo plant has no collector, and a sync just configured has had no turn yet;
a sync that has run and failed ever since is stale ``stale_min`` after its first attempt. An
expected source without success for ``stale_min`` minutes is **stale**:
:func:`record_stale_alerts` opens one ``alerts`` row per stale source (rule ``source_stale``, one
open alert per source, updated while it lasts) and resolves it when the source is back, so the
daily report can say which data of the day is incomplete and why.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from workbench.store.base import Warehouse

if TYPE_CHECKING:
    from workbench.config import Settings

RULE = "source_stale"
COLLECTOR_STREAM = "collector"


@dataclass(frozen=True)
class SourceHealth:
    """One source's health at ``now``.

    Attributes
    ----------
    source : str
        ``machinemetrics``, ``erp``, or a tag-dictionary source name.
    kind : str
        ``sync`` or ``collector (<protocol>)``.
    expected : bool
        The source has reported before or is configured: silence is a problem.
    last_success : datetime or None
        Last successful sync run, or the collector's last heartbeat.
    newest_data : datetime or None
        Up to when data is stored (the lowest watermark of a sync's streams: the data of every
        stream is complete up to there; the newest reading for a collector).
    errors : int
        Failed sync runs since the last success (collector: 0; its problems are dead letters).
    dead_letters_24h : int
        Records rejected in the last 24 hours.
    last_error : str or None
        Why the last failed run failed.
    stale : bool
        Expected, and no success for longer than the stale limit.
    silent_since : datetime or None
        Since when nothing succeeded: the last success, or the first attempt of a sync that
        never succeeded.
    """

    source: str
    kind: str
    expected: bool
    last_success: dt.datetime | None
    newest_data: dt.datetime | None
    errors: int
    dead_letters_24h: int
    last_error: str | None
    stale: bool
    now: dt.datetime
    silent_since: dt.datetime | None = None

    @property
    def status(self) -> str:
        """``ok``, ``STALE``, ``FAILING`` (failed runs, not stale yet), ``NEVER RUN``, ``not configured``."""
        if self.stale:
            return "STALE"
        if self.last_success is None:
            return "NEVER RUN" if self.expected else "not configured"
        return "FAILING" if self.errors else "ok"

    @property
    def lag(self) -> dt.timedelta | None:
        """How far the newest stored data is behind now."""
        return None if self.newest_data is None else self.now - self.newest_data

    def message(self, tz: dt.tzinfo) -> str:
        """What a manager reads: since when the source is silent, and why if known."""
        if self.last_success is None:
            what = f"{self.source}: no successful {'sync' if self.kind == 'sync' else 'collection'} yet"
        else:
            minutes = (self.now - self.last_success).total_seconds() / 60
            what = (
                f"{self.source}: no successful {'sync' if self.kind == 'sync' else 'heartbeat'} for "
                f"{_minutes(minutes)} (since {self.last_success.astimezone(tz):%Y-%m-%d %H:%M %Z})"
            )
        if self.newest_data is not None:
            what += f"; its data is complete only up to {self.newest_data.astimezone(tz):%Y-%m-%d %H:%M %Z}"
        if self.errors:
            what += f"; {self.errors} failed run(s)"
        if self.last_error:
            what += f"; last error: {self.last_error[:300]}"
        return what


def _minutes(value: float) -> str:
    if value < 120:
        return f"{value:.0f} min"
    if value < 48 * 60:
        return f"{value / 60:.1f} h"
    return f"{value / 1440:.1f} days"


def source_health(
    wh: Warehouse,
    *,
    now: dt.datetime,
    stale_min: float,
    collector_sources: Mapping[str, str] | None = None,
    sync_sources: Mapping[str, bool] | None = None,
) -> list[SourceHealth]:
    """Health of the collector's sources and of the syncs.

    Parameters
    ----------
    collector_sources : mapping, optional
        Tag-dictionary source → protocol.
    sync_sources : mapping, optional
        Sync source (``machinemetrics``, ``erp``) → whether its connection is configured.
        Sources that have ``sync_runs`` rows are always shown.
    """
    stale_after = dt.timedelta(minutes=stale_min)
    marks = wh.read("ingest_watermarks")
    dead = wh.read("dead_letters", columns=["source"], start=now - dt.timedelta(days=1))
    dead_by = dead["source"].value_counts().to_dict()
    runs = wh.read("sync_runs", columns=["source", "started_at", "finished_at", "status", "error"])
    out: list[SourceHealth] = []

    for name, protocol in (collector_sources or {}).items():
        m = marks[(marks["source"] == name) & (marks["stream"] == COLLECTOR_STREAM)]
        beat = _ts(m["updated_at"].iloc[0]) if len(m) else None
        newest = _ts(m["watermark"].iloc[0]) if len(m) else None
        out.append(
            SourceHealth(
                name,
                f"collector ({protocol})",
                expected=beat is not None,
                last_success=beat,
                newest_data=newest,
                errors=0,
                dead_letters_24h=int(dead_by.get(name, 0)),
                last_error=None,
                stale=beat is not None and now - beat > stale_after,
                now=now,
                silent_since=beat,
            )
        )

    configured = dict(sync_sources or {})
    for name in sorted(set(runs["source"])):
        configured.setdefault(name, False)
    for name, is_configured in configured.items():
        r = runs[runs["source"] == name].sort_values("started_at")
        ok = r[r["status"] == "ok"]
        last_ok = _ts(ok["finished_at"].iloc[-1]) if len(ok) else None
        failed_since = r[
            (r["status"] != "ok") & ((r["started_at"] > pd.Timestamp(last_ok)) if last_ok else True)
        ]
        m = marks[(marks["source"] == name) & marks["watermark"].notna()]
        expected = is_configured or len(r) > 0
        reference = last_ok
        if reference is None and len(r):
            reference = _ts(r["started_at"].iloc[0])  # failing from its first run on
        out.append(
            SourceHealth(
                name,
                "sync",
                expected=expected,
                last_success=last_ok,
                newest_data=_ts(m["watermark"].min()) if len(m) else None,
                errors=len(failed_since),
                dead_letters_24h=int(dead_by.get(name, 0)),
                last_error=(failed_since["error"].iloc[-1] if len(failed_since) else None) or None,
                stale=reference is not None and now - reference > stale_after,
                now=now,
                silent_since=reference,
            )
        )
    return out


def _ts(value: object) -> dt.datetime | None:
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).to_pydatetime()


@dataclass(frozen=True)
class AlertChanges:
    """What :func:`record_stale_alerts` did."""

    opened: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    resolved: tuple[str, ...] = ()


def record_stale_alerts(
    wh: Warehouse, health: Iterable[SourceHealth], *, now: dt.datetime, tz: dt.tzinfo
) -> AlertChanges:
    """Open, update or resolve the ``source_stale`` alert of each source (one open alert per source).

    The alert starts when the source went stale (last success + the stale limit, or now when it
    never succeeded) and ends when a success is seen again.
    """
    alerts = wh.read("alerts")
    open_rows = alerts[(alerts["rule"] == RULE) & (alerts["status"] == "open")]
    open_by = {k: row for k, row in zip(open_rows["dedupe_key"], open_rows.to_dict("records"), strict=True)}
    rows, opened, updated, resolved = [], [], [], []
    for h in health:
        key = f"{RULE}:{h.source}"
        current = open_by.get(key)
        if h.stale:
            if current is None:
                # From when the data stopped: a report of that day must say so, even when the
                # alert is only recorded now.
                start = now if h.silent_since is None else max(h.silent_since, now - dt.timedelta(days=365))
                alert_id = hashlib.sha1(f"{key}|{start.isoformat()}".encode()).hexdigest()
                rows.append(
                    {
                        "alert_id": alert_id,
                        "rule": RULE,
                        "machine_id": None,
                        "severity": "warning",
                        "status": "open",
                        "message": h.message(tz),
                        "dedupe_key": key,
                        "time_start": start,
                        "time_end": None,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                opened.append(h.source)
            else:
                rows.append({**current, "message": h.message(tz), "updated_at": now})
                updated.append(h.source)
        elif current is not None and h.last_success is not None:
            rows.append(
                {
                    **current,
                    "status": "resolved",
                    "time_end": h.last_success,
                    "updated_at": now,
                    "message": current["message"] + f" — back at {h.last_success.astimezone(tz):%H:%M %Z}",
                }
            )
            resolved.append(h.source)
    if rows:
        frame = pd.DataFrame(rows)
        for col in ("time_start", "time_end", "created_at", "updated_at"):
            frame[col] = pd.to_datetime(frame[col], utc=True)
        wh.write("alerts", frame)
    return AlertChanges(tuple(opened), tuple(updated), tuple(resolved))


def stale_notices(wh: Warehouse, *, start: dt.datetime, end: dt.datetime) -> list[str]:
    """Messages of the ``source_stale`` alerts that overlap ``[start, end)`` or are still open:
    what the daily report and e-mail put at the top (oldest first)."""
    alerts = wh.read("alerts", start=start - dt.timedelta(days=365), end=end)
    if alerts.empty:
        return []
    alerts = alerts[alerts["rule"] == RULE]
    ends = pd.to_datetime(alerts["time_end"], utc=True)
    live = alerts[(alerts["status"] == "open") | (ends > pd.Timestamp(start))]
    return [str(m) for m in live.sort_values("time_start")["message"]]


def health_json(health: Iterable[SourceHealth]) -> str:
    """The health rows as JSON (``workbench sources status --json``)."""

    def iso(v: dt.datetime | None) -> str | None:
        return None if v is None else v.isoformat()

    return json.dumps(
        [
            {
                "source": h.source,
                "kind": h.kind,
                "status": h.status,
                "last_success": iso(h.last_success),
                "newest_data": iso(h.newest_data),
                "lag_s": None if h.lag is None else round(h.lag.total_seconds()),
                "errors": h.errors,
                "dead_letters_24h": h.dead_letters_24h,
                "last_error": h.last_error,
            }
            for h in health
        ],
        indent=2,
    )


def configured_sources(settings) -> tuple[dict[str, str], dict[str, bool]]:
    """The collector's sources (from the tag dictionary, when there is one) and whether each sync's
    connection is configured."""
    from workbench.errors import ConfigError
    from workbench.sources.tags import load_tags

    collector: dict[str, str] = {}
    if settings.tags_path.is_file():
        try:
            collector = {n: s.protocol for n, s in load_tags(settings.tags_path).sources.items()}
        except ConfigError:
            collector = {}  # a broken dictionary is `workbench doctor`'s to report, not a reason to stop here
    erp = (
        settings.erp_database_url is not None
        if settings.erp_adapter == "sql"
        else bool(settings.erp_base_url)
    )
    return collector, {"machinemetrics": bool(settings.mm_base_url and settings.mm_api_key), "erp": erp}


def check_sources(
    wh: Warehouse,
    settings,
    *,
    now: dt.datetime | None = None,
    record: bool = True,
) -> list[SourceHealth]:
    """Every configured source's health; with ``record``, stale sources opened / resolved in ``alerts``."""
    now = now or dt.datetime.now(dt.UTC)
    collector, syncs = configured_sources(settings)
    health = source_health(
        wh, now=now, stale_min=settings.source_stale_min, collector_sources=collector, sync_sources=syncs
    )
    if record:
        record_stale_alerts(wh, health, now=now, tz=settings.tz)
    return health


def unconfigured_syncs(settings: Settings, found: Mapping[str, object]) -> dict[str, str]:
    """The enabled sync pipelines whose source connection is not configured, with why: ``workbench
    serve`` does not serve them (a plant without MachineMetrics must not get a failed run and a
    failure e-mail every five minutes), and ``doctor`` / ``pipelines`` say so instead of "not deployed"."""
    configured = configured_sources(settings)[1]
    out = {}
    for name, p in found.items():
        source = getattr(p, "sync_source", None)
        if getattr(p, "enabled", False) and source and not configured.get(source):
            out[name] = f"not served — the {source} connection is not configured (see .env.example)"
    return out
