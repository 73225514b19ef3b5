"""Control charts against published numbers.

Unless a test says otherwise the expected values are printed in the qcc 3.0 vignette
"A quick tour of qcc" (L. Scrucca, 28 Apr 2020), https://github.com/luca-scr/qcc —
docs/articles/qcc.html (the CRAN vignette qcc_a_quick_tour), run on the qcc data sets copied into
``data/`` (Montgomery's textbook examples as shipped by qcc).

qcc 3.0 took d2 and d3 from a table rounded to three decimals (d2(2) = 1.128, d2(5) = 2.326);
we integrate them (1.12838, 2.32593). Every σ̂ built on R̄/d2 or MR̄/d2 therefore differs from qcc's
print by that rounding — 3·10⁻⁵ relative for n = 5, 3·10⁻⁴ for n = 2. The tests check both that
our value is within that gap and that qcc's printed σ̂ is reproduced exactly when the same
statistic is divided by qcc's rounded d2.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest

from workbench import spc
from workbench.spc import constants


def trial(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["trial"]]


def new(df: pd.DataFrame) -> pd.DataFrame:
    return df[~df["trial"]]


# -- X̄-R, X̄-S ---------------------------------------------------------------------------------

def test_pistonrings_xbar_r_phase_one(pistonrings: pd.DataFrame) -> None:
    xbar, r = spc.xbar_r(trial(pistonrings), value="diameter", subgroup="sample")
    # qcc vignette, "x-bar chart": Center 74.00118, Standard deviation 0.009785039,
    # LCL 73.98805, UCL 74.0143.
    assert xbar.center == pytest.approx(74.00118, abs=5e-6)
    assert xbar.sigma == pytest.approx(0.009785039, rel=5e-5)
    assert xbar.lcl == pytest.approx(73.98805, abs=5e-6)
    assert xbar.ucl == pytest.approx(74.0143, abs=5e-5)
    assert xbar.sigma_method == "R̄/d2" and r.sigma_method == "R̄/d2"
    # qcc's σ̂ is R̄/2.326 with its tabulated d2: reproduced exactly from our R̄.
    assert r.center / 2.326 == pytest.approx(0.009785039, abs=5e-10)
    # qcc vignette, "R chart": Center 0.02276, LCL 0, UCL 0.04812533.
    assert r.center == pytest.approx(0.02276, abs=1e-9)
    assert r.lcl == 0.0
    assert r.ucl == pytest.approx(0.04812533, abs=1e-6)
    # Montgomery, Appendix VI: UCL = D4 R̄ with D4(5) = 2.114 (printed, 3 decimals).
    assert r.ucl == pytest.approx(2.114 * r.center, abs=1e-3 * r.center)
    assert xbar.phase == "I" and len(xbar) == 25 and list(xbar.subgroups[:3]) == [1, 2, 3]
    assert xbar.in_control and r.in_control  # Montgomery: the trial samples are in control


def test_pistonrings_s_chart_and_xbar_s(pistonrings: pd.DataFrame) -> None:
    xbar, s = spc.xbar_s(trial(pistonrings), value="diameter", subgroup="sample")
    # qcc vignette, "S chart": Center 0.009240037, Standard deviation 0.009829977,
    # LCL 0, UCL 0.01930242 (c4 is computed exactly by qcc too).
    assert s.center == pytest.approx(0.009240037, abs=1e-9)
    assert s.sigma == pytest.approx(0.009829977, abs=1e-9)
    assert s.lcl == 0.0
    assert s.ucl == pytest.approx(0.01930242, abs=1e-8)
    assert xbar.sigma_method == "S̄/c4"
    # No printed X̄ limits for X̄-S in qcc: by hand, x̿ ± A3 S̄ with A3(5) = 1.427 (Montgomery,
    # Appendix VI, 3 decimals → tolerance 5e-4 · S̄).
    s_bar = 0.009240037
    assert xbar.ucl == pytest.approx(74.00118 + 1.427 * s_bar, abs=5e-4 * s_bar + 5e-6)
    assert xbar.lcl == pytest.approx(74.00118 - 1.427 * s_bar, abs=5e-4 * s_bar + 5e-6)


def test_pistonrings_phase_two_uses_frozen_limits(pistonrings: pd.DataFrame) -> None:
    pair = spc.xbar_r(trial(pistonrings), value="diameter", subgroup="sample", rules="rule1")
    later = pair.apply(new(pistonrings))
    xbar, r = later
    assert later.phase == "II" and xbar.phase == "II"
    assert (xbar.center, xbar.lcl, xbar.ucl, xbar.sigma) == (
        pair.location.center, pair.location.lcl, pair.location.ucl, pair.location.sigma)
    assert (r.center, r.ucl) == (pair.dispersion.center, pair.dispersion.ucl)
    assert list(xbar.subgroups) == list(range(26, 41))
    # By hand from the data: x̄37 = 74.0166, x̄38 = 74.0196, x̄39 = 74.0234 exceed the UCL
    # 74.0143; no other new mean does (x̄35 = 74.0126, x̄40 = 74.0128). Montgomery, Example 6.1's
    # phase II discussion: the process mean has shifted upward at the end.
    assert [v.subgroup for v in xbar.violations] == [37, 38, 39]
    assert {v.rule for v in xbar.violations} == {"we1"}
    assert r.in_control
    # New data never moves the limits: applying the new data together with the old changes
    # nothing, while a phase I chart on everything would.
    again = pair.apply(pistonrings)
    assert again.location.ucl == pair.location.ucl
    refit = spc.xbar_r(pistonrings, value="diameter", subgroup="sample")
    assert refit.location.ucl != pair.location.ucl


def test_varying_subgroup_sizes_give_limits_per_point(qcc_data) -> None:
    # qcc vignette, "Variable control limits": rows 9, 10, 30, 35, 45, 64, 65, 74, 75, 85, 99,
    # 100 removed (Montgomery's Table 6.4, sizes 3–5). Center 74.00075, Standard deviation
    # 0.009856701; limits for n = 5: 73.98753 74.01398; for n = 3: 73.98368 74.01782.
    df = qcc_data("pistonrings")
    out = [9, 10, 30, 35, 45, 64, 65, 74, 75, 85, 99, 100]
    df = df.drop(index=[o - 1 for o in out])
    xbar, r = spc.xbar_r(df[df["sample"] <= 25], value="diameter", subgroup="sample")
    assert xbar.center == pytest.approx(74.00075, abs=5e-6)
    assert xbar.sigma == pytest.approx(0.009856701, rel=1e-4)  # qcc: d2(3), d2(4) rounded
    assert isinstance(xbar.ucl, np.ndarray) and xbar.ucl.shape == (25,)
    assert list(xbar.sizes[:2]) == [5, 3]
    assert xbar.lcl[0] == pytest.approx(73.98753, abs=1e-5)
    assert xbar.ucl[0] == pytest.approx(74.01398, abs=1e-5)
    assert xbar.lcl[1] == pytest.approx(73.98368, abs=1e-5)
    assert xbar.ucl[1] == pytest.approx(74.01782, abs=1e-5)
    # R chart: center d2(nᵢ)σ̂ per point (SAS/QC convention, documented; qcc keeps one center).
    assert r.center[1] == pytest.approx(constants.d2(3) * xbar.sigma)
    assert r.ucl[0] == pytest.approx(xbar.sigma * (constants.d2(5) + 3 * constants.d3(5)))


def test_polars_input_and_time_order(pistonrings: pd.DataFrame) -> None:
    df = trial(pistonrings)
    from_polars = spc.xbar_r(pl.from_pandas(df), value="diameter", subgroup="sample")
    from_pandas = spc.xbar_r(df, value="diameter", subgroup="sample")
    assert from_polars.location.ucl == from_pandas.location.ucl
    # Subgroups keep their order of appearance, or their earliest time when time= is given.
    shuffled = pd.concat([df[df["sample"] >= 13], df[df["sample"] < 13]])
    appearance = spc.xbar_r(shuffled, value="diameter", subgroup="sample").location
    assert list(appearance.subgroups[:2]) == [13, 14]
    timed = shuffled.assign(t=pd.Timestamp("2026-01-01", tz="UTC")
                            + pd.to_timedelta(shuffled["sample"], unit="h"))
    ordered = spc.xbar_r(timed, value="diameter", subgroup="sample", time="t").location
    assert list(ordered.subgroups) == list(range(1, 26))
    assert ordered.ucl == pytest.approx(from_pandas.location.ucl)


# -- attribute charts ----------------------------------------------------------------------------

def test_orangejuice_p_chart(orangejuice: pd.DataFrame) -> None:
    p = spc.p_chart(trial(orangejuice), defectives="D", size="size", subgroup="sample", rules="rule1")
    # qcc vignette, "p and np charts": Center 0.2313333, Standard deviation 0.421685,
    # LCL 0.05242755, UCL 0.4102391. Montgomery, Example 7.1: samples 15 and 23 are out.
    assert p.center == pytest.approx(0.2313333, abs=5e-8)
    assert p.sigma == pytest.approx(0.421685, abs=5e-7)
    assert p.sigma_method == "binomial"
    assert p.lcl == pytest.approx(0.05242755, abs=5e-9)
    assert p.ucl == pytest.approx(0.4102391, abs=5e-8)
    assert [v.subgroup for v in p.violations] == [15, 23]


def test_orangejuice_p_chart_revised_and_phase_two(orangejuice: pd.DataFrame) -> None:
    # qcc vignette: samples 15 and 23 removed, new data = samples 31–54:
    # Center 0.215, Standard deviation 0.4108223, LCL 0.04070284, UCL 0.3892972.
    p = spc.p_chart(trial(orangejuice), defectives="D", size="size", subgroup="sample",
                    exclude=[15, 23])
    assert p.excluded == (15, 23)
    assert p.center == pytest.approx(0.215, abs=1e-12)
    assert p.sigma == pytest.approx(0.4108223, abs=5e-8)
    assert p.lcl == pytest.approx(0.04070284, abs=5e-9)
    assert p.ucl == pytest.approx(0.3892972, abs=5e-8)
    assert len(p) == 30  # excluded samples are still plotted and tested
    later = p.apply(new(orangejuice))
    assert (later.center, later.lcl, later.ucl) == (p.center, p.lcl, p.ucl)
    assert list(later.subgroups) == list(range(31, 55))


def test_orangejuice2_p_chart_clips_lcl(orangejuice2: pd.DataFrame) -> None:
    # qcc vignette: Center 0.1108333, Standard deviation 0.3139256, LCL 0, UCL 0.2440207.
    p = spc.p_chart(trial(orangejuice2), defectives="D", size="size", subgroup="sample")
    assert p.center == pytest.approx(0.1108333, abs=5e-8)
    assert p.sigma == pytest.approx(0.3139256, abs=5e-8)
    assert p.lcl == 0.0
    assert p.ucl == pytest.approx(0.2440207, abs=5e-8)
    assert p.one_sided.all()  # p̄ − 3σ_p < 0 at every point


def test_orangejuice_np_chart(orangejuice: pd.DataFrame) -> None:
    # qcc vignette: Center 11.56667, Standard deviation 2.981763, LCL 2.621377, UCL 20.51196
    # (qcc's "standard deviation" of an np chart is that of the plotted count, our se).
    npc = spc.np_chart(trial(orangejuice), defectives="D", size="size", subgroup="sample")
    assert npc.center == pytest.approx(11.56667, abs=5e-6)
    assert npc.se == pytest.approx(2.981763, abs=5e-7)
    assert npc.lcl == pytest.approx(2.621377, abs=5e-7)
    assert npc.ucl == pytest.approx(20.51196, abs=5e-6)
    assert npc.parameter == pytest.approx(0.2313333, abs=5e-8)


def test_circuit_c_chart(circuit: pd.DataFrame) -> None:
    # qcc vignette, "c and u charts": Center 19.84615, Standard deviation 4.454902,
    # LCL 6.481447, UCL 33.21086; samples 6 and 20 are out (Montgomery, Example 7.3).
    c = spc.c_chart(trial(circuit), defects="x", subgroup="sample", rules="rule1")
    assert c.center == pytest.approx(19.84615, abs=5e-6)
    assert c.sigma == pytest.approx(4.454902, abs=5e-7)
    assert c.sigma_method == "Poisson"
    assert c.lcl == pytest.approx(6.481447, abs=5e-7)
    assert c.ucl == pytest.approx(33.21086, abs=5e-6)
    assert [v.subgroup for v in c.violations] == [6, 20]


def test_circuit_c_chart_revised_by_exclusion_and_by_iteration(circuit: pd.DataFrame) -> None:
    # qcc vignette: 6 and 20 removed: Center 19.66667, Standard deviation 4.434712,
    # LCL 6.362532, UCL 32.9708.
    for chart in (spc.c_chart(trial(circuit), defects="x", subgroup="sample", exclude=[6, 20]),
                  spc.c_chart(trial(circuit), defects="x", subgroup="sample", iterate=True)):
        assert chart.excluded == (6, 20)
        assert chart.center == pytest.approx(19.66667, abs=5e-6)
        assert chart.sigma == pytest.approx(4.434712, abs=5e-7)
        assert chart.lcl == pytest.approx(6.362532, abs=5e-7)
        assert chart.ucl == pytest.approx(32.9708, abs=5e-5)


def test_circuit_u_chart(circuit: pd.DataFrame) -> None:
    # qcc vignette: u chart of the same data with size 100, 6 and 20 removed:
    # Center 0.1966667, Standard deviation 0.4434712, LCL 0.06362532, UCL 0.329708.
    u = spc.u_chart(trial(circuit), defects="x", size="size", subgroup="sample", exclude=[6, 20])
    assert u.center == pytest.approx(0.1966667, abs=5e-8)
    assert u.sigma == pytest.approx(0.4434712, abs=5e-8)
    assert u.lcl == pytest.approx(0.06362532, abs=5e-9)
    assert u.ucl == pytest.approx(0.329708, abs=5e-7)


def test_pcmanufact_u_chart(pcmanufact: pd.DataFrame) -> None:
    # qcc vignette: Center 1.93, Standard deviation 1.389244, LCL 0.06613305, UCL 3.793867
    # (Montgomery, Example 7.4: ū = 1.93, UCL = 3.79, LCL = 0.07).
    u = spc.u_chart(pcmanufact, defects="x", size="size")
    assert u.center == pytest.approx(1.93, abs=1e-12)
    assert u.sigma == pytest.approx(1.389244, abs=5e-7)
    assert u.lcl == pytest.approx(0.06613305, abs=5e-9)
    assert u.ucl == pytest.approx(3.793867, abs=5e-7)
    assert list(u.subgroups[:2]) == [0, 1]  # no subgroup column: the frame's index labels


def test_p_chart_with_varying_sizes_by_hand() -> None:
    # No printed example at hand: computed here from the textbook formulas
    # (Montgomery §7.2.2): p̄ = ΣD/Σn, limits p̄ ± 3√(p̄(1 − p̄)/nᵢ) per sample.
    sizes = [100, 80, 80, 100, 110, 110, 100, 100, 90, 90, 110, 120, 120, 120, 110]
    defects = [12, 8, 6, 9, 10, 12, 11, 16, 10, 6, 20, 15, 9, 8, 6]
    df = pd.DataFrame({"lot": [f"L{i}" for i in range(15)], "D": defects, "n": sizes})
    p = spc.p_chart(df, defectives="D", size="n", subgroup="lot")
    p_bar = sum(defects) / sum(sizes)
    half = [3 * np.sqrt(p_bar * (1 - p_bar) / n) for n in sizes]
    assert p.center == pytest.approx(p_bar)
    assert list(p.ucl) == pytest.approx([p_bar + h for h in half])
    assert list(p.lcl) == pytest.approx([max(0.0, p_bar - h) for h in half])
    expected_z = [(d / n - p_bar) / (h / 3) for d, n, h in zip(defects, sizes, half, strict=True)]
    assert list(p.z) == pytest.approx(expected_z)
    # Phase II with other sample sizes: limits follow the new sizes, p̄ stays frozen.
    later = p.apply(pd.DataFrame({"lot": ["N1", "N2"], "D": [30, 1], "n": [50, 200]}))
    assert later.center == p.center
    assert later.ucl[0] == pytest.approx(p_bar + 3 * np.sqrt(p_bar * (1 - p_bar) / 50))
    # 30/50 = 0.6 is far above its UCL; 1/200 = 0.005 is below the LCL of a sample of 200
    # (p̄ − 3√(p̄(1 − p̄)/200) = 0.038): fewer defectives than chance allows is a signal too.
    assert [v.subgroup for v in later.violations if v.rule == "we1"] == ["N1", "N2"]
    assert later.z[1] < -3


# -- individuals --------------------------------------------------------------------------------

def test_viscosity_imr(viscosity: pd.DataFrame) -> None:
    i, mr = spc.imr(trial(viscosity), value="viscosity", subgroup="batch")
    values = trial(viscosity)["viscosity"].to_numpy()
    mr_bar = np.mean(np.abs(np.diff(values)))  # by hand
    # qcc vignette, "Continuous one-at-time data": Center 34.088, Standard deviation 0.5076521,
    # LCL 32.56504, UCL 35.61096 — with d2(2) = 1.128: reproduced exactly below.
    assert i.center == pytest.approx(34.088, abs=1e-9)
    assert mr_bar / 1.128 == pytest.approx(0.5076521, abs=5e-8)
    assert 34.088 - 3 * mr_bar / 1.128 == pytest.approx(32.56504, abs=5e-6)
    assert i.sigma == pytest.approx(mr_bar / constants.d2(2))
    assert i.sigma == pytest.approx(0.5076521, rel=4e-4)  # d2 = 1.12838 vs qcc's 1.128
    assert i.lcl == pytest.approx(32.56504, abs=1e-3)
    assert i.ucl == pytest.approx(35.61096, abs=1e-3)
    assert i.sigma_method == "MR̄/d2"
    # MR chart (no printed values in qcc): Montgomery §6.4, center MR̄, UCL = D4 MR̄ with
    # D4(2) = 3.267, LCL = 0; one point fewer than the I chart, labelled by the later batch.
    assert len(mr) == len(i) - 1 and mr.subgroups[0] == 2
    assert mr.center == pytest.approx(mr_bar)
    assert mr.ucl == pytest.approx(3.267 * mr_bar, abs=1e-3 * mr_bar)
    assert mr.lcl == 0.0


def test_viscosity_without_batch_4_and_phase_two(viscosity: pd.DataFrame) -> None:
    # qcc vignette: batch 4 removed from the data (temperature controller failure):
    # Center 33.98947, Standard deviation 0.4117415, LCL 32.75425, UCL 35.2247. Deleting the row
    # bridges the gap with a moving range 3 → 5, as qcc does.
    df = viscosity[viscosity["batch"] != 4]
    i, _ = spc.imr(trial(df), value="viscosity", subgroup="batch")
    assert i.center == pytest.approx(33.98947, abs=5e-6)
    assert i.sigma == pytest.approx(0.4117415, rel=4e-4)
    assert i.lcl == pytest.approx(32.75425, abs=1e-3)
    assert i.ucl == pytest.approx(35.2247, abs=1e-3)
    # exclude= instead drops both moving ranges touching batch 4 (documented choice).
    j, mr = spc.imr(trial(viscosity), value="viscosity", subgroup="batch", exclude=[4])
    vals = trial(viscosity)["viscosity"].to_numpy()
    kept = [abs(vals[k] - vals[k - 1]) for k in range(1, 20) if k not in (3, 4)]
    assert j.sigma == pytest.approx(np.mean(kept) / constants.d2(2))
    assert mr.center == pytest.approx(np.mean(kept)) and mr.excluded == (4,)
    assert j.center == pytest.approx(33.98947, abs=5e-6)
    # Phase II: later batches against the frozen limits.
    later = i.apply(new(df))
    assert later.ucl == i.ucl and list(later.subgroups) == list(range(21, 36))


def test_violation_records_name_rule_point_and_subgroup(orangejuice: pd.DataFrame) -> None:
    p = spc.p_chart(trial(orangejuice), defectives="D", size="size", subgroup="sample")
    first = p.violations[0]
    assert (first.rule, first.index, first.subgroup, first.chart) == ("we1", 14, 15, "p")
    assert "subgroup 15" in first.message and "beyond the control limits" in first.message
    frame = p.to_frame()
    assert list(frame.columns) == ["subgroup", "statistic", "size", "center", "lcl", "ucl", "z",
                                   "violations"]
    assert frame.loc[14, "violations"].startswith("we1")
    summary = p.summary()
    assert summary["sigma_method"] == "binomial" and summary["violations"][0]["subgroup"] == 15


def test_control_chart_by_name(pistonrings: pd.DataFrame, orangejuice: pd.DataFrame) -> None:
    pair = spc.control_chart(trial(pistonrings), chart="xbar-r", value="diameter", subgroup="sample")
    assert isinstance(pair, spc.ChartPair) and pair.location.chart_type == "xbar_rbar"
    p = spc.control_chart(trial(orangejuice), chart="p", value="D", size="size")
    assert isinstance(p, spc.ControlChart) and p.chart_type == "p"
    assert set(spc.CHARTS) == {"xbar_r", "xbar_s", "imr", "p", "np", "c", "u"}
