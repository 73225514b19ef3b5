"""The HTML report in a real headless Chromium with the network off: every figure draws, nothing is
fetched from outside the report, the console stays clean. A screenshot of every page is kept in
``test-artifacts/reports/``.

Chromium is Debian's package (``apt-get install chromium``; ``.ci/run`` installs it): Playwright's
own browser download is not used. In CI a missing browser is a failure, elsewhere a skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from report_support import chromium

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "reports"
PAGES = ["index", "figures", "broken"]

pytestmark = pytest.mark.slow

ALL_PLOTS_DRAWN = """() => Array.from(document.querySelectorAll('.plotly-graph-div'))
                         .every(div => div.querySelector('svg.main-svg') !== null)"""


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as b:
        yield b


@pytest.mark.parametrize("name", PAGES)
def test_page_renders_offline(browser, built_report, name: str) -> None:
    report = built_report.result
    path = report.index_html if name == "index" else report.section_html[name]
    context = browser.new_context(offline=True, service_workers="block", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    requests: list[str] = []
    blocked: list[str] = []
    errors: list[str] = []

    def route(r) -> None:
        url = r.request.url
        if url.startswith("file://"):
            r.continue_()
        else:
            blocked.append(url)
            r.abort("blockedbyclient")

    page.on("request", lambda req: requests.append(req.url))
    page.on("console", lambda msg: errors.append(f"console.{msg.type}: {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    page.route("**/*", route)
    try:
        page.goto(path.as_uri(), wait_until="load")
        plots = page.locator(".plotly-graph-div").count()
        if plots:
            page.wait_for_function(ALL_PLOTS_DRAWN, timeout=20_000)
        drawn = page.evaluate("""() => Array.from(document.querySelectorAll('.plotly-graph-div'))
                                          .map(div => div.querySelectorAll('svg.main-svg').length)""")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        title = page.title()
    finally:
        context.close()

    leaving = [u for u in requests if not u.startswith(("file://", "data:", "blob:", "about:"))]
    assert leaving == [] and blocked == [], f"requests left file:// — {leaving or blocked}"
    assert errors == []
    assert len(drawn) == plots and all(n > 0 for n in drawn), drawn
    assert plots == {"index": 0, "figures": 3, "broken": 0}[name]
    assert title
    assert (ARTIFACTS / f"{name}.png").stat().st_size > 10_000


def test_index_links_lead_to_the_section_pages(browser, built_report) -> None:
    context = browser.new_context(offline=True)
    page = context.new_page()
    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file://") else r.abort())
    try:
        page.goto(built_report.result.index_html.as_uri())
        failed_row = page.locator('tr[data-section="broken"]')
        assert "FAILED" in failed_row.inner_text()
        page.click("text=figures")
        page.wait_for_load_state("load")
        assert page.url.endswith("/figures.html")
        page.click("nav >> text=Daily report")
        assert page.url.endswith("/index.html")
    finally:
        context.close()


def _open_offline(browser, path: Path) -> tuple[list[int], bool, list[str], list[str]]:
    """Open ``path`` with the network off: plots drawn per figure, whether the missing-plotly.js
    warning shows, console errors, requests that left the file system."""
    context = browser.new_context(offline=True, service_workers="block")
    page = context.new_page()
    errors: list[str] = []
    outside: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    def route(r) -> None:
        if r.request.url.startswith("file://"):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort("blockedbyclient")

    page.route("**/*", route)
    try:
        page.goto(path.as_uri(), wait_until="load")
        if page.locator(".plotly-graph-div").count() and page.evaluate("() => !!window.Plotly"):
            page.wait_for_function(ALL_PLOTS_DRAWN, timeout=10_000)
        drawn = page.evaluate("""() => Array.from(document.querySelectorAll('.plotly-graph-div'))
                                          .map(div => div.querySelectorAll('svg.main-svg').length)""")
        warned = page.locator("#wb-no-plotly").count() == 1
    finally:
        context.close()
    return drawn, warned, errors, outside


def test_the_emailed_zip_shares_one_plotly_js_and_its_pages_render_offline(browser, built_report,
                                                                            tmp_path: Path) -> None:
    import io
    import zipfile

    from workbench.reports.html import SHARED_PLOTLY_JS, report_zip

    data = report_zip(built_report.result, folder="report-2026-11-04")
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert sorted(names) == sorted(f"report-2026-11-04/{n}" for n in
                                   ["index.html", "figures.html", "broken.html", SHARED_PLOTLY_JS])
    assert len(data) < 3_000_000  # one plotly.js (compressed), not one per page
    zipfile.ZipFile(io.BytesIO(data)).extractall(tmp_path)
    folder = tmp_path / "report-2026-11-04"
    drawn, warned, errors, outside = _open_offline(browser, folder / "figures.html")
    assert len(drawn) == 3 and all(n > 0 for n in drawn), drawn
    assert not warned and errors == [] and outside == []
    # a page opened on its own, without the folder's plotly.js, says what to do instead of
    # showing empty boxes
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "figures.html").write_bytes((folder / "figures.html").read_bytes())
    drawn, warned, _, outside = _open_offline(browser, lone / "figures.html")
    assert warned and outside == [] and not any(drawn)
