"""The e-mail's model sections: "likely causes of uncoded stops", "anomalies needing a look", "the week ahead".

Sections are built here with known rows (what a notebook keeps with ``nb.record``), passed
through their JSON record as the flow does, and composed with the small plant's summary. The
end-to-end path (notebooks in a report run → e-mail) is ``tests/ml/test_ml_notebooks.py``.
"""

from __future__ import annotations

import datetime as dt
import json
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pandas as pd
import pytest

from workbench import runs
from workbench.ml.records import (
    ANOMALIES_RECORD,
    ANOMALIES_TITLE,
    UNCODED_COLUMNS,
    UNCODED_RECORD,
    UNCODED_TITLE,
    WEEK_AHEAD_RECORD,
    WEEK_AHEAD_TITLE,
    MLSection,
    not_shown,
)
from workbench.reports import compose_daily_email
from workbench.reports.execute import SectionResult

SENDER = "Plant workbench <workbench@plant.example>"
TZ = "America/Chicago"
UTC = dt.UTC


def t(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=UTC)


def uncoded(n_blank: int = 3, n_suspect: int = 1) -> MLSection:
    rows = []
    for i in range(n_blank):  # 14:00, 15:00, … UTC = 08:00, 09:00, … in Chicago (CST)
        rows.append({"kind": "blank code", "event_id": f"b{i}", "machine_id": f"M0{i % 9 + 1}",
                     "time_start": t(f"2026-11-04 {14 + i % 8}:00"), "time_end": t(f"2026-11-04 {14 + i % 8}:20"),
                     "duration_min": 20.0, "fault_code": "F7103", "entered_category": None,
                     "predicted_category": "Tooling", "predicted_confidence": 0.874,
                     "top_contributions": "fault_code=F7103 (+0.44), spindle_load_last=72.8 (+0.08), state=down (+0.01)"})
    for i in range(n_suspect):
        rows.append({"kind": "suspect code", "event_id": f"s{i}", "machine_id": "M10",
                     "time_start": t("2026-11-04 21:59"), "time_end": t("2026-11-04 22:45"), "duration_min": 46.0,
                     "fault_code": None, "entered_category": "Operator", "predicted_category": "Changeover",
                     "predicted_confidence": 0.96, "top_contributions": "state=setup (+0.55)"})
    return MLSection(UNCODED_TITLE, "ok", confidence="root-cause model v3 (champion): 86 % accurate on 212 "
                     "held-out coded stops", table=pd.DataFrame(rows, columns=list(UNCODED_COLUMNS)))


def anomalies() -> MLSection:
    table = pd.DataFrame([
        {"source": "telemetry", "machine_id": "M04", "what": "hydraulic_pressure", "time_start": t("2026-11-05 01:48"),
         "time_end": t("2026-11-05 05:28"), "detected_at": t("2026-11-05 01:50"), "score": 7.5, "severity": "high",
         "likely_cause": "hydraulic pressure off its predicted level: check for leaks", "detail": ""},
        {"source": "scrap", "machine_id": "M06", "what": "part BR-3001", "time_start": t("2026-11-05 05:00"),
         "time_end": t("2026-11-05 12:00"), "detected_at": t("2026-11-05 06:00"), "score": 3.1, "severity": "medium",
         "likely_cause": "material lot L-77 in use on 3 machines", "detail": ""}])
    return MLSection(ANOMALIES_TITLE, "ok", confidence="telemetry: 48 channels trained on 7 days", table=table)


def week_ahead() -> MLSection:
    days = pd.date_range("2026-11-05", periods=4, freq="D")  # Thu … Sun
    rows = [{"line": line, "day": day.date(), "scheduled": day.weekday() < 5, "good": 5000.0 if day.weekday() < 5 else 0.0,
             "good_low": 4200.0, "good_high": 5900.0, "produced": 5100.0, "produced_low": 4300.0,
             "produced_high": 6000.0, "yield": 0.981, "yield_low": 0.95, "yield_high": 0.994}
            for line in ("L1", "L2") for day in days]
    return MLSection(WEEK_AHEAD_TITLE, "ok", confidence="backtest: relative MASE 0.61 for good output",
                     table=pd.DataFrame(rows), notes=("line L2 yield forecast below target on Thu 05 Nov: "
                                                      "3 tool changes due on M05, M06",))


def via_record(section: MLSection) -> MLSection:
    """As the flow gets it: kept by the notebook as JSON, read back."""
    return MLSection.from_record(json.loads(json.dumps(section.as_record(), allow_nan=False)))


def parts(message) -> tuple[str, str]:
    parsed = BytesParser(policy=policy.default).parsebytes(message.as_bytes())
    text = parsed.get_body(preferencelist=("plain",)).get_content()
    html = parsed.get_body(preferencelist=("html",)).get_content()
    return text, html


def compose(summary, sections):
    return compose_daily_email(summary, report=None, report_url=None, warnings=[], sender=SENDER,
                               recipients=["manager@plant.example"], ml_sections=sections)


def test_the_three_sections_follow_spc_with_their_confidence_rows_and_notes(daily_summary) -> None:
    text, html = parts(compose(daily_summary, [via_record(s) for s in (uncoded(), anomalies(), week_ahead())]))
    spc, causes = text.index("SPC:"), text.index("Likely causes of uncoded stops")
    look, ahead = text.index("Anomalies needing a look"), text.index("The week ahead")
    assert spc < causes < look < ahead < text.index("No HTML report was built")
    # uncoded stops: the model's confidence first, then each stop at plant time (CST = UTC-6)
    assert "root-cause model v3 (champion): 86 % accurate on 212" in text
    assert "M01      Wed 08:00  20   F7103  Tooling       87 %        fault_code=F7103, spindle_load_last=72.8" in text
    assert "Codes to check" in text and "M10      Wed 15:59  46   Operator  Changeover  96 %" in text
    # anomalies: the span in plant time, across midnight with the weekday
    assert "M04      hydraulic_pressure  Wed 19:48–23:28" in text
    assert "M06      part BR-3001        Wed 23:00–Thu 06:00  medium" in text
    # the week ahead: working days with their 80 % ranges, the recommendation, the idle days
    assert "L1    Thu 05 Nov  5,000 (4,200–5,900)      98.1 % (95.0 %–99.4 %)" in text
    assert "Sat 07 Nov" not in text.split("No shifts planned")[0]
    assert "No shifts planned on Sat 07 Nov, Sun 08 Nov: no output forecast." in text
    assert "3 tool changes due on M05, M06" in text
    for title in (UNCODED_TITLE, ANOMALIES_TITLE, WEEK_AHEAD_TITLE):
        assert f">{title}</h2>" in html
    assert "86 % accurate on 212 held-out coded stops" in html and "<td" in html and "87 %" in html


def test_a_section_not_shown_says_why_and_shows_no_model_number(daily_summary) -> None:
    hidden = not_shown(UNCODED_TITLE, "the root-cause model v2 is 61 % accurate on its held-out stops, below "
                                      "the 65 % needed to show its predictions", confidence="root-cause model v2")
    text, html = parts(compose(daily_summary, [via_record(hidden), via_record(week_ahead())]))
    block = text[text.index(UNCODED_TITLE):text.index(WEEK_AHEAD_TITLE)]
    assert "Not shown, because the root-cause model v2 is 61 % accurate" in block
    assert "Tooling" not in block and "Machine" not in block  # no table, no prediction
    assert "Not shown, because the root-cause model v2" in html


def test_long_tables_are_cut_and_counted(daily_summary) -> None:
    many = via_record(uncoded(n_blank=12, n_suspect=0))
    text, _ = parts(compose(daily_summary, [many]))
    block = text[text.index(UNCODED_TITLE):]
    assert block.count("Tooling") == 8 and "… and 4 more uncoded stops in the report." in block
    short = uncoded(n_blank=1, n_suspect=0)
    short.table.loc[0, "duration_min"] = 0.18  # an 11-second stop
    text, _ = parts(compose(daily_summary, [via_record(short)]))
    assert "M01      Wed 08:00  0.2  F7103" in text
    # A record keeps its first 50 rows and the count: the e-mail says the report has them all.
    huge = via_record(uncoded(n_blank=60, n_suspect=0))
    assert len(huge.table) == 50 and huge.n_rows == 60
    text, _ = parts(compose(daily_summary, [huge]))
    assert "The report lists all 60 stops." in text


def test_without_model_sections_the_email_is_as_it_was(daily_summary) -> None:
    plain, _ = parts(compose(daily_summary, []))
    assert UNCODED_TITLE not in plain and "The week ahead" not in plain


def test_the_run_takes_the_sections_from_the_notebooks_that_ran_to_the_end(tmp_path: Path) -> None:
    def section(name: str, status: str, records: dict) -> SectionResult:
        now = dt.datetime.now(UTC)
        return SectionResult(name=name, notebook=tmp_path / f"{name}.ipynb", ipynb_path=tmp_path / f"{name}.ipynb",
                             status=status, error=None if status == "ok" else "ValueError: x", traceback=None,
                             started_at=now, finished_at=now, parameters={}, records=records)

    kept = [section("yield_forecast", "ok", {WEEK_AHEAD_RECORD: week_ahead().as_record()}),
            section("root_cause", "ok", {UNCODED_RECORD: uncoded().as_record(), "other": {"x": 1}}),
            section("anomalies", "failed", {ANOMALIES_RECORD: anomalies().as_record()}),
            section("broken_record", "ok", {ANOMALIES_RECORD: {"rows": []}})]
    found = runs.ml_sections(kept)
    # the e-mail's order, whatever the notebooks' order; the failed notebook's and the unreadable
    # record left out (the e-mail's warnings name the failed section)
    assert [s.title for s in found] == [UNCODED_TITLE, WEEK_AHEAD_TITLE]
    assert found[0].table["predicted_confidence"].iloc[0] == pytest.approx(0.874)
