"""``workbench rootcause evaluate`` driven as a data scientist would: CSV in, table or JSON out.

Decisions tested here: a column that is mostly numbers with a few text cells is numeric, its text
cells read as missing and named in a note on stderr (not an error); a column that is mostly text is
a category. Bad files and bad columns end with one message on stderr and exit code 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from workbench.ml.rootcause_cli import app

runner = CliRunner()


def invoke(*args: str | Path):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False,
                         env={"COLUMNS": "200", "NO_COLOR": "1"})


def _frame(n: int = 90, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.choice(["wear", "break", "ok"], p=[0.5, 0.3, 0.2], size=n)
    return pd.DataFrame({"load": rng.normal(size=n) + 2.0 * (y == "wear"), "shift": rng.choice(list("ABC"), size=n),
                         "temp": rng.normal(40, 2, size=n) + 4.0 * (y == "break"), "cause": y})


@pytest.fixture
def good_csv(tmp_path: Path) -> Path:
    path = tmp_path / "stops.csv"
    _frame().to_csv(path, index=False)
    return path


def test_json_shape_exactly(good_csv: Path) -> None:
    result = invoke("evaluate", good_csv, "--target", "cause", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert list(data) == ["balanced_accuracy", "macro_f1", "per_class_recall", "baseline"]
    assert set(data["per_class_recall"]) == {"wear", "break", "ok"}
    assert list(data["baseline"]) == ["majority"] and set(data["baseline"]["majority"]) == {
        "balanced_accuracy", "macro_f1"}
    assert all(isinstance(v, float) for v in (data["balanced_accuracy"], data["macro_f1"],
                                              *data["per_class_recall"].values()))
    assert data["balanced_accuracy"] > data["baseline"]["majority"]["balanced_accuracy"] + 0.2
    assert data["baseline"]["majority"]["balanced_accuracy"] == pytest.approx(1 / 3)


def test_table_output_and_separator(tmp_path: Path) -> None:
    path = tmp_path / "stops_semicolon.csv"
    _frame().to_csv(path, index=False, sep=";")
    result = invoke("evaluate", path, "--target", "cause", "--sep", ";", "--cv", "3")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "stratified 3-fold CV" in out and "balanced accuracy" in out and "majority baseline" in out
    assert "recall wear" in out and "recall break" in out and "macro F1" in out
    one_column = invoke("evaluate", path, "--target", "cause")
    assert one_column.exit_code == 2 and "--sep" in one_column.stderr and "Traceback" not in one_column.output


def test_text_in_a_numeric_column_is_read_as_missing_with_a_note(tmp_path: Path) -> None:
    df = _frame().astype({"temp": object})
    df.loc[[4, 17], "temp"] = ["sensor off", "?"]
    path = tmp_path / "typos.csv"
    df.to_csv(path, index=False)
    result = invoke("evaluate", path, "--target", "cause", "--json")
    assert result.exit_code == 0, result.output
    assert "column 'temp' is numeric but 2 value(s) are text (index 4, 17" in result.stderr
    assert json.loads(result.stdout)["balanced_accuracy"] > 0.5


@pytest.mark.parametrize(("content", "args", "message"), [
    (None, ("--target", "cause"), "does not exist"),
    ("", ("--target", "cause"), "cannot read"),
    ("frame", ("--target", "reason"), "target column 'reason' not found; the columns are: load, shift, temp, cause"),
    ("frame", (), "Missing option '--target'"),
    ("nan_target", ("--target", "cause"), "no label in 3 row(s) (index 2, 5, 8)"),
    ("three_rows", ("--target", "cause"), "only 3 row(s)"),
    ("rare", ("--target", "cause"), "class 'rare' of 'cause' has 2 row(s), fewer than the 5 folds: use --cv 2"),
    ("frame", ("--target", "cause", "--cv", "1"), "--cv must be at least 2"),
])
def test_bad_inputs_exit_2_with_one_message(tmp_path: Path, content: str | None, args: tuple[str, ...],
                                            message: str) -> None:
    path = tmp_path / "in.csv"
    df = _frame()
    if content == "":
        path.write_text("")
    elif content == "frame":
        df.to_csv(path, index=False)
    elif content == "nan_target":
        df.loc[[2, 5, 8], "cause"] = np.nan
        df.to_csv(path, index=False)
    elif content == "three_rows":
        df.head(3).to_csv(path, index=False)
    elif content == "rare":
        df.loc[[0, 1], "cause"] = "rare"
        df.to_csv(path, index=False)
    result = invoke("evaluate", path, *args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.stderr.split()), result.stderr
    assert "Traceback" not in result.output and result.stdout == ""
