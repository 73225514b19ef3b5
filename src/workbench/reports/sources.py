"""Which notebook a scheduled run executes, and with which parameters.

Analysts open and edit the very files ``notebooks/*.ipynb`` that the pipelines run (``workbench
lab``). A scheduled report must not change because somebody saved ``machines = ["M01"]`` in a
notebook and went home, so a run executes each notebook **as committed** (``git show
HEAD:notebooks/oee.ipynb``), says so on the page, and notes when the working tree differs. A
checkout that is not under git runs the files as they are (and says that). ``workbench run
--working-tree`` runs the working tree on purpose (developing a notebook).

And a run injects **every** parameter of the notebook's ``parameters`` cell — the pipeline's
value, else the committed default — so each page lists all of them, not only those the pipeline
happened to set.
"""

from __future__ import annotations

import ast
import subprocess
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import ReportError


@dataclass(frozen=True)
class NotebookSource:
    """The notebook file a run executes.

    Attributes
    ----------
    path : Path
        The file to execute (a copy of the committed notebook, or the working-tree file).
    notebook : Path
        The notebook in the project (``notebooks/oee.ipynb``).
    commit : str or None
        Short commit the copy was taken from; None when the working tree runs.
    modified : bool
        The working-tree file differs from that commit (an analyst's unsaved-to-git edit).
    origin : str
        One line for the page: where the executed notebook came from.
    """

    path: Path
    notebook: Path
    commit: str | None
    modified: bool
    origin: str


def _git(root: Path, *args: str, binary: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=not binary,
                          timeout=30, check=False)


def _repository(folder: Path) -> Path | None:
    try:
        done = _git(folder, "rev-parse", "--show-toplevel")
    except (OSError, subprocess.SubprocessError):
        return None  # no git on this machine
    return Path(done.stdout.strip()).resolve() if done.returncode == 0 and done.stdout.strip() else None


def notebook_source(notebook: Path, *, home: Path, copy_dir: Path, working_tree: bool = False
                    ) -> NotebookSource:
    """The version of ``notebook`` a scheduled run executes.

    Parameters
    ----------
    notebook : Path
        A notebook of the project (absolute, or relative to ``home``).
    home : Path
        The project directory.
    copy_dir : Path
        Where the committed copy is written (``<run>/sources``), under the notebook's file name.
    working_tree : bool
        Execute the file as it is now instead (for developing a notebook).

    Returns
    -------
    NotebookSource

    Raises
    ------
    ReportError
        When the project is a git checkout but the notebook was never committed: a scheduled
        report runs only what is in version control.
    """
    notebook = (home / notebook).resolve() if not Path(notebook).is_absolute() else Path(notebook).resolve()
    try:
        shown = notebook.relative_to(Path(home).resolve())
    except ValueError:
        shown = notebook
    root = _repository(notebook.parent)
    if root is None:
        return NotebookSource(notebook, notebook, None, False,
                              f"{shown} as it is on disk (the project is not a git checkout)")
    relative = notebook.relative_to(root).as_posix()
    head = _git(root, "rev-parse", "--short", "HEAD").stdout.strip()
    tracked = bool(head) and _git(root, "cat-file", "-e", f"HEAD:{relative}").returncode == 0
    modified = not tracked or _git(root, "diff", "--quiet", "HEAD", "--", relative).returncode != 0
    if working_tree:
        state = "with uncommitted changes" if modified else "unchanged since the last commit"
        return NotebookSource(notebook, notebook, None, modified, f"{shown} from the working tree ({state})")
    if not tracked:
        raise ReportError(f"{shown} is not committed to git: a scheduled run executes notebooks as "
                          f"committed (git add {shown} && git commit), or run it with --working-tree")
    blob = _git(root, "show", f"HEAD:{relative}", binary=True)
    if blob.returncode != 0:
        raise ReportError(f"cannot read {shown} at commit {head}: {blob.stderr.decode(errors='replace')}")
    copy_dir.mkdir(parents=True, exist_ok=True)
    copy = copy_dir / notebook.name
    copy.write_bytes(blob.stdout)
    note = "; the working copy has uncommitted changes, not used" if modified else ""
    return NotebookSource(copy, notebook, head, modified, f"{shown} as committed in {head}{note}")


def notebook_defaults(notebook: Path) -> dict[str, object]:
    """The defaults of a notebook's ``parameters`` cell, as values.

    Parameters
    ----------
    notebook : Path
        A notebook with a cell tagged ``parameters``.

    Returns
    -------
    dict
        Name → value, in the cell's order.

    Raises
    ------
    ReportError
        When a default is not a Python literal (``dt.date.today()``): a run could not say what it
        ran with. Write literals in the parameters cell and compute from them below it.
    """
    import papermill

    try:
        declared = papermill.inspect_notebook(str(notebook))
    except (OSError, ValueError) as exc:  # unreadable JSON, no kernel spec in its metadata
        raise ReportError(f"cannot read the parameters of notebook {notebook}: {exc}") from None
    found: dict[str, object] = {}
    for name, info in declared.items():
        text = str(info.get("default", ""))
        try:
            found[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise ReportError(f"notebook {Path(notebook).name}: the default of parameter {name!r} is "
                              f"{text!r}, not a literal; a report must be able to say what it ran with — "
                              "write a literal in the parameters cell and compute from it below") from None
    return found


def complete_parameters(notebook: Path, given: dict[str, object]) -> dict[str, object]:
    """Every parameter of ``notebook``: the given value, else the notebook's default.

    Unknown names in ``given`` are left for :func:`~workbench.reports.validate_parameters` to
    refuse (with the list of the notebook's parameters).
    """
    defaults = notebook_defaults(notebook)
    return {**defaults, **given}
