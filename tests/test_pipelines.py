"""Pipeline YAML: the one source of truth for schedules; unknown keys are errors."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from workbench import pipelines
from workbench.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    (tmp_path / "pipelines").mkdir(exist_ok=True)
    nb = tmp_path / "notebooks" / "a.ipynb"
    nb.parent.mkdir(exist_ok=True)
    nb.write_text("{}")
    path = tmp_path / "pipelines" / name
    path.write_text(text)
    return path


GOOD = """
kind: report
schedule: {cron: "0 5 * * *", timezone: America/Chicago}
parameters: {days: 1}
notebooks:
  - {name: a, path: notebooks/a.ipynb, parameters: {top: 5}}
email: {recipients: [boss@plant.example]}
"""


def load(path: Path, home: Path) -> pipelines.Pipeline:
    return pipelines.load_pipeline(path, home=home, default_timezone="UTC")


def test_good_pipeline(tmp_path: Path) -> None:
    p = load(write(tmp_path, GOOD), tmp_path)
    assert p.name == "p" and p.kind == "report" and p.cron == "0 5 * * *"
    assert p.notebook_parameters(p.notebooks[0], date="2026-11-20") == {"days": 1, "top": 5, "date": "2026-11-20"}
    assert p.email and p.email.recipients == ("boss@plant.example",)


def test_schedule_is_plant_time_across_dst(tmp_path: Path) -> None:
    p = load(write(tmp_path, GOOD), tmp_path)
    runs = p.next_runs(dt.datetime(2026, 10, 30, 12, tzinfo=dt.UTC), 3)
    chicago = ZoneInfo("America/Chicago")
    assert [r.astimezone(chicago).hour for r in runs] == [5, 5, 5]
    # 31 Oct 05:00 CDT is 10:00 UTC; from 1 November (CST) 05:00 is 11:00 UTC
    assert [r.astimezone(dt.UTC).hour for r in runs] == [10, 11, 11]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("email: {recipients: [boss@plant.example]}", "email: {recipients: [boss@plant.example], cc: [x@y.z]}"),
         "email: unknown key(s) cc"),
        (("parameters: {days: 1}", "parameters: {days: 1}\nrecipients: [a@b.c]"), "unknown key(s) recipients"),
        (('cron: "0 5 * * *"', 'cron: "0 25 * * *"'), "not a valid cron expression"),
        (("timezone: America/Chicago", "timezone: Mars/Base"), "not an IANA time zone"),
        (("notebooks/a.ipynb", "notebooks/missing.ipynb"), "does not exist"),
        (("parameters: {top: 5}", "parameters: {date: '2026-01-01'}"), "set by the flow"),
        (("[boss@plant.example]", "boss@plant.example"), "must be a list of addresses"),
        (("kind: report", "kind: nightly"), "kind must be one of"),
        (('cron: "0 5 * * *"', 'cron: "0 5 * * *", interval: 30m'), "either cron"),
        (('cron: "0 5 * * *"', "timezone: UTC"), "either cron"),
        (('cron: "0 5 * * *"', "interval: soon"), "must look like 30s, 5m or 2h"),
        (('cron: "0 5 * * *"', "interval: 2s"), "shorter than 5s"),
        (("parameters: {days: 1}", "parameters: {days: 1}\nextract: {telemetry: {days_before: 7}}"),
         "extract.telemetry is not a table of the warehouse"),
        (("parameters: {days: 1}", "parameters: {days: 1}\nextract: {work_orders: {days_before: 7}}"),
         "extract.work_orders has no time column: it is always copied whole"),
        (("parameters: {days: 1}", "parameters: {days: 1}\nextract: {machine_telemetry: {days_before: -1}}"),
         "extract.machine_telemetry.days_before must be a whole number of days ≥ 0, got -1"),
        (("parameters: {days: 1}", "parameters: {days: 1}\nextract: {machine_telemetry: {days: 7}}"),
         "extract.machine_telemetry: unknown key(s) days"),
        (("parameters: {days: 1}", "parameters: {days: 1}\nextract: {machine_telemetry: {}}"),
         "extract.machine_telemetry needs days_before and/or days_after"),
    ],
)
def test_bad_pipelines_are_errors_naming_file_and_key(tmp_path: Path, change, message: str) -> None:
    old, new = change
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        load(path, tmp_path)
    assert str(path) in str(err.value)


def test_interval_schedule_runs_on_multiples_of_its_interval(tmp_path: Path) -> None:
    p = load(write(tmp_path, GOOD.replace('cron: "0 5 * * *"', "interval: 15m")), tmp_path)
    assert p.cron is None and p.interval == dt.timedelta(minutes=15)
    assert p.schedule_text == "every 15m"
    runs = p.next_runs(dt.datetime(2026, 11, 20, 12, 7, 30, tzinfo=dt.UTC), 3)
    # counted from midnight UTC, whatever the zone: 12:15, 12:30, 12:45 UTC
    assert [r.astimezone(dt.UTC).strftime("%H:%M") for r in runs] == ["12:15", "12:30", "12:45"]
    assert str(runs[0].tzinfo) == "America/Chicago"
    assert pipelines.parse_interval("x", 90) == dt.timedelta(seconds=90)
    assert pipelines.parse_interval("x", "2h") == dt.timedelta(hours=2)


def test_unknown_pipeline_lists_the_known(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "daily.yaml")
    with pytest.raises(ConfigError, match="no pipeline 'nightly' \\(known: daily\\)"):
        pipelines.get("nightly", home=tmp_path, default_timezone="UTC")


def test_the_projects_pipelines_load() -> None:
    found = pipelines.load_all(ROOT, default_timezone="America/Chicago")
    assert {"daily_report", "hourly_oee"} <= set(found)
    daily = found["daily_report"]
    assert daily.cron == "0 5 * * *" and daily.email is not None
    assert {n.name for n in daily.notebooks} == {"daily_summary", "oee", "pareto", "spc", "reliability",
                                                 "root_cause", "anomalies", "yield_forecast"}


def test_the_extract_block_sets_a_range_per_table(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "baseline_days: 10\nextract:\n  machine_telemetry: {days_before: 7}\n"
                                  "  shift_calendar: {days_after: 8}\n")
    p = load(path, tmp_path)
    assert p.extract_range("machine_telemetry") == pipelines.ExtractRange(7, 0)
    assert p.extract_range("shift_calendar") == pipelines.ExtractRange(10, 8)  # days_before: baseline_days
    assert p.extract_range("downtime_events") == pipelines.ExtractRange(10, 0)
    from workbench import runs

    start = dt.datetime(2026, 11, 4, 6, tzinfo=ZoneInfo("America/Chicago"))
    ranges = runs.extract_ranges(p, start=start, end=start + dt.timedelta(days=1))
    assert ranges["machine_telemetry"] == (start - dt.timedelta(days=7), start + dt.timedelta(days=1))
    assert ranges["shift_calendar"] == (start - dt.timedelta(days=10), start + dt.timedelta(days=9))
    assert ranges["work_orders"] == (None, None) and ranges["oee_hourly"][0] == start - dt.timedelta(days=10)
    assert "machine_telemetry" in ranges and "machine_telemetry" not in runs.EXTRACT_TABLES
    path = write(tmp_path, GOOD.replace("kind: report", "kind: oee_rollup") + "extract: {}\n")
    with pytest.raises(ConfigError, match="an extract block belongs to a report pipeline"):
        load(path, tmp_path)


#: What each model notebook reads before (and after) the report day, by its parameters — the
#: extract of a pipeline that runs it must hold at least that (else the notebook would see a
#: shorter history than it says, silently).
NOTEBOOK_READS = {
    "root_cause": {t: ("history_days", None) for t in ("downtime_events", "machine_states")},
    "anomalies": {"machine_telemetry": ("train_days", None),
                  **{t: ("history_days", None) for t in ("production_events", "scrap_events", "downtime_events",
                                                         "machine_states", "quality_measurements")}},
    "yield_forecast": {"production_events": ("history_days", None),
                       **{t: ("history_days", "horizon") for t in ("shift_calendar", "planned_stops")}},
}


def test_the_projects_extracts_hold_what_their_model_notebooks_read() -> None:
    from workbench import reports

    checked = 0
    for pipeline in pipelines.load_all(ROOT, default_timezone="America/Chicago").values():
        for spec in pipeline.notebooks:
            params = reports.complete_parameters(spec.path, pipeline.notebook_parameters(
                spec, date="2026-11-20", warehouse="data/extract.duckdb"))
            for table, (before, after) in NOTEBOOK_READS.get(spec.name, {}).items():
                span = pipeline.extract_range(table)
                assert span.days_before >= params[before], (pipeline.name, spec.name, table)
                if after:  # the notebook reads up to horizon + 1 days after the day's end
                    assert span.days_after >= params[after] + 1, (pipeline.name, spec.name, table)
                checked += 1
    assert checked >= 10


def test_every_parameter_a_pipeline_passes_exists_in_its_notebook() -> None:
    from workbench import reports

    for pipeline in pipelines.load_all(ROOT, default_timezone="America/Chicago").values():
        for spec in pipeline.notebooks:
            params = pipeline.notebook_parameters(spec, date="2026-11-20", warehouse="data/extract.duckdb")
            reports.validate_parameters(spec.path, params)   # raises ReportError naming the unknown


def test_a_parameter_the_notebook_lacks_is_refused() -> None:
    from workbench import reports
    from workbench.errors import ReportError

    with pytest.raises(ReportError, match="oee_treshold"):
        reports.validate_parameters(ROOT / "notebooks" / "oee.ipynb", {"oee_treshold": 0.8})


def test_a_retrain_pipeline_reads_its_retrain_block_and_refuses_what_it_does_not_know(tmp_path) -> None:
    from workbench.errors import ConfigError
    from workbench.pipelines import RetrainSpec, load_pipeline

    base = 'kind: retrain\nschedule: {cron: "30 4 * * *"}\n'
    path = tmp_path / "retrain.yaml"
    path.write_text(base + "retrain: {train_days: 21, weekly_on: Monday, rootcause: {max_depth: 3}}\n")
    p = load_pipeline(path, home=tmp_path, default_timezone="America/Chicago")
    assert p.retrain == RetrainSpec(train_days=21, holdout_days=7, weekly_on="monday", trigger_days=7, score_days=2,
                                    rootcause={"max_depth": 3})
    for block, message in (("retrain: {train_dayz: 3}", "unknown key"),
                           ("retrain: {weekly_on: someday}", "retrain.weekly_on must be a weekday"),
                           ("retrain: {holdout_days: 0}", "retrain.holdout_days must be a whole number"),
                           ("retrain: {rootcause: [1]}", "retrain.rootcause")):
        path.write_text(base + block + "\n")
        with pytest.raises(ConfigError, match=message):
            load_pipeline(path, home=tmp_path, default_timezone="America/Chicago")
    path.write_text('kind: oee_rollup\nschedule: {cron: "5 * * * *"}\nretrain: {train_days: 21}\n')
    with pytest.raises(ConfigError, match="a retrain block belongs to a retrain pipeline"):
        load_pipeline(path, home=tmp_path, default_timezone="America/Chicago")
