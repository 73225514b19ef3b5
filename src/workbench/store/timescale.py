"""TimescaleDB features for the PostgreSQL engine, applied only when the extension is present.

Written from the TimescaleDB 2.x documentation (``create_hypertable`` with ``by_range``,
``add_compression_policy``, ``add_retention_policy``, continuous aggregates with
``add_continuous_aggregate_policy``). The extension cannot be installed on the development
machines, so these statements are kept few and idempotent (``if_not_exists``), and everything
the workbench needs also works on plain PostgreSQL.
"""

from __future__ import annotations

from workbench import schema

#: Raw readings older than this are compressed (segment by machine, newest first).
COMPRESS_AFTER = "7 days"


def hypertable_sql(tbl: schema.Table) -> list[str]:
    """Statements turning ``tbl`` into a compressed hypertable with its retention policy."""
    if not tbl.hypertable or tbl.time_column is None:
        return []
    name, time = tbl.name, tbl.time_column
    segment = "machine_id" if "machine_id" in tbl.column_names else None
    compress = ["timescaledb.compress"]
    if segment:
        compress.append(f"timescaledb.compress_segmentby = '{segment}'")
    compress.append(f"timescaledb.compress_orderby = '{time} DESC'")
    stmts = [
        f"SELECT create_hypertable('{name}', by_range('{time}'), if_not_exists => TRUE, "
        "migrate_data => TRUE)",
        f"ALTER TABLE {name} SET ({', '.join(compress)})",
        f"SELECT add_compression_policy('{name}', INTERVAL '{COMPRESS_AFTER}', if_not_exists => TRUE)",
    ]
    if tbl.retention_days is not None:
        stmts.append(
            f"SELECT add_retention_policy('{name}', INTERVAL '{tbl.retention_days} days', "
            "if_not_exists => TRUE)"
        )
    return stmts


def continuous_aggregate_sql(view: str, select_sql: str) -> list[str]:
    """A continuous aggregate refreshed every hour over the last three days."""
    return [
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {view} WITH (timescaledb.continuous) AS "
        f"{select_sql} WITH NO DATA",
        f"SELECT add_continuous_aggregate_policy('{view}', start_offset => INTERVAL '3 days', "
        "end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '1 hour', if_not_exists => TRUE)",
    ]


def all_statements(select_production_hourly: str, view: str) -> list[str]:
    """Every TimescaleDB statement of the schema, in order."""
    stmts = ["CREATE EXTENSION IF NOT EXISTS timescaledb"]
    for tbl in schema.tables():
        stmts += hypertable_sql(tbl)
    stmts += continuous_aggregate_sql(view, select_production_hourly)
    return stmts
