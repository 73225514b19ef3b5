"""Reports: run the analysis notebooks, export them as offline HTML, send the daily e-mail.

The public API used by the Prefect flows::

    validate_parameters(notebook, parameters)            # unknown keys are an error, not a warning
    KernelZygote(kernel_name)                             # forks fresh kernels with the imports done
    notebook_source(notebook, home=, copy_dir=)         # the committed version a scheduled run executes
    complete_parameters(notebook, given)                 # every parameter: given, else the default
    run_section(notebook, out_dir=, parameters=, …)       # -> SectionResult (never raises on a failing cell)
    read_records(ipynb_path)                              # results a notebook kept with notebook.record
    build_section_page(section, report_dir=, title=, …)  # -> SectionPage (as soon as a notebook has run)
    build_report(sections, report_dir=, title=, …)       # -> ReportResult (pages + index.html)
    email_charts(summary)                                 # -> EmailCharts (PNGs, drawn early)
    compose_daily_email(summary, report=, report_url=, …) # -> EmailMessage
    deliver(message, settings=, outbox=, marker=)         # -> DeliveryResult (SMTP or outbox, once)
    code_version()                                        # "0.1.0+c6a7ec7-dirty"
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from workbench.errors import MailError, ReportError

if TYPE_CHECKING:
    from workbench.reports.execute import SectionResult, read_records, run_section, validate_parameters
    from workbench.reports.html import (
        ReportResult,
        SectionPage,
        build_report,
        build_section_page,
        external_urls,
    )
    from workbench.reports.kernels import KernelZygote
    from workbench.reports.mail import (
        DeliveryResult,
        EmailCharts,
        compose_daily_email,
        compose_failure_email,
        deliver,
        email_charts,
        outcome_markdown,
        subject_for,
    )
    from workbench.reports.sources import NotebookSource, complete_parameters, notebook_source
    from workbench.reports.version import code_version

# Imported on first use: nbformat, nbconvert and matplotlib take seconds to import, and the
# kernel zygote (workbench.reports._zygote) must start without them.
_WHERE = {
    "SectionResult": "execute", "run_section": "execute", "validate_parameters": "execute",
    "read_records": "execute",
    "ReportResult": "html", "build_report": "html", "external_urls": "html",
    "SectionPage": "html", "build_section_page": "html",
    "KernelZygote": "kernels",
    "DeliveryResult": "mail", "compose_daily_email": "mail", "compose_failure_email": "mail",
    "deliver": "mail", "subject_for": "mail", "outcome_markdown": "mail",
    "EmailCharts": "mail", "email_charts": "mail",
    "code_version": "version",
    "NotebookSource": "sources", "notebook_source": "sources", "complete_parameters": "sources",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"workbench.reports.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'workbench.reports' has no attribute {name!r}")


__all__ = [
    "DeliveryResult",
    "EmailCharts",
    "KernelZygote",
    "MailError",
    "NotebookSource",
    "ReportError",
    "ReportResult",
    "SectionPage",
    "SectionResult",
    "build_report",
    "build_section_page",
    "code_version",
    "complete_parameters",
    "compose_daily_email",
    "compose_failure_email",
    "deliver",
    "email_charts",
    "external_urls",
    "notebook_source",
    "outcome_markdown",
    "read_records",
    "run_section",
    "subject_for",
    "validate_parameters",
]
