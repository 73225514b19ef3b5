"""The root-cause classifier scored against the simulator's ground truth, on plants it never saw.

For each seed: an 8-machine plant over six weeks with telemetry. The model trains on the first
four weeks' ENTERED codes (noisy, like a real plant's) and is scored on the later two weeks (a
time-ordered split):

* blank-coded stops: accuracy against the TRUE category, beside the majority class and the
  fault-code lookup learned from the same training weeks;
* coded stops: suspect flags (entered code disagrees with a prediction of confidence ≥ 0.8)
  against the injected mislabels. Only a mislabel that changes the CATEGORY can be seen by a
  category classifier (catalog.CONFUSIONS mostly swaps codes within a category: bearing ↔
  spindle), so recall is reported against all mislabels and against category-changing ones.

Floors were set on development seeds 101–104 (12 machines; never these seeds) with margin: blank
accuracy 0.82–0.91 per seed against 0.79–0.84 for the fault-code lookup; suspect precision
0.56–0.83 and recall on category-changing mislabels 0.8–1.0. A random flagger raising the same
number of flags is run beside the model and must fail the same floors.
"""

# ruff: noqa: N806 - X is scikit-learn's name for the feature matrix
from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from workbench.ml.features import stop_features
from workbench.ml.rootcause import (
    RootCauseClassifier,
    fault_code_baseline,
    majority_baseline,
    predict_stops,
    training_frame,
)
from workbench.simulate import PlantConfig, simulate_plant

SEEDS = (11, 12, 13)
MACHINES, DAYS, TRAIN_DAYS = 8, 42, 28
THRESHOLD = 0.8
BLANK_ACCURACY_FLOOR = 0.70  # seed 004's bar
SUSPECT_PRECISION_FLOOR = 0.4
SUSPECT_RECALL_FLOOR = 0.5  # against category-changing mislabels

pytestmark = pytest.mark.slow


def _run(seed: int, *, first: bool) -> dict[str, object]:
    t0 = time.perf_counter()
    plant = simulate_plant(PlantConfig(seed=seed, n_machines=MACHINES, days=DAYS, telemetry=True))
    t = plant.tables
    de = t["downtime_events"]
    feats = stop_features(de, telemetry=t["machine_telemetry"], machine_states=t["machine_states"],
                          scrap_events=t["scrap_events"], production_events=t["production_events"],
                          tz=plant.truth.config.timezone)
    t_feat = time.perf_counter() - t0
    cut = pd.Timestamp(plant.truth.config.start, tz=plant.truth.config.timezone) + pd.Timedelta(days=TRAIN_DAYS)
    train, test = de[de["time_start"] < cut], de[de["time_start"] >= cut]
    X, y = training_frame(feats, train)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = RootCauseClassifier(random_state=seed).fit(
            X, y, times=train.set_index(train["event_id"].astype(str)).loc[X.index, "time_start"])
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    # top=0: the whole two weeks are scored in bulk; explanations are timed on 100 stops below.
    pred = predict_stops(model, feats, test, model_version=f"truth-{seed}", suspect_threshold=THRESHOLD, top=0)
    t_pred = time.perf_counter() - t0
    truth = plant.truth.stops.set_index(plant.truth.stops["event_id"].astype(str))
    pred = pred.set_index("event_id").join(truth[["true_category", "mislabelled"]])
    blank = pred[pred["fills_blank"]]
    Xb = feats.loc[blank.index]
    coded = pred[~pred["fills_blank"]]
    t_explain = np.nan
    if first:  # the same code on every seed: timed once (this time includes SHAP's first-call set-up)
        t0 = time.perf_counter()
        model.explain(feats.loc[test["event_id"].astype(str).iloc[:100]])
        t_explain = time.perf_counter() - t0
    # Time-ordered (train weeks 1-4, score weeks 5-6) vs stratified 5-fold CV over all six weeks,
    # both against ENTERED labels of coded stops, same pipeline without calibration (first seed only).
    cv_acc = np.nan
    if first:
        X_all, y_all = training_frame(feats, de)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cv_pred = cross_val_predict(RootCauseClassifier(calibration=None, random_state=seed), X_all, y_all,
                                        cv=StratifiedKFold(5, shuffle=True, random_state=seed))
        cv_acc = float((cv_pred == y_all.to_numpy()).mean())
    return {
        "seed": seed, "n_train": len(y), "n_blank": len(blank),
        "truth": blank["true_category"].to_numpy(), "model": blank["predicted_category"].to_numpy(),
        "majority": majority_baseline(y, Xb), "fault_code": fault_code_baseline(X, y, Xb),
        "suspect": coded["suspect"].to_numpy(dtype=bool), "mislabelled": coded["mislabelled"].to_numpy(dtype=bool),
        "category_changed": (coded["mislabelled"] & (coded["true_category"] != coded["entered_category"])).to_numpy(
            dtype=bool),
        "time_ordered_acc": float((coded["entered_category"] == coded["predicted_category"]).mean()),
        "stratified_cv_acc": cv_acc,
        "t_feat": t_feat, "t_fit": t_fit, "t_pred": t_pred, "n_pred": len(pred), "t_explain": t_explain,
    }


@pytest.fixture(scope="module")
def runs() -> list[dict[str, object]]:
    return [_run(seed, first=i == 0) for i, seed in enumerate(SEEDS)]


def _pr(flags: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    hits = int((flags & target).sum())
    return hits / max(int(flags.sum()), 1), hits / max(int(target.sum()), 1)


def test_fills_blank_codes_better_than_both_baselines(runs: list[dict[str, object]]) -> None:
    print(f"\nblank-coded stops of weeks 5-6, accuracy against the true category ({MACHINES} machines × {DAYS} days)")
    print(f"{'seed':>6} {'train':>6} {'blank':>6} {'model':>7} {'majority':>9} {'fault-code':>11}")
    acc = {}
    for r in runs:
        truth = r["truth"]
        acc[r["seed"]] = {k: float((r[k] == truth).mean()) for k in ("model", "majority", "fault_code")}
        a = acc[r["seed"]]
        print(f"{r['seed']:>6} {r['n_train']:>6} {r['n_blank']:>6} {a['model']:>7.3f} {a['majority']:>9.3f} "
              f"{a['fault_code']:>11.3f}")
    truth = np.concatenate([r["truth"] for r in runs])
    pooled = {k: float((np.concatenate([r[k] for r in runs]) == truth).mean())
              for k in ("model", "majority", "fault_code")}
    print(f"{'all':>6} {'':>6} {len(truth):>6} {pooled['model']:>7.3f} {pooled['majority']:>9.3f} "
          f"{pooled['fault_code']:>11.3f}")
    for r in runs:
        print(f"seed {r['seed']}: simulate + features {r['t_feat']:.1f} s, fit {r['t_fit']:.1f} s, predict_stops "
              f"{r['t_pred']:.1f} s for {r['n_pred']} stops"
              + (f" (explain alone: {r['t_explain']:.2f} s for 100)" if r["t_explain"] == r["t_explain"] else "")
              + f"; entered-label accuracy time-ordered {r['time_ordered_acc']:.3f}"
              + (f" vs stratified 5-fold CV {r['stratified_cv_acc']:.3f}" if r["stratified_cv_acc"] == r[
                  "stratified_cv_acc"] else ""))
    assert all(a["model"] > BLANK_ACCURACY_FLOOR for a in acc.values()), acc
    assert pooled["model"] > pooled["fault_code"] > pooled["majority"], pooled
    # Against the operators' own (noisy) codes, both validations must clear the bar too.
    assert all(r["time_ordered_acc"] > BLANK_ACCURACY_FLOOR for r in runs)
    assert runs[0]["stratified_cv_acc"] > BLANK_ACCURACY_FLOOR


def test_suspect_flags_find_category_changing_mislabels(runs: list[dict[str, object]]) -> None:
    flags = np.concatenate([r["suspect"] for r in runs])
    mis = np.concatenate([r["mislabelled"] for r in runs])
    changed = np.concatenate([r["category_changed"] for r in runs])
    # A flag is right when the entered CATEGORY is wrong; recall is reported against both sets.
    precision, recall_changed = _pr(flags, changed)
    _, recall_all = _pr(flags, mis)
    rng = np.random.default_rng(0)
    random_flags = np.zeros(len(flags), bool)
    random_flags[rng.choice(len(flags), size=int(flags.sum()), replace=False)] = True
    r_precision, r_recall_changed = _pr(random_flags, changed)
    _, r_recall_all = _pr(random_flags, mis)
    print(f"\nsuspect codes (confidence ≥ {THRESHOLD}) on {len(flags)} coded stops of weeks 5-6: {int(flags.sum())} "
          f"flagged; {int(mis.sum())} mislabelled, {int(changed.sum())} of them across categories")
    print(f"  model : precision {precision:.2f}, recall all mislabels {recall_all:.2f}, "
          f"category-changing {recall_changed:.2f}")
    print(f"  random: precision {r_precision:.2f}, recall all mislabels {r_recall_all:.2f}, "
          f"category-changing {r_recall_changed:.2f}")
    assert changed.sum() >= 10  # enough to measure
    assert precision >= SUSPECT_PRECISION_FLOOR and recall_changed >= SUSPECT_RECALL_FLOOR
    assert not (r_precision >= SUSPECT_PRECISION_FLOOR and r_recall_changed >= SUSPECT_RECALL_FLOOR)
