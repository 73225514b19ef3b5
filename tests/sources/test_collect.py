"""The live path end to end: KEPServerEX-format MQTT → Mosquitto → collector → warehouse.

Real Mosquitto (a private one, configured as deploy/mosquitto/workbench.conf), real PostgreSQL, real DuckDB; the publisher's PLC image is the
simulator's ground truth. Every fault test ends with the stored counts equal to the image's
(0 lost) and the stored telemetry rows equal to the values published (0 lost, 0 duplicated).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import paho.mqtt.client as paho
import pandas as pd
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from tests.sources.collect_support import (
    collector_log,
    compare_counts,
    expected_telemetry_rows,
    join_states,
    start_collector,
    stop_collector,
    truth_states,
    wait_for,
)

from workbench.simulate.kepware import KepwarePublisher
from workbench.simulate.plc import PlcImage, tag_dictionary_yaml
from workbench.sources.collector import Collector
from workbench.sources.spool import Spool
from workbench.sources.tags import load_tags
from workbench.store import DuckDBWarehouse, PostgresWarehouse

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """A Mosquitto configured as deploy/mosquitto/workbench.conf (persistence, no queue limit)."""
    from workbench.simulate.broker import MosquittoBroker

    with MosquittoBroker(tmp_path_factory.mktemp("mosquitto")) as b:
        yield b


@pytest.fixture(scope="module")
def image_day(plant):
    """A whole production day, 06:00 to 06:00 plant time (CST = UTC-6), and 30 minutes of the next."""
    import pandas as pd

    return PlcImage.from_plant(plant, scan_s=10, start=pd.Timestamp("2026-11-16 12:00", tz="UTC"), hours=24.5)


@pytest.fixture(scope="module")
def image2(plant):
    import pandas as pd

    return PlcImage.from_plant(plant, scan_s=10, start=pd.Timestamp("2026-11-16 14:00", tz="UTC"), hours=2)


def _tags(tmp: Path, image: PlcImage, prefix: str, broker) -> Path:
    path = tmp / "tags.yaml"
    path.write_text(
        tag_dictionary_yaml(
            mqtt=list(image.machines),
            topic=f"{prefix}/#",
            client_id=f"{prefix}-collector",
            mqtt_url=broker.url,
        )
    )
    return path


def _prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def _publish_all(pub: KepwarePublisher, *, timeout: float = 300) -> None:
    wait_for(lambda: pub.finished, timeout=timeout, what="the publisher to finish")
    assert pub.wait_delivered(60), "the broker did not acknowledge every published message"


# -- reconciliation ---------------------------------------------------------------------------------


def _run_in_process(image: PlcImage, tmp: Path, opener, broker, *, speed: float) -> Collector:
    prefix = _prefix()
    tags = load_tags(_tags(tmp, image, prefix, broker))
    spool = Spool(tmp / "spool.sqlite")
    collector = Collector(tags, spool=spool, open_warehouse=opener, health_s=2.0)
    pub = KepwarePublisher(image, url=broker.url, prefix=prefix, speed=speed, client_id=f"{prefix}-pub")

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        await asyncio.sleep(1.0)
        pub.start()
        await asyncio.to_thread(_publish_all, pub)
        # Every value the publisher sent has been read (good or flagged), then the spool drains on stop.
        for _ in range(240):
            if collector.stats["readings"] + collector.stats["flagged"] >= pub.values:
                break
            await asyncio.sleep(0.5)
        stop.set()
        await task

    try:
        asyncio.run(main())
    finally:
        pub.stop()
        spool.close()
    return collector


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_a_production_day_reconciles_with_the_ground_truth(
    engine, plant, image_day, tmp_path, request, broker
):
    if engine == "duckdb":
        path = tmp_path / "wh.duckdb"
        DuckDBWarehouse(path).init_schema()

        def opener():
            return DuckDBWarehouse(path)
    else:
        url = request.getfixturevalue("pg_schema_url")
        PostgresWarehouse(url, timescale="off").init_schema()

        def opener():
            return PostgresWarehouse(url, timescale="off")

    collector = _run_in_process(image_day, tmp_path, opener, broker, speed=2880)
    machines = list(image_day.machines)
    with opener() as wh:
        production = wh.read("production_events")
        telemetry = wh.count("machine_telemetry")
        states = wh.read("machine_states")
        downtime = wh.read("downtime_events")
        dead = wh.count("dead_letters")
    # Good and reject counts per machine-hour, exactly, through the injected rollovers and resets.
    kinds = set(image_day.counter_events["kind"])
    assert kinds == {"rollover", "reset"}, kinds
    assert collector.stats["counter_rollovers"] >= 1 and collector.stats["counter_resets"] >= 1
    assert compare_counts(image_day, production, machines).empty
    assert telemetry == expected_telemetry_rows(image_day, machines)
    assert dead == 0
    # State intervals match the simulator's within one scan (10 s); 15-minute checkpoints split long
    # intervals, so contiguous pieces of one state are joined first.
    truth = truth_states(image_day)
    for m in machines:
        got = join_states(states[states["machine_id"] == m].sort_values("time_start"))
        exp = truth[truth["machine_id"] == m]
        assert list(got["state"]) == list(exp["state"][: len(got)])
        offsets = got["time_start"].to_numpy()[1:] - exp["time_start"].to_numpy()[1 : len(got)]
        assert (abs(offsets.astype("timedelta64[ms]").astype(int)) <= image_day.scan_ms).all()
    # OEE per machine-day from the collected data against the simulator's ground truth (truth.oee,
    # which the OEE library reproduces exactly on the simulator's own tables): within ±0.5 pp.
    from workbench.oee import PlantFrames, compute

    master = {
        k: plant.tables[k]
        for k in ("machines", "shift_calendar", "part_rates", "planned_stops", "reason_codes")
    }
    ours = compute(
        PlantFrames.from_tables(
            {**master, "machine_states": states, "production_events": production, "downtime_events": downtime}
        ),
        by=("machine_id", "day"),
        tz=plant.config.timezone,
    ).table
    ours = ours[ours["day"].astype(str) == "2026-11-16"].set_index("machine_id")
    truth = plant.truth.oee
    truth = truth[truth["shift_date"].astype(str) == "2026-11-16"].set_index("machine_id")
    diff = (ours["oee"] - truth["oee"]).abs() * 100
    assert len(diff) == len(machines) and diff.notna().all() and (diff <= 0.5).all(), pd.DataFrame(
        {"collected": ours["oee"], "truth": truth["oee"], "pp": diff}
    )


# -- faults, with the collector as its own process ------------------------------------------------


def _fault_run(image: PlcImage, tmp: Path, url: str, fault, broker, *, speed: float = 240):
    """Publish ``image`` while the collector (a process) runs; ``fault(proc, pub)`` mid-stream."""
    prefix = _prefix()
    tags = _tags(tmp, image, prefix, broker)
    env = {"WORKBENCH_DATABASE_URL": url}
    proc = start_collector(tmp, tags, env)
    pub = KepwarePublisher(image, url=broker.url, prefix=prefix, speed=speed, client_id=f"{prefix}-pub")
    try:
        wait_for(lambda: "MQTT connected" in collector_log(tmp), timeout=60, what="the collector to connect")
        pub.start()
        proc = fault(proc, pub, tags, env) or proc
        _publish_all(pub)
        machines = list(image.machines)
        target = expected_telemetry_rows(image, machines)

        def stored() -> bool:
            with PostgresWarehouse(url, timescale="off") as wh:
                return wh.count("machine_telemetry") >= target

        wait_for(stored, timeout=180, step=1.0, what=f"{target} telemetry rows")
        assert stop_collector(proc) == 0, collector_log(tmp)[-3000:]
    finally:
        pub.stop()
        if proc.poll() is None:
            proc.kill()
    with PostgresWarehouse(url, timescale="off") as wh:
        production = wh.read("production_events")
        telemetry = wh.query(
            "SELECT count(*) AS n, count(DISTINCT (machine_id, metric, time)) AS d FROM machine_telemetry"
        )
    assert int(telemetry["n"][0]) == int(telemetry["d"][0]) == target, "values lost or duplicated"
    assert compare_counts(image, production, machines).empty, "counts differ from the ground truth"
    return collector_log(tmp)


def test_collector_killed_mid_batch_loses_and_duplicates_nothing(image2, tmp_path, pg_role_url, broker):
    url, _ = pg_role_url

    def kill(proc, pub, tags, env):
        wait_for(lambda: pub.next_scan > len(image2.times) // 3, timeout=60, what="a third of the image")
        proc.kill()  # SIGKILL: no clean stop, whatever it was doing
        proc.wait()
        time.sleep(2.0)  # the broker keeps publishing into the persistent session meanwhile
        return start_collector(tmp_path, tags, env)

    log = _fault_run(image2, tmp_path, url, kill, broker)
    assert log.count("MQTT connected") >= 2 and "resumed session" in log


def test_mosquitto_restarted_mid_stream(image2, tmp_path, pg_role_url, broker):
    url, _ = pg_role_url

    def restart(proc, pub, tags, env):
        wait_for(lambda: pub.next_scan > len(image2.times) // 3, timeout=60, what="a third of the image")
        broker.restart(down_s=3.0)  # SIGTERM, 3 s down, same port and persistence store

    log = _fault_run(image2, tmp_path, url, restart, broker)
    assert "MQTT connection to" in log and "lost" in log


def test_postgres_unreachable_for_a_while_spools_then_drains_in_order(
    image2, tmp_path, pg_role_url, pg_url, broker
):
    url, role = pg_role_url

    def lock_out(proc, pub, tags, env):
        wait_for(lambda: pub.next_scan > len(image2.times) // 4, timeout=60, what="a quarter of the image")
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"ALTER ROLE {role} NOLOGIN")
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
        wait_for(
            lambda: "warehouse unreachable, spooling" in collector_log(tmp_path),
            timeout=60,
            what="the collector to notice",
        )
        time.sleep(5.0)
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"ALTER ROLE {role} LOGIN")

    log = _fault_run(image2, tmp_path, url, lock_out, broker)
    assert "warehouse reachable again" in log


# -- bad input --------------------------------------------------------------------------------------

_item = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(
            st.text(max_size=30),
            st.integers(),
            st.none(),
            st.sampled_from(["Plant.M01.drive_temp", "Plant.M01.good_count"]),
        ),
        "v": st.one_of(
            st.integers(min_value=-(2**70), max_value=2**70),
            st.floats(allow_nan=True),
            st.text(max_size=20),
            st.booleans(),
            st.none(),
            st.lists(st.integers(), max_size=3),
        ),
        "q": st.one_of(st.booleans(), st.integers(), st.text(max_size=3)),
        "t": st.one_of(st.integers(min_value=-(2**63), max_value=2**63), st.floats(), st.text(max_size=5)),
    },
)


def _hostile():
    json_doc = st.fixed_dictionaries({"timestamp": st.integers(), "values": st.lists(_item, max_size=5)})
    text = json_doc.map(lambda d: json.dumps(d, allow_nan=True).encode())
    return st.one_of(
        text,
        text.map(lambda b: b[: max(1, len(b) // 2)]),
        st.binary(max_size=200),
        st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")),
        st.just(b'{"values": 5}'),
        st.just(b"[]"),
        st.just(b"null"),
        st.just(b'{"values": [' + b"[" * 5000 + b"]" * 5000 + b"]}"),
    )


def test_hostile_payloads_are_dead_lettered_and_good_ones_around_them_stored(tmp_path, broker):
    from workbench.simulate.plc import tag_id

    prefix = _prefix()
    path = tmp_path / "tags.yaml"
    path.write_text(
        tag_dictionary_yaml(mqtt=["M01"], topic=f"{prefix}/#", client_id=f"{prefix}-c", mqtt_url=broker.url)
    )
    payloads: list[bytes] = []

    @settings(
        max_examples=1000,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        deadline=None,
        database=None,
    )
    @given(_hostile())
    def collect(p: bytes) -> None:
        payloads.append(p)

    collect()
    payloads.append(b"x" * (10 * 1024 * 1024))  # 10 MB
    now = int(time.time() * 1000) - 60_000
    # Hand-made ones on a tag the good messages do not use (so no watermark stands in front of them).
    temp, count = tag_id("M01", "spindle_load"), tag_id("M01", "good_count")
    for i, v in enumerate(["hot", None, [1], {"a": 1}, 1e300, -1e300, "NaN", True]):
        payloads.append(
            json.dumps({"timestamp": now, "values": [{"id": temp, "v": v, "q": True, "t": now + i}]}).encode()
        )
    payloads.append(
        b'{"timestamp": 1, "values": [{"id": "%s", "v": NaN, "q": true, "t": %d}]}' % (temp.encode(), now + 9)
    )
    payloads.append(
        json.dumps({"timestamp": now, "values": [{"id": count, "v": 1.5, "q": True, "t": now}]}).encode()
    )
    payloads.append(
        json.dumps(
            {"timestamp": now, "values": [{"id": "Plant.M01.✓温度", "v": 1, "q": True, "t": now}]}
        ).encode()
    )
    good = [
        json.dumps(
            {
                "timestamp": now + i,
                "values": [
                    {"id": tag_id("M01", "drive_temp"), "v": 40.0 + i / 100, "q": True, "t": now + i * 10}
                ],
            }
        ).encode()
        for i in range(len(payloads))
    ]
    wh_path = tmp_path / "wh.duckdb"
    DuckDBWarehouse(wh_path).init_schema()
    tags = load_tags(path)
    spool = Spool(tmp_path / "spool.sqlite")
    collector = Collector(tags, spool=spool, open_warehouse=lambda: DuckDBWarehouse(wh_path))
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{prefix}-pub", protocol=paho.MQTTv5)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        await asyncio.sleep(1.0)
        infos = []
        for bad, ok in zip(payloads, good, strict=True):
            infos.append(client.publish(f"{prefix}/M01", bad, qos=1))
            infos.append(client.publish(f"{prefix}/M01", ok, qos=1))
        for info in infos:
            await asyncio.to_thread(info.wait_for_publish, 30)
        for _ in range(120):
            if collector.stats["batches"] and collector.connectors[
                tags.sources["kepware"].name
            ].messages >= len(infos):
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)
        stop.set()
        await task

    try:
        asyncio.run(main())
    finally:
        client.loop_stop()
        client.disconnect()
        spool.close()
    with DuckDBWarehouse(wh_path) as wh:
        temps = wh.query(
            "SELECT count(*) AS n FROM machine_telemetry WHERE metric = 'drive_temp' "
            "AND value >= 40 AND quality = 'good'"
        )
        dead = wh.read("dead_letters")
    assert collector.connectors["kepware"].messages == 2 * len(payloads)
    # Every good message around the hostile ones is stored …
    assert int(temps["n"][0]) >= len(good)
    # … and every hostile message left a dead letter with a reason (or was a valid reading / empty list).
    assert dead["reason"].str.contains(":").all()
    # Independent oracle: every payload that is not a JSON object with a 'values' list must be a dead letter.
    unreadable = set()
    for p in payloads:
        try:
            doc = json.loads(p.decode("utf-8"))
            ok = isinstance(doc, dict) and isinstance(doc.get("values"), list)
        except (UnicodeDecodeError, ValueError, RecursionError):
            ok = False
        if not ok and len(p) <= 1024 * 1024:
            unreadable.add(p.decode("utf-8", "backslashreplace"))
    assert unreadable <= set(dead["payload"]), "an unreadable message left no dead letter"
    assert any(r.startswith("too_large") for r in dead["reason"])
    for rule in ("malformed", "unknown_tag", "wrong_type", "not_finite", "out_of_range", "bad_timestamp"):
        assert dead["reason"].str.startswith(rule).any(), rule


# -- dead-letter replay -------------------------------------------------------------------------------


def test_dlq_replay_after_the_tag_dictionary_is_fixed_writes_exactly_once(tmp_path):
    from workbench.ingest.stream import Normalizer
    from workbench.sources.base import Batch, Reading
    from workbench.sources.replay import replay_dead_letters

    full = tmp_path / "full.yaml"
    full.write_text(tag_dictionary_yaml(mqtt=["M01"]))
    text = full.read_text()
    broken = tmp_path / "broken.yaml"
    broken.write_text("\n".join(ln for ln in text.splitlines() if "M01.drive_temp" not in ln) + "\n")
    now = int(time.time() * 1000) - 60_000
    readings = [
        Reading(
            "kepware",
            "Plant.M01.drive_temp",
            40.0 + i,
            now + 1000 * i,
            True,
            json.dumps({"id": "Plant.M01.drive_temp", "v": 40.0 + i, "q": True, "t": now + 1000 * i}),
        )
        for i in range(5)
    ]
    rows = Normalizer(load_tags(broken)).process(Batch(source="kepware", readings=readings))
    assert len(rows.dead_letters) == 5 and rows.stats["unknown_tag"] == 5
    with DuckDBWarehouse(tmp_path / "wh.duckdb") as wh:
        wh.init_schema()
        from workbench.ingest.stream import dead_letter_table

        wh.write("dead_letters", dead_letter_table(rows.dead_letters))
        first = replay_dead_letters(wh, load_tags(full))
        second = replay_dead_letters(wh, load_tags(full))
        assert (first.replayed, first.written, first.still_rejected) == (5, 5, 0)
        assert (second.replayed, second.written) == (0, 0)
        assert wh.count("dead_letters") == 0 and wh.count("machine_telemetry") == 5
