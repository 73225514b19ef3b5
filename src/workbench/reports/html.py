"""HTML report pages from executed notebooks: one self-contained page per section plus an index.

Every page renders with the network switched off:

* nbconvert's ``lab`` template is extended so that it loads nothing from a CDN: require.js,
  MathJax, Mermaid and the Jupyter widgets renderer are removed (their URLs are also emptied);
  the lab CSS is inlined by nbconvert itself.
* plotly.js is taken from the installed plotly package and written **once** into the page head;
  every copy a notebook output carried (inline bundles, CDN ``<script src>``) is removed and
  figures saved only as plotly JSON (plain ``fig.show()`` under papermill) are turned into HTML.
* each written page is scanned; anything that would still be fetched from the network (an
  ``<img src="https://…">`` from a markdown cell, say) is disabled and reported in
  :attr:`ReportResult.warnings`. Plain ``<a href>`` links to other sites are kept: they load
  nothing until clicked.

Not supported offline: LaTeX in markdown cells shows as TeX source (no MathJax), Mermaid
diagrams show as code, ipywidgets do not render.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import io
import json
import os
import re
import tempfile
import threading
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

from workbench.config import RECORD_MIME
from workbench.errors import ReportError
from workbench.reports.execute import SectionResult

PLOTLY_MIME = "application/vnd.plotly.v1+json"

# Copies of plotly.js a notebook output may carry; the page head has the one copy.
_PLOTLY_BUNDLE = re.compile(r"<script[^>]*>\s*/\*\*\s*\*\s*plotly\.js v.*?</script>", re.S)
_PLOTLY_CONFIG = re.compile(r"<script[^>]*>\s*window\.PlotlyConfig\s*=[^<]*</script>")
_PLOTLY_SRC = re.compile(r"<script[^>]*\bsrc\s*=\s*[\"'][^\"']*plotly[^\"']*[\"'][^>]*>\s*</script>", re.I)
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Where plotly.js goes in a page: filled in after the page has been checked for network
# references (scanning 4.8 MB of minified script for them would be slow and pointless).
_PLOTLY_SLOT = "/* workbench: plotly.js goes here */"

_TEMPLATE_NAME = "workbench_report.html.j2"
# Extends nbconvert's lab template; the blocks emptied here are the ones that reference a CDN.
_TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block extra_css -%}<style type="text/css">{{ resources.workbench.css }}</style>{%- endblock extra_css -%}
{%- block html_head_css -%}
{%- if resources.workbench.plotly_js -%}
<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>
<script>{{ resources.workbench.plotly_js }}</script>
{%- endif -%}
{%- endblock html_head_css -%}
{%- block body_header -%}
{{ super() }}
{{ resources.workbench.header }}
{%- endblock body_header -%}
{%- block body_footer -%}
{{ resources.workbench.footer }}
{{ super() }}
{%- endblock body_footer -%}
"""

_CSS = """
.wb-header { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; color: #1f2933;
  max-width: 1100px; margin: 16px auto 8px auto; padding: 0 16px; }
.wb-header h1 { font-size: 1.6em; margin: 8px 0; }
.wb-nav a { color: #1d4ed8; text-decoration: none; }
.wb-meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; font-size: 0.85em;
  background: #f3f4f6; border: 1px solid #d1d5db; border-radius: 4px; padding: 8px 12px; margin: 8px 0; }
.wb-meta dt { font-weight: 600; color: #4b5563; }
.wb-meta dd { margin: 0; overflow-wrap: anywhere; }
.wb-meta code { font-size: 0.95em; }
.wb-failed-box { background: #fef2f2; border: 2px solid #b91c1c; border-radius: 4px; padding: 8px 12px;
  margin: 12px 0; }
.wb-failed-box h2 { color: #b91c1c; margin: 0 0 6px 0; font-size: 1.2em; }
.wb-failed-box pre { white-space: pre-wrap; font-size: 0.8em; background: #fff; padding: 8px;
  border: 1px solid #fecaca; max-height: 40em; overflow: auto; }
.wb-warn-box { background: #fffbeb; border: 2px solid #b45309; border-radius: 4px; padding: 8px 12px;
  margin: 12px 0; font-size: 0.9em; }
.wb-stale-box { background: #fff7ed; border: 2px solid #c2410c; border-left-width: 10px; border-radius: 4px;
  padding: 10px 14px; margin: 8px 0 12px 0; color: #431407; }
.wb-stale-box h2 { color: #9a3412; margin: 0 0 4px 0; font-size: 1.3em; }
.wb-stale-box p { margin: 0 0 4px 0; }
.wb-stale-box ul { margin: 4px 0 0 0; padding-left: 22px; }
.wb-stale-box li { margin: 3px 0; overflow-wrap: anywhere; }
.wb-badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 0.8em;
  font-weight: 600; }
.wb-badge-ok { background: #dcfce7; color: #166534; }
.wb-badge-failed { background: #b91c1c; color: #fff; }
.wb-sections { border-collapse: collapse; width: 100%; margin: 12px 0; }
.wb-sections th, .wb-sections td { text-align: left; padding: 6px 10px; border-bottom: 1px solid #e5e7eb;
  vertical-align: top; }
.wb-sections tr.wb-failed td { background: #fef2f2; }
.wb-footer { font-family: system-ui, sans-serif; font-size: 0.8em; color: #6b7280; max-width: 1100px;
  margin: 24px auto; padding: 0 16px; }
"""


@dataclass(frozen=True)
class ReportResult:
    """The HTML report that :func:`build_report` wrote.

    Attributes
    ----------
    index_html : Path
        The index page.
    section_html : dict of str to Path
        One page per section, by section name, in report order.
    failed : list of str
        Names of the sections whose notebook failed.
    warnings : list of str
        Problems that did not stop the build (e.g. an external image that was disabled because
        the page must render offline); pass them on to :func:`compose_daily_email`.
    """

    index_html: Path
    section_html: dict[str, Path]
    failed: list[str]
    warnings: list[str] = field(default_factory=list)

    @property
    def report_dir(self) -> Path:
        """The directory holding the pages."""
        return self.index_html.parent


# -- external references ---------------------------------------------------------------------

_URL_ATTRS = {"src", "href", "srcset", "poster", "data", "action", "formaction", "background", "xlink:href",
              "manifest", "ping"}
_CSS_URL = re.compile(r"""url\(\s*(["']?)([^"')]+)\1\s*\)|@import\s+(["'])([^"']+)\3""", re.I)


def _is_external(url: str) -> bool:
    u = url.strip().lower()
    return u.startswith(("http:", "https:", "//", "ftp:", "ws:", "wss:"))


class _RefParser(HTMLParser):
    """Collect URL-valued attributes and CSS ``url()`` in tags and ``<style>`` (not inside scripts,
    which HTMLParser treats as opaque text, as a browser does)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.refs: list[tuple[str, str, str]] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if not value:
                continue
            if name in _URL_ATTRS:
                urls = ([part.strip().split(" ")[0] for part in value.split(",")] if name == "srcset"
                        else [value])
                self.refs += [(tag, name, u) for u in urls if u]
            elif name == "style":
                self.refs += [(tag, "style", m.group(2) or m.group(4)) for m in _CSS_URL.finditer(value)]
            elif tag == "meta" and name == "content" and "url=" in value.lower():
                self.refs.append((tag, name, value.lower().split("url=", 1)[1]))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.refs += [("style", "css", m.group(2) or m.group(4)) for m in _CSS_URL.finditer(data)]


def external_urls(page: str, *, include_links: bool = True) -> list[tuple[str, str, str]]:
    """External URLs referenced by an HTML page, as ``(tag, attribute, url)``.

    Parameters
    ----------
    page : str
        HTML text.
    include_links : bool
        Also list ``<a href>`` (and ``<area href>``) targets, which are only followed when clicked;
        ``False`` lists only what a browser would fetch when opening the page.

    Returns
    -------
    list of tuple
        Absolute ``http(s)``, protocol-relative, ``ftp`` and websocket URLs in attributes and CSS.
    """
    parser = _RefParser()
    parser.feed(page)
    parser.close()
    out = [r for r in parser.refs if _is_external(r[2])]
    if not include_links:
        out = [r for r in out if not (r[0] in ("a", "area") and r[1] == "href")]
    return out


def _disable_external(page: str, refs: list[tuple[str, str, str]]) -> str:
    """Rename the attributes (or blank the CSS ``url()``) that would fetch ``refs``."""
    for _tag, attr, url in refs:
        if attr in ("style", "css"):
            page = re.sub(r"url\(\s*([\"']?)" + re.escape(url) + r"\1\s*\)", "none", page)
            page = re.sub(r"@import\s+([\"'])" + re.escape(url) + r"\1\s*;?", "", page)
            continue
        blocked = "data-wb-blocked-" + attr.replace(":", "-")
        for written in {url, html.escape(url, quote=True)}:
            pattern = r"(?<![\w:-])" + re.escape(attr) + r"(\s*=\s*[\"']" + re.escape(written) + r"[\"'])"
            page = re.sub(pattern, lambda m, b=blocked: b + m.group(1), page)
    return page


# -- notebook outputs -----------------------------------------------------------------------

def _draws_itself(text: str | list[str] | None) -> bool:
    """Whether a figure's HTML draws it with a global ``Plotly`` (what :func:`workbench.notebook.show`
    writes), rather than through require.js or not at all."""
    if isinstance(text, list):
        text = "".join(text)
    return bool(text) and "Plotly.newPlot" in text and "require(" not in text and "requirejs" not in text


def _normalise_plotly(nb) -> bool:
    """Make every plotly figure in ``nb`` an HTML output that expects ``window.Plotly`` from the page
    head. Returns whether the notebook shows any plotly figure."""
    import plotly.io as pio

    uses = False
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            data = out.get("data")
            if not data:
                continue
            if PLOTLY_MIME in data and not _draws_itself(data.get("text/html")):
                # The JSON alone (plain fig.show() under papermill) would be dropped by nbconvert,
                # and a "notebook" renderer's HTML needs require.js: draw it from the JSON instead.
                fig = data[PLOTLY_MIME]
                data["text/html"] = pio.to_html(fig if isinstance(fig, dict) else json.loads(fig),
                                                include_plotlyjs=False, full_html=False, validate=False)
            text = data.get("text/html")
            if not text:
                continue
            if isinstance(text, list):
                text = "".join(text)
            stripped = _PLOTLY_SRC.sub("", _PLOTLY_CONFIG.sub("", _PLOTLY_BUNDLE.sub("", text)))
            data["text/html"] = stripped
            uses = uses or "plotly-graph-div" in stripped or "Plotly.newPlot" in stripped
    return uses


def _drop_records(nb) -> None:
    """Remove the results notebooks kept for the pipeline (:func:`workbench.notebook.record`)
    from ``nb``: they are data for the pipeline, not output for the reader, and nbconvert has no
    way to show their MIME type — it would warn "not able to be represented" for each one and
    leave an empty output box on the page."""
    for cell in nb.cells:
        if cell.cell_type != "code" or not cell.get("outputs"):
            continue
        shown = []
        for out in cell.outputs:
            data = out.get("data")
            if data and RECORD_MIME in data:
                del data[RECORD_MIME]
                if not data:
                    continue
            shown.append(out)
        cell.outputs = shown


@functools.cache
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


_THREAD = threading.local()


def _thread_exporter():  # -> nbconvert.HTMLExporter
    """This thread's exporter: compiling the template takes longer than exporting a page, and an
    exporter is not safe to share between threads (it registers filters per call)."""
    exporter = getattr(_THREAD, "exporter", None)
    if exporter is None:
        exporter = _THREAD.exporter = _exporter()
    return exporter


_NO_ALT = re.compile(r"<img\b(?![^>]*\balt\s*=)", re.I)
_OUTPUT_DIV = re.compile(r'<div class="([^"]*\bjp-OutputArea-output\b[^"]*)"')


def _exporter_class() -> type:
    from nbconvert import HTMLExporter, TemplateExporter
    from nbconvert.filters.highlight import Highlight2HTML
    from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter

    class ReportExporter(HTMLExporter):
        """nbconvert 7's HTMLExporter without its last step, which re-parses the whole page with
        BeautifulSoup only to add ``alt`` to images and ``tabindex`` to outputs — a third of
        the export time. The same two attributes are added here with two regular expressions."""

        def from_notebook_node(self, nb, resources=None, **kw):  # type: ignore[no-untyped-def]
            langinfo = nb.metadata.get("language_info", {})
            lexer = langinfo.get("pygments_lexer", langinfo.get("name", None))
            self.register_filter("highlight_code", self.filters.get(
                "highlight_code", Highlight2HTML(pygments_lexer=lexer, parent=self)))
            resources = self._init_resources(resources)
            self.register_filter("filter_data_type", WidgetsDataTypeFilter(
                notebook_metadata=self._nb_metadata, parent=self, resources=resources))
            page, resources = TemplateExporter.from_notebook_node(self, nb, resources, **kw)
            page = _NO_ALT.sub('<img alt="No description has been provided for this image"', page)
            page = _OUTPUT_DIV.sub(r'<div tabindex="0" class="\1"', page)
            return page, resources

    return ReportExporter


def _exporter():  # -> nbconvert.HTMLExporter
    from jinja2 import DictLoader

    return _exporter_class()(
        template_name="lab", template_file=_TEMPLATE_NAME,
        extra_loaders=[DictLoader({_TEMPLATE_NAME: _TEMPLATE})],
        exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True, embed_images=True,
        # Emptied as well as dropped from the template: a future template version must not
        # bring them back silently.
        mathjax_url="", require_js_url="", jupyter_widgets_base_url="", widget_renderer_url="",
        mermaid_js_url="", theme="light",
    )


# -- provenance -----------------------------------------------------------------------------

def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def source_notices(source_warnings: Sequence[str]) -> list[str]:
    """The stale-source notices to show, checked: one non-blank string per notice.

    Parameters
    ----------
    source_warnings : sequence of str
        E.g. :func:`workbench.sources.health.stale_notices` (``RunData.summary["source_warnings"]``).

    Returns
    -------
    list of str
        Stripped, blank ones dropped.

    Raises
    ------
    ReportError
        When given one string instead of a sequence of them (it would show one notice per character).
    """
    if isinstance(source_warnings, str | bytes):
        raise ReportError("source_warnings must be a list of notices, not a single string")
    return [str(w).strip() for w in source_warnings if str(w).strip()]


def data_incomplete_heading(count: int) -> str:
    """Heading of the stale-source notice: ``"Data incomplete — a source was stale"``."""
    # Not "N sources": a source that went stale twice in the day has two notices.
    return "Data incomplete — a source was stale" if count == 1 else "Data incomplete — sources were stale"


#: What the notice means for the numbers, said once under its heading.
DATA_INCOMPLETE_LEAD = ("The figures below lack data from the source(s) listed for part of the period: "
                        "a low count may be missing data, not a quiet day.")


def _source_warnings_box(notices: list[str]) -> str:
    if not notices:
        return ""  # nothing stale: no box at all, not an empty one
    items = "".join(f"<li>{_e(n)}</li>" for n in notices)
    return ('<section class="wb-stale-box" id="wb-source-warnings" role="alert" data-wb="source-warnings">'
            f"<h2>⚠ {_e(data_incomplete_heading(len(notices)))}</h2><p>{_e(DATA_INCOMPLETE_LEAD)}</p>"
            f"<ul>{items}</ul></section>")


def _when(moment: dt.datetime, tz: ZoneInfo) -> str:
    local = moment.astimezone(tz)
    utc = moment.astimezone(dt.UTC)
    return f"{local:%Y-%m-%d %H:%M:%S %Z} ({tz.key}) · {utc:%Y-%m-%d %H:%M:%S} UTC"


def _format_range_end(value: object, tz: ZoneInfo) -> str:
    if isinstance(value, dt.datetime):
        moment = value
    else:
        try:
            moment = dt.datetime.fromisoformat(str(value))
        except ValueError:
            return str(value)
    if moment.tzinfo is None:
        return str(value)
    return f"{moment.astimezone(tz):%Y-%m-%d %H:%M %Z}"


def _params_html(parameters: dict[str, object]) -> str:
    if not parameters:
        return "<em>notebook defaults</em>"
    return " · ".join(f"<code>{_e(k)} = {_e(json.dumps(v, default=str, ensure_ascii=False))}</code>"
                      for k, v in parameters.items())


def _data_html(data_summary: dict[str, object], tz: ZoneInfo) -> str:
    parts = []
    if "start" in data_summary or "end" in data_summary:
        parts.append(f"from {_e(_format_range_end(data_summary.get('start', '?'), tz))} "
                     f"to {_e(_format_range_end(data_summary.get('end', '?'), tz))}")
    rows = data_summary.get("rows")
    if isinstance(rows, dict) and rows:
        listed = ", ".join(f"{_e(t)} {int(n):,}" if isinstance(n, int) else f"{_e(t)} {_e(n)}"
                           for t, n in rows.items())
        parts.append(f"rows: {listed}")
    for key, value in data_summary.items():
        if key == "source_warnings":
            # The notices themselves are at the top of the index page; every page says that
            # they exist (a section page is often opened on its own) rather than a list's repr.
            count = len(value) if isinstance(value, list | tuple) else 0
            parts.append("stale sources: none" if not count else
                         f"<strong>incomplete</strong>: {count} stale-source notice(s), "
                         '<a href="index.html#wb-source-warnings">see the front page</a>')
        elif key == "extract_ranges" and isinstance(value, dict):
            # Tables copied over another range than the rest (a forecast's months of history).
            parts += [f"{_e(t)} from {_e(_format_range_end(lo, tz))} to {_e(_format_range_end(hi, tz))}"
                      for t, (lo, hi) in value.items()]
        elif key not in ("start", "end", "rows"):
            parts.append(f"{_e(key)}: {_e(value)}")
    return "; ".join(parts) or "<em>not given</em>"


@dataclass(frozen=True)
class _Provenance:
    title: str
    generated_at: dt.datetime
    tz: ZoneInfo
    parameters: dict[str, object]
    data_summary: dict[str, object]
    code_version: str

    def block(self, *, parameters: dict[str, object] | None = None, extra: str = "") -> str:
        shown = self.parameters if parameters is None else parameters
        return (
            '<dl class="wb-meta" id="wb-provenance">'
            f'<dt>Made</dt><dd data-wb="made">{_e(_when(self.generated_at, self.tz))}</dd>'
            f'<dt>Parameters</dt><dd data-wb="parameters">{_params_html(shown)}</dd>'
            f'<dt>Data</dt><dd data-wb="data">{_data_html(self.data_summary, self.tz)}</dd>'
            f'<dt>Code version</dt><dd data-wb="code-version"><code>{_e(self.code_version)}</code></dd>'
            f"{extra}</dl>"
        )

    def footer(self) -> str:
        return (f'<footer class="wb-footer">{_e(self.title)} · made {_e(_when(self.generated_at, self.tz))} '
                f"· workbench {_e(self.code_version)}</footer>")


# -- pages ----------------------------------------------------------------------------------

def _write_atomic(path: Path, text: str) -> None:
    # A web server may be serving reports/ while the morning run rewrites it.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _section_page(section: SectionResult, prov: _Provenance, *, exporter) -> str:
    import nbformat

    notebook = None
    if section.ipynb_path.is_file():
        try:
            notebook = nbformat.read(section.ipynb_path, as_version=4)
        except (OSError, ValueError):
            notebook = None  # a truncated file from a killed kernel: the failure box still says why
    if notebook is None:
        notebook = nbformat.v4.new_notebook()
    _drop_records(notebook)
    uses_plotly = _normalise_plotly(notebook)
    notebook.metadata.pop("widgets", None)
    notebook.metadata["title"] = f"{section.name} — {prov.title}"

    ran = (f"<dt>Ran</dt><dd data-wb=\"ran\">{_e(_when(section.started_at, prov.tz))}, "
           f"{section.duration_s:.1f} s</dd>")
    if section.origin:
        ran += f"<dt>Notebook</dt><dd data-wb=\"notebook\">{_e(section.origin)}</dd>"
    badge = ('<span class="wb-badge wb-badge-ok">ok</span>' if section.ok
             else '<span class="wb-badge wb-badge-failed">FAILED</span>')
    header = ('<header class="wb-header"><nav class="wb-nav">'
              f'<a href="index.html">← {_e(prov.title)}</a></nav><h1>{_e(section.name)} {badge}</h1>'
              f"{prov.block(parameters=section.parameters, extra=ran)}")
    if not section.ok:
        shown = "the output up to the failing cell follows" if notebook.cells else "no output was saved"
        header += ('<div class="wb-failed-box" id="wb-failure" role="alert">'
                   "<h2>This section failed</h2>"
                   f"<p><strong>{_e(section.error or 'unknown error')}</strong></p>"
                   f"<pre>{_e(section.traceback or '')}</pre><p>{shown}.</p></div>")
    header += "</header>"
    resources = {"workbench": {"css": _CSS, "plotly_js": _PLOTLY_SLOT if uses_plotly else "",
                               "header": header, "footer": prov.footer()}}
    body, _ = exporter.from_notebook_node(notebook, resources=resources)
    return body


#: File name of the one plotly.js a folder of pages shares (see :func:`with_shared_plotly`).
SHARED_PLOTLY_JS = "plotly.min.js"

# Shown by a page that uses the shared plotly.js when it is missing (the page was opened
# straight from the zip file, without extracting the folder).
_SHARED_PLOTLY_MISSING = (
    "<script>if (!window.Plotly) { document.addEventListener('DOMContentLoaded', function () {"
    " var d = document.createElement('div'); d.className = 'wb-warn-box'; d.id = 'wb-no-plotly';"
    " d.textContent = 'The charts need " + SHARED_PLOTLY_JS + " from the same folder: extract the whole"
    " zip file, then open index.html.'; document.body.prepend(d); }); }</script>"
)


def with_shared_plotly(page: str) -> str | None:
    """The page with its inline plotly.js replaced by ``<script src="plotly.min.js">``.

    For a folder of pages shipped together (the e-mail's zip): plotly.js is in the folder once
    instead of once per page. Returns None when the page carries no plotly.js.
    """
    inline = f"<script>{_plotly_js()}</script>"
    head, found, rest = page.partition(inline)
    if not found:
        return None
    return f'{head}<script src="{SHARED_PLOTLY_JS}"></script>{_SHARED_PLOTLY_MISSING}{rest}'


def _fill_plotly_slot(page: str, plotly_js: str) -> str:
    head, slot, rest = page.partition(_PLOTLY_SLOT)
    return head + plotly_js + rest if slot else page


def _index_page(sections: list[SectionResult], pages: dict[str, Path], prov: _Provenance,
                report_dir: Path, warnings: list[str], source_warnings: list[str]) -> str:
    failed = [s for s in sections if not s.ok]
    rows = []
    for s in sections:
        page = pages[s.name].name
        status = ('<span class="wb-badge wb-badge-ok">ok</span>' if s.ok
                  else '<span class="wb-badge wb-badge-failed">✗ FAILED</span>')
        note = "" if s.ok else _e(s.error or "failed")
        try:
            relative = s.ipynb_path.resolve().relative_to(report_dir.resolve()).as_posix()
            nb_link = f' · <a href="{_e(relative)}">.ipynb</a>'
        except ValueError:
            nb_link = ""  # executed notebook kept outside the report directory
        rows.append(f'<tr class="{"wb-ok" if s.ok else "wb-failed"}" data-section="{_e(s.name)}">'
                    f'<td><a href="{_e(page)}">{_e(s.name)}</a>{nb_link}</td><td>{status}</td>'
                    f"<td>{s.duration_s:.1f} s</td><td>{note}</td></tr>")
    summary = (f"{len(sections)} section(s), all ran" if not failed
               else f"{len(sections)} section(s), <strong>{len(failed)} failed</strong>: "
               + ", ".join(_e(s.name) for s in failed))
    warn = ""
    if warnings:
        warn = ('<div class="wb-warn-box" role="alert"><strong>Warnings</strong><ul>'
                + "".join(f"<li>{_e(w)}</li>" for w in warnings) + "</ul></div>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1.0">'
        f"<title>{_e(prov.title)}</title><style>{_CSS} body {{ margin: 0; }}</style></head><body>"
        # The stale-source notice comes first, under the title: nobody should read a figure
        # of the day before knowing that some of its data is missing.
        f'<header class="wb-header"><h1>{_e(prov.title)}</h1>{_source_warnings_box(source_warnings)}'
        f"{prov.block()}</header>"
        f'<main class="wb-header"><p id="wb-summary">{summary}</p>{warn}'
        '<table class="wb-sections"><thead><tr><th>Section</th><th>Status</th><th>Run time</th>'
        f"<th>Error</th></tr></thead><tbody>{''.join(rows)}</tbody></table></main>"
        f"{prov.footer()}</body></html>\n"
    )


@dataclass(frozen=True)
class SectionPage:
    """One section's HTML page, written by :func:`build_section_page`.

    Attributes
    ----------
    name : str
        Section name.
    path : Path
        The page.
    warnings : list of str
        Problems that did not stop the build (an external resource disabled so the page works
        offline).
    """

    name: str
    path: Path
    warnings: list[str] = field(default_factory=list)


def _check_names(names: list[str]) -> None:
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ReportError(f"section names must be unique; repeated: {', '.join(dupes)}")
    bad = [n for n in names if not _SAFE_NAME.match(n) or n.lower() == "index"]
    if bad:
        raise ReportError(f"section names must be letters, digits, '_', '-', '.' and not 'index': {bad}")


def _provenance(title: str, parameters: dict[str, object], data_summary: dict[str, object], code_version: str,
                generated_at: dt.datetime, tz: str | None) -> _Provenance:
    if generated_at.tzinfo is None or generated_at.utcoffset() is None:
        raise ReportError("generated_at must be timezone-aware (e.g. datetime.now(UTC))")
    if tz is None:
        from workbench.config import settings

        tz = settings().plant_timezone
    return _Provenance(title, generated_at, ZoneInfo(tz), dict(parameters), dict(data_summary), code_version)


def _write_section_page(section: SectionResult, prov: _Provenance, report_dir: Path) -> SectionPage:
    page = _section_page(section, prov, exporter=_thread_exporter())
    fetched = external_urls(page, include_links=False)
    warnings: list[str] = []
    if fetched:
        # The page must render offline; a network reference would silently show a hole.
        page = _disable_external(page, fetched)
        left = external_urls(page, include_links=False)
        if left:
            raise ReportError(f"section {section.name}: cannot make the page work offline, it still "
                              f"references {', '.join(sorted({u for _, _, u in left}))}")
        urls = ", ".join(sorted({u for _, _, u in fetched}))
        warnings.append(f"section {section.name}: disabled external resource(s) so the page works "
                        f"offline: {urls}")
    path = report_dir / f"{section.name}.html"
    _write_atomic(path, _fill_plotly_slot(page, _plotly_js()))
    return SectionPage(section.name, path, warnings)


def build_section_page(section: SectionResult, *, report_dir: Path, title: str, parameters: dict[str, object],
                       data_summary: dict[str, object], code_version: str, generated_at: dt.datetime,
                       tz: str | None = None) -> SectionPage:
    """Write the HTML page of one section to ``report_dir/<name>.html``.

    A pipeline calls it as soon as a notebook has run (while others still run) and passes the
    pages to :func:`build_report`, which then only writes the index. Parameters as for
    :func:`build_report`.

    Returns
    -------
    SectionPage

    Raises
    ------
    ReportError
        On a naive ``generated_at`` or an unusable section name.
    """
    _check_names([section.name])
    prov = _provenance(title, parameters, data_summary, code_version, generated_at, tz)
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    return _write_section_page(section, prov, report_dir)


def build_report(sections: list[SectionResult], *, report_dir: Path, title: str,
                 parameters: dict[str, object], data_summary: dict[str, object], code_version: str,
                 generated_at: dt.datetime, tz: str | None = None,
                 pages: dict[str, SectionPage] | None = None,
                 source_warnings: Sequence[str] = ()) -> ReportResult:
    """Write one HTML page per section and an index to ``report_dir``.

    Parameters
    ----------
    sections : list of SectionResult
        In report order; names must be unique, file-name safe and not ``index``.
    report_dir : Path
        Output directory (created when missing); pages are ``<name>.html`` and ``index.html``.
    title : str
        Report title.
    parameters : dict
        The report's parameters (each section page shows the ones its notebook ran with).
    data_summary : dict
        What the data was: ``rows`` (table → row count), ``start`` and ``end`` of the time range,
        e.g. :attr:`workbench.summary.DailySummary.data`; other keys are shown as they are.
    code_version : str
        From :func:`workbench.reports.code_version`.
    generated_at : datetime
        When the report was made; timezone-aware.
    tz : str, optional
        Plant time zone the times are shown in (beside UTC); default the configured
        ``WORKBENCH_PLANT_TIMEZONE``.
    pages : dict of str to SectionPage, optional
        Pages already written by :func:`build_section_page` (by section name, in
        ``report_dir``); the other sections' pages are written here.
    source_warnings : sequence of str
        One notice per data source that was stale during the report period
        (:func:`workbench.sources.health.stale_notices`). Shown at the top of the index page,
        above everything else but the title, as "Data incomplete — a source was stale"; none:
        no box. Distinct from the build's :attr:`ReportResult.warnings`.

    Returns
    -------
    ReportResult

    Raises
    ------
    ReportError
        On a naive ``generated_at``, duplicate or unusable section names, a given page that
        is not in ``report_dir``, or ``source_warnings`` given as one string.
    """
    _check_names([s.name for s in sections])
    notices = source_notices(source_warnings)
    prov = _provenance(title, parameters, data_summary, code_version, generated_at, tz)
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    built = dict(pages or {})
    for name, page in built.items():
        if page.path.resolve().parent != report_dir.resolve() or not page.path.is_file():
            raise ReportError(f"the page of section {name} ({page.path}) is not a file in {report_dir}")
    written: dict[str, Path] = {}
    warnings: list[str] = []
    for section in sections:
        page = built.get(section.name) or _write_section_page(section, prov, report_dir)
        written[section.name] = page.path
        warnings += page.warnings

    index = report_dir / "index.html"
    _write_atomic(index, _index_page(sections, written, prov, report_dir, warnings, notices))
    return ReportResult(index_html=index, section_html=written, failed=[s.name for s in sections if not s.ok],
                        warnings=warnings)


def report_zip(report: ReportResult, *, folder: str) -> bytes:
    """The report's pages as a zip file of one folder, sharing one ``plotly.min.js``.

    Each page in ``report_dir`` carries its own plotly.js so that it opens alone; in the zip
    five copies of 4.8 MB would make an e-mail five times larger for nothing.

    Parameters
    ----------
    report : ReportResult
        The report.
    folder : str
        Name of the folder in the zip (e.g. ``report-2026-11-20``).

    Returns
    -------
    bytes
        The zip file.
    """
    buf = io.BytesIO()
    shared = False
    # Level 6: within 0.3 % of level 9's size on these pages in ⅔ of the time.
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for path in [report.index_html, *report.section_html.values()]:
            page = path.read_text(encoding="utf-8")
            slim = with_shared_plotly(page)
            shared = shared or slim is not None
            zf.writestr(f"{folder}/{path.name}", slim if slim is not None else page)
        if shared:
            zf.writestr(f"{folder}/{SHARED_PLOTLY_JS}", _plotly_js())
    return buf.getvalue()
