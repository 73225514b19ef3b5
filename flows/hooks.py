"""What every flow run does besides its work: say which day it is about, and tell people when it
failed. Both are best effort — they never turn a good run into a failed one."""

from __future__ import annotations

import datetime as dt
import logging

from workbench import config, pipelines, runs
from workbench.pipelines import Pipeline

log = logging.getLogger(__name__)

#: The production day each flow run of this process resolved (for the failure notice).
_DAYS: dict[str, dt.date] = {}


def name_run(pipeline: Pipeline, day: dt.date | None = None, *, what: str | None = None) -> None:
    """Rename the current flow run ``<pipeline> <day>`` (or ``<pipeline> <what>``): the Prefect UI's
    run list then says which day or hours each run covered, also for scheduled runs whose
    parameters are empty."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    run_id = flow_run.id
    if not run_id:
        return
    if day is not None:
        _DAYS[str(run_id)] = day
    label = what or (day.isoformat() if day else "")
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(run_id, name=f"{pipeline.name} {label}".strip())
    except Exception as exc:  # the name is a convenience; the report must not fail for it
        log.warning("could not rename flow run %s: %s", run_id, exc)


def _run_url(flow_run_id: object) -> str | None:
    try:
        from prefect.settings import PREFECT_UI_URL

        ui = PREFECT_UI_URL.value()
    except Exception:
        return None
    return f"{str(ui).rstrip('/')}/runs/flow-run/{flow_run_id}" if ui else None


def notify_failure(flow, flow_run, state) -> None:
    """Prefect ``on_failure`` / ``on_crashed`` hook: e-mail the pipeline's ``notify_on_failure``
    addresses (and its report recipients when no report went out) that the run failed."""
    name = (flow_run.parameters or {}).get("pipeline") or "?"
    try:
        settings = config.settings()
        p = pipelines.get(name, home=settings.home, default_timezone=settings.plant_timezone)
        day = _DAYS.pop(str(flow_run.id), None)
        delivery = runs.notify_failure(
            settings, p, run_name=f"{p.name} {day.isoformat()}" if day else flow_run.name,
            error=state.message or state.name, day=day, run_url=_run_url(flow_run.id))
        if delivery is not None:
            log.info("failure notice: %s %s", delivery.method, delivery.path or delivery.message_id or "")
    except Exception:  # a hook that raises is only logged by Prefect: log it clearly ourselves
        log.exception("could not send the failure notice of %s (flow run %s)", name, flow_run.id)
