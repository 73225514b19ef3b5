"""Machine learning a plant can trust: features, root-cause classifier, anomaly detectors,
yield forecast and the MLflow registry.

Every model follows the scikit-learn estimator contract (hyperparameters in ``__init__``, ``fit``
returns ``self``, fitted attributes end in ``_``); resampling lives inside an imbalanced-learn
``Pipeline`` so it only ever touches training folds. Functions take and return DataFrames or
frozen result objects: no paths or connections inside.

The public API is importable from here (``from workbench.ml import YieldForecaster``). Each name
and submodule is imported on first use, so that ``import workbench.ml`` stays fast and loads
neither scikit-learn nor MLflow, Prophet or SHAP.
"""

from __future__ import annotations

import importlib
from typing import Any

# Where each public name is defined (module of this package → names).
_API: dict[str, tuple[str, ...]] = {
    "features": ("stop_features", "hourly_features", "FEATURE_DOCS", "HOURLY_FEATURE_DOCS"),
    "rootcause": ("RootCauseClassifier", "training_frame", "predict_stops", "apply_predictions",
                  "majority_baseline", "fault_code_baseline", "PLANNED_CATEGORIES"),
    "rootcause_eval": ("EvaluationResult", "evaluate_table"),
    "scrap": ("ScrapAnomalyDetector", "scrap_mix"),
    "telemanom": ("TelemanomDetector", "RidgeAR", "LaggedGBR", "Predictor", "dynamic_threshold",
                  "prune_sequences"),
    "telemanom_series": ("AnomalyResult", "detect_anomalies"),
    "telemanom_plant": ("telemetry_anomalies", "ML_ANOMALIES_COLUMNS"),
    "forecast": ("YieldForecaster", "YieldForecast", "BacktestResult", "backtest", "recommendations"),
    "forecast_data": ("PlannedWork", "daily_history", "planned_work", "from_tables", "features_at"),
    "registry": ("Registry", "ModelVersion", "Decision", "LoadedModel", "default_tracking_uri"),
    "promotion": ("PromotionRule", "decide"),
    "retrain": ("retrain_rootcause", "champion_health", "ROOTCAUSE_RULE"),
    "records": ("MLSection",),
    "reviews": ("ReviewRate", "review_rates"),
}
_HOME: dict[str, str] = {name: module for module, names in _API.items() for name in names}
# Submodules reachable as attributes (``workbench.ml.forecast``) without importing them first.
_SUBMODULES = ("features", "rootcause", "rootcause_eval", "scrap", "telemanom", "telemanom_series",
               "telemanom_plant", "forecast", "forecast_data", "registry", "promotion", "retrain", "records",
               "reviews")

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"workbench.ml.{_HOME[name]}"), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"workbench.ml.{name}")
    raise AttributeError(f"module 'workbench.ml' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME, *_SUBMODULES})
