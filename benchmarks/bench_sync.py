"""MachineMetrics sync throughput: the simulated MachineMetrics API → ``workbench`` sync → PostgreSQL,
beside the seed's way of doing it (row-by-row ``INSERT … ON CONFLICT DO NOTHING``).

One run, on this machine, prints for one sync of ``--machines`` machines × ``--days`` day(s):

* **ours**: :func:`workbench.sources.syncs.sync_machinemetrics` end to end — HTTP pages, strict
  record checks, event ids, one ``COPY``-based write per table per group of streams, watermarks —
  rows written per second;
* **seed, commit per row**: the same records fetched from the same API, then inserted one row per
  statement with ``ON CONFLICT DO NOTHING`` in autocommit (a cron script's ``execute`` + ``commit``
  per record) — rows per second, and the ratio;
* **seed, one commit**: the same loop in one transaction (the kindest reading of the seed).

The API runs in a process of its own (as the real one runs elsewhere), so it does not share the
interpreter lock with the sync. Not a test: run it by hand,
``python benchmarks/bench_sync.py [--machines 100] [--days 1]``. Target (issue 10): ≥ 20×.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing as mp
import os
import socket
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import httpx
import psycopg

PG_URL = os.environ.get("WORKBENCH_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
KEY = "bench-key"


def _plant(machines: int, days: int):
    from workbench.simulate import PlantConfig, simulate_plant

    return simulate_plant(
        PlantConfig(
            seed=21,
            n_machines=machines,
            n_lines=max(1, machines // 10),
            days=days,
            telemetry=False,
            cycle_events=False,
        )
    )


def _serve(machines: int, days: int, port: int, ready) -> None:
    from workbench.simulate.http import ServedApp
    from workbench.simulate.machinemetrics import machinemetrics_app

    with ServedApp(machinemetrics_app(_plant(machines, days), api_key=KEY), port=port):
        ready.set()
        while True:
            time.sleep(3600)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _schema_url(name: str) -> str:
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options={quote(f'-csearch_path={name}')}"


def _checkpoint() -> None:
    """Flush PostgreSQL's dirty pages, so one measurement does not pay for the previous one's."""
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def _seed_tables(conn: psycopg.Connection) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS seed_production (time timestamptz, machine_id text, event_type text, "
        "part_number text, work_order text, good int, reject int, cycle_ms double precision, "
        "PRIMARY KEY (machine_id, event_type, time))"
    )
    conn.execute(
        "CREATE TABLE IF NOT EXISTS seed_states (machine_id text, time_start timestamptz, "
        "time_end timestamptz, state text, fault_code text, PRIMARY KEY (machine_id, time_start))"
    )
    conn.execute(
        "CREATE TABLE IF NOT EXISTS seed_downtime (machine_id text, time_start timestamptz, "
        "time_end timestamptz, reason_code text, PRIMARY KEY (machine_id, time_start))"
    )


def _fetch_raw(
    base: str, machines: list[str], start: dt.datetime, end: dt.datetime
) -> list[tuple[str, str, dict]]:
    """Every record, as the seed's cron script fetches them (one machine and report after another)."""
    out = []
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=60) as http:
        for m in machines:
            for report in ("production", "states", "downtime"):
                page = 1
                while page:
                    body = http.get(
                        f"/v1/report/{report}",
                        params={
                            "machineId": m,
                            "startDate": start.isoformat(),
                            "endDate": end.isoformat(),
                            "page": page,
                            "pageSize": 1000,
                        },
                    ).json()
                    out += [(report, m, r) for r in body["data"]]
                    page = body["nextPage"]
    return out


def _seed_insert(url: str, records: list[tuple[str, str, dict]], *, autocommit: bool) -> float:
    """The seed's write: one ``INSERT … ON CONFLICT DO NOTHING`` per record; seconds."""
    with psycopg.connect(url, autocommit=autocommit) as conn:
        _seed_tables(conn)
        if not autocommit:
            conn.commit()
        t0 = time.perf_counter()
        for report, m, r in records:
            if report == "production":
                conn.execute(
                    "INSERT INTO seed_production VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT DO NOTHING",
                    (
                        r["timestamp"],
                        m,
                        r["type"],
                        r["partNumber"],
                        r["workOrder"],
                        r["goodParts"],
                        r["rejectParts"],
                        r["cycleTimeMs"],
                    ),
                )
            elif report == "states":
                conn.execute(
                    "INSERT INTO seed_states VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (m, r["start"], r["end"], r["state"], r["faultCode"]),
                )
            else:
                conn.execute(
                    "INSERT INTO seed_downtime VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (m, r["start"], r["end"], r["reasonCode"]),
                )
        if not autocommit:
            conn.commit()
        return time.perf_counter() - t0


class _Replay:
    """A stream that hands over units fetched before (to time the write path alone)."""

    def __init__(self, name: str, entity: str, units: list) -> None:
        self.name, self.entity, self._units = name, entity, units

    def units(self, start, until):
        yield from self._units


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--machines", type=int, default=100)
    parser.add_argument("--days", type=int, default=1)
    args = parser.parse_args()

    from workbench import config
    from workbench.pipelines import SyncSpec
    from workbench.simulate.machinemetrics import horizon
    from workbench.sources.syncs import sync_machinemetrics
    from workbench.store import PostgresWarehouse

    plant = _plant(args.machines, args.days)
    start, end = horizon(plant)
    until = end  # one window of exactly the simulated day(s)
    machine_ids = sorted(plant.tables["machines"]["machine_id"].astype(str))
    port = _free_port()
    ready = mp.get_context("spawn").Event()
    server = mp.get_context("spawn").Process(
        target=_serve, args=(args.machines, args.days, port, ready), daemon=True
    )
    server.start()
    if not ready.wait(300):
        raise SystemExit("the simulated API did not start")
    base = f"http://127.0.0.1:{port}"
    schemas = [f"bench_sync_{uuid.uuid4().hex[:8]}" for _ in range(5)]
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        for name in schemas:
            conn.execute(f"CREATE SCHEMA {name}")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            url = _schema_url(schemas[0])
            with PostgresWarehouse(url, timescale="off") as wh:
                wh.init_schema()
            settings = config.load(
                home=Path(tmp),
                data_dir=Path(tmp) / "data",
                database_url=url,
                timescale="off",
                mm_base_url=base,
                mm_api_key=KEY,
            )
            t0 = time.perf_counter()
            report = sync_machinemetrics(settings, SyncSpec(workers=4), since=start, until=until)
            ours_s = time.perf_counter() - t0
            assert report.ok, report.lines()
            ours_rows = report.total("written")
        print(
            f"{args.machines} machines x {args.days} day(s): {ours_rows:,} rows "
            f"({', '.join(f'{k} {v.written:,}' for k, v in sorted(report.entities.items()))})"
        )

        # The same records, fetched once: raw JSON for the seed's loop, units for ours.
        from workbench.sources.http import JsonApi
        from workbench.sources.machinemetrics import REPORTS, ReportStream
        from workbench.sources.sync import run_sync

        t0 = time.perf_counter()
        raw = _fetch_raw(base, machine_ids, start, until)
        seed_fetch = time.perf_counter() - t0
        facts = len(raw)
        with JsonApi("machinemetrics", base, KEY) as api:
            fetched = {
                (m, r): list(ReportStream(api, m, r).units(start, until))
                for m in machine_ids
                for r in REPORTS
            }

        def ours_write(schema: str) -> float:
            url = _schema_url(schema)
            with PostgresWarehouse(url, timescale="off") as wh:
                wh.init_schema()
            streams = [_Replay(f"{r}:{m}", REPORTS[r][1], units) for (m, r), units in fetched.items()]
            _checkpoint()
            t0 = time.perf_counter()
            replay = run_sync(
                "machinemetrics",
                streams,
                open_warehouse=lambda: PostgresWarehouse(url, timescale="off"),
                until=until,
                overlap=dt.timedelta(0),
                initial=None,
                since=start,
                workers=4,
            )
            took = time.perf_counter() - t0
            assert replay.ok and replay.total("written") == facts, (replay.lines(), facts)
            return took

        # Each timed write starts after a CHECKPOINT, and ours runs before and after the seed's
        # (200,000 single-row inserts leave PostgreSQL busy with autovacuum for a while).
        ours_before = ours_write(schemas[3])
        _checkpoint()
        seed_commit_each = _seed_insert(_schema_url(schemas[1]), raw, autocommit=True)
        _checkpoint()
        seed_one_commit = _seed_insert(_schema_url(schemas[2]), raw, autocommit=False)
        ours_after = ours_write(schemas[4])
        ours_w = (ours_before + ours_after) / 2

        print("\nend to end (fetch from the simulated API + write):")
        print(f"  ours (workbench sync):            {ours_s:6.1f} s {ours_rows / ours_s:9,.0f} rows/s")
        for label, write_s in (("commit per row", seed_commit_each), ("one commit", seed_one_commit)):
            rate = facts / (seed_fetch + write_s)
            print(
                f"  seed, row by row, {label + ':':15s} {seed_fetch + write_s:6.1f} s {rate:9,.0f} rows/s"
                f"   ours/seed {(ours_rows / ours_s) / rate:5.1f}x"
            )
        print(f"\nwrite path alone, the same {facts:,} rows (already fetched):")
        print(
            f"  ours (grouped COPY + watermarks): {ours_w:6.1f} s {facts / ours_w:9,.0f} rows/s"
            f"   (before the seed's loop {ours_before:.1f} s, after it {ours_after:.1f} s)"
        )
        for label, write_s in (("commit per row", seed_commit_each), ("one commit", seed_one_commit)):
            print(
                f"  seed, INSERT per row, {label + ':':15s}{write_s:6.1f} s {facts / write_s:9,.0f} rows/s"
                f"   ours/seed {(facts / ours_w) / (facts / write_s):5.1f}x"
            )
    finally:
        server.terminate()
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            for name in schemas:
                conn.execute(f"DROP SCHEMA {name} CASCADE")


if __name__ == "__main__":
    main()
