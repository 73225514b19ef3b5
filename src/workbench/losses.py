"""Losses: downtime and scrap Pareto with cost, yields, cost of downtime, micro-stop statistics.

Blank reason codes (missing, empty or only whitespace) are never dropped: they are one bar of
their own, ``(uncoded)``, so a Pareto always accounts for all the time and scrap it was given.
Unknown costs stay unknown: scrap without a cost is counted in ``units_without_cost`` and downtime
without a labor rate in ``minutes_without_rate``, never priced at 0 without a trace.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from workbench import oee
from workbench.errors import LossesError, OEEError

UNCODED = "(uncoded)"
DOWNTIME_KEYS = ("reason_category", "reason_code", "machine_id", "shift", "predicted_category")
SCRAP_KEYS = ("scrap_category", "scrap_reason", "part_number", "machine_id", "work_order")


def _need(frame: pd.DataFrame, name: str, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise LossesError(f"{name} lacks column(s) {', '.join(missing)}")


def _blank_as_uncoded(values: pd.Series) -> pd.Series:
    """The grouping key with every blank reason — missing, empty or only whitespace — as ``UNCODED``.

    The one normalisation of blank reasons, shared by every Pareto and cost table, so "" and
    "  " never become bars of their own beside ``(uncoded)``.
    """
    keys = values.astype("object")
    blank = keys.isna() | (keys.astype(str).str.strip() == "")
    return keys.where(~blank, UNCODED)


def _pareto(frame: pd.DataFrame, key: str, measures: dict[str, pd.Series], sort_by: str) -> pd.DataFrame:
    keys = _blank_as_uncoded(frame[key])
    data = pd.DataFrame({key: keys.to_numpy(), **{k: v.to_numpy() for k, v in measures.items()}})
    # min_count=1: a measure unknown (NaN) on every row of a bar stays unknown instead of summing to 0
    # (scrap whose cost nobody recorded must not pass for free scrap).
    out = data.groupby(key, sort=False, dropna=False).sum(min_count=1).reset_index()
    # Largest first, unknown values last (they cannot be ranked); ties in key order so the chart
    # is the same on every run.
    out = out.sort_values([sort_by, key], ascending=[False, True], kind="stable",
                          na_position="last").reset_index(drop=True)
    total = out[sort_by].sum()
    out["share"] = out[sort_by] / total if total > 0 else np.nan
    # Float sums can overshoot 1 by an ulp before the last bar; a share of a whole never does.
    # Unknown values have no share, so the cumulative line stays NaN there.
    out["cumulative_share"] = out["share"].cumsum().clip(upper=1.0)
    known = out.index[out[sort_by].notna()]
    if total > 0:
        out.loc[known[-1], "cumulative_share"] = 1.0  # exact 100 % despite float sums
    return out


def downtime_pareto(downtime: pd.DataFrame, *, by: str = "reason_category", measure: str = "minutes",
                    include_planned: bool = False, reason_codes: pd.DataFrame | None = None) -> pd.DataFrame:
    """Downtime Pareto: minutes and events per category / reason / machine / shift.

    Parameters
    ----------
    downtime : DataFrame
        ``downtime_events`` rows.
    by : str
        One of ``DOWNTIME_KEYS``.
    measure : {"minutes", "events"}
        What the bars are sorted by.
    include_planned : bool
        Keep planned stops (maintenance, no demand). Off by default: they are not losses.
    reason_codes : DataFrame, optional
        Used to fill ``reason_category`` / ``planned`` from ``reason_code`` where missing.

    Returns
    -------
    DataFrame
        ``by``, minutes, events, share, cumulative_share (of the sorting measure), largest first.
    """
    if by not in DOWNTIME_KEYS:
        raise LossesError(f"cannot make a downtime Pareto by {by!r}; choose from {', '.join(DOWNTIME_KEYS)}")
    if measure not in ("minutes", "events"):
        raise LossesError(f"measure must be 'minutes' or 'events', not {measure!r}")
    _need(downtime, "downtime_events", ("machine_id", "duration_min", by))
    d = _with_reason_details(downtime, reason_codes)
    if (d["duration_min"] < 0).any():
        row = d[d["duration_min"] < 0].iloc[0]
        raise LossesError(f"downtime_events: negative duration {row.duration_min} min on {row.machine_id} "
                          f"at {row.get('time_start')}")
    if not include_planned and "planned" in d.columns:
        d = d[~d["planned"].fillna(False).astype(bool)]
    return _pareto(d, by, {"minutes": d["duration_min"].astype(float),
                           "events": pd.Series(1, index=d.index)}, measure)


def _with_reason_details(downtime: pd.DataFrame, reason_codes: pd.DataFrame | None) -> pd.DataFrame:
    d = downtime.copy()
    if reason_codes is None or reason_codes.empty or "reason_code" not in d.columns:
        return d
    lookup = reason_codes.set_index("code")
    for col, src in (("reason_category", "category"), ("planned", "planned")):
        mapped = d["reason_code"].map(lookup[src])
        d[col] = d[col].where(d[col].notna(), mapped) if col in d.columns else mapped
    return d


def scrap_cost(scrap: pd.DataFrame, *, work_orders: pd.DataFrame | None = None) -> pd.Series:
    """Cost of each scrap row: material + labor, NaN where the material cost is unknown.

    Parameters
    ----------
    scrap : DataFrame
        ``scrap_events`` rows: ``quantity`` and, where known, ``material_cost``, ``labor_cost``
        and ``work_order``.
    work_orders : DataFrame, optional
        ``work_orders`` rows; a row without a ``material_cost`` is costed at quantity × its work
        order's ``material_cost_per_unit``.

    Returns
    -------
    Series
        Cost per row (float, aligned with ``scrap``). A missing labor cost counts as none (many
        ERPs book no labor on scrap). A row with no material cost — none on the row, none from its
        work order — has an unknown cost, NaN: every scrapped part had material, and a 0 (or the
        labor alone) would pass for the whole cost. :func:`scrap_pareto` counts those rows'
        quantity in ``units_without_cost``.

    Raises
    ------
    LossesError
        Without a ``quantity`` column, or with a negative quantity.
    """
    _need(scrap, "scrap_events", ("quantity",))
    if (scrap["quantity"] < 0).any():
        raise LossesError("scrap_events: negative quantity")
    material = scrap["material_cost"] if "material_cost" in scrap.columns else pd.Series(np.nan, scrap.index)
    labor = scrap["labor_cost"] if "labor_cost" in scrap.columns else pd.Series(np.nan, scrap.index)
    if work_orders is not None and not work_orders.empty and "work_order" in scrap.columns:
        unit = scrap["work_order"].map(work_orders.set_index("work_order")["material_cost_per_unit"])
        material = material.fillna(scrap["quantity"] * unit)
    # NaN material stays NaN: an unknown cost is reported as unknown, never as 0.
    return material.astype(float) + labor.fillna(0.0).astype(float)


def scrap_pareto(scrap: pd.DataFrame, *, by: str = "scrap_category", measure: str = "cost",
                 work_orders: pd.DataFrame | None = None) -> pd.DataFrame:
    """Scrap Pareto by category / reason / part / machine / work order, with quantity and cost.

    Parameters
    ----------
    scrap : DataFrame
        ``scrap_events`` rows.
    by : str
        One of ``SCRAP_KEYS``.
    measure : {"cost", "quantity"}
        What the bars are sorted by.
    work_orders : DataFrame, optional
        Supplies the material cost of rows that carry none (see :func:`scrap_cost`).

    Returns
    -------
    DataFrame
        ``by``, quantity, cost, units_without_cost, share, cumulative_share (of the sorting
        measure), largest first. ``cost`` (material + labor) covers the units whose cost is known;
        ``units_without_cost`` counts the others, as ``minutes_without_rate`` does for
        :func:`downtime_cost`. A bar none of whose scrap has a known cost has cost NaN ("cost
        unknown", not $0); sorted by cost, such bars come last with no share.
    """
    if by not in SCRAP_KEYS:
        raise LossesError(f"cannot make a scrap Pareto by {by!r}; choose from {', '.join(SCRAP_KEYS)}")
    if measure not in ("cost", "quantity"):
        raise LossesError(f"measure must be 'cost' or 'quantity', not {measure!r}")
    _need(scrap, "scrap_events", ("quantity", by))
    cost = scrap_cost(scrap, work_orders=work_orders)
    quantity = scrap["quantity"].astype("int64")
    return _pareto(scrap, by, {"quantity": quantity, "cost": cost,
                               "units_without_cost": quantity.where(cost.isna(), 0)}, measure)


def yields(production: pd.DataFrame, *, scrap: pd.DataFrame | None = None,
           parts: pd.DataFrame | None = None, by: str = "part_family") -> pd.DataFrame:
    """First-pass yield and final yield per part family (or part / machine).

    first_pass_yield = good first time / produced (rejects at the machine are first-pass
    failures); final_yield = (produced − scrapped) / produced, where rejects that were reworked
    and not scrapped count as recovered. Without scrap data the final yield equals the FPY.
    """
    _need(production, "production_events", ("machine_id", "part_number", "good_count", "reject_count"))
    p = production.copy()
    if by == "part_family":
        if parts is None or parts.empty:
            raise LossesError("yield by part_family needs the parts table")
        p["part_family"] = p["part_number"].map(parts.set_index("part_number")["part_family"])
        unknown = p["part_family"].isna()
        if unknown.any():
            raise LossesError(f"part(s) without a family in parts: "
                              f"{', '.join(map(str, sorted(p.loc[unknown, 'part_number'].unique())[:10]))}")
    elif by not in ("part_number", "machine_id"):
        raise LossesError(f"yield by {by!r}: choose part_family, part_number or machine_id")
    p["produced"] = p["good_count"].fillna(0) + p["reject_count"].fillna(0)
    out = p.groupby(by).agg(produced=("produced", "sum"), good=("good_count", "sum"),
                            rejects=("reject_count", "sum"))
    if scrap is not None and not scrap.empty:
        s = scrap.copy()
        if by == "part_family":
            s["part_family"] = s["part_number"].map(parts.set_index("part_number")["part_family"])  # type: ignore[union-attr]
        out["scrapped"] = s.groupby(by)["quantity"].sum().reindex(out.index).fillna(0)
    else:
        out["scrapped"] = out["rejects"]
    produced = out["produced"].astype(float)
    out["first_pass_yield"] = (out["good"] / produced).where(produced > 0)
    out["final_yield"] = ((produced - out["scrapped"]) / produced).where(produced > 0)
    return out.reset_index()


def downtime_cost(downtime: pd.DataFrame, *, work_orders: pd.DataFrame, by: str = "reason_category",
                  overhead_per_hour: float = 0.0, include_planned: bool = False,
                  reason_codes: pd.DataFrame | None = None) -> pd.DataFrame:
    """Cost of downtime from the ERP's labor rate of the work order that was running, plus an
    optional machine overhead rate: cost = hours × (labor_rate_per_hour + overhead_per_hour).

    Stops without a work order (or whose order has no rate) are costed at the overhead rate only
    and counted in ``minutes_without_rate`` so the gap is visible. Blank reasons are one
    ``(uncoded)`` row, as in :func:`downtime_pareto`.
    """
    _need(downtime, "downtime_events", ("duration_min", "work_order", by))
    d = _with_reason_details(downtime, reason_codes)
    if not include_planned and "planned" in d.columns:
        d = d[~d["planned"].fillna(False).astype(bool)]
    # float even when nothing matched: an empty text column would map to an empty text column
    rate = d["work_order"].map(work_orders.set_index("work_order")["labor_rate_per_hour"]).astype(float)
    hours = d["duration_min"].astype(float) / 60.0
    cost = hours * (rate.fillna(0.0) + overhead_per_hour)
    frame = pd.DataFrame({by: _blank_as_uncoded(d[by]),
                          "minutes": d["duration_min"].astype(float), "cost": cost,
                          "minutes_without_rate": d["duration_min"].where(rate.isna(), 0.0).astype(float)})
    out = frame.groupby(by).sum().sort_values("cost", ascending=False).reset_index()
    return out


def micro_stop_stats(states: pd.DataFrame, *, threshold_s: float = 120.0,
                     shift_calendar: pd.DataFrame | None = None, planned_stops: pd.DataFrame | None = None,
                     downtime_events: pd.DataFrame | None = None, reason_codes: pd.DataFrame | None = None,
                     machines: pd.DataFrame | None = None) -> pd.DataFrame:
    """Micro-stops per machine: count, total minutes, mean and 90th-percentile duration in
    seconds, and stops per running hour.

    A micro-stop is a stop shorter than ``threshold_s``, and a stop is what OEE calls one
    (:func:`workbench.oee.stops`): the contiguous non-running, non-planned time of a machine, the
    pieces a source cut it into merged, its duration counting only planned busy time. So these
    are exactly the stops OEE counts as small stops, provided both are given the same plan.

    Parameters
    ----------
    states : DataFrame
        ``machine_states`` rows.
    threshold_s : float
        The micro-stop threshold (as given to :func:`workbench.oee.compute`).
    shift_calendar, planned_stops, downtime_events, reason_codes, machines : DataFrame, optional
        The plan, as in :func:`workbench.oee.stops`: without it every instant is busy time and
        only ``planned_stop`` states are planned.

    Returns
    -------
    DataFrame
        machine_id, micro_stops, minutes, mean_s, p90_s, per_running_hour.
    """
    _need(states, "machine_states", ("machine_id", "time_start", "time_end", "state"))
    dur = (states["time_end"] - states["time_start"]).dt.total_seconds()
    if (dur < 0).any():
        raise LossesError("machine_states: an interval ends before it starts")
    try:
        found = oee.stops(states, shift_calendar=shift_calendar, planned_stops=planned_stops,
                          downtime_events=downtime_events, reason_codes=reason_codes, machines=machines)
    except OEEError as exc:
        raise LossesError(str(exc)) from exc
    run_h = dur.where(states["state"] == "running", 0.0).groupby(states["machine_id"]).sum() / 3600.0
    s = found[found["seconds"] < threshold_s]
    g = s.groupby("machine_id")["seconds"]
    out = pd.DataFrame({"micro_stops": g.size(), "minutes": g.sum() / 60.0, "mean_s": g.mean(),
                        "p90_s": g.quantile(0.9)}).reindex(run_h.index)
    out["micro_stops"] = out["micro_stops"].fillna(0).astype("int64")
    out["minutes"] = out["minutes"].fillna(0.0)
    out["per_running_hour"] = (out["micro_stops"] / run_h).where(run_h > 0)
    return out.reset_index()
