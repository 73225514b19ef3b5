"""Reading tidy frames into subgroups: column checks, ordering, and errors that say where.

Variables charts take one row per measurement (the ``quality_measurements`` shape); individuals
charts one row per value; attribute charts one row per sample. Subgroups are ordered by first
appearance in the frame, or by their earliest ``time`` when a time column is given. Without a
subgroup column each row is a point, labelled with the frame's index label. Every problem is an
:class:`~workbench.errors.SPCError` naming the column and the rows (by index label) and subgroups.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from workbench.errors import SPCError
from workbench.spc.registry import FloatArray, Subgroups

Phase = Literal["I", "II"]


@dataclass(frozen=True)
class InputSpec:
    """How a chart reads its data, kept so ``apply`` can read new data the same way."""

    kind: Literal["subgrouped", "individuals", "attributes"]
    chart: str
    value: str
    subgroup: str | None = None
    size: str | None = None
    time: str | None = None


def plain(value: Hashable) -> Hashable:
    """A subgroup id as a plain Python object (numpy scalars compare and print awkwardly)."""
    return value.item() if isinstance(value, np.generic) else value


def as_pandas(data: Any) -> pd.DataFrame:
    """The frame as pandas (polars frames are converted); anything else is an error."""
    if isinstance(data, pd.DataFrame):
        return data
    if type(data).__module__.split(".")[0] == "polars" and hasattr(data, "to_pandas"):
        return data.to_pandas()
    raise SPCError(f"expected a pandas or polars DataFrame, got {type(data).__name__}")


def _column(df: pd.DataFrame, name: str | None, role: str) -> pd.Series:
    if name is None:
        raise SPCError(f"the {role} column must be named ({role}=...)")
    if name not in df.columns:
        cols = ", ".join(map(str, df.columns))
        raise SPCError(f"{role} column {name!r} is not in the data (columns: {cols})")
    return df[name]


def _where(df: pd.DataFrame, positions: Sequence[int], labels: pd.Series | None) -> str:
    shown = []
    for pos in list(positions)[:5]:
        text = f"row {df.index[pos]!r}"
        if labels is not None:
            text += f" (subgroup {labels.iloc[pos]!r})"
        shown.append(text)
    more = f" and {len(positions) - 5} more" if len(positions) > 5 else ""
    return ", ".join(shown) + more


def _numeric(df: pd.DataFrame, name: str | None, role: str, labels: pd.Series | None) -> FloatArray:
    col = _column(df, name, role)
    if pd.api.types.is_bool_dtype(col):
        raise SPCError(f"{role} column {name!r} holds booleans, not numbers")
    values = pd.to_numeric(col, errors="coerce")
    bad = np.flatnonzero(values.isna().to_numpy() & col.notna().to_numpy())
    if bad.size:
        raise SPCError(f"{role} column {name!r} is not numeric at {_where(df, bad, labels)}: "
                       f"{col.iloc[bad[0]]!r}")
    arr = values.to_numpy(dtype=float, na_value=np.nan)
    missing = np.flatnonzero(~np.isfinite(arr))
    if missing.size:
        raise SPCError(f"{role} column {name!r} has {missing.size} missing or infinite value(s) at "
                       f"{_where(df, missing, labels)}; drop or fill them before charting")
    return arr


def _ids(df: pd.DataFrame, name: str | None) -> pd.Series:
    if name is None:
        # Points are labelled by the index; a non-unique index (after a concat, say) cannot
        # name a point, so row positions label them instead.
        labels = df.index if df.index.is_unique else pd.RangeIndex(len(df))
        return pd.Series(labels, index=df.index)
    col = _column(df, name, "subgroup")
    missing = np.flatnonzero(col.isna().to_numpy())
    if missing.size:
        raise SPCError(f"subgroup column {name!r} is empty at {_where(df, missing, None)}")
    return col


def _times(df: pd.DataFrame, name: str | None, labels: pd.Series | None) -> pd.Series | None:
    if name is None:
        return None
    col = _column(df, name, "time")
    missing = np.flatnonzero(col.isna().to_numpy())
    if missing.size:
        raise SPCError(f"time column {name!r} is empty at {_where(df, missing, labels)}")
    return col


def _id_array(values: Any) -> NDArray[np.object_]:
    # The trailing None keeps numpy from turning tuple ids into a 2-D array.
    return np.array([plain(v) for v in values] + [None], dtype=object)[:-1]


def _unique_ids(df: pd.DataFrame, ids: pd.Series, role: str, hint: str) -> None:
    dup = ids.duplicated(keep=False).to_numpy()
    if dup.any():
        first = ids[dup].iloc[0]
        rows = np.flatnonzero((ids == first).to_numpy())
        raise SPCError(f"subgroup {first!r} appears in {rows.size} rows ({_where(df, rows, None)}); "
                       f"{role} take one row per subgroup — {hint}")


def _row_order(df: pd.DataFrame, times: pd.Series | None) -> NDArray[np.intp]:
    if times is None:
        return np.arange(len(df), dtype=np.intp)
    return np.argsort(times.to_numpy(), kind="stable").astype(np.intp)


def _read_subgrouped(df: pd.DataFrame, source: InputSpec) -> Subgroups:
    ids = _ids(df, source.subgroup)
    values = _numeric(df, source.value, "value", ids)
    times = _times(df, source.time, ids)
    codes, uniques = pd.factorize(ids, sort=False)
    m = len(uniques)
    order = np.arange(m)
    if times is not None:
        first = pd.Series(times.to_numpy()).groupby(codes).min()
        order = np.argsort(first.to_numpy(), kind="stable")
    rank = np.empty(m, dtype=np.intp)
    rank[order] = np.arange(m)
    rows = rank[codes]
    position = pd.Series(rows).groupby(rows).cumcount().to_numpy()
    sizes = np.bincount(rows, minlength=m).astype(float)
    table = np.full((m, int(sizes.max()) if m else 0), np.nan)
    table[rows, position] = values
    return Subgroups(ids=_id_array(np.asarray(uniques, dtype=object)[order]), sizes=sizes, values=table)


def _read_individuals(df: pd.DataFrame, source: InputSpec) -> Subgroups:
    ids = _ids(df, source.subgroup)
    if source.subgroup is not None:
        _unique_ids(df, ids, "individuals charts", "use xbar_r / xbar_s for subgroups of several "
                    "measurements")
    values = _numeric(df, source.value, "value", ids)
    order = _row_order(df, _times(df, source.time, ids))
    return Subgroups(ids=_id_array(ids.to_numpy()[order]), sizes=np.ones(len(df)),
                     values=values[order][:, None])


def _read_attributes(df: pd.DataFrame, source: InputSpec) -> Subgroups:
    chart = source.chart
    ids = _ids(df, source.subgroup)
    if source.subgroup is not None:
        _unique_ids(df, ids, "attribute charts", "add the counts and sizes of each subgroup first")
    role = "defectives" if chart in ("p", "np") else "defects"
    counts = _numeric(df, source.value, role, ids)
    negative = np.flatnonzero(counts < 0)
    if negative.size:
        raise SPCError(f"{role} column {source.value!r} has negative counts at "
                       f"{_where(df, negative, ids)}")
    fractional = np.flatnonzero(counts != np.round(counts))
    if fractional.size:
        raise SPCError(f"{role} column {source.value!r} must hold whole counts; "
                       f"{counts[fractional[0]]:g} at {_where(df, fractional, ids)}")
    if source.size is None:
        if chart != "c":
            raise SPCError(f"the {chart} chart needs the sample size column (size=...)")
        sizes = np.ones(len(df))
    else:
        sizes = _numeric(df, source.size, "size", ids)
        nonpositive = np.flatnonzero(sizes <= 0)
        if nonpositive.size:
            raise SPCError(f"size column {source.size!r} must be positive; "
                           f"{sizes[nonpositive[0]]:g} at {_where(df, nonpositive, ids)}")
        if chart in ("p", "np"):
            fractional = np.flatnonzero(sizes != np.round(sizes))
            if fractional.size:
                raise SPCError(f"size column {source.size!r} must hold whole numbers of units for a "
                               f"{chart} chart; {sizes[fractional[0]]:g} at "
                               f"{_where(df, fractional, ids)}")
            over = np.flatnonzero(counts > sizes)
            if over.size:
                i = over[0]
                raise SPCError(f"more defectives than units inspected: {counts[i]:g} > {sizes[i]:g} "
                               f"at {_where(df, over, ids)}")
        if chart in ("np", "c") and np.unique(sizes).size > 1:
            other = "p" if chart == "np" else "u"
            raise SPCError(f"the {chart} chart needs one sample size for every subgroup; sizes here "
                           f"range {sizes.min():g}…{sizes.max():g} — use the {other} chart")
    order = _row_order(df, _times(df, source.time, ids))
    return Subgroups(ids=_id_array(ids.to_numpy()[order]), sizes=sizes[order],
                     counts=counts[order])


def read(data: Any, source: InputSpec, *, phase: Phase) -> Subgroups:
    """Read a frame as ``source`` describes it, checking everything a chart relies on."""
    df = as_pandas(data)
    if len(df) == 0:
        raise SPCError(f"no rows to chart ({'new data' if phase == 'II' else 'data'} is empty)")
    if source.kind == "subgrouped":
        sub = _read_subgrouped(df, source)
        small = sub.ids[sub.sizes < 2]
        if small.size:
            shown = ", ".join(repr(s) for s in small[:5]) + (" …" if small.size > 5 else "")
            raise SPCError(f"{source.chart.replace('_', '-')} needs at least 2 measurements per "
                           f"subgroup; {small.size} subgroup(s) have only 1: {shown} "
                           "(use imr for individual values)")
        return sub
    if source.kind == "individuals":
        return _read_individuals(df, source)
    return _read_attributes(df, source)
