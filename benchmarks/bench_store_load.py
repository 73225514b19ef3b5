"""Bulk-load benchmark: workbench.store vs the raw engine path, same rows, same run.

Loads N telemetry rows (with their event ids already computed, so both paths load identical
data into identical tables with the same primary key) into:

* DuckDB — raw: ``INSERT INTO machine_telemetry SELECT * FROM <registered Arrow table>``;
  ours: ``DuckDBWarehouse.write("machine_telemetry", arrow)``.
* PostgreSQL — raw: pyarrow CSV → psycopg ``COPY machine_telemetry FROM STDIN``;
  ours: ``PostgresWarehouse.write(...)``.

Each path gets a fresh database; each measurement is repeated and the best time kept. Prints
rows/s for both and the ratio ours/raw (target ≥ 0.8). Also prints the time of an idempotent
replay (the same rows again, nothing written) for information. Not a test: run it with
``make bench`` or ``python benchmarks/bench_store_load.py --rows 2000000``.
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import duckdb
import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv

from workbench import schema
from workbench.store import DuckDBWarehouse, PostgresWarehouse

TABLE = schema.table("machine_telemetry")
PG_URL = os.environ.get("WORKBENCH_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


def make_rows(n: int, *, seed: int = 1) -> pa.Table:
    """N telemetry readings: 7 metrics on n/(7·1440) machines at one-minute intervals."""
    rng = np.random.default_rng(seed)
    metrics = np.array(["vibration_rms", "spindle_load", "hydraulic_pressure", "motor_current",
                        "drive_temp", "part_count_total", "reject_count_total"])
    idx = np.arange(n)
    machine = idx // (len(metrics) * 1440 * 7)
    minute = (idx // len(metrics)) % (1440 * 7)
    start = np.datetime64("2026-11-01T00:00:00", "us").astype("int64")
    times = start + minute.astype("int64") * 60_000_000
    data = pa.table({
        "time": pa.array(times, pa.timestamp("us", tz="UTC")),
        "machine_id": pa.array(np.char.add("M", np.char.zfill(machine.astype(str), 4))),
        "metric": pa.array(metrics[idx % len(metrics)]),
        "value": pa.array(rng.normal(5.0, 1.0, n)),
        "unit": pa.array(np.full(n, "mm/s")),
        "quality": pa.array(np.full(n, "good")),
        "source": pa.array(np.full(n, "bench")),
    })
    return schema.with_event_ids(TABLE, data)


def best_of(repeats: int, setup: Callable[[], object], run: Callable[[object], None],
            teardown: Callable[[object], None]) -> float:
    times = []
    for _ in range(repeats):
        ctx = setup()
        try:
            t0 = time.perf_counter()
            run(ctx)
            times.append(time.perf_counter() - t0)
        finally:
            teardown(ctx)
    return min(times)


# -- DuckDB ---------------------------------------------------------------------------------------

def duckdb_paths(rows: pa.Table, repeats: int) -> tuple[float, float, float]:
    tmp = Path(tempfile.mkdtemp(prefix="wb-bench-"))

    def fresh() -> DuckDBWarehouse:
        wh = DuckDBWarehouse(tmp / f"{uuid.uuid4().hex}.duckdb")
        wh.init_schema()
        return wh

    def drop(wh: DuckDBWarehouse) -> None:
        wh.close()
        for p in tmp.glob("*.duckdb*"):
            p.unlink()

    def raw(wh: DuckDBWarehouse) -> None:
        con: duckdb.DuckDBPyConnection = wh.con
        con.register("rows", rows)
        con.execute("INSERT INTO machine_telemetry SELECT * FROM rows").fetchall()
        con.unregister("rows")

    def ours(wh: DuckDBWarehouse) -> None:
        result = wh.write("machine_telemetry", rows)
        assert result.written == rows.num_rows, result

    raw_t = best_of(repeats, fresh, raw, drop)
    ours_t = best_of(repeats, fresh, ours, drop)

    def loaded() -> DuckDBWarehouse:
        wh = fresh()
        ours(wh)
        return wh

    def replay(wh: DuckDBWarehouse) -> None:
        assert wh.write("machine_telemetry", rows).written == 0

    replay_t = best_of(1, loaded, replay, drop)
    return raw_t, ours_t, replay_t


# -- PostgreSQL ----------------------------------------------------------------------------------

def pg_paths(rows: pa.Table, repeats: int) -> tuple[float, float, float]:
    def fresh() -> tuple[str, PostgresWarehouse]:
        name = f"wb_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        sep = "&" if "?" in PG_URL else "?"
        wh = PostgresWarehouse(f"{PG_URL}{sep}options={quote(f'-csearch_path={name}')}", timescale="off")
        wh.init_schema()
        return name, wh

    def drop(ctx: tuple[str, PostgresWarehouse]) -> None:
        name, wh = ctx
        wh.close()
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE")

    def raw(ctx: tuple[str, PostgresWarehouse]) -> None:
        conn = ctx[1].conn
        with conn.transaction(), conn.cursor() as cur, cur.copy(
            "COPY machine_telemetry FROM STDIN (FORMAT csv)"
        ) as copy:
            for batch in rows.to_batches(max_chunksize=200_000):
                buf = io.BytesIO()
                pacsv.write_csv(batch, buf, pacsv.WriteOptions(include_header=False))
                copy.write(buf.getvalue())

    def ours(ctx: tuple[str, PostgresWarehouse]) -> None:
        result = ctx[1].write("machine_telemetry", rows)
        assert result.written == rows.num_rows, result

    raw_t = best_of(repeats, fresh, raw, drop)
    ours_t = best_of(repeats, fresh, ours, drop)

    def loaded() -> tuple[str, PostgresWarehouse]:
        ctx = fresh()
        ours(ctx)
        return ctx

    def replay(ctx: tuple[str, PostgresWarehouse]) -> None:
        assert ctx[1].write("machine_telemetry", rows).written == 0

    replay_t = best_of(1, loaded, replay, drop)
    return raw_t, ours_t, replay_t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--engines", default="duckdb,postgres")
    args = parser.parse_args()

    t0 = time.perf_counter()
    rows = make_rows(args.rows)
    print(f"{rows.num_rows:,} telemetry rows prepared in {time.perf_counter() - t0:.1f} s "
          f"(event ids included; best of {args.repeats})")
    print(f"{'engine':<10} {'raw rows/s':>14} {'ours rows/s':>14} {'ours/raw':>9} {'replay s':>9}  target")
    for engine in args.engines.split(","):
        raw_t, ours_t, replay_t = (duckdb_paths if engine == "duckdb" else pg_paths)(rows, args.repeats)
        ratio = raw_t / ours_t
        print(f"{engine:<10} {rows.num_rows / raw_t:>14,.0f} {rows.num_rows / ours_t:>14,.0f} "
              f"{ratio:>9.2f} {replay_t:>9.1f}  {'ok' if ratio >= 0.8 else 'BELOW 0.8'} (≥ 0.8)")


if __name__ == "__main__":
    main()
