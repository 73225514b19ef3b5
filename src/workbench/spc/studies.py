"""SPC studies of configured characteristics: phase I limits from a baseline, phase II on a period.

For every measured series — machine × part × characteristic — with data in the period, a
:class:`Study` holds the chart type and rules configured in the ``characteristics`` table, the
phase I chart estimated from the baseline before the period, the phase II chart of the period
judged against those frozen limits, a capability study of the period against the specification,
and the configured multi-level limits. What could not be computed is said in ``problem`` /
``notes`` instead of being skipped silently.

A subgroup belongs to the baseline or the period by the time of its first measurement, so a
subgroup that straddles the boundary is never cut in two.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import SPCError
from workbench.spc.capability import Capability, capability
from workbench.spc.charts import DEFAULT_RULES, ChartPair, ControlChart, Violation, control_chart
from workbench.spc.limits import LimitSet

__all__ = ["SERIES_KEYS", "Study", "studies", "studies_table", "violations_table"]

SERIES_KEYS = ("machine_id", "part_number", "characteristic")
_VARIABLES_CHARTS = ("xbar_r", "xbar_s", "imr")


@dataclass(frozen=True, eq=False)
class Study:
    """One series' SPC study.

    Attributes
    ----------
    machine_id, part_number, characteristic : str
        The series.
    unit : str or None
        Measurement unit.
    chart : str
        Chart name used (``"xbar_r"``, ``"xbar_s"``, ``"imr"``).
    rules : str
        Rule set applied.
    baseline : ChartPair or ControlChart or None
        Phase I chart on the baseline (None when limits could not be set).
    current : ChartPair or ControlChart or None
        Phase II chart of the period against the baseline's limits.
    capability : Capability or None
        Capability of the period's measurements against the specification (None without
        specification limits or enough data).
    limits : LimitSet or None
        The configured multi-level limits.
    data : DataFrame
        The period's measurements of the series (for histograms and drill-down).
    problem : str or None
        Why there is no chart, when there is none.
    notes : tuple of str
        Other things that could not be done (e.g. capability).
    """

    machine_id: str
    part_number: str
    characteristic: str
    unit: str | None
    chart: str
    rules: str
    baseline: ChartPair | ControlChart | None
    current: ChartPair | ControlChart | None
    capability: Capability | None
    limits: LimitSet | None
    data: pd.DataFrame = field(repr=False)
    problem: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """``machine · part · characteristic``."""
        return f"{self.machine_id} · {self.part_number} · {self.characteristic}"

    @property
    def violations(self) -> tuple[Violation, ...]:
        """Rule violations of the period (both charts of a pair)."""
        return () if self.current is None else tuple(self.current.violations)

    @property
    def values(self) -> pd.Series:
        """The period's measured values."""
        return self.data["value"]


def _config(characteristics: pd.DataFrame, part: str, char: str) -> dict[str, Any]:
    if characteristics.empty:
        return {}
    rows = characteristics[(characteristics["part_number"] == part)
                           & (characteristics["characteristic"] == char)]
    return {} if rows.empty else rows.iloc[0].to_dict()


def _text(value: Any, default: str) -> str:
    missing = value is None or value == "" or (not isinstance(value, str) and pd.isna(value))
    return default if missing else str(value)


def _number(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def studies(measurements: pd.DataFrame, characteristics: pd.DataFrame, *, start: dt.datetime,
            end: dt.datetime, baseline_start: dt.datetime, rules: str | None = None,
            min_subgroups: int = 20, confidence_level: float = 0.95) -> list[Study]:
    """SPC study of every series with measurements in ``[start, end)``.

    Parameters
    ----------
    measurements : DataFrame
        ``quality_measurements`` rows covering ``[baseline_start, end)``.
    characteristics : DataFrame
        The ``characteristics`` table (chart type, rules, specification, multi-level limits).
        A series without a row gets an X̄-R chart, the default rules and no capability.
    start, end : datetime
        The period judged (tz-aware).
    baseline_start : datetime
        Start of the baseline ``[baseline_start, start)`` that sets the phase I limits.
    rules : str, optional
        Rule set for every series; default each characteristic's configured ``rules``
        (``western_electric`` when none).
    min_subgroups : int
        Fewest baseline subgroups the limits may rest on.
    confidence_level : float
        Level of the capability intervals.

    Returns
    -------
    list of Study
        Most rule violations first, then by machine, part and characteristic.
    """
    if measurements.empty:
        return []
    missing = [c for c in (*SERIES_KEYS, "time", "subgroup_id", "value") if c not in measurements.columns]
    if missing:
        raise SPCError(f"quality_measurements lacks column(s) {', '.join(missing)}")
    if not baseline_start <= start < end:
        raise SPCError(f"expected baseline_start ≤ start < end, got {baseline_start}, {start}, {end}")
    m = measurements[(measurements["time"] >= baseline_start) & (measurements["time"] < end)]
    first = m.groupby([*SERIES_KEYS, "subgroup_id"])["time"].transform("min")
    m = m.assign(_current=(first >= start).to_numpy())
    out = []
    for key, series in m.groupby(list(SERIES_KEYS), sort=True):
        now = series[series["_current"]].drop(columns="_current").sort_values("time", kind="stable")
        if now.empty:
            continue
        machine, part, char = (str(k) for k in key)
        cfg = _config(characteristics, part, char)
        chart_name = _text(cfg.get("chart_type"), "xbar_r").replace("-", "_").lower()
        rule_set = rules or _text(cfg.get("rules"), DEFAULT_RULES)
        unit = cfg.get("unit") if cfg.get("unit") is not None else (
            now["unit"].iloc[0] if "unit" in now.columns else None)
        before = series[~series["_current"]].drop(columns="_current").sort_values("time", kind="stable")
        baseline = current = cap = limits = None
        problem: str | None = None
        notes: list[str] = []
        if chart_name not in _VARIABLES_CHARTS:
            problem = f"chart type {chart_name!r} needs attribute data, not measurements"
        else:
            try:
                baseline = control_chart(before, chart=chart_name, value="value", subgroup="subgroup_id",
                                         time="time", rules=rule_set, min_subgroups=min_subgroups)
                current = baseline.apply(now)  # type: ignore[union-attr]
            except SPCError as exc:
                problem = f"no control limits: {exc}"
        if cfg:
            try:
                limits = LimitSet.from_row(cfg)
            except SPCError as exc:
                notes.append(f"limits: {exc}")
        lsl, usl = _number(cfg.get("lsl")), _number(cfg.get("usl"))
        if lsl is None and usl is None:
            notes.append("no specification limits: no capability")
        else:
            try:
                subgroup = None if chart_name == "imr" else "subgroup_id"
                cap = capability(now, value="value", subgroup=subgroup, lsl=lsl, usl=usl,
                                 target=_number(cfg.get("nominal")), time="time",
                                 confidence_level=confidence_level)
            except SPCError as exc:
                notes.append(f"capability: {exc}")
        out.append(Study(machine, part, char, None if unit is None else str(unit), chart_name, rule_set,
                         baseline, current, cap, limits, now.reset_index(drop=True), problem, tuple(notes)))
    return sorted(out, key=lambda s: (-len(s.violations), s.machine_id, s.part_number, s.characteristic))


def studies_table(found: list[Study]) -> pd.DataFrame:
    """One row per study: the series, chart, points, limits, violations, rules fired, Cpk, Ppk
    and a status (``in control``, ``out of control`` or ``no limits``).

    Parameters
    ----------
    found : list of Study
        From :func:`studies`.

    Returns
    -------
    DataFrame
    """
    rows = []
    for s in found:
        loc = None
        if s.current is not None:
            loc = s.current.location if isinstance(s.current, ChartPair) else s.current
        fired = sorted({v.rule for v in s.violations})
        rows.append({
            "machine_id": s.machine_id, "part_number": s.part_number, "characteristic": s.characteristic,
            "chart": s.chart, "rules": s.rules, "points": 0 if loc is None else len(loc),
            "center": np.nan if loc is None else float(np.mean(loc.center)),
            "sigma": np.nan if loc is None else loc.sigma,
            "violations": len(s.violations), "rules_fired": ", ".join(fired),
            "cpk": np.nan if s.capability is None else s.capability.cpk,
            "ppk": np.nan if s.capability is None else s.capability.ppk,
            "status": "no limits" if s.current is None else "out of control" if s.violations
            else "in control",
            "note": s.problem or "; ".join(s.notes),
        })
    cols = ["machine_id", "part_number", "characteristic", "chart", "rules", "points", "center", "sigma",
            "violations", "rules_fired", "cpk", "ppk", "status", "note"]
    return pd.DataFrame(rows, columns=cols)


def violations_table(found: list[Study]) -> pd.DataFrame:
    """Every rule violation of the studies' periods, one row each.

    Parameters
    ----------
    found : list of Study
        From :func:`studies`.

    Returns
    -------
    DataFrame
        ``machine_id``, ``part_number``, ``characteristic``, ``chart`` (the chart label, e.g.
        "X̄"), ``rule``, ``subgroup``, ``message``.
    """
    rows = [(s.machine_id, s.part_number, s.characteristic, v.chart, v.rule, v.subgroup, v.message)
            for s in found for v in s.violations]
    return pd.DataFrame(rows, columns=[*SERIES_KEYS, "chart", "rule", "subgroup", "message"])
