"""Notebook execution with papermill and the HTML report built from it (real kernels)."""

from __future__ import annotations

import datetime as dt
import html
import re
from pathlib import Path

import nbformat
import pytest
from report_support import CODE_VERSION, DATA_SUMMARY, GENERATED_AT, NOTEBOOKS, PLANT_TZ

from workbench.errors import WorkbenchError
from workbench.reports import (
    ReportError,
    SectionResult,
    build_report,
    code_version,
    external_urls,
    run_section,
    validate_parameters,
)

# -- parameters (no kernel needed) -----------------------------------------------------------


def test_unknown_parameters_are_an_error_naming_them_and_the_allowed_ones() -> None:
    with pytest.raises(ReportError) as info:
        validate_parameters(NOTEBOOKS / "figures.ipynb", {"title": "x", "n_machine": 3, "colour": "red"})
    msg = str(info.value)
    assert "'colour'" in msg and "'n_machine'" in msg
    assert "n_machines" in msg and "title" in msg  # the notebook's parameters are listed
    assert isinstance(info.value, WorkbenchError)


def test_a_notebook_without_a_parameters_cell_is_an_error() -> None:
    with pytest.raises(ReportError, match="no cell tagged 'parameters'"):
        validate_parameters(NOTEBOOKS / "no_parameters.ipynb", {})


def test_known_parameters_pass_and_values_must_fit_in_a_notebook() -> None:
    validate_parameters(NOTEBOOKS / "figures.ipynb", {"title": "x", "n_machines": 2})
    validate_parameters(NOTEBOOKS / "figures.ipynb", {})
    with pytest.raises(ReportError, match="'title' is a date"):
        validate_parameters(NOTEBOOKS / "figures.ipynb", {"title": dt.date(2026, 11, 4)})
    with pytest.raises(ReportError, match="does not exist"):
        validate_parameters(NOTEBOOKS / "missing.ipynb", {})


def test_run_section_checks_parameters_before_starting_a_kernel(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="'nn'"):
        run_section(NOTEBOOKS / "tiny.ipynb", out_dir=tmp_path, parameters={"nn": 2})
    assert not list(tmp_path.iterdir())


# -- execution (real papermill runs) ---------------------------------------------------------


@pytest.mark.slow
def test_run_section_runs_a_notebook_with_the_workbench_kernel(tmp_path: Path, kernel: str) -> None:
    result = run_section(NOTEBOOKS / "tiny.ipynb", out_dir=tmp_path / "out", kernel_name=kernel,
                         parameters={"n": 21, "label": "answer"}, timeout_s=60)
    assert result.status == "ok" and result.ok, result.traceback
    assert result.error is None and result.traceback is None
    assert result.name == "tiny" and result.ipynb_path == tmp_path / "out" / "tiny.ipynb"
    assert result.parameters == {"n": 21, "label": "answer"}
    assert result.started_at.tzinfo is not None and result.started_at <= result.finished_at
    nb = nbformat.read(result.ipynb_path, as_version=4)
    assert nb.metadata["papermill"]["parameters"] == {"n": 21, "label": "answer"}
    assert nb.metadata["kernelspec"]["name"] == kernel
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "answer: 42" in printed


@pytest.mark.slow
def test_a_failing_notebook_gives_a_failed_section_not_an_exception(tmp_path: Path, kernel: str) -> None:
    result = run_section(NOTEBOOKS / "broken.ipynb", out_dir=tmp_path, kernel_name=kernel,
                         parameters={"machine": "M07"}, timeout_s=60)
    assert result.status == "failed" and not result.ok
    assert result.error == "ValueError: no cycle data for machine M07"
    assert "Traceback" in result.traceback and "no cycle data for machine M07" in result.traceback
    assert "\x1b[" not in result.traceback  # no terminal colour codes
    # papermill saved the partially executed notebook: output before the failure, nothing after
    nb = nbformat.read(result.ipynb_path, as_version=4)
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "checking M07" in printed and "never reached" not in printed


# -- the HTML report --------------------------------------------------------------------------


def _pages(built) -> dict[str, str]:
    r = built.result
    return {"index": r.index_html.read_text(encoding="utf-8"),
            **{name: p.read_text(encoding="utf-8") for name, p in r.section_html.items()}}


@pytest.mark.slow
def test_build_report_writes_an_index_and_a_page_per_section(built_report) -> None:
    r = built_report.result
    assert r.index_html.name == "index.html" and r.index_html.is_file()
    assert list(r.section_html) == ["figures", "broken"]
    assert all(p.is_file() and p.parent == r.index_html.parent for p in r.section_html.values())
    assert r.failed == ["broken"] and r.warnings == []
    index = r.index_html.read_text(encoding="utf-8")
    for name in ("figures", "broken"):
        assert f'href="{name}.html"' in index
    failed_row = re.search(r'<tr class="wb-failed" data-section="broken">.*?</tr>', index, re.S)
    assert failed_row and "FAILED" in failed_row.group(0)
    assert "ValueError: no cycle data for machine M07" in failed_row.group(0)
    assert re.search(r'<tr class="wb-ok" data-section="figures">', index)
    assert "1 failed" in index


@pytest.mark.slow
def test_failed_section_page_says_so_with_error_and_traceback(built_report) -> None:
    page = built_report.result.section_html["broken"].read_text(encoding="utf-8")
    box = re.search(r'<div class="wb-failed-box" id="wb-failure".*?</div>', page, re.S)
    assert box is not None
    assert "This section failed" in box.group(0)
    assert "ValueError: no cycle data for machine M07" in box.group(0)
    assert "Traceback" in box.group(0)
    assert "checking M07" in page  # the output produced before the failure is kept


@pytest.mark.slow
def test_every_page_says_when_for_what_from_which_data_and_which_code(built_report) -> None:
    for name, page in _pages(built_report).items():
        meta = re.search(r'<dl class="wb-meta" id="wb-provenance">.*?</dl>', page, re.S)
        assert meta, name
        meta = html.unescape(meta.group(0))
        # made at 11:02:03 UTC = 05:02:03 CST in the plant
        assert "2026-11-05 05:02:03 CST (America/Chicago)" in meta and "2026-11-05 11:02:03 UTC" in meta, name
        assert CODE_VERSION in meta, name
        assert "production_events 4,121" in meta and "machines 4" in meta, name
        assert "from 2026-11-04 06:00 CST to 2026-11-05 06:00 CST" in meta, name
        expected = {"index": ['day = "2026-11-04"', 'site = "PLANT1"'],
                    "figures": ['title = "Good parts per machine"', "n_machines = 5"],
                    "broken": ['machine = "M07"']}[name]
        for text in expected:
            assert text in meta, (name, text)


@pytest.mark.slow
def test_pages_need_no_network_and_carry_plotly_once(built_report) -> None:
    for name, page in _pages(built_report).items():
        # every src / href / CSS url(), links included
        assert external_urls(page) == [], (name, external_urls(page))
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", _without_scripts(page)), name
        bundles = len(re.findall(r"\* plotly\.js v\d", page))
        assert bundles == (1 if name == "figures" else 0), (name, bundles)
    figures = _pages(built_report)["figures"]
    assert figures.count('class="plotly-graph-div"') == 3
    # input cells are excluded: code from the notebook does not appear
    assert "include_plotlyjs" not in figures and "import pandas" not in figures


def _without_scripts(page: str) -> str:
    return re.sub(r"<script\b[^>]*>.*?</script>", "", page, flags=re.S | re.I)


def _handmade_section(tmp_path: Path, name: str, cells: list) -> SectionResult:
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    path = tmp_path / f"{name}.ipynb"
    nbformat.write(nb, path)
    now = dt.datetime(2026, 11, 5, 11, 0, tzinfo=dt.UTC)
    return SectionResult(name=name, notebook=path, ipynb_path=path, status="ok", error=None, traceback=None,
                         started_at=now, finished_at=now, parameters={})


def test_external_resources_in_a_notebook_are_disabled_and_reported(tmp_path: Path) -> None:
    cells = [nbformat.v4.new_markdown_cell('Logo: <img src="https://example.com/logo.png" alt="logo"> '
                                           "and [a link](https://example.com/docs)")]
    section = _handmade_section(tmp_path, "remote", cells)
    r = build_report([section], report_dir=tmp_path / "report", title="t", parameters={}, data_summary={},
                     code_version=CODE_VERSION, generated_at=GENERATED_AT, tz=PLANT_TZ)
    page = r.section_html["remote"].read_text(encoding="utf-8")
    assert external_urls(page, include_links=False) == []
    assert "data-wb-blocked-src=" in page
    assert len(r.warnings) == 1 and "https://example.com/logo.png" in r.warnings[0]
    assert "https://example.com/logo.png" in r.index_html.read_text(encoding="utf-8")  # warning shown


def test_build_report_rejects_naive_times_and_clashing_names(tmp_path: Path) -> None:
    section = _handmade_section(tmp_path, "oee", [])
    common = {"report_dir": tmp_path / "r", "title": "t", "parameters": {}, "data_summary": DATA_SUMMARY,
              "code_version": CODE_VERSION, "tz": PLANT_TZ}
    with pytest.raises(ReportError, match="timezone-aware"):
        build_report([section], generated_at=dt.datetime(2026, 11, 5, 5, 0), **common)
    with pytest.raises(ReportError, match="unique"):
        build_report([section, section], generated_at=GENERATED_AT, **common)
    index = _handmade_section(tmp_path, "index", [])
    with pytest.raises(ReportError, match="not 'index'"):
        build_report([index], generated_at=GENERATED_AT, **common)


def test_code_version_names_the_package_version_and_commit() -> None:
    from importlib.metadata import version

    v = code_version()
    assert v.startswith(version("workbench"))
    repo = Path(__file__).resolve().parents[2]
    if (repo / ".git").exists():
        assert re.fullmatch(re.escape(version("workbench")) + r"\+[0-9a-f]{4,40}(-dirty)?", v), v


# -- progress saves, pages built ahead (no kernel needed) -------------------------------------


def _manager_run(monkeypatch: pytest.MonkeyPatch, every_s: float) -> int:
    import papermill.engines

    from workbench.reports import engine

    writes: list[str] = []
    monkeypatch.setattr(papermill.engines, "write_ipynb", lambda nb, path: writes.append(path))
    monkeypatch.setattr(engine.ThrottledExecutionManager, "save_every_s", every_s)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(str(i)) for i in range(3)])
    nb.metadata["papermill"] = {}
    man = engine.ThrottledExecutionManager(nb, output_path="out.ipynb", progress_bar=False)
    man.notebook_start()
    for i, cell in enumerate(nb.cells):
        man.cell_start(cell, i)
        man.cell_complete(cell, i)
    man.notebook_complete()
    return len(writes)


def test_progress_saves_are_throttled_but_start_and_end_always_save(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _manager_run(monkeypatch, 10.0) == 2  # the start and the end
    assert _manager_run(monkeypatch, 0.0) == 8  # papermill's own behaviour: also every cell start and end


def test_build_report_reuses_pages_built_ahead(built_report, tmp_path: Path) -> None:
    from workbench.reports import build_section_page

    sections = [built_report.sections["figures"], built_report.sections["broken"]]
    common = {"title": "t", "parameters": {}, "data_summary": DATA_SUMMARY, "code_version": CODE_VERSION,
              "generated_at": GENERATED_AT, "tz": PLANT_TZ}
    early = build_section_page(sections[0], report_dir=tmp_path, **common)
    assert early.path == tmp_path / "figures.html" and early.path.is_file()
    written_at = early.path.stat().st_mtime_ns
    report = build_report(sections, report_dir=tmp_path, pages={"figures": early}, **common)
    assert early.path.stat().st_mtime_ns == written_at  # not written again
    assert report.section_html == {"figures": early.path, "broken": tmp_path / "broken.html"}
    assert (tmp_path / "broken.html").is_file() and report.index_html.is_file()
    elsewhere = build_section_page(sections[0], report_dir=tmp_path / "other", **common)
    with pytest.raises(ReportError, match="not a file in"):
        build_report(sections, report_dir=tmp_path, pages={"figures": elsewhere}, **common)
