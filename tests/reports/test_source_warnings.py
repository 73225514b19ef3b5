"""The "Data incomplete — a source was stale" notice at the top of the report's front page and of the
daily e-mail: where it shows in a real headless Chromium, how both parts of the e-mail start, and end
to end from a failing MachineMetrics sync in ``sync_runs`` through ``runs.prepare_data`` (the
``source_stale`` alert) and the report flow to the index page and the ``.eml`` in the outbox.

Chromium is Debian's ``/usr/bin/chromium`` driven by Playwright, as in ``test_html_browser.py``.
"""

from __future__ import annotations

import datetime as dt
import email
import html
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import nbformat
import pandas as pd
import pytest
from report_support import CODE_VERSION, DATA_SUMMARY, GENERATED_AT, PLANT_TZ, REPORT_PARAMETERS, chromium

from workbench import config, jobs, pipelines, runs
from workbench.demo import load_plant
from workbench.errors import MailError, ReportError
from workbench.reports import SectionResult, build_report, compose_daily_email, external_urls
from workbench.simulate import PlantConfig, simulate_plant
from workbench.store import DuckDBWarehouse

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "reports"

SENDER = "Plant workbench <workbench@plant.example>"
RECIPIENTS = ["manager@plant.example"]
REPORT_URL = "https://reports.plant.example/daily_report/2026-11-04/index.html"

# Notices as workbench.sources.health.stale_notices words them.
MM_NOTICE = ("machinemetrics: no successful sync for 42 min (since 2026-11-05 04:20 CST); its data is "
             "complete only up to 2026-11-05 04:15 CST; 3 failed run(s); last error: machinemetrics: GET "
             "http://mm.plant.example/v1/production failed 5 time(s); last: HTTP 503")
ERP_NOTICE = ('erp: no successful sync yet; 2 failed run(s); last error: password authentication failed '
              'for user "reader"')
SECTION_WARNING = "Section 'spc' failed: KeyError: 'od_diameter'"


# -- the front page in headless Chromium ------------------------------------------------------

# Per test, not per module: Playwright's sync API keeps an event loop running in this thread while
# the browser is open, and Prefect then hands back coroutines (``state.result()``) in the flow test.
@pytest.fixture
def browser() -> Iterator[object]:
    with chromium() as b:
        yield b


def _section(tmp_path: Path, name: str, *, failed: bool = False) -> SectionResult:
    """A section without a kernel: a notebook written here, as papermill would have left it."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"## {name}\n\nOEE of the day per machine.")]
    path = tmp_path / "notebooks" / f"{name}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return SectionResult(name=name, notebook=path, ipynb_path=path, status="failed" if failed else "ok",
                         error="KeyError: 'od_diameter'" if failed else None, traceback=None,
                         started_at=GENERATED_AT, finished_at=GENERATED_AT, parameters={})


def _report(tmp_path: Path, notices: list[str]):
    sections = [_section(tmp_path, "oee"), _section(tmp_path, "spc", failed=True)]
    return build_report(sections, report_dir=tmp_path / "report", title="Daily report — test plant",
                        parameters=REPORT_PARAMETERS, data_summary={**DATA_SUMMARY, "source_warnings": notices},
                        code_version=CODE_VERSION, generated_at=GENERATED_AT, tz=PLANT_TZ,
                        source_warnings=notices)


def _open(browser, path: Path):
    context = browser.new_context(offline=True, service_workers="block", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file://") else r.abort())
    page.goto(path.as_uri(), wait_until="load")
    return context, page


def test_the_front_page_shows_the_notices_above_everything_but_the_title(browser, tmp_path: Path) -> None:
    report = _report(tmp_path, [MM_NOTICE, ERP_NOTICE])
    assert external_urls(report.index_html.read_text(encoding="utf-8"), include_links=False) == []
    context, page = _open(browser, report.index_html)
    try:
        box = page.locator("#wb-source-warnings")
        assert box.count() == 1 and box.is_visible()
        text = box.inner_text()
        assert "Data incomplete — sources were stale" in text
        assert MM_NOTICE in text and ERP_NOTICE in text
        assert [li.inner_text() for li in box.locator("li").all()] == [MM_NOTICE, ERP_NOTICE]
        # set apart from the page: its own colours and a thick left bar
        style = box.evaluate("e => { const s = getComputedStyle(e); "
                             "return [s.backgroundColor, s.borderLeftWidth, s.borderLeftStyle]; }")
        assert style == ["rgb(255, 247, 237)", "10px", "solid"], style
        top = box.bounding_box()
        assert top is not None and top["height"] > 0
        title = page.locator("header h1").bounding_box()
        assert title is not None and title["y"] + title["height"] <= top["y"]
        bottom = top["y"] + top["height"]
        # above the run's facts, the section summary, the build warnings and the sections table
        for selector in ("#wb-provenance", "#wb-summary", "table.wb-sections", 'tr[data-section="oee"]'):
            other = page.locator(selector).first.bounding_box()
            assert other is not None and bottom <= other["y"], (selector, top, other)
        # the notices are not the failed section's warning, and that one is not in their box
        assert "spc" in page.locator("#wb-summary").inner_text()
        assert "od_diameter" not in text
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "index-source-warnings.png"), full_page=True)
        # the provenance says the data is incomplete and links to the notices instead of a list's repr
        data = page.locator('dd[data-wb="data"]').inner_text()
        assert "incomplete: 2 stale-source notice(s)" in data and "[" not in data.split("incomplete")[1]
    finally:
        context.close()
    section_page = report.section_html["oee"].read_text(encoding="utf-8")
    assert 'href="index.html#wb-source-warnings"' in section_page


def test_without_notices_the_front_page_has_no_box(browser, tmp_path: Path) -> None:
    report = _report(tmp_path, [])
    context, page = _open(browser, report.index_html)
    try:
        assert page.locator("#wb-source-warnings").count() == 0
        assert page.locator(".wb-stale-box").count() == 0
        assert "Data incomplete" not in page.locator("body").inner_text()
        assert "stale sources: none" in page.locator('dd[data-wb="data"]').inner_text()
    finally:
        context.close()


def test_notices_must_be_a_list_not_one_string(tmp_path: Path, daily_summary) -> None:
    with pytest.raises(ReportError, match="not a single string"):
        build_report([_section(tmp_path, "oee")], report_dir=tmp_path / "r", title="t", parameters={},
                     data_summary={}, code_version=CODE_VERSION, generated_at=GENERATED_AT, tz=PLANT_TZ,
                     source_warnings=MM_NOTICE)
    with pytest.raises(MailError, match="not a single string"):
        compose_daily_email(daily_summary, report=None, report_url=REPORT_URL, warnings=[], sender=SENDER,
                            recipients=RECIPIENTS, source_warnings=MM_NOTICE)


# -- the e-mail -------------------------------------------------------------------------------

def _html(msg: EmailMessage) -> str:
    return msg.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]


def _text(msg: EmailMessage) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]


def test_the_email_starts_with_the_notices_before_any_kpi(daily_summary) -> None:
    s = daily_summary
    msg = compose_daily_email(s, report=None, report_url=REPORT_URL, warnings=[SECTION_WARNING],
                              sender=SENDER, recipients=RECIPIENTS, subject_prefix="[PLANT1]",
                              source_warnings=[MM_NOTICE, ERP_NOTICE])
    assert msg["Subject"] == f"[PLANT1] ⚠ [WARNING] [DATA INCOMPLETE] {s.headline}"
    plant_oee = f"{s.plant['oee']:.1%}"

    page = _html(msg)
    body = page[page.index("<body"):]
    box_at = body.index('data-wb="source-warnings"')
    # nothing but layout tables before it: the first words of the message are the notice
    assert "<h1" not in body[:box_at] and plant_oee not in body[:box_at]
    box = body[box_at:body.index("</td>", box_at)]
    assert "Data incomplete — sources were stale" in box
    assert html.escape(MM_NOTICE) in box and html.escape(ERP_NOTICE) in box
    assert box_at < body.index("<h1") < body.index(plant_oee)
    # the section warnings keep their own box, after the headline, without the notices
    warn_at = body.index('data-wb="warnings"')
    warn_box = body[warn_at:body.index("</td>", warn_at)]
    assert body.index("<h1") < warn_at and html.escape(SECTION_WARNING) in warn_box
    assert "machinemetrics" not in warn_box and "od_diameter" not in box
    assert "<style" not in page.lower() and "<script" not in page.lower()
    assert {u for _, _, u in external_urls(page)} <= {REPORT_URL}

    text = _text(msg)
    assert text.startswith("!! DATA INCOMPLETE — SOURCES WERE STALE\n")
    assert text.index(MM_NOTICE) < text.index(ERP_NOTICE) < text.index(s.headline) < text.index(plant_oee)
    warnings_at = text.index("WARNINGS")
    assert text.index(s.headline) < warnings_at < text.index(SECTION_WARNING)
    assert "machinemetrics" not in text[warnings_at:]


def test_one_notice_alone_tags_the_subject_and_none_leaves_the_email_as_it_was(daily_summary) -> None:
    s = daily_summary
    one = compose_daily_email(s, report=None, report_url=REPORT_URL, warnings=[], sender=SENDER,
                              recipients=RECIPIENTS, source_warnings=[MM_NOTICE])
    assert one["Subject"] == f"⚠ [DATA INCOMPLETE] {s.headline}"
    assert "Data incomplete — a source was stale" in _html(one)
    assert _text(one).startswith("!! DATA INCOMPLETE — A SOURCE WAS STALE\n")
    assert 'data-wb="warnings"' not in _html(one) and "\nWARNINGS\n" not in _text(one)

    none = compose_daily_email(s, report=None, report_url=REPORT_URL, warnings=[], sender=SENDER,
                               recipients=RECIPIENTS, source_warnings=[" ", ""])
    assert none["Subject"] == s.headline
    assert 'data-wb="source-warnings"' not in _html(none)
    assert "incomplete" not in _text(none).lower() and _text(none).startswith(s.headline)


# -- end to end: a failing MachineMetrics sync ------------------------------------------------

MM_ERROR = "machinemetrics: GET http://127.0.0.1:8765/v1/production failed 5 time(s); last: HTTP 503"
PIPELINE = """kind: report
schedule: {cron: "0 5 * * *", timezone: America/Chicago}
email: {recipients: [manager@plant.example], subject_prefix: "[TEST]"}
concurrency: 1
retries: 0
baseline_days: 1
notebooks:
  - {name: quick, path: notebooks/quick.ipynb}
"""


@dataclass(frozen=True)
class StaleProject:
    home: Path
    day: dt.date
    last_ok: dt.datetime


@pytest.fixture(scope="module")
def stale_project(tmp_path_factory: pytest.TempPathFactory) -> StaleProject:
    """A project whose warehouse holds two simulated days up to the production day in which the
    MachineMetrics sync last succeeded (3 hours ago; a failed run since), flows, one notebook."""
    now = dt.datetime.now(dt.UTC)
    last_ok = now - dt.timedelta(hours=3)
    # The stale alert starts at the last success; the report must be of the production day
    # holding that moment (simulated production days run 06:00 to 06:00 plant time).
    day = (last_ok.astimezone(ZoneInfo(PLANT_TZ)) - dt.timedelta(hours=6)).date()
    plant = simulate_plant(PlantConfig(seed=5, n_machines=2, n_lines=1, days=2, start=day - dt.timedelta(days=1),
                                       timezone=PLANT_TZ, workdays=tuple(range(7)), telemetry=False))
    home = tmp_path_factory.mktemp("stale-project")
    shutil.copytree(ROOT / "flows", home / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('date = ""\nwarehouse = ""')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell('print("report day", date)')]
    nb.metadata["kernelspec"] = {"name": "workbench", "display_name": "Python (workbench)", "language": "python"}
    (home / "notebooks").mkdir()
    nbformat.write(nb, home / "notebooks" / "quick.ipynb")
    (home / "pipelines").mkdir()
    (home / "pipelines" / "daily.yaml").write_text(PIPELINE)

    def run(started: dt.datetime, status: str, error: str | None) -> dict:
        return {"run_id": f"machinemetrics-{started.isoformat()}", "source": "machinemetrics",
                "started_at": started, "finished_at": started + dt.timedelta(seconds=30), "status": status,
                "fetched": 0, "written": 0, "unchanged": 0, "dead_lettered": 0, "entities": "{}", "error": error}

    with DuckDBWarehouse(home / "data" / "warehouse.duckdb") as wh:
        load_plant(plant, wh, truth_dir=home / "data" / "ground_truth")
        start, end = jobs.production_day_range(wh, first=day, last=day + dt.timedelta(days=1), tz=PLANT_TZ)
        assert start <= last_ok < end, "the report day must hold the moment the source went quiet"
        wh.write("sync_runs", pd.DataFrame([run(last_ok - dt.timedelta(seconds=30), "ok", None),
                                            run(now - dt.timedelta(minutes=20), "failed", MM_ERROR)]))
    return StaleProject(home, day, last_ok)


def _point_at(project: StaleProject, use_home, monkeypatch: pytest.MonkeyPatch) -> config.Settings:
    use_home(project.home)
    monkeypatch.setenv("WORKBENCH_PLANT_TIMEZONE", PLANT_TZ)
    # configured, so silence from MachineMetrics counts (no server listens there: nothing calls it)
    monkeypatch.setenv("WORKBENCH_MM_BASE_URL", "http://127.0.0.1:8765")
    monkeypatch.setenv("WORKBENCH_MM_API_KEY", "test-key")
    config.reset()
    return config.settings()


def test_prepare_data_opens_the_stale_alert_and_carries_its_notice(stale_project: StaleProject, use_home,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _point_at(stale_project, use_home, monkeypatch)
    pipeline = pipelines.get("daily", home=stale_project.home, default_timezone=settings.plant_timezone)
    data = runs.prepare_data(settings, pipeline, stale_project.day)
    with DuckDBWarehouse(settings.warehouse_path, read_only=True) as wh:
        alerts = wh.read("alerts")
    stale = alerts[(alerts["rule"] == "source_stale") & (alerts["status"] == "open")]
    assert list(stale["dedupe_key"]) == ["source_stale:machinemetrics"]
    assert pd.Timestamp(stale["time_start"].iloc[0]) == pd.Timestamp(stale_project.last_ok)
    notices = data.summary["source_warnings"]
    assert isinstance(notices, list) and len(notices) == 1
    assert notices[0].startswith("machinemetrics: no successful sync for 3.0 h")
    assert "1 failed run(s)" in notices[0] and MM_ERROR in notices[0]


@pytest.mark.slow
def test_the_report_flow_puts_the_notice_on_the_front_page_and_in_the_email(
        prefect_server, kernel: str, stale_project: StaleProject, use_home,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _point_at(stale_project, use_home, monkeypatch)
    flows = runs.load_flows(stale_project.home)
    state = flows.daily_report(pipeline="daily", date=stale_project.day.isoformat(), return_state=True)
    assert state.is_completed(), state.message
    result = state.result()

    index = Path(result["index_html"]).read_text(encoding="utf-8")
    box_at = index.index('id="wb-source-warnings"')
    assert box_at < index.index('id="wb-provenance"') < index.index('class="wb-sections"')
    box = index[box_at:index.index("</section>", box_at)]
    assert "Data incomplete — a source was stale" in box and html.escape(MM_ERROR) in box

    mails = sorted((stale_project.home / "reports" / "outbox").glob("*.eml"))
    assert [str(m) for m in mails] == [result["email"]]
    msg = email.message_from_bytes(mails[0].read_bytes(), policy=policy.default)
    assert msg["Subject"].startswith("[TEST] ⚠ [DATA INCOMPLETE] Plant OEE")
    text = _text(msg)  # type: ignore[arg-type]
    assert text.startswith("!! DATA INCOMPLETE — A SOURCE WAS STALE\n")
    assert text.index(MM_ERROR) < text.index("Plant OEE")
    page = _html(msg)  # type: ignore[arg-type]
    assert page.index('data-wb="source-warnings"') < page.index("<h1")
    assert html.escape(MM_ERROR) in page
