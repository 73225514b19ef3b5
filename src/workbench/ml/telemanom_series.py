"""Telemanom (:mod:`workbench.ml.telemanom`) on one series of an analyst's table.

:func:`detect_anomalies` trains the detector on the first stretch of the series and judges the
rest (the ``workbench anomalies FILE.csv`` command); how it treats gaps, duplicates, blanks and text
is stated there and written to the result's notes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import clone

from workbench.errors import MLError
from workbench.ml.telemanom import SCORE_COLUMNS, TelemanomDetector, sequences


@dataclass(frozen=True, eq=False)
class AnomalyResult:
    """Telemanom on one series: the anomalies, every reading's score and what was done to the input.

    Attributes
    ----------
    anomalies : pandas.DataFrame
        One row per anomaly: start, end (first and last flagged reading), detected_at, score,
        readings (see :func:`sequences`).
    scores : pandas.DataFrame
        One row per reading (see :meth:`TelemanomDetector.score`).
    notes : tuple of str
        Treatments applied to the input (sorted, blanks dropped, gaps, naive times read as UTC …).
    train_end : pandas.Timestamp
        First judged time: readings before it trained the predictor and are not judged.
    n_readings, n_train, n_judged : int
        Readings used, readings in the training stretch, readings judged.
    """

    anomalies: pd.DataFrame
    scores: pd.DataFrame
    notes: tuple[str, ...]
    train_end: pd.Timestamp | None
    n_readings: int
    n_train: int
    n_judged: int


def _rows(positions: Sequence[int] | np.ndarray, limit: int = 5) -> str:
    """Spreadsheet row numbers (header = row 1) of 0-based data positions."""
    rows = [str(int(i) + 2) for i in positions[:limit]]
    more = len(positions) - limit
    return ", ".join(rows) + (f" and {more} more" if more > 0 else "")


def _parse_times(raw: pd.Series, column: str, notes: list[str]) -> pd.Series:
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        raise MLError(f"column '{column}' holds numbers, not times; give ISO-8601 times such as "
                      "2026-10-19T06:00:00+00:00")
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        times = raw.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(raw):
        times = raw.dt.tz_localize("UTC")
        notes.append(f"times in '{column}' have no time zone: read as UTC")
    else:
        text = raw.astype("string").str.strip()
        try:
            times = pd.to_datetime(text, errors="coerce", format="ISO8601")
        except (ValueError, TypeError):  # mixed offsets or mixed naive/aware: go through UTC
            times = pd.to_datetime(text, errors="coerce", format="mixed", utc=True)
        bad = np.flatnonzero(times.isna().to_numpy() & text.notna().to_numpy() & (text != "").to_numpy())
        if bad.size:
            shown = ", ".join(f"row {i + 2} {text.iloc[i]!r}" for i in bad[:5])
            more = f" and {bad.size - 5} more" if bad.size > 5 else ""
            raise MLError(f"column '{column}' has text that is not a time: {shown}{more} "
                          "(rows as a spreadsheet shows them, header = row 1); use ISO-8601 times "
                          "such as 2026-10-19T06:00:00+00:00")
        if isinstance(times.dtype, pd.DatetimeTZDtype):
            times = times.dt.tz_convert("UTC")
        else:
            times = times.dt.tz_localize("UTC")
            notes.append(f"times in '{column}' have no time zone: read as UTC")
    return times.astype("datetime64[ns, UTC]")


def _parse_values(raw: pd.Series, column: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(raw):
        raise MLError(f"column '{column}' holds true/false values, not numbers")
    values = pd.to_numeric(raw, errors="coerce") if not pd.api.types.is_numeric_dtype(raw) else raw
    values = values.astype(float)
    text = raw.astype("string").str.strip()
    blank_words = text.str.lower().isin(["", "nan", "na", "n/a", "null", "none"]).fillna(True).to_numpy(bool)
    bad = np.flatnonzero(values.isna().to_numpy() & raw.notna().to_numpy() & ~blank_words)
    if bad.size:
        shown = ", ".join(f"row {i + 2} {text.iloc[i]!r}" for i in bad[:5])
        more = f" and {bad.size - 5} more" if bad.size > 5 else ""
        raise MLError(f"column '{column}' has text where numbers are expected: {shown}{more} "
                      "(rows as a spreadsheet shows them, header = row 1)")
    return values


def detect_anomalies(df: pd.DataFrame, *, time: str, value: str, train_fraction: float = 0.25,
                     detector: TelemanomDetector | None = None, max_missing: float = 0.5) -> AnomalyResult:
    """Telemanom on one series of a table: train on its first stretch, judge the rest.

    Treatment of awkward input (each one is also written to ``notes``):

    * missing column → :class:`MLError` naming the columns present;
    * times: ISO-8601 text or datetimes; text that is not a time → :class:`MLError` with the rows;
      times without a zone are read as UTC; numbers in the time column → :class:`MLError`;
    * values: text that is not a number → :class:`MLError` naming the rows (as a spreadsheet shows
      them, header = row 1) and the text; blank / NaN / infinite values are dropped and counted,
      more than ``max_missing`` of them → :class:`MLError`; rows with a blank time likewise;
    * duplicate times → :class:`MLError` naming the first ones (a series needs one value per time);
    * unsorted times → sorted;
    * gaps: a step longer than ``max_gap`` (detector option, 5 by default) times the training
      stretch's median interval starts a new segment (nothing is resampled or interpolated); the
      first ``l_s`` readings after a gap are not judged;
    * a constant series → no anomalies;
    * too few readings → :class:`MLError` saying how many are needed and why.

    Parameters
    ----------
    df : pandas.DataFrame
        The table.
    time, value : str
        Time column and value column.
    train_fraction : float
        Share of the readings (the first ones) that trains the predictor; they are not judged.
    detector : TelemanomDetector, optional
        Unfitted detector with the wanted options (cloned); defaults otherwise.
    max_missing : float
        Largest share of blank values tolerated.

    Returns
    -------
    AnomalyResult
    """
    template = TelemanomDetector() if detector is None else detector
    if not 0 < train_fraction < 1:
        raise MLError(f"train_fraction must be between 0 and 1 (exclusive), got {train_fraction!r}")
    missing = [c for c in (time, value) if c not in df.columns]
    if missing:
        raise MLError(f"column(s) {', '.join(repr(c) for c in missing)} not in the table; its columns are: "
                      f"{', '.join(map(str, df.columns))}")
    if time == value:
        raise MLError(f"the time and value columns must differ (both are '{time}')")
    if len(df) == 0:
        raise MLError("the table has no rows")
    notes: list[str] = []
    frame = df[[time, value]].reset_index(drop=True)
    times = _parse_times(frame[time], time, notes)
    values = _parse_values(frame[value], value)
    n_rows = len(frame)
    blank = (times.isna() | ~np.isfinite(values)).to_numpy()
    if n_rows and blank.mean() > max_missing:
        raise MLError(f"{int(blank.sum())} of {n_rows} rows have a blank time or a blank / non-finite "
                      f"'{value}' (more than {max_missing:.0%}); nothing sensible can be judged")
    if blank.any():
        notes.append(f"{int(blank.sum())} row(s) with a blank time or a blank / non-finite '{value}' dropped "
                     f"(rows {_rows(np.flatnonzero(blank))})")
    keep = np.flatnonzero(~blank)
    t = pd.DatetimeIndex(times).asi8[keep]  # ns since the epoch, UTC
    v = values.to_numpy()[keep]
    order = np.argsort(t, kind="stable")
    ts = t[order]
    dup = np.flatnonzero(ts[1:] == ts[:-1])
    if dup.size:
        first_time = ts[dup[0]]
        where = keep[order][np.flatnonzero(ts == first_time)]
        others = np.unique(ts[dup]).size - 1
        raise MLError(f"time {pd.Timestamp(first_time, tz='UTC').isoformat()} appears more than once (rows "
                      f"{_rows(np.sort(where))})" + (f", and {others} more time(s) repeat" if others else "")
                      + "; a series needs one value per time: aggregate or remove the duplicates")
    if np.any(order != np.arange(order.size)):
        back = int(np.flatnonzero(np.diff(t) < 0)[0]) + 1
        notes.append(f"times were not in order (first step back at row {keep[back] + 2}): sorted")
    series = pd.Series(v[order], index=pd.to_datetime(ts, unit="ns", utc=True), name=value)
    n = len(series)
    det = clone(template)
    ls = det.l_s
    windows_needed = max(2 * ls, 10)
    need = int(np.ceil((ls + windows_needed) / train_fraction)) + 1
    if n < need:
        raise MLError(f"only {n} usable reading(s) in '{value}'; at least {need} are needed: each "
                      f"prediction uses the {ls} readings before it (l_s), the predictor needs "
                      f"{windows_needed} such windows to learn from, and only the first {train_fraction:.0%} "
                      "of the series trains it (train fraction); the rest is judged")
    if np.nanmax(v) == np.nanmin(v):
        notes.append(f"constant series: every value of '{value}' is {v[0]:g}; nothing can be anomalous")
        scores = pd.DataFrame({"time": series.index, "value": series.to_numpy()})
        scores = scores.reindex(columns=list(SCORE_COLUMNS))
        for col in ("judged", "anomaly", "final"):
            scores[col] = False
        empty = sequences(scores).drop(columns="channel")
        return AnomalyResult(empty, scores, tuple(notes), None, n, 0, 0)
    n_train = int(np.floor(train_fraction * n))
    train_end = series.index[n_train]
    det.fit(series.iloc[:n_train])
    step = np.diff(series.index.as_unit("ns").asi8)
    n_gaps = int((step > det.max_gap * det.interval_).sum()) if det.interval_ > 0 else 0
    if n_gaps:
        notes.append(f"{n_gaps} gap(s) longer than {det.max_gap:g}x the median interval "
                     f"({pd.Timedelta(det.interval_, 'ns')}): each starts a new segment, its first {ls} "
                     "readings are not judged")
    scores = det.score(series, start=train_end)
    notes.append(f"the first {n_train} readings (until {train_end.isoformat()}) trained the predictor "
                 "and are not judged")
    anomalies = sequences(scores, merge_gap=det.batch_size).drop(columns="channel")
    return AnomalyResult(anomalies, scores, tuple(notes), train_end, n, n_train, int(scores["judged"].sum()))
