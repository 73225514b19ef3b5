"""Root-cause classifier for downtime: predicts a stop's category of the plant's taxonomy.

The model is an imbalanced-learn ``Pipeline`` — preprocessing (median imputation with missing
indicators for numbers, one-hot for categories), an over-sampler (SMOTE, adapted to the smallest
class) and a random forest — wrapped in scikit-learn's ``CalibratedClassifierCV``. The sampler is
a pipeline step, so it only ever sees training rows: inside every calibration fold, and inside
every fold of :func:`evaluate_table`. SMOTE applied before a split copies neighbours of the test
rows into training and inflates the score (``tests/ml/test_rootcause.py`` shows it).

What it is trained on: the categories operators ENTERED (noisy, which is reality), without blank
codes and without the planned categories (Scheduled Maintenance, No Demand), which come from the
schedule and are never blank in practice: the classifier predicts the seven unplanned categories.
What it is for: filling blank codes (:func:`predict_stops`, :func:`apply_predictions` — never over
an operator's code) and flagging entered codes that disagree with a confident prediction.
"""

# ruff: noqa: N803, N806 - X is scikit-learn's name for the feature matrix
from __future__ import annotations

import importlib
import warnings
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from imblearn.over_sampling import SMOTE, RandomOverSampler
from imblearn.pipeline import Pipeline
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import DataConversionWarning
from sklearn.impute import SimpleImputer
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import OneHotEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from workbench.errors import MLError

#: Categories that come from the schedule, not from an operator: not predicted.
PLANNED_CATEGORIES: tuple[str, ...] = ("Scheduled Maintenance", "No Demand")
MISSING_LEVEL = "none"


# --------------------------------------------------------------------------------------------
# the sampler step


class AdaptiveOverSampler(BaseEstimator):
    """SMOTE whose ``k_neighbors`` shrinks to fit the smallest class of the rows it is given.

    Inside cross-validation folds the smallest class can be tiny; SMOTE needs ``k + 1`` members,
    so ``k`` becomes ``min(k_neighbors, smallest - 1)``, and a class of one falls back to random
    over-sampling (duplicates). ``kind="random"`` always over-samples at random.

    Parameters
    ----------
    kind : {"smote", "random"}
        Interpolate new minority rows (SMOTE) or duplicate existing ones.
    k_neighbors : int
        SMOTE's neighbours when every class is large enough.
    random_state : int or None
        Seed of the sampler.
    """

    def __init__(self, *, kind: str = "smote", k_neighbors: int = 5, random_state: int | None = 0) -> None:
        self.kind = kind
        self.k_neighbors = k_neighbors
        self.random_state = random_state

    def fit_resample(self, X: Any, y: Any) -> tuple[Any, Any]:
        """Balance every class up to the majority's count (training rows only)."""
        counts = Counter(np.asarray(y).tolist())
        if len(counts) < 2:
            return X, y
        smallest = min(counts.values())
        if self.kind == "smote" and smallest >= 2:
            k = min(self.k_neighbors, smallest - 1)
            sampler: Any = SMOTE(k_neighbors=k, random_state=self.random_state)
        elif self.kind in ("smote", "random"):
            sampler = RandomOverSampler(random_state=self.random_state)
        else:
            raise MLError(f"unknown sampler kind {self.kind!r}: use 'smote' or 'random'")
        return sampler.fit_resample(X, y)


# --------------------------------------------------------------------------------------------
# the classifier


def _is_categorical(s: pd.Series) -> bool:
    return bool(pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s)
                or isinstance(s.dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(s))


class InputError(MLError, ValueError):
    """Unusable input to the estimator — an :class:`MLError` that is also the ``ValueError``
    scikit-learn's tooling (``check_estimator``, search CV error handling) expects."""


def _as_frame(X: Any) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        frame = X
    else:
        if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
            raise InputError("sparse input is not supported: pass a dense table (DataFrame)")
        arr = np.asarray(X)
        if arr.ndim != 2:
            raise InputError(f"X must be a table (2-D), got an array of shape {arr.shape}: "
                             "Reshape your data, e.g. X.reshape(-1, 1) for a single feature")
        if np.iscomplexobj(arr):
            raise InputError("Complex data not supported")
        frame = pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])])
    if frame.shape[1] == 0:
        raise InputError(f"X has 0 feature(s) (shape={frame.shape}) while a minimum of 1 is required.")
    if frame.shape[0] == 0:
        raise InputError(f"X has 0 sample(s) (shape={frame.shape}) while a minimum of 1 is required.")
    return frame


def _labels(y: Any, n: int) -> np.ndarray:
    if y is None:
        raise InputError("RootCauseClassifier requires y to be passed, but the target y is None")
    arr = y.to_numpy() if isinstance(y, pd.Series | pd.Index) else np.asarray(y)
    if arr.ndim != 1:
        if arr.ndim == 2 and arr.shape[1] == 1:
            warnings.warn("A column-vector y was passed when a 1d array was expected; flattened to 1-D",
                          DataConversionWarning, stacklevel=3)
            arr = arr.ravel()
        else:
            raise InputError(f"y must be one label per row (1-D), got shape {arr.shape}")
    if len(arr) != n:
        raise InputError(f"X has {n} rows but y has {len(arr)} labels: the number of labels must match")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr[~np.isnan(arr)])):
        raise InputError("y contains inf")
    blank = pd.isna(arr)
    if blank.any():
        first = int(np.flatnonzero(blank)[0])
        raise InputError(f"y has {int(blank.sum())} missing label(s) (NaN; first at row {first}); "
                         "leave blank-coded stops out of training")
    if arr.dtype.kind in "OUS" or isinstance(arr.dtype, pd.StringDtype):
        arr = arr.astype(object)
    else:
        check_classification_targets(arr)  # a continuous target is not a category
    return arr


class RootCauseClassifier(ClassifierMixin, BaseEstimator):
    """Calibrated, SMOTE-inside-the-folds random forest over stop features.

    Why a random forest: on four development plants (seeds 101–104, 12 machines × 6 weeks,
    trained on weeks 1–4, scored on the blank codes of weeks 5–6) it scored like a
    HistGradientBoosting model with native categories and NaN handling (0.86 vs 0.87 mean accuracy,
    within the noise of ~100 stops per plant) at a tenth of the fit time, and its SHAP values are
    cheap; SMOTE and calibration changed accuracy by less than that noise too, and are kept for
    balanced recall on rare categories and for confidences that mean what they say. SMOTE runs
    after one-hot encoding, so synthetic rows can hold fractional one-hot values; trees split them
    like any number.

    Parameters
    ----------
    n_estimators : int
        Trees of the forest.
    max_depth : int or None
        Depth limit of the trees (None: grown until ``min_samples_leaf``).
    min_samples_leaf : int
        Fewest (resampled) training rows in a leaf.
    sampler : {"smote", "random", "none"}
        Over-sampler step of the pipeline (only ever applied to training rows).
    k_neighbors : int
        SMOTE neighbours (shrunk for small classes, see :class:`AdaptiveOverSampler`).
    calibration : {"sigmoid", "isotonic", "temperature"} or None
        Probability calibration on out-of-fold predictions (``CalibratedClassifierCV`` with
        ``ensemble=False``: the forest is refit on all rows, the calibrator on held-out folds).
    calibration_cv : int
        Stratified folds for calibration (fewer when the smallest class has fewer rows).
    min_class_count : int
        Classes with fewer training rows are left out (listed in ``dropped_classes_``): a class
        of one cannot be calibrated, and a prediction learned from two stops is not one to trust.
    random_state : int or None
        Seed of folds, sampler and forest.

    Attributes
    ----------
    classes_ : ndarray
        Predicted categories. ``pipeline_`` is the fitted imbalanced-learn pipeline
        (``preprocess``, ``sampler``, ``model``), ``calibrator_`` the calibrated wrapper (None
        without calibration), ``feature_names_`` the input columns, ``categorical_`` those
        one-hot encoded, ``training_range_`` ``(first, last)`` time (ISO-8601 text, UTC) of the
        training rows when
        ``times`` were passed to :meth:`fit`, ``class_counts_`` the training rows per class.
    """

    def __init__(self, *, n_estimators: int = 200, max_depth: int | None = 12, min_samples_leaf: int = 2,
                 sampler: str = "smote", k_neighbors: int = 5, calibration: str | None = "sigmoid",
                 calibration_cv: int = 3, min_class_count: int = 3, random_state: int | None = 0) -> None:
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.sampler = sampler
        self.k_neighbors = k_neighbors
        self.calibration = calibration
        self.calibration_cv = calibration_cv
        self.min_class_count = min_class_count
        self.random_state = random_state

    # -- fitting ---------------------------------------------------------------------------

    def _pipeline(self, numeric: list[str], categorical: list[str]) -> Pipeline:
        parts = []
        if numeric:
            imputer = SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)
            parts.append(("num", imputer, numeric))
        if categorical:
            parts.append(("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical))
        if self.sampler == "none":
            sampler: Any = "passthrough"
        elif self.sampler in ("smote", "random"):
            sampler = AdaptiveOverSampler(kind=self.sampler, k_neighbors=self.k_neighbors,
                                          random_state=self.random_state)
        else:
            raise MLError(f"sampler must be 'smote', 'random' or 'none', got {self.sampler!r}")
        model = RandomForestClassifier(n_estimators=self.n_estimators, max_depth=self.max_depth,
                                       min_samples_leaf=self.min_samples_leaf, n_jobs=1,
                                       random_state=self.random_state)
        preprocess = ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=False)
        return Pipeline([("preprocess", preprocess), ("sampler", sampler), ("model", model)])

    def _prepare(self, X: pd.DataFrame, *, array: bool = False) -> pd.DataFrame:
        """Columns in training order; categories as text with ``'none'`` for missing, numbers as float."""
        if array and X.shape[1] != self.n_features_in_:
            raise InputError(f"X has {X.shape[1]} features, but RootCauseClassifier is expecting "
                             f"{self.n_features_in_} features as input")
        X = X.rename(columns=str)
        missing = [c for c in self.feature_names_ if c not in X.columns]
        if missing:
            raise InputError(f"X lacks the feature column(s) the model was trained on: {', '.join(missing)} "
                             f"(X has {X.shape[1]} feature(s), the model {self.n_features_in_})")
        out = {}
        for c in self.feature_names_:
            s = X[c]
            if c in self.categorical_:
                t = s.astype("string")
                out[c] = t.where(t.str.strip().str.len() > 0).fillna(MISSING_LEVEL).to_numpy(dtype=object)
            else:
                v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
                out[c] = np.where(np.isfinite(v), v, np.nan)  # ±inf (a ratio over 0) is as good as unknown
        return pd.DataFrame(out, index=X.index)

    def fit(self, X: Any, y: Any, *, times: Any = None) -> RootCauseClassifier:
        """Fit preprocessing, sampler, forest and calibration on ``X``, ``y``.

        Parameters
        ----------
        X : DataFrame
            Features (e.g. :func:`workbench.ml.features.stop_features`); text, category and bool
            columns are one-hot encoded, the others taken as numbers (NaN imputed, with indicators).
        y : array-like
            Categories (entered codes).
        times : array-like of datetimes, optional
            Time of each row, recorded as ``training_range_``.

        Returns
        -------
        RootCauseClassifier
            ``self``, fitted.

        Raises
        ------
        MLError
            If X and y differ in length, a label is missing or fewer than two classes have
            ``min_class_count`` rows.
        """
        X = _as_frame(X)
        y = _labels(y, len(X))
        counts = Counter(y.tolist())
        dropped = sorted(str(c) for c, n in counts.items() if n < self.min_class_count)
        keep = np.array([counts[v] >= self.min_class_count for v in y], dtype=bool)
        if len({v for v, k in zip(y, keep, strict=True) if k}) < 2:
            raise InputError(f"need at least two classes with {self.min_class_count}+ rows to train; got "
                             f"{len(counts)} class(es) in {len(y)} sample(s): {dict(counts)}")
        X, y = X.loc[keep], y[keep]
        self.feature_names_ = [str(c) for c in X.columns]
        X.columns = self.feature_names_
        self.categorical_ = [c for c in self.feature_names_ if _is_categorical(X[c])]
        self.numeric_ = [c for c in self.feature_names_ if c not in self.categorical_]
        self.n_features_in_ = len(self.feature_names_)
        self.dropped_classes_ = tuple(dropped)
        self.class_counts_ = {str(k): int(v) for k, v in sorted(Counter(y.tolist()).items())}
        Xp = self._prepare(X)
        pipe = self._pipeline(self.numeric_, self.categorical_)
        if self.calibration is None:
            self.pipeline_ = pipe.fit(Xp, y)
            self.calibrator_ = None
            self.classes_ = self.pipeline_.classes_
        else:
            n_splits = max(2, min(self.calibration_cv, min(Counter(y.tolist()).values())))
            folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=self.random_state)
            cal = CalibratedClassifierCV(pipe, method=self.calibration, cv=folds, ensemble=False)
            with warnings.catch_warnings():
                # A class absent from one calibration fold's training part is expected with small classes.
                warnings.filterwarnings("ignore", message=".*(members|Number of classes in training fold).*")
                cal.fit(Xp, y)
            self.calibrator_ = cal
            self.pipeline_ = cal.calibrated_classifiers_[0].estimator
            self.classes_ = cal.classes_
        if times is not None:
            t = pd.to_datetime(pd.Series(times), utc=True)
            t = t[keep] if len(t) == len(keep) else t
            # ISO text, not Timestamps: the registry stores models in skops format, which holds text.
            self.training_range_: tuple[str, str] | None = (t.min().isoformat(), t.max().isoformat())
        else:
            self.training_range_ = None
        self.feature_sources_ = self._sources()
        return self

    def _sources(self) -> list[str]:
        """The input column behind each column the forest sees (one-hot and indicator columns map back)."""
        ct: ColumnTransformer = self.pipeline_.named_steps["preprocess"]
        out: list[str] = []
        for name, trans, cols in ct.transformers_:
            if name == "num":
                out += list(cols)
                if trans.indicator_ is not None:
                    out += [cols[i] for i in trans.indicator_.features_]
            elif name == "cat":
                for c, cats in zip(cols, trans.categories_, strict=True):
                    out += [c] * len(cats)
        return out

    # -- prediction ------------------------------------------------------------------------

    def predict_proba(self, X: Any) -> np.ndarray:
        """Calibrated probability of each class in ``classes_`` for each row."""
        check_is_fitted(self)
        Xp = self._prepare(_as_frame(X), array=not isinstance(X, pd.DataFrame))
        est = self.calibrator_ if self.calibrator_ is not None else self.pipeline_
        return est.predict_proba(Xp)

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class of each row."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def explain(self, X: Any, *, top: int = 3) -> pd.DataFrame:
        """Top SHAP contributions to each row's predicted class.

        SHAP values (``shap.TreeExplainer``, path-dependent) of the forest's probability for the
        predicted class, summed over the columns one input feature became (its one-hot levels and
        missing indicator), so each contribution names an input feature and its value. They explain
        the forest before calibration, in probability points. Computed for the rows given only.

        Returns
        -------
        DataFrame
            Indexed like ``X``: ``predicted_category``, ``contributions`` (list of
            ``(feature, value, shap)``, largest |shap| first) and ``text`` (e.g.
            ``"fault_code=F2110 (+0.41), vibration_rms_slope=1.66 (+0.22)"``).
        """
        import shap

        check_is_fitted(self)
        if isinstance(X, pd.DataFrame) and len(X) == 0:
            return pd.DataFrame({"predicted_category": [], "contributions": [], "text": []}, index=X.index)
        X = _as_frame(X)
        Xp = self._prepare(X, array=False)
        pred = self.predict(X)
        Xt = self.pipeline_.named_steps["preprocess"].transform(Xp)
        model = self.pipeline_.named_steps["model"]
        explainer = shap.TreeExplainer(model)
        values = np.asarray(explainer.shap_values(Xt, check_additivity=False))
        if values.ndim == 2:  # pragma: no cover - older shap: binary output as one matrix
            values = np.stack([-values, values], axis=-1)
        sources = self.feature_sources_
        names = list(dict.fromkeys(sources))
        agg = np.zeros((len(sources), len(names)))
        agg[np.arange(len(sources)), [names.index(s) for s in sources]] = 1.0
        k = np.searchsorted(model.classes_, pred)
        per_row = np.einsum("ijk,ik->ij", values, np.eye(values.shape[2])[k]) @ agg
        contributions, texts = [], []
        for i in range(len(Xp)):
            order = np.argsort(-np.abs(per_row[i]), kind="stable")[:top]
            row = [(names[j], Xp.iloc[i][names[j]], float(per_row[i, j])) for j in order]
            contributions.append(row)
            texts.append(", ".join(f"{f}={_fmt(v)} ({s:+.2f})" for f, v, s in row))
        return pd.DataFrame({"predicted_category": pred, "contributions": contributions, "text": texts},
                            index=X.index)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.string = True
        return tags


def _fmt(v: Any) -> str:
    if isinstance(v, float | np.floating):
        return "missing" if np.isnan(v) else f"{v:.3g}"
    return str(v)


# --------------------------------------------------------------------------------------------
# training data, predictions, baselines


def _blank(s: pd.Series) -> np.ndarray:
    t = s.astype("string")
    return (t.isna() | (t.str.strip().str.len() == 0)).fillna(True).to_numpy(dtype=bool)


def training_frame(features: pd.DataFrame, downtime_events: pd.DataFrame, *,
                   planned_categories: Sequence[str] = PLANNED_CATEGORIES) -> tuple[pd.DataFrame, pd.Series]:
    """Training rows: stops with an entered, unplanned category.

    Parameters
    ----------
    features : DataFrame
        :func:`workbench.ml.features.stop_features`, indexed by event_id.
    downtime_events : DataFrame
        With ``event_id`` and ``reason_category`` (the operators' entered category).
    planned_categories : sequence of str
        Left out: they come from the schedule (never blank in practice) and are not predicted.

    Returns
    -------
    (DataFrame, Series)
        ``X`` (rows of ``features``) and ``y`` (entered category), both indexed by event_id.
    """
    for col in ("event_id", "reason_category"):
        if col not in downtime_events.columns:
            raise MLError(f"downtime_events lacks column {col}")
    de = downtime_events.set_index(downtime_events["event_id"].astype(str))
    entered = de["reason_category"]
    keep = ~_blank(entered) & ~entered.isin(list(planned_categories)).to_numpy(dtype=bool)
    ids = de.index[keep]
    absent = ids.difference(features.index)
    if len(absent):
        raise MLError(f"{len(absent)} coded stop(s) have no feature row, e.g. event_id {absent[0]}")
    y = entered.loc[ids].astype(str).rename("category")
    return features.loc[ids], y


def predict_stops(model: RootCauseClassifier, features: pd.DataFrame, downtime_events: pd.DataFrame, *,
                  model_version: str, suspect_threshold: float = 0.8, top: int = 3,
                  planned_categories: Sequence[str] = PLANNED_CATEGORIES) -> pd.DataFrame:
    """Predict the category of each stop, with confidence, explanation and flags.

    Stops whose entered category is planned (from the schedule) are left out.

    Parameters
    ----------
    model : RootCauseClassifier
        Fitted model.
    features : DataFrame
        Stop features indexed by event_id (a superset of the stops is fine).
    downtime_events : DataFrame
        The stops to score (e.g. the day's), with event_id, machine_id, time_start, reason_category.
    model_version : str
        Written to every row, so a prediction can be traced to the model that made it.
    suspect_threshold : float
        An entered code is ``suspect`` when the prediction differs and its confidence is at least this.
    top : int
        SHAP contributions per stop in ``top_contributions``; 0 leaves them empty (bulk scoring of
        history, where nobody reads them — the daily run keeps the default).

    Returns
    -------
    DataFrame
        event_id, machine_id, time_start, entered_category, predicted_category,
        predicted_confidence, fills_blank, suspect, top_contributions, model_version.
    """
    if not 0.0 < suspect_threshold <= 1.0:
        raise MLError(f"suspect_threshold must be in (0, 1], got {suspect_threshold}")
    de = downtime_events.reset_index(drop=True)
    entered = de["reason_category"] if "reason_category" in de.columns else pd.Series(pd.NA, index=de.index)
    blank = _blank(entered)
    keep = blank | ~entered.isin(list(planned_categories)).to_numpy(dtype=bool)
    de, blank = de.loc[keep].reset_index(drop=True), blank[keep]
    ids = de["event_id"].astype(str)
    absent = pd.Index(ids).difference(features.index)
    if len(absent):
        raise MLError(f"{len(absent)} stop(s) have no feature row, e.g. event_id {absent[0]}")
    X = features.loc[ids.to_numpy()]
    cols = ["event_id", "machine_id", "time_start", "entered_category", "predicted_category",
            "predicted_confidence", "fills_blank", "suspect", "top_contributions", "model_version"]
    if X.empty:
        return pd.DataFrame(columns=cols)
    proba = model.predict_proba(X)
    pred = model.classes_[np.argmax(proba, axis=1)]
    conf = proba.max(axis=1)
    texts = np.full(len(X), "", dtype=object)
    if top > 0:
        texts = model.explain(X, top=top)["text"].to_numpy(dtype=object)
    if "reason_category" in de.columns:
        entered_txt = de["reason_category"].astype(object).where(~blank, None)
    else:
        entered_txt = pd.Series([None] * len(de), dtype=object)
    disagrees = entered_txt.astype(str).to_numpy() != pred.astype(str)
    suspect = ~blank & disagrees & (conf >= suspect_threshold)
    return pd.DataFrame({
        "event_id": ids.to_numpy(), "machine_id": de["machine_id"].to_numpy() if "machine_id" in de else None,
        "time_start": de["time_start"].to_numpy() if "time_start" in de else None,
        "entered_category": entered_txt.to_numpy(dtype=object), "predicted_category": pred.astype(object),
        "predicted_confidence": conf, "fills_blank": blank, "suspect": suspect,
        "top_contributions": texts, "model_version": model_version,
    }, columns=cols)


def apply_predictions(downtime_events: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """Write ``predicted_category`` / ``predicted_confidence`` into the stops whose code is blank.

    An operator's code is never overwritten, and the predicted columns of coded stops are left as
    they were: a prediction only ever fills a gap.
    """
    out = downtime_events.copy()
    for col in ("predicted_category", "predicted_confidence"):
        if col not in out.columns:
            empty = [None] * len(out) if col == "predicted_category" else np.nan
            out[col] = pd.Series(empty, index=out.index)
    code_col = "reason_code" if "reason_code" in out.columns else "reason_category"
    blank = _blank(out[code_col]) if code_col in out.columns else np.ones(len(out), dtype=bool)
    if "reason_category" in out.columns:
        blank &= _blank(out["reason_category"])
    pred = predictions.assign(event_id=predictions["event_id"].astype(str)).drop_duplicates("event_id")
    pred = pred.set_index("event_id")
    ids = out["event_id"].astype(str)
    has = ids.isin(pred.index).to_numpy(dtype=bool) & blank
    out.loc[has, "predicted_category"] = pred.loc[ids[has], "predicted_category"].to_numpy()
    out.loc[has, "predicted_confidence"] = pred.loc[ids[has], "predicted_confidence"].to_numpy(dtype=float)
    return out


def majority_baseline(y_train: Any, X_test: Any) -> np.ndarray:
    """Predict the most frequent training category for every test row (ties: alphabetical first)."""
    counts = pd.Series(np.asarray(y_train, dtype=object)).value_counts()
    best = sorted(counts[counts == counts.max()].index.astype(str))[0]
    return np.full(len(X_test), best, dtype=object)


def fault_code_baseline(X_train: pd.DataFrame, y_train: Any, X_test: pd.DataFrame) -> np.ndarray:
    """The plant's fault-code lookup: the most frequent entered category per fault code.

    Rules, in order (ties between categories: alphabetical first):

    1. A fault code (not ``'none'``) seen in training → the most frequent training category of
       stops with that code.
    2. No fault code (``'none'``) → the most frequent category of training stops without one in
       the same machine ``state`` (a setup without a fault is a changeover, a down without one
       is anything); a fault code unseen in training → the same among all training stops in that
       state.
    3. Otherwise the overall most frequent training category.
    """
    for col in ("fault_code", "state"):
        for name, df in (("X_train", X_train), ("X_test", X_test)):
            if col not in df.columns:
                raise MLError(f"{name} lacks column {col} needed by the fault-code baseline")
    tr = pd.DataFrame({"fault": X_train["fault_code"].astype("string").fillna(MISSING_LEVEL).to_numpy(),
                       "state": X_train["state"].astype("string").fillna(MISSING_LEVEL).to_numpy(),
                       "y": np.asarray(y_train, dtype=object)})

    def top(df: pd.DataFrame) -> str:
        counts = df["y"].value_counts()
        return sorted(counts[counts == counts.max()].index.astype(str))[0]

    by_fault = {f: top(g) for f, g in tr[tr["fault"] != MISSING_LEVEL].groupby("fault")}
    by_state_nofault = {s: top(g) for s, g in tr[tr["fault"] == MISSING_LEVEL].groupby("state")}
    by_state = {s: top(g) for s, g in tr.groupby("state")}
    overall = top(tr)
    out = []
    faults = X_test["fault_code"].astype("string").fillna(MISSING_LEVEL).to_numpy()
    states = X_test["state"].astype("string").fillna(MISSING_LEVEL).to_numpy()
    for f, s in zip(faults, states, strict=True):
        if f != MISSING_LEVEL and f in by_fault:
            out.append(by_fault[f])
        elif f == MISSING_LEVEL:
            out.append(by_state_nofault.get(s, by_state.get(s, overall)))
        else:
            out.append(by_state.get(s, overall))
    return np.array(out, dtype=object)


# --------------------------------------------------------------------------------------------
# evaluation of any labelled table, re-exported

# It lives in rootcause_eval, which imports this module: loaded on first use (PEP 562), so that
# either module can be imported first and ``from workbench.ml.rootcause import evaluate_table``
# keeps working.
_MOVED: frozenset[str] = frozenset({"EvaluationResult", "MIN_ROWS", "evaluate_table", "_clean_table",
                                    "_rows"})

__all__ = [
    "MIN_ROWS", "MISSING_LEVEL", "PLANNED_CATEGORIES", "AdaptiveOverSampler", "EvaluationResult",
    "InputError", "RootCauseClassifier", "apply_predictions", "evaluate_table", "fault_code_baseline",
    "majority_baseline", "predict_stops", "training_frame",
]

if TYPE_CHECKING:  # what static tools see; at run time __getattr__ below
    from workbench.ml.rootcause_eval import MIN_ROWS, EvaluationResult, evaluate_table


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        return getattr(importlib.import_module("workbench.ml.rootcause_eval"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_MOVED})
