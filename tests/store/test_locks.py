"""Waiting for the DuckDB warehouse file and naming who holds it — with real processes.

DuckDB lets one process hold a file read-write or several hold it read-only. Here real child
processes (a ``python -c`` script, a ``workbench …``-named script, a Jupyter kernel of the
project's ``workbench`` kernel spec) hold the file while this process opens it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from workbench import config
from workbench.errors import ConfigError, StoreError, WarehouseBusyError
from workbench.store import DuckDBWarehouse, locks, open_warehouse

KERNEL_ARGV = ["/srv/.venv/bin/python", "-Xfrozen_modules=off", "-m", "ipykernel_launcher", "-f",
               "/run/user/1000/jupyter/runtime/kernel-1f2e.json"]


@pytest.fixture
def empty_file(tmp_path: Path) -> Path:
    """An initialised, empty DuckDB warehouse (closed)."""
    path = tmp_path / "data" / "warehouse.duckdb"
    with DuckDBWarehouse(path) as wh:
        wh.init_schema()
    return path


def _watermark(stream: str) -> pd.DataFrame:
    now = pd.Timestamp(dt.datetime.now(dt.UTC))
    return pd.DataFrame({"source": ["test"], "stream": [stream], "watermark": [now], "updated_at": [now]})


def _waits(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "workbench.store.locks" and r.levelno == logging.INFO and "waiting up to" in r.getMessage()]


# =============================================================================================
# a child process holds the file
# =============================================================================================

def test_a_writer_gives_up_after_the_timeout_and_names_the_holder(empty_file: Path, holding,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    with holding(empty_file) as child, caplog.at_level(logging.INFO, logger="workbench.store.locks"):
        started = time.monotonic()
        with pytest.raises(WarehouseBusyError) as busy:
            DuckDBWarehouse(empty_file, lock_timeout_s=0.5)
        took = time.monotonic() - started
        with pytest.raises(WarehouseBusyError, match="to open it read-only"):   # readers wait too
            DuckDBWarehouse(empty_file, read_only=True, lock_timeout_s=0.2)
    message = str(busy.value)
    # leads with the kind of holder, then its PID and command line — not a bare PID
    assert message.startswith(f"Another process (PID {child.pid}: {sys.executable} -c import sys, time, duckdb")
    assert f"holds the DuckDB warehouse {empty_file}; waited 0.5 s to open it read-write" in message
    assert "stop that process" in message and "PostgreSQL (WORKBENCH_DATABASE_URL)" in message
    assert (busy.value.holder, busy.value.pid) == ("process", child.pid)
    assert 0.5 <= busy.value.waited_s <= took < 5
    assert isinstance(busy.value, StoreError)          # one hierarchy: callers catching StoreError still do
    waits = _waits(caplog)
    assert len(waits) == 2 and all(f"PID {child.pid}" in w for w in waits)   # once per open, not per retry


def test_a_workbench_command_is_named_by_its_command_line(empty_file: Path, tmp_path: Path, holding,
                                                         hold_script: str) -> None:
    script = tmp_path / "bin" / "workbench"          # how a console script runs: python …/bin/workbench …
    script.parent.mkdir()
    script.write_text(hold_script)
    command = [sys.executable, str(script), "simulate", "--days", "90"]
    with holding(empty_file, command=command) as child, pytest.raises(WarehouseBusyError) as busy:
        DuckDBWarehouse(empty_file, lock_timeout_s=0.1)
    message = str(busy.value)
    assert message.startswith(f"The command `workbench simulate --days 90 {empty_file} 0.0` (PID {child.pid}: ")
    assert "wait for that command to finish" in message and busy.value.holder == "workbench"


def test_a_waiting_writer_gets_the_file_when_the_holder_lets_go(empty_file: Path, holding,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    with holding(empty_file, release_after_s=1.0), caplog.at_level(logging.INFO, logger="workbench.store.locks"):
        started = time.monotonic()
        with DuckDBWarehouse(empty_file, lock_timeout_s=30) as wh:
            took = time.monotonic() - started
            assert wh.write("ingest_watermarks", _watermark("after-wait")).written == 1
    assert 0.5 < took < 10, took          # it waited for the release, then opened at once (backoff ≤ 2 s)
    assert len(_waits(caplog)) == 1


def test_other_open_errors_are_not_retried(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(StoreError, match="cannot open the DuckDB warehouse") as missing:
        DuckDBWarehouse(tmp_path / "missing.duckdb", read_only=True, lock_timeout_s=30)
    not_duckdb = tmp_path / "notes.duckdb"
    not_duckdb.write_text("not a database\n" * 1000)
    with pytest.raises(StoreError, match="cannot open the DuckDB warehouse") as garbage:
        DuckDBWarehouse(not_duckdb, lock_timeout_s=30)
    assert time.monotonic() - started < 5
    assert not isinstance(missing.value, WarehouseBusyError) and not isinstance(garbage.value, WarehouseBusyError)
    with pytest.raises(ConfigError, match="lock_timeout_s"):
        DuckDBWarehouse(tmp_path / "w.duckdb", lock_timeout_s=-1)


def test_the_timeout_comes_from_the_settings(empty_file: Path, holding, use_home,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    home = empty_file.parents[1]
    use_home(home)
    assert config.settings().lock_timeout_s == 120.0
    monkeypatch.setenv("WORKBENCH_LOCK_TIMEOUT_S", "0")
    with pytest.raises(ConfigError, match="WORKBENCH_LOCK_TIMEOUT_S"):
        config.load()
    monkeypatch.setenv("WORKBENCH_LOCK_TIMEOUT_S", "0.3")
    config.reset()
    with holding(empty_file):
        with pytest.raises(WarehouseBusyError, match="waited 0.3 s"):
            open_warehouse()
        with pytest.raises(WarehouseBusyError, match="waited 0.1 s"):
            open_warehouse(lock_timeout_s=0.1)       # per call, over the setting
        with pytest.raises(WarehouseBusyError, match="waited 0.3 s"):
            DuckDBWarehouse(empty_file)              # direct opens read the setting too


# =============================================================================================
# who is it: command line and environment (what /proc gives)
# =============================================================================================

@pytest.mark.parametrize(("argv", "environ", "kind", "lead"), [
    (KERNEL_ARGV, {"JPY_SESSION_NAME": "notebooks/oee.ipynb", "JPY_PARENT_PID": "77"}, "notebook",
     "A Jupyter notebook kernel running notebooks/oee.ipynb (PID 42: /srv/.venv/bin/python"),
    (KERNEL_ARGV, {}, "notebook", "A Jupyter notebook kernel (PID 42: "),
    (KERNEL_ARGV, {"WORKBENCH_REPORT_RUN": "1", "PREFECT__FLOW_RUN_ID": "abc"}, "notebook",
     "A report run's notebook kernel (PID 42"),
    (["/srv/.venv/bin/python", "-m", "workbench.reports._zygote", "/tmp/z.sock"], {}, "notebook",
     "A report run's notebook kernel"),
    (["/srv/.venv/bin/python", "/srv/.venv/bin/workbench", "demo"], {"JPY_SESSION_NAME": "notebooks/x.ipynb"},
     "workbench", "The command `workbench demo` (PID 42"),
    (["/srv/.venv/bin/workbench", "serve"], {}, "workbench", "The command `workbench serve`"),
    (["python", "-m", "workbench.cli", "db", "init"], {}, "workbench", "The command `workbench db init`"),
    (["/srv/.venv/bin/python", "-m", "prefect.engine"], {"PREFECT__FLOW_RUN_ID": "0c9e"}, "flow",
     "A Prefect flow run 0c9e (PID 42: /srv/.venv/bin/python -m prefect.engine)"),
    (["python", "collector.py"], {"JPY_SESSION_NAME": "notebooks/x.ipynb"}, "process",
     "Another process started from the notebook notebooks/x.ipynb (PID 42: python collector.py)"),
    ([], {}, "unknown", "Process 42, whose command line cannot be read from here"),
])
def test_classify(argv: list[str], environ: dict[str, str], kind: str, lead: str) -> None:
    holder = locks.classify(argv, environ, pid=42)
    assert holder.kind == kind
    assert holder.lead.startswith(lead), holder.lead


def test_find_holder_reads_proc_and_copes_without_a_pid() -> None:
    me = locks.find_holder(f'IO Error: Could not set lock on file "/x": Conflicting lock is held in '
                           f'{sys.executable} (PID {os.getpid()}). See also …')
    assert me.pid == os.getpid() and "pytest" in me.command
    nobody = locks.find_holder("IO Error: Could not set lock on file \"/x\": Conflicting lock")
    assert nobody.kind == "unknown" and "did not say which" in nobody.what


# =============================================================================================
# a real Jupyter kernel: the notebook reader holds nothing, a hand-made connection does
# =============================================================================================

@pytest.fixture(scope="module")
def kernel(plant_home: Path) -> Iterator[tuple[object, int]]:
    """A kernel of the project's ``workbench`` kernel spec, as JupyterLab starts it for
    notebooks/oee.ipynb, configured for the small project; yields (client, pid)."""
    from jupyter_client.manager import start_new_kernel

    if shutil.which("jupyter", path=str(Path(sys.executable).parent)) is None:
        pytest.fail("jupyter is not installed in the project's environment")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env.update(JPY_SESSION_NAME="notebooks/oee.ipynb", WORKBENCH_HOME=str(plant_home),
               WORKBENCH_ENV_FILE=str(plant_home / ".env"),
               WORKBENCH_DUCKDB_PATH=str(plant_home / "data" / "warehouse.duckdb"))
    manager, client = start_new_kernel(kernel_name="workbench", env=env, cwd=str(plant_home), startup_timeout=120)
    try:
        pid = int(_run(client, "import os; print(os.getpid())").strip())
        yield client, pid
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def _run(client, code: str) -> str:
    """Execute ``code`` in the kernel; return what it printed (fail with its traceback)."""
    printed: list[str] = []

    def hook(msg: dict) -> None:
        if msg["msg_type"] == "stream":
            printed.append(msg["content"]["text"])

    reply = client.execute_interactive(code, timeout=120, output_hook=hook)
    content = reply["content"]
    assert content["status"] == "ok", f"{content.get('ename')}: {content.get('evalue')}\n" + "\n".join(
        content.get("traceback", []))
    return "".join(printed)


@pytest.mark.slow
def test_a_notebook_reading_through_the_library_does_not_lock_writers_out(kernel, plant_home: Path) -> None:
    client, _ = kernel
    path = plant_home / "data" / "warehouse.duckdb"
    _run(client, "from workbench import jobs\n"
                 "from workbench import notebook as nb\n"
                 "scope = nb.scope(days=1)\n"
                 "df = scope.read('machines')\n"
                 "frames = scope.plant_frames()\n"
                 "summary = jobs.daily_summary_from(scope.warehouse, day=scope.last_day, tz=scope.tz)\n"
                 "print(len(df), len(frames.production_events), summary.day)")
    # The kernel is alive with its scope; the writer gets the file at the first try.
    with DuckDBWarehouse(path, lock_timeout_s=0) as wh:
        assert wh.write("ingest_watermarks", _watermark("while-a-kernel-reads")).written == 1
    # …and the kernel's next read sees the new row (nothing stale was kept).
    seen = _run(client, "print(sorted(scope.read('ingest_watermarks')['stream']))")
    assert "while-a-kernel-reads" in seen


@pytest.mark.slow
def test_a_notebook_read_waits_while_a_writer_holds_the_file(kernel, plant_home: Path) -> None:
    client, _ = kernel
    writer = DuckDBWarehouse(plant_home / "data" / "warehouse.duckdb", lock_timeout_s=0)
    threading.Timer(1.0, writer.close).start()        # a short write job, done in a second
    started = time.monotonic()
    printed = _run(client, "print(len(scope.read('machines')))")
    assert "4" in printed.splitlines() and time.monotonic() - started >= 0.9
    # the analyst sees why the cell waits, instead of a cell that seems to hang
    note = next(line for line in printed.splitlines() if line.startswith("Note: "))
    assert "holds the DuckDB warehouse" in note and "waiting up to" in note


@pytest.mark.slow
def test_a_connection_held_by_hand_in_a_notebook_is_named(kernel, plant_home: Path) -> None:
    client, pid = kernel
    path = plant_home / "data" / "warehouse.duckdb"
    _run(client, f"import duckdb\ncon = duckdb.connect({str(path)!r})")
    try:
        with pytest.raises(WarehouseBusyError) as busy:
            DuckDBWarehouse(path, lock_timeout_s=0.3)
    finally:
        _run(client, "con.close()")
    message = str(busy.value)
    assert message.startswith(f"A Jupyter notebook kernel running notebooks/oee.ipynb (PID {pid}: ")
    assert "ipykernel_launcher" in message and "waited 0.3 s to open it read-write (the lock timeout" in message
    assert "shut down that notebook's kernel" in message and "workbench.notebook" in message
    assert (busy.value.holder, busy.value.pid) == ("notebook", pid)
    with DuckDBWarehouse(path, lock_timeout_s=0):    # closed by hand: free again
        pass
