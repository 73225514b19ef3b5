# ruff: noqa: N803, N806 - X is scikit-learn's name for the feature matrix
"""RootCauseClassifier: estimator contract, explanations, filling blanks, flags, baselines,
evaluate_table's errors and treatments, and the no-leakage proof (shuffled labels score at chance
with SMOTE inside the folds; SMOTE before the split scores far above chance on the same table).
"""

from __future__ import annotations

import json
import time
import warnings
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from imblearn.over_sampling import SMOTE
from sklearn.base import clone
from sklearn.utils.estimator_checks import check_estimator

from workbench.errors import MLError
from workbench.ml.rootcause import (
    AdaptiveOverSampler,
    EvaluationResult,
    RootCauseClassifier,
    apply_predictions,
    evaluate_table,
    fault_code_baseline,
    majority_baseline,
    predict_stops,
    training_frame,
)

FAULTS = {"Tooling": "F7101", "Mechanical Failure": "F2110", "Material": "F8001"}


def stop_table(n: int = 240, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Stop-like features: fault code (70 % the cause's own), state, a vibration slope that rises
    before mechanical failures, a duration, some NaN."""
    rng = np.random.default_rng(seed)
    y = rng.choice(["Tooling", "Mechanical Failure", "Changeover", "Material"], p=[0.4, 0.25, 0.25, 0.1], size=n)
    fault = np.array([FAULTS.get(c) if rng.random() < 0.7 else None for c in y], dtype=object)
    X = pd.DataFrame({
        "fault_code": fault, "state": np.where(y == "Changeover", "setup", "down"),
        "vibration_rms_slope": rng.normal(0, 0.5, n) + 2.0 * (y == "Mechanical Failure"),
        "duration_min": rng.lognormal(3, 0.5, n), "tool_run_min": rng.uniform(0, 900, n)},
        index=pd.Index([f"E{i:04d}" for i in range(n)], name="event_id"))
    X.loc[X.index[::7], "vibration_rms_slope"] = np.nan
    return X, y


@pytest.fixture(scope="module")
def table() -> tuple[pd.DataFrame, np.ndarray]:
    return stop_table()


@pytest.fixture(scope="module")
def fitted(table: tuple[pd.DataFrame, np.ndarray]) -> RootCauseClassifier:
    X, y = table
    return RootCauseClassifier(n_estimators=60, random_state=1).fit(X, y, times=pd.date_range(
        "2026-01-01", periods=len(y), freq="h", tz="UTC"))


# --------------------------------------------------------------------------------------------
# estimator contract


def test_estimator_contract(table: tuple[pd.DataFrame, np.ndarray], fitted: RootCauseClassifier) -> None:
    X, y = table
    est = RootCauseClassifier(n_estimators=40, sampler="random", calibration="isotonic", random_state=3)
    params = est.get_params()
    assert params["n_estimators"] == 40 and params["sampler"] == "random" and params["calibration"] == "isotonic"
    twin = clone(est)
    assert twin is not est and twin.get_params() == params
    assert RootCauseClassifier().set_params(**params).get_params() == params
    assert not hasattr(twin, "classes_")
    assert twin.fit(X, y) is twin
    assert list(fitted.classes_) == sorted(set(y))
    proba = fitted.predict_proba(X)
    assert proba.shape == (len(X), 4) and np.allclose(proba.sum(axis=1), 1.0)
    assert fitted.feature_names_ == list(X.columns) and fitted.categorical_ == ["fault_code", "state"]
    assert list(fitted.pipeline_.named_steps) == ["preprocess", "sampler", "model"]
    assert fitted.calibrator_ is not None
    assert fitted.training_range_ == (pd.Timestamp("2026-01-01", tz="UTC").isoformat(),
                                      (pd.Timestamp("2026-01-01", tz="UTC")
                                       + pd.Timedelta(hours=len(y) - 1)).isoformat())
    assert (fitted.predict(X) == y).mean() > 0.8  # the table is learnable
    # Unseen categories and columns in another order are fine; missing columns are named.
    odd = X.iloc[:5][list(reversed(X.columns))].assign(fault_code="F9999")
    assert len(fitted.predict(odd)) == 5
    with pytest.raises(MLError, match="duration_min"):
        fitted.predict(X.drop(columns="duration_min"))


def test_passes_sklearn_check_estimator() -> None:
    """Every scikit-learn estimator check passes on the numeric arrays those checks use (they do
    not exercise text categories, which the tests above cover)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(RootCauseClassifier(n_estimators=5, calibration_cv=2), on_fail=None)
    failed = [r["check_name"] for r in results if r["status"] == "failed"]
    assert failed == [] and len(results) > 40


def test_small_classes_never_break_the_sampler() -> None:
    X, y = stop_table(120, seed=4)
    y = y.astype(object)
    y[:2] = "Quality Hold"  # a class of two: SMOTE needs k + 1 = 2, then 1 inside calibration folds
    model = RootCauseClassifier(n_estimators=20).fit(X, y)
    assert "Quality Hold" not in model.classes_ and model.dropped_classes_ == ("Quality Hold",)
    model = RootCauseClassifier(n_estimators=20, min_class_count=2).fit(X, y)
    assert "Quality Hold" in model.classes_
    y[2] = "Operator"  # a class of one: random over-sampling instead of SMOTE
    model = RootCauseClassifier(n_estimators=20, min_class_count=1, calibration=None).fit(X, y)
    assert "Operator" in model.classes_


def test_adaptive_over_sampler() -> None:
    X = np.arange(40, dtype=float).reshape(20, 2)
    y = np.array(["a"] * 17 + ["b"] * 2 + ["c"])
    Xr, yr = AdaptiveOverSampler(kind="smote").fit_resample(X, y)
    assert Counter(yr.tolist()) == {"a": 17, "b": 17, "c": 17}  # c (one row) duplicated, not interpolated
    assert (Xr[yr == "c"] == X[19]).all()
    Xr, yr = AdaptiveOverSampler(kind="smote").fit_resample(X[:19], y[:19])
    synth = Xr[len(X) - 1:]
    assert len(synth) == 15 and ((synth >= X[17]) & (synth <= X[18])).all()  # SMOTE with k = 1
    with pytest.raises(MLError, match="sampler kind"):
        AdaptiveOverSampler(kind="adasyn").fit_resample(X, y)


# --------------------------------------------------------------------------------------------
# explanations, predictions, baselines


def test_explain_names_input_features(table: tuple[pd.DataFrame, np.ndarray], fitted: RootCauseClassifier) -> None:
    X, _ = table
    rows = X.iloc[:100]
    t0 = time.perf_counter()
    ex = fitted.explain(rows, top=2)
    took = time.perf_counter() - t0
    print(f"explain: 100 rows in {took:.2f} s")
    assert list(ex.index) == list(rows.index) and (ex["predicted_category"] == fitted.predict(rows)).all()
    assert all(len(c) == 2 and {f for f, _, _ in c} <= set(X.columns) for c in ex["contributions"])
    setup = ex[X.iloc[:100]["state"].to_numpy() == "setup"]
    assert len(setup) and setup["contributions"].map(lambda c: c[0][0] in ("state", "fault_code")).all()
    assert setup["text"].str.contains(r"^(?:state=setup|fault_code=none) \(\+0\.\d\d\)").all()
    mech = ex[(ex["predicted_category"] == "Mechanical Failure") & (X.iloc[:100]["fault_code"] == "F2110")]
    assert mech["text"].str.contains(r"fault_code=F2110 \(\+").all()
    assert fitted.explain(X.iloc[:0]).empty


def test_contributions_add_up_to_the_forest_probability(table: tuple[pd.DataFrame, np.ndarray],
                                                        fitted: RootCauseClassifier) -> None:
    """All contributions of a row (one per input feature, one-hot levels and missing indicators
    summed back) plus SHAP's base value give the forest's probability of the predicted class."""
    import shap

    X, _ = table
    rows = X.iloc[:10]
    ex = fitted.explain(rows, top=len(X.columns))
    forest = fitted.pipeline_.named_steps["model"]
    base = shap.TreeExplainer(forest).expected_value
    proba = forest.predict_proba(fitted.pipeline_.named_steps["preprocess"].transform(fitted._prepare(rows)))
    for i, (cat, contrib) in enumerate(zip(ex["predicted_category"], ex["contributions"], strict=True)):
        k = list(forest.classes_).index(cat)
        assert sorted(f for f, _, _ in contrib) == sorted(X.columns)
        assert sum(s for _, _, s in contrib) + base[k] == pytest.approx(proba[i, k], abs=1e-6)


def _events(X: pd.DataFrame, y: np.ndarray) -> pd.DataFrame:
    entered = pd.Series(y, dtype=object).where(np.arange(len(y)) % 5 != 0, None)  # every 5th blank
    return pd.DataFrame({"event_id": X.index, "machine_id": "M01",
                         "time_start": pd.date_range("2026-02-02", periods=len(y), freq="h", tz="UTC"),
                         "reason_code": entered.map(lambda c: None if c is None else c[:4].upper() + "-X"),
                         "reason_category": entered, "predicted_category": None,
                         "predicted_confidence": np.nan})


def test_training_frame_leaves_out_blank_and_planned(table: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, y = table
    de = _events(X, y)
    de.loc[1, "reason_category"] = "Scheduled Maintenance"
    de.loc[2, "reason_category"] = "  "
    Xt, yt = training_frame(X, de)
    assert len(Xt) == len(yt) == len(X) - (len(X) + 4) // 5 - 2
    assert "Scheduled Maintenance" not in set(yt) and list(Xt.index) == list(yt.index)
    with pytest.raises(MLError, match="no feature row.*E0001"):
        training_frame(X.drop(index="E0001"), de.assign(reason_category="Tooling"))


def test_predictions_fill_blanks_only_and_flag_confident_disagreement(
        table: tuple[pd.DataFrame, np.ndarray], fitted: RootCauseClassifier) -> None:
    X, y = table
    de = _events(X, y)
    # A changeover (setup, no fault) entered as Material: the model is sure it is a changeover.
    wrong = de.index[(de["reason_category"] == "Changeover").to_numpy()][0]
    de.loc[wrong, "reason_category"] = "Material"
    de.loc[3, "reason_category"] = "No Demand"  # planned: not scored
    pred = predict_stops(fitted, X, de, model_version="rc-7", suspect_threshold=0.8)
    assert len(pred) == len(de) - 1 and de.loc[3, "event_id"] not in set(pred["event_id"])
    assert (pred["model_version"] == "rc-7").all()
    assert pred["fills_blank"].sum() == de["reason_category"].isna().sum()
    row = pred.set_index("event_id").loc[de.loc[wrong, "event_id"]]
    assert row["suspect"] and row["predicted_category"] == "Changeover" and row["predicted_confidence"] >= 0.8
    assert not pred.loc[pred["fills_blank"], "suspect"].any()
    agree = pred["entered_category"] == pred["predicted_category"]
    assert not pred.loc[agree, "suspect"].any()
    assert (pred.loc[pred["suspect"], "predicted_confidence"] >= 0.8).all()
    assert pred["top_contributions"].str.count(r"\(").eq(3).all()

    out = apply_predictions(de, pred)
    coded = de["reason_code"].notna().to_numpy()
    pd.testing.assert_series_equal(out["reason_code"], de["reason_code"])
    pd.testing.assert_series_equal(out["reason_category"], de["reason_category"])
    assert out.loc[coded, "predicted_category"].isna().all() and out.loc[coded, "predicted_confidence"].isna().all()
    blank_pred = pred.set_index("event_id").loc[de.loc[~coded, "event_id"]]
    assert (out.loc[~coded, "predicted_category"].to_numpy() == blank_pred["predicted_category"].to_numpy()).all()
    assert out.loc[~coded, "predicted_confidence"].between(0, 1).all()
    # A prediction aimed at a coded stop is ignored, whatever it says.
    forged = pred.assign(predicted_category="Operator", predicted_confidence=1.0)
    again = apply_predictions(de, forged)
    assert again.loc[coded, "predicted_category"].isna().all() and again.loc[coded, "reason_category"].equals(
        de.loc[coded, "reason_category"])


def test_baselines_exact() -> None:
    X_train = pd.DataFrame({"fault_code": ["F1", "F1", "F1", "none", "none", "none", "F0", "none"],
                            "state": ["down", "down", "down", "down", "down", "setup", "down", "down"]})
    y_train = np.array(["A", "A", "B", "C", "C", "Chg", "D", "B"], dtype=object)
    X_test = pd.DataFrame({"fault_code": ["F1", "none", "none", "F9", "F9", "none"],
                           "state": ["down", "down", "setup", "down", "setup", "planned_stop"]})
    # F1 → A (2 of 3); no fault while down → C; no fault in setup → Chg; unseen F9 while down → the
    # state's most frequent (A, B, C tie at 2: A); F9 in setup → Chg; an unseen state → overall (A).
    assert list(fault_code_baseline(X_train, y_train, X_test)) == ["A", "C", "Chg", "A", "Chg", "A"]
    assert list(majority_baseline(y_train, X_test)) == ["A"] * 6  # A, B, C tie at 2: alphabetical first
    with pytest.raises(MLError, match="state"):
        fault_code_baseline(X_train.drop(columns="state"), y_train, X_test)


# --------------------------------------------------------------------------------------------
# evaluate_table: bad input and treatments


def _labelled(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.choice(["ok", "bad"], p=[0.7, 0.3], size=n)
    return pd.DataFrame({"x1": rng.normal(size=n) + 2.0 * (y == "bad"), "kind": rng.choice(["p", "q"], size=n),
                         "label": y})


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d.drop(columns="label"), r"target column 'label' not found; the columns are: x1, kind"),
    (lambda d: d.assign(label=d["label"].where(d.index % 11 != 3)), r"no label in 6 row\(s\) \(index 3, 14, 25"),
    (lambda d: d.assign(label=np.where(d.index < 3, "rare", d["label"])),
     r"class 'rare' of 'label' has 3 row\(s\), fewer than the 5 folds: use --cv 3"),
    (lambda d: d.assign(label=np.where(d.index < 1, "once", d["label"])), r"class 'once'.*single row"),
    (lambda d: d.head(8), r"only 8 row\(s\)"),
    (lambda d: d[["label"]], r"no feature columns"),
    (lambda d: d.assign(label="ok"), r"single class \('ok'\)"),
    (lambda d: d.assign(x1=np.nan, kind="p"), r"no usable feature column: column 'x1' dropped: empty.*'kind'.*constant"),
])
def test_evaluate_table_errors_name_the_problem(mutate, message: str) -> None:
    with pytest.raises(MLError, match=message):
        evaluate_table(mutate(_labelled()), target="label", cv=5)


def test_evaluate_table_treatments_are_stated_and_json_shape() -> None:
    df = _labelled(80).assign(
        empty=np.nan, const=7, serial=[f"SN{i:05d}" for i in range(80)],
        reading=[str(v) for v in np.random.default_rng(1).normal(size=80)])
    df.loc[[5, 9], "reading"] = ["n/a?", "err"]
    res = evaluate_table(df, target="label", cv=4, random_state=2,
                         classifier=RootCauseClassifier(n_estimators=30, calibration=None))
    assert isinstance(res, EvaluationResult)
    assert set(res.dropped_columns) == {"empty", "const", "serial"}
    assert res.features == ("x1", "kind", "reading")
    text = " | ".join(res.warnings)
    assert "'empty' dropped: empty" in text and "'const' dropped: constant" in text
    assert "'serial' dropped: text unique in every row (an id)" in text
    assert "'reading' is numeric but 2 value(s) are text (index 5, 9, e.g. 'n/a?'): read as missing" in text
    d = json.loads(json.dumps(res.to_dict()))
    assert list(d) == ["balanced_accuracy", "macro_f1", "per_class_recall", "baseline"]
    assert set(d["per_class_recall"]) == {"ok", "bad"} and list(d["baseline"]) == ["majority"]
    assert set(d["baseline"]["majority"]) == {"balanced_accuracy", "macro_f1"}
    assert d["baseline"]["majority"]["balanced_accuracy"] == pytest.approx(0.5)
    assert d["balanced_accuracy"] > 0.6  # x1 separates the classes


# --------------------------------------------------------------------------------------------
# no leakage, proven


def _noise_table(seed: int) -> pd.DataFrame:
    """300 rows, 10 pure-noise features, labels a/b/c at 80/15/5 % in random order."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.normal(size=(300, 10)), columns=[f"f{i}" for i in range(10)])
    df["label"] = rng.permutation(np.array(["a"] * 240 + ["b"] * 45 + ["c"] * 15))
    return df


def test_shuffled_labels_score_at_chance_unless_smote_runs_before_the_split() -> None:
    """Labels carry no information, so an honest CV must score chance (balanced accuracy 1/3).

    Inside: evaluate_table, whose SMOTE only sees training folds. Before the split: the same table
    over-sampled as a whole (the seed's mistake), then the same pipeline without a sampler
    cross-validated on it — synthetic rows interpolated from a test row's neighbours sit in the
    training folds and the score soars. Measured on seeds 0–5: inside 0.28–0.37 (mean 0.32),
    before the split 0.85–0.89. Tolerance for the mean of three seeds: ±0.08 around 1/3 (the
    standard deviation of one seed's score is about 0.035, so the mean's is about 0.02).
    """
    inside, leaked = [], []
    for seed in (0, 1, 2):
        df = _noise_table(seed)
        res = evaluate_table(df, target="label", cv=5, random_state=seed,
                             classifier=RootCauseClassifier(n_estimators=50, calibration=None, random_state=seed))
        inside.append(res.balanced_accuracy)
        X, y = df.drop(columns="label").to_numpy(), df["label"].to_numpy()
        Xs, ys = SMOTE(random_state=seed).fit_resample(X, y)
        smoted = pd.DataFrame(Xs, columns=[f"f{i}" for i in range(10)]).assign(label=ys)
        res = evaluate_table(smoted, target="label", cv=5, random_state=seed,
                             classifier=RootCauseClassifier(n_estimators=50, sampler="none", calibration=None,
                                                            random_state=seed))
        leaked.append(res.balanced_accuracy)
    print(f"shuffled labels: SMOTE inside folds {np.round(inside, 3)}, before the split {np.round(leaked, 3)}")
    assert abs(np.mean(inside) - 1 / 3) < 0.08 and max(inside) < 0.45
    assert min(leaked) > 0.7
