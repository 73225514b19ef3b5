"""EWMA and tabular CUSUM charts and their average run lengths, against published numbers.

Sources, cited next to each expected value:

* **Montgomery** — D. C. Montgomery, *Introduction to Statistical Quality Control*, ch. 9:
  Table 9.1 (30 individual observations, μ₀ = 10, σ = 1; the mean moves to 11 after sample 20),
  Example 9.1 / Table 9.2 (tabular CUSUM, k = 0.5, h = 5), Example 9.2 (EWMA, λ = 0.1, L = 2.7)
  and Table 9.3 (CUSUM ARLs). The data and the EWMA example's design are reproduced on the IMSL
  page https://help.imsl.com/net/current/manual/docs/ewma.htm ("Montgomery 428"); Table 9.2's
  upper sums, the signal at sample 29 and the new-mean estimate 11.25 in the test file
  tests/test_control_chart_cusum.py of github.com/kgdunn/process-improve; Table 9.3's 8.38 /
  10.4 / 465 in the same file's docstrings.
* **qcc** — the R package qcc 3.0 (L. Scrucca, github.com/luca-scr/qcc): the vignette
  docs/articles/qcc.html prints the pistonrings EWMA limits; everything else marked "qcc run" was
  printed by qcc 3.0's own R/ewma.R and R/cusum.R (commit af35099, sourced into R 4.2 because
  Debian has no r-cran-qcc) with the R call shown. qcc's σ̂ divides R̄ by d2(5) = 2.326 from its
  table, ours by 2.32593 (see test_control_charts.py): 3·10⁻⁵ relative.
* **spc** — the R package spc 0.6.7 (S. Knoth; Debian r-cran-spc), whose documentation
  examples quote the published tables it reproduces (Lucas & Crosier 1982, Crowder 1987, Lucas &
  Saccucci 1990, Brook & Evans 1972; as mirrored in github.com/reallyTG/typeR,
  data/genthat_extracted_code/spc/examples/x{cusum,ewma}.arl.Rd.R), and values printed by
  ``xcusum.arl`` / ``xewma.arl`` themselves with the call shown.

R is needed neither by the code nor by these tests: what R printed is written down here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench import plots, spc
from workbench.errors import SPCError
from workbench.spc import timeweighted as tw
from workbench.spc.studies import Study, studies_table, violations_table

# Montgomery Table 9.1 (as listed on the IMSL page above), samples numbered 1–30.
TABLE_9_1 = [9.45, 7.99, 9.29, 11.66, 12.16, 10.18, 8.04, 11.46, 9.20, 10.34,
             9.03, 11.47, 10.51, 9.40, 10.08, 9.37, 10.62, 10.31, 8.52, 10.84,
             10.90, 9.33, 12.29, 11.50, 10.60, 11.08, 10.38, 11.62, 11.31, 10.52]

# qcc's d2(5) = 2.326 against our 2.32593: relative difference of every σ̂ = R̄/d2.
D2_GAP = 3.1e-5


@pytest.fixture
def table_9_1() -> pd.DataFrame:
    return pd.DataFrame({"x": TABLE_9_1}, index=pd.RangeIndex(1, 31, name="sample"))


def trial(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["trial"]]


def new(df: pd.DataFrame) -> pd.DataFrame:
    return df[~df["trial"]]


# -- tabular CUSUM: Montgomery Example 9.1 -----------------------------------------------------

# Montgomery Table 9.2, C⁺ᵢ for i = 1…30 (process-improve's transcription covers 1–29; 30 is
# C⁺₂₉ + 10.52 − 10.5). qcc run: cusum(x, center = 10, std.dev = 1, decision.interval = 5,
# se.shift = 1)$pos printed the same 30 values.
C_UPPER = [0.00, 0.00, 0.00, 1.16, 2.82, 2.50, 0.04, 1.00, 0.00, 0.00,
           0.00, 0.97, 0.98, 0.00, 0.00, 0.00, 0.12, 0.00, 0.00, 0.34,
           0.74, 0.00, 1.79, 2.79, 2.89, 3.47, 3.35, 4.47, 5.28, 5.30]
# Montgomery Table 9.2, C⁻ᵢ. qcc run, same call, $neg printed their negatives:
# -0.05 -1.56 -1.77 0 0 0 -1.46 0 -0.30 0 -0.47 0 0 -0.10 0 -0.13 0 0 -0.98 0 0 -0.17 0 … 0.
C_LOWER = [0.05, 1.56, 1.77, 0.00, 0.00, 0.00, 1.46, 0.00, 0.30, 0.00,
           0.47, 0.00, 0.00, 0.10, 0.00, 0.13, 0.00, 0.00, 0.98, 0.00,
           0.00, 0.17, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00]


def _run_counter(sums: list[float]) -> list[int]:
    """Montgomery's N: consecutive periods the sum has been nonzero (JMP documents the same
    "number of steps since the most recent zero value")."""
    out, n = [], 0
    for c in sums:
        n = n + 1 if c > 0 else 0
        out.append(n)
    return out


def test_cusum_reproduces_montgomery_table_9_2(table_9_1: pd.DataFrame) -> None:
    chart = tw.cusum(table_9_1, value="x", target=10.0, sigma=1.0, k=0.5, h=5.0)
    assert isinstance(chart, spc.ChartPair) and len(chart) == 30
    np.testing.assert_allclose(chart.upper.sums, C_UPPER, atol=5e-9)
    np.testing.assert_allclose(chart.lower.sums, C_LOWER, atol=5e-9)
    # The lower side is plotted below zero (qcc's $neg), the upper above; limits ±h.
    np.testing.assert_allclose(chart.lower.statistic, -np.array(C_LOWER), atol=5e-9)
    assert (chart.upper.center, chart.upper.ucl, chart.lower.lcl) == (0.0, 5.0, -5.0)
    # Montgomery Table 9.2, N⁺: 1, 2, 3, 4, 5 over samples 4–8 … and 1…7 over samples 23–29.
    assert chart.upper.counter.tolist() == _run_counter(C_UPPER)
    assert chart.upper.counter[22:29].tolist() == [1, 2, 3, 4, 5, 6, 7]
    assert chart.lower.counter.tolist() == _run_counter(C_LOWER)
    assert chart.lower.counter[:3].tolist() == [1, 2, 3]


def test_cusum_signals_at_sample_29_and_estimates_the_new_mean(table_9_1: pd.DataFrame) -> None:
    chart = tw.cusum(table_9_1, value="x", target=10.0, sigma=1.0, k=0.5, h=5.0)
    # Montgomery Example 9.1: C⁺₂₉ = 5.28 > H = 5, the first signal; N⁺ = 7 dates the shift
    # after sample 22; eq. 9.4: μ̂ = μ₀ + K + C⁺/N⁺ = 10 + 0.5 + 5.28/7 = 11.25.
    # (qcc run: $violations$upper is 1 at samples 29 and 30, as C⁺₃₀ = 5.30 > 5 too.)
    assert [(v.index, v.subgroup, v.rule) for v in chart.violations] == [
        (28, 29, "cusum_upper"), (29, 30, "cusum_upper")]
    first = chart.violations[0]
    assert first.chart == "C⁺"
    assert chart.upper.new_mean[28] == pytest.approx(10 + 0.5 + 5.28 / 7, abs=1e-12)
    assert round(chart.upper.new_mean[28], 2) == 11.25
    assert first.message == ("CUSUM chart, subgroup 29: upper CUSUM C⁺ = 5.28 > h = 5 (shift up for "
                             "the last 7 subgroups, since subgroup 23; estimated new mean 11.254)")
    assert np.isnan(chart.upper.new_mean[:28]).all() and np.isnan(chart.lower.new_mean).all()
    frame = chart.to_frame()
    assert frame.loc[28, ["c_upper", "n_upper", "signal"]].tolist() == [pytest.approx(5.28), 7, "up"]
    assert list(chart.signals) == [28, 29]
    assert not chart.in_control and chart.phase == "I"


def test_cusum_lower_side_and_headstart() -> None:
    # A downward step of 1.5σ: the lower sum signals and estimates a mean below target
    # (Montgomery eq. 9.5: μ̂ = μ₀ − K − C⁻/N⁻).
    x = [10.0] * 5 + [8.5] * 6
    df = pd.DataFrame({"x": x})
    chart = tw.cusum(df, value="x", target=10.0, sigma=1.0, k=0.5, h=4.0)
    # Each low point adds 1.5 − 0.5 = 1 to C⁻: C⁻ = 1, 2, 3, 4, 5, 6 → first above 4 at the 5th.
    assert chart.lower.sums[5:].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert [v.index for v in chart.violations] == [9, 10]
    assert chart.violations[0].rule == "cusum_lower" and chart.violations[0].chart == "C⁻"
    assert chart.lower.new_mean[9] == pytest.approx(10.0 - 0.5 - 5.0 / 5)  # = 8.5, the true mean
    # A headstart of h/2 starts both sums at 2 (Lucas & Crosier 1982): the same step signals two
    # subgroups earlier, and the estimate does not count the headstart as evidence.
    fast = tw.cusum(df, value="x", target=10.0, sigma=1.0, k=0.5, h=4.0, headstart=2.0)
    assert fast.upper.sums[0] == 1.5 and fast.lower.sums[0] == 1.5  # 2 + 0 − 0.5
    assert fast.lower.sums[5:8].tolist() == [1.0, 2.0, 3.0]  # C⁻ fell to 0 at the 4th point
    headstart_run = tw.cusum(pd.DataFrame({"x": [8.5] * 4}), value="x", target=10.0, sigma=1.0,
                             k=0.5, h=4.0, headstart=2.0, min_subgroups=1)
    assert headstart_run.lower.sums.tolist() == [3.0, 4.0, 5.0, 6.0]
    assert headstart_run.lower.new_mean[2] == pytest.approx(8.5)  # (5 − 2)/3 + 0.5 = 1.5 below


# -- EWMA: Montgomery Example 9.2 ---------------------------------------------------------------

def test_ewma_example_9_2(table_9_1: pd.DataFrame) -> None:
    chart = tw.ewma(table_9_1, value="x", target=10.0, sigma=1.0, lam=0.1, L=2.7)
    assert isinstance(chart, spc.ControlChart) and chart.label == "EWMA" and chart.nsigmas == 2.7
    # Montgomery Example 9.2: z₁ = 0.1·9.45 + 0.9·10 = 9.945, z₂ = 9.7495; limits eq. 9.22 —
    # 10 ± 0.27 for i = 1, 10 ± 0.36 for i = 2. qcc run: ewma(x, center = 10, std.dev = 1,
    # lambda = 0.1, nsigmas = 2.7) printed (ewma, LCL, UCL):
    qcc = {1: (9.945000, 9.730000, 10.270000), 2: (9.749500, 9.636752, 10.363248),
           3: (9.703550, 9.575997, 10.424003), 27: (10.456819, 9.381626, 10.618374),
           28: (10.573137, 9.381426, 10.618574), 29: (10.646823, 9.381265, 10.618735),
           30: (10.634141, 9.381134, 10.618866)}
    for i, (z, lcl, ucl) in qcc.items():
        assert chart.statistic[i - 1] == pytest.approx(z, abs=5e-7)
        assert chart.lcl[i - 1] == pytest.approx(lcl, abs=5e-7)
        assert chart.ucl[i - 1] == pytest.approx(ucl, abs=5e-7)
    # The steady-state limits 10 ± 2.7·√(0.1/1.9) = 10 ± 0.6194 are approached from inside.
    assert chart.ucl[-1] < 10 + 2.7 * np.sqrt(0.1 / 1.9) and np.all(np.diff(chart.ucl) > 0)
    # qcc run, same call: $violations are at samples 29 and 30. The first point beyond the limits
    # is 29 (z₂₈ = 10.5731 < UCL₂₈ = 10.6186) — not 28: with these data, λ and L, no EWMA rule puts
    # sample 28 outside, so a "signal at 28" cannot be reproduced.
    assert [(v.index, v.subgroup, v.rule) for v in chart.violations] == [(28, 29, "ewma"), (29, 30, "ewma")]
    assert chart.violations[0].message == ("EWMA chart, subgroup 29: z = 10.647 > UCL = 10.619 "
                                           "(mean shifted up; λ = 0.1, L = 2.7)")
    assert chart.rules == ("ewma",) and chart.one_sided.sum() == 0
    # The standardized points are what the signal rule tests: |z| > L exactly at the violations.
    assert np.flatnonzero(np.abs(chart.z) > 2.7).tolist() == [28, 29]
    assert chart.to_frame()["mean"].tolist() == TABLE_9_1


def test_ewma_limits_with_unequal_subgroup_sizes() -> None:
    # σ(zᵢ)² = Σⱼ λ²(1 − λ)^{2(i−j)} σ²/nⱼ — the exact variance of the weighted sum of independent
    # means; it is eq. 9.22's σ²/n · λ/(2 − λ)[1 − (1 − λ)^{2i}] when every nⱼ = n.
    sizes = [2, 5, 3, 4, 6, 2]
    rows = [(f"S{i}", v) for i, n in enumerate(sizes) for v in np.linspace(-1, 1, n) + i % 2]
    df = pd.DataFrame(rows, columns=["sg", "v"])
    lam, sigma = 0.3, 0.8
    chart = tw.ewma(df, value="v", subgroup="sg", lam=lam, L=3.0, target=0.0, sigma=sigma)
    n = np.array(sizes, dtype=float)
    expected = [np.sqrt(sum(lam**2 * (1 - lam) ** (2 * (i - j)) * sigma**2 / n[j] for j in range(i + 1)))
                for i in range(len(n))]
    np.testing.assert_allclose(chart.se, expected, rtol=1e-12)
    four_of_five = pd.DataFrame({"sg": np.repeat(np.arange(4), 5), "v": np.tile(np.arange(5.0), 4)})
    equal = tw.ewma(four_of_five, value="v", subgroup="sg", lam=lam, L=3.0, target=0.0, sigma=sigma)
    closed = sigma / np.sqrt(5) * np.sqrt(lam / (2 - lam) * (1 - (1 - lam) ** (2 * np.arange(1, 5))))
    np.testing.assert_allclose(equal.se, closed, rtol=1e-12)


# -- qcc's pistonrings example: phase I on samples 1–25, phase II on 26–40 -----------------------

def test_pistonrings_ewma_phase_one_matches_the_qcc_vignette(pistonrings: pd.DataFrame) -> None:
    chart = tw.ewma(trial(pistonrings), value="diameter", subgroup="sample", lam=0.2, L=3.0)
    # qcc vignette, "EWMA": ewma(diameter[1:25,], lambda = 0.2, nsigmas = 3): Center 74.00118,
    # Standard deviation 0.009785039, limits row 1: 73.99855 74.00380; row 2: 73.99781 74.00454;
    # row 25: 73.99680 74.00555.
    assert chart.center == pytest.approx(74.00118, abs=5e-6)
    assert chart.sigma == pytest.approx(0.009785039, rel=D2_GAP + 1e-7)
    assert chart.sigma_method == "R̄/d2"
    for i, (lcl, ucl) in {1: (73.99855, 74.00380), 2: (73.99781, 74.00454), 25: (73.99680, 74.00555)}.items():
        assert chart.lcl[i - 1] == pytest.approx(lcl, abs=5e-6)
        assert chart.ucl[i - 1] == pytest.approx(ucl, abs=5e-6)
    # qcc run, same call: $ewma[c(1, 2, 25)] = 74.00298080 74.00250464 74.00160648 (the EWMA
    # does not depend on σ̂); no violations.
    np.testing.assert_allclose(chart.statistic[[0, 1, 24]], [74.00298080, 74.00250464, 74.00160648],
                               atol=5e-9)
    assert chart.in_control and chart.phase == "I"


def test_pistonrings_ewma_phase_two(pistonrings: pd.DataFrame) -> None:
    base = tw.ewma(trial(pistonrings), value="diameter", subgroup="sample", lam=0.2, L=2.7)
    # qcc vignette: ewma(diameter[1:25,], lambda = 0.2, nsigmas = 2.7, newdata = diameter[26:40,])
    # prints limits row 1: 73.99881 74.00354; row 2: 73.99815 74.00420; row 40: 73.99724 74.00511.
    assert (base.lcl[0], base.ucl[0]) == (pytest.approx(73.99881, abs=5e-6), pytest.approx(74.00354, abs=5e-6))
    assert (base.lcl[1], base.ucl[1]) == (pytest.approx(73.99815, abs=5e-6), pytest.approx(74.00420, abs=5e-6))
    later = base.apply(new(pistonrings))
    assert later.phase == "II" and len(later) == 15 and later.subgroups[0] == 26
    assert (later.center, later.sigma, later.lam, later.nsigmas) == (base.center, base.sigma, 0.2, 2.7)
    # Our phase II restarts z at μ₀ (qcc continues from sample 25), so its limits narrow again:
    # qcc run ewma(diameter[26:40,], center = 74.001176, std.dev = 0.009785038693, lambda = 0.2,
    # nsigmas = 2.7) — the restart — printed LCL/UCL 73.99881296/74.00353904 for sample 26 and
    # 73.99724004/74.00511196 for 40; the vignette's row 40 (no restart, 0.8⁸⁰ ≈ 0) agrees at 5e-6.
    # (half-widths of 0.0024–0.0039 differ from qcc's by the d2 gap, 3·10⁻⁵ relative: ≤ 1.2e-7)
    assert later.lcl[0] == pytest.approx(73.99881296, abs=1.5e-7)
    assert later.ucl[-1] == pytest.approx(74.00511196, abs=1.5e-7)
    assert later.ucl[-1] == pytest.approx(74.00511, abs=5e-6)
    # The same run printed the restarted EWMA and flagged samples 35, 37, 38, 39, 40 (qcc's
    # continuing chart in the vignette call flags the same five).
    np.testing.assert_allclose(
        later.statistic, [74.00266080, 74.00256864, 74.00049491, 74.00111593, 74.00037274,
                          74.00173819, 74.00251056, 74.00156844, 74.00349476, 74.00531580,
                          74.00505264, 74.00736211, 74.00980969, 74.01252775, 74.01258220], atol=5e-9)
    assert [v.subgroup for v in later.violations] == [35, 37, 38, 39, 40]


# qcc run: cusum(diameter[1:25,], decision.interval = 4, se.shift = 1): rbind($pos, $neg) rounded
# to 6 decimals; no violations.
QCC_PISTON_POS = [1.562156, 0.930529, 1.989943, 1.906762, 1.914989, 0.140766, 0, 0, 0.191042, 0, 0, 0,
                  0, 0, 0.602376, 0, 0, 0.922303, 0, 1.333637, 0.519195, 0.116087, 0, 0.419561, 0]
QCC_PISTON_NEG = [0, 0, 0, 0, 0, 0.774222, 0.542961, 1.04296, 0, 0.225777, 1.319926, 0.768737,
                  0.903106, 2.911332, 1.308956, 1.854659, 1.440582, 0, 0.180073, 0, 0, 0, 0, 0, 0.180073]


def test_pistonrings_cusum_phase_one_matches_qcc(pistonrings: pd.DataFrame) -> None:
    chart = spc.control_chart(trial(pistonrings), chart="cusum", value="diameter", subgroup="sample",
                              params={"h": 4.0})
    assert isinstance(chart, tw.CusumChart) and (chart.k, chart.h) == (0.5, 4.0)
    # qcc vignette, "Cusum chart": Center of group statistics = 74.00118, Standard deviation =
    # 0.009785039, Decision interval (StdErr) = 4, Shift detection (StdErr) = 1 (= 2k).
    assert chart.target == pytest.approx(74.00118, abs=5e-6)
    assert chart.sigma == pytest.approx(0.009785039, rel=D2_GAP + 1e-7)
    # A sum C = Σ(zⱼ − k) over N points carries the d2 gap of every zⱼ: 3·10⁻⁵ × (C + Nk) < 3e-4.
    np.testing.assert_allclose(chart.upper.sums, QCC_PISTON_POS, atol=3e-4)
    np.testing.assert_allclose(chart.lower.sums, QCC_PISTON_NEG, atol=3e-4)
    assert chart.in_control  # qcc: $violations all NA
    # With qcc's own μ₀ and σ̂ (printed: center 74.001176, std.dev 0.009785038693) the sums agree
    # to qcc's printed 6 decimals.
    same = tw.cusum(trial(pistonrings), value="diameter", subgroup="sample", h=4.0, target=74.001176,
                    sigma=0.009785038693)
    np.testing.assert_allclose(same.upper.sums, QCC_PISTON_POS, atol=1e-6)
    np.testing.assert_allclose(same.lower.sums, QCC_PISTON_NEG, atol=1e-6)
    assert same.upper.sigma_method == "given"


def test_pistonrings_cusum_phase_two(pistonrings: pd.DataFrame) -> None:
    base = tw.cusum(trial(pistonrings), value="diameter", subgroup="sample")
    later = base.apply(new(pistonrings))
    # qcc run, the restart: cusum(diameter[26:40,], center = c1$center, std.dev = c1$std.dev,
    # decision.interval = 5) printed $pos = 1.196526 0.930529 0 0.053930 0 0.876599 1.387567
    # 0.116087 1.906762 4.017364 4.162702 7.18738 10.897615 15.476223 17.632529 and
    # $violations$upper = 1 at its points 12–15 (samples 37–40).
    qcc_pos = [1.196526, 0.930529, 0, 0.053930, 0, 0.876599, 1.387567, 0.116087, 1.906762, 4.017364,
               4.162702, 7.18738, 10.897615, 15.476223, 17.632529]
    # Our σ̂ (d2 gap, see above) moves the long upper run by up to 3·10⁻⁵ × (17.6 + 10·0.5) ≈ 7e-4.
    np.testing.assert_allclose(later.upper.sums, qcc_pos, atol=1e-3)
    qcc_sigma = tw.cusum(trial(pistonrings), value="diameter", subgroup="sample", target=74.001176,
                         sigma=0.009785038693).apply(new(pistonrings))
    np.testing.assert_allclose(qcc_sigma.upper.sums, qcc_pos, atol=1e-6)
    assert later.phase == "II" and (later.target, later.sigma, later.h) == (base.target, base.sigma, 5.0)
    assert [(v.subgroup, v.rule) for v in later.violations] == [(s, "cusum_upper") for s in (37, 38, 39, 40)]
    # The upward run started at sample 31 (C⁺ was 0 at 30): N⁺ = 7 at sample 37.
    assert later.upper.counter[11] == 7 and "since subgroup 31" in later.violations[0].message
    # Each side applies alone too, and agrees with the pair.
    np.testing.assert_array_equal(base.upper.apply(new(pistonrings)).statistic, later.upper.statistic)
    np.testing.assert_array_equal(base.lower.apply(new(pistonrings)).statistic, later.lower.statistic)


def test_sbar_c4_within_and_exclude(pistonrings: pd.DataFrame) -> None:
    t = trial(pistonrings)
    chart = tw.ewma(t, value="diameter", subgroup="sample", within="sbar_c4")
    # qcc vignette, "S chart": Standard deviation 0.009829977 (S̄/c4, c4 exact in both).
    assert chart.sigma == pytest.approx(0.009829977, abs=1e-9) and chart.sigma_method == "S̄/c4"
    dropped = tw.cusum(t, value="diameter", subgroup="sample", exclude=[1, 2])
    kept = t[~t["sample"].isin([1, 2])]
    assert dropped.upper.excluded == (1, 2) and len(dropped) == 25
    assert dropped.target == pytest.approx(kept["diameter"].mean(), abs=1e-12)
    assert dropped.sigma == pytest.approx(spc.xbar_r(kept, value="diameter", subgroup="sample").location.sigma)


def test_individuals_use_the_moving_range(viscosity: pd.DataFrame) -> None:
    chart = tw.ewma(trial(viscosity), value="viscosity", subgroup="batch", lam=0.2, L=2.7)
    # qcc vignette: ewma(viscosity[trial], lambda = 0.2, nsigmas = 2.7, …): Center 34.088,
    # Standard deviation 0.5076521 (MR̄/1.128), limits [1,] 33.81387 34.36213, [2,] 33.73694 34.43906.
    assert chart.center == pytest.approx(34.088, abs=5e-4)
    assert chart.sigma == pytest.approx(0.5076521, rel=3.5e-4)  # qcc's d2(2) = 1.128 vs 1.12838
    assert chart.sigma_method == "MR̄/d2" and set(chart.sizes) == {1.0}
    assert chart.lcl[0] == pytest.approx(33.81387, abs=2e-4) and chart.ucl[1] == pytest.approx(34.43906, abs=2e-4)
    assert list(chart.subgroups[:2]) == list(trial(viscosity)["batch"][:2])


# -- by name, studies and plots ---------------------------------------------------------------

def test_control_chart_by_name_and_its_errors(table_9_1: pd.DataFrame) -> None:
    chart = spc.control_chart(table_9_1, chart="EWMA", value="x",
                              params={"lam": 0.1, "L": 2.7, "target": 10, "sigma": 1})
    assert isinstance(chart, tw.EwmaChart) and chart.lam == 0.1 and chart.center == 10.0
    assert np.array_equal(chart.statistic, tw.ewma(table_9_1, value="x", lam=0.1, L=2.7, target=10,
                                                   sigma=1).statistic)
    with pytest.raises(SPCError, match=r"unknown cusum parameter\(s\) 'lam'; the cusum chart takes k, h"):
        spc.control_chart(table_9_1, chart="cusum", value="x", params={"lam": 0.2})
    with pytest.raises(SPCError, match="takes its design in params="):
        spc.control_chart(table_9_1, chart="ewma", value="x", nsigmas=2.7)
    with pytest.raises(SPCError, match="the imr chart takes none"):
        spc.control_chart(table_9_1, chart="imr", value="x", params={"h": 4})
    with pytest.raises(SPCError, match="charts are xbar_r, xbar_s, imr, p, np, c, u, ewma, cusum"):
        spc.control_chart(table_9_1, chart="cusumm", value="x")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"lam": 0.0}, r"smoothing constant λ \(lam\) must be in \(0, 1\], got 0"),
    ({"lam": 1.5}, r"must be in \(0, 1\], got 1.5"),
    ({"L": 0.0}, "limit width L must be positive"),
    ({"lam": float("nan")}, "lam must be finite"),
    ({"lam": "0.2"}, "lam must be a number"),
    ({"sigma": -1.0}, "sigma must be positive"),
    ({"within": "sbar_c4"}, "within='sbar_c4' does not fit individual values"),
    ({"within": "mad"}, "within='mad' is not a sigma estimator"),
])
def test_ewma_errors(table_9_1: pd.DataFrame, kwargs: dict, message: str) -> None:
    with pytest.raises(SPCError, match=message):
        tw.ewma(table_9_1, value="x", **kwargs)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"h": 0.0}, "decision interval h must be positive, got 0"),
    ({"h": -4.0}, "decision interval h must be positive"),
    ({"k": -0.5}, "reference value k must be >= 0"),
    ({"headstart": 5.0}, r"headstart must be >= 0 and below h = 5, got 5"),
])
def test_cusum_errors(table_9_1: pd.DataFrame, kwargs: dict, message: str) -> None:
    with pytest.raises(SPCError, match=message):
        tw.cusum(table_9_1, value="x", **kwargs)


def test_too_few_subgroups_and_no_variation(table_9_1: pd.DataFrame) -> None:
    few = table_9_1.head(6)
    with pytest.raises(SPCError, match=r"too few subgroups to estimate the CUSUM chart's in-control mean "
                                       r"and sigma: 6 subgroups are usable, at least 10 are needed"):
        tw.cusum(few, value="x")
    with pytest.raises(SPCError, match="8 of 30 subgroups are usable"):
        tw.ewma(table_9_1, value="x", exclude=list(range(1, 23)))
    # Known target and sigma need no phase I estimate, so no minimum either.
    assert len(tw.cusum(few, value="x", target=10, sigma=1)) == 6
    assert len(tw.ewma(few, value="x", min_subgroups=5)) == 6
    flat = pd.DataFrame({"sg": np.repeat(np.arange(12), 3), "v": 1.0})
    with pytest.raises(SPCError, match=r"estimated sigma is 0 \(R̄/d2\)"):
        tw.ewma(flat, value="v", subgroup="sg")
    with pytest.raises(SPCError, match="value column 'y' is not in the data"):
        tw.cusum(table_9_1, value="y")
    with pytest.raises(SPCError, match="exclude: subgroup 99 is not in the data"):
        tw.cusum(table_9_1, value="x", exclude=[99])


def test_violations_reach_the_studies_tables(pistonrings: pd.DataFrame) -> None:
    base = tw.cusum(trial(pistonrings), value="diameter", subgroup="sample")
    current = base.apply(new(pistonrings))
    study = Study("M01", "P-1", "diameter", "mm", "cusum", "cusum", base, current, None, None,
                  new(pistonrings).reset_index(drop=True))
    table = violations_table([study])
    assert table["rule"].tolist() == ["cusum_upper"] * 4 and table["chart"].tolist() == ["C⁺"] * 4
    assert table["subgroup"].tolist() == [37, 38, 39, 40]
    assert table["message"].iloc[0].startswith("CUSUM chart, subgroup 37: upper CUSUM C⁺ = 7.19 > h = 5")
    row = studies_table([study]).iloc[0]
    assert (row["points"], row["violations"], row["status"]) == (15, 4, "out of control")


def test_plots_draw_both_cusum_sides_and_the_ewma_limits(table_9_1: pd.DataFrame) -> None:
    cusum = tw.cusum(table_9_1, value="x", target=10, sigma=1)
    fig = plots.control_chart(cusum)
    names = [t.name for t in fig.data]
    assert names == ["C⁺", "0", "h = 5", "−h = −5", "C⁺ violations", "C⁻"]
    traces = {t.name: t for t in fig.data}
    np.testing.assert_allclose(traces["C⁺"].y, C_UPPER, atol=5e-9)
    np.testing.assert_allclose(traces["C⁻"].y, -np.array(C_LOWER), atol=5e-9)
    assert set(traces["h = 5"].y) == {5.0} and set(traces["−h = −5"].y) == {-5.0}
    assert list(traces["C⁺ violations"].x) == [29, 30]
    assert "k = 0.5, h = 5" in fig.layout.title.text and "2 signals" in fig.layout.title.text

    ewma = tw.ewma(table_9_1, value="x", target=10, sigma=1, lam=0.1, L=2.7)
    traces = {t.name: t for t in plots.control_chart(ewma).data}
    np.testing.assert_array_equal(traces["EWMA UCL"].y, ewma.ucl)  # stepped, per point
    np.testing.assert_array_equal(traces["EWMA LCL"].y, ewma.lcl)
    np.testing.assert_array_equal(traces["subgroup mean"].y, TABLE_9_1)
    assert list(traces["EWMA violations"].x) == [29, 30]


# -- average run lengths ----------------------------------------------------------------------

@pytest.mark.parametrize(("h", "shift", "published", "spc_value"), [
    # Montgomery Table 9.3 / Lucas & Crosier (1982) Table 1 (k = 0.5, two-sided), and spc's
    # xcusum.arl(0.5, h, shift, sided = "two") as printed.
    (4.0, 0.0, 168.0, 167.6838),
    (4.0, 0.5, 26.6, 26.6302),
    (4.0, 1.0, 8.38, 8.383132),
    (5.0, 0.0, 465.0, 465.4435),
    (5.0, 1.0, 10.4, 10.37597),
])
def test_cusum_arl_reproduces_the_tables(h: float, shift: float, published: float, spc_value: float) -> None:
    value = tw.cusum_arl(k=0.5, h=h, shift=shift)
    assert value == pytest.approx(spc_value, rel=2e-6)
    assert round(value, 2 if published < 100 else 0) == pytest.approx(published, abs=0.051)


def test_cusum_arl_one_sided_and_headstart() -> None:
    # One-sided, k = 0.5, h = 3, quoted in spc's xcusum.arl examples: Brook & Evans (1972) §4.3,
    # L0 = 117.59 and L1 = 3.75 for a shift of 1.5; Waldmann (1986) 1963 for −0.5 and 17.35 for
    # 0.5 (his 117.4 for 0 is a bound; spc and Brook & Evans give 117.6). spc:
    # xcusum.arl(0.5, 3, c(-0.5, 0, 0.5, 1.5)) = 1962.794519838 117.595704228 17.350516570 3.749108407.
    values = [tw.cusum_arl(k=0.5, h=3, shift=s, sided="one") for s in (-0.5, 0.0, 0.5, 1.5)]
    np.testing.assert_allclose(values, [1962.794519838, 117.595704228, 17.350516570, 3.749108407], rtol=1e-6)
    assert [round(values[1], 2), round(values[3], 2)] == [117.6, 3.75]
    assert [round(values[0]), round(values[2], 2)] == [1963, 17.35]
    # spc: xcusum.arl(0.5, 5, 0, hs = 2.5, sided = "one") printed 895.8343 — the headstart's
    # state is rounded to the chain's grid, hence 1e-4.
    assert tw.cusum_arl(k=0.5, h=5, headstart=2.5, sided="one") == pytest.approx(895.8343, rel=1e-4)
    with pytest.raises(SPCError, match="two-sided ARL of a CUSUM with a headstart"):
        tw.cusum_arl(k=0.5, h=5, headstart=2.5)


@pytest.mark.parametrize(("lam", "L", "shift", "published", "digits"), [
    # Lucas & Saccucci (1990) Table 3, quoted in spc's xewma.arl examples.
    (0.5, 3.071, 0.0, 500.0, 0),
    (0.5, 3.071, 1.0, 17.5, 1),
    (0.03, 2.437, 1.0, 12.6, 1),
    # Crowder (1987) Table 1, same source: λ = 0.5 and 0.05 with c = 2.
    (0.5, 2.0, 0.0, 26.45, 2),
    (0.05, 2.0, 1.0, 8.38, 2),
    # SAS/QC manual (1999), same source: λ = 0.25, c = 3, shift 1 → 11.154267016.
    (0.25, 3.0, 1.0, 11.154267016, 6),
])
def test_ewma_arl_reproduces_the_tables(lam: float, L: float, shift: float, published: float,  # noqa: N803
                                        digits: int) -> None:
    assert round(tw.ewma_arl(lam=lam, L=L, shift=shift), digits) == pytest.approx(published, abs=10.0**-digits)


def test_ewma_arl_of_montgomery_example_9_2_design() -> None:
    # spc: xewma.arl(0.1, 2.7, 0, sided = "two") = 368.9937 and xewma.arl(0.1, 2.7, 1, …) = 9.730012.
    # Montgomery's Table 9.11 (Lucas & Saccucci) gives ARL₀ = 500 and ARL(1σ) = 10.3 for λ = 0.1
    # with L = 2.814 — spc: 499.5796 and 10.33067 — not with the L = 2.7 of Example 9.2, whose
    # in-control ARL is about 369.
    assert tw.ewma_arl(lam=0.1, L=2.7) == pytest.approx(368.9937, rel=1e-6)
    assert tw.ewma_arl(lam=0.1, L=2.7, shift=1.0) == pytest.approx(9.730012, rel=1e-6)
    assert tw.ewma_arl(lam=0.1, L=2.814) == pytest.approx(499.5796, rel=1e-6)
    assert round(tw.ewma_arl(lam=0.1, L=2.814, shift=1.0), 1) == 10.3


@pytest.mark.parametrize(("lam", "published_L"), [(0.05, 2.32), (0.1, 2.55), (0.15, 2.65), (0.2, 2.72),
                                                   (0.25, 2.76)])
def test_ewma_limits_for_an_in_control_arl_of_250(lam: float, published_L: float) -> None:  # noqa: N803
    # Crowder (1989), quoted in spc's xewma.crit examples: L giving an in-control ARL of 250.
    lo, hi = 1.5, 4.0
    for _ in range(16):  # ARL₀ grows with L: bisect to 4e-5
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if tw.ewma_arl(lam=lam, L=mid) < 250 else (lo, mid)
    assert round(lo, 2) == published_L


def test_arl_of_a_chart_uses_its_design(table_9_1: pd.DataFrame) -> None:
    ewma = tw.ewma(table_9_1, value="x", lam=0.1, L=2.7, target=10, sigma=1)
    cusum = tw.cusum(table_9_1, value="x", h=4.0, target=10, sigma=1)
    assert tw.arl(ewma, shift=1.0) == tw.ewma_arl(lam=0.1, L=2.7, shift=1.0)
    assert tw.arl(cusum) == tw.cusum_arl(k=0.5, h=4.0)
    with pytest.raises(SPCError, match="arl\\(\\) takes an EWMA or CUSUM chart"):
        tw.arl(spc.imr(table_9_1, value="x").location)  # type: ignore[arg-type]
