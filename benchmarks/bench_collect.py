"""Collector throughput: KEPServerEX-format MQTT → Mosquitto → ``workbench collect`` → PostgreSQL.

One run, on this machine, prints:

* values per minute stored by the collector (sustained over ``--seconds`` after a warm-up), with
  0 loss checked at the end (stored rows = values published, distinct = stored);
* end-to-end latency p50 / p99, sampled every 0.25 s as *wall clock − newest source time stored*
  for one machine (the publisher stamps each value with its publish time and publishes every
  machine several times a second; the forwarder drains in order, so the newest stored value
  bounds the age of everything published before it);
* beside it, the ceiling of a raw psycopg ``COPY`` of the same number of rows into the same table,
  and the ratio collector / raw COPY;
* with ``--collectors 2``, the same with the tags split over two collector processes.

The publisher runs in its own process and offers ``--rate`` values a minute in messages of
``--values`` values (50–500, like KEPServerEX's IoT Gateway). Not a test: run it by hand,
``python benchmarks/bench_collect.py [--rate 1500000] [--seconds 60] [--collectors 1|2]``.
Target (seed 000): ≥ 1,000,000 values a minute with 0 loss on the 2-core machine.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import numpy as np
import psycopg

from workbench.simulate.broker import MosquittoBroker

PG_URL = os.environ.get("WORKBENCH_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


def tag_dictionary(prefix: str, machines: int, tags: int, groups: int, port: int) -> list[str]:
    """One YAML text per collector: its share of the machines, its own topic and client id."""
    texts = []
    per = machines // groups
    for g in range(groups):
        lines = [
            "version: 1",
            "defaults: {clock_skew_s: 30}",
            "sources:",
            f"  kepware: {{protocol: mqtt, url: 'mqtt://127.0.0.1:{port}', topic: '{prefix}/{g}/#', "
            f"client_id: '{prefix}-collector-{g}'}}",
            "tags:",
        ]
        for m in range(g * per, (g + 1) * per):
            for k in range(tags):
                lines.append(
                    f"  - {{source: kepware, id: B.M{m:04d}.T{k:03d}, machine_id: M{m:04d}, "
                    f"metric: t{k:03d}, unit: x, kind: gauge}}"
                )
        texts.append("\n".join(lines) + "\n")
    return texts


def publisher(
    prefix: str,
    machines: int,
    tags: int,
    groups: int,
    values: int,
    rate_per_min: float,
    seconds: float,
    port: int,
    out: mp.Queue,
) -> None:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{prefix}-pub", protocol=paho.MQTTv5)
    client.max_queued_messages_set(0)
    client.max_inflight_messages_set(2000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    per = machines // groups
    ids = [(m // per, f"B.M{m:04d}.T{k:03d}") for m in range(groups * per) for k in range(tags)]
    rng = np.random.default_rng(1)
    msgs_per_s = rate_per_min / 60.0 / values
    sent = msgs = 0
    start = time.time()
    last_t = 0
    pos = 0
    while time.time() - start < seconds:
        due = start + msgs / msgs_per_s
        wait = due - time.time()
        if wait > 0:
            time.sleep(wait)
        t = max(int(time.time() * 1000), last_t + 1)  # strictly increasing per tag across rounds
        chunk = ids[pos : pos + values]
        pos = (pos + values) % len(ids)
        if pos < values:
            last_t = t
        group = chunk[0][0]
        chunk = [c for c in chunk if c[0] == group]
        v = rng.normal(50.0, 5.0, size=len(chunk)).round(3)
        payload = json.dumps(
            {
                "timestamp": t,
                "values": [
                    {"id": tid, "v": float(x), "q": True, "t": t}
                    for (_, tid), x in zip(chunk, v, strict=True)
                ],
            },
            separators=(",", ":"),
        )
        client.publish(f"{prefix}/{group}/data", payload, qos=1)
        sent += len(chunk)
        msgs += 1
    while client._out_messages:
        time.sleep(0.05)
    client.loop_stop()
    client.disconnect()
    out.put((sent, msgs, time.time() - start))


def pg_schema(name: str) -> str:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options={quote(f'-csearch_path={name}')}"


def drop_schema(name: str) -> None:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def run_collectors(n: int, args: argparse.Namespace, tmp: Path, port: int) -> dict:
    from workbench.store import PostgresWarehouse

    prefix = f"bench{uuid.uuid4().hex[:6]}"
    schema_name = f"wb_bench_{uuid.uuid4().hex[:8]}"
    url = pg_schema(schema_name)
    PostgresWarehouse(url, timescale="off").init_schema()
    procs = []
    try:
        for g, text in enumerate(tag_dictionary(prefix, args.machines, args.tags, n, port)):
            tags = tmp / f"tags{g}.yaml"
            tags.write_text(text)
            env = {
                **os.environ,
                "WORKBENCH_DATABASE_URL": url,
                "WORKBENCH_TIMESCALE": "off",
                "WORKBENCH_HOME": str(tmp),
            }
            log = (tmp / f"collect{g}.log").open("w")
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "workbench.cli",
                        "collect",
                        "--tags",
                        str(tags),
                        "--spool",
                        str(tmp / f"spool{prefix}{g}.sqlite"),
                    ],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        deadline = time.time() + 60
        while time.time() < deadline and not all(
            "MQTT connected" in (tmp / f"collect{g}.log").read_text() for g in range(n)
        ):
            time.sleep(0.2)
        q: mp.Queue = mp.Queue()
        pub = mp.Process(
            target=publisher,
            args=(
                prefix,
                args.machines,
                args.tags,
                n,
                args.values,
                args.rate,
                args.seconds + args.warmup,
                port,
                q,
            ),
        )
        pub.start()
        conn = psycopg.connect(url, autocommit=True)
        lat: list[float] = []
        counts: dict[str, tuple[float, int]] = {}
        t0 = time.time()
        while pub.is_alive() or q.empty():
            now = time.time()
            # One machine's newest value, through the (machine_id, time) index: a probe that costs the
            # server nothing, where max(time) over the whole table would scan it four times a second.
            probe = "SELECT max(time) FROM machine_telemetry WHERE machine_id = 'M0000'"
            row = conn.execute(probe).fetchone()
            if row[0] is not None and now - t0 > args.warmup:
                lat.append(now - row[0].timestamp())
            if "start" not in counts and now - t0 >= args.warmup:
                counts["start"] = (now, conn.execute("SELECT count(*) FROM machine_telemetry").fetchone()[0])
            if "end" not in counts and now - t0 >= args.warmup + args.seconds:
                counts["end"] = (now, conn.execute("SELECT count(*) FROM machine_telemetry").fetchone()[0])
            if not pub.is_alive() and not q.empty():
                break
            time.sleep(0.25)
        sent, msgs, _ = q.get()
        pub.join()
        # Drain: wait until everything published is stored (or a minute without progress).
        last, still = -1, time.time()
        while True:
            n_rows = conn.execute("SELECT count(*) FROM machine_telemetry").fetchone()[0]
            if n_rows >= sent:
                break
            if n_rows != last:
                last, still = n_rows, time.time()
            elif time.time() - still > 60:
                break
            time.sleep(0.5)
        if "end" not in counts:
            counts["end"] = (time.time(), n_rows)
        distinct = conn.execute(
            "SELECT count(DISTINCT (machine_id, metric, time)) FROM machine_telemetry"
        ).fetchone()[0]
        dead = conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
        reasons = conn.execute(
            "SELECT split_part(reason, ':', 1), count(*), min(reason) FROM dead_letters "
            "GROUP BY 1 ORDER BY 2 DESC LIMIT 3"
        ).fetchall()
        conn.close()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=120)
    (ts, c0), (te, c1) = counts["start"], counts["end"]
    result = {
        "collectors": n,
        "published": sent,
        "messages": msgs,
        "stored": n_rows,
        "distinct": distinct,
        "dead_letters": dead,
        "reasons": reasons,
        "values_per_min": (c1 - c0) / (te - ts) * 60.0,
        "p50_s": float(np.percentile(lat, 50)) if lat else float("nan"),
        "p99_s": float(np.percentile(lat, 99)) if lat else float("nan"),
        "schema": schema_name,
    }
    result["raw_copy_per_min"] = raw_copy(url, min(n_rows, 2_000_000))
    drop_schema(schema_name)
    return result


def raw_copy(url: str, rows: int) -> float:
    """Rows a minute of a plain psycopg COPY of ``rows`` telemetry rows into an empty copy of the table."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE raw_copy (LIKE machine_telemetry INCLUDING ALL)")
        data = conn.execute("SELECT * FROM machine_telemetry LIMIT %s", (rows,)).fetchall()
        buf = io.StringIO()
        for r in data:
            buf.write("\t".join("\\N" if v is None else str(v) for v in r) + "\n")
        text = buf.getvalue().encode()
        start = time.perf_counter()
        with conn.cursor() as cur, cur.copy("COPY raw_copy FROM STDIN") as copy:
            for i in range(0, len(text), 1 << 20):
                copy.write(text[i : i + (1 << 20)])
        elapsed = time.perf_counter() - start
    return len(data) / elapsed * 60.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=1_500_000, help="values a minute offered")
    ap.add_argument("--values", type=int, default=250, help="values per MQTT message (50-500)")
    ap.add_argument("--seconds", type=float, default=60.0, help="measured window")
    ap.add_argument("--warmup", type=float, default=10.0)
    ap.add_argument("--machines", type=int, default=100)
    ap.add_argument("--tags", type=int, default=50, help="gauge tags per machine")
    ap.add_argument("--collectors", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--keep", action="store_true", help="keep the collectors' logs and spools")
    args = ap.parse_args()
    print(
        f"offered {args.rate:,.0f} values/min in messages of {args.values} values, "
        f"{args.machines * args.tags:,} tags, {args.seconds:.0f} s measured after {args.warmup:.0f} s warm-up"
    )
    tmp = tempfile.mkdtemp(prefix="bench_collect_")
    # A private Mosquitto with the settings the README asks of a plant's broker (no per-client queue
    # limit): when the offered rate exceeds the collector's, the backlog waits in the broker and shows
    # as latency, instead of being dropped by the default 1000-message queue.
    broker = MosquittoBroker(Path(tmp) / "mosquitto").start()
    try:
        for n in args.collectors:
            r = run_collectors(n, args, Path(tmp), broker.port)
            lost = r["published"] - r["stored"]
            dup = r["stored"] - r["distinct"]
            print(f"\ncollectors: {n}")
            print(f"  published            {r['published']:>14,} values in {r['messages']:,} messages")
            print(
                f"  stored               {r['stored']:>14,}   lost {lost:,}   duplicated {dup:,}   "
                f"dead letters {r['dead_letters']:,}"
            )
            for _rule, count, example in r["reasons"]:
                print(f"    {count:,} × {example[:150]}")
            print(f"  collector            {r['values_per_min']:>14,.0f} values/min (sustained)")
            print(f"  raw psycopg COPY     {r['raw_copy_per_min']:>14,.0f} rows/min (same rows, same table)")
            print(f"  ratio collector/COPY {r['values_per_min'] / r['raw_copy_per_min']:>14.2f}")
            print(f"  latency p50 / p99    {r['p50_s']:>10.2f} s / {r['p99_s']:.2f} s")
            target = "MET" if r["values_per_min"] >= 1_000_000 and lost == 0 and dup == 0 else "NOT MET"
            print(f"  target ≥ 1,000,000 values/min with 0 loss: {target}")
    finally:
        broker.stop()
        if args.keep:
            print(f"\nlogs and spools kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
