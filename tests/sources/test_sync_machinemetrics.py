"""The MachineMetrics sync against the simulated MachineMetrics API (real HTTP, uvicorn) into real
warehouses: 30 days reproduce the simulator's counts per machine-hour exactly, re-runs and
overlapping windows write nothing twice, and every fault the API can throw — 429 with Retry-After,
500s, a timeout, a cut-off body, a record of the wrong type, the warehouse down between fetch and
write — loses nothing, duplicates nothing and never moves a watermark past what was stored."""

from __future__ import annotations

import datetime as dt
import threading
import time

import psycopg
import pytest
from sync_support import (
    FAST,
    KEY,
    assert_same_hours,
    open_wh,
    settings_for,
    sim_post,
    sim_requests,
    sim_reset,
    spec,
    truth_events,
    watermarks,
)

from workbench.simulate import PlantConfig, simulate_plant
from workbench.simulate.http import ServedApp
from workbench.simulate.machinemetrics import horizon, machinemetrics_app
from workbench.sources.syncs import sync_machinemetrics

REPORTS = ("production", "states", "downtime")


@pytest.fixture(scope="module")
def plant30():
    """4 machines on 2 lines, 30 days (a count event per running machine-minute: ~77,000 events)."""
    return simulate_plant(PlantConfig(seed=11, n_machines=4, n_lines=2, days=30, telemetry=False,
                                      cycle_events=False))


@pytest.fixture(scope="module")
def api(plant30):
    with ServedApp(machinemetrics_app(plant30, api_key=KEY)) as served:
        yield served.url


@pytest.fixture
def mm(api):
    sim_reset(api)
    yield api
    sim_reset(api)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_thirty_days_reproduce_the_counts_per_machine_hour_and_a_rerun_changes_nothing(
        engine, plant30, mm, tmp_path, request):
    url = request.getfixturevalue("pg_schema_url") if engine == "postgres" else None
    s = settings_for(tmp_path, database_url=url, mm_base_url=mm, mm_api_key=KEY)
    start, end = horizon(plant30)
    until = end + dt.timedelta(hours=1)   # states and stops ending at the horizon are reported by then

    report = sync_machinemetrics(s, spec(), since=start, until=until, retry_policy=FAST)
    assert report.ok, report.lines()
    truth = plant30.tables
    assert report.entities["production_events"].written == len(truth["production_events"]) == 77_019
    assert report.entities["machine_states"].written == len(truth["machine_states"])
    assert report.entities["downtime_events"].written == len(truth["downtime_events"])
    assert report.total("dead_lettered") == 0
    with open_wh(s) as wh:
        assert assert_same_hours(plant30, wh) == 77_019
        assert wh.count("machines") == 4
        assert (wh.read("production_events")["source"] == "machinemetrics").all()
        marks = watermarks(wh, "machinemetrics")
        assert {k for k in marks if k != "machines"} == {f"{r}:M{m:02d}" for r in REPORTS for m in range(1, 5)}
        assert set(marks.values()) == {until}
        runs = wh.read("sync_runs")
        assert runs["status"].tolist() == ["ok"] and runs["written"].iloc[0] == report.total("written")

    # the scheduled run after it: from each watermark minus the overlap — nothing new, nothing twice
    again = sync_machinemetrics(s, spec(), until=until, retry_policy=FAST)
    assert again.ok and again.total("written") == 0 and again.total("fetched") > 0
    assert again.total("unchanged") == again.total("fetched")
    # a back-fill over ten days that are already stored writes nothing twice either
    backfill = sync_machinemetrics(s, spec(), since=start + dt.timedelta(days=10),
                                   until=start + dt.timedelta(days=12), retry_policy=FAST)
    assert backfill.ok and backfill.total("written") == 0
    assert backfill.entities["production_events"].unchanged == len(
        truth_events(plant30, start=start + dt.timedelta(days=10), end=start + dt.timedelta(days=12)))
    with open_wh(s) as wh:
        assert assert_same_hours(plant30, wh) == 77_019
        assert wh.count("machine_states") == len(truth["machine_states"])
        # a back-fill never moves a watermark backwards
        assert set(watermarks(wh, "machinemetrics").values()) == {until}


def test_late_records_are_picked_up_by_the_next_run_through_the_overlap(plant30, tmp_path):
    """Records reach MachineMetrics up to 15 minutes late; runs every 30 minutes with a 60-minute
    overlap miss none of them."""
    start, _ = horizon(plant30)
    t0 = start + dt.timedelta(days=2, hours=8)
    with ServedApp(machinemetrics_app(plant30, api_key=KEY, now=t0, late_max_s=900)) as served:
        s = settings_for(tmp_path, mm_base_url=served.url, mm_api_key=KEY)
        first = sync_machinemetrics(s, spec(), since=t0 - dt.timedelta(hours=6), until=t0, retry_policy=FAST)
        assert first.ok
        with open_wh(s) as wh:
            stored_first = wh.count("production_events")
        complete = len(truth_events(plant30, start=t0 - dt.timedelta(hours=6), end=t0))
        assert stored_first < complete, "some records were still late at the first run"
        now = t0
        for _ in range(4):
            now += dt.timedelta(minutes=30)
            sim_post(served.url, "/_sim/clock", {"now": now.isoformat()})
            assert sync_machinemetrics(s, spec(), until=now, retry_policy=FAST).ok
        with open_wh(s) as wh:
            # everything up to 15 minutes before the last run has arrived, and is stored once
            settled = now - dt.timedelta(minutes=15)
            events = wh.read("production_events")
            events = events[events["time"] < settled]
            assert len(events) == len(truth_events(plant30, start=t0 - dt.timedelta(hours=6), end=settled))
            assert events["event_id"].is_unique


@pytest.mark.parametrize(("faults", "retried_status"), [
    ({"http_429": 2, "retry_after_s": 2}, 429),
    ({"http_500": 3}, 500),
    ({"delay_s": 7, "delay_count": 1}, None),        # longer than the 5 s request timeout
    ({"truncate": 2}, 200),                          # a 200 whose JSON is cut off
], ids=["429-retry-after", "500", "timeout", "truncated-json"])
def test_a_transient_fault_is_retried_and_nothing_is_lost_or_doubled(faults, retried_status, plant30, mm,
                                                                    tmp_path):
    s = settings_for(tmp_path, mm_base_url=mm, mm_api_key=KEY)
    start, _ = horizon(plant30)
    since, until = start + dt.timedelta(days=3), start + dt.timedelta(days=4)
    sim_post(mm, "/_sim/faults", {**faults, "path": "production"})
    report = sync_machinemetrics(s, spec(machines=("M01", "M02")), since=since, until=until, retry_policy=FAST)
    assert report.ok, report.lines()
    assert report.retries >= 1
    with open_wh(s) as wh:
        assert assert_same_hours(plant30, wh, machines=["M01", "M02"], start=since, end=until) > 0
        assert set(watermarks(wh, "machinemetrics").values()) == {until}
    log = [r for r in sim_requests(mm) if "production" in r["path"]]
    if retried_status == 429:
        # the retry of a 429 waited what Retry-After asked (2 s), not the 0.05 s backoff
        limited = next(r for r in log if r["status"] == 429)
        retry = next(r for r in log if r["query"] == limited["query"] and r["time"] > limited["time"])
        gap = dt.datetime.fromisoformat(retry["time"]) - dt.datetime.fromisoformat(limited["time"])
        assert retry["status"] == 200 and gap >= dt.timedelta(seconds=1.9), gap
    elif retried_status is not None:
        faulted = {r["query"] for r in log if r["status"] == retried_status}
        assert faulted
        # each request that met the fault was asked again until it was answered
        assert all([r for r in log if r["query"] == q][-1]["status"] == 200 for q in faulted)
        assert retried_status == 200 or sum(r["status"] == retried_status for r in log) == 3


def test_a_record_with_a_wrong_type_is_dead_lettered_and_the_rest_of_the_machine_stored(plant30, mm, tmp_path):
    s = settings_for(tmp_path, mm_base_url=mm, mm_api_key=KEY)
    start, _ = horizon(plant30)
    since, until = start + dt.timedelta(days=3), start + dt.timedelta(days=4)
    sim_post(mm, "/_sim/faults", {"malformed": 1, "path": "production"})
    report = sync_machinemetrics(s, spec(machines=("M01",)), since=since, until=until, retry_policy=FAST)
    assert report.ok, "a bad record is a dead letter, not a failed run"
    assert report.entities["production_events"].dead_lettered == 1
    expected = truth_events(plant30, machines=["M01"], start=since, end=until)
    with open_wh(s) as wh:
        dead = wh.read("dead_letters")
        assert len(dead) == 1
        row = dead.iloc[0]
        assert row["source"] == "machinemetrics" and row["target_table"] == "production_events"
        assert "goodParts" in row["reason"] and "12 pcs" in row["reason"]
        assert '"12 pcs"' in row["payload"] and "M01" in row["location"]
        assert wh.count("production_events") == len(expected) - 1   # every other record of the day
        assert watermarks(wh, "machinemetrics")["production:M01"] == until
    # once the source sends it right, a back-fill over the day stores it — once
    again = sync_machinemetrics(s, spec(machines=("M01",)), since=since, until=until, retry_policy=FAST)
    assert again.entities["production_events"].written == 1
    with open_wh(s) as wh:
        assert assert_same_hours(plant30, wh, machines=["M01"], start=since, end=until) == len(expected)


def test_a_source_unreachable_after_its_retries_fails_the_run_and_keeps_its_watermark(plant30, mm, tmp_path):
    s = settings_for(tmp_path, mm_base_url=mm, mm_api_key=KEY)
    start, _ = horizon(plant30)
    t1, t2 = start + dt.timedelta(days=3), start + dt.timedelta(days=4)
    assert sync_machinemetrics(s, spec(machines=("M01", "M02")), since=t1, until=t2, retry_policy=FAST).ok
    sim_post(mm, "/_sim/faults", {"http_503": 1000, "path": "production"})
    t3 = t2 + dt.timedelta(hours=8)
    report = sync_machinemetrics(s, spec(machines=("M01", "M02")), until=t3, retry_policy=FAST)
    assert not report.ok
    assert set(report.failures) == {"production:M01", "production:M02"}
    assert "HTTP 503" in report.reason() and "failed 4 time(s)" in report.reason()
    with open_wh(s) as wh:
        marks = watermarks(wh, "machinemetrics")
        assert marks["production:M01"] == marks["production:M02"] == t2, "not past what was stored"
        assert marks["states:M01"] == t3, "the other reports of the machine went on"
        runs = wh.read("sync_runs").sort_values("started_at")
        assert runs["status"].tolist() == ["ok", "failed"] and "HTTP 503" in runs["error"].iloc[-1]
    sim_reset(mm)
    assert sync_machinemetrics(s, spec(machines=("M01", "M02")), until=t3, retry_policy=FAST).ok
    with open_wh(s) as wh:
        assert assert_same_hours(plant30, wh, machines=["M01", "M02"], start=t1, end=t3) > 0


@pytest.mark.postgres
def test_the_warehouse_down_between_fetch_and_write_loses_and_duplicates_nothing(
        plant30, mm, tmp_path, pg_url, pg_role_url):
    url, role = pg_role_url
    s = settings_for(tmp_path, database_url=url, mm_base_url=mm, mm_api_key=KEY)
    start, _ = horizon(plant30)
    since, until = start + dt.timedelta(days=3), start + dt.timedelta(days=5)   # Thursday and Friday
    # every production request answers after 3 s: the run is fetching when the warehouse goes away
    sim_post(mm, "/_sim/faults", {"delay_s": 3, "delay_count": 1000, "path": "production"})
    done: dict[str, object] = {}
    worker = threading.Thread(target=lambda: done.update(report=sync_machinemetrics(
        s, spec(machines=("M01", "M02"), workers=2), since=since, until=until, retry_policy=FAST)))
    worker.start()
    deadline = time.monotonic() + 30
    while not any("production" in r["path"] for r in sim_requests(mm)) and time.monotonic() < deadline:
        time.sleep(0.1)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"ALTER ROLE {role} NOLOGIN")
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
    worker.join(120)
    report = done["report"]
    assert not report.ok and "the warehouse could not store" in report.error
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"ALTER ROLE {role} LOGIN")
    sim_reset(mm)
    with open_wh(s) as wh:
        # whatever was committed before the warehouse went away is complete up to its watermark
        stored = wh.read("production_events")
        for stream, mark in watermarks(wh, "machinemetrics").items():
            if stream.startswith("production:"):
                machine = stream.split(":")[1]
                got = stored[(stored["machine_id"] == machine) & (stored["time"] < mark)]
                assert len(got) == len(truth_events(plant30, machines=[machine], start=since, end=mark))
        assert not [m for s_, m in watermarks(wh, "machinemetrics").items() if m > until]
    report = sync_machinemetrics(s, spec(machines=("M01", "M02")), since=since, until=until, retry_policy=FAST)
    assert report.ok, report.lines()
    with open_wh(s) as wh:
        assert assert_same_hours(plant30, wh, machines=["M01", "M02"], start=since, end=until) > 0
        runs = wh.read("sync_runs")
        assert runs["status"].tolist() == ["ok"], "the failed run could not even be recorded: it is logged"


@pytest.mark.slow
def test_a_sync_killed_mid_write_resumes_without_losing_or_doubling(plant30, mm, tmp_path):
    """`workbench sync` (a process) is SIGKILLed while it fetches and writes; the next run stores
    exactly what the killed one had not, and a scheduled run after it finds nothing to do."""
    import os
    import shutil
    import signal
    import subprocess
    import sys
    from pathlib import Path

    home = tmp_path / "project"
    (home / "pipelines").mkdir(parents=True)
    root = Path(__file__).resolve().parents[2]
    shutil.copy(root / "pipelines" / "machinemetrics_sync.yaml", home / "pipelines")
    s = settings_for(home, mm_base_url=mm, mm_api_key=KEY)
    start, _ = horizon(plant30)
    since, until = start, start + dt.timedelta(days=12)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env.update(WORKBENCH_HOME=str(home), WORKBENCH_ENV_FILE=str(home / ".env"),
               WORKBENCH_DUCKDB_PATH=str(s.warehouse_path), WORKBENCH_MM_BASE_URL=mm, WORKBENCH_MM_API_KEY=KEY)
    args = [str(Path(sys.executable).with_name("workbench")), "sync", "machinemetrics",
            "--since", since.isoformat(), "--until", until.isoformat()]
    # slow answers, so the kill lands while some days are stored and others are not
    sim_post(mm, "/_sim/faults", {"delay_s": 0.15, "delay_count": 10_000})
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while len(sim_requests(mm)) < 60 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.5)  # past a commit of the writer (it gathers for up to 2 s)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    sim_reset(mm)
    expected = truth_events(plant30, start=since, end=until)
    with open_wh(s) as wh:
        stored = wh.count("production_events")
        assert wh.read("production_events")["event_id"].is_unique
    assert 0 < stored < len(expected), f"the kill should land mid-run ({stored} of {len(expected)})"

    again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    with open_wh(s) as wh:
        assert assert_same_hours(plant30, wh, start=since, end=until) == len(expected)
        assert set(watermarks(wh, "machinemetrics").values()) == {until}
    # the next scheduled run, from the watermarks: nothing to write
    after = sync_machinemetrics(s, spec(), until=until, retry_policy=FAST)
    assert after.ok and after.total("written") == 0
