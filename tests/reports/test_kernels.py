"""Kernels forked from a zygote (workbench.reports.kernels): real zygote, real kernels, real papermill runs.

What must hold: every notebook still gets a fresh process of its own (nothing one notebook
leaves behind is seen by the next), the modules are imported before the notebook starts, a
dying or hanging kernel is reported like any other, and a zygote that cannot be used means a
normal kernel start, never a failed report.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from report_support import NOTEBOOKS

from workbench.reports import KernelZygote, run_section
from workbench.reports.kernels import ZygoteUnavailable, _request

pytestmark = pytest.mark.slow

PROBE = NOTEBOOKS / "probe.ipynb"


@pytest.fixture(scope="module")
def zygote(kernel: str):
    with KernelZygote(kernel) as z:
        z.ping()
        yield z


def _probe(tmp_path: Path, name: str, kernel: str, *, kernels: str | None, action: str = "report",
           timeout_s: int = 120):
    out = tmp_path / name
    return run_section(PROBE, out_dir=out, parameters={"action": action}, kernel_name=kernel,
                       kernels=kernels, timeout_s=timeout_s, cwd=tmp_path)


def test_each_notebook_gets_a_fresh_forked_process_with_the_imports_done(zygote, kernel, tmp_path) -> None:
    first = _probe(tmp_path, "a", kernel, kernels=zygote.address)
    second = _probe(tmp_path, "b", kernel, kernels=zygote.address)
    assert first.ok and second.ok, (first.error, second.error)
    a, b = first.records["probe"], second.records["probe"]
    assert a["pid"] != b["pid"]  # two processes …
    assert a["ppid"] == b["ppid"] == zygote.process.pid  # … both forked by the zygote
    assert a["pid"] != os.getpid() and a["pid"] != zygote.process.pid
    # the heavy modules were there before the notebook imported anything (scipy.optimize: by warm_up)
    assert a["preloaded"] == ["pandas", "scipy.optimize", "scipy.special", "workbench.notebook"]
    # nothing the first notebook defined is seen by the second; numpy is reseeded per kernel
    assert a["seen_before"] is None and b["seen_before"] is None
    assert a["random"] != b["random"]
    # the kernel runs where it was asked to, knowing it is a report run
    assert a["report_run"] == "1" and Path(a["cwd"]) == tmp_path


def test_without_a_zygote_the_kernel_starts_the_usual_way(kernel, tmp_path) -> None:
    section = _probe(tmp_path, "plain", kernel, kernels=None)
    assert section.ok, section.error
    seen = section.records["probe"]
    assert seen["preloaded"] == []  # a new interpreter: nothing imported yet
    assert seen["ppid"] == os.getpid()  # launched by this process's kernel manager
    assert seen["report_run"] == "1"


def test_a_zygote_that_is_gone_means_a_normal_kernel_not_a_failed_section(kernel, tmp_path, caplog) -> None:
    gone = KernelZygote(kernel)
    address = gone.address
    gone.close()
    t0 = time.monotonic()
    section = _probe(tmp_path, "fallback", kernel, kernels=address)
    assert section.ok, section.error
    assert section.records["probe"]["preloaded"] == []
    assert time.monotonic() - t0 < 60  # no waiting for a zygote that will never answer
    assert any("starting the kernel the usual way" in r.getMessage() for r in caplog.records)


def test_a_kernel_that_dies_fails_its_section_and_the_zygote_serves_the_next(zygote, kernel, tmp_path) -> None:
    dead = _probe(tmp_path, "dead", kernel, kernels=zygote.address, action="exit")
    assert not dead.ok
    assert "DeadKernel" in (dead.error or "") or "died" in (dead.error or "").lower(), dead.error
    again = _probe(tmp_path, "again", kernel, kernels=zygote.address)
    assert again.ok, again.error


def test_a_hanging_cell_times_out_and_the_kernel_is_stopped(zygote, kernel, tmp_path) -> None:
    t0 = time.monotonic()
    hung = _probe(tmp_path, "hung", kernel, kernels=zygote.address, action="sleep", timeout_s=3)
    assert time.monotonic() - t0 < 45
    assert not hung.ok and "timed out" in (hung.error or "").lower(), hung.error
    # the partly executed notebook was saved, showing where it stopped
    assert hung.ipynb_path.is_file()


def test_the_zygote_refuses_another_interpreter_and_unknown_requests(zygote) -> None:
    with pytest.raises(ZygoteUnavailable, match="not this zygote's"):
        _request(zygote.address, {"op": "spawn", "argv": ["/usr/bin/python3", "-m", "ipykernel_launcher"]},
                 timeout_s=10)
    with pytest.raises(ZygoteUnavailable, match="unknown op"):
        _request(zygote.address, {"op": "format-disk"}, timeout_s=10)
    with pytest.raises(ZygoteUnavailable, match="not a child"):
        _request(zygote.address, {"op": "status", "pid": 1}, timeout_s=10)


def test_closing_the_zygote_ends_it_and_its_socket(kernel) -> None:
    z = KernelZygote(kernel)
    z.ping()
    proc, address = z.process, z.address
    z.close()
    assert proc.poll() is not None
    assert not Path(address).exists()
    with pytest.raises(ZygoteUnavailable):
        _request(address, {"op": "ping"}, timeout_s=5)
