"""Prefect flows of the workbench: thin tasks calling the library, wired by pipelines/*.yaml.

``workbench run <pipeline>`` runs one once; ``workbench serve`` serves them all on their cron
schedules (see :func:`deployments`).
"""

from __future__ import annotations

import logging

from flows.hourly import hourly_oee
from flows.report import daily_report
from flows.retrain import retrain_models
from flows.sync import erp_sync, machinemetrics_sync

# The library's INFO lines (waiting for a warehouse another process holds, …) belong in the run
# log: Prefect attaches its handlers to the `workbench` logger (PREFECT_LOGGING_EXTRA_LOGGERS, set
# by workbench.scheduling.quiet_prefect) but leaves its level at the root's WARNING.
if logging.getLogger("workbench").level == logging.NOTSET:
    logging.getLogger("workbench").setLevel(logging.INFO)

#: flow per pipeline kind (pipelines/*.yaml ``kind:``)
FLOWS = {"report": daily_report, "oee_rollup": hourly_oee, "machinemetrics_sync": machinemetrics_sync,
         "erp_sync": erp_sync, "retrain": retrain_models}

__all__ = ["FLOWS", "daily_report", "deployments", "erp_sync", "hourly_oee", "machinemetrics_sync",
           "retrain_models"]


def schedule(p):
    """The Prefect schedule of a pipeline: its cron in its time zone, or its interval."""
    from prefect.schedules import Cron, Interval

    from workbench.pipelines import INTERVAL_ANCHOR

    if p.interval is not None:
        return Interval(p.interval, anchor_date=INTERVAL_ANCHOR, timezone=p.timezone)
    return Cron(p.cron, timezone=p.timezone)


def deployments(pipelines):
    """One Prefect deployment per enabled pipeline, with its schedule and time zone."""
    return [
        FLOWS[p.kind].to_deployment(
            name=p.name, schedules=[schedule(p)], parameters={"pipeline": p.name},
            description=p.description or None, tags=["workbench", p.kind],
        )
        for p in pipelines.values() if p.enabled
    ]
