"""MachineMetrics records → canonical rows: the whole-page Arrow path gives exactly the rows of the
record-by-record path on clean pages, and leaves every unusual page to it."""

from __future__ import annotations

import copy

import pandas as pd
import pytest

from workbench.sources import machinemetrics as mm

PAGE = [
    {"timestamp": "2026-10-19T11:00:05.123Z", "machineId": "M01", "type": "count", "partNumber": "P-1",
     "workOrder": "WO-1", "goodParts": 3, "rejectParts": 0, "rejectReason": None, "cycleTimeMs": 41234.5,
     "operator": "OP1"},
    {"timestamp": "2026-10-19T06:01:05.000-05:00", "machineId": "M01", "type": "count", "partNumber": "P-1",
     "workOrder": None, "goodParts": 2, "rejectParts": 1, "rejectReason": "burr", "cycleTimeMs": 40000,
     "operator": None},
]
STATES = [{"machineId": "M01", "start": "2026-10-19T11:00:00Z", "end": "2026-10-19T11:05:00.250Z",
           "state": "down", "faultCode": "F12"},
          {"machineId": "M01", "start": "2026-10-19T11:05:00.250Z", "end": "2026-10-19T12:00:00Z",
           "state": "running", "faultCode": None}]


def _slow(records, report):
    build, key = mm._ROWS[report]
    rows, dead = mm.convert(records, lambda r: build(r, "M01"), key=key, table="t", where="w")
    return pd.DataFrame(rows), dead


def _same(fast, slow):
    fast = fast.to_pandas()
    slow = slow[list(fast.columns)]
    for col in fast.columns:
        if col.startswith("time"):
            slow[col] = pd.to_datetime(slow[col], utc=True)
    pd.testing.assert_frame_equal(fast, slow, check_dtype=False)


@pytest.mark.parametrize(("records", "report"), [(PAGE, "production"), (STATES, "states")])
def test_a_clean_page_gives_the_same_rows_on_both_paths(records, report):
    fast = mm.fast_frame(records, report, "M01")
    assert fast is not None
    slow, dead = _slow(records, report)
    assert not dead
    _same(fast, slow)


@pytest.mark.parametrize(("field", "value"), [
    ("goodParts", "12 pcs"), ("goodParts", 2.5), ("goodParts", -1), ("goodParts", True), ("goodParts", None),
    ("timestamp", "2026-10-19T11:00:05"), ("timestamp", "yesterday"), ("machineId", "M02"), ("type", "cyc"),
    ("cycleTimeMs", "fast"), ("cycleTimeMs", -3), ("partNumber", 7.5),
])
def test_an_unusual_page_is_left_to_the_record_checks_which_name_the_field(field, value):
    records = copy.deepcopy(PAGE)
    records[1][field] = value
    assert mm.fast_frame(records, "production", "M01") is None
    rows, dead = _slow(records, "production")
    # the bad record (and only it) is a dead letter naming the field; a number is not a part number
    assert len(dead) == 1 and field in dead[0]["reason"] and len(rows) == 1


def test_an_extra_field_or_a_duplicate_instant_goes_to_the_record_path():
    extra = copy.deepcopy(PAGE)
    extra[0]["shift"] = "A"
    assert mm.fast_frame(extra, "production", "M01") is None
    twice = [PAGE[0], {**PAGE[0], "goodParts": 9}]
    assert mm.fast_frame(twice, "production", "M01") is None
    rows, dead = _slow(twice, "production")
    assert len(rows) == 1 and dead[0]["reason"].startswith("conflicting_record")
