"""Reports: run the analysis notebooks, export them as offline HTML, send the daily e-mail.

The public API used by the Prefect flows::

    validate_parameters(notebook, parameters)            # unknown keys are an error, not a warning
    run_section(notebook, out_dir=, parameters=, …)       # -> SectionResult (never raises on a failing cell)
    build_report(sections, report_dir=, title=, …)       # -> ReportResult (pages + index.html)
    compose_daily_email(summary, report=, report_url=, …) # -> EmailMessage
    deliver(message, settings=, outbox=, marker=)         # -> DeliveryResult (SMTP or outbox, once)
    code_version()                                        # "0.1.0+c6a7ec7-dirty"
"""

from __future__ import annotations

from workbench.errors import MailError, ReportError
from workbench.reports.execute import SectionResult, run_section, validate_parameters
from workbench.reports.html import ReportResult, build_report, external_urls
from workbench.reports.mail import DeliveryResult, compose_daily_email, deliver, subject_for
from workbench.reports.version import code_version

__all__ = [
    "DeliveryResult",
    "MailError",
    "ReportError",
    "ReportResult",
    "SectionResult",
    "build_report",
    "code_version",
    "compose_daily_email",
    "deliver",
    "external_urls",
    "run_section",
    "subject_for",
    "validate_parameters",
]
