"""The retrain flow through real Prefect runs, with a real MLflow store under the project's data/:
a first model becomes champion, a deliberately worse challenger is not promoted, a better one is,
and ``workbench models rollback`` gives the champion back — every decision logged with its numbers."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd
import pytest
from test_flows import task_runs
from typer.testing import CliRunner

from workbench import cli, config, runs
from workbench.demo import load_plant
from workbench.ml import reviews
from workbench.ml.registry import Registry, default_tracking_uri
from workbench.ml.sections import card_confidence
from workbench.simulate import PlantConfig, SimulatedPlant, simulate_plant
from workbench.store import DuckDBWarehouse

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# Five weeks of a six-machine, three-line plant: three weeks of training and one held out before `until`.
PLANT = PlantConfig(seed=5, n_machines=6, days=35, telemetry=False)
UNTIL = "2026-11-23"  # PLANT.start (2026-10-19) + 35 days, plant midnight


def pipeline(params: str) -> str:
    return f"""description: retrain (test)
kind: retrain
schedule: {{cron: "30 4 * * *", timezone: America/Chicago}}
retrain:
  train_days: 21
  holdout_days: 7
  weekly_on: sunday
  score_days: 4
  anomalies: {{train_days: 7, history_days: 7}}
  rootcause: {params}
retries: 0
"""


@pytest.fixture(scope="module")
def plant() -> SimulatedPlant:
    return simulate_plant(PLANT)


@pytest.fixture(scope="module")
def retrain_home(plant, tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("retrain") / "project"
    shutil.copytree(ROOT / "flows", home / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    (home / "pipelines").mkdir()
    for name, params in {"shallow": "{n_estimators: 20, max_depth: 3}",
                         "worse": "{n_estimators: 10, max_depth: 2, calibration: null}",
                         "forest": "{}"}.items():
        (home / "pipelines" / f"{name}.yaml").write_text(pipeline(params))
    with DuckDBWarehouse(home / "data" / "warehouse.duckdb") as wh:
        load_plant(plant, wh, truth_dir=home / "data" / "ground_truth")
    return home


def test_a_worse_challenger_is_kept_out_a_better_one_promoted_and_rollback_restores(
        prefect_server, plant, retrain_home, use_home, monkeypatch) -> None:
    use_home(retrain_home)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("WORKBENCH_PLANT_TIMEZONE", "America/Chicago")
    config.reset()
    flows = runs.load_flows(retrain_home)
    registry = Registry(default_tracking_uri(config.settings().data_path))
    assert registry.uri.endswith(str(retrain_home / "data" / "mlflow" / "mlflow.db"))

    def run(name: str) -> dict:
        state = flows.retrain_models(pipeline=name, until=UNTIL, force=True, return_state=True)
        assert state.is_completed(), state.message
        names = sorted(t.name.rsplit("-", 1)[0] for t in task_runs(state))
        assert names == ["build-stop-features", "check-anomaly-reviews", "check-champion", "compute-report-sections",
                         "read-stops-and-context", "retrain-rootcause", "score-stops", "store-anomalies"], names
        return state.result()

    first_run = run("shallow")
    first = first_run["rounds"]["rootcause"]
    assert first["action"] == "promote" and registry.champion_version("rootcause") == 1
    worse = run("worse")["rounds"]["rootcause"]
    assert worse["action"] == "keep" and worse["challenger_version"] == 2
    assert registry.champion_version("rootcause") == 1 and registry.alias_version("rootcause", "challenger") == 2
    # Between the runs, a maintenance lead looked at the anomalies stored so far: one false alarm.
    with DuckDBWarehouse(retrain_home / "data" / "warehouse.duckdb") as wh:
        so_far = wh.read("ml_anomalies", columns=["anomaly_id", "detector", "time_start"])
        ids = list(so_far["anomaly_id"])
        assert len(ids) >= 2
        now = dt.datetime.now(dt.UTC)
        wh.write("ml_anomaly_reviews", pd.concat([
            reviews.review_rows(ids[:1], "false_alarm", anomalies=so_far, reviewed_at=now),
            reviews.review_rows(ids[1:], "confirmed", anomalies=so_far, reviewed_at=now)]))
    last_run = run("forest")
    better = last_run["rounds"]["rootcause"]
    assert better["action"] == "promote" and registry.champion_version("rootcause") == 3
    # Champion and challenger were judged on the same held-out stops.
    assert better["n_holdout"] == worse["n_holdout"] == first["n_holdout"] > 30
    assert better["challenger_metrics"]["balanced_accuracy"] >= better["champion_metrics"]["balanced_accuracy"] + 0.01

    out = CliRunner().invoke(cli.app, ["models", "rollback", "rootcause", "--reason", "checking v3 by hand"])
    assert out.exit_code == 0, out.output
    assert "champion is back to v1 (was v3)" in out.output
    assert registry.champion_version("rootcause") == 1
    log = registry.decisions("rootcause")
    assert list(log["action"]) == ["promote", "keep", "promote", "rollback"]
    assert log["challenger.balanced_accuracy"].notna().sum() >= 3  # the numbers of each round
    # Every registered version loads (hash and types checked) and says what it was trained on.
    for version in (1, 2, 3):
        card = registry.load("rootcause", version=version).card
        assert card.training_start is not None and card.training_end is not None
        assert card.metrics["holdout_balanced_accuracy"] > 0
        # …and what it is better than, on the same held-out stops, said wherever the card is shown
        assert 0 < card.metrics["holdout_majority_accuracy"] < card.metrics["holdout_accuracy"]
        assert 0 < card.metrics["holdout_fault_code_accuracy"] <= 1
        assert "on the same stops fault-code lookup" in card_confidence(card)

    # Each run, the champion scored the stops of the last four days (Thursday to Sunday): the uncoded ones got its guess and
    # confidence, no operator's code was touched, and every prediction names its model version.
    with DuckDBWarehouse(retrain_home / "data" / "warehouse.duckdb", read_only=True) as wh:
        stops = wh.read("downtime_events")
        predictions = wh.read("ml_predictions")
        anomalies = wh.read("ml_anomalies")
    day = stops[(stops["time_start"] >= pd.Timestamp(UNTIL, tz="America/Chicago") - pd.Timedelta(days=4))
                & (stops["time_start"] < pd.Timestamp(UNTIL, tz="America/Chicago"))]
    planned = day["reason_category"].isin(["Scheduled Maintenance", "No Demand"])
    blank = day["reason_code"].isna() & ~planned
    assert day.loc[blank, "predicted_category"].notna().all()
    assert day.loc[blank, "predicted_confidence"].between(0, 1).all()
    assert day.loc[~blank, "predicted_category"].isna().all()
    source = plant.tables["downtime_events"].set_index("event_id")
    assert (day.set_index("event_id")["reason_code"].fillna("") == source.loc[day["event_id"], "reason_code"]
            .fillna("")).all()
    assert set(predictions["model_version"]) == {"rootcause/v1", "rootcause/v3"}
    assert set(predictions["target_id"]) >= set(day.loc[blank, "event_id"])
    truth = plant.truth.stops.set_index("event_id")
    right = (day.loc[blank].set_index("event_id")["predicted_category"]
             == truth.loc[day.loc[blank, "event_id"], "true_category"]).mean()
    print(f"\nuncoded stops of the last four days: {int(blank.sum())}, predicted right {right:.0%}")
    assert blank.sum() >= 5 and right > 0.5

    # …and the anomalies of the same four days went to ml_anomalies (this plant has no telemetry:
    # scrap anomalies only), each with its likely cause and ranked hypotheses; three runs over the
    # same days left one row per anomaly (deterministic ids: an episode across the boundary of two
    # days is stored by both and is one row)
    stored = last_run["anomalies"]
    assert [d["day"] for d in stored] == ["2026-11-19", "2026-11-20", "2026-11-21", "2026-11-22"]
    assert [d["stored"] for d in stored] == [d["stored"] for d in first_run["anomalies"]]
    assert 0 < len(anomalies) <= sum(d["stored"] for d in stored) and anomalies["anomaly_id"].is_unique
    assert len(anomalies) >= sum(d["stored"] for d in stored) - len(stored) + 1
    assert set(anomalies["detector"]) == {"scrap"} and anomalies["likely_cause"].str.len().gt(0).all()
    assert anomalies["hypotheses"].notna().all() and anomalies["detected_at"].notna().all()
    # …and the last run checked the analysts' verdicts on them (the seed's false-alarm trigger)
    checked = last_run["reviews"]["scrap"]
    assert checked == {"anomalies": len(anomalies), "reviewed": len(ids), "false_alarms": 1,
                       "triggered": len(ids) >= reviews.MIN_REVIEWED and 1 / len(ids) > reviews.FALSE_ALARM_TRIGGER}
