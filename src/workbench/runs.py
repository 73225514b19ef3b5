"""What a pipeline run needs besides the analytics: its directory, its data extract, its day.

The Prefect flows in ``flows/`` wrap these functions one task each; ``workbench run`` and the
tests call the same flows.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from workbench import jobs
from workbench.config import Settings
from workbench.errors import ConfigError, WorkbenchError
from workbench.pipelines import NotebookSpec, Pipeline
from workbench.sources import health
from workbench.store import DuckDBWarehouse, open_warehouse

if TYPE_CHECKING:
    from workbench.ml.records import MLSection
    from workbench.reports.execute import SectionResult
    from workbench.summary import DailySummary

log = logging.getLogger(__name__)

#: Name under which a notebook keeps the day's summary for the e-mail (``nb.record``).
SUMMARY_RECORD = "daily_summary"

#: A failure repeated the same way within this time is logged, not mailed again.
FAILURE_NOTICE_QUIET = dt.timedelta(hours=6)

#: Tables a report extract carries (everything the notebooks read).
EXTRACT_TABLES = (
    "machines", "parts", "part_rates", "reason_codes", "shift_calendar", "planned_stops", "work_orders",
    "characteristics", "machine_states", "downtime_events", "production_events", "scrap_events",
    "quality_measurements", "inspections", "oee_hourly",
    # the model sections the morning model run computed ahead for the day (workbench.ml.stored)
    "ml_sections",
    # the analysts' verdicts on the anomalies of the days before (workbench.ml.reviews)
    "ml_anomaly_reviews",
)


@dataclass(frozen=True)
class RunData:
    """The data of one report run: the extract the notebooks read and what it holds."""

    day: dt.date
    start: dt.datetime
    end: dt.datetime
    extract: Path
    summary: dict[str, object]


def run_dir(settings: Settings, pipeline: Pipeline, day: dt.date) -> Path:
    """``reports/<pipeline>/<date>/`` — everything one run writes."""
    return settings.reports_path / pipeline.name / day.isoformat()


def run_order(settings: Settings, pipeline: Pipeline, day: dt.date) -> list[str]:
    """The pipeline's notebooks in the order to start them.

    From the latest earlier run of the pipeline (this day's, when re-run): first the notebooks
    that kept results for steps that start before the last notebook ends (``nb.record``: the
    summary's charts; not the model sections, read when the e-mail is composed), then
    the others longest first, so that the last notebook to finish is a short one. "Longest" by
    the time their cells ran, not the section's wall time: the first notebooks of a run also
    wait for their kernels, which says nothing about the notebook. Notebooks without history
    keep their pipeline order, ahead of the others. The report's order is the pipeline's
    whatever the run order.
    """

    from workbench.ml.records import MAIL_RECORDS
    from workbench.reports.execute import records_in

    names = [spec.name for spec in pipeline.notebooks]
    base = settings.reports_path / pipeline.name
    earlier = sorted((p for p in base.glob("????-??-??") if p.name <= day.isoformat()), reverse=True)
    took: dict[str, float] = {}
    feeds: set[str] = set()
    for folder in earlier[:1]:
        for name in names:
            try:
                nb = json.loads((folder / "notebooks" / f"{name}.ipynb").read_text(encoding="utf-8"))
                took[name] = sum(float(c["metadata"]["papermill"]["duration"] or 0.0) for c in nb["cells"])
            except (OSError, ValueError, KeyError, TypeError):
                continue  # not run then, or unreadable: no history for it
            # The model sections' records are read only when the e-mail is composed, after every
            # notebook: they wait for nothing, so those notebooks go by their length like the rest.
            if set(records_in(nb)) - set(MAIL_RECORDS):
                feeds.add(name)
    unknown = [n for n in names if n not in took]
    return unknown + sorted((n for n in names if n in took), key=lambda n: (n not in feeds, -took[n]))


def report_day(settings: Settings, date: str | dt.date | None) -> dt.date:
    """The production day to report: the given one, or the latest with production data."""
    if isinstance(date, dt.date):
        return date
    if date:
        try:
            return dt.date.fromisoformat(date)
        except ValueError:
            raise ConfigError(f"date {date!r} is not a date like 2026-11-20") from None
    with open_warehouse(settings, read_only=settings.engine == "duckdb") as wh:
        return jobs.latest_production_day(wh, tz=settings.plant_timezone)


def prepare_data(settings: Settings, pipeline: Pipeline, day: dt.date) -> RunData:
    """Refresh ``oee_hourly`` for the day and export the run's DuckDB extract.

    The extract covers the report day plus ``baseline_days`` before it (SPC limits, trends) and
    is what every notebook of the run reads, so the notebooks see one consistent snapshot even
    while collectors keep writing, and a DuckDB warehouse is never opened by several kernels.
    """
    tz = settings.plant_timezone
    with open_warehouse(settings) as wh:
        start, end = jobs.production_day_range(wh, first=day, last=day + dt.timedelta(days=1), tz=tz)
        if wh.count("production_events") == 0:
            raise WorkbenchError(f"{wh.location} has no production data: nothing to report for {day}")
        jobs.roll_up_oee_hourly(wh, start=start, end=end, tz=tz,
                                micro_stop_threshold_s=settings.micro_stop_threshold_s)
        # Before anything is reported: which sources were stale during the day or are now, so the
        # report and the e-mail say up front which numbers are incomplete and why.
        health.check_sources(wh, settings)
        source_warnings = health.stale_notices(wh, start=start, end=end)
        extract = run_dir(settings, pipeline, day) / "data" / "extract.duckdb"
        ranges = extract_ranges(pipeline, start=start, end=end)
        copied = wh.export_extract(extract, tables=list(ranges), ranges=ranges)
        source = wh.location
    usual = (start - dt.timedelta(days=pipeline.baseline_days), end)
    return RunData(day, start, end, extract, {
        "source": source, "rows": copied, "report_start": start.isoformat(), "report_end": end.isoformat(),
        "extract_start": usual[0].isoformat(),
        # the tables whose range differs from extract_start – report_end
        "extract_ranges": {name: [lo.isoformat(), hi.isoformat()] for name, (lo, hi) in ranges.items()
                           if lo is not None and hi is not None and (lo, hi) != usual},
        "source_warnings": source_warnings,
    })


def extract_ranges(pipeline: Pipeline, *, start: dt.datetime, end: dt.datetime
                   ) -> dict[str, tuple[dt.datetime | None, dt.datetime | None]]:
    """Each table of a run's extract and the range of its rows (None, None: the whole table).

    :data:`EXTRACT_TABLES` plus the tables of the pipeline's ``extract:`` block; a table's rows
    from ``days_before`` before the report day's ``start`` (default ``baseline_days``) to
    ``days_after`` after its ``end`` (default 0).
    """
    from workbench import schema

    out: dict[str, tuple[dt.datetime | None, dt.datetime | None]] = {}
    for name in (*EXTRACT_TABLES, *(t for t in pipeline.extract if t not in EXTRACT_TABLES)):
        if schema.table(name).time_column is None:
            out[name] = (None, None)
            continue
        span = pipeline.extract_range(name)
        out[name] = (start - dt.timedelta(days=span.days_before), end + dt.timedelta(days=span.days_after))
    return out


def run_notebook(settings: Settings, pipeline: Pipeline, spec: NotebookSpec, data: RunData, *,
                 kernels: str | None = None, working_tree: bool = False) -> SectionResult:
    """Execute one section of a report run: the notebook as committed, with every parameter.

    The committed version (see :mod:`workbench.reports.sources`) runs with all the parameters of
    its ``parameters`` cell: the flow's ``date`` and ``warehouse`` (the run's extract), the
    pipeline's values, else the committed defaults — so an analyst's edit in the working tree
    never changes a scheduled report, and the page lists every parameter.

    Parameters
    ----------
    spec : NotebookSpec
        The section.
    data : RunData
        From :func:`prepare_data`.
    kernels : str, optional
        Address of the run's kernel zygote (:func:`notebook_kernels`).
    working_tree : bool
        Run the notebook as it is on disk instead (developing a notebook; the page says so).

    Raises
    ------
    ReportError
        A configuration error: the notebook is not committed, a parameter it lacks, a default
        that is not a literal.
    """
    from workbench import reports

    out = run_dir(settings, pipeline, data.day)
    source = reports.notebook_source(spec.path, home=settings.home, copy_dir=out / "sources",
                                     working_tree=working_tree)
    if source.modified and not working_tree:
        log.warning("%s: %s", spec.name, source.origin)
    given = pipeline.notebook_parameters(spec, date=data.day.isoformat(), warehouse=str(data.extract))
    # Unknown names are refused by run_section (validate_parameters), with the notebook's list.
    params = reports.complete_parameters(source.path, given)
    return reports.run_section(source.path, out_dir=out / "notebooks", parameters=params, cwd=settings.home,
                               kernels=kernels, origin=source.origin)


def daily_summary(settings: Settings, pipeline: Pipeline, data: RunData,
                  sections: Sequence[SectionResult] = ()) -> DailySummary:
    """The day's :class:`~workbench.summary.DailySummary`.

    The one the run's ``daily_summary`` notebook computed and kept (``nb.record`` under
    :data:`SUMMARY_RECORD`) when a section that ran to the end has it — so the e-mail says
    exactly what that page shows — else computed from the run's extract (the notebook failed,
    or the pipeline has none).

    Parameters
    ----------
    sections : sequence of SectionResult
        The run's executed notebooks.
    """
    from workbench.summary import DailySummary

    for section in sections:
        kept = section.records.get(SUMMARY_RECORD) if section.ok else None
        if kept is None:
            continue
        try:
            found = DailySummary.from_record(kept)  # type: ignore[arg-type]
        except WorkbenchError as exc:
            log.warning("section %s: %s; computing the summary again", section.name, exc)
            continue
        if found.day == data.day:
            return found
        log.warning("section %s kept the summary of %s, not of %s; computing it again",
                    section.name, found.day, data.day)
    with DuckDBWarehouse(data.extract, read_only=True) as wh:
        return jobs.daily_summary_from(wh, day=data.day, tz=settings.plant_timezone,
                                       thresholds=pipeline.thresholds,
                                       micro_stop_threshold_s=settings.micro_stop_threshold_s)


def ml_sections(sections: Sequence[SectionResult]) -> list[MLSection]:
    """The model sections the run's notebooks kept for the e-mail, in the e-mail's order.

    "Likely causes of uncoded stops", "anomalies needing a look", "the week ahead"
    (:data:`workbench.ml.records.MAIL_RECORDS`), from the sections that ran to the end; a
    pipeline without those notebooks has none. A failed notebook's section is left out (the
    e-mail's warnings name the failed section); an unreadable record is logged and left out.
    """
    from workbench.ml.records import MAIL_RECORDS, MLSection

    found: dict[str, MLSection] = {}
    for section in sections:
        if not section.ok:
            continue
        for name in MAIL_RECORDS:
            if name in section.records and name not in found:
                try:
                    found[name] = MLSection.from_record(section.records[name])  # type: ignore[arg-type]
                except WorkbenchError as exc:
                    log.warning("section %s: its %s record is unreadable: %s", section.name, name, exc)
    return [found[name] for name in MAIL_RECORDS if name in found]


def notify_failure(settings: Settings, pipeline: Pipeline, *, run_name: str, error: str,
                   day: dt.date | None = None, run_url: str | None = None):
    """Tell people that a scheduled run failed; returns the :class:`~workbench.reports.DeliveryResult`,
    or None when the pipeline names nobody.

    Who: the pipeline's ``notify_on_failure`` addresses, and its report recipients unless the
    day's report e-mail went out anyway (a failed section: that e-mail carries the warning).
    Delivered like the report (SMTP, else the outbox). The same failure (same first line of
    the error, same day) within :data:`FAILURE_NOTICE_QUIET` of the last notice is only logged.
    """
    from workbench import reports

    sent = day is not None and (run_dir(settings, pipeline, day) / "email.sent.json").exists()
    recipients = list(pipeline.notify_on_failure)
    if pipeline.email is not None and not sent:
        recipients += [r for r in pipeline.email.recipients if r not in recipients]
    if not recipients:
        log.error("%s failed and the pipeline names nobody to tell (notify_on_failure): %s", run_name, error)
        return None
    # An hourly pipeline that keeps failing the same way tells people once, not 24 times a day.
    last_path = settings.reports_path / pipeline.name / "failure-notice.json"
    headline = (error.strip().splitlines() or [""])[0]
    now = dt.datetime.now(dt.UTC)
    try:
        last = json.loads(last_path.read_text(encoding="utf-8"))
        repeated = (last.get("error") == headline and last.get("day") == (day.isoformat() if day else None)
                    and now - dt.datetime.fromisoformat(last["sent_at"]) < FAILURE_NOTICE_QUIET)
    except (OSError, ValueError, KeyError, TypeError):
        repeated = False
    if repeated:
        log.error("%s failed again the same way (notice already sent at %s): %s", run_name, last["sent_at"],
                  headline)
        return None
    message = reports.compose_failure_email(
        pipeline=pipeline.name, run_name=run_name, error=error, sender=settings.mail_from,
        recipients=recipients, subject_prefix=pipeline.email.subject_prefix if pipeline.email else "",
        day=day, run_url=run_url, report_sent=sent)
    delivery = reports.deliver(message, settings=settings, outbox=settings.reports_path / "outbox")
    last_path.parent.mkdir(parents=True, exist_ok=True)
    last_path.write_text(json.dumps({"error": headline, "day": day.isoformat() if day else None,
                                     "sent_at": now.isoformat()}), encoding="utf-8")
    return delivery


def report_url(settings: Settings, pipeline: Pipeline, day: dt.date) -> str | None:
    """Link to the run's index.html when reports/ is served (``WORKBENCH_REPORT_BASE_URL``)."""
    if not settings.report_base_url:
        return None
    return f"{settings.report_base_url.rstrip('/')}/{pipeline.name}/{day.isoformat()}/index.html"


def load_flows(home: Path) -> ModuleType:
    """Import the project's ``flows`` package (flows live beside, not inside, the library)."""
    from workbench.scheduling import quiet_prefect

    quiet_prefect()  # no usage telemetry from Prefect's temporary server
    if not (home / "flows" / "__init__.py").is_file():
        raise ConfigError(f"no flows package at {home / 'flows'}")
    loaded = sys.modules.get("flows")
    if loaded is not None and Path(loaded.__file__ or "").resolve().parent != (home / "flows").resolve():
        # Another project's flows (tests point the settings at several projects in one process).
        stale = Path(loaded.__file__ or "").resolve().parents[1]
        for name in [n for n in sys.modules if n == "flows" or n.startswith("flows.")]:
            del sys.modules[name]
        while str(stale) in sys.path:
            sys.path.remove(str(stale))
    if str(home) not in sys.path:
        sys.path.insert(0, str(home))
    module = importlib.import_module("flows")
    if Path(module.__file__ or "").resolve().parent != (home / "flows").resolve():
        raise ConfigError(f"'flows' resolves to {module.__file__}, not {home / 'flows'}")
    return module


@contextlib.contextmanager
def notebook_kernels(settings: Settings, *, kernel_name: str = "workbench") -> Iterator[str | None]:
    """A kernel zygote for the notebooks of one run (see :mod:`workbench.reports.kernels`).

    Yields its address for :func:`workbench.reports.run_section` (``kernels=``), or None — each
    notebook then starts its own interpreter — when ``WORKBENCH_FORK_KERNELS`` is false, the
    platform cannot fork, or the zygote cannot be started (logged). The zygote starts importing
    at once, so it is ready by the time the data extract is. It stops when the block ends.
    """
    from workbench.reports import kernels

    if not settings.fork_kernels or not kernels.supported():
        yield None
        return
    try:
        zygote = kernels.KernelZygote(kernel_name, cwd=settings.home)
    except (WorkbenchError, OSError) as exc:
        log.warning("notebook kernels start the usual way: %s", exc)
        yield None
        return
    try:
        yield zygote.address
    finally:
        zygote.close()
