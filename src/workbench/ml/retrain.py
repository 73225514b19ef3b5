"""Retraining the root-cause classifier: a challenger, a fair backtest, a logged decision.

One round (:func:`retrain_rootcause`):

1. the *held-out window* is the last ``holdout_days`` before ``end``; the challenger trains on the
   ``train_days`` before it (stops whose category an operator entered);
2. champion and challenger are scored on the SAME held-out stops (accuracy, balanced accuracy,
   macro F1 against the entered categories — the labels a plant has); a champion that was trained
   on any of those stops cannot be compared fairly, so the round keeps it and says why;
3. :func:`workbench.ml.promotion.decide` applies the rule (:data:`ROOTCAUSE_RULE`: better balanced
   accuracy by a margin, macro F1 no worse than a tolerance, accuracy at least 0.65 — the seed's
   retraining trigger); the challenger is registered either way (alias ``challenger``) and the
   decision is recorded with both sets of numbers.

:func:`champion_health` is the daily check: the champion's accuracy on the coded stops of the
last days it has not seen; below the floor it triggers a round before the weekly one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from workbench.errors import MLError
from workbench.ml.features import stop_features
from workbench.ml.promotion import PromotionRule, decide
from workbench.ml.registry import ModelVersion, Registry
from workbench.ml.rootcause import (
    RootCauseClassifier,
    fault_code_baseline,
    majority_baseline,
    predict_stops,
    training_frame,
)

ROOTCAUSE = "rootcause"
#: What a root-cause challenger must show (absolute differences of the scores).
ROOTCAUSE_RULE = PromotionRule(primary="balanced_accuracy", margin=0.01, guards={"macro_f1": 0.02},
                               floors={"accuracy": 0.65})
#: Tables the root-cause round reads (the flow reads them from the warehouse).
ROOTCAUSE_TABLES = ("downtime_events", "machine_telemetry", "machine_states", "scrap_events")
#: Fewest coded stops for a training set or a held-out window.
MIN_STOPS = 30


@dataclass(frozen=True)
class RetrainResult:
    """One retraining round: the decision, the challenger's card and the numbers."""

    model: str
    action: str
    reason: str
    challenger: ModelVersion
    champion_version: int | None
    champion_metrics: Mapping[str, float] | None
    challenger_metrics: Mapping[str, float]
    train_range: tuple[dt.datetime, dt.datetime]
    holdout_range: tuple[dt.datetime, dt.datetime]
    n_train: int
    n_holdout: int

    def as_dict(self) -> dict[str, Any]:
        """Plain values for a flow's return value and artifact."""
        return {"model": self.model, "action": self.action, "reason": self.reason,
                "challenger_version": self.challenger.version, "champion_version": self.champion_version,
                "champion_metrics": dict(self.champion_metrics or {}),
                "challenger_metrics": dict(self.challenger_metrics),
                "train_range": [t.isoformat() for t in self.train_range],
                "holdout_range": [t.isoformat() for t in self.holdout_range],
                "n_train": self.n_train, "n_holdout": self.n_holdout}


def classification_metrics(model: Any, X: pd.DataFrame, y: pd.Series) -> dict[str, float]:  # noqa: N803
    """Accuracy, balanced accuracy and macro F1 of ``model`` on ``X``, ``y``."""
    pred = model.predict(X)
    return {"accuracy": float(accuracy_score(y, pred)),
            "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
            "macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)), "n": float(len(y))}


def _window(X: pd.DataFrame, y: pd.Series, starts: pd.Series, lo: pd.Timestamp, hi: pd.Timestamp):  # noqa: N803
    mask = ((starts >= lo) & (starts < hi)).reindex(X.index).fillna(False).to_numpy(bool)
    return X[mask], y[mask]


def model_features(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Stop features the way the root-cause models are trained and applied: downtime_events with
    machine_telemetry, machine_states and scrap_events (whichever are given and not empty).

    The one definition: the retrain flow computes it once per run and passes it to
    :func:`champion_health`, :func:`retrain_rootcause` and :func:`score_stops`; the notebooks'
    sections call it too.
    """
    def table(name: str) -> pd.DataFrame | None:
        frame = tables.get(name)
        return frame if frame is not None and len(frame) else None

    downtime = table("downtime_events")
    if downtime is None:
        raise MLError("no downtime_events: nothing to build stop features from")
    return stop_features(downtime, telemetry=table("machine_telemetry"),
                         machine_states=table("machine_states"), scrap_events=table("scrap_events"))


def _labelled(tables: Mapping[str, pd.DataFrame],
              features: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    downtime = tables.get("downtime_events")
    if downtime is None or downtime.empty:
        raise MLError("no downtime_events to train the root-cause classifier on")
    X, y = training_frame(model_features(tables) if features is None else features, downtime)  # noqa: N806
    starts = pd.Series(pd.to_datetime(downtime["time_start"], utc=True).to_numpy(),
                       index=downtime["event_id"].astype(str))
    return X, y, starts


def retrain_rootcause(tables: Mapping[str, pd.DataFrame], *, registry: Registry, end: dt.datetime,
                      train_days: int = 28, holdout_days: int = 7, params: Mapping[str, Any] | None = None,
                      rule: PromotionRule = ROOTCAUSE_RULE,
                      features: pd.DataFrame | None = None) -> RetrainResult:
    """Train a challenger, backtest it and the champion on the same held-out window, decide.

    Parameters
    ----------
    tables : mapping of DataFrames
        :data:`ROOTCAUSE_TABLES` covering ``[end - holdout_days - train_days, end)`` (telemetry
        from an hour earlier: the features look back one hour before each stop).
    registry : Registry
        Where the champion is loaded from and the challenger registered.
    end : datetime
        Timezone-aware end of the held-out window (the flow passes the start of today).
    train_days, holdout_days : int
        Lengths of the training and held-out windows.
    params : mapping, optional
        Hyperparameters of :class:`~workbench.ml.rootcause.RootCauseClassifier` for the challenger.
    features : DataFrame, optional
        :func:`model_features` of ``tables`` when the caller has them already.

    Raises
    ------
    MLError
        When a window has fewer than :data:`MIN_STOPS` coded stops.
    """
    if end.tzinfo is None:
        raise MLError("end must be timezone-aware")
    hi = pd.Timestamp(end)
    lo_hold = hi - pd.Timedelta(days=holdout_days)
    lo_train = lo_hold - pd.Timedelta(days=train_days)
    X, y, starts = _labelled(tables, features)  # noqa: N806
    X_tr, y_tr = _window(X, y, starts, lo_train, lo_hold)  # noqa: N806
    X_ho, y_ho = _window(X, y, starts, lo_hold, hi)  # noqa: N806
    for what, n, a, b in (("training", len(y_tr), lo_train, lo_hold), ("held-out", len(y_ho), lo_hold, hi)):
        if n < MIN_STOPS:
            raise MLError(f"the {what} window {a:%Y-%m-%d} – {b:%Y-%m-%d} has {n} coded stop(s); "
                          f"at least {MIN_STOPS} are needed to train and judge a model")
    challenger = RootCauseClassifier(**dict(params or {}))
    challenger.fit(X_tr, y_tr, times=starts.reindex(X_tr.index))
    chall_metrics = classification_metrics(challenger, X_ho, y_ho)

    champ_version = registry.champion_version(ROOTCAUSE) if ROOTCAUSE in registry.names() else None
    champ_metrics: dict[str, float] | None = None
    unfair = None
    if champ_version is not None:
        champ = registry.load(ROOTCAUSE, version=champ_version)
        if champ.card.training_end is not None and champ.card.training_end > lo_hold.to_pydatetime():
            unfair = (f"champion v{champ_version} was trained on data up to "
                      f"{champ.card.training_end:%Y-%m-%d %H:%M}, inside the held-out window from "
                      f"{lo_hold:%Y-%m-%d %H:%M}: no fair comparison")
        else:
            champ_metrics = classification_metrics(champ.model, X_ho, y_ho)

    # The baselines on the same held-out stops, so the card says what the model is better than.
    truth = np.asarray(y_ho)
    baselines = {"fault_code_accuracy": float(np.mean(fault_code_baseline(X_tr, y_tr, X_ho) == truth)),
                 "majority_accuracy": float(np.mean(majority_baseline(y_tr, X_ho) == truth))}
    card = registry.register(
        ROOTCAUSE, challenger, metrics={f"holdout_{k}": v for k, v in {**chall_metrics, **baselines}.items()},
        training_range=(lo_train.to_pydatetime(), lo_hold.to_pydatetime()), features=list(X_tr.columns),
        sample=X_tr.head(5), description=f"trained on {len(y_tr)} coded stops {lo_train:%Y-%m-%d} – "
                                         f"{lo_hold:%Y-%m-%d}; held out {len(y_ho)} to {hi:%Y-%m-%d}")
    if unfair:
        decision = decide(ROOTCAUSE, rule, challenger=chall_metrics, challenger_version=card.version,
                          champion=None, champion_version=None)
        decision = type(decision)(model=ROOTCAUSE, action="keep", champion_before=champ_version,
                                  champion_after=champ_version, challenger=card.version, reason=unfair,
                                  metrics=decision.metrics)
    else:
        decision = decide(ROOTCAUSE, rule, challenger=chall_metrics, challenger_version=card.version,
                          champion=champ_metrics, champion_version=champ_version)
    if decision.action == "promote":
        registry.promote(ROOTCAUSE, card.version, reason=decision.reason, action="promote",
                         metrics=decision.metrics)
    else:
        registry.record(decision)
    return RetrainResult(model=ROOTCAUSE, action=decision.action, reason=decision.reason, challenger=card,
                         champion_version=champ_version, champion_metrics=champ_metrics,
                         challenger_metrics=chall_metrics,
                         train_range=(lo_train.to_pydatetime(), lo_hold.to_pydatetime()),
                         holdout_range=(lo_hold.to_pydatetime(), hi.to_pydatetime()),
                         n_train=len(y_tr), n_holdout=len(y_ho))


@dataclass(frozen=True)
class Health:
    """The champion's accuracy on recent coded stops it was not trained on."""

    model: str
    version: int | None
    accuracy: float | None
    n: int
    floor: float
    retrain: bool
    reason: str


def champion_health(tables: Mapping[str, pd.DataFrame], *, registry: Registry, end: dt.datetime,
                    days: int = 7, rule: PromotionRule = ROOTCAUSE_RULE, min_stops: int = 10,
                    features: pd.DataFrame | None = None) -> Health:
    """The daily retraining trigger: is the champion still good enough on the latest labels?
    (``features``: :func:`model_features` of ``tables`` when the caller has them already.)"""
    floor = float(rule.floors.get("accuracy", 0.65))
    version = registry.champion_version(ROOTCAUSE) if ROOTCAUSE in registry.names() else None
    if version is None:
        return Health(ROOTCAUSE, None, None, 0, floor, True, "no champion yet")
    champ = registry.load(ROOTCAUSE, version=version)
    hi = pd.Timestamp(end)
    lo = hi - pd.Timedelta(days=days)
    if champ.card.training_end is not None:
        lo = max(lo, pd.Timestamp(champ.card.training_end))
    X, y, starts = _labelled(tables, features)  # noqa: N806
    X_w, y_w = _window(X, y, starts, lo, hi)  # noqa: N806
    if len(y_w) < min_stops:
        return Health(ROOTCAUSE, version, None, len(y_w), floor, False,
                      f"only {len(y_w)} coded stops since {lo:%Y-%m-%d}: too few to judge the champion")
    acc = float(np.mean(champ.model.predict(X_w) == y_w.to_numpy()))
    bad = acc < floor
    return Health(ROOTCAUSE, version, acc, len(y_w), floor, bad,
                  f"champion v{version} accuracy {acc:.3f} on {len(y_w)} coded stops since {lo:%Y-%m-%d} "
                  + ("below" if bad else "at or above") + f" the floor {floor:.2f}")


def score_stops(tables: Mapping[str, pd.DataFrame], *, registry: Registry, start: dt.datetime,
                end: dt.datetime, features: pd.DataFrame | None = None) -> pd.DataFrame:
    """The champion's predictions for the stops that started in ``[start, end)`` (``features``:
    :func:`model_features` of ``tables`` when the caller has them already).

    Returns
    -------
    DataFrame
        :func:`~workbench.ml.rootcause.predict_stops` rows (empty without a champion), with
        ``model_version`` ``rootcause/v<N>``.
    """
    version = registry.champion_version(ROOTCAUSE) if ROOTCAUSE in registry.names() else None
    downtime = tables.get("downtime_events")
    if version is None or downtime is None or downtime.empty:
        return pd.DataFrame(columns=["event_id", "predicted_category", "predicted_confidence", "fills_blank",
                                     "suspect", "top_contributions", "model_version"])
    champ = registry.load(ROOTCAUSE, version=version)
    starts = pd.to_datetime(downtime["time_start"], utc=True)
    day = downtime[(starts >= pd.Timestamp(start)) & (starts < pd.Timestamp(end))]
    if features is None:
        features = model_features(tables)
    return predict_stops(champ.model, features, day, model_version=f"{ROOTCAUSE}/v{version}")


def prediction_rows(predictions: pd.DataFrame, *, created_at: dt.datetime) -> pd.DataFrame:
    """``ml_predictions`` rows of :func:`score_stops` output (one per stop and model version)."""
    return pd.DataFrame({
        "target_table": "downtime_events", "target_id": predictions["event_id"].astype(str),
        "model_name": ROOTCAUSE, "model_version": predictions["model_version"].astype(str),
        "predicted": predictions["predicted_category"].astype(str),
        "confidence": predictions["predicted_confidence"].astype(float), "created_at": created_at})
