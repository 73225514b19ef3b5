"""A notebook open on the embedded warehouse never blocks the morning run; a process that really
holds the file makes the run fail with a message that says who, and someone is told."""

from __future__ import annotations

import email
import email.policy
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench import config, runs

pytestmark = pytest.mark.slow


@pytest.fixture
def lock_project(project: Path, tmp_path: Path, use_home, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the flow tests' project (its own warehouse, reports and outbox)."""
    home = tmp_path / "project"
    shutil.copytree(project, home, ignore=shutil.ignore_patterns("reports", "__pycache__"))
    use_home(home)
    monkeypatch.setenv("WORKBENCH_PLANT_TIMEZONE", "America/Chicago")
    config.reset()
    return home


@pytest.fixture
def analyst_kernel(lock_project: Path) -> Iterator:
    """The `workbench` Jupyter kernel of an analyst who has notebooks/oee.ipynb open in JupyterLab."""
    from jupyter_client.manager import start_new_kernel

    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env.update(WORKBENCH_HOME=str(lock_project), WORKBENCH_ENV_FILE=str(lock_project / ".env"),
               WORKBENCH_PLANT_TIMEZONE="America/Chicago",
               JPY_SESSION_NAME=str(lock_project / "notebooks" / "oee.ipynb"))
    km, kc = start_new_kernel(kernel_name="workbench", env=env, cwd=str(lock_project / "notebooks"))
    try:
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def run_cell(kc, code: str, timeout: float = 120) -> str:
    reply = kc.execute_interactive(code, timeout=timeout, output_hook=lambda msg: outputs.append(msg))
    assert reply["content"]["status"] == "ok", reply["content"]
    return "".join(m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")


outputs: list[dict] = []


def test_an_open_notebook_reading_the_warehouse_does_not_block_the_daily_flow(
        prefect_server, lock_project: Path, analyst_kernel) -> None:
    # the analyst made a scope and read the plant, and keeps reading while the flow runs
    run_cell(analyst_kernel, """
import threading, time
from workbench import notebook as nb
scope = nb.scope(days=1)
frames = scope.plant_frames()
first = scope.oee(frames, by=("machine_id",)).table
reads, errors, stop = [0], [], threading.Event()
def keep_reading():
    while not stop.is_set():
        try:
            scope.read("downtime_events"); scope.plant_frames(); reads[0] += 1
        except Exception as exc:
            errors.append(repr(exc))
        time.sleep(0.2)
reader = threading.Thread(target=keep_reading, daemon=True)
reader.start()
""")
    flows = runs.load_flows(lock_project)
    state = flows.daily_report(pipeline="good", return_state=True)
    assert state.is_completed(), state.message
    out = run_cell(analyst_kernel, "stop.set(); reader.join(); print(reads[0], errors)")
    count, errors = out.split(" ", 1)
    assert int(count) > 5, out               # it really read meanwhile …
    assert errors.strip() == "[]", out        # … and never failed


def test_a_process_holding_the_warehouse_fails_the_run_with_who_and_what_to_do(
        prefect_server, lock_project: Path, analyst_kernel, monkeypatch: pytest.MonkeyPatch) -> None:
    # an analyst opened the file by hand, read-write, and left the notebook open
    run_cell(analyst_kernel, f"import duckdb\ncon = duckdb.connect({str(lock_project / 'data' / 'warehouse.duckdb')!r})")
    monkeypatch.setenv("WORKBENCH_LOCK_TIMEOUT_S", "3")
    config.reset()
    flows = runs.load_flows(lock_project)
    state = flows.daily_report(pipeline="good", return_state=True)
    assert state.is_failed()
    message = state.message
    assert "Jupyter notebook kernel" in message and "notebooks/oee.ipynb" in message, message
    assert "Conflicting lock" not in message.split("\n")[0]
    # the run failed before any report: the report's recipients hear it from the failure notice
    notices = sorted((lock_project / "reports" / "outbox").glob("*.eml"))
    assert len(notices) == 1, notices
    msg = email.message_from_bytes(notices[0].read_bytes(), policy=email.policy.default)
    assert msg["Subject"] == "[TEST] FAILED: good"
    assert msg["To"] == "manager@plant.example"
    body = msg.get_content()
    assert "No good output was delivered by this run." in body
    assert "notebooks/oee.ipynb" in body and "workbench run good" in body
    run_cell(analyst_kernel, "con.close()")
    # the analyst closed it: the next run goes through
    state = flows.daily_report(pipeline="good", return_state=True)
    assert state.is_completed(), state.message
