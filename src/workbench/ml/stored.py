"""The models' report sections computed ahead (``ml_sections``) and read back by the report.

The morning model run (``flows/retrain.py``, 04:30) computes the day's three model sections —
likely causes of uncoded stops, anomalies needing a look, the week ahead — exactly as the report's
notebooks would (:mod:`workbench.ml.daily` reads the same tables), and stores each whole
(:meth:`~workbench.ml.records.MLSection.to_payload`) with

* the section's name and the production day's bounds,
* ``params``: every setting the section depends on (thresholds, history, the model version, the
  forecaster's hyperparameters), as canonical JSON,
* ``inputs``: a fingerprint of every row and column of every table it read (:func:`fingerprint`).

A notebook then gets the stored section instead of computing it again only when all three match:
the same day, the same settings and the same data — a stop coded since, a late telemetry batch,
a backfill or another machine selection changes the fingerprint and the notebook computes the
section itself (the page then says nothing was read back). A stored section says when it was
computed in its notes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from typing import Any

import pandas as pd
import pyarrow as pa

from workbench.errors import MLError
from workbench.ml.records import MLSection, plain

#: The table of stored sections.
TABLE = "ml_sections"


def _sql_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _normalized(field: pa.Field) -> str:
    """The column as one canonical SQL type, so that rows read from PostgreSQL and the same rows
    read from a DuckDB extract hash alike (whatever integer width or timestamp unit each gives),
    as Arrow or as a DataFrame (NaN and null alike: pandas turns one into the other)."""
    dtype, name = field.type, _sql_name(field.name)
    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    if pa.types.is_timestamp(dtype):
        return f"epoch_us(CAST({name} AS {'TIMESTAMPTZ' if dtype.tz else 'TIMESTAMP'}))"
    if pa.types.is_boolean(dtype):
        return f"CAST({name} AS INTEGER)"
    if pa.types.is_floating(dtype):
        return f"CASE WHEN isnan({name}) THEN NULL ELSE CAST({name} AS DOUBLE) END"
    if pa.types.is_integer(dtype) or pa.types.is_decimal(dtype):
        return f"CAST({name} AS DOUBLE)"
    return f"CAST({name} AS VARCHAR)"


def _arrow(table: pd.DataFrame | pa.Table) -> pa.Table:
    if isinstance(table, pa.Table):
        return table
    view = table.reset_index(drop=True)
    view.columns = [str(c) for c in view.columns]
    return pa.Table.from_pandas(view, preserve_index=False)


def fingerprint(tables: Mapping[str, pd.DataFrame | pa.Table | None]) -> str:
    """A fingerprint of every row of every table (order-free): equal for the same rows and columns.

    Each table contributes its name, columns, row count and the sum of one hash per row over all
    its columns (computed by DuckDB over Arrow: ~0.07 s for a million telemetry readings). Tables
    read by :func:`workbench.ml.daily.read_many` are hashed as read, without becoming DataFrames;
    a DataFrame of the same rows gives the same fingerprint.

    Returns
    -------
    str
        Hex SHA-256.
    """
    import duckdb

    from workbench.ml.daily import Tables

    parts = []
    con = duckdb.connect()
    try:
        for name in sorted(tables):
            frame = tables.arrow(name) if isinstance(tables, Tables) else tables[name]
            if frame is None:
                parts.append(f"{name}:none")
                continue
            cols = sorted(str(c) for c in frame.columns) if isinstance(frame, pd.DataFrame) else sorted(
                frame.column_names)
            if not len(frame) or not cols:
                parts.append(f"{name}:0:{','.join(cols)}")
                continue
            try:
                # Through Arrow: DuckDB's pandas scan refuses some views (e.g. reversed arrays).
                arrow = _arrow(frame)
                con.register("frame_in", arrow)
                hashed = ", ".join(_normalized(arrow.field(c)) for c in cols)
                n, total = con.execute(f"SELECT count(*), CAST(sum(CAST(hash({hashed}) AS HUGEINT)) "
                                       "AS VARCHAR) FROM frame_in").fetchall()[0]
            except (duckdb.Error, pa.ArrowException):
                # A column DuckDB cannot take (Python objects): pandas hashes its text instead.
                view = frame if isinstance(frame, pd.DataFrame) else frame.to_pandas()
                view = view.reset_index(drop=True)
                view.columns = [str(c) for c in view.columns]
                n = len(view)
                total = str(int(pd.util.hash_pandas_object(view[cols].astype(str), index=False).sum()))
            finally:
                with contextlib.suppress(duckdb.Error):
                    con.unregister("frame_in")
            parts.append(f"{name}:{n}:{total}:{','.join(cols)}")
    finally:
        con.close()
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def canonical_params(params: Mapping[str, Any]) -> str:
    """The settings as canonical JSON (sorted keys, times and dates as ISO text)."""
    return json.dumps({str(k): plain(v) for k, v in params.items()}, sort_keys=True, separators=(",", ":"))


def section_row(name: str, section: MLSection, *, day_start: dt.datetime, day_end: dt.datetime,
                params: Mapping[str, Any], inputs: str, created_at: dt.datetime) -> dict[str, Any]:
    """One ``ml_sections`` row for ``section`` (see the module's description)."""
    return {"section": name, "day_start": pd.Timestamp(day_start).tz_convert("UTC"),
            "day_end": pd.Timestamp(day_end).tz_convert("UTC"), "params": canonical_params(params),
            "inputs": inputs, "status": section.status,
            "created_at": pd.Timestamp(created_at).tz_convert("UTC"),
            "payload": json.dumps(section.to_payload(), separators=(",", ":"))}


def stored_section(stored: pd.DataFrame | None, name: str, *, day_start: dt.datetime, day_end: dt.datetime,
                   params: Mapping[str, Any], inputs: str | None = None,
                   tables: Mapping[str, pd.DataFrame | None] | None = None,
                   tz: str = "UTC") -> MLSection | None:
    """The section stored for this day, these settings and these data, or None.

    Parameters
    ----------
    stored : DataFrame or None
        ``ml_sections`` rows (the notebook reads them for its day).
    name : str
        The section's record name (e.g. :data:`~workbench.ml.records.ANOMALIES_RECORD`).
    day_start, day_end : datetime
        The day's bounds.
    params : mapping
        Every setting the section depends on (as the writer gave them).
    inputs : str, optional
        The inputs' :func:`fingerprint`; computed from ``tables`` when not given.
    tables : mapping of DataFrames, optional
        The tables the section would be computed from.
    tz : str
        Plant time zone, for the note saying when it was computed.

    Returns
    -------
    MLSection or None
        The stored section with a note saying when it was computed; None when nothing stored
        matches (then compute it).
    """
    if stored is None or stored.empty:
        return None
    lo, hi = pd.Timestamp(day_start).tz_convert("UTC"), pd.Timestamp(day_end).tz_convert("UTC")
    match = stored[(stored["section"].astype(str) == name)
                   & (pd.to_datetime(stored["day_start"], utc=True) == lo)
                   & (pd.to_datetime(stored["day_end"], utc=True) == hi)
                   & (stored["params"].astype(str) == canonical_params(params))]
    if match.empty:
        return None
    if inputs is None:
        if tables is None:
            raise MLError("stored_section needs the inputs' fingerprint or the tables")
        inputs = fingerprint(tables)
    match = match[match["inputs"].astype(str) == inputs]
    if match.empty:
        return None
    row = match.sort_values("created_at").iloc[-1]
    payload = row["payload"]
    section = MLSection.from_payload(json.loads(payload) if isinstance(payload, str) else payload)
    when = pd.Timestamp(row["created_at"]).tz_convert(tz)
    note = (f"computed by the model run of {when:%a %d %b %H:%M} on the same data and settings "
            "(nothing has changed since)")
    return MLSection(section.title, section.status, reason=section.reason, confidence=section.confidence,
                     table=section.table, notes=(*section.notes, note), details=section.details,
                     total_rows=section.total_rows)
