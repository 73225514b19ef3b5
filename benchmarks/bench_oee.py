"""Hourly OEE benchmark: workbench.oee vs a naive per-machine, per-hour row loop, same data.

The naive baseline is the kind of script plants start with: for every machine and every
scheduled hour, filter the machine's states and production events with pandas masks, loop over
the rows to add up overlapping minutes, and divide. Both run on the same simulated plant in the
same process; the script prints both times, their ratio (target ≥ 50×) and the largest OEE
difference between them (a sanity check that both computed the same thing), then the time
workbench.oee takes for a plant with at least 10 million production events.

The naive loop needs about 10 ms per machine-hour (≈ 25 min for 100 machines × 90 days), so by
default the comparison runs on the first ``--naive-machines`` (10) machines of the plant — both
implementations on exactly those machines — and workbench.oee is also timed on the whole plant.
Pass ``--naive-machines 100`` to loop over all of them.

Run: ``python benchmarks/bench_oee.py`` (100 machines × 90 days) or
``--machines 20 --days 14 --big-machines 0`` for a quick look.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import numpy as np
import pandas as pd

from workbench import oee
from workbench.simulate import PlantConfig, simulate_plant


def naive_hourly(tables: dict[str, pd.DataFrame], tz: str) -> pd.DataFrame:
    """Per machine, per scheduled hour: masks and row loops (the plant's original approach)."""
    states, events = tables["machine_states"], tables["production_events"]
    rates = tables["part_rates"].set_index(["machine_id", "part_number"])["ideal_cycle_time_s"]
    shifts = tables["shift_calendar"]
    planned = tables["planned_stops"]
    machines = tables["machines"].set_index("machine_id")
    rows = []
    for machine in machines.index:
        st_m = states[states["machine_id"] == machine]
        ev_m = events[events["machine_id"] == machine]
        line = machines.at[machine, "line"]
        pl_m = planned[(planned["line"].isna() | (planned["line"] == line))
                       & (planned["machine_id"].isna() | (planned["machine_id"] == machine))]
        for shift in shifts.itertuples():
            hour = shift.time_start
            while hour < shift.time_end:
                end = min(hour + pd.Timedelta(hours=1), shift.time_end)
                minutes = {"running": 0.0, "idle": 0.0, "down": 0.0, "setup": 0.0, "planned_stop": 0.0,
                           "no_data": 0.0}
                for row in st_m[(st_m["time_end"] > hour) & (st_m["time_start"] < end)].itertuples():
                    overlap = (min(row.time_end, end) - max(row.time_start, hour)).total_seconds() / 60
                    minutes[row.state] += overlap
                planned_min = 0.0
                for row in pl_m[(pl_m["time_end"] > hour) & (pl_m["time_start"] < end)].itertuples():
                    planned_min += (min(row.time_end, end) - max(row.time_start, hour)).total_seconds() / 60
                good = rejects = 0
                ideal_s = 0.0
                for row in ev_m[(ev_m["time"] > hour) & (ev_m["time"] <= end)].itertuples():
                    good += row.good_count
                    rejects += row.reject_count
                    ideal_s += rates[(machine, row.part_number)] * (row.good_count + row.reject_count)
                apt = minutes["running"] + minutes["idle"]
                pbt = apt + minutes["down"] + minutes["setup"]
                a = apt / pbt if pbt > 0 else np.nan
                p = ideal_s / 60 / apt if apt > 0 else np.nan
                q = good / (good + rejects) if good + rejects > 0 else np.nan
                rows.append({"machine_id": machine, "hour": hour, "oee": a * p * q,
                             "planned_min": planned_min})
                hour = end
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=100)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--naive-machines", type=int, default=10,
                        help="machines both implementations run on for the ratio")
    parser.add_argument("--big-machines", type=int, default=125,
                        help="machines for the ≥ 10 M events run (90 days) when the main plant has "
                             "fewer events; 0 to skip")
    args = parser.parse_args()

    cfg = PlantConfig(seed=3, n_machines=args.machines, n_lines=max(1, args.machines // 10),
                      days=args.days, start=dt.date(2026, 8, 3), telemetry=False)
    t0 = time.perf_counter()
    plant = simulate_plant(cfg)
    n_events = len(plant.tables["production_events"])
    print(f"plant: {args.machines} machines × {args.days} days, {len(plant.tables['machine_states']):,} "
          f"state intervals, {n_events:,} production events (simulated in {time.perf_counter() - t0:.0f} s)")

    t0 = time.perf_counter()
    oee.compute(oee.PlantFrames.from_tables(plant.tables), by=("machine_id", "hour"), tz=cfg.timezone,
                micro_stop_threshold_s=cfg.micro_stop_threshold_s)
    t_full = time.perf_counter() - t0

    subset = plant.tables["machines"]["machine_id"].iloc[: args.naive_machines].tolist()
    tables = {name: (frame[frame["machine_id"].isin(subset)] if "machine_id" in frame.columns
                     and name != "planned_stops" else frame) for name, frame in plant.tables.items()}
    t0 = time.perf_counter()
    ours = oee.compute(oee.PlantFrames.from_tables(tables), by=("machine_id", "hour"), tz=cfg.timezone,
                       micro_stop_threshold_s=cfg.micro_stop_threshold_s)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    naive = naive_hourly(tables, cfg.timezone)
    t_naive = time.perf_counter() - t0

    both = ours.table.merge(naive, on=["machine_id", "hour"], suffixes=("", "_naive"))
    diff = (both["oee"] - both["oee_naive"]).abs()
    print(f"hourly OEE on the same {len(subset)} machines × {args.days} days ({len(both):,} machine-hours):")
    print(f"  workbench.oee            {t_ours:9.2f} s")
    print(f"  naive machine×hour loop  {t_naive:9.2f} s")
    print(f"  speed-up {t_naive / t_ours:.0f}× (target ≥ 50×); largest OEE difference between them "
          f"{np.nanmax(diff.to_numpy()) * 100:.3f} pp")
    print(f"workbench.oee on the whole plant ({args.machines} machines × {args.days} days, {n_events:,} "
          f"production events): {t_full:.2f} s (the naive loop would take ≈ "
          f"{t_naive * args.machines / len(subset) / 60:.0f} min)")
    if n_events >= 10_000_000:
        return  # the whole plant already was the ≥ 10 million events run

    if args.big_machines:
        del plant, tables, ours, naive
        big = PlantConfig(seed=4, n_machines=args.big_machines, n_lines=max(1, args.big_machines // 10),
                          days=90, start=dt.date(2026, 8, 3), telemetry=False)
        plant = simulate_plant(big)
        n = len(plant.tables["production_events"])
        t0 = time.perf_counter()
        oee.compute(oee.PlantFrames.from_tables(plant.tables), by=("machine_id", "hour"), tz=big.timezone)
        print(f"workbench.oee hourly for {n:,} production events ({args.big_machines} machines × 90 days): "
              f"{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
