"""Fixtures of the report tests: the test notebooks, one real report built once, a real daily summary.

The notebooks in ``notebooks/`` are small and committed without outputs: ``tiny`` (doubles a
number), ``figures`` (a table and three plotly figures, shown the three ways a notebook can show
them), ``broken`` (raises after some output) and ``no_parameters`` (no tagged cell).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
from report_support import (
    CODE_VERSION,
    DATA_SUMMARY,
    GENERATED_AT,
    KERNEL,
    NOTEBOOKS,
    PLANT_TZ,
    REPORT_PARAMETERS,
)

from workbench import jobs
from workbench.demo import load_plant
from workbench.reports import ReportResult, SectionResult, build_report, run_section
from workbench.store import DuckDBWarehouse
from workbench.summary import DailySummary


@pytest.fixture(scope="session")
def kernel() -> str:
    """The project kernel (``make demo`` installs it); a failure in CI, a skip elsewhere."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(KERNEL)
    except NoSuchKernel:
        msg = f"Jupyter kernel {KERNEL!r} is not installed (make venv installs it)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return KERNEL


@dataclass(frozen=True)
class BuiltReport:
    result: ReportResult
    sections: dict[str, SectionResult]


@pytest.fixture(scope="session")
def built_report(tmp_path_factory: pytest.TempPathFactory, kernel: str) -> BuiltReport:
    """A report of two sections run for real: ``figures`` (ok) and ``broken`` (fails)."""
    report_dir = tmp_path_factory.mktemp("report")
    figures = run_section(NOTEBOOKS / "figures.ipynb", out_dir=report_dir / "notebooks", kernel_name=kernel,
                          parameters={"title": "Good parts per machine", "n_machines": 5}, timeout_s=120)
    broken = run_section(NOTEBOOKS / "broken.ipynb", out_dir=report_dir / "notebooks", kernel_name=kernel,
                         parameters={"machine": "M07"}, timeout_s=120)
    result = build_report([figures, broken], report_dir=report_dir, title="Daily report — test plant",
                          parameters=REPORT_PARAMETERS, data_summary=DATA_SUMMARY, code_version=CODE_VERSION,
                          generated_at=GENERATED_AT, tz=PLANT_TZ)
    return BuiltReport(result, {"figures": figures, "broken": broken})


@pytest.fixture(scope="session")
def daily_summary(small_plant, tmp_path_factory: pytest.TempPathFactory) -> DailySummary:
    """The summary of the last production day of the small simulated plant, via a DuckDB file."""
    path = tmp_path_factory.mktemp("mail-warehouse") / "warehouse.duckdb"
    tz = small_plant.config.timezone
    with DuckDBWarehouse(path) as wh:
        load_plant(small_plant, wh, truth_dir=path.parent / "truth")
        day = jobs.latest_production_day(wh, tz=tz)
        return jobs.daily_summary_from(wh, day=day, tz=tz)
