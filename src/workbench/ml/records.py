"""How a model's section of the daily report is kept for the e-mail: :class:`MLSection`.

Light on purpose (pandas and numpy only): the report flow reads the sections the notebooks kept
(``nb.record``) and the e-mail draws them, without importing scikit-learn, MLflow or Prophet.
The sections themselves are computed in :mod:`workbench.ml.sections`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import MLError

#: Names under which the notebooks keep their sections (``nb.record``) for the e-mail.
UNCODED_RECORD = "ml_uncoded_stops"
ANOMALIES_RECORD = "ml_anomalies"
WEEK_AHEAD_RECORD = "ml_week_ahead"
#: The e-mail's model sections, in its order.
MAIL_RECORDS = (UNCODED_RECORD, ANOMALIES_RECORD, WEEK_AHEAD_RECORD)
OK, NOT_SHOWN = "ok", "not shown"
UNCODED_TITLE = "Likely causes of uncoded stops"
ANOMALIES_TITLE = "Anomalies needing a look"
WEEK_AHEAD_TITLE = "The week ahead"
UNCODED_COLUMNS: tuple[str, ...] = (
    "kind", "event_id", "machine_id", "time_start", "time_end", "duration_min", "fault_code",
    "entered_category", "predicted_category", "predicted_confidence", "top_contributions")
ANOMALY_COLUMNS: tuple[str, ...] = (
    "source", "machine_id", "what", "time_start", "time_end", "detected_at", "score", "severity",
    "likely_cause", "detail")
WEEK_AHEAD_COLUMNS: tuple[str, ...] = (
    "line", "day", "scheduled", "good", "good_low", "good_high", "produced", "produced_low", "produced_high",
    "yield", "yield_low", "yield_high")
COLUMNS = {UNCODED_TITLE: UNCODED_COLUMNS, ANOMALIES_TITLE: ANOMALY_COLUMNS,
           WEEK_AHEAD_TITLE: WEEK_AHEAD_COLUMNS}
TIME_COLUMNS = ("time_start", "time_end", "detected_at")
#: Rows a record keeps (the e-mail shows fewer; the report page has the whole table).
RECORD_ROWS = 50


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def plain(value: Any) -> Any:
    """One value as JSON data: ISO text for times and dates, None for missing, lists for tuples."""
    if isinstance(value, list | tuple | np.ndarray):
        return [plain(v) for v in value]
    if isinstance(value, pd.Timestamp | dt.datetime | dt.date):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, int | str):
        return value
    return str(value)


def _column_type(col: pd.Series) -> str:
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        return "timestamp"
    if pd.api.types.is_bool_dtype(col.dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(col.dtype):
        return "int"
    if pd.api.types.is_float_dtype(col.dtype):
        return "float"
    if pd.api.types.is_string_dtype(col.dtype) and col.dtype != object:
        return "string"
    present = col.dropna()
    if len(present) and all(isinstance(v, dt.date) and not isinstance(v, dt.datetime) for v in present):
        return "date"
    return "object"


def encode_frame(frame: pd.DataFrame) -> dict[str, Any]:
    """A DataFrame as JSON data with its column types (timestamps UTC, dates, numbers, text,
    JSON-able objects; tuples become lists), for :func:`decode_frame`."""
    types = {str(c): _column_type(frame[c]) for c in frame.columns}
    # Missing values of object columns are NaN or None: which one, to give the same back.
    nan = [str(c) for c in frame.columns if types[str(c)] == "object"
           and any(isinstance(v, float) and math.isnan(v) for v in frame[c])]
    return {"columns": [str(c) for c in frame.columns], "types": types, "nan": nan,
            "rows": [[plain(v) for v in row] for row in frame.itertuples(index=False, name=None)]}


def decode_frame(data: Mapping[str, Any]) -> pd.DataFrame:
    """The DataFrame :func:`encode_frame` encoded."""
    columns, types = list(data["columns"]), dict(data["types"])
    frame = pd.DataFrame(data["rows"] or None, columns=columns)
    for col in columns:
        kind, values = types[col], frame[col]
        if kind == "timestamp":
            frame[col] = pd.to_datetime(values, utc=True, format="ISO8601").astype("datetime64[us, UTC]")
        elif kind == "date":
            frame[col] = pd.Series([None if v is None else dt.date.fromisoformat(v) for v in values],
                                   index=frame.index, dtype=object)
        elif kind == "bool":
            frame[col] = values.astype(bool)
        elif kind == "int":
            frame[col] = values.astype("int64")
        elif kind == "float":
            frame[col] = pd.to_numeric(values, errors="raise").astype("float64")
        elif kind == "string":
            frame[col] = values.astype("str")
        else:
            missing = np.nan if col in data.get("nan", ()) else None
            frame[col] = pd.Series([missing if v is None else v for v in values], index=frame.index,
                                   dtype=object)
    return frame


@dataclass(frozen=True, eq=False)
class MLSection:
    """What one model says in the report, or why it says nothing.

    Attributes
    ----------
    title : str
        Section title (e.g. "Likely causes of uncoded stops").
    status : str
        ``"ok"`` or ``"not shown"``.
    reason : str
        Why the section is not shown (empty when it is).
    confidence : str
        What the numbers rest on, e.g. "root-cause model v3 (champion): 86 % accurate on 212
        held-out coded stops 2026-11-18 – 2026-11-25".
    table : DataFrame
        The rows to show (empty when not shown).
    notes : tuple of str
        Counts, treatments and recommendations worth a sentence.
    details : mapping of str to DataFrame
        What the figures draw (SHAP contributions, the forecast's history, …); not in the record.
    total_rows : int, optional
        Rows of the full table when ``table`` holds only its first rows (a section read back
        from its record); None: ``table`` is whole.
    """

    title: str
    status: str
    reason: str = ""
    confidence: str = ""
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: tuple[str, ...] = ()
    details: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    total_rows: int | None = None

    @property
    def shown(self) -> bool:
        """Whether the section shows numbers."""
        return self.status == OK

    @property
    def n_rows(self) -> int:
        """Rows of the full table (more than ``len(table)`` for a section read back from a record)."""
        return len(self.table) if self.total_rows is None else max(self.total_rows, len(self.table))

    def as_record(self, *, max_rows: int = RECORD_ROWS) -> dict[str, Any]:
        """Plain JSON data: the table as at most ``max_rows`` row dicts (times as ISO text,
        missing values as None), ``n_rows`` the full count."""
        rows = [{str(k): plain(v) for k, v in row.items()}
                for row in self.table.head(max_rows).to_dict(orient="records")]
        return {"title": self.title, "status": self.status, "reason": self.reason,
                "confidence": self.confidence, "columns": [str(c) for c in self.table.columns],
                "rows": rows, "n_rows": self.n_rows, "notes": list(self.notes)}

    def to_record(self) -> dict[str, Any]:
        """:meth:`as_record` with its defaults (what :func:`workbench.notebook.record` keeps)."""
        return self.as_record()

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> MLSection:
        """The section kept by :meth:`as_record` (its first rows; times tz-aware again).

        Raises
        ------
        MLError
            When the record lacks a title or a status.
        """
        if not isinstance(record, Mapping) or "title" not in record or "status" not in record:
            raise MLError("an ML section record needs at least 'title' and 'status'")
        table = pd.DataFrame(record.get("rows") or [], columns=record.get("columns") or None)
        for col in TIME_COLUMNS:
            if col in table.columns:
                table[col] = pd.to_datetime(table[col], utc=True, format="ISO8601")
        return cls(title=str(record["title"]), status=str(record["status"]),
                   reason=str(record.get("reason", "")), confidence=str(record.get("confidence", "")),
                   table=table, notes=tuple(str(n) for n in record.get("notes") or ()),
                   total_rows=_count(record.get("n_rows")))

    def to_payload(self) -> dict[str, Any]:
        """The whole section as JSON data, every table and detail with its column types, for
        :meth:`from_payload` (what ``ml_sections`` keeps; unlike :meth:`as_record`, nothing is cut)."""
        return {"title": self.title, "status": self.status, "reason": self.reason,
                "confidence": self.confidence, "notes": list(self.notes), "total_rows": self.total_rows,
                "table": encode_frame(self.table),
                "details": {str(k): encode_frame(v) for k, v in self.details.items()}}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> MLSection:
        """The section kept by :meth:`to_payload`, its tables with their column types again.

        Raises
        ------
        MLError
            When the payload is not one :meth:`to_payload` wrote.
        """
        try:
            return cls(title=str(payload["title"]), status=str(payload["status"]),
                       reason=str(payload.get("reason", "")), confidence=str(payload.get("confidence", "")),
                       table=decode_frame(payload["table"]),
                       notes=tuple(str(n) for n in payload.get("notes", ())),
                       details={str(k): decode_frame(v) for k, v in (payload.get("details") or {}).items()},
                       total_rows=_count(payload.get("total_rows")))
        except (KeyError, TypeError, ValueError) as exc:
            raise MLError(f"a stored ML section is not readable ({type(exc).__name__}: {exc})") from None

    def as_text(self) -> str:
        """Title, status or reason, confidence and notes as plain lines (what a notebook prints)."""
        lines = [f"{self.title}: " + ("shown" if self.shown else f"not shown, because {self.reason}")]
        if self.confidence:
            lines.append(f"  confidence: {self.confidence}")
        if self.shown and self.reason:
            lines.append(f"  {self.reason}")
        lines += [f"  · {note}" for note in self.notes]
        return "\n".join(lines)


def not_shown(title: str, reason: str, *, confidence: str = "", notes: Sequence[str] = ()) -> MLSection:
    """A section that shows no numbers and says why; its table is empty but has the section's
    columns (a notebook filters and shows it either way)."""
    return MLSection(title=title, status=NOT_SHOWN, reason=reason, confidence=confidence, notes=tuple(notes),
                     table=pd.DataFrame(columns=list(COLUMNS.get(title, ()))))
