"""The demo path: a simulated plant loaded into each engine, exactly and idempotently."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from workbench import config
from workbench.demo import load_plant
from workbench.simulate import GroundTruth
from workbench.store import DuckDBWarehouse, Warehouse


def test_simulated_plant_loads_exactly_and_reloads_as_a_no_op(small_plant, warehouse: Warehouse,
                                                             tmp_path) -> None:
    first = load_plant(small_plant, warehouse, truth_dir=tmp_path / "truth")
    for name, frame in small_plant.tables.items():
        assert first.results[name].written == len(frame), name
        assert warehouse.count(name) == len(frame), name
    snapshot = {name: warehouse.read(name) for name in ("downtime_events", "machines", "work_orders")}
    again = load_plant(small_plant, warehouse, truth_dir=tmp_path / "truth")
    for name, frame in small_plant.tables.items():
        assert again.results[name].written == 0, name
        assert warehouse.count(name) == len(frame), name
    for name, before in snapshot.items():
        pd.testing.assert_frame_equal(warehouse.read(name), before)
    # what was stored is what was simulated (content, not just counts)
    stored = warehouse.read("production_events").sort_values("event_id").reset_index(drop=True)
    simulated = small_plant.tables["production_events"].sort_values("event_id").reset_index(drop=True)
    assert stored["good_count"].sum() == simulated["good_count"].sum()
    assert stored["event_id"].tolist() == simulated["event_id"].tolist()
    assert (stored["time"] == simulated["time"]).all()
    truth = GroundTruth.load(tmp_path / "truth")
    pd.testing.assert_frame_equal(truth.oee, small_plant.truth.oee)


@pytest.mark.slow
def test_demo_command_prints_counts_and_location(tmp_path, monkeypatch) -> None:
    from workbench.cli import app

    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    monkeypatch.setenv("WORKBENCH_ENV_FILE", str(tmp_path / ".env"))
    monkeypatch.delenv("WORKBENCH_DATABASE_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    config.reset()
    try:
        result = CliRunner().invoke(app, ["demo", "--machines", "3", "--lines", "1", "--days", "3",
                                          "--start", "2026-11-02"], catch_exceptions=False)
        report = CliRunner().invoke(app, ["oee", "--start", "2026-11-03", "--by", "machine_id", "--json",
                                          "--rollup"], catch_exceptions=False)
    finally:
        config.reset()
    assert report.exit_code == 0, report.output
    records = json.loads(report.stdout)
    truth = GroundTruth.load(tmp_path / "data" / "ground_truth").oee
    truth = truth[truth["shift_date"] == dt.date(2026, 11, 3)].set_index("machine_id")
    assert len(records) == 3
    for rec in records:
        assert rec["oee"] == pytest.approx(truth.loc[rec["machine_id"], "oee"], abs=1e-9)
    assert result.exit_code == 0, result.output
    assert "machine_telemetry" in result.output and "production_events" in result.output
    assert str(tmp_path / "data" / "warehouse.duckdb") in result.output
    with DuckDBWarehouse(tmp_path / "data" / "warehouse.duckdb", read_only=True) as wh:
        assert wh.count("machines") == 3
        assert wh.count("production_events") > 0
    assert (tmp_path / "data" / "ground_truth" / "manifest.json").exists()
