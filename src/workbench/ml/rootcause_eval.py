"""Cross-validated evaluation of the root-cause pipeline (:mod:`workbench.ml.rootcause`) on any
labelled table: the ``workbench rootcause evaluate FILE.csv --target COL`` command.

:func:`evaluate_table` cleans the table (the treatments are listed in the result's ``warnings``),
then runs stratified K-fold CV with the over-sampler inside each training fold and compares the
out-of-fold predictions with a majority-class baseline.
"""

# ruff: noqa: N806 - X is scikit-learn's name for the feature matrix
from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import balanced_accuracy_score, f1_score, recall_score
from sklearn.model_selection import StratifiedKFold

from workbench.errors import MLError
from workbench.ml.rootcause import RootCauseClassifier, _blank, _is_categorical, majority_baseline

#: Fewest labelled rows :func:`evaluate_table` cross-validates.
MIN_ROWS = 10


@dataclass(frozen=True)
class EvaluationResult:
    """Cross-validated scores of the pipeline on a labelled table.

    ``balanced_accuracy`` / ``macro_f1`` / ``per_class_recall`` come from the out-of-fold
    predictions of stratified K-fold CV (sampler inside the folds); ``baseline`` holds the same
    metrics for predicting each training fold's majority class. ``warnings`` lists every column
    dropped or altered, and why.
    """

    balanced_accuracy: float
    macro_f1: float
    per_class_recall: dict[str, float]
    baseline: dict[str, dict[str, float]]
    target: str
    n_rows: int
    cv: int
    features: tuple[str, ...]
    dropped_columns: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``workbench rootcause evaluate --json``."""
        return {"balanced_accuracy": self.balanced_accuracy, "macro_f1": self.macro_f1,
                "per_class_recall": dict(self.per_class_recall),
                "baseline": {k: dict(v) for k, v in self.baseline.items()}}


def _rows(index: pd.Index, mask: np.ndarray, limit: int = 5) -> str:
    where = [str(i) for i in index[mask][:limit]]
    more = int(mask.sum()) - len(where)
    return ", ".join(where) + (f" and {more} more" if more > 0 else "")


def _clean_table(df: pd.DataFrame, target: str,
                 cv: int) -> tuple[pd.DataFrame, np.ndarray, list[str], list[str]]:
    if not isinstance(df, pd.DataFrame):
        raise MLError(f"expected a table (DataFrame), got {type(df).__name__}")
    if target not in df.columns:
        raise MLError(f"target column {target!r} not found; the columns are: "
                      f"{', '.join(map(str, df.columns))}")
    if len(df) < MIN_ROWS:
        raise MLError(f"only {len(df)} row(s): need at least {MIN_ROWS} labelled rows to cross-validate")
    if cv < 2:
        raise MLError(f"--cv must be at least 2, got {cv}")
    y_raw = df[target]
    no_label = _blank(y_raw)
    if no_label.any():
        raise MLError(f"target {target!r} has no label in {int(no_label.sum())} row(s) (index "
                      f"{_rows(df.index, no_label)}): drop those rows or fill in their labels")
    y = y_raw.astype(str).to_numpy(dtype=object)
    counts = Counter(y.tolist())
    if len(counts) < 2:
        raise MLError(f"target {target!r} has a single class ({next(iter(counts))!r}): nothing to classify")
    small = sorted((n, c) for c, n in counts.items() if n < cv)
    if small:
        n, c = small[0]
        if n < 2:
            raise MLError(f"class {c!r} of {target!r} has a single row: drop it (every class needs at least "
                          "two rows to be split into folds)")
        also = f" (also too small: {', '.join(repr(c2) for _, c2 in small[1:])})" if len(small) > 1 else ""
        raise MLError(f"class {c!r} of {target!r} has {n} row(s), fewer than the {cv} folds: use --cv "
                      f"{max(2, n)} or fewer, or drop that class's rows{also}")
    feats = [c for c in df.columns if c != target]
    if not feats:
        raise MLError(f"no feature columns: the table has only the target {target!r}")
    notes: list[str] = []
    dropped: list[str] = []
    X = pd.DataFrame(index=df.index)
    for c in feats:
        s = df[c]
        name = str(c)
        if s.isna().all():
            dropped.append(name)
            notes.append(f"column {name!r} dropped: empty (all values missing)")
            continue
        if _is_categorical(s) and not pd.api.types.is_bool_dtype(s):
            text = s.astype("string").str.strip()
            num = pd.to_numeric(text, errors="coerce")
            present = text.notna() & (text.str.len() > 0)
            bad = (present & num.isna()).to_numpy(dtype=bool)
            share = 1.0 - bad.sum() / max(int(present.sum()), 1)
            if share >= 0.9:
                if bad.any():
                    notes.append(f"column {name!r} is numeric but {int(bad.sum())} value(s) are text (index "
                                 f"{_rows(df.index, bad)}, e.g. {text[bad].iloc[0]!r}): read as missing")
                s = num
            elif s.astype("string").nunique(dropna=True) == len(s):
                dropped.append(name)
                notes.append(f"column {name!r} dropped: text unique in every row (an id), which cannot "
                             "generalise to new rows")
                continue
        if s.nunique(dropna=False) <= 1:
            dropped.append(name)
            notes.append(f"column {name!r} dropped: constant ({s.iloc[0]!r} in every row)")
            continue
        X[name] = s
    if X.shape[1] == 0:
        raise MLError("no usable feature column: " + "; ".join(notes))
    return X, y, notes, dropped


def evaluate_table(df: pd.DataFrame, *, target: str, cv: int = 5, random_state: int = 0,
                   classifier: RootCauseClassifier | None = None) -> EvaluationResult:
    """Cross-validate the root-cause pipeline on any labelled table.

    Features are all columns but ``target``: text / bool columns are one-hot encoded, numbers
    used as they are (missing values imputed with indicators). Treatments, listed in the result's
    ``warnings``: all-missing or constant columns are dropped; text columns unique in every row
    (ids) are dropped; a mostly numeric column (≥ 90 % of its values) has its text values read as
    missing. Stratified ``cv``-fold CV with the over-sampler inside each training fold.

    Parameters
    ----------
    df : DataFrame
        The labelled table.
    target : str
        Label column.
    cv : int
        Folds of stratified K-fold.
    random_state : int
        Seed of the folds and the model.
    classifier : RootCauseClassifier, optional
        The pipeline to validate (cloned per fold); default ``RootCauseClassifier`` without
        calibration (calibration only reshapes probabilities and costs a few fits per fold).

    Returns
    -------
    EvaluationResult

    Raises
    ------
    MLError
        Target missing, labels missing (rows named), a class smaller than ``cv`` (class named),
        fewer than 10 rows, no usable feature column.
    """
    X, y, notes, dropped = _clean_table(df, target, cv)
    est = classifier if classifier is not None else RootCauseClassifier(
        calibration=None, min_class_count=1, random_state=random_state)
    folds = StratifiedKFold(n_splits=cv, shuffle=True, random_state=random_state)
    pred = np.empty(len(y), dtype=object)
    base = np.empty(len(y), dtype=object)
    try:
        for train, test in folds.split(X, y):
            model = clone(est).fit(X.iloc[train], y[train])
            pred[test] = model.predict(X.iloc[test])
            base[test] = majority_baseline(y[train], test)
    except (ValueError, TypeError) as exc:  # what the checks above did not foresee, said plainly
        raise MLError(f"the pipeline could not be cross-validated on this table: {exc}") from None
    labels = sorted(set(y.tolist()))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(ill-defined|y_pred contains classes).*")
        recall = recall_score(y, pred, labels=labels, average=None, zero_division=0)
        result = EvaluationResult(
            balanced_accuracy=float(balanced_accuracy_score(y, pred)),
            macro_f1=float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
            per_class_recall={c: float(r) for c, r in zip(labels, recall, strict=True)},
            baseline={"majority": {
                "balanced_accuracy": float(balanced_accuracy_score(y, base)),
                "macro_f1": float(f1_score(y, base, labels=labels, average="macro", zero_division=0))}},
            target=target, n_rows=len(y), cv=cv, features=tuple(X.columns), dropped_columns=tuple(dropped),
            warnings=tuple(notes))
    return result
