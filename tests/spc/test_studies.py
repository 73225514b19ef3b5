"""SPC studies of configured characteristics: the composition of phase I, phase II and capability.

The statistics themselves are tested against qcc in the other SPC tests; here each study must
equal those functions applied by hand to the right subgroups.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from workbench import spc
from workbench.errors import SPCError

START = dt.datetime(2026, 11, 3, 12, tzinfo=dt.UTC)
END = START + dt.timedelta(days=1)
BASE = START - dt.timedelta(days=3)


def _series(machine: str, part: str, char: str, *, hours: range, mean: float = 25.0, seed: int = 1,
            shift_from: int | None = None) -> pd.DataFrame:
    """Five measurements an hour, one subgroup per hour (0 = START), optionally shifted by 3σ."""
    rng = np.random.default_rng(seed)
    rows = []
    for h in hours:
        for k in range(5):
            value = rng.normal(mean, 0.01) + (0.03 if shift_from is not None and h >= shift_from else 0.0)
            rows.append((START + dt.timedelta(hours=h, minutes=10 * k), f"{machine}-{h}", k + 1, value))
    frame = pd.DataFrame(rows, columns=["time", "subgroup_id", "sample_no", "value"])
    return frame.assign(machine_id=machine, part_number=part, characteristic=char, unit="mm")


@pytest.fixture
def characteristics() -> pd.DataFrame:
    return pd.DataFrame({
        "part_number": ["P1", "P2"], "characteristic": ["bore", "pitch"], "unit": ["mm", "mm"],
        "lsl": [24.95, 39.9], "usl": [25.05, 40.1], "nominal": [25.0, 40.0],
        "chart_type": ["xbar_r", "xbar_s"], "subgroup_size": [5, 5], "rules": ["western_electric", "nelson"],
    })


def test_each_series_gets_phase_one_limits_phase_two_and_capability(characteristics) -> None:
    calm = _series("M1", "P1", "bore", hours=range(-48, 12), seed=3)     # a seed with no false alarm
    shifted = _series("M2", "P2", "pitch", hours=range(-48, 12), mean=40.0, seed=2, shift_from=0)
    data = pd.concat([calm, shifted], ignore_index=True)
    found = spc.studies(data, characteristics, start=START, end=END, baseline_start=BASE)
    assert [s.name for s in found] == ["M2 · P2 · pitch", "M1 · P1 · bore"]   # most violations first
    shifted_study, calm_study = found
    assert (shifted_study.chart, shifted_study.rules) == ("xbar_s", "nelson")
    assert (calm_study.chart, calm_study.rules) == ("xbar_r", "western_electric")

    # phase I on the baseline alone, phase II on the period alone, exactly as by hand
    before, now = calm[calm["time"] < START], calm[calm["time"] >= START]
    by_hand = spc.xbar_r(before, value="value", subgroup="subgroup_id", time="time", min_subgroups=20)
    assert calm_study.baseline.location.center == pytest.approx(by_hand.location.center)
    assert calm_study.current.location.ucl == pytest.approx(by_hand.location.ucl)
    assert calm_study.current.phase == "II" and len(calm_study.current.location) == 12
    assert list(calm_study.current.location.statistic) == pytest.approx(
        list(by_hand.apply(now).location.statistic))
    cap = spc.capability(now, value="value", subgroup="subgroup_id", lsl=24.95, usl=25.05, target=25.0,
                         time="time")
    assert calm_study.capability.cpk == pytest.approx(cap.cpk)
    assert calm_study.limits.usl == 25.05 and calm_study.unit == "mm"
    assert calm_study.values.tolist() == pytest.approx(now["value"].tolist())

    # a 3σ shift from the start of the period is flagged
    assert shifted_study.violations and {v.rule for v in shifted_study.violations} & {"nelson1", "nelson2"}

    table = spc.studies_table(found)
    assert table["status"].tolist() == ["out of control", "in control"]
    assert table.loc[1, "cpk"] == pytest.approx(cap.cpk)
    detail = spc.violations_table(found)
    assert len(detail) == sum(len(s.violations) for s in found)
    assert set(detail["machine_id"]) <= {"M1", "M2"}


def test_a_subgroup_belongs_where_it_starts(characteristics) -> None:
    data = _series("M1", "P1", "bore", hours=range(-30, 6))
    # the last baseline subgroup straddles the start: two of its measurements fall after it
    straddling = data["subgroup_id"] == "M1--1"
    data.loc[straddling, "time"] = [START - dt.timedelta(minutes=m) for m in (30, 20, 10)] + \
                                   [START + dt.timedelta(minutes=m) for m in (1, 2)]
    (study,) = spc.studies(data, characteristics, start=START, end=END, baseline_start=BASE)
    assert "M1--1" in set(study.baseline.location.subgroups)
    assert "M1--1" not in set(study.current.location.subgroups)
    assert len(study.current.location) == 6


def test_what_cannot_be_done_is_said(characteristics) -> None:
    short = _series("M1", "P1", "bore", hours=range(-5, 4))
    unknown = _series("M3", "P9", "width", hours=range(-30, 4), seed=4)
    attribute = _series("M4", "P2", "pitch", hours=range(-30, 4), mean=40.0, seed=5)
    chars = characteristics.assign(chart_type=["xbar_r", "p"])
    found = {s.machine_id: s for s in spc.studies(pd.concat([short, unknown, attribute]), chars,
                                                  start=START, end=END, baseline_start=BASE)}
    assert found["M1"].current is None and "too few subgroups" in found["M1"].problem
    assert found["M1"].capability is not None                     # capability needs no limits
    assert found["M3"].chart == "xbar_r" and found["M3"].current is not None
    assert found["M3"].capability is None and "no specification" in found["M3"].notes[0]
    assert found["M4"].current is None and "attribute data" in found["M4"].problem
    table = spc.studies_table(list(found.values())).set_index("machine_id")
    assert table.loc["M1", "status"] == "no limits" and np.isnan(table.loc["M3", "cpk"])
    assert spc.studies(short.iloc[:0], chars, start=START, end=END, baseline_start=BASE) == []
    with pytest.raises(SPCError, match="baseline_start"):
        spc.studies(short, chars, start=START, end=END, baseline_start=END)


def test_rules_can_be_overridden(characteristics) -> None:
    data = _series("M1", "P1", "bore", hours=range(-30, 6))
    (study,) = spc.studies(data, characteristics, start=START, end=END, baseline_start=BASE, rules="rule1")
    assert study.rules == "rule1" and study.current.location.rules == ("we1",)
