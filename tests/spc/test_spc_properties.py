"""Properties that must hold for any data (hypothesis)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from workbench import spc

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def subgroup_frames(draw: st.DrawFn, *, min_size: int = 2) -> pd.DataFrame:
    """Subgrouped measurements on a 0.001 grid (like a gauge), 10–20 subgroups of 2–8."""
    m = draw(st.integers(10, 20))
    sizes = draw(st.lists(st.integers(min_size, 8), min_size=m, max_size=m))
    ints = draw(st.lists(st.integers(-5000, 5000), min_size=sum(sizes), max_size=sum(sizes)))
    values = np.array(ints) / 1000.0
    groups = np.repeat(np.arange(m), sizes)
    df = pd.DataFrame({"g": groups, "v": values})
    assume((df.groupby("g")["v"].agg(np.ptp) > 0).any())  # some within-subgroup variation
    return df


@st.composite
def attribute_frames(draw: st.DrawFn) -> pd.DataFrame:
    m = draw(st.integers(10, 25))
    sizes = draw(st.lists(st.integers(1, 400), min_size=m, max_size=m))
    counts = [draw(st.integers(0, n)) for n in sizes]
    df = pd.DataFrame({"D": counts, "n": sizes})
    assume(0 < df["D"].sum() < df["n"].sum())
    return df


def _full(chart: spc.ControlChart, name: str) -> np.ndarray:
    return np.broadcast_to(np.asarray(getattr(chart, name), dtype=float), chart.statistic.shape)


@SETTINGS
@given(subgroup_frames())
def test_xbar_limits_symmetric_and_dispersion_lcl_nonnegative(df: pd.DataFrame) -> None:
    for fn in (spc.xbar_r, spc.xbar_s):
        xbar, disp = fn(df, value="v", subgroup="g", rules="none")
        center, lcl, ucl = _full(xbar, "center"), _full(xbar, "lcl"), _full(xbar, "ucl")
        assert np.allclose(ucl - center, center - lcl, rtol=1e-9, atol=1e-12)
        assert np.allclose(ucl - center, 3 * xbar.sigma / np.sqrt(xbar.sizes))
        assert (_full(disp, "lcl") >= 0).all()
        assert (_full(disp, "ucl") > _full(disp, "center")).all()


@SETTINGS
@given(st.lists(st.integers(-10_000, 10_000), min_size=10, max_size=60))
def test_individuals_limits_symmetric_and_mr_lcl_zero(ints: list[int]) -> None:
    assume(len(set(ints)) > 1 and np.any(np.diff(ints) != 0))
    i, mr = spc.imr(pd.DataFrame({"x": np.array(ints) / 100.0}), value="x", rules="none")
    assert abs((i.ucl - i.center) - (i.center - i.lcl)) <= 1e-9 * max(1.0, abs(i.center))
    assert mr.lcl == 0.0 and mr.ucl > mr.center > 0


@SETTINGS
@given(attribute_frames())
def test_attribute_limits_symmetric_before_clipping(df: pd.DataFrame) -> None:
    charts = [spc.p_chart(df, defectives="D", size="n", rules="none"),
              spc.u_chart(df, defects="D", size="n", rules="none"),
              spc.c_chart(df, defects="D", rules="none")]
    same_n = df.assign(n=int(df["n"].max()))
    charts.append(spc.np_chart(same_n, defectives="D", size="n", rules="none"))
    for chart in charts:
        center, se = _full(chart, "center"), _full(chart, "se")
        lcl, ucl = _full(chart, "lcl"), _full(chart, "ucl")
        raw_lcl, raw_ucl = center - 3 * se, center + 3 * se
        assert np.allclose(raw_ucl - center, center - raw_lcl)          # symmetric before clipping
        assert np.allclose(lcl, np.maximum(raw_lcl, 0.0))               # clipped only at zero
        assert (lcl >= 0).all()
        assert np.array_equal(chart.one_sided, raw_lcl < 0)
        top = {"p": 1.0, "np": chart.sizes}.get(chart.chart_type, np.inf)
        assert np.allclose(ucl, np.minimum(raw_ucl, top))


@st.composite
def capability_cases(draw: st.DrawFn) -> tuple[pd.DataFrame, float, float, float]:
    df = draw(subgroup_frames())
    spread = float(df["v"].max() - df["v"].min())
    lsl = float(df["v"].mean()) - draw(st.floats(0.05, 3.0)) * max(spread, 0.01)
    usl = float(df["v"].mean()) + draw(st.floats(0.05, 3.0)) * max(spread, 0.01)
    shift = draw(st.integers(-100_000, 100_000)) / 8.0  # exact in binary: no rounding noise
    return df, lsl, usl, shift


@SETTINGS
@given(capability_cases())
def test_capability_invariant_to_shift_and_cpk_at_most_cp(case) -> None:
    df, lsl, usl, shift = case
    base = spc.capability(df, value="v", subgroup="g", lsl=lsl, usl=usl)
    moved = spc.capability(df.assign(v=df["v"] + shift), value="v", subgroup="g",
                           lsl=lsl + shift, usl=usl + shift)
    for name in ("cp", "cpl", "cpu", "cpk", "cpm", "pp", "ppk"):
        a, b = getattr(base, name), getattr(moved, name)
        assert abs(a - b) <= 1e-6 * max(1.0, abs(a)), name
    assert base.cpk <= base.cp + 1e-12
    assert base.ppk <= base.pp + 1e-12
    assert base.cpm <= base.cp + 1e-12
    assert base.cp_ci[0] < base.cp < base.cp_ci[1]
