"""Running the pipelines unattended: the Prefect server's command line and environment, and
what a Prefect server says about the pipelines' schedules.

The CLI uses this (``workbench server``, ``workbench doctor``); the analytics never do. It talks
to Prefect through its REST API with plain HTTP, so that what ``workbench doctor`` reports is
what the server holds, not what this process computes from the YAML (``workbench pipelines``
does that).
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from workbench.errors import ConfigError
from workbench.pipelines import Pipeline

#: Nothing of the workbench may call out of the plant's network.
NO_TELEMETRY = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
#: Prefect's temporary server takes about 20 s to start on a 2-core plant server, more on its first
#: start (database migrations) — exactly Prefect's default wait of 20 s, so `workbench run` failed
#: now and then with "Timed out while attempting to connect to ephemeral Prefect API server".
EPHEMERAL_STARTUP = {"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180"}
#: The library's own log lines (``workbench.*``: waiting for a warehouse another process holds,
#: a record a notebook kept that cannot be read, …) go to the flow run's log in the Prefect UI,
#: not only to a terminal nobody watches at 05:00.
RUN_LOGS = {"PREFECT_LOGGING_EXTRA_LOGGERS": "workbench"}


def quiet_prefect(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Switch Prefect's usage telemetry off in ``environ`` (default: this process's), give its
    temporary server time to start and send the library's log lines to the run logs, unless the
    plant set the variables itself; returns the environment. Called before Prefect is imported."""
    env = os.environ if environ is None else environ
    for key, value in {**NO_TELEMETRY, **EPHEMERAL_STARTUP, **RUN_LOGS}.items():
        env.setdefault(key, value)
    return env  # type: ignore[return-value]


def server_command(*, host: str, port: int, ui: bool = True) -> list[str]:
    """The command that runs the Prefect server in the foreground (for a service manager)."""
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port),
           "--analytics-off", "--scheduler", "--late-runs", "--no-background"]
    return [*cmd, "--ui" if ui else "--no-ui"]


def server_environment(base: Mapping[str, str], *, host: str, port: int,
                       public_url: str | None = None) -> dict[str, str]:
    """The environment of the Prefect server process.

    Parameters
    ----------
    base : mapping
        The environment to start from (the caller's).
    host, port : str, int
        Where the server listens.
    public_url : str, optional
        The address browsers reach the server at (``http://plant-analytics:4200``); the UI calls
        the API there. Default: ``http://<host>:<port>``, with ``127.0.0.1`` for a server
        listening on every interface (then the UI works only on the server itself: say
        ``--public-url``).

    Returns
    -------
    dict
        With telemetry off and ``PREFECT_UI_API_URL`` set. ``PREFECT_API_URL`` is removed: the
        server must not try to reach another server.
    """
    env = dict(base)
    env.pop("PREFECT_API_URL", None)
    env.update(NO_TELEMETRY)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    url = (public_url or f"http://{shown}:{port}").rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"--public-url must start with http:// or https://, got {public_url!r}")
    env["PREFECT_UI_API_URL"] = url if url.endswith("/api") else f"{url}/api"
    return env


# -- what the server holds ------------------------------------------------------------------------

@dataclass(frozen=True)
class ScheduleStatus:
    """What a Prefect server knows about one pipeline's deployment.

    Attributes
    ----------
    pipeline : str
        Pipeline (and deployment) name.
    deployed : bool
        A deployment of that name exists on the server.
    active : bool
        It has an active schedule and is not paused.
    ready : bool
        A ``workbench serve`` process polled for its runs recently (Prefect's ``READY``).
    upcoming : tuple of datetime
        The next runs the server's scheduler has created (UTC), earliest first.
    last_state : str or None
        State of the latest due run that has started or turned Late (``Completed``, ``Failed``,
        ``Late`` …).
    last_start : datetime or None
        When that run was due.
    """

    pipeline: str
    deployed: bool
    active: bool = False
    ready: bool = False
    upcoming: tuple[dt.datetime, ...] = ()
    last_state: str | None = None
    last_start: dt.datetime | None = None

    @property
    def ok(self) -> bool:
        """Scheduled runs exist, something serves them, and the last one did not fail."""
        return (self.deployed and self.active and self.ready and bool(self.upcoming)
                and self.last_state not in ("Failed", "Crashed", "Late", "Cancelled", "TimedOut"))

    def describe(self, tz: dt.tzinfo) -> str:
        """One line for people: what is wrong, or the next run."""
        if not self.deployed:
            return "not deployed on the server: start `workbench serve` with PREFECT_API_URL set"
        problems = []
        if not self.ready:
            problems.append("no `workbench serve` process is polling for its runs (start it, or its service)")
        if not self.active:
            problems.append("its schedule is paused or inactive (Prefect UI → Deployments, or restart "
                            "`workbench serve`)")
        elif not self.upcoming:
            problems.append("the server's scheduler has created no upcoming runs (is its scheduler "
                            "service running? see the server log)")
        if self.last_state in ("Failed", "Crashed", "Late", "Cancelled", "TimedOut"):
            when = f" (due {self.last_start.astimezone(tz):%a %d %b %H:%M %Z})" if self.last_start else ""
            problems.append(f"the last run is {self.last_state}{when}")
        if problems:
            return "; ".join(problems)
        nxt = self.upcoming[0].astimezone(tz)
        last = f", last run {self.last_state}" if self.last_state else ""
        return f"next run {nxt:%a %d %b %H:%M %Z}{last}"


def _when(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def schedule_status(api_url: str, pipelines: Iterable[Pipeline], *, timeout_s: float = 10.0
                    ) -> list[ScheduleStatus]:
    """Ask a Prefect server about the deployments of the enabled ``pipelines``.

    Parameters
    ----------
    api_url : str
        The server's API, e.g. ``http://127.0.0.1:4200/api``.
    pipelines : iterable of Pipeline
        The pipelines to check (disabled ones are skipped).

    Returns
    -------
    list of ScheduleStatus

    Raises
    ------
    ConfigError
        When the server cannot be reached or answers with an error.
    """
    import httpx

    base = api_url.rstrip("/")
    wanted = [p for p in pipelines if p.enabled]
    now = dt.datetime.now(dt.UTC)
    try:
        with httpx.Client(base_url=base, timeout=timeout_s) as client:
            def post(path: str, body: dict) -> list[dict]:
                response = client.post(path, json=body)
                response.raise_for_status()
                return response.json()

            found = post("/deployments/filter",
                         {"deployments": {"name": {"any_": [p.name for p in wanted]}}, "limit": 200})
            by_name: dict[str, dict] = {}
            for d in found:
                by_name.setdefault(d["name"], d)
            out = []
            for p in wanted:
                dep = by_name.get(p.name)
                if dep is None:
                    out.append(ScheduleStatus(p.name, deployed=False))
                    continue
                active = not dep.get("paused") and any(s.get("active") for s in dep.get("schedules") or [])
                runs_of = {"deployments": {"id": {"any_": [dep["id"]]}}}
                upcoming = post("/flow_runs/filter", {
                    **runs_of, "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}},
                                             "expected_start_time": {"after_": now.isoformat()}},
                    "sort": "EXPECTED_START_TIME_ASC", "limit": 3})
                # A run just due and not yet picked up is still plainly "Scheduled": not the last
                # run yet (the server marks it Late if nothing starts it).
                last = post("/flow_runs/filter", {
                    **runs_of, "flow_runs": {"expected_start_time": {"before_": now.isoformat()},
                                             "state": {"name": {"not_any_": ["Scheduled"]}}},
                    "sort": "EXPECTED_START_TIME_DESC", "limit": 1})
                out.append(ScheduleStatus(
                    p.name, deployed=True, active=active, ready=dep.get("status") == "READY",
                    upcoming=tuple(t for r in upcoming if (t := _when(r.get("expected_start_time")))),
                    last_state=(last[0].get("state_name") or last[0].get("state_type")) if last else None,
                    last_start=_when(last[0].get("expected_start_time")) if last else None))
            return out
    except httpx.HTTPError as exc:
        raise ConfigError(f"the Prefect server at {base} cannot be asked about schedules: {exc}") from None
