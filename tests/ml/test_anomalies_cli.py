"""``workbench anomalies FILE.csv --time COL --value COL [--json]`` through Typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from workbench.ml.anomalies_cli import anomalies_command

app = typer.Typer()
app.command("anomalies")(anomalies_command)


@app.callback()
def _root() -> None:
    """Test app holding the one command, as the workbench CLI registers it."""


runner = CliRunner()


def _series(n: int = 1200, seed: int = 0, bump: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = pd.date_range("2026-03-02T06:00:00Z", periods=n, freq="1min")
    y = np.sin(np.arange(n) / 10) + 0.1 * rng.standard_normal(n)
    if bump:
        y[900:930] += 1.5
    return pd.DataFrame({"when": t.strftime("%Y-%m-%dT%H:%M:%SZ"), "temp": y})


def _write(tmp_path: Path, df: pd.DataFrame, name: str = "series.csv", sep: str = ",") -> Path:
    path = tmp_path / name
    df.to_csv(path, index=False, sep=sep)
    return path


def _run(*args: str):
    result = runner.invoke(app, ["anomalies", *args])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_json_has_exactly_the_documented_shape(tmp_path):
    path = _write(tmp_path, _series())
    result = _run(str(path), "--time", "when", "--value", "temp", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert list(data) == ["anomalies"]
    assert len(data["anomalies"]) == 1
    item = data["anomalies"][0]
    assert list(item) == ["start", "end", "score"]
    start, end = pd.Timestamp(item["start"]), pd.Timestamp(item["end"])
    assert start.tzinfo is not None and start <= end
    assert pd.Timestamp("2026-03-02T20:55Z") <= start <= pd.Timestamp("2026-03-02T21:05Z")  # reading 900 = 21:00
    assert isinstance(item["score"], float) and item["score"] > 0
    # Notes go to stderr, never into the JSON.
    assert "trained the predictor" in result.stderr


def test_clean_series_gives_an_empty_list(tmp_path):
    path = _write(tmp_path, _series(bump=False))
    result = _run(str(path), "--time", "when", "--value", "temp", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout) == {"anomalies": []}


def test_table_output_and_options(tmp_path):
    path = _write(tmp_path, _series(), sep=";")
    result = _run(str(path), "--time", "when", "--value", "temp", "--sep", ";", "--train-fraction", "0.5",
                  "--l-s", "20", "--batch-size", "20")
    assert result.exit_code == 0, result.output
    assert "1 anomaly in 'temp'" in result.stdout and "2026-03-02T2" in result.stdout


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda df: df.rename(columns={"temp": "t2"}), "column(s) 'temp' not in the table; its columns are: when, t2"),
    (lambda df: df.astype({"temp": object}).assign(temp=lambda d: d["temp"].where(d.index != 6, "hot")),
     "column 'temp' has text where numbers are expected: row 8 'hot'"),
    (lambda df: df.assign(when=lambda d: d["when"].where(d.index != 3, "03/32/2026")),
     "column 'when' has text that is not a time: row 5 '03/32/2026'"),
    (lambda df: df.assign(when=lambda d: d["when"].where(d.index != 11, d["when"][10])),
     "time 2026-03-02T06:10:00+00:00 appears more than once (rows 12, 13)"),
    (lambda df: df.head(50), "only 50 usable reading(s) in 'temp'; at least 361 are needed"),
    (lambda df: df.assign(temp=lambda d: d["temp"].where(d.index < 300)), "900 of 1200 rows have a blank"),
    (lambda df: df.assign(when=np.arange(len(df))), "column 'when' holds numbers, not times"),
])
def test_bad_input_is_one_message_and_exit_code_2(tmp_path, mutate, message):
    path = _write(tmp_path, mutate(_series()))
    result = _run(str(path), "--time", "when", "--value", "temp", "--json")
    assert result.exit_code == 2
    assert result.stdout == ""
    flat = " ".join(result.stderr.split())  # rich wraps long lines
    assert "error:" in flat and str(path.name) in flat
    assert message in flat


def test_unreadable_files_are_one_message(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    result = _run(str(empty), "--time", "when", "--value", "temp")
    assert result.exit_code == 2 and "cannot read" in result.stderr
    semicolons = _write(tmp_path, _series(), name="semi.csv", sep=";")
    result = _run(str(semicolons), "--time", "when", "--value", "temp")
    assert result.exit_code == 2 and "--sep" in " ".join(result.stderr.split())
    result = _run(str(tmp_path / "missing.csv"), "--time", "when", "--value", "temp")
    assert result.exit_code == 2 and "does not exist" in result.output


@pytest.mark.parametrize(("mutate", "note"), [
    (lambda df: df.assign(temp=3.25), "constant series"),
    (lambda df: df.sample(frac=1.0, random_state=1), "times were not in order"),
    (lambda df: df.assign(temp=lambda d: d["temp"].where(~d.index.isin([40, 41]))), "2 row(s) with a blank"),
    (lambda df: df.assign(when=lambda d: d["when"].str.rstrip("Z")), "no time zone: read as UTC"),
    (lambda df: df.drop(index=range(500, 560)), "1 gap(s) longer than 5x the median interval"),
])
def test_treated_input_runs_and_states_the_treatment_on_stderr(tmp_path, mutate, note):
    path = _write(tmp_path, mutate(_series()))
    result = _run(str(path), "--time", "when", "--value", "temp", "--json")
    assert result.exit_code == 0, result.output
    assert list(json.loads(result.stdout)) == ["anomalies"]
    assert note in " ".join(result.stderr.split())
