"""Reliability: MTBF/MTTR on a hand-computed downtime table, Weibull MLE against published fits.

Published Weibull fits used below
---------------------------------
[REL-1] Python ``reliability`` package documentation, "Fitting a specific distribution to data",
        30 complete failure times ("made using Weibull_Distribution(alpha=50, beta=3)"):
        Alpha 51.858 (SE 3.55628, 95 % CI 45.3359 – 59.3183), Beta 2.80086 (SE 0.41411,
        95 % CI 2.09624 – 3.74233), log-likelihood −129.063.
[REL-2] Python ``reliability`` package documentation, Datasets: ``automotive`` (10 failures,
        21 right-censored): Alpha 134651 (SE 42767.3, 95 % CI 72252.9 – 250937), Beta 1.15443
        (SE 0.29614, 95 % CI 0.698249 – 1.90863), log-likelihood −128.974; point estimate of
        the reliability at 100 000 miles 49.20 %.
[NAG]   NAG Library, g07be (estim_weibull) example, 20 complete observations: shape
        γ = 2.7870 (SE 0.4273), β = log λ = −2.1073 (SE 0.4627) with f = λγx^(γ−1)exp(−λx^γ), so
        scale η = λ^(−1/γ).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.errors import ReliabilityError
from workbench.reliability import (
    NOT_SCHEDULED,
    fit_weibull,
    fit_weibull_tbf,
    mtbf_mttr,
    times_between_failures,
    unscheduled_stops,
)

DAY = pd.Timestamp("2026-03-02 00:00", tz="UTC")
END = DAY + pd.Timedelta(hours=24)


def _t(hours: float) -> pd.Timestamp:
    return DAY + pd.Timedelta(hours=hours)


def _stops() -> pd.DataFrame:
    rows = [
        # M1: four failures, a changeover and a PM
        ("M1", 2, 3, "Mechanical Failure", False),
        ("M1", 5, 5.5, "Changeover", False),
        ("M1", 8, 8 + 20 / 60, "Electrical Failure", False),
        ("M1", 12, 13, "Scheduled Maintenance", True),
        ("M1", 15, 15 + 40 / 60, "Mechanical Failure", False),
        ("M1", 22, 22 + 10 / 60, None, None),                    # blank code: uncategorised failure
        # M2: stops straddling both ends of the window are clipped
        ("M2", -1, 1, "Tooling", False),
        ("M2", 23.5, 24.5, "Material", False),
    ]
    df = pd.DataFrame(rows, columns=["machine_id", "h0", "h1", "reason_category", "planned"])
    df["time_start"] = df["h0"].map(_t)
    df["time_end"] = df["h1"].map(_t)
    df["duration_min"] = (df["h1"] - df["h0"]) * 60
    return df.drop(columns=["h0", "h1"])


def test_mtbf_mttr_hand_computed() -> None:
    out = mtbf_mttr(_stops(), start=DAY, end=END, machines=["M3"]).set_index("machine_id")
    # M1: downtime 60+30+20+60+40+10 = 220 min → uptime 1220 min; failures 4 (changeover and
    # planned PM excluded, blank code included); MTTR (60+20+40+10)/4 = 32.5 min.
    m1 = out.loc["M1"]
    assert m1["failures"] == 4
    assert m1["uptime_h"] == pytest.approx(1220 / 60)
    assert m1["mtbf_h"] == pytest.approx(1220 / 60 / 4)
    assert m1["mttr_min"] == pytest.approx(32.5)
    assert m1["failure_downtime_h"] == pytest.approx(130 / 60)
    assert m1["censored_h"] == pytest.approx(110 / 60)           # 22:10 → 24:00
    # M2: 60 + 30 min inside the window; uptime 1350 min; ends in a failure, so nothing censored
    m2 = out.loc["M2"]
    assert (m2["failures"], m2["mtbf_h"], m2["mttr_min"], m2["censored_h"]) == (
        2, pytest.approx(22.5 / 2), pytest.approx(45.0), pytest.approx(0.0))
    # M3: no stops at all
    m3 = out.loc["M3"]
    assert m3["failures"] == 0 and math.isnan(m3["mtbf_h"]) and m3["censored_h"] == pytest.approx(24)


def test_mtbf_by_category_and_chosen_categories() -> None:
    out = mtbf_mttr(_stops(), start=DAY, end=END, by_category=True)
    m1 = out[out["machine_id"] == "M1"].set_index("category")
    assert sorted(m1.index) == ["(uncategorised)", "Electrical Failure", "Mechanical Failure"]
    assert m1.loc["Mechanical Failure", "failures"] == 2
    assert m1.loc["Mechanical Failure", "mtbf_h"] == pytest.approx(1220 / 60 / 2)
    assert m1.loc["Mechanical Failure", "mttr_min"] == pytest.approx(50.0)
    only = mtbf_mttr(_stops(), start=DAY, end=END, categories=["Mechanical Failure"]).set_index("machine_id")
    assert only.loc["M1", "failures"] == 2
    assert only.loc["M1", "censored_h"] == pytest.approx(490 / 60)   # 15:40 → 24:00 less 10 min stop
    assert only.loc["M2", "failures"] == 0


def test_windows_per_machine_and_unscheduled_time() -> None:
    windows = pd.DataFrame({"machine_id": ["M1", "M2"], "start": [DAY, DAY],
                            "end": [_t(12), END]})
    out = mtbf_mttr(_stops(), windows=windows, unscheduled={"M2": 60}).set_index("machine_id")
    # M1 until 12:00: stops 60 + 30 + 20 → uptime 610 min, 2 failures
    assert out.loc["M1", "failures"] == 2
    assert out.loc["M1", "uptime_h"] == pytest.approx(610 / 60)
    assert out.loc["M2", "uptime_h"] == pytest.approx((1350 - 60) / 60)


def test_times_between_failures() -> None:
    tbf = times_between_failures(_stops(), start=DAY, end=END)
    m1 = tbf[tbf["machine_id"] == "M1"]
    # 03:00→08:00 less the changeover; 08:20→15:00 less the PM; 15:40→22:00; 22:10→24:00 open
    assert m1["time_h"].tolist() == pytest.approx([270 / 60, 340 / 60, 380 / 60, 110 / 60])
    assert m1["censored"].tolist() == [False, False, False, True]
    with_first = times_between_failures(_stops(), start=DAY, end=END, include_first=True)
    first = with_first[with_first["machine_id"] == "M1"].iloc[0]
    assert first["time_h"] == pytest.approx(2.0) and not first["censored"]
    fit = fit_weibull_tbf(tbf, machine="M1")
    assert fit.n_failures == 3 and fit.n_censored == 1


# --- Weibull against published fits ---------------------------------------------------------

REL1 = [58, 75, 36, 52, 63, 65, 22, 17, 28, 64, 23, 40, 73, 45, 52, 36, 52, 60, 13, 55, 82,
        55, 34, 57, 23, 42, 66, 35, 34, 25]
AUTO_F = [5248, 7454, 16890, 17200, 38700, 45000, 49390, 69040, 72280, 131900]
AUTO_C = [3961, 4007, 4734, 6054, 7298, 10190, 23060, 27160, 28690, 37100, 40060, 45670, 53000,
          67000, 69630, 77350, 78470, 91680, 105700, 106300, 150400]
NAG = [1.1, 1.4, 1.3, 1.7, 1.9, 1.8, 1.6, 2.2, 1.7, 2.7, 4.1, 1.8, 1.5, 1.2, 1.4, 3.0, 1.7, 2.3,
       1.6, 2.0]


def test_weibull_complete_data_reliability_docs() -> None:
    fit = fit_weibull(REL1)                                               # [REL-1]
    assert fit.scale == pytest.approx(51.858, abs=5e-4)
    assert fit.scale_se == pytest.approx(3.55628, abs=5e-5)
    assert fit.scale_ci == pytest.approx((45.3359, 59.3183), abs=5e-4)
    assert fit.shape == pytest.approx(2.80086, abs=5e-6)
    assert fit.shape_se == pytest.approx(0.41411, abs=5e-6)
    assert fit.shape_ci == pytest.approx((2.09624, 3.74233), abs=5e-6)
    assert fit.log_likelihood == pytest.approx(-129.063, abs=5e-4)
    assert (fit.n_failures, fit.n_censored) == (30, 0)


def test_weibull_right_censored_automotive() -> None:
    fit = fit_weibull(AUTO_F, right_censored=AUTO_C)                      # [REL-2]
    assert fit.scale == pytest.approx(134651, abs=0.5)
    assert fit.scale_se == pytest.approx(42767.3, rel=1e-5)
    assert fit.scale_ci == pytest.approx((72252.9, 250937), rel=1e-5)
    assert fit.shape == pytest.approx(1.15443, abs=5e-6)
    assert fit.shape_se == pytest.approx(0.29614, abs=5e-6)
    assert fit.shape_ci == pytest.approx((0.698249, 1.90863), abs=2e-6)
    assert fit.log_likelihood == pytest.approx(-128.974, abs=5e-4)
    assert fit.reliability(100_000) == pytest.approx(0.4920, abs=5e-5)
    assert (fit.n_failures, fit.n_censored) == (10, 21)


def test_weibull_nag_example() -> None:
    fit = fit_weibull(NAG)                                                # [NAG]
    assert fit.shape == pytest.approx(2.7870, abs=5e-5)
    assert fit.shape_se == pytest.approx(0.4273, abs=5e-5)
    log_lambda = -fit.shape * math.log(fit.scale)
    assert log_lambda == pytest.approx(-2.1073, abs=5e-5)
    # SE of log λ = −β ln η by the delta method from the fit's covariance
    g = np.array([-math.log(fit.scale), -fit.shape / fit.scale])
    assert math.sqrt(g @ np.array(fit.covariance) @ g) == pytest.approx(0.4627, abs=5e-5)


def test_reliability_hazard_b_life() -> None:
    fit = fit_weibull(REL1)
    b, e = fit.shape, fit.scale
    assert fit.reliability(0) == 1.0
    assert fit.reliability(e) == pytest.approx(math.exp(-1))
    assert fit.hazard(30) == pytest.approx(b / e * (30 / e) ** (b - 1))
    b10 = fit.b_life(10)
    assert b10 == pytest.approx(e * (-math.log(0.9)) ** (1 / b))
    assert fit.reliability(b10) == pytest.approx(0.9)
    assert fit.mean == pytest.approx(e * math.gamma(1 + 1 / b))
    with pytest.raises(ReliabilityError, match="between 0 and 100"):
        fit.b_life(0)


@settings(max_examples=40, deadline=None)
@given(shape=st.floats(0.5, 5), scale=st.floats(1, 1000), n=st.integers(5, 40),
       censor_at=st.floats(0.5, 3), seed=st.integers(0, 2**31))
def test_weibull_properties(shape: float, scale: float, n: int, censor_at: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    times = scale * rng.weibull(shape, size=n)
    limit = censor_at * scale
    failures, censored = times[times <= limit], np.full((times > limit).sum(), limit)
    if len(np.unique(failures)) < 2:
        return
    fit = fit_weibull(failures, right_censored=censored)
    assert fit.shape > 0 and fit.scale > 0
    assert fit.shape_ci[0] < fit.shape < fit.shape_ci[1]
    grid = np.linspace(0, 3 * scale, 50)
    r = fit.reliability(grid)
    assert r[0] == 1.0
    assert np.all(np.diff(r) <= 0)
    assert np.all(fit.hazard(grid[1:]) >= 0)


# --- bad input --------------------------------------------------------------------------------

def test_bad_downtime_is_named() -> None:
    stops = _stops()
    neg = stops.copy()
    neg.loc[2, "time_end"] = neg.loc[2, "time_start"] - pd.Timedelta(minutes=5)
    with pytest.raises(ReliabilityError, match=r"row 3 \(machine M1\): negative duration"):
        mtbf_mttr(neg, start=DAY, end=END)
    negd = stops.copy()
    negd.loc[0, "duration_min"] = -4
    with pytest.raises(ReliabilityError, match="row 1 .*negative duration_min"):
        mtbf_mttr(negd, start=DAY, end=END)
    over = stops.copy()
    over.loc[1, "time_start"] = _t(2.5)                      # changeover starts inside failure 1
    with pytest.raises(ReliabilityError, match="overlapping stops on machine M1: row 1 ends .* row 2 starts"):
        mtbf_mttr(over, start=DAY, end=END)
    with pytest.raises(ReliabilityError, match="ends .* before it starts"):
        mtbf_mttr(stops, start=END, end=DAY)
    with pytest.raises(ReliabilityError, match="no time zone"):
        mtbf_mttr(stops, start=pd.Timestamp("2026-03-02"), end=END)
    with pytest.raises(ReliabilityError, match="give the observation window"):
        mtbf_mttr(stops)
    with pytest.raises(ReliabilityError, match="needs column"):
        mtbf_mttr(stops.drop(columns=["time_end"]), start=DAY, end=END)
    with pytest.raises(ReliabilityError, match="no observation window for machine"):
        mtbf_mttr(stops, windows=pd.DataFrame({"machine_id": ["M1"], "start": [DAY], "end": [END]}))


def test_too_few_failures_for_weibull() -> None:
    with pytest.raises(ReliabilityError, match="at least 2 failures"):
        fit_weibull([10.0], right_censored=[20.0, 30.0])
    with pytest.raises(ReliabilityError, match=r"failures\[1\] = -3.0"):
        fit_weibull([10.0, -3.0, 4.0])
    with pytest.raises(ReliabilityError, match=r"right_censored\[0\]"):
        fit_weibull([10.0, 3.0], right_censored=[0.0])
    tbf = times_between_failures(_stops(), start=DAY, end=END)
    with pytest.raises(ReliabilityError, match="machine M2 has 1"):
        fit_weibull_tbf(tbf, machine="M2")


# ---------------------------------------------------------------------------------------------
# failures recorded in pieces; time that was not scheduled


def test_a_failure_cut_around_a_break_counts_once() -> None:
    rows = [
        ("M1", 2, 2.5, "Mechanical Failure", False),       # cut by the shift's break …
        ("M1", 2.5, 3, "Break", True),
        ("M1", 3, 3 + 20 / 60, "Mechanical Failure", False),  # … and continued after it
        ("M1", 10, 10.5, "Tooling", False),
        ("M1", 10.5, 11, "Tooling", False),                 # cut at a shift boundary
        ("M1", 16, 16.25, "Electrical Failure", False),
    ]
    df = pd.DataFrame(rows, columns=["machine_id", "h0", "h1", "reason_category", "planned"])
    df["time_start"], df["time_end"] = df["h0"].map(_t), df["h1"].map(_t)
    out = mtbf_mttr(df, start=DAY, end=END).iloc[0]
    # three failures, not five; repair time excludes the break: (50 + 60 + 15) / 3 min
    assert out["failures"] == 3
    assert out["mttr_min"] == pytest.approx(125 / 3)
    assert out["uptime_h"] == pytest.approx(24 - (0.5 + 0.5 + 20 / 60 + 0.5 + 0.5 + 0.25))
    by_cat = mtbf_mttr(df, start=DAY, end=END, by_category=True).set_index("category")
    assert by_cat["failures"].to_dict() == {"Electrical Failure": 1, "Mechanical Failure": 1, "Tooling": 1}
    tbf = times_between_failures(df, start=DAY, end=END)
    # 3:20 → 10:00 and 11:00 → 16:00 (no zero-length interval between the pieces), then censored
    assert tbf["time_h"].tolist() == pytest.approx([6 + 40 / 60, 5.0, 24 - 16.25])
    assert tbf["censored"].tolist() == [False, False, True]


def test_unscheduled_stops_fill_what_is_neither_available_nor_a_stop() -> None:
    states = pd.DataFrame({
        "machine_id": ["M1"] * 3,
        "time_start": [_t(0), _t(8), _t(9)],
        "time_end": [_t(8), _t(9), _t(20)],
        "state": ["running", "planned_stop", "running"],
    })                                                    # no state at all from 20:00 to 24:00
    stops = pd.DataFrame({
        "machine_id": ["M1", "M1"],
        "time_start": [_t(8.5), _t(12)],
        "time_end": [_t(9.5), _t(13)],
        "reason_category": ["Scheduled Maintenance", "Mechanical Failure"],
        "planned": [True, False],
    })
    off = unscheduled_stops(states, stops, start=DAY, end=END, machines=["M1", "M2"])
    got = [(r.machine_id, r.time_start, r.time_end) for r in off.itertuples()]
    assert got == [("M1", _t(8), _t(8.5)), ("M1", _t(20), _t(24)), ("M2", _t(0), _t(24))]
    assert off["planned"].all() and set(off["reason_category"]) == {NOT_SCHEDULED}
    assert off["duration_min"].tolist() == pytest.approx([30.0, 240.0, 1440.0])
    both = pd.concat([stops, off], ignore_index=True)
    out = mtbf_mttr(both, start=DAY, end=END).set_index("machine_id")
    # M1: 24 h − 0.5 h not scheduled − 4 h without data − 1 h PM − 1 h failure
    assert out.loc["M1", "uptime_h"] == pytest.approx(17.5)
    assert out.loc["M1", "failures"] == 1 and out.loc["M1", "mtbf_h"] == pytest.approx(17.5)
    assert out.loc["M2", "uptime_h"] == pytest.approx(0.0)
    with pytest.raises(ReliabilityError, match="ends"):
        unscheduled_stops(states, stops, start=END, end=DAY)
