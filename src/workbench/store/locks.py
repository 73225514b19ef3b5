"""Waiting for the DuckDB warehouse file, and saying who holds it.

DuckDB lets one process hold a database file read-write, or several processes hold it
read-only, never both. Another process's open fails at once with an error naming only a PID
("Conflicting lock is held in …/python3.11 (PID 3198)"). :func:`connect` retries such a
conflict with exponential backoff until a timeout, then raises
:class:`~workbench.errors.WarehouseBusyError` saying *who* the holder is, read from
``/proc/<pid>`` where this process may read it:

* a Jupyter notebook kernel (``ipykernel``; jupyter_server puts the notebook's path in the
  kernel's ``JPY_SESSION_NAME``), including the kernels of a report run;
* a ``workbench …`` command;
* a Prefect flow run (``python -m prefect.engine``, or ``PREFECT__FLOW_RUN_ID`` in its
  environment);
* else the process's command line.

Other open errors are not retried: they will not go away by waiting.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from workbench.errors import ConfigError, WarehouseBusyError

__all__ = ["Holder", "busy_message", "classify", "connect", "find_holder", "holder_pid", "is_lock_conflict",
           "read_process", "wait_timeout"]

log = logging.getLogger(__name__)

#: First wait after a conflict, and the longest single wait (seconds).
BACKOFF_START_S = 0.05
BACKOFF_CAP_S = 2.0

#: What every message ends with: the way out when the file is contended all day.
POSTGRES_ADVICE = ("with several writers all day, move the warehouse to PostgreSQL "
                   "(WORKBENCH_DATABASE_URL)")

_CONFLICT = "could not set lock on file"
_PID = re.compile(r"\(PID (\d+)\)")
_COMMAND_CHARS = 200
#: Report kernels forked by the kernel zygote (workbench.reports.kernels) show its command line.
_ZYGOTE = "workbench.reports._zygote"


@dataclass(frozen=True)
class Holder:
    """The process holding the warehouse file, as far as this process can tell.

    Attributes
    ----------
    kind : str
        ``"notebook"`` (a Jupyter kernel), ``"workbench"`` (a ``workbench …`` command),
        ``"flow"`` (a Prefect flow run), ``"process"`` (anything else) or ``"unknown"`` (no
        PID, or its ``/proc`` entry is not readable from here).
    what : str
        Who it is, for people, e.g. ``"a Jupyter notebook kernel running notebooks/oee.ipynb"``.
    advice : str
        What to do about it.
    pid : int or None
        Its process id, when DuckDB named it.
    command : str
        Its command line (shortened), or ``""`` when unreadable.
    """

    kind: str
    what: str
    advice: str
    pid: int | None = None
    command: str = ""

    @property
    def lead(self) -> str:
        """``what`` with the PID and command line in parentheses, capitalised to start a sentence."""
        details = [f"PID {self.pid}"] if self.pid is not None else []
        if self.command:
            details.append(self.command)
        text = self.what + (f" ({': '.join(details)})" if details else "")
        return text[:1].upper() + text[1:]


def is_lock_conflict(exc: BaseException) -> bool:
    """Whether a DuckDB open failed because another process holds the file.

    Parameters
    ----------
    exc : BaseException
        The error ``duckdb.connect`` raised.

    Returns
    -------
    bool
    """
    return isinstance(exc, duckdb.Error) and _CONFLICT in str(exc).lower()


def holder_pid(message: str) -> int | None:
    """The PID in DuckDB's lock-conflict message (``… (PID 3198) …``), if it names one.

    Parameters
    ----------
    message : str
        The error message.

    Returns
    -------
    int or None
    """
    found = _PID.search(message)
    return int(found.group(1)) if found else None


def read_process(pid: int, *, proc: Path = Path("/proc")) -> tuple[list[str], dict[str, str]]:
    """A process's command line and environment, from ``/proc/<pid>``.

    Parameters
    ----------
    pid : int
        Process id.
    proc : Path
        Where procfs is mounted.

    Returns
    -------
    tuple
        ``(argv, environ)``; an empty list / dict for what cannot be read (no procfs, the process
        is gone, or it belongs to another user: ``environ`` is readable only by its owner).
    """
    def fields(name: str) -> list[str]:
        try:
            raw = (proc / str(pid) / name).read_bytes()
        except OSError:
            return []
        return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]

    environ = dict(item.partition("=")[::2] for item in fields("environ"))
    return fields("cmdline"), environ


def _shorten(argv: Sequence[str]) -> str:
    # Plain words, not shell quoting: a `python -c` script full of quotes and newlines stays readable.
    text = " ".join(" ".join(argv).split())
    return text if len(text) <= _COMMAND_CHARS else text[:_COMMAND_CHARS - 1] + "…"


def _module(argv: Sequence[str]) -> str | None:
    """The module of a ``python [options] -m module …`` command line."""
    for i, arg in enumerate(argv[1:-1], start=1):
        if arg == "-m":
            return argv[i + 1]
    return None


def _workbench_args(argv: Sequence[str]) -> list[str] | None:
    """The arguments of a ``workbench …`` command: the console script run directly or by an
    interpreter (``python …/bin/workbench demo``), or ``python -m workbench[.cli] …``."""
    for i, arg in enumerate(argv[:2]):
        if Path(arg).name == "workbench":
            return list(argv[i + 1:])
    module = _module(argv)
    if module in ("workbench", "workbench.cli"):
        return list(argv[argv.index("-m", 1) + 2:])
    return None


def classify(argv: Sequence[str], environ: Mapping[str, str], *, pid: int | None = None) -> Holder:
    """Tell what kind of process holds the warehouse from its command line and environment.

    The command line decides first, the environment only after it: a kernel started by a
    Prefect flow run inherits the run's ``PREFECT__FLOW_RUN_ID``, and ``!workbench demo`` typed
    in a notebook inherits the kernel's ``JPY_SESSION_NAME`` — in both it is the process
    itself that holds the file.

    Parameters
    ----------
    argv : sequence of str
        The command line (empty when unknown).
    environ : mapping
        Its environment (empty when unreadable).
    pid : int, optional
        Its process id.

    Returns
    -------
    Holder
    """
    if not argv:
        where = (f"process {pid}, whose command line cannot be read from here (another user or "
                 "container, or it has just exited)" if pid is not None
                 else "another process (DuckDB did not say which)")
        return Holder("unknown", where, "find and stop the process that has the file open", pid, "")
    command = _shorten(argv)
    module = _module(argv) or ""
    notebook = environ.get("JPY_SESSION_NAME", "")
    flow_run = environ.get("PREFECT__FLOW_RUN_ID", "")
    report_run = environ.get("WORKBENCH_REPORT_RUN", "").strip().lower() in ("1", "true", "yes")
    if module == _ZYGOTE or (module.startswith("ipykernel") and report_run):
        what = "a report run's notebook kernel" + (f" running {notebook}" if notebook else "")
        return Holder("notebook", what, "wait for the report run to finish, or cancel it", pid, command)
    if module.startswith("ipykernel"):
        what = f"a Jupyter notebook kernel running {notebook}" if notebook else "a Jupyter notebook kernel"
        return Holder("notebook", what,
                      "shut down that notebook's kernel (JupyterLab: Kernel → Shut Down Kernel), or read "
                      "through workbench.notebook (nb.scope, nb.open_data), which does not hold the file",
                      pid, command)
    args = _workbench_args(argv)
    if args is not None:
        return Holder("workbench", f"the command `{_shorten(['workbench', *args])}`",
                      "wait for that command to finish, or stop it", pid, command)
    if module.startswith("prefect.engine") or flow_run:
        what = "a Prefect flow run" + (f" {flow_run}" if flow_run else "")
        return Holder("flow", what, "wait for the flow run to finish, or cancel it in the Prefect UI",
                      pid, command)
    what = "another process" + (f" started from the notebook {notebook}" if notebook else "")
    return Holder("process", what, "stop that process, or wait until it closes the file", pid, command)


def find_holder(message: str, *, proc: Path = Path("/proc")) -> Holder:
    """Who holds the file, from DuckDB's lock-conflict message and ``/proc``.

    Parameters
    ----------
    message : str
        DuckDB's error message.
    proc : Path
        Where procfs is mounted.

    Returns
    -------
    Holder
    """
    pid = holder_pid(message)
    if pid is None:
        return classify([], {})
    argv, environ = read_process(pid, proc=proc)
    return classify(argv, environ, pid=pid)


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value >= 10 else f"{value:.1f} s"


def busy_message(path: str | Path, holder: Holder, *, waited_s: float, read_only: bool) -> str:
    """The explanation :class:`~workbench.errors.WarehouseBusyError` carries.

    Parameters
    ----------
    path : str or Path
        The warehouse file.
    holder : Holder
        Who holds it.
    waited_s : float
        How long this process waited (its lock timeout).
    read_only : bool
        Whether this process wanted to read (else write).

    Returns
    -------
    str
        Leads with the holder, then how long this process waited, then what to do.
    """
    mode = "read-only" if read_only else "read-write"
    return (f"{holder.lead} holds the DuckDB warehouse {path}; waited {_seconds(waited_s)} to open it "
            f"{mode} (the lock timeout, WORKBENCH_LOCK_TIMEOUT_S). To go on: {holder.advice}; "
            f"{POSTGRES_ADVICE}.")


def connect(path: str | Path, *, read_only: bool,
            timeout_s: float | None = None) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB file, waiting while another process holds it.

    A lock conflict is retried with exponential backoff (from :data:`BACKOFF_START_S` up to
    :data:`BACKOFF_CAP_S` between attempts, with jitter so that several waiting processes do not
    retry in step) until ``timeout_s`` has passed. The first conflict is logged (INFO) with the
    holder's name, so a log shows why an open took long.

    Parameters
    ----------
    path : str or Path
        The database file.
    read_only : bool
        Open without write access.
    timeout_s : float, optional
        Longest time to wait (``0``: try once); default ``WORKBENCH_LOCK_TIMEOUT_S``, read only
        when there is something to wait for.

    Returns
    -------
    duckdb.DuckDBPyConnection

    Raises
    ------
    WarehouseBusyError
        The file was still held after ``timeout_s``; the message names the holder.
    duckdb.Error
        Any other open error, at once.
    """
    # A bad explicit value fails now, not at the first conflict; the setting is read only then.
    limit = None if timeout_s is None else wait_timeout(timeout_s)
    started = time.monotonic()
    deadline: float | None = None
    delay = BACKOFF_START_S
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as exc:
            if not is_lock_conflict(exc):
                raise
            message = str(exc)
        now = time.monotonic()
        if deadline is None:  # the first conflict
            limit = wait_timeout(limit)
            deadline = started + limit
            log.info("%s holds the DuckDB warehouse %s; waiting up to %s to open it %s",
                     find_holder(message).lead, path, _seconds(limit),
                     "read-only" if read_only else "read-write")
        if now >= deadline:
            # Described now, not at the first conflict: the holder may have changed meanwhile.
            holder = find_holder(message)
            # The message gives the timeout (what a person can change), the error the time measured.
            message = busy_message(path, holder, waited_s=limit, read_only=read_only)
            raise WarehouseBusyError(message, holder=holder.kind, pid=holder.pid,
                                     waited_s=now - started) from None
        time.sleep(min(delay * random.uniform(0.75, 1.0), deadline - now))
        delay = min(delay * 2, BACKOFF_CAP_S)


def wait_timeout(timeout_s: float | None) -> float:
    """The lock timeout to use: ``timeout_s``, or the configured ``WORKBENCH_LOCK_TIMEOUT_S``.

    Parameters
    ----------
    timeout_s : float or None
        An explicit timeout (seconds, ≥ 0), or None for the setting.

    Returns
    -------
    float

    Raises
    ------
    ConfigError
        A negative timeout, or malformed settings.
    """
    if timeout_s is None:
        from workbench.config import settings

        return settings().lock_timeout_s
    if timeout_s < 0:
        raise ConfigError(f"lock_timeout_s must be ≥ 0 seconds, got {timeout_s!r}")
    return float(timeout_s)

