"""``workbench simulate serve``: the simulated plant's PLCs on 127.0.0.1, in real or accelerated time,
and its business APIs (MachineMetrics-shaped, ERP) with the wall clock."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from workbench.simulate.config import PlantConfig
from workbench.simulate.plc import PlcImage, tag_dictionary_yaml

log = logging.getLogger("workbench.simulate.serve")


def split_machines(ids: list[str], protocols: list[str]) -> dict[str, list[str]]:
    """Consecutive, nearly equal groups of machines per protocol (in the order given)."""
    out: dict[str, list[str]] = {}
    n, k = len(ids), len(protocols)
    for i, p in enumerate(protocols):
        out[p] = ids[i * n // k : (i + 1) * n // k]
    return out


def plant_image(
    *,
    machines: int,
    hours: float,
    scan_s: float,
    seed: int,
    timezone: str,
    site: str,
    end: dt.datetime | None = None,
) -> PlcImage:
    """The PLC image of ``hours`` of a simulated plant ending at ``end`` (default now)."""
    from workbench.simulate import simulate_plant

    end = end or dt.datetime.now(dt.UTC)
    scan_ms = int(scan_s * 1000)
    start_ms = (int(end.timestamp() * 1000) - int(hours * 3_600_000)) // scan_ms * scan_ms
    start = dt.datetime.fromtimestamp(start_ms / 1000, dt.UTC)
    from zoneinfo import ZoneInfo

    first_day = start.astimezone(ZoneInfo(timezone)).date() - dt.timedelta(days=1)
    cfg = PlantConfig(
        seed=seed,
        n_machines=machines,
        n_lines=max(1, min(3, machines)),
        start=first_day,
        days=math.ceil(hours / 24) + 2,
        timezone=timezone,
        site=site,
        collector_outages=False,
        telemetry_interval_s=max(10, int(scan_s)),
    )
    import pandas as pd

    return PlcImage.from_plant(simulate_plant(cfg), scan_s=scan_s, start=pd.Timestamp(start), hours=hours)


def serve_plant(
    *,
    mqtt: bool,
    opcua: bool,
    modbus: bool,
    machines: int,
    hours: float,
    speed: float,
    scan_s: float,
    seed: int,
    mqtt_url: str,
    opcua_port: int,
    modbus_port: int,
    tags_out: Path | None,
    truth_out: Path | None,
    settings: Any,
) -> None:
    """Build the image, write the tag dictionary, and serve until the image ends or SIGTERM / Ctrl-C."""
    image = plant_image(
        machines=machines,
        hours=hours,
        scan_s=scan_s,
        seed=seed,
        timezone=settings.plant_timezone,
        site=settings.site,
    )
    protocols = [p for p, on in (("mqtt", mqtt), ("opcua", opcua), ("modbus", modbus)) if on]
    groups = split_machines(list(image.machines), protocols)
    text = tag_dictionary_yaml(
        mqtt=groups.get("mqtt", []),
        opcua=groups.get("opcua", []),
        modbus=groups.get("modbus", []),
        mqtt_url=mqtt_url,
        opcua_url=f"opc.tcp://127.0.0.1:{opcua_port}/workbench/",
        modbus_port=modbus_port,
    )
    tags_out = tags_out or settings.data_path / "simulated" / "tags.yaml"
    tags_out.parent.mkdir(parents=True, exist_ok=True)
    tags_out.write_text(text, encoding="utf-8")
    if truth_out:
        truth_out.parent.mkdir(parents=True, exist_ok=True)
        image.expected_counts().to_csv(truth_out, index=False)
    log.info(
        "plant of %d machines, %s h from %s at %gx: %s; tag dictionary %s",
        machines,
        hours,
        dt.datetime.fromtimestamp(image.start_ms / 1000, dt.UTC).isoformat(timespec="seconds"),
        speed,
        ", ".join(f"{p} {g[0]}…{g[-1]}" for p, g in groups.items() if g),
        tags_out,
    )
    asyncio.run(
        _serve(image, groups, speed=speed, mqtt_url=mqtt_url, opcua_port=opcua_port, modbus_port=modbus_port)
    )


async def _serve(
    image: PlcImage,
    groups: dict[str, list[str]],
    *,
    speed: float,
    mqtt_url: str,
    opcua_port: int,
    modbus_port: int,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        clocks = []
        if groups.get("opcua"):
            from workbench.simulate.opcua_server import OpcUaPlcServer

            srv = await stack.enter_async_context(OpcUaPlcServer(image, port=opcua_port, speed=speed))
            clocks.append(srv.clock)
        if groups.get("modbus"):
            from workbench.simulate.modbus_server import ModbusPlcServer

            srv = await stack.enter_async_context(ModbusPlcServer(image, port=modbus_port, speed=speed))
            clocks.append(srv.clock)
        if groups.get("mqtt"):
            from workbench.simulate.kepware import KepwarePublisher

            pub = KepwarePublisher(image, machines=groups["mqtt"], url=mqtt_url, speed=speed).start()
            stack.callback(pub.stop)
            clocks.append(pub.clock)
        while not stop.is_set() and not all(c.finished for c in clocks):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 10.0)
            plant = dt.datetime.fromtimestamp(clocks[0].plant_ms() / 1000, dt.UTC)
            log.info("plant time %s", plant.isoformat(timespec="seconds"))
    log.info("simulators stopped")


# -- the business APIs: MachineMetrics-shaped and ERP ---------------------------------------------------


def api_plant_config(*, machines: int, days: int, seed: int, timezone: str, site: str,
                     today: dt.date | None = None) -> PlantConfig:
    """The plant behind the served APIs: ``days`` days of history up to today, and today itself.

    The horizon runs from 06:00 plant time ``days`` days ago to 06:00 tomorrow, so that with the
    wall clock as the API's clock the current production day fills in as real time passes.
    """
    from zoneinfo import ZoneInfo

    from workbench.errors import ConfigError

    if days < 1:
        raise ConfigError(f"--days must be at least 1, got {days}")
    today = today or dt.datetime.now(ZoneInfo(timezone)).date()
    return PlantConfig(
        seed=seed,
        n_machines=machines,
        n_lines=max(1, min(3, machines)),
        start=today - dt.timedelta(days=days),
        days=days + 1,
        timezone=timezone,
        site=site,
        telemetry=False,
        cycle_events=False,
    )


@contextlib.contextmanager
def api_servers(
    *,
    machinemetrics: bool,
    erp: bool,
    machines: int,
    days: int,
    seed: int,
    mm_port: int,
    erp_port: int,
    erp_admin_url: str | None,
    settings: Any,
) -> Iterator[dict[str, str]]:
    """Serve the MachineMetrics-shaped API and/or the ERP (installed into PostgreSQL) during the block.

    Yields the environment a plant would set to sync from them (``WORKBENCH_MM_BASE_URL``,
    ``WORKBENCH_MM_API_KEY``, ``WORKBENCH_ERP_DATABASE_URL``, ``WORKBENCH_ERP_BASE_URL``,
    ``WORKBENCH_ERP_API_KEY``). The API keys are random per start unless ``WORKBENCH_MM_API_KEY``
    / ``WORKBENCH_ERP_API_KEY`` are set in the environment.

    Raises
    ------
    ConfigError
        When the ERP is asked for without a PostgreSQL URL to install it with.
    """
    import os
    import secrets

    from workbench.errors import ConfigError
    from workbench.simulate import simulate_plant
    from workbench.simulate.http import ServedApp

    if erp and not erp_admin_url:
        raise ConfigError("the ERP simulator needs PostgreSQL: give --erp-admin-url")
    cfg = api_plant_config(machines=machines, days=days, seed=seed, timezone=settings.plant_timezone,
                           site=settings.site)
    plant = simulate_plant(cfg)
    env: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        if machinemetrics:
            from workbench.simulate.machinemetrics import machinemetrics_app

            key = os.environ.get("WORKBENCH_MM_API_KEY") or secrets.token_urlsafe(24)
            app = machinemetrics_app(plant, api_key=key, now=lambda: dt.datetime.now(dt.UTC))
            served = stack.enter_context(ServedApp(app, port=mm_port))
            env["WORKBENCH_MM_BASE_URL"] = served.url
            env["WORKBENCH_MM_API_KEY"] = key
        if erp:
            from workbench.simulate.erp import erp_rest_app, install_erp

            assert erp_admin_url is not None
            reader = install_erp(erp_admin_url, plant)
            key = os.environ.get("WORKBENCH_ERP_API_KEY") or secrets.token_urlsafe(24)
            served = stack.enter_context(ServedApp(erp_rest_app(reader, api_key=key), port=erp_port))
            env["WORKBENCH_ERP_DATABASE_URL"] = reader
            env["WORKBENCH_ERP_BASE_URL"] = served.url
            env["WORKBENCH_ERP_API_KEY"] = key
        log.info(
            "business APIs of a plant of %d machines, %d days from %s (%s): %s",
            machines,
            days,
            cfg.start.isoformat(),
            cfg.timezone,
            ", ".join(k for k, on in (("MachineMetrics", machinemetrics), ("ERP", erp)) if on),
        )
        yield env
    log.info("business API simulators stopped")


def print_env(env: dict[str, str]) -> None:
    """Print ``KEY=value`` lines (ready for ``.env``) of the environment a plant would set."""
    print("# a plant syncing from these simulators sets (e.g. in .env):", flush=True)
    for key, value in env.items():
        print(f"{key}={value}", flush=True)


def serve_apis(
    *,
    machinemetrics: bool,
    erp: bool,
    machines: int,
    days: int,
    seed: int,
    mm_port: int,
    erp_port: int,
    erp_admin_url: str | None,
    settings: Any,
    stop: threading.Event | None = None,
) -> None:
    """Serve the business APIs of a simulated plant until SIGTERM / Ctrl-C.

    Simulates ``machines`` machines over ``days`` days up to now (plus today, filling in with the
    wall clock: see :func:`api_plant_config`), serves the MachineMetrics-shaped API on ``mm_port``
    and/or installs the ERP tables with ``erp_admin_url`` and serves its REST face on
    ``erp_port``, prints the environment a plant would set to sync from them, and blocks.

    Parameters
    ----------
    machinemetrics, erp : bool
        Which APIs to serve.
    machines, days, seed : int
        The simulated plant.
    mm_port, erp_port : int
        Ports on 127.0.0.1.
    erp_admin_url : str, optional
        PostgreSQL URL allowed to create the ERP schema and its read-only role (required with ``erp``).
    settings : workbench.config.Settings
        Plant time zone and site.
    stop : threading.Event, optional
        Stop when it is set instead of on a signal (for callers outside the main thread).
    """
    with api_servers(
        machinemetrics=machinemetrics,
        erp=erp,
        machines=machines,
        days=days,
        seed=seed,
        mm_port=mm_port,
        erp_port=erp_port,
        erp_admin_url=erp_admin_url,
        settings=settings,
    ) as env:
        print_env(env)
        _wait_for_stop(stop)


def _wait_for_stop(stop: threading.Event | None) -> None:
    if stop is None:
        stop = threading.Event()
        handlers = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            while not stop.wait(0.5):
                pass
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
    else:
        stop.wait()
