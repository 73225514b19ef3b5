"""Analysts' verdicts on the stored anomalies (``ml_anomaly_reviews``) and the false-alarm rate.

The seed's third retraining trigger — false positives above 20 % — needs labels a plant has: the
verdicts of whoever looked at an anomaly. Counted by hand here: which anomalies are in the
window, which verdict counts (the latest), when the trigger fires (above 20 % with at least 10
reviewed), and what the anomalies section, the CLI and the morning run say of it.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from workbench.cli import app
from workbench.errors import MLError
from workbench.ml import reviews

T0 = pd.Timestamp("2026-11-20T12:00:00Z")
NOW = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)


def anomalies(n_tel: int, n_scrap: int, *, at: pd.Timestamp = T0) -> pd.DataFrame:
    """Stored anomalies an hour apart from ``at``: telemetry ones ``t0…``, scrap ones ``s0…``."""
    rows = [(f"t{i}", "telemanom", at + pd.Timedelta(hours=i)) for i in range(n_tel)]
    rows += [(f"s{i}", "scrap", at + pd.Timedelta(hours=i)) for i in range(n_scrap)]
    return pd.DataFrame(rows, columns=["anomaly_id", "detector", "time_start"])


def verdicts(pairs: dict[str, str], *, at: dt.datetime = NOW, stored: pd.DataFrame | None = None) -> pd.DataFrame:
    """Reviews of the anomalies named, as ``workbench reviews mark`` writes them (with each
    anomaly's detector and start from ``stored``, default the anomalies of :func:`anomalies`)."""
    stored = anomalies(20, 5) if stored is None else stored
    frames = [reviews.review_rows([i], v, anomalies=stored, reviewed_at=at, reviewed_by="ana")
              for i, v in pairs.items()]
    return pd.concat(frames, ignore_index=True)


def test_review_rows_refuse_what_is_not_a_review() -> None:
    stored = anomalies(2, 0)
    with pytest.raises(MLError, match="verdict 'maybe' is not one of confirmed, false_alarm"):
        reviews.review_rows(["t0"], "maybe", anomalies=stored, reviewed_at=NOW)
    with pytest.raises(MLError, match="give the id of each anomaly"):
        reviews.review_rows([" "], "confirmed", anomalies=stored, reviewed_at=NOW)
    with pytest.raises(MLError, match="timezone-aware"):
        reviews.review_rows(["t0"], "confirmed", anomalies=stored, reviewed_at=NOW.replace(tzinfo=None))
    with pytest.raises(MLError, match="not in ml_anomalies: zz"):
        reviews.review_rows(["t0", "zz"], "confirmed", anomalies=stored, reviewed_at=NOW)
    rows = reviews.review_rows(["t1", "t0", "t1"], "false_alarm", anomalies=stored, reviewed_at=NOW,
                               reviewed_by="ana")
    assert list(rows["anomaly_id"]) == ["t1", "t0"] and set(rows["verdict"]) == {"false_alarm"}
    # what was judged travels with the verdict: ml_anomalies is rewritten every morning
    assert list(rows["detector"]) == ["telemanom", "telemanom"]
    assert list(rows["anomaly_start"]) == [T0 + pd.Timedelta(hours=1), T0]


def test_the_rate_counts_the_latest_verdict_of_the_anomalies_in_the_window() -> None:
    stored = anomalies(12, 3)
    given = pd.concat([
        verdicts({f"t{i}": "confirmed" for i in range(10)}, at=NOW - dt.timedelta(days=1)),
        # t0 and t1 were looked at again: false alarms after all; the later verdict counts
        verdicts({"t0": "false_alarm", "t1": "false_alarm", "t2": "false_alarm", "s0": "false_alarm"}),
        # an anomaly after the window counts nowhere
        verdicts({"s0": "false_alarm"}, stored=anomalies(0, 1, at=T0 + pd.Timedelta(days=2))).assign(
            anomaly_id="late"),
    ], ignore_index=True)
    rates = reviews.review_rates(given, end=T0 + pd.Timedelta(days=1), anomalies=stored)
    tel, scrap = rates["telemetry"], rates["scrap"]
    assert (tel.anomalies, tel.reviewed, tel.false_alarms) == (12, 10, 3)
    assert tel.rate == pytest.approx(0.3) and tel.triggered  # 30 % of 10 reviewed > 20 %
    assert (scrap.anomalies, scrap.reviewed, scrap.false_alarms) == (3, 1, 1)
    assert not scrap.triggered  # 100 %, but one review says too little
    assert tel.text() == "telemetry: 3 false alarms of 10 reviewed (30 %; 12 stored)"
    # without the stored anomalies (the report's section): the reviews alone
    alone = reviews.review_rates(given, end=T0 + pd.Timedelta(days=1))["telemetry"]
    assert alone.anomalies is None and alone.text() == "telemetry: 3 false alarms of 10 reviewed (30 %)"
    # the window: anomalies from start, before end
    late = reviews.review_rates(given, start=T0 + pd.Timedelta(hours=2), end=T0 + pd.Timedelta(hours=11),
                                anomalies=stored)
    assert (late["telemetry"].anomalies, late["telemetry"].reviewed, late["telemetry"].false_alarms) == (9, 8, 1)
    # exactly 20 % is not above the trigger; nine reviews are too few
    two = verdicts({**{f"t{i}": "confirmed" for i in range(8)}, "t8": "false_alarm", "t9": "false_alarm"})
    assert not reviews.review_rates(two, end=NOW)["telemetry"].triggered
    nine = verdicts({**{f"t{i}": "confirmed" for i in range(6)}, **{f"t{i}": "false_alarm" for i in (6, 7, 8)}})
    assert not reviews.review_rates(nine, end=NOW)["telemetry"].triggered
    assert reviews.review_rates(None, end=NOW) == {}
    none_yet = reviews.review_rates(None, end=NOW, anomalies=stored)["scrap"]
    assert none_yet.reviewed == 0 and none_yet.text() == "scrap: none reviewed of 3 stored"


def test_the_anomalies_section_states_the_reviews_and_the_trigger(tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    from workbench.demo import load_plant
    from workbench.ml import daily, sections
    from workbench.simulate import PlantConfig, simulate_plant
    from workbench.store import DuckDBWarehouse

    tz = "America/Chicago"
    plant = PlantConfig(seed=4, n_machines=2, n_lines=1, days=10, telemetry=True)
    day = plant.start + dt.timedelta(days=8)
    start = dt.datetime.combine(day, dt.time(6), tzinfo=ZoneInfo(tz))
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(6), tzinfo=ZoneInfo(tz))
    with DuckDBWarehouse(tmp_path / "w.duckdb") as wh:
        load_plant(simulate_plant(plant), wh, truth_dir=tmp_path / "truth")
        tables = daily.read_many(wh, daily.anomaly_reads(start, end, train_days=7, history_days=14))
    assert "ml_anomalies" not in tables and tables.rows("ml_anomaly_reviews") == 0
    plain = sections.anomalies_needing_a_look(tables, day_start=start, day_end=end, tz=tz)
    assert plain.shown and "reviews" not in plain.confidence

    before = pd.Timestamp(start) - pd.Timedelta(days=3)
    given = verdicts({**{f"t{i}": "confirmed" for i in range(7)}, **{f"t{i}": "false_alarm" for i in (7, 8, 9)},
                      "s0": "confirmed"}, stored=anomalies(12, 2, at=before))
    reviewed = {**{k: tables[k] for k in tables}, "ml_anomaly_reviews": given}
    section = sections.anomalies_needing_a_look(reviewed, day_start=start, day_end=end, tz=tz)
    assert section.confidence.startswith(plain.confidence)
    first = before.tz_convert(tz)
    assert (f"analysts' reviews of the stored anomalies from {first:%a %d %b} on: scrap: 0 false alarms of 1 "
            "reviewed (0 %); telemetry: 3 false alarms of 10 reviewed (30 %)") in section.confidence
    assert section.notes[0].startswith("telemetry anomalies: 30 % of the 10 reviewed from")
    assert "above the 20 % trigger" in section.notes[0]
    assert section.notes[1:] == plain.notes
    pd.testing.assert_frame_equal(section.table, plain.table)  # what was detected is unchanged
    # reviews of the day's own anomalies do not judge the day's detectors
    today = verdicts({f"t{i}": "false_alarm" for i in range(12)}, stored=anomalies(12, 2, at=pd.Timestamp(start)))
    later = sections.anomalies_needing_a_look({**reviewed, "ml_anomaly_reviews": today}, day_start=start,
                                              day_end=end, tz=tz)
    assert later.confidence == plain.confidence


runner = CliRunner()


def test_the_cli_lists_marks_and_rates(tmp_path: Path, use_home) -> None:
    from workbench.store import DuckDBWarehouse

    use_home(tmp_path)
    assert runner.invoke(app, ["db", "init"]).exit_code == 0
    now = pd.Timestamp.now(tz="UTC").floor("h")
    rows = anomalies(11, 1, at=now - pd.Timedelta(days=2)).assign(
        machine_id="M01", target="vibration_rms", severity="high", created_at=now)
    with DuckDBWarehouse(tmp_path / "data" / "warehouse.duckdb") as wh:
        wh.write("ml_anomalies", rows)

    listed = runner.invoke(app, ["reviews", "list", "--days", "7", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [r["anomaly_id"] for r in json.loads(listed.stdout)][:2] == ["t10", "t9"]  # newest first
    table = runner.invoke(app, ["reviews", "list"])
    assert table.exit_code == 0 and "t10" in table.output

    marked = runner.invoke(app, ["reviews", "mark", *[f"t{i}" for i in range(8)], "--confirmed", "--by", "ana"])
    assert marked.exit_code == 0 and "8 anomalies marked confirmed" in marked.output
    assert runner.invoke(app, ["reviews", "mark", "t8", "t9", "t10", "--false-alarm"]).exit_code == 0
    rate = runner.invoke(app, ["reviews", "rate", "--json"])
    assert json.loads(rate.stdout)["telemetry"] == {"anomalies": 11, "reviewed": 11, "false_alarms": 3,
                                                   "false_alarm_rate": round(3 / 11, 4), "triggered": True}
    text = runner.invoke(app, ["reviews", "rate"])
    assert "telemetry: 3 false alarms of 11 reviewed (27 %; 11 stored) — above the 20 % trigger" in text.output
    # a changed mind replaces the verdict
    assert runner.invoke(app, ["reviews", "mark", "t10", "--confirmed"]).exit_code == 0
    assert json.loads(runner.invoke(app, ["reviews", "rate", "--json"]).stdout)["telemetry"]["false_alarms"] == 2

    typo = runner.invoke(app, ["reviews", "mark", "t1", "nope", "--confirmed"])
    assert typo.exit_code == 2 and "not in ml_anomalies: nope" in typo.output
    no_verdict = runner.invoke(app, ["reviews", "mark", "t1"])
    assert no_verdict.exit_code == 2 and "--confirmed or --false-alarm" in no_verdict.output
    with DuckDBWarehouse(tmp_path / "data" / "warehouse.duckdb", read_only=True) as wh:
        assert wh.count("ml_anomaly_reviews") == 11  # the typo wrote nothing
