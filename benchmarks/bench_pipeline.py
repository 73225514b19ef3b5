"""Daily pipeline wall time vs its floor, measured in one run.

Floor: starting and stopping one Jupyter kernel per notebook of the pipeline, one after the
other — the cost no implementation can avoid if each notebook runs in its own kernel.
Wall: one run of the daily report flow (extract, notebooks, HTML report, summary, e-mail) on the
configured warehouse, after a warm-up flow has started Prefect's temporary server (its ~20 s
start-up is not the pipeline's). Both are measured ``--repeat`` times, alternately (a shared
2-core machine is noisy); every measurement is printed, and the ratio of the medians (target ≤ 2×).

The wall time is taken twice: until the run is complete (the end time Prefect records for the flow
run, as its UI shows it: the e-mail is out) and until the flow call returns. The difference is
Prefect's flow-run heartbeat thread, which the engine joins on exit and which sleeps in 1 s steps:
a run returns on a whole second after it started, up to a second after its work ended.

The model sections (root cause, anomalies, week ahead) are computed ahead by the morning model
run (``flows/retrain.py`` at 04:30, :mod:`workbench.ml.daily`) and read back by the report when
the day, the settings and the data are unchanged. The benchmark first does that work itself for
the day (timed and printed: the work the 05:00 run no longer does) and counts, per run, the
sections the report read back; ``--cold`` removes them first, to measure a report that computes
every section itself (as when the morning run did not run).

Run after ``make demo``: ``python benchmarks/bench_pipeline.py [--pipeline daily_report] [--cold]``.
The e-mail goes to reports/outbox unless WORKBENCH_SMTP_HOST is set; the run's e-mail marker
is removed first so the e-mail step really runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time

from jupyter_client.manager import start_new_kernel

from workbench import config, pipelines, runs
from workbench.ml import daily, stored


def kernel_floor(kernel_name: str, count: int) -> float:
    """Seconds to start, wait for, and stop ``count`` kernels one after the other."""
    t0 = time.perf_counter()
    for _ in range(count):
        km, kc = start_new_kernel(kernel_name=kernel_name, startup_timeout=120)
        kc.stop_channels()
        km.shutdown_kernel(now=False)
    return time.perf_counter() - t0


def cpu_seconds() -> dict[str, float]:
    """CPU time of this process (the flow), of its finished children (kernels, zygote) and of
    the children still running (Prefect's temporary server)."""
    import psutil

    me = psutil.Process()
    t = me.cpu_times()
    alive = 0.0
    for child in me.children(recursive=True):
        try:
            c = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        alive += c.user + c.system
    return {"flow process": t.user + t.system,
            "finished children (kernels)": t.children_user + t.children_system,
            "running children (Prefect server)": alive}


def completed_after(state, t0_wall: float) -> float:
    """Seconds from the flow call to the end time Prefect recorded for the flow run."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    return run.end_time.timestamp() - t0_wall


def timeline(state, t0_wall: float) -> list[str]:
    """Each task run of the flow run: start and end, seconds after the flow was called."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import TaskRunSort

    with get_client(sync_client=True) as client:
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])),
            sort=TaskRunSort.EXPECTED_START_TIME_ASC, limit=200)
    lines = []
    for t in sorted(tasks, key=lambda t: t.start_time or t.expected_start_time):
        if t.start_time and t.end_time:
            lines.append(f"    {t.name:<32} {t.start_time.timestamp() - t0_wall:6.2f} → "
                         f"{t.end_time.timestamp() - t0_wall:6.2f} s")
    return lines


def sections_ahead(settings, pipeline, day, *, cold: bool) -> float | None:
    """Compute and store the day's model sections as the morning run does (seconds), or with
    ``cold`` remove any stored for the day (None)."""
    from workbench import jobs
    from workbench.ml.registry import default_tracking_uri
    from workbench.store import open_warehouse

    with open_warehouse(settings) as wh:
        start, _ = jobs.production_day_range(wh, first=day, last=day + dt.timedelta(days=1),
                                             tz=settings.plant_timezone)
        if cold:
            wh.delete_keys(stored.TABLE, "day_start", [start])
            print(f"--cold: no model sections stored for {day}: the report computes them")
            return None
        t0 = time.perf_counter()
        result = daily.day_sections(wh, day, tz=settings.plant_timezone,
                                    settings=daily.notebook_settings(pipeline, home=settings.home),
                                    registry_uri=default_tracking_uri(settings.data_path),
                                    created_at=dt.datetime.now(dt.UTC))
        seconds = time.perf_counter() - t0
        if len(result.rows):
            wh.write(stored.TABLE, result.rows)
    print(f"model sections of {day} computed ahead in {seconds:.1f} s: "
          + ", ".join(f"{k} {v}" for k, v in result.done.items()))
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default="daily_report")
    parser.add_argument("--date", default=None)
    parser.add_argument("--timeline", action="store_true", help="also print when each task ran")
    parser.add_argument("--cold", action="store_true",
                        help="no model sections computed ahead: the report computes them all")
    parser.add_argument("--repeat", type=int, default=3,
                        help="floor and pipeline measured this many times, alternately; medians compared")
    args = parser.parse_args()

    settings = config.settings()
    pipeline = pipelines.get(args.pipeline, home=settings.home, default_timezone=settings.plant_timezone)
    flows = runs.load_flows(settings.home)
    day = runs.report_day(settings, args.date)
    marker = runs.run_dir(settings, pipeline, day) / "email.sent.json"

    from prefect import flow

    @flow(name="warm-up")
    def warm_up() -> int:
        return 1

    warm_up()  # starts the temporary Prefect server (when none is configured)
    ahead = sections_ahead(settings, pipeline, day, cold=args.cold)

    floors, walls, dones = [], [], []
    for attempt in range(1, args.repeat + 1):
        floor = kernel_floor("workbench", len(pipeline.notebooks))
        marker.unlink(missing_ok=True)
        cpu_before = cpu_seconds()
        t0_wall = time.time()
        t0 = time.perf_counter()
        state = flows.daily_report(pipeline=pipeline.name, date=day.isoformat(), return_state=True)
        wall = time.perf_counter() - t0
        cpu_after = cpu_seconds()
        done = completed_after(state, t0_wall)
        floors.append(floor)
        walls.append(wall)
        dones.append(done)
        print(f"run {attempt}: pipeline {pipeline.name} for {day}: {len(pipeline.notebooks)} notebooks, "
              f"concurrency {pipeline.concurrency}, run ended {state.name}")
        print(f"  floor (one kernel start + stop per notebook, sequential): {floor:6.1f} s")
        print(f"  daily pipeline, until the run is complete (e-mail out):   {done:6.1f} s"
              f"   ratio {done / floor:.2f}×")
        print(f"  daily pipeline, until the flow call returns:              {wall:6.1f} s"
              f"   ratio {wall / floor:.2f}×")
        pages = runs.run_dir(settings, pipeline, day)
        read_back = [n for n in daily.NOTEBOOKS
                     if (pages / f"{n}.html").is_file()
                     and "computed by the model run" in (pages / f"{n}.html").read_text(errors="replace")]
        print(f"  model sections read back from the morning run: {len(read_back)} of {len(daily.NOTEBOOKS)}"
              + (f" ({', '.join(read_back)})" if read_back else ""))
        if args.timeline:
            used = {k: cpu_after.get(k, 0.0) - cpu_before.get(k, 0.0) for k in cpu_after}
            print("  CPU seconds during the run: " + ", ".join(f"{k} {v:.1f}" for k, v in used.items()))
            print("  tasks (seconds after the flow was called):")
            print("\n".join(timeline(state, t0_wall)))
    floor, wall, done = statistics.median(floors), statistics.median(walls), statistics.median(dones)
    print(f"median of {args.repeat}: floor {floor:.1f} s; run complete {done:.1f} s, ratio "
          f"{done / floor:.2f}× (target ≤ 2×); flow call returned {wall:.1f} s, ratio {wall / floor:.2f}×")
    if ahead is not None:
        print(f"the model sections computed ahead (the morning run's part, not in the wall time above): "
              f"{ahead:.1f} s")


if __name__ == "__main__":
    main()
