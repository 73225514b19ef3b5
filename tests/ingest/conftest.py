"""Fixtures of the history-import tests: a seeded DuckDB warehouse and file writers."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from workbench.store import Warehouse

MACHINES = ["M1", "M2", "M3"]

# A slice of the plant's agreed taxonomy (DESIGN.md, "Downtime taxonomy").
REASON_CODES = [
    ("MECH-BRG", "Mechanical Failure", "bearing", False),
    ("TOOL-BRK", "Tooling", "tool break", False),
    ("CO-SETUP", "Changeover", "setup", False),
    ("PM", "Scheduled Maintenance", "PM", True),
    ("NO-ORDER", "No Demand", "no order", True),
]


@pytest.fixture
def empty_warehouse(warehouse: Warehouse) -> Warehouse:
    """An initialised warehouse with no rows, on each engine (tests/conftest.py)."""
    return warehouse


@pytest.fixture
def seeded(empty_warehouse: Warehouse) -> Warehouse:
    """A warehouse seeded with three machines and a few reason codes."""
    empty_warehouse.write("machines", pd.DataFrame({
        "machine_id": MACHINES, "name": ["Lathe 1", "Lathe 2", "Mill 1"], "line": ["L1", "L1", "L2"],
        "source": "seed",
    }))
    empty_warehouse.write("reason_codes", pd.DataFrame(
        REASON_CODES, columns=["code", "category", "subcode", "planned"]).assign(source="seed"))
    return empty_warehouse


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]], *,
              delimiter: str = ",") -> Path:
    """Write a small CSV file the way a spreadsheet exports it."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_xlsx(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]], *,
               sheet: str = "Sheet1", extra_sheets: dict[str, list[list[object]]] | None = None) -> Path:
    """Write a small workbook with typed cells (datetimes stay datetimes, numbers numbers)."""
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = sheet
    ws.append(list(header))
    for row in rows:
        ws.append(list(row))
    for name, cells in (extra_sheets or {}).items():
        other = book.create_sheet(name)
        for row in cells:
            other.append(row)
    book.save(path)
    return path


@pytest.fixture
def csv_file(tmp_path: Path) -> Callable[..., Path]:
    """``csv_file(name, header, rows)`` writes ``tmp_path / name``."""
    return lambda name, header, rows, **kw: write_csv(tmp_path / name, header, rows, **kw)


@pytest.fixture
def xlsx_file(tmp_path: Path) -> Callable[..., Path]:
    """``xlsx_file(name, header, rows)`` writes ``tmp_path / name``."""
    return lambda name, header, rows, **kw: write_xlsx(tmp_path / name, header, rows, **kw)
