"""Yield forecast: small exact cases on a hand-built plant, leakage, errors and recommendations.

The hand-built plant has one shift (06:00-14:00 Chicago) on weekdays, one machine per line and one
count event per machine and day, so every daily figure is known by construction:
produced = 400 + 20 x weekday + 5 x week, rejects = 8 + weekday (weekday 0 = Monday).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from workbench.errors import MLError
from workbench.ml import forecast as yf
from workbench.simulate import PlantConfig, simulate_plant

TZ = "America/Chicago"
START = dt.date(2026, 4, 6)  # a Monday, clear of the DST changes


def _at(day: dt.date, hour: int) -> pd.Timestamp:
    return pd.Timestamp(dt.datetime.combine(day, dt.time(hour), tzinfo=ZoneInfo(TZ))).tz_convert("UTC")


def produced_on(day: dt.date) -> int:
    return 400 + 20 * day.weekday() + 5 * ((day - START).days // 7)


def rejects_on(day: dt.date) -> int:
    return 8 + day.weekday()


def hand_plant(*, days: int = 35, plan_days: int = 49, off: tuple[dt.date, ...] = (),
               missing: tuple[dt.date, ...] = (), idle_line: bool = False,
               l2_from: int = 0) -> dict[str, pd.DataFrame]:
    """Tables of a two-line plant: L1 (M1) and L2 (M2; no production at all when ``idle_line``).

    ``off``: weekdays without shifts in the calendar (holidays); ``missing``: scheduled days whose
    events were lost (no data); ``l2_from``: the first day L2 produces (a new line). The calendar runs ``plan_days`` days: beyond the history it is
    the published plan.
    """
    machines = pd.DataFrame({"machine_id": ["M1", "M2"], "line": ["L1", "L2"], "site": "S",
                             "ideal_cycle_time_s": [30.0, 30.0]})
    cal, events = [], []
    for k in range(plan_days):
        day = START + dt.timedelta(days=k)
        if day.weekday() >= 5 or day in off:
            continue
        cal.append({"site": "S", "shift_date": day, "shift": "A", "time_start": _at(day, 6),
                    "time_end": _at(day, 14)})
        if k >= days or day in missing:
            continue
        for m in ("M1", "M2"):
            if m == "M2" and (idle_line or k < l2_from):
                continue
            p, r = produced_on(day), rejects_on(day)
            events.append({"time": _at(day, 10), "machine_id": m, "part_number": "P1",
                           "work_order": f"WO-{m}-{k:03d}", "good_count": p - r, "reject_count": r})
    return {"machines": machines, "shift_calendar": pd.DataFrame(cal),
            "production_events": pd.DataFrame(events), "planned_stops": pd.DataFrame(),
            "part_rates": pd.DataFrame({"machine_id": ["M1", "M2"], "part_number": "P1",
                                        "ideal_cycle_time_s": [30.0, 30.0]})}


@pytest.fixture(scope="module")
def hand() -> tuple[pd.DataFrame, yf.PlannedWork]:
    return yf.from_tables(hand_plant(missing=(dt.date(2026, 4, 29),)), tz=TZ)


# ---------------------------------------------------------------------------------------------
# history


def test_daily_history_counts_every_day_with_weekends_at_zero(hand):
    history, _ = hand
    l1 = history[history["line"] == "L1"].set_index("day")
    # from the first to the last day with production (Friday 05-08; the weekend after it has none)
    assert l1.index.min() == START and l1.index.max() == START + dt.timedelta(days=32)
    monday = START + dt.timedelta(days=7)
    assert l1.loc[monday, "produced"] == 405 and l1.loc[monday, "good"] == 405 - 8
    assert l1.loc[START + dt.timedelta(days=5), "produced"] == 0  # a Saturday
    assert l1.loc[dt.date(2026, 4, 29), "produced"] == 0  # the lost Wednesday


def test_history_matches_the_standalone_function():
    tables = hand_plant()
    alone = yf.daily_history(tables["production_events"], machines=tables["machines"],
                            shift_calendar=tables["shift_calendar"], part_rates=tables["part_rates"], tz=TZ)
    pd.testing.assert_frame_equal(alone, yf.from_tables(tables, tz=TZ)[0])


def test_planned_busy_minutes_subtract_planned_stops():
    tables = hand_plant()
    day = START + dt.timedelta(days=2)
    tables["planned_stops"] = pd.DataFrame({
        "site": ["S", "S", "S"], "line": ["L1", None, None], "machine_id": [None, "M2", "M2"],
        "time_start": [_at(day, 9), _at(day, 6), _at(day, 7)], "time_end": [_at(day, 10), _at(day, 8), _at(day, 9)],
        "kind": ["break", "maintenance", "maintenance"]})
    _, planned = yf.from_tables(tables, tz=TZ)
    md = planned.machine_days.set_index(["machine_id", "day"])
    ts = pd.Timestamp(day)
    assert md.loc[("M1", ts), "planned_busy_min"] == 480 - 60
    # two overlapping PM windows 06-08 and 07-09 are three hours, not four
    assert md.loc[("M2", ts), "pm_min"] == 180 and md.loc[("M2", ts), "planned_busy_min"] == 300


# ---------------------------------------------------------------------------------------------
# seasonal naive, MASE and Hyndman's MASE on the hand-built series


@pytest.fixture(scope="module")
def hand_backtest(hand) -> yf.BacktestResult:
    history, planned = hand
    # Origin Friday 2026-04-24 (day 18): the forecast week contains the lost Wednesday 04-29.
    return yf.backtest(history, planned=planned, origins=[dt.date(2026, 4, 24)], horizon=7,
                      forecaster=yf.YieldForecaster(use_gbm=False))


def test_seasonal_naive_is_the_same_weekday_last_week(hand_backtest):
    f = hand_backtest.forecasts
    l1 = f[f["line"] == "L1"].set_index("day")
    monday = dt.date(2026, 4, 27)
    assert l1.loc[monday, "naive_produced"] == produced_on(monday - dt.timedelta(days=7)) == 410
    assert l1.loc[monday, "naive_good"] == 410 - 8
    assert l1.loc[monday, "naive_yield"] == pytest.approx(402 / 410)
    assert l1.loc[dt.date(2026, 4, 25), "naive_produced"] == 0  # Saturday: last Saturday's 0
    # the lost Wednesday is not scored
    assert np.isnan(l1.loc[dt.date(2026, 4, 29), "actual_produced"])


def test_seasonal_naive_skips_a_missing_week():
    tables = hand_plant(missing=(dt.date(2026, 4, 22),))
    history, planned = yf.from_tables(tables, tz=TZ)
    bt = yf.backtest(history, planned=planned, origins=[dt.date(2026, 4, 24)], horizon=7,
                    forecaster=yf.YieldForecaster(use_gbm=False))
    l1 = bt.forecasts[bt.forecasts["line"] == "L1"].set_index("day")
    # Wednesday 04-29: last Wednesday (04-22) was lost, so the one before (04-15, week 1)
    assert l1.loc[dt.date(2026, 4, 29), "naive_produced"] == produced_on(dt.date(2026, 4, 15)) == 445


def test_mase_by_hand(hand_backtest):
    f = hand_backtest.forecasts
    s = f[(f["line"] == "L1") & f["actual_good"].notna()]
    # Forecast week Mon 04-27 .. Fri 05-01 minus the lost Wednesday, plus the weekend (0 = 0).
    assert len(s) == 6
    # Every weekday grows by 5 parts a week, so the naive misses by exactly 5 on each weekday.
    naive_err = (s["actual_good"] - s["naive_good"]).abs().to_numpy()
    np.testing.assert_allclose(np.sort(naive_err), [0, 0, 5, 5, 5, 5])
    mae_naive = 20 / 6
    mae_model = (s["actual_good"] - s["good"]).abs().mean()
    assert hand_backtest.value("mae_naive", line="L1") == pytest.approx(mae_naive)
    assert hand_backtest.value("mase", line="L1") == pytest.approx(mae_model / mae_naive)
    # Hyndman: in-sample |y_t - y_{t-7}| up to the origin 04-24 (day 18): the 12 pairs t = 7..18,
    # 10 weekday pairs off by 5 and 2 weekend pairs of 0 (the lost 04-29 is after the origin).
    scale = 50 / 12
    assert s["scale_good"].iloc[0] == pytest.approx(scale)
    assert hand_backtest.value("mase_hyndman", line="L1") == pytest.approx(
        ((s["actual_good"] - s["good"]).abs() / scale).mean())
    assert hand_backtest.value("mase_hyndman_naive", line="L1") == pytest.approx((20 / 6) / scale)


def test_r2_is_scikit_learns_over_the_scheduled_line_days(hand_backtest):
    from sklearn.metrics import r2_score

    f = hand_backtest.forecasts
    s = f[(f["line"] == "L1") & f["actual_good"].notna() & f["scheduled"]]
    assert len(s) == 4  # the weekdays of the forecast week but the lost Wednesday; days off are not scored
    assert hand_backtest.value("r2", line="L1") == pytest.approx(r2_score(s["actual_good"], s["good"]))
    pooled = f[f["actual_good"].notna() & f["scheduled"]]
    assert hand_backtest.value("r2") == pytest.approx(r2_score(pooled["actual_good"], pooled["good"]))


def test_model_beats_naive_on_a_trend(hand_backtest):
    # The series is a clean weekly pattern plus a trend: Prophet must find it; the naive lags a week.
    assert hand_backtest.value("mase", line="L1") < 0.5


def test_conformal_quantiles_by_hand():
    r = np.arange(-4.0, 5.0)  # n = 9: (n + 1) x 0.1 = 1st smallest, (n + 1) x 0.9 = 9th smallest
    assert yf._conformal(r, 0.8) == (-4.0, 4.0)
    # an interval always contains its forecast: residuals all above 0 still give a lower bound of 0
    assert yf._conformal(np.arange(1.0, 10.0), 0.8) == (0.0, 9.0)
    r = np.arange(-9.0, 10.0)  # n = 19 around 0: the 2nd and 18th, -8 and 8
    assert yf._conformal(r, 0.8) == (-8.0, 8.0)
    assert yf._conformal(r, 0.5) == (-5.0, 5.0)


# ---------------------------------------------------------------------------------------------
# the estimator: weekends and holidays, contract


@pytest.fixture(scope="module")
def hand_fit():
    # History Mon 04-06 .. Fri 05-08 (33 days); Wednesday 05-13 is a holiday in the published plan.
    tables = hand_plant(days=33, off=(dt.date(2026, 5, 13),))
    history, planned = yf.from_tables(tables, tz=TZ)
    est = yf.YieldForecaster(calibration_origins=2).fit(history, planned)
    return est, est.predict()


def test_not_scheduled_days_are_forecast_as_zero(hand_fit):
    _, fc = hand_fit
    t = fc.table.set_index(["line", "day"])
    assert fc.origin == dt.date(2026, 5, 8)
    for day in (dt.date(2026, 5, 9), dt.date(2026, 5, 10), dt.date(2026, 5, 13)):  # Sat, Sun, holiday
        row = t.loc[("L1", day)]
        assert not row["scheduled"]
        assert row["good"] == row["good_low"] == row["good_high"] == row["produced"] == 0
        assert np.isnan(row["yield"])
    monday = t.loc[("L1", dt.date(2026, 5, 11))]
    assert monday["scheduled"] and monday["good_low"] <= monday["good"] <= monday["good_high"]
    # a clean series: Monday of week 5 is 400 + 25 = 425 parts, 417 good
    assert monday["produced"] == pytest.approx(425, abs=15)
    assert 0 <= monday["yield_low"] <= monday["yield"] <= monday["yield_high"] <= 1


def test_the_good_parts_range_never_exceeds_the_produced_range(hand_fit):
    # Good parts are at most the parts produced, so the good range stops where the produced one
    # does (the two are calibrated separately; nothing else would keep them in order).
    _, fc = hand_fit
    t = fc.table[fc.table["scheduled"]]
    assert (t["good_high"] <= t["produced_high"] + 1e-9).all(), t[["good_high", "produced_high"]]
    assert (t["good_low"] <= t["good"]).all() and (t["good"] <= t["good_high"]).all()
    assert (t["good"] <= t["produced"] + 1e-9).all()
    # Where the two calibrations disagree (the demo plant: every line-day), by hand: good 95 ± 30 %
    # and produced 100 ± 10 % give good up to 110, not 123.5.
    frame = pd.DataFrame({"scheduled": [True], "good": [95.0], "produced": [100.0], "yield": [0.95],
                          "spread_good": [0.3], "spread_produced": [0.1], "spread_yield": [0.02]})
    out = yf._apply_intervals(frame, {"good": (-1.0, 1.0), "produced": (-1.0, 1.0), "yield": (-1.0, 1.0)})
    assert out["good_high"].iloc[0] == pytest.approx(110.0) and out["produced_high"].iloc[0] == pytest.approx(110.0)
    assert out["good_low"].iloc[0] == pytest.approx(66.5)


def test_estimator_contract(hand_fit):
    est, fc = hand_fit
    params = est.get_params()
    assert params["calibration_origins"] == 2 and params["horizon"] == 7
    assert clone(est).get_params() == params
    assert not hasattr(clone(est), "core_")
    assert fc.training_range == (START, dt.date(2026, 5, 8))
    assert set(fc.table.columns) >= {"line", "day", "good", "good_low", "good_high", "produced", "yield",
                                     "yield_low", "yield_high"}
    assert dataclasses.is_dataclass(fc) and fc.interval == 0.8
    with pytest.raises(dataclasses.FrozenInstanceError):
        fc.origin = dt.date(2026, 1, 1)  # type: ignore[misc]
    assert len(est.predict(3).table) == 2 * 3
    with pytest.raises(MLError, match="horizon must be 1 to 7"):
        est.predict(8)


# ---------------------------------------------------------------------------------------------
# bad input


def test_too_little_history_says_how_many_days():
    history, planned = yf.from_tables(hand_plant(days=18), tz=TZ)
    with pytest.raises(MLError, match=r"at least 21 days of history.*got 1[78]"):
        yf.YieldForecaster().fit(history, planned)


def test_a_line_without_production_is_skipped(hand_fit):
    tables = hand_plant(days=33, idle_line=True)
    history, planned = yf.from_tables(tables, tz=TZ)
    fc = yf.YieldForecaster(calibration_origins=1).fit(history, planned).predict()
    assert fc.skipped == {"L2": "no production in the history"}
    assert set(fc.table["line"]) == {"L1"}


def test_a_new_line_with_few_days_is_skipped():
    # L2 starts on day 28 of 33: five worked days, fewer than the 8 a line needs
    history, planned = yf.from_tables(hand_plant(days=33, l2_from=28), tz=TZ)
    fc = yf.YieldForecaster(calibration_origins=1).fit(history, planned).predict()
    assert fc.skipped == {"L2": "fewer than 8 worked days with data"}
    assert set(fc.table["line"]) == {"L1"}


def test_no_production_at_all_is_an_error():
    history, planned = yf.from_tables(hand_plant(), tz=TZ)
    with pytest.raises(MLError, match="no line has any production"):
        yf.YieldForecaster().fit(history.assign(good=0, produced=0), planned)


def test_gaps_are_missing_data_and_said_so(hand):
    history, planned = hand
    g = yf._grid(history, planned, horizon=7)
    assert any("2 scheduled line-day(s) without any production" in n for n in g.notes)  # L1 and L2
    li, d = g.lines.index("L1"), g.days.get_loc(pd.Timestamp(2026, 4, 29))
    assert not g.ok_l[li, d]
    # a history without the weekend rows at all means the same (rows absent = nothing produced)
    weekdays = history[pd.to_datetime(history["day"]).dt.day_of_week < 5]
    g2 = yf._grid(weekdays, planned, horizon=7)
    np.testing.assert_array_equal(g.ok_l, g2.ok_l)


@pytest.mark.parametrize(("change", "message"), [
    (lambda h: h.assign(good=h["good"].astype(object).where(h.index != 3, "lots")), "history.good is not numeric at row 3"),
    (lambda h: pd.concat([h, h.iloc[[5]]]), "twice"),
    (lambda h: h.assign(good=h["produced"] + 1), "good > produced"),
    (lambda h: h.assign(produced=-h["produced"]), "negative"),
    (lambda h: h.drop(columns=["good"]), "lacks column"),
    (lambda h: h.assign(line=h["line"].replace("L2", "L9")), "without machines"),
])
def test_bad_history(hand, change, message):
    history, planned = hand
    with pytest.raises(MLError, match=message):
        yf.YieldForecaster().fit(change(history), planned)


def test_other_misuse(hand):
    history, planned = hand
    with pytest.raises(MLError, match="before predict"):
        yf.YieldForecaster().predict()
    with pytest.raises(MLError, match="PlannedWork"):
        yf.YieldForecaster().fit(history, planned.machine_days)  # type: ignore[arg-type]
    with pytest.raises(MLError, match="interval"):
        yf.YieldForecaster(interval=1.5).fit(history, planned)
    with pytest.raises(MLError, match="fewer than 14 days"):
        yf.backtest(history, planned=planned, origins=[START + dt.timedelta(days=5)])
    with pytest.raises(MLError, match="not a history day"):
        yf.backtest(history, planned=planned, origins=[dt.date(2027, 1, 1)])
    tables = hand_plant()
    with pytest.raises(MLError, match="not in machines"):
        yf.from_tables({**tables, "machines": tables["machines"].iloc[:1]}, tz=TZ)
    with pytest.raises(MLError, match="shift_calendar is empty"):
        yf.from_tables({**tables, "shift_calendar": tables["shift_calendar"].iloc[:0]}, tz=TZ)


# ---------------------------------------------------------------------------------------------
# leakage: the planned-work features at origin T do not change when data after T is appended


def test_features_at_origin_ignore_everything_after_it():
    plant = simulate_plant(PlantConfig(seed=4, n_machines=6, n_lines=2, days=35, telemetry=False,
                                       cycle_events=False))
    tables, tz = plant.tables, plant.config.timezone
    origin = plant.config.start + dt.timedelta(days=24)  # a Thursday
    cut = pd.Timestamp(dt.datetime.combine(origin + dt.timedelta(days=1), dt.time(6), tzinfo=ZoneInfo(tz)))
    known = dict(tables)
    known["production_events"] = tables["production_events"][tables["production_events"]["time"] <= cut]
    wo = tables["work_orders"]
    wo = wo[wo["released_at"] <= cut].copy()
    # what the ERP says at the end of the data must not matter either
    wo["completed_qty"], wo["scrap_qty"], wo["status"] = 0, 0, "released"
    known["work_orders"] = wo
    full_history, full_planned = yf.from_tables(tables, tz=tz)
    cut_history, cut_planned = yf.from_tables(known, tz=tz)
    assert cut_history["day"].max() == origin < full_history["day"].max()
    at_cut = yf.features_at(cut_history, cut_planned, origin=origin)
    at_full = yf.features_at(full_history, full_planned, origin=origin)
    pd.testing.assert_frame_equal(at_cut, at_full)
    # The check can fail: orders released after the origin, if they were known, change the features.
    early = tables["work_orders"].copy()
    later = early["released_at"] > cut
    assert later.any()
    early.loc[later, "released_at"] = cut - pd.Timedelta(hours=1)
    _, leaky = yf.from_tables({**tables, "work_orders": early}, tz=tz)
    leaked = yf.features_at(full_history, leaky, origin=origin)
    assert not leaked[["known_share", "plan_ratio", "due_orders"]].equals(
        at_full[["known_share", "plan_ratio", "due_orders"]])


# ---------------------------------------------------------------------------------------------
# recommendations


def _with_mase(fc: yf.YieldForecast, *, good: float, yld: float) -> yf.YieldForecast:
    m = fc.calibration.metrics.copy()
    all_rows = m["line"] == "all"
    m.loc[all_rows & (m["target"] == "good"), "mase"] = good
    m.loc[all_rows & (m["target"] == "yield"), "mase"] = yld
    return dataclasses.replace(fc, calibration=dataclasses.replace(fc.calibration, metrics=m))


def test_recommendations_say_nothing_when_not_better_than_last_week(hand_fit):
    _, fc = hand_fit
    bad = _with_mase(fc, good=1.0, yld=1.3)
    assert yf.recommendations(bad, target_yield=0.999) == [yf.NOT_SHOWN]
    half = _with_mase(fc, good=0.5, yld=1.3)
    assert yf.recommendations(half, target_yield=0.999) == ["yield " + yf.NOT_SHOWN]


def test_recommendations_below_target_with_and_without_reason(hand_fit):
    _, fc = hand_fit
    good = _with_mase(fc, good=0.5, yld=0.5)
    assert yf.recommendations(good, target_yield=0.5) == []
    no_reason = dataclasses.replace(good, contributions=good.contributions.iloc[:0])
    text = yf.recommendations(no_reason, target_yield=0.999)
    # scheduled days only: 4 weekdays (Wednesday is a holiday) x 2 lines
    assert len(text) == 8
    first = text[0]
    assert first.startswith("line L1 yield forecast ") and "below target 99.9 % on Monday 2026-05-11" in first
    assert "(interval " in first
    # the hand-built yield is below 99.9 % as a rule, and that is the only reason stated: the yield of
    # the 14 days up to the origin (10 working days)
    window = [dt.date(2026, 5, 8) - dt.timedelta(days=k) for k in range(14)]
    window = [d for d in window if d.weekday() < 5]
    recent = sum(produced_on(d) - rejects_on(d) for d in window) / sum(produced_on(d) for d in window)
    assert first.endswith(f"below target 99.9 % on Monday 2026-05-11: yield over the last 14 days was "
                          f"{100 * recent:.1f} %")
    # a boosted-residual feature that pushed the forecast down by enough is named with its data
    row = fc.table[fc.table["scheduled"]].iloc[0]
    push = pd.DataFrame({"line": ["L1"], "day": [row["day"]], "target": ["yield"],
                         "feature": ["last_yield_dev"], "value": [-0.05], "contribution": [-0.05]})
    named = yf.recommendations(dataclasses.replace(good, contributions=push), target_yield=0.999)
    assert "yield was " in named[0] and "on Friday 2026-05-08" in named[0]
    tiny = push.assign(contribution=-1e-6)
    plain = yf.recommendations(dataclasses.replace(good, contributions=tiny), target_yield=0.999)
    assert "yield was " not in plain[0]


def test_output_recommendations_name_planned_stops(hand_fit):
    _, fc = hand_fit
    good = _with_mase(fc, good=0.5, yld=0.5)
    feats = good.features.copy()
    monday = dt.date(2026, 5, 11)
    sel = (feats["line"] == "L1") & (feats["day"] == monday)
    feats.loc[sel, "pm_min"], feats.loc[sel, "pm_machines"] = 90.0, "M1"
    text = yf.recommendations(dataclasses.replace(good, features=feats), target_yield=0.0,
                             target_good={"L1": 10_000})
    assert len(text) == 4
    assert text[0].startswith("line L1 good output forecast ") and "below target 10 000 on Monday" in text[0]
    assert text[0].endswith("planned maintenance on M1 (90 min)")
    assert ":" not in text[1].split("2026-05-12")[1]
