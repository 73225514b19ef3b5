"""Daily pipeline wall time vs its floor, measured in one run.

Floor: starting and stopping one Jupyter kernel per notebook of the pipeline, one after the
other — the cost no implementation can avoid if each notebook runs in its own kernel.
Wall: one run of the daily report flow (extract, notebooks, HTML report, summary, e-mail) on the
configured warehouse, after a warm-up flow has started Prefect's temporary server (its ~20 s
start-up is not the pipeline's). Prints both and the ratio (target ≤ 2×).

Run after ``make demo``: ``python benchmarks/bench_pipeline.py [--pipeline daily_report]``.
The e-mail goes to reports/outbox unless WORKBENCH_SMTP_HOST is set; the run's e-mail marker
is removed first so the e-mail step really runs.
"""

from __future__ import annotations

import argparse
import time

from jupyter_client.manager import start_new_kernel

from workbench import config, pipelines, runs


def kernel_floor(kernel_name: str, count: int) -> float:
    """Seconds to start, wait for, and stop ``count`` kernels one after the other."""
    t0 = time.perf_counter()
    for _ in range(count):
        km, kc = start_new_kernel(kernel_name=kernel_name, startup_timeout=120)
        kc.stop_channels()
        km.shutdown_kernel(now=False)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default="daily_report")
    parser.add_argument("--date", default=None)
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

    floor = kernel_floor("workbench", len(pipeline.notebooks))
    marker.unlink(missing_ok=True)
    t0 = time.perf_counter()
    state = flows.daily_report(pipeline=pipeline.name, date=day.isoformat(), return_state=True)
    wall = time.perf_counter() - t0
    print(f"pipeline {pipeline.name} for {day}: {len(pipeline.notebooks)} notebooks, "
          f"concurrency {pipeline.concurrency}, run ended {state.name}")
    print(f"  floor (one kernel start + stop per notebook, sequential): {floor:6.1f} s")
    print(f"  wall time of the daily pipeline:                          {wall:6.1f} s")
    print(f"  ratio {wall / floor:.2f}× (target ≤ 2×)")


if __name__ == "__main__":
    main()
