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
from collections.abc import Mapping
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
_VARIABLES_CHARTS = ("xbar_r", "xbar_s", "imr", "ewma", "cusum", "tool_wear")
#: Tables a tool-wear chart needs: tool changes (downtime events) and run time (machine states).
_WEAR_TABLES = ("downtime_events", "machine_states")


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
        Chart name used (``"xbar_r"``, ``"xbar_s"``, ``"imr"``, ``"ewma"``, ``"cusum"`` or
        ``"tool_wear"`` — the X̄ chart of :mod:`workbench.spc.toolwear` paired with an R chart).
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

    @property
    def subgroup_times(self) -> dict[Any, pd.Timestamp]:
        """Time of each subgroup of the period: its first measurement (for clock-time axes)."""
        if self.data.empty:
            return {}
        return self.data.groupby("subgroup_id", sort=False)["time"].min().to_dict()

    def small_shift_charts(self, *, lam: float = 0.2, L: float = 3.0, k: float = 0.5,  # noqa: N803
                           h: float = 5.0) -> ChartPair | None:
        """EWMA and CUSUM of the period's standardized points — a second look for small
        sustained shifts that the configured chart's run rules are slow to see.

        The points of the phase II location chart (X̄, I, or the wear-adjusted X̄) standardized by
        their own center line and standard error are N(0, 1) while the process is in control, so
        an EWMA (λ, L) and a tabular CUSUM (k, h) on them with target 0 and sigma 1 have exactly
        their textbook run lengths (:func:`workbench.spc.ewma_arl`, :func:`workbench.spc.cusum_arl`;
        defaults λ = 0.2, L = 3: ARL₀ ≈ 560; k = 0.5, h = 5: ARL₀ ≈ 465, 10.4 subgroups for a
        one-standard-error shift). Points the chart could not judge (no tool age) are left out.

        Returns
        -------
        ChartPair or None
            ``location`` the EWMA chart, ``dispersion`` the CUSUM chart (itself a pair of C⁺ and
            C⁻); None when the study has no chart, is itself an EWMA or CUSUM, or has fewer than
            two judged points.
        """
        from workbench.spc.timeweighted import cusum, ewma  # imports charts: not at module import

        if self.current is None or self.chart in ("ewma", "cusum"):
            return None
        loc = self.current.location if isinstance(self.current, ChartPair) else self.current
        z = loc.z
        keep = np.isfinite(z)
        if keep.sum() < 2:
            return None
        frame = pd.DataFrame({"subgroup": loc.subgroups[keep], "z": z[keep]})
        return ChartPair(ewma(frame, value="z", subgroup="subgroup", lam=lam, L=L, target=0.0, sigma=1.0),
                         cusum(frame, value="z", subgroup="subgroup", k=k, h=h, target=0.0, sigma=1.0))


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


def _with_tool_ages(m: pd.DataFrame, characteristics: pd.DataFrame,
                    tables: Mapping[str, pd.DataFrame] | None) -> tuple[pd.DataFrame, str | None]:
    """The measurements with the tool's run-hours of age, when a characteristic asks for a
    tool-wear chart — or why they cannot have them."""
    if characteristics.empty or "chart_type" not in characteristics.columns:
        return m, None
    wanted = characteristics["chart_type"].astype("string").str.lower().str.replace("-", "_") == "tool_wear"
    if not wanted.any():
        return m, None
    missing = [t for t in _WEAR_TABLES if tables is None or t not in tables]
    if missing:
        return m, (f"the tool-wear chart needs {' and '.join(missing)} (tool changes and run time); "
                   "pass tables= to spc.studies")
    from workbench.spc.toolwear import tool_age  # the wear model is only needed when configured

    try:
        return tool_age(m, downtime_events=tables["downtime_events"],  # type: ignore[index]
                        machine_states=tables["machine_states"]), None  # type: ignore[index]
    except SPCError as exc:
        return m, f"no tool ages for the tool-wear chart: {exc}"


def _phase_charts(chart_name: str, before: pd.DataFrame, now: pd.DataFrame, *, rule_set: str,
                  min_subgroups: int) -> tuple[ChartPair | ControlChart, ChartPair | ControlChart]:
    """Phase I chart of the baseline and phase II chart of the period."""
    if chart_name == "tool_wear":
        from workbench.spc.toolwear import tool_wear_chart

        wear = tool_wear_chart(before, value="value", subgroup="subgroup_id", age="tool_age_h",
                               tool="tool_fitted", time="time", rules=rule_set, min_subgroups=min_subgroups)
        # Wear moves the mean, not the spread within a subgroup: the R chart judges the spread.
        spread = control_chart(before, chart="xbar_r", value="value", subgroup="subgroup_id", time="time",
                               rules=rule_set, min_subgroups=min_subgroups).dispersion  # type: ignore[union-attr]
        return (ChartPair(wear, spread), ChartPair(wear.apply(now), spread.apply(now)))
    baseline = control_chart(before, chart=chart_name, value="value", subgroup="subgroup_id",
                             time="time", rules=rule_set, min_subgroups=min_subgroups)
    return baseline, baseline.apply(now)


def studies(measurements: pd.DataFrame, characteristics: pd.DataFrame, *, start: dt.datetime,
            end: dt.datetime, baseline_start: dt.datetime, rules: str | None = None,
            min_subgroups: int = 20, confidence_level: float = 0.95,
            capability_method: str = "normal",
            tables: Mapping[str, pd.DataFrame] | None = None) -> list[Study]:
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
    capability_method : str
        Capability method for every series (:func:`workbench.spc.capability`): ``"normal"``
        (the normal indices, with a warning in the study's notes when the Anderson-Darling test
        rejects normality), ``"auto"`` (a fitted distribution or transformation when the data are
        not normal; the study says which and why), or a named method.
    tables : mapping of str to DataFrame, optional
        Other canonical tables: ``downtime_events`` and ``machine_states`` give a characteristic
        configured with ``chart_type = "tool_wear"`` the run hours since each tool change.

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
    m, wear_problem = _with_tool_ages(m, characteristics, tables)
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
        elif chart_name == "tool_wear" and wear_problem:
            problem = wear_problem
        else:
            try:
                baseline, current = _phase_charts(chart_name, before, now, rule_set=rule_set,
                                                  min_subgroups=min_subgroups)
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
                                 confidence_level=confidence_level, method=capability_method)
                notes.extend(f"capability: {w}" for w in cap.warnings)
            except SPCError as exc:
                notes.append(f"capability: {exc}")
        out.append(Study(machine, part, char, None if unit is None else str(unit), chart_name, rule_set,
                         baseline, current, cap, limits, now.reset_index(drop=True), problem, tuple(notes)))
    return sorted(out, key=lambda s: (-len(s.violations), s.machine_id, s.part_number, s.characteristic))


def _index(cap: Capability | None, name: str) -> float:
    value = None if cap is None else getattr(cap, name)
    return np.nan if value is None else float(value)


def studies_table(found: list[Study]) -> pd.DataFrame:
    """One row per study: the series, chart, points, limits, violations, rules fired, Cpk, Ppk,
    the capability method and the Anderson-Darling normality p-value they rest on, and a status
    (``in control``, ``out of control`` or ``no limits``); ``note`` says what could not be done
    and what the capability figures must be read with (e.g. data not normal).

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
            "cpk": _index(s.capability, "cpk"), "ppk": _index(s.capability, "ppk"),
            "capability_method": None if s.capability is None else s.capability.method,
            "normality_p": (np.nan if s.capability is None or s.capability.normality is None
                            else s.capability.normality.p_value),
            "status": "no limits" if s.current is None else "out of control" if s.violations
            else "in control",
            "note": s.problem or "; ".join(s.notes),
        })
    cols = ["machine_id", "part_number", "characteristic", "chart", "rules", "points", "center", "sigma",
            "violations", "rules_fired", "cpk", "ppk", "capability_method", "normality_p", "status", "note"]
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
