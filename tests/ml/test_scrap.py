"""The scrap anomaly detector on small hand-built hours: the binomial score, episodes, hypotheses."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from workbench.errors import MLError
from workbench.ml.scrap import ScrapAnomalyDetector, scrap_mix

H0 = pd.Timestamp("2026-11-02 12:00", tz="UTC")


def hours(machine: str, part: str, produced: list[int], rejects: list[int], start=H0, **extra) -> pd.DataFrame:
    n = len(produced)
    frame = pd.DataFrame({"machine_id": machine, "part_number": part,
                          "hour": pd.date_range(start, periods=n, freq="h"),
                          "produced": np.asarray(produced, float), "rejects": np.asarray(rejects, float)})
    for key, value in extra.items():
        frame[key] = value
    return frame


def test_the_score_is_the_binomial_tail_of_the_hours_rejects() -> None:
    # 100 hours of 50 cycles with 1 reject: baseline 2 % (no shrinkage with prior_strength=0).
    train = hours("M01", "P1", [50] * 100, [1] * 100)
    det = ScrapAnomalyDetector(prior_strength=0.0, alpha=1e-3).fit(train)
    assert det.baseline_.pair_rate[("M01", "P1")] == pytest.approx(0.02)
    test = hours("M01", "P1", [50, 50], [1, 8], start=H0 + pd.Timedelta(hours=200))
    scored = det.score(test)
    # P(X >= 8 | n=50, p=0.02) = 1 - sum_{k<8} C(50,k) 0.02^k 0.98^(50-k), by hand:
    tail = 1 - sum(math.comb(50, k) * 0.02**k * 0.98 ** (50 - k) for k in range(8))
    # The three-hour window (100 cycles, 9 rejects) is less surprising than the hour alone.
    assert scored["score"].iloc[1] == pytest.approx(-math.log10(tail), rel=1e-9)
    assert list(scored["flagged"]) == [False, True]
    assert scored["expected"].tolist() == pytest.approx([1.0, 1.0])


def test_flagged_hours_merge_into_episodes_with_ranked_hypotheses() -> None:
    train = pd.concat([hours("M01", "P1", [50] * 100, [1] * 100, tool_run_min=np.linspace(0, 900, 100)),
                       hours("M02", "P1", [50] * 100, [1] * 100, tool_run_min=np.linspace(0, 900, 100))])
    det = ScrapAnomalyDetector().fit(train)
    later = H0 + pd.Timedelta(hours=300)
    test = pd.concat([hours("M01", "P1", [50] * 4, [1, 9, 10, 1], start=later, tool_run_min=100.0),
                      hours("M02", "P1", [50] * 4, [1, 8, 9, 1], start=later, tool_run_min=100.0)])
    mix = pd.concat([hours("M01", "P1", [0] * 4, [0] * 4, start=later), hours("M02", "P1", [0] * 4, [0] * 4,
                                                                               start=later)])
    mix = mix.assign(material_qty=[0, 8, 9, 0, 0, 7, 8, 0], dimension_qty=0.0)[
        ["machine_id", "part_number", "hour", "material_qty", "dimension_qty"]]
    found = det.detect(test, mix=mix)
    assert list(found["machine_id"]) == ["M01", "M02"]
    first = found.iloc[0]
    assert first["time_start"] == later + pd.Timedelta(hours=1) and first["hours"] == 2
    assert first["rejects"] == 19 and first["top_cause"] == "material"
    _cause, evidence, text = first["hypotheses"][0]
    assert "17 of 19 rejects are material defects" in text and "P1 scraps on M02 at the same time" in text
    assert 0 < evidence <= 1


def test_a_worn_tool_with_dimension_rejects_is_the_first_hypothesis() -> None:
    train = hours("M01", "P1", [50] * 100, [1] * 100, tool_run_min=np.linspace(0, 1000, 100))
    det = ScrapAnomalyDetector().fit(train)
    later = H0 + pd.Timedelta(hours=300)
    test = hours("M01", "P1", [50] * 3, [1, 9, 9], start=later, tool_run_min=[1100.0, 1160.0, 1220.0],
                 spc_abs_dev_tol=[0.3, 0.7, 0.8])
    mix = test[["machine_id", "part_number", "hour"]].assign(material_qty=0.0, dimension_qty=[0, 8, 9])
    found = det.detect(test, mix=mix)
    causes = [h[0] for h in found.iloc[0]["hypotheses"]]
    assert causes[:2] == ["tool wear", "SPC drift"]
    assert "consistent with the worn tool" in found.iloc[0]["hypotheses"][1][2]


def test_scrap_mix_sums_material_and_dimension_scrap_per_hour() -> None:
    events = pd.DataFrame({"time": pd.to_datetime(["2026-11-02 12:10", "2026-11-02 12:50", "2026-11-02 13:05"],
                                                  utc=True),
                           "machine_id": "M01", "part_number": "P1", "quantity": [2, 3, 1],
                           "scrap_category": ["Material", "Quality Hold", "Quality Hold"],
                           "scrap_reason": ["MAT-DEF", "QH-DIM", "QH-SURF"]})
    mix = scrap_mix(events)
    assert mix[["material_qty", "dimension_qty"]].to_numpy().tolist() == [[2.0, 3.0], [0.0, 0.0]]


def test_bad_hours_are_refused_with_what_and_where() -> None:
    with pytest.raises(MLError, match="missing column"):
        ScrapAnomalyDetector().fit(pd.DataFrame({"machine_id": ["M01"]}))
    with pytest.raises(MLError, match="rejects exceed produced"):
        ScrapAnomalyDetector().fit(hours("M01", "P1", [5], [6]))
    with pytest.raises(MLError, match="missing or negative produced"):
        ScrapAnomalyDetector().fit(hours("M01", "P1", [-1], [0]))
    with pytest.raises(MLError, match="method must be"):
        ScrapAnomalyDetector(method="magic").fit(hours("M01", "P1", [5], [0]))
    with pytest.raises(MLError, match="call fit before score"):
        ScrapAnomalyDetector().score(hours("M01", "P1", [5], [0]))
