"""A served deployment on a real Prefect server's scheduler — the way a plant runs the pipelines.

``prefect_test_harness`` (the other flow tests) never runs the server's scheduler service, so it
could not see that, with SQLAlchemy 2.1, the scheduler fails every loop and no schedule ever
fires. Here: ``workbench server`` (a real ``prefect server start``, scheduler loop shortened),
``workbench serve`` in a project whose pipeline runs every 20 s, and the test waits for runs the
*scheduler* created (``auto_scheduled``) to complete — renamed with their day, with their
artifacts — and for ``workbench doctor`` to see the schedule.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from flow_support import copy_project

from workbench import pipelines, scheduling

pytestmark = pytest.mark.slow

WORKBENCH = str(Path(sys.executable).with_name("workbench"))
INTERVAL_S = 20
PIPELINE = f"every{INTERVAL_S}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """This machine's environment without the test session's Prefect or workbench settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "WORKBENCH_"))}
    env.update(COLUMNS="200", **extra)
    return env


def stop(proc: subprocess.Popen, timeout_s: float = 30) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory) -> Iterator[str]:
    """``workbench server`` on a free port with its own PREFECT_HOME; yields its API URL."""
    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    log = (home / "server.log").open("w")
    env = clean_env(PREFECT_HOME=str(home),
                    # the scheduler looks for work every second instead of every minute
                    PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="1",
                    PREFECT_SERVER_SERVICES_LATE_RUNS_LOOP_SECONDS="5",
                    # a deployment nobody polls for 20 s is "not ready" (default: 60 s, checked every 15 s)
                    PREFECT_SERVER_SERVICES_FOREMAN_LOOP_SECONDS="2",
                    PREFECT_SERVER_SERVICES_FOREMAN_DEPLOYMENT_LAST_POLLED_TIMEOUT_SECONDS="20")
    proc = subprocess.Popen([WORKBENCH, "server", "--port", str(port), "--no-ui"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"workbench server exited {proc.returncode}:\n{(home / 'server.log').read_text()}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the Prefect server did not answer in 120 s:\n{(home / 'server.log').read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        stop(proc)
        log.close()
        text = (home / "server.log").read_text()
        # the failure the old pins produced, every scheduler loop
        assert "Can't evaluate bulk DML statement" not in text


@pytest.fixture(scope="module")
def served_project(project: Path, tmp_path_factory) -> Path:
    """A copy of the flow tests' project, under git, with one pipeline that runs every 20 s."""
    return copy_project(project, tmp_path_factory.mktemp("served") / "project", keep_pipelines=False,
                        pipelines={PIPELINE: f"""
description: The test report, every {INTERVAL_S} seconds
kind: report
schedule: {{interval: {INTERVAL_S}s, timezone: America/Chicago}}
parameters: {{days: 1}}
notebooks:
  - {{name: first, path: notebooks/first.ipynb}}
  - {{name: second, path: notebooks/second.ipynb}}
email: {{recipients: [manager@plant.example], subject_prefix: "[SERVED]"}}
notify_on_failure: [it@plant.example]
concurrency: 2
retries: 0
baseline_days: 3
"""})


def flow_runs(url: str, **flow_run_filter) -> list[dict]:
    body = {"flow_runs": flow_run_filter, "sort": "EXPECTED_START_TIME_ASC", "limit": 200}
    response = httpx.post(f"{url}/flow_runs/filter", json=body, timeout=10)
    response.raise_for_status()
    return response.json()


def test_a_served_schedule_fires_on_the_servers_scheduler_and_its_runs_complete(
        prefect_server: str, served_project: Path, tmp_path: Path) -> None:
    url = prefect_server
    env = clean_env(PREFECT_API_URL=url, PREFECT_HOME=str(tmp_path / "client-home"),
                    WORKBENCH_HOME=str(served_project), WORKBENCH_ENV_FILE=str(served_project / ".env"),
                    WORKBENCH_PLANT_TIMEZONE="America/Chicago")
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        serve = subprocess.Popen([WORKBENCH, "serve"], cwd=served_project, env=env, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    try:
        done: list[dict] = []
        deadline = time.monotonic() + 240
        while len(done) < 2:
            assert serve.poll() is None, f"workbench serve exited:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, (
                f"fewer than 2 scheduled runs completed in 240 s: "
                f"{[(r['name'], r['state_name'], r['auto_scheduled']) for r in flow_runs(url)]}\n"
                f"{log_path.read_text()[-4000:]}")
            runs = flow_runs(url)
            failed = [r for r in runs if r["state_type"] in ("FAILED", "CRASHED")]
            assert not failed, [(r["name"], r["state"]["message"]) for r in failed]
            done = [r for r in runs if r["state_type"] == "COMPLETED"]
            time.sleep(2)

        # the server's scheduler made them, from the pipeline's deployment
        for run in done:
            assert run["auto_scheduled"] is True
            assert run["parameters"]["pipeline"] == PIPELINE
            assert run["name"] == f"{PIPELINE} 2026-11-04", "renamed with the day it reported"
        starts = [dt.datetime.fromisoformat(r["expected_start_time"]) for r in done]
        assert (starts[1] - starts[0]).total_seconds() == INTERVAL_S
        # the scheduler already holds the next ones
        assert flow_runs(url, state={"type": {"any_": ["SCHEDULED"]}})

        # the scheduler sees the outcome in the UI: a link to the report and a table of it
        artifacts = httpx.post(f"{url}/artifacts/filter", json={
            "artifacts": {"flow_run_id": {"any_": [done[0]["id"]]}}, "limit": 10}, timeout=10).json()
        by_key = {a["key"]: a["data"] for a in artifacts}   # Prefect shows links as markdown
        assert set(by_key) == {f"{PIPELINE}-report", f"{PIPELINE}-outcome"}
        index = served_project / "reports" / PIPELINE / "2026-11-04" / "index.html"
        assert f"({index.as_uri()})" in by_key[f"{PIPELINE}-report"]
        assert "| first | ok |" in by_key[f"{PIPELINE}-outcome"]
        assert "as committed in" in by_key[f"{PIPELINE}-outcome"]

        # what workbench doctor says about it comes from the server, not from the YAML
        found = pipelines.load_all(served_project, default_timezone="America/Chicago")
        status = {s.pipeline: s for s in scheduling.schedule_status(url, found.values())}[PIPELINE]
        assert status.ok, status
        assert status.upcoming and status.upcoming[0] > dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
        assert status.last_state is not None   # ok says it is not Failed, Crashed or Late
        doctor = subprocess.run([WORKBENCH, "doctor"], cwd=served_project, env=env, capture_output=True,
                                text=True, timeout=180)
        line = next(x for x in doctor.stdout.splitlines() if f"schedule '{PIPELINE}'" in x)
        assert "ok" in line and "next run" in line, doctor.stdout
        listed = subprocess.run([WORKBENCH, "pipelines"], cwd=served_project, env=env, capture_output=True,
                                text=True, timeout=120)
        assert "on the server" in listed.stdout and "ok: next run" in listed.stdout, listed.stdout
    finally:
        stop(serve)
    # …and once nothing serves it, doctor says so
    status = scheduling.schedule_status(url, found.values())[0]
    deadline = time.monotonic() + 120
    while status.ready and time.monotonic() < deadline:  # not ready once unpolled for 20 s
        time.sleep(5)
        status = scheduling.schedule_status(url, found.values())[0]
    assert not status.ok and "no `workbench serve` process" in status.describe(dt.UTC)
    # the schedule stays on while nothing serves it: runs due meanwhile turn Late, and are said
    assert status.active
    while status.last_state != "Late" and time.monotonic() < deadline + 60:
        time.sleep(5)
        status = scheduling.schedule_status(url, found.values())[0]
    assert "the last run is Late" in status.describe(dt.UTC)


def test_a_served_sync_fires_on_the_servers_scheduler_and_an_unconfigured_one_is_not_served(
        prefect_server: str, project: Path, tmp_path: Path) -> None:
    """The MachineMetrics sync pipeline (every 20 s here) served against the simulated API: the
    server's scheduler creates its runs, they complete and the data arrives; the ERP sync, whose
    connection is not configured, is not served (no failed run and failure mail every 15 min)."""
    from workbench.simulate import PlantConfig, simulate_plant
    from workbench.simulate.http import ServedApp
    from workbench.simulate.machinemetrics import machinemetrics_app
    from workbench.store import DuckDBWarehouse

    url = prefect_server
    key = "served-sync-key"
    plant = simulate_plant(PlantConfig(seed=8, n_machines=2, n_lines=1, days=2, telemetry=False,
                                       cycle_events=False))
    root = Path(__file__).resolve().parents[2]
    home = copy_project(project, tmp_path / "project", keep_pipelines=False, pipelines={
        "mmsync": f"""
description: MachineMetrics every {INTERVAL_S} seconds
kind: machinemetrics_sync
schedule: {{interval: {INTERVAL_S}s, timezone: America/Chicago}}
sync: {{initial_backfill: 90d, overlap: 60m}}
retries: 1
""",
        "erp_sync": (root / "pipelines" / "erp_sync.yaml").read_text()})
    with ServedApp(machinemetrics_app(plant, api_key=key)) as mm:
        env = clean_env(PREFECT_API_URL=url, PREFECT_HOME=str(tmp_path / "client-home"),
                        WORKBENCH_HOME=str(home), WORKBENCH_ENV_FILE=str(home / ".env"),
                        WORKBENCH_PLANT_TIMEZONE="America/Chicago", WORKBENCH_MM_BASE_URL=mm.url,
                        WORKBENCH_MM_API_KEY=key)
        log_path = tmp_path / "serve.log"
        with log_path.open("w") as log:
            serve = subprocess.Popen([WORKBENCH, "serve"], cwd=home, env=env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 240
            done: list[dict] = []
            while not done:
                assert serve.poll() is None, f"workbench serve exited:\n{log_path.read_text()}"
                assert time.monotonic() < deadline, f"no sync run completed:\n{log_path.read_text()[-4000:]}"
                deps = httpx.post(f"{url}/deployments/filter", json={"deployments": {"name": {"any_": ["mmsync"]}}},
                                  timeout=10).json()
                if deps:
                    runs = flow_runs(url, deployment_id={"any_": [deps[0]["id"]]})
                    failed = [r for r in runs if r["state_type"] in ("FAILED", "CRASHED")]
                    assert not failed, [(r["name"], r["state"]["message"]) for r in failed]
                    done = [r for r in runs if r["state_type"] == "COMPLETED" and r["auto_scheduled"]]
                time.sleep(2)
        finally:
            stop(serve)
    text = log_path.read_text()
    assert "erp_sync: not served" in text and "erp connection is not configured" in text
    names = {d["name"] for d in httpx.post(f"{url}/deployments/filter", json={}, timeout=10).json()}
    assert "mmsync" in names and "erp_sync" not in names
    (schedule,) = deps[0]["schedules"]
    assert schedule["schedule"]["interval"] == INTERVAL_S
    with DuckDBWarehouse(home / "data" / "warehouse.duckdb", read_only=True) as wh:
        synced = wh.query("SELECT count(*) AS n FROM production_events WHERE source = 'machinemetrics'")
        assert int(synced["n"][0]) == len(plant.tables["production_events"])
