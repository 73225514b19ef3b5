"""The one exception hierarchy of the workbench.

Every error the library raises on purpose derives from :class:`WorkbenchError`, so callers
(CLI, flows, notebooks) can catch one type and show its message, which always says what is
wrong and where.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base class of every error raised on purpose by the workbench."""


class ConfigError(WorkbenchError):
    """A setting is missing, malformed or inconsistent."""


class SchemaError(WorkbenchError):
    """A frame does not fit a canonical table (unknown table, missing or mistyped column)."""


class StoreError(WorkbenchError):
    """The warehouse could not be reached or refused an operation."""


class WarehouseBusyError(StoreError):
    """Another process held the embedded DuckDB warehouse for longer than the lock timeout.

    The message leads with who holds the file (a notebook kernel, a ``workbench`` command, a
    Prefect flow run, another process), how long this process waited and what to do.

    Parameters
    ----------
    message : str
        The whole explanation.
    holder : str
        Kind of holder: ``"notebook"``, ``"workbench"``, ``"flow"``, ``"process"`` or ``"unknown"``.
    pid : int, optional
        Process id of the holder, when DuckDB named it.
    waited_s : float
        Seconds spent waiting before giving up.
    """

    def __init__(self, message: str, *, holder: str = "unknown", pid: int | None = None,
                 waited_s: float = 0.0) -> None:
        super().__init__(message)
        self.holder = holder
        self.pid = pid
        self.waited_s = waited_s


class ValidationError(WorkbenchError):
    """Input data is invalid; ``problems`` lists each problem with its location.

    Parameters
    ----------
    message : str
        Summary line.
    problems : list of Problem, optional
        One entry per offending cell or row.
    """

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        self.problems = list(problems or [])
        lines = [message]
        shown = self.problems[:20]
        lines += [f"  - {p}" for p in shown]
        if len(self.problems) > len(shown):
            lines.append(f"  … and {len(self.problems) - len(shown)} more problem(s)")
        super().__init__("\n".join(lines))


class SimulationError(WorkbenchError):
    """The simulator was asked for something it cannot produce."""


class SamplingError(WorkbenchError):
    """A sampling plan was asked for outside the standard's tables, or a decision is impossible."""


class ReliabilityError(WorkbenchError):
    """Reliability input is unusable (bad durations, overlapping stops, too few failures)."""


class SPCError(WorkbenchError):
    """An SPC chart, rule set, capability study or limit set cannot be built from what was given."""


class OEEError(WorkbenchError):
    """OEE inputs are inconsistent (overlapping states, missing ideal rates, unknown grain)."""


class LossesError(WorkbenchError):
    """Loss analysis inputs are inconsistent (negative durations, unknown grouping, missing data)."""


class InputFileError(WorkbenchError):
    """A file given on the command line cannot be read as what it should be (e.g. a CSV table)."""


class MLError(WorkbenchError):
    """A model cannot be trained, evaluated, loaded or applied on what was given (too few rows,
    a column that is not numeric, an unknown model alias, an untrusted artifact)."""


class Problem:
    """One located problem in input data: file, row (1-based, as a spreadsheet shows it), column."""

    __slots__ = ("column", "file", "message", "row")

    def __init__(self, message: str, *, file: str | None = None, row: int | None = None,
                 column: str | None = None) -> None:
        self.file = file
        self.row = row
        self.column = column
        self.message = message

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(str(self.file))
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column:
            where.append(f"column '{self.column}'")
        return (", ".join(where) + ": " if where else "") + self.message

    def __repr__(self) -> str:
        return f"Problem({self!s})"

    def as_dict(self) -> dict[str, object]:
        """Return the problem as a plain dict (for JSON output and dead letters)."""
        return {"file": self.file, "row": self.row, "column": self.column, "message": self.message}


class ReportError(WorkbenchError):
    """A report cannot be built: unknown notebook parameters, no parameters cell, an unusable
    section list or a page that would need the network to render."""


class MailError(WorkbenchError):
    """An e-mail cannot be composed or delivered (no recipients, SMTP refused or unreachable)."""


class PlotError(WorkbenchError):
    """A figure cannot be drawn from what was given (wrong result shape, missing columns)."""


class SourceError(WorkbenchError):
    """A shop-floor or business source could not be reached or read."""
