"""Non-normal capability where the analyst sees it: SPC studies, the studies table and the
capability histogram.

Ground truth: a right-skewed (lognormal) characteristic whose upper specification limit is set at
the true 98.8 % point of its distribution, so 1.2 % of parts are truly above the USL — the case of
the issue, where the normal method called the process capable (Cpk ≈ 1.3) with ~70 ppm expected
above.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from workbench import plots, spc
from workbench.spc.nonnormal import fitted_cdf

T0 = dt.datetime(2026, 11, 2, 6, tzinfo=dt.UTC)
START = T0 + dt.timedelta(days=4)
MEANLOG, SDLOG = 0.0, 0.5
USL = float(np.exp(MEANLOG + SDLOG * stats.norm.ppf(0.988)))  # true P(X > USL) = 1.2 %


@pytest.fixture(scope="module")
def skewed() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    rows = []
    for i in range(240):  # 48 baseline subgroups, 192 in the period (5 per hour)
        t = T0 + dt.timedelta(hours=i if i < 48 else 96 + (i - 48) / 2)
        for j, v in enumerate(rng.lognormal(MEANLOG, SDLOG, 5)):
            rows.append({"machine_id": "M01", "part_number": "P1", "characteristic": "flatness",
                         "subgroup_id": f"S{i:03d}", "time": t + dt.timedelta(seconds=j), "value": v})
    return pd.DataFrame(rows)


def _studies(data: pd.DataFrame, method: str) -> spc.Study:
    chars = pd.DataFrame([{"part_number": "P1", "characteristic": "flatness", "chart_type": "xbar_r",
                           "rules": "western_electric", "lsl": None, "usl": USL, "nominal": None}])
    (study,) = spc.studies(data, chars, start=START, end=START + dt.timedelta(days=5), baseline_start=T0,
                           capability_method=method)
    return study


def test_normal_method_warns_and_auto_fits_the_tail(skewed: pd.DataFrame) -> None:
    normal, auto = _studies(skewed, "normal"), _studies(skewed, "auto")
    n = normal.capability.n
    assert n == 960
    observed = normal.capability.observed_above
    # 960 parts, true rate 1.2 %: the observed fraction is within 3 standard errors of it
    se = np.sqrt(0.012 * 0.988 / n)
    assert abs(observed - 0.012) < 3 * se
    # normal: the tail is understated by more than 3 standard errors, and the study says so
    assert normal.capability.method == "normal"
    assert normal.capability.expected_above < 0.012 - 3 * se
    assert not normal.capability.normality.normal
    assert any("not normal" in note and "method='auto'" in note for note in normal.notes)
    # auto: a fitted model whose expected fraction is within 3 standard errors of the truth
    assert auto.capability.method in ("lognormal", "box_cox", "johnson")
    assert abs(auto.capability.expected_above - 0.012) < 3 * se
    assert auto.capability.method_reason  # says why
    table = spc.studies_table([normal, auto])
    assert list(table["capability_method"]) == ["normal", auto.capability.method]
    assert table["normality_p"].iloc[0] < 0.05
    assert "not normal" in table["note"].iloc[0]


@pytest.mark.parametrize("method", ["box_cox", "johnson", "weibull", "lognormal"])
def test_the_plotted_model_is_the_one_the_indices_rest_on(skewed: pd.DataFrame, method: str) -> None:
    study = _studies(skewed, method)
    cap = study.capability
    cdf = fitted_cdf(cap.distribution)
    assert cdf is not None
    # the distribution function rebuilt for the plot gives the study's own expected fraction
    assert 1 - cdf(np.array([USL]))[0] == pytest.approx(cap.expected_above, rel=1e-6, abs=1e-12)
    figures = plots.spc_study(study)
    hist = figures[-1]
    names = [t.name for t in hist.data]
    assert any(name.startswith("fitted: ") for name in names), names
    fitted = next(t for t in hist.data if t.name.startswith("fitted: "))
    # the curve is counts per histogram bin: it integrates to about the number of values shown
    x, y = np.asarray(fitted.x), np.asarray(fitted.y)
    width = float(hist.data[0].xbins.size)
    assert np.sum(y) * (x[1] - x[0]) / width == pytest.approx(cap.n, rel=0.05)
    assert method.split("_")[0].lower() in plots.capability_label(cap).lower().replace("-", "_")


def test_capability_label_says_what_a_number_rests_on(skewed: pd.DataFrame) -> None:
    normal = _studies(skewed, "normal").capability
    label = plots.capability_label(normal)
    assert label.startswith(f"Cpk {normal.cpk:.2f}, Ppk {normal.ppk:.2f} (normal; n = 960)")
    assert "data not normal (Anderson-Darling p" in label
    weibull = _studies(skewed, "weibull").capability
    assert plots.capability_label(weibull).startswith(f"Ppk {weibull.ppk:.2f} (Weibull, percentile method")
    assert fitted_cdf(None) is None


def test_auto_falls_back_to_normal_when_the_fitted_model_cannot_take_the_limits() -> None:
    from workbench.errors import SPCError

    # 400 values of 10 + 2·Beta(2, 2): bounded in (10, 12), so no part can be outside [9, 13].
    # Normality is rejected and the best model is a Johnson SB bounded inside the limits, which
    # puts no value out of specification and has no finite indices: auto must say so and show
    # the normal indices (with their warning), not fail the study; an explicit johnson fails.
    x = 10 + 2 * np.random.default_rng(0).beta(2, 2, 400)
    data = pd.DataFrame({"v": x})
    cap = spc.capability(data, value="v", lsl=9.0, usl=13.0, method="auto")
    assert cap.method == "normal" and cap.ppk is not None and cap.ppk > 1.33
    assert "Johnson transformation chosen for these data cannot be used" in cap.warnings[0]
    assert any("data are not normal" in w for w in cap.warnings)
    with pytest.raises(SPCError, match="both specification limits lie beyond the range of the Johnson"):
        spc.capability(data, value="v", lsl=9.0, usl=13.0, method="johnson")
