"""Source health: `workbench sources status` and the doctor's line per source."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from workbench import config as wb_config
from workbench.simulate.plc import tag_dictionary_yaml
from workbench.store import DuckDBWarehouse


def test_doctor_fails_a_source_that_stopped_reporting_and_lists_the_others(tmp_path, monkeypatch):
    db, tags = tmp_path / "wh.duckdb", tmp_path / "tags.yaml"
    tags.write_text(tag_dictionary_yaml(mqtt=["M01"], opcua=["M02"], modbus=["M03"]))
    now = dt.datetime.now(dt.UTC)
    with DuckDBWarehouse(db) as wh:
        wh.init_schema()
        wh.write("ingest_watermarks", pd.DataFrame({
            "source": ["kepware", "opcua"], "stream": ["collector", "collector"],
            "watermark": [now - dt.timedelta(seconds=3), now - dt.timedelta(minutes=40)],
            "updated_at": [now - dt.timedelta(seconds=20), now - dt.timedelta(minutes=30)]}))
    for key, value in (("WORKBENCH_HOME", tmp_path), ("WORKBENCH_DUCKDB_PATH", db), ("WORKBENCH_TAGS_FILE", tags)):
        monkeypatch.setenv(key, str(value))
    wb_config.reset()
    try:
        from workbench.cli import _source_checks

        checks = {what: (ok, detail) for what, ok, detail in _source_checks(wb_config.settings())}
    finally:
        wb_config.reset()
    assert checks["source kepware (mqtt)"][0] and "heartbeat 0.3 min ago" in checks["source kepware (mqtt)"][1]
    ok, detail = checks["source opcua (opcua)"]
    assert not ok and detail.startswith("STALE") and "heartbeat 30.0 min ago" in detail
    ok, detail = checks["source modbus_M03 (modbus)"]
    assert ok and "nothing collected yet" in detail
