"""``workbench spc`` driven as a user would: CSV in, table or JSON out, exit codes.

The numbers are the qcc vignette values checked in test_control_charts.py / test_capability.py.
"""

from __future__ import annotations

import json
import re
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
    result = runner.invoke(app, ["limits", str(rings_csv), "--chart", "shewhart", "--value", "diameter"])
    assert result.exit_code == 2 and "shewhart" in result.output


def test_limits_ewma_and_cusum_with_their_design(rings_csv: Path) -> None:
    # qcc 3.0 vignette, pistonrings trial samples: center 74.00118, σ̂ (R̄/d2) 0.009785 — the
    # values test_timeweighted.py checks; here the CLI must pass the design through.
    result = invoke("limits", rings_csv, "--chart", "ewma", "--value", "diameter", "--subgroup", "sample",
                    "--lam", "0.2", "--ewma-l", "2.7", "--json")
    assert result.exit_code == 0, result.output
    (ewma,) = json.loads(result.output)["charts"]
    assert ewma["chart"] == "EWMA" and ewma["nsigmas"] == 2.7
    assert ewma["center"] == pytest.approx(74.00118, abs=5e-6)
    assert ewma["sigma"] == pytest.approx(0.009785, abs=5e-6)
    # first EWMA limit: x̿ ± L σ̂/√n √(λ/(2−λ) (1 − (1−λ)²)) = 74.00118 ± 2.7 × 0.004376 × 0.2 = ± 0.002363
    assert ewma["lcl"][0] == pytest.approx(74.00118 - 2.7 * 0.009785 / 5**0.5 * 0.2, abs=5e-6)
    result = invoke("limits", rings_csv, "--chart", "cusum", "--value", "diameter", "--subgroup", "sample",
                    "--k", "0.5", "--h", "4")
    assert result.exit_code == 0, result.output
    assert "C⁺ chart" in result.output and "C⁻ chart" in result.output
    assert re.search(r"UCL\s*│\s+4\s", result.output) and re.search(r"LCL\s*│\s+-4\s", result.output)
    assert "No rule violations." in result.output
    wrong = runner.invoke(app, ["limits", str(rings_csv), "--chart", "xbar-r", "--value", "diameter",
                                "--subgroup", "sample", "--h", "4"])
    assert wrong.exit_code != 0 and "ewma and cusum" in wrong.output


def test_capability_method_auto_says_what_it_rests_on(tmp_path: Path) -> None:
    import numpy as np

    # 400 lognormal(0, 0.5) values: the Anderson-Darling test rejects normality, auto fits a
    # distribution and says which and why; the normal method warns.
    path = tmp_path / "flat.csv"
    pd.DataFrame({"v": np.random.default_rng(5).lognormal(0.0, 0.5, 400)}).to_csv(path, index=False)
    normal = invoke("capability", path, "--value", "v", "--usl", "4")
    assert normal.exit_code == 0, normal.output
    assert "Method: normal" in normal.output and "data are not normal" in normal.output
    auto = invoke("capability", path, "--value", "v", "--usl", "4", "--method", "auto", "--json")
    data = json.loads(auto.output)
    assert data["method"] in ("lognormal", "box_cox", "johnson", "weibull") and data["method_reason"]
    assert data["normality"]["normal"] is False
    # a fitted distribution has no within sigma: no Cpk (Box-Cox keeps it, on its own scale)
    assert (data["cpk"] is None) == (data["method"] != "box_cox")
