"""OPC UA collector capacity: monitored items at a 1 s sampling interval one process holds.

An asyncua server runs in a separate process (multiprocessing, spawn) with the largest N of the
steps as Double variables; during a step the first N of them change once a second each (written
in ten slices of 100 ms, a steady stream as from PLCs, not one burst). For each step this process
runs one :class:`~workbench.sources.opcua.OpcUaConnector` subscribed to those N variables
(sampling and publishing interval 1 s) and consumes its batches, nothing else; after the initial
values and a warm-up it measures, over ``--seconds`` of wall time, this process's CPU time
(``time.process_time()``: user + system, all threads) per wall second, the notifications received
per second, whether every change stamped inside the window arrived ("kept up": N per second, the
server included) and the lag of each batch's newest reading behind its source timestamp (same
machine, same clock).

Prints a table N → CPU % of one core, notifications/s, kept up, lag, and the largest N under 50 %
of one core that kept up (≥ 99 %). The server is pure Python too and needs most of a core of its
own at the top step (its per-notification deep copy is replaced by a reference, see
:func:`_serve`): run this on a machine with at least two idle cores, or the server, not the
collector, sets the ceiling. Not a test:
``python benchmarks/bench_opcua_capacity.py`` (about 3 minutes with the default steps).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import multiprocessing as mp
import os
import platform
import resource
import socket
import statistics
import sys
import time
from importlib.metadata import version
from typing import Any

from workbench.sources.base import now_ms
from workbench.sources.opcua import OpcUaConnector
from workbench.sources.tags import Source, Tag

NAMESPACE_URI = "urn:workbench:bench"
PER_OBJECT = 100  # variables per object ("line"), as a server would group a machine's tags
SLICES = 10  # the writes of one second are spread over this many slices
LIMIT_PCT = 50.0


def node_id(i: int) -> str:
    """Node id of benchmark variable ``i`` (namespace 2, the first one registered)."""
    return f"ns=2;s=L{i // PER_OBJECT:03d}.v{i % PER_OBJECT:03d}"


# -- the server process --------------------------------------------------------------------------


def serve(port: int, n: int, active: mp.sharedctypes.Synchronized, ready: mp.synchronize.Event,
          stop: mp.synchronize.Event) -> None:
    """Entry point of the server process: ``n`` variables, the first ``active.value`` changing."""
    asyncio.run(_serve(port, n, active, ready, stop))


async def _serve(port: int, n: int, active: mp.sharedctypes.Synchronized, ready: mp.synchronize.Event,
                 stop: mp.synchronize.Event) -> None:
    from asyncua import Server, ua
    from asyncua.server.monitored_item_service import MonitoredItemValues

    from workbench.simulate.opcua_server import quiet_asyncua_logs

    def keep_reference(self: MonitoredItemValues, value: ua.DataValue) -> None:
        self.old_dvalue, self.current_dvalue = self.current_dvalue, value

    # asyncua's server deep-copies every DataValue it notifies (~35 µs each): at a few thousand
    # changes a second that, not the collector, is the limit. Every write below is a new
    # DataValue that is never mutated, so keeping a reference is equivalent; this benchmark
    # measures the collector.
    MonitoredItemValues.set_current_datavalue = keep_reference
    quiet_asyncua_logs()
    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/bench/")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    server.set_identity_tokens([ua.AnonymousIdentityToken])
    idx = await server.register_namespace(NAMESPACE_URI)
    assert idx == 2, idx
    nodes = []
    for o in range(-(-n // PER_OBJECT)):
        name = f"L{o:03d}"
        obj = await server.nodes.objects.add_object(ua.NodeId(name, idx), ua.QualifiedName(name, idx))
        for i in range(o * PER_OBJECT, min(n, (o + 1) * PER_OBJECT)):
            nid = ua.NodeId.from_string(node_id(i))
            await obj.add_variable(nid, ua.QualifiedName(f"v{i % PER_OBJECT:03d}", idx),
                                   ua.Variant(0.0, ua.VariantType.Double))
            nodes.append(nid)
    await server.start()
    ready.set()
    t0 = time.time()
    second = 0
    try:
        while not stop.is_set():
            # Only the variables of the current step change, so the server's load follows N.
            live = nodes[:active.value]
            for s in range(SLICES):
                part = live[s::SLICES]
                delay = t0 + second + s / SLICES - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                # Naive UTC: asyncua deep-copies each notified DataValue, far faster without a tzinfo.
                ts = dt.datetime.now(dt.UTC).replace(tzinfo=None)
                value = ua.Variant(float(second), ua.VariantType.Double)
                for nid in part:
                    await server.write_attribute_value(
                        nid, ua.DataValue(value, SourceTimestamp=ts, ServerTimestamp=ts))
            second += 1
    finally:
        await server.stop()


# -- the collector (this process) ----------------------------------------------------------------


async def measure(url: str, n: int, *, seconds: float, warmup: float) -> dict[str, Any]:
    """Subscribe to ``n`` variables and measure this process over ``seconds``."""
    tags = [Tag(source="bench", address=node_id(i), machine_id=f"L{i // PER_OBJECT:03d}",
                metric=f"v{i % PER_OBJECT:03d}", kind="gauge", unit="u") for i in range(n)]
    src = Source(name="bench", protocol="opcua", url=url, sampling_ms=1000, timeout_s=10.0)
    con = OpcUaConnector(src, tags)
    count = 0
    lags: list[int] = []
    # Changes stamped inside the measured window, counted whenever they arrive: whether the whole
    # chain kept up (N per second), independent of where the window cuts the 1 s publishes.
    window = [0, 0]
    stamped = 0
    t_sub = time.perf_counter()
    await con.connect()

    async def consume() -> None:
        nonlocal count, stamped
        async for batch in con.stream():
            count += len(batch.readings)
            if batch.readings:
                lags.append(now_ms() - batch.readings[-1].time_ms)
                lo, hi = window
                stamped += sum(1 for r in batch.readings if lo <= r.time_ms < hi)

    task = asyncio.create_task(consume())
    try:
        deadline = time.perf_counter() + 60
        while count < n and time.perf_counter() < deadline:  # the initial values: subscribed
            await asyncio.sleep(0.05)
        t_sub = time.perf_counter() - t_sub
        if count < n:
            return {"n": n, "failed": f"only {count} of {n} initial values in 60 s "
                                      f"(sessions: {con.sessions})"}
        await asyncio.sleep(warmup)
        lags.clear()
        window[:] = [now_ms(), now_ms() + int(seconds * 1000)]
        c0, w0, n0 = time.process_time(), time.perf_counter(), count
        await asyncio.sleep(seconds)
        cpu, wall, notes = time.process_time() - c0, time.perf_counter() - w0, count - n0
        lag = sorted(lags) or [0]
        await asyncio.sleep(min(10.0, 2.0 + lag[-1] / 1000))  # the window's last changes arrive
    finally:
        await con.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
    return {"n": n, "cpu_pct": 100.0 * cpu / wall, "notes_per_s": notes / wall, "subscribe_s": t_sub,
            "kept_up": stamped / (n * seconds), "lag_median_ms": statistics.median(lag),
            "lag_p95_ms": lag[int(0.95 * (len(lag) - 1))]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="500,1000,2000,4000,8000",
                        help="monitored items per step, comma-separated")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured wall seconds per step")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds after the initial values")
    args = parser.parse_args()
    steps = sorted(int(s) for s in args.steps.split(","))
    port = free_port()
    url = f"opc.tcp://127.0.0.1:{port}/bench/"
    ctx = mp.get_context("spawn")
    ready, stop, active = ctx.Event(), ctx.Event(), ctx.Value("i", 0)
    proc = ctx.Process(target=serve, args=(port, steps[-1], active, ready, stop), name="opcua-bench-server",
                       daemon=True)
    started = time.perf_counter()
    print(f"OPC UA collector capacity — asyncua {version('asyncua')}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()})")
    print(f"server process: {steps[-1]} Double variables, the N of the step changing once a second; "
          f"collector: 1 OpcUaConnector, sampling 1000 ms, {args.seconds:g} s per step; "
          f"load average {os.getloadavg()[0]:.2f}")
    proc.start()
    try:
        if not ready.wait(120):
            print("the server process did not start", file=sys.stderr)
            return 1
        rows = []
        for n in steps:
            active.value = n
            row = asyncio.run(measure(url, n, seconds=args.seconds, warmup=args.warmup))
            rows.append(row)
            if "failed" in row:
                print(f"  N={n:>6}: {row['failed']}; stopping here", flush=True)
                break
            print(f"  N={n:>6}: CPU {row['cpu_pct']:5.1f} %  {row['notes_per_s']:8.0f} notifications/s  "
                  f"lag median {row['lag_median_ms']:.0f} ms  (subscribed in {row['subscribe_s']:.1f} s)",
                  flush=True)
    finally:
        stop.set()
        proc.join(15)
        if proc.is_alive():
            proc.terminate()
    print()
    print(f"{'items':>7} {'CPU % of 1 core':>16} {'notifications/s':>16} {'kept up':>8} {'lag median':>11} "
          f"{'lag p95':>8} {'CPU µs/notif':>13}")
    failed = [r for r in rows if "failed" in r]
    rows = [r for r in rows if "failed" not in r]
    for r in rows:
        per = 1e6 * r["cpu_pct"] / 100 / r["notes_per_s"] if r["notes_per_s"] else float("nan")
        print(f"{r['n']:>7} {r['cpu_pct']:>16.1f} {r['notes_per_s']:>16.0f} "
              f"{r['kept_up']:>8.1%} {r['lag_median_ms']:>9.0f}ms {r['lag_p95_ms']:>6.0f}ms "
              f"{per:>13.0f}")
    under = [r for r in rows if r["cpu_pct"] < LIMIT_PCT and r["kept_up"] >= 0.99]
    best = max((r["n"] for r in under), default=None)
    for r in failed:
        print(f"{r['n']:>7}  not measured: {r['failed']}")
    if not rows:
        return 1
    top = rows[-1]
    slope = top["cpu_pct"] / top["notes_per_s"] if top["notes_per_s"] else float("nan")
    print()
    if best is None:
        print(f"no step stayed under {LIMIT_PCT:.0f} % of one core while keeping up")
    elif best == steps[-1]:
        print(f"largest N under {LIMIT_PCT:.0f} % of one core: ≥ {best} (every step; at {top['n']} items "
              f"{top['cpu_pct']:.1f} %, so about {LIMIT_PCT / slope:.0f} items at the limit by proportion)")
    else:
        print(f"largest N under {LIMIT_PCT:.0f} % of one core (and keeping up): {best}")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"collector peak RSS {rss_mb:.0f} MB; whole run {time.perf_counter() - started:.0f} s; "
          f"load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
