"""Analyst edits never leak into the managers' report: a run executes notebooks as committed, with
every parameter of their parameters cell, and each page lists them all."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest
from flow_support import copy_project, git

from workbench import config, reports, runs
from workbench.errors import ReportError

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def git_home(project: Path, tmp_path_factory) -> Path:
    """The flow tests' project under git, with the real OEE notebook in an `oee_only` pipeline."""
    return copy_project(project, tmp_path_factory.mktemp("git") / "project",
                        notebooks=(ROOT / "notebooks" / "oee.ipynb",), pipelines={"oee_only": """
kind: report
schedule: {cron: "0 5 * * *", timezone: America/Chicago}
parameters: {days: 1}
notebooks:
  - {name: oee, path: notebooks/oee.ipynb, parameters: {oee_good: 0.8}}
retries: 0
baseline_days: 3
"""})


@pytest.fixture
def git_project(git_home: Path, use_home, monkeypatch: pytest.MonkeyPatch) -> Path:
    use_home(git_home)
    monkeypatch.setenv("WORKBENCH_PLANT_TIMEZONE", "America/Chicago")
    config.reset()
    return git_home


def edit_parameter(notebook: Path, old: str, new: str) -> None:
    nb = nbformat.read(notebook, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assert old in cell.source, cell.source
    cell.source = cell.source.replace(old, new)
    nbformat.write(nb, notebook)


def injected(executed: Path) -> str:
    nb = nbformat.read(executed, as_version=4)
    return next(c.source for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))


def test_an_analysts_saved_edit_does_not_change_the_scheduled_report(prefect_server, git_project: Path) -> None:
    # the case: an analyst saved machines = ["M01"] in oee.ipynb and went home
    edit_parameter(git_project / "notebooks" / "oee.ipynb", "machines: list = []", 'machines: list = ["M01"]')
    edit_parameter(git_project / "notebooks" / "oee.ipynb", "oee_watch: float = 0.65", "oee_watch: float = 0.5")
    commit = git(git_project, "rev-parse", "--short", "HEAD")
    flows = runs.load_flows(git_project)

    state = flows.daily_report(pipeline="oee_only", return_state=True)
    assert state.is_completed(), state.message
    day_dir = git_project / "reports" / "oee_only" / "2026-11-04"
    cell = injected(day_dir / "notebooks" / "oee.ipynb")
    # every parameter is injected: the flow's, the pipeline's, else the committed default
    for line in ('date = "2026-11-04"', "days = 1", 'site = ""', "lines = []", "machines = []",
                 "oee_good = 0.8", "oee_watch = 0.65"):
        assert line in cell, cell
    assert "M01" not in cell
    page = (day_dir / "oee.html").read_text(encoding="utf-8")
    listed = page.split('data-wb="parameters">', 1)[1].split("</dd>", 1)[0]
    for name in ("date", "days", "warehouse", "site", "lines", "machines", "oee_good", "oee_watch"):
        assert f"<code>{name} = " in listed, (name, listed)
    assert "<code>machines = []</code>" in listed
    origin = page.split('data-wb="notebook">', 1)[1].split("</dd>", 1)[0]
    assert f"notebooks/oee.ipynb as committed in {commit}" in origin
    assert "uncommitted changes, not used" in origin
    # the executed notebook is the committed one: the analyst's file is untouched
    assert 'machines: list = [\\"M01\\"]' in (git_project / "notebooks" / "oee.ipynb").read_text()

    # on purpose, the working tree runs: the edit shows, and the page says so
    state = flows.daily_report(pipeline="oee_only", working_tree=True, return_state=True)
    assert state.is_completed(), state.message
    cell = injected(day_dir / "notebooks" / "oee.ipynb")
    assert "machines = ['M01']" in cell or 'machines = ["M01"]' in cell, cell
    assert "oee_watch = 0.5" in cell
    page = (day_dir / "oee.html").read_text(encoding="utf-8")
    assert "from the working tree (with uncommitted changes)" in page


def test_a_notebook_never_committed_is_refused_with_the_reason(prefect_server, git_project: Path) -> None:
    shutil.copy(git_project / "notebooks" / "first.ipynb", git_project / "notebooks" / "draft.ipynb")
    (git_project / "pipelines" / "draft.yaml").write_text("""
kind: report
schedule: {cron: "0 5 * * *"}
notebooks: [{name: draft, path: notebooks/draft.ipynb}]
retries: 0
baseline_days: 3
""")
    flows = runs.load_flows(git_project)
    state = flows.daily_report(pipeline="draft", return_state=True)
    assert state.is_failed()
    assert "notebooks/draft.ipynb is not committed to git" in state.message


def test_outside_git_the_file_on_disk_runs_and_the_page_says_so(tmp_path: Path) -> None:
    nb = tmp_path / "notebooks" / "a.ipynb"
    nb.parent.mkdir()
    shutil.copy(ROOT / "notebooks" / "pareto.ipynb", nb)
    source = reports.notebook_source(nb, home=tmp_path, copy_dir=tmp_path / "copies")
    assert source.path == nb.resolve() and source.commit is None
    assert source.origin == "notebooks/a.ipynb as it is on disk (the project is not a git checkout)"
    # every parameter, with the committed (here: on-disk) defaults under the given values
    params = reports.complete_parameters(nb, {"top": 3, "date": "2026-11-04"})
    assert params == {"date": "2026-11-04", "days": 1, "warehouse": "", "site": "", "lines": [], "machines": [],
                      "top": 3, "include_planned": False, "overhead_per_hour": 0.0}


def test_a_default_that_is_not_a_literal_is_refused(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("import datetime as dt\nday = dt.date.today()\n")
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell]
    nb.metadata["kernelspec"] = {"name": "workbench", "display_name": "Python (workbench)", "language": "python"}
    path = tmp_path / "today.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(ReportError, match="the default of parameter 'day' is 'dt.date.today\\(\\)', not a literal"):
        reports.complete_parameters(path, {})


def test_the_projects_notebooks_have_literal_defaults() -> None:
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        defaults = reports.complete_parameters(path, {})
        json.dumps(defaults)  # injectable and listable
        assert {"date", "days", "warehouse"} <= set(defaults), path.name
