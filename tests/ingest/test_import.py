"""History import (workbench.ingest): good files land exactly once; bad files land not at all.

Expected values are worked out by hand from the fixture rows written in each test (not from the
code under test): e.g. 06:00 in Europe/Berlin on 2024-03-01 is 05:00 UTC (CET, UTC+1), and on
2024-06-03 it is 04:00 UTC (CEST, UTC+2). Berlin's 2024 DST changes: 31 March 02:00 → 03:00
(02:30 does not exist), 27 October 03:00 → 02:00 (02:30 happens twice).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from workbench.errors import ValidationError
from workbench.ingest import ImportResult, import_file, split_rows, table_for_file, validate_frame
from workbench.store import Warehouse

UTC = dt.UTC


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def snapshot(wh: Warehouse) -> dict[str, int]:
    return wh.counts()


def values(series: pd.Series) -> list[object]:
    """Cells as a list, missing ones as None (reads give NaN for null text)."""
    return [None if pd.isna(v) else v for v in series.tolist()]


def content(wh: Warehouse, table: str) -> pd.DataFrame:
    order = {"downtime_events": ["machine_id", "time_start"],
             "scrap_events": ["machine_id", "time", "scrap_reason"]}.get(table, ["machine_id", "time"])
    return wh.read(table).sort_values(order).reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# good files


PRODUCTION_HEADER = ["Time", "Machine ID", "Part Number", "Work Order", "Total Count", "Good Count"]
PRODUCTION_ROWS = [
    ["2024-03-01 06:00", "M1", "P-100", "WO-1", 100, 97],
    ["2024-03-01 07:00", "M1", "P-100", "WO-1", 90, 90],
    ["2024-03-01T08:00:00+01:00", "M2", "4711", "WO-2", 50, 45],
    ["2024-03-01 07:00:00Z", "M3", "P-200", "", 10, 0],
]


def test_good_production_csv(seeded, csv_file):
    path = csv_file("production_2024-03.csv", PRODUCTION_HEADER, PRODUCTION_ROWS)
    before = seeded.count("production_events")

    result = import_file(path, seeded, timezone="Europe/Berlin")

    assert result == ImportResult(path, "production_events", 4, 4, 0)
    assert seeded.count("production_events") == before + 4
    df = content(seeded, "production_events")
    assert df["time"].tolist() == [ts("2024-03-01 05:00"), ts("2024-03-01 06:00"),
                                   ts("2024-03-01 07:00"), ts("2024-03-01 07:00")]
    assert df["machine_id"].tolist() == ["M1", "M1", "M2", "M3"]
    assert df["good_count"].tolist() == [97, 90, 45, 0]
    assert df["reject_count"].tolist() == [3, 0, 5, 10]  # total − good
    assert df["event_type"].tolist() == ["count"] * 4
    assert df["part_number"].tolist() == ["P-100", "P-100", "4711", "P-200"]
    assert values(df["work_order"]) == ["WO-1", "WO-1", "WO-2", None]
    assert set(df["source"]) == {"import"}
    assert df["event_id"].is_unique
    assert str(df["time"].dt.tz) == "UTC"


DOWNTIME_HEADER = ["machine_id", "time_start", "time_end", "duration_min", "reason_code", "planned",
                   "Notes"]
DOWNTIME_ROWS = [
    ["M1", dt.datetime(2024, 3, 1, 6, 10), dt.datetime(2024, 3, 1, 6, 40), 30, "TOOL-BRK", None,
     "insert broke"],
    ["M2", dt.datetime(2024, 3, 1, 9, 0), dt.datetime(2024, 3, 1, 11, 0), None, "PM", None, None],
    ["M3", dt.datetime(2024, 3, 1, 9, 0), dt.datetime(2024, 3, 1, 9, 5, 30), 5.5, None, False, None],
    ["M1", dt.datetime(2024, 6, 3, 6, 0), dt.datetime(2024, 6, 3, 6, 20), 20.4, "CO-SETUP", None, None],
]


def test_good_downtime_xlsx(seeded, xlsx_file):
    path = xlsx_file("downtime.xlsx", DOWNTIME_HEADER, DOWNTIME_ROWS)

    result = import_file(path, seeded, timezone="Europe/Berlin")

    assert (result.table, result.rows_read, result.rows_written, result.rows_unchanged) == (
        "downtime_events", 4, 4, 0)
    df = content(seeded, "downtime_events")
    assert len(df) == 4
    assert df["time_start"].tolist() == [ts("2024-03-01 05:10"), ts("2024-06-03 04:00"),
                                         ts("2024-03-01 08:00"), ts("2024-03-01 08:00")]
    assert df["time_end"].tolist() == [ts("2024-03-01 05:40"), ts("2024-06-03 04:20"),
                                       ts("2024-03-01 10:00"), ts("2024-03-01 08:05:30")]
    # given (within 1 min of end − start) or computed when blank
    assert df["duration_min"].tolist() == [30.0, 20.4, 120.0, 5.5]
    # category and planned come from reason_codes; a row without a code keeps what the file says
    assert values(df["reason_category"]) == ["Tooling", "Changeover", "Scheduled Maintenance", None]
    assert df["planned"].tolist() == [False, False, True, False]
    assert df["notes"].tolist()[0] == "insert broke"


SCRAP_HEADER = ["time", "machine_id", "part_number", "work_order", "quantity", "scrap_reason",
                "scrap_category", "material_cost", "labor_cost"]
SCRAP_ROWS = [
    ["2024-03-01 06:15:00+01:00", "M1", "P-100", "WO-1", 3, "burr", "Machining", 12.5, 4],
    ["2024-03-01 06:15:00+01:00", "M1", "P-100", "WO-1", 1, "scratch", "Handling", 4.1, ""],
    ["2024-03-01 09:00:00+01:00", "M2", "4711", "", 7, "", "", "", ""],
]


def test_good_scrap_csv(seeded, csv_file):
    path = csv_file("scrap.csv", SCRAP_HEADER, SCRAP_ROWS)

    result = import_file(path, seeded)

    assert result == ImportResult(path, "scrap_events", 3, 3, 0)
    assert seeded.count("scrap_events") == 3
    df = content(seeded, "scrap_events")
    assert df["quantity"].tolist() == [3, 1, 7]
    assert sum(df["quantity"]) == 11
    assert df["material_cost"].tolist()[:2] == [12.5, 4.1]
    assert np.isnan(df["material_cost"].tolist()[2])
    assert values(df["scrap_reason"]) == ["burr", "scratch", None]
    assert df["time"].tolist() == [ts("2024-03-01 05:15")] * 2 + [ts("2024-03-01 08:00")]


@pytest.mark.parametrize("kind", ["production", "downtime", "scrap"])
def test_reimport_is_a_no_op(seeded, csv_file, xlsx_file, kind):
    if kind == "production":
        path = csv_file("production.csv", PRODUCTION_HEADER, PRODUCTION_ROWS)
    elif kind == "downtime":
        rows = [[*r[:4], "", r[5], r[6]] for r in DOWNTIME_ROWS]  # no reason codes
        path = xlsx_file("downtime.xlsx", DOWNTIME_HEADER, rows)
    else:
        path = csv_file("scrap.csv", SCRAP_HEADER, SCRAP_ROWS)
    first = import_file(path, seeded, timezone="Europe/Berlin")
    counts = snapshot(seeded)
    table = first.table
    stored = content(seeded, table)

    second = import_file(path, seeded, timezone="Europe/Berlin")

    assert (second.rows_read, second.rows_written, second.rows_unchanged) == (
        first.rows_read, 0, first.rows_read)
    assert snapshot(seeded) == counts
    pd.testing.assert_frame_equal(content(seeded, table), stored)


def test_corrected_downtime_file_updates_rows(seeded, csv_file):
    header = ["machine_id", "time_start", "time_end", "reason_code"]
    path = csv_file("downtime.csv", header, [["M1", "2024-03-01 06:00Z", "2024-03-01 06:30Z", ""],
                                             ["M2", "2024-03-01 06:00Z", "2024-03-01 06:10Z", ""]])
    import_file(path, seeded)
    # an operator fills in the reason afterwards: the same stop is updated, not duplicated
    csv_file("downtime.csv", header, [["M1", "2024-03-01 06:00Z", "2024-03-01 06:30Z", "MECH-BRG"],
                                      ["M2", "2024-03-01 06:00Z", "2024-03-01 06:10Z", ""]])
    result = import_file(path, seeded)
    assert (result.rows_written, result.rows_unchanged) == (1, 1)
    df = content(seeded, "downtime_events")
    assert len(df) == 2
    assert values(df["reason_category"]) == ["Mechanical Failure", None]


def test_semicolon_csv_with_decimal_comma_and_blank_lines(seeded, tmp_path):
    path = tmp_path / "scrap_de.csv"
    path.write_text(
        "\ufefftime;machine_id;quantity;material_cost\n"
        "2024-03-01 06:00;M1;2;12,5\n"
        "\n"
        "2024-03-01 07:00;M2;1;3.25\n",
        encoding="utf-8")
    result = import_file(path, seeded, timezone="Europe/Berlin")
    assert (result.table, result.rows_read) == ("scrap_events", 2)
    assert content(seeded, "scrap_events")["material_cost"].tolist() == [12.5, 3.25]


def test_blank_lines_keep_spreadsheet_row_numbers(seeded, tmp_path):
    path = tmp_path / "scrap.csv"
    path.write_text("time,machine_id,quantity\n2024-03-01 06:00Z,M1,2\n\n,,\n2024-03-01 07:00Z,M1,-1\n")
    with pytest.raises(ValidationError) as err:
        import_file(path, seeded)
    [problem] = err.value.problems
    assert (problem.row, problem.column) == (5, "quantity")


def test_cp1252_csv(seeded, tmp_path):
    path = tmp_path / "scrap.csv"
    path.write_bytes("time,machine_id,quantity,scrap_reason\n2024-03-01 06:00Z,M1,2,Grat außen\n"
                     .encode("cp1252"))
    import_file(path, seeded)
    assert content(seeded, "scrap_events")["scrap_reason"].tolist() == ["Grat außen"]


def test_xlsx_sheet_choice(seeded, xlsx_file):
    other = [["time", "machine_id", "quantity"], [dt.datetime(2024, 3, 1, 6), "M2", 4]]
    path = xlsx_file("history.xlsx", ["notes"], [["read me first"]], sheet="Info",
                     extra_sheets={"Scrap": other})
    result = import_file(path, seeded, table="scrap_events", sheet="Scrap", timezone="UTC")
    assert (result.rows_read, result.rows_written) == (1, 1)
    with pytest.raises(ValidationError, match=r"no sheet 'Nope'; the workbook has: Info, Scrap"):
        import_file(path, seeded, table="scrap_events", sheet="Nope")


def test_master_data_import(empty_warehouse, csv_file):
    path = csv_file("machines.csv", ["Machine-ID", "Name", "Line", "Ideal Cycle Time S"],
                    [["M1", "Lathe 1", "L1", 30], ["M2", "Lathe 2", "L1", 31.5]])
    assert import_file(path, empty_warehouse).rows_written == 2
    path = csv_file("reason_codes.csv", ["code", "category", "subcode", "planned"],
                    [["PM", "Scheduled Maintenance", "PM", "yes"], ["TB", "Tooling", "tool break", "no"]])
    assert import_file(path, empty_warehouse).rows_written == 2
    codes = empty_warehouse.read("reason_codes").sort_values("code")
    assert codes["planned"].tolist() == [True, False]


def test_references_not_checked_against_empty_tables(empty_warehouse, csv_file):
    path = csv_file("downtime.csv", ["machine_id", "time_start", "time_end", "reason_code"],
                    [["ANY-MACHINE", "2024-03-01 06:00Z", "2024-03-01 06:30Z", "ANY-CODE"]])
    assert import_file(path, empty_warehouse).rows_written == 1


# ---------------------------------------------------------------------------------------------
# table from the file name


@pytest.mark.parametrize(("name", "table"), [
    ("production.csv", "production_events"),
    ("Production March 2024.xlsx", "production_events"),
    ("downtime_line2.csv", "downtime_events"),
    ("scrap-week9.csv", "scrap_events"),
    ("machines.csv", "machines"),
    ("part_rates.xlsx", "part_rates"),
    ("work_orders_2024.csv", "work_orders"),
    ("production_events.csv", "production_events"),
])
def test_table_from_file_name(name, table):
    assert table_for_file(Path(name)).name == table


def test_unknown_file_name_lists_the_choices(seeded, csv_file):
    path = csv_file("export.csv", ["time"], [["2024-03-01 06:00Z"]])
    with pytest.raises(ValidationError) as err:
        import_file(path, seeded)
    message = str(err.value)
    assert "export.csv" in message
    for choice in ("production_events", "downtime_events", "scrap_events", "machines", "table="):
        assert choice in message
    with pytest.raises(ValidationError, match="cannot import into table 'oee_hourly'"):
        import_file(path, seeded, table="oee_hourly")


# ---------------------------------------------------------------------------------------------
# bad files: rejected whole, every problem located, nothing written


def _bad(name, header, rows, row, column, fragment, **kw):
    return pytest.param(name, header, rows, row, column, fragment, kw, id=fragment[:40])


P = ["time", "machine_id", "good_count", "reject_count"]
PT = ["time", "machine_id", "good_count", "total_count"]
D = ["machine_id", "time_start", "time_end", "duration_min", "reason_code", "planned"]
S = ["time", "machine_id", "quantity", "material_cost", "labor_cost"]
T0 = "2024-03-01 06:00Z"
T1 = "2024-03-01 07:00Z"

BAD_CASES = [
    # values that do not parse as the column type
    _bad("scrap.csv", S, [[T0, "M1", 1, "12.5", ""], [T1, "M1", 1, "abc", ""]],
         3, "material_cost", "cannot read 'abc' as a number"),
    _bad("production.csv", P, [[T0, "M1", "ten", 0]], 2, "good_count", "cannot read 'ten' as a whole number"),
    _bad("production.csv", P, [[T0, "M1", "12.5", 0]], 2, "good_count", "'12.5' is not a whole number"),
    _bad("downtime.csv", D, [["M1", T0, T1, 60, "", "maybe"]], 2, "planned",
         "cannot read 'maybe' as a boolean"),
    _bad("scrap.csv", S, [["03/01/2024 06:00", "M1", 1, "", ""]], 2, "time",
         "cannot read '03/01/2024 06:00' as a timestamp"),
    # missing required values
    _bad("scrap.csv", S, [[T0, "M1", 1, "", ""], [T1, "", 1, "", ""]], 3, "machine_id",
         "missing value; machine_id is required"),
    _bad("scrap.csv", S, [[T0, "M1", "", "", ""]], 2, "quantity", "missing value; quantity is required"),
    _bad("downtime.csv", D, [["M1", T0, "", "", "", ""]], 2, "time_end", "missing value"),
    # unknown / missing columns
    _bad("scrap.csv", [*S, "Colour"], [[T0, "M1", 1, "", "", "red"]], 1, "Colour",
         "unknown column for scrap_events"),
    _bad("scrap.csv", ["time", "quantity"], [[T0, 1]], 1, "machine_id",
         "required column 'machine_id' is missing"),
    # negative counts, quantities, durations, costs
    _bad("production.csv", P, [[T0, "M1", 5, -2]], 2, "reject_count", "-2 is negative"),
    _bad("scrap.csv", S, [[T0, "M1", -1, "", ""]], 2, "quantity", "-1 is negative"),
    _bad("scrap.csv", S, [[T0, "M1", 1, "", "-3.5"]], 2, "labor_cost", "-3.5 is negative"),
    _bad("downtime.csv", D, [["M1", T0, T0, -5, "", ""]], 2, "duration_min", "-5 is negative"),
    # good > total
    _bad("production.csv", PT, [[T0, "M1", 11, 10]], 2, "good_count",
         "good_count 11 is greater than total_count 10"),
    # interval order and duration
    _bad("downtime.csv", D, [["M1", T1, T0, "", "", ""]], 2, "time_end",
         "time_end 2024-03-01 06:00:00 UTC is before time_start 2024-03-01 07:00:00 UTC"),
    _bad("downtime.csv", D, [["M1", T0, T1, 58.5, "", ""]], 2, "duration_min",
         "duration_min 58.5 disagrees with time_end − time_start (60.0 min)"),
    # time zones
    _bad("scrap.csv", S, [["2024-03-01 06:00", "M1", 1, "", ""]], 2, "time", "has no time zone"),
    _bad("downtime.csv", D, [["M1", "2024-10-27 02:30", "2024-10-27 04:00", "", "", ""]], 2, "time_start",
         "local time '2024-10-27 02:30' occurs twice in Europe/Berlin", timezone="Europe/Berlin"),
    _bad("production.csv", P, [["2024-03-31 02:30", "M1", 1, 0]], 2, "time",
         "local time '2024-03-31 02:30' does not exist in Europe/Berlin", timezone="Europe/Berlin"),
    # duplicates
    _bad("scrap.csv", S, [[T0, "M1", 1, "", ""], [T1, "M1", 1, "", ""], [T0, "M1", 2, "", ""]],
         4, "machine_id, time", "duplicate: rows 2 and 4 have the same"),
    # references
    _bad("downtime.csv", D, [["M1", T0, T1, "", "XX-99", ""]], 2, "reason_code",
         "unknown reason code 'XX-99'"),
    _bad("downtime.csv", D, [["M1", T0, T1, "", "pm", ""]], 2, "reason_code",
         "unknown reason code 'pm' (did you mean 'PM'?)"),
    _bad("production.csv", P, [[T0, "M7", 1, 0]], 2, "machine_id", "unknown machine 'M7'"),
    _bad("downtime.csv", D, [["M1", T0, T1, "", "PM", "no"]], 2, "planned",
         "planned 'no' contradicts the reason_codes table"),
    # vocabularies
    _bad("production.csv", [*P, "event_type"], [[T0, "M1", 1, 0, "shift"]], 2, "event_type",
         "unknown event_type 'shift'"),
    # columns the importer fills
    _bad("scrap.csv", [*S, "event_id"], [[T0, "M1", 1, "", "", "abc"]], 1, "event_id",
         "filled by the importer"),
]


@pytest.mark.parametrize(("name", "header", "rows", "row", "column", "fragment", "kw"), BAD_CASES)
def test_bad_file_is_rejected_whole(seeded, csv_file, name, header, rows, row, column, fragment, kw):
    path = csv_file(name, header, rows)
    before = snapshot(seeded)

    with pytest.raises(ValidationError) as err:
        import_file(path, seeded, **kw)

    message = str(err.value)
    assert name in message
    assert f"row {row}" in message
    assert f"column '{column}'" in message
    assert fragment in message
    assert "rejected as a whole and nothing was written" in message
    assert any(p.row == row and p.column == column and fragment in p.message for p in err.value.problems)
    assert all(p.file == name for p in err.value.problems)
    assert snapshot(seeded) == before


def test_no_zone_message_says_how_to_fix(seeded, csv_file):
    path = csv_file("scrap.csv", S, [["2024-03-01 06:00", "M1", 1, "", ""]])
    with pytest.raises(ValidationError) as err:
        import_file(path, seeded)
    assert "add an offset" in str(err.value)
    assert 'timezone="Europe/Berlin"' in str(err.value)


def test_duplicates_name_both_rows(seeded, csv_file):
    path = csv_file("downtime.csv", D, [["M1", T0, T1, "", "", ""], ["M2", T0, T1, "", "", ""],
                                        ["M1", T0, "2024-03-01 06:30Z", "", "", ""]])
    with pytest.raises(ValidationError) as err:
        import_file(path, seeded)
    rows = sorted(p.row for p in err.value.problems)
    assert rows == [2, 4]
    assert all("rows 2 and 4" in p.message for p in err.value.problems)


def test_every_problem_is_listed(seeded, csv_file):
    rows = [["2024-03-01 00:00Z", "M1", 1, "", ""]]
    rows += [[f"2024-03-01 {h:02d}:00Z", "M1", -h, "", ""] for h in range(1, 24)]
    rows.append(["2024-03-02 00:00Z", "M9", "x", "y", ""])
    path = csv_file("scrap.csv", S, rows)
    with pytest.raises(ValidationError) as err:
        import_file(path, seeded)
    problems = err.value.problems
    assert len(problems) == 23 + 3
    assert [p.row for p in problems[:23]] == list(range(3, 26))
    assert {(p.row, p.column) for p in problems[23:]} == {
        (26, "machine_id"), (26, "quantity"), (26, "material_cost")}
    assert "… and 6 more problem(s)" in str(err.value)
    assert seeded.count("scrap_events") == 0


def test_total_good_and_reject_must_agree(seeded, csv_file):
    path = csv_file("production.csv", [*P, "total_count"], [[T0, "M1", 8, 1, 10]])
    with pytest.raises(ValidationError, match=r"row 2, column 'reject_count'.*is not total_count 10"):
        import_file(path, seeded)


def test_unknown_column_names_it_and_lists_the_columns(seeded, csv_file):
    path = csv_file("scrap.csv", ["time", "machine", "quantity"], [[T0, "M1", 1]])
    with pytest.raises(ValidationError) as err:
        import_file(path, seeded)
    message = str(err.value)
    assert "column 'machine'" in message
    assert "did you mean 'machine_id'?" in message
    assert "time, machine_id, part_number, work_order, quantity" in message


def test_ragged_csv_row(seeded, tmp_path):
    path = tmp_path / "scrap.csv"
    path.write_text(f"time,machine_id,quantity\n{T0},M1,1\n{T1},M1,1,2\n")
    with pytest.raises(ValidationError, match=r"scrap.csv, row 3: row has 4 cells but the header has 3"):
        import_file(path, seeded)


def test_header_problems_are_in_row_1(seeded, tmp_path):
    path = tmp_path / "production.csv"
    path.write_text("Time,Machine ID,Good Count,good-count,,\n2024-03-01 06:00Z,M1,1,1,x,\n")
    with pytest.raises(ValidationError) as err:
        import_file(path, seeded)
    assert [(p.row, p.column) for p in err.value.problems] == [(1, "good-count"), (1, "E")]
    assert "appears twice (columns C and D)" in str(err.value)
    assert "column has values but no header" in str(err.value)


def test_missing_empty_and_header_only_files(seeded, tmp_path):
    with pytest.raises(ValidationError, match="no such file"):
        import_file(tmp_path / "scrap.csv", seeded)
    (tmp_path / "scrap.csv").write_text("")
    with pytest.raises(ValidationError, match="scrap.csv: the file is empty"):
        import_file(tmp_path / "scrap.csv", seeded)
    (tmp_path / "scrap.csv").write_text("time,machine_id,quantity\n")
    assert import_file(tmp_path / "scrap.csv", seeded) == ImportResult(
        tmp_path / "scrap.csv", "scrap_events", 0, 0, 0)


def test_bad_timezone_name(seeded, csv_file):
    path = csv_file("scrap.csv", S, [[T0, "M1", 1, "", ""]])
    with pytest.raises(ValidationError, match="unknown time zone 'Europe/Berln'"):
        import_file(path, seeded, timezone="Europe/Berln")


def test_bad_xlsx_cells_are_located(seeded, xlsx_file):
    rows = [["M1", dt.datetime(2024, 3, 1, 6), dt.datetime(2024, 3, 1, 7), 60, None, None],
            ["M1", dt.datetime(2024, 3, 1, 8), dt.datetime(2024, 3, 1, 9), "sixty", None, None]]
    path = xlsx_file("downtime.xlsx", D, rows)
    before = snapshot(seeded)
    with pytest.raises(ValidationError, match=r"downtime.xlsx, row 3, column 'duration_min': cannot read "
                       r"'sixty' as a number"):
        import_file(path, seeded, timezone="Europe/Berlin")
    assert snapshot(seeded) == before


# ---------------------------------------------------------------------------------------------
# validate_frame without I/O


def test_validate_frame_returns_rows_and_problems_per_row():
    frame = pd.DataFrame({
        "time": [T0, T1, "2024-03-01 08:00Z", "nope"],
        "machine_id": ["M1", "M1", "M2", "M1"],
        "quantity": [1, -2, 3, 4],
    })
    table, problems = validate_frame("scrap_events", frame, file="topic/scrap", source="mqtt",
                                     known_machines=["M1", "M2"])
    assert isinstance(table, pa.Table)
    assert table.schema.field("time").type == pa.timestamp("us", tz="UTC")
    assert table.num_rows == 4
    assert [(p.row, p.column) for p in problems] == [(3, "quantity"), (5, "time")]
    good, bad, by_row = split_rows(table, problems)
    assert good.num_rows == 2
    assert good.column("quantity").to_pylist() == [1, 3]
    assert bad.num_rows == 2
    assert sorted(by_row) == [3, 5]
    assert good.column("event_id").null_count == 0


def test_validate_frame_row_numbers_and_stream_source():
    frame = pd.DataFrame({"time": [T0, T1], "machine_id": ["M1", "M1"], "quantity": [1, 1],
                          "source": ["opcua", ""]})
    _, problems = validate_frame("scrap_events", frame, rows=[101, 102], header_row=None)
    assert [(p.row, p.column, p.message) for p in problems] == [
        (102, "source", "missing value; source is required")]


def test_validate_frame_unknown_column_rejects_whole_batch_on_split():
    frame = pd.DataFrame({"time": [T0], "machine_id": ["M1"], "quantity": [1], "extra": [1]})
    table, problems = validate_frame("scrap_events", frame, source="x", header_row=None)
    good, bad, by_row = split_rows(table, problems)
    assert (good.num_rows, bad.num_rows) == (0, 1)
    assert by_row[2][0].column == "extra"


def test_validate_frame_accepts_typed_columns():
    frame = pd.DataFrame({
        "time": pd.to_datetime(["2024-03-01 06:00", "2024-03-01 07:00"]).tz_localize("Europe/Berlin"),
        "machine_id": ["M1", "M1"], "good_count": np.array([5, 6]), "reject_count": [0.0, 1.0],
    })
    table, problems = validate_frame("production_events", frame, source="test")
    assert problems == []
    assert table.column("time").to_pylist() == [dt.datetime(2024, 3, 1, 5, tzinfo=UTC),
                                                dt.datetime(2024, 3, 1, 6, tzinfo=UTC)]
    assert table.column("reject_count").to_pylist() == [0, 1]


def test_validate_frame_derives_good_from_total_and_rejects():
    frame = pd.DataFrame({"time": [T0, T1], "machine_id": ["M1", "M1"], "total_count": [10, 10],
                          "reject_count": [2, ""]})
    table, problems = validate_frame("production_events", frame, source="test")
    assert [(p.row, p.column) for p in problems] == [(3, "good_count")]  # total alone is not enough
    assert table.column("good_count").to_pylist()[0] == 8
