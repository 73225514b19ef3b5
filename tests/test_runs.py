"""What a pipeline run needs besides the analytics (workbench.runs): run order, kept summaries, kernels."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import nbformat
import pytest

from workbench import config, jobs, pipelines, runs
from workbench.demo import load_plant
from workbench.ml import records as ml_records
from workbench.reports import SectionResult
from workbench.store import DuckDBWarehouse

DAY = dt.date(2026, 11, 20)
NOTEBOOKS = ("summary", "slow", "quick", "model", "new")


@pytest.fixture
def project(tmp_path: Path, use_home) -> Path:
    for name in NOTEBOOKS:
        nb = nbformat.v4.new_notebook()
        cell = nbformat.v4.new_code_cell('date = ""\nwarehouse = ""')
        cell.metadata["tags"] = ["parameters"]
        nb.cells = [cell]
        (tmp_path / "notebooks").mkdir(exist_ok=True)
        nbformat.write(nb, tmp_path / "notebooks" / f"{name}.ipynb")
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "daily.yaml").write_text(
        "kind: report\nschedule: {cron: '0 5 * * *'}\nnotebooks:\n"
        + "".join(f"  - {{name: {n}, path: notebooks/{n}.ipynb}}\n" for n in NOTEBOOKS))
    use_home(tmp_path)
    return tmp_path


def _executed(folder: Path, name: str, cell_seconds: list[float], *, keeps_summary: bool = False,
              keeps: str = "") -> None:
    """An executed notebook as papermill leaves it: per-cell durations, maybe a kept record."""
    cells = []
    for i, seconds in enumerate(cell_seconds):
        outputs = []
        if (keeps_summary or keeps) and i == 0:
            outputs = [{"output_type": "display_data", "metadata": {},
                        "data": {config.RECORD_MIME: {"name": keeps or runs.SUMMARY_RECORD, "value": {}}}}]
        cells.append({"cell_type": "code", "metadata": {"papermill": {"duration": seconds}}, "outputs": outputs,
                      "source": "", "execution_count": i + 1})
    (folder / "notebooks").mkdir(parents=True, exist_ok=True)
    # the section's wall time says nothing: the first notebooks of a run also wait for kernels
    meta = {"papermill": {"duration": 100.0}}
    (folder / "notebooks" / f"{name}.ipynb").write_text(json.dumps({"cells": cells, "metadata": meta}))


def test_run_order_starts_what_feeds_the_email_then_the_longest(project: Path) -> None:
    settings = config.settings()
    pipeline = pipelines.get("daily", home=project, default_timezone=settings.plant_timezone)
    assert runs.run_order(settings, pipeline, DAY) == list(NOTEBOOKS)  # no history: pipeline order
    older = runs.run_dir(settings, pipeline, DAY - dt.timedelta(days=1))
    _executed(older, "summary", [0.2, 0.1], keeps_summary=True)
    _executed(older, "slow", [1.5, 2.0])
    _executed(older, "quick", [0.1])
    # a model section's record is read only when the e-mail is composed: it goes by its length
    _executed(older, "model", [0.5], keeps=ml_records.ANOMALIES_RECORD)
    later = runs.run_dir(settings, pipeline, DAY + dt.timedelta(days=1))  # after the reported day: ignored
    _executed(later, "quick", [9.0])
    assert runs.run_order(settings, pipeline, DAY) == ["new", "summary", "slow", "model", "quick"]


def test_the_summary_a_notebook_kept_is_used_and_a_failed_one_is_not(small_plant, project: Path) -> None:
    settings = config.settings()
    pipeline = pipelines.get("daily", home=project, default_timezone=settings.plant_timezone)
    tz = small_plant.config.timezone
    extract = project / "extract.duckdb"
    with DuckDBWarehouse(extract) as wh:
        load_plant(small_plant, wh, truth_dir=project / "truth")
        day = jobs.latest_production_day(wh, tz=tz)
        computed = jobs.daily_summary_from(wh, day=day, tz=settings.plant_timezone, top=2)
        full = jobs.daily_summary_from(wh, day=day, tz=settings.plant_timezone)
    assert len(full.downtime_top) > 2, "the test needs a day with more than two downtime categories"
    start = dt.datetime.now(dt.UTC)
    data = runs.RunData(day, start, start, extract, {})

    def section(status: str, kept) -> SectionResult:
        return SectionResult(name="summary", notebook=Path("x.ipynb"), ipynb_path=Path("x.ipynb"), status=status,
                             error=None, traceback=None, started_at=start, finished_at=start,
                             records={} if kept is None else {runs.SUMMARY_RECORD: kept})

    kept = runs.daily_summary(settings, pipeline, data, [section("ok", computed.to_record())])
    assert len(kept.downtime_top) <= 2  # the notebook's own choice (top=2), not the pipeline default
    assert kept.headline == computed.headline
    # a failed notebook's record, or one of another day, is not trusted: the summary is computed
    other_day = computed.to_record() | {"day": (day - dt.timedelta(days=1)).isoformat()}
    for sections in ([section("failed", computed.to_record())], [section("ok", other_day)], []):
        again = runs.daily_summary(settings, pipeline, data, sections)
        assert again.day == day
        assert again.downtime_top["reason_category"].tolist() == full.downtime_top["reason_category"].tolist()


def test_notebook_kernels_can_be_switched_off(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_FORK_KERNELS", "false")
    config.reset()
    with runs.notebook_kernels(config.settings()) as address:
        assert address is None


def _notices(project: Path) -> list:
    import email
    import email.policy

    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for p in sorted((project / "reports" / "outbox").glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)]


def test_a_failed_run_tells_who_the_pipeline_names_once_per_failure(project: Path) -> None:
    (project / "pipelines" / "mailed.yaml").write_text(
        "kind: report\nschedule: {cron: '0 5 * * *'}\nnotebooks: [{name: new, path: notebooks/new.ipynb}]\n"
        "email: {recipients: [boss@plant.example], subject_prefix: '[P1]'}\n"
        "notify_on_failure: [it@plant.example]\n")
    settings = config.settings()
    pipeline = pipelines.get("mailed", home=project, default_timezone=settings.plant_timezone)
    error = "WarehouseBusyError: a Jupyter notebook kernel holds the warehouse\nmore detail"
    sent = runs.notify_failure(settings, pipeline, run_name="mailed 2026-11-20", error=error, day=DAY,
                               run_url="http://analytics01:4200/runs/flow-run/1")
    assert sent is not None and sent.method == "outbox"
    (msg,) = _notices(project)
    # no report went out: the managers hear it too
    assert msg["Subject"] == "[P1] FAILED: mailed for 2026-11-20"
    assert msg["To"] == "it@plant.example, boss@plant.example"
    body = msg.get_content()
    assert "a Jupyter notebook kernel holds the warehouse" in body
    assert "http://analytics01:4200/runs/flow-run/1" in body
    assert "workbench run mailed --date 2026-11-20" in body
    # the same failure again (an hourly retry): logged, not mailed again
    assert runs.notify_failure(settings, pipeline, run_name="mailed 2026-11-20", error=error, day=DAY) is None
    assert len(_notices(project)) == 1
    # another failure is news; once the day's report e-mail went out, only IT hears
    marker = runs.run_dir(settings, pipeline, DAY) / "email.sent.json"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("{}")
    runs.notify_failure(settings, pipeline, run_name="mailed 2026-11-20", error="ReportFailed: 1 section(s)",
                        day=DAY)
    last = _notices(project)[-1]
    assert last["To"] == "it@plant.example"
    assert "The report e-mail went out" in last.get_content()


def test_a_pipeline_that_names_nobody_only_logs(project: Path, caplog) -> None:
    settings = config.settings()
    pipeline = pipelines.get("daily", home=project, default_timezone=settings.plant_timezone)
    assert runs.notify_failure(settings, pipeline, run_name="daily", error="boom") is None
    assert "names nobody to tell" in caplog.text
