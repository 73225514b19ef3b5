"""The e-mail's model sections: "likely causes of uncoded stops", "anomalies needing a look" and
"the week ahead", from the sections the report's notebooks kept (:class:`~workbench.ml.records.MLSection`).

Each section says what its numbers rest on (the model's held-out accuracy, the detectors'
training window, the forecast's backtest) or, when a model is not good enough or has no data,
that it is not shown and why — never a model's number without its confidence. Nothing is
recomputed here: the rows are those the notebook showed, formatted for an e-mail.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import pandas as pd

from workbench.ml.records import ANOMALIES_TITLE, UNCODED_TITLE, WEEK_AHEAD_TITLE, MLSection
from workbench.reports.mail_format import FONT, H2, esc, html_table, missing, num, text_table

#: Rows of each model table in the e-mail (the report has them all).
MAIL_ROWS = 8
#: One SHAP contribution of a stop's explanation text: ``feature=value (+0.12)``.
_CONTRIBUTION = re.compile(r"(?:^|, )([^,]+?) \([+-]\d+(?:\.\d+)?\)")


@dataclass(frozen=True)
class MailBlock:
    """One model section as the e-mail shows it.

    Attributes
    ----------
    title : str
        Heading.
    lead : str
        What the numbers rest on, or "Not shown, because …".
    tables : list of (caption, rows)
        Row dicts with the same keys; a caption may be empty.
    lines : list of str
        Sentences under the tables (recommendations, "… and 4 more in the report").
    """

    title: str
    lead: str
    tables: list[tuple[str, list[dict[str, str]]]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


def _zone(tz: str) -> dt.tzinfo:
    try:
        return ZoneInfo(tz)
    except (KeyError, ValueError):
        return dt.UTC


def _clock(value: object, zone: dt.tzinfo, fmt: str = "%a %H:%M") -> str:
    if missing(value):
        return ""
    return pd.Timestamp(value).tz_convert(zone).strftime(fmt)  # type: ignore[arg-type]


def _span(start: object, end: object, zone: dt.tzinfo) -> str:
    first = _clock(start, zone)
    if missing(end):
        return first
    same_day = pd.Timestamp(start).tz_convert(zone).date() == pd.Timestamp(end).tz_convert(zone).date()
    return f"{first}–{_clock(end, zone, '%H:%M' if same_day else '%a %H:%M')}"


def _pct0(value: object) -> str:
    return "n/a" if missing(value) else f"{100 * float(value):.0f} %"  # type: ignore[arg-type]


def _minutes(value: object) -> str:
    # A stop of a few seconds is "0.2", not "0" (which reads like no stop at all).
    if missing(value):
        return ""
    return num(value, 1 if float(value) < 1 else 0)  # type: ignore[arg-type]


def _text(value: object) -> str:
    return "" if missing(value) else str(value)


def _more(shown: int, total: int, what: str) -> list[str]:
    return [f"… and {total - shown} more {what} in the report."] if total > shown else []


def _main_reasons(contributions: object, count: int = 2) -> str:
    # "state=setup (+0.56), fault_code=none (+0.19), …" → "state=setup, fault_code=none": the
    # strongest reasons, without the SHAP values an e-mail reader cannot weigh (the report has them).
    found = _CONTRIBUTION.findall(_text(contributions))
    return ", ".join(found[:count]) if found else _text(contributions)


def _uncoded(section: MLSection, zone: dt.tzinfo, rows: int) -> MailBlock:
    table = section.table
    kind = table["kind"] if "kind" in table.columns else pd.Series(dtype=object)
    blank, suspect = table[kind == "blank code"], table[kind == "suspect code"]
    truncated = section.n_rows > len(table)
    tables, lines = [], []
    if len(blank):
        tables.append(("", [{
            "Machine": _text(r.machine_id), "Stopped": _clock(r.time_start, zone),
            "Min": _minutes(r.duration_min), "Fault": _text(r.fault_code),
            "Likely cause": _text(r.predicted_category), "Confidence": _pct0(r.predicted_confidence),
            "Mainly because": _main_reasons(r.top_contributions)} for r in blank.head(rows).itertuples()]))
        lines += _more(min(rows, len(blank)), len(blank), "uncoded stops")
    else:
        lines.append("No uncoded stops in the day." if not truncated else "")
    if len(suspect):
        tables.append(("Codes to check (the entered code disagrees with a confident prediction)", [{
            "Machine": _text(r.machine_id), "Stopped": _clock(r.time_start, zone),
            "Min": _minutes(r.duration_min), "Entered": _text(r.entered_category),
            "Model says": _text(r.predicted_category), "Confidence": _pct0(r.predicted_confidence)}
            for r in suspect.head(rows).itertuples()]))
        lines += _more(min(rows, len(suspect)), len(suspect), "codes to check")
    if truncated:
        lines.append(f"The report lists all {section.n_rows} stops.")
    return MailBlock(section.title, section.confidence, tables, [x for x in lines if x])


def _anomalies(section: MLSection, zone: dt.tzinfo, rows: int) -> MailBlock:
    table = section.table
    body = [{"Machine": _text(r.machine_id), "What": _text(r.what),
             "When": _span(r.time_start, r.time_end, zone), "Severity": _text(r.severity),
             "Likely cause": _text(r.likely_cause)}
            for r in table.head(rows).itertuples()]
    lines = _more(len(body), section.n_rows, "anomalies") if body else ["No anomaly in the day."]
    return MailBlock(section.title, section.confidence, [("", body)] if body else [], lines)


def _range(value: object, low: object, high: object, fmt) -> str:
    if missing(value):
        return "n/a"
    if missing(low) or missing(high):
        return fmt(value)
    return f"{fmt(value)} ({fmt(low)}–{fmt(high)})"


def _week_ahead(section: MLSection) -> MailBlock:
    table = section.table
    working = table[table["scheduled"].astype(bool)] if "scheduled" in table.columns else table
    idle_days = sorted({pd.Timestamp(d) for d in table.loc[~table.index.isin(working.index), "day"]}
                       ) if "day" in table.columns else []
    idle = [d.strftime("%a %d %b") for d in idle_days]
    body = [{"Line": _text(r.line), "Day": pd.Timestamp(r.day).strftime("%a %d %b"),
             "Good parts (80 % range)": _range(r.good, r.good_low, r.good_high, lambda v: num(v, 0)),
             "Yield (80 % range)": _range(r.yield_, r.yield_low, r.yield_high,
                                          lambda v: f"{100 * float(v):.1f} %")}
            for r in working.rename(columns={"yield": "yield_"}).itertuples()]
    lines = list(section.notes)
    if idle:
        lines.append("No shifts planned on " + ", ".join(idle) + ": no output forecast.")
    if section.n_rows > len(table):
        lines.append(f"The report has all {section.n_rows} line-days.")
    return MailBlock(section.title, section.confidence, [("", body)] if body else [], lines)


def mail_blocks(sections: Sequence[MLSection], *, tz: str, rows: int = MAIL_ROWS) -> list[MailBlock]:
    """The e-mail's blocks of ``sections``, in the order given.

    Parameters
    ----------
    sections : sequence of MLSection
        As kept by the report's notebooks (:meth:`MLSection.from_record`).
    tz : str
        Plant time zone (times are shown in it).
    rows : int
        Rows per table; the rest are counted.
    """
    zone = _zone(tz)
    blocks = []
    for section in sections:
        if not section.shown:
            blocks.append(MailBlock(section.title, f"Not shown, because {section.reason}."))
        elif section.title == UNCODED_TITLE:
            blocks.append(_uncoded(section, zone, rows))
        elif section.title == ANOMALIES_TITLE:
            blocks.append(_anomalies(section, zone, rows))
        elif section.title == WEEK_AHEAD_TITLE:
            blocks.append(_week_ahead(section))
        else:  # a section this e-mail does not know: its statement, not a guessed table
            blocks.append(MailBlock(section.title, section.confidence, [], list(section.notes)))
    return blocks


def blocks_html(blocks: Sequence[MailBlock]) -> str:
    """The blocks as the HTML part's sections (inline styles)."""
    out = []
    for block in blocks:
        out.append(f'<h2 style="{H2}">{esc(block.title)}</h2>')
        if block.lead:
            out.append(f'<p style="{FONT}font-size:12px;color:#4b5563;margin:0 0 6px 0;">'
                       f"{esc(block.lead)}</p>")
        for caption, rows in block.tables:
            if caption:
                out.append(f'<p style="{FONT}font-size:13px;font-weight:bold;margin:8px 0 2px 0;">'
                           f"{esc(caption)}</p>")
            out.append(html_table(rows))
        if block.lines:
            items = "".join(f'<li style="margin:2px 0;">{esc(line)}</li>' for line in block.lines)
            out.append(f'<ul style="{FONT}font-size:13px;margin:0 0 12px 0;padding-left:20px;">{items}</ul>')
    return "".join(out)


def blocks_text(blocks: Sequence[MailBlock]) -> list[str]:
    """The blocks as lines of the text part."""
    out: list[str] = []
    for block in blocks:
        out.append(block.title)
        if block.lead:
            out += [f"  {line}" for line in _wrap(block.lead)]
        for caption, rows in block.tables:
            if caption:
                out.append(f"  {caption}")
            out.append(text_table(rows))
        out += [f"  - {line}" for line in block.lines]
        out.append("")
    return out


def _wrap(text: str) -> list[str]:
    import textwrap

    return textwrap.wrap(text, 76) or [""]
