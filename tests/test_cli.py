"""The command line, driven as a user would (exit codes and what it prints)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from workbench.cli import app
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
    assert "Schema version 1 ready in duckdb" in result.output
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
    assert "version 1" in result.output
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
