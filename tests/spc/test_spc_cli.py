"""``workbench spc`` driven as a user would: CSV in, table or JSON out, exit codes.

The numbers are the qcc vignette values checked in test_control_charts.py / test_capability.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from workbench.spc.cli import app

runner = CliRunner()


@pytest.fixture
def rings_csv(tmp_path: Path, pistonrings: pd.DataFrame) -> Path:
    path = tmp_path / "rings.csv"
    pistonrings[pistonrings["trial"]].to_csv(path, index=False)
    return path


@pytest.fixture
def juice_csv(tmp_path: Path, orangejuice: pd.DataFrame) -> Path:
    path = tmp_path / "juice.csv"
    orangejuice[orangejuice["trial"]].to_csv(path, index=False, sep=";")
    return path


def invoke(*args: str | Path):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False,
                         env={"COLUMNS": "200", "NO_COLOR": "1"})


def test_limits_json(rings_csv: Path) -> None:
    result = invoke("limits", rings_csv, "--chart", "xbar-r", "--value", "diameter",
                    "--subgroup", "sample", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    xbar, r = data["charts"]
    assert xbar["chart"] == "X̄" and r["chart"] == "R"
    assert xbar["center"] == pytest.approx(74.00118, abs=5e-6)
    assert xbar["ucl"] == pytest.approx(74.0143, abs=5e-5)
    assert xbar["sigma_method"] == "R̄/d2" and xbar["violations"] == []
    assert r["ucl"] == pytest.approx(0.04812533, abs=1e-6)


def test_limits_table_with_violations(juice_csv: Path) -> None:
    result = invoke("limits", juice_csv, "--chart", "p", "--value", "D", "--size", "size",
                    "--subgroup", "sample", "--rules", "rule1", "--sep", ";")
    assert result.exit_code == 0, result.output
    assert "p chart (phase I, 30 points)" in result.output
    assert "0.410239" in result.output and "binomial" in result.output
    assert "2 rule violation(s)" in result.output and "beyond the control limits" in result.output


def test_limits_exclude_by_id(juice_csv: Path) -> None:
    result = invoke("limits", juice_csv, "--chart", "p", "--value", "D", "--size", "size",
                    "--subgroup", "sample", "--sep", ";", "--exclude", "15", "--exclude", "23",
                    "--json")
    chart = json.loads(result.output)["charts"][0]
    assert chart["center"] == pytest.approx(0.215) and chart["excluded"] == [15, 23]


def test_capability_json_and_table(rings_csv: Path) -> None:
    result = invoke("capability", rings_csv, "--value", "diameter", "--subgroup", "sample",
                    "--lsl", "73.95", "--usl", "74.05", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["cp"] == pytest.approx(1.703, abs=6e-4) and data["within_method"] == "R̄/d2"
    table = invoke("capability", rings_csv, "--value", "diameter", "--subgroup", "sample",
                   "--lsl", "73.95", "--usl", "74.05")
    assert table.exit_code == 0 and "Cpk" in table.output and "Bissell" in table.output


@pytest.mark.parametrize("args", [
    ("limits", "--chart", "xbar-r", "--value", "nope", "--subgroup", "sample"),
    ("capability", "--value", "diameter", "--subgroup", "sample", "--lsl", "74.1", "--usl", "74"),
])
def test_errors_are_one_line_and_exit_2(rings_csv: Path, args: tuple[str, ...]) -> None:
    result = invoke(args[0], rings_csv, *args[1:])
    assert result.exit_code == 2
    assert "error:" in result.output and "Traceback" not in result.output


def test_unknown_chart_is_rejected_by_the_option(rings_csv: Path) -> None:
    result = runner.invoke(app, ["limits", str(rings_csv), "--chart", "cusum", "--value", "diameter"])
    assert result.exit_code == 2 and "cusum" in result.output
