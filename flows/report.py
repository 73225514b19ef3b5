"""The daily report flow: extract → notebooks (concurrently) → HTML report → summary → e-mail."""

from __future__ import annotations

import datetime as dt

from prefect import flow, get_run_logger, task
from prefect.task_runners import ThreadPoolTaskRunner

from workbench import config, pipelines, reports, runs
from workbench.pipelines import NotebookSpec, Pipeline


class ReportFailed(RuntimeError):  # noqa: N818 — it names the flow's outcome
    """Some sections of the report failed; the report and the e-mail say which."""


@task(name="resolve-day")
def resolve_day(date: str | None) -> dt.date:
    return runs.report_day(config.settings(), date)


@task(name="prepare-data", retries=2, retry_delay_seconds=15)
def prepare_data(pipeline: Pipeline, day: dt.date) -> runs.RunData:
    return runs.prepare_data(config.settings(), pipeline, day)


@task(name="run-notebook", task_run_name="run-notebook-{spec.name}")
def run_notebook(pipeline: Pipeline, spec: NotebookSpec, data: runs.RunData) -> reports.SectionResult:
    settings = config.settings()
    out = runs.run_dir(settings, pipeline, data.day)
    params = pipeline.notebook_parameters(spec, date=data.day.isoformat(), warehouse=str(data.extract))
    return reports.run_section(spec.path, out_dir=out / "notebooks", parameters=params, cwd=settings.home)


@task(name="build-report")
def build_report(pipeline: Pipeline, data: runs.RunData,
                 sections: list[reports.SectionResult]) -> reports.ReportResult:
    settings = config.settings()
    return reports.build_report(
        sections, report_dir=runs.run_dir(settings, pipeline, data.day),
        title=f"{pipeline.description or pipeline.name} — {data.day:%A %d %B %Y}",
        parameters={"pipeline": pipeline.name, "date": data.day.isoformat(), **pipeline.parameters},
        data_summary=data.summary, code_version=reports.code_version(), generated_at=dt.datetime.now(dt.UTC))


@task(name="daily-summary")
def daily_summary(pipeline: Pipeline, data: runs.RunData):
    return runs.daily_summary(config.settings(), pipeline, data)


@task(name="send-email", retries=2, retry_delay_seconds=30)
def send_email(pipeline: Pipeline, data: runs.RunData, summary, report: reports.ReportResult,
               warnings: list[str]) -> reports.DeliveryResult:
    settings = config.settings()
    message = reports.compose_daily_email(
        summary, report=report, report_url=runs.report_url(settings, pipeline, data.day), warnings=warnings,
        sender=settings.mail_from, recipients=list(pipeline.email.recipients),  # type: ignore[union-attr]
        subject_prefix=pipeline.email.subject_prefix)  # type: ignore[union-attr]
    marker = runs.run_dir(settings, pipeline, data.day) / "email.sent.json"
    return reports.deliver(message, settings=settings, outbox=settings.reports_path / "outbox", marker=marker)


@flow(name="daily-report", task_runner=ThreadPoolTaskRunner(max_workers=2), log_prints=True)
def daily_report(pipeline: str = "daily_report", date: str | None = None) -> dict[str, str]:
    """Run a report pipeline for one production day (default: the latest with data).

    A failing notebook does not stop the others: its section is marked failed in the report, the
    e-mail still goes out with a visible warning, and the flow run ends Failed with the error.
    """
    logger = get_run_logger()
    settings = config.settings()
    p = pipelines.get(pipeline, home=settings.home, default_timezone=settings.plant_timezone)
    day = resolve_day(date)
    data = prepare_data.with_options(retries=p.retries)(p, day)
    futures = [run_notebook.submit(p, spec, data) for spec in p.notebooks]
    sections = [f.result() for f in futures]
    report = build_report(p, data, sections)
    warnings = [f"Section '{s.name}' failed: {s.error}" for s in sections if s.status != "ok"]
    summary = daily_summary(p, data)
    delivery = None
    if p.email is not None:
        delivery = send_email.with_options(retries=p.retries)(p, data, summary, report, warnings)
        logger.info("e-mail: %s %s", delivery.method, delivery.path or "")
    logger.info("report: %s", report.index_html)
    result = {"day": day.isoformat(), "index_html": str(report.index_html),
              "email": str(delivery.path) if delivery and delivery.path else ""}
    if warnings:
        details = "\n\n".join(f"{s.name}: {s.error}\n{s.traceback or ''}"
                                for s in sections if s.status != "ok")
        raise ReportFailed(f"{len(warnings)} section(s) failed; report at {report.index_html}\n\n{details}")
    return result
