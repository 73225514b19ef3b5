"""Out-of-control episodes: violations merged into stretches, ranked by consequence.

The data are built so that every figure can be worked by hand: each subgroup is
``mean + (−1, −0.5, 0, 0.5, 1)``, so every range is 2 and σ̂ = R̄/d2 = 2 / 2.326 = 0.85985
(d2(5) = 2.326, Montgomery Appendix Table VI); the X̄ chart's standard error is
σ̂/√5 = 0.38453, so a subgroup mean 1.0 above the center line sits at z = 2.6006.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from workbench import spc
from workbench.errors import SPCError
from workbench.summary import EPISODE_COLUMNS

D2_5 = 2.325929  # d2 for n = 5 (Montgomery, Appendix Table VI: 2.326)
SIGMA = 2 / D2_5
T0 = dt.datetime(2026, 11, 2, 6, tzinfo=dt.UTC)
START = T0 + dt.timedelta(days=2)
OFFSETS = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])


def _series(means: list[float], *, machine: str, char: str = "bore", first: dt.datetime = T0,
            part: str = "P1") -> pd.DataFrame:
    rows = []
    for i, m in enumerate(means):
        t = first + dt.timedelta(hours=i)
        for j, off in enumerate(OFFSETS):
            rows.append({"machine_id": machine, "part_number": part, "characteristic": char,
                         "subgroup_id": f"{machine}-{first:%d}-{i:03d}", "time": t + dt.timedelta(seconds=j),
                         "value": m + off, "unit": "mm"})
    return pd.DataFrame(rows)


def _plant(period: dict[str, list[float]], specs: dict[str, tuple[float, float]]) -> list[spc.Study]:
    frames = []
    for machine, means in period.items():
        frames.append(_series([10.0] * 25, machine=machine))  # baseline: 25 subgroups at 10
        frames.append(_series(means, machine=machine, first=START))
    chars = pd.DataFrame([{"part_number": "P1", "characteristic": "bore", "chart_type": "xbar_r",
                           "rules": "western_electric", "lsl": specs["P1"][0], "usl": specs["P1"][1],
                           "nominal": 10.0}])
    data = pd.concat(frames, ignore_index=True)
    return spc.studies(data, chars, start=START, end=START + dt.timedelta(days=1), baseline_start=T0)


def test_a_shift_is_one_episode_with_its_consequence() -> None:
    # 10 subgroups at 10, then 4 at 11 (z = 2.60), then 6 at 10.
    # WE2 (two of three beyond 2σ) fires at points 11, 12, 13; WE3 (four of five beyond 1σ) at 13.
    # The first window of WE2 ([9, 10, 11]) starts with point 9 at the center line: the episode
    # starts at point 10, the first point beyond 2σ — 4 subgroups, 4 violations.
    studies = _plant({"M01": [10.0] * 10 + [11.0] * 4 + [10.0] * 6}, {"P1": (7.0, 13.0)})
    found = spc.episodes(studies)
    assert len(found) == 1
    e = found[0]
    assert (e.subgroups, e.violations, e.rules, e.direction) == (4, 4, ("we2", "we3"), "up")
    assert e.first_subgroup == f"M01-{START:%d}-010" and e.last_subgroup == f"M01-{START:%d}-013"
    assert e.start == START + dt.timedelta(hours=10)
    assert e.end == START + dt.timedelta(hours=13, seconds=4)
    # shift: mean of (x̄ − 10) over the episode / σ̂ = 1.0 / 0.85985 = 1.1630
    assert e.shift_sigma == pytest.approx(1.0 / SIGMA, rel=1e-6)
    assert e.shift_sigma == pytest.approx(1.1630, abs=5e-4)
    # at its worst (three subgroups at 11): Cpk = (13 − 11) / (3 × 0.85985) = 0.7753;
    # expected out = Φ((7 − 11)/σ̂) + Φ((11 − 13)/σ̂) = Φ(−4.652) + Φ(−2.326) = 1.6e-6 + 0.010009
    assert e.mean == pytest.approx(11.0)
    assert e.cpk == pytest.approx(2 / (3 * SIGMA), rel=1e-6)
    assert e.cpk == pytest.approx(0.7753, abs=5e-4)
    assert e.expected_out == pytest.approx(stats.norm.cdf(-4 / SIGMA) + stats.norm.cdf(-2 / SIGMA), rel=1e-6)
    assert e.expected_out == pytest.approx(0.010011, abs=5e-6)
    # every measured value (10 … 12) is inside [7, 13]
    assert e.observed_out == 0.0 and e.measurements == 20
    assert e.consequence == "out of spec"  # Cpk below 1 while it lasted
    assert "Cpk 0.78 at its worst, 1.0% expected above the USL (0 of 20 measured)" in e.description


def test_ranked_by_consequence_not_by_violations() -> None:
    # M01: a long +1.0 shift (8 subgroups: many violations) on a wide specification → capable.
    # M02: a short +1.0 shift (3 subgroups) on a tight one → out of spec; it must rank first.
    period = {"M01": [10.0] * 5 + [11.0] * 8 + [10.0] * 5, "M02": [10.0] * 5 + [11.0] * 3 + [10.0] * 5}
    frames = []
    for machine, means in period.items():
        frames += [_series([10.0] * 25, machine=machine, part=f"P{machine[-1]}"),
                   _series(means, machine=machine, first=START, part=f"P{machine[-1]}")]
    chars = pd.DataFrame([{"part_number": "P1", "characteristic": "bore", "chart_type": "xbar_r",
                           "rules": "western_electric", "lsl": 0.0, "usl": 20.0, "nominal": 10.0},
                          {"part_number": "P2", "characteristic": "bore", "chart_type": "xbar_r",
                           "rules": "western_electric", "lsl": 8.0, "usl": 12.5, "nominal": 10.0}])
    studies = spc.studies(pd.concat(frames, ignore_index=True), chars, start=START,
                          end=START + dt.timedelta(days=1), baseline_start=T0)
    found = spc.episodes(studies)
    assert [e.machine_id for e in found] == ["M02", "M01"]
    m2, m1 = found
    assert m1.violations > m2.violations  # more points flagged, and still ranked below
    # M02: Cpk = (12.5 − 11) / (3σ̂) = 0.5815; M01: (20 − 11) / (3σ̂) = 3.489
    assert m2.cpk == pytest.approx(1.5 / (3 * SIGMA)) and m2.consequence == "out of spec"
    assert m1.cpk == pytest.approx(9 / (3 * SIGMA)) and m1.consequence == "capable"
    table = spc.episodes_table(found)
    assert list(table.columns) == EPISODE_COLUMNS  # the summary's copy of the columns is the same
    assert list(table["machine_id"]) == ["M02", "M01"]
    assert str(table["start"].dt.tz) == "UTC"


@pytest.mark.parametrize(("gap", "expected"), [(2, 1), (5, 2)])
def test_violations_close_together_merge(gap: int, expected: int) -> None:
    # Two 3-subgroup shifts of +1.0 separated by `gap` subgroups at the center line. Each shift's
    # WE2 violations span its own points; with MAX_GAP = 3 points between them they are one
    # episode, with 5 they are two.
    means = [10.0] * 5 + [11.0] * 3 + [10.0] * gap + [11.0] * 3 + [10.0] * 5
    found = spc.episodes(_plant({"M01": means}, {"P1": (7.0, 13.0)}))
    assert len(found) == expected
    assert sum(e.subgroups for e in found) == (3 + gap + 3 if expected == 1 else 6)


def test_a_downward_shift_is_judged_against_the_lsl() -> None:
    found = spc.episodes(_plant({"M01": [10.0] * 10 + [9.0] * 4 + [10.0] * 6}, {"P1": (8.0, 15.0)}))
    (e,) = found
    # Cpk = (9 − 8) / (3σ̂) = 0.3877; Φ((8 − 9)/σ̂) = Φ(−1.163) = 0.1224, the USL side negligible
    assert e.direction == "down" and e.shift_sigma == pytest.approx(-1 / SIGMA)
    assert e.cpk == pytest.approx(1 / (3 * SIGMA))
    assert e.expected_out == pytest.approx(stats.norm.cdf(-1 / SIGMA) + stats.norm.cdf(-6 / SIGMA))
    # the shifted subgroups hold 8.0 (= 9 − 1, on the LSL: not beyond it) — none out
    assert e.observed_out == 0.0
    assert "expected below the LSL" in e.description


def test_in_control_series_have_no_episodes() -> None:
    assert spc.episodes(_plant({"M01": [10.0] * 20}, {"P1": (7.0, 13.0)})) == []
    with pytest.raises(SPCError, match="max_gap"):
        spc.episodes([], max_gap=-1)


def test_studies_ordered_by_their_worst_episode() -> None:
    # M01 (wide specification, capable) has more violations than M02 (tight): the studies come
    # most-violations first, the consequence order puts M02 first; a quiet series comes last.
    period = {"M01": [10.0] * 5 + [11.0] * 8 + [10.0] * 5, "M02": [10.0] * 5 + [11.0] * 3 + [10.0] * 5,
              "M03": [10.0] * 18}
    frames = []
    for machine, means in period.items():
        frames += [_series([10.0] * 25, machine=machine, part=f"P{machine[-1]}"),
                   _series(means, machine=machine, first=START, part=f"P{machine[-1]}")]
    chars = pd.DataFrame([{"part_number": p, "characteristic": "bore", "chart_type": "xbar_r",
                           "rules": "western_electric", "lsl": lo, "usl": hi, "nominal": 10.0}
                          for p, lo, hi in (("P1", 0.0, 20.0), ("P2", 8.0, 12.5), ("P3", 8.0, 12.5))])
    studies = spc.studies(pd.concat(frames, ignore_index=True), chars, start=START,
                          end=START + dt.timedelta(days=1), baseline_start=T0)
    assert [s.machine_id for s in studies] == ["M01", "M02", "M03"]
    ordered = spc.by_consequence(studies, spc.episodes(studies))
    assert [s.machine_id for s in ordered] == ["M02", "M01", "M03"]


@pytest.mark.parametrize("chart", ["cusum", "ewma"])
def test_time_weighted_charts_give_episodes_too(chart: str) -> None:
    # A small sustained shift: 12 subgroups at 10.5 (z = 0.5 / 0.38453 = 1.30 per point — rarely
    # beyond the X̄ chart's 3σ) after 8 at 10. CUSUM (k = 0.5, h = 5): C⁺ grows by 1.30 − 0.5 =
    # 0.80 a point and passes h = 5 at the 7th shifted point (0.80 × 7 = 5.6). EWMA (λ = 0.2,
    # L = 3): z_i → 10.5, its limit 10 + 3 × 0.38453 × √(0.2/1.8) = 10.3845 is passed within a
    # few points. Either way one episode, upward, whose subgroup means sit 0.5 above the target
    # 10: shift = 0.5 / σ̂ = 0.5815 (at most, if it began with the shift; later start keeps it).
    frames = [_series([10.0] * 25, machine="M01"), _series([10.0] * 8 + [10.5] * 12, machine="M01", first=START)]
    chars = pd.DataFrame([{"part_number": "P1", "characteristic": "bore", "chart_type": chart,
                           "rules": "western_electric", "lsl": 8.0, "usl": 12.0, "nominal": 10.0}])
    studies = spc.studies(pd.concat(frames, ignore_index=True), chars, start=START,
                          end=START + dt.timedelta(days=1), baseline_start=T0)
    (e,) = spc.episodes(studies)
    assert e.direction == "up" and e.rules == ((f"{chart}_upper",) if chart == "cusum" else ("ewma",))
    assert e.shift_sigma == pytest.approx(0.5 / SIGMA, rel=1e-6)
    if chart == "cusum":
        # signal at the 7th point at 10.5 (index 14) with N⁺ = 7: the episode starts where the
        # sum left zero, at the first shifted point (index 8) — Montgomery's "shift began N
        # subgroups ago"
        assert e.first_subgroup == f"M01-{START:%d}-008"
    # at its worst: a subgroup at 10.5 → Cpk = (12 − 10.5)/(3σ̂) = 0.5815
    assert e.cpk == pytest.approx(1.5 / (3 * SIGMA), rel=1e-6)


def test_points_out_both_ways_are_a_mixed_episode_without_a_direction() -> None:
    # 11.2, 8.8, 11.2, 8.8 (z = ±1.2 / 0.38453 = ±3.12): rule 1 on every point, and WE2 (two of
    # three beyond 2σ on one side) at the third and fourth; the mean deviation over the four is
    # 0 → "mixed", not "up" or "down".
    means = [10.0] * 6 + [11.2, 8.8, 11.2, 8.8] + [10.0] * 6
    (e,) = spc.episodes(_plant({"M01": means}, {"P1": (7.0, 13.0)}))
    assert e.rules == ("we1", "we2") and e.subgroups == 4
    assert e.direction == "mixed" and e.shift_sigma == pytest.approx(0.0, abs=1e-12)
    assert "no net shift (+0.00σ)" in e.description
