"""OPC UA and Modbus TCP through the collector: counts and states against the ground truth, and the
collector's view of a restarted OPC UA server and of a Modbus device that stops answering."""

from __future__ import annotations

import asyncio

import pandas as pd
import pytest
from tests.sources.collect_support import compare_counts, join_states, truth_states

from workbench.simulate.broker import free_port
from workbench.simulate.modbus_server import ModbusPlcServer
from workbench.simulate.opcua_server import OpcUaPlcServer
from workbench.simulate.plc import PlcImage, tag_dictionary_yaml
from workbench.sources.collector import Collector
from workbench.sources.spool import Spool
from workbench.sources.tags import load_tags
from workbench.store import DuckDBWarehouse

pytestmark = pytest.mark.slow
SPEED = 240.0  # a 10 s scan every 42 ms: the OPC UA subscription and a 20 ms Modbus poll see every scan


@pytest.fixture(scope="module")
def image(plant):
    """Two plant hours (the fault tests)."""
    return PlcImage.from_plant(plant, scan_s=10, start=pd.Timestamp("2026-11-16 14:00", tz="UTC"), hours=2)


@pytest.fixture(scope="module")
def image4(plant):
    """Four plant hours from 06:00 plant time (the reconciliation: every hour boundary of them, the
    morning break and the stops in it; eight hours took three minutes of the suite for no more)."""
    return PlcImage.from_plant(plant, scan_s=10, start=pd.Timestamp("2026-11-16 12:00", tz="UTC"), hours=4)


def _collect(image: PlcImage, tmp_path, fault=None, *, speed: float = SPEED):
    opc_port, mb_port = free_port(), free_port()
    text = tag_dictionary_yaml(
        opcua=["M01", "M02"],
        modbus=["M03", "M04"],
        opcua_url=f"opc.tcp://127.0.0.1:{opc_port}/workbench/",
        modbus_port=mb_port,
    )
    text = (
        text.replace("poll_active_ms: 1000", "poll_active_ms: 20")
        .replace("poll_idle_ms: 5000", "poll_idle_ms: 20")
        .replace("sampling_ms: 1000", "sampling_ms: 50")
    )
    (tmp_path / "tags.yaml").write_text(text)
    tags = load_tags(tmp_path / "tags.yaml")
    path = tmp_path / "wh.duckdb"
    DuckDBWarehouse(path).init_schema()
    spool = Spool(tmp_path / "spool.sqlite")
    collector = Collector(tags, spool=spool, open_warehouse=lambda: DuckDBWarehouse(path), health_s=2.0)

    async def main() -> None:
        opc = OpcUaPlcServer(image, port=opc_port, speed=speed)
        mb = ModbusPlcServer(image, port=mb_port, speed=speed, machines=["M03", "M04"], clock=opc.clock)
        await opc.start()
        await mb.start()
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        try:
            if fault is not None:
                await fault(opc, mb)
            while not opc.clock.finished:
                await asyncio.sleep(0.5)
            await asyncio.sleep(3.0)
        finally:
            stop.set()
            await task
            await mb.stop()
            await opc.stop()

    try:
        asyncio.run(main())
    finally:
        spool.close()
    with DuckDBWarehouse(path) as wh:
        first = wh.query(
            "SELECT machine_id, min(time) AS t FROM machine_telemetry WHERE metric = 'good_count' "
            "GROUP BY machine_id"
        )
    # The collector connects after the servers have started: its first counter reading is the baseline.
    collector.first_ms = {r.machine_id: int(r.t.timestamp() * 1000) for r in first.itertuples()}
    with DuckDBWarehouse(path) as wh:
        return wh.read("production_events"), wh.read("machine_states"), collector


def test_opcua_and_modbus_counts_reconcile_exactly_over_four_hours(image4, tmp_path):
    image = image4
    # Slower than the fault tests: a 10 s scan lasts 62 ms, three 20 ms Modbus polls, so a poll delayed
    # by a busy machine still sees every scan (a missed scan moves parts across an hour boundary).
    production, states, collector = _collect(image, tmp_path, speed=160.0)
    diff = compare_counts(image, production, ["M01", "M02", "M03", "M04"], since_ms=collector.first_ms)
    # The last scans may not be stored before the stop: compare hours the image finished.
    last_hour = pd.Timestamp(image.end_ms, unit="ms", tz="UTC").floor("h")
    assert diff[diff["hour"] < last_hour].empty, diff
    assert collector.stats["dead_letters"] == 0
    # State intervals: the simulator's, within one scan, after the collector's first reading.
    truth = truth_states(image)
    for m in ("M01", "M02", "M03", "M04"):
        got = join_states(states[states["machine_id"] == m].sort_values("time_start"))
        exp = truth[(truth["machine_id"] == m)]
        exp = exp[exp["time_start"] > got["time_start"].iloc[0]]
        got = got.iloc[1:]  # the first interval starts at the collector's first reading
        assert list(got["state"]) == list(exp["state"][: len(got)]), m
        offsets = got["time_start"].to_numpy() - exp["time_start"].to_numpy()[: len(got)]
        assert (abs(offsets.astype("timedelta64[ms]").astype(int)) <= image.scan_ms).all(), m


def test_a_restarted_opcua_server_is_no_data_then_collection_resumes(image, tmp_path):
    async def restart(opc, mb):
        while opc.clock.scan() < len(image.times) // 3:
            await asyncio.sleep(0.2)
        await opc.stop()
        await asyncio.sleep(4.0)
        await opc.start()

    production, states, collector = _collect(image, tmp_path, restart)
    nd = states[(states["state"] == "no_data")]
    assert set(nd["machine_id"]) == {"M01", "M02"}, states  # only the OPC UA machines
    gap = (nd["time_end"] - nd["time_start"]).dt.total_seconds()
    assert (gap > 4.0 * SPEED * 0.5).all()  # the outage, in plant time
    # After the gap the machines are collected again (states after the gap's end).
    for m in ("M01", "M02"):
        after = states[
            (states["machine_id"] == m)
            & (states["time_start"] >= nd[nd["machine_id"] == m]["time_end"].max())
        ]
        assert len(after) >= 1
    # Counters pick up where they left off: the hours after the outage reconcile exactly.
    diff = compare_counts(image, production, ["M01", "M02"], since_ms=collector.first_ms)
    outage_hours = set(nd["time_start"].dt.floor("h")) | set(nd["time_end"].dt.floor("h"))
    assert diff[~diff["hour"].isin(outage_hours)].empty, diff


def test_a_modbus_device_that_stops_answering_is_no_data_then_recovers(image, tmp_path):
    async def pause(opc, mb):
        while opc.clock.scan() < len(image.times) // 3:
            await asyncio.sleep(0.2)
        mb.pause(True)
        await asyncio.sleep(6.0)  # longer than the 3 s timeout
        mb.pause(False)

    production, states, collector = _collect(image, tmp_path, pause)
    nd = states[states["state"] == "no_data"]
    assert set(nd["machine_id"]) == {"M03", "M04"}, states
    assert production[production["machine_id"].isin(["M03", "M04"])]["time"].max() > nd["time_end"].max()
    # Nothing counted is lost: the day's totals per machine equal the image's.
    exp = image.expected_counts(since_ms=collector.first_ms).groupby("machine_id")[["good", "rejects"]].sum()
    got = production.groupby("machine_id")[["good_count", "reject_count"]].sum()
    for m in ("M03", "M04"):
        assert (got.loc[m, "good_count"], got.loc[m, "reject_count"]) == (
            exp.loc[m, "good"],
            exp.loc[m, "rejects"],
        )
