"""The OPC UA connector against the simulated PLC server: a real asyncua server and client, no mocks.

Each server runs on its own event loop in a background thread (as a separate server would), on a
free port of 127.0.0.1. The reference is the :class:`PlcImage` the server plays: what the
connector reports must be the image's values, stamped with the scan times.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from workbench.simulate import PlantConfig, simulate_plant
from workbench.simulate.opcua_server import OpcUaPlcServer
from workbench.simulate.plc import COUNTERS, PlcImage, opcua_node
from workbench.sources.base import Batch, Reading
from workbench.sources.opcua import OpcUaConnector, browse, browse_yaml
from workbench.sources.tags import Source, Tag, load_tags

SCAN_S = 10


@pytest.fixture(scope="module")
def image() -> PlcImage:
    """One busy plant hour of two machines: ~80 and ~140 counter changes, a rollover each,
    a few uncertain gauge scans."""
    plant = simulate_plant(PlantConfig(seed=3, n_machines=2, n_lines=1, days=1, start=dt.date(2026, 11, 16),
                                       collector_outages=False, telemetry_interval_s=10))
    return PlcImage.from_plant(plant, scan_s=SCAN_S, start=pd.Timestamp("2026-11-16 18:00", tz="UTC"), hours=1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    """An :class:`OpcUaPlcServer` on its own event loop in a background thread."""

    def __init__(self, image: PlcImage, *, speed: float) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="opcua-test-server", daemon=True)
        self.thread.start()
        self.server = OpcUaPlcServer(image, port=free_port(), speed=speed)
        self.call(self.server.start())

    @property
    def url(self) -> str:
        return self.server.url

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 60.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def acall(self, make: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        """Run a server coroutine from the test's event loop without blocking it."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(make(), self.loop))

    def close(self) -> None:
        try:
            self.call(self.server.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()

    def __enter__(self) -> ServerThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture(scope="module")
def shared(image: PlcImage):
    """A server at speed 60 (a scan every 1/6 s) shared by the tests that only read it."""
    with ServerThread(image, speed=60) as st:
        yield st


def source(url: str, *, sampling_ms: int = 100, subscribe: bool = True) -> Source:
    return Source(name="opcua", protocol="opcua", url=url, sampling_ms=sampling_ms, subscribe=subscribe,
                  timeout_s=2.0)


def tags_for(image: PlcImage, machines: list[str] | None = None) -> list[Tag]:
    out = []
    for mid in machines or list(image.machines):
        for metric in image.values(mid, 0):
            out.append(Tag(source="opcua", address=opcua_node(mid, metric), machine_id=mid, metric=metric,
                           kind="gauge", unit="u"))
    return out


async def collect(con: OpcUaConnector, until: Callable[[list[Batch]], Awaitable[bool] | bool], *,
                  timeout: float) -> list[Batch]:
    """Stream ``con`` until ``until(batches)`` holds (checked every 50 ms), then close it."""
    batches: list[Batch] = []

    async def read() -> None:
        async for batch in con.stream():
            batches.append(batch)

    task = asyncio.create_task(read())
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            done = until(batches)
            if done if isinstance(done, bool) else await done:
                break
            await asyncio.sleep(0.05)
    finally:
        t0 = time.monotonic()
        await con.close()
        await asyncio.wait_for(task, 5.0)
        assert time.monotonic() - t0 < 3.0, "close() must end stream() promptly"
    return batches


def by_address(batches: list[Batch]) -> dict[str, list[Reading]]:
    out: dict[str, list[Reading]] = {}
    for batch in batches:
        for r in batch.readings:
            out.setdefault(r.address, []).append(r)
    return out


def scan_of(image: PlcImage, time_ms: int) -> int:
    k = (time_ms - image.start_ms) // image.scan_ms
    assert 0 <= k < len(image.times) and int(image.times[k]) == time_ms, f"{time_ms} is not a scan time"
    return int(k)


def expected_changes(image: PlcImage, mid: str, metric: str, k0: int, k1: int) -> list[tuple[int, object, bool]]:
    """(scan time, value, good) at scan k0 and at every later scan up to k1 where value or quality changed."""
    out = []
    prev = None
    for k in range(k0, k1 + 1):
        value, good = image.values(mid, k)[metric]
        if (value, good) != prev:
            out.append((int(image.times[k]), value, good))
            prev = (value, good)
    return out


# ---------------------------------------------------------------------------------------------


def test_browse_lists_the_variables_and_drafts_a_tag_dictionary(shared: ServerThread, image: PlcImage,
                                                                  tmp_path: Path) -> None:
    variables = asyncio.run(browse(shared.url, timeout_s=3.0))
    nodes = {v["node"]: v for v in variables}
    want = {opcua_node(m, x): (m, x) for m in image.machines for x in image.values(m, 0)}
    assert set(nodes) == set(want), "every simulated variable, nothing from the Server object"
    for node, (mid, metric) in want.items():
        v = nodes[node]
        assert v["name"] == metric and v["path"] == f"{mid}/{metric}"
        expected_type = ("UInt32" if metric in COUNTERS else "String" if metric == "part_number"
                         else "Int64" if metric in ("state", "fault_code") else "Double")
        assert v["data_type"] == expected_type, node

    text = browse_yaml(variables, source_name="plc1", url=shared.url)
    assert text.count("unit: 'TODO'") == len(want)
    path = tmp_path / "tags.yaml"
    path.write_text(text.replace("unit: 'TODO'", "unit: 'u'"), encoding="utf-8")
    tags = load_tags(path)
    assert tags.sources["plc1"].protocol == "opcua" and tags.sources["plc1"].url == shared.url
    assert {t.address: (t.machine_id, t.metric) for t in tags.tags} == want
    assert all(t.kind == "gauge" and t.unit == "u" for t in tags.tags)


@pytest.mark.parametrize("subscribe", [True, False], ids=["subscription", "polling"])
def test_unknown_node_is_rejected_once_and_the_rest_arrives(shared: ServerThread, image: PlcImage,
                                                             subscribe: bool, caplog) -> None:
    good = tags_for(image, ["M01"])
    bad = ["ns=2;s=M01.no_such_tag", "ns=5;i=4242", "not a node id"]
    tags = good + [Tag(source="opcua", address=a, machine_id="X", metric=f"m{i}", kind="gauge", unit="u")
                   for i, a in enumerate(bad)]
    con = OpcUaConnector(source(shared.url, subscribe=subscribe), tags)

    async def run() -> list[Batch]:
        await con.connect()
        # Run long enough for the rejects to be reported, then a little more: never twice.
        return await collect(con, lambda b: sum(len(x.readings) for x in b) >= 3 * len(good), timeout=8.0)

    with caplog.at_level(logging.WARNING, logger="workbench.sources.opcua"):
        batches = asyncio.run(run())
    rejected = [r for b in batches for r in b.rejected]
    assert sorted(r.payload for r in rejected) == sorted(bad)
    assert all(r.location == r.payload and r.source == "opcua" and r.reason for r in rejected)
    assert sum("is not read" in rec.getMessage() for rec in caplog.records) == len(bad)
    readings = by_address(batches)
    assert set(readings) == {t.address for t in good}
    assert con.mode is None and con.sessions == 1


@pytest.mark.slow
def test_polling_reads_the_image_values(shared: ServerThread, image: PlcImage) -> None:
    con = OpcUaConnector(source(shared.url, sampling_ms=50, subscribe=False), tags_for(image))
    modes = []

    async def run() -> list[Batch]:
        await con.connect()
        t0 = time.monotonic()

        def until(_b: list[Batch]) -> bool:
            modes.append(con.mode)
            return time.monotonic() - t0 > 2.5

        return await collect(con, until, timeout=10.0)

    batches = asyncio.run(run())
    assert "polling" in modes and "subscription" not in modes
    readings = by_address(batches)
    assert set(readings) == {t.address for t in tags_for(image)}
    n_scans = 0
    for mid in image.machines:
        for metric in image.values(mid, 0):
            rs = readings[opcua_node(mid, metric)]
            times = [r.time_ms for r in rs]
            assert times == sorted(set(times)), "one reading per scan, in order"
            for r in rs:
                value, good = image.values(mid, scan_of(image, r.time_ms))[metric]
                assert (r.value, r.good) == (value, good), (mid, metric, r)
            n_scans = max(n_scans, len(rs))
            if metric in COUNTERS:
                # Polled faster than the scans: no scan in the covered range is missed.
                k0, k1 = scan_of(image, times[0]), scan_of(image, times[-1])
                assert len(times) >= 0.8 * (k1 - k0 + 1)
    assert n_scans >= 8  # ~15 scans played in 2.5 s


@pytest.mark.slow
def test_subscription_delivers_every_change_with_scan_timestamps(image: PlcImage) -> None:
    with ServerThread(image, speed=600) as st:  # the hour in 6 s: a scan every 17 ms
        con = OpcUaConnector(source(st.url, sampling_ms=100), tags_for(image), queue_size=100)
        finished_at: list[float] = []

        def until(_b: list[Batch]) -> bool:
            if st.server.finished and not finished_at:
                finished_at.append(time.monotonic())
            return bool(finished_at) and time.monotonic() - finished_at[0] > 1.0  # the last publishes

        async def run() -> list[Batch]:
            await con.connect()
            return await collect(con, until, timeout=30.0)

        batches = asyncio.run(run())
    assert max(len(b.readings) for b in batches) <= 5000
    readings = by_address(batches)
    last = len(image.times) - 1
    uncertain_seen = 0
    changes = 0
    for mid in image.machines:
        for metric in image.values(mid, 0):
            rs = readings[opcua_node(mid, metric)]
            got = [(r.time_ms, r.value, r.good) for r in rs]
            k0 = scan_of(image, got[0][0])
            assert got == expected_changes(image, mid, metric, k0, last), (mid, metric)
            uncertain_seen += sum(not g for _, _, g in got)
            changes += len(got)
    assert uncertain_seen > 0, "uncertain gauge scans arrive with good=False"
    assert sum(len(readings[opcua_node(m, c)]) for m in image.machines for c in COUNTERS) > 150
    assert changes > 1000


@pytest.mark.slow
def test_server_restart_is_a_gap_and_collection_resumes(image: PlcImage) -> None:
    with ServerThread(image, speed=300) as st:  # a scan every 33 ms
        con = OpcUaConnector(source(st.url, sampling_ms=100), tags_for(image), queue_size=100)
        stopped: dict[str, int] = {}

        async def outage() -> None:
            await asyncio.sleep(1.0)
            await st.acall(st.server.stop)
            stopped["scan"] = st.server.last_scan
            await asyncio.sleep(2.2)
            await st.acall(st.server.start)
            stopped["restart_scan"] = st.server.start_scan

        async def run() -> list[Batch]:
            await con.connect()
            task = asyncio.create_task(outage())

            def until(b: list[Batch]) -> bool:
                gap_at = next((i for i, x in enumerate(b) if x.gaps), None)
                # Resumed: readings in at least two batches after the one with the gap.
                return gap_at is not None and sum(1 for x in b[gap_at + 1:] if x.readings) >= 2

            try:
                return await collect(con, until, timeout=20.0)
            finally:
                await task

        batches = asyncio.run(run())
    assert con.sessions == 2
    gaps = [(i, g) for i, b in enumerate(batches) for g in b.gaps]
    assert len(gaps) == 1, gaps
    i, gap = gaps[0]
    assert gap.source == "opcua" and gap.reason.startswith("OPC UA session lost: ")
    before = [r for b in batches[:i] for r in b.readings]
    after = [r for b in batches[i:] for r in b.readings]
    assert gap.start_ms == max(r.time_ms for r in before if r.good)
    assert gap.start_ms <= int(image.times[stopped["scan"]])
    assert gap.end_ms == batches[i].readings[0].time_ms == min(r.time_ms for r in after)
    assert gap.end_ms >= int(image.times[stopped["restart_scan"]])
    # The outage lasted > 3 s wall at speed 300: well over 15 plant minutes.
    assert gap.end_ms - gap.start_ms > 3 * 300 * 1000 * 0.9
    assert max(r.time_ms for r in after) > gap.end_ms, "collection resumed"
    for r in after:
        mid, metric = r.address.split(";s=")[1].split(".", 1)
        assert (r.value, r.good) == image.values(mid, scan_of(image, r.time_ms))[metric]
