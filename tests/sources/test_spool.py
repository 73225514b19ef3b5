"""The collector's spool and forwarder: durable, bounded, in order, exactly once."""

from __future__ import annotations

import threading

import pyarrow as pa
import pytest

from workbench.ingest.stream import Rows
from workbench.sources.spool import Forwarder, Spool, SpoolFullError
from workbench.store import DuckDBWarehouse

T0 = 1_763_300_000_000


def telemetry(start: int, n: int, machine: str = "M1") -> Rows:
    times = pa.array([T0 + 1000 * (start + i) for i in range(n)], pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
    return Rows(tables={"machine_telemetry": pa.table({
        "time": times, "machine_id": [machine] * n, "metric": ["temp"] * n,
        "value": pa.array([float(start + i) for i in range(n)]), "unit": ["degC"] * n,
        "quality": ["good"] * n, "source": ["kep"] * n})})


@pytest.fixture
def warehouse(tmp_path):
    path = tmp_path / "wh.duckdb"
    DuckDBWarehouse(path).init_schema()
    return path


def test_appends_and_drains_from_two_threads_store_every_row_once(tmp_path, warehouse):
    spool = Spool(tmp_path / "spool.sqlite")
    fwd = Forwarder(spool, lambda: DuckDBWarehouse(warehouse), max_rows=700)
    done = threading.Event()

    def forward() -> None:
        while not done.is_set() or spool.status().batches:
            fwd.drain_once()

    t = threading.Thread(target=forward)
    t.start()
    for k in range(60):
        spool.append(telemetry(100 * k, 100), state={"k": k}, message_ids=[f"m{k}"])
    done.set()
    t.join(60)
    assert not t.is_alive()
    with DuckDBWarehouse(warehouse) as wh:
        assert wh.count("machine_telemetry") == 6000
    assert spool.load_state() == {"k": 59} and spool.seen(["m0", "m59", "m60"]) == {"m0", "m59"}


def test_a_batch_forwarded_again_after_a_crash_before_the_ack_is_a_no_op(tmp_path, warehouse):
    spool = Spool(tmp_path / "spool.sqlite")
    spool.append(telemetry(0, 50))
    fwd = Forwarder(spool, lambda: DuckDBWarehouse(warehouse))
    fwd._write(spool.take())  # the warehouse committed, then the process died before spool.ack
    again = Spool(tmp_path / "spool.sqlite")  # restart
    result = Forwarder(again, lambda: DuckDBWarehouse(warehouse)).drain_once()
    assert (result.rows, result.written) == (50, 0) and again.status().batches == 0
    with DuckDBWarehouse(warehouse) as wh:
        assert wh.count("machine_telemetry") == 50


def test_the_bound_refuses_an_append_whole_and_says_why(tmp_path):
    spool = Spool(tmp_path / "spool.sqlite", max_bytes=20_000)
    spool.append(telemetry(0, 100))
    used = spool.status().bytes
    with pytest.raises(SpoolFullError, match="is full"):
        for k in range(1, 100):
            spool.append(telemetry(100 * k, 100), state={"k": k})
    st = spool.status()
    assert used <= st.bytes <= 20_000
    # The refused append left nothing behind: the saved state is the last accepted batch's.
    accepted = st.rows // 100 - 1
    assert spool.load_state() == ({"k": accepted} if accepted else None)


def test_a_batch_the_warehouse_refuses_is_set_aside_and_the_rest_flows(tmp_path, warehouse):
    spool = Spool(tmp_path / "spool.sqlite")
    spool.append(telemetry(0, 10))
    bad = telemetry(10, 2)
    # Two rows with one key and different content: the store refuses the batch as contradicting itself.
    t = bad.tables["machine_telemetry"]
    bad.tables["machine_telemetry"] = t.set_column(0, "time", pa.concat_arrays([t["time"].chunks[0][:1]] * 2))
    spool.append(bad)
    spool.append(telemetry(20, 10))
    result = Forwarder(spool, lambda: DuckDBWarehouse(warehouse)).drain_once()
    assert result.rows == 22 and spool.status().batches == 0
    (_seq, target, rows, reason), = spool.quarantined()
    assert (target, rows) == ("machine_telemetry", 2) and "share a key" in reason
    with DuckDBWarehouse(warehouse) as wh:
        assert wh.count("machine_telemetry") == 20
