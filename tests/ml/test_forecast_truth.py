"""Yield forecast scored against the simulator's ground truth (``truth.oee``: good and produced per
machine and production day), on three plants it never saw: 12 machines, 3 lines, 13 weeks each.

Rolling-origin backtest (every third day from week 5, 7 days ahead): relative MASE against the
seasonal naive (same weekday last week) and interval coverage, both computed here from the truth
(after checking that the truth matches what the pipeline reads from production_events); Prophet
alone vs Prophet + boosted residuals. Then one real forecast: fitted on 12 weeks, scored on the
13th week's truth.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from workbench.ml import forecast as yf
from workbench.simulate import PlantConfig, simulate_plant

pytestmark = pytest.mark.slow

SEEDS = (3, 11)  # seed 5 (MASE 0.547, coverage 0.75) was measured too; two plants keep the suite short
DAYS = 91
NOMINAL = 0.8
# Origins every third day (19 a plant) rather than the backtest's default every second day (28): the
# same weeks 5-13 are judged, every weekday is an origin, and each plant still has 240 scored line-days
# with an interval per target (the coverage test wants 200). Measured with 19 / 28 origins: good MASE
# 0.455 / 0.463 (seed 3), 0.663 / 0.651 (seed 11); good coverage 0.77 / 0.79, 0.93 / 0.93.
ORIGIN_STEP = 3


def origins(history: pd.DataFrame, *, horizon: int = 7) -> list[dt.date]:
    """Every ORIGIN_STEP-th day from four weeks after the history starts (the default's first origin)
    to ``horizon`` days before it ends."""
    first, last = history["day"].min(), history["day"].max()
    return [first + dt.timedelta(days=d) for d in range(27, (last - first).days - horizon + 1, ORIGIN_STEP)]


def truth_line_days(plant) -> pd.DataFrame:
    """Good and produced per line and production day from the ground truth (worked days only)."""
    o = plant.truth.oee
    line = plant.tables["machines"].set_index("machine_id")["line"]
    t = o.assign(line=o["machine_id"].map(line), day=pd.to_datetime(o["shift_date"]).dt.date)
    return t.groupby(["line", "day"], as_index=False)[["good", "produced"]].sum()


@pytest.fixture(scope="module")
def runs() -> dict[int, dict]:
    out = {}
    for seed in SEEDS:
        # one cycle event per part, as a real plant reports them (+1.5 s a plant over minute counts)
        plant = simulate_plant(PlantConfig(seed=seed, n_machines=12, n_lines=3, days=DAYS, telemetry=False,
                                           cycle_events=True))
        history, planned = yf.from_tables(plant.tables, tz=plant.config.timezone)
        out[seed] = {"plant": plant, "history": history, "planned": planned, "truth": truth_line_days(plant),
                     "backtest": yf.backtest(history, planned=planned, origins=origins(history))}
    return out


def scored(run: dict) -> pd.DataFrame:
    """Backtest rows with the truth as the actual (0 on days the truth has no shifts)."""
    f = run["backtest"].forecasts
    t = run["truth"].rename(columns={"good": "truth_good", "produced": "truth_produced"})
    s = f.merge(t, on=["line", "day"], how="left")
    s[["truth_good", "truth_produced"]] = s[["truth_good", "truth_produced"]].fillna(0.0)
    s["truth_yield"] = np.where(s["truth_produced"] > 0, s["truth_good"] / s["truth_produced"].where(
        s["truth_produced"] > 0), np.nan)
    # scheduled line-days the pipeline saw no data for are not scored (missing, not zero output)
    return s[s["actual_produced"].notna()]


def mase(s: pd.DataFrame, target: str, column: str | None = None) -> float:
    col = column or target
    ok = s["truth_" + target].notna() & s[col].notna() & s["naive_" + target].notna()
    a = s.loc[ok, "truth_" + target]
    return float((a - s.loc[ok, col]).abs().mean() / (a - s.loc[ok, "naive_" + target]).abs().mean())


def coverage(s: pd.DataFrame, target: str) -> tuple[float, int]:
    c = s[s["scheduled"] & s[target + "_low"].notna() & s["truth_" + target].notna()]
    inside = (c["truth_" + target] >= c[target + "_low"] - 1e-9) & (c["truth_" + target] <= c[target + "_high"] + 1e-9)
    return float(inside.mean()), len(c)


def test_the_pipeline_history_is_the_truth(runs):
    for seed, run in runs.items():
        h = run["history"].merge(run["truth"], on=["line", "day"], how="left", suffixes=("", "_truth"))
        worked = h["produced_truth"].notna()
        assert worked.sum() == len(run["truth"]), seed  # every worked line-day of the truth is in the history
        assert (h.loc[worked, "good"] == h.loc[worked, "good_truth"]).all(), seed
        assert (h.loc[worked, "produced"] == h.loc[worked, "produced_truth"]).all(), seed
        assert (h.loc[~worked, "produced"] == 0).all(), seed  # weekends: nothing made, nothing counted


def test_mase_below_one_against_the_truth(runs):
    print()
    pooled = []
    for seed, run in runs.items():
        s = scored(run)
        pooled.append(s)
        lines = {line: round(mase(g, "good"), 3) for line, g in s.groupby("line")}
        print(f"seed {seed}: good MASE {mase(s, 'good'):.3f} (Prophet only {mase(s, 'good', 'good_prophet'):.3f}), "
              f"per line {lines}; yield MASE {mase(s, 'yield'):.3f} (Prophet only "
              f"{mase(s, 'yield', 'yield_prophet'):.3f}); produced MASE {mase(s, 'produced'):.3f}; "
              f"Hyndman good {run['backtest'].value('mase_hyndman'):.3f}; "
              f"{len(run['backtest'].origins)} origins")
        assert mase(s, "good") < 1.0, seed
        assert mase(s, "yield") < 1.0, seed
        # the pipeline's own metric agrees with the truth-scored one (its actuals are the truth)
        assert run["backtest"].value("mase") == pytest.approx(mase(s, "good"), rel=1e-9)
    s = pd.concat(pooled)
    gbm, prophet = mase(s, "good"), mase(s, "good", "good_prophet")
    ygbm, yprophet = mase(s, "yield"), mase(s, "yield", "yield_prophet")
    print(f"pooled: good MASE {gbm:.3f} with the boosted residual, {prophet:.3f} Prophet only; "
          f"yield {ygbm:.3f} vs {yprophet:.3f}")
    assert gbm < 0.8
    # the residual stage is kept only because it does not make the forecast worse
    assert gbm <= prophet + 0.01
    assert ygbm <= yprophet + 0.01


def test_interval_coverage_near_nominal(runs):
    print()
    pooled = []
    for seed, run in runs.items():
        s = scored(run)
        pooled.append(s)
        cov = {k: coverage(s, k) for k in yf.TARGETS}
        print(f"seed {seed}: coverage of the {NOMINAL:.0%} intervals " +
              ", ".join(f"{k} {c:.3f} (n={n})" for k, (c, n) in cov.items()))
        for k, (c, n) in cov.items():
            assert n >= 200, (seed, k)
            assert 0.6 <= c <= 0.97, (seed, k, c)
    s = pd.concat(pooled)
    for k in yf.TARGETS:
        c, n = coverage(s, k)
        print(f"pooled {k}: {c:.3f} of {n}")
        assert 0.7 <= c <= 0.92, (k, c)


def test_a_real_week_ahead_forecast(runs):
    """Fit on the first 12 weeks (tables cut at the origin, the published calendar kept), forecast
    the 13th and score it against the truth."""
    run = runs[SEEDS[0]]
    plant = run["plant"]
    tz = plant.config.timezone
    origin = plant.config.start + dt.timedelta(days=DAYS - 10)  # Friday: the last full week follows
    assert origin.weekday() == 4
    cut = pd.Timestamp(dt.datetime.combine(origin + dt.timedelta(days=1), dt.time(6), tzinfo=ZoneInfo(tz)))
    tables = dict(plant.tables)
    tables["production_events"] = tables["production_events"][tables["production_events"]["time"] <= cut]
    tables["work_orders"] = tables["work_orders"][tables["work_orders"]["released_at"] <= cut]
    history, planned = yf.from_tables(tables, tz=tz)
    fc = yf.YieldForecaster(random_state=0).fit(history, planned).predict()
    t = fc.table.merge(run["truth"], on=["line", "day"], how="left", suffixes=("", "_truth")).fillna(
        {"good_truth": 0, "produced_truth": 0})
    weekend = pd.to_datetime(t["day"]).dt.day_of_week >= 5
    assert (t.loc[weekend, ["good", "good_low", "good_high"]] == 0).all().all()
    assert not t.loc[weekend, "scheduled"].any()
    worked = t["scheduled"]
    err = (t.loc[worked, "good"] - t.loc[worked, "good_truth"]).abs()
    naive = run["history"].assign(day=lambda h: h["day"] + dt.timedelta(days=7))
    t = t.merge(naive.rename(columns={"good": "naive_good", "produced": "naive_produced"}), on=["line", "day"])
    naive_err = (t.loc[t["scheduled"], "naive_good"] - t.loc[t["scheduled"], "good_truth"]).abs()
    inside = ((t["good_truth"] >= t["good_low"]) & (t["good_truth"] <= t["good_high"]))[t["scheduled"]]
    print(f"\nweek after {origin}: good MAE {err.mean():.0f} parts/line-day vs seasonal naive "
          f"{naive_err.mean():.0f}; {inside.mean():.0%} of {inside.size} truths inside the intervals; "
          f"calibration MASE {fc.mase:.3f}")
    print(fc.table[["line", "day", "good", "good_low", "good_high", "yield"]].round(3).to_string())
    print("\n".join(yf.recommendations(fc, target_yield=0.98)))
    assert err.mean() < naive_err.mean()
    assert inside.mean() >= 0.5
    assert fc.mase < 1.0
    # Good parts are at most the parts produced: the good range never reaches above the produced one.
    on = fc.table[fc.table["scheduled"]]
    assert (on["good_high"] <= on["produced_high"] + 1e-9).all(), on[["line", "day", "good_high", "produced_high"]]
