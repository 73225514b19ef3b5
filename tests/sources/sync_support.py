"""Helpers of the sync tests: settings for a throw-away project, and the simulator's truth per
machine-hour beside what a warehouse holds."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx
import pandas as pd

from workbench import config
from workbench.config import Settings
from workbench.pipelines import SyncSpec
from workbench.sources.http import RetryPolicy
from workbench.store import DuckDBWarehouse, PostgresWarehouse, Warehouse

KEY = "sim-key-not-a-secret"
#: The committed mapping, which matches the simulated ERP.
ERP_MAPPING = Path(__file__).resolve().parents[2] / "pipelines" / "plant" / "erp.yaml"
#: Quick retries: the tests check that faults are retried, not how long a plant would wait.
FAST = RetryPolicy(attempts=4, backoff_s=0.05, max_wait_s=10.0, timeout_s=5.0)


def settings_for(home: Path, *, database_url: str | None = None, **extra: object) -> Settings:
    """Settings of a project in ``home``: DuckDB there, or the PostgreSQL ``database_url``."""
    values: dict[str, object] = {"home": home, "data_dir": home / "data", "duckdb_path": home / "wh.duckdb",
                                 "timescale": "off", "erp_mapping_file": ERP_MAPPING, **extra}
    if database_url:
        values["database_url"] = database_url
    s = config.load(**values)
    with open_wh(s) as wh:
        wh.init_schema()
    return s


def open_wh(s: Settings) -> Warehouse:
    if s.database_url is not None:
        return PostgresWarehouse(s.database_url.get_secret_value(), timescale="off")
    return DuckDBWarehouse(s.warehouse_path)


def spec(**overrides: object) -> SyncSpec:
    values: dict[str, object] = {"overlap": dt.timedelta(minutes=60), "initial_backfill": None,
                                 "chunk": dt.timedelta(days=1), "page_size": 1000, "request_timeout_s": 5.0,
                                 "workers": 4}
    values.update(overrides)
    return SyncSpec(**values)  # type: ignore[arg-type]


def hourly(events: pd.DataFrame) -> pd.DataFrame:
    """Good, rejects and events per machine-hour."""
    frame = events.assign(hour=pd.to_datetime(events["time"], utc=True).dt.floor("h"))
    return (frame.groupby(["machine_id", "hour"])
            .agg(good=("good_count", "sum"), rejects=("reject_count", "sum"), events=("good_count", "size"))
            .astype("int64").sort_index())


def truth_events(plant, *, machines=None, start=None, end=None) -> pd.DataFrame:
    ev = plant.tables["production_events"].copy()
    ev["machine_id"] = ev["machine_id"].astype(str)
    t = pd.to_datetime(ev["time"], utc=True)
    keep = pd.Series(True, index=ev.index)
    if machines is not None:
        keep &= ev["machine_id"].isin(machines)
    if start is not None:
        keep &= t >= pd.Timestamp(start)
    if end is not None:
        keep &= t < pd.Timestamp(end)
    return ev[keep]


def assert_same_hours(plant, wh: Warehouse, **where) -> int:
    """The warehouse's production per machine-hour equals the simulator's; returns the events."""
    stored = wh.read("production_events")
    stored = stored.assign(machine_id=stored["machine_id"].astype(str))
    expected = hourly(truth_events(plant, **where))
    got = hourly(stored)
    diff = expected.compare(got) if expected.index.equals(got.index) else None
    assert expected.index.equals(got.index), (
        f"hours differ: missing {expected.index.difference(got.index)[:5].tolist()}, "
        f"extra {got.index.difference(expected.index)[:5].tolist()}")
    assert diff is not None and diff.empty, diff.head()
    assert stored["event_id"].is_unique
    return len(stored)


def sim_post(url: str, path: str, body: dict) -> None:
    r = httpx.post(f"{url}{path}", json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
    r.raise_for_status()


def sim_requests(url: str) -> list[dict]:
    r = httpx.get(f"{url}/_sim/requests", headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
    r.raise_for_status()
    return r.json()["data"]


def sim_reset(url: str) -> None:
    sim_post(url, "/_sim/faults", {})
    httpx.delete(f"{url}/_sim/requests", headers={"Authorization": f"Bearer {KEY}"}, timeout=10)


def watermarks(wh: Warehouse, source: str) -> dict[str, dt.datetime]:
    marks = wh.read("ingest_watermarks")
    marks = marks[marks["source"] == source]
    return {s: w.to_pydatetime() for s, w in zip(marks["stream"], marks["watermark"], strict=True)}
