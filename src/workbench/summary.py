"""The daily summary: one production day of a plant in a few small tables.

Computed once from the canonical tables; the ``daily_summary`` notebook displays it and the
05:00 e-mail renders it — neither recomputes anything.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from workbench import coverage, losses, oee
from workbench.errors import WorkbenchError

#: OEE colour bands (world class ≥ 85 %; below 65 % needs attention) — overridable per pipeline.
DEFAULT_THRESHOLDS = (0.85, 0.65)
#: Days of history before the reported day used to set phase-I control limits.
SPC_BASELINE_DAYS = 14


@dataclass(frozen=True)
class DailySummary:
    """One production day.

    Attributes
    ----------
    day : date
        Production day (plant time; it starts with the first shift).
    plant : dict
        availability, performance, quality, oee (None where undefined), good, rejects,
        pbt_min, no_data_min — time-weighted over all machines. On a day without data (see
        :attr:`has_data`) pbt_min and no_data_min are the planned busy time the shift calendar
        had for the machines, all of it without data.
    machines : DataFrame
        machine_id, name, line, availability, performance, quality, oee, good, rejects,
        down_min, status ("good" / "watch" / "poor" / "no plan").
    downtime_top : DataFrame
        reason_category, minutes, events, share (unplanned stops; blank reasons as "(uncoded)").
    scrap_top : DataFrame
        scrap_category, quantity, cost, share.
    spc_violations : DataFrame
        machine_id, part_number, characteristic, rule, subgroup, message.
    spc_episodes : DataFrame
        Out-of-control episodes, most consequential first (:func:`workbench.spc.episodes_table`:
        series, start, end, subgroups, rules, direction, shift_sigma, cpk, expected_out,
        observed_out, consequence, description) — what the e-mail lists.
    data : dict
        What it was computed from: rows per table and the time range (for the report footer);
        ``has_data`` (some machine reported a state or a produced part that day) and ``shifts``
        (shifts of the calendar in the day). Both are missing from records kept before they
        existed; see :attr:`has_data`.
    thresholds : tuple of float
        (good, watch) OEE thresholds.
    """

    day: dt.date
    tz: str
    plant: dict[str, float | int | None]
    machines: pd.DataFrame
    downtime_top: pd.DataFrame
    scrap_top: pd.DataFrame
    spc_violations: pd.DataFrame
    data: dict[str, object] = field(default_factory=dict)
    thresholds: tuple[float, float] = DEFAULT_THRESHOLDS
    spc_episodes: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=EPISODE_COLUMNS))

    @property
    def spc_by_series(self) -> pd.DataFrame:
        """Violations counted per machine × part × characteristic (most first), with the rules."""
        v = self.spc_violations
        if v.empty:
            cols = ["machine_id", "part_number", "characteristic", "violations", "rules"]
            return pd.DataFrame(columns=cols)
        g = v.groupby(["machine_id", "part_number", "characteristic"])
        out = g.agg(violations=("rule", "size"), rules=("rule", lambda r: ", ".join(sorted(set(r)))))
        return out.reset_index().sort_values(["violations", "machine_id"], ascending=[False, True],
                                             ignore_index=True)

    def to_record(self) -> dict[str, Any]:
        """The summary as JSON-compatible data (frames as pandas table-schema JSON, which keeps
        dtypes and time zones), e.g. to keep in an executed notebook for the e-mail.

        See :meth:`from_record` for the way back.
        """
        frames = {name: json.loads(getattr(self, name).to_json(orient="table", date_format="iso",
                                                                index=False))
                  for name in _FRAMES}
        return {"kind": "DailySummary", "version": 1, "day": self.day.isoformat(), "tz": self.tz,
                "plant": dict(self.plant), "frames": frames, "data": self.data,
                "thresholds": list(self.thresholds)}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> DailySummary:
        """The summary :meth:`to_record` wrote.

        Raises
        ------
        WorkbenchError
            When ``record`` is not a daily summary record of a version this code reads.
        """
        if not isinstance(record, dict) or record.get("kind") != "DailySummary" or record.get("version") != 1:
            raise WorkbenchError("not a DailySummary record (version 1)")
        try:
            # spc_episodes came later: a record kept before it has none (an empty list, not an error).
            frames = {name: _frame_from_table_json(record["frames"][name])
                      for name in _FRAMES if name in record["frames"] or name not in _LATER_FRAMES}
            good, watch = record["thresholds"]
            return cls(dt.date.fromisoformat(str(record["day"])), str(record["tz"]), dict(record["plant"]),
                       frames["machines"], frames["downtime_top"], frames["scrap_top"],
                       frames["spc_violations"], dict(record.get("data") or {}), (float(good), float(watch)),
                       frames.get("spc_episodes", pd.DataFrame(columns=EPISODE_COLUMNS)))
        except (KeyError, TypeError, ValueError) as exc:
            raise WorkbenchError(f"malformed DailySummary record: {type(exc).__name__}: {exc}") from None

    @property
    def has_data(self) -> bool:
        """Whether some machine reported a state or a produced part that day.

        False means the figures are not a quiet day but no data at all (a dead collector, a failed
        sync, a day outside the data): :attr:`headline` and :attr:`no_data_statement` say so.
        A record kept before the flag existed is judged by its row counts; a summary that has
        neither is taken to have data (nothing says otherwise).
        """
        flag = self.data.get("has_data")
        if flag is not None:
            return bool(flag)
        rows = self.data.get("rows")
        if isinstance(rows, dict) and rows:
            return bool(rows.get("production_events") or rows.get("machine_states"))
        return True

    @property
    def no_data_min(self) -> float:
        """Planned minutes without data (on a day without data: all of the calendar's)."""
        value = self.plant.get("no_data_min")
        return 0.0 if value is None or pd.isna(value) else float(value)

    def _no_calendar(self) -> bool:
        return self.data.get("shifts") == 0

    @property
    def headline(self) -> str:
        """One line for an e-mail subject: plant OEE and the day — or, on a day without any
        production data, ``NO DATA`` and why, never an OEE of "n/a" that reads like a quiet day."""
        if not self.has_data:
            if self._no_calendar():
                return f"NO DATA — {self.day:%a %d %b %Y}: no production and no shift calendar for this day"
            return (f"NO DATA — {self.day:%a %d %b %Y}: no production recorded "
                    f"({self.no_data_min:,.0f} planned min without data)")
        value = self.plant.get("oee")
        shown = "n/a" if value is None else f"{value:.1%}"
        return f"Plant OEE {shown} — {self.day:%a %d %b %Y}"

    @property
    def no_data_statement(self) -> str:
        """What a day without data means, in plain words, for the top of the e-mail and the
        notebook ("" on a day with data)."""
        if self.has_data:
            return ""
        span = f"{self.day:%a %d %b %Y}"
        try:
            zone = ZoneInfo(self.tz)
            lo = dt.datetime.fromisoformat(str(self.data["start"])).astimezone(zone)
            hi = dt.datetime.fromisoformat(str(self.data["end"])).astimezone(zone)
            span += f" ({lo:%H:%M %a %d %b} to {hi:%H:%M %a %d %b %Y}, {self.tz})"
        except (KeyError, ValueError, TypeError, LookupError):
            pass  # an old or hand-made record without its range: the day alone
        said = (f"No production data for {span}: no machine reported a state or a produced part. "
                "These are not the figures of a quiet day — there are no figures.")
        if self._no_calendar():
            return (f"{said} The shift calendar has no shift on this day either. If the plant worked, "
                    "check the collectors and syncs (workbench sources status) and the shift calendar.")
        if self.no_data_min <= 0:
            return (f"{said} The shift calendar has shifts on this day but no planned production time "
                    "(planned stops cover them).")
        return (f"{said} The shift calendar planned {self.no_data_min:,.0f} machine-minutes of production; "
                "all of them are without data. Check the collectors and syncs (workbench sources status) "
                "before reading this day as a quiet one.")


_FRAMES = ("machines", "downtime_top", "scrap_top", "spc_violations", "spc_episodes")
_LATER_FRAMES = ("spc_episodes",)
#: Columns of :attr:`DailySummary.spc_episodes` (as :func:`workbench.spc.episodes_table`; kept here so
#: that reading a summary does not import scipy).
EPISODE_COLUMNS = ["machine_id", "part_number", "characteristic", "start", "end", "subgroups", "violations",
                   "rules", "direction", "shift_sigma", "cpk", "expected_out", "observed_out", "consequence",
                   "description"]


def _frame_from_table_json(table: object) -> pd.DataFrame:
    frame = pd.read_json(io.StringIO(json.dumps(table)), orient="table")
    return frame.reset_index(drop=True)


def status(value: float | None, thresholds: tuple[float, float] = DEFAULT_THRESHOLDS) -> str:
    """Colour band of an OEE value."""
    if value is None or pd.isna(value):
        return "no plan"
    good, watch = thresholds
    return "good" if value >= good else "watch" if value >= watch else "poor"


def _none(value: object) -> float | int | None:
    return None if value is None or pd.isna(value) else value  # type: ignore[return-value]


def daily_summary(tables: dict[str, pd.DataFrame], *, day: dt.date, start: dt.datetime, end: dt.datetime,
                  tz: str, thresholds: tuple[float, float] = DEFAULT_THRESHOLDS, top: int = 5,
                  micro_stop_threshold_s: float = 120.0, rules: str | None = None,
                  spc_tables: dict[str, pd.DataFrame] | None = None) -> DailySummary:
    """Summarise production day ``day`` (``[start, end)``) from canonical tables.

    ``tables`` needs the OEE tables (see :class:`workbench.oee.PlantFrames`) for the day, and
    may have ``scrap_events`` and ``work_orders`` (scrap cost) and ``quality_measurements`` with
    ``characteristics`` (SPC: limits from the :data:`SPC_BASELINE_DAYS` before ``start``,
    applied to the day, with each characteristic's configured chart and rules unless ``rules``
    names a rule set for all). ``spc_tables`` holds ``downtime_events`` and ``machine_states``
    over the SPC baseline and the day, for characteristics configured with the tool-wear chart
    (default: ``tables``, which suffices when they cover the baseline).
    """
    if thresholds[0] < thresholds[1]:
        raise WorkbenchError(f"OEE thresholds must be (good, watch) with good ≥ watch, got {thresholds}")
    frames = oee.PlantFrames.from_tables(tables)
    result = oee.compute(frames, by=("machine_id",), tz=tz, micro_stop_threshold_s=micro_stop_threshold_s,
                         start=start, end=end)
    plant_row = oee.compute(frames, by=(), tz=tz, micro_stop_threshold_s=micro_stop_threshold_s,
                            start=start, end=end).table
    p = plant_row.iloc[0] if len(plant_row) else pd.Series(dtype=float)
    plant = {k: _none(p.get(k)) for k in ("availability", "performance", "quality", "oee")}
    plant |= {k: int(p.get(k, 0)) for k in ("good", "rejects")}
    plant |= {k: float(p.get(k, 0.0)) for k in ("pbt_min", "no_data_min")}
    found = coverage.data_coverage(frames, start=start, end=end, tz=tz,
                                   micro_stop_threshold_s=micro_stop_threshold_s)
    if not found.has_data:
        # OEE computes nothing for machines that reported nothing; the calendar's planned time is
        # what went without data, and saying how much is what tells a dead collector from a day off.
        plant["pbt_min"] = plant["no_data_min"] = found.planned_min or 0.0

    names = tables["machines"].set_index("machine_id")
    m = result.table.copy()
    m["name"] = m["machine_id"].map(names["name"]) if "name" in names.columns else m["machine_id"]
    m["line"] = m["machine_id"].map(names["line"]) if "line" in names.columns else None
    m["status"] = [status(v, thresholds) for v in m["oee"]]
    machines = m[["machine_id", "name", "line", "availability", "performance", "quality", "oee", "good",
                  "rejects", "down_min", "status"]].sort_values(["oee", "machine_id"], na_position="last")

    downtime = tables.get("downtime_events", pd.DataFrame())
    if not downtime.empty:
        downtime = downtime[(downtime["time_start"] >= start) & (downtime["time_start"] < end)]
    downtime_top = (losses.downtime_pareto(downtime, by="reason_category",
                                           reason_codes=tables.get("reason_codes")).head(top)
                    if not downtime.empty else pd.DataFrame(columns=["reason_category", "minutes", "events",
                                                                     "share"]))
    scrap = tables.get("scrap_events", pd.DataFrame())
    if not scrap.empty:
        scrap = scrap[(scrap["time"] >= start) & (scrap["time"] < end)]
    if scrap.empty:
        scrap_top = pd.DataFrame(columns=["scrap_category", "quantity", "cost", "share"])
    else:
        scrap_top = losses.scrap_pareto(scrap, by="scrap_category",
                                        work_orders=tables.get("work_orders")).head(top)

    violations, episodes = spc_findings(tables.get("quality_measurements", pd.DataFrame()), start=start,
                                        end=end, characteristics=tables.get("characteristics"), rules=rules,
                                        tables=spc_tables if spc_tables is not None else tables)
    data = {"rows": {name: len(frame) for name, frame in tables.items()},
            "start": start.isoformat(), "end": end.isoformat(), "has_data": found.has_data,
            "shifts": found.shifts}
    return DailySummary(day, tz, plant, machines.reset_index(drop=True),
                        downtime_top[[c for c in downtime_top.columns if c != "cumulative_share"]],
                        scrap_top[[c for c in scrap_top.columns if c != "cumulative_share"]],
                        violations, data, thresholds, episodes)


def spc_findings(measurements: pd.DataFrame, *, start: dt.datetime, end: dt.datetime,
                 characteristics: pd.DataFrame | None = None, rules: str | None = None,
                 min_subgroups: int = 20,
                 tables: dict[str, pd.DataFrame] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rule violations and out-of-control episodes in ``[start, end)`` of every machine × part ×
    characteristic, against limits from the :data:`SPC_BASELINE_DAYS` before ``start``
    (:func:`workbench.spc.studies`, :func:`workbench.spc.episodes`).

    A series with too little history for limits is listed among the violations with rule
    ``"no limits"`` rather than silently skipped. ``tables`` (downtime events and machine states)
    gives characteristics configured with a tool-wear chart the tool ages they need.

    Returns
    -------
    (DataFrame, DataFrame)
        Violations (machine_id, part_number, characteristic, rule, subgroup, message) and
        episodes ranked by consequence (:data:`EPISODE_COLUMNS`).
    """
    from workbench import spc  # scipy: imported when SPC is computed, not by every reader of a summary

    cols = ["machine_id", "part_number", "characteristic", "rule", "subgroup", "message"]
    if measurements.empty:
        return pd.DataFrame(columns=cols), pd.DataFrame(columns=EPISODE_COLUMNS)
    found = spc.studies(measurements, characteristics if characteristics is not None else pd.DataFrame(),
                        start=start, end=end, baseline_start=start - dt.timedelta(days=SPC_BASELINE_DAYS),
                        rules=rules, min_subgroups=min_subgroups, tables=tables)
    rows = spc.violations_table(found)[cols]
    missing = pd.DataFrame(
        [(st.machine_id, st.part_number, st.characteristic, "no limits", None,
          f"not enough history for control limits: {st.problem}") for st in found if st.current is None],
        columns=cols)
    violations = pd.concat([rows, missing], ignore_index=True) if len(missing) else rows
    return violations, spc.episodes_table(spc.episodes(found))[EPISODE_COLUMNS]
