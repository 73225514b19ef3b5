"""The report's model sections computed ahead by the morning run (``ml_sections``) and read back.

A section read back must be the section the notebook would compute — every table, detail, note
and confidence equal — and must be used only for the same day, the same settings and the same
rows: a stop coded since, a changed reading, a row more or less, or another setting makes the
notebook compute it itself. The fingerprint of the rows must not depend on the engine they were
read from (the morning run reads PostgreSQL, the report its DuckDB extract).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from workbench.errors import MLError
from workbench.ml import daily, sections, stored
from workbench.ml.records import MLSection, decode_frame, encode_frame
from workbench.ml.registry import DeferredModel, ModelVersion
from workbench.simulate import PlantConfig, simulate_plant
from workbench.store import DuckDBWarehouse, PostgresWarehouse

TZ = "America/Chicago"
# 26 days of a 3-machine plant with telemetry: three weeks of history for the forecast before day 24.
PLANT = PlantConfig(seed=8, n_machines=3, days=26, telemetry=True)
DAY = PLANT.start + dt.timedelta(days=24)
SETTINGS = {"root_cause": {"history_days": 14, "min_accuracy": 0.65, "suspect_threshold": 0.8,
                           "model_alias": "champion", "registry": ""},
            "anomalies": {"train_days": 7, "history_days": 14},
            "yield_forecast": {"history_days": 24, "horizon": 7, "target_yield": 0.95}}
NOW = dt.datetime(2026, 11, 13, 10, 30, tzinfo=dt.UTC)


def bounds() -> tuple[dt.datetime, dt.datetime]:
    """The production day as a notebook's scope has it (plant-time datetimes: "14 days before" is
    wall-clock arithmetic across a DST change, as in the notebooks and the morning run)."""
    start = dt.datetime.combine(DAY, dt.time(6), tzinfo=ZoneInfo(TZ))
    return start, dt.datetime.combine(DAY + dt.timedelta(days=1), dt.time(6), tzinfo=ZoneInfo(TZ))


@pytest.fixture(scope="module")
def plant():
    return simulate_plant(PLANT)


@pytest.fixture(scope="module")
def duck(plant, tmp_path_factory):
    from workbench.demo import load_plant

    path = tmp_path_factory.mktemp("stored") / "warehouse.duckdb"
    with DuckDBWarehouse(path) as wh:
        load_plant(plant, wh, truth_dir=path.parent / "truth")
    wh = DuckDBWarehouse(path, read_only=True)
    yield wh
    wh.close()


@pytest.fixture(scope="module")
def computed(duck) -> daily.DaySections:
    """What the morning run stores for DAY (no model registry: the root-cause section is not)."""
    return daily.day_sections(duck, DAY, tz=TZ, settings=SETTINGS, registry_uri="sqlite:////nonexistent/m.db",
                              created_at=NOW)


def _lists(frame: pd.DataFrame) -> pd.DataFrame:
    """Tuples as lists (JSON has no tuples): the scrap hypotheses."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object:
            out[col] = [[list(v) if isinstance(v, tuple) else v for v in x] if isinstance(x, list) else x
                        for x in out[col]]
    return out


def assert_same_section(read_back: MLSection, fresh: MLSection) -> None:
    assert (read_back.title, read_back.status, read_back.reason, read_back.confidence) == \
        (fresh.title, fresh.status, fresh.reason, fresh.confidence)
    assert read_back.notes[:-1] == fresh.notes and "computed by the model run" in read_back.notes[-1]
    pd.testing.assert_frame_equal(read_back.table, fresh.table)
    assert set(read_back.details) == set(fresh.details)
    for key, frame in fresh.details.items():
        pd.testing.assert_frame_equal(read_back.details[key], _lists(frame))


def test_the_morning_run_stores_each_section_and_the_days_anomalies(computed) -> None:
    assert computed.done["anomalies"] == "stored (ok)" and computed.done["yield_forecast"] == "stored (ok)"
    assert "no model registry" in computed.done["root_cause"]
    # the settings the other days' anomalies are detected with (those of the report's notebook)
    assert computed.anomaly_settings == {"train_days": 7, "history_days": 14}
    assert sorted(computed.rows["section"]) == [sections.ANOMALIES_RECORD, sections.WEEK_AHEAD_RECORD]
    start, end = bounds()
    assert (pd.to_datetime(computed.rows["day_start"], utc=True) == start).all()
    assert (pd.to_datetime(computed.rows["day_end"], utc=True) == end).all()
    # the day's anomalies for ml_anomalies are those of the stored section
    section = MLSection.from_payload(json.loads(
        computed.rows.loc[computed.rows["section"] == sections.ANOMALIES_RECORD, "payload"].iloc[0]))
    assert len(computed.anomalies) == len(section.table) > 0


def test_a_section_read_back_is_the_section_the_notebook_computes(duck, computed) -> None:
    start, end = bounds()
    a = SETTINGS["anomalies"]
    tables = daily.read_many(duck, daily.anomaly_reads(start, end, train_days=a["train_days"],
                                                       history_days=a["history_days"]))
    fresh = sections.anomalies_needing_a_look(tables, day_start=start, day_end=end, train_days=7, tz=TZ)
    kept = sections.anomalies_needing_a_look(tables, day_start=start, day_end=end, train_days=7, tz=TZ,
                                             stored=computed.rows)
    assert fresh.shown and len(fresh.table) and len(fresh.details["scrap"])
    assert_same_section(kept, fresh)
    # the scrap hypotheses still unpack as (cause, evidence, text)
    assert len(sections.scrap_hypotheses(kept)) == len(sections.scrap_hypotheses(fresh)) > 0

    from workbench.ml.forecast import YieldForecaster

    f = SETTINGS["yield_forecast"]
    tables = daily.read_many(duck, daily.forecast_reads(start, end, history_days=f["history_days"],
                                                        horizon=f["horizon"]))
    args = {"origin_day": DAY, "tz": TZ, "day_end": end, "target_yield": f["target_yield"]}
    fresh = sections.week_ahead(tables, forecaster=YieldForecaster(horizon=7, random_state=0), **args)
    kept = sections.week_ahead(tables, forecaster=YieldForecaster(horizon=7, random_state=0), **args,
                               day_start=start, stored=computed.rows)
    assert_same_section(kept, fresh)
    assert isinstance(kept.details["history"]["day"].iloc[0], dt.date)


def test_only_the_same_day_settings_and_rows_are_read_back(duck, computed) -> None:
    start, end = bounds()
    tables = daily.read_many(duck, daily.anomaly_reads(start, end, train_days=7, history_days=14))
    params = sections.anomaly_params(train_days=7, tz=TZ)

    def found(tables=tables, params=params, day_start=start, day_end=end) -> bool:
        return stored.stored_section(computed.rows, sections.ANOMALIES_RECORD, day_start=day_start,
                                     day_end=day_end, params=params, tables=tables) is not None

    assert found()
    assert not found(params=sections.anomaly_params(train_days=6, tz=TZ))
    assert not found(day_start=start - dt.timedelta(days=1), day_end=start)
    # a stop coded after the morning run
    stops = tables["downtime_events"].copy()
    blank = stops.index[stops["reason_code"].isna()][0]
    stops.loc[blank, "reason_code"] = "MECH-01"
    assert not found(tables={**tables, "downtime_events": stops})
    # one telemetry reading changed, one missing, one more (a late batch)
    tel = tables["machine_telemetry"]
    changed = tel.copy()
    changed.loc[changed.index[-1], "value"] += 0.001
    assert not found(tables={**tables, "machine_telemetry": changed})
    assert not found(tables={**tables, "machine_telemetry": tel.iloc[:-1]})
    assert not found(tables={**tables, "machine_telemetry": pd.concat([tel, tel.iloc[[0]]])})
    # …but the same rows in another order are the same data
    assert found(tables={**tables, "machine_telemetry": tel.sample(frac=1.0, random_state=1)})
    # nothing stored, or another section's rows
    assert stored.stored_section(None, sections.ANOMALIES_RECORD, day_start=start, day_end=end,
                                 params=params, tables=tables) is None
    assert stored.stored_section(computed.rows, sections.UNCODED_RECORD, day_start=start, day_end=end,
                                 params=params, tables=tables) is None


class _NotLoaded(DeferredModel):
    """A deferred champion that must not be loaded (its section is read back)."""

    @property
    def model(self):  # type: ignore[override]
        raise AssertionError("the model was loaded although its section was stored")


def test_the_uncoded_stops_are_read_back_without_loading_the_model(plant, duck) -> None:
    start, end = bounds()
    run = sections.train_rootcause(plant.tables, train_start=start - dt.timedelta(days=24),
                                   train_end=start - dt.timedelta(days=7), holdout_end=start,
                                   params={"n_estimators": 30}, cv=2, random_state=8)
    card = ModelVersion(name="rootcause", version=4, aliases=("champion",), run_id="",
                        created_at=NOW, training_start=run.train_range[0], training_end=run.train_range[1],
                        features=tuple(run.X_train.columns), metrics={**run.metrics, "holdout_accuracy": 0.8},
                        sha256="", description=run.description)
    tables = daily.read_many(duck, daily.root_cause_reads(start, end, history_days=14))
    fresh = sections.uncoded_stops(tables, model=run.model, card=card, day_start=start, day_end=end)
    assert fresh.shown and len(fresh.table) and len(fresh.details["contributions"])
    params = sections.uncoded_params(card, min_accuracy=0.65, suspect_threshold=0.8, top=3)
    rows = pd.DataFrame([stored.section_row(sections.UNCODED_RECORD, fresh, day_start=start, day_end=end,
                                            params=params, inputs=stored.fingerprint(tables),
                                            created_at=NOW)])
    deferred = _NotLoaded(registry=None, card=card)  # type: ignore[arg-type]
    kept = sections.uncoded_stops(tables, model=deferred, day_start=start, day_end=end, stored=rows, tz=TZ)
    assert_same_section(kept, fresh)
    assert "Fri 13 Nov 04:30" in kept.notes[-1]  # when the run computed it, in plant time
    # another model version is another section: computed (here: it needs the model)
    other = replace(card, version=5)
    with pytest.raises(AssertionError, match="was loaded"):
        sections.uncoded_stops(tables, model=_NotLoaded(registry=None, card=other),  # type: ignore[arg-type]
                               day_start=start, day_end=end, stored=rows)


def test_the_fingerprint_is_the_same_from_postgresql_and_from_the_duckdb_extract(pg_schema_url, tmp_path) -> None:
    from workbench.demo import load_plant

    config = PlantConfig(seed=3, n_machines=2, n_lines=1, days=9, telemetry=True)
    small = simulate_plant(config)
    day = config.start + dt.timedelta(days=8)
    start = dt.datetime.combine(day, dt.time(6), tzinfo=ZoneInfo(TZ))
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(6), tzinfo=ZoneInfo(TZ))
    reads = {**daily.root_cause_reads(start, end, history_days=14),
             **daily.anomaly_reads(start, end, train_days=7, history_days=14),
             **daily.forecast_reads(start, end, history_days=56, horizon=7)}
    with PostgresWarehouse(pg_schema_url, timescale="off") as pg:
        load_plant(small, pg, truth_dir=tmp_path / "truth")
        pg_tables = daily.read_many(pg, reads)
        pg.export_extract(tmp_path / "extract.duckdb", tables=list(reads))
    with DuckDBWarehouse(tmp_path / "extract.duckdb", read_only=True) as extract:
        duck_tables = daily.read_many(extract, reads)
    assert all(len(pg_tables[t]) == len(duck_tables[t]) for t in reads)
    assert len(pg_tables["machine_telemetry"]) > 10_000 and len(pg_tables["downtime_events"]) > 10
    for name in reads:
        assert stored.fingerprint({name: pg_tables[name]}) == stored.fingerprint({name: duck_tables[name]}), name
    assert stored.fingerprint(pg_tables) == stored.fingerprint(duck_tables)


def test_the_fingerprint_ignores_storage_widths_and_order_but_not_values() -> None:
    t = pd.to_datetime(["2026-11-02T06:00:00Z", "2026-11-02T06:01:00Z", "2026-11-02T06:02:00Z"], utc=True)
    a = pd.DataFrame({"time": t.astype("datetime64[us, UTC]"), "machine_id": ["M01", "M02", None],
                      "count": np.array([1, 2, 3], dtype="int64"), "ok": [True, False, True],
                      "value": [0.5, np.nan, 2.0]})
    b = a.assign(time=t.astype("datetime64[ns, UTC]"), count=a["count"].astype("int32"))
    assert stored.fingerprint({"x": a}) == stored.fingerprint({"x": b}) == stored.fingerprint({"x": a.iloc[::-1]})
    assert stored.fingerprint({"x": a}) != stored.fingerprint({"y": a})
    assert stored.fingerprint({"x": a}) != stored.fingerprint({"x": a.assign(value=[0.5, np.nan, 2.5])})
    assert stored.fingerprint({"x": a}) != stored.fingerprint({"x": a.assign(machine_id=["M01", "M02", "M03"])})
    assert stored.fingerprint({"x": a}) != stored.fingerprint({"x": a.iloc[:0]}) != stored.fingerprint({"x": None})


def test_tables_read_as_arrow_hash_as_their_dataframes_and_stay_arrow_until_used(duck) -> None:
    start, end = bounds()
    tables = daily.read_many(duck, daily.anomaly_reads(start, end, train_days=7, history_days=14))
    assert isinstance(tables, daily.Tables) and tables.rows("machine_telemetry") > 10_000
    whole = stored.fingerprint(tables)
    assert tables._frames == {}  # hashed as read: no table became a DataFrame
    frames = {name: tables[name] for name in tables}
    assert stored.fingerprint(frames) == whole
    for name in tables:
        assert stored.fingerprint({name: tables.arrow(name)}) == stored.fingerprint({name: frames[name]}), name
    # one channel, filtered before conversion, is what filtering the DataFrame gives
    tel = frames["machine_telemetry"]
    machine, metric = tel["machine_id"].iloc[0], tel["metric"].iloc[0]
    fresh = daily.read_many(duck, daily.anomaly_reads(start, end, train_days=7, history_days=14))
    one = fresh.where("machine_telemetry", machine_id=machine, metric=metric)
    assert fresh._frames == {} and 0 < len(one) < len(tel)
    expected = tel[(tel["machine_id"] == machine) & (tel["metric"] == metric)].reset_index(drop=True)
    pd.testing.assert_frame_equal(one, expected)
    pd.testing.assert_frame_equal(tables.where("machine_telemetry", machine_id=machine, metric=metric), expected)


def test_the_fingerprint_takes_nan_and_null_alike_as_pandas_does() -> None:
    import pyarrow as pa

    with_nan = pa.table({"value": pa.array([0.5, float("nan")], pa.float64())})
    with_null = pa.table({"value": pa.array([0.5, None], pa.float64())})
    as_frame = with_nan.to_pandas()
    assert stored.fingerprint({"x": with_nan}) == stored.fingerprint({"x": with_null}) \
        == stored.fingerprint({"x": as_frame})
    assert stored.fingerprint({"x": with_nan}) != stored.fingerprint({"x": pa.table({"value": [0.5, 0.0]})})


def test_a_frame_survives_its_encoding_with_its_column_types() -> None:
    frame = pd.DataFrame({
        "time": pd.to_datetime(["2026-11-02T06:00:00Z", None], utc=True).astype("datetime64[us, UTC]"),
        "day": [dt.date(2026, 11, 2), dt.date(2026, 11, 3)], "n": np.array([1, 2], dtype="int64"),
        "x": [0.25, np.nan], "flag": [True, False], "name": pd.Series(["a", None], dtype="str"),
        "mixed": ["setup", 3.5], "pairs": [[("a", 0.5, "why")], []]})
    back = decode_frame(json.loads(json.dumps(encode_frame(frame))))
    pd.testing.assert_frame_equal(back, _lists(frame))
    empty = decode_frame(encode_frame(frame.iloc[:0]))
    assert list(empty.columns) == list(frame.columns) and empty.empty


def test_an_unreadable_stored_section_is_a_clear_error() -> None:
    with pytest.raises(MLError, match="stored ML section is not readable"):
        MLSection.from_payload({"title": "x", "status": "ok", "table": {"columns": ["a"]}})
