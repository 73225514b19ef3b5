"""Tests of the Modbus TCP connector and the simulator's Modbus server: real TCP, real pymodbus.

Register decoding is checked against hand-computed words, block planning against hand-written
blocks, and the end-to-end path against the PLC image the server plays: every reading must be the
image's value at exactly the scan its PLC-clock time names.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import itertools
import logging
import math
import socket
import struct
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pytest

from workbench.errors import ConfigError, SourceError
from workbench.simulate import PlantConfig, simulate_plant
from workbench.simulate.modbus_server import ModbusPlcServer, clock_words, encode_value
from workbench.simulate.plc import MODBUS_CLOCK_REGISTER, PlantClock, PlcImage, tag_dictionary_yaml
from workbench.sources.base import Batch
from workbench.sources.modbus import Block, ModbusConnector, plan_blocks, poll_interval_ms
from workbench.sources.tags import Register, Source, Tag, TagDictionary, load_tags

T = TypeVar("T")


def free_port() -> int:
    """A TCP port nothing listens on right now (bind port 0, let it go)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(coro: Awaitable[T], timeout: float = 30.0) -> T:
    """Run a coroutine on a fresh event loop, failing rather than hanging."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture(scope="module")
def image() -> PlcImage:
    """One busy hour of two machines (both run, M02 also goes through setup)."""
    plant = simulate_plant(PlantConfig(seed=3, n_machines=2, n_lines=1, days=1, start=dt.date(2026, 11, 16),
                                       collector_outages=False, telemetry_interval_s=10))
    return PlcImage.from_plant(plant, scan_s=10, start=pd.Timestamp("2026-11-16 16:00", tz="UTC"), hours=1)


def dictionary(tmp_path: Path, port: int, machines: list[str]) -> TagDictionary:
    path = tmp_path / "tags.yaml"
    path.write_text(tag_dictionary_yaml(modbus=machines, modbus_port=port), encoding="utf-8")
    return load_tags(path)


def connector(tags: TagDictionary, machine: str, *, extra: list[Tag] = (), **source: Any) -> ModbusConnector:
    """Connector of one simulated machine with fast test timings (``source`` overrides fields)."""
    name = f"modbus_{machine}"
    timings = {"poll_active_ms": 20, "poll_idle_ms": 50, "timeout_s": 0.25} | source
    return ModbusConnector(dataclasses.replace(tags.sources[name], **timings), tags.tags_of(name) + list(extra),
                           backoff_s=(0.2, 2.0))


class Collector:
    """Runs a connector's stream in a task and keeps every batch with its arrival (monotonic) time."""

    def __init__(self, conn: ModbusConnector) -> None:
        self.conn = conn
        self.batches: list[tuple[float, Batch]] = []
        self.task: asyncio.Task | None = None

    async def __aenter__(self) -> Collector:
        await self.conn.connect()
        self.task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        async for batch in self.conn.stream():
            self.batches.append((time.monotonic(), batch))

    async def __aexit__(self, *exc: object) -> None:
        await self.conn.close()
        await asyncio.wait_for(self.task, 2.0)

    async def wait_for(self, predicate, timeout: float) -> None:
        end = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < end, "timed out waiting for the connector"
            await asyncio.sleep(0.02)

    def gaps(self) -> list:
        return [g for _, b in self.batches for g in b.gaps]


# ---------------------------------------------------------------------------------------------
# 1. register decoding and encoding


@pytest.mark.parametrize(("rtype", "order", "value", "words"), [
    ("uint16", "big", 513, [0x0201]),
    ("uint16", "little", 65535, [0xFFFF]),
    ("int16", "big", -2, [0xFFFE]),
    ("int16", "little", -32768, [0x8000]),
    ("int32", "big", -2, [0xFFFF, 0xFFFE]),
    ("int32", "little", -2, [0xFFFE, 0xFFFF]),
    ("int32", "big", 70000, [0x0001, 0x1170]),
    ("uint32", "big", 0x12345678, [0x1234, 0x5678]),
    ("uint32", "little", 0x12345678, [0x5678, 0x1234]),
    ("uint32", "little", 4294967295, [0xFFFF, 0xFFFF]),
    ("float32", "big", 1.5, [0x3FC0, 0x0000]),
    ("float32", "little", 1.5, [0x0000, 0x3FC0]),
    ("float32", "big", -2.25, [0xC010, 0x0000]),
    ("float32", "little", 100.0, [0x0000, 0x42C8]),
])
def test_register_round_trip_hand_examples(rtype: str, order: str, value: float, words: list[int]) -> None:
    reg = Register("holding", 0, rtype, word_order=order)
    assert reg.encode(value) == words
    assert reg.decode(words) == value


@pytest.mark.parametrize(("rtype", "scale", "offset", "value", "words"), [
    ("uint16", 0.1, 0.0, 21.5, [215]),
    ("uint16", 0.1, -40.0, 21.5, [615]),       # (21.5 + 40) / 0.1
    ("int16", 0.01, 0.0, -1.23, [0xFF85]),      # -123
    ("int32", 0.001, 0.0, -70.0, [0xFFFE, 0xEE90]),  # -70000
    ("float32", 2.0, 1.0, 4.0, [0x3FC0, 0x0000]),  # raw 1.5
])
def test_register_scale_and_offset(rtype: str, scale: float, offset: float, value: float, words: list[int]) -> None:
    reg = Register("input", 7, rtype, scale=scale, offset=offset)
    assert reg.encode(value) == words
    assert reg.decode(words) == pytest.approx(value, abs=1e-9)
    assert isinstance(reg.decode(words), float)


@pytest.mark.parametrize("order", ["big", "little"])
@pytest.mark.parametrize("rtype", ["int16", "uint16", "int32", "uint32", "float32"])
def test_register_round_trip_over_the_range(rtype: str, order: str) -> None:
    bits = {"int16": 16, "uint16": 16, "int32": 32, "uint32": 32}.get(rtype)
    reg = Register("holding", 0, rtype, word_order=order)
    if bits is None:
        values = [0.0, -0.0, 1e-30, -3.4e38, 123.456, float("inf")]
        for v in values:
            f32 = struct.unpack(">f", struct.pack(">f", v))[0]  # what a float32 register can hold
            assert reg.decode(reg.encode(v)) == f32
        assert math.isnan(reg.decode(reg.encode(float("nan"))))
        return
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if rtype.startswith("int") else (0, (1 << bits) - 1)
    for v in (lo, lo + 1, -1 if lo else 1, 0, 1, 255, 256, hi - 1, hi):
        words = reg.encode(v)
        assert len(words) == reg.words and all(0 <= w <= 0xFFFF for w in words)
        assert reg.decode(words) == v


def test_simulator_encoding_saturates_like_a_plc() -> None:
    current = Register("holding", 9, "uint16", scale=0.1)
    assert encode_value(current, 12.34) == [123]
    assert encode_value(current, -0.3) == [0]                # a little below zero: 0, not an error
    assert encode_value(current, 1e9) == [0xFFFF]
    assert encode_value(current, float("nan")) == [0]
    temp = Register("holding", 10, "int16", scale=0.1)
    assert encode_value(temp, -5.0) == [0xFFCE]              # -50
    assert encode_value(temp, -1e9) == [0x8000]
    assert encode_value(Register("holding", 4, "float32"), 1.5) == [0x3FC0, 0x0000]
    assert clock_words(0x0001_0203_0405_0607) == [0x0001, 0x0203, 0x0405, 0x0607]


# ---------------------------------------------------------------------------------------------
# 2. block planning


def mtag(function: str, address: int, rtype: str = "uint16", metric: str | None = None) -> Tag:
    reg = Register(function, address, rtype)
    return Tag(source="plc", address=reg.key, machine_id="M1", metric=metric or f"m_{function}_{address}",
               kind="gauge", unit="x", register=reg)


def test_blocks_of_the_simulated_layout_are_one_request(tmp_path: Path) -> None:
    tags = dictionary(tmp_path, 5020, ["M01"])
    blocks = plan_blocks(tags.tags_of("modbus_M01"), clock_register=MODBUS_CLOCK_REGISTER)
    # Tags in 0–10, clock in 12–15: the one unused register (11) is read along.
    assert [(b.function, b.start, b.count, b.clock) for b in blocks] == [("holding", 0, 16, True)]
    assert [t.address for t in blocks[0].tags] == [
        "holding:0", "holding:1", "holding:2", "holding:3", "holding:4", "holding:6", "holding:7",
        "holding:9", "holding:10"]
    assert blocks[0].location == "holding:0-15"


def test_blocks_merge_small_holes_split_large_ones_and_functions() -> None:
    tags = [mtag("input", 7), mtag("holding", 22), mtag("holding", 0), mtag("holding", 2, "float32"),
            mtag("holding", 12), mtag("input", 5, "int32")]
    blocks = plan_blocks(tags)
    # holding 0, 2–3, 12: holes of 1 and 8 registers are merged; 13–21 (9) is not.
    assert [(b.function, b.start, b.end, b.count, [t.address for t in b.tags]) for b in blocks] == [
        ("holding", 0, 12, 13, ["holding:0", "holding:2", "holding:12"]),
        ("holding", 22, 22, 1, ["holding:22"]),
        ("input", 5, 7, 3, ["input:5", "input:7"]),
    ]
    assert not any(b.clock for b in blocks)
    assert [b.location for b in plan_blocks(tags, max_hole=0)] == [
        "holding:0-0", "holding:2-3", "holding:12-12", "holding:22-22", "input:5-7"]


def test_blocks_respect_the_125_register_limit() -> None:
    # Registers 0, 8, …, 120 (holes of 7) and 123–124 (hole of 2): exactly 125 registers, one request.
    chain = [mtag("holding", a) for a in range(0, 121, 8)] + [mtag("holding", 123, "float32")]
    assert [(b.start, b.count, len(b.tags)) for b in plan_blocks(chain)] == [(0, 125, 17)]
    # One more register would make 126: a second request, even with no hole at all.
    blocks = plan_blocks([*chain, mtag("holding", 125)])
    assert [(b.start, b.count) for b in blocks] == [(0, 125), (125, 1)]
    # Without the hole merging, the far-apart registers would each cost a request.
    assert len(plan_blocks(chain, max_hole=0)) == 17
    # A long run of adjacent registers is cut into full requests.
    many = [mtag("input", a) for a in range(300)]
    assert [(b.start, b.count) for b in plan_blocks(many)] == [(0, 125), (125, 125), (250, 50)]
    assert all(b.count <= 125 for b in plan_blocks(many, max_hole=50))


def test_blocks_include_the_clock_register() -> None:
    near = plan_blocks([mtag("holding", 0), mtag("holding", 1)], clock_register=6)
    assert [(b.start, b.count, b.clock, len(b.tags)) for b in near] == [(0, 10, True, 2)]  # hole 2–5
    far = plan_blocks([mtag("holding", 0), mtag("input", 0)], clock_register=100)
    assert [(b.location, b.clock, len(b.tags)) for b in far] == [
        ("holding:0-0", False, 1), ("holding:100-103", True, 0), ("input:0-0", False, 1)]
    assert isinstance(far[1], Block) and "PLC clock" in far[1].describe()


# ---------------------------------------------------------------------------------------------
# 3. adaptive polling


@pytest.mark.parametrize(("since", "idle_after", "expected"), [
    (0, 5, 1000),   # the last poll saw a change (or was the first)
    (1, 5, 1000),
    (4, 5, 1000),   # still within the last few polls
    (5, 5, 5000),   # five unchanged polls in a row: idle
    (50, 5, 5000),
    (0, 1, 1000),
    (1, 1, 5000),
    (2, 3, 1000),
])
def test_poll_interval_rule(since: int, idle_after: int, expected: int) -> None:
    assert poll_interval_ms(since, active_ms=1000, idle_ms=5000, idle_after=idle_after) == expected


def test_poll_interval_sequence_switches_both_ways() -> None:
    changed = [True, False, False, False, False, False, False, True, False]
    since, out = 0, []
    for c in changed:
        since = 0 if c else since + 1
        out.append(poll_interval_ms(since, active_ms=200, idle_ms=3000, idle_after=5))
    assert out == [200, 200, 200, 200, 200, 3000, 3000, 200, 200]


# ---------------------------------------------------------------------------------------------
# 4. end to end: server and connector


def test_end_to_end_readings_match_the_image_scan_by_scan(image: PlcImage, tmp_path: Path) -> None:
    port = free_port()
    tags = dictionary(tmp_path, port, ["M01", "M02"])
    speed = 2400.0  # the hour in 1.5 s: a scan lasts ~4 ms, so reads often straddle scan changes

    async def main() -> tuple[dict[str, Collector], float]:
        async with ModbusPlcServer(image, port=port, speed=speed) as srv:
            cols = {m: Collector(connector(tags, m, poll_active_ms=5, poll_idle_ms=20, timeout_s=2.0))
                    for m in ("M01", "M02")}
            for c in cols.values():
                await c.__aenter__()
            while not srv.clock.finished:
                await asyncio.sleep(0.05)
            t0 = time.monotonic()
            for c in cols.values():
                await c.__aexit__()
            return cols, time.monotonic() - t0

    cols, closing_s = run(main())
    assert closing_s < 1.0
    expected_cache: dict[tuple[str, int], dict] = {}
    all_states: set[int] = set()
    for mid, col in cols.items():
        batches = [b for _, b in col.batches]
        assert batches and not any(b.gaps or b.rejected for b in batches)
        by_address = {t.address: t for t in tags.tags_of(f"modbus_{mid}")}
        seen_times, good_counts, states = set(), set(), set()
        for b in batches:
            assert {r.address for r in b.readings} == set(by_address)  # every tag, every poll
            assert len({r.time_ms for r in b.readings}) == 1
            for r in b.readings:
                # The reading's time is a scan's PLC clock …
                k = (r.time_ms - image.start_ms) // image.scan_ms
                assert 0 <= k < len(image.times) and int(image.times[k]) == r.time_ms
                # … and its value is that very scan's (never the scan before or after).
                values = expected_cache.setdefault((mid, k), image.values(mid, k))
                tag = by_address[r.address]
                value, _good = values[tag.metric]
                if tag.kind in ("counter", "state", "fault"):
                    assert r.value == value, (mid, k, tag.metric)
                else:
                    assert r.value == tag.register.decode(encode_value(tag.register, value)), (mid, k, tag.metric)
                    assert r.value == pytest.approx(value, abs=tag.register.scale / 2 + 1e-4)
                assert r.good
                seen_times.add(r.time_ms)
                if tag.metric == "good_count":
                    good_counts.add(r.value)
                if tag.metric == "state":
                    states.add(r.value)
        # The hour was really played and really collected: many scans (how many depends on the
        # machine's load), counters moving, a rollover or reset.
        assert len(seen_times) >= 40
        assert len(good_counts) >= 10
        # M01's good counter rolls over (65535 → 0) and M02's counters are reset within the hour.
        assert min(good_counts) < 100 and max(good_counts) > 65400
        all_states |= states
    assert all_states >= {1, 4}  # running, and M02's setup


def test_polling_slows_down_when_still_and_speeds_up_on_change(image: PlcImage, tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="workbench.sources.modbus")
    port = free_port()
    tags = dictionary(tmp_path, port, ["M01"])
    # Real time: a scan lasts 10 s, so nothing changes until the plant clock is moved on by hand.
    clock = PlantClock(image, speed=1.0)
    m01 = image.machines["M01"]
    k = next(i for i in range(1, len(image.times)) if m01.good_count[i] != m01.good_count[0])

    async def main() -> Collector:
        async with ModbusPlcServer(image, port=port, clock=clock):
            col = Collector(connector(tags, "M01", poll_active_ms=20, poll_idle_ms=300))
            async with col:
                await col.wait_for(lambda: col.conn.interval_ms == 300, 2.0)
                idle_from = len(col.batches)
                await col.wait_for(lambda: len(col.batches) >= idle_from + 3, 3.0)
                clock.wall0 -= (int(image.times[k]) - image.start_ms) / 1000.0  # jump to scan k
                await col.wait_for(lambda: col.conn.interval_ms == 20, 1.0)
                active_from = len(col.batches)
                await col.wait_for(lambda: len(col.batches) >= active_from + 3, 1.0)
        return col

    col = run(main())
    arrivals = [t for t, _ in col.batches]
    counts = [b.readings[0].value for _, b in col.batches]  # holding:0 is good_count
    j = next(i for i, c in enumerate(counts) if c != counts[0])  # the first poll that sees the change
    assert counts[j] == m01.good_count[k]
    # Active: the first poll and the five unchanged ones after it (polls_since_change 0 … 4) come
    # 20 ms apart; after the sixth the machine counts as idle …
    assert all(b - a < 0.15 for a, b in itertools.pairwise(arrivals[:6]))
    # … and polls come 300 ms apart, up to and including the one that sees the change …
    idle = list(itertools.pairwise(arrivals[5:j + 1]))
    assert len(idle) >= 3 and all(b - a > 0.25 for a, b in idle)
    # … after which they come 20 ms apart again.
    assert len(arrivals) >= j + 3 and all(b - a < 0.15 for a, b in itertools.pairwise(arrivals[j:j + 3]))
    switches = [r.getMessage() for r in caplog.records if "polling every" in r.getMessage()]
    assert [m.rsplit(" ", 2)[-2] for m in switches] == ["300", "20"]


def test_modbus_exception_is_rejected_once_and_other_blocks_go_on(image: PlcImage, tmp_path: Path) -> None:
    port = free_port()
    tags = dictionary(tmp_path, port, ["M01", "M02"])
    # holding:100 lies outside the 16 registers each simulated unit has: illegal data address.
    missing = Tag(source="modbus_M01", address="holding:100", machine_id="M01", metric="phantom", kind="gauge",
                  unit="x", register=Register("holding", 100, "uint16"))
    # Unit 9 does not exist on the server: it answers like a gateway with no such device.
    lost = dataclasses.replace(tags.sources["modbus_M02"], name="modbus_M09", unit_id=9)

    async def main() -> tuple[Collector, Collector]:
        async with ModbusPlcServer(image, port=port, speed=60):
            one = Collector(connector(tags, "M01", extra=[missing]))
            nine = Collector(ModbusConnector(dataclasses.replace(lost, poll_active_ms=20, timeout_s=0.25), []))
            async with one, nine:
                await one.wait_for(lambda: len(one.batches) >= 10, 5.0)
                await asyncio.sleep(0.2)  # unit 9 has been polled ~10 times by now
        return one, nine

    one, nine = run(main())
    rejected = [r for _, b in one.batches for r in b.rejected]
    assert len(rejected) == 1
    rej = rejected[0]
    assert rej.location == "holding:100-100" and "holding:100" in rej.payload
    assert "exception 2" in rej.reason and "illegal address" in rej.reason
    assert all(len(b.readings) == 9 for _, b in one.batches)  # the block 0–15 is read every poll
    assert not one.gaps()
    # Its only block fails every poll: one batch with the rejection, then nothing new to hand over.
    assert len(nine.batches) == 1
    nine_rejected = nine.batches[0][1].rejected
    assert [r.location for r in nine_rejected] == ["holding:12-15"] and not nine.batches[0][1].readings
    assert "gateway no response" in nine_rejected[0].reason


def test_connect_fails_when_nothing_listens(tmp_path: Path) -> None:
    tags = dictionary(tmp_path, free_port(), ["M01"])
    with pytest.raises(SourceError, match="cannot connect"):
        run(connector(tags, "M01").connect())


def test_close_ends_stream_promptly_while_a_request_hangs(image: PlcImage, tmp_path: Path) -> None:
    port = free_port()
    tags = dictionary(tmp_path, port, ["M01"])

    async def main() -> float:
        async with ModbusPlcServer(image, port=port, speed=60) as srv:
            col = Collector(connector(tags, "M01", timeout_s=10.0))
            async with col:
                await col.wait_for(lambda: len(col.batches) >= 2, 5.0)
                srv.pause(True)
                await asyncio.sleep(0.3)  # a request is now waiting for an answer that never comes
                t0 = time.monotonic()
            return time.monotonic() - t0

    assert run(main()) < 0.5


# ---------------------------------------------------------------------------------------------
# 5. a device that does not answer


def _check_outage(col: Collector, lost: float, back: float, speed: float, scan_ms: int) -> None:
    """Nothing arrives while the device is away; one gap spans the outage; polling resumes."""
    before = [(t, b) for t, b in col.batches if t < lost]
    during = [(t, b) for t, b in col.batches if lost + 0.1 < t < back]
    after = [(t, b) for t, b in col.batches if t >= back]
    assert before and not during and len(after) >= 3
    gaps = col.gaps()
    assert len(gaps) == 1
    gap = gaps[0]
    first_after = next(b for _, b in after if b.gaps)
    assert first_after is after[0][1]  # the first batch after recovery carries the gap
    last_before = [b for t, b in col.batches if t < back][-1]
    assert gap.start_ms == last_before.readings[0].time_ms   # the last good poll …
    assert gap.end_ms == first_after.readings[0].time_ms      # … to the first good one after
    assert gap.source == "modbus_M01" and gap.reason.startswith("Modbus device not answering: ")
    # In plant time the gap covers the outage (the PLC clock runs `speed` times faster).
    assert gap.end_ms - gap.start_ms >= (back - lost - 0.1) * speed * 1000 - 2 * scan_ms
    assert all(len(b.readings) == 9 and not b.rejected for _, b in col.batches)


@pytest.mark.slow
def test_device_not_answering_then_a_gap_and_polling_resumes(image: PlcImage, tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="workbench.sources.modbus")
    port = free_port()
    tags = dictionary(tmp_path, port, ["M01"])
    speed = 60.0

    async def main() -> tuple[Collector, float, float]:
        async with ModbusPlcServer(image, port=port, speed=speed) as srv:
            col = Collector(connector(tags, "M01"))
            async with col:
                await col.wait_for(lambda: len(col.batches) >= 5, 5.0)
                srv.pause(True)
                lost = time.monotonic()
                await asyncio.sleep(1.5)  # several timeouts and reconnects (the server still accepts)
                srv.pause(False)
                back = time.monotonic()
                await col.wait_for(lambda: len([1 for t, _ in col.batches if t >= back]) >= 3, 5.0)
        return col, lost, back

    col, lost, back = run(main())
    _check_outage(col, lost, back, speed, image.scan_ms)
    warnings = [r for r in caplog.records if r.name == "workbench.sources.modbus" and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "not answering" in warnings[0].getMessage()  # once per outage
    assert any("answers again" in r.getMessage() for r in caplog.records)


@pytest.mark.slow
def test_server_stopped_and_restarted_on_the_same_port(image: PlcImage, tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="workbench.sources.modbus")
    port = free_port()
    tags = dictionary(tmp_path, port, ["M01"])
    speed = 60.0

    async def main() -> tuple[Collector, float, float]:
        srv = ModbusPlcServer(image, port=port, speed=speed)
        await srv.start()
        try:
            col = Collector(connector(tags, "M01"))
            async with col:
                await col.wait_for(lambda: len(col.batches) >= 5, 5.0)
                await srv.stop()
                lost = time.monotonic()
                await asyncio.sleep(1.5)  # connections refused meanwhile
                await srv.start()
                back = time.monotonic()
                await col.wait_for(lambda: len([1 for t, _ in col.batches if t >= back]) >= 3, 5.0)
        finally:
            await srv.stop()
        return col, lost, back

    col, lost, back = run(main())
    _check_outage(col, lost, back, speed, image.scan_ms)
    warnings = [r for r in caplog.records if r.name == "workbench.sources.modbus" and r.levelno == logging.WARNING]
    assert len(warnings) == 1


def test_source_must_be_modbus() -> None:
    src = Source(name="opc", protocol="opcua", url="opc.tcp://127.0.0.1:4840/")
    with pytest.raises(ConfigError, match="not a Modbus source"):
        ModbusConnector(src, [])
