"""SPC on the simulated plant: the rules find the process shifts the simulator injected.

Scored against the simulator's ground truth (per-subgroup true shift and tool-wear drift),
never against the chart's own output.
"""

from __future__ import annotations

import pandas as pd

from workbench import spc


def _score(plant) -> dict[str, int]:
    q = plant.tables["quality_measurements"]
    truth = plant.truth.subgroups.assign(
        shift_sigma=lambda d: d["shift"] / d["sigma"], drift_sigma=lambda d: d["drift"] / d["sigma"])
    windows = plant.truth.process_shifts
    windows = windows[windows["kind"] != "tool_wear"]
    n = dict(detected=0, shifts=0, in_control=0, rule1_alarms=0, settled=0, settled_alarms=0)
    for (machine, part, char), data in q.groupby(["machine_id", "part_number", "characteristic"]):
        sub = truth[(truth.machine_id == machine) & (truth.part_number == part)
                    & (truth.characteristic == char)].sort_values("time_start")
        ok = ((sub.shift_sigma == 0) & (sub.drift_sigma.abs() < 0.25)).to_numpy()
        in_control = set(sub.loc[ok, "subgroup_id"])
        # Run rules look back up to 8 points (rule 4): a subgroup is a fair test of their false
        # alarms only when it and the 8 before it were all in control.
        settled = pd.Series(ok).rolling(9, min_periods=9).min().fillna(0).astype(bool).to_numpy()
        quiet = set(sub.loc[settled, "subgroup_id"])
        reference = data[data["subgroup_id"].isin(in_control)]
        if reference["subgroup_id"].nunique() < 20:
            continue
        # Phase I on the periods the engineer knows were in control, phase II on everything.
        chart = spc.xbar_r(reference, value="value", subgroup="subgroup_id", time="time",
                           rules="western_electric").location
        applied = chart.apply(data)
        flagged = {v.subgroup for v in applied.violations}
        rule1 = {v.subgroup for v in applied.violations if v.rule == "we1"}
        for w in windows[(windows.machine_id == machine) & (windows.part_number == part)
                         & (windows.characteristic == char)].itertuples():
            inside = set(sub.loc[(sub.time_start >= w.time_start) & (sub.time_start < w.time_end),
                                 "subgroup_id"])
            if len(inside) >= 3:
                n["shifts"] += 1
                n["detected"] += bool(inside & flagged)
        n["in_control"] += len(in_control)
        n["rule1_alarms"] += len(in_control & rule1)
        n["settled"] += len(quiet)
        n["settled_alarms"] += len(quiet & flagged)
    return n


def test_rules_flag_injected_process_shifts(default_plant) -> None:
    n = _score(default_plant)
    assert n["shifts"] >= 5, "the default plant should inject several process shifts"
    assert n["detected"] / n["shifts"] >= 0.9, f"only {n['detected']} of {n['shifts']} shifts flagged"
    # Rule 1 alone flags 0.27 % of the in-control points of a normal process; allow up to 1 %.
    assert n["rule1_alarms"] / n["in_control"] < 0.01, n
    # Tool wear keeps most subgroups drifting, so few have eight in-control predecessors; where
    # there are enough, all four rules together must stay near their ~1 % false-alarm rate.
    if n["settled"] >= 100:
        assert n["settled_alarms"] / n["settled"] < 0.05, n


def test_shift_windows_are_in_the_truth(default_plant) -> None:
    kinds = set(default_plant.truth.process_shifts["kind"])
    assert "tool_wear" in kinds and len(kinds) >= 2, kinds
