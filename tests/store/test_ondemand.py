"""The notebook reader: reads what the engine reads, refuses writes, and holds nothing between calls."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from workbench import jobs, schema
from workbench.errors import StoreError
from workbench.store import DuckDBWarehouse, OnDemandWarehouse, PostgresWarehouse, open_reader

START = dt.datetime(2026, 10, 28, 11, tzinfo=dt.UTC)
END = dt.datetime(2026, 10, 30, 11, tzinfo=dt.UTC)

#: Tries to open the file read-write once; prints what happened.
TRY_WRITE = """\
import sys, duckdb
try:
    duckdb.connect(sys.argv[1]).close()
    print("opened")
except duckdb.Error as exc:
    print("locked" if "lock" in str(exc).lower() else f"error {exc}")
"""


def _writer_can_open(path: Path) -> bool:
    """Whether another process can open ``path`` read-write right now."""
    out = subprocess.run([sys.executable, "-c", TRY_WRITE, str(path)], capture_output=True, text=True,
                         timeout=60, check=True).stdout.strip()
    assert out in ("opened", "locked"), out
    return out == "opened"


def _machines() -> pd.DataFrame:
    return pd.DataFrame({"machine_id": ["X1"], "name": ["Extra"], "line": ["L9"], "area": ["A"], "site": ["PLANT1"],
                         "machine_type": ["cnc"], "ideal_cycle_time_s": [30.0], "source": ["test"]})


def _refuses_writes(wh: OnDemandWarehouse) -> None:
    for attempt in (lambda: wh.write("machines", _machines()), wh.init_schema, wh.transaction):
        with pytest.raises(StoreError, match="read-only"):
            attempt()


def test_duckdb_reads_equal_a_read_only_warehouse(plant_home: Path, tmp_path: Path) -> None:
    path = plant_home / "data" / "warehouse.duckdb"
    reader = OnDemandWarehouse.duckdb(path)
    assert (reader.engine, reader.location) == ("duckdb", str(path))
    with DuckDBWarehouse(path, read_only=True) as direct:
        for tbl in schema.tables():
            assert reader.read(tbl.name, as_="arrow").equals(direct.read(tbl.name, as_="arrow")), tbl.name
        for kwargs in ({"start": START, "end": END, "machines": ["M01", "M03"]},
                       {"start": START, "end": END, "overlap": True}):
            got = reader.read("machine_states", **kwargs)
            pd.testing.assert_frame_equal(got, direct.read("machine_states", **kwargs))
            assert len(got) > 0
        sql = "SELECT machine_id, count(*) AS n FROM production_events GROUP BY 1 ORDER BY 1"
        pd.testing.assert_frame_equal(reader.query(sql), direct.query(sql))
        assert reader.counts() == direct.counts() and reader.count("machines") == 4
        assert reader.schema_version() == direct.schema_version() == schema.SCHEMA_VERSION
        with reader.held(), reader.held():        # nested blocks share the outer connection
            frames = jobs.load_plant_frames(reader, start=START, end=END)
        expected = jobs.load_plant_frames(direct, start=START, end=END)
        pd.testing.assert_frame_equal(frames.production_events, expected.production_events)
        copied = reader.export_extract(tmp_path / "extract.duckdb", tables=["machines", "downtime_events"],
                                       start=START, end=END)
        assert copied == direct.export_extract(tmp_path / "again.duckdb", tables=["machines", "downtime_events"],
                                               start=START, end=END)
    _refuses_writes(reader)
    with pytest.raises(StoreError, match="read-only|read only"):
        reader.query("INSERT INTO ingest_watermarks VALUES ('x', 'y', NULL, NULL)")


def test_duckdb_reader_holds_the_file_only_inside_a_call_or_held(plant_home: Path) -> None:
    path = plant_home / "data" / "warehouse.duckdb"
    reader = OnDemandWarehouse.duckdb(path)
    assert len(reader.read("machines")) == 4
    assert _writer_can_open(path)                   # nothing kept after the call
    with reader.held():
        assert len(reader.read("machines")) == 4
        assert not _writer_can_open(path)           # one open for the whole block…
        reader.read("reason_codes")
    assert _writer_can_open(path)                   # …released at its end
    with DuckDBWarehouse(path, lock_timeout_s=0):   # also in this process: no read-only instance left
        pass
    reader.close()                                  # nothing to close; the reader stays usable
    assert reader.count("machines") == 4


def test_the_configured_reader(plant_home: Path, use_home) -> None:
    use_home(plant_home)
    reader = open_reader()
    assert isinstance(reader, OnDemandWarehouse)
    assert reader.location == str(plant_home / "data" / "warehouse.duckdb") and reader.count("machines") == 4


@pytest.mark.postgres
def test_postgres_reads_equal_the_engine_and_held_is_one_snapshot(pg_schema_url: str) -> None:
    with PostgresWarehouse(pg_schema_url, timescale="off") as wh:
        wh.init_schema()
        wh.write("machines", _machines())
        reader = OnDemandWarehouse.postgres(pg_schema_url, timescale="off")
        assert (reader.engine, reader.location) == ("postgres", wh.location)
        for name in ("machines", "reason_codes", "shift_calendar"):
            assert reader.read(name, as_="arrow").equals(wh.read(name, as_="arrow")), name
        assert reader.counts() == wh.counts() and reader.schema_version() == wh.schema_version()
        _refuses_writes(reader)
        with pytest.raises(StoreError, match="read-only transaction"):
            reader.query("DELETE FROM machines")    # the session itself is read-only
        with reader.held():
            before = reader.count("machines")
            wh.write("machines", _machines().assign(machine_id="X2"))  # committed by another session
            assert reader.count("machines") == before   # the block reads one snapshot
        assert reader.count("machines") == before + 1
        assert pa.types.is_string(reader.read("machines", as_="arrow").schema.field("machine_id").type)
