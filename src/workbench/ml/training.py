"""Training a root-cause classifier on one date range and judging it on the days after it.

The data scientist's side of the model (the ``train_models`` notebook): :func:`train_rootcause`
fits a :class:`~workbench.ml.rootcause.RootCauseClassifier` exactly as a retraining round does and
scores it on a time-ordered hold-out and by stratified CV against both baselines;
:func:`register_challenger` registers it as the ``challenger``. Also reachable as
``workbench.ml.sections.train_rootcause`` (and the others), where it lived first.
"""

# ruff: noqa: N806 - X is scikit-learn's name for the feature matrix

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import MLError
from workbench.ml.registry import ModelVersion, Registry
from workbench.ml.retrain import ROOTCAUSE, classification_metrics
from workbench.ml.rootcause import RootCauseClassifier, fault_code_baseline, majority_baseline, training_frame
from workbench.ml.sections import _quiet, _table, _utc, stop_features_as_trained


@dataclass(frozen=True, eq=False)
class TrainingRun:
    """A root-cause classifier trained on a date range and judged on the days after it.

    Attributes
    ----------
    model : RootCauseClassifier
        Fitted on the coded stops of ``train_range``.
    train_range, holdout_range : (datetime, datetime)
        ``[start, end)`` of the training stops and of the held-out stops.
    n_train, n_holdout : int
        Coded stops in each.
    scores : DataFrame
        validation, predictor, n, accuracy, balanced_accuracy, macro_f1: the time-ordered hold-out
        and stratified K-fold CV over the training stops, each for the model, the majority class
        and the fault-code lookup (scored against the codes operators entered).
    confusion : DataFrame
        Entered category (rows) × predicted category (columns) on the hold-out.
    per_class : DataFrame
        category, n, recall, precision of the model on the hold-out.
    metrics : dict
        What :func:`register_challenger` records (``holdout_accuracy``, … as the retrain round does).
    X_train : DataFrame
        The training features (a few rows become the registered model's signature).
    """

    model: RootCauseClassifier
    train_range: tuple[dt.datetime, dt.datetime]
    holdout_range: tuple[dt.datetime, dt.datetime]
    n_train: int
    n_holdout: int
    scores: pd.DataFrame
    confusion: pd.DataFrame
    per_class: pd.DataFrame
    metrics: Mapping[str, float]
    X_train: pd.DataFrame

    @property
    def description(self) -> str:
        """The registry description (the same words as a retraining round's)."""
        (a, b), (_, c) = self.train_range, self.holdout_range
        return (f"trained on {self.n_train} coded stops {a:%Y-%m-%d} – {b:%Y-%m-%d}; "
                f"held out {self.n_holdout} to {c:%Y-%m-%d}")


def _score_rows(validation: str, y: np.ndarray, preds: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    return [{"validation": validation, "predictor": name, "n": len(y),
             "accuracy": float(accuracy_score(y, p)),
             "balanced_accuracy": float(balanced_accuracy_score(y, p)),
             "macro_f1": float(f1_score(y, p, average="macro", zero_division=0))}
            for name, p in preds.items()]


def train_rootcause(tables: Mapping[str, pd.DataFrame], *, train_start: dt.datetime, train_end: dt.datetime,
                    holdout_end: dt.datetime, params: Mapping[str, Any] | None = None, cv: int = 5,
                    random_state: int = 0, min_stops: int = 30) -> TrainingRun:
    """Train a root-cause classifier on one date range and judge it on the days after it.

    Trained on the coded stops starting in ``[train_start, train_end)``, judged on those starting
    in ``[train_end, holdout_end)``. Features as the retraining round builds them
    (:func:`stop_features_as_trained`); labels the categories operators entered (planned
    categories and blank codes left out). Besides the time-ordered hold-out (what a plant sees:
    the model only knows the past), stratified K-fold CV over the training stops is reported for
    comparison: its folds mix later weeks into training, which a model in service never has, so
    only the hold-out says how it will do next week.

    Parameters
    ----------
    tables : mapping of DataFrames
        ``downtime_events`` (and ``machine_telemetry``, ``machine_states``, ``scrap_events``)
        covering the range.
    train_start, train_end, holdout_end : datetime
        Timezone-aware bounds.
    params : mapping, optional
        :class:`RootCauseClassifier` hyperparameters (``random_state`` defaults to ``random_state``).
    cv : int
        Folds of the stratified CV (the classes smaller than that are left out of it).
    random_state : int
        Seed of the model and the folds.
    min_stops : int
        Fewest coded stops in the training range and in the hold-out.

    Raises
    ------
    MLError
        When a range has fewer than ``min_stops`` coded stops.
    """
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold

    lo, mid, hi = (_utc(t, name) for t, name in ((train_start, "train_start"), (train_end, "train_end"),
                                                  (holdout_end, "holdout_end")))
    downtime = _table(tables, "downtime_events")
    if downtime is None:
        raise MLError("no downtime_events to train on")
    X, y = training_frame(stop_features_as_trained(tables), downtime)
    starts = pd.Series(pd.to_datetime(downtime["time_start"], utc=True).to_numpy(),
                       index=downtime["event_id"].astype(str)).reindex(X.index)
    tr = ((starts >= lo) & (starts < mid)).to_numpy(bool)
    ho = ((starts >= mid) & (starts < hi)).to_numpy(bool)
    for what, n, a, b in (("training", tr.sum(), lo, mid), ("held-out", ho.sum(), mid, hi)):
        if n < min_stops:
            raise MLError(f"the {what} range {a:%Y-%m-%d %H:%M} – {b:%Y-%m-%d %H:%M} UTC has {n} coded "
                          f"stop(s); at least {min_stops} are needed to train and judge a model")
    settings = {"random_state": random_state, **dict(params or {})}
    X_tr, y_tr, X_ho, y_ho = X[tr], y[tr].to_numpy(dtype=object), X[ho], y[ho].to_numpy(dtype=object)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small classes in calibration folds are expected and handled
        model = RootCauseClassifier(**settings).fit(X_tr, y_tr, times=starts[tr])
        scores = _score_rows("time-ordered hold-out", y_ho, {
            "model": model.predict(X_ho), "majority class": majority_baseline(y_tr, X_ho),
            "fault-code lookup": fault_code_baseline(X_tr, y_tr, X_ho)})
        counts = pd.Series(y_tr).value_counts()
        keep = np.isin(y_tr, counts[counts >= cv].index)
        folds = StratifiedKFold(n_splits=cv, shuffle=True, random_state=random_state)
        Xk, yk = X_tr[keep], y_tr[keep]
        oof = {k: np.empty(len(yk), dtype=object) for k in ("model", "majority class", "fault-code lookup")}
        for a, b in folds.split(Xk, yk):
            oof["model"][b] = clone(model).fit(Xk.iloc[a], yk[a]).predict(Xk.iloc[b])
            oof["majority class"][b] = majority_baseline(yk[a], Xk.iloc[b])
            oof["fault-code lookup"][b] = fault_code_baseline(Xk.iloc[a], yk[a], Xk.iloc[b])
    scores += _score_rows(f"stratified {cv}-fold CV (shuffled, training range)", yk, oof)
    pred = model.predict(X_ho)
    labels = sorted(set(y_ho) | set(pred))
    confusion = pd.crosstab(pd.Series(y_ho, name="entered"), pd.Series(pred, name="predicted"))
    confusion = confusion.reindex(index=labels, columns=labels, fill_value=0)
    per_class = pd.DataFrame({"category": labels, "n": [int((y_ho == c).sum()) for c in labels]})
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class["recall"] = [np.mean(pred[y_ho == c] == c) if (y_ho == c).any() else np.nan
                               for c in labels]
        per_class["precision"] = [np.mean(y_ho[pred == c] == c) if (pred == c).any() else np.nan
                                  for c in labels]
    metrics = {f"holdout_{k}": v for k, v in classification_metrics(model, X_ho, pd.Series(y_ho)).items()}
    metrics["cv_balanced_accuracy"] = scores[-3]["balanced_accuracy"]  # the model's row of the CV
    metrics["holdout_majority_accuracy"] = scores[1]["accuracy"]
    metrics["holdout_fault_code_accuracy"] = scores[2]["accuracy"]
    return TrainingRun(model=model, train_range=(lo.to_pydatetime(), mid.to_pydatetime()),
                       holdout_range=(mid.to_pydatetime(), hi.to_pydatetime()), n_train=int(tr.sum()),
                       n_holdout=int(ho.sum()), scores=pd.DataFrame(scores), confusion=confusion,
                       per_class=per_class, metrics=metrics, X_train=X_tr)


def register_challenger(run: TrainingRun, registry: Registry) -> ModelVersion:
    """Register the run's model as a new ``rootcause`` version with the alias ``challenger``.

    The champion is not touched: ``workbench models promote rootcause VERSION`` (or the retrain
    flow's rule) makes a challenger champion.
    """
    with _quiet():
        return registry.register(ROOTCAUSE, run.model, metrics=dict(run.metrics),
                                 training_range=run.train_range, features=list(run.X_train.columns),
                                 sample=run.X_train.head(5), description=run.description)
