"""SPC figures as a quality engineer reads them: clock time on the x axis, the line broken over
nights and weekends without subgroups, hover naming the subgroup and its time; and the
small-shift view (EWMA and CUSUM of the standardized points) of a study."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from workbench import plots, spc

TZ = "America/Chicago"
MONDAY = dt.datetime(2026, 11, 2, 12, tzinfo=dt.UTC)  # 06:00 in Chicago
OFFSETS = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])


def _frame(times: list[dt.datetime], means: list[float], prefix: str) -> pd.DataFrame:
    rows = []
    for i, (t, m) in enumerate(zip(times, means, strict=True)):
        for j, off in enumerate(OFFSETS):
            rows.append({"machine_id": "M01", "part_number": "P1", "characteristic": "bore",
                         "subgroup_id": f"{prefix}{i:03d}", "time": t + dt.timedelta(seconds=j),
                         "value": m + off})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def study() -> spc.Study:
    # baseline: 30 hourly subgroups on Monday–Tuesday; period: Friday 10 hourly subgroups, then
    # (weekend, no subgroups) Monday 10 more — the last 4 shifted up by 0.5 (a small shift).
    rng = np.random.default_rng(3)
    base_times = [MONDAY + dt.timedelta(hours=h) for h in range(30)]
    friday = MONDAY + dt.timedelta(days=4)
    period_times = ([friday + dt.timedelta(hours=h) for h in range(10)]
                    + [friday + dt.timedelta(days=3, hours=h) for h in range(10)])
    base = _frame(base_times, list(10 + rng.normal(0, 0.3, 30)), "B")
    period = _frame(period_times, list(10 + rng.normal(0, 0.3, 16)) + [10.5] * 4, "S")
    chars = pd.DataFrame([{"part_number": "P1", "characteristic": "bore", "chart_type": "xbar_r",
                           "rules": "western_electric", "lsl": 7.0, "usl": 13.0, "nominal": 10.0}])
    (found,) = spc.studies(pd.concat([base, period], ignore_index=True), chars, start=friday,
                           end=friday + dt.timedelta(days=4), baseline_start=MONDAY)
    return found


def test_control_chart_on_clock_time_breaks_over_the_weekend(study: spc.Study) -> None:
    fig = plots.spc_study(study, tz=TZ)[0]
    points = next(t for t in fig.data if t.name == "X̄")
    x = pd.to_datetime(pd.Series(points.x))
    y = np.asarray(points.y, dtype=float)
    # 20 subgroups and one blank point between Friday 15:00 and Monday 06:00 (plant time)
    assert len(x) == 21 and np.isnan(y).sum() == 1
    gap = int(np.flatnonzero(np.isnan(y))[0])
    assert gap == 10 and x[9] == pd.Timestamp("2026-11-06 15:00") and x[11] == pd.Timestamp("2026-11-09 06:00")
    assert points.connectgaps is False
    # the limit lines break there too
    ucl = next(t for t in fig.data if t.name.startswith("X̄ UCL"))
    assert np.isnan(np.asarray(ucl.y, dtype=float)).sum() == 1
    # hover: the subgroup and its plant time
    assert list(points.customdata[0][[0, 5]]) == ["S000", "Fri 06 Nov 06:00"]
    assert fig.layout.xaxis.title.text == f"time ({TZ})" or fig.layout.xaxis2.title.text == f"time ({TZ})"


def test_without_times_the_axis_is_the_point_number(study: spc.Study) -> None:
    fig = plots.control_chart(study.current)
    points = next(t for t in fig.data if t.name == "X̄")
    assert list(points.x) == list(range(1, 21)) and not np.isnan(np.asarray(points.y, dtype=float)).any()


def test_small_shift_view_is_ewma_and_cusum_of_the_standardized_points(study: spc.Study) -> None:
    pair = study.small_shift_charts()
    assert pair is not None
    ewma, cusum = pair
    z = study.current.location.z
    # EWMA λ = 0.2 from z₀ = 0: z̃₁ = 0.2·z₁, z̃₂ = 0.2·z₂ + 0.8·z̃₁ (Montgomery eq. 9.22)
    assert ewma.statistic[0] == pytest.approx(0.2 * z[0])
    assert ewma.statistic[1] == pytest.approx(0.2 * z[1] + 0.8 * 0.2 * z[0])
    # its first limit: 3·√(0.2/1.8·(1 − 0.8²)) = 3 × 0.2 = 0.6 (σ = 1 on standardized points)
    assert ewma.ucl[0] == pytest.approx(0.6) and ewma.center == 0.0
    # CUSUM k = 0.5: C⁺₁ = max(0, z₁ − 0.5), C⁺₂ = max(0, z₂ − 0.5 + C⁺₁)
    c1 = max(0.0, z[0] - 0.5)
    assert cusum.upper.statistic[0] == pytest.approx(c1)
    assert cusum.upper.statistic[1] == pytest.approx(max(0.0, z[1] - 0.5 + c1))
    assert cusum.h == 5.0
    figures = plots.spc_study(study, tz=TZ, small_shifts=True)
    titles = [f.layout.title.text for f in figures]
    assert any("small shifts: EWMA of the X̄ chart's standardized points" in t for t in titles)
    assert any("small shifts: CUSUM" in t for t in titles)
