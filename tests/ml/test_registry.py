"""The MLflow registry: cards, safe loading, champion / challenger, decisions, the models CLI.

A real MLflow store (SQLite file + artifact directory) in a temporary directory, the same kind the
workbench uses under ``data/mlflow``.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier
from typer.testing import CliRunner

from workbench.errors import MLError
from workbench.ml import registry as reg
from workbench.ml.models_cli import app as models_app
from workbench.ml.promotion import PromotionRule, decide
from workbench.ml.registry import Registry

T0 = dt.datetime(2026, 10, 5, tzinfo=dt.UTC)
T1 = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)


class NotOurs(LogisticRegression):
    """An estimator from a module the registry does not trust (this test module)."""


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(200, 3)), columns=["vib_slope", "temp_last", "tool_min"])
    y = np.where(x["vib_slope"] + 0.3 * rng.normal(size=200) > 0, "Mechanical Failure", "Tooling")
    return x, y


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}")


def _register(registry: Registry, data, depth: int, acc: float):
    x, y = data
    model = DecisionTreeClassifier(max_depth=depth, random_state=0).fit(x, y)
    card = registry.register("rootcause", model, metrics={"balanced_accuracy": acc}, training_range=(T0, T1),
                             features=list(x.columns), sample=x.head(5))
    return model, card


def test_a_registered_model_loads_with_its_card_and_predicts_the_same(registry: Registry, data) -> None:
    x, _ = data
    model, card = _register(registry, data, 3, 0.81)
    assert card.version == 1 and card.aliases == ("challenger",)
    assert card.training_start == T0 and card.training_end == T1
    assert card.features == ("vib_slope", "temp_last", "tool_min")
    assert card.metrics["balanced_accuracy"] == pytest.approx(0.81)
    assert len(card.sha256) == 64
    registry.promote("rootcause", 1, reason="first model")
    loaded = registry.load("rootcause")  # the champion
    assert loaded.card.version == 1 and "champion" in loaded.card.aliases
    assert (loaded.model.predict(x) == model.predict(x)).all()
    # The MLflow model carries a signature (what the MLflow UI shows).
    import mlflow

    info = mlflow.models.get_model_info(registry.client.get_model_version("rootcause", "1").source)
    assert [c.name for c in info.signature.inputs.inputs] == ["vib_slope", "temp_last", "tool_min"]


def test_a_replaced_artifact_is_refused(registry: Registry, data, tmp_path: Path) -> None:
    _register(registry, data, 3, 0.8)
    files = list((tmp_path / "mlflow" / "artifacts").rglob("model.skops"))
    assert len(files) == 1
    other = DecisionTreeClassifier(max_depth=1).fit(*data)
    import skops.io as sio

    sio.dump(other, files[0])
    with pytest.raises(MLError, match="changed since it was registered"):
        registry.load("rootcause", version=1)


def test_types_from_outside_the_trusted_modules_are_refused(registry: Registry, data, monkeypatch) -> None:
    with pytest.raises(MLError, match="outside the trusted modules.*NotOurs"):
        registry.register("rootcause", NotOurs().fit(*data), metrics={"balanced_accuracy": 0.5},
                          training_range=(T0, T1), features=list(data[0].columns))
    # And at load time, whatever the model's own MLmodel file lists as trusted.
    _register(registry, data, 2, 0.7)
    monkeypatch.setattr(reg, "TRUSTED_MODULES", ("numpy",))
    with pytest.raises(MLError, match="outside the trusted modules: sklearn"):
        registry.load("rootcause", version=1)


def test_naive_training_ranges_and_odd_names_are_refused(registry: Registry, data) -> None:
    model = DecisionTreeClassifier().fit(*data)
    with pytest.raises(MLError, match="no time zone"):
        registry.register("rootcause", model, metrics={}, training_range=(dt.datetime(2026, 1, 1), T1),
                          features=["a"])
    with pytest.raises(MLError, match="model name"):
        registry.register("root cause'; drop", model, metrics={}, training_range=(T0, T1), features=["a"])
    with pytest.raises(MLError, match="has no alias 'champion'"):
        registry.load("rootcause")


def test_promote_and_rollback_move_the_champion_and_record_each_decision(registry: Registry, data) -> None:
    _register(registry, data, 2, 0.70)
    registry.promote("rootcause", 1, reason="first")
    _register(registry, data, 4, 0.78)
    assert registry.alias_version("rootcause", "challenger") == 2
    registry.promote("rootcause", 2, reason="better", action="promote")
    assert registry.champion_version("rootcause") == 2
    assert registry.alias_version("rootcause", "challenger") is None
    back = registry.rollback("rootcause", reason="operators complain")
    assert (back.champion_before, back.champion_after) == (2, 1)
    assert registry.champion_version("rootcause") == 1
    with pytest.raises(MLError, match="no earlier champion"):
        registry.rollback("rootcause", reason="again")
    log = registry.decisions("rootcause")
    assert list(log["action"]) == ["manual", "promote", "rollback"]
    assert list(log["reason"]) == ["first", "better", "operators complain"]


RULE = PromotionRule(primary="balanced_accuracy", margin=0.02, guards={"macro_f1": 0.01},
                     floors={"balanced_accuracy": 0.65})


def test_the_rule_promotes_only_a_challenger_better_by_the_margin_and_no_worse_on_a_guard() -> None:
    champ = {"balanced_accuracy": 0.80, "macro_f1": 0.75}
    better = decide("rootcause", RULE, champion=champ, champion_version=1, challenger_version=2,
                    challenger={"balanced_accuracy": 0.83, "macro_f1": 0.76})
    assert better.action == "promote" and better.champion_after == 2
    assert better.metrics["balanced_accuracy"] == (0.80, 0.83)
    slightly = decide("rootcause", RULE, champion=champ, champion_version=1, challenger_version=2,
                      challenger={"balanced_accuracy": 0.81, "macro_f1": 0.80})
    assert slightly.action == "keep" and "by the margin 0.02" in slightly.reason
    guard = decide("rootcause", RULE, champion=champ, champion_version=1, challenger_version=2,
                   challenger={"balanced_accuracy": 0.85, "macro_f1": 0.70})
    assert guard.action == "keep" and guard.champion_after == 1 and "macro_f1 0.700 vs 0.750" in guard.reason
    floor = decide("rootcause", RULE, challenger_version=1, challenger={"balanced_accuracy": 0.6, "macro_f1": 0.6})
    assert floor.action == "keep" and floor.champion_after is None and "needs ≥ 0.650" in floor.reason
    first = decide("rootcause", RULE, challenger_version=1, challenger={"balanced_accuracy": 0.7, "macro_f1": 0.6})
    assert first.action == "promote"
    errors = PromotionRule(primary="mase", margin=0.05, lower_is_better=frozenset({"mase"}), floors={"mase": 1.0})
    assert decide("yield", errors, champion={"mase": 0.9}, champion_version=1, challenger_version=2,
                  challenger={"mase": 0.8}).action == "promote"
    assert decide("yield", errors, champion={"mase": 0.9}, champion_version=1, challenger_version=2,
                  challenger={"mase": 0.88}).action == "keep"
    with pytest.raises(MLError, match="no finite 'macro_f1'"):
        decide("rootcause", RULE, champion={"balanced_accuracy": 0.8}, champion_version=1, challenger_version=2,
               challenger={"balanced_accuracy": 0.9, "macro_f1": 0.9})


def test_the_models_command_lists_promotes_and_rolls_back(registry: Registry, data, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.uri)
    runner = CliRunner()
    empty = runner.invoke(models_app, ["list"])
    assert empty.exit_code == 0 and "No registered models" in empty.output
    _register(registry, data, 2, 0.70)
    _register(registry, data, 4, 0.78)
    listed = runner.invoke(models_app, ["list", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert [r["version"] for r in rows] == [2, 1]
    assert [r["metric.balanced_accuracy"] for r in rows] == [0.78, 0.70]
    assert [r["aliases"] for r in rows] == ["challenger", ""]
    assert runner.invoke(models_app, ["promote", "rootcause", "1", "--reason", "baseline"]).exit_code == 0
    out = runner.invoke(models_app, ["promote", "rootcause", "2", "--reason", "checked by hand"])
    assert out.exit_code == 0 and "champion is now v2 (was v1)" in out.output
    out = runner.invoke(models_app, ["rollback", "rootcause", "--reason", "false flags"])
    assert out.exit_code == 0 and "back to v1" in out.output
    bad = runner.invoke(models_app, ["promote", "rootcause", "9", "--reason", "x"])
    assert bad.exit_code == 2 and "has no version 9" in bad.output and "Traceback" not in bad.output
    table = runner.invoke(models_app, ["list", "rootcause"])
    assert table.exit_code == 0 and "champion" in table.output


@pytest.mark.slow
def test_mlflow_ui_shows_the_registered_models_and_runs(registry: Registry, data, tmp_path: Path) -> None:
    """The README's ``mlflow ui --backend-store-uri sqlite:///data/mlflow/mlflow.db``, on this store."""
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    _register(registry, data, 2, 0.70)
    registry.promote("rootcause", 1, reason="first")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mlflow_cli = Path(sys.executable).parent / "mlflow"
    proc = subprocess.Popen([str(mlflow_cli), "ui", "--backend-store-uri", registry.uri, "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/2.0/mlflow/registered-models/search", timeout=5) as r:
                    models = json.load(r)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(1)
        [model] = models["registered_models"]
        assert model["name"] == "rootcause"
        assert {"alias": "champion", "version": "1"} in model["aliases"]
        with urllib.request.urlopen(f"{base}/api/2.0/mlflow/experiments/search?max_results=100", timeout=5) as r:
            names = {e["name"] for e in json.load(r)["experiments"]}
        assert {"rootcause", "model-decisions"} <= names
        with urllib.request.urlopen(base, timeout=5) as r:
            assert r.status == 200 and b"<html" in r.read().lower()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_fresh_process_loads_the_champion(registry: Registry, data) -> None:
    """As a notebook kernel or a flow run does: nothing set up in the process but the store's URI
    (a model's ``models:/`` source must resolve against this store, not MLflow's default)."""
    import subprocess
    import sys

    _register(registry, data, 3, 0.8)
    registry.promote("rootcause", 1, reason="first")
    code = ("from workbench.ml.registry import Registry; import sys; "
            "m = Registry(sys.argv[1]).load('rootcause'); print(m.card.version, type(m.model).__name__)")
    out = subprocess.run([sys.executable, "-c", code, registry.uri], capture_output=True, text=True, timeout=120,
                         env={k: v for k, v in __import__("os").environ.items() if k != "MLFLOW_TRACKING_URI"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["1", "DecisionTreeClassifier"]


def test_the_card_read_straight_from_sqlite_is_the_registrys(registry: Registry, data) -> None:
    """The report's root-cause notebook reads the champion's card without importing MLflow
    (sqlite_card); it must be exactly the card MLflow gives, and the model loads when first used."""
    from workbench.ml.registry import DeferredModel, RegistryUnreadableError, sqlite_card
    from workbench.ml.sections import load_model

    x, _ = data
    _register(registry, data, 2, 0.7)
    _register(registry, data, 4, 0.9)
    assert sqlite_card(registry.uri, "rootcause", "champion") is None  # no champion yet
    registry.promote("rootcause", 1, reason="first")
    for alias in ("champion", "challenger"):
        assert sqlite_card(registry.uri, "rootcause", alias) == registry.version("rootcause", alias=alias)
    assert sqlite_card(registry.uri, "rootcause", "champion").metrics["balanced_accuracy"] == pytest.approx(0.7)
    assert sqlite_card(registry.uri, "nothere", "champion") is None
    with pytest.raises(RegistryUnreadableError, match="not a SQLite store"):
        sqlite_card("http://127.0.0.1:5000", "rootcause")
    deferred, why = load_model(registry.uri, alias="challenger", deferred=True)
    assert isinstance(deferred, DeferredModel) and why == "" and deferred.card.version == 2
    eager = registry.load("rootcause", alias="challenger")
    assert (deferred.model.predict(x) == eager.model.predict(x)).all()
