"""``workbench simulate serve``: the simulated plant's PLCs on 127.0.0.1, in real or accelerated time."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import signal
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
