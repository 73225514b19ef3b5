"""Soak: served deployments on a real Prefect server's scheduler, with a notebook kernel reading.

Not a test — a run a plant's IT person can repeat. It builds a throw-away project from this
checkout (flows, notebooks, the demo warehouse from `make demo`, under git), starts
`workbench server` and `workbench serve` with two pipelines on short intervals:

* the daily report (the real notebooks, extract, pages and e-mail) every ``--report-interval``;
* the hourly OEE roll-up (writes the warehouse) every ``--rollup-interval``;

while a Jupyter kernel (the ``workbench`` kernel, as an analyst's notebook) reads the same
DuckDB warehouse through ``workbench.notebook`` in a loop. After ``--minutes`` it stops serving and
prints every scheduled run with its delay and duration, the slots the schedule had and which of
them got no run, and what the kernel read. Exit status 1 when a slot was skipped, a run did not
complete, or the kernel failed a read.

    python benchmarks/soak_schedule.py --minutes 10
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import queue
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
WORKBENCH = str(Path(sys.executable).with_name("workbench"))

KERNEL_LOOP = """
import time
from workbench import notebook as nb
reads = errors = 0
waits = []
deadline = time.monotonic() + {seconds}
while time.monotonic() < deadline:
    t0 = time.monotonic()
    try:
        scope = nb.scope(days=1)
        frames = scope.plant_frames()
        table = scope.oee(frames, by=("machine_id",)).table
        reads += 1
    except Exception as exc:
        errors += 1
        print("READ FAILED:", type(exc).__name__, exc)
    waits.append(time.monotonic() - t0)
    time.sleep(1.0)
median = sorted(waits)[len(waits) // 2]
print(f"KERNEL reads={{reads}} errors={{errors}} slowest={{max(waits):.2f}} s median={{median:.2f}} s")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_project(where: Path, *, report_interval: int, rollup_interval: int) -> Path:
    home = where / "project"
    warehouse = ROOT / "data" / "warehouse.duckdb"
    if not warehouse.is_file():
        sys.exit(f"{warehouse} is missing: run `make demo` first")
    for folder in ("flows", "notebooks"):
        shutil.copytree(ROOT / folder, home / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (home / "data").mkdir()
    shutil.copy(warehouse, home / "data" / "warehouse.duckdb")
    (home / "pipelines").mkdir()
    daily = (ROOT / "pipelines" / "daily_report.yaml").read_text()
    daily = daily.replace('cron: "0 5 * * *"', f"interval: {report_interval}s")
    (home / "pipelines" / "daily_report.yaml").write_text(daily)
    (home / "pipelines" / "hourly_oee.yaml").write_text(
        f"kind: oee_rollup\nschedule: {{interval: {rollup_interval}s}}\nlookback_hours: 26\nretries: 3\n")
    (home / ".gitignore").write_text("data/\nreports/\n")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "soak"]):
        subprocess.run(["git", "-c", "user.name=soak", "-c", "user.email=soak@plant.example", *args],
                       cwd=home, check=True, capture_output=True)
    return home


def start(cmd: list[str], *, env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def run_kernel(env: dict[str, str], seconds: float, out: queue.Queue) -> None:
    """An analyst's notebook: the workbench kernel reading the warehouse in a loop."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="workbench", env=env, cwd=env["WORKBENCH_HOME"])
    lines: list[str] = []
    try:
        kc.execute(KERNEL_LOOP.format(seconds=seconds))
        while True:
            msg = kc.get_iopub_msg(timeout=seconds + 600)
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                lines.extend(content["text"].splitlines())
            elif kind == "error":
                lines.append(f"KERNEL ERROR {content['ename']}: {content['evalue']}")
            elif kind == "status" and content["execution_state"] == "idle" and lines:
                break
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        out.put(lines)


def flow_runs(api: str) -> list[dict]:
    response = httpx.post(f"{api}/flow_runs/filter", json={"sort": "EXPECTED_START_TIME_ASC", "limit": 200},
                          timeout=30)
    response.raise_for_status()
    return response.json()


def when(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--report-interval", type=int, default=60, help="seconds between daily reports")
    parser.add_argument("--rollup-interval", type=int, default=30, help="seconds between roll-ups")
    parser.add_argument("--keep", action="store_true", help="keep the throw-away project")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="soak-"))
    home = build_project(work, report_interval=args.report_interval, rollup_interval=args.rollup_interval)
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "WORKBENCH_"))}
    server_env = {**base, "PREFECT_HOME": str(work / "prefect-server"),
                  "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5"}
    wb_env = {**base, "PREFECT_API_URL": api, "PREFECT_HOME": str(work / "prefect-client"),
              "WORKBENCH_HOME": str(home), "WORKBENCH_ENV_FILE": str(home / ".env")}
    print(f"project {home}; Prefect server on {api}")
    server = start([WORKBENCH, "server", "--port", str(port), "--no-ui"], env=server_env,
                   log=work / "server.log", cwd=home)
    serve = None
    try:
        for _ in range(240):
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            print((work / "server.log").read_text())
            return 1
        serve = start([WORKBENCH, "serve"], env=wb_env, log=work / "serve.log", cwd=home)
        # The schedule exists from when serve has registered the deployments: slots count from then.
        for _ in range(120):
            found = httpx.post(f"{api}/deployments/filter", json={"limit": 10}, timeout=10).json()
            if len(found) == 2:
                break
            time.sleep(1)
        else:
            print((work / "serve.log").read_text())
            return 1
        began = max(when(d["created"]) for d in found)
        seconds = args.minutes * 60
        kernel_out: queue.Queue = queue.Queue()
        kernel = threading.Thread(target=run_kernel, args=(wb_env, seconds, kernel_out), daemon=True)
        kernel.start()
        print(f"serving from {began:%H:%M:%S} UTC for {args.minutes:g} min; a notebook kernel reads "
              "meanwhile")
        time.sleep(seconds)
        ended = dt.datetime.now(dt.UTC)
        kernel.join(timeout=120)
        # let the runs due before the end finish
        for _ in range(60):
            due = [r for r in flow_runs(api) if (when(r["expected_start_time"]) or ended) < ended
                   and r["state_type"] in ("SCHEDULED", "PENDING", "RUNNING")]
            if not due:
                break
            time.sleep(5)
        runs = flow_runs(api)
    finally:
        if serve is not None:
            stop(serve)
        stop(server)
    failures = 0
    print(f"\n{'run':34} {'due (UTC)':10} {'delay s':>8} {'took s':>7}  state")
    by_deployment: dict[str, list[dict]] = {}
    for r in runs:
        due = when(r["expected_start_time"])
        if due is None or not (began <= due < ended):
            continue
        by_deployment.setdefault(r["parameters"].get("pipeline", "?"), []).append(r)
        start_at = when(r.get("start_time"))
        delay = f"{(start_at - due).total_seconds():.1f}" if start_at else "—"
        took = f"{r['total_run_time']:.1f}" if r.get("total_run_time") else "—"
        print(f"{r['name'][:34]:34} {due:%H:%M:%S}   {delay:>8} {took:>7}  {r['state_name']}"
              f"{'' if r['auto_scheduled'] else ' (not from the scheduler)'}")
    print()
    for pipeline, interval in (("daily_report", args.report_interval), ("hourly_oee", args.rollup_interval)):
        mine = by_deployment.get(pipeline, [])
        first = began + dt.timedelta(seconds=interval - began.timestamp() % interval)
        slots = []
        t = first
        while t < ended:
            slots.append(t)
            t += dt.timedelta(seconds=interval)
        got = {when(r["expected_start_time"]) for r in mine}
        skipped = [s for s in slots if s not in got]
        completed = [r for r in mine if r["state_type"] == "COMPLETED"]
        not_ok = [r for r in mine if r["state_type"] != "COMPLETED"]
        delays = [(when(r["start_time"]) - when(r["expected_start_time"])).total_seconds()
                  for r in completed if r.get("start_time")]
        took = [r["total_run_time"] for r in completed]
        print(f"{pipeline}: every {interval}s — {len(slots)} slots in the window, {len(mine)} runs, "
              f"{len(completed)} completed, {len(skipped)} skipped, {len(not_ok)} not completed")
        if completed:
            print(f"  start delay median {statistics.median(delays):.1f} s, max {max(delays):.1f} s; "
                  f"run time median {statistics.median(took):.1f} s, max {max(took):.1f} s")
        for s in skipped:
            print(f"  SKIPPED slot {s:%H:%M:%S}")
        for r in not_ok:
            print(f"  NOT COMPLETED {r['name']}: {r['state_name']} {r['state'].get('message') or ''}")
        failures += len(skipped) + len(not_ok) + (0 if slots else 1)
    lines = kernel_out.get(timeout=5) if not kernel_out.empty() else ["KERNEL produced nothing"]
    print("\n".join(lines))
    if not any(line.startswith("KERNEL reads=") and "errors=0" in line for line in lines):
        failures += 1
    verdict = "every scheduled run completed, none skipped" if failures == 0 else f"{failures} problem(s)"
    print("\nRESULT:", verdict)
    if args.keep:
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
