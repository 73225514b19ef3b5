"""Capability for non-normal data against published numbers and R reference implementations.

Sources of the expected values (R is not needed to run these tests; its printed values are
hard-coded with the call that produced them):

* R 4.2.2 with nortest 1.0.4 (``ad.test``), MASS 7.3-58.2 (``boxcox``, ``fitdistr``) and
  survival 3.5-3 (``survreg``), Debian packages r-base-core, r-cran-nortest, r-recommended;
  ``options(digits = 12)``.
* D'Agostino & Stephens (1986), *Goodness-of-Fit Techniques*, Table 4.17 (Stephens 1977,
  Biometrika 64): percentage points of A²(1 + 0.2/√n) for the Weibull / extreme-value case
  0.474 (25 %), 0.637 (10 %), 0.757 (5 %), 0.877 (2.5 %), 1.038 (1 %).
* Minitab's definition of the ISO percentile indices ("ISO method": Pp = (USL − LSL)/(X₀.₉₉₈₆₅ −
  X₀.₀₀₁₃₅), PPU = (USL − X₀.₅)/(X₀.₉₉₈₆₅ − X₀.₅), PPL = (X₀.₅ − LSL)/(X₀.₅ − X₀.₀₀₁₃₅)),
  support.minitab.com, "Methods and formulas for overall capability measures in Nonnormal
  Capability Analysis"; Box-Cox λ "rounds the optimal lambda to 0.5 or the nearest integer",
  support.minitab.com, "Specify a transformation" (Capability Sixpack); Johnson "for overall
  analysis only", support.minitab.com, "Specify a transformation for a Normal Capability
  Analysis".
* Ground truth: data made from a known distribution (exact quantiles, or a seeded sample),
  scored against that distribution — never against numbers the code under test produced.

Data sets: Montgomery's piston rings (tests/spc/data, qcc 3.0); R's ``rivers`` (lengths in
miles of 141 North American rivers, World Almanac 1975, McNeil 1977 — right-skewed, copied from
R ``datasets`` below); W60, 60 Weibull(shape 1.3, scale 12) values (numpy default_rng(3),
rounded to 0.01) and L40, 40 lognormal(1, 0.6) values (default_rng(0), rounded to 0.01), both
written out here so R and the tests read the same numbers.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import special

from workbench import spc
from workbench.errors import SPCError
from workbench.spc.capability import capability
from workbench.spc.nonnormal import (
    box_cox,
    choose_method,
    fit_distribution,
    johnson,
    normality_test,
    percentile_indices,
)

# R: print(rivers)
RIVERS = [
    735, 320, 325, 392, 524, 450, 1459, 135, 465, 600, 330, 336, 280, 315, 870, 906, 202, 329,
    290, 1000, 600, 505, 1450, 840, 1243, 890, 350, 407, 286, 280, 525, 720, 390, 250, 327, 230,
    265, 850, 210, 630, 260, 230, 360, 730, 600, 306, 390, 420, 291, 710, 340, 217, 281, 352, 259,
    250, 470, 680, 570, 350, 300, 560, 900, 625, 332, 2348, 1171, 3710, 2315, 2533, 780, 280, 410,
    460, 260, 255, 431, 350, 760, 618, 338, 981, 1306, 500, 696, 605, 250, 411, 1054, 735, 233,
    435, 490, 310, 460, 383, 375, 1270, 545, 445, 1885, 380, 300, 380, 377, 425, 276, 210, 800,
    420, 350, 360, 538, 1100, 1205, 314, 237, 610, 360, 540, 1038, 424, 310, 300, 444, 301, 268,
    620, 215, 652, 900, 525, 246, 360, 529, 500, 720, 270, 430, 671, 1770,
]
# np.round(np.random.default_rng(3).weibull(1.3, 60) * 12.0, 2)
W60 = [
    2.2, 5.81, 15.54, 22.01, 5.27, 4.23, 6.32, 2.08, 12.01, 1.49, 6.51, 30.4, 4.34, 14.56, 7.21,
    20.72, 11.14, 16.26, 4.62, 3.18, 0.09, 13.5, 11.01, 13.95, 8.65, 7.84, 7.99, 7.93, 1.03,
    21.68, 15.67, 1.48, 16.03, 28.38, 3.56, 9.86, 2.47, 14.07, 21.45, 11.12, 15.16, 13.43, 9.7,
    18.62, 5.8, 20.77, 37.77, 3.43, 23.38, 9.26, 7.23, 3.54, 28.86, 2.43, 16.11, 8.23, 24.41,
    13.43, 36.55, 3.56,
]
# np.round(np.random.default_rng(0).lognormal(1.0, 0.6, 40), 2)
L40 = [
    2.93, 2.51, 3.99, 2.89, 1.97, 3.38, 5.94, 4.8, 1.78, 1.27, 1.87, 2.79, 0.67, 2.38, 1.29, 1.75,
    1.96, 2.25, 3.48, 5.08, 2.52, 6.17, 1.82, 3.36, 4.67, 2.88, 1.74, 1.56, 2.07, 3.1, 1.48, 2.4,
    2.47, 3.76, 3.09, 3.36, 1.84, 2.51, 4.35, 6.66,
]


def frame(values) -> pd.DataFrame:
    return pd.DataFrame({"v": np.asarray(values, dtype=float)})


@pytest.fixture(scope="module")
def rings(qcc_data) -> pd.DataFrame:
    df = qcc_data("pistonrings")
    return df[df["trial"]]


# ---------------------------------------------------------------------------------------------
# Anderson-Darling normality test vs nortest::ad.test
# ---------------------------------------------------------------------------------------------

def test_anderson_darling_pistonrings_matches_nortest(rings: pd.DataFrame, qcc_data) -> None:
    # R: pr <- read.table("tests/spc/data/pistonrings.txt", header = TRUE)
    #    ad.test(pr$diameter[pr$trial])  ->  A = 0.1910193833, p-value = 0.895834262
    test = normality_test(rings["diameter"])
    assert test.n == 125 and test.method == "Anderson-Darling"
    assert test.statistic == pytest.approx(0.1910193833, abs=1e-9)
    assert test.adjusted == pytest.approx(0.1910193833 * (1 + 0.75 / 125 + 2.25 / 125**2), abs=1e-9)
    assert test.p_value == pytest.approx(0.895834262, abs=1e-8)  # A*² < 0.2 branch
    assert test.normal is True
    # R: ad.test(pr$diameter)  (all 200 values)  ->  A = 0.5180748457, p-value = 0.186225077
    everything = normality_test(qcc_data("pistonrings")["diameter"])
    assert everything.statistic == pytest.approx(0.5180748457, abs=1e-9)
    assert everything.p_value == pytest.approx(0.186225077, abs=1e-8)  # 0.34 ≤ A*² < 0.6 branch


@pytest.mark.parametrize(("values", "statistic", "p_value"), [
    # R: ad.test(w)  ->  A = 1.370596911, p-value = 0.00136326399      (0.6 ≤ A*² < 10)
    (W60, 1.370596911, 0.00136326399),
    # R: ad.test((w^0.5 - 1)/0.5)  ->  A = 0.2166737109, p-value = 0.836642872   (0.2 ≤ A*² < 0.34)
    ((np.sqrt(W60) - 1) / 0.5, 0.2166737109, 0.836642872),
    # R: ad.test(log(rivers))  ->  A = 2.047825616, p-value = 3.098537e-05
    (np.log(RIVERS), 2.047825616, 3.098537e-05),
])
def test_anderson_darling_skewed_matches_nortest(values, statistic: float, p_value: float) -> None:
    test = normality_test(values)
    assert test.statistic == pytest.approx(statistic, abs=1e-9)
    assert test.p_value == pytest.approx(p_value, rel=1e-6)
    assert test.normal is (p_value >= 0.05)


def test_anderson_darling_far_from_normal() -> None:
    # R: ad.test(rivers)  ->  A = 12.66209506, p-value < 2.220446e-16; nortest 1.0.4 returns
    # 3.7e-24 for A*² ≥ 10 (its source), which format.pval prints as "< 2.2e-16".
    test = normality_test(RIVERS)
    assert test.statistic == pytest.approx(12.66209506, abs=1e-8)
    assert test.p_value == 3.7e-24 and test.normal is False


def test_normality_test_needs_eight_varied_values() -> None:
    with pytest.raises(SPCError, match=r"needs at least 8 values \(got 7\)"):
        normality_test([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.5])
    with pytest.raises(SPCError, match=r"all 10 values are equal \(2\.5\)"):
        normality_test([2.5] * 10)
    with pytest.raises(SPCError, match="1 missing or infinite value"):
        normality_test([1.0, 2.0, 3.0, 4.0, np.nan, 6.0, 7.0, 8.0, 9.0])


# ---------------------------------------------------------------------------------------------
# Fitted distributions vs MASS::fitdistr / survival::survreg
# ---------------------------------------------------------------------------------------------

def test_weibull_mle_matches_r() -> None:
    # R: survreg(Surv(w) ~ 1, dist = "weibull", control = survreg.control(rel.tolerance = 1e-12))
    #    -> shape 1/scale = 1.31266628214, scale exp(coef) = 12.9072873926
    # R: fitdistr(w, "weibull", control = list(reltol = 1e-15))$estimate
    #    -> shape 1.3126663904, scale 12.9072880309 (optim's stopping point, agrees to 1e-7)
    fit = fit_distribution(W60, "weibull")
    assert fit.parameters["shape"] == pytest.approx(1.31266628214, rel=1e-9)
    assert fit.parameters["scale"] == pytest.approx(12.9072873926, rel=1e-9)
    assert fit.parameters["shape"] == pytest.approx(1.3126663904, rel=1e-6)
    # R: survreg(Surv(rivers) ~ 1, dist = "weibull", ...)  ->  shape 1.43820040983, scale
    # 660.222332717; fitdistr(rivers/1000, "weibull", control = list(reltol = 1e-15)) -> 1.438200864,
    # 0.660223231 (fitdistr fails on the unscaled miles: "optimization failed").
    rivers = fit_distribution(RIVERS, "weibull")
    assert rivers.parameters["shape"] == pytest.approx(1.43820040983, rel=1e-9)
    assert rivers.parameters["scale"] == pytest.approx(660.222332717, rel=1e-9)


def test_lognormal_mle_matches_fitdistr() -> None:
    # R: fitdistr(w, "lognormal")$estimate  ->  meanlog 2.10677930475, sdlog 1.03445666783
    fit = fit_distribution(W60, "lognormal")
    assert fit.parameters == pytest.approx({"meanlog": 2.10677930475, "sdlog": 1.03445666783},
                                           rel=1e-10)
    # Its goodness of fit is the normality test of ln x: R ad.test(log(w)) -> A = 1.030181805,
    # p-value = 0.00961396241.
    assert fit.ad_statistic == pytest.approx(1.030181805, abs=1e-9)
    assert fit.p_value == pytest.approx(0.00961396241, rel=1e-7) and fit.fits is False
    # R: fitdistr(rivers, "lognormal")$estimate  ->  meanlog 6.175878881097, sdlog 0.589382913498
    rivers = fit_distribution(RIVERS, "lognormal")
    assert rivers.parameters == pytest.approx({"meanlog": 6.175878881097, "sdlog": 0.589382913498},
                                              rel=1e-11)


def test_weibull_goodness_of_fit_against_stephens_table() -> None:
    # A² by hand in R with the survreg fit: u <- pweibull(sort(w), k, lam);
    # -n - mean((2*(1:n) - 1)*(log(u) + log(1 - rev(u))))  ->  0.1565383193 (modified 0.1605801213)
    fit = fit_distribution(W60, "weibull")
    assert fit.ad_statistic == pytest.approx(0.1565383193, abs=1e-9)
    # 0.1606 < 0.474, the 25 % point of Table 4.17: p > 0.25, the fit is not rejected.
    assert (fit.p_value, fit.p_bound, fit.fits) == (0.25, "above", True)
    # Same in R for rivers: A² = 6.41085627952 (modified 6.51883457815) > 1.038: p < 0.01.
    rivers = fit_distribution(RIVERS, "weibull")
    assert rivers.ad_statistic == pytest.approx(6.41085627952, abs=1e-8)
    assert (rivers.p_value, rivers.p_bound, rivers.fits) == (0.01, "below", False)
    # L40 in R: A² = 0.653600222735, modified 0.674268876565 — between the 10 % (0.637) and 5 %
    # (0.757) points, so 0.05 < p < 0.10 and the fit is not rejected at 5 %.
    mid = fit_distribution(L40, "weibull")
    assert mid.ad_statistic == pytest.approx(0.653600222735, abs=1e-9)
    assert 0.05 < mid.p_value < 0.10 and mid.p_bound == "" and mid.fits is True
    assert "Table 4.17" in mid.p_method


# ---------------------------------------------------------------------------------------------
# Percentile (ISO 22514-2) indices
# ---------------------------------------------------------------------------------------------

def test_weibull_percentile_capability_matches_hand_computation() -> None:
    # R, with the survreg fit above: q <- qweibull(c(0.00135, 0.5, 0.99865), k, lam)
    #   -> 0.0841246026992, 9.76280249694, 54.3943267719
    # and by the ISO formulas with LSL = 0.5, USL = 45:
    #   Pp 0.819367231618, Ppl 0.957031796921, Ppu 0.789513647035;
    #   pweibull(0.5, k, lam) = 0.0139204088988, pweibull(45, k, lam, lower.tail = FALSE) =
    #   0.00578885804568.
    q = (0.0841246026992, 9.76280249694, 54.3943267719)
    cap = capability(frame(W60), value="v", lsl=0.5, usl=45.0, method="weibull")
    assert cap.method == "weibull"
    assert cap.distribution is not None
    assert list(cap.distribution["percentiles"].values()) == pytest.approx(q, rel=1e-8)
    assert cap.pp == pytest.approx((45 - 0.5) / (q[2] - q[0]), rel=1e-8)
    assert cap.pp == pytest.approx(0.819367231618, rel=1e-8)
    assert cap.ppl == pytest.approx(0.957031796921, rel=1e-8)
    assert cap.ppu == pytest.approx(0.789513647035, rel=1e-8)
    assert cap.ppk == pytest.approx(min((q[1] - 0.5) / (q[1] - q[0]), (45 - q[1]) / (q[2] - q[1])))
    assert cap.expected_below == pytest.approx(0.0139204088988, rel=1e-7)
    assert cap.expected_above == pytest.approx(0.00578885804568, rel=1e-7)
    # Observed fractions are the data's: 0.09 is the one value below 0.5; none above 45.
    assert cap.observed_below == pytest.approx(1 / 60) and cap.observed_above == 0.0
    # A fitted distribution has no within sigma and no interval formula.
    assert cap.cp is None and cap.cpk is None and cap.cpm is None
    assert cap.cpk_ci is None and cap.ppk_ci is None and cap.pp_ci is None
    assert cap.warnings == ()  # the Weibull fits (p > 0.25)


def test_lognormal_percentile_capability_matches_hand_computation() -> None:
    # R: ql <- qlnorm(c(0.00135, 0.5, 0.99865), 2.10677930475, 1.03445666783)
    #   -> 0.369144578996, 8.22171894625, 183.11703944; Ppl 0.983335984496, Ppu 0.210287393339,
    #   plnorm(45, ..., lower.tail = FALSE) = 0.0501643832412
    cap = capability(frame(W60), value="v", lsl=0.5, usl=45.0, method="lognormal")
    assert cap.ppl == pytest.approx(0.983335984496, rel=1e-8)
    assert cap.ppu == pytest.approx(0.210287393339, rel=1e-8)
    assert cap.ppk == cap.ppu
    assert cap.expected_above == pytest.approx(0.0501643832412, rel=1e-7)
    # ... but the lognormal fit is rejected (ln x not normal, p = 0.0096), and the result says so.
    assert cap.warnings == ("the lognormal fit is rejected by the Anderson-Darling test "
                            "(p = 0.010): the percentile indices rest on a distribution the data "
                            "do not follow",)


def test_percentile_indices_of_a_normal_fit_are_the_usual_ones(rings: pd.DataFrame) -> None:
    # For the normal family X₀.₀₀₁₃₅ and X₀.₉₉₈₆₅ are x̄ ∓ z·s with z = Φ⁻¹(0.99865) =
    # 2.99998 (0.135 % is Φ(−3) rounded), so the ISO indices are Pp and Ppk (Montgomery §8.2.2,
    # the qcc-checked study of test_capability.py) times 3/z.
    fit = fit_distribution(rings["diameter"], "normal")
    pct = percentile_indices(fit, lsl=73.95, usl=74.05)
    cap = capability(rings, value="diameter", subgroup="sample", lsl=73.95, usl=74.05)
    z = 2.999976992
    assert cap.pp is not None
    assert pct.pp == pytest.approx(cap.pp * 3 / z, rel=1e-9)
    assert pct.ppk == pytest.approx(cap.ppk * 3 / z, rel=1e-9)


# ---------------------------------------------------------------------------------------------
# Box-Cox vs MASS::boxcox
# ---------------------------------------------------------------------------------------------

def test_box_cox_lambda_matches_mass() -> None:
    # R: bc <- boxcox(rivers ~ 1, lambda = seq(-2, 2, by = 1e-4), plotit = FALSE)
    #    bc$x[which.max(bc$y)] -> -0.5521; range(bc$x[bc$y > max(bc$y) - qchisq(0.95, 1)/2])
    #    -> -0.8104 -0.3021; the same profile maximised by optimize(..., tol = 1e-10) ->
    #    -0.552131486738.
    bc = box_cox(RIVERS)
    assert bc.lam_mle == pytest.approx(-0.552131486738, abs=1e-6)
    assert bc.ci is not None
    assert bc.ci[0] == pytest.approx(-0.8104, abs=1.5e-4)  # MASS's grid step is 1e-4
    assert bc.ci[1] == pytest.approx(-0.3021, abs=1.5e-4)
    # Minitab rounds to the nearest 0.5; -0.5 lies in the interval, so it is used.
    assert bc.lam == -0.5 and bc.rounded is True
    assert "rounded to the nearest 0.5" in bc.note
    # R: ad.test((rivers^-0.5 - 1)/-0.5)  ->  A = 0.4196640004, p-value = 0.32190857
    assert bc.normality.statistic == pytest.approx(0.4196640004, abs=1e-9)
    assert bc.normality.p_value == pytest.approx(0.32190857, rel=1e-7)
    # R: ad.test((rivers^-0.5521 - 1)/-0.5521)  ->  A = 0.3598481247, p-value = 0.444369594
    exact = box_cox(RIVERS, lam=-0.5521)
    assert exact.normality.statistic == pytest.approx(0.3598481247, abs=1e-9)
    assert exact.normality.p_value == pytest.approx(0.444369594, rel=1e-7)
    unrounded = box_cox(RIVERS, round_lambda=False)
    assert unrounded.lam == unrounded.lam_mle and unrounded.rounded is False


def test_box_cox_lambda_w60_and_rounding_outside_the_interval() -> None:
    # R: boxcox(w ~ 1, lambda = seq(-2, 2, by = 1e-4)) -> λ 0.39, interval 0.1826 … 0.6291.
    bc = box_cox(W60)
    assert bc.lam_mle == pytest.approx(0.39, abs=1e-4)
    assert bc.ci == pytest.approx((0.1826, 0.6291), abs=1.5e-4)
    assert bc.lam == 0.5
    # Ground truth: x = y⁴ with y normal is normal after λ = 1/4. With n = 400 the interval
    # excludes both 0 and 0.5, so no rounded value may be used.
    x = np.random.default_rng(11).normal(10.0, 1.0, 400) ** 4
    quarter = box_cox(x)
    assert quarter.ci is not None and quarter.ci[0] < 0.25 < quarter.ci[1]
    assert quarter.ci[0] > 0 and quarter.ci[1] < 0.5
    assert quarter.rounded is False and quarter.lam == quarter.lam_mle
    assert "lies outside the 95 % interval" in quarter.note


def test_box_cox_capability_matches_r() -> None:
    # R (rivers in R's order, individuals): y <- (rivers^-0.5 - 1)/-0.5; LSL 100, USL 2000
    #   lt 1.8, ut 1.95527864045, mean(y) 1.90509802398, sd(y) 0.0251784659452,
    #   mean(abs(diff(y)))/1.128379167 = 0.0219004638652 (MR̄/d2 on the transformed scale);
    #   Pp 1.02785346274, Ppl 1.39137446801, Ppu 0.664332457474,
    #   Cp 1.18169978351, Cpl 1.59963162769, Cpu 0.763767939335,
    #   pnorm(lt, m, s) 1.49567794504e-05, pnorm(ut, m, s, lower.tail = FALSE) 0.0231308674038,
    #   mean(rivers > 2000) 0.0283687943262.
    cap = capability(frame(RIVERS), value="v", lsl=100.0, usl=2000.0, method="box_cox")
    assert cap.method == "box_cox" and "λ = -0.5" in cap.method_reason
    assert cap.distribution is not None
    t = cap.distribution["transformed"]
    assert t["lsl"] == pytest.approx(1.8) and t["usl"] == pytest.approx(1.95527864045)
    assert t["mean"] == pytest.approx(1.90509802398, rel=1e-10)
    assert t["sigma_overall"] == pytest.approx(0.0251784659452, rel=1e-10)
    assert t["sigma_within"] == pytest.approx(0.0219004638652, rel=1e-9)
    assert cap.pp == pytest.approx(1.02785346274, rel=1e-9)
    assert cap.ppl == pytest.approx(1.39137446801, rel=1e-9)
    assert cap.ppu == pytest.approx(0.664332457474, rel=1e-9)
    assert cap.cp == pytest.approx(1.18169978351, rel=1e-9)
    assert cap.cpl == pytest.approx(1.59963162769, rel=1e-9)
    assert cap.cpu == pytest.approx(0.763767939335, rel=1e-9)
    assert cap.cpk == cap.cpu and cap.ppk == cap.ppu
    assert cap.expected_below == pytest.approx(1.49567794504e-05, rel=1e-7)
    assert cap.expected_above == pytest.approx(0.0231308674038, rel=1e-8)
    assert cap.observed_above == pytest.approx(0.0283687943262)
    # The descriptive fields keep the original scale: mean of the miles, not of the transform.
    assert cap.mean == pytest.approx(float(np.mean(RIVERS)))
    assert cap.lsl == 100.0 and cap.usl == 2000.0


def test_box_cox_within_sigma_is_estimated_on_transformed_subgroups(rings: pd.DataFrame) -> None:
    # λ = 0 given: ln(diameter). By hand: R̄/d2 of ln x over the 25 subgroups of 5, d2 = 2.326
    # (Montgomery, Appendix Table VI; 2.32593 unrounded), Cp = (ln 74.05 − ln 73.95)/(6σ̂).
    logs = np.log(rings["diameter"].to_numpy())
    groups = pd.Series(logs).groupby(rings["sample"].to_numpy())
    sigma = float((groups.max() - groups.min()).mean()) / 2.325929  # d2 to 7 digits
    cap = capability(rings, value="diameter", subgroup="sample", lsl=73.95, usl=74.05,
                     method="box_cox", box_cox_lambda=0.0)
    assert cap.distribution is not None and cap.distribution["lambda"] == 0.0
    assert cap.distribution["transformed"]["sigma_within"] == pytest.approx(sigma, rel=1e-6)
    assert cap.cp == pytest.approx((math.log(74.05) - math.log(73.95)) / (6 * sigma), rel=1e-6)
    s = float(np.std(logs, ddof=1))
    assert cap.ppk == pytest.approx(min(math.log(74.05) - logs.mean(),
                                        logs.mean() - math.log(73.95)) / (3 * s), rel=1e-9)
    # A target at mid-specification is transformed too: Cpm uses ln 74.
    assert cap.distribution["transformed"]["target"] == pytest.approx(math.log(74.0))
    assert cap.within_method == "R̄/d2"


# ---------------------------------------------------------------------------------------------
# Johnson (ground truth: exact quantiles of known Johnson distributions)
# ---------------------------------------------------------------------------------------------

_P = (np.arange(1, 201) - 0.5) / 200
_Z = special.ndtri(_P)  # normal scores: a Johnson variable is x = g⁻¹((z − γ)/η)


@pytest.mark.parametrize(("family", "params", "x"), [
    ("SU", (-1.2, 1.7, 3.0, 2.5), 3.0 + 2.5 * np.sinh((_Z + 1.2) / 1.7)),
    ("SB", (0.8, 1.3, 2.0, 10.0), 2.0 + 10.0 / (1 + np.exp(-(_Z - 0.8) / 1.3))),
    ("SL", (-2.0, 1.5, 4.0, 1.0), 4.0 + np.exp((_Z + 2.0) / 1.5)),
])
def test_johnson_recovers_known_parameters(family: str, params: tuple, x: np.ndarray) -> None:
    # Slifker & Shapiro's formulas are exact on exact quantiles; the sample quantiles here are
    # interpolated between the 200 plotting positions, so the parameters come back to ~0.1 %.
    fit = johnson(x)
    assert fit.family == family
    assert (fit.gamma, fit.eta, fit.epsilon, fit.lam) == pytest.approx(params, rel=2e-3, abs=2e-3)
    assert fit.normality.p_value > 0.99
    assert 0.25 <= fit.z <= 1.25


def test_johnson_capability_expected_fraction_is_the_true_tail() -> None:
    # SU(γ = −1.2, η = 1.7, ε = 3, λ = 2.5): P(X > 12) = 1 − Φ(γ + η asinh((12 − 3)/2.5)).
    x = 3.0 + 2.5 * np.sinh((_Z + 1.2) / 1.7)
    truth = float(special.ndtr(-(-1.2 + 1.7 * np.arcsinh((12.0 - 3.0) / 2.5))))
    cap = capability(frame(x), value="v", usl=12.0, method="johnson")
    assert cap.method == "johnson" and "Johnson SU" in cap.method_reason
    assert cap.expected_above == pytest.approx(truth, rel=0.02)
    # Overall only (Minitab: "Johnson transformation (for overall analysis only)").
    assert cap.cp is None and cap.cpk is None and cap.cpk_ci is None
    assert cap.ppu == cap.ppk and cap.ppk_ci is not None
    assert cap.distribution is not None and cap.distribution["family"] == "johnson SU"


# ---------------------------------------------------------------------------------------------
# The motivating case and method="auto"
# ---------------------------------------------------------------------------------------------

def test_right_skewed_process_normal_method_misses_the_tail_auto_finds_it() -> None:
    # Ground truth: 5000 parts from lognormal(0, 0.5); the USL is the true 98.8 % point, so
    # 1.2 % of the process is above it.
    x = np.random.default_rng(2024).lognormal(0.0, 0.5, 5000)
    usl = math.exp(0.5 * float(special.ndtri(0.988)))
    df = frame(x)

    normal = capability(df, value="v", usl=usl)
    # The normal study calls this process capable-looking (Cpk ≈ 1.19) and expects ~180 ppm
    # above the USL, while 1.16 % of the parts are there — 60 times more.
    assert normal.method == "normal" and normal.cpk is not None and normal.cpk > 1.1
    assert normal.observed_above is not None and normal.expected_above is not None
    assert normal.expected_above < normal.observed_above / 20
    assert normal.normality is not None and normal.normality.normal is False
    assert normal.warnings[0].startswith("data are not normal (Anderson-Darling p < 0.001)")
    assert "method='auto'" in normal.warnings[0]

    auto = capability(df, value="v", usl=usl, method="auto")
    assert auto.method == "lognormal"
    assert "Lognormal is the only distribution that fits" in auto.method_reason
    assert auto.distribution is not None
    assert auto.distribution["parameters"]["sdlog"] == pytest.approx(0.5, abs=0.02)
    # Tolerance: the observed fraction is binomial with SE √(p(1−p)/n) = 0.0015 at p = 0.012,
    # n = 5000; the fitted tail's own SE is about φ(2.26)·√((1 + 2.26²/2)/n) ≈ 0.0008. Three
    # combined SEs (0.005) separate a right answer from the normal method's 0.0002.
    se = math.sqrt(0.012 * 0.988 / 5000)
    assert auto.expected_above is not None and auto.observed_above is not None
    assert abs(auto.expected_above - auto.observed_above) < 3 * se
    assert abs(auto.expected_above - 0.012) < 3 * math.hypot(se, 0.0008)
    assert abs(normal.expected_above - 0.012) > 3 * math.hypot(se, 0.0008)
    # Ppk from the percentile method is far below the normal one: the process is not capable.
    assert auto.ppk < 0.7 < normal.ppk
    assert auto.warnings == ()


def test_auto_keeps_normal_data_normal(rings: pd.DataFrame) -> None:
    cap = capability(rings, value="diameter", subgroup="sample", lsl=73.95, usl=74.05,
                     method="auto")
    plain = capability(rings, value="diameter", subgroup="sample", lsl=73.95, usl=74.05)
    assert cap.method == "normal" and cap.warnings == () and plain.warnings == ()
    assert "consistent with a normal distribution (Anderson-Darling p = 0.896" in cap.method_reason
    assert cap.cpk == plain.cpk and cap.ppk == plain.ppk  # the qcc-checked numbers
    assert plain.normality is not None and plain.normality.p_value == pytest.approx(0.895834262)


def test_auto_prefers_the_distribution_that_fits() -> None:
    # W60: normal rejected (p = 0.0014), lognormal rejected (p = 0.0096), Weibull fits (p > 0.25).
    choice = choose_method(W60)
    assert choice.method == "weibull" and choice.fits is True
    assert "lognormal (p = 0.010), rejected; Weibull (p > 0.25), fits" in choice.reason
    cap = capability(frame(W60), value="v", lsl=0.5, usl=45.0, method="auto")
    assert cap.method == "weibull" and cap.ppk == pytest.approx(0.789513647035, rel=1e-8)
    assert cap.method_reason == choice.reason


def test_auto_falls_back_to_box_cox_when_no_distribution_fits() -> None:
    # rivers: lognormal p = 3.1e-05, Weibull p < 0.01, Box-Cox λ = −0.5 gives p = 0.32.
    cap = capability(frame(RIVERS), value="v", usl=2000.0, method="auto")
    assert cap.method == "box_cox"
    assert "no distribution fits" in cap.method_reason
    assert "Box-Cox transformation makes them normal" in cap.method_reason
    assert cap.ppk == pytest.approx(0.664332457474, rel=1e-9)  # R, as in the Box-Cox test


def test_auto_uses_johnson_for_data_with_negative_values() -> None:
    # Left-skewed data crossing zero: only the Johnson transformation applies.
    x = 3.0 - np.random.default_rng(8).lognormal(0.0, 0.6, 300)
    assert x.min() < 0
    cap = capability(frame(x), value="v", lsl=-4.0, usl=3.5, method="auto")
    assert cap.method == "johnson"
    assert "lognormal: needs values > 0" in cap.method_reason
    assert "Johnson transformation makes them normal" in cap.method_reason


def test_auto_when_nothing_fits_says_the_indices_are_approximate() -> None:
    # Ground truth: an even mixture of N(10, 0.5) and N(20, 0.5) is bimodal, which no normal,
    # lognormal, Weibull or normalising transformation of the Johnson system describes.
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(10, 0.5, 300), rng.normal(20, 0.5, 300)])
    choice = choose_method(x)
    assert choice.fits is False
    assert "no transformation makes them normal" in choice.reason
    assert all(not c.fits for c in (choice.candidates["lognormal"], choice.candidates["weibull"]))
    assert not choice.candidates["box_cox"].normality.normal
    cap = capability(frame(x), value="v", lsl=9.0, usl=21.0, method="auto")
    assert cap.method == choice.method
    assert cap.warnings[-1] == ("no method fits the data at the 5 % level; the indices use the "
                                "closest one and are approximate")


# ---------------------------------------------------------------------------------------------
# Errors, notes and the summary
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["box_cox", "weibull", "lognormal"])
def test_positive_only_methods_say_which_value_is_not_positive(method: str) -> None:
    values = [*W60[:20], -0.4, 0.0]
    with pytest.raises(SPCError, match=r"needs values > 0; 2 value\(s\) are ≤ 0, the smallest "
                                       r"is -0\.4 \(use method='johnson'"):
        capability(frame(values), value="v", usl=40.0, method=method)


def test_too_few_values_for_a_non_normal_method() -> None:
    with pytest.raises(SPCError, match=r"method='weibull' needs at least 8 values to test the fit "
                                       r"\(got 5\)"):
        capability(frame(W60[:5]), value="v", usl=40.0, method="weibull")
    few = capability(frame(W60[:5]), value="v", usl=40.0)
    assert few.normality is None
    assert few.warnings == ("normality not tested: the Anderson-Darling test needs at least 8 "
                            "values (got 5)",)


def test_spec_limits_that_cannot_be_transformed() -> None:
    df = frame(RIVERS)
    # An LSL at 0 has no Box-Cox image, but no river is shorter than 0 miles: left out, said so.
    cap = capability(df, value="v", lsl=0.0, usl=2000.0, method="box_cox")
    assert cap.ppl is None and cap.cpl is None and cap.pp is None and cap.cpm is None
    assert cap.ppk == pytest.approx(0.664332457474, rel=1e-9)
    assert cap.expected_below == 0.0 and cap.lsl == 0.0
    assert cap.warnings == ("the LSL 0 cannot be transformed by the Box-Cox transformation (it is "
                            "at or below 0); no value can fall below it, so it is left out of the "
                            "indices and the expected fraction below is 0",)
    with pytest.raises(SPCError, match="no specification limit is left after the Box-Cox "
                                       "transformation: the LSL -5 cannot be transformed"):
        capability(df, value="v", lsl=-5.0, method="box_cox")
    with pytest.raises(SPCError, match="the USL -1 cannot be transformed by the Box-Cox "
                                       "transformation: it is at or below 0 of the values, so "
                                       "every value lies above it"):
        capability(df, value="v", usl=-1.0, method="box_cox")
    # A bounded Johnson SB (2 < x < 12): a USL of 15 can never be exceeded.
    x = 2.0 + 10.0 / (1 + np.exp(-(_Z - 0.8) / 1.3))
    sb = capability(frame(x), value="v", lsl=3.0, usl=15.0, method="johnson")
    assert sb.expected_above == 0.0 and sb.ppu is None and sb.ppl == sb.ppk
    assert "the USL 15 cannot be transformed by the Johnson transformation" in sb.warnings[0]
    with pytest.raises(SPCError, match=r"both specification limits lie beyond the range of the "
                                       r"Johnson transformation \(2\.0\d* … 1[12]\.9\d*\): the "
                                       r"fitted model puts no value out of specification"):
        capability(frame(x), value="v", lsl=1.0, usl=15.0, method="johnson")


def test_normality_warning_only_when_rejected(rings: pd.DataFrame) -> None:
    skewed = capability(frame(W60), value="v", usl=45.0)
    assert skewed.warnings == (
        "data are not normal (Anderson-Darling p = 0.001): the normal indices and expected "
        "fractions misstate the tails (on skewed data they understate the long tail); use "
        "method='auto'",)
    fine = capability(rings, value="diameter", subgroup="sample", usl=74.05)
    assert fine.warnings == () and fine.normality is not None and fine.normality.normal


def test_bad_method_options(rings: pd.DataFrame) -> None:
    with pytest.raises(SPCError, match="unknown capability method 'gamma'; use one of normal, "
                                       "auto, box_cox"):
        capability(rings, value="diameter", subgroup="sample", usl=74.05, method="gamma")
    with pytest.raises(SPCError, match="sigma= is a within sigma on the original scale"):
        capability(rings, value="diameter", subgroup="sample", usl=74.05, sigma=0.01,
                   method="box_cox")
    with pytest.raises(SPCError, match=r"Box-Cox λ must be between −5 and 5 \(got 7\)"):
        box_cox(W60, lam=7)
    with pytest.raises(SPCError, match="unknown distribution 'gamma'"):
        fit_distribution(W60, "gamma")


@pytest.mark.parametrize("method", ["normal", "auto", "box_cox", "johnson", "weibull", "lognormal"])
def test_summary_is_json_ready_for_every_method(method: str) -> None:
    cap = capability(frame(W60), value="v", lsl=0.5, usl=45.0, method=method)
    data = json.loads(json.dumps(cap.summary()))
    assert data["normality"]["method"] == "Anderson-Darling"
    assert data["normality"]["p_value"] == pytest.approx(0.00136326399, rel=1e-7)
    assert isinstance(data["warnings"], list)
    assert data["method"] == ("weibull" if method == "auto" else method)
    assert (data["distribution"] is None) == (method == "normal")


def test_package_namespace_capability_is_the_extended_one() -> None:
    # spc.capability is re-exported from the package; the new options reach it.
    cap = spc.capability(frame(W60), value="v", usl=45.0, method="weibull")
    assert cap.method == "weibull"
