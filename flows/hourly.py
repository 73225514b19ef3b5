"""The hourly OEE roll-up flow."""

from __future__ import annotations

import datetime as dt

from prefect import flow, task

from flows import hooks
from flows.sync import check_sources
from workbench import config, jobs, pipelines
from workbench.store import WriteResult, open_warehouse


@task(name="roll-up-oee-hourly", retries=3, retry_delay_seconds=30)
def roll_up(start: dt.datetime, end: dt.datetime) -> WriteResult:
    settings = config.settings()
    with open_warehouse(settings) as wh:
        return jobs.roll_up_oee_hourly(wh, start=start, end=end, tz=settings.plant_timezone,
                                       micro_stop_threshold_s=settings.micro_stop_threshold_s)


@flow(name="hourly-oee", log_prints=True,
      on_failure=[hooks.notify_failure], on_crashed=[hooks.notify_failure])
def hourly_oee(pipeline: str = "hourly_oee", until: str | None = None) -> dict[str, int]:
    """Recompute ``oee_hourly`` for the last ``lookback_hours`` full hours before ``until`` (ISO
    timestamp with offset; default now)."""
    settings = config.settings()
    p = pipelines.get(pipeline, home=settings.home, default_timezone=settings.plant_timezone)
    end = dt.datetime.fromisoformat(until) if until else dt.datetime.now(dt.UTC)
    if end.tzinfo is None:
        raise ValueError(f"until must carry a UTC offset, got {until!r}")
    end = end.replace(minute=0, second=0, microsecond=0)
    hooks.name_run(p, what=f"until {end.astimezone(settings.tz):%Y-%m-%d %H:%M %Z}")
    result = roll_up.with_options(retries=p.retries)(end - dt.timedelta(hours=p.lookback_hours), end)
    check_sources()  # hourly, whatever else runs: a source that stopped becomes an alert within the hour
    return {"written": result.written, "unchanged": result.unchanged}
