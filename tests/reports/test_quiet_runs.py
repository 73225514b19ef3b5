"""A report run says nothing that is not the user's business.

Two messages used to fill every run log: each kernel's "Kernel is running over TCP without
encryption" (ipykernel, on the kernel's stderr, when the manager provisions no CurveZMQ keys) and
nbconvert's UserWarning "Your element with mimetype(s) dict_keys(['application/vnd.workbench.record+json'])
is not able to be represented" (for each result a notebook kept with ``workbench.notebook.record``).
Both are fixed where they arise — report kernels are encrypted, recorded results are left out of
the page — not filtered.
"""

from __future__ import annotations

import logging
from pathlib import Path

import nbformat
import pytest
from report_support import CODE_VERSION, DATA_SUMMARY, GENERATED_AT, NOTEBOOKS, PLANT_TZ

from workbench.config import RECORD_MIME
from workbench.reports import KernelZygote, build_section_page, read_records, run_section
from workbench.reports.execute import SectionResult
from workbench.reports.kernels import kernel_manager_class

PROBE = NOTEBOOKS / "probe.ipynb"  # keeps one result with notebook.record
TCP_WARNING = "without encryption"
MIME_WARNING = "not able to be represented"
PAGE = {"title": "t", "parameters": {}, "data_summary": DATA_SUMMARY, "code_version": CODE_VERSION,
        "generated_at": GENERATED_AT, "tz": PLANT_TZ}


def _unwanted(recwarn: pytest.WarningsRecorder) -> list[str]:
    return [f"{w.category.__name__}: {w.message}" for w in recwarn if MIME_WARNING in str(w.message)]


def test_recorded_results_are_left_out_of_the_page_without_a_warning(tmp_path: Path,
                                                                      recwarn: pytest.WarningsRecorder) -> None:
    import datetime as dt

    cell = nbformat.v4.new_code_cell("nb.record('summary', {'oee': 0.71}); print('shown')")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={RECORD_MIME: {"name": "summary", "value": {"oee": 0.71}}}),
        nbformat.v4.new_output("stream", name="stdout", text="shown\n"),
        # a bundle with something to show as well: that part stays
        nbformat.v4.new_output("display_data", data={"text/plain": "also shown",
                                                     RECORD_MIME: {"name": "other", "value": 1}}),
    ]
    nb = nbformat.v4.new_notebook()
    nb.cells = [cell]
    path = tmp_path / "kept.ipynb"
    nbformat.write(nb, path)
    now = dt.datetime(2026, 11, 5, 11, 0, tzinfo=dt.UTC)
    section = SectionResult(name="kept", notebook=path, ipynb_path=path, status="ok", error=None, traceback=None,
                            started_at=now, finished_at=now)

    page = build_section_page(section, report_dir=tmp_path / "report", **PAGE).path.read_text(encoding="utf-8")

    assert _unwanted(recwarn) == []
    assert "shown" in page and "also shown" in page
    assert RECORD_MIME not in page and "0.71" not in page
    assert page.count('class="jp-OutputArea-child') == 2  # no empty box for the record
    # the executed notebook itself keeps its records for the pipeline
    assert read_records(path) == {"summary": {"oee": 0.71}, "other": 1}


def test_report_kernels_get_curve_keys_when_their_spec_allows_it(kernel: str) -> None:
    manager = kernel_manager_class()(kernel_name=kernel)
    assert manager.transport_encryption == "auto"
    # `make venv` installs the kernel with ipykernel ≥ 7.3, whose spec declares it can encrypt
    assert "curve" in manager.kernel_spec.metadata.get("supported_encryption", [])


@pytest.mark.slow
@pytest.mark.parametrize("forked", [False, True], ids=["launched", "forked"])
def test_a_report_run_logs_neither_the_tcp_nor_the_mime_type_warning(
        tmp_path: Path, kernel: str, forked: bool, capfd: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture, recwarn: pytest.WarningsRecorder) -> None:
    caplog.set_level(logging.INFO)
    # The kernel writes to the stderr it inherits (from this process, or from the zygote started
    # here): capfd sees it at the file-descriptor level.
    zygote = KernelZygote(kernel, cwd=tmp_path) if forked else None
    try:
        section = run_section(PROBE, out_dir=tmp_path / "out", parameters={}, kernel_name=kernel,
                              kernels=zygote.address if zygote else None, timeout_s=120, cwd=tmp_path)
    finally:
        if zygote is not None:
            zygote.close()
    assert section.ok, section.traceback
    assert "probe" in section.records  # the notebook did keep a result with the record MIME type
    page = build_section_page(section, report_dir=tmp_path / "report", **PAGE).path.read_text(encoding="utf-8")
    assert "probe done" in page

    captured = capfd.readouterr()
    assert TCP_WARNING not in captured.err and TCP_WARNING not in captured.out, captured.err
    logged = [r.getMessage() for r in caplog.records]
    assert not [m for m in logged if TCP_WARNING in m or MIME_WARNING in m], logged
    assert _unwanted(recwarn) == []
