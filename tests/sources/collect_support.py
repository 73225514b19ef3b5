"""Running the collector and the KEPServerEX publisher the way a plant does, for the fault tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from workbench.simulate.plc import PlcImage


def start_collector(home: Path, tags: Path, env: dict[str, str]) -> subprocess.Popen:
    """``workbench collect`` as its own process (logs in ``home/collect.log``)."""
    full = {**os.environ, "WORKBENCH_HOME": str(home), "WORKBENCH_TIMESCALE": "off", **env}
    log = (home / "collect.log").open("ab")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "workbench.cli",
            "collect",
            "--tags",
            str(tags),
            "--spool",
            str(home / "spool.sqlite"),
        ],
        env=full,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=home,
    )


def stop_collector(proc: subprocess.Popen, *, timeout: float = 60.0) -> int:
    """SIGTERM and wait for the clean stop; the exit code."""
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=timeout)


def wait_for(predicate, *, timeout: float, step: float = 0.5, what: str = "condition") -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def compare_counts(
    image: PlcImage, production: pd.DataFrame, machines: list[str], *, since_ms: dict[str, int] | None = None
) -> pd.DataFrame:
    """Expected vs stored good / reject counts per machine-hour; rows that differ."""
    exp = image.expected_counts(since_ms=since_ms)
    exp = exp[exp["machine_id"].isin(machines)]
    pe = production.copy()
    pe["hour"] = pe["time"].dt.floor("h")
    got = pe.groupby(["machine_id", "hour"], as_index=False)[["good_count", "reject_count"]].sum()
    m = exp.merge(got, on=["machine_id", "hour"], how="outer").fillna(0)
    return m[(m["good"] != m["good_count"]) | (m["rejects"] != m["reject_count"])]


def expected_telemetry_rows(image: PlcImage, machines: list[str]) -> int:
    """Telemetry rows the publisher's messages hold: every value but the part-number context."""
    return len(image.times) * len(machines) * (len(image.values(machines[0], 0)) - 1)


def collector_log(home: Path) -> str:
    path = home / "collect.log"
    return path.read_text(errors="replace") if path.exists() else ""


def join_states(states: pd.DataFrame) -> pd.DataFrame:
    """Contiguous intervals of the same state as one interval."""
    new = (states["state"] != states["state"].shift()) | (states["time_start"] != states["time_end"].shift())
    return states[new.to_numpy()]


def truth_states(image: PlcImage) -> pd.DataFrame:
    """State changes as the scans show them (the image), as intervals: the reference for states."""
    from workbench.simulate.plc import STATE_CODES

    names = {v: k for k, v in STATE_CODES.items()}
    rows = []
    for m, img in image.machines.items():
        change = [0] + [k for k in range(1, len(image.times)) if img.state[k] != img.state[k - 1]]
        # Every interval, the last (still open at the end of the image) included.
        for a in change:
            rows.append((m, pd.Timestamp(int(image.times[a]), unit="ms", tz="UTC"), names[int(img.state[a])]))
    return pd.DataFrame(rows, columns=["machine_id", "time_start", "state"])
