"""What the analysis notebooks share: open the data, resolve days and machines, display results.

A notebook's parameters (``date``, ``days``, ``warehouse``, ``site``, ``lines``, ``machines``)
become one :class:`Scope`; the notebook then reads through it, calls the analytics and shows
the results::

    scope = nb.scope(date=date, days=days, warehouse=warehouse, site=site, lines=lines, machines=machines)
    frames = scope.plant_frames()
    nb.header(scope, "OEE", frames)
    nb.show(plots.oee_trend(scope.oee(frames, by=("hour",)), tz=scope.tz))

Figures and exported HTML
-------------------------
:func:`show` displays a plotly figure as a MIME bundle with ``text/html`` (what nbconvert puts
in an HTML page — a figure without it vanishes from the export) and
``application/vnd.plotly.v1+json`` (what JupyterLab's plotly renderer draws). The first figure
shown in a kernel session carries plotly.js inline, read from the installed plotly package;
later ones refer to it. So every executed notebook, and every page made from it, holds
plotly.js exactly once and fetches nothing from the network. In a report run
(``WORKBENCH_REPORT_RUN=1`` in the kernel) the report page carries plotly.js, so the executed
notebook does not (JupyterLab still draws its figures from their plotly JSON).

Results for the pipeline
------------------------
:func:`record` keeps a result in the executed notebook of a report run (e.g. the daily
summary the e-mail is made from), so the pipeline uses what the notebook showed instead of
computing it again.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from workbench import jobs, oee, reliability, schema
from workbench.config import RECORD_MIME, report_run, settings
from workbench.errors import ConfigError, ReliabilityError
from workbench.ml.daily import Tables
from workbench.store import OnDemandWarehouse, Warehouse, open_reader

if TYPE_CHECKING:
    from workbench.summary import DailySummary

__all__ = [
    "MONEY_COLUMNS",
    "PERCENT_COLUMNS",
    "RECORD_MIME",
    "Scope",
    "WeibullChoice",
    "header",
    "heading",
    "no_data",
    "open_data",
    "record",
    "resolve_days",
    "scope",
    "select_machines",
    "show",
    "show_table",
    "warm_up",
    "weibull_fit",
    "with_unscheduled_time",
]

#: Columns :func:`show_table` formats as percentages without being told (fractions 0…1).
PERCENT_COLUMNS = ("availability", "performance", "quality", "quality_ratio", "oee", "share",
                   "cumulative_share", "first_pass_yield", "final_yield")
#: Columns :func:`show_table` formats as money without being told.
MONEY_COLUMNS = ("cost", "material_cost", "labor_cost")

_PLOTLY = {"embedded": False}


# =============================================================================================
# data and scope
# =============================================================================================

def open_data(warehouse: str = "") -> OnDemandWarehouse:
    """Open the data a notebook reads: read-only, and connected only while a call runs.

    A kernel lives for hours; a DuckDB file held open in it, even read-only, would lock every
    writer out (the report flow, the collectors). The warehouse returned connects for each read
    and closes again (``with wh.held(): …`` groups several reads under one connection), so
    between cells the kernel holds nothing.

    Parameters
    ----------
    warehouse : str
        ``""``: the configured warehouse (``WORKBENCH_DATABASE_URL``, else the DuckDB file);
        a ``postgresql://`` URL; or the path of a DuckDB file (e.g. the extract a report run
        made).

    Returns
    -------
    OnDemandWarehouse

    Raises
    ------
    ConfigError
        When the DuckDB file does not exist.
    """
    cfg = settings()
    _say_lock_waits()
    text = str(warehouse).strip()
    if text.startswith(("postgresql://", "postgres://")):
        return OnDemandWarehouse.postgres(text, timescale=cfg.timescale)
    if not text:
        if cfg.database_url is None and not cfg.warehouse_path.is_file():
            raise ConfigError(f"the configured warehouse {cfg.warehouse_path} does not exist: run "
                              "`workbench demo`, or pass warehouse= (a DuckDB file or a postgresql:// URL)")
        return open_reader(cfg)
    path = Path(text).expanduser()
    if not path.is_file():
        raise ConfigError(f"warehouse {text!r} is neither a DuckDB file that exists nor a postgresql:// URL")
    return OnDemandWarehouse.duckdb(path, lock_timeout_s=cfg.lock_timeout_s)


def _say_lock_waits() -> None:
    """In an analyst's kernel, show the note that a read waits for the warehouse (a writer such as
    the 05:00 flow holds it): without it a cell would just seem to hang. Report runs log it."""
    import logging
    import sys

    logger = logging.getLogger("workbench.store.locks")
    if report_run() or any(getattr(h, "_workbench_note", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("Note: %(message)s"))
    handler.setLevel(logging.INFO)
    handler._workbench_note = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)


def _shift_days(wh: Warehouse, sites: Iterable[str] = ()) -> list[dt.date]:
    """The days with shifts in the plant's shift calendar (of ``sites`` when it has any for them)."""
    cal = wh.read("shift_calendar", columns=["site", "shift_date"])
    wanted = set(sites)
    if wanted and cal["site"].astype(str).isin(wanted).any():
        cal = cal[cal["site"].astype(str).isin(wanted)]
    return sorted({pd.Timestamp(d).date() for d in cal["shift_date"].dropna()})


def _resolve(wh: Warehouse, date: str | dt.date, days: int, tz: str, sites: Iterable[str] = ()
             ) -> tuple[dt.date, dt.date, dt.datetime, dt.datetime, tuple[dt.date, ...] | None]:
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ConfigError(f"days must be a whole number ≥ 1 (got {days!r})")
    if isinstance(date, dt.date):
        last = date.date() if isinstance(date, dt.datetime) else date
    elif not str(date).strip():
        last = jobs.latest_production_day(wh, tz=tz)
    else:
        try:
            last = dt.date.fromisoformat(str(date).strip())
        except ValueError:
            raise ConfigError(f"date must be YYYY-MM-DD or empty for the latest day (got {date!r})") from None
    calendar = _shift_days(wh, sites)
    shift_days: tuple[dt.date, ...] | None
    if calendar:
        # `date` is the day asked for (shifts or not); before it, only days with shifts count.
        before = [d for d in calendar if d < last][-(days - 1):] if days > 1 else []
        first = before[0] if before else last
        shift_days = tuple(d for d in calendar if first <= d <= last)
    else:
        # No shift calendar: nothing tells a production day from a day off.
        first, shift_days = last - dt.timedelta(days=days - 1), None
    start, end = jobs.production_day_range(wh, first=first, last=last + dt.timedelta(days=1), tz=tz)
    return first, last, start, end, shift_days


def resolve_days(wh: Warehouse, date: str | dt.date, days: int, tz: str, *,
                 sites: Iterable[str] = ()) -> tuple[dt.date, dt.date, dt.datetime, dt.datetime]:
    """The production days a notebook covers and the instants bounding them.

    ``days`` counts production days — days with shifts in the plant's shift calendar — not
    calendar days: on a plant that does not work weekends, ``days=7`` ending on a Monday reaches
    back to the Friday of the week before last, and the weekend days in between are inside the
    range but not counted (they have no planned time). ``date`` itself always counts, shifts or
    not, so ``days=1`` is exactly that day. With an empty shift calendar days are calendar days.

    Parameters
    ----------
    wh : Warehouse
        Where the data is (for the latest day and the shift calendar).
    date : str or date
        Last production day, ``YYYY-MM-DD``; ``""`` for the latest day with production data.
    days : int
        Number of production days ending at ``date`` (at least 1): ``date`` and the ``days - 1``
        days with shifts before it. Fewer when the calendar starts later (the range then starts
        at the calendar's first day; :func:`header` says so).
    tz : str
        Plant time zone.
    sites : iterable of str
        Count the shifts of these sites only (when the calendar has any for them).

    Returns
    -------
    tuple
        ``(first_day, last_day, start, end)``: ``[start, end)`` runs from the start of the first
        production day (its first shift, e.g. 06:00) to the start of the day after the last.
    """
    return _resolve(wh, date, days, tz, sites)[:4]


def _wanted(values: str | Iterable[str] | None) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        return [v.strip() for v in values.split(",") if v.strip()]
    return [str(v) for v in values]


def select_machines(wh: Warehouse, *, site: str = "", lines: Iterable[str] | str = (),
                    machines: Iterable[str] | str = ()) -> pd.DataFrame:
    """The rows of the ``machines`` table a notebook covers.

    Parameters
    ----------
    wh : Warehouse
        Where the machines table is.
    site : str
        Only this site (``""``: every site).
    lines : iterable of str
        Only these lines (empty: every line).
    machines : iterable of str
        Only these machine ids (empty: every machine).

    Returns
    -------
    DataFrame
        The selected machines, by id.

    Raises
    ------
    ConfigError
        When a requested site, line or machine does not exist, or nothing is left.
    """
    table = wh.read("machines").sort_values("machine_id", ignore_index=True)
    chosen = table
    filters = (("site", _wanted(site)), ("line", _wanted(lines)), ("machine_id", _wanted(machines)))
    for column, wanted in filters:
        if not wanted:
            continue
        unknown = sorted(set(wanted) - set(table[column].dropna().astype(str)))
        if unknown:
            known = ", ".join(sorted(table[column].dropna().astype(str).unique()))
            raise ConfigError(f"unknown {column.replace('_id', '')}(s) {', '.join(unknown)}; "
                              f"the warehouse has {known or 'none'}")
        chosen = chosen[chosen[column].astype(str).isin(wanted)]
    if chosen.empty:
        raise ConfigError(f"no machine matches site={site!r}, lines={list(_wanted(lines))}, "
                          f"machines={list(_wanted(machines))}")
    return chosen.reset_index(drop=True)


@dataclass(frozen=True, eq=False)
class Scope:
    """What a notebook covers: where the data is, which production days and which machines.

    Attributes
    ----------
    warehouse : Warehouse
        Where the data is: read-only, connected only while a call runs (see :func:`open_data`),
        so a scope kept in a kernel holds no file or connection.
    tz : str
        Plant time zone.
    first_day, last_day : date
        The first and the last production day covered (``last_day`` is the ``date`` asked for).
    start, end : datetime
        ``[start, end)`` bounding those days.
    machines : DataFrame
        The selected rows of the ``machines`` table.
    selected : bool
        Whether a site / line / machine filter was given (else every machine).
    micro_stop_threshold_s : float
        The configured micro-stop threshold.
    shift_days : tuple of date or None
        The days from ``first_day`` to ``last_day`` with shifts in the shift calendar; the
        others in between (weekends, shutdowns) are in ``[start, end)`` but not counted in
        :attr:`days`. None: days were counted as calendar days (no shift calendar).
    days_asked : int or None
        The ``days`` the scope was made with (more than :attr:`days` when the shift calendar
        starts later).
    """

    warehouse: Warehouse
    tz: str
    first_day: dt.date
    last_day: dt.date
    start: dt.datetime
    end: dt.datetime
    machines: pd.DataFrame
    selected: bool
    micro_stop_threshold_s: float
    shift_days: tuple[dt.date, ...] | None = None
    days_asked: int | None = None

    @property
    def calendar_days(self) -> int:
        """Number of calendar days from ``first_day`` to ``last_day``."""
        return (self.last_day - self.first_day).days + 1

    @property
    def days(self) -> int:
        """Number of production days covered: ``last_day`` and the days with shifts before it
        (calendar days when days are not counted by shifts)."""
        if self.shift_days is None:
            return self.calendar_days
        return len(set(self.shift_days) | {self.last_day})

    @property
    def days_without_shifts(self) -> list[dt.date]:
        """The days inside the range that are not counted: no shifts (e.g. a weekend)."""
        if self.shift_days is None:
            return []
        every = (self.first_day + dt.timedelta(days=i) for i in range(self.calendar_days))
        return [d for d in every if d not in self.shift_days and d != self.last_day]

    @property
    def machine_ids(self) -> list[str]:
        """Ids of the selected machines."""
        return self.machines["machine_id"].astype(str).tolist()

    @property
    def machine_filter(self) -> list[str] | None:
        """The machine ids to filter reads by, or None when every machine is selected."""
        return self.machine_ids if self.selected else None

    @property
    def trend_grain(self) -> str:
        """``"hour"`` for a single day, ``"day"`` for several."""
        return "hour" if self.days == 1 else "day"

    def before(self, days: int) -> dt.datetime:
        """The instant ``days`` calendar days before the start (e.g. a baseline's start)."""
        return self.start - dt.timedelta(days=days)

    def read(self, table: str, *, start: dt.datetime | None = None, end: dt.datetime | None = None,
             overlap: bool = False) -> pd.DataFrame:
        """Read a canonical table for the selected machines and days.

        Parameters
        ----------
        table : str
            Canonical table name. Tables without a time column are read whole.
        start, end : datetime, optional
            Override the range (e.g. ``start=scope.before(14)`` for a baseline).
        overlap : bool
            For interval tables: every interval overlapping the range, not only those starting in it.

        Returns
        -------
        DataFrame
            The rows, timestamps tz-aware (UTC).
        """
        tbl = schema.table(table)
        ranged = tbl.time_column is not None
        machines = self.machine_filter if "machine_id" in tbl.column_names else None
        return self.warehouse.read(table, start=(start or self.start) if ranged else None,
                                   end=(end or self.end) if ranged else None, machines=machines,
                                   overlap=overlap and ranged)

    def read_many(self, reads: Mapping[str, Any]) -> Tables:
        """Read several tables for the selected machines under one connection.

        Parameters
        ----------
        reads : mapping of table name to :class:`workbench.ml.daily.Read`
            Each table's range (e.g. :func:`workbench.ml.daily.anomaly_reads`).

        Returns
        -------
        Tables
            A mapping of table name to DataFrame (each converted from Arrow when first used).
        """
        from workbench.ml.daily import read_many

        return read_many(self.warehouse, reads, machines=self.machine_filter)

    def plant_frames(self) -> oee.PlantFrames:
        """The tables OEE and the loss analyses need (see :func:`workbench.jobs.load_plant_frames`,
        which reads them all under one connection, so that they fit together)."""
        return jobs.load_plant_frames(self.warehouse, start=self.start, end=self.end,
                                      machines=self.machine_filter)

    def oee(self, frames: oee.PlantFrames, *, by: Sequence[str]) -> oee.OEEResult:
        """OEE of the scope's days, grouped ``by`` (see :func:`workbench.oee.compute`)."""
        return oee.compute(frames, by=tuple(by), tz=self.tz,
                           micro_stop_threshold_s=self.micro_stop_threshold_s, start=self.start, end=self.end)


def scope(*, date: str | dt.date = "", days: int = 1, warehouse: str = "", site: str = "",
          lines: Iterable[str] | str = (), machines: Iterable[str] | str = ()) -> Scope:
    """Turn a notebook's common parameters into a :class:`Scope`.

    Parameters
    ----------
    date, days
        See :func:`resolve_days`: ``days`` counts production days (days with shifts) of the
        selected machines' sites.
    warehouse
        See :func:`open_data`.
    site, lines, machines
        See :func:`select_machines`.

    Returns
    -------
    Scope

    Notes
    -----
    The next figure :func:`show` displays embeds plotly.js again (a notebook makes its scope
    first, so a re-run notebook is complete on its own).
    """
    cfg = settings()
    wh = open_data(warehouse)
    with wh.held():  # one connection for the scope's reads, released before the notebook goes on
        chosen = select_machines(wh, site=site, lines=lines, machines=machines)
        sites = chosen["site"].dropna().astype(str).unique() if "site" in chosen.columns else ()
        first, last, start, end, shift_days = _resolve(wh, date, days, cfg.plant_timezone, sites)
    # A notebook starts by making its scope: after "Run all" in a live kernel its first figure
    # must carry plotly.js again, or an HTML export of the re-run would have none.
    _PLOTLY["embedded"] = False
    selected = bool(_wanted(site) or _wanted(lines) or _wanted(machines))
    return Scope(wh, cfg.plant_timezone, first, last, start, end, chosen, selected,
                 cfg.micro_stop_threshold_s, shift_days=shift_days, days_asked=days)


# =============================================================================================
# what the notebook covers
# =============================================================================================

def _utc_or_nat(value: Any) -> pd.Timestamp:
    if value is None:
        return pd.NaT
    ts = pd.Timestamp(value)
    return ts.tz_convert("UTC") if ts.tzinfo else ts.tz_localize("UTC")


def _span(frame: pd.DataFrame | pa.Table, tz: str) -> str:
    pairs = (("time", "time"), ("time_start", "time_end"), ("hour", "hour"))
    names = frame.column_names if isinstance(frame, pa.Table) else frame.columns
    for lo_col, hi_col in pairs:
        if lo_col in names and hi_col in names and len(frame):
            if isinstance(frame, pa.Table):  # a week of telemetry need not become a DataFrame for this
                lo = _utc_or_nat(pc.min(frame[lo_col]).as_py())
                hi = _utc_or_nat(pc.max(frame[hi_col]).as_py())
            else:
                lo = pd.to_datetime(frame[lo_col], utc=True).min()
                hi = pd.to_datetime(frame[hi_col], utc=True).max()
            if pd.isna(lo):
                return ""
            return f"{lo.tz_convert(tz):%Y-%m-%d %H:%M} → {hi.tz_convert(tz):%Y-%m-%d %H:%M}"
    return ""


def _listing(ids: list[str], limit: int = 12) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f", … ({len(ids) - limit} more)" if len(ids) > limit else "")


def _days_text(scope: Scope) -> str:
    """The days covered, saying what ``days`` counted."""
    first, last = f"{scope.first_day:%a %d %b %Y}", f"{scope.last_day:%a %d %b %Y}"
    if scope.calendar_days == 1:
        return first
    if scope.shift_days is None:
        return f"{scope.days} calendar days: {first} – {last}"
    text = f"{scope.days} production days: {first} – {last}"
    skipped = len(scope.days_without_shifts)
    if skipped:
        text += f" ({skipped} day{'s' if skipped != 1 else ''} without shifts skipped)"
    return text


def _days_notes(scope: Scope) -> list[str]:
    notes = []
    skipped = scope.days_without_shifts
    if skipped:
        days = _listing([f"{d:%a %d %b}" for d in skipped], 8)
        notes.append(f"  skipped:   {days} (no shifts in the calendar)")
    if scope.shift_days is not None and scope.last_day not in scope.shift_days:
        notes.append(f"  note:      {scope.last_day:%a %d %b %Y}, the day asked for, has no shifts "
                     "in the calendar")
    if scope.shift_days is None and scope.calendar_days > 1:
        notes.append("  note:      the shift calendar is empty: every calendar day counts")
    if scope.days_asked is not None and scope.days_asked > scope.days:
        notes.append(f"  note:      only {scope.days} of the {scope.days_asked} production days asked for: "
                     f"the shift calendar has none before {scope.first_day:%a %d %b %Y}")
    return notes


def header(scope: Scope, title: str, data: Mapping[str, pd.DataFrame | int] | oee.PlantFrames | None = None,
           *, notes: Sequence[str] = ()) -> None:
    """Print what a notebook covers: the days, the machines, and the data it read.

    Several days are described as production days (days with shifts in the calendar) with the
    days in between that have none — e.g. ``7 production days: Fri 23 Oct 2026 – Mon 02 Nov
    2026 (4 days without shifts skipped)`` and the skipped days listed below.

    Parameters
    ----------
    scope : Scope
        The notebook's scope.
    title : str
        What the notebook shows.
    data : mapping or PlantFrames, optional
        The frames read (``{table: frame}``; a row count alone works too): their row counts and
        the time range their rows span are listed.
    notes : sequence of str
        More lines to print (e.g. where a baseline comes from).
    """
    lines = [
        f"{title} — {_days_text(scope)}",
        *_days_notes(scope),
        f"  time:      {pd.Timestamp(scope.start):%Y-%m-%d %H:%M %Z} → "
        f"{pd.Timestamp(scope.end):%Y-%m-%d %H:%M %Z} ({scope.tz})",
        f"  data:      {scope.warehouse.location} ({scope.warehouse.engine})",
    ]
    ids = scope.machine_ids
    where = []
    for column, label in (("site", "site"), ("line", "line")):
        if column in scope.machines.columns:
            values = sorted(scope.machines[column].dropna().astype(str).unique())
            if values:
                where.append(f"{label}{'s' if len(values) > 1 else ''} {', '.join(values)}")
    which = "selected" if scope.selected else "all"
    lines.append(f"  machines:  {which} {len(ids)} — {_listing(ids)}"
                 + (f" ({'; '.join(where)})" if where else ""))
    if isinstance(data, oee.PlantFrames):
        data = {f.name: getattr(data, f.name) for f in fields(data)}
    if data:
        lines.append("  rows read:")
        width = max(len(name) for name in data)
        for name in data:
            frame = data.arrow(name) if isinstance(data, Tables) else data[name]
            if isinstance(frame, pd.DataFrame | pa.Table):
                span = _span(frame, scope.tz)
                lines.append(f"    {name:<{width}}  {len(frame):>10,}" + (f"   {span}" if span else ""))
            else:
                lines.append(f"    {name:<{width}}  {int(frame):>10,}")
    lines += [f"  {note}" for note in notes]
    print("\n".join(lines))


# =============================================================================================
# analysis glue the notebooks share
# =============================================================================================

def with_unscheduled_time(scope: Scope, downtime: pd.DataFrame, states: pd.DataFrame) -> pd.DataFrame:
    """Downtime events plus the time the machines were not scheduled, as planned stops, so that
    MTBF and times between failures count only scheduled time as uptime (see
    :func:`workbench.reliability.unscheduled_stops`).

    Parameters
    ----------
    scope : Scope
        The window and machines.
    downtime, states : DataFrame
        ``downtime_events`` and ``machine_states`` read with ``overlap=True``.

    Returns
    -------
    DataFrame
        The downtime rows followed by the not-scheduled rows.
    """
    off = reliability.unscheduled_stops(states, downtime, start=scope.start, end=scope.end,
                                        machines=scope.machine_ids)
    parts = [f for f in (downtime, off) if len(f)]
    return pd.concat(parts, ignore_index=True) if parts else downtime


@dataclass(frozen=True)
class WeibullChoice:
    """Which times between failures a Weibull was fitted to, and the fit.

    Attributes
    ----------
    machine : str or None
        The machine, or None for every machine pooled.
    label : str
        Plain-English description of the choice.
    fit : WeibullFit or None
        The fit; None when no data set had enough failures (``reason`` says why).
    reason : str
        Why this choice was made (or why there is no fit).
    """

    machine: str | None
    label: str
    fit: reliability.WeibullFit | None
    reason: str


def weibull_fit(tbf: pd.DataFrame, mtbf: pd.DataFrame, *, machine: str = "",
                confidence: float = 0.95, machines: pd.DataFrame | Mapping[str, Any] | None = None
                ) -> WeibullChoice:
    """Fit a Weibull to the times between failures of one machine or of all machines.

    Parameters
    ----------
    tbf : DataFrame
        :func:`workbench.reliability.times_between_failures` rows.
    mtbf : DataFrame
        :func:`workbench.reliability.mtbf_mttr` rows (to find the machine with most failures).
    machine : str
        ``""``: the machine with the most failures (pooled when it has too few to fit);
        ``"all"``: every machine pooled; else that machine.
    confidence : float
        Level of the parameter intervals.
    machines : DataFrame or mapping, optional
        Machine names for the label (see :func:`workbench.plots.machine_labels`), e.g.
        ``scope.machines``.

    Returns
    -------
    WeibullChoice
        Also printed in one line.
    """
    from workbench.plots import machine_labels

    wanted = machine.strip()
    if wanted.lower() == "all":
        order: list[tuple[str | None, str]] = [(None, "every machine pooled (as asked)")]
    elif wanted:
        order = [(wanted, "as asked")]
    else:
        order = [(None, "every machine pooled")]
        ranked = mtbf[mtbf["failures"] > 0].sort_values(["failures", "machine_id"], ascending=[False, True])
        if len(ranked):
            worst, count = str(ranked["machine_id"].iloc[0]), int(ranked["failures"].iloc[0])
            order.insert(0, (worst, f"the machine with the most failures ({count})"))
    problems = []
    for candidate, why in order:
        label = "all machines" if candidate is None else f"machine {machine_labels([candidate], machines)[0]}"
        try:
            fit = reliability.fit_weibull_tbf(tbf, confidence=confidence, machine=candidate)
        except ReliabilityError as exc:
            problems.append(str(exc))
            continue
        if problems:
            why += f"; {'; '.join(problems)}"
        choice = WeibullChoice(candidate, label, fit, why)
        break
    else:
        choice = WeibullChoice(None, "no fit", None, "; ".join(problems) or "no failures")
    print(f"Weibull fit: {choice.label} — {choice.reason}")
    return choice


# =============================================================================================
# display
# =============================================================================================

def heading(text: str, *, level: int = 2) -> None:
    """Display a heading computed at run time (e.g. the day's headline)."""
    from html import escape

    _display({"text/html": f"<h{level}>{escape(text)}</h{level}>", "text/markdown": f"{'#' * level} {text}",
              "text/plain": text})


def no_data(summary: DailySummary) -> bool:
    """On a day without production data, say so in a box and return True.

    Parameters
    ----------
    summary : DailySummary
        The day's summary (:attr:`~workbench.summary.DailySummary.has_data`,
        :attr:`~workbench.summary.DailySummary.no_data_statement`).

    Returns
    -------
    bool
        True when the day has no data: the notebook then leaves out its figures and tables,
        whose emptiness would read like a quiet day.
    """
    from html import escape

    if summary.has_data:
        return False
    text = summary.no_data_statement
    _display({"text/html": '<div role="alert" data-wb="no-data" style="border:2px solid #991b1b;'
                           'border-left:10px solid #991b1b;background:#fef2f2;color:#450a0a;'
                           'padding:10px 14px;margin:8px 0;font-size:14px;">'
                           '<div style="font-size:17px;font-weight:bold;color:#991b1b;">'
                           "⚠ No production data</div>"
                           f"<div>{escape(text)}</div></div>",
              "text/markdown": f"> **⚠ No production data**\n>\n> {text}",
              "text/plain": f"NO PRODUCTION DATA: {text}"})
    return True


def _display(bundle: dict[str, Any]) -> None:
    from IPython.display import display

    display(bundle, raw=True)


def show(fig: Any, *, include_plotlyjs: bool | None = None) -> None:
    """Display a plotly figure so that it survives every route out of the notebook.

    The output carries ``text/html`` (``fig.to_html(full_html=False, …)``, what nbconvert
    exports), ``application/vnd.plotly.v1+json`` (JupyterLab's plotly renderer) and a
    ``text/plain`` line. The first figure of the kernel session embeds plotly.js inline (from
    the installed package: nothing is fetched); later ones rely on it. In a report run none
    does: the report page supplies it.

    Parameters
    ----------
    fig : plotly.graph_objects.Figure
        The figure.
    include_plotlyjs : bool, optional
        Force embedding plotly.js (True) or not (False); default: only the first time.
    """
    import plotly.io as pio

    if include_plotlyjs is None:
        embed = not _PLOTLY["embedded"] and not report_run()
    else:
        embed = bool(include_plotlyjs)
    config = {"displaylogo": False, "responsive": True}
    height = fig.layout.height or 450
    html = fig.to_html(full_html=False, include_plotlyjs=embed, config=config, default_height=f"{height}px",
                       default_width="100%")
    spec = json.loads(pio.to_json(fig, validate=False, remove_uids=False))
    spec["config"] = config
    title = fig.layout.title.text if fig.layout.title and fig.layout.title.text else "figure"
    bundle = {"text/html": html, "application/vnd.plotly.v1+json": spec,
              "text/plain": f"<plotly figure: {title.split('<br>')[0]}>"}
    _display(bundle)
    if embed:
        _PLOTLY["embedded"] = True


def record(name: str, value: Any) -> None:
    """Keep ``value`` in the executed notebook for the pipeline that runs it.

    Only in a report run (see :func:`workbench.config.report_run`); in an analyst's kernel it
    does nothing. The output has only the :data:`RECORD_MIME` type, which report pages do not
    show; :func:`workbench.reports.read_records` reads it back.

    Parameters
    ----------
    name : str
        What the pipeline looks for (e.g. ``"daily_summary"``).
    value : object
        JSON-compatible data, or an object with ``to_record()`` returning such data (e.g.
        :class:`workbench.summary.DailySummary`).
    """
    if not report_run():
        return
    payload = value.to_record() if hasattr(value, "to_record") else value
    try:
        json.dumps(payload, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"record {name!r}: the value must be JSON data ({exc})") from None
    _display({RECORD_MIME: {"name": name, "value": payload}})


def warm_up() -> None:
    """Do once what the first figure, table and control chart of a notebook would do.

    Loads plotly's trace and layout classes (plotly imports them on first use), compiles
    pandas' table template and computes the SPC constants of subgroup sizes 2–10 (each is an
    integral). A kernel zygote (:mod:`workbench.reports.kernels`) calls this before it forks,
    so every report kernel starts with it done; in an analyst's kernel it is never needed.
    """
    import plotly.graph_objects as go
    import plotly.io as pio
    from plotly.subplots import make_subplots
    from scipy import optimize  # noqa: F401 — Weibull fits

    from workbench import plots
    from workbench.spc import constants

    fig = make_subplots(rows=1, cols=2)
    fig.add_trace(go.Bar(x=["a"], y=[1.0]), row=1, col=1)
    fig.add_trace(go.Scatter(x=[1.0], y=[1.0], mode="lines+markers"), row=1, col=2)
    fig.add_hline(y=1.0, line={"dash": "dash"})
    fig.add_vline(x=1.0)
    fig.add_annotation(text="x", x=1.0, y=1.0)
    fig.update_layout(template=plots.TEMPLATE)
    for trace in (go.Histogram(x=[1.0]), go.Indicator(mode="number", value=1.0),
                  go.Waterfall(x=["a"], y=[1.0])):
        fig.add_trace(trace)
    fig.to_html(full_html=False, include_plotlyjs=False)
    pio.to_json(fig, validate=False)
    table = pd.DataFrame({"a": [1.0], "b": ["x"]})
    styler = table.style.format({"a": "{:.1f}"}).hide(axis="index")
    styler.set_properties(subset=["a"], **{"text-align": "right"}).to_html()
    for n in range(2, 11):
        constants.d2(n), constants.d3(n), constants.c4(n)


def _formats(frame: pd.DataFrame, *, percent: set[str], money: set[str], decimals: int, currency: str,
             tz: str | None, formats: Mapping[str, str]) -> tuple[pd.DataFrame, dict[str, Any]]:
    df = frame.copy()
    fmt: dict[str, Any] = {}
    for col in df.columns:
        s = df[col]
        if col in formats:
            fmt[col] = formats[col]
        elif isinstance(s.dtype, pd.DatetimeTZDtype):
            df[col] = s.dt.tz_convert(tz) if tz else s
            fmt[col] = lambda v: "–" if pd.isna(v) else f"{v:%Y-%m-%d %H:%M}"
        elif pd.api.types.is_bool_dtype(s):
            continue
        elif col in percent:
            fmt[col] = "{:.1%}"
        elif col in money:
            fmt[col] = currency + "{:,.2f}"
        elif pd.api.types.is_integer_dtype(s):
            fmt[col] = "{:,}"
        elif pd.api.types.is_float_dtype(s):
            fmt[col] = f"{{:,.{decimals}f}}"
    return df, fmt


def show_table(frame: pd.DataFrame, *, columns: Sequence[str] | None = None, percent: Iterable[str] = (),
               money: Iterable[str] = (), decimals: int = 1, formats: Mapping[str, str] | None = None,
               currency: str = "$", caption: str | None = None, max_rows: int | None = 50,
               tz: str | None = None, machines: pd.DataFrame | Mapping[str, Any] | None = None) -> None:
    """Display a frame as a tidy table: no index, readable headers, formatted numbers.

    Fractions in :data:`PERCENT_COLUMNS` (and ``percent``) show as percentages, costs in
    :data:`MONEY_COLUMNS` (and ``money``) as money, integers with thousands separators, other
    numbers with ``decimals`` decimals, missing values as "–", timestamps in ``tz``.

    Parameters
    ----------
    frame : DataFrame
        The table.
    columns : sequence of str, optional
        Show only these columns, in this order.
    percent, money : iterable of str
        More columns to format as percentages / money.
    decimals : int
        Decimals of other floating-point columns.
    formats : mapping, optional
        Format strings for particular columns (``{"center": "{:.4f}"}``), over the rules above.
    currency : str
        Currency symbol.
    caption : str, optional
        Caption above the table.
    max_rows : int, optional
        Show at most this many rows (a note says how many more there are).
    tz : str, optional
        Show tz-aware timestamps in this zone.
    machines : DataFrame or mapping, optional
        Machine names (e.g. ``scope.machines``): the ``machine_id`` column then shows, under
        the header "machine", each machine labelled as the figures label it
        (:func:`workbench.plots.machine_label`).
    """
    df = frame if columns is None else frame[list(columns)]
    if machines is not None and "machine_id" in df.columns:
        from workbench.plots import machine_labels

        df = df.assign(machine_id=machine_labels(df["machine_id"], machines)).rename(
            columns={"machine_id": "machine"})
    more = max(len(df) - max_rows, 0) if max_rows else 0
    df = df.head(max_rows) if max_rows else df
    df, fmt = _formats(df, percent=set(PERCENT_COLUMNS) | set(percent), money=set(MONEY_COLUMNS) | set(money),
                       decimals=decimals, currency=currency, tz=tz, formats=formats or {})
    labels = {c: str(c).replace("_", " ") for c in df.columns}
    df = df.rename(columns=labels)
    styler = (df.style.format({labels[c]: f for c, f in fmt.items()}, na_rep="–")
              .hide(axis="index")
              .set_table_styles([
                  {"selector": "th",
                   "props": "text-align: left; padding: 4px 10px; border-bottom: 1px solid #999;"},
                  {"selector": "td", "props": "padding: 3px 10px; border-bottom: 1px solid #eee;"},
                  {"selector": "caption", "props": "caption-side: top; text-align: left; font-weight: bold;"},
                  {"selector": "", "props": "border-collapse: collapse; font-size: 13px;"},
              ]))
    # Numbers right, text left — stated explicitly, since notebook themes right-align every cell.
    numeric = [label for col, label in labels.items() if col in fmt]
    text = [label for col, label in labels.items() if col not in fmt]
    if numeric:
        styler = styler.set_properties(subset=numeric, **{"text-align": "right"})
    if text:
        styler = styler.set_properties(subset=text, **{"text-align": "left"})
    if caption:
        styler = styler.set_caption(caption)
    html = styler.to_html()
    plain = styler.to_string(delimiter="\t") if len(df) else "(no rows)"
    if more:
        note = f"… {more:,} more row{'s' if more != 1 else ''} not shown"
        html += f"<p><em>{note}</em></p>"
        plain += "\n" + note
    if not len(df):
        html += "<p><em>No rows in the selected range.</em></p>"
    _display({"text/html": html, "text/plain": plain})
