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

import pandas as pd

from workbench import losses, oee
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
        pbt_min, no_data_min — time-weighted over all machines.
    machines : DataFrame
        machine_id, name, line, availability, performance, quality, oee, good, rejects,
        down_min, status ("good" / "watch" / "poor" / "no plan").
    downtime_top : DataFrame
        reason_category, minutes, events, share (unplanned stops; blank reasons as "(uncoded)").
    scrap_top : DataFrame
        scrap_category, quantity, cost, share.
    spc_violations : DataFrame
        machine_id, part_number, characteristic, rule, subgroup, message.
    data : dict
        What it was computed from: rows per table and the time range (for the report footer).
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
            frames = {name: _frame_from_table_json(record["frames"][name]) for name in _FRAMES}
            good, watch = record["thresholds"]
            return cls(dt.date.fromisoformat(str(record["day"])), str(record["tz"]), dict(record["plant"]),
                       frames["machines"], frames["downtime_top"], frames["scrap_top"],
                       frames["spc_violations"], dict(record.get("data") or {}), (float(good), float(watch)))
        except (KeyError, TypeError, ValueError) as exc:
            raise WorkbenchError(f"malformed DailySummary record: {type(exc).__name__}: {exc}") from None

    @property
    def headline(self) -> str:
        """One line for an e-mail subject: plant OEE and the day."""
        value = self.plant.get("oee")
        shown = "n/a" if value is None else f"{value:.1%}"
        return f"Plant OEE {shown} — {self.day:%a %d %b %Y}"


_FRAMES = ("machines", "downtime_top", "scrap_top", "spc_violations")


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
                  micro_stop_threshold_s: float = 120.0, rules: str = "western_electric") -> DailySummary:
    """Summarise production day ``day`` (``[start, end)``) from canonical tables.

    ``tables`` needs the OEE tables (see :class:`workbench.oee.PlantFrames`) for the day, and
    may have ``scrap_events`` and ``work_orders`` (scrap cost) and ``quality_measurements`` with
    ``characteristics`` (SPC: limits from the :data:`SPC_BASELINE_DAYS` before ``start``,
    applied to the day).
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

    violations = spc_violations(tables.get("quality_measurements", pd.DataFrame()), start=start, end=end,
                                characteristics=tables.get("characteristics"), rules=rules)
    data = {"rows": {name: len(frame) for name, frame in tables.items()},
            "start": start.isoformat(), "end": end.isoformat()}
    return DailySummary(day, tz, plant, machines.reset_index(drop=True),
                        downtime_top[[c for c in downtime_top.columns if c != "cumulative_share"]],
                        scrap_top[[c for c in scrap_top.columns if c != "cumulative_share"]],
                        violations, data, thresholds)


def spc_violations(measurements: pd.DataFrame, *, start: dt.datetime, end: dt.datetime,
                   characteristics: pd.DataFrame | None = None, rules: str | None = None,
                   min_subgroups: int = 20) -> pd.DataFrame:
    """Rule violations in ``[start, end)`` of every machine × part × characteristic, against
    limits from the :data:`SPC_BASELINE_DAYS` before ``start`` (:func:`workbench.spc.studies`).

    A series with too little history for limits is listed with rule ``"no limits"`` rather than
    silently skipped.
    """
    from workbench import spc  # scipy: imported when SPC is computed, not by every reader of a summary

    cols = ["machine_id", "part_number", "characteristic", "rule", "subgroup", "message"]
    if measurements.empty:
        return pd.DataFrame(columns=cols)
    found = spc.studies(measurements, characteristics if characteristics is not None else pd.DataFrame(),
                        start=start, end=end, baseline_start=start - dt.timedelta(days=SPC_BASELINE_DAYS),
                        rules=rules, min_subgroups=min_subgroups)
    rows = spc.violations_table(found)[cols]
    missing = pd.DataFrame(
        [(st.machine_id, st.part_number, st.characteristic, "no limits", None,
          f"not enough history for control limits: {st.problem}") for st in found if st.current is None],
        columns=cols)
    return pd.concat([rows, missing], ignore_index=True) if len(missing) else rows
