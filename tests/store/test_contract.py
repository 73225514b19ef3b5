"""The warehouse contract, run against the embedded DuckDB file and a real PostgreSQL server:
plain (``off``), and TimescaleDB (``on``) where a server has it preloaded (skipped with the reason
elsewhere). ``auto`` runs a representative subset (on plain PostgreSQL it is the plain path again)."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterator

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from workbench import schema
from workbench.errors import SchemaError, StoreError
from workbench.store import DuckDBWarehouse, PostgresWarehouse, Warehouse

UTC = dt.UTC

#: Every test: DuckDB, PostgreSQL ``off``, TimescaleDB ``on``.
VARIANTS = ["duckdb", "postgres", "timescale-on"]
#: The subset that also runs in ``auto``, on the test server and on the TimescaleDB server.
with_auto = pytest.mark.parametrize("warehouse", [*VARIANTS, "postgres-auto", "timescale-auto"], indirect=True)


@pytest.fixture(params=VARIANTS)
def warehouse(request: pytest.FixtureRequest, open_variant) -> Iterator[Warehouse]:
    """An initialised, empty warehouse of each variant (see ``conftest.open_variant``)."""
    wh = open_variant(request.param)
    try:
        yield wh
    finally:
        wh.close()
T0 = pd.Timestamp("2026-11-01T05:00:00Z")


def machines() -> pd.DataFrame:
    return pd.DataFrame({
        "machine_id": ["M01", "M02", "M03"],
        "name": ["Lathe 1", "Mill, \"big\" 2", "Press\n3"],  # CSV-hostile on purpose
        "line": ["L1", "L1", "L2"],
        "area": ["", None, "Stamping"],                       # empty string is not null
        "site": ["PLANT1"] * 3,
        "machine_type": ["cnc_lathe", "cnc_mill", "press"],
        "ideal_cycle_time_s": [30.0, 45.5, 12.25],
        "source": ["test"] * 3,
    })


def telemetry(n: int = 120, *, offset_min: int = 0) -> pd.DataFrame:
    times = [T0 + pd.Timedelta(minutes=offset_min + i) for i in range(n)]
    return pd.DataFrame({
        "time": times * 2,
        "machine_id": ["M01"] * n + ["M02"] * n,
        "metric": "vibration_rms",
        "value": [float(i) / 7 for i in range(2 * n)],
        "unit": "mm/s",
        "quality": "good",
        "source": "test",
    })


def downtime() -> pd.DataFrame:
    return pd.DataFrame({
        "machine_id": ["M01", "M02"],
        "time_start": [T0, T0 + pd.Timedelta(hours=1)],
        "time_end": [T0 + pd.Timedelta(minutes=25), T0 + pd.Timedelta(hours=1, minutes=5)],
        "duration_min": [25.0, 5.0],
        "reason_code": ["MECH-BRG", None],
        "planned": [False, None],
        "source": "test",
    })


def content(wh: Warehouse, table: str) -> pd.DataFrame:
    return wh.read(table).reset_index(drop=True)


@with_auto
def test_init_schema_is_idempotent_and_versioned(warehouse: Warehouse) -> None:
    warehouse.init_schema()
    warehouse.init_schema()
    assert warehouse.schema_version() == schema.SCHEMA_VERSION
    counts = warehouse.counts()
    assert set(counts) == set(schema.TABLES)
    assert all(n == 0 for n in counts.values())


def test_roundtrip_keeps_values_and_types(warehouse: Warehouse) -> None:
    m = machines()
    warehouse.write("machines", m)
    got = content(warehouse, "machines")
    pd.testing.assert_frame_equal(
        got.astype(object).where(got.notna(), None), m.astype(object).where(m.notna(), None)
    )
    assert got.loc[got.machine_id == "M01", "area"].item() == ""      # '' survives as ''
    assert got.loc[got.machine_id == "M02", "area"].isna().item()      # null survives as null

    tel = telemetry(10)
    warehouse.write("machine_telemetry", tel)
    back = warehouse.read("machine_telemetry", as_="arrow")
    expected = schema.table("machine_telemetry").arrow_schema
    assert [(f.name, f.type) for f in back.schema] == [(f.name, f.type) for f in expected]
    assert str(warehouse.read("machine_telemetry")["time"].dtype) == "datetime64[us, UTC]"
    assert sorted(back.column("value").to_pylist()) == sorted(tel["value"].tolist())


@with_auto
def test_reloading_the_same_rows_is_a_no_op(warehouse: Warehouse) -> None:
    first = {
        "machines": warehouse.write("machines", machines()),
        "machine_telemetry": warehouse.write("machine_telemetry", telemetry()),
        "downtime_events": warehouse.write("downtime_events", downtime()),
    }
    assert first["machine_telemetry"].written == 240
    before = {t: content(warehouse, t) for t in first}
    again = {
        "machines": warehouse.write("machines", machines()),
        "machine_telemetry": warehouse.write("machine_telemetry", telemetry()),
        "downtime_events": warehouse.write("downtime_events", downtime()),
    }
    for table, result in again.items():
        assert result.written == 0, table
        assert result.unchanged == first[table].rows, table
        assert warehouse.count(table) == first[table].rows
        pd.testing.assert_frame_equal(content(warehouse, table), before[table])


def test_overlapping_batch_writes_only_new_rows(warehouse: Warehouse) -> None:
    warehouse.write("machine_telemetry", telemetry(60))
    result = warehouse.write("machine_telemetry", telemetry(60, offset_min=30))
    assert (result.rows, result.written, result.unchanged) == (120, 60, 60)
    assert warehouse.count("machine_telemetry") == 180


def test_update_policy_changes_only_changed_rows(warehouse: Warehouse) -> None:
    warehouse.write("downtime_events", downtime())
    later = downtime()
    later.loc[1, "reason_code"] = "ELEC-DRV"   # the operator filled in the blank reason
    result = warehouse.write("downtime_events", later)
    assert (result.written, result.unchanged) == (1, 1)
    got = content(warehouse, "downtime_events")
    assert got["reason_code"].tolist() == ["MECH-BRG", "ELEC-DRV"]
    assert warehouse.count("downtime_events") == 2


def test_event_ids_are_deterministic_and_shared_by_engines(warehouse: Warehouse) -> None:
    warehouse.write("machine_telemetry", telemetry(3))
    ids = set(content(warehouse, "machine_telemetry")["event_id"])
    expected = set(schema.with_event_ids(schema.table("machine_telemetry"),
                                         pa.Table.from_pandas(telemetry(3))).column("event_id").to_pylist())
    assert ids == expected and len(ids) == 6


def test_frames_of_every_kind_are_accepted(warehouse: Warehouse) -> None:
    warehouse.write("machines", pl.from_pandas(machines()))
    warehouse.write("machine_telemetry", pa.Table.from_pandas(telemetry(5)))
    assert warehouse.count("machines") == 3 and warehouse.count("machine_telemetry") == 10
    assert isinstance(warehouse.read("machines", as_="polars"), pl.DataFrame)


def test_identical_duplicates_in_a_batch_fold_conflicting_ones_fail(warehouse: Warehouse) -> None:
    tel = telemetry(5)
    result = warehouse.write("machine_telemetry", pd.concat([tel, tel]))
    assert (result.rows, result.written) == (10, 10)
    clash = pd.concat([tel, tel.assign(value=tel["value"] + 1)])
    with pytest.raises(SchemaError, match="share a key with different content"):
        warehouse.write("machine_telemetry", clash.assign(time=clash["time"] + pd.Timedelta(days=1)))
    assert warehouse.count("machine_telemetry") == 10


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.drop(columns=["machine_id"]), "needs column"),
        (lambda d: d.assign(colour="red"), "has no column"),
        (lambda d: d.assign(time=d["time"].dt.tz_localize(None)), "without a time zone"),
        (lambda d: d.assign(value="high"), "cannot be read as double"),
        (lambda d: d.assign(machine_id=None), "is required"),
    ],
)
def test_bad_frames_are_refused_with_a_clear_error(warehouse: Warehouse, mutate, message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        warehouse.write("machine_telemetry", mutate(telemetry(3)))
    assert warehouse.count("machine_telemetry") == 0


def test_unknown_table_is_an_error(warehouse: Warehouse) -> None:
    with pytest.raises(SchemaError, match="unknown table 'telemetry'"):
        warehouse.write("telemetry", telemetry(1))


def test_read_filters_by_time_and_machine(warehouse: Warehouse) -> None:
    warehouse.write("machine_telemetry", telemetry(120))
    got = warehouse.read("machine_telemetry", start=T0 + pd.Timedelta(minutes=10),
                         end=T0 + pd.Timedelta(minutes=20), machines=["M02"])
    assert len(got) == 10
    assert set(got["machine_id"]) == {"M02"}
    assert got["time"].min() == T0 + pd.Timedelta(minutes=10)
    assert got["time"].is_monotonic_increasing
    with pytest.raises(StoreError, match="timezone-aware"):
        warehouse.read("machine_telemetry", start=dt.datetime(2026, 11, 1))
    cols = warehouse.read("machine_telemetry", columns=["time", "value"])
    assert list(cols.columns) == ["time", "value"]
    with pytest.raises(SchemaError):
        warehouse.read("machine_telemetry", columns=["time; DROP TABLE machines"])


@with_auto
def test_failed_transaction_writes_nothing(warehouse: Warehouse) -> None:
    with pytest.raises(RuntimeError), warehouse.transaction():
        warehouse.write("machines", machines())
        warehouse.write("machine_telemetry", telemetry(5))
        raise RuntimeError("boom")
    assert warehouse.count("machines") == 0
    assert warehouse.count("machine_telemetry") == 0


def test_special_values_roundtrip(warehouse: Warehouse) -> None:
    rows = pd.DataFrame({
        "dead_letter_id": ["a", "b"],
        "received_at": [T0, T0],
        "source": ["mqtt", "file"],
        "target_table": ["machine_telemetry", None],
        "location": ["topic plant/1", "history.csv row 7, column 'good_count'"],
        "reason": ["value 'NaN' is not a number", "good_count > total_count"],
        "payload": ['{"value": "NaN", "tags": ["a", "b"]}', '{"row": 7}'],
    })
    warehouse.write("dead_letters", rows)
    got = content(warehouse, "dead_letters").set_index("dead_letter_id")
    assert got.loc["b", "location"] == "history.csv row 7, column 'good_count'"
    import json
    assert json.loads(got.loc["a", "payload"]) == {"value": "NaN", "tags": ["a", "b"]}

    tel = telemetry(3)
    tel.loc[0, "value"] = float("nan")
    tel.loc[1, "value"] = None
    warehouse.write("machine_telemetry", tel.iloc[:3])
    values = content(warehouse, "machine_telemetry")["value"].tolist()
    assert pd.isna(values[0]) and pd.isna(values[1]) and values[2] == pytest.approx(2 / 7)


def test_dates_and_booleans_roundtrip(warehouse: Warehouse) -> None:
    cal = pd.DataFrame({
        "site": ["PLANT1"], "shift_date": [dt.date(2026, 11, 1)], "shift": ["C"],
        "time_start": [pd.Timestamp("2026-11-02T04:00Z")], "time_end": [pd.Timestamp("2026-11-02T13:00Z")],
        "source": ["test"],
    })
    warehouse.write("shift_calendar", cal)
    got = content(warehouse, "shift_calendar")
    assert got["shift_date"].tolist() == [dt.date(2026, 11, 1)]
    codes = pd.DataFrame({"code": ["PM-PM", "MECH-BRG"], "category": ["Scheduled Maintenance", "Mechanical"],
                          "subcode": ["PM", "bearing"], "planned": [True, False], "source": "test"})
    warehouse.write("reason_codes", codes)
    got = content(warehouse, "reason_codes").set_index("code")
    assert got["planned"].tolist() == [False, True]  # ordered by code


@with_auto
def test_production_hourly_view(warehouse: Warehouse) -> None:
    events = pd.DataFrame({
        "time": [T0 + pd.Timedelta(minutes=m) for m in (1, 2, 61)],
        "machine_id": "M01", "event_type": "cycle", "part_number": "P-100",
        "good_count": [1, 0, 1], "reject_count": [0, 1, 0], "source": "test",
    })
    warehouse.write("production_events", events)
    got = warehouse.query("SELECT hour, good, rejects, cycles FROM production_hourly ORDER BY hour")
    assert got["good"].tolist() == [1, 1]
    assert got["rejects"].tolist() == [1, 0]
    assert got["cycles"].tolist() == [2, 1]


def test_export_extract_to_duckdb(warehouse: Warehouse, tmp_path) -> None:
    warehouse.write("machines", machines())
    warehouse.write("machine_telemetry", telemetry(120))
    path = tmp_path / "extract" / "day.duckdb"
    copied = warehouse.export_extract(path, tables=["machines", "machine_telemetry"],
                                      start=T0, end=T0 + pd.Timedelta(hours=1))
    assert copied == {"machines": 3, "machine_telemetry": 120}
    assert not list(path.parent.glob("*.partial"))
    with DuckDBWarehouse(path, read_only=True) as extract:
        assert extract.count("machine_telemetry") == 120
        pd.testing.assert_frame_equal(content(extract, "machines"), content(warehouse, "machines"))


def test_an_extract_holds_exactly_what_read_returns_for_its_range(warehouse: Warehouse, tmp_path) -> None:
    warehouse.write("machines", machines())
    warehouse.write("machine_telemetry", telemetry(120))  # 2 machines × a reading a minute for 2 h
    start, end = T0 + pd.Timedelta(minutes=30), T0 + pd.Timedelta(minutes=90)
    path = tmp_path / "range.duckdb"
    copied = warehouse.export_extract(path, tables=["machines", "machine_telemetry"], start=start, end=end)
    assert copied == {"machines": 3, "machine_telemetry": 120}  # [start, end): 60 minutes × 2 machines
    with DuckDBWarehouse(path, read_only=True) as extract:
        pd.testing.assert_frame_equal(extract.read("machine_telemetry"),
                                      warehouse.read("machine_telemetry", start=start, end=end))
        assert extract.schema_version() is not None  # a warehouse of its own, canonical schema included
    with pytest.raises(StoreError, match="timezone-aware"):
        warehouse.export_extract(tmp_path / "naive.duckdb", tables=["machine_telemetry"],
                                 start=dt.datetime(2026, 1, 1), end=None)


def test_an_extract_copies_some_tables_over_a_range_of_their_own(warehouse: Warehouse, tmp_path) -> None:
    # A report run's extract: a week of telemetry but the day of stops, say (see runs.extract_ranges).
    warehouse.write("machines", machines())
    warehouse.write("machine_telemetry", telemetry(120))  # T0 … T0 + 2 h, 2 machines
    warehouse.write("downtime_events", downtime())  # starts T0 and T0 + 1 h
    start, end = T0 + pd.Timedelta(minutes=90), T0 + pd.Timedelta(hours=2)
    wide = (T0 + pd.Timedelta(minutes=30), end)
    path = tmp_path / "ranges.duckdb"
    copied = warehouse.export_extract(path, tables=["machines", "machine_telemetry", "downtime_events"],
                                      start=start, end=end, ranges={"machine_telemetry": wide})
    assert copied == {"machines": 3, "machine_telemetry": 180, "downtime_events": 0}
    copied = warehouse.export_extract(path, tables=["machine_telemetry", "downtime_events"],
                                      start=start, end=end, ranges={"downtime_events": (None, None)})
    assert copied == {"machine_telemetry": 60, "downtime_events": 2}  # (None, None): the whole table
    with DuckDBWarehouse(path, read_only=True) as extract:
        pd.testing.assert_frame_equal(extract.read("machine_telemetry"),
                                      warehouse.read("machine_telemetry", start=start, end=end))
    with pytest.raises(StoreError, match="the range of downtime_events must be timezone-aware"):
        warehouse.export_extract(tmp_path / "naive.duckdb", tables=["downtime_events"],
                                 ranges={"downtime_events": (dt.datetime(2026, 1, 1), None)})


@pytest.mark.postgres
def test_timescale_on_without_the_extension_is_a_clear_error(pg_schema_url: str) -> None:
    with PostgresWarehouse(pg_schema_url, timescale="on") as wh:
        if wh.timescale_available():
            pytest.skip("this server has TimescaleDB; the refusal path cannot be shown here")
        with pytest.raises(StoreError, match="timescaledb extension is not available.*shared_preload_libraries"
                                             ".*Nothing was changed"):
            wh.init_schema()
        assert wh.schema_version() is None  # refused before any change
        assert wh.query("SELECT count(*) AS n FROM pg_tables WHERE schemaname = current_schema()")["n"][0] == 0


def _assert_plain(wh: PostgresWarehouse) -> None:
    layout = wh.layout()
    assert not layout.hypertables and not layout.aggregate and layout.view
    assert not any(s.startswith("timescale.") for s in layout.recorded)
    idx = wh.query("SELECT indexname FROM pg_indexes WHERE tablename = 'machine_telemetry' "
                   "AND schemaname = current_schema()")
    assert "machine_telemetry_machine_id_time_idx" in set(idx["indexname"])
    status = wh.schema_status()
    assert status.ok and "plain PostgreSQL" in status.detail, status.detail


@pytest.mark.postgres
def test_plain_postgres_gets_indexes_and_no_hypertables(pg_schema_url: str) -> None:
    with PostgresWarehouse(pg_schema_url, timescale="off") as wh:
        wh.init_schema()
        _assert_plain(wh)


@pytest.mark.postgres
def test_off_on_a_timescale_server_builds_no_hypertables(ts_schema_url: str) -> None:
    with PostgresWarehouse(ts_schema_url, timescale="off") as wh:
        wh.init_schema()
        _assert_plain(wh)
        assert wh.layout().extension_schema is not None  # the server has it; this warehouse does not use it


@pytest.mark.postgres
def test_auto_without_timescaledb_is_a_plain_warehouse_and_says_why(pg_schema_url: str, caplog) -> None:
    with PostgresWarehouse(pg_schema_url, timescale="auto") as wh:
        support = wh.timescale_support()
        if support.usable:
            pytest.skip(f"this server has TimescaleDB ({support.reason}); auto uses it here")
        with caplog.at_level(logging.INFO, logger="workbench.store.timescale"):
            wh.init_schema()
        assert wh.uses_timescale() is False
        assert support.reason in caplog.text and "plain PostgreSQL instead" in caplog.text
        _assert_plain(wh)


def test_unreachable_postgres_is_a_store_error() -> None:
    expected = re.escape("cannot connect to PostgreSQL at postgresql://nobody@127.0.0.1:1/x")
    with pytest.raises(StoreError, match=expected) as err:
        PostgresWarehouse("postgresql://nobody:secret@127.0.0.1:1/x?connect_timeout=2")
    assert "secret" not in str(err.value)


def test_stop_predictions_fill_only_uncoded_stops(warehouse: Warehouse) -> None:
    stops = pd.DataFrame({
        "machine_id": ["M01", "M01", "M02"], "time_start": [T0, T0 + pd.Timedelta(hours=1), T0],
        "time_end": [T0 + pd.Timedelta(minutes=20), T0 + pd.Timedelta(hours=1, minutes=5),
                     T0 + pd.Timedelta(minutes=9)],
        "duration_min": [20.0, 5.0, 9.0], "reason_code": [None, "MECH-BRG", "  "],
        "reason_category": [None, "Mechanical Failure", None], "source": "test"})
    warehouse.write("downtime_events", stops)
    ids = warehouse.read("downtime_events").sort_values(["machine_id", "time_start"])["event_id"].tolist()
    warehouse.fill_stop_predictions([(ids[0], "Tooling", 0.91), (ids[1], "Electrical Failure", 0.99),
                                     (ids[2], "Material", 0.55)])
    got = warehouse.read("downtime_events").sort_values(["machine_id", "time_start"])
    assert got["predicted_category"].fillna("-").tolist() == ["Tooling", "-", "Material"]
    assert got["predicted_confidence"].tolist()[0] == pytest.approx(0.91)
    assert pd.isna(got["predicted_confidence"].tolist()[1])
    assert got["reason_code"].tolist()[1] == "MECH-BRG"  # the operator's code, untouched
