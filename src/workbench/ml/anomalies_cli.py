"""``workbench anomalies FILE.csv --time COL --value COL [--json]`` — Telemanom on any time series.

The I/O edge of :func:`workbench.ml.telemanom.detect_anomalies`: it reads the CSV, runs the
detector (the first ``--train-fraction`` of the series trains the predictor, the rest is judged)
and prints the anomalies as a table or, with ``--json``, exactly
``{"anomalies": [{"start": ISO-8601, "end": ISO-8601, "score": number}, …]}`` on stdout. What was
done to the input (sorted, blanks dropped, gaps, times read as UTC) goes to stderr as notes, so
stdout stays that shape. Errors are one message on stderr and exit code 2.
"""

from __future__ import annotations

import json as jsonlib
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.table import Table

from workbench.cliutil import console, err_console, friendly, read_csv
from workbench.errors import MLError
from workbench.ml.telemanom import AnomalyResult, TelemanomDetector, detect_anomalies


def _as_json(result: AnomalyResult) -> str:
    rows = [{"start": pd.Timestamp(r.start).isoformat(), "end": pd.Timestamp(r.end).isoformat(),
             "score": round(float(r.score), 6)} for r in result.anomalies.itertuples(index=False)]
    return jsonlib.dumps({"anomalies": rows}, indent=2)


def _table(result: AnomalyResult, value: str) -> Table:
    table = Table(title=f"{len(result.anomalies)} anomal{'y' if len(result.anomalies) == 1 else 'ies'} in "
                        f"'{value}' ({result.n_judged} readings judged)", title_justify="left")
    for col, justify in (("start", "left"), ("end", "left"), ("score", "right"), ("readings", "right")):
        table.add_column(col, justify=justify)
    for r in result.anomalies.itertuples(index=False):
        table.add_row(pd.Timestamp(r.start).isoformat(), pd.Timestamp(r.end).isoformat(), f"{r.score:.3f}",
                      str(r.readings))
    return table


@friendly
def anomalies_command(
    file: Annotated[Path, typer.Argument(help="CSV file, one row per reading.", exists=True, dir_okay=False)],
    time: Annotated[str, typer.Option("--time", help="Time column (ISO-8601; no zone = UTC).")],
    value: Annotated[str, typer.Option("--value", help="Value column (numbers).")],
    json: Annotated[bool, typer.Option("--json", help="Print {\"anomalies\": [...]} as JSON.")] = False,
    sep: Annotated[str, typer.Option("--sep", help="Field separator: ',' ';' tab or space.")] = ",",
    train_fraction: Annotated[float, typer.Option(
        "--train-fraction", help="Share of the series (its start) that trains the predictor; not judged.",
        min=0.05, max=0.9)] = 0.25,
    l_s: Annotated[int, typer.Option("--l-s", help="Readings the predictor looks back.", min=2)] = 30,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", help="Readings judged together (the decision latency).", min=1)] = 30,
    window_size: Annotated[int, typer.Option(
        "--window-size", help="Batches in the window the threshold is chosen from.", min=1)] = 48,
    p: Annotated[float, typer.Option(
        "--p", help="Pruning: minimum relative drop between anomalies' maximum errors.",
        min=0.0, max=0.99)] = 0.13,
) -> None:
    """Telemetry anomalies (NASA Telemanom: predictor + nonparametric dynamic threshold) in one series."""
    df = read_csv(file, sep)
    detector = TelemanomDetector(l_s=l_s, batch_size=batch_size, window_size=window_size, p=p)
    try:
        result = detect_anomalies(df, time=time, value=value, train_fraction=train_fraction,
                                  detector=detector)
    except MLError as exc:
        raise MLError(f"{file}: {exc}") from None
    for note in result.notes:
        err_console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    if json:
        typer.echo(_as_json(result))
        return
    console.print(_table(result, value))
