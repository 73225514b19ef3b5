"""``workbench sampling …`` — ISO 2859-1 / ANSI/ASQ Z1.4 sampling plans from the command line.

Registered by :mod:`workbench.cli` as the ``sampling`` sub-command. Errors of the workbench are
shown as one message with exit code 2, like the rest of the CLI.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from workbench.errors import SamplingError
from workbench.sampling import INSPECTIONS, LEVELS, TABLE_NAMES, single_sampling_plan

app = typer.Typer(help="Acceptance sampling plans (ISO 2859-1 / ANSI/ASQ Z1.4).", no_args_is_help=True,
                  add_completion=False)
_console = Console()
_err = Console(stderr=True)


@app.callback()
def _main() -> None:
    """Acceptance sampling plans (ISO 2859-1 / ANSI/ASQ Z1.4)."""


@app.command("plan")
def plan_command(
    lot: Annotated[int, typer.Option("--lot", help="Lot size (units).", min=2)],
    aql: Annotated[float, typer.Option("--aql", help="Acceptance quality limit (preferred value).")],
    level: Annotated[str, typer.Option("--level", help=f"Inspection level: {', '.join(LEVELS)}.")] = "II",
    inspection: Annotated[str, typer.Option(
        "--inspection", help=f"Inspection type: {', '.join(INSPECTIONS)}.")] = "normal",
    measure: Annotated[str | None, typer.Option(
        "--measure", help="nonconforming (default up to AQL 10) or nonconformities.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
) -> None:
    """Print the single sampling plan for a lot: code letter, sample size, Ac and Re."""
    try:
        plan = single_sampling_plan(lot, aql=aql, level=level, inspection=inspection, measure=measure)
    except SamplingError as exc:
        _err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    if as_json:
        data = asdict(plan) | {"full_inspection": plan.full_inspection, "table": TABLE_NAMES[inspection]}
        typer.echo(json.dumps(data, indent=2))
        return
    table = Table(title=f"Single sampling plan — {inspection} inspection", title_justify="left")
    for col in ("lot size", "AQL", "level", "code letter", "plan letter", "sample size", "Ac", "Re"):
        table.add_column(col, justify="right")
    table.add_row(f"{plan.lot_size:,}", f"{plan.aql:g}", plan.level, plan.code_letter, plan.plan_letter,
                  f"{plan.sample_size:,}", str(plan.accept), str(plan.reject))
    _console.print(table)
    unit = "percent nonconforming" if plan.measure == "nonconforming" else "nonconformities per 100 units"
    notes = [f"table: {TABLE_NAMES[inspection]}; AQL in {unit}"]
    if plan.full_inspection:
        notes.append(f"the table's sample size ({plan.table_sample_size}) reaches the lot size: "
                     "inspect 100 %")
    if plan.reject > plan.accept + 1:
        notes.append(f"{plan.accept} < defects < {plan.reject}: accept the lot but reinstate "
                     "normal inspection")
    for note in notes:
        _console.print(note, highlight=False)
