"""Row rules of :func:`workbench.ingest.validate_frame`, each a function of one :class:`Batch`.

Every rule is vectorised: it computes a boolean mask over the rows and turns only the flagged
rows into :class:`~workbench.errors.Problem` objects. A cell already found bad is skipped by later
rules, so one wrong value yields one problem, not a cascade.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from difflib import get_close_matches
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from workbench import schema
from workbench.errors import Problem
from workbench.ingest.parse import Parsed

#: Columns that may not be negative, in whichever table they occur.
NON_NEGATIVE = frozenset({
    "good_count", "reject_count", "total_count", "quantity", "duration_min", "cycle_time_ms",
    "material_cost", "labor_cost", "order_qty", "completed_qty", "scrap_qty",
    "material_cost_per_unit", "labor_rate_per_hour", "sample_size", "defects",
})
#: Columns that must be strictly positive (a zero ideal cycle time would divide performance by 0).
POSITIVE = frozenset({"ideal_cycle_time_s", "lot_size", "subgroup_size"})

#: Closed vocabularies (compared case-insensitively, stored lower-case).
ENUMS: dict[tuple[str, str], tuple[str, ...]] = {
    ("production_events", "event_type"): ("cycle", "count", "state", "alarm"),
    ("machine_states", "state"): ("running", "idle", "down", "setup", "planned_stop", "no_data"),
    ("planned_stops", "kind"): ("break", "no_demand", "maintenance"),
    ("machine_telemetry", "quality"): ("good", "uncertain", "bad"),
    ("inspections", "inspection_type"): ("normal", "tightened", "reduced"),
    ("inspections", "decision"): ("accept", "reject"),
    ("characteristics", "chart_type"): ("xbar_r", "xbar_s", "imr", "p", "np", "c", "u"),
}

#: Tolerance between a given downtime duration and time_end − time_start.
DURATION_TOLERANCE_MIN = 1.0


@dataclass
class Batch:
    """Working state of one validation: raw and parsed columns, cells already found bad, problems."""

    tbl: schema.Table
    file: str | None
    rows: np.ndarray
    tz: ZoneInfo | None
    decimal: str
    raw: dict[str, pd.Series] = field(default_factory=dict)
    parsed: dict[str, Parsed] = field(default_factory=dict)
    bad: dict[str, np.ndarray] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.rows)

    def values(self, name: str) -> pd.Series:
        """Parsed values of column ``name``."""
        return self.parsed[name].values

    def given(self, name: str) -> np.ndarray:
        """Cells of ``name`` holding a valid value."""
        p = self.parsed[name]
        return ~p.blank & ~self.bad[name]

    def shown(self, name: str, i: int) -> str:
        """The cell as the user typed it, for messages."""
        value = self.raw[name].iloc[i]
        return value.strip() if isinstance(value, str) else str(value)

    def flag(self, mask: np.ndarray, column: str | None, message: str | Callable[[int], str]) -> None:
        """Record a problem for every row in ``mask``; ``message`` may depend on the position."""
        for i in np.flatnonzero(mask):
            text = message(int(i)) if callable(message) else message
            self.problems.append(Problem(text, file=self.file, row=int(self.rows[i]), column=column))
            if column in self.bad:
                self.bad[column][i] = True

    def header(self, column: str | None, message: str, *, row: int | None) -> None:
        """Record a problem of the input's columns rather than of a row."""
        self.problems.append(Problem(message, file=self.file, row=row, column=column))



def check_required_values(batch: Batch) -> None:
    """Blank cells in required columns (a downtime duration may be blank: it is computed)."""
    derived = {"duration_min"} if batch.tbl.name == "downtime_events" else set()
    for name in batch.tbl.required:
        if name in batch.parsed and name not in derived and name != "event_id":
            batch.flag(batch.parsed[name].blank, name, f"missing value; {name} is required")


def check_signs(batch: Batch) -> None:
    """Negative counts, quantities, durations and costs; non-positive ideal rates and sizes."""
    for name in batch.parsed:
        if name not in NON_NEGATIVE and name not in POSITIVE:
            continue
        values = batch.values(name).astype("float64").to_numpy(na_value=np.nan)
        if name in POSITIVE:
            batch.flag(batch.given(name) & (values <= 0), name,
                       lambda i, name=name: f"{batch.shown(name, i)} is not positive; {name} must be > 0")
        else:
            batch.flag(batch.given(name) & (values < 0), name, lambda i, name=name: (
                f"{batch.shown(name, i)} is negative; counts, quantities, durations and costs "
                "cannot be below zero"))


def check_enums(batch: Batch) -> None:
    """Values outside a closed vocabulary (:data:`ENUMS`); known values are stored lower-case."""
    for (table_name, name), allowed in ENUMS.items():
        if table_name != batch.tbl.name or name not in batch.parsed:
            continue
        values = batch.values(name)
        given = batch.given(name)
        lower = values.where(given, None).map(lambda v: v.lower() if isinstance(v, str) else v)
        batch.parsed[name].values = lower.where(given, None)
        unknown = given & ~lower.isin(allowed).to_numpy(dtype=bool)
        batch.flag(unknown, name, lambda i, name=name, allowed=allowed: (
            f"unknown {name} {batch.shown(name, i)!r}; use one of: {', '.join(allowed)}"))


def check_intervals(batch: Batch) -> None:
    """``time_end`` before ``time_start`` (equal is allowed: a zero-length interval)."""
    if "time_start" not in batch.parsed or "time_end" not in batch.parsed:
        return
    start, end = batch.values("time_start"), batch.values("time_end")
    both = batch.given("time_start") & batch.given("time_end")
    before = both & (end < start).to_numpy(dtype=bool)
    batch.flag(before, "time_end", lambda i: (
        f"time_end {_fmt(end.iloc[i])} is before time_start {_fmt(start.iloc[i])}"))


def _fmt(ts: pd.Timestamp) -> str:
    return ts.tz_convert("UTC").strftime("%Y-%m-%d %H:%M:%S UTC")


def derive_production_counts(batch: Batch) -> None:
    """total_count (optional) with good_count and/or reject_count: check and derive."""
    if "total_count" not in batch.parsed:
        return
    total = batch.values("total_count").astype("Float64")
    has_total = batch.given("total_count")
    has = {c: (batch.given(c) if c in batch.parsed else np.zeros(batch.n, dtype=bool))
           for c in ("good_count", "reject_count")}
    for c in has:
        if c not in batch.parsed:
            series = pd.Series(pd.array([pd.NA] * batch.n, dtype="Int32"))
            batch.raw[c] = series
            batch.parsed[c] = Parsed(series, np.ones(batch.n, dtype=bool), np.zeros(batch.n, dtype=bool))
            batch.bad[c] = np.zeros(batch.n, dtype=bool)
    good = batch.values("good_count").astype("Float64")
    rejects = batch.values("reject_count").astype("Float64")
    t = lambda i: batch.shown("total_count", i)

    too_many_good = has_total & has["good_count"] & (good > total).to_numpy(dtype=bool, na_value=False)
    batch.flag(too_many_good, "good_count",
               lambda i: f"good_count {batch.shown('good_count', i)} is greater than total_count {t(i)}")
    too_many_rej = has_total & has["reject_count"] & ~has["good_count"] & (
        rejects > total).to_numpy(dtype=bool, na_value=False)
    batch.flag(too_many_rej, "reject_count", lambda i: (
        f"reject_count {batch.shown('reject_count', i)} is greater than total_count {t(i)}"))
    both = has_total & has["good_count"] & has["reject_count"] & ~too_many_good
    mismatch = both & ((good + rejects) != total).to_numpy(dtype=bool, na_value=False)
    batch.flag(mismatch, "reject_count", lambda i: (
        f"good_count {batch.shown('good_count', i)} + reject_count {batch.shown('reject_count', i)} "
        f"is not total_count {t(i)}"))
    neither = has_total & ~has["good_count"] & ~has["reject_count"] & ~batch.bad["good_count"] & \
        ~batch.bad["reject_count"]
    batch.flag(neither, "good_count", "total_count is given but good_count is missing; "
               "give good_count (reject_count is then total_count − good_count)")

    derive_rej = has_total & has["good_count"] & ~has["reject_count"] & ~too_many_good \
        & ~batch.bad["reject_count"]
    derive_good = has_total & has["reject_count"] & ~has["good_count"] & ~too_many_rej \
        & ~batch.bad["good_count"]
    new_rej = batch.values("reject_count").astype("Int32").copy()
    new_rej[derive_rej] = (total - good)[derive_rej].astype("Int32")
    new_good = batch.values("good_count").astype("Int32").copy()
    new_good[derive_good] = (total - rejects)[derive_good].astype("Int32")
    batch.parsed["reject_count"].values = new_rej
    batch.parsed["good_count"].values = new_good


def check_downtime_duration(batch: Batch) -> None:
    """A given ``duration_min`` must match end − start within :data:`DURATION_TOLERANCE_MIN`;
    a blank or absent one is computed."""
    if "time_start" not in batch.parsed or "time_end" not in batch.parsed:
        return
    both = batch.given("time_start") & batch.given("time_end")
    spans = (batch.values("time_end") - batch.values("time_start")).dt.total_seconds() / 60.0
    spans = spans.where(both)
    if "duration_min" not in batch.parsed:
        series = pd.Series(np.nan, index=spans.index)
        batch.raw["duration_min"] = series
        batch.parsed["duration_min"] = Parsed(series, np.ones(batch.n, dtype=bool),
                                              np.zeros(batch.n, dtype=bool))
        batch.bad["duration_min"] = np.zeros(batch.n, dtype=bool)
    given = batch.given("duration_min")
    duration = batch.values("duration_min").astype("float64")
    off = given & both & (np.abs(duration - spans) > DURATION_TOLERANCE_MIN).to_numpy(dtype=bool)
    batch.flag(off, "duration_min", lambda i: (
        f"duration_min {batch.shown('duration_min', i)} disagrees with time_end − time_start "
        f"({spans.iloc[i]:.1f} min) by more than {DURATION_TOLERANCE_MIN:g} minute"))
    fill = batch.parsed["duration_min"].blank & both
    batch.parsed["duration_min"].values = duration.where(~fill, spans)
    # A stop without a duration and without a usable interval has a problem already on time_*.


def _suggest(value: str, known: dict[str, str]) -> str:
    exact = known.get(value.lower())
    if exact is not None:
        return f" (did you mean '{exact}'?)"
    close = get_close_matches(value, list(known.values()), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _check_known(batch: Batch, name: str, known: set[str], what: str) -> None:
    if name not in batch.parsed or not known:
        return
    values = batch.values(name)
    unknown = batch.given(name) & ~values.isin(known).to_numpy(dtype=bool)
    if not unknown.any():
        return
    folded = {k.lower(): k for k in sorted(known)}
    batch.flag(unknown, name, lambda i: (
        f"unknown {what} {values.iloc[i]!r}{_suggest(values.iloc[i], folded)}: it is not in the "
        f"warehouse's {what.replace(' ', '_')}s table; add it there first or correct the value"))


def check_machines(batch: Batch, known_machines: Iterable[str] | None) -> None:
    """Machine ids not among ``known_machines`` (no check when it is None or empty)."""
    if known_machines is None or batch.tbl.name == "machines":
        return
    _check_known(batch, "machine_id", {str(m) for m in known_machines}, "machine")


def check_reason_codes(batch: Batch, known: pd.DataFrame | Iterable[str] | None) -> None:
    """Reason codes not in the taxonomy; for downtime, fill category and planned from it.

    ``known`` is the reason_codes table (``code``, ``category``, ``planned``) or just codes.
    """
    if known is None or "reason_code" not in batch.tbl.column_names:
        return
    taxonomy = known if isinstance(known, pd.DataFrame) else None
    codes = {str(c) for c in (taxonomy["code"] if taxonomy is not None else known)}
    _check_known(batch, "reason_code", codes, "reason code")
    if taxonomy is None or taxonomy.empty or batch.tbl.name != "downtime_events" \
            or "reason_code" not in batch.parsed:
        return
    lookup = taxonomy.drop_duplicates("code").set_index("code")
    code = batch.values("reason_code")
    usable = batch.given("reason_code") & code.isin(lookup.index).to_numpy(dtype=bool)
    for name, source_col in (("reason_category", "category"), ("planned", "planned")):
        expected = code.map(lookup[source_col]).where(usable, None)
        if name not in batch.parsed:
            empty = pd.Series([None] * batch.n, dtype=object)
            batch.raw[name] = empty
            batch.parsed[name] = Parsed(empty, np.ones(batch.n, dtype=bool), np.zeros(batch.n, dtype=bool))
            batch.bad[name] = np.zeros(batch.n, dtype=bool)
        current = batch.values(name)
        given = batch.given(name)
        # Compared as lower-case text: "tooling" is the taxonomy's "Tooling", not a contradiction.
        differs = usable & given & (current.astype("string").str.lower()
                                    != expected.astype("string").str.lower()).fillna(False).to_numpy(bool)
        batch.flag(differs, name, lambda i, name=name, expected=expected: (
            f"{name} {batch.shown(name, i)!r} contradicts the reason_codes table, which gives "
            f"{expected.iloc[i]!r} for code {code.iloc[i]!r}; leave it blank or correct it"))
        # Known codes take the taxonomy's spelling and planned flag: planned is data, not input.
        filled = current.astype(object).where(~usable, expected.astype(object))
        batch.parsed[name].values = filled.astype("boolean") if name == "planned" else filled


def _duplicate_key(tbl: schema.Table, parsed: dict[str, Parsed]) -> list[str]:
    key = list(tbl.natural_key or tbl.key)
    if "source" in key:
        values = parsed["source"].values if "source" in parsed else None
        if values is None or values.nunique(dropna=False) <= 1:
            key.remove("source")  # one source per file: it cannot tell rows apart
    return key


def check_duplicates(batch: Batch) -> None:
    """Rows sharing the natural key (the business key for master data); names all of them."""
    key = _duplicate_key(batch.tbl, batch.parsed)
    if not key or batch.n < 2 or any(k not in batch.parsed and not batch.tbl.column(k).nullable
                                     for k in key):
        return  # a required key column is missing: that is the problem to report
    # An absent nullable key column is null in every row: it cannot tell rows apart.
    key = [k for k in key if k in batch.parsed]
    usable = np.ones(batch.n, dtype=bool)
    for k in key:
        usable &= ~batch.bad[k]
        if not batch.tbl.column(k).nullable:
            usable &= ~batch.parsed[k].blank
    frame = pd.DataFrame({k: batch.values(k).astype(object) for k in key})
    frame = frame[usable]
    dup = frame.duplicated(keep=False)
    if not dup.any():
        return
    groups = frame[dup].groupby(key, dropna=False, sort=False).indices
    label = ", ".join(key)
    where: dict[int, list[int]] = {}
    for positions in groups.values():
        members = frame.index[dup][positions].to_numpy()
        numbers = [int(batch.rows[m]) for m in members]
        for m in members:
            where[int(m)] = numbers
    mask = np.zeros(batch.n, dtype=bool)
    mask[list(where)] = True

    def message(i: int) -> str:
        rows_text = " and ".join(str(r) for r in sorted(where[i]))
        values = ", ".join(_fmt(v) if isinstance(v, pd.Timestamp) else str(v)
                           for v in frame.loc[i].tolist())
        return f"duplicate: rows {rows_text} have the same {label} ({values}); each may appear once"

    batch.flag(mask, label, message)
