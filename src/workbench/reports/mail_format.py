"""Formatting shared by the e-mail's sections: inline-CSS tables and their plain-text twins.

An e-mail client ignores style sheets and scripts, so every element carries its own style.
"""

from __future__ import annotations

import html

import pandas as pd

FONT = "font-family:Arial,Helvetica,sans-serif;"
TABLE = "border-collapse:collapse;width:100%;margin:4px 0 16px 0;font-size:13px;" + FONT
TH = "text-align:left;padding:4px 8px;border-bottom:2px solid #d1d5db;background:#f9fafb;color:#374151;"
TD = "padding:4px 8px;border-bottom:1px solid #e5e7eb;color:#111827;"
H2 = "font-size:16px;margin:20px 0 4px 0;color:#111827;" + FONT


def missing(value: object) -> bool:
    """None or NaN / NaT."""
    return value is None or bool(pd.isna(value))


def pct(value: object) -> str:
    """A fraction as ``12.3%``, ``n/a`` when missing."""
    return "n/a" if missing(value) else f"{float(value):.1%}"  # type: ignore[arg-type]


def num(value: object, digits: int = 0) -> str:
    """A number with thousands separators, ``n/a`` when missing."""
    return "n/a" if missing(value) else f"{float(value):,.{digits}f}"  # type: ignore[arg-type]


def esc(value: object) -> str:
    """HTML-escaped text of a value."""
    return html.escape(str(value), quote=True)


def html_table(rows: list[dict[str, str]], *, cell_style=None) -> str:
    """Rows (same keys, in order) as an inline-styled HTML table; ``""`` without rows.

    ``cell_style(row, column)`` may add CSS to a cell (e.g. a status band).
    """
    if not rows:
        return ""
    head = "".join(f'<th style="{TH}">{esc(c)}</th>' for c in rows[0])
    body = []
    for row in rows:
        cells = []
        for col, value in row.items():
            extra = cell_style(row, col) if cell_style else ""
            cells.append(f'<td style="{TD}{extra}">{esc(value)}</td>')
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (f'<table role="presentation" cellpadding="0" cellspacing="0" style="{TABLE}">'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")


def text_table(rows: list[dict[str, str]]) -> str:
    """Rows as an indented, column-aligned plain-text table; ``(none)`` without rows."""
    if not rows:
        return "  (none)\n"
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    line = "  " + "  ".join(c.ljust(widths[c]) for c in cols).rstrip()
    rule = "  " + "  ".join("-" * widths[c] for c in cols)
    body = ["  " + "  ".join(r[c].ljust(widths[c]) for c in cols).rstrip() for r in rows]
    return "\n".join([line, rule, *body]) + "\n"
