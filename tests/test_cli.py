"""The command line, driven as a user would (exit codes and what it prints)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from workbench import schema
from workbench.cli import app
from workbench.simulate import PlantConfig, SimulatedPlant, simulate_plant
from workbench.store import DuckDBWarehouse

runner = CliRunner()


@pytest.fixture(autouse=True)
def home(tmp_path: Path, use_home) -> Path:
    use_home(tmp_path)
    return tmp_path


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_help_lists_the_commands() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("demo", "simulate", "import", "lab", "doctor", "db"):
        assert command in result.output


def test_db_init_creates_the_embedded_warehouse(home: Path) -> None:
    result = invoke("db", "init")
    assert result.exit_code == 0, result.output
    assert f"Schema version {schema.SCHEMA_VERSION} ready in duckdb" in result.output
    assert (home / "data" / "warehouse.duckdb").exists()
    counts = invoke("db", "counts")
    assert counts.exit_code == 0 and "machine_telemetry" in counts.output


def test_doctor_says_what_is_missing(home: Path) -> None:
    result = invoke("doctor")
    assert result.exit_code == 1
    assert "does not exist yet" in result.output and "make demo" in result.output
    invoke("db", "init")
    result = invoke("doctor")
    assert "package duckdb" in result.output
    assert f"version {schema.SCHEMA_VERSION}" in result.output
    assert "report kernels" in result.output and "forked from a zygote" in result.output
    assert result.exit_code == 0, result.output


def test_import_reports_every_problem_and_writes_nothing(home: Path) -> None:
    invoke("db", "init")
    bad = home / "production_oct.csv"
    bad.write_text(
        "time,machine_id,part_number,good_count,total_count\n"
        "2026-10-01T06:00:00+00:00,M1,P-1,10,12\n"
        "2026-10-01T06:01:00+00:00,M1,P-1,-3,12\n"
        "2026-10-01 06:02:00,M1,P-1,15,12\n"
    )
    result = invoke("import", str(bad))
    assert result.exit_code == 2
    out = " ".join(result.output.split())
    assert "production_oct.csv" in out
    assert "row 3" in out and "good_count" in out
    assert "row 4" in out and "time" in out
    with DuckDBWarehouse(home / "data" / "warehouse.duckdb", read_only=True) as wh:
        assert wh.count("production_events") == 0


def test_import_good_file_twice(home: Path) -> None:
    good = home / "scrap_oct.csv"
    good.write_text(
        "time,machine_id,part_number,quantity,scrap_reason\n"
        "2026-10-01T06:00:00+00:00,M1,P-1,2,burr\n"
        "2026-10-01T07:00:00+00:00,M2,P-1,1,dimension\n"
    )
    first = invoke("import", str(good))
    assert first.exit_code == 0, first.output
    assert "2 written" in first.output
    again = invoke("import", str(good))
    assert "0 written, 2 already there" in again.output


# -- oee: a range without data says so --------------------------------------------------------------

#: Three days (Mon 2 – Wed 4 Nov 2026) of three machines, America/Chicago.
THREE_DAYS = PlantConfig(seed=5, n_machines=3, n_lines=1, days=3, start=dt.date(2026, 11, 2), telemetry=False)
SILENT_DAY = dt.date(2026, 11, 3)


@pytest.fixture(scope="module")
def three_days() -> SimulatedPlant:
    return simulate_plant(THREE_DAYS)


@pytest.fixture
def plant_home(home: Path, three_days: SimulatedPlant) -> Path:
    """The plant in the home's warehouse, with nothing from the machines on Tue 3 Nov (its
    collectors silent): no production events and no machine states that day."""
    from workbench import jobs
    from workbench.demo import load_plant

    with DuckDBWarehouse(home / "data" / "warehouse.duckdb") as wh:
        load_plant(three_days, wh, truth_dir=home / "data" / "ground_truth")
        start, end = jobs.production_day_range(wh, first=SILENT_DAY, last=SILENT_DAY + dt.timedelta(days=1),
                                               tz=THREE_DAYS.timezone)
        events = wh.read("production_events", start=start, end=end + dt.timedelta(seconds=1))
        states = wh.read("machine_states", start=start, end=end, overlap=True)
        wh.delete_keys("production_events", "event_id", events["event_id"].tolist())
        wh.delete_keys("machine_states", "event_id", states["event_id"].tolist())
    return home


def _one_line(output: str) -> str:
    return " ".join(output.split())


def test_oee_of_a_range_without_data_or_calendar_says_so(plant_home: Path) -> None:
    where = plant_home / "data" / "warehouse.duckdb"
    result = invoke("oee", "--start", "2030-01-01")
    assert result.exit_code == 1, result.output
    assert _one_line(result.output) == (
        "No production data between Tue 01 Jan 2030 06:00 and Wed 02 Jan 2030 06:00 (America/Chicago) "
        f"in {where} (no production events or machine states, and no shift calendar either)")
    as_json = invoke("oee", "--start", "2030-01-01", "--end", "2030-01-03", "--json")
    assert as_json.exit_code == 1
    found = json.loads(as_json.stdout)
    assert found["rows"] == [] and found["no_data"] is True and found["shifts"] == 0
    assert found["message"].startswith("No production data between Tue 01 Jan 2030 06:00 and Thu 03 Jan 2030")


def test_oee_of_a_day_with_a_calendar_but_no_data_counts_its_planned_minutes(plant_home: Path,
                                                                             three_days: SimulatedPlant) -> None:
    truth = three_days.truth.oee
    planned = truth.loc[truth["shift_date"] == SILENT_DAY, "planned_busy_min"].sum()
    assert planned > 0
    result = invoke("oee", "--start", "2026-11-03")
    assert result.exit_code == 1, result.output
    assert _one_line(result.output) == (
        "No production data between Tue 03 Nov 2026 06:00 and Wed 04 Nov 2026 06:00 (America/Chicago) "
        f"in {plant_home / 'data' / 'warehouse.duckdb'} ({planned:,.0f} planned minutes without data)")
    as_json = invoke("oee", "--start", "2026-11-03", "--json", "--by", "machine_id")
    assert as_json.exit_code == 1
    found = json.loads(as_json.stdout)
    assert found["no_data"] is True and found["rows"] == [] and found["shifts"] == 3
    assert found["planned_min_without_data"] == pytest.approx(planned, abs=1e-6)
    assert f"({planned:,.0f} planned minutes without data)" in found["message"]


def test_oee_of_days_with_data_is_unchanged(plant_home: Path, three_days: SimulatedPlant) -> None:
    # a range that includes the silent day but also days with data: the table, as always
    result = invoke("oee", "--start", "2026-11-02", "--end", "2026-11-05", "--by", "machine_id,day", "--json")
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert isinstance(records, list)
    truth = three_days.truth.oee.set_index(["machine_id", "shift_date"])
    days = {dt.date.fromisoformat(str(r["day"])[:10]) for r in records}
    assert {dt.date(2026, 11, 2), dt.date(2026, 11, 4)} <= days
    for rec in records:
        day = dt.date.fromisoformat(str(rec["day"])[:10])
        if day != SILENT_DAY:
            assert rec["oee"] == pytest.approx(truth.loc[(rec["machine_id"], day), "oee"], abs=1e-9)
    table = invoke("oee", "--start", "2026-11-04")
    assert table.exit_code == 0 and "No production data" not in table.output and "M01" in table.output
