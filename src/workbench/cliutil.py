"""Shared pieces of the command-line modules (``workbench …`` and its sub-commands)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import typer
from rich.console import Console

from workbench.errors import InputFileError, WorkbenchError

F = TypeVar("F", bound=Callable[..., Any])
console = Console()
err_console = Console(stderr=True)


def printed_plainly(rows: list[dict[str, Any]], *, as_json: bool, empty: str) -> bool:
    """With ``--json``, print ``rows`` as JSON; without rows, print ``empty``. True when either was
    printed (the caller's table is then not wanted)."""
    import json

    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return True
    if not rows:
        console.print(empty)
        return True
    return False


def friendly(func: F) -> F:
    """Show a WorkbenchError as one clear line and exit with code 2 — never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except WorkbenchError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


#: Names a user may give ``--sep`` for separators that are awkward to type.
SEPARATORS = {"\\t": "\t", "tab": "\t", "space": r"\s+", "whitespace": r"\s+"}


def read_csv(path: Path, sep: str = ",") -> pd.DataFrame:
    """A CSV table given on the command line, or an :class:`InputFileError` saying why not.

    A file read as one column whose name holds a ``;``, tab or space was most likely written with
    another separator: that is an error naming the ``--sep`` to pass, not a one-column table.
    """
    sep = SEPARATORS.get(sep, sep)
    try:
        df = pd.read_csv(path, sep=sep, engine="python" if len(sep) > 1 else "c")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise InputFileError(f"cannot read {path} as CSV: {exc}") from None
    if df.shape[1] == 1 and any(c in str(df.columns[0]) for c in (";", "\t", " ")):
        raise InputFileError(f"{path} was read as one column {df.columns[0]!r}: pass the file's separator, "
                             "e.g. --sep ';', --sep tab or --sep space")
    return df
