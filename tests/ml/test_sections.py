"""The report's model sections on a simulated plant, scored against its ground truth.

One plant (seed 21, 6 machines × 35 days with telemetry, from Mon 2026-10-19) is shared by the
module. The root-cause model trains on its first three weeks (coded stops only) and is held out on
the fourth; its sections are judged on the fifth week, which it never saw:

* the uncoded-stops section lists exactly the stops whose reason code is blank, and its predicted
  categories agree with the simulator's TRUE categories on most of them;
* it says "not shown" without a model, and with a card whose held-out accuracy is below the floor;
* the anomalies section finds a precursor window the simulator injected (a telemetry ramp ending in
  a stop) and a bad-material scrap window on their days, and says "not shown" without history;
* the week ahead is not shown with two weeks of history and shows 7 days × 3 lines with five.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from workbench.errors import MLError
from workbench.ml import sections
from workbench.ml.anomaly_rows import anomaly_rows
from workbench.ml.registry import ModelVersion
from workbench.simulate import PlantConfig, simulate_plant
from workbench.store import DuckDBWarehouse

TZ = "America/Chicago"
PLANT = PlantConfig(seed=21, n_machines=6, days=35, telemetry=True)
KIND_METRICS = {"vibration": ("vibration_rms",), "hydraulic": ("hydraulic_pressure",),
                "drive": ("motor_current", "drive_temp")}


def day_start(k: int) -> pd.Timestamp:
    """06:00 plant time of production day ``k`` (0 = the plant's first day)."""
    return pd.Timestamp(dt.datetime.combine(PLANT.start + dt.timedelta(days=k), dt.time(6)), tz=TZ)


def day_of(t: pd.Timestamp) -> int:
    """The production day an instant belongs to."""
    local = t.tz_convert(TZ)
    date = (local - pd.Timedelta(hours=6)).date()
    return (date - PLANT.start).days


@pytest.fixture(scope="module")
def plant():
    return simulate_plant(PLANT)


@pytest.fixture(scope="module")
def run(plant) -> sections.TrainingRun:
    """Trained on weeks 1–3, held out on week 4."""
    return sections.train_rootcause(plant.tables, train_start=day_start(0), train_end=day_start(21),
                                    holdout_end=day_start(28), params={"n_estimators": 100}, cv=3,
                                    random_state=21)


@pytest.fixture(scope="module")
def card(run) -> ModelVersion:
    """The card the registry would hold for ``run`` (registering is tested on its own below)."""
    return ModelVersion(name="rootcause", version=3, aliases=("champion",), run_id="",
                        created_at=dt.datetime(2026, 11, 16, tzinfo=dt.UTC), training_start=run.train_range[0],
                        training_end=run.train_range[1], features=tuple(run.X_train.columns),
                        metrics=dict(run.metrics), sha256="", description=run.description)


@pytest.fixture(scope="module")
def week5(plant, run, card) -> sections.MLSection:
    return sections.uncoded_stops(plant.tables, model=run.model, card=card, day_start=day_start(28),
                                  day_end=day_start(35))


# =============================================================================================
# the training run


def test_training_run_judges_the_model_on_later_weeks_beside_its_baselines(plant, run) -> None:
    assert run.train_range == (day_start(0).to_pydatetime(), day_start(21).to_pydatetime())
    assert run.n_train > 200 and run.n_holdout > 60
    holdout = run.scores[run.scores["validation"] == "time-ordered hold-out"].set_index("predictor")
    assert holdout.loc["model", "n"] == run.n_holdout == int(run.confusion.to_numpy().sum())
    assert holdout.loc["model", "accuracy"] == pytest.approx(np.trace(run.confusion.to_numpy()) / run.n_holdout)
    assert holdout.loc["model", "accuracy"] > holdout.loc["majority class", "accuracy"] + 0.3
    assert run.metrics["holdout_accuracy"] == holdout.loc["model", "accuracy"]
    assert run.metrics["holdout_fault_code_accuracy"] == holdout.loc["fault-code lookup", "accuracy"]
    assert {"stratified 3-fold CV (shuffled, training range)"} < set(run.scores["validation"])
    assert run.per_class["n"].sum() == run.n_holdout
    assert "held out" in run.description and "2026-11-16" in run.description
    with pytest.raises(MLError, match="the held-out range .* has 0 coded stop"):
        sections.train_rootcause(plant.tables, train_start=day_start(0), train_end=day_start(40),
                                 holdout_end=day_start(47))


# =============================================================================================
# likely causes of uncoded stops


def test_uncoded_stops_lists_the_blank_codes_and_predicts_their_true_cause(plant, week5) -> None:
    de = plant.tables["downtime_events"]
    inside = (de["time_start"] >= day_start(28)) & (de["time_start"] < day_start(35))
    blank = de["reason_code"].isna() | (de["reason_code"].astype(str).str.strip() == "")
    expected = set(de.loc[inside & blank, "event_id"].astype(str))
    assert week5.shown and week5.status == "ok"
    listed = week5.table[week5.table["kind"] == "blank code"]
    assert len(expected) >= 10 and set(listed["event_id"]) == expected
    truth = plant.truth.stops.set_index(plant.truth.stops["event_id"].astype(str))["true_category"]
    right = (listed["predicted_category"].to_numpy() == truth.loc[listed["event_id"]].to_numpy())
    assert right.mean() >= 0.7, f"{right.sum()} of {len(right)} blank-coded stops predicted right"
    assert listed["predicted_confidence"].between(0, 1).all() and listed["entered_category"].isna().all()
    # blank codes first, each by time; every row explained
    assert list(week5.table["kind"]) == sorted(week5.table["kind"])
    assert listed["time_start"].is_monotonic_increasing
    assert (week5.table["top_contributions"].str.count(r"\(") == 3).all()
    contrib = week5.details["contributions"]
    assert set(contrib["event_id"]) == set(week5.table["event_id"]) and contrib["rank"].max() == 3
    assert "v3 (champion)" in week5.confidence and "2026-11-09 – 2026-11-16" in week5.confidence


def test_suspect_codes_are_coded_stops_the_model_confidently_disputes(plant, run, card) -> None:
    # Weeks 4-5 at a lower threshold: at 0.8 this small plant raises one flag in two weeks (a true
    # mislabel); tests/ml/test_rootcause_truth.py scores the flags' precision on bigger plants.
    section = sections.uncoded_stops(plant.tables, model=run.model, card=card, day_start=day_start(21),
                                     day_end=day_start(35), suspect_threshold=0.6)
    suspect = section.table[section.table["kind"] == "suspect code"]
    de = plant.tables["downtime_events"].set_index(plant.tables["downtime_events"]["event_id"].astype(str))
    assert len(suspect) >= 3
    assert (suspect["entered_category"].to_numpy() == de.loc[suspect["event_id"], "reason_category"].to_numpy()).all()
    assert de.loc[suspect["event_id"], "reason_code"].notna().all()
    assert (suspect["entered_category"] != suspect["predicted_category"]).all()
    assert (suspect["predicted_confidence"] >= 0.6).all()
    assert "suspect codes" in " ".join(section.notes) and "60 %" in " ".join(section.notes)


def test_uncoded_stops_not_shown_without_a_model_or_below_the_accuracy_floor(plant, run, card) -> None:
    window = {"day_start": day_start(30), "day_end": day_start(31)}
    none = sections.uncoded_stops(plant.tables, **window)
    assert none.status == "not shown" and "workbench run retrain --force" in none.reason
    assert none.table.empty and list(none.table.columns) == list(sections.UNCODED_COLUMNS)
    weak = replace(card, metrics={**card.metrics, "holdout_accuracy": 0.6})
    low = sections.uncoded_stops(plant.tables, model=run.model, card=weak, **window)
    assert low.status == "not shown" and "60 %" in low.reason and "65 %" in low.reason
    assert low.table.empty and "v3" in low.confidence
    assert sections.uncoded_stops(plant.tables, model=run.model, card=weak, min_accuracy=0.5, **window).shown
    unknown = replace(card, metrics={})
    assert "not recorded" in sections.uncoded_stops(plant.tables, model=run.model, card=unknown, **window).reason


def test_uncoded_stops_say_when_the_telemetry_features_are_missing(plant, run, card) -> None:
    # The report's extract has no telemetry yet: the model then predicts from the other features.
    without = {n: t for n, t in plant.tables.items() if n != "machine_telemetry"}
    section = sections.uncoded_stops(without, model=run.model, card=card, day_start=day_start(29),
                                     day_end=day_start(30))
    assert section.shown and any("the model's 20 telemetry features are missing" in n for n in section.notes)
    full = sections.uncoded_stops(plant.tables, model=run.model, card=card, day_start=day_start(29),
                                  day_end=day_start(30))
    assert not any("telemetry features are missing" in n for n in full.notes)


def test_a_section_record_is_plain_json_and_bounded(week5) -> None:
    record = week5.as_record(max_rows=5)
    text = json.dumps(record, allow_nan=False)
    assert len(record["rows"]) == 5 and record["n_rows"] == len(week5.table) > 5
    assert record["rows"][0]["time_start"].endswith("+00:00") and len(text) < 20_000
    back = sections.MLSection.from_record(json.loads(text))
    assert back.status == week5.status and back.confidence == week5.confidence and back.notes == week5.notes
    pd.testing.assert_series_equal(back.table["time_start"], week5.table["time_start"].head(5),
                                   check_dtype=False)
    assert week5.to_record() == week5.as_record()
    with pytest.raises(MLError, match="title"):
        sections.MLSection.from_record({"rows": []})


# =============================================================================================
# anomalies needing a look


def _precursor_in_a_day(plant) -> tuple[pd.Series, int]:
    """The first injected telemetry precursor lying inside one production day after the 7 training days."""
    w = plant.truth.anomaly_windows
    w = w[w["kind"].isin(list(KIND_METRICS))].sort_values("time_start")
    for row in w.itertuples():
        k = day_of(row.time_end)
        if k >= 8 and row.time_start >= day_start(k) + pd.Timedelta(hours=1):
            return pd.Series(row._asdict()), k
    raise AssertionError("no precursor inside a day")


def test_anomalies_section_finds_an_injected_precursor_on_its_day(plant, tmp_path) -> None:
    window, k = _precursor_in_a_day(plant)
    section = sections.anomalies_needing_a_look(plant.tables, day_start=day_start(k), day_end=day_start(k + 1),
                                                tz=TZ)
    assert section.shown and "7 days" not in section.reason
    tel = section.table[section.table["source"] == "telemetry"]
    hit = tel[(tel["machine_id"] == window["machine_id"]) & tel["what"].isin(KIND_METRICS[window["kind"]])
              & (tel["time_start"] <= window["time_end"]) & (tel["time_end"] >= window["time_start"])]
    assert len(hit), f"no detection of the {window['kind']} precursor on {window['machine_id']}:\n{tel}"
    assert (tel["detected_at"] >= day_start(k)).all() and (tel["detected_at"] < day_start(k + 1)).all()
    assert hit["likely_cause"].str.contains("check").all()
    assert "channels (machine × metric)" in section.confidence and "readings of the day judged" in section.confidence
    # the trace is the detector that flagged it: its flags fall inside the reported anomaly
    trace = sections.anomaly_traces(plant.tables, hit, day_start=day_start(k), day_end=day_start(k + 1))[0]
    flagged = trace.frame[trace.frame["anomaly"]]
    first = hit.iloc[0]
    assert len(flagged) and flagged["time"].between(first["time_start"], first["time_end"]).any()
    assert trace.train_range[1] < day_start(k) <= trace.frame["time"].min()
    # stored as the morning model run stores them (ml_anomalies with its detected_at, likely cause,
    # hypotheses): one row per anomaly of the section, stable ids, a rewrite changes nothing
    rows = anomaly_rows(section, created_at=dt.datetime(2026, 11, 30, 10, tzinfo=dt.UTC))
    assert len(rows) == len(section.table) and rows["anomaly_id"].is_unique
    assert list(rows["likely_cause"]) == list(section.table["likely_cause"])
    assert set(rows.loc[rows["detector"] == "telemanom", "target"]) == set(tel["what"])
    for text in rows.loc[rows["detector"] == "scrap", "hypotheses"]:
        assert json.loads(text)[0][2], "the most likely cause first, with its sentence"
    with DuckDBWarehouse(tmp_path / "warehouse.duckdb") as wh:
        wh.init_schema()
        wh.write("ml_anomalies", rows)
        assert wh.write("ml_anomalies", rows).written == 0
        back = wh.read("ml_anomalies")
    assert len(back) == len(rows) and set(back["anomaly_id"]) == set(rows["anomaly_id"])
    assert back["detected_at"].notna().all()


def test_anomalies_section_finds_every_bad_material_lot_on_its_middle_day(plant) -> None:
    """Each injected bad lot (one window per machine that ran it) judged on the production day in the
    middle of its window, without telemetry: a scrap anomaly of that machine overlaps it, most often
    with "material" as its likely cause."""
    no_telemetry = {n: t for n, t in plant.tables.items() if n != "machine_telemetry"}
    lots = plant.truth.anomaly_windows
    lots = lots[lots["kind"] == "scrap"].assign(day=lambda w: [day_of(a + (b - a) / 2) for a, b
                                                               in zip(w["time_start"], w["time_end"], strict=True)])
    lots = lots[lots["day"] >= 8]
    hits, causes = [], []
    for k, on_day in lots.groupby("day"):
        section = sections.anomalies_needing_a_look(no_telemetry, day_start=day_start(k), day_end=day_start(k + 1),
                                                    tz=TZ)
        assert section.shown
        assert any("telemetry anomalies not shown: no machine telemetry" in n for n in section.notes)
        scrap = section.table[section.table["source"] == "scrap"]
        for lot in on_day.itertuples():
            hit = scrap[(scrap["machine_id"] == lot.machine_id) & (scrap["time_start"] < lot.time_end)
                        & (scrap["time_end"] > lot.time_start)]
            hits.append(len(hit) > 0)
            causes += list(hit["likely_cause"])
        hypotheses = sections.scrap_hypotheses(section)
        assert set(hypotheses["machine_id"]) <= set(scrap["machine_id"])
    # measured: 11 of 12 windows; "material" the likely cause of 20 of the 24 anomalies hitting them
    assert len(hits) >= 8 and np.mean(hits) >= 0.8, f"{sum(hits)} of {len(hits)} bad-lot windows found"
    material = np.mean([c.startswith("material") for c in causes])
    assert material >= 0.5, (material, causes)


def test_anomalies_not_shown_without_history(plant) -> None:
    section = sections.anomalies_needing_a_look(plant.tables, day_start=day_start(3), day_end=day_start(4), tz=TZ)
    assert section.status == "not shown" and section.table.empty
    assert "need 7 days of telemetry" in section.reason and "need 7 days of production" in section.reason
    assert "the data has 3.0 days" in section.reason


# =============================================================================================
# the week ahead


def test_week_ahead_needs_three_weeks_and_shows_seven_days_per_line(plant) -> None:
    short = {n: t for n, t in plant.tables.items()}
    short["production_events"] = short["production_events"][short["production_events"]["time"] < day_start(14)]
    two = sections.week_ahead(short, origin_day=PLANT.start + dt.timedelta(days=13), tz=TZ)
    assert two.status == "not shown" and "at least 21 days" in two.reason
    assert list(two.table.columns) == list(sections.WEEK_AHEAD_COLUMNS)

    origin = PLANT.start + dt.timedelta(days=31)  # a Thursday: the last production day
    section = sections.week_ahead(plant.tables, origin_day=origin, tz=TZ, day_end=day_start(32))
    assert section.shown, section.reason
    table = section.table
    assert len(table) == 7 * 3 and sorted(table["line"].unique()) == ["L1", "L2", "L3"]
    assert sorted(set(table["day"])) == [origin + dt.timedelta(days=d) for d in range(1, 8)]
    assert ((table["good_low"] <= table["good"]) & (table["good"] <= table["good_high"])).all()
    assert (table.loc[~table["scheduled"], "good"] == 0).all()
    backtest = section.details["backtest"].set_index(["line", "target"])
    assert backtest.loc[("all", "good"), "mase"] < 1 and "MASE" in section.confidence
    yield_shown = table["yield"].notna().any()
    assert yield_shown == (backtest.loc[("all", "yield"), "mase"] < 1)
    history = section.details["history"]
    assert pd.to_datetime(history["day"]).max().date() == origin
    json.dumps(section.as_record(max_rows=50), allow_nan=False)
    r2 = backtest.loc[("all", "good"), "r2"]
    assert f"R² {r2:.2f} for good output on working days" in section.confidence
    assert any("explains little" in n for n in section.notes) == (r2 < sections.WEAK_R2)


def test_week_ahead_says_its_days_are_rough_below_the_seeds_r2_trigger(plant, monkeypatch) -> None:
    origin = PLANT.start + dt.timedelta(days=31)
    monkeypatch.setattr(sections, "WEAK_R2", 1.01)  # every backtest R² is below it
    weak = sections.week_ahead(plant.tables, origin_day=origin, tz=TZ, day_end=day_start(32))
    assert weak.shown and "explains little of the day-to-day variation" in weak.notes[0]
    assert "below 1.01" in weak.notes[0] and "read its days as rough" in weak.notes[0]


# =============================================================================================
# the registry round trip


def test_a_registered_challenger_loads_by_alias_and_states_its_held_out_window(plant, run, tmp_path) -> None:
    from workbench.ml.registry import Registry

    missing = tmp_path / "none" / "mlflow.db"
    model, why = sections.load_model(f"sqlite:///{missing}")
    assert model is None and "no model registry" in why and not missing.exists()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    version = sections.register_challenger(run, Registry(uri))
    assert version.aliases == ("challenger",) and version.metrics["holdout_accuracy"] == run.metrics["holdout_accuracy"]
    champion, why = sections.load_model(uri)
    assert champion is None and why == sections.NO_MODEL
    loaded, why = sections.load_model(uri, alias="challenger")
    assert why == "" and loaded.card.version == version.version
    section = sections.uncoded_stops(plant.tables, model=loaded.model, card=loaded.card, day_start=day_start(29),
                                     day_end=day_start(30))
    assert section.shown
    assert f"v{version.version} (challenger): {100 * run.metrics['holdout_accuracy']:.0f} %" in section.confidence
    assert f"{run.n_holdout} held-out coded stops 2026-11-09 – 2026-11-16" in section.confidence
    table = sections.card_table(loaded.card).set_index("field")["value"]
    assert table["held-out accuracy of the fault-code lookup (baseline)"] == \
        f"{run.metrics['holdout_fault_code_accuracy']:.3f}"
