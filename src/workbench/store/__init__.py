"""The warehouse: one interface over an embedded DuckDB file and PostgreSQL / TimescaleDB.

>>> from workbench.store import open_warehouse
>>> with open_warehouse() as wh:          # doctest: +SKIP
...     wh.init_schema()
...     wh.write("machines", machines_df)
...     df = wh.read("downtime_events", start=yesterday, end=today)

A DuckDB file is held by one writer process, or by several readers, at a time: open it, work
and close it (``with``). Openers wait up to ``WORKBENCH_LOCK_TIMEOUT_S`` for another process to
let go, then say who holds the file. Code that lives long and only reads (a notebook kernel)
uses :func:`open_reader`, which holds nothing between calls.
"""

from __future__ import annotations

from workbench.config import Settings, settings
from workbench.store.base import Warehouse, WriteResult
from workbench.store.embedded import DuckDBWarehouse
from workbench.store.ondemand import OnDemandWarehouse
from workbench.store.postgres import PostgresWarehouse

__all__ = ["DuckDBWarehouse", "OnDemandWarehouse", "PostgresWarehouse", "Warehouse", "WriteResult",
           "open_reader", "open_warehouse"]


def _lock_timeout(cfg: Settings, given: float | None) -> float:
    # These settings, not the process's (which DuckDBWarehouse would read when given None).
    return cfg.lock_timeout_s if given is None else given


def open_warehouse(config: Settings | None = None, *, read_only: bool = False,
                   lock_timeout_s: float | None = None) -> Warehouse:
    """Open the configured warehouse: PostgreSQL when ``WORKBENCH_DATABASE_URL`` is set, else the
    DuckDB file (``data/warehouse.duckdb`` by default).

    Parameters
    ----------
    config : Settings, optional
        Settings to use (default: the process settings).
    read_only : bool
        For DuckDB: open the file without write access.
    lock_timeout_s : float, optional
        For DuckDB: how long to wait while another process holds the file (default the
        setting ``lock_timeout_s``, ``WORKBENCH_LOCK_TIMEOUT_S``).

    Raises
    ------
    WarehouseBusyError
        The DuckDB file was still held by another process after the timeout.
    """
    cfg = config or settings()
    if cfg.database_url is not None:
        return PostgresWarehouse(cfg.database_url.get_secret_value(), timescale=cfg.timescale)
    return DuckDBWarehouse(cfg.warehouse_path, read_only=read_only,
                           lock_timeout_s=_lock_timeout(cfg, lock_timeout_s))


def open_reader(config: Settings | None = None, *, lock_timeout_s: float | None = None) -> OnDemandWarehouse:
    """The configured warehouse, read-only and connecting per call (see :class:`OnDemandWarehouse`).

    Parameters
    ----------
    config : Settings, optional
        Settings to use (default: the process settings).
    lock_timeout_s : float, optional
        For DuckDB: how long each open waits while a writer holds the file (default the
        setting ``lock_timeout_s``).

    Returns
    -------
    OnDemandWarehouse
    """
    cfg = config or settings()
    if cfg.database_url is not None:
        return OnDemandWarehouse.postgres(cfg.database_url.get_secret_value(), timescale=cfg.timescale)
    return OnDemandWarehouse.duckdb(cfg.warehouse_path, lock_timeout_s=_lock_timeout(cfg, lock_timeout_s))
