"""Run one analysis notebook with papermill: check its parameters first, never raise on a failing cell."""

from __future__ import annotations

import datetime as dt
import math
import re
import traceback as tb
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import nbformat

from workbench.errors import ReportError

#: Papermill writes tracebacks with terminal colours; reports and e-mails want plain text.
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

Status = Literal["ok", "failed"]


@dataclass(frozen=True)
class SectionResult:
    """One executed notebook (a report section).

    Attributes
    ----------
    name : str
        Section name: the notebook's file stem.
    notebook : Path
        The source notebook.
    ipynb_path : Path
        The executed notebook papermill wrote (partially executed when the run failed; it may be
        missing when the kernel never started).
    status : {"ok", "failed"}
    error : str or None
        One line: exception type and message of the failure.
    traceback : str or None
        The full traceback, without terminal colour codes.
    started_at, finished_at : datetime
        UTC, timezone-aware.
    parameters : dict
        The parameters the notebook was run with.
    records : dict
        What the notebook kept for the pipeline with :func:`workbench.notebook.record`, by
        name (only from a notebook that ran to the end).
    origin : str
        Which version of the notebook ran (see :mod:`workbench.reports.sources`); "" if not said.
    """

    name: str
    notebook: Path
    ipynb_path: Path
    status: Status
    error: str | None
    traceback: str | None
    started_at: dt.datetime
    finished_at: dt.datetime
    parameters: dict[str, object] = field(default_factory=dict)
    records: dict[str, object] = field(default_factory=dict)
    origin: str = ""

    @property
    def ok(self) -> bool:
        """Whether the notebook ran to the end."""
        return self.status == "ok"

    @property
    def duration_s(self) -> float:
        """Wall-clock seconds the run took."""
        return (self.finished_at - self.started_at).total_seconds()


def _has_parameters_cell(notebook: Path) -> bool:
    nb = nbformat.read(notebook, as_version=4)
    return any("parameters" in cell.get("metadata", {}).get("tags", []) for cell in nb.cells)


def _json_value(value: object) -> bool:
    """Whether papermill can inject ``value`` and record it in the notebook's JSON metadata."""
    if value is None or isinstance(value, str | bool | int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list | tuple):
        return all(_json_value(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_value(v) for k, v in value.items())
    return False


def validate_parameters(notebook: Path, parameters: dict[str, object]) -> None:
    """Check that ``parameters`` fit the notebook's ``parameters`` cell.

    Papermill only logs a warning for a parameter the notebook does not declare, so a typo in a
    pipeline file would silently run the notebook with its defaults; this makes it an error.

    Parameters
    ----------
    notebook : Path
        The source notebook.
    parameters : dict
        Names and JSON-compatible values (str, int, float, bool, None, lists and dicts of them).

    Raises
    ------
    ReportError
        When the notebook is missing or unreadable, has no cell tagged ``parameters``, when a key
        is not one of its parameters (the message names the unknown keys and lists the allowed
        ones), or when a value cannot be written into a notebook (e.g. a ``date``: pass
        ``day.isoformat()``).
    """
    import papermill

    notebook = Path(notebook)
    if not notebook.is_file():
        raise ReportError(f"notebook {notebook} does not exist")
    try:
        has_cell = _has_parameters_cell(notebook)
    except (OSError, ValueError) as exc:  # nbformat raises ValueError subclasses on bad JSON
        raise ReportError(f"notebook {notebook} cannot be read: {exc}") from None
    if not has_cell:
        raise ReportError(f"notebook {notebook} has no cell tagged 'parameters'; tag the cell that holds "
                          "the defaults (View → Cell Toolbar → Tags in Jupyter) so runs can set them")
    declared = papermill.inspect_notebook(str(notebook))
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        allowed = ", ".join(sorted(declared)) or "(none)"
        raise ReportError(f"notebook {notebook.name} has no parameter(s) {', '.join(map(repr, unknown))}; "
                          f"its parameters are: {allowed}")
    bad = sorted(k for k, v in parameters.items() if not _json_value(v))
    if bad:
        kinds = ", ".join(f"{k!r} is a {type(parameters[k]).__name__}" for k in bad)
        raise ReportError(f"notebook {notebook.name}: parameter values must be str, int, float, bool, None, "
                          f"or lists / dicts of them ({kinds}); pass dates as ISO strings")


def _failure(exc: BaseException) -> tuple[str, str]:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        error = f"{exc.ename}: {exc.evalue}" if exc.evalue else exc.ename
        trace = "\n".join(exc.traceback)
        where = f"cell In [{exc.exec_count}]" if exc.exec_count is not None else f"cell #{exc.cell_index}"
        trace = f"Exception in {where}:\n{trace}"
    else:
        # Not a cell error: timeout, dead kernel, missing kernel. Name the type so it is recognisable.
        error = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
        trace = "".join(tb.format_exception(exc))
    lines = _ANSI.sub("", error).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__), _ANSI.sub("", trace)


def _in_own_event_loop(call: Callable[[], object]) -> object:
    """Run ``call`` on a fresh thread with a fresh asyncio loop.

    papermill → nbclient → jupyter_core drive the kernel through ``run_until_complete`` on the
    calling thread's event loop. Called from a worker thread of an orchestrator (Prefect's
    thread pool runs several notebooks at once), that loop may be shared or already running —
    "This event loop is already running". A thread of our own has a loop of its own.
    """
    import asyncio
    import threading

    box: dict[str, object] = {}

    def target() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            box["result"] = call()
        except BaseException as exc:  # re-raised on the caller's thread
            box["error"] = exc
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    thread = threading.Thread(target=target, name=f"papermill-{threading.get_ident()}", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("result")


def run_section(notebook: Path, *, out_dir: Path, parameters: dict[str, object],
                kernel_name: str = "workbench", timeout_s: int = 900,
                cwd: Path | None = None, kernels: str | None = None, origin: str = "") -> SectionResult:
    """Execute ``notebook`` with papermill into ``out_dir/<stem>.ipynb``.

    Parameters
    ----------
    notebook : Path
        Source notebook with a cell tagged ``parameters``.
    out_dir : Path
        Where the executed notebook goes (created when missing).
    parameters : dict
        Values injected after the parameters cell (checked by :func:`validate_parameters`).
    kernel_name : str
        Jupyter kernel to run it with; ``make demo`` installs ``workbench``.
    timeout_s : int
        Longest a single cell may run.
    cwd : Path, optional
        Working directory of the kernel; default the notebook's directory (so relative paths in
        the notebook mean what they mean when an analyst opens it).
    kernels : str, optional
        Address of a :class:`~workbench.reports.kernels.KernelZygote` to fork the kernel from
        (a fresh kernel process that starts with the libraries imported); default: start the
        kernel the usual way.
    origin : str
        Which version of the notebook this is, for the page (e.g. "notebooks/oee.ipynb as
        committed in 3e54f75").

    Notes
    -----
    Figures shown with :func:`workbench.notebook.show` carry no plotly.js in the executed
    notebook: the HTML page :func:`~workbench.reports.build_report` makes supplies it, and
    JupyterLab draws them from their plotly JSON.

    Returns
    -------
    SectionResult
        ``status="failed"`` with the error and traceback when a cell raised, a cell timed out or
        the kernel died; the partially executed notebook is still written.

    Raises
    ------
    ReportError
        When the parameters do not fit the notebook (a configuration error, not a failed run).
    """
    import papermill

    from workbench.config import REPORT_RUN_ENV
    from workbench.reports import engine
    from workbench.reports.kernels import kernel_manager_class

    notebook = Path(notebook)
    validate_parameters(notebook, parameters)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / f"{notebook.stem}.ipynb"
    if output.resolve() == notebook.resolve():
        raise ReportError(f"out_dir {out_dir} would overwrite the source notebook {notebook}")
    # Tell the notebook it runs for a report: the page carries plotly.js once (a copy in the
    # executed notebook would be 4.8 MB that every later step reads, writes and strips), and
    # results it records (workbench.notebook.record) are kept for the pipeline.
    manager = kernel_manager_class(kernels, env={REPORT_RUN_ENV: "1"})
    started = dt.datetime.now(dt.UTC)
    error = trace = None
    records: dict[str, object] = {}
    try:
        executed = _in_own_event_loop(lambda: papermill.execute_notebook(
            str(notebook), str(output), parameters=dict(parameters), kernel_name=kernel_name,
            engine_name=engine.register(), execution_timeout=timeout_s, cwd=str(cwd or notebook.parent),
            progress_bar=False, log_output=False, kernel_manager_class=manager,
        ))
        records = records_in(executed)
    except Exception as exc:
        # A report with one broken section is still worth sending; the caller decides what a
        # failure means, from the result.
        error, trace = _failure(exc)
    finished = dt.datetime.now(dt.UTC)
    return SectionResult(name=notebook.stem, notebook=notebook, ipynb_path=output,
                         status="failed" if error else "ok", error=error, traceback=trace,
                         started_at=started, finished_at=finished, parameters=dict(parameters),
                         records=records, origin=origin)


def read_records(ipynb_path: Path) -> dict[str, object]:
    """The results an executed notebook kept with :func:`workbench.notebook.record`, by name.

    Parameters
    ----------
    ipynb_path : Path
        An executed notebook.

    Returns
    -------
    dict
        Name → recorded value (the last one when a name was recorded twice); empty when the
        notebook is missing or kept nothing.

    Raises
    ------
    ReportError
        When the file exists but is not a readable notebook.
    """
    path = Path(ipynb_path)
    if not path.is_file():
        return {}
    try:
        nb = nbformat.read(path, as_version=4)
    except (OSError, ValueError) as exc:
        raise ReportError(f"executed notebook {path} cannot be read: {exc}") from None
    return records_in(nb)


def records_in(nb: Mapping[str, Any]) -> dict[str, object]:
    """The results kept with :func:`workbench.notebook.record` in a notebook already read (an
    nbformat node or the plain JSON), by name; the last one when a name was kept twice."""
    from workbench.config import RECORD_MIME

    found: dict[str, object] = {}
    for cell in nb.get("cells") or []:
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            kept = output.get("data", {}).get(RECORD_MIME)
            if isinstance(kept, dict) and isinstance(kept.get("name"), str):
                found[kept["name"]] = kept.get("value")
    return found
