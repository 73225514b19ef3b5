"""The daily report flow: extract → notebooks (concurrently) and their pages → index → summary → e-mail."""

from __future__ import annotations

import datetime as dt

from prefect import flow, get_run_logger, task
from prefect.futures import PrefectFuture, as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from flows import hooks
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


def _report_meta(pipeline: Pipeline, data: runs.RunData) -> dict[str, object]:
    """What every page of the run's report says about the run."""
    return {"title": f"{pipeline.description or pipeline.name} — {data.day:%A %d %B %Y}",
            "parameters": {"pipeline": pipeline.name, "date": data.day.isoformat(), **pipeline.parameters},
            "data_summary": data.summary, "code_version": reports.code_version()}


@task(name="run-notebook", task_run_name="run-notebook-{spec.name}")
def run_notebook(pipeline: Pipeline, spec: NotebookSpec, data: runs.RunData,
                 kernels: str | None = None, working_tree: bool = False) -> reports.SectionResult:
    return runs.run_notebook(config.settings(), pipeline, spec, data, kernels=kernels,
                             working_tree=working_tree)


@task(name="build-page", task_run_name="build-page-{section.name}")
def build_page(pipeline: Pipeline, data: runs.RunData, section: reports.SectionResult,
               meta: dict[str, object]) -> reports.SectionPage:
    return reports.build_section_page(section, report_dir=runs.run_dir(config.settings(), pipeline, data.day),
                                      generated_at=dt.datetime.now(dt.UTC), **meta)


def _run_sections(pipeline: Pipeline, data: runs.RunData, kernels: str | None, working_tree: bool = False
                  ) -> tuple[list[reports.SectionResult], list[reports.SectionPage],
                             PrefectFuture | None, PrefectFuture | None, dict[str, object]]:
    """At most ``pipeline.concurrency`` notebooks at a time, in :func:`workbench.runs.run_order`.
    Each page is written as soon as its notebook has run, and the e-mail's summary and charts
    as soon as the notebook that keeps the summary has — beside the notebooks still running."""
    meta = _report_meta(pipeline, data)  # the same on every page (one `git describe`, not one per page)
    by_name = {spec.name: spec for spec in pipeline.notebooks}
    queue = [by_name[n] for n in runs.run_order(config.settings(), pipeline, data.day)]
    running: list[tuple[str, PrefectFuture]] = []
    sections: dict[str, reports.SectionResult] = {}
    pages: dict[str, PrefectFuture] = {}
    summary = images = None
    while queue or running:
        while queue and len(running) < pipeline.concurrency:
            spec = queue.pop(0)
            running.append((spec.name, run_notebook.submit(pipeline, spec, data, kernels, working_tree)))
        done = next(as_completed([future for _, future in running]))
        name = next(n for n, future in running if future is done)
        running = [(n, future) for n, future in running if future is not done]
        section = sections[name] = done.result()
        pages[name] = build_page.submit(pipeline, data, section, meta)
        if summary is None and section.ok and runs.SUMMARY_RECORD in section.records:
            summary = daily_summary.submit(pipeline, data, [section])
            if pipeline.email is not None:
                images = draw_charts.submit(summary)
    order = [spec.name for spec in pipeline.notebooks]
    return [sections[n] for n in order], [pages[n].result() for n in order], summary, images, meta


@task(name="build-report")
def build_report(pipeline: Pipeline, data: runs.RunData, sections: list[reports.SectionResult],
                 pages: list[reports.SectionPage], meta: dict[str, object]) -> reports.ReportResult:
    settings = config.settings()
    return reports.build_report(
        sections, report_dir=runs.run_dir(settings, pipeline, data.day), generated_at=dt.datetime.now(dt.UTC),
        pages={page.name: page for page in pages},
        source_warnings=data.summary.get("source_warnings", ()),  # type: ignore[arg-type]
        **meta)


@task(name="daily-summary")
def daily_summary(pipeline: Pipeline, data: runs.RunData, sections: list[reports.SectionResult]):
    return runs.daily_summary(config.settings(), pipeline, data, sections)


@task(name="draw-charts")
def draw_charts(summary) -> reports.EmailCharts:
    return reports.email_charts(summary)


@task(name="send-email", retries=2, retry_delay_seconds=30)
def send_email(pipeline: Pipeline, data: runs.RunData, summary, report: reports.ReportResult,
               warnings: list[str], images: reports.EmailCharts | None = None,
               sections: list[reports.SectionResult] | None = None) -> reports.DeliveryResult:
    settings = config.settings()
    message = reports.compose_daily_email(
        summary, report=report, report_url=runs.report_url(settings, pipeline, data.day), warnings=warnings,
        sender=settings.mail_from, recipients=list(pipeline.email.recipients),  # type: ignore[union-attr]
        subject_prefix=pipeline.email.subject_prefix, images=images,  # type: ignore[union-attr]
        source_warnings=data.summary.get("source_warnings", ()),  # type: ignore[arg-type]
        ml_sections=runs.ml_sections(sections or []))
    marker = runs.run_dir(settings, pipeline, data.day) / "email.sent.json"
    return reports.deliver(message, settings=settings, outbox=settings.reports_path / "outbox", marker=marker)


def _artifact_key(pipeline: Pipeline, what: str) -> str:
    return f"{pipeline.name}-{what}".lower().replace("_", "-")


def _publish(pipeline: Pipeline, day: dt.date, title: str, summary, sections: list[reports.SectionResult],
             report: reports.ReportResult, delivery: reports.DeliveryResult | None) -> None:
    """Prefect artifacts of the run: a link to the report and a table of its outcome, so a
    scheduler sees the result in the Prefect UI without opening files."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact

    settings = config.settings()
    url = runs.report_url(settings, pipeline, day) or report.index_html.resolve().as_uri()
    create_link_artifact(url, link_text=f"{pipeline.name} {day.isoformat()}: {report.index_html}",
                         key=_artifact_key(pipeline, "report"),
                         description=f"The report of {day.isoformat()}")
    markdown = reports.outcome_markdown(summary, sections, title=title, index_html=str(report.index_html),
                                        delivery=delivery)
    create_markdown_artifact(markdown, key=_artifact_key(pipeline, "outcome"),
                             description=f"Headline KPIs and sections of {day.isoformat()}")


# Notebooks are limited by the pipeline's `concurrency` (see _run_sections); the other workers
# write report pages meanwhile.
@flow(name="daily-report", task_runner=ThreadPoolTaskRunner(max_workers=8), log_prints=True,
      on_failure=[hooks.notify_failure], on_crashed=[hooks.notify_failure])
def daily_report(pipeline: str = "daily_report", date: str | None = None,
                 working_tree: bool = False) -> dict[str, str]:
    """Run a report pipeline for one production day (default: the latest with data).

    Notebooks run as committed in git (``working_tree``: as they are on disk), with every
    parameter of their parameters cell. A failing notebook does not stop the others: its section
    is marked failed in the report, the e-mail still goes out with a visible warning, and the
    flow run ends Failed with the error. The run is renamed ``<pipeline> <day>`` once the day is
    known, and publishes a link to the report and its outcome as Prefect artifacts. A failed run
    notifies the pipeline's ``notify_on_failure`` addresses (see :mod:`flows.hooks`).
    """
    logger = get_run_logger()
    settings = config.settings()
    p = pipelines.get(pipeline, home=settings.home, default_timezone=settings.plant_timezone)
    with runs.notebook_kernels(settings) as kernels:  # imports while the data is extracted
        day = resolve_day(date)
        hooks.name_run(p, day)
        logger.info("%s: production day %s%s", p.name, day.isoformat(),
                    "" if date else " (the latest with production data)")
        data = prepare_data.with_options(retries=p.retries)(p, day)
        sections, pages, kept_summary, drawn, meta = _run_sections(p, data, kernels, working_tree)
    report = build_report(p, data, sections, pages, meta)
    warnings = [f"Section '{s.name}' failed: {s.error}" for s in sections if s.status != "ok"]
    # The summary a notebook kept (its charts drawn meanwhile), else computed now.
    summary = kept_summary.result() if kept_summary is not None else daily_summary(p, data, sections)
    delivery = None
    if p.email is not None:
        images = drawn.result() if drawn is not None else draw_charts(summary)
        delivery = send_email.with_options(retries=p.retries)(p, data, summary, report, warnings, images,
                                                             sections)
        logger.info("e-mail: %s %s", delivery.method, delivery.path or "")
    logger.info("report: %s", report.index_html)
    _publish(p, day, str(meta["title"]), summary, sections, report, delivery)
    result = {"day": day.isoformat(), "index_html": str(report.index_html),
              "email": str(delivery.path) if delivery and delivery.path else ""}
    if warnings:
        details = "\n\n".join(f"{s.name}: {s.error}\n{s.traceback or ''}"
                                for s in sections if s.status != "ok")
        raise ReportFailed(f"{len(warnings)} section(s) failed; report at {report.index_html}\n\n{details}")
    return result
