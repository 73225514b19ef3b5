"""Source health over the collector and the syncs, the stale-source alert's life, and
`workbench sources status`."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
from typer.testing import CliRunner

from workbench import config as wb_config
from workbench.sources import health
from workbench.store import DuckDBWarehouse

NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)
TZ = dt.timezone(dt.timedelta(hours=-6))


def _run(source: str, started: dt.datetime, status: str, error: str | None = None) -> dict:
    return {"run_id": f"{source}-{started.isoformat()}", "source": source, "started_at": started,
            "finished_at": started + dt.timedelta(seconds=20), "status": status, "fetched": 10, "written": 5,
            "unchanged": 5, "dead_lettered": 0, "entities": "{}", "error": error}


def _warehouse(tmp_path, runs: list[dict]) -> DuckDBWarehouse:
    wh = DuckDBWarehouse(tmp_path / "wh.duckdb")
    wh.init_schema()
    if runs:
        wh.write("sync_runs", pd.DataFrame(runs))
    wh.write("ingest_watermarks", pd.DataFrame({
        "source": ["machinemetrics", "machinemetrics", "kepware"],
        "stream": ["production:M01", "production:M02", "collector"],
        "watermark": [NOW - dt.timedelta(minutes=50), NOW - dt.timedelta(minutes=45), NOW - dt.timedelta(seconds=5)],
        "updated_at": [NOW - dt.timedelta(minutes=50), NOW - dt.timedelta(minutes=45), NOW - dt.timedelta(seconds=4)]}))
    return wh


def test_a_sync_failing_since_its_last_success_is_stale_with_its_last_error(tmp_path):
    runs = [_run("machinemetrics", NOW - dt.timedelta(minutes=50), "ok"),
            _run("machinemetrics", NOW - dt.timedelta(minutes=10), "failed", "HTTP 503 after 5 tries"),
            _run("machinemetrics", NOW - dt.timedelta(minutes=5), "failed", "no answer within 30 s"),
            _run("erp", NOW - dt.timedelta(minutes=14), "ok")]
    with _warehouse(tmp_path, runs) as wh:
        found = {h.source: h for h in health.source_health(
            wh, now=NOW, stale_min=15, collector_sources={"kepware": "mqtt", "opcua": "opcua"},
            sync_sources={"machinemetrics": True, "erp": True})}
    mm = found["machinemetrics"]
    assert mm.stale and mm.status == "STALE" and mm.errors == 2
    assert mm.last_error == "no answer within 30 s"
    # complete only up to the lowest watermark of its streams: 50 min behind
    assert mm.lag == dt.timedelta(minutes=50)
    assert "no successful sync for 50 min" in mm.message(TZ) and "2 failed run(s)" in mm.message(TZ)
    assert found["erp"].status == "ok" and not found["erp"].stale
    assert found["kepware"].status == "ok"
    # a collector source that never reported in this warehouse is shown, not alerted about
    assert found["opcua"].status == "not configured" and not found["opcua"].stale


def test_a_configured_sync_that_never_succeeded_is_stale_and_an_unconfigured_one_is_not(tmp_path):
    runs = [_run("erp", NOW - dt.timedelta(minutes=30), "failed", "password authentication failed")]
    with _warehouse(tmp_path, runs) as wh:
        found = {h.source: h for h in health.source_health(
            wh, now=NOW, stale_min=15, sync_sources={"machinemetrics": False, "erp": True})}
    assert found["erp"].stale and found["erp"].last_error == "password authentication failed"
    # silent since its first attempt: the alert (and a report of that day) starts there
    assert found["erp"].silent_since == NOW - dt.timedelta(minutes=30)
    assert found["machinemetrics"].status != "STALE"  # has watermarks but no runs and no connection
    with _warehouse(tmp_path / "other", []) as wh:
        found = {h.source: h for h in health.source_health(wh, now=NOW, stale_min=15,
                                                          sync_sources={"machinemetrics": False, "erp": True})}
    # configured a minute ago, no turn yet: said, not alerted
    assert found["erp"].status == "NEVER RUN" and not found["erp"].stale


def test_the_stale_alert_opens_once_updates_and_resolves_when_the_source_is_back(tmp_path):
    runs = [_run("machinemetrics", NOW - dt.timedelta(minutes=50), "ok"),
            _run("machinemetrics", NOW - dt.timedelta(minutes=5), "failed", "HTTP 503")]
    with _warehouse(tmp_path, runs) as wh:
        def check(now):
            found = health.source_health(wh, now=now, stale_min=15, sync_sources={"machinemetrics": True})
            return health.record_stale_alerts(wh, found, now=now, tz=TZ)

        assert check(NOW).opened == ("machinemetrics",)
        assert check(NOW + dt.timedelta(minutes=5)).updated == ("machinemetrics",)
        alerts = wh.read("alerts")
        assert len(alerts) == 1 and alerts["status"].iloc[0] == "open"
        # opened when the source went silent: its last success
        assert alerts["time_start"].iloc[0] == pd.Timestamp(NOW - dt.timedelta(minutes=50) + dt.timedelta(seconds=20))
        notices = health.stale_notices(wh, start=NOW - dt.timedelta(hours=24), end=NOW)
        assert len(notices) == 1 and "machinemetrics" in notices[0] and "HTTP 503" in notices[0]

        wh.write("sync_runs", pd.DataFrame([_run("machinemetrics", NOW + dt.timedelta(minutes=9), "ok")]))
        assert check(NOW + dt.timedelta(minutes=10)).resolved == ("machinemetrics",)
        alerts = wh.read("alerts")
        assert len(alerts) == 1 and alerts["status"].iloc[0] == "resolved"
        # the report of the day still says the data was incomplete for a while; the next day's does not
        assert health.stale_notices(wh, start=NOW - dt.timedelta(hours=24), end=NOW + dt.timedelta(hours=1))
        assert not health.stale_notices(wh, start=NOW + dt.timedelta(days=1), end=NOW + dt.timedelta(days=2))
        # a new silence is a new alert
        assert check(NOW + dt.timedelta(hours=2)).opened == ("machinemetrics",)
        assert len(wh.read("alerts")) == 2


def test_sources_status_lists_every_source_and_exits_1_when_one_is_stale(tmp_path, use_home):
    from workbench.cli import app

    use_home(tmp_path)
    now = dt.datetime.now(dt.UTC)
    with DuckDBWarehouse(tmp_path / "data" / "warehouse.duckdb") as wh:
        wh.init_schema()
        wh.write("sync_runs", pd.DataFrame([_run("machinemetrics", now - dt.timedelta(minutes=40), "ok"),
                                            _run("machinemetrics", now - dt.timedelta(minutes=2), "failed",
                                                 "machinemetrics: GET /v1/machines answered HTTP 401")]))
    result = CliRunner().invoke(app, ["sources", "status", "--json"], env={"WORKBENCH_MM_BASE_URL": "http://x",
                                                                          "WORKBENCH_MM_API_KEY": "k"})
    wb_config.reset()
    assert result.exit_code == 1, result.output
    rows = {r["source"]: r for r in json.loads(result.output)}
    assert rows["machinemetrics"]["status"] == "STALE" and "HTTP 401" in rows["machinemetrics"]["last_error"]
    assert rows["erp"]["status"] == "not configured"
    result = CliRunner().invoke(app, ["sources", "status", "--stale-min", "60"],
                                env={"WORKBENCH_MM_BASE_URL": "http://x", "WORKBENCH_MM_API_KEY": "k"})
    assert result.exit_code == 0, result.output
    assert "FAILING" in result.output and "HTTP 401" in result.output
