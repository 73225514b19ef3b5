"""A small project with a loaded DuckDB warehouse, and processes that hold its file."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from workbench.demo import load_plant
from workbench.store import DuckDBWarehouse

#: A process that opens a DuckDB file read-write, says so, optionally lets go after a while, and
#: stays alive until it is stopped. Arguments: the file, then the seconds to hold it (0: forever).
HOLD = """\
import sys, time, duckdb
con = duckdb.connect(sys.argv[-2])
print("holding", flush=True)
if float(sys.argv[-1]):
    time.sleep(float(sys.argv[-1]))
    con.close()
    print("released", flush=True)
time.sleep(120)
"""


@pytest.fixture(scope="session")
def plant_home(small_plant, tmp_path_factory) -> Path:
    """A project directory whose configured warehouse (``data/warehouse.duckdb``) holds the small plant."""
    home = tmp_path_factory.mktemp("locks-project")
    with DuckDBWarehouse(home / "data" / "warehouse.duckdb") as wh:
        load_plant(small_plant, wh, truth_dir=home / "data" / "ground_truth")
    return home


@pytest.fixture(scope="session")
def hold_script() -> str:
    """The source of the holding process (see :data:`HOLD`)."""
    return HOLD


@pytest.fixture(scope="session")
def holding():
    """``with holding(path): …`` — a child process holds ``path`` read-write during the block."""
    return _holding


@contextmanager
def _holding(path: Path, *, release_after_s: float = 0.0,
             command: list[str] | None = None) -> Iterator[subprocess.Popen[str]]:
    """Run a child process that holds ``path`` read-write until the block ends (or for
    ``release_after_s`` seconds). ``command`` replaces ``python -c HOLD`` (it must run HOLD)."""
    argv = (command or [sys.executable, "-c", HOLD]) + [str(path), str(release_after_s)]
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline() if child.stdout else ""
        if line.strip() != "holding":
            child.kill()
            pytest.fail(f"the holding process did not start: {line!r} {child.stderr.read() if child.stderr else ''}")
        yield child
    finally:
        child.kill()
        child.wait(timeout=10)
        for stream in (child.stdout, child.stderr):
            if stream:
                stream.close()
