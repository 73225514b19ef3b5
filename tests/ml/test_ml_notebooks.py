"""The model notebooks run with their defaults through papermill and the project's ``workbench`` kernel.

Against a small simulated plant (4 machines, 2 lines, 30 days, with telemetry) loaded into a DuckDB
file, with an MLflow registry in a temporary directory (``MLFLOW_TRACKING_URI``, which the kernels
inherit): ``root_cause`` without a champion says how to get one and with one shows the card, the
day's uncoded stops and their explanations; ``anomalies`` shows the day's anomalies with a channel
chart; ``yield_forecast`` the week ahead; ``train_models`` changes nothing by default and
registers a challenger only when asked. In a report run the sections are kept for the e-mail.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email
import email.policy
import importlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import nbformat
import papermill
import pytest
import yaml

from workbench import config, pipelines, runs
from workbench.demo import load_plant
from workbench.ml import sections
from workbench.ml.registry import Registry
from workbench.reports.execute import records_in
from workbench.simulate import PlantConfig, simulate_plant
from workbench.store import DuckDBWarehouse

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PLANT = PlantConfig(seed=3, n_machines=4, n_lines=2, days=30, telemetry=True)
TZ = "America/Chicago"
LAST_DAY = PLANT.start + dt.timedelta(days=PLANT.days - 1)  # Tue 2026-11-17, the notebooks' default day


@pytest.fixture(scope="module")
def plant():
    return simulate_plant(PLANT)


@pytest.fixture(scope="module")
def warehouse(plant, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ml-notebooks") / "warehouse.duckdb"
    with DuckDBWarehouse(path) as wh:
        load_plant(plant, wh, truth_dir=path.parent / "truth")
    return path


@pytest.fixture(scope="module")
def champion_uri(plant, tmp_path_factory) -> str:
    """A registry whose rootcause champion was trained on the plant's first three weeks."""
    start = dt.datetime.combine(PLANT.start, dt.time(6), tzinfo=config.settings().tz)
    run = sections.train_rootcause(plant.tables, train_start=start, train_end=start + dt.timedelta(days=21),
                                   holdout_end=start + dt.timedelta(days=28), params={"n_estimators": 60}, cv=3)
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    registry = Registry(uri)
    version = sections.register_challenger(run, registry)
    registry.promote("rootcause", version.version, reason="test champion")
    return uri


def execute(name: str, out_dir: Path, **parameters) -> nbformat.NotebookNode:
    out = out_dir / f"{name}.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / f"{name}.ipynb"), str(out), parameters=parameters,
                               kernel_name="workbench", cwd=str(ROOT), progress_bar=False, execution_timeout=600)
    return nbformat.read(out, as_version=4)


def outputs(book: nbformat.NotebookNode) -> list[dict]:
    return [o for c in book.cells if c.cell_type == "code" for o in c.outputs]


def printed(book: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in outputs(book) if o.get("output_type") == "stream")


def html(book: nbformat.NotebookNode) -> str:
    return "".join(o.get("data", {}).get("text/html", "") for o in outputs(book))


def figures(book: nbformat.NotebookNode) -> list[str]:
    """Titles of the plotly figures shown."""
    specs = [o["data"]["application/vnd.plotly.v1+json"] for o in outputs(book)
             if "application/vnd.plotly.v1+json" in o.get("data", {})]
    return [json.loads(json.dumps(s))["layout"]["title"]["text"] for s in specs]


def check(book: nbformat.NotebookNode) -> None:
    errors = [o for o in outputs(book) if o.get("output_type") == "error"]
    assert not errors, f"{errors[0]['ename']}: {errors[0]['evalue']}"
    assert "machines:" in printed(book) and "rows read:" in printed(book), "the header says what it covers"


@pytest.fixture
def kernel_env(monkeypatch: pytest.MonkeyPatch):
    """Set variables the next kernels inherit."""
    def set_env(**values: str) -> None:
        for key, value in values.items():
            monkeypatch.setenv(key, value)
    return set_env


def test_root_cause_without_a_champion_says_how_to_get_one(warehouse, tmp_path, kernel_env) -> None:
    kernel_env(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'empty' / 'mlflow.db'}")
    book = execute("root_cause", tmp_path, warehouse=str(warehouse))
    check(book)
    text = printed(book)
    assert "Likely causes of uncoded stops: not shown, because no root-cause model" in text
    assert "workbench run retrain --force" in text
    assert figures(book) == ["Why the model predicted each stop's cause"]  # a figure saying why not
    assert not (tmp_path / "empty").exists(), "looking for a model creates no registry"


@pytest.fixture(scope="module")
def ml_project(warehouse, tmp_path_factory) -> Path:
    """A project running the daily report's model sections (and the summary the e-mail needs) as
    ``pipelines/daily_report.yaml`` configures them: notebooks, parameters, extract ranges."""
    home = tmp_path_factory.mktemp("ml-project")
    shutil.copytree(ROOT / "flows", home / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    (home / "notebooks").mkdir()
    daily = yaml.safe_load((ROOT / "pipelines" / "daily_report.yaml").read_text())
    daily["notebooks"] = [nb for nb in daily["notebooks"] if nb["name"] in (*SECTIONS, "daily_summary")]
    daily.update(email={"recipients": ["manager@plant.example"]}, notify_on_failure=[], retries=0)
    for nb in daily["notebooks"]:
        shutil.copy(ROOT / nb["path"], home / nb["path"])
    (home / "pipelines").mkdir()
    (home / "pipelines" / "daily_report.yaml").write_text(yaml.safe_dump(daily))
    (home / "data").mkdir()
    shutil.copy(warehouse, home / "data" / "warehouse.duckdb")
    return home


SECTIONS = ("root_cause", "anomalies", "yield_forecast")


@contextlib.contextmanager
def in_project(ml_project: Path, champion_uri: str) -> Iterator[None]:
    """Settings (and the kernels' environment) of the project, with the champion's registry."""
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("WORKBENCH_")]:
            mp.delenv(key)
        mp.setenv("WORKBENCH_HOME", str(ml_project))
        mp.setenv("WORKBENCH_ENV_FILE", str(ml_project / ".env"))
        mp.setenv("WORKBENCH_PLANT_TIMEZONE", TZ)
        mp.setenv("MLFLOW_TRACKING_URI", champion_uri)  # the kernels inherit it
        config.reset()
        try:
            yield
        finally:
            config.reset()


@pytest.fixture(scope="module")
def report_run(plant, ml_project, champion_uri, prefect_server) -> Path:
    """The daily report flow of LAST_DAY on the project, with the champion's registry; its run folder.
    Nothing was computed ahead: the notebooks compute every section."""
    with in_project(ml_project, champion_uri):
        state = runs.load_flows(ml_project).daily_report(date=LAST_DAY.isoformat(), return_state=True)
    assert state.is_completed(), state.message
    return ml_project / "reports" / "daily_report" / LAST_DAY.isoformat()


def run_book(report_run: Path, name: str) -> nbformat.NotebookNode:
    return nbformat.read(report_run / "notebooks" / f"{name}.ipynb", as_version=4)


def test_root_cause_in_the_report_run_lists_each_uncoded_stop(plant, report_run) -> None:
    book = run_book(report_run, "root_cause")
    check(book)
    text = printed(book)
    assert "root-cause model v1 (champion)" in text and "Likely causes of uncoded stops: shown" in text
    assert "held-out accuracy of the fault-code lookup (baseline)" in html(book)  # the card
    kept = sections.MLSection.from_record(records_in(book)[sections.UNCODED_RECORD])
    de = plant.tables["downtime_events"]
    start = dt.datetime.combine(LAST_DAY, dt.time(6), tzinfo=config.settings().tz)
    day = de[(de["time_start"] >= start) & (de["time_start"] < start + dt.timedelta(days=1))]
    blank = set(day.loc[day["reason_code"].isna(), "event_id"].astype(str))
    assert blank and set(kept.table.loc[kept.table["kind"] == "blank code", "event_id"]) == blank
    for event_id in blank:  # each shown with its machine and predicted cause
        row = kept.table.set_index("event_id").loc[event_id]
        assert row["predicted_category"] in html(book) and 0 < row["predicted_confidence"] <= 1
    assert figures(book) == ["Why the model predicted each stop's cause"]


def test_anomalies_in_the_report_run_show_the_day_with_a_channel_chart(report_run) -> None:
    book = run_book(report_run, "anomalies")
    check(book)
    kept = sections.MLSection.from_record(records_in(book)[sections.ANOMALIES_RECORD])
    assert kept.shown and "channels (machine × metric)" in kept.confidence
    assert "telemetry" in set(kept.table["source"])
    charts = [t for t in figures(book) if "readings, prediction and the dynamic threshold" in t]
    assert figures(book)[0] == "Anomalies of the day by machine" and 1 <= len(charts) <= 3


def test_yield_forecast_in_the_report_run_shows_the_week_ahead(report_run) -> None:
    book = run_book(report_run, "yield_forecast")
    check(book)
    kept = sections.MLSection.from_record(records_in(book)[sections.WEEK_AHEAD_RECORD])
    assert kept.shown, kept.reason
    assert kept.table["line"].nunique() == 2 and len(kept.table) == 14
    assert "relative MASE" in kept.confidence
    assert figures(book) == ["The week ahead: good per line, forecast with its interval",
                             "The week ahead: yield per line, forecast with its interval"]


def test_the_extract_holds_each_table_over_the_range_its_notebooks_read(report_run) -> None:
    day_start = dt.datetime.combine(LAST_DAY, dt.time(6), tzinfo=config.settings().tz)
    with DuckDBWarehouse(report_run / "data" / "extract.duckdb", read_only=True) as extract:
        first = {t: extract.query(f"SELECT min(time) AS t FROM {t}")["t"].iloc[0]
                 for t in ("machine_telemetry", "production_events", "scrap_events")}
    # telemetry: the anomalies' 7 training days; production: the forecast's 56 days (the whole
    # 30-day plant); scrap: the usual 14 days
    assert day_start - dt.timedelta(days=7) <= first["machine_telemetry"] < day_start - dt.timedelta(days=6)
    assert first["production_events"] < day_start - dt.timedelta(days=28)
    assert day_start - dt.timedelta(days=14) <= first["scrap_events"] < day_start - dt.timedelta(days=13)


def test_the_email_says_what_the_models_say_with_their_confidence(report_run) -> None:
    books = {name: run_book(report_run, name) for name in SECTIONS}
    kept = {name: sections.MLSection.from_record(records_in(books[name])[record]) for name, record in
            (("root_cause", sections.UNCODED_RECORD), ("anomalies", sections.ANOMALIES_RECORD),
             ("yield_forecast", sections.WEEK_AHEAD_RECORD))}
    marker = json.loads((report_run / "email.sent.json").read_text())
    message = email.message_from_bytes(Path(marker["path"]).read_bytes(), policy=email.policy.default)
    text = message.get_body(preferencelist=("plain",)).get_content()
    body = message.get_body(preferencelist=("html",)).get_content()
    heads = [text.index(title) for title in (sections.UNCODED_TITLE, sections.ANOMALIES_TITLE,
                                             sections.WEEK_AHEAD_TITLE)]
    assert text.index("SPC:") < heads[0] < heads[1] < heads[2]
    for section in kept.values():  # each with the confidence its notebook stated
        assert section.shown and f">{section.title}</h2>" in body
        assert " ".join(section.confidence.split()[:6]) in " ".join(text.split())
    zone = config.settings().tz
    stops = text[heads[0]:heads[1]]
    blank = kept["root_cause"].table.query("kind == 'blank code'").head(8)
    for row in blank.itertuples():  # machine, local start and predicted cause on one line
        line = next(x for x in stops.splitlines() if x.strip().startswith(row.machine_id)
                    and f"{row.time_start.tz_convert(zone):%a %H:%M}" in x)
        assert row.predicted_category in line and f"{100 * row.predicted_confidence:.0f} %" in line
    looks = text[heads[1]:heads[2]]
    for row in kept["anomalies"].table.head(8).itertuples():
        assert any(x.strip().startswith(row.machine_id) and row.what in x for x in looks.splitlines())
    ahead = text[heads[2]:]
    working = kept["yield_forecast"].table.query("scheduled")
    assert sum(x.strip().startswith(("L1 ", "L2 ")) for x in ahead.splitlines()) == len(working)


def test_train_models_changes_nothing_by_default_and_registers_when_asked(warehouse, tmp_path,
                                                                          kernel_env) -> None:
    store = tmp_path / "mlflow"
    kernel_env(MLFLOW_TRACKING_URI=f"sqlite:///{store / 'mlflow.db'}")
    # register left at its default (False), as every other setting but the forest's size: 40 trees
    # instead of 200 run the same code ~8 s faster (5-fold CV, SMOTE and calibration as defaulted)
    book = execute("train_models", tmp_path, warehouse=str(warehouse), n_estimators=40)
    check(book)
    text = printed(book)
    assert "Not registered" in text and not store.exists()
    assert figures(book) == ["Balanced accuracy: time-ordered hold-out vs stratified CV",
                             "Confusion matrix on the hold-out (92 coded stops)"]
    assert "fault-code lookup" in html(book) and "stratified 5-fold CV" in html(book)
    store.mkdir()
    book = execute("train_models", tmp_path, warehouse=str(warehouse), register=True, n_estimators=40, cv=3)
    check(book)
    assert "registered rootcause v1 as the challenger" in printed(book)
    registry = Registry(f"sqlite:///{store / 'mlflow.db'}")
    assert registry.alias_version("rootcause", "challenger") == 1 and registry.champion_version("rootcause") is None


@pytest.fixture(scope="module")
def read_back(ml_project, champion_uri, report_run, tmp_path_factory) -> tuple[Path, Path, dict]:
    """As in the plant: the 04:30 model run's task computes the report's sections of LAST_DAY ahead
    (through Prefect, with the report pipeline's notebook settings); then the daily report runs
    again. The first (cold) run's notebooks are kept aside to compare."""
    cold = tmp_path_factory.mktemp("cold")
    for name in SECTIONS:
        shutil.copy(report_run / "notebooks" / f"{name}.ipynb", cold / f"{name}.ipynb")
    with in_project(ml_project, champion_uri):
        runs.load_flows(ml_project)
        retrain = importlib.import_module("flows.retrain")
        done = retrain.compute_report_sections(LAST_DAY, pipelines.RetrainSpec())
        state = runs.load_flows(ml_project).daily_report(date=LAST_DAY.isoformat(), return_state=True)
    assert state.is_completed(), state.message
    return cold, report_run / "notebooks", done


def _tables(book: nbformat.NotebookNode) -> list[str]:
    """The tables shown, without the random ids pandas' Styler gives each."""
    return [re.sub(r"T_[0-9a-f]+", "T_", t) for t in re.findall(r"<table.*?</table>", html(book), flags=re.S)]


def test_the_report_reads_back_the_sections_the_model_run_computed_and_shows_the_same(read_back) -> None:
    cold, warm, done = read_back
    assert done["done"] == {name: "stored (ok)" for name in SECTIONS}, done
    # the other days' anomalies are detected with the report notebook's settings
    assert done["anomaly_params"] == {"train_days": 7, "history_days": 14}, done
    for name in SECTIONS:
        before = nbformat.read(cold / f"{name}.ipynb", as_version=4)
        after = nbformat.read(warm / f"{name}.ipynb", as_version=4)
        check(after)
        said = [line for line in printed(after).splitlines() if "computed by the model run" in line]
        assert len(said) == 1, f"{name}: the page says the section was computed ahead"
        # everything else the page prints and every table it shows is what computing it gave
        assert printed(after).replace(said[0] + "\n", "") == printed(before), name
        assert _tables(after) == _tables(before) and _tables(before), name
        assert figures(after) == figures(before), name
