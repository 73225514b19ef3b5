"""The analysis notebooks and the helpers they share.

Structure (fast): each notebook has exactly one cell tagged ``parameters`` with the common,
typed parameters papermill can read, and is committed without outputs. Helpers (fast): opening
the data, resolving days and machines, and how figures are displayed. Execution (slow): every
notebook runs with its defaults through papermill and the project's ``workbench`` kernel against
a small simulated warehouse, and its figures survive HTML export with plotly.js embedded once.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import shutil
from multiprocessing.pool import ThreadPool
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import papermill
import plotly.graph_objects as go
import pytest

from workbench import config, jobs, reliability
from workbench import notebook as nb
from workbench.demo import load_plant
from workbench.errors import ConfigError, StoreError
from workbench.simulate import PlantConfig, simulate_plant
from workbench.store import DuckDBWarehouse, OnDemandWarehouse

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXPECTED = {"oee", "pareto", "spc", "reliability", "daily_summary", "root_cause", "anomalies", "yield_forecast",
            "train_models"}
#: Run with their defaults by `executed`; train_models (a data scientist's, 18 s of training) runs in
#: tests/ml/test_ml_notebooks.py, with and without registering.
EXECUTED = [p for p in NOTEBOOKS if p.stem != "train_models"]
COMMON = {"date": ("str", '""'), "warehouse": ("str", '""'), "site": ("str", '""'), "lines": ("list", "[]"),
          "machines": ("list", "[]")}
TZ = "America/Chicago"
PLOTLY_JS = "* plotly.js v"   # the banner at the top of the bundled plotly.min.js


def _markup(html: str) -> str:
    """The HTML around an embedded plotly.js (whose source mentions URLs it never fetches for
    these charts, e.g. map tiles)."""
    from plotly.offline import get_plotlyjs

    return html.replace(get_plotlyjs(), "")


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


@pytest.fixture(scope="session")
def demo_warehouse(tmp_path_factory) -> Path:
    """A small simulated plant (4 machines, 2 lines, 16 days) loaded into a DuckDB file."""
    path = tmp_path_factory.mktemp("notebook-data") / "warehouse.duckdb"
    plant = simulate_plant(PlantConfig(seed=7, n_machines=4, n_lines=2, days=16, telemetry=False))
    with DuckDBWarehouse(path) as wh:
        load_plant(plant, wh, truth_dir=path.parent / "truth")
    return path


@pytest.fixture
def fresh_settings():
    """Re-read the settings before and after a test that changes the environment."""
    config.reset()
    yield
    config.reset()


@pytest.fixture
def shown(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Capture what the helpers display, in a session where plotly.js was not embedded yet."""
    bundles: list[dict] = []
    monkeypatch.setattr(nb, "_display", bundles.append)
    monkeypatch.setitem(nb._PLOTLY, "embedded", False)
    return bundles


# =============================================================================================
# structure
# =============================================================================================

def test_the_analysis_notebooks_exist() -> None:
    assert {p.stem for p in NOTEBOOKS} >= EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_one_parameters_cell_and_no_outputs(path: Path) -> None:
    book = nbformat.read(path, as_version=4)
    nbformat.validate(book)
    assert book.metadata["kernelspec"]["name"] == "workbench"
    tagged = [c for c in book.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0].cell_type == "code"
    for cell in book.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, "commit notebooks without outputs"
    # the parameters cell holds typed literal defaults only
    for stmt in ast.parse(tagged[0].source).body:
        assert isinstance(stmt, ast.AnnAssign) and stmt.value is not None, ast.unparse(stmt)
        ast.literal_eval(stmt.value)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_papermill_reads_the_common_parameters(path: Path) -> None:
    # A second "=" on a parameter line (e.g. in its comment) makes papermill skip the parameter;
    # the report flow would then refuse to pass it.
    found = papermill.inspect_notebook(str(path))
    for name, (kind, default) in COMMON.items():
        assert (found[name]["inferred_type_name"], found[name]["default"]) == (kind, default), name
    assert found["days"]["inferred_type_name"] == "int" and int(found["days"]["default"]) >= 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_cells_import_call_and_display(path: Path) -> None:
    book = nbformat.read(path, as_version=4)
    for cell in book.cells:
        if cell.cell_type != "code":
            continue
        tree = ast.parse(cell.source)
        defined = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef | ast.Lambda)]
        assert not defined, f"{path.name}: helpers belong in the library (workbench.notebook)"
        assert len(cell.source.splitlines()) <= 15, f"{path.name}: a long cell\n{cell.source}"


# =============================================================================================
# helpers
# =============================================================================================

def test_show_embeds_plotly_js_once_and_always_carries_html(shown: list[dict]) -> None:
    fig = go.Figure(go.Bar(x=["a", "b"], y=[1, 2]), layout={"title": "Two bars", "height": 300})
    nb.show(fig)
    nb.show(fig)
    nb.show(fig, include_plotlyjs=True)
    first, second, forced = shown
    for bundle in shown:
        assert 'class="plotly-graph-div"' in bundle["text/html"]
        assert bundle["application/vnd.plotly.v1+json"]["data"][0]["type"] == "bar"
        assert bundle["application/vnd.plotly.v1+json"]["layout"]["title"]["text"] == "Two bars"
        assert bundle["text/plain"] == "<plotly figure: Two bars>"
        assert "<script src=" not in _markup(bundle["text/html"]) and "https://" not in _markup(bundle["text/html"])
    assert PLOTLY_JS in first["text/html"] and len(first["text/html"]) > 1_000_000
    assert PLOTLY_JS not in second["text/html"] and len(second["text/html"]) < 20_000
    assert PLOTLY_JS in forced["text/html"]
    assert "height:300px" in second["text/html"].replace(" ", "")


def test_a_new_scope_embeds_plotly_js_again(shown: list[dict], demo_warehouse: Path) -> None:
    fig = go.Figure(go.Bar(x=["a"], y=[1]))
    nb.show(fig)
    nb.scope(warehouse=str(demo_warehouse))       # "Run all" again in the same kernel
    nb.show(fig)
    nb.show(fig)
    assert [PLOTLY_JS in b["text/html"] for b in shown] == [True, True, False]


def test_in_a_report_run_figures_leave_plotly_js_to_the_page(shown: list[dict],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(config.REPORT_RUN_ENV, "1")
    fig = go.Figure(go.Bar(x=["a"], y=[1]))
    nb.show(fig)
    nb.show(fig)
    assert [PLOTLY_JS in b["text/html"] for b in shown] == [False, False]
    assert all("Plotly.newPlot" in b["text/html"] for b in shown)  # the page's plotly.js draws them


def test_record_keeps_results_only_in_a_report_run(shown: list[dict], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(config.REPORT_RUN_ENV, raising=False)
    nb.record("total", {"good": 3})
    assert shown == []  # an analyst's kernel: nothing extra in the notebook
    monkeypatch.setenv(config.REPORT_RUN_ENV, "1")
    nb.record("total", {"good": 3})
    assert shown == [{config.RECORD_MIME: {"name": "total", "value": {"good": 3}}}]
    with pytest.raises(ConfigError, match="JSON"):
        nb.record("bad", {"when": dt.date(2026, 11, 20)})


def test_warm_up_leaves_the_spc_constants_computed() -> None:
    from workbench.spc import constants

    nb.warm_up()
    assert constants._d2.cache_info().currsize >= 9 and constants._d3.cache_info().currsize >= 9


def test_show_table_formats_numbers(shown: list[dict]) -> None:
    frame = pd.DataFrame({"reason_category": ["Tooling", "Material", "(uncoded)"],
                          "minutes": [125.25, 30.0, np.nan], "events": [1200, 3, 1], "share": [0.8, 0.192, 0.008],
                          "cost": [1234.5, 10.0, 0.0]})
    nb.show_table(frame, max_rows=2, caption="Downtime")
    (bundle,) = shown
    html = bundle["text/html"]
    assert "reason category" in html and "Downtime" in html
    assert "80.0%" in html and "19.2%" in html
    assert "$1,234.50" in html and "1,200" in html and "125.2" in html
    assert "(uncoded)" not in html and "1 more row not shown" in html
    assert "Tooling" in bundle["text/plain"]
    nb.show_table(frame, formats={"minutes": "{:.3f}"})
    assert "125.250" in shown[-1]["text/html"] and "–" in shown[-1]["text/html"]


def test_open_data(demo_warehouse: Path, tmp_path: Path, use_home, fresh_settings) -> None:
    wh = nb.open_data(str(demo_warehouse))
    assert isinstance(wh, OnDemandWarehouse)          # connects per call: a kernel holds nothing
    assert wh.engine == "duckdb" and wh.count("machines") == 4
    with DuckDBWarehouse(demo_warehouse, lock_timeout_s=0):
        pass                                          # a writer gets the file at once
    with pytest.raises(StoreError, match="read-only"):
        wh.write("machines", wh.read("machines"))
    wh.close()
    with pytest.raises(ConfigError, match="neither a DuckDB file"):
        nb.open_data(str(tmp_path / "missing.duckdb"))
    use_home(tmp_path)
    with pytest.raises(ConfigError, match="workbench demo"):
        nb.open_data("")
    (tmp_path / "data").mkdir()
    shutil.copy(demo_warehouse, tmp_path / "data" / "warehouse.duckdb")
    with nb.open_data("") as wh:
        assert isinstance(wh, OnDemandWarehouse)
        assert wh.location == str(tmp_path / "data" / "warehouse.duckdb")


def test_resolve_days(demo_warehouse: Path) -> None:
    with DuckDBWarehouse(demo_warehouse, read_only=True) as wh:
        latest = jobs.latest_production_day(wh, tz=TZ)
        first, last, start, end = nb.resolve_days(wh, "", 1, TZ)
        assert first == last == latest
        assert (start.hour, end.hour) == (6, 6) and end - start == dt.timedelta(days=1)
        first, last, start, end = nb.resolve_days(wh, "2026-10-28", 3, TZ)
        assert (first, last) == (dt.date(2026, 10, 26), dt.date(2026, 10, 28))
        assert (start.isoformat(), end.isoformat()) == ("2026-10-26T06:00:00-05:00", "2026-10-29T06:00:00-05:00")
        with pytest.raises(ConfigError, match="YYYY-MM-DD"):
            nb.resolve_days(wh, "28/10/2026", 1, TZ)
        with pytest.raises(ConfigError, match="days"):
            nb.resolve_days(wh, "", 0, TZ)


def test_select_machines(demo_warehouse: Path) -> None:
    with DuckDBWarehouse(demo_warehouse, read_only=True) as wh:
        assert nb.select_machines(wh)["machine_id"].tolist() == ["M01", "M02", "M03", "M04"]
        on_l2 = nb.select_machines(wh, lines=["L2"])
        assert set(on_l2["line"]) == {"L2"} and len(on_l2) == 2
        assert nb.select_machines(wh, site="PLANT1", machines="M03,M01")["machine_id"].tolist() == ["M01", "M03"]
        with pytest.raises(ConfigError, match=r"unknown machine\(s\) M99; the warehouse has M01, M02"):
            nb.select_machines(wh, machines=["M01", "M99"])
        with pytest.raises(ConfigError, match="no machine matches"):
            nb.select_machines(wh, lines=["L1"], machines=["M03"])


def test_scope_reads_the_selected_machines_and_days(demo_warehouse: Path, capsys) -> None:
    s = nb.scope(date="2026-10-28", days=2, warehouse=str(demo_warehouse), lines=["L1"])
    assert s.days == 2 and s.trend_grain == "day" and s.machine_filter == ["M01", "M02"]
    downtime = s.read("downtime_events")
    assert set(downtime["machine_id"]) <= {"M01", "M02"}
    assert downtime["time_start"].min() >= pd.Timestamp(s.start) and downtime["time_start"].max() < pd.Timestamp(s.end)
    assert len(s.read("reason_codes")) > 0                 # a dimension is read whole
    everything = nb.scope(date="2026-10-28", warehouse=str(demo_warehouse))
    assert everything.machine_filter is None and everything.trend_grain == "hour"
    frames = s.plant_frames()
    nb.header(s, "OEE", frames, notes=["a note"])
    out = capsys.readouterr().out
    assert "OEE — 2 production days: Tue 27 Oct 2026 – Wed 28 Oct 2026" in out
    assert "selected 2 — M01, M02 (site PLANT1; line L1)" in out
    assert f"{len(frames.production_events):>10,}" in out and "a note" in out
    by_machine = s.oee(frames, by=("machine_id",))
    assert by_machine.table["machine_id"].tolist() == ["M01", "M02"]
    # What the daily summary notebook does with the scope's warehouse still works…
    summary = jobs.daily_summary_from(s.warehouse, day=s.last_day, tz=TZ, machines=s.machine_filter)
    assert summary.day == s.last_day
    # …and the scopes, kept alive as a kernel keeps them, hold no connection between calls.
    assert isinstance(s.warehouse, OnDemandWarehouse) and isinstance(everything.warehouse, OnDemandWarehouse)
    with DuckDBWarehouse(demo_warehouse, lock_timeout_s=0):
        pass


def test_unscheduled_time_and_weibull_choice(demo_warehouse: Path, capsys) -> None:
    s = nb.scope(date="2026-11-03", days=14, warehouse=str(demo_warehouse))
    downtime = s.read("downtime_events", overlap=True)
    stops = nb.with_unscheduled_time(s, downtime, s.read("machine_states", overlap=True))
    added = stops[stops["reason_category"] == reliability.NOT_SCHEDULED]
    assert len(stops) == len(downtime) + len(added) and added["planned"].all()
    mtbf = reliability.mtbf_mttr(stops, start=s.start, end=s.end, machines=s.machine_ids)
    # weekends and breaks are not uptime: far less than the 14 × 24 h window
    assert (mtbf["uptime_h"] < 0.8 * 14 * 24).all()
    tbf = reliability.times_between_failures(stops, start=s.start, end=s.end)
    worst = mtbf.sort_values(["failures", "machine_id"], ascending=[False, True])["machine_id"].iloc[0]
    choice = nb.weibull_fit(tbf, mtbf)
    assert choice.machine == worst and choice.fit is not None and "most failures" in choice.reason
    pooled = nb.weibull_fit(tbf, mtbf, machine="all")
    assert pooled.machine is None and pooled.fit.n_failures == int((~tbf["censored"]).sum())
    nothing = nb.weibull_fit(tbf.iloc[:0], mtbf.iloc[:0])
    assert nothing.fit is None
    assert "Weibull fit: all machines" in capsys.readouterr().out


# =============================================================================================
# execution
# =============================================================================================

def _execute(path: Path, out_dir: Path, parameters: dict) -> tuple[str, nbformat.NotebookNode | None, str]:
    out = out_dir / path.name
    try:
        papermill.execute_notebook(str(path), str(out), parameters=parameters, kernel_name="workbench",
                                   cwd=str(ROOT), progress_bar=False, execution_timeout=300)
    except Exception as exc:  # the test reports it with the notebook's name
        return path.stem, None, f"{type(exc).__name__}: {exc}"
    return path.stem, nbformat.read(out, as_version=4), ""


@pytest.fixture(scope="session")
def executed(demo_warehouse: Path, tmp_path_factory) -> dict[str, tuple[nbformat.NotebookNode | None, str]]:
    """Every notebook run with its defaults and ``warehouse=<the demo file>``, two at a time."""
    out = tmp_path_factory.mktemp("executed")
    with ThreadPool(2) as pool:
        runs = pool.map(lambda p: _execute(p, out, {"warehouse": str(demo_warehouse)}), EXECUTED)
    return {name: (book, error) for name, book, error in runs}


def _plotly_outputs(book: nbformat.NotebookNode) -> list[dict]:
    return [o["data"] for c in book.cells if c.cell_type == "code" for o in c.outputs
            if o.get("output_type") == "display_data" and "application/vnd.plotly.v1+json" in o.get("data", {})]


def _check_executed(name: str, book: nbformat.NotebookNode | None, error: str) -> None:
    assert book is not None, f"{name}.ipynb failed: {error}"
    errors = [o for c in book.cells if c.cell_type == "code" for o in c.outputs if o.get("output_type") == "error"]
    assert not errors, f"{name}.ipynb: {errors[0]['ename']}: {errors[0]['evalue']}"
    printed = "".join(o.get("text", "") for c in book.cells if c.cell_type == "code" for o in c.outputs
                      if o.get("output_type") == "stream")
    assert "machines:" in printed and "rows read:" in printed, "the header says what the notebook covers"
    figures = _plotly_outputs(book)
    assert figures, f"{name}.ipynb shows no figure"
    for data in figures:
        assert 'class="plotly-graph-div"' in data["text/html"]
        assert "<script src=" not in _markup(data["text/html"]), "nothing may be fetched at view time"
    embeds = [PLOTLY_JS in data["text/html"] for data in figures]
    assert embeds == [True] + [False] * (len(figures) - 1), "plotly.js exactly once, in the first figure"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.stem for p in EXECUTED))
def test_notebook_runs_with_its_defaults(name: str, executed) -> None:
    book, error = executed[name]
    _check_executed(name, book, error)


@pytest.mark.slow
def test_spc_notebook_shows_episodes_small_shift_charts_and_capability_methods(executed) -> None:
    book, error = executed["spc"]
    assert book is not None, error
    html = "".join(o.get("data", {}).get("text/html", "") for c in book.cells if c.cell_type == "code"
                   for o in c.outputs)
    # the ranked episodes table, with its consequence columns
    assert "Out-of-control episodes" in "".join(c.source for c in book.cells if c.cell_type == "markdown")
    for column in ("shift sigma", "cpk", "expected out", "consequence"):
        assert column in html.lower(), column
    # the demo's characteristics use the tool-wear chart; every chart has its EWMA and CUSUM view
    titles = [json.loads(d["application/vnd.plotly.v1+json"] if isinstance(d["application/vnd.plotly.v1+json"], str)
                         else json.dumps(d["application/vnd.plotly.v1+json"]))["layout"]["title"]["text"]
              for d in _plotly_outputs(book)]
    assert any("wear-adjusted X̄-R chart" in t for t in titles), titles
    assert any("small shifts: EWMA" in t for t in titles) and any("small shifts: CUSUM" in t for t in titles)
    # capability says what it rests on (auto: normal, or the fitted model and why)
    capability = [t for t in titles if "capability:" in t]
    assert capability and all("; n = " in t for t in capability), capability
    # charts on clock time
    layouts = [json.loads(json.dumps(d["application/vnd.plotly.v1+json"]))["layout"] for d in _plotly_outputs(book)]
    assert any(str(lay.get("xaxis", {}).get("title", {}).get("text", "")).startswith("time (America/Chicago)")
               for lay in layouts)


@pytest.mark.slow
def test_executed_notebook_exports_to_html_with_its_figures(executed) -> None:
    from nbconvert import HTMLExporter

    book, error = executed["oee"]
    assert book is not None, error
    html, _ = HTMLExporter().from_notebook_node(book)
    n_figures = len(_plotly_outputs(book))
    assert html.count('class="plotly-graph-div"') == n_figures >= 5
    assert html.count(PLOTLY_JS) == 1


@pytest.mark.slow
def test_the_configured_warehouse_is_the_default(demo_warehouse: Path, tmp_path: Path, use_home,
                                                 fresh_settings) -> None:
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    shutil.copy(demo_warehouse, home / "data" / "warehouse.duckdb")
    use_home(home)     # the kernel inherits this environment
    name, book, error = _execute(ROOT / "notebooks" / "oee.ipynb", tmp_path, {})
    _check_executed(name, book, error)
    printed = "".join(o.get("text", "") for c in book.cells for o in c.get("outputs", [])
                      if o.get("output_type") == "stream")
    assert str(home / "data" / "warehouse.duckdb") in printed


@pytest.mark.slow
def test_daily_summary_of_a_day_without_data_says_so(demo_warehouse: Path, tmp_path: Path) -> None:
    """The demo plant with its collectors silent on Wed 28 Oct 2026: the page says NO DATA and
    how many planned minutes went without, instead of empty figures and tables."""
    from workbench.simulate import GroundTruth

    day = dt.date(2026, 10, 28)
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(demo_warehouse, copy)
    with DuckDBWarehouse(copy) as wh:
        start, end = jobs.production_day_range(wh, first=day, last=day + dt.timedelta(days=1), tz=TZ)
        events = wh.read("production_events", start=start, end=end + dt.timedelta(seconds=1))
        states = wh.read("machine_states", start=start, end=end, overlap=True)
        wh.delete_keys("production_events", "event_id", events["event_id"].tolist())
        wh.delete_keys("machine_states", "event_id", states["event_id"].tolist())
    truth = GroundTruth.load(demo_warehouse.parent / "truth").oee
    planned = truth.loc[truth["shift_date"] == day, "planned_busy_min"].sum()
    assert planned > 0

    _, book, error = _execute(ROOT / "notebooks" / "daily_summary.ipynb", tmp_path,
                              {"warehouse": str(copy), "date": day.isoformat()})
    assert book is not None, error
    outputs = [o for c in book.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    shown = [o["data"] for o in outputs if o.get("output_type") == "display_data"]
    plain = [d.get("text/plain", "") for d in shown]
    headline = f"NO DATA — Wed 28 Oct 2026: no production recorded ({planned:,.0f} planned min without data)"
    assert plain[0] == headline  # the first thing shown, right under the header
    box = next(d["text/html"] for d in shown if 'data-wb="no-data"' in d.get("text/html", ""))
    assert f"The shift calendar planned {planned:,.0f} machine-minutes of production" in box
    assert not _plotly_outputs(book), "no figures of a day without data"
    assert not any("availability" in d.get("text/html", "") for d in shown), "no empty machine table"
