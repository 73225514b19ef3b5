"""Ingest: normalise → validate → idempotent write.

The first weeks of a plant usually come from spreadsheets: :func:`import_file` loads one CSV or
Excel file of production, downtime or scrap history (or master data: machines, parts,
part_rates, reason_codes, work_orders, …) into its canonical table.

Policy
------
**A file with any bad row is rejected as a whole and nothing is written.** The
:class:`~workbench.errors.ValidationError` lists *every* problem, each with the file, the row
number as a spreadsheet shows it (header = row 1, first data row = 2) and the column, so one
round of corrections is enough. Validation happens entirely before the single write, and the
write is idempotent: re-importing the same file leaves the warehouse unchanged.

What is checked (see :func:`validate_frame`):

* headers: matched case-insensitively, spaces and dashes read as underscores; an unknown column,
  a missing required column or a column given twice is an error;
* cells: numbers, whole numbers, booleans, dates and timestamps must parse; required cells must
  not be blank; counts, quantities, durations and costs must not be negative;
* timestamps: ISO 8601; without an offset they are local times and need ``timezone=`` (the
  plant's IANA zone, e.g. ``"Europe/Berlin"``); a local time that is ambiguous or nonexistent
  because of DST is an error naming the row, never guessed. Stored as UTC;
* production: ``total_count`` may replace ``reject_count`` (reject = total − good; good may not
  exceed total); a missing ``event_type`` column means ``count`` rows;
* intervals: ``time_end`` not before ``time_start``; a downtime ``duration_min`` must agree with
  end − start within 1 minute, and is computed when absent;
* duplicates: two rows with the same natural key (both rows are named);
* references: machine ids and reason codes must exist in the warehouse's ``machines`` and
  ``reason_codes`` tables (when those have rows); downtime rows with a known code get their
  ``reason_category`` and ``planned`` from ``reason_codes``.

``source`` and ``event_id`` are filled by the importer. Streaming connectors reuse
:func:`validate_frame` and :func:`split_rows` to keep good rows and dead-letter the bad ones
instead of rejecting a whole batch.
"""

from __future__ import annotations

from workbench.ingest.files import (
    IMPORTABLE,
    POLICY,
    ImportResult,
    RawSheet,
    import_file,
    read_sheet,
    table_for_file,
)
from workbench.ingest.validate import canonical_header, split_rows, validate_frame

__all__ = [
    "IMPORTABLE",
    "POLICY",
    "ImportResult",
    "RawSheet",
    "canonical_header",
    "import_file",
    "read_sheet",
    "split_rows",
    "table_for_file",
    "validate_frame",
]
