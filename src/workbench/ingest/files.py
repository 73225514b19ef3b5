"""History import from CSV and Excel files: read → :func:`validate_frame` → one write.

Policy: a file with any bad row is rejected as a whole and nothing is written. The
:class:`~workbench.errors.ValidationError` lists every problem with the file, the row number as
a spreadsheet shows it (header = row 1, first data row = 2) and the column. Validation happens
entirely before the single ``warehouse.write`` call, which is idempotent: importing the same file
again changes nothing.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from workbench import schema
from workbench.errors import Problem, ValidationError
from workbench.ingest.validate import resolve_timezone, validate_frame

if TYPE_CHECKING:
    from workbench.store import Warehouse

#: Table of a file whose name starts with one of these words (checked after exact table names).
FILE_PREFIXES: dict[str, str] = {
    "production": "production_events",
    "downtime": "downtime_events",
    "scrap": "scrap_events",
}

#: Tables a file may be imported into: master data and facts, not derived or operational tables.
IMPORTABLE = tuple(t.name for t in schema.tables(["dimension", "fact"]))

POLICY = ("the file was rejected as a whole and nothing was written; fix every problem listed "
          "and import the file again")

_DELIMITERS = (",", ";", "\t", "|")
_EXCEL_SUFFIXES = (".xlsx", ".xlsm")


@dataclass(frozen=True)
class ImportResult:
    """What one :func:`import_file` did.

    Attributes
    ----------
    path : Path
        The file imported.
    table : str
        Canonical table written.
    rows_read : int
        Data rows in the file (blank lines not counted).
    rows_written : int
        Rows inserted, or updated because their content changed.
    rows_unchanged : int
        Rows already stored with the same content (a re-import).
    """

    path: Path
    table: str
    rows_read: int
    rows_written: int
    rows_unchanged: int


@dataclass(frozen=True)
class RawSheet:
    """Cells of one CSV file or worksheet, as read.

    Attributes
    ----------
    frame : pandas.DataFrame
        One column per header cell (headers as written), object cells: strings from CSV, typed
        values from Excel. Entirely blank rows are dropped.
    rows : numpy.ndarray
        Row number of each frame row as a spreadsheet shows it (header = 1).
    label : str
        How problems name the file (file name, plus the sheet of a workbook with several).
    decimal : str
        Decimal mark of numbers written as text (``","`` for semicolon-separated CSV).
    sheet : str or None
        The worksheet read, for workbooks.
    """

    frame: pd.DataFrame
    rows: np.ndarray
    label: str
    decimal: str = "."
    sheet: str | None = None


def table_for_file(path: str | Path, *, table: str | None = None) -> schema.Table:
    """The canonical table a file is imported into.

    ``table`` wins; otherwise the file name decides: a stem equal to a table name (or starting with
    one followed by ``_``, ``-``, ``.`` or a space), or starting with ``production``, ``downtime``
    or ``scrap``.

    Raises
    ------
    ValidationError
        If neither says which table; the message lists the choices.
    """
    path = Path(path)
    choices = (f"pass table= with one of: {', '.join(IMPORTABLE)}; or name the file after the table "
               "(production*.csv, downtime*.xlsx, scrap*.csv, machines.csv, …)")
    if table is not None:
        if table not in IMPORTABLE:
            raise ValidationError(f"{path.name}: cannot import into table {table!r}; {choices}")
        return schema.table(table)
    stem = path.stem.strip().lower()
    for name in sorted(IMPORTABLE, key=len, reverse=True):
        if stem == name or re.match(re.escape(name) + r"[_\-. ]", stem):
            return schema.table(name)
    for prefix, name in FILE_PREFIXES.items():
        if stem.startswith(prefix):
            return schema.table(name)
    raise ValidationError(f"{path.name}: cannot tell which table this file holds from its name; {choices}")


def read_sheet(path: str | Path, *, sheet: str | None = None) -> RawSheet:
    """Read a CSV or Excel file into raw cells with their spreadsheet row numbers.

    CSV: UTF-8 (with or without BOM), falling back to Windows-1252; the delimiter (``,``, ``;``,
    tab or ``|``) is the one the header line uses most; with ``;`` the decimal mark is a comma.
    Excel (.xlsx): the worksheet ``sheet`` (default: the first), cached values of formulas.

    Raises
    ------
    ValidationError
        If the file is missing, unreadable, empty, or a row has more cells than the header.
    """
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in _EXCEL_SUFFIXES:
        return _read_excel(path, sheet)
    if suffix in (".csv", ".txt", ".tsv"):
        if sheet is not None:
            raise ValidationError(f"{path.name}: sheet={sheet!r} only applies to Excel files")
        return _read_csv(path)
    raise ValidationError(f"{path.name}: cannot read {suffix or 'files without an extension'}; "
                          "use .csv or .xlsx (save .xls workbooks as .xlsx first)")


def _read_csv(path: Path) -> RawSheet:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Excel's plain "CSV" export on Windows is cp1252, not UTF-8.
        text = raw.decode("cp1252", errors="replace")
    first = text.split("\n", 1)[0]
    delimiter = max(_DELIMITERS, key=first.count) if any(d in first for d in _DELIMITERS) else ","
    records = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    if not records:
        raise ValidationError(f"{path.name}: the file is empty; the first row must hold the column names")
    header, body = records[0], records[1:]
    width = len(header)
    problems = [Problem(f"row has {len(r)} cells but the header has {width}; check for an unquoted "
                        f"'{delimiter}' inside a value", file=path.name, row=i + 2)
                for i, r in enumerate(body) if len(r) > width and any(c.strip() for c in r[width:])]
    if problems:
        raise ValidationError(f"{path.name}: {len(problems)} row(s) do not fit the header; {POLICY}",
                              problems)
    body = [r[:width] + [""] * (width - len(r)) for r in body]
    frame = pd.DataFrame(body, columns=range(width), dtype=object)
    frame.columns = pd.Index(header, dtype=object)
    return _drop_blank_rows(frame, np.arange(len(body)) + 2, path.name,
                            decimal="," if delimiter == ";" else ".")


def _read_excel(path: Path, sheet: str | None) -> RawSheet:
    import openpyxl  # local: only Excel imports need it

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many unrelated types for a damaged file
        raise ValidationError(f"{path.name}: cannot open as an Excel workbook: {exc}") from None
    try:
        names = book.sheetnames
        if sheet is None:
            ws = book.worksheets[0]
        elif sheet in names:
            ws = book[sheet]
        else:
            raise ValidationError(f"{path.name}: no sheet {sheet!r}; the workbook has: {', '.join(names)}")
        records = [list(r) for r in ws.iter_rows(values_only=True)]
    finally:
        book.close()
    label = path.name if len(names) == 1 else f"{path.name} [{ws.title}]"
    if not records:
        raise ValidationError(f"{label}: the sheet is empty; the first row must hold the column names")
    header = list(records[0])
    while header and header[-1] is None:
        header.pop()
    width = max(len(header), max(len(r) for r in records))
    header += [None] * (width - len(header))
    body = [r + [None] * (width - len(r)) for r in records[1:]]
    frame = pd.DataFrame(body, columns=range(width), dtype=object)
    frame.columns = pd.Index(header, dtype=object)
    return _drop_blank_rows(frame, np.arange(len(body)) + 2, label, decimal=".", sheet=ws.title)


def _drop_blank_rows(frame: pd.DataFrame, rows: np.ndarray, label: str, *, decimal: str,
                     sheet: str | None = None) -> RawSheet:
    blank = frame.map(lambda v: v is None or (isinstance(v, str) and not v.strip())).all(axis=1)
    keep = ~blank.to_numpy(dtype=bool)
    return RawSheet(frame[keep].reset_index(drop=True), rows[keep], label, decimal, sheet)


def _known_machines(warehouse: Warehouse) -> list[str]:
    return [str(m) for m in warehouse.read("machines", columns=["machine_id"])["machine_id"]]


def _known_reason_codes(warehouse: Warehouse) -> pd.DataFrame:
    return warehouse.read("reason_codes", columns=["code", "category", "planned"])


def import_file(
    path: str | Path,
    warehouse: Warehouse,
    *,
    table: str | None = None,
    timezone: str | ZoneInfo | None = None,
    source: str = "import",
    sheet: str | None = None,
) -> ImportResult:
    """Import one CSV or Excel file of history into its canonical table.

    Policy: a file with any bad row is rejected as a whole and nothing is written; the
    :class:`~workbench.errors.ValidationError` lists every problem with the file, the row as a
    spreadsheet shows it (header = row 1) and the column. Importing the same file again is a
    no-op (rows get a deterministic ``event_id`` from their natural key).

    Parameters
    ----------
    path : str or Path
        A ``.csv`` or ``.xlsx`` file whose first row holds column names (canonical names, any
        case, spaces or dashes for underscores). Production files may give ``total_count`` and
        ``good_count`` instead of ``reject_count``; downtime files may leave out ``duration_min``.
    warehouse : Warehouse
        Where to write (see :mod:`workbench.store`); its ``machines`` and ``reason_codes`` tables,
        when not empty, are the allowed machine ids and reason codes.
    table : str, optional
        Canonical table; default from the file name (``production*``, ``downtime*``, ``scrap*``
        or an exact table name).
    timezone : str or ZoneInfo, optional
        IANA zone of timestamps written without an offset, e.g. ``"Europe/Berlin"``. Without it,
        such timestamps are errors. DST-ambiguous or nonexistent local times are always errors.
    source : str
        Value of the ``source`` column (part of every event id: use the same value when
        re-importing a corrected file so its rows replace, not duplicate, the first import).
    sheet : str, optional
        Worksheet of an Excel file (default: the first).

    Returns
    -------
    ImportResult

    Raises
    ------
    ValidationError
        If the file cannot be read or any row is invalid; nothing was written.
    """
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"{path}: no such file")
    tbl = table_for_file(path, table=table)
    tz = resolve_timezone(timezone)
    raw = read_sheet(path, sheet=sheet)
    columns = set(tbl.column_names)
    machines = _known_machines(warehouse) if "machine_id" in columns and tbl.name != "machines" else None
    codes = _known_reason_codes(warehouse) if "reason_code" in columns else None
    data, problems = validate_frame(
        tbl.name, raw.frame, file=raw.label, timezone=tz, known_machines=machines,
        known_reason_codes=codes, source=source, rows=raw.rows.tolist(), decimal=raw.decimal,
    )
    if problems:
        raise ValidationError(f"{raw.label}: {len(problems)} problem(s) in {tbl.name} data; {POLICY}",
                              problems)
    if data.num_rows == 0:
        return ImportResult(path, tbl.name, 0, 0, 0)
    result = warehouse.write(tbl.name, data)
    return ImportResult(path, tbl.name, data.num_rows, result.written, result.unchanged)
