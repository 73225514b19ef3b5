"""Prefect flows of the workbench: thin tasks calling the library, wired by pipelines/*.yaml.

``workbench run <pipeline>`` runs one once; ``workbench serve`` serves them all on their cron
schedules (see :func:`deployments`).
"""

from __future__ import annotations

from flows.hourly import hourly_oee
from flows.report import daily_report

#: flow per pipeline kind (pipelines/*.yaml ``kind:``)
FLOWS = {"report": daily_report, "oee_rollup": hourly_oee}

__all__ = ["FLOWS", "daily_report", "deployments", "hourly_oee"]


def deployments(pipelines):
    """One Prefect deployment per enabled pipeline, with its cron schedule and time zone."""
    from prefect.schedules import Cron

    return [
        FLOWS[p.kind].to_deployment(
            name=p.name, schedules=[Cron(p.cron, timezone=p.timezone)], parameters={"pipeline": p.name},
            description=p.description or None, tags=["workbench", p.kind],
        )
        for p in pipelines.values() if p.enabled
    ]
