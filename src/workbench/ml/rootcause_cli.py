"""``workbench rootcause …`` — validate the root-cause pipeline on any labelled CSV table.

The I/O edge of :mod:`workbench.ml.rootcause`: it reads the file, calls
:func:`~workbench.ml.rootcause.evaluate_table` and prints a table (or JSON with ``--json``).
Errors are one message on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from workbench.cliutil import console, err_console, friendly, read_csv
from workbench.ml.rootcause import EvaluationResult, evaluate_table

app = typer.Typer(help="Root-cause classifier: validate the pipeline on a labelled table.",
                  no_args_is_help=True, add_completion=False)


@app.callback()
def _main() -> None:
    """Root-cause classifier: validate the pipeline on a labelled table."""


def _table(result: EvaluationResult, file: Path) -> Table:
    table = Table(title=f"{file.name}: {result.target!r}, {result.n_rows} rows, {len(result.features)} "
                        f"feature(s), stratified {result.cv}-fold CV (sampler inside the folds)",
                  title_justify="left")
    table.add_column("")
    table.add_column("pipeline", justify="right")
    table.add_column("majority baseline", justify="right")
    base = result.baseline["majority"]
    table.add_row("balanced accuracy", f"{result.balanced_accuracy:.3f}", f"{base['balanced_accuracy']:.3f}")
    table.add_row("macro F1", f"{result.macro_f1:.3f}", f"{base['macro_f1']:.3f}")
    for cls, recall in result.per_class_recall.items():
        table.add_row(f"recall {cls}", f"{recall:.3f}", "")
    return table


@app.command("evaluate")
@friendly
def evaluate(
    file: Annotated[Path, typer.Argument(help="CSV file, one labelled row per example.", exists=True,
                                         dir_okay=False)],
    target: Annotated[str, typer.Option(help="Label column; every other column is a feature.")],
    cv: Annotated[int, typer.Option(help="Folds of stratified K-fold cross-validation.")] = 5,
    sep: Annotated[str, typer.Option(help="Field separator: ',' ';' tab or space.")] = ",",
    random_state: Annotated[int, typer.Option(help="Seed of the folds and the model.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Cross-validated balanced accuracy, macro F1 and per-class recall, beside the majority baseline."""
    df = read_csv(file, sep)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # library warnings are not for this audience; treatments are listed
        result = evaluate_table(df, target=target, cv=cv, random_state=random_state)
    for note in result.warnings:
        err_console.print(f"[yellow]note:[/] {note}", highlight=False)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    console.print(_table(result, file))
