"""Statistical process control: control charts, run rules, capability and multi-level limits.

Compute once, plot separately::

    from workbench import spc

    xbar, r = spc.xbar_r(df, value="value", subgroup="subgroup_id")   # phase I
    xbar.center, xbar.lcl, xbar.ucl, xbar.sigma_method                 # 74.001, …, "R̄/d2"
    later = spc.xbar_r(df, value="value", subgroup="subgroup_id").apply(new_df)   # phase II
    p = spc.p_chart(df, defectives="D", size="size")                   # limits per point
    cap = spc.capability(df, value="value", subgroup="subgroup_id", lsl=73.95, usl=74.05)
    spc.LimitSet.from_row(characteristics_row).evaluate(74.03)         # Severity.ALARM_HIGH …

Modules: :mod:`~workbench.spc.constants` (d2, d3, c4 … from their definitions),
:mod:`~workbench.spc.charts` (chart registry and results), :mod:`~workbench.spc.rules`
(Western Electric and Nelson rules), :mod:`~workbench.spc.capability`,
:mod:`~workbench.spc.limits` (operating / alarm / spec / engineering levels),
:mod:`~workbench.spc.timeweighted` (EWMA and CUSUM charts for small sustained shifts, and their
average run lengths), :mod:`~workbench.spc.toolwear` (the X̄ chart of a wearing tool),
:mod:`~workbench.spc.nonnormal` (normality test, transformations and fitted distributions for
capability),
:mod:`~workbench.spc.studies` (configured characteristics: phase I baseline, phase II period,
capability), :mod:`~workbench.spc.episodes` (violations merged into out-of-control episodes,
ranked by their consequence against the specification).
"""

from workbench.spc import constants, rules, timeweighted
from workbench.spc.capability import Capability, capability, capability_indices
from workbench.spc.charts import (
    CHART_TYPES,
    CHARTS,
    ChartPair,
    ChartType,
    ControlChart,
    Violation,
    c_chart,
    control_chart,
    imr,
    np_chart,
    p_chart,
    u_chart,
    with_rules,
    xbar_r,
    xbar_s,
)
from workbench.spc.episodes import Episode, by_consequence, episodes, episodes_table
from workbench.spc.limits import LimitSet, Severity, limit_sets
from workbench.spc.rules import RULE_SETS, RULES
from workbench.spc.studies import Study, studies, studies_table, violations_table
from workbench.spc.timeweighted import CusumChart, EwmaChart, cusum, cusum_arl, ewma, ewma_arl
from workbench.spc.toolwear import ToolWearChart, WearModel, tool_age, tool_wear_chart

__all__ = [
    "CHARTS",
    "CHART_TYPES",
    "RULES",
    "RULE_SETS",
    "Capability",
    "ChartPair",
    "ChartType",
    "ControlChart",
    "CusumChart",
    "Episode",
    "EwmaChart",
    "LimitSet",
    "Severity",
    "Study",
    "ToolWearChart",
    "Violation",
    "WearModel",
    "by_consequence",
    "c_chart",
    "capability",
    "capability_indices",
    "constants",
    "control_chart",
    "cusum",
    "cusum_arl",
    "episodes",
    "episodes_table",
    "ewma",
    "ewma_arl",
    "imr",
    "limit_sets",
    "np_chart",
    "p_chart",
    "rules",
    "studies",
    "studies_table",
    "timeweighted",
    "tool_age",
    "tool_wear_chart",
    "u_chart",
    "violations_table",
    "with_rules",
    "xbar_r",
    "xbar_s",
]
