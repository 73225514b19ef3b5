"""Telemanom (workbench.ml.telemanom): the threshold and pruning by hand, detection on synthetic
series, causality, and what bad input gives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.errors import MLError
from workbench.ml.telemanom import (
    DEFAULT_Z,
    LaggedGBR,
    Predictor,
    RidgeAR,
    TelemanomDetector,
    detect_anomalies,
    dynamic_threshold,
    judge_batches,
    prune_sequences,
)

# --------------------------------------------------------------------------------------------
# the dynamic threshold, worked by hand


def test_threshold_single_outlier_tie_goes_to_larger_z():
    # e = nine 1s and one 11 (n = 10).
    # μ = 20/10 = 2; σ² = Σe²/n − μ² = (9 + 121)/10 − 4 = 9 → σ = 3.
    # ε(z) = 2 + 3z: z = 2.5 → 9.5 and z = 3.0 → 11.0 both leave {11} (11 ≥ 11.0); z = 3.5 → 12.5 none.
    # For {11}: below = nine 1s, μ_b = 1, σ_b = 0 → Δμ/μ = 1/2, Δσ/σ = 3/3 = 1;
    # |e_a| = 1, |E_seq| = 1 → score = 1.5 / (1 + 1²) = 0.75, equal for z = 2.5 and 3.0:
    # the tie goes to the larger z (the reference code's ">="), so ε = 11.
    e = np.ones(10)
    e[9] = 11.0
    th = dynamic_threshold(e)
    assert (th.mean, th.std) == (2.0, 3.0)
    assert th.z == 3.0 and th.epsilon == 11.0 and not th.fallback
    assert th.score == pytest.approx(0.75)


def test_threshold_prefers_one_extreme_run_to_two_runs():
    # e = 48 ones, a 9 at index 10 and a 20 at index 40 (n = 50).
    # μ = (48 + 9 + 20)/50 = 1.54; Σe²/n = (48 + 81 + 400)/50 = 10.58; σ² = 10.58 − 1.54² = 8.2084,
    # σ = 2.865030.
    # z = 2.5: ε = 1.54 + 7.162576 = 8.702576 → {9, 20}: below = 48 ones (μ_b = 1, σ_b = 0);
    #   Δμ/μ = 0.54/1.54 = 0.350649, Δσ/σ = 1; |e_a| = 2, |E_seq| = 2 → 1.350649 / (2 + 4) = 0.225108.
    # z = 3.0 … 6.0: ε from 10.135 to 18.730 → {20}: below = 48 ones + 9: μ_b = 57/49 = 1.163265,
    #   σ_b² = (48 + 81)/49 − 1.163265² = 1.279467 → σ_b = 1.131136;
    #   Δμ/μ = 0.376735/1.54 = 0.244633, Δσ/σ = 1.733894/2.865030 = 0.605193;
    #   |e_a| = 1, |E_seq| = 1 → 0.849826 / (1 + 1) = 0.424913  (the best).
    # z = 6.5: ε = 20.16 > 20 → nothing. Ties among z = 3.0 … 6.0 → z = 6.0, ε = 1.54 + 6σ = 18.730183.
    e = np.ones(50)
    e[10], e[40] = 9.0, 20.0
    th = dynamic_threshold(e)
    assert th.mean == pytest.approx(1.54)
    assert th.std == pytest.approx(2.865030, abs=1e-6)
    assert th.z == 6.0
    assert th.epsilon == pytest.approx(18.730183, abs=1e-6)
    assert th.score == pytest.approx(0.424913, abs=1e-6)
    # With a buffer of 2 the 20 counts as 5 readings: 0.849826 / (1 + 5) = 0.141638, still the best
    # (the pair: |e_a| = 10, |E_seq| = 2 → 1.350649 / 14 = 0.096475).
    th2 = dynamic_threshold(e, error_buffer=2)
    assert th2.z == 6.0 and th2.score == pytest.approx(0.141638, abs=1e-6)


def test_threshold_guard_rails_fall_back_to_the_largest_z():
    # 54 ones and six isolated 11s (n = 60): μ = 120/60 = 2, σ² = (54 + 726)/60 − 4 = 9, σ = 3.
    # z = 2.5 and 3.0 flag the six 11s as six runs (> 5 allowed); larger z flag nothing → no
    # candidate qualifies → ε = μ + 12σ = 38.
    e = np.ones(60)
    e[[5, 15, 25, 35, 45, 55]] = 11.0
    th = dynamic_threshold(e)
    assert th.fallback and th.z == 12.0 and th.epsilon == 38.0
    flat = dynamic_threshold(np.full(20, 0.4))
    assert flat.fallback and flat.std == 0.0


def _threshold_by_the_formula(e, z_values, buffer):
    """Direct transcription of the paper's search, one candidate at a time (slow, obvious)."""
    mu, sd = e.mean(), e.std()
    best_z, best = None, -np.inf
    for z in sorted(z_values):
        eps = mu + z * sd
        wide = np.zeros(e.size, bool)
        for i in np.flatnonzero(e >= eps):
            wide[max(0, i - buffer):i + buffer + 1] = True
        below = e[e < eps]
        if not wide.any() or below.size == 0:
            continue
        runs = int(np.sum(np.diff(np.r_[0, wide.astype(int)]) == 1))
        score = ((mu - below.mean()) / mu + (sd - below.std()) / sd) / (wide.sum() + runs**2)
        if runs <= 5 and wide.sum() < 0.5 * e.size and score >= best:
            best_z, best = z, score
    return 12.0 if best_z is None else best_z


def test_vectorised_threshold_matches_the_formula_on_random_windows():
    rng = np.random.default_rng(0)
    for _ in range(400):
        n = int(rng.integers(5, 400))
        e = np.abs(rng.standard_normal(n)) + rng.random() * 3
        if rng.random() < 0.7:
            e[rng.integers(0, n, size=rng.integers(1, 5))] += rng.random() * 10
        buffer = int(rng.integers(0, 8))
        assert dynamic_threshold(e, error_buffer=buffer).z == _threshold_by_the_formula(e, DEFAULT_Z, buffer)


# --------------------------------------------------------------------------------------------
# pruning, worked by hand


def test_pruning_keeps_runs_down_to_the_last_big_drop():
    # maxima 10, 9, 5 and the largest normal error 4: d = (10−9)/10 = 0.10 < p, (9−5)/9 = 0.44 ≥ p,
    # (5−4)/5 = 0.20 ≥ p → the last drop ≥ p is after the third → all three are kept.
    assert prune_sequences([10, 9, 5], 4, p=0.13).tolist() == [True, True, True]
    # maxima 10, 9.5, normal 9: d = 0.05, 0.0526 → no drop ≥ p → nothing stands out → none kept.
    assert prune_sequences([10, 9.5], 9, p=0.13).tolist() == [False, False]
    # maxima (in input order) 9.5, 20, 10, normal 9: sorted 20, 10, 9.5, 9: d = 0.5, 0.05, 0.0526 →
    # only the first drop is ≥ p → keep the 20 only.
    assert prune_sequences([9.5, 20, 10], 9, p=0.13).tolist() == [False, True, False]
    # With p = 0.04 every drop qualifies → all kept.
    assert prune_sequences([9.5, 20, 10], 9, p=0.04).tolist() == [True, True, True]
    assert prune_sequences([], 1.0, p=0.13).size == 0


def test_batches_flag_only_their_own_readings_and_decide_at_the_batch_end():
    rng = np.random.default_rng(3)
    e = 1.0 + 0.05 * rng.standard_normal(300)
    e[205:212] = 4.0  # one clear excursion in batch [200, 250)
    values = rng.standard_normal(300)  # 5–95 % range ≈ 3.3: the 5 % floor is ≈ 0.16
    res = judge_batches(e, values, start=100, batch_size=50, window_size=4, error_buffer=2)
    assert not res["judged"][:100].any() and res["judged"][100:].all()
    flagged = np.flatnonzero(res["anomaly"])
    assert flagged.min() == 203 and flagged.max() == 213  # 205…211 widened by the buffer of 2
    assert res["decided"][203] == 249 and res["decided"][100] == 149
    assert res["final"][:300].sum() == 200  # batches 100…299 are all complete
    # The same errors against a signal whose own spread dwarfs them: the minimum-difference rule.
    huge = 1000.0 * values
    assert not judge_batches(e, huge, start=100, batch_size=50, window_size=4)["anomaly"].any()


# --------------------------------------------------------------------------------------------
# detection on synthetic series


def _sine(n: int = 3000, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = pd.date_range("2026-01-01", periods=n, freq="1min", tz="UTC")
    y = np.sin(2 * np.pi * np.arange(n) / 120) + 0.1 * rng.standard_normal(n)
    return pd.DataFrame({"time": t, "value": y})


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_clean_sine_has_no_anomaly(seed):
    result = detect_anomalies(_sine(seed=seed), time="time", value="value")
    assert result.anomalies.empty
    assert result.n_judged == 3000 - 750


@pytest.mark.parametrize(("kind", "seed"), [("shift", 1), ("shift", 2), ("spike", 1), ("spike", 2)])
def test_injected_anomaly_is_found_and_nothing_else(kind, seed):
    df = _sine(seed=seed)
    if kind == "shift":  # a level shift of 10 noise σ for an hour
        df.loc[2000:2059, "value"] += 1.0
        end = 2059
    else:  # a spike of 30 σ for five readings
        df.loc[2000:2004, "value"] += 3.0
        end = 2004
    result = detect_anomalies(df, time="time", value="value")
    assert len(result.anomalies) == 1
    a = result.anomalies.iloc[0]
    t = df["time"]
    assert t[1995] <= a["start"] <= t[2003]
    # The smoothed error needs about span = 72 readings to fall back below ε: the end runs late.
    assert t[end] <= a["end"] <= t[end + 3 * 72]
    assert a["detected_at"] >= a["start"] and a["score"] > 0


def test_predictor_is_pluggable():
    class LastValue:  # a plain object following the protocol (what an LSTM wrapper would be)
        def fit(self, windows, targets):
            return self

        def predict(self, windows):
            return windows[:, -1]

    assert isinstance(LastValue(), Predictor)
    df = _sine(n=1600)
    df.loc[1200:1230, "value"] += 2.0
    used = detect_anomalies(df, time="time", value="value", detector=TelemanomDetector(predictor=LastValue()))
    s = used.scores.dropna(subset=["predicted"])
    np.testing.assert_array_equal(s["predicted"].to_numpy()[1:], s["value"].to_numpy()[:-1])
    for predictor in (RidgeAR(alpha=10.0), LaggedGBR(max_iter=30)):
        result = detect_anomalies(df, time="time", value="value",
                                  detector=TelemanomDetector(predictor=predictor))
        starts = result.anomalies["start"]
        assert ((starts >= df["time"][1190]) & (starts <= df["time"][1235])).any(), type(predictor).__name__


def test_detector_follows_the_estimator_contract():
    det = TelemanomDetector(l_s=12, p=0.2)
    assert det.get_params()["l_s"] == 12 and det.get_params()["p"] == 0.2
    s = _sine(n=600).set_index("time")["value"]
    assert det.fit(s) is det and hasattr(det, "predictor_") and not hasattr(TelemanomDetector(), "predictor_")
    with pytest.raises(MLError, match="call fit"):
        TelemanomDetector().score(s)
    with pytest.raises(MLError, match="l_s must be a positive integer"):
        TelemanomDetector(l_s=0).fit(s)


# --------------------------------------------------------------------------------------------
# causality


def test_future_data_does_not_change_earlier_flags():
    df = _sine(n=2400, seed=4)
    df.loc[1500:1530, "value"] += 1.5   # before the cut: must be flagged in both runs
    df.loc[2100:2160, "value"] -= 2.0   # after the cut: only the long run sees it
    s = df.set_index("time")["value"]
    det = TelemanomDetector(batch_size=30, window_size=24).fit(s.iloc[:800])
    start = s.index[800]
    short = det.score(s.iloc[:1700], start=start)
    long = det.score(s, start=start)
    final = short["final"].to_numpy(bool)
    assert final.sum() >= 870  # 29 complete batches of 30
    head = long.iloc[:1700]
    for col in ("predicted", "error", "smoothed_error", "threshold", "anomaly", "score", "decided_at"):
        pd.testing.assert_series_equal(short.loc[final, col], head.loc[final, col], check_names=False)
    a_short = det.detect(s.iloc[:1700], start=start)
    a_long = det.detect(s, start=start)
    assert len(a_short) == 1 and len(a_long) == 2
    pd.testing.assert_frame_equal(a_short, a_long.iloc[:1])
    # A reading's own value never enters its prediction: only the next one moves.
    bumped = s.copy()
    bumped.iloc[1000] += 50.0
    b = det.score(bumped, start=start)
    assert b["predicted"][1000] == long["predicted"][1000]
    assert b["predicted"][1001] != long["predicted"][1001]


def test_threshold_of_a_batch_ignores_later_errors():
    rng = np.random.default_rng(5)
    e = 1.0 + 0.05 * rng.standard_normal(400)
    values = rng.standard_normal(400)
    base = judge_batches(e, values, start=100, batch_size=25, window_size=4)
    e2 = e.copy()
    e2[300:305] += 50.0  # a burst right after position 299
    after = judge_batches(e2, values, start=100, batch_size=25, window_size=4)
    np.testing.assert_array_equal(base["threshold"][:300], after["threshold"][:300])
    np.testing.assert_array_equal(base["anomaly"][:300], after["anomaly"][:300])
    assert after["anomaly"][300:].any()


# --------------------------------------------------------------------------------------------
# bad input: a clear error or a stated treatment


def _csvish(n: int = 800, seed: int = 2) -> pd.DataFrame:
    """A table as read from a CSV: ISO times as text, values as numbers."""
    df = _sine(n=n, seed=seed)
    return pd.DataFrame({"ts": df["time"].dt.strftime("%Y-%m-%dT%H:%M:%S%z"), "v": df["value"]})


def test_missing_column_names_the_columns():
    with pytest.raises(MLError, match=r"'temp'.*not in the table; its columns are: ts, v"):
        detect_anomalies(_csvish(), time="ts", value="temp")


def test_text_in_the_value_column_names_rows_and_values():
    df = _csvish().astype({"v": object})
    df.loc[5, "v"] = "abc"
    df.loc[9, "v"] = "12,5"
    with pytest.raises(MLError, match=r"column 'v' has text where numbers are expected: row 7 'abc', row 11 '12,5'"):
        detect_anomalies(df, time="ts", value="v")


def test_unparseable_times_name_the_rows():
    df = _csvish()
    df.loc[3, "ts"] = "yesterday"
    with pytest.raises(MLError, match=r"column 'ts' has text that is not a time: row 5 'yesterday'"):
        detect_anomalies(df, time="ts", value="v")
    with pytest.raises(MLError, match="holds numbers, not times"):
        detect_anomalies(df.assign(ts=np.arange(len(df))), time="ts", value="v")


def test_naive_times_are_read_as_utc():
    df = _csvish()
    df["ts"] = df["ts"].str.replace("+0000", "", regex=False)
    result = detect_anomalies(df, time="ts", value="v")
    assert any("no time zone: read as UTC" in n for n in result.notes)
    assert str(result.scores["time"].dt.tz) == "UTC"


def test_duplicate_times_are_an_error_naming_the_first():
    df = _csvish()
    df.loc[10, "ts"] = df.loc[9, "ts"]
    with pytest.raises(MLError, match=r"time 2026-01-01T00:09:00\+00:00 appears more than once \(rows 11, 12\)"):
        detect_anomalies(df, time="ts", value="v")


def test_unsorted_times_are_sorted_with_a_note():
    df = _csvish()
    shuffled = df.sample(frac=1.0, random_state=0).reset_index(drop=True)
    a = detect_anomalies(df, time="ts", value="v")
    b = detect_anomalies(shuffled, time="ts", value="v")
    assert any(n.startswith("times were not in order") and "sorted" in n for n in b.notes)
    pd.testing.assert_frame_equal(a.scores, b.scores)


def test_nans_are_dropped_and_counted_too_many_is_an_error():
    df = _csvish()
    df.loc[[20, 30, 40], "v"] = np.nan
    result = detect_anomalies(df, time="ts", value="v")
    assert result.n_readings == 797
    assert any(n.startswith("3 row(s) with a blank time or a blank / non-finite 'v' dropped (rows 22, 32, 42)")
               for n in result.notes)
    df.loc[100:700, "v"] = np.nan
    with pytest.raises(MLError, match=r"604 of 800 rows have a blank"):
        detect_anomalies(df, time="ts", value="v")


def test_constant_series_has_no_anomalies_and_says_so():
    df = _csvish().assign(v=7.5)
    result = detect_anomalies(df, time="ts", value="v")
    assert result.anomalies.empty and list(result.anomalies.columns) == ["start", "end", "detected_at", "score",
                                                                          "readings"]
    assert any("constant series" in n and "7.5" in n for n in result.notes)


def test_a_few_rows_only_says_how_many_are_needed_and_why():
    with pytest.raises(MLError, match=r"only 40 usable reading\(s\) in 'v'; at least 361 are needed: each prediction "
                                      r"uses the 30 readings before it \(l_s\), the predictor needs 60"):
        detect_anomalies(_csvish(n=40), time="ts", value="v")


def test_gaps_start_new_segments_and_are_noted():
    df = _csvish(n=1200)
    t = pd.to_datetime(df["ts"], format="ISO8601")
    t[700:] += pd.Timedelta(hours=6)  # one gap of 6 h in 1-minute data
    df["ts"] = t.dt.strftime("%Y-%m-%dT%H:%M:%S%z")
    result = detect_anomalies(df, time="ts", value="v")
    assert any(n.startswith("1 gap(s) longer than 5x the median interval (0 days 00:01:00)") for n in result.notes)
    # The l_s = 30 readings after the gap have no prediction and are not judged.
    judged = result.scores["judged"].to_numpy(bool)
    assert not judged[700:730].any() and judged[730:].all() and judged[300:700].all()
