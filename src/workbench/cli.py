"""``workbench`` — the command line.

Every command reads the settings (``WORKBENCH_*`` / ``.env``); errors of the workbench are shown
as one clear message and exit code 2, never as a traceback.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from workbench import config as wb_config
from workbench.cliutil import console, err_console, friendly
from workbench.errors import WorkbenchError
from workbench.ml.anomalies_cli import anomalies_command
from workbench.ml.models_cli import app as models_app
from workbench.ml.reviews_cli import app as reviews_app
from workbench.ml.rootcause_cli import app as rootcause_app
from workbench.sampling_cli import app as sampling_app
from workbench.scheduling import quiet_prefect
from workbench.sources.cli import collect_command, dlq_app, serve_command, sources_app
from workbench.sources.sync_cli import sync_command
from workbench.spc.cli import app as spc_app

# Nothing of the workbench may call out of the plant's network: Prefect's temporary server would
# otherwise try to send usage telemetry.
quiet_prefect()

app = typer.Typer(help="Analytics workbench for manufacturing plants.", no_args_is_help=True,
                  add_completion=False)
db_app = typer.Typer(help="Warehouse administration.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(sampling_app, name="sampling")
app.add_typer(spc_app, name="spc")
app.add_typer(sources_app, name="sources")
app.add_typer(dlq_app, name="dlq")
app.add_typer(models_app, name="models")
app.add_typer(rootcause_app, name="rootcause")
app.add_typer(reviews_app, name="reviews")
app.command("anomalies")(anomalies_command)
app.command("collect")(friendly(collect_command))
app.command("sync")(friendly(sync_command))
KERNEL_NAME = "workbench"


def _parse_date(value: str | None, option: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date like 2026-11-20", param_hint=option) from None


def _counts_table(title: str, rows: dict[str, tuple[Any, ...]], headers: tuple[str, ...]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("table")
    for h in headers:
        table.add_column(h, justify="right")
    for name, values in rows.items():
        table.add_row(name, *(f"{v:,}" if isinstance(v, int) else str(v) for v in values))
    return table


# -- simulate / demo ------------------------------------------------------------------------------

def _simulate_and_load(*, machines: int, lines: int, days: int, start: str | None, seed: int,
                       telemetry: bool, cycle_events: bool, title: str) -> None:
    from workbench.demo import build_demo, default_start
    from workbench.simulate import PlantConfig
    from workbench.store import open_warehouse

    settings = wb_config.settings()
    first = _parse_date(start, "--start") or default_start(days, settings.tz)
    cfg = PlantConfig(seed=seed, n_machines=machines, n_lines=lines, days=days, start=first,
                      timezone=settings.plant_timezone, site=settings.site, telemetry=telemetry,
                      cycle_events=cycle_events, micro_stop_threshold_s=settings.micro_stop_threshold_s)
    console.print(f"Simulating {machines} machines on {lines} lines, {days} days from {first} "
                  f"(seed {seed}, {settings.plant_timezone}) …")
    with open_warehouse(settings) as wh:
        summary = build_demo(cfg, settings, wh)
        totals = wh.counts()
    rows = {name: (r.written, r.unchanged, totals[name]) for name, r in summary.results.items()}
    console.print(_counts_table(title, rows, ("written", "already there", "rows in table")))
    console.print(f"Warehouse:    {summary.warehouse}")
    console.print(f"Ground truth: {summary.truth_dir}")
    console.print(f"Days:         {summary.first_day} … {summary.last_day} (plant time)")


@app.command()
@friendly
def demo(
    machines: Annotated[int, typer.Option(help="Number of machines.")] = 12,
    lines: Annotated[int, typer.Option(help="Number of production lines.")] = 3,
    days: Annotated[int, typer.Option(help="Days to simulate, ending yesterday.")] = 30,
    start: Annotated[str | None, typer.Option(help="First day (YYYY-MM-DD) instead.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same plant).")] = 7,
) -> None:
    """Build the demo plant: simulate, load the warehouse, keep the ground truth, print a summary."""
    _simulate_and_load(machines=machines, lines=lines, days=days, start=start, seed=seed,
                       telemetry=True, cycle_events=True, title="Demo plant loaded")


simulate_app = typer.Typer(help="Simulate a plant into the warehouse, or serve its PLCs (simulate serve).",
                           invoke_without_command=True)
app.add_typer(simulate_app, name="simulate")


@simulate_app.callback()
@friendly
def simulate(
    ctx: typer.Context,
    machines: Annotated[int, typer.Option(help="Number of machines.")] = 12,
    lines: Annotated[int, typer.Option(help="Number of production lines.")] = 3,
    days: Annotated[int, typer.Option(help="Days to simulate.")] = 30,
    start: Annotated[str | None, typer.Option(help="First day YYYY-MM-DD (default: ends yesterday).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    telemetry: Annotated[bool, typer.Option(help="Simulate sensor telemetry.")] = True,
    cycle_events: Annotated[bool, typer.Option(
        help="One production event per cycle (else one count event per machine-minute).")] = True,
) -> None:
    """Simulate a plant of any size into the configured warehouse (with its ground truth)."""
    if ctx.invoked_subcommand is not None:
        return
    _simulate_and_load(machines=machines, lines=lines, days=days, start=start, seed=seed,
                       telemetry=telemetry, cycle_events=cycle_events, title="Simulated plant loaded")


simulate_app.command("serve")(friendly(serve_command))


# -- db --------------------------------------------------------------------------------------------

@db_app.command("init")
@friendly
def db_init() -> None:
    """Create the canonical tables (idempotent) and record the schema version."""
    from workbench.store import PostgresWarehouse, open_warehouse

    with open_warehouse() as wh:
        wh.init_schema()
        extra = ""
        if isinstance(wh, PostgresWarehouse):
            extra = " with TimescaleDB" if wh.uses_timescale() else " (plain PostgreSQL)"
        console.print(f"Schema version {wh.schema_version()} ready in {wh.engine}{extra}: {wh.location}")


@db_app.command("counts")
@friendly
def db_counts() -> None:
    """Row counts of every canonical table."""
    from workbench.store import open_warehouse

    with open_warehouse(read_only=True) as wh:
        counts = wh.counts()
        console.print(_counts_table(f"{wh.engine}: {wh.location}", {k: (v,) for k, v in counts.items()},
                                    ("rows",)))


@db_app.command("extract")
@friendly
def db_extract(
    path: Annotated[Path, typer.Argument(help="DuckDB file to write.")],
    start: Annotated[str | None, typer.Option(help="First day (plant time), YYYY-MM-DD.")] = None,
    end: Annotated[str | None, typer.Option(help="Day after the last (plant time), YYYY-MM-DD.")] = None,
) -> None:
    """Export a DuckDB extract of the warehouse for notebooks (optionally one date range)."""
    from workbench.store import open_warehouse

    settings = wb_config.settings()

    def instant(value: str | None, option: str) -> dt.datetime | None:
        day = _parse_date(value, option)
        return None if day is None else dt.datetime.combine(day, dt.time(), tzinfo=settings.tz)

    with open_warehouse(read_only=True) as wh:
        copied = wh.export_extract(path, start=instant(start, "--start"), end=instant(end, "--end"))
    console.print(_counts_table(f"Extract written: {path}", {k: (v,) for k, v in copied.items()}, ("rows",)))


# -- oee -------------------------------------------------------------------------------------------

@app.command("oee")
@friendly
def oee_command(
    start: Annotated[str, typer.Option(help="First production day (plant time), YYYY-MM-DD.")],
    end: Annotated[str | None, typer.Option(help="Day after the last (default: start + 1 day).")] = None,
    by: Annotated[str, typer.Option(help="Grouping: machine_id, line, site, hour, shift, day, week "
                                         "(comma-separated; '' for the whole plant).")] = "machine_id,day",
    rollup: Annotated[bool, typer.Option("--rollup", help="Also upsert oee_hourly for the range.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON records.")] = False,
) -> None:
    """OEE (ISO 22400-2) from the warehouse: availability, performance, quality per group.

    A range without any production data is said so, with the planned minutes that had none, and
    exits with code 1 (``--json``: ``{"rows": [], "no_data": true, "message": …}``) — an empty
    table would read like a quiet day.
    """
    from workbench import coverage, jobs, oee
    from workbench.store import open_warehouse

    settings = wb_config.settings()
    first = _parse_date(start, "--start")
    last = _parse_date(end, "--end") or first + dt.timedelta(days=1)  # type: ignore[operator]
    grouping = tuple(g.strip() for g in by.split(",") if g.strip())
    with open_warehouse() as wh:
        t0, t1 = jobs.production_day_range(wh, first=first, last=last,  # type: ignore[arg-type]
                                           tz=settings.plant_timezone)
        frames = jobs.load_plant_frames(wh, start=t0, end=t1)
        found = coverage.data_coverage(frames, start=t0, end=t1, tz=settings.plant_timezone,
                                       micro_stop_threshold_s=settings.micro_stop_threshold_s)
        if not found.has_data:
            message = found.message(tz=settings.plant_timezone, where=wh.location)
            if as_json:
                typer.echo(json.dumps({"rows": [], "no_data": True, "message": message,
                                       "start": t0.isoformat(), "end": t1.isoformat(),
                                       "shifts": found.shifts, "planned_min_without_data": found.planned_min},
                                      indent=2, ensure_ascii=False))
            else:
                console.print(message, highlight=False, soft_wrap=True)
            raise typer.Exit(1)
        result = oee.compute(frames, by=grouping, tz=settings.plant_timezone,
                             micro_stop_threshold_s=settings.micro_stop_threshold_s, start=t0, end=t1)
        written = None
        if rollup:
            written = jobs.roll_up_oee_hourly(wh, start=t0, end=t1, tz=settings.plant_timezone,
                                              micro_stop_threshold_s=settings.micro_stop_threshold_s)
    cols = [*grouping, "pbt_min", "apt_min", "down_min", "setup_min", "no_data_min", "good", "rejects",
            "availability", "performance", "quality", "oee"]
    table = result.table[cols]
    if as_json:
        typer.echo(table.to_json(orient="records", date_format="iso", indent=2))
    else:
        out = Table(title=f"OEE {first} … {last - dt.timedelta(days=1)}", title_justify="left")
        for c in cols:
            out.add_column(c, justify="left" if c in grouping else "right")
        for row in table.itertuples(index=False):
            cells = []
            for c, v in zip(cols, row, strict=True):
                if c in ("availability", "performance", "quality", "oee"):
                    cells.append("—" if v != v else f"{v:.1%}")
                elif isinstance(v, float):
                    cells.append(f"{v:,.1f}")
                else:
                    cells.append(f"{v:,}" if isinstance(v, int) else str(v))
            out.add_row(*cells)
        console.print(out)
    if written is not None:
        err_console.print(f"oee_hourly: {written.written:,} rows written, {written.unchanged:,} unchanged")


# -- pipelines ---------------------------------------------------------------------------------------

@app.command("pipelines")
@friendly
def pipelines_command() -> None:
    """List the pipelines in pipelines/*.yaml with their schedules and next runs.

    "next runs" is computed from the YAML; with PREFECT_API_URL set, "on the server" says what
    the Prefect server really holds (its scheduler's upcoming runs, or what is wrong)."""
    from workbench import pipelines, scheduling

    settings = wb_config.settings()
    found = pipelines.load_all(settings.home, default_timezone=settings.plant_timezone)
    api = os.environ.get("PREFECT_API_URL", "").strip()
    from workbench.sources.health import unconfigured_syncs

    skipped = unconfigured_syncs(settings, found)
    server: dict[str, str] = dict(skipped)
    if api:
        try:
            server.update({st.pipeline: ("ok: " if st.ok else "PROBLEM: ") + st.describe(settings.tz)
                           for st in scheduling.schedule_status(
                               api, [p for n, p in found.items() if n not in skipped])})
        except WorkbenchError as exc:
            server = {name: f"PROBLEM: {exc}" for name in found}
    table = Table(title=f"Pipelines in {pipelines.pipelines_dir(settings.home)}", title_justify="left")
    columns = ["name", "kind", "schedule", "next runs", "notebooks", "recipients"]
    for col in [*columns, "on the server"] if api else columns:
        table.add_column(col)
    now = dt.datetime.now(dt.UTC)
    for p in found.values():
        runs = ", ".join(f"{t:%a %d %b %H:%M %Z}" for t in p.next_runs(now, 2)) if p.enabled else "disabled"
        if p.name in skipped:
            runs = "not configured"
        row = [p.name, p.kind, p.schedule_text, runs, ", ".join(n.name for n in p.notebooks) or "—",
               ", ".join(p.email.recipients) if p.email else "—"]
        if api:
            row.append(server.get(p.name, "disabled" if not p.enabled else "—"))
        table.add_row(*row)
    console.print(table)
    if not api:
        err_console.print("(next runs as the YAML says; set PREFECT_API_URL to see what the Prefect server "
                          "has scheduled)")


@app.command("run")
@friendly
def run_command(
    pipeline: Annotated[str, typer.Argument(help="Pipeline name (pipelines/<name>.yaml).")],
    date: Annotated[str | None, typer.Option(help="Production day YYYY-MM-DD (default: the latest).")] = None,
    working_tree: Annotated[bool, typer.Option(
        "--working-tree", help="Run the notebooks as they are on disk, not as committed (developing a "
                               "notebook; the pages say so).")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Retrain pipelines: run a retraining round whatever the day and the champion's "
                        "health.")] = False,
) -> None:
    """Run a pipeline once, now, through Prefect (a temporary local server when none is configured).

    Notebooks run as committed in git, like the scheduled runs, unless --working-tree."""
    from workbench import pipelines, runs

    settings = wb_config.settings()
    p = pipelines.get(pipeline, home=settings.home, default_timezone=settings.plant_timezone)
    flows = runs.load_flows(settings.home)
    flow = flows.FLOWS[p.kind]
    kwargs: dict[str, Any] = {"pipeline": p.name}
    if p.kind == "report":
        kwargs["date"] = date
        kwargs["working_tree"] = working_tree
    elif working_tree:
        raise typer.BadParameter(f"{p.name} runs no notebooks", param_hint="--working-tree")
    if p.kind == "retrain":
        kwargs["force"] = force
        if date:
            kwargs["until"] = date
    elif force:
        raise typer.BadParameter(f"{p.name} is not a retrain pipeline", param_hint="--force")
    state = flow(**kwargs, return_state=True)
    if state.is_completed():
        result = state.result()
        for key, value in (result or {}).items():
            typer.echo(f"{key}: {value}")  # plain: paths must not be wrapped
        return
    err_console.print(f"[bold red]{p.name} ended {state.name}:[/] {state.message}", highlight=False)
    raise typer.Exit(1)


@app.command("serve")
@friendly
def serve_command() -> None:
    """Serve every enabled pipeline on its schedule (deployments visible in the Prefect UI).

    Runs until stopped; each scheduled run executes in a process of its own. Point it at the
    plant's Prefect server with PREFECT_API_URL (see `workbench server`).
    """
    import prefect

    from workbench import pipelines, runs

    settings = wb_config.settings()
    found = pipelines.load_all(settings.home, default_timezone=settings.plant_timezone)
    flows = runs.load_flows(settings.home)
    from workbench.sources.health import unconfigured_syncs

    for name, why in unconfigured_syncs(settings, found).items():
        err_console.print(f"{name}: {why}")
        found.pop(name)
    deployments = flows.deployments(found)
    api = os.environ.get("PREFECT_API_URL", "")
    if not api:
        err_console.print("[yellow]PREFECT_API_URL is not set:[/] serving against a temporary server inside "
                          "this process — no UI, and its run history is lost when it stops. For the plant, "
                          "run `workbench server` and set PREFECT_API_URL=http://127.0.0.1:4200/api.")
    console.print(f"Serving {len(deployments)} deployment(s) on {api or 'a temporary server'}:")
    for p in found.values():
        if p.enabled:
            nxt = p.next_runs(dt.datetime.now(dt.UTC), 1)[0]
            console.print(f"  {p.name}: {p.schedule_text}, next {nxt:%a %d %b %H:%M %Z}")
    # Schedules stay on when this process stops (a reboot, an upgrade): the server keeps creating
    # runs, those due meanwhile turn Late (workbench doctor says so) and run when serve is back,
    # instead of a missed 05:00 report that nobody hears about.
    prefect.serve(*deployments, pause_on_shutdown=False)


@app.command("server")
@friendly
def server_command(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the API and the UI.")] = 4200,
    public_url: Annotated[str | None, typer.Option(
        help="Address browsers reach this server at, e.g. http://analytics01:4200 (the UI calls the API "
             "there).")] = None,
    ui: Annotated[bool, typer.Option(help="Serve the Prefect UI.")] = True,
) -> None:
    """Run the Prefect server in the foreground, hardened for a plant: telemetry off, scheduler and
    late-run detection on, the UI pointed at the right API. Run it as a service (README)."""
    from workbench import scheduling

    env = scheduling.server_environment(os.environ, host=host, port=port, public_url=public_url)
    console.print(f"Prefect server on http://{host}:{port} (UI's API: {env['PREFECT_UI_API_URL']}); "
                  f"workbench serve needs PREFECT_API_URL=http://127.0.0.1:{port}/api")
    raise typer.Exit(subprocess.call(scheduling.server_command(host=host, port=port, ui=ui), env=env))


# -- import ----------------------------------------------------------------------------------------

@app.command("import")
@friendly
def import_(
    files: Annotated[list[Path], typer.Argument(help="CSV or Excel (.xlsx) files.", exists=True,
                                                dir_okay=False)],
    table: Annotated[str | None, typer.Option(help="Canonical table (default: from the file name).")] = None,
    timezone: Annotated[str | None, typer.Option(
        help="Zone of timestamps written without an offset, e.g. Europe/Berlin.")] = None,
    source: Annotated[str, typer.Option(help="Source name recorded on every row.")] = "import",
    sheet: Annotated[str | None, typer.Option(help="Excel sheet (default: the first).")] = None,
) -> None:
    """Load production, downtime or scrap history from spreadsheets.

    A file with any bad row is rejected whole — nothing of it is written — and every problem is
    listed with its file, row and column. Importing the same file again changes nothing.
    """
    from workbench.ingest import import_file
    from workbench.store import open_warehouse

    with open_warehouse() as wh:
        wh.init_schema()
        for path in files:
            result = import_file(path, wh, table=table, timezone=timezone, source=source, sheet=sheet)
            console.print(f"{path}: {result.rows_read:,} rows read → {result.table}: "
                          f"{result.rows_written:,} written, {result.rows_unchanged:,} already there")


# -- lab -------------------------------------------------------------------------------------------

#: JupyterLab options that keep it inside the plant's network (each one exists in jupyterlab 4.6 /
#: jupyter_server 2.21): no news feed (``None`` turns it off and hides it; an empty URL is still
#: "fetched" and logs a failure), no check of pypi.org for a newer JupyterLab, and an extension
#: manager that neither searches nor installs from PyPI.
LAB_OFFLINE_OPTIONS: dict[str, str] = {
    "LabApp.news_url": "None",
    "LabApp.check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
    "LabApp.extension_manager": "readonly",
}

# JupyterLab's short names for options `workbench lab` sets itself.
_LAB_ALIASES = {"notebook-dir": "ServerApp.root_dir", "port": "ServerApp.port"}


def _lab_options_given(args: list[str]) -> set[str]:
    """The ``Class.trait`` names that ``args`` set (``--Class.trait=v``, ``--Class.trait v``, aliases)."""
    names = (arg[2:].split("=", 1)[0] for arg in args if arg.startswith("--"))
    return {_LAB_ALIASES.get(name, name) for name in names}


def lab_command(*, notebooks: Path, port: int, no_browser: bool = False, as_root: bool = False,
                extra: list[str] | None = None) -> list[str]:
    """The command line ``workbench lab`` starts JupyterLab with.

    Parameters
    ----------
    notebooks : Path
        The directory JupyterLab shows (``ServerApp.root_dir``).
    port : int
        Port to listen on.
    no_browser : bool
        Do not open a browser.
    as_root : bool
        Add ``--allow-root``: JupyterLab refuses to start as root without it.
    extra : list of str, optional
        Arguments for JupyterLab, passed unchanged after the workbench's own. One that sets an
        option the workbench sets (e.g. ``--ServerApp.root_dir=…``, ``--LabApp.news_url=…``)
        replaces it: JupyterLab refuses an option given twice.

    Returns
    -------
    list of str
        The command, starting with this interpreter.
    """
    from workbench.reports.kernels import transport_encryption

    extra = list(extra or [])
    options = {
        "ServerApp.root_dir": str(notebooks),
        "ServerApp.port": str(port),
        "MappingKernelManager.default_kernel_name": KERNEL_NAME,
        # An analyst's kernels are encrypted like report kernels (CurveZMQ where the kernel spec
        # allows it), and do not log "Kernel is running over TCP without encryption" each.
        "MappingKernelManager.transport_encryption": transport_encryption(),
        **LAB_OFFLINE_OPTIONS,
    }
    given = _lab_options_given(extra)
    cmd = [sys.executable, "-m", "jupyterlab"]
    cmd += [f"--{name}={value}" for name, value in options.items() if name not in given]
    if no_browser:
        cmd.append("--no-browser")
    if as_root and "--allow-root" not in extra:
        cmd.append("--allow-root")
    return cmd + extra


def _run_lab(cmd: list[str], env: dict[str, str]) -> int:
    """Run JupyterLab: on POSIX this process becomes JupyterLab (and does not return)."""
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":
        # Become JupyterLab rather than wait for it: Ctrl-C, a service manager's SIGTERM and the
        # exit status are then its own. subprocess.call answers the first Ctrl-C by SIGKILLing
        # it — before it can ask to confirm or shut its kernels down, which then run on.
        os.execve(cmd[0], cmd, env)
    return subprocess.call(cmd, env=env)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
             options_metavar="[OPTIONS] [JUPYTERLAB ARGS]...")
@friendly
def lab(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="Port for JupyterLab.")] = 8888,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Do not open a browser.")] = False,
) -> None:
    """Start JupyterLab on notebooks/ with the project kernel.

    Any other arguments go to JupyterLab unchanged, e.g. --ip 0.0.0.0 --IdentityProvider.token=SECRET.

    As root (a container, a plant's analytics VM) --allow-root is added.

    JupyterLab calls nothing outside the plant: no news feed, no update check, no PyPI extensions.
    """
    settings = wb_config.settings()
    notebooks = settings.home / "notebooks"
    notebooks.mkdir(exist_ok=True)
    as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    cmd = lab_command(notebooks=notebooks, port=port, no_browser=no_browser, as_root=as_root, extra=ctx.args)
    if as_root:
        err_console.print("Running as root: starting JupyterLab with --allow-root.", highlight=False)
    env = dict(os.environ, WORKBENCH_HOME=str(settings.home))
    raise typer.Exit(_run_lab(cmd, env))


# -- doctor ----------------------------------------------------------------------------------------

REQUIRED_MODULES = ("pandas", "polars", "pyarrow", "duckdb", "psycopg", "papermill", "nbconvert",
                    "plotly", "prefect", "statsmodels", "sklearn", "imblearn", "shap", "prophet",
                    "asyncua", "pymodbus", "mlflow", "jupyterlab")


def _report_kernels_check(settings: wb_config.Settings) -> tuple[str, bool, str]:
    """Whether report kernels can be forked from a kernel zygote here (start one and ask it)."""
    from workbench.reports import kernels

    what = "report kernels"
    if not settings.fork_kernels:
        return what, True, "a new interpreter per notebook (WORKBENCH_FORK_KERNELS=false)"
    if not kernels.supported():
        return what, True, "a new interpreter per notebook (this platform cannot fork)"
    try:
        with kernels.KernelZygote(KERNEL_NAME, cwd=settings.home) as zygote:
            info = zygote.ping(timeout_s=60)
    except WorkbenchError as exc:
        return what, False, f"{exc} — kernels would start the usual way (slower)"
    failed = info.get("failed") or {}
    if failed:
        listed = "; ".join(f"{name}: {error}" for name, error in failed.items())
        return what, False, f"forked, but could not preload {listed}"
    return what, True, (f"forked from a zygote that preloads {len(info['preloaded'])} modules "
                        f"in {info['preload_s']:.1f} s")


def _schedule_checks(settings: wb_config.Settings) -> list[tuple[str, bool, str]]:
    """What the Prefect server at PREFECT_API_URL holds for every enabled pipeline: its deployment,
    upcoming runs the server's scheduler created, something serving them, the last run's state."""
    from workbench import pipelines, scheduling

    api = os.environ.get("PREFECT_API_URL", "").strip()
    if not api:
        return [("scheduled pipelines", True, "PREFECT_API_URL not set: not checked (set it to the plant's "
                 "Prefect server, e.g. http://127.0.0.1:4200/api)")]
    try:
        from workbench.sources.health import unconfigured_syncs

        found = pipelines.load_all(settings.home, default_timezone=settings.plant_timezone)
        skipped = unconfigured_syncs(settings, found)
        statuses = scheduling.schedule_status(api, [p for n, p in found.items() if n not in skipped])
    except WorkbenchError as exc:
        return [("scheduled pipelines", False, str(exc))]
    return [*((f"schedule '{st.pipeline}'", st.ok, st.describe(settings.tz)) for st in statuses),
            *((f"schedule '{name}'", True, why) for name, why in skipped.items())]


def doctor_checks() -> list[tuple[str, bool, str]]:
    """Run the installation checks: (what, ok, detail or hint)."""
    checks: list[tuple[str, bool, str]] = []
    py_ok = sys.version_info[:2] == (3, 11)
    checks.append(("python 3.11", py_ok, sys.version.split()[0]))
    for mod in REQUIRED_MODULES:
        try:
            m = importlib.import_module(mod)
            checks.append((f"package {mod}", True, str(getattr(m, "__version__", "installed"))))
        except Exception as exc:  # a broken install can raise anything at import time
            checks.append((f"package {mod}", False, f"{type(exc).__name__}: {exc} — run `make venv`"))
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        specs = KernelSpecManager().find_kernel_specs()
        checks.append((f"jupyter kernel '{KERNEL_NAME}'", KERNEL_NAME in specs,
                       specs.get(KERNEL_NAME, "missing — run `make venv`")))
    except Exception as exc:
        checks.append((f"jupyter kernel '{KERNEL_NAME}'", False, str(exc)))
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    checks.append(("chromium (report tests only)", True, chromium or "not installed (optional)"))
    try:
        settings = wb_config.load()
    except WorkbenchError as exc:
        checks.append(("settings", False, str(exc)))
        return checks
    checks.append(("settings", True, f"engine {settings.engine}, plant zone {settings.plant_timezone}"))
    checks.append(_report_kernels_check(settings))
    checks.extend(_schedule_checks(settings))
    data = settings.data_path
    try:
        data.mkdir(parents=True, exist_ok=True)
        writable = os.access(data, os.W_OK)
    except OSError:
        writable = False
    checks.append(("data directory writable", writable, str(data)))
    from workbench.store import PostgresWarehouse, open_warehouse

    if settings.engine == "duckdb" and not settings.warehouse_path.exists():
        checks.append(("warehouse (duckdb)", False,
                       f"{settings.warehouse_path} does not exist yet: run `make demo` or "
                       "`workbench db init`"))
        return checks
    try:
        with open_warehouse(settings, read_only=settings.engine == "duckdb") as wh:
            status = wh.schema_status()
            checks.append((f"warehouse ({wh.engine})", True, wh.location))
            checks.append(("schema", status.ok, status.detail))
            if isinstance(wh, PostgresWarehouse):
                ts = wh.timescale_available()
                checks.append(("timescaledb extension", True,
                               "available" if ts else "not available: plain PostgreSQL mode (fine)"))
    except WorkbenchError as exc:
        checks.append(("warehouse", False, str(exc)))
        return checks
    checks.extend(_source_checks(settings))
    return checks


def _source_checks(settings: wb_config.Settings) -> list[tuple[str, bool, str]]:
    """One line per source (the collector's, MachineMetrics, the ERP): a stale one fails."""
    from workbench.sources import health
    from workbench.store import open_reader

    out: list[tuple[str, bool, str]] = []
    if not settings.tags_path.exists():
        out.append(("tag dictionary", True, f"{settings.tags_path} not found: no shop-floor collection"))
    try:
        collector, syncs = health.configured_sources(settings)
        if settings.tags_path.exists():
            out.append(("tag dictionary", True, f"{settings.tags_path}, {len(collector)} source(s)"))
        now = dt.datetime.now(dt.UTC)
        with open_reader(settings).held() as wh:
            rows = health.source_health(wh, now=now, stale_min=settings.source_stale_min,
                                        collector_sources=collector, sync_sources=syncs)
    except WorkbenchError as exc:
        return [*out, ("sources", False, str(exc))]
    tz = settings.tz
    for h in rows:
        what = f"source {h.source} ({h.kind.removeprefix('collector (').rstrip(')')})"
        if h.status == "not configured" and h.kind == "sync":
            out.append((what, True, "not configured (no connection settings, never run)"))
            continue
        if h.last_success is None and not h.stale:
            out.append((what, True, "nothing collected yet (is `workbench collect` running?)"
                        if h.kind != "sync" else "no successful sync yet"))
            continue
        silent = (now - h.last_success).total_seconds() / 60 if h.last_success else None
        detail = ", ".join(filter(None, [
            f"newest data {h.newest_data.astimezone(tz):%Y-%m-%d %H:%M:%S %Z}" if h.newest_data else None,
            f"lag {h.lag.total_seconds():.0f} s" if h.lag is not None else None,
            (f"heartbeat {silent:.1f} min ago" if h.kind != "sync" else f"last success {silent:.1f} min ago")
            if silent is not None else "never succeeded",
            f"{h.errors} failed run(s)" if h.errors else None,
            f"{h.dead_letters_24h} dead letter(s) in 24 h"]))
        if h.stale:
            hint = ("check `workbench collect` and its log" if h.kind != "sync"
                    else f"check the {h.source} sync runs (Prefect UI) and `workbench sources status`")
            last = f"; last error: {h.last_error}" if h.last_error else ""
            out.append((what, False, f"STALE — {detail}{last}: {hint}"))
        else:
            out.append((what, True, detail))
    return out


@app.command()
def doctor() -> None:
    """Check the installation and connections; say what is missing and how to fix it."""
    checks = doctor_checks()
    table = Table(title="workbench doctor", title_justify="left")
    table.add_column("check")
    table.add_column("status")
    table.add_column("detail")
    for what, ok, detail in checks:
        table.add_row(what, "[green]ok[/]" if ok else "[red]MISSING[/]", detail)
    console.print(table)
    failed = [what for what, ok, _ in checks if not ok]
    if failed:
        console.print(f"[red]{len(failed)} problem(s):[/] {', '.join(failed)}")
        raise typer.Exit(1)
    console.print("[green]All checks passed.[/]")


if __name__ == "__main__":  # pragma: no cover
    app()
