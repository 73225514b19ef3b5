"""The workbench.ml package: its lazy public API, and the old import paths of the modules that were
split (forecast → forecast_data, telemanom → telemanom_series / telemanom_plant, rootcause →
rootcause_eval)."""

from __future__ import annotations

import importlib
import inspect
import json
import subprocess
import sys

import pytest

import workbench.ml as ml

# The modules behind the package's names (not sections / plots: they sit on top of these).
DOMAIN_MODULES = ("features", "rootcause", "rootcause_eval", "scrap", "telemanom", "telemanom_series",
                  "telemanom_plant", "forecast", "forecast_data", "registry", "promotion", "retrain", "reviews")
HEAVY = ("mlflow", "prophet", "shap", "torch")

# Names that moved, with the module they moved to: the old module must still give the same object.
MOVED = {
    "forecast": ("forecast_data", ("PlannedWork", "daily_history", "planned_work", "from_tables", "features_at",
                                   "FEATURE_DOCS", "MIN_HISTORY_DAYS", "RECENT_DAYS", "_grid", "_Grid",
                                   "_check_history", "_ledger")),
    "telemanom": ("telemanom_series", ("AnomalyResult", "detect_anomalies", "_parse_times", "_parse_values")),
    "rootcause": ("rootcause_eval", ("EvaluationResult", "evaluate_table", "_clean_table", "MIN_ROWS")),
}
MOVED_PLANT = ("telemetry_anomalies", "anomaly_id", "ML_ANOMALIES_COLUMNS", "DEFAULT_METRICS", "COUNTER_METRICS")


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_public_name_resolves_to_its_object_not_a_module():
    assert len(ml.__all__) == len(set(ml.__all__)) == 48
    for name in ml.__all__:
        value = getattr(ml, name)
        assert not inspect.ismodule(value), name
    # After every submodule is loaded (which sets it as an attribute of the package), a name still
    # gives the function or class, not a submodule of the same name.
    for module in DOMAIN_MODULES:
        importlib.import_module(f"workbench.ml.{module}")
    for name in ml.__all__:
        assert not inspect.ismodule(getattr(ml, name)), name
    from workbench.ml import forecast, rootcause, telemanom

    assert ml.telemetry_anomalies is telemanom.telemetry_anomalies
    assert ml.detect_anomalies is telemanom.detect_anomalies
    assert ml.evaluate_table is rootcause.evaluate_table
    assert ml.PlannedWork is forecast.PlannedWork
    assert ml.FEATURE_DOCS is importlib.import_module("workbench.ml.features").FEATURE_DOCS
    assert "YieldForecaster" in dir(ml) and "forecast" in dir(ml)


def test_the_training_helpers_moved_out_of_sections_are_still_found_there():
    from workbench.ml import sections, training

    for name in ("TrainingRun", "train_rootcause", "register_challenger"):
        assert getattr(sections, name) is getattr(training, name), name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        sections.nope  # noqa: B018


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = ml.no_such_name
    from workbench.ml import telemanom

    with pytest.raises(AttributeError, match="no_such_name"):
        _ = telemanom.no_such_name


@pytest.mark.parametrize("old", sorted(MOVED))
def test_moved_names_are_the_same_objects_at_the_old_path(old):
    new, names = MOVED[old]
    old_mod = importlib.import_module(f"workbench.ml.{old}")
    new_mod = importlib.import_module(f"workbench.ml.{new}")
    for name in names:
        assert getattr(old_mod, name) is getattr(new_mod, name), name
    for name in old_mod.__all__:
        assert hasattr(old_mod, name), name
    assert set(names) - set(dir(old_mod)) == set()


def test_plant_names_are_the_same_objects_at_the_old_path():
    from workbench.ml import telemanom, telemanom_plant

    for name in MOVED_PLANT:
        assert getattr(telemanom, name) is getattr(telemanom_plant, name), name


def test_import_workbench_ml_loads_no_heavy_library():
    out = run_python("import json, sys, workbench.ml\n"
                     f"print(json.dumps([m for m in {(*HEAVY, 'sklearn')!r} if m in sys.modules]))")
    assert json.loads(out) == []


def test_resolving_every_public_name_loads_no_mlflow_prophet_or_shap():
    # They load only when a model is registered, a forecast fitted or explained.
    out = run_python("import json, sys, workbench.ml as ml\n"
                     "values = [getattr(ml, n) for n in ml.__all__]\n"
                     f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    assert json.loads(out) == []


@pytest.mark.parametrize("first", ["telemanom_series", "telemanom_plant", "rootcause_eval", "forecast_data"])
def test_a_split_out_module_can_be_imported_first(first):
    # The new modules import the old ones, which re-export them: no import order may break.
    out = run_python(f"import workbench.ml.{first}\n"
                     "from workbench.ml.telemanom import AnomalyResult, detect_anomalies, telemetry_anomalies\n"
                     "from workbench.ml.rootcause import EvaluationResult, evaluate_table\n"
                     "from workbench.ml.forecast import PlannedWork, YieldForecaster, daily_history\n"
                     "print('ok')")
    assert out.strip() == "ok"
