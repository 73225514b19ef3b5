"""The Prefect server's command and environment, and how a schedule's state is told to people.

(The served deployment on a real server is tests/flows/test_served_schedule.py.)"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from workbench import scheduling
from workbench.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]

NOW = dt.datetime(2026, 11, 20, 10, tzinfo=dt.UTC)


def test_the_server_never_calls_out_and_the_ui_finds_its_api() -> None:
    env = scheduling.server_environment({"PREFECT_API_URL": "http://elsewhere/api", "PATH": "/bin"},
                                        host="0.0.0.0", port=4200, public_url="http://analytics01:4200")
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false" and env["DO_NOT_TRACK"] == "1"
    assert env["PREFECT_UI_API_URL"] == "http://analytics01:4200/api"
    assert "PREFECT_API_URL" not in env and env["PATH"] == "/bin"
    # listening on every interface without a public URL: the UI works on the server itself
    local = scheduling.server_environment({}, host="0.0.0.0", port=4300)
    assert local["PREFECT_UI_API_URL"] == "http://127.0.0.1:4300/api"
    with pytest.raises(ConfigError, match="must start with http"):
        scheduling.server_environment({}, host="127.0.0.1", port=4200, public_url="analytics01:4200")
    cmd = scheduling.server_command(host="127.0.0.1", port=4200, ui=False)
    assert cmd[1:4] == ["-m", "prefect", "server"]
    assert {"--analytics-off", "--scheduler", "--late-runs", "--no-ui"} <= set(cmd)


@pytest.mark.parametrize(("status", "ok", "says"), [
    (scheduling.ScheduleStatus("daily", deployed=False), False, "not deployed on the server"),
    (scheduling.ScheduleStatus("daily", True, active=True, ready=True, upcoming=()), False,
     "scheduler has created no upcoming runs"),
    (scheduling.ScheduleStatus("daily", True, active=True, ready=False, upcoming=(NOW,)), False,
     "no `workbench serve` process"),
    (scheduling.ScheduleStatus("daily", True, active=False, ready=True), False, "paused or inactive"),
    (scheduling.ScheduleStatus("daily", True, active=True, ready=True, upcoming=(NOW,), last_state="Late",
                               last_start=NOW - dt.timedelta(days=1)), False,
     "the last run is Late (due Thu 19 Nov 10:00 UTC)"),
    (scheduling.ScheduleStatus("daily", True, active=True, ready=True, upcoming=(NOW,),
                               last_state="Completed"), True, "next run Fri 20 Nov 10:00 UTC, last run Completed"),
])
def test_a_schedule_says_what_is_wrong_or_its_next_run(status, ok: bool, says: str) -> None:
    assert status.ok is ok
    assert says in status.describe(dt.UTC)


def test_an_unreachable_server_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="cannot be asked about schedules"):
        scheduling.schedule_status("http://127.0.0.1:9/api", [], timeout_s=2)


def test_prefect_temporary_server_gets_time_to_start_unless_the_plant_says_otherwise():
    # Prefect's default wait (20 s) is what its temporary server needs here: runs failed now and then.
    from workbench.scheduling import quiet_prefect

    assert quiet_prefect({})["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] == "180"
    env = {"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "60"}
    assert quiet_prefect(env)["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] == "60"


def test_the_librarys_log_lines_go_to_the_run_log() -> None:
    # Prefect attaches its handlers (console, and the API: the run's log in the UI) to the extra
    # loggers; the flows package lets INFO through (e.g. "… holds the DuckDB warehouse; waiting").
    import logging

    from workbench import runs
    from workbench.scheduling import quiet_prefect

    assert quiet_prefect({})["PREFECT_LOGGING_EXTRA_LOGGERS"] == "workbench"
    assert quiet_prefect({"PREFECT_LOGGING_EXTRA_LOGGERS": "workbench,asyncua"})[
        "PREFECT_LOGGING_EXTRA_LOGGERS"] == "workbench,asyncua"
    runs.load_flows(ROOT)
    assert logging.getLogger("workbench").getEffectiveLevel() == logging.INFO
