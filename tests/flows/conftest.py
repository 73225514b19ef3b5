"""A throw-away project (pipelines, notebooks, flows, a small warehouse); the Prefect server of the
session is ``prefect_server`` in ``tests/conftest.py``."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

from workbench import config
from workbench.demo import load_plant
from workbench.store import DuckDBWarehouse

ROOT = Path(__file__).resolve().parents[2]


def make_notebook(path: Path, body: str, *, parameters: str) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(parameters)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "workbench", "display_name": "Python (workbench)", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


PARAMS = 'date = ""\nwarehouse = ""\ndays = 1\n'
# A notebook that takes a second: two started together visibly overlap (the concurrency tests), and every
# flow run of these tests pays it once per notebook.
SLOW_OK = """
import time
from IPython.display import HTML, display
import plotly.graph_objects as go
time.sleep(1)
fig = go.Figure(go.Bar(x=["a", "b"], y=[1, 2]))
display(HTML(fig.to_html(full_html=False, include_plotlyjs=True)))
print("report day", date, "from", warehouse)
"""
FAILING = """
raise ValueError("the sensor table is empty for this line")
"""


@pytest.fixture(scope="session")
def project(small_plant, tmp_path_factory) -> Path:
    """A project directory with flows, two pipelines and a small loaded warehouse."""
    home = tmp_path_factory.mktemp("project")
    shutil.copytree(ROOT / "flows", home / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    make_notebook(home / "notebooks" / "first.ipynb", SLOW_OK, parameters=PARAMS)
    make_notebook(home / "notebooks" / "second.ipynb", SLOW_OK, parameters=PARAMS)
    make_notebook(home / "notebooks" / "broken.ipynb", FAILING, parameters=PARAMS)
    (home / "pipelines").mkdir()
    common = """
kind: report
schedule: {cron: "0 5 * * *", timezone: America/Chicago}
parameters: {days: 1}
email: {recipients: [manager@plant.example], subject_prefix: "[TEST]"}
concurrency: 2
retries: 0
baseline_days: 3
"""
    (home / "pipelines" / "good.yaml").write_text(common + """notebooks:
  - {name: first, path: notebooks/first.ipynb}
  - {name: second, path: notebooks/second.ipynb}
""")
    (home / "pipelines" / "one_at_a_time.yaml").write_text(common.replace("concurrency: 2", "concurrency: 1")
                                                          + """notebooks:
  - {name: first, path: notebooks/first.ipynb}
  - {name: second, path: notebooks/second.ipynb}
""")
    (home / "pipelines" / "partly_broken.yaml").write_text(common + """notebooks:
  - {name: first, path: notebooks/first.ipynb}
  - {name: broken, path: notebooks/broken.ipynb}
""")
    with DuckDBWarehouse(home / "data" / "warehouse.duckdb") as wh:
        load_plant(small_plant, wh, truth_dir=home / "data" / "ground_truth")
    return home


@pytest.fixture
def settings_for(project: Path, use_home, monkeypatch: pytest.MonkeyPatch):
    """Point the workbench settings at the throw-away project (no SMTP host: outbox)."""
    use_home(project)
    monkeypatch.setenv("WORKBENCH_PLANT_TIMEZONE", "America/Chicago")
    config.reset()
    return config.settings()

