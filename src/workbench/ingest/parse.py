"""Vectorised cell parsers: raw spreadsheet values → canonical types, with a mask of what failed.

Every parser takes one column as a pandas Series whose cells may be strings (CSV, or text cells
of a workbook), Python / NumPy scalars (typed workbook cells, frames built in code) or missing,
and returns the parsed values plus boolean masks. Parsers never raise on bad data: the caller
turns the masks into located problems, so that one pass reports every bad cell of a file.

Strings are parsed with vectorised pandas operations; other objects (rare: typed Excel cells)
are handled one by one, which is cheap because workbooks are small next to CSV exports.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

#: Spellings accepted for booleans (compared case-insensitively, after stripping blanks).
TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1", "x"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0"})

_STRING = pd.StringDtype("pyarrow")  # vectorised .str methods in Arrow compute

_INT_RANGE = {"int": (-(2**31), 2**31 - 1), "bigint": (-(2**63), 2**63 - 1)}

# A zone designator right after a clock time: Z, UTC, GMT, +01, +0100, +01:00. Requiring the
# clock time in front keeps the day of a bare date ("2024-03-01") from reading as an offset.
_ZONED = re.compile(r"\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:z|utc|gmt|[+-]\d{2}(?::?\d{2})?)$",
                    re.IGNORECASE)
_NAMED_UTC = re.compile(r"\s*(?:z|utc|gmt)$", re.IGNORECASE)


@dataclass
class Parsed:
    """One parsed column.

    Attributes
    ----------
    values : pandas.Series
        Parsed values, missing where the cell was blank or could not be parsed.
    blank : numpy.ndarray of bool
        Cells that held no value.
    bad : numpy.ndarray of bool
        Cells that held a value which does not parse as the column type.
    flags : dict of str to numpy.ndarray of bool
        Further per-cell findings of a parser (timestamps: ``no_zone``, ``ambiguous``,
        ``nonexistent``; integers: ``fraction``, ``range``).
    """

    values: pd.Series
    blank: np.ndarray
    bad: np.ndarray
    flags: dict[str, np.ndarray] = field(default_factory=dict)


def _split(raw: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Return (stripped strings with blanks as NA, string mask, other-non-null mask)."""
    if raw.dtype == object and pd.api.types.infer_dtype(raw, skipna=True) in ("string", "empty"):
        is_str = raw.notna().to_numpy(dtype=bool)  # the common case (CSV): no per-cell type test
    elif raw.dtype == object:
        is_str = raw.map(lambda v: isinstance(v, str), na_action="ignore").fillna(False)
        is_str = is_str.to_numpy(dtype=bool)
    elif pd.api.types.is_string_dtype(raw.dtype):
        is_str = raw.notna().to_numpy(dtype=bool)
    else:
        is_str = np.zeros(len(raw), dtype=bool)
    strings = pd.Series(pd.NA, index=raw.index, dtype=_STRING)
    if is_str.any():
        stripped = raw[is_str].astype(_STRING).str.strip()
        strings[is_str] = stripped.where(stripped != "", pd.NA)
    other = raw.notna().to_numpy(dtype=bool) & ~is_str
    return strings, is_str, other


def _blank_mask(raw: pd.Series, strings: pd.Series, is_str: np.ndarray) -> np.ndarray:
    return raw.isna().to_numpy(dtype=bool) | (is_str & strings.isna().to_numpy(dtype=bool))


def parse_text(raw: pd.Series) -> Parsed:
    """Text: strip blanks; a typed number becomes its plain spelling (4711.0 → ``"4711"``)."""
    strings, is_str, other = _split(raw)
    values = strings.astype(object)
    if other.any():
        values[other] = raw[other].map(_plain_text)
    values = values.where(pd.notna(values), None)
    return Parsed(values, _blank_mask(raw, strings, is_str), np.zeros(len(raw), dtype=bool))


def _plain_text(value: object) -> str:
    # Excel stores every number as a float: part 4711 must not become "4711.0".
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime | pd.Timestamp):
        return value.isoformat()
    return str(value)


def parse_number(raw: pd.Series, *, decimal: str = ".") -> Parsed:
    """Finite floats. With ``decimal=","`` a comma is the decimal mark (a point is also read).

    Booleans, dates and non-finite values (``inf``, ``nan`` spelled out) do not parse.
    """
    if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        values = raw.astype("float64")
        blank = values.isna().to_numpy(dtype=bool)
        bad = ~blank & ~np.isfinite(values.to_numpy(dtype="float64"))
        return Parsed(values.where(~bad, np.nan), blank, bad)
    strings, is_str, other = _split(raw)
    values = pd.Series(np.nan, index=raw.index, dtype="float64")
    if is_str.any():
        text = strings[is_str]
        if decimal != ".":
            # "1.234,5" mixes both marks: reading it either way would be a guess.
            both = text.str.contains(".", regex=False) & text.str.contains(decimal, regex=False)
            text = text.str.replace(decimal, ".", regex=False).where(~both.fillna(False), "x")
        num = pd.to_numeric(text.astype(object), errors="coerce")
        values[is_str] = num.astype("float64")
    if other.any():
        objs = raw[other]
        numeric = objs.map(lambda v: isinstance(v, int | float | np.integer | np.floating)
                           and not isinstance(v, bool | np.bool_))
        values[other] = pd.to_numeric(objs.where(numeric, np.nan), errors="coerce").astype("float64")
    blank = _blank_mask(raw, strings, is_str)
    arr = values.to_numpy(dtype="float64")
    bad = ~blank & ~np.isfinite(arr)
    values[bad] = np.nan
    return Parsed(values, blank, bad)


def parse_integer(raw: pd.Series, *, kind: str = "int", decimal: str = ".") -> Parsed:
    """Whole numbers (``12`` and ``12.0`` read, ``12.5`` does not), within the column's range.

    Flags ``fraction`` (a number with a fractional part) and ``range`` (too large for ``kind``).
    """
    num = parse_number(raw, decimal=decimal)
    arr = num.values.to_numpy(dtype="float64")
    finite = np.isfinite(arr)
    fraction = finite & (np.floor(arr) != arr)
    low, high = _INT_RANGE[kind]
    out_of_range = finite & ~fraction & ((arr < low) | (arr > high))
    bad = num.bad | fraction | out_of_range
    keep = finite & ~bad
    dtype = "Int32" if kind == "int" else "Int64"
    values = pd.Series(pd.array([pd.NA] * len(arr), dtype=dtype), index=raw.index)
    values[keep] = arr[keep].astype("int64")
    return Parsed(values, num.blank, bad, {"fraction": fraction, "range": out_of_range})


def parse_bool(raw: pd.Series) -> Parsed:
    """Booleans: true/false, yes/no, y/n, t/f, 1/0 (and ``x`` for a ticked box), any case."""
    strings, is_str, other = _split(raw)
    values = pd.Series(pd.array([pd.NA] * len(raw), dtype="boolean"), index=raw.index)
    if is_str.any():
        low = strings[is_str].str.lower()
        values[is_str] = low.map(lambda v: True if v in TRUE_WORDS else False if v in FALSE_WORDS
                                 else pd.NA, na_action="ignore").astype("boolean")
    if other.any():
        values[other] = raw[other].map(_bool_of).astype("boolean")
    blank = _blank_mask(raw, strings, is_str)
    bad = ~blank & values.isna().to_numpy(dtype=bool)
    return Parsed(values, blank, bad)


def _bool_of(value: object) -> object:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | float | np.integer | np.floating) and value in (0, 1):
        return bool(value)
    return pd.NA


def parse_date(raw: pd.Series) -> Parsed:
    """Calendar dates in ISO form (``2024-03-01``) or date cells; a time of day must be midnight."""
    strings, is_str, other = _split(raw)
    stamps = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[us]")
    if is_str.any():
        stamps[is_str] = pd.to_datetime(strings[is_str].astype(object), format="ISO8601",
                                        errors="coerce").astype("datetime64[us]")
    if other.any():
        stamps[other] = raw[other].map(_naive_datetime_of).astype("datetime64[us]")
    blank = _blank_mask(raw, strings, is_str)
    arr = stamps.to_numpy()
    bad = ~blank & (np.isnat(arr) | (stamps.dt.normalize() != stamps).to_numpy(dtype=bool))
    values = stamps.dt.date.where(~bad & ~blank, None).astype(object)
    return Parsed(values, blank, bad)


def _naive_datetime_of(value: object) -> object:
    if isinstance(value, pd.Timestamp | dt.datetime):
        ts = pd.Timestamp(value)
        return ts.tz_convert(None) if ts.tzinfo is not None else ts
    if isinstance(value, dt.date):
        return pd.Timestamp(value)
    if isinstance(value, np.datetime64):
        return pd.Timestamp(value)
    return pd.NaT


def parse_timestamp(raw: pd.Series, *, timezone: ZoneInfo | None) -> Parsed:
    """Instants as tz-aware UTC.

    A value with an offset (``2024-03-01 06:00+01:00``, ``…Z``, a tz-aware datetime) is exact.
    A value without one is a local time: it is placed in ``timezone`` when given, and flagged
    ``no_zone`` otherwise. A local time that occurs twice (DST ends) is flagged ``ambiguous``,
    one that never occurs (DST starts) ``nonexistent`` — neither is guessed.

    Strings must be ISO 8601 (``2024-03-01 06:00[:00[.fff]][offset]``): ``03/01/2024`` could be
    either of two days, so it does not parse.
    """
    n = len(raw)
    utc = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[us, UTC]")
    naive = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[us]")
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        utc[:] = raw.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
        strings, is_str, other = _split(pd.Series([None] * n, index=raw.index, dtype=object))
        blank = raw.isna().to_numpy(dtype=bool)
    elif pd.api.types.is_datetime64_dtype(raw.dtype):
        naive[:] = raw.astype("datetime64[us]")
        strings, is_str, other = _split(pd.Series([None] * n, index=raw.index, dtype=object))
        blank = raw.isna().to_numpy(dtype=bool)
    else:
        strings, is_str, other = _split(raw)
        blank = _blank_mask(raw, strings, is_str)
        if is_str.any():
            text = strings[is_str]
            zoned = text.str.contains(_ZONED).fillna(False).to_numpy(dtype=bool)
            if zoned.any():
                z = text[zoned].str.replace(_NAMED_UTC, "+00:00", regex=True).astype(object)
                utc[text.index[zoned]] = pd.to_datetime(z, format="ISO8601", utc=True,
                                                        errors="coerce").astype("datetime64[us, UTC]")
            if (~zoned).any():
                plain = text[~zoned].astype(object)
                naive[text.index[~zoned]] = pd.to_datetime(plain, format="ISO8601",
                                                           errors="coerce").astype("datetime64[us]")
        if other.any():
            objs = raw[other]
            aware = objs.map(lambda v: getattr(v, "tzinfo", None) is not None).to_numpy(dtype=bool)
            if aware.any():
                utc[objs.index[aware]] = pd.to_datetime(objs[aware].tolist(), utc=True).astype(
                    "datetime64[us, UTC]")
            if (~aware).any():
                naive[objs.index[~aware]] = objs[~aware].map(_naive_datetime_of).astype(
                    "datetime64[us]")

    has_naive = naive.notna().to_numpy(dtype=bool)
    flags = {k: np.zeros(n, dtype=bool) for k in ("no_zone", "ambiguous", "nonexistent")}
    if has_naive.any():
        if timezone is None:
            flags["no_zone"] = has_naive.copy()
        else:
            local = pd.DatetimeIndex(naive[has_naive])
            placed = local.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
            failed = np.isnat(placed.tz_convert(None).to_numpy())
            if failed.any():
                # Resolving every ambiguous time (one way, arbitrarily) leaves only the
                # nonexistent ones as NaT: that tells the two cases apart without a loop.
                resolved = local.tz_localize(timezone, ambiguous=np.ones(len(local), dtype=bool),
                                             nonexistent="NaT")
                missing = np.isnat(resolved.tz_convert(None).to_numpy())
                positions = np.flatnonzero(has_naive)
                flags["nonexistent"][positions[failed & missing]] = True
                flags["ambiguous"][positions[failed & ~missing]] = True
            utc[has_naive] = placed.tz_convert("UTC").astype("datetime64[us, UTC]")
    unparsed = np.isnat(utc.dt.tz_convert(None).to_numpy()) & ~has_naive
    bad = ~blank & unparsed
    return Parsed(utc, blank, bad, flags)
