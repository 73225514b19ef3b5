"""The daily report through real Prefect runs: task states, concurrency, failure semantics."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest

from workbench import runs

pytestmark = pytest.mark.slow


def task_runs(flow_state):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import TaskRunSort

    with get_client(sync_client=True) as client:
        # the sync client sends limit/sort as null unless given, which the server refuses
        return client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_state.state_details.flow_run_id])),
            sort=TaskRunSort.EXPECTED_START_TIME_ASC, limit=200)


def outbox(project: Path) -> list[Path]:
    return sorted((project / "reports" / "outbox").glob("*.eml"))


def test_daily_flow_runs_every_task_and_notebooks_concurrently(prefect_server, project, settings_for) -> None:
    flows = runs.load_flows(project)
    state = flows.daily_report(pipeline="good", return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    tasks = task_runs(state)
    assert all(t.state.is_completed() for t in tasks), [(t.name, t.state.name) for t in tasks]
    for step in ("resolve-day", "prepare-data", "build-report", "daily-summary", "send-email"):
        assert sum(t.name.startswith(step) for t in tasks) == 1, step
    notebook_runs = [t for t in tasks if t.name.startswith("run-notebook-")]
    assert sorted(t.name for t in notebook_runs) == ["run-notebook-first", "run-notebook-second"]
    a, b = sorted(notebook_runs, key=lambda t: t.start_time)
    assert b.start_time < a.end_time, "the two notebooks should run at the same time"
    index = Path(result["index_html"])
    assert index.is_file() and (index.parent / "first.html").is_file()
    assert len(outbox(project)) == 1
    # a second run of the same day (a retry, or a manual re-run) does not send again
    again = flows.daily_report(pipeline="good", return_state=True)
    assert again.is_completed()
    assert len(outbox(project)) == 1


def test_the_pipeline_concurrency_limits_the_notebooks_running_at_once(prefect_server, project,
                                                                      settings_for) -> None:
    flows = runs.load_flows(project)
    state = flows.daily_report(pipeline="one_at_a_time", return_state=True)
    assert state.is_completed(), state.message
    tasks = task_runs(state)
    a, b = sorted((t for t in tasks if t.name.startswith("run-notebook-")), key=lambda t: t.start_time)
    assert b.start_time >= a.end_time, "concurrency 1: the second notebook starts after the first"
    # each page is written by its own task as soon as its notebook has run
    pages = {t.name: t for t in tasks if t.name.startswith("build-page-")}
    assert set(pages) == {"build-page-first", "build-page-second"}
    assert pages[f"build-page-{a.name.removeprefix('run-notebook-')}"].start_time >= a.end_time


def test_a_failing_notebook_fails_the_run_but_the_report_and_email_go_out(
        prefect_server, project, settings_for) -> None:
    flows = runs.load_flows(project)
    before = len(outbox(project))
    state = flows.daily_report(pipeline="partly_broken", return_state=True)
    assert state.is_failed()
    assert "the sensor table is empty for this line" in state.message
    tasks = task_runs(state)
    by_name = {t.name: t for t in tasks}
    assert by_name["run-notebook-first"].state.is_completed()
    assert by_name["run-notebook-broken"].state.is_completed()   # the task ran; its section failed
    assert next(t for t in tasks if t.name.startswith("send-email")).state.is_completed()
    day_dir = next((project / "reports" / "partly_broken").iterdir())
    index = (day_dir / "index.html").read_text()
    assert "broken" in index and "failed" in index.lower()
    assert "the sensor table is empty for this line" in (day_dir / "broken.html").read_text()
    mails = outbox(project)
    assert len(mails) == before + 1
    msg = email.message_from_bytes(mails[-1].read_bytes(), policy=email.policy.default)
    assert "[WARNING]" in msg["Subject"] or "⚠" in msg["Subject"]
    body = msg.get_body(("plain",)).get_content()
    assert "broken" in body
    # the retry of a failed run does not send a second e-mail for the day
    again = flows.daily_report(pipeline="partly_broken", return_state=True)
    assert again.is_failed()
    assert len(outbox(project)) == before + 1
