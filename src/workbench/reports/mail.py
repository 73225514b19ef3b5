"""The 05:00 e-mail: compose it from a :class:`~workbench.summary.DailySummary`, deliver it once.

MIME structure of a composed message::

    multipart/mixed                      (only when the report is attached)
    ├── multipart/alternative
    │   ├── text/plain                   the same facts as the HTML, as text tables
    │   └── multipart/related
    │       ├── text/html                tables with inline CSS, no script, images by cid:
    │       ├── image/png  (Content-ID)  OEE per machine
    │       └── image/png  (Content-ID)  downtime Pareto
    └── application/zip                  the report's HTML pages, when there is no report URL

Without an attachment the top level is the ``multipart/alternative``. A day without any
production data (:attr:`DailySummary.has_data` false) says so in the subject ("NO DATA — …") and
at the top of both parts, instead of KPIs of "n/a", "0 min" and "(none)" that read like a quiet
day; it has no OEE chart, and only the sections that have rows (downtime, scrap, SPC) follow —
without a chart at all the HTML part is a plain ``text/html``.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import os
import re
import smtplib
import ssl
import tempfile
import textwrap
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import pandas as pd

from workbench.config import Settings
from workbench.errors import MailError
from workbench.ml.records import MLSection
from workbench.reports.execute import SectionResult
from workbench.reports.html import (
    DATA_INCOMPLETE_LEAD,
    ReportResult,
    data_incomplete_heading,
    report_zip,
    source_notices,
)
from workbench.reports.mail_format import FONT as _FONT
from workbench.reports.mail_format import H2 as _H2
from workbench.reports.mail_format import esc as _e
from workbench.reports.mail_format import html_table as _html_table
from workbench.reports.mail_format import missing as _missing
from workbench.reports.mail_format import num as _num
from workbench.reports.mail_format import pct as _pct
from workbench.reports.mail_format import text_table as _text_table
from workbench.reports.mail_ml import MailBlock, blocks_html, blocks_text, mail_blocks
from workbench.summary import DailySummary

#: A zipped report larger than this is not attached (many mail servers reject ~10-25 MB).
ATTACHMENT_LIMIT_BYTES = 10_000_000
#: Rows of SPC series listed in the e-mail (the rest are counted).
SPC_ROWS = 10
#: Out-of-control episodes ranked by their consequence against the specification (see
#: :mod:`workbench.spc.episodes`), not points or series counted.
SPC_HEADING = "SPC: out-of-control episodes, most consequential first"

_BAND_STYLE = {  # text colour, background — the same bands as the charts
    "good": ("#166534", "#dcfce7"), "watch": ("#92400e", "#fef3c7"), "poor": ("#991b1b", "#fee2e2"),
    "no plan": ("#4b5563", "#f3f4f6"),
}


# -- content, shared by the HTML and text parts -----------------------------------------------

def _machine_rows(summary: DailySummary) -> list[dict[str, str]]:
    return [{"Machine": str(r.machine_id), "Name": "" if _missing(r.name) else str(r.name),
             "Line": "" if _missing(r.line) else str(r.line), "Availability": _pct(r.availability),
             "Performance": _pct(r.performance), "Quality": _pct(r.quality), "OEE": _pct(r.oee),
             "Good": _num(r.good), "Rejects": _num(r.rejects), "Down min": _num(r.down_min),
             "Status": str(r.status)}
            for r in summary.machines.itertuples(index=False)]


def _downtime_rows(summary: DailySummary) -> list[dict[str, str]]:
    return [{"Cause": str(r.reason_category), "Minutes": _num(r.minutes), "Stops": _num(r.events),
             "Share": _pct(r.share)} for r in summary.downtime_top.itertuples(index=False)]


def _scrap_rows(summary: DailySummary) -> list[dict[str, str]]:
    return [{"Cause": str(r.scrap_category), "Quantity": _num(r.quantity), "Cost": _num(r.cost, 2),
             "Share": _pct(r.share)} for r in summary.scrap_top.itertuples(index=False)]


def _spc_rows(summary: DailySummary) -> tuple[list[dict[str, str]], int]:
    """The SPC episodes, most consequential first, and how many more there are."""
    episodes = summary.spc_episodes
    if episodes.empty and not summary.spc_violations.empty:
        return _spc_series_rows(summary)  # a summary kept before episodes existed
    zone = _zone(summary.tz)
    rows = []
    for r in episodes.head(SPC_ROWS).itertuples(index=False):
        first, last = _local(r.start, zone), _local(r.end, zone)
        when = f"{first:%a %H:%M}–{last:%H:%M}" if first.date() == last.date() else (
            f"{first:%a %H:%M}–{last:%a %H:%M}")
        shift = "spread" if r.direction == "spread" else f"{r.shift_sigma:+.1f}σ"
        rows.append({"Machine": str(r.machine_id), "Part": str(r.part_number),
                     "Characteristic": str(r.characteristic), "When": when, "Shift": shift,
                     "Cpk": "–" if pd.isna(r.cpk) else f"{r.cpk:.2f}",
                     "Expected out": "–" if pd.isna(r.expected_out) else _ppm(r.expected_out),
                     "Consequence": str(r.consequence), "Rules": str(r.rules)})
    return rows, max(len(episodes) - SPC_ROWS, 0)


def _spc_series_rows(summary: DailySummary) -> tuple[list[dict[str, str]], int]:
    series = summary.spc_by_series
    rows = [{"Machine": str(r.machine_id), "Part": str(r.part_number),
             "Characteristic": str(r.characteristic), "Violations": _num(r.violations), "Rules": str(r.rules)}
            for r in series.head(SPC_ROWS).itertuples(index=False)]
    return rows, max(len(series) - SPC_ROWS, 0)


def _more_what(summary: DailySummary) -> str:
    return "episodes of lower consequence" if not summary.spc_episodes.empty else "series"


def _zone(tz: str) -> dt.tzinfo:
    try:
        return ZoneInfo(tz)
    except (LookupError, ValueError):
        return dt.UTC


def _local(value: object, zone: dt.tzinfo) -> dt.datetime:
    return pd.Timestamp(value).tz_convert(zone).to_pydatetime()


def _ppm(p: float) -> str:
    return f"{p:.1%}" if p >= 0.001 else f"{p * 1e6:,.0f} ppm"


def _plant_facts(summary: DailySummary) -> list[tuple[str, str]]:
    p = summary.plant
    return [("OEE", _pct(p.get("oee"))), ("Availability", _pct(p.get("availability"))),
            ("Performance", _pct(p.get("performance"))), ("Quality", _pct(p.get("quality"))),
            ("Good", _num(p.get("good"))), ("Rejects", _num(p.get("rejects"))),
            ("No data", f"{_num(p.get('no_data_min'))} min")]


def _effective_warnings(warnings: list[str], report: ReportResult | None) -> list[str]:
    out = list(warnings)
    if report is not None:
        # A failed section must never go unmentioned, even if the caller forgot to pass it on.
        out += [f"Report section '{name}' failed; its page in the report shows the error."
                for name in report.failed if not any(name in w for w in out)]
        out += [w for w in report.warnings if w not in out]
    return out


def subject_for(summary: DailySummary, *, warnings: list[str], prefix: str = "",
                source_warnings: Sequence[str] = ()) -> str:
    """The subject line: optional prefix, tags for warnings and for incomplete data, the headline.

    Parameters
    ----------
    summary : DailySummary
    warnings : list of str
        Failed sections and other problems of the run: tag ``[WARNING]``.
    prefix : str
        E.g. ``"[PLANT1]"``.
    source_warnings : sequence of str
        Stale-source notices: tag ``[DATA INCOMPLETE]``.

    Returns
    -------
    str
        ``"[PLANT1] ⚠ [WARNING] Plant OEE 66.2% — Wed 04 Nov 2026"``, or with a stale source
        ``"[PLANT1] ⚠ [DATA INCOMPLETE] Plant OEE 66.2% — …"`` (both tags when both apply); the
        ASCII tags are there for mail filters, the sign for people. A day without data has the
        headline ``"NO DATA — Thu 01 Jan 2026: no production recorded (900 planned min without
        data)"``.
    """
    parts = [prefix.strip()] if prefix.strip() else []
    tags = (["[WARNING]"] if warnings else []) + (["[DATA INCOMPLETE]"] if source_warnings else [])
    if tags:
        # Before the headline, not after: a phone's inbox cuts long subjects, and the OEE in
        # the headline must not be read without knowing that its data is incomplete.
        parts.append(" ".join(["⚠", *tags]))
    parts.append(summary.headline)
    return " ".join(parts)


# -- HTML part --------------------------------------------------------------------------------

def _band_cell(row: dict[str, str], col: str) -> str:
    if col not in ("OEE", "Status"):
        return ""
    fg, bg = _BAND_STYLE.get(row["Status"], ("#111827", "#ffffff"))
    return f"color:{fg};background:{bg};font-weight:bold;"


def _html_source_warnings(notices: list[str]) -> str:
    if not notices:
        return ""
    items = "".join(f'<li style="margin:3px 0;">{_e(n)}</li>' for n in notices)
    return ('<table role="presentation" width="100%" cellpadding="0" cellspacing="0" '
            'style="border-collapse:collapse;margin:0 0 12px 0;"><tr>'
            f'<td style="border:2px solid #c2410c;border-left:10px solid #c2410c;background:#fff7ed;'
            f'padding:10px 14px;color:#431407;{_FONT}font-size:14px;" data-wb="source-warnings">'
            f'<div style="font-size:17px;font-weight:bold;color:#9a3412;margin:0 0 4px 0;">'
            f"⚠ {_e(data_incomplete_heading(len(notices)))}</div>"
            f'<div style="margin:0 0 4px 0;">{_e(DATA_INCOMPLETE_LEAD)}</div>'
            f'<ul style="margin:4px 0 0 0;padding-left:20px;">{items}</ul></td></tr></table>')


def _html_body(summary: DailySummary, *, warnings: list[str], cids: dict[str, str], link_html: str,
               footer: str, source_warnings: list[str], ml: Sequence[MailBlock] = ()) -> str:
    band = _BAND_STYLE.get(_plant_status(summary), ("#111827", "#ffffff"))
    facts = "".join(
        f'<td style="padding:6px 10px;text-align:center;{_FONT}">'
        f'<div style="font-size:11px;color:#6b7280;">{_e(k)}</div>'
        f'<div style="font-size:{"22px" if k == "OEE" else "15px"};font-weight:bold;'
        f'color:{band[0] if k == "OEE" else "#111827"};">{_e(v)}</div></td>'
        for k, v in _plant_facts(summary))
    # Incomplete data first, even before the headline: the headline is a KPI (plant OEE).
    out = [_html_source_warnings(source_warnings),
           f'<h1 style="font-size:20px;margin:0 0 8px 0;color:#111827;{_FONT}">{_e(summary.headline)}</h1>']
    if warnings:
        items = "".join(f'<li style="margin:2px 0;">{_e(w)}</li>' for w in warnings)
        out.append(
            '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" '
            'style="border-collapse:collapse;margin:8px 0 12px 0;"><tr>'
            f'<td style="border:2px solid #b45309;background:#fffbeb;padding:8px 12px;color:#78350f;{_FONT}'
            'font-size:14px;" data-wb="warnings"><strong>⚠ Warnings</strong>'
            f'<ul style="margin:4px 0 0 0;padding-left:20px;">{items}</ul></td></tr></table>')
    if summary.has_data:
        out.append('<table role="presentation" cellpadding="0" cellspacing="0" '
                   'style="border-collapse:collapse;margin:4px 0 12px 0;background:#f9fafb;'
                   f'border:1px solid #e5e7eb;"><tr>{facts}</tr></table>')
        good, watch = summary.thresholds
        out.append(f'<h2 style="{_H2}">OEE per machine</h2>'
                   f'<p style="margin:0 0 4px 0;font-size:12px;color:#6b7280;{_FONT}">good ≥ {good:.0%}, '
                   f"watch ≥ {watch:.0%}, below: poor</p>")
        out.append(_html_table(_machine_rows(summary), cell_style=_band_cell)
                   or f'<p style="{_FONT}">No machines.</p>')
        out.append(_img(cids["oee"], "OEE per machine"))
    else:
        out.append(_html_no_data(summary))
    spc, more = _spc_rows(summary)
    # On a day without data an empty section ("No scrap.") would read as a good day: only the
    # sections that have something to show, under the statement that there was no production.
    if summary.has_data or not summary.downtime_top.empty:
        out.append(f'<h2 style="{_H2}">Top downtime causes (unplanned)</h2>')
        out.append(_html_table(_downtime_rows(summary)) or f'<p style="{_FONT}">No unplanned downtime.</p>')
        if not summary.downtime_top.empty:
            out.append(_img(cids["pareto"], "Downtime Pareto"))
    if summary.has_data or not summary.scrap_top.empty:
        out.append(f'<h2 style="{_H2}">Top scrap causes</h2>')
        out.append(_html_table(_scrap_rows(summary)) or f'<p style="{_FONT}">No scrap.</p>')
    if summary.has_data or spc:
        out.append(f'<h2 style="{_H2}">{SPC_HEADING}</h2>')
        out.append(_html_table(spc) or f'<p style="{_FONT}">No SPC rule violations.</p>')
        if more:
            out.append(f'<p style="{_FONT}font-size:12px;">… and {more} more {_more_what(summary)}.</p>')
    out.append(blocks_html(ml))
    out.append(link_html)
    out.append(f'<p style="{_FONT}font-size:11px;color:#6b7280;margin-top:20px;">{_e(footer)}</p>')
    return ('<!DOCTYPE html><html><head><meta charset="utf-8">'
            f"<title>{_e(summary.headline)}</title></head>"
            '<body style="margin:0;padding:0;background:#ffffff;">'
            '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" '
            'style="border-collapse:collapse;"><tr><td style="padding:12px;">'
            '<table role="presentation" cellpadding="0" cellspacing="0" '
            'style="border-collapse:collapse;width:100%;max-width:760px;"><tr><td>'
            + "".join(out) + "</td></tr></table></td></tr></table></body></html>")


def _html_no_data(summary: DailySummary) -> str:
    return ('<table role="presentation" width="100%" cellpadding="0" cellspacing="0" '
            'style="border-collapse:collapse;margin:4px 0 12px 0;"><tr>'
            f'<td style="border:2px solid #991b1b;border-left:10px solid #991b1b;background:#fef2f2;'
            f'padding:10px 14px;color:#450a0a;{_FONT}font-size:14px;" data-wb="no-data">'
            '<div style="font-size:17px;font-weight:bold;color:#991b1b;margin:0 0 4px 0;">'
            "⚠ No production data</div>"
            f"<div>{_e(summary.no_data_statement)}</div></td></tr></table>")


def _img(cid: str, alt: str) -> str:
    return (f'<img src="cid:{cid}" alt="{_e(alt)}" width="640" '
            'style="display:block;max-width:100%;height:auto;border:0;margin:0 0 12px 0;">')


def _plant_status(summary: DailySummary) -> str:
    from workbench.summary import status

    # The same banding function the summary used for the machines, applied to the plant value.
    return status(summary.plant.get("oee"), summary.thresholds)


# -- text part --------------------------------------------------------------------------------

def _text_body(summary: DailySummary, *, warnings: list[str], link_text: str, footer: str,
               source_warnings: list[str], ml: Sequence[MailBlock] = ()) -> str:
    out: list[str] = []
    if source_warnings:
        # First lines of the message, so that even a mail client's preview shows them.
        heading = data_incomplete_heading(len(source_warnings)).upper()
        out += [f"!! {heading}", f"!! {DATA_INCOMPLETE_LEAD}", *[f"  ! {w}" for w in source_warnings], ""]
    out += [summary.headline, "=" * len(summary.headline), ""]
    if warnings:
        out += ["WARNINGS", *[f"  ! {w}" for w in warnings], ""]
    spc, more = _spc_rows(summary)
    if not summary.has_data:
        # The statement instead of "(none)" under every heading, which reads like a quiet day; a
        # section that does have rows (e.g. SPC from the quality lab) still follows.
        out += [*(f"!! {line}" for line in textwrap.wrap(summary.no_data_statement, 76)), ""]
        for title, rows in (("Top downtime causes (unplanned)", _downtime_rows(summary)),
                            ("Top scrap causes", _scrap_rows(summary)), (SPC_HEADING, spc)):
            if rows:
                out += [title, _text_table(rows)]
        if spc and more:
            out.append(f"  ... and {more} more {_more_what(summary)}.\n")
        out += [*blocks_text(ml), link_text, "", footer, ""]
        return "\n".join(out)
    out.append("Plant: " + " | ".join(f"{k} {v}" for k, v in _plant_facts(summary)))
    good, watch = summary.thresholds
    out += ["", f"OEE per machine (good >= {good:.0%}, watch >= {watch:.0%}, below: poor)",
            _text_table(_machine_rows(summary)),
            "Top downtime causes (unplanned)", _text_table(_downtime_rows(summary)),
            "Top scrap causes", _text_table(_scrap_rows(summary))]
    out += [SPC_HEADING, _text_table(spc)]
    if more:
        out.append(f"  ... and {more} more {_more_what(summary)}.\n")
    out += [*blocks_text(ml), link_text, "", footer, ""]
    return "\n".join(out)


# -- message ----------------------------------------------------------------------------------

def _domain(address: str) -> str:
    _, addr = email.utils.parseaddr(address)
    domain = addr.rpartition("@")[2]
    # make_msgid would otherwise ask the resolver for this host's FQDN, which can hang offline.
    return domain if domain and re.fullmatch(r"[A-Za-z0-9.-]+", domain) else "workbench.localdomain"


@dataclass(frozen=True)
class EmailCharts:
    """The e-mail's PNG charts of a summary (:func:`email_charts`).

    Attributes
    ----------
    day : date
        The summary's day (checked against the summary the e-mail is composed from).
    oee_png : bytes
        OEE per machine.
    pareto_png : bytes or None
        Downtime Pareto; None when the day had no unplanned stops.
    """

    day: dt.date
    oee_png: bytes
    pareto_png: bytes | None


def email_charts(summary: DailySummary) -> EmailCharts:
    """Draw the e-mail's charts of ``summary`` (matplotlib; a pipeline can do it while its
    notebooks still run and pass the result to :func:`compose_daily_email`)."""
    from workbench.reports import charts

    pareto = None if summary.downtime_top.empty else charts.downtime_pareto_png(summary)
    return EmailCharts(summary.day, charts.oee_by_machine_png(summary), pareto)


def compose_daily_email(summary: DailySummary, *, report: ReportResult | None, report_url: str | None,
                        warnings: list[str], sender: str, recipients: list[str], subject_prefix: str = "",
                        attachment_limit_bytes: int = ATTACHMENT_LIMIT_BYTES,
                        images: EmailCharts | None = None,
                        source_warnings: Sequence[str] = (),
                        ml_sections: Sequence[MLSection] = ()) -> EmailMessage:
    """The daily e-mail of ``summary`` (see the module docstring for its MIME structure).

    Parameters
    ----------
    summary : DailySummary
        What the e-mail shows; nothing is recomputed.
    report : ReportResult or None
        The HTML report of the day. Its failed sections and build warnings are added to
        ``warnings`` when not already mentioned.
    report_url : str or None
        Link to the full report. Without one, the report's HTML pages are attached as
        ``report-<day>.zip`` (one folder sharing one plotly.js: unzip and open ``index.html``), unless the
        zip exceeds ``attachment_limit_bytes``, in which case the body says where the report is.
    warnings : list of str
        Shown in a warning box; any warning tags the subject with ``⚠ [WARNING]``.
    sender : str
        From address.
    recipients : list of str
        To addresses.
    subject_prefix : str
        Put first in the subject, e.g. ``"[PLANT1]"``.
    attachment_limit_bytes : int
        Largest zipped report that is attached.
    images : EmailCharts, optional
        The charts already drawn by :func:`email_charts` for this summary; default: draw them.
    source_warnings : sequence of str
        One notice per data source that was stale during the day
        (:func:`workbench.sources.health.stale_notices`, ``RunData.summary["source_warnings"]``).
        Shown first in both parts, before the headline, under "Data incomplete — a source was
        stale", and tag the subject ``[DATA INCOMPLETE]``; none: nothing is shown. Kept apart
        from ``warnings``, which are about the run, not the data.
    ml_sections : sequence of MLSection
        The model sections the report's notebooks kept ("likely causes of uncoded stops",
        "anomalies needing a look", "the week ahead"; :func:`workbench.runs.ml_sections`), shown
        after SPC in the given order, each with its confidence or why it is not shown
        (:mod:`workbench.reports.mail_ml`). None: no model sections.

    Returns
    -------
    EmailMessage
        With Message-ID, Date and ``Auto-Submitted: auto-generated`` (RFC 3834: no auto-replies).

    Raises
    ------
    MailError
        When there are no recipients, the report URL is not http(s), or ``source_warnings`` is
        one string instead of a sequence of them.
    """
    recipients = [r.strip() for r in recipients if r and r.strip()]
    if isinstance(source_warnings, str | bytes):
        raise MailError("source_warnings must be a list of notices, not a single string")
    notices = source_notices(source_warnings)
    if not recipients:
        raise MailError("the daily e-mail has no recipients; set them in the pipeline file")
    if report_url is not None and not re.match(r"^https?://", report_url, re.I):
        raise MailError(f"report_url must be an http(s) URL, got {report_url!r}")
    warnings = _effective_warnings(warnings, report)
    now = dt.datetime.now(dt.UTC)
    footer = (f"Production day {summary.day:%Y-%m-%d} ({summary.tz}), "
              f"data from {summary.data.get('start', '?')} to {summary.data.get('end', '?')}; "
              f"sent {now:%Y-%m-%d %H:%M} UTC by the plant workbench.")

    attachment: bytes | None = None
    folder = f"report-{summary.day:%Y-%m-%d}"
    if report_url:
        link_html = (f'<p style="{_FONT}font-size:14px;margin:16px 0;"><a href="{_e(report_url)}" '
                     f'style="color:#1d4ed8;font-weight:bold;">Open the full report</a></p>')
        link_text = f"Full report: {report_url}"
    elif report is not None:
        attachment = report_zip(report, folder=folder)
        if len(attachment) <= attachment_limit_bytes:
            note = (f"The full report is attached as {folder}.zip: unzip it and open {folder}/index.html "
                    "(works offline).")
        else:
            note = (f"The full report ({len(attachment) / 1e6:.1f} MB zipped) is too large to attach; "
                    f"it is in {report.report_dir} on the workbench server.")
            attachment = None
        link_html = f'<p style="{_FONT}font-size:14px;margin:16px 0;">{_e(note)}</p>'
        link_text = note
    else:
        link_html, link_text = "", "No HTML report was built for this day."

    cids = {"oee": email.utils.make_msgid("oee", domain=_domain(sender))[1:-1],
            "pareto": email.utils.make_msgid("pareto", domain=_domain(sender))[1:-1]}
    msg = EmailMessage()
    msg["Subject"] = subject_for(summary, warnings=warnings, prefix=subject_prefix, source_warnings=notices)
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = email.utils.format_datetime(now)
    msg["Message-ID"] = email.utils.make_msgid("daily", domain=_domain(sender))
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Workbench-Day"] = f"{summary.day:%Y-%m-%d}"
    ml = mail_blocks(ml_sections, tz=summary.tz)
    msg.set_content(_text_body(summary, warnings=warnings, link_text=link_text, footer=footer,
                               source_warnings=notices, ml=ml))
    msg.add_alternative(_html_body(summary, warnings=warnings, cids=cids, link_html=link_html, footer=footer,
                                   source_warnings=notices, ml=ml), subtype="html")
    if images is None:
        images = email_charts(summary)
    elif images.day != summary.day:
        raise MailError(f"the charts are of {images.day}, the summary of {summary.day}")
    html_part = msg.get_payload()[1]
    if summary.has_data:  # a day without data shows no OEE chart (see _html_body)
        html_part.add_related(images.oee_png, maintype="image", subtype="png",
                              cid=f"<{cids['oee']}>", filename="oee-per-machine.png")
    if images.pareto_png is not None:
        html_part.add_related(images.pareto_png, maintype="image", subtype="png",
                              cid=f"<{cids['pareto']}>", filename="downtime-pareto.png")
    if attachment is not None:
        msg.add_attachment(attachment, maintype="application", subtype="zip", filename=f"{folder}.zip")
    return msg


def outcome_markdown(summary: DailySummary | None, sections: Sequence[SectionResult], *, title: str,
                     index_html: str, delivery: DeliveryResult | None) -> str:
    """A run's outcome as markdown for the Prefect UI: the e-mail's headline facts and top downtime
    cause, every section with its status, time and notebook version, and what became of the e-mail.

    Parameters
    ----------
    summary : DailySummary or None
        The day's summary (None: the run has none).
    sections : sequence of SectionResult
        The run's executed notebooks.
    title : str
        Heading, e.g. "Yesterday's production report — Monday 30 November 2026".
    index_html : str
        Where the report is.
    delivery : DeliveryResult or None
        What :func:`deliver` did (None: the pipeline mails nobody).

    Returns
    -------
    str
    """
    lines = [f"## {title}", ""]
    if summary is not None and not summary.has_data:
        lines += [f"**{summary.headline}**", "", summary.no_data_statement, ""]
    elif summary is not None:
        facts = _plant_facts(summary)
        lines += ["| " + " | ".join(k for k, _ in facts) + " |", "|" + "---:|" * len(facts),
                  "| " + " | ".join(v for _, v in facts) + " |", ""]
        top = _downtime_rows(summary)[:1]
        if top:
            lines += [f"Top downtime: **{top[0]['Cause']}**, {top[0]['Minutes']} min in {top[0]['Stops']} "
                      "stops.", ""]
        lines += [f"SPC: {len(summary.spc_episodes)} out-of-control episodes "
                  f"({len(summary.spc_violations)} rule violations).", ""]
    lines += ["| section | status | took | notebook |", "|---|---|---:|---|"]
    for s in sections:
        status = "ok" if s.ok else f"**FAILED**: {(s.error or '').replace('|', '/')}"
        lines.append(f"| {s.name} | {status} | {s.duration_s:.1f} s | {s.origin.replace('|', '/')} |")
    if delivery is None:
        mailed = "none (the pipeline has no recipients)"
    elif delivery.method == "skipped":
        mailed = "already sent for this day (not sent again)"
    else:
        mailed = f"{delivery.method} {delivery.path or delivery.message_id or ''}".strip()
    lines += ["", f"Report: `{index_html}`", "", f"E-mail: {mailed}"]
    return "\n".join(lines)


def compose_failure_email(*, pipeline: str, run_name: str, error: str, sender: str, recipients: list[str],
                          subject_prefix: str = "", day: dt.date | None = None, run_url: str | None = None,
                          report_sent: bool = False) -> EmailMessage:
    """The notice that a scheduled run failed (plain text: it must get through any mail gateway).

    Parameters
    ----------
    pipeline : str
        Pipeline name (``daily_report``).
    run_name : str
        The flow run's name in Prefect (it carries the day once that is known).
    error : str
        What failed: the run's final state message.
    sender, recipients : str, list of str
        From and To.
    subject_prefix : str
        Put first in the subject, e.g. ``"[PLANT1]"``.
    day : date, optional
        The production day, when the run got as far as resolving it.
    run_url : str, optional
        Link to the run in the Prefect UI.
    report_sent : bool
        The day's report e-mail went out (with its own warning); the notice says so.

    Returns
    -------
    EmailMessage
        With ``Auto-Submitted: auto-generated`` and ``X-Workbench-Pipeline``.

    Raises
    ------
    MailError
        When there are no recipients.
    """
    recipients = [r.strip() for r in recipients if r and r.strip()]
    if not recipients:
        raise MailError(f"the failure notice of {pipeline} has no recipients")
    now = dt.datetime.now(dt.UTC)
    what = f"{pipeline} for {day:%Y-%m-%d}" if day else pipeline
    outcome = ("The report e-mail went out, with a warning about the failed part."
               if report_sent else f"No {pipeline} output was delivered by this run.")
    lines = [
        f"The scheduled run {run_name!r} of {what} failed at {now:%Y-%m-%d %H:%M} UTC.", "",
        outcome, "", "What failed:", "", *[f"    {line}" for line in error.strip().splitlines()[:40]], "",
        f"The run in Prefect: {run_url}" if run_url else "See the run in the Prefect UI (Flow Runs).",
        "", "To run it again once the cause is fixed:",
        f"    workbench run {pipeline}" + (f" --date {day:%Y-%m-%d}" if day else ""),
        "(a re-run never sends the same day's report e-mail twice)", "",
        "— the plant workbench",
    ]
    msg = EmailMessage()
    msg["Subject"] = " ".join(x for x in (subject_prefix, f"FAILED: {what}") if x)
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = email.utils.format_datetime(now)
    msg["Message-ID"] = email.utils.make_msgid("failed", domain=_domain(sender))
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Workbench-Pipeline"] = pipeline
    if day:
        msg["X-Workbench-Day"] = f"{day:%Y-%m-%d}"
    msg.set_content("\n".join(lines))
    return msg


# -- delivery ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class DeliveryResult:
    """What :func:`deliver` did.

    Attributes
    ----------
    method : {"smtp", "outbox", "skipped"}
        ``skipped``: the marker said this message was already delivered.
    path : Path or None
        The ``.eml`` file (outbox), the marker (skipped), None for SMTP.
    message_id : str or None
    refused : tuple of str
        Recipients the SMTP server refused while accepting the others.
    """

    method: Literal["smtp", "outbox", "skipped"]
    path: Path | None
    message_id: str | None
    refused: tuple[str, ...] = ()


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _slug(text: str, limit: int = 60) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:limit].rstrip("-") or "message"


def _message_day(message: EmailMessage) -> str:
    day = message.get("X-Workbench-Day")
    if day and re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(day)):
        return str(day)
    try:
        return f"{email.utils.parsedate_to_datetime(str(message['Date'])):%Y-%m-%d}"
    except (TypeError, ValueError):
        return f"{dt.datetime.now(dt.UTC):%Y-%m-%d}"


def _recipients(message: EmailMessage) -> list[str]:
    fields = [str(v) for h in ("To", "Cc", "Bcc") for v in message.get_all(h, [])]
    return [addr for _, addr in email.utils.getaddresses(fields) if addr]


def _to_outbox(message: EmailMessage, outbox: Path) -> Path:
    outbox.mkdir(parents=True, exist_ok=True)
    stem = f"{_message_day(message)}-{_slug(str(message.get('Subject', '')))}"
    path = outbox / f"{stem}.eml"
    n = 2
    while path.exists():  # another message of the same day and subject: keep both
        path = outbox / f"{stem}-{n}.eml"
        n += 1
    _write_atomic(path, message.as_bytes())
    return path


def _send_smtp(message: EmailMessage, settings: Settings) -> dict[str, tuple[int, bytes]]:
    host, port = settings.smtp_host or "", settings.smtp_port
    where = f"{host}:{port}"
    # The system's trusted CAs (SSL_CERT_FILE / SSL_CERT_DIR point at a plant CA if needed);
    # certificate and host name are always checked.
    context = ssl.create_default_context()
    if settings.smtp_user and settings.smtp_password is None:
        raise MailError(f"WORKBENCH_SMTP_USER is set but WORKBENCH_SMTP_PASSWORD is not (SMTP {where})")
    try:
        if port == 465:
            # Port 465 speaks TLS from the first byte (RFC 8314); STARTTLS does not apply there.
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=60, context=context)
        else:
            smtp = smtplib.SMTP(host, port, timeout=60)
        with smtp:
            smtp.ehlo()
            if settings.smtp_starttls and port != 465:
                if not smtp.has_extn("starttls"):
                    raise MailError(f"SMTP server {where} does not offer STARTTLS; set "
                                    "WORKBENCH_SMTP_STARTTLS=false only for a relay on a trusted network")
                smtp.starttls(context=context)
                smtp.ehlo()
            if settings.smtp_user:
                if not smtp.has_extn("auth"):
                    tls_hint = ("" if settings.smtp_starttls or port == 465 else
                                " (servers often offer it only after STARTTLS, and "
                                "WORKBENCH_SMTP_STARTTLS is off)")
                    raise MailError(f"SMTP server {where} offers no AUTH for the login of "
                                    f"{settings.smtp_user!r}{tls_hint}")
                password = settings.smtp_password.get_secret_value()  # type: ignore[union-attr]
                smtp.login(settings.smtp_user, password)
            return smtp.send_message(message)
    except smtplib.SMTPAuthenticationError as exc:
        raise MailError(f"SMTP server {where} refused the login of {settings.smtp_user!r}: "
                        f"{exc.smtp_code} {exc.smtp_error.decode(errors='replace')}") from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise MailError(f"SMTP server {where} refused every recipient: {', '.join(exc.recipients)}") from None
    except smtplib.SMTPNotSupportedError as exc:
        raise MailError(f"SMTP server {where} does not support what was asked: {exc}") from None
    except (smtplib.SMTPException, ssl.SSLError, OSError) as exc:
        raise MailError(f"sending mail through {where} failed: {type(exc).__name__}: {exc}") from None


def deliver(message: EmailMessage, *, settings: Settings, outbox: Path,
            marker: Path | None = None) -> DeliveryResult:
    """Send ``message`` by SMTP, or write it to the outbox when no SMTP host is configured.

    Parameters
    ----------
    message : EmailMessage
        From :func:`compose_daily_email` (recipients are its To / Cc / Bcc).
    settings : Settings
        ``smtp_host`` (unset: outbox), ``smtp_port``, ``smtp_starttls``, ``smtp_user``,
        ``smtp_password``. Port 465 uses implicit TLS.
    outbox : Path
        Directory for ``<day>-<subject slug>.eml`` files (``<reports>/outbox``).
    marker : Path, optional
        Delivered-once marker. When it exists nothing is sent (``method="skipped"``), so a retried
        flow never mails twice; after a delivery it is written atomically as JSON with
        message_id, recipients, sent_at, method and path. A crash between handing the message
        to the server and writing the marker can still lead to a second mail on retry.

    Returns
    -------
    DeliveryResult

    Raises
    ------
    MailError
        When the server cannot be reached, refuses TLS, the login or every recipient.
    """
    if marker is not None and marker.exists():
        try:
            previous = json.loads(marker.read_text(encoding="utf-8"))
            message_id = previous.get("message_id")
        except (OSError, ValueError, AttributeError):
            message_id = None  # unreadable, but it exists: the promise is "never twice"
        return DeliveryResult(method="skipped", path=marker, message_id=message_id)
    recipients = _recipients(message)
    if not recipients:
        raise MailError("the message has no recipients (To, Cc or Bcc)")
    refused: tuple[str, ...] = ()
    path: Path | None = None
    if settings.smtp_host:
        refused = tuple(sorted(_send_smtp(message, settings)))
        method: Literal["smtp", "outbox"] = "smtp"
    else:
        path = _to_outbox(message, Path(outbox))
        method = "outbox"
    message_id = message.get("Message-ID")
    if marker is not None:
        record = {"message_id": message_id, "recipients": recipients, "refused": list(refused),
                  "sent_at": dt.datetime.now(dt.UTC).isoformat(), "method": method,
                  "path": str(path) if path else None, "subject": str(message.get("Subject", ""))}
        _write_atomic(marker, (json.dumps(record, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    return DeliveryResult(method=method, path=path, message_id=message_id, refused=refused)
