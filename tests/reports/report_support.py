"""Constants shared by the report tests (imported by module name: pytest puts this directory on
``sys.path``, as it does for every test directory without ``__init__.py``)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

NOTEBOOKS = Path(__file__).parent / "notebooks"
KERNEL = "workbench"
PLANT_TZ = "America/Chicago"
#: Fixed so that the pages can be checked for exactly these strings.
GENERATED_AT = dt.datetime(2026, 11, 5, 11, 2, 3, tzinfo=dt.UTC)  # 05:02:03 CST
REPORT_PARAMETERS = {"day": "2026-11-04", "site": "PLANT1"}
DATA_SUMMARY = {"rows": {"machines": 4, "production_events": 4121, "downtime_events": 25},
                "start": "2026-11-04T06:00:00-06:00", "end": "2026-11-05T06:00:00-06:00"}
CODE_VERSION = "0.1.0+test123"


#: Debian's Chromium, headless (Playwright's own browser download does not work here).
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium():
    """A context manager yielding a headless Chromium (Playwright); missing Chromium skips the
    test, or fails it in CI (``.ci/run`` installs it). ``launch()`` uses a fresh temporary
    profile (user-data-dir) every time."""
    import contextlib
    import os

    import pytest

    if not CHROMIUM.exists():
        msg = f"{CHROMIUM} is missing (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(msg + "; .ci/run installs it")
        pytest.skip(msg)

    @contextlib.contextmanager
    def launched():
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            try:
                yield b
            finally:
                b.close()

    return launched()
