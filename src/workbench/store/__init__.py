"""The warehouse: one interface over an embedded DuckDB file and PostgreSQL / TimescaleDB.

>>> from workbench.store import open_warehouse
>>> with open_warehouse() as wh:          # doctest: +SKIP
...     wh.init_schema()
...     wh.write("machines", machines_df)
...     df = wh.read("downtime_events", start=yesterday, end=today)
"""

from __future__ import annotations

from workbench.config import Settings, settings
from workbench.store.base import Warehouse, WriteResult
from workbench.store.embedded import DuckDBWarehouse
from workbench.store.postgres import PostgresWarehouse

__all__ = ["DuckDBWarehouse", "PostgresWarehouse", "Warehouse", "WriteResult", "open_warehouse"]


def open_warehouse(config: Settings | None = None, *, read_only: bool = False) -> Warehouse:
    """Open the configured warehouse: PostgreSQL when ``WORKBENCH_DATABASE_URL`` is set, else the
    DuckDB file (``data/warehouse.duckdb`` by default).

    Parameters
    ----------
    config : Settings, optional
        Settings to use (default: the process settings).
    read_only : bool
        For DuckDB: open the file without write access.
    """
    cfg = config or settings()
    if cfg.database_url is not None:
        return PostgresWarehouse(cfg.database_url.get_secret_value(), timescale=cfg.timescale)
    return DuckDBWarehouse(cfg.warehouse_path, read_only=read_only)
