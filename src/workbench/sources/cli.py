"""``workbench collect``, ``workbench sources …``, ``workbench dlq …`` and ``workbench simulate serve``."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from workbench import config as wb_config
from workbench.cliutil import console, friendly
from workbench.errors import ConfigError
from workbench.sources.sync_cli import status_command

sources_app = typer.Typer(
    help="Shop-floor sources: browse a server, show the health of every source.", no_args_is_help=True
)
dlq_app = typer.Typer(
    help="Dead letters: what ingest rejected, and replaying it once the cause is fixed.", no_args_is_help=True
)
log = logging.getLogger("workbench.collect")


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("asyncua", "pymodbus"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _warehouse_opener(settings: wb_config.Settings):
    from workbench.store import DuckDBWarehouse, PostgresWarehouse

    if settings.database_url is not None:
        url = settings.database_url.get_secret_value()
        return (lambda: PostgresWarehouse(url, timescale=settings.timescale)), True
    path, timeout = settings.warehouse_path, settings.lock_timeout_s
    # Short waits: the spool holds the data meanwhile, so a collector never queues behind a report.
    return (lambda: DuckDBWarehouse(path, lock_timeout_s=min(timeout, 10.0))), False


def collect_command(
    tags: Annotated[
        Path | None,
        typer.Option(
            "--tags",
            "--config",
            help="Tag dictionary (default WORKBENCH_TAGS_FILE or pipelines/plant/tags.yaml).",
        ),
    ] = None,
    source: Annotated[list[str] | None, typer.Option(help="Only this source (repeatable).")] = None,
    spool: Annotated[
        Path | None, typer.Option(help="Spool file (default data/spool/collector.sqlite).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Collect PLC data into the warehouse until stopped (SIGTERM / Ctrl-C stop it cleanly)."""
    from workbench.sources.collector import Collector, reason_code_map, spool_for
    from workbench.sources.tags import load_tags

    settings = wb_config.settings()
    _logging(verbose)
    dictionary = load_tags(tags or settings.tags_path)
    opener, keep_open = _warehouse_opener(settings)
    reasons: dict[str, tuple[str, bool]] = {}
    try:
        with opener() as wh:
            wh.init_schema()
            reasons = reason_code_map(wh)
    except Exception as exc:
        # A collector must start while the warehouse is down (a reboot, maintenance): it spools, and the
        # forwarder writes once the warehouse is back. Reason categories are filled from then on.
        log.warning("warehouse not reachable at start (%s); collecting into the spool until it is",
                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    sp = spool_for(spool or settings.spool_file, max_mb=settings.spool_max_mb)
    collector = Collector(
        dictionary, spool=sp, open_warehouse=opener, keep_open=keep_open, reason_codes=reasons, sources=source
    )
    log.info(
        "collecting %d source(s) from %s into %s; spool %s",
        len(collector.sources),
        dictionary.path,
        "PostgreSQL" if keep_open else settings.warehouse_path,
        sp.path,
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await collector.run(stop)

    try:
        asyncio.run(main())
    finally:
        sp.close()


@sources_app.command("browse")
@friendly
def browse(
    url: Annotated[str, typer.Argument(help="opc.tcp://host:port/path of an OPC UA server.")],
    name: Annotated[str, typer.Option(help="Source name to write.")] = "opcua",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the YAML here.")] = None,
) -> None:
    """List an OPC UA server's variables as a starting tag dictionary (YAML)."""
    from workbench.sources.opcua import browse as do_browse
    from workbench.sources.opcua import browse_yaml

    if not url.startswith("opc.tcp://"):
        raise ConfigError(f"an OPC UA url starts with opc.tcp://, got {url!r}")
    variables = asyncio.run(do_browse(url))
    text = browse_yaml(variables, source_name=name, url=url)
    if output:
        output.write_text(text, encoding="utf-8")
        console.print(
            f"{len(variables)} variables written to {output}: fill in machine ids, units and kinds."
        )
    else:
        typer.echo(text, nl=False)


sources_app.command("status")(friendly(status_command))


@dlq_app.command("list")
@friendly
def dlq_list(
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
    limit: Annotated[int, typer.Option(help="Newest rows shown.")] = 20,
) -> None:
    """Dead letters by source and rule, and the newest ones with their reason and payload."""
    from workbench.store import open_reader

    where, params = ("WHERE source = ?", [source]) if source else ("", [])
    with open_reader().held() as wh:
        by_rule = wh.query(
            f"SELECT source, split_part(reason, ':', 1) AS rule, count(*) AS n, "
            f"max(received_at) AS newest FROM dead_letters {where} GROUP BY 1, 2 ORDER BY 3 DESC",
            params,
        )
        newest = wh.query(
            f"SELECT received_at, source, location, reason, payload FROM dead_letters {where} "
            f"ORDER BY received_at DESC LIMIT {int(limit)}",
            params,
        )
    if by_rule.empty:
        console.print("No dead letters.")
        return
    t = Table(title="Dead letters by rule", title_justify="left")
    for col in ("source", "rule", "rows", "newest"):
        t.add_column(col)
    for r in by_rule.itertuples():
        t.add_row(r.source, r.rule, f"{r.n:,}", str(r.newest))
    console.print(t)
    t = Table(title=f"Newest {len(newest)}", title_justify="left")
    for col in ("received", "source", "where", "reason", "payload"):
        t.add_column(col, overflow="fold")
    for r in newest.itertuples():
        t.add_row(str(r.received_at), r.source, str(r.location), r.reason, str(r.payload)[:120])
    console.print(t)


@dlq_app.command("replay")
@friendly
def dlq_replay(
    tags: Annotated[Path | None, typer.Option("--tags", help="Tag dictionary (the fixed one).")] = None,
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
    rule: Annotated[str | None, typer.Option(help="Only this rule, e.g. unknown_tag.")] = None,
) -> None:
    """Run dead-lettered readings through ingest again (after fixing the tag dictionary).

    What passes now is written and its dead letter removed, in one transaction; a second replay
    finds nothing to do. What is still rejected stays, with its original reason.
    """
    from workbench.sources.replay import replay_dead_letters
    from workbench.sources.tags import load_tags
    from workbench.store import open_warehouse

    settings = wb_config.settings()
    dictionary = load_tags(tags or settings.tags_path)
    with open_warehouse(settings) as wh:
        result = replay_dead_letters(wh, dictionary, source=source, rule=rule)
    console.print(
        f"Replayed {result.replayed:,} dead letter(s): {result.written:,} row(s) written, "
        f"{result.still_rejected:,} still rejected, {result.not_replayable:,} not replayable "
        f"(whole messages that were not readable JSON)."
    )


def serve_command(
    mqtt: Annotated[bool, typer.Option("--mqtt", help="Publish as KEPServerEX over MQTT.")] = False,
    opcua: Annotated[bool, typer.Option("--opcua", help="Serve an OPC UA server.")] = False,
    modbus: Annotated[bool, typer.Option("--modbus", help="Serve a Modbus TCP server.")] = False,
    machinemetrics: Annotated[
        bool, typer.Option("--machinemetrics", help="Serve the MachineMetrics-shaped REST API.")
    ] = False,
    erp: Annotated[
        bool, typer.Option("--erp", help="Install the ERP tables in PostgreSQL and serve its REST API.")
    ] = False,
    machines: Annotated[int, typer.Option(help="Machines, split over the protocols chosen.")] = 12,
    hours: Annotated[float, typer.Option(help="Plant hours to play (they end now).")] = 8.0,
    speed: Annotated[float, typer.Option(help="Plant seconds per wall second.")] = 60.0,
    scan_s: Annotated[float, typer.Option(help="PLC scan interval, plant seconds.")] = 10.0,
    seed: Annotated[int, typer.Option(help="Random seed of the plant.")] = 7,
    mqtt_url: Annotated[str, typer.Option(help="Broker.")] = "mqtt://127.0.0.1:1883",
    opcua_port: Annotated[int, typer.Option(help="OPC UA port (127.0.0.1).")] = 4840,
    modbus_port: Annotated[int, typer.Option(help="Modbus TCP port (127.0.0.1).")] = 5020,
    mm_port: Annotated[int, typer.Option(help="MachineMetrics-shaped API port (127.0.0.1).")] = 8081,
    erp_port: Annotated[int, typer.Option(help="ERP REST API port (127.0.0.1).")] = 8082,
    erp_admin_url: Annotated[
        str | None,
        typer.Option(
            help="PostgreSQL URL that may create the ERP schema and its read-only role "
            "(default WORKBENCH_DATABASE_URL)."
        ),
    ] = None,
    days: Annotated[int, typer.Option(help="Simulated days of history behind the APIs.")] = 30,
    tags_out: Annotated[Path | None, typer.Option(help="Write the matching tag dictionary here.")] = None,
    truth_out: Annotated[
        Path | None, typer.Option(help="Write the expected counts per machine-hour (CSV).")
    ] = None,
) -> None:
    """Serve the simulated plant on 127.0.0.1: its PLCs over OPC UA, Modbus TCP and KEPServerEX MQTT,
    and its business APIs (MachineMetrics-shaped REST, ERP in PostgreSQL and REST).

    With no flag, every PLC protocol; with only API flags, only the APIs. The APIs print the
    environment a plant sets to sync from them.
    """
    import contextlib

    from workbench.simulate.serve import api_servers, print_env, serve_apis, serve_plant

    settings = wb_config.settings()
    plc = mqtt or opcua or modbus
    apis = machinemetrics or erp
    if not (plc or apis):
        mqtt = opcua = modbus = plc = True
    if erp and not erp_admin_url:
        if settings.database_url is None:
            raise ConfigError("the ERP simulator needs PostgreSQL: give --erp-admin-url")
        erp_admin_url = settings.database_url.get_secret_value()
    _logging(False)
    api_options = {
        "machinemetrics": machinemetrics,
        "erp": erp,
        "machines": machines,
        "days": days,
        "seed": seed,
        "mm_port": mm_port,
        "erp_port": erp_port,
        "erp_admin_url": erp_admin_url,
        "settings": settings,
    }
    if not plc:
        serve_apis(**api_options)
        return
    with contextlib.ExitStack() as stack:
        if apis:
            print_env(stack.enter_context(api_servers(**api_options)))
        serve_plant(
            mqtt=mqtt,
            opcua=opcua,
            modbus=modbus,
            machines=machines,
            hours=hours,
            speed=speed,
            scan_s=scan_s,
            seed=seed,
            mqtt_url=mqtt_url,
            opcua_port=opcua_port,
            modbus_port=modbus_port,
            tags_out=tags_out,
            truth_out=truth_out,
            settings=settings,
        )


__all__ = ["collect_command", "dlq_app", "serve_command", "sources_app"]
