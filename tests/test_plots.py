"""Figure builders: each draws the result it is given — the expected traces, and exactly the
result's own numbers (a builder never recomputes a statistic)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from workbench import losses, plots, spc
from workbench.errors import PlotError
from workbench.oee import OEEResult
from workbench.reliability import fit_weibull, times_between_failures
from workbench.spc import ControlChart, Violation
from workbench.summary import DailySummary

# -- hand-made results ----------------------------------------------------------------------


def _oee_table(keys: dict[str, list], *, pbt: list[float], down: list[float], setup: list[float],
               micro: list[float], ideal: list[float], reject: list[float]) -> pd.DataFrame:
    """An OEE table with every column the builders read, from a few time elements (minutes)."""
    t = pd.DataFrame(keys)
    t["pbt_observed_min"] = pbt
    t["down_min"] = down
    t["setup_min"] = setup
    t["micro_stop_min"] = micro
    t["apt_min"] = t["pbt_observed_min"] - t["down_min"] - t["setup_min"]
    t["ideal_min"] = ideal
    t["ideal_reject_min"] = reject
    t["ideal_startup_reject_min"] = 0.0
    t["ideal_good_min"] = t["ideal_min"] - t["ideal_reject_min"]
    t["availability"] = t["apt_min"] / t["pbt_observed_min"]
    t["performance"] = t["ideal_min"] / t["apt_min"]
    t["quality"] = t["ideal_good_min"] / t["ideal_min"]
    t["oee"] = t["ideal_good_min"] / t["pbt_observed_min"]
    t["good"] = [100] * len(t)
    t["rejects"] = [2] * len(t)
    return t


@pytest.fixture
def by_day() -> OEEResult:
    table = _oee_table({"day": [dt.date(2026, 11, 2), dt.date(2026, 11, 3), dt.date(2026, 11, 4)]},
                       pbt=[480, 480, 480], down=[60, 30, 120], setup=[20, 0, 10], micro=[10, 5, 8],
                       ideal=[300, 380, 250], reject=[6, 4, 10])
    return OEEResult(table, ("day",), 120.0)


@pytest.fixture
def by_machine() -> OEEResult:
    table = _oee_table({"machine_id": ["M1", "M2", "M3", "M4"]}, pbt=[480, 480, 480, 0],
                       down=[10, 60, 300, 0], setup=[0, 20, 20, 0], micro=[5, 5, 5, 0],
                       ideal=[440, 330, 140, 0], reject=[2, 3, 1, 0])
    table.loc[3, ["availability", "performance", "quality", "oee"]] = np.nan
    return OEEResult(table, ("machine_id",), 120.0)


@pytest.fixture
def plant() -> OEEResult:
    table = _oee_table({}, pbt=[1440], down=[210], setup=[30], micro=[23], ideal=[930], reject=[20])
    return OEEResult(table, (), 120.0)


def _trace(fig: go.Figure, name: str):
    found = [t for t in fig.data if t.name == name]
    assert len(found) == 1, f"expected one trace named {name!r}, got {[t.name for t in fig.data]}"
    return found[0]


# -- OEE ------------------------------------------------------------------------------------

def test_kpis_show_the_plant_row(plant: OEEResult) -> None:
    fig = plots.kpis(plant)
    assert [t.type for t in fig.data] == ["indicator"] * 4
    row = plant.table.iloc[0]
    assert [t.value for t in fig.data] == pytest.approx(
        [row[k] * 100 for k in ("availability", "performance", "quality", "oee")])
    with pytest.raises(PlotError, match="one row"):
        plots.kpis(OEEResult(pd.concat([plant.table] * 2), (), 120.0))


def test_oee_trend_by_day_draws_the_table(by_day: OEEResult) -> None:
    fig = plots.oee_trend(by_day)
    assert [t.name for t in fig.data] == ["Availability", "Performance", "Quality", "OEE"]
    assert list(_trace(fig, "OEE").y) == pytest.approx(by_day.table["oee"].tolist())
    assert list(_trace(fig, "Quality").y) == pytest.approx(by_day.table["quality"].tolist())
    assert pd.Timestamp(_trace(fig, "OEE").x[0]) == pd.Timestamp("2026-11-02")
    # the good / watch bands are reference lines, not data
    assert sorted(s.y0 for s in fig.layout.shapes) == [0.65, 0.85]
    assert fig.layout.title.text and fig.layout.yaxis.title.text == "OEE (%)"


def test_oee_trend_by_hour_per_machine_in_plant_time() -> None:
    hours = pd.to_datetime(["2026-11-03 12:00", "2026-11-03 13:00"], utc=True)
    table = _oee_table({"machine_id": ["M1", "M1", "M2", "M2"], "hour": list(hours) * 2},
                       pbt=[60] * 4, down=[0, 10, 20, 0], setup=[0] * 4, micro=[0] * 4,
                       ideal=[50, 40, 30, 55], reject=[0] * 4)
    fig = plots.oee_trend(OEEResult(table, ("machine_id", "hour"), 120.0), tz="America/Chicago")
    assert [t.name for t in fig.data] == ["M1", "M2"]
    # 12:00 UTC is 06:00 in Chicago (CST)
    assert pd.Timestamp(fig.data[0].x[0]) == pd.Timestamp("2026-11-03 06:00")
    assert "America/Chicago" in fig.layout.xaxis.title.text
    with pytest.raises(PlotError, match="'day' or 'hour'"):
        plots.oee_trend(OEEResult(table, ("machine_id",), 120.0))


def test_machine_ranking_colours_by_band(by_machine: OEEResult) -> None:
    fig = plots.machine_ranking(by_machine, thresholds=(0.85, 0.65))
    bar = _trace(fig, "OEE")
    # best on top: plotly draws the first category at the bottom
    oee = by_machine.table.set_index("machine_id")["oee"]
    assert list(bar.y) == ["M4", "M3", "M2", "M1"]
    assert list(bar.x) == pytest.approx([0.0, oee["M3"], oee["M2"], oee["M1"]])
    bands = {m: plots.BAND_COLORS[b] for m, b in
             (("M1", "good"), ("M2", "watch"), ("M3", "poor"), ("M4", "no plan"))}
    assert list(bar.marker.color) == [bands[m] for m in bar.y]
    with pytest.raises(PlotError, match="machine_id alone"):
        plots.machine_ranking(OEEResult(by_machine.table.assign(day=1), ("machine_id", "day"), 120.0))


def test_machine_ranking_and_kpis_from_a_daily_summary() -> None:
    machines = pd.DataFrame({"machine_id": ["M1", "M2"], "name": ["Press 1", "Mill 2"], "line": ["L1", "L1"],
                             "availability": [0.9, 0.8], "performance": [0.9, 0.9], "quality": [1.0, 0.95],
                             "oee": [0.81, 0.684], "good": [10, 9], "rejects": [0, 1], "down_min": [5.0, 40.0],
                             "status": ["watch", "poor"]})
    summary = DailySummary(dt.date(2026, 11, 3), "America/Chicago",
                           {"availability": 0.85, "performance": 0.9, "quality": 0.97, "oee": 0.74},
                           machines, pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), thresholds=(0.8, 0.7))
    bar = plots.machine_ranking(summary).data[0]
    assert list(bar.y) == ["M2 · Mill 2", "M1 · Press 1"]
    # the summary's own status decides the colour (it was made with the summary's thresholds)
    assert list(bar.marker.color) == [plots.BAND_COLORS["poor"], plots.BAND_COLORS["watch"]]
    assert sorted(s.x0 for s in plots.machine_ranking(summary).layout.shapes) == [0.7, 0.8]
    tiles = plots.kpis(summary)
    assert tiles.data[3].value == pytest.approx(74.0)
    assert tiles.data[3].number.font.color == plots.BAND_COLORS["watch"]


def test_loss_waterfall_is_the_results_waterfall(plant: OEEResult) -> None:
    fig = plots.loss_waterfall(plant)
    (trace,) = fig.data
    steps = plant.waterfall()
    assert trace.type == "waterfall"
    assert list(trace.x) == steps["step"].tolist()
    assert list(trace.y) == pytest.approx(steps["minutes"].tolist())
    assert list(trace.measure) == ["absolute", "relative", "relative", "relative", "total"]
    # the frame works as well as the result
    assert list(plots.loss_waterfall(steps).data[0].y) == pytest.approx(steps["minutes"].tolist())


def test_six_big_losses_stacked_per_machine_and_sorted_for_the_plant(by_machine: OEEResult,
                                                                     plant: OEEResult) -> None:
    fig = plots.six_big_losses(by_machine)
    names = [plots.LOSS_LABELS[c] for c in ("unplanned_stops", "setup_and_adjustments", "small_stops",
                                            "slow_cycles", "production_rejects", "startup_rejects")]
    assert [t.name for t in fig.data] == names
    assert fig.layout.barmode == "stack"
    frame = by_machine.six_big_losses()
    assert list(_trace(fig, "Slow cycles").y) == pytest.approx(frame["slow_cycles"].tolist())
    assert len(plots.six_big_losses(by_machine, productive=True).data) == 7

    (bar,) = plots.six_big_losses(plant).data
    row = plant.six_big_losses().iloc[0]
    assert dict(zip(bar.y, bar.x, strict=True)) == pytest.approx(
        {plots.LOSS_LABELS[c]: row[c] for c in plots._LOSSES})
    assert list(bar.x) == sorted(bar.x)


# -- losses ---------------------------------------------------------------------------------

@pytest.fixture
def downtime() -> pd.DataFrame:
    return pd.DataFrame({
        "machine_id": ["M1", "M1", "M2", "M2", "M3"],
        "reason_category": ["Tooling", "Mechanical Failure", "Tooling", None, "Material"],
        "duration_min": [30.0, 90.0, 45.0, 20.0, 5.0],
        "work_order": ["W1", "W1", "W2", None, "W3"],
    })


def test_pareto_bars_and_cumulative_line_come_from_the_frame(downtime: pd.DataFrame) -> None:
    frame = losses.downtime_pareto(downtime, by="reason_category")
    fig = plots.pareto(frame, top=3)
    bars, line = _trace(fig, "minutes"), _trace(fig, "cumulative %")
    assert list(bars.x) == frame["reason_category"].head(3).tolist()
    assert list(bars.y) == pytest.approx(frame["minutes"].head(3).tolist())
    # the line is the frame's cumulative share — of all bars, not only the three shown
    assert list(line.y) == pytest.approx(frame["cumulative_share"].head(3).tolist())
    assert line.y[-1] < 1.0 and line.yaxis == "y2"
    assert "top 3 of 4" in fig.layout.title.text

    by_events = losses.downtime_pareto(downtime, by="machine_id", measure="events")
    assert list(_trace(plots.pareto(by_events, measure="events"), "events").y) == by_events["events"].tolist()


def test_pareto_of_scrap_measures_cost_and_rejects_unknown_frames() -> None:
    scrap = pd.DataFrame({"scrap_category": ["A", "B", "A"], "quantity": [1, 5, 2],
                          "material_cost": [10.0, 1.0, 20.0], "labor_cost": [1.0, 0.5, 2.0]})
    frame = losses.scrap_pareto(scrap)
    bars = _trace(plots.pareto(frame), "cost")
    assert list(bars.y) == pytest.approx(frame["cost"].tolist())
    with pytest.raises(PlotError, match="cumulative_share"):
        plots.pareto(pd.DataFrame({"x": ["a"], "minutes": [1.0]}))
    with pytest.raises(PlotError, match="measure="):
        plots.pareto(frame.drop(columns="cost"))


def test_downtime_cost_bars(downtime: pd.DataFrame) -> None:
    orders = pd.DataFrame({"work_order": ["W1", "W2", "W3"], "labor_rate_per_hour": [60.0, 30.0, 0.0]})
    frame = losses.downtime_cost(downtime, work_orders=orders)
    bar = _trace(plots.downtime_cost(frame), "cost")
    assert list(bar.x) == frame["reason_category"].tolist()
    assert list(bar.y) == pytest.approx(frame["cost"].tolist())


def test_empty_frames_give_a_figure_that_says_so() -> None:
    empty = losses.downtime_pareto(pd.DataFrame({"machine_id": [], "reason_category": [],
                                                 "duration_min": []}), by="reason_category")
    fig = plots.pareto(empty)
    assert not fig.data and "No data" in fig.layout.annotations[0].text


# -- SPC ------------------------------------------------------------------------------------

def _hand_made_chart(*, lcl: float | np.ndarray, ucl: float | np.ndarray) -> ControlChart:
    """A chart whose limits are deliberately unlike anything the points would give."""
    stat = np.array([10.0, 11.0, 9.5, 14.0, 10.2])
    return ControlChart(
        chart_type="xbar_rbar", label="X̄", subgroups=np.array(["a", "b", "c", "d", "e"], dtype=object),
        statistic=stat, sizes=np.full(5, 5.0), center=10.0, lcl=lcl, ucl=ucl, se=1.0, sigma=2.236,
        sigma_method="R̄/d2", parameter=10.0, nsigmas=3.0, phase="II", rules=("we1",),
        violations=(Violation("we1", 3, "d", "X̄", "beyond"),))


def test_control_chart_draws_the_charts_own_limits_and_violations() -> None:
    chart = _hand_made_chart(lcl=7.0, ucl=13.0)
    fig = plots.control_chart(chart)
    points = _trace(fig, "X̄")
    assert list(points.y) == pytest.approx(chart.statistic.tolist())
    ucl = next(t for t in fig.data if t.name.startswith("X̄ UCL"))
    lcl = next(t for t in fig.data if t.name.startswith("X̄ LCL"))
    center = next(t for t in fig.data if t.name.startswith("X̄ CL"))
    assert set(ucl.y) == {13.0} and set(lcl.y) == {7.0} and set(center.y) == {10.0}
    assert ucl.name == "X̄ UCL = 13"
    bad = _trace(fig, "X̄ violations")
    assert list(bad.x) == [4] and list(bad.y) == [14.0]
    assert "phase II" in fig.layout.title.text


def test_control_chart_steps_varying_limits() -> None:
    ucl = np.array([13.0, 12.0, 12.5, 13.0, 12.0])
    lcl = np.array([7.0, 8.0, 7.5, 7.0, 8.0])
    fig = plots.control_chart(_hand_made_chart(lcl=lcl, ucl=ucl))
    line = next(t for t in fig.data if t.name.startswith("X̄ UCL"))
    assert list(line.y) == pytest.approx(ucl.tolist())
    assert line.line.shape == "hvh" and line.name == "X̄ UCL"   # no single value to print


def test_control_chart_of_a_pair_and_of_a_p_chart() -> None:
    rng = np.random.default_rng(3)
    data = pd.DataFrame({"sg": np.repeat(np.arange(25), 5), "v": rng.normal(10, 1, 125)})
    pair = spc.xbar_r(data, value="v", subgroup="sg")
    fig = plots.control_chart(pair, zones=True)
    assert {"X̄", "R"} <= {t.name for t in fig.data}
    assert _trace(fig, "R").yaxis == "y2"
    r_ucl = next(t for t in fig.data if t.name.startswith("R UCL"))
    assert list(r_ucl.y) == [pair.dispersion.ucl] * len(pair.dispersion)
    assert sum(t.name.startswith("X̄ +") or t.name.startswith("X̄ −") for t in fig.data) == 4

    samples = pd.DataFrame({"d": rng.binomial(80, 0.05, 30), "n": rng.integers(50, 120, 30)})
    p = spc.p_chart(samples, defectives="d", size="n")
    line = next(t for t in plots.control_chart(p).data if t.name.startswith("p UCL"))
    assert list(line.y) == pytest.approx(list(p.ucl))


def test_capability_histogram_marks_the_specification() -> None:
    rng = np.random.default_rng(5)
    data = pd.DataFrame({"sg": np.repeat(np.arange(20), 5), "v": rng.normal(40.0, 0.02, 100)})
    cap = spc.capability(data, value="v", subgroup="sg", lsl=39.9, usl=40.1)
    fig = plots.capability_histogram(data["v"], cap, unit="mm")
    hist = _trace(fig, "measurements")
    assert hist.type == "histogram" and len(hist.x) == 100
    assert {s.x0 for s in fig.layout.shapes} == {39.9, 40.1, 40.0}
    within = next(t for t in fig.data if t.name.startswith("within"))
    # the curve is the study's normal: its peak sits at the study's mean
    assert within.x[int(np.argmax(within.y))] == pytest.approx(cap.mean, abs=0.01)
    assert f"Cpk {cap.cpk:.2f}" in fig.layout.title.text


def test_spc_study_figures() -> None:
    start = pd.Timestamp("2026-11-02 06:00", tz="UTC")
    rng = np.random.default_rng(9)
    rows = [(start + pd.Timedelta(hours=h, minutes=m), f"s{h}", rng.normal(25.0, 0.01))
            for h in range(-40, 10) for m in range(5)]
    q = pd.DataFrame(rows, columns=["time", "subgroup_id", "value"]).assign(
        machine_id="M1", part_number="P", characteristic="bore")
    chars = pd.DataFrame({"part_number": ["P"], "characteristic": ["bore"], "lsl": [24.95], "usl": [25.05],
                          "nominal": [25.0], "chart_type": ["xbar_r"], "rules": ["western_electric"],
                          "unit": ["mm"]})
    (study,) = spc.studies(q, chars, start=start.to_pydatetime(),
                           end=(start + pd.Timedelta(hours=10)).to_pydatetime(),
                           baseline_start=(start - pd.Timedelta(days=2)).to_pydatetime())
    figs = plots.spc_study(study)
    assert len(figs) == 2 and "M1 · P · bore" in figs[0].layout.title.text
    (short,) = spc.studies(q, chars.assign(lsl=None, usl=None), start=start.to_pydatetime(),
                           end=(start + pd.Timedelta(hours=10)).to_pydatetime(),
                           baseline_start=(start - pd.Timedelta(hours=5)).to_pydatetime())
    (fig,) = plots.spc_study(short)
    assert "too few subgroups" in fig.layout.annotations[0].text


# -- reliability ----------------------------------------------------------------------------

@pytest.fixture
def tbf() -> pd.DataFrame:
    t0 = pd.Timestamp("2026-03-02", tz="UTC")
    hours = [0, 5, 5.5, 12, 30, 31, 50, 71, 72.5, 90]
    stops = pd.DataFrame({"machine_id": "M1",
                          "time_start": [t0 + pd.Timedelta(hours=h) for h in hours],
                          "time_end": [t0 + pd.Timedelta(hours=h, minutes=10) for h in hours]})
    return times_between_failures(stops, start=t0, end=t0 + pd.Timedelta(hours=100))


def test_weibull_probability_plot_is_the_fits_straight_line(tbf: pd.DataFrame) -> None:
    fit = fit_weibull(tbf.loc[~tbf["censored"], "time_h"], right_censored=tbf.loc[tbf["censored"], "time_h"])
    fig = plots.weibull_probability(fit, tbf)
    line, points = _trace(fig, "Weibull fit"), _trace(fig, "failures")
    x, y = np.log(np.asarray(line.x)), np.asarray(line.y)
    # on Weibull paper the fitted CDF is y = β (ln t − ln η)
    assert y == pytest.approx(fit.shape * (x - np.log(fit.scale)))
    assert len(points.x) == int((~tbf["censored"]).sum())
    assert fig.layout.xaxis.type == "log"


def test_reliability_curve_is_the_fits_r_of_t(tbf: pd.DataFrame) -> None:
    fit = fit_weibull(tbf.loc[~tbf["censored"], "time_h"])
    fig = plots.reliability_curve(fit)
    r = _trace(fig, "R(t)")
    assert np.asarray(r.y) == pytest.approx(fit.reliability(np.asarray(r.x)))
    h = _trace(fig, "h(t)")
    assert np.asarray(h.y) == pytest.approx(fit.hazard(np.asarray(h.x)))
    assert f"B10 = {fit.b_life(10):,.1f}" in fig.layout.title.text


def test_mtbf_mttr_bars() -> None:
    frame = pd.DataFrame({"machine_id": ["M1", "M2", "M3"], "uptime_h": [20.0, 22.0, 24.0],
                          "failures": [4, 2, 0], "mtbf_h": [5.0, 11.0, np.nan], "mttr_min": [30.0, 12.5, np.nan]})
    fig = plots.mtbf_mttr(frame)
    mtbf, mttr = _trace(fig, "MTBF"), _trace(fig, "MTTR")
    assert list(mtbf.x) == ["M1", "M2", "M3"]            # least reliable first, no failures last
    assert list(mtbf.y[:2]) == [5.0, 11.0] and np.isnan(mtbf.y[2])
    assert list(mttr.y[:2]) == [30.0, 12.5]
    assert mttr.xaxis == "x2"


def test_six_big_losses_without_planned_time(plant: OEEResult) -> None:
    idle = plant.six_big_losses()
    idle.loc[:, list(idle.columns)] = 0.0
    fig = plots.six_big_losses(idle)
    assert not fig.data and "No planned time" in fig.layout.annotations[0].text
