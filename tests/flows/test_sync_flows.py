"""The MachineMetrics and ERP sync flows through real Prefect runs, against the simulated APIs:
task states, the counts artifact, Failed with the reason only when a source is unreachable, and
the deployments `workbench serve` makes of the pipelines' schedules."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import httpx
import psycopg
import pytest
from flow_support import copy_project
from test_flows import task_runs

from workbench import config, pipelines, runs
from workbench.simulate import PlantConfig, simulate_plant
from workbench.simulate.erp import install_erp
from workbench.simulate.http import ServedApp
from workbench.simulate.machinemetrics import horizon, machinemetrics_app

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
KEY = "flow-test-key"


@pytest.fixture(scope="module")
def sim_plant():
    return simulate_plant(PlantConfig(seed=4, n_machines=2, n_lines=1, days=3, telemetry=False,
                                      cycle_events=False))


@pytest.fixture(scope="module")
def mm_url(sim_plant):
    with ServedApp(machinemetrics_app(sim_plant, api_key=KEY)) as served:
        yield served.url


@pytest.fixture(scope="module")
def erp_url(sim_plant, pg_url):
    yield install_erp(pg_url, sim_plant)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS erp_sim CASCADE")


@pytest.fixture
def sync_home(project, tmp_path, use_home, monkeypatch, mm_url, erp_url) -> Path:
    """The flow tests' project with the repository's two sync pipelines and ERP mapping."""
    home = copy_project(project, tmp_path / "project", keep_pipelines=False, pipelines={
        name: (ROOT / "pipelines" / f"{name}.yaml").read_text() for name in ("machinemetrics_sync", "erp_sync")})
    (home / "pipelines" / "plant").mkdir()
    shutil.copy(ROOT / "pipelines" / "plant" / "erp.yaml", home / "pipelines" / "plant" / "erp.yaml")
    use_home(home)
    for key, value in {"WORKBENCH_MM_BASE_URL": mm_url, "WORKBENCH_MM_API_KEY": KEY,
                       "WORKBENCH_ERP_DATABASE_URL": erp_url, "WORKBENCH_PLANT_TIMEZONE": "America/Chicago",
                       "WORKBENCH_TAGS_FILE": str(home / "no-tags.yaml")}.items():
        monkeypatch.setenv(key, value)
    config.reset()
    return home


def _faults(url: str, body: dict) -> None:
    httpx.post(f"{url}/_sim/faults", json=body, headers={"Authorization": f"Bearer {KEY}"}).raise_for_status()


def test_the_sync_flows_complete_with_their_tasks_and_counts(prefect_server, sync_home, sim_plant):
    flows = runs.load_flows(sync_home)
    start, end = horizon(sim_plant)
    state = flows.machinemetrics_sync(since=start.isoformat(), until=(end + dt.timedelta(hours=1)).isoformat(),
                                      return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert result["ok"] and result["entities"]["production_events"]["written"] == len(
        sim_plant.tables["production_events"])
    tasks = {t.name: t.state for t in task_runs(state)}
    assert set(tasks) == {"sync-machinemetrics_sync", "check-sources"}
    assert all(s.is_completed() for s in tasks.values()), tasks

    from prefect.settings import PREFECT_API_URL

    found = httpx.post(f"{PREFECT_API_URL.value()}/artifacts/filter", timeout=10, json={
        "artifacts": {"flow_run_id": {"any_": [str(state.state_details.flow_run_id)]}}, "limit": 10}).json()
    counts = {a["key"]: a["data"] for a in found}["machinemetrics-sync-counts"]
    assert "production_events" in str(counts) and "dead_lettered" in str(counts)

    erp = flows.erp_sync(return_state=True)
    assert erp.is_completed(), erp.message
    assert erp.result()["entities"]["work_orders"]["written"] == len(sim_plant.tables["work_orders"])


def test_a_source_unreachable_after_its_retries_fails_the_run_with_the_reason(prefect_server, sync_home, mm_url,
                                                                              sim_plant):
    flows = runs.load_flows(sync_home)
    start, _ = horizon(sim_plant)
    _faults(mm_url, {"http_503": 10_000})
    try:
        # the pipeline's 4 retries back off 1, 2, 4, 8 s: one request is given up after ~15 s
        state = flows.machinemetrics_sync(since=start.isoformat(), until=(start + dt.timedelta(hours=1)).isoformat(),
                                          return_state=True)
    finally:
        _faults(mm_url, {})
    assert state.is_failed()
    assert "machinemetrics" in state.message and "HTTP 503" in state.message
    tasks = {t.name: t.state for t in task_runs(state)}
    assert tasks["sync-machinemetrics_sync"].is_failed()
    assert tasks["check-sources"].is_completed(), "the sources' health is checked after a failed sync too"
    from workbench.store import open_reader

    with open_reader(config.settings()).held() as wh:
        runs_ = wh.read("sync_runs")
    assert runs_["status"].iloc[-1] == "failed" and "HTTP 503" in runs_["error"].iloc[-1]


def test_the_pipelines_schedules_are_the_deployments_serve_makes(sync_home):
    found = pipelines.load_all(sync_home, default_timezone="America/Chicago")
    flows = runs.load_flows(sync_home)
    deployments = {d.name: d for d in flows.deployments(found)}
    assert set(deployments) == {"machinemetrics_sync", "erp_sync"}
    for name, seconds, flow_name in (("machinemetrics_sync", 300, "machinemetrics-sync"),
                                     ("erp_sync", 900, "erp-sync")):
        d = deployments[name]
        (schedule,) = d.schedules
        assert schedule.schedule.interval == dt.timedelta(seconds=seconds)
        assert d.parameters == {"pipeline": name}
        assert d.flow_name == flow_name
