"""``workbench reviews list | mark | rate`` — analysts' verdicts on the stored anomalies.

The I/O edge of :mod:`workbench.ml.reviews`: ``list`` shows the anomalies the morning model run
stored (with their ids and any verdict), ``mark`` gives them a verdict, ``rate`` shows each
detector's false-alarm share. Errors are one message on stderr and exit code 2.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import pandas as pd
import typer
from rich.table import Table

from workbench import config as wb_config
from workbench.cliutil import console, friendly, printed_plainly
from workbench.errors import MLError

app = typer.Typer(help="Analysts' verdicts on the stored anomalies: list them, mark them, the "
                       "false-alarm rate.", no_args_is_help=True, add_completion=False)

DaysOption = Annotated[int, typer.Option("--days", min=1,
                                         help="Anomalies that started in the last DAYS days.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _window(days: int) -> tuple[dt.datetime, dt.datetime]:
    end = dt.datetime.now(dt.UTC)
    return end - dt.timedelta(days=days), end


def _read(start: dt.datetime, end: dt.datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    from workbench.store import open_warehouse

    settings = wb_config.settings()
    with open_warehouse(settings, read_only=settings.engine == "duckdb") as wh, wh.held():
        return (wh.read("ml_anomalies", start=start, end=end),
                wh.read("ml_anomaly_reviews", start=start, end=end))


@app.command("list")
@friendly
def list_command(days: DaysOption = 7, as_json: JsonOption = False) -> None:
    """The stored anomalies of the last days, newest first, with their ids and verdicts."""
    start, end = _window(days)
    anomalies, reviews = _read(start, end)
    latest = (reviews.sort_values("reviewed_at").drop_duplicates("anomaly_id", keep="last")
              .set_index("anomaly_id") if len(reviews) else pd.DataFrame(columns=["verdict", "reviewed_by"]))
    tz = wb_config.settings().plant_timezone
    rows = []
    for a in anomalies.sort_values("time_start", ascending=False).itertuples(index=False):
        verdict = latest["verdict"].get(a.anomaly_id) if len(latest) else None
        rows.append({"anomaly_id": a.anomaly_id, "machine_id": a.machine_id, "target": a.target,
                     "time_start": pd.Timestamp(a.time_start).tz_convert(tz).isoformat(),
                     "detector": a.detector, "severity": a.severity, "likely_cause": a.likely_cause,
                     "verdict": verdict})
    if printed_plainly(rows, as_json=as_json, empty=f"No anomalies stored in the last {days} days."):
        return
    table = Table(title=f"Anomalies of the last {days} days", title_justify="left")
    table.add_column("anomaly_id", no_wrap=True, min_width=32)  # to be copied whole into `mark`
    for col in ("machine", "what", "start", "detector", "severity", "verdict"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["anomaly_id"], str(r["machine_id"]), str(r["target"]), r["time_start"][:16],
                      str(r["detector"]), str(r["severity"] or "-"), r["verdict"] or "-")
    console.print(table)


@app.command("mark")
@friendly
def mark_command(
    anomaly_ids: Annotated[list[str], typer.Argument(help="Ids of the anomalies (workbench reviews list).")],
    false_alarm: Annotated[bool | None, typer.Option(
        "--false-alarm/--confirmed", help="The verdict: a false alarm, or confirmed.")] = None,
    by: Annotated[str | None, typer.Option("--by", help="Who reviewed them.")] = None,
    note: Annotated[str | None, typer.Option("--note", help="What was found.")] = None,
) -> None:
    """Give stored anomalies a verdict (a later verdict replaces an earlier one)."""
    from workbench.ml.reviews import review_rows
    from workbench.store import open_warehouse

    if false_alarm is None:
        raise MLError("give the verdict: --confirmed or --false-alarm")
    settings = wb_config.settings()
    with open_warehouse(settings) as wh:
        stored = wh.read("ml_anomalies", columns=["anomaly_id", "detector", "time_start"])
        rows = review_rows(anomaly_ids, "false_alarm" if false_alarm else "confirmed", anomalies=stored,
                           reviewed_at=dt.datetime.now(dt.UTC), reviewed_by=by, note=note)
        wh.write("ml_anomaly_reviews", rows)
    console.print(f"{len(rows)} anomal{'y' if len(rows) == 1 else 'ies'} marked "
                  f"{'false alarm' if false_alarm else 'confirmed'}.")


@app.command("rate")
@friendly
def rate_command(days: DaysOption = 28, as_json: JsonOption = False) -> None:
    """Each detector's false-alarm share among the reviewed anomalies of the last days."""
    from workbench.ml.reviews import FALSE_ALARM_TRIGGER, MIN_REVIEWED, detector_reviews
    from workbench.store import open_warehouse

    settings = wb_config.settings()
    with open_warehouse(settings, read_only=settings.engine == "duckdb") as wh:
        rates = detector_reviews(wh, end=dt.datetime.now(dt.UTC), days=days)
    if as_json:
        typer.echo(json.dumps({s: {"anomalies": r.anomalies, "reviewed": r.reviewed,
                                   "false_alarms": r.false_alarms,
                                   "false_alarm_rate": None if not r.reviewed else round(r.rate, 4),
                                   "triggered": r.triggered} for s, r in rates.items()}, indent=2))
        return
    if not rates:
        console.print(f"No anomalies stored in the last {days} days.")
    for r in rates.values():
        flag = (f" — above the {100 * FALSE_ALARM_TRIGGER:.0f} % trigger" if r.triggered
                else f" (at least {MIN_REVIEWED} reviews needed to judge)" if r.reviewed < MIN_REVIEWED
                else "")
        console.print(r.text() + flag, highlight=False)
