"""The daily SPC summary on the simulated plant, scored against the simulator's ground truth.

The default plant injects step shifts of 1.5–3 σ into the mean of some characteristics, on top
of every tool's wear drift, and its characteristics are configured with the tool-wear chart
(as an engineer would configure machined dimensions). For each production day a step shift
touches, the truth gives the consequence of the shift that day: the worst true Cpk of the
process while it lasted, ``min(USL − μ, μ − LSL) / 3σ`` from the true subgroup mean μ (nominal +
bias + drift + shift) and the true σ. A shift that pushed the process below Cpk 1 matters.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from workbench.reports.mail import SPC_ROWS
from workbench.summary import SPC_BASELINE_DAYS, spc_findings

TZ = "America/Chicago"


def _day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = pd.Timestamp(f"{day.isoformat()} 06:00", tz=TZ).tz_convert("UTC").to_pydatetime()
    return start, start + dt.timedelta(days=1)


@pytest.fixture(scope="module")
def scored(default_plant) -> pd.DataFrame:
    plant = default_plant
    tables = plant.tables
    truth = plant.truth.subgroups
    steps = plant.truth.process_shifts
    steps = steps[steps["kind"] == "step"]
    spec = tables["characteristics"].set_index(["part_number", "characteristic"])[["lsl", "usl"]]
    first_day = (tables["quality_measurements"]["time"].min().tz_convert(TZ).date()
                 + dt.timedelta(days=SPC_BASELINE_DAYS))
    findings: dict[dt.date, pd.DataFrame] = {}
    rows = []
    for w in steps.itertuples():
        sub = truth[(truth.machine_id == w.machine_id) & (truth.part_number == w.part_number)
                    & (truth.characteristic == w.characteristic) & (truth.time_start >= w.time_start)
                    & (truth.time_start < w.time_end)]
        lsl, usl = spec.loc[(w.part_number, w.characteristic)]
        true_cpk = np.minimum(usl - sub.true_mean, sub.true_mean - lsl) / (3 * sub.sigma)
        # production day of each subgroup: the day starts at 06:00 plant time
        days = (sub.time_start.dt.tz_convert(TZ) - pd.Timedelta(hours=6)).dt.date
        for day in sorted(set(days)):
            if day < first_day:
                continue  # less than the baseline's 14 days of history
            if day not in findings:
                start, end = _day_bounds(day)
                findings[day] = spc_findings(tables["quality_measurements"], start=start, end=end,
                                             characteristics=tables["characteristics"], tables=tables)[1]
            ranked = findings[day].reset_index(drop=True)
            hit = ranked[(ranked.machine_id == w.machine_id) & (ranked.part_number == w.part_number)
                         & (ranked.characteristic == w.characteristic) & (ranked.start < w.time_end)
                         & (ranked.end >= w.time_start)]
            rows.append({"machine_id": w.machine_id, "characteristic": w.characteristic, "day": day,
                         "shift_sigma": w.shift_sigma, "subgroups": int((days == day).sum()),
                         "true_cpk": float(true_cpk[days == day].min()), "episodes": len(ranked),
                         "rank": int(hit.index.min()) if len(hit) else None})
    out = pd.DataFrame(rows)
    out.attrs["per_day"] = {day: len(frame) for day, frame in findings.items()}
    return out


def test_a_handful_of_episodes_a_day(scored: pd.DataFrame) -> None:
    per_day = scored.attrs["per_day"]
    assert len(per_day) >= 5, per_day
    # Against the plain X̄ chart the same days gave 20–23 episodes and 150–190 violations (tool
    # wear); with the tool-wear chart the days with injected shifts have a handful.
    assert max(per_day.values()) <= 12, per_day
    assert np.median(list(per_day.values())) <= 10, per_day


def test_every_shift_that_matters_is_among_the_top_episodes(scored: pd.DataFrame) -> None:
    matters = scored[(scored.true_cpk < 1.0) & (scored.subgroups >= 3)]
    assert len(matters) >= 5, scored
    # each has an episode in the list the e-mail shows (the first SPC_ROWS) …
    assert matters["rank"].notna().all(), matters
    assert (matters["rank"] < SPC_ROWS).all(), matters
    # … and the ranking follows the consequence: a shift that took the process well below
    # capable (true Cpk < 0.75) is among the first three episodes of its day
    severe = matters[matters.true_cpk < 0.75]
    assert len(severe) >= 3, matters
    assert (severe["rank"] < 3).all(), severe
