"""``workbench models list | promote | rollback`` — a data scientist overrules the retrain flow.

The I/O edge of :mod:`workbench.ml.registry`: errors are one message on stderr and exit code 2.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from workbench.cliutil import console, friendly, printed_plainly

if TYPE_CHECKING:
    from workbench.ml.registry import Registry

app = typer.Typer(help="Registered models: list them, promote a version to champion, roll back.",
                  no_args_is_help=True, add_completion=False)


def _registry() -> Registry:
    # Imported here: MLflow takes seconds to import and `workbench --help` should not wait for it.
    from workbench.ml.registry import Registry

    return Registry()


@app.command("list")
@friendly
def list_command(
    name: Annotated[str | None, typer.Argument(help="Only this model (default: every model).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the registered versions with their aliases, training range and metrics."""
    registry = _registry()
    cards = registry.versions(name)
    rows = [c.as_row() for c in cards]
    if printed_plainly(rows, as_json=as_json, empty=f"No registered models in {registry.uri}."):
        return
    metric_cols = sorted({k for r in rows for k in r if k.startswith("metric.")})
    table = Table(title=f"Models in {registry.uri}", title_justify="left")
    for col in ("name", "version", "aliases", "training_start", "training_end", *metric_cols):
        table.add_column(col.removeprefix("metric."), justify="right" if col in metric_cols else "left")
    for r in rows:
        table.add_row(str(r["name"]), str(r["version"]), r["aliases"] or "-",
                      (r["training_start"] or "-")[:10], (r["training_end"] or "-")[:10],
                      *(f"{r[c]:.3f}" if isinstance(r.get(c), float) else "-" for c in metric_cols))
    console.print(table)


@app.command("promote")
@friendly
def promote_command(
    name: Annotated[str, typer.Argument(help="Model name, e.g. rootcause.")],
    version: Annotated[int, typer.Argument(help="Version to make champion.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded with the decision).")],
) -> None:
    """Make a version the champion by hand (recorded as a manual decision)."""
    decision = _registry().promote(name, version, reason=reason, action="manual", actor="cli")
    before = f"v{decision.champion_before}" if decision.champion_before is not None else "none"
    console.print(f"{name}: champion is now v{decision.champion_after} (was {before}).")


@app.command("rollback")
@friendly
def rollback_command(
    name: Annotated[str, typer.Argument(help="Model name, e.g. rootcause.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded with the decision).")],
) -> None:
    """Give the champion alias back to the previous champion."""
    decision = _registry().rollback(name, reason=reason, actor="cli")
    console.print(f"{name}: champion is back to v{decision.champion_after} "
                  f"(was v{decision.champion_before}).")
