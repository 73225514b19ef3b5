"""Plant workbench: analytics for discrete manufacturing plants.

Submodules are imported on first use (``workbench.oee``, ``workbench.spc`` …) so that
``import workbench`` stays fast for the CLI and notebooks.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = ("config", "errors", "schema", "store", "ingest", "simulate", "oee", "losses",
               "reliability", "spc", "sampling", "jobs", "demo")
__all__ = ["__version__", *_SUBMODULES]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"workbench.{name}")
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")
