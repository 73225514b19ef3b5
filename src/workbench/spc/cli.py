"""``workbench spc …`` — control limits and capability from a CSV file.

This module is the I/O edge of :mod:`workbench.spc`: it reads the file, calls the library and
prints a table (or JSON with ``--json``). Errors are one message on stderr and exit code 2.
"""

from __future__ import annotations

import json
import math
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.table import Table

from workbench.cliutil import console, err_console, friendly, read_csv
from workbench.spc.capability import CI_METHODS, Capability, capability
from workbench.spc.charts import ChartPair, ControlChart, control_chart

app = typer.Typer(help="Statistical process control: control limits and capability from a CSV file.",
                  no_args_is_help=True, add_completion=False)

class ChartName(StrEnum):
    """Charts the ``limits`` command draws."""

    xbar_r = "xbar-r"
    xbar_s = "xbar-s"
    imr = "imr"
    p = "p"
    np = "np"
    c = "c"
    u = "u"
    ewma = "ewma"
    cusum = "cusum"


def _exclusions(df: pd.DataFrame, subgroup: str | None, wanted: list[str]) -> list[Any]:
    """Map ids typed on the command line to the ids as read from the file."""
    if not wanted:
        return []
    ids = df[subgroup].unique() if subgroup and subgroup in df.columns else df.index
    by_text = {str(i): i for i in ids}
    return [by_text.get(w, w) for w in wanted]


def _number(x: float | list[float]) -> str:
    if isinstance(x, list):
        lo, hi = min(x), max(x)
        return f"{lo:.6g}" if lo == hi else f"varies {lo:.6g} … {hi:.6g}"
    return f"{x:.6g}"


def _chart_table(chart: ControlChart) -> Table:
    s = chart.summary()
    table = Table(title=f"{s['chart']} chart (phase {s['phase']}, {s['points']} points)",
                  title_justify="left")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("center", _number(s["center"]))
    table.add_row("LCL", _number(s["lcl"]))
    table.add_row("UCL", _number(s["ucl"]))
    table.add_row("sigma", f"{s['sigma']:.6g}")
    table.add_row("sigma method", s["sigma_method"])
    table.add_row("rules", ", ".join(s["rules"]) or "none")
    if s["excluded"]:
        table.add_row("excluded", ", ".join(map(str, s["excluded"])))
    return table


def _violations_table(charts: list[ControlChart]) -> Table | None:
    rows = [v for chart in charts for v in chart.violations]
    if not rows:
        return None
    table = Table(title=f"{len(rows)} rule violation(s)", title_justify="left")
    for col in ("chart", "rule", "subgroup", "what"):
        table.add_column(col)
    for v in rows:
        table.add_row(v.chart, v.rule, str(v.subgroup), v.message.split(": ", 1)[-1])
    return table


@app.command("limits")
@friendly
def limits(
    file: Annotated[Path, typer.Argument(help="CSV file, one row per measurement or sample.",
                                         exists=True, dir_okay=False)],
    chart: Annotated[ChartName, typer.Option(help="Chart type.", case_sensitive=False)],
    value: Annotated[str, typer.Option(help="Measurement column (defectives/defects for p, np, c, u).")],
    subgroup: Annotated[str | None, typer.Option(
        help="Subgroup column (required for xbar-r, xbar-s).")] = None,
    size: Annotated[str | None, typer.Option(help="Sample size column (p, np, u; optional for c).")] = None,
    time: Annotated[str | None, typer.Option(help="Column ordering the subgroups in time.")] = None,
    rules: Annotated[str, typer.Option(help="western_electric, nelson, rule1 or none.")] = "western_electric",
    nsigmas: Annotated[float, typer.Option(help="Width of the limits in standard errors.")] = 3.0,
    exclude: Annotated[list[str] | None, typer.Option(
        help="Subgroup left out of the estimates (repeat the option for several).")] = None,
    iterate: Annotated[bool, typer.Option(
        help="Drop points beyond the limits and recompute until none is left.")] = False,
    min_subgroups: Annotated[int, typer.Option(help="Fewest subgroups to estimate from.")] = 10,
    lam: Annotated[float | None, typer.Option(help="EWMA smoothing constant λ (default 0.2).")] = None,
    ewma_l: Annotated[float | None, typer.Option("--ewma-l", help="EWMA limit width L (default 3).")] = None,
    k: Annotated[float | None, typer.Option(
        help="CUSUM reference value k, in standard errors (default 0.5).")] = None,
    h: Annotated[float | None, typer.Option(
        help="CUSUM decision interval h, in standard errors (default 5).")] = None,
    sep: Annotated[str, typer.Option(help="Field separator: ',' ';' tab or space.")] = ",",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Phase I control limits: center, LCL/UCL, sigma and how it was estimated, violations."""
    df = read_csv(file, sep)
    design = {name: v for name, v in (("lam", lam), ("L", ewma_l), ("k", k), ("h", h)) if v is not None}
    if design and chart.value not in ("ewma", "cusum"):
        raise typer.BadParameter(f"--{', --'.join(design)} set the design of the ewma and cusum charts, "
                                 f"not of {chart.value}")
    time_weighted = chart.value in ("ewma", "cusum")
    result = control_chart(df, chart=chart.value, value=value, subgroup=subgroup, size=size,
                           time=time, rules=rules, nsigmas=3.0 if time_weighted else nsigmas,
                           exclude=_exclusions(df, subgroup, exclude or []),
                           iterate=False if time_weighted else iterate, min_subgroups=min_subgroups,
                           params=design or None)
    charts = list(result) if isinstance(result, ChartPair) else [result]
    if as_json:
        typer.echo(json.dumps({"file": str(file), "chart": chart.value,
                               "charts": [c.summary() for c in charts]}, indent=2, default=str))
        return
    for c in charts:
        console.print(_chart_table(c))
    violations = _violations_table(charts)
    if violations is None:
        console.print("[green]No rule violations.[/]")
    else:
        console.print(violations)


def _fmt(x: float | None, digits: int = 4) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}g}"


def _ci(interval: tuple[float, float] | None) -> str:
    return "—" if interval is None else f"{interval[0]:.3f} … {interval[1]:.3f}"


def _capability_table(cap: Capability) -> Table:
    level = f"{cap.confidence_level:.0%}"
    specs = ", ".join(f"{k} = {v:g}" for k, v in (("LSL", cap.lsl), ("USL", cap.usl),
                                                  ("target", cap.target)) if v is not None)
    table = Table(title=f"Capability (n = {cap.n}, mean = {cap.mean:.6g}; {specs})",
                  title_justify="left",
                  caption=f"within σ = {cap.sigma_within:.6g} ({cap.within_method}); overall σ = "
                          f"{cap.sigma_overall:.6g} ({cap.overall_method})",
                  caption_justify="left")
    table.add_column("index")
    table.add_column("value", justify="right")
    table.add_column(f"{level} interval", justify="right")
    table.add_column("sigma")
    for name, val, ci, sig in (
        ("Cp", cap.cp, cap.cp_ci, "within"), ("Cpl", cap.cpl, None, "within"),
        ("Cpu", cap.cpu, None, "within"), ("Cpk", cap.cpk, cap.cpk_ci, "within"),
        ("Cpm", cap.cpm, cap.cpm_ci, "within"), ("Pp", cap.pp, cap.pp_ci, "overall"),
        ("Ppl", cap.ppl, None, "overall"), ("Ppu", cap.ppu, None, "overall"),
        ("Ppk", cap.ppk, cap.ppk_ci, "overall"),
    ):
        table.add_row(name, _fmt(val), _ci(ci), sig)
    return table


@app.command("capability")
@friendly
def capability_cmd(
    file: Annotated[Path, typer.Argument(help="CSV file, one row per measurement.", exists=True,
                                         dir_okay=False)],
    value: Annotated[str, typer.Option(help="Measurement column.")],
    subgroup: Annotated[str | None, typer.Option(help="Subgroup column (else individual values).")] = None,
    lsl: Annotated[float | None, typer.Option(help="Lower specification limit.")] = None,
    usl: Annotated[float | None, typer.Option(help="Upper specification limit.")] = None,
    target: Annotated[float | None, typer.Option(help="Target for Cpm (default mid-spec).")] = None,
    within: Annotated[str | None, typer.Option(
        help="Within sigma: range (R̄/d2), stdev (S̄/c4) or moving_range (MR̄/d2).")] = None,
    time: Annotated[str | None, typer.Option(help="Column ordering the values in time.")] = None,
    confidence: Annotated[float, typer.Option(help="Confidence level of the intervals.")] = 0.95,
    method: Annotated[str, typer.Option(
        help="normal, auto (a fitted distribution or transformation when the data are not normal), "
             "box_cox, johnson, weibull or lognormal.")] = "normal",
    sep: Annotated[str, typer.Option(help="Field separator: ',' ';' tab or space.")] = ",",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Cp, Cpk, Cpm, Pp, Ppk with confidence intervals, the sigma estimators named, the normality
    test and — for non-normal data — the method the indices rest on."""
    df = read_csv(file, sep)
    cap = capability(df, value=value, subgroup=subgroup, lsl=lsl, usl=usl, target=target,
                     within=within, time=time, confidence_level=confidence, method=method)
    if as_json:
        typer.echo(json.dumps({"file": str(file), **cap.summary()}, indent=2, default=str))
        return
    console.print(_capability_table(cap))
    console.print(f"Method: {cap.method} — {cap.method_reason}", highlight=False)
    if cap.normality is not None:
        console.print(f"Normality: {cap.normality.describe()}", highlight=False)
    for warning in cap.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    console.print(f"Intervals: Cp/Pp {CI_METHODS['cp']}; Cpk/Ppk {CI_METHODS['cpk']}; "
                  f"Cpm {CI_METHODS['cpm']}.", highlight=False)


if __name__ == "__main__":  # pragma: no cover
    app()
