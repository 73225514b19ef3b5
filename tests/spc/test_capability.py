"""Capability indices against published numbers.

Expected values: qcc 3.0 vignette "A quick tour of qcc", section "Process capability analysis"
(https://github.com/luca-scr/qcc, docs/articles/qcc.html), processCapability() on the X̄ chart of
the first 25 pistonrings samples (Montgomery's piston rings; n = 125 observations). qcc prints
the indices to 3 decimals (2 for the first call), with 95 % limits by Chou et al. (Cp) and
Bissell (Cpk) — see R/capability.R of the same repository. qcc's σ̂ = R̄/2.326 (tabulated d2)
differs from ours by 3·10⁻⁵ relative; :func:`near` allows for it on top of the printed rounding.
"""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from workbench import spc
from workbench.errors import SPCError


def near(value: float | None, printed: float, decimals: int = 3) -> bool:
    """Equal to a printed qcc value: half a unit of the last printed decimal, plus qcc's d2
    rounding (σ̂ = R̄/2.326 vs R̄/2.32593, 3.1·10⁻⁵ relative)."""
    assert value is not None
    return abs(value - printed) <= 0.5 * 10.0**-decimals + 4e-5 * abs(printed) + 1e-12


def near_pair(interval: tuple[float, float] | None, printed: tuple[float, float],
              decimals: int = 3) -> bool:
    assert interval is not None
    return near(interval[0], printed[0], decimals) and near(interval[1], printed[1], decimals)


@pytest.fixture(scope="module")
def rings(qcc_data) -> pd.DataFrame:
    df = qcc_data("pistonrings")
    return df[df["trial"]]


def test_pistonrings_capability_qcc(rings: pd.DataFrame) -> None:
    cap = spc.capability(rings, value="diameter", subgroup="sample", lsl=73.95, usl=74.05)
    # qcc: "Center = 74.00118, StdDev = 0.009785039, Target = 74 (mid-spec)";
    # Cp 1.70 [1.49, 1.91], Cp_l 1.74, Cp_u 1.66, Cp_k 1.66 [1.45, 1.88], Cpm 1.69 [1.48, 1.90].
    assert cap.n == 125 and cap.within_method == "R̄/d2"
    assert cap.mean == pytest.approx(74.00118, abs=5e-6)
    assert cap.sigma_within == pytest.approx(0.009785039, rel=5e-5)
    assert cap.target == 74.0
    # Three-decimal values of the same analysis with target = 74.02 (printed by qcc):
    # Cp 1.703 [1.491, 1.915], Cp_l 1.743, Cp_u 1.663, Cp_k 1.663 [1.448, 1.878].
    assert near(cap.cp, 1.703)
    assert near_pair(cap.cp_ci, (1.491, 1.915))
    assert near(cap.cpl, 1.743)
    assert near(cap.cpu, 1.663)
    assert near(cap.cpk, 1.663)
    assert near_pair(cap.cpk_ci, (1.448, 1.878))
    assert near(cap.cpm, 1.69, 2)
    assert near_pair(cap.cpm_ci, (1.48, 1.90), 2)


def test_pistonrings_cpm_off_target(rings: pd.DataFrame) -> None:
    cap = spc.capability(rings, value="diameter", subgroup="sample", lsl=73.95, usl=74.05,
                         target=74.02)
    # qcc: Cpm 0.786 with target 74.02.
    assert near(cap.cpm, 0.786)
    # Interval by hand, Boyles (1991) with Patnaik's df ν = n(1+ξ²)²/(1+2ξ²); qcc prints
    # [0.656, 0.915] because it uses ν = n(1+ξ²)/(1+2ξ²) (documented in capability.py).
    xi = (cap.mean - 74.02) / cap.sigma_within
    nu = 125 * (1 + xi**2) ** 2 / (1 + 2 * xi**2)
    lo, hi = stats.chi2.ppf([0.025, 0.975], nu)
    assert cap.cpm_ci == pytest.approx((cap.cpm * math.sqrt(lo / nu), cap.cpm * math.sqrt(hi / nu)))
    nu_qcc = 125 * (1 + xi**2) / (1 + 2 * xi**2)
    lo, hi = stats.chi2.ppf([0.025, 0.975], nu_qcc)
    assert (cap.cpm * math.sqrt(lo / nu_qcc), cap.cpm * math.sqrt(hi / nu_qcc)) == pytest.approx(
        (0.656, 0.915), abs=6e-4)  # qcc's numbers follow from qcc's formula


def test_pistonrings_tight_specs(rings: pd.DataFrame) -> None:
    cap = spc.capability(rings, value="diameter", subgroup="sample", lsl=73.99, usl=74.01)
    # qcc: Cp 0.341 [0.298, 0.383], Cp_l 0.381, Cp_u 0.301, Cp_k 0.301 [0.231, 0.370],
    # Cpm 0.338; "Exp<LSL 0.13%  Obs<LSL 0.12%  Exp>USL 0.18%  Obs>USL 0.16%" — qcc 3.0 prints
    # these fractions with a % sign: Φ((73.99 − 74.00118)/0.009785) = 0.127, i.e. 13 %.
    assert near(cap.cp, 0.341)
    assert near_pair(cap.cp_ci, (0.298, 0.383))
    assert near(cap.cpl, 0.381)
    assert near(cap.cpu, 0.301)
    assert near_pair(cap.cpk_ci, (0.231, 0.370))
    assert near(cap.cpm, 0.338)
    assert near(cap.expected_below, 0.13, 2) and near(cap.expected_above, 0.18, 2)
    assert near(cap.observed_below, 0.12, 2) and near(cap.observed_above, 0.16, 2)


def test_pistonrings_off_center_specs(rings: pd.DataFrame) -> None:
    cap = spc.capability(rings, value="diameter", subgroup="sample", lsl=73.99, usl=74.1)
    # qcc: Target 74.045; Cp 1.874 [1.641, 2.106], Cp_l 0.381, Cp_u 3.367,
    # Cp_k 0.381 [0.305, 0.456], Cpm 0.408.
    assert cap.target == pytest.approx(74.045)
    assert near(cap.cp, 1.874)
    assert near_pair(cap.cp_ci, (1.641, 2.106))
    assert near(cap.cpu, 3.367)
    assert near(cap.cpk, 0.381)
    assert near_pair(cap.cpk_ci, (0.305, 0.456))
    assert near(cap.cpm, 0.408)


def test_performance_indices_by_hand(rings: pd.DataFrame) -> None:
    # No printed Pp in the vignette: by hand, Pp = (USL − LSL)/(6s), Ppk = min(USL − x̄, x̄ − LSL)/(3s)
    # with s the sample standard deviation of all 125 values (Montgomery §8.2.2).
    values = rings["diameter"].tolist()
    s, m = statistics.stdev(values), statistics.fmean(values)
    cap = spc.capability(rings, value="diameter", subgroup="sample", lsl=73.95, usl=74.05)
    assert cap.sigma_overall == pytest.approx(s)
    assert cap.pp == pytest.approx(0.1 / (6 * s))
    assert cap.ppk == pytest.approx(min(74.05 - m, m - 73.95) / (3 * s))
    assert cap.overall_method.startswith("sample standard deviation")
    lo, hi = stats.chi2.ppf([0.025, 0.975], 124)
    assert cap.pp_ci == pytest.approx((cap.pp * math.sqrt(lo / 124), cap.pp * math.sqrt(hi / 124)))


def test_within_from_standard_deviations(rings: pd.DataFrame) -> None:
    # S̄/c4 = 0.009829977 (qcc vignette, S chart "Standard deviation").
    cap = spc.capability(rings, value="diameter", subgroup="sample", lsl=73.95, usl=74.05,
                         within="stdev")
    assert cap.within_method == "S̄/c4"
    assert cap.sigma_within == pytest.approx(0.009829977, abs=1e-9)
    assert cap.cp == pytest.approx(0.1 / (6 * 0.009829977))


def test_individuals_use_moving_ranges(qcc_data) -> None:
    df = qcc_data("viscosity")
    cap = spc.capability(df[df["trial"]], value="viscosity", lsl=32.0, usl=36.0)
    i, _ = spc.imr(df[df["trial"]], value="viscosity")
    assert cap.within_method == "MR̄/d2" and cap.sigma_within == pytest.approx(i.sigma)


def test_given_sigma_and_one_sided_specs(rings: pd.DataFrame) -> None:
    upper = spc.capability(rings, value="diameter", subgroup="sample", usl=74.05, sigma=0.01)
    assert upper.within_method == "given"
    assert upper.cp is None and upper.cpl is None and upper.cpm is None and upper.pp is None
    assert upper.cpk == upper.cpu == pytest.approx((74.05 - upper.mean) / 0.03)
    assert upper.expected_below is None and upper.cp_ci is None
    lower = spc.capability(rings, value="diameter", subgroup="sample", lsl=73.95)
    assert lower.cpk == lower.cpl and lower.cpu is None and lower.ppk == lower.ppl


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"lsl": 74.05, "usl": 73.95}, "wrong order: LSL = 74.05 must be below USL = 73.95"),
    ({"lsl": 74.0, "usl": 74.0}, "wrong order"),
    ({"lsl": 73.95, "usl": 74.05, "target": 74.1}, "target 74.1 is above the USL 74.05"),
    ({"lsl": 73.95, "usl": 74.05, "target": 73.9}, "target 73.9 is below the LSL 73.95"),
    ({"lsl": 73.95, "target": 73.9}, "below the LSL"),
    ({}, "at least one specification limit"),
    ({"lsl": float("nan")}, "finite"),
    ({"lsl": 73.95, "within": "median"}, "unknown within-sigma method"),
    ({"lsl": 73.95, "within": "moving_range"}, "individual values"),
    ({"lsl": 73.95, "confidence_level": 1.5}, "confidence_level"),
])
def test_bad_capability_input(rings: pd.DataFrame, kwargs: dict, message: str) -> None:
    with pytest.raises(SPCError, match=message.replace("(", r"\(")):
        spc.capability(rings, value="diameter", subgroup="sample", **kwargs)


def test_no_variation_is_an_error() -> None:
    df = pd.DataFrame({"g": np.repeat(np.arange(5), 2), "v": 1.0})
    with pytest.raises(SPCError, match="sigma is 0"):
        spc.capability(df, value="v", subgroup="g", lsl=0.0, usl=2.0)


def test_summary_is_json_ready(rings: pd.DataFrame) -> None:
    import json

    cap = spc.capability(rings, value="diameter", subgroup="sample", lsl=73.95, usl=74.05)
    data = json.loads(json.dumps(cap.summary()))
    assert data["within_method"] == "R̄/d2" and len(data["cp_ci"]) == 2
    assert "Bissell" in data["ci_methods"]["cpk"]
