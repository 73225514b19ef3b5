"""Reading one field of an API or ERP record strictly: the value or a :class:`RecordError` that says
which field and what was wrong with it. A record with one bad field becomes one dead letter; the
records around it are stored.

Nothing is guessed: ``"12 pcs"`` is not 12, ``3.5`` parts is not 3, a timestamp without a UTC
offset is not UTC, ``true`` is not the number 1.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from typing import Any

from workbench.errors import SourceError


class RecordError(SourceError):
    """One field of one record cannot be read; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def required(record: dict[str, Any], name: str) -> Any:
    """``record[name]``, which must be present and not null."""
    if not isinstance(record, dict):
        raise RecordError("record", f"expected a JSON object, got {_shown(record)}")
    value = record.get(name)
    if value is None:
        raise RecordError(name, "missing" if name not in record else "is null")
    return value


def as_time(value: Any, field: str) -> dt.datetime:
    """An instant: ISO-8601 text with a UTC offset (``Z`` or ``+02:00``) or an aware datetime."""
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise RecordError(field, f"not an ISO-8601 timestamp: {_shown(value)}") from None
    else:
        raise RecordError(field, f"expected an ISO-8601 timestamp, got {_shown(value)}")
    if parsed.tzinfo is None:
        raise RecordError(field, f"timestamp without a UTC offset: {_shown(value)}")
    return parsed.astimezone(dt.UTC)


def as_date(value: Any, field: str) -> dt.date:
    """A calendar date: ``YYYY-MM-DD`` text or a date."""
    if isinstance(value, dt.datetime):
        raise RecordError(field, f"expected a date, got a timestamp {_shown(value)}")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise RecordError(field, f"expected a date (YYYY-MM-DD), got {_shown(value)}")


def as_count(value: Any, field: str) -> int:
    """A whole number ≥ 0 (``4`` or ``4.0``; not ``"4"``, not ``4.5``, not ``true``)."""
    number = as_number(value, field)
    if number != int(number):
        raise RecordError(field, f"expected a whole number, got {_shown(value)}")
    if number < 0:
        raise RecordError(field, f"must not be negative, got {_shown(value)}")
    return int(number)


def as_number(value: Any, field: str) -> float:
    """A finite number (a JSON number or a database numeric)."""
    if isinstance(value, bool) or not isinstance(value, int | float | decimal.Decimal):
        raise RecordError(field, f"expected a number, got {_shown(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise RecordError(field, f"expected a finite number, got {_shown(value)}")
    return number


def as_text(value: Any, field: str) -> str:
    """Text (an ERP's integer order number is taken as its digits)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RecordError(field, f"expected text, got {_shown(value)}")
    return str(value)


def as_bool(value: Any, field: str) -> bool:
    """``true`` / ``false``."""
    if not isinstance(value, bool):
        raise RecordError(field, f"expected true or false, got {_shown(value)}")
    return value


def optional(convert, value: Any, field: str) -> Any:
    """``convert(value)`` unless the value is null."""
    return None if value is None else convert(value, field)
