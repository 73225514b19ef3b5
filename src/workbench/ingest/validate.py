"""Normalise and validate one batch of rows for a canonical table, without any I/O.

:func:`validate_frame` is the whole check of the history importer and is meant to be reused by
streaming connectors: it returns the normalised rows *and* the problems, each located by row, so a
file import can reject the whole file (see :mod:`workbench.ingest`) while a stream can keep the
good rows and send the bad ones to ``dead_letters`` (:func:`split_rows`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from difflib import get_close_matches
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa

from workbench import schema
from workbench.errors import Problem, SchemaError, ValidationError
from workbench.ingest.parse import (
    Parsed,
    parse_bool,
    parse_date,
    parse_integer,
    parse_number,
    parse_text,
    parse_timestamp,
)
from workbench.ingest.rules import (
    Batch,
    check_downtime_duration,
    check_duplicates,
    check_enums,
    check_intervals,
    check_machines,
    check_reason_codes,
    check_required_values,
    check_signs,
    derive_production_counts,
)

#: Input-only columns a table accepts besides its canonical ones (they are used, then dropped).
EXTRA_COLUMNS: dict[str, dict[str, schema.ColumnType]] = {
    # Shop-floor sheets often count "made" and "good"; rejects are the difference.
    "production_events": {"total_count": "int"},
}

#: Values of a required column that is absent from the input altogether.
DEFAULTS: dict[str, dict[str, str]] = {
    # A history sheet of counts per hour or shift has no event type column: its rows are counts.
    "production_events": {"event_type": "count"},
}

#: Columns the caller fills when it passes ``source=`` (a file import): never read from input.
FILLED_BY_IMPORTER = ("source", "event_id")

_HEADER_SEP = re.compile(r"[\s\-]+")


def canonical_header(name: object) -> str:
    """Normalise a column header: case-insensitive, spaces and dashes become underscores."""
    text = "" if name is None or (isinstance(name, float) and np.isnan(name)) else str(name)
    return re.sub(r"_+", "_", _HEADER_SEP.sub("_", text.strip().lower())).strip("_")


def column_letter(position: int) -> str:
    """Spreadsheet letter of a 0-based column position (0 → A, 26 → AA)."""
    letters = ""
    n = position + 1
    while n:
        n, rem = divmod(n - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def resolve_timezone(timezone: str | ZoneInfo | None) -> ZoneInfo | None:
    """Return the zone for ``timezone`` (an IANA name or a ZoneInfo).

    Raises
    ------
    ValidationError
        If the name is not a known IANA zone.
    """
    if timezone is None or isinstance(timezone, ZoneInfo):
        return timezone
    try:
        return ZoneInfo(str(timezone))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"unknown time zone {timezone!r}; use an IANA name such as "
                              "'Europe/Berlin' or 'America/Chicago'") from None


def _to_pandas(frame: pd.DataFrame | pl.DataFrame | pa.Table) -> pd.DataFrame:
    if isinstance(frame, pd.DataFrame):
        return frame
    if isinstance(frame, pl.DataFrame | pa.Table):
        return frame.to_pandas()
    raise SchemaError(f"expected a pandas, polars or Arrow frame, got {type(frame).__name__}")


def validate_frame(
    table_name: str,
    frame: pd.DataFrame | pl.DataFrame | pa.Table,
    *,
    file: str | None = None,
    timezone: str | ZoneInfo | None = None,
    known_machines: Iterable[str] | None = None,
    known_reason_codes: pd.DataFrame | Iterable[str] | None = None,
    source: str | None = None,
    rows: Sequence[int] | None = None,
    header_row: int | None = 1,
    decimal: str = ".",
) -> tuple[pa.Table, list[Problem]]:
    """Normalise raw rows to a canonical table and find every problem in them.

    Parameters
    ----------
    table_name : str
        Canonical table (see :mod:`workbench.schema`).
    frame : pandas.DataFrame, polars.DataFrame or pyarrow.Table
        Raw rows: headers are matched to canonical columns case-insensitively, with spaces and
        dashes read as underscores; cells may be strings (as read from CSV) or typed values.
    file : str, optional
        Name to locate problems by (a file name, a topic, a connector).
    timezone : str or ZoneInfo, optional
        Zone of timestamps written without an offset. Without it such timestamps are problems;
        with it, a local time that is ambiguous or nonexistent because of DST is a problem.
    known_machines : iterable of str, optional
        Machine ids of the warehouse; when non-empty, any other ``machine_id`` is a problem.
    known_reason_codes : pandas.DataFrame or iterable of str, optional
        The warehouse's reason codes; when non-empty, any other ``reason_code`` is a problem.
        A frame with ``code``, ``category`` and ``planned`` also fills ``reason_category`` and
        ``planned`` of downtime rows (and a value that contradicts the taxonomy is a problem).
    source : str, optional
        Fill ``source`` with this value and compute ``event_id`` (an input column of either
        name is then a problem). Without it the input must carry ``source``; ``event_id`` is
        kept where given and computed where missing.
    rows : sequence of int, optional
        The row number to report for each input row (default: position + 2, i.e. the row a
        spreadsheet shows under a header in row 1).
    header_row : int or None
        Row number of column problems (unknown, missing, duplicate headers); ``None`` for input
        without a header row, e.g. a message stream.
    decimal : {".", ","}
        Decimal mark of numbers written as text (``","`` also accepts a point).

    Returns
    -------
    table : pyarrow.Table
        Every input row, in input order, conformed to the canonical schema (columns, types,
        timestamps UTC, ``event_id``). Cells that did not parse are null; values that broke a
        rule (a negative count, an unknown machine) are kept as read.
    problems : list of Problem
        Every problem found, sorted by row; empty when the batch is clean. Use
        :func:`split_rows` to separate good from bad rows.

    Raises
    ------
    workbench.errors.SchemaError
        If ``table_name`` is not a canonical table or ``frame`` is not a frame.
    ValidationError
        If ``timezone`` is not a known zone or ``rows`` does not match the frame's length.
    """
    tbl = schema.table(table_name)
    tz = resolve_timezone(timezone)
    df = _to_pandas(frame).reset_index(drop=True)
    row_numbers = np.arange(len(df)) + 2 if rows is None else np.asarray(rows, dtype=np.int64)
    if len(row_numbers) != len(df):
        raise ValidationError(f"rows has {len(row_numbers)} entries for {len(df)} input rows")
    batch = Batch(tbl, file, row_numbers, tz, decimal)

    _match_columns(batch, df, source=source, header_row=header_row)
    for name in batch.raw:
        _parse_column(batch, name)
    _apply_defaults(batch, source)
    check_required_values(batch)
    check_signs(batch)
    check_enums(batch)
    check_intervals(batch)
    if tbl.name == "production_events":
        derive_production_counts(batch)
    if tbl.name == "downtime_events":
        check_downtime_duration(batch)
    check_machines(batch, known_machines)
    check_reason_codes(batch, known_reason_codes)
    check_duplicates(batch)

    order = {c.name: i for i, c in enumerate(tbl.columns)}
    batch.problems.sort(key=lambda p: (p.row if p.row is not None else 0,
                                       order.get(p.column or "", len(order))))
    return _to_arrow(batch), batch.problems


def split_rows(
    table: pa.Table, problems: Sequence[Problem], *, rows: Sequence[int] | None = None,
) -> tuple[pa.Table, pa.Table, dict[int, list[Problem]]]:
    """Separate the rows of a :func:`validate_frame` result that have problems from those without.

    Parameters
    ----------
    table : pyarrow.Table
        The table :func:`validate_frame` returned.
    problems : sequence of Problem
        Its problems.
    rows : sequence of int, optional
        The ``rows`` given to :func:`validate_frame` (default: position + 2).

    Returns
    -------
    good : pyarrow.Table
        Rows without a problem (none at all if a problem concerns the whole batch, e.g. an
        unknown column).
    bad : pyarrow.Table
        The other rows.
    by_row : dict of int to list of Problem
        Problems of each bad row, keyed by row number (what a dead letter records as reason).
    """
    numbers = np.arange(table.num_rows) + 2 if rows is None else np.asarray(rows, dtype=np.int64)
    position = {int(r): i for i, r in enumerate(numbers)}
    by_row: dict[int, list[Problem]] = {}
    batch_wide: list[Problem] = []
    for p in problems:
        if p.row is None or p.row not in position:
            batch_wide.append(p)
        else:
            by_row.setdefault(p.row, []).append(p)
    if batch_wide:
        # A problem with the batch itself (e.g. an unknown column) concerns every row.
        by_row = {int(r): batch_wide + by_row.get(int(r), []) for r in numbers}
    bad_mask = np.isin(numbers, list(by_row))
    return (table.filter(pa.array(~bad_mask)), table.filter(pa.array(bad_mask)), by_row)


# ---------------------------------------------------------------------------------------------
# columns


def _accepted_columns(tbl: schema.Table, source: str | None) -> list[str]:
    filled = FILLED_BY_IMPORTER if source is not None else ()
    return [c for c in tbl.column_names if c not in filled] + list(EXTRA_COLUMNS.get(tbl.name, {}))


def _match_columns(batch: Batch, df: pd.DataFrame, *, source: str | None, header_row: int | None) -> None:
    tbl = batch.tbl
    accepted = _accepted_columns(tbl, source)
    seen: dict[str, int] = {}
    choices = ", ".join(accepted)
    for pos, header in enumerate(df.columns):
        name = canonical_header(header)
        col = df.iloc[:, pos]
        if not name:
            if parse_text(col).blank.all():
                continue  # a formatted but empty spreadsheet column
            batch.header(column_letter(pos), "column has values but no header; name it or delete it",
                         row=header_row)
            continue
        if name in seen:
            batch.header(str(header), f"column '{name}' appears twice (columns {column_letter(seen[name])} "
                         f"and {column_letter(pos)}); keep one", row=header_row)
            continue
        seen[name] = pos
        if source is not None and name in FILLED_BY_IMPORTER:
            batch.header(str(header), f"column '{name}' is filled by the importer; remove it from the "
                         "input", row=header_row)
            continue
        if name not in accepted:
            hint = get_close_matches(name, accepted, n=1)
            batch.header(str(header), f"unknown column for {tbl.name}"
                         + (f" (did you mean '{hint[0]}'?)" if hint else "")
                         + f"; its columns are: {choices}", row=header_row)
            continue
        batch.raw[name] = col
    optional = set(DEFAULTS.get(tbl.name, {}))
    if tbl.name == "downtime_events":
        optional.add("duration_min")  # computed from time_start and time_end
    skip = set(FILLED_BY_IMPORTER) if source is not None else {"event_id"}
    for name in tbl.required:
        if name not in batch.raw and name not in optional and name not in skip:
            batch.header(name, f"required column '{name}' is missing; {tbl.name} needs "
                         f"{', '.join(c for c in tbl.required if c not in skip)}", row=header_row)


def _column_type(tbl: schema.Table, name: str) -> schema.ColumnType:
    extra = EXTRA_COLUMNS.get(tbl.name, {})
    return extra[name] if name in extra else tbl.column(name).type


_EXAMPLES = {
    "timestamp": "write ISO 8601, e.g. 2024-03-01 06:00:00+01:00",
    "date": "write ISO 8601, e.g. 2024-03-01",
}


def _parse_column(batch: Batch, name: str) -> None:
    raw = batch.raw[name]
    kind = _column_type(batch.tbl, name)
    if kind in ("text", "json"):
        parsed = parse_text(raw)
    elif kind == "double":
        parsed = parse_number(raw, decimal=batch.decimal)
    elif kind in ("int", "bigint"):
        parsed = parse_integer(raw, kind=kind, decimal=batch.decimal)
    elif kind == "bool":
        parsed = parse_bool(raw)
    elif kind == "date":
        parsed = parse_date(raw)
    else:
        parsed = parse_timestamp(raw, timezone=batch.tz)
    batch.parsed[name] = parsed
    batch.bad[name] = np.zeros(batch.n, dtype=bool)
    show = lambda i: repr(batch.shown(name, i))
    if kind == "double":
        batch.flag(parsed.bad, name, lambda i: f"cannot read {show(i)} as a number")
    elif kind in ("int", "bigint"):
        fraction, too_big = parsed.flags["fraction"], parsed.flags["range"]
        batch.flag(parsed.bad & ~fraction & ~too_big, name,
                   lambda i: f"cannot read {show(i)} as a whole number")
        batch.flag(fraction, name, lambda i: f"{show(i)} is not a whole number")
        batch.flag(too_big, name, lambda i: f"{show(i)} is too large for an integer column")
    elif kind == "bool":
        batch.flag(parsed.bad, name, lambda i: f"cannot read {show(i)} as a boolean; "
                   "use true/false, yes/no or 1/0")
    elif kind == "date":
        batch.flag(parsed.bad, name, lambda i: f"cannot read {show(i)} as a date; {_EXAMPLES['date']}")
    elif kind == "timestamptz":
        batch.flag(parsed.bad, name,
                   lambda i: f"cannot read {show(i)} as a timestamp; {_EXAMPLES['timestamp']}")
        batch.flag(parsed.flags["no_zone"], name, lambda i: (
            f"timestamp {show(i)} has no time zone; add an offset (e.g. 2024-03-01 06:00:00+01:00) "
            "or pass timezone=\"Europe/Berlin\" (the plant's IANA zone) to read local times"))
        zone = str(batch.tz)
        batch.flag(parsed.flags["ambiguous"], name, lambda i: (
            f"local time {show(i)} occurs twice in {zone} (clocks go back at the end of daylight "
            "saving time); write it with its UTC offset"))
        batch.flag(parsed.flags["nonexistent"], name, lambda i: (
            f"local time {show(i)} does not exist in {zone} (clocks skip it when daylight saving "
            "time starts); correct it or write it with its UTC offset"))


def _apply_defaults(batch: Batch, source: str | None) -> None:
    fills = dict(DEFAULTS.get(batch.tbl.name, {}))
    if source is not None:
        fills["source"] = source
    for name, value in fills.items():
        if name in batch.parsed:
            continue
        series = pd.Series([value] * batch.n, dtype=object)
        batch.raw[name] = series
        batch.parsed[name] = Parsed(series, np.zeros(batch.n, dtype=bool), np.zeros(batch.n, dtype=bool))
        batch.bad[name] = np.zeros(batch.n, dtype=bool)


# ---------------------------------------------------------------------------------------------
# output


def _to_arrow(batch: Batch) -> pa.Table:
    tbl = batch.tbl
    arrays = []
    for col in tbl.columns:
        if col.name not in batch.parsed:
            arrays.append(pa.nulls(batch.n, col.arrow_type))
            continue
        values = batch.values(col.name)
        # Only cells that did not parse are null: a value that broke a rule is kept as read, so
        # a caller splitting good from bad rows still sees what the bad rows said.
        null = values.isna().to_numpy(dtype=bool)
        if col.type in ("text", "json"):
            arrays.append(pa.array(values.astype(object).where(~null, None).tolist(), type=pa.string()))
        elif col.type == "date":
            arrays.append(pa.array(values.astype(object).where(~null, None).tolist(), type=pa.date32()))
        elif col.type == "timestamptz":
            arrays.append(pa.array(values, type=col.arrow_type, from_pandas=True))
        elif col.type == "bool":
            data = values.astype("boolean").to_numpy(dtype=bool, na_value=False)
            arrays.append(pa.array(data, mask=null, type=pa.bool_()))
        elif col.type == "double":
            data = values.astype("float64").to_numpy(dtype="float64", na_value=np.nan)
            arrays.append(pa.array(data, mask=null, type=pa.float64()))
        else:
            data = values.astype("Int64").to_numpy(dtype="int64", na_value=0)
            arrays.append(pa.array(data, mask=null, type=pa.int64()).cast(col.arrow_type))
    data = pa.Table.from_arrays(arrays, schema=pa.schema([pa.field(c.name, c.arrow_type)
                                                          for c in tbl.columns]))
    return schema.with_event_ids(tbl, data)
