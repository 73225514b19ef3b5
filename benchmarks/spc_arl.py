"""Small shifts on the simulated plant: X̄ with Western Electric rules vs EWMA vs tabular CUSUM.

One run prints, for one simulated plant with small step shifts of the process mean and no
tool-wear drift (``PlantConfig.process_shift_sigma`` / ``tool_wear_sigma``):

1. **Design** — each scheme's zero-state average run length for shifts of the plotted mean
   (standard errors of x̄): X̄ charts by simulation of the project's own rule code on N(δ, 1)
   points, EWMA and CUSUM by their Markov chains (``spc.timeweighted.ewma_arl`` /
   ``cusum_arl``; the EWMA also simulated with the exact, narrower first limits the chart uses).
   Two groups, each matched on the in-control ARL: **A** X̄ + Western Electric rules 1–4
   (ARL₀ ≈ 92) against an EWMA (λ = 0.2) and a CUSUM (k = 0.5) whose L and h are solved for the
   same ARL₀ (both designed for a shift of about one standard error); **B** X̄ with rule 1 only
   (ARL₀ ≈ 370) against the textbook EWMA λ = 0.1, L = 2.7 (Montgomery Example 9.2, ARL₀ 369) and
   CUSUM k = 0.5, h = 4.77 (ARL₀ ≈ 370); **C** as A, but EWMA λ = 0.4 and CUSUM k = 1 — designed
   for shifts of about two standard errors, the size of the plant's steps.
2. **Detection on the plant** — for every injected step shift (ground truth
   ``truth.process_shifts``, kind "step") with at least 3 subgroups inside its window, the
   subgroups from the window's first subgroup to each scheme's first signal (1 = at once): how
   many shifts were signalled inside their window, within 2 and within 4 subgroups, and the
   median delay with a miss counted as never (so a scheme that only catches the easy shifts does
   not look fast). Schemes run continuously over each series (machine × part × characteristic, in
   time order), restarting after every signal, as an operator would after reacting.
3. **False alarms on the plant** — every maximal stretch of in-control subgroups (truth: no
   step, no drift) is charted alone, from a fresh start, restarting after each signal: signals
   per in-control subgroup, and the implied ARL₀.

Phase I of every scheme is the same: μ₀ = x̿ and σ̂ = R̄/d2 from the series' in-control subgroups
(known from the ground truth, as an engineer would pick a clean baseline); series with fewer than
20 of them are skipped. Not a test: run by hand,
``python benchmarks/spc_arl.py [--machines 12] [--days 30] [--shift 0.5 1.5] [--hours 4 12] [--seed 7]``
(about a minute; ``--machines 36 --days 60`` gives ~90 shifts in ~4 minutes; ``--hours 12 48``
lets the steps last longer than the simulator's default 4–12 h, so that a late signal is not cut
off by the end of its window).

With subgroups of 5 a step of s process σ moves the plotted mean by s·√5 standard errors, so
the default steps of 0.5–1.5 σ are 1.1–3.4 standard errors: where the design ARLs of the three
schemes are close. ``--shift 0.25 0.75`` shows the small-shift region the time-weighted charts
are built for.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.signal import lfilter
from scipy.special import ndtr

from workbench import spc
from workbench.simulate import PlantConfig, simulate_plant
from workbench.spc import rules as rulebook
from workbench.spc import timeweighted as tw

SERIES = ["machine_id", "part_number", "characteristic"]
MIN_BASELINE = 20
MIN_WINDOW = 3


# =============================================================================================
# designs and their run lengths
# =============================================================================================

@dataclass(frozen=True)
class Scheme:
    name: str
    kind: str  # "xbar", "ewma", "cusum"
    rules: str = "rule1"
    lam: float = 0.0
    L: float = 0.0
    k: float = 0.5
    h: float = 0.0

    def design(self) -> str:
        if self.kind == "xbar":
            return "3σ limits, " + ("WE rules 1–4" if self.rules == "western_electric" else "rule 1 only")
        if self.kind == "ewma":
            return f"λ = {self.lam:g}, L = {self.L:.3f}"
        return f"k = {self.k:g}, h = {self.h:.3f}"


def _first_rule_signal(z: np.ndarray, rules: str) -> int | None:
    found = [int(ix[0]) for ix in rulebook.evaluate(z, rules=rules).values() if len(ix)]
    return min(found) if found else None


def xbar_arl_simulated(rules: str, shift: float, runs: int, rng: np.random.Generator) -> tuple[float, float]:
    """Mean run length (and its standard error) of the X̄ chart with ``rules`` on N(shift, 1) points."""
    lengths = []
    for _ in range(runs):
        z = rng.standard_normal(2000 if abs(shift) < 0.25 else 300) + shift
        first = _first_rule_signal(z, rules)
        while first is None:  # the rules are causal: extend the same sequence until one fires
            z = np.concatenate([z, rng.standard_normal(z.size) + shift])
            first = _first_rule_signal(z, rules)
        lengths.append(first + 1)
    arr = np.asarray(lengths, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1) / math.sqrt(arr.size))


def ewma_arl_exact_limits(lam: float, L: float, shift: float, runs: int,  # noqa: N803
                          rng: np.random.Generator) -> tuple[float, float]:
    """Mean run length of an EWMA with the exact time-varying limits, by simulation."""
    # The exact limits only shorten the run, so 25 asymptotic ARLs is a horizon no run outlives
    # (P(RL > 25 ARL) ≈ e⁻²⁵).
    horizon = int(25 * tw.ewma_arl(lam=lam, L=L, shift=shift, states=101)) + 50
    i = np.arange(1, horizon + 1)
    half = L * np.sqrt(lam / (2 - lam) * (1 - (1 - lam) ** (2 * i)))
    lengths = []
    for start in range(0, runs, 250):
        n = min(250, runs - start)
        z = lfilter([lam], [1, -(1 - lam)], rng.standard_normal((n, horizon)) + shift, axis=1)
        out = np.abs(z) > half
        if not out.any(axis=1).all():  # pragma: no cover - P < e⁻²⁰ for the designs used here
            raise RuntimeError("horizon too short for the EWMA simulation")
        lengths.append(out.argmax(axis=1) + 1)
    arr = np.concatenate(lengths).astype(float)
    return float(arr.mean()), float(arr.std(ddof=1) / math.sqrt(arr.size))


def solve(f: Callable[[float], float], target: float, lo: float, hi: float) -> float:
    """x in [lo, hi] with f(x) = target for an increasing f (bisection)."""
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) < target else (lo, mid)
    return (lo + hi) / 2


def markov_arl(s: Scheme, shift: float) -> float:
    if s.kind == "ewma":
        return tw.ewma_arl(lam=s.lam, L=s.L, shift=shift)
    if s.kind == "cusum":
        return tw.cusum_arl(k=s.k, h=s.h, shift=shift)
    if s.rules == "rule1":  # exact: geometric run length
        return 1.0 / float(ndtr(-3 - shift) + ndtr(shift - 3))
    return math.nan


# =============================================================================================
# the plant
# =============================================================================================

class Series:
    """One series' measurements in subgroup order, sliceable by subgroup position."""

    def __init__(self, data: pd.DataFrame, order: list) -> None:
        frames = dict(tuple(data.groupby("subgroup_id", sort=False)))
        self.frame = pd.concat([frames[sg] for sg in order], ignore_index=True)
        sizes = np.array([len(frames[sg]) for sg in order])
        self.offset = np.concatenate([[0], np.cumsum(sizes)])

    def rows(self, a: int, b: int) -> pd.DataFrame:
        return self.frame.iloc[self.offset[a]:self.offset[b]]


def run_with_restarts(chart, series: Series, a: int, b: int) -> list[int]:
    """Signal positions among subgroups [a, b) of a scheme that restarts after every signal."""
    signals, start = [], a
    while start < b:
        applied = chart.apply(series.rows(start, b))  # phase II from a fresh start
        if not applied.violations:
            break
        first = min(v.index for v in applied.violations)
        signals.append(start + first)
        start += first + 1
    return signals


def phase_one(reference: pd.DataFrame, s: Scheme):
    kw = {"value": "value", "subgroup": "subgroup_id", "time": "time"}
    if s.kind == "xbar":
        return spc.xbar_r(reference, rules=s.rules, **kw).location
    if s.kind == "ewma":
        return tw.ewma(reference, lam=s.lam, L=s.L, **kw)
    return tw.cusum(reference, k=s.k, h=s.h, **kw)


def stretches(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of every maximal run of True."""
    out, start = [], None
    for i, f in enumerate([*flags, False]):
        if f and start is None:
            start = i
        elif not f and start is not None:
            out.append((start, i))
            start = None
    return out


def score_plant(plant, schemes: list[Scheme]) -> tuple[dict[Scheme, dict], int]:
    q = plant.tables["quality_measurements"]
    truth = plant.truth.subgroups
    windows = plant.truth.process_shifts
    windows = windows[windows["kind"] == "step"]
    res: dict[Scheme, dict] = {s: {"delay": [], "false": 0, "ic": 0, "shift": []} for s in schemes}
    skipped = 0
    for key, data in q.groupby(SERIES):
        sub = truth[(truth[SERIES] == pd.Series(key, index=SERIES)).all(axis=1)].sort_values("time_start")
        order = sub["subgroup_id"].tolist()
        ok = ((sub["shift"] == 0) & (sub["drift"] == 0)).to_numpy()
        reference = data[data["subgroup_id"].isin(set(sub.loc[ok, "subgroup_id"]))]
        if reference["subgroup_id"].nunique() < MIN_BASELINE:
            skipped += 1
            continue
        series = Series(data[data["subgroup_id"].isin(set(order))], order)
        wins = windows[(windows[SERIES] == pd.Series(key, index=SERIES)).all(axis=1)]
        starts = sub["time_start"].to_numpy()
        for s in schemes:
            chart = phase_one(reference, s)
            signals = np.array(run_with_restarts(chart, series, 0, len(order)), dtype=int)
            for w in wins.itertuples():
                inside = np.flatnonzero((starts >= w.time_start) & (starts < w.time_end))
                if len(inside) < MIN_WINDOW:
                    continue
                after = signals[signals >= inside[0]]
                hit = after[0] if len(after) else None
                res[s]["shift"].append(abs(w.shift_sigma))
                late = hit is None or hit > inside[-1]
                res[s]["delay"].append(np.inf if late else hit - inside[0] + 1)
            for a, b in stretches(ok):
                res[s]["ic"] += b - a
                res[s]["false"] += len(run_with_restarts(chart, series, a, b))
    return res, skipped


# =============================================================================================
# main
# =============================================================================================

def _counted(delay: np.ndarray) -> str:
    return f"{np.isfinite(delay).sum()}/{delay.size}"


def _median(delay: np.ndarray) -> str:
    """Median subgroups to detection, a miss counting as never (∞ when half or more are missed)."""
    m = float(np.median(delay)) if delay.size else math.nan
    return "∞" if m == math.inf else f"{m:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=12)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--shift", type=float, nargs=2, default=(0.5, 1.5), metavar=("LOW", "HIGH"),
                        help="range of the step shifts in process sigmas")
    parser.add_argument("--hours", type=float, nargs=2, default=(4.0, 12.0), metavar=("LOW", "HIGH"),
                        help="range of the steps' durations in hours (cut at the end of the work order)")
    parser.add_argument("--runs", type=int, default=4000, help="simulated runs per X̄ ARL value")
    args = parser.parse_args()
    rng = np.random.default_rng(2024)
    t0 = time.perf_counter()

    # -- designs ----------------------------------------------------------------------------
    we0, we0_se = xbar_arl_simulated("western_electric", 0.0, args.runs, rng)

    def cusum_h(k: float) -> float:
        return solve(lambda h: tw.cusum_arl(k=k, h=h, states=200), we0, 0.5, 6.0)

    def ewma_l(lam: float) -> float:
        return solve(lambda width: tw.ewma_arl(lam=lam, L=width, states=151), we0, 1.5, 3.5)

    xbar_we = Scheme("X̄ + WE", "xbar", rules="western_electric")
    groups = {
        "A (ARL₀ matched to X̄ + WE; EWMA and CUSUM designed for δ ≈ 1)":
            [xbar_we, Scheme("EWMA", "ewma", lam=0.2, L=ewma_l(0.2)),
             Scheme("CUSUM", "cusum", h=cusum_h(0.5))],
        "B (ARL₀ ≈ 370: rule 1 alone and the textbook designs)":
            [Scheme("X̄ rule 1", "xbar"), Scheme("EWMA", "ewma", lam=0.1, L=2.7),
             Scheme("CUSUM", "cusum", h=4.77)],
        "C (ARL₀ matched to X̄ + WE; EWMA and CUSUM designed for δ ≈ 2, the plant's steps)":
            [xbar_we, Scheme("EWMA", "ewma", lam=0.4, L=ewma_l(0.4)),
             Scheme("CUSUM", "cusum", k=1.0, h=cusum_h(1.0))],
    }
    shifts = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0]
    n = math.sqrt(5)
    print(f"Design: zero-state ARL (subgroups to the first signal) for a shift δ of the plotted mean, in "
          f"standard errors of x̄.\nThe plant's steps of {args.shift[0]:g}–{args.shift[1]:g} process σ are "
          f"δ = {args.shift[0] * n:.2f}–{args.shift[1] * n:.2f} for subgroups of 5.")
    print("  X̄ rows: simulation of the project's rule code (± s.e.), rule 1 alone exact; EWMA and CUSUM:"
          " Markov chain\n  (EWMA 'exact limits': simulation with the chart's time-varying limits).")
    print(f"\n    {'':35s}" + "".join(f"{'δ = ' + format(d, 'g'):>12s}" for d in shifts))
    we_cells = [(we0, we0_se)] + [xbar_arl_simulated(xbar_we.rules, d, args.runs, rng) for d in shifts[1:]]
    for title, schemes in groups.items():
        print(f"  group {title}")
        for s in schemes:
            if s is xbar_we:
                row = "".join(f"{f'{m:.2f}±{e:.2f}':>12s}" for m, e in we_cells)
            else:
                row = "".join(f"{markov_arl(s, d):12.2f}" for d in shifts)
            print(f"    {s.name:10s} {s.design():24s}{row}")
            if s.kind == "ewma":
                exact = [ewma_arl_exact_limits(s.lam, s.L, d, 4000, rng) for d in shifts]
                print(f"    {'':10s} {'  exact limits (sim.)':24s}"
                      + "".join(f"{f'{m:.2f}±{e:.2f}':>12s}" for m, e in exact))

    # -- the plant --------------------------------------------------------------------------
    cfg = PlantConfig(seed=args.seed, n_machines=args.machines, n_lines=max(1, min(3, args.machines)),
                      days=args.days, telemetry=False, process_shift_sigma=tuple(args.shift),
                      process_shift_hours=tuple(args.hours),
                      tool_wear_sigma=(0.0, 0.0))
    plant = simulate_plant(cfg)
    q = plant.tables["quality_measurements"]
    steps = plant.truth.process_shifts
    steps = steps[steps["kind"] == "step"]
    unique = list(dict.fromkeys(s for schemes in groups.values() for s in schemes))
    res, skipped = score_plant(plant, unique)
    scored = res[xbar_we]
    print(f"\nPlant: {args.machines} machines × {args.days} days, seed {args.seed}, steps "
          f"{args.shift[0]:g}–{args.shift[1]:g} σ, no tool wear: {q['subgroup_id'].nunique():,} subgroups "
          f"of 5 in {q.groupby(SERIES).ngroups} series ({skipped} skipped: < {MIN_BASELINE} in-control "
          f"subgroups), {len(steps)} step shifts,\n{len(scored['shift'])} of them with ≥ {MIN_WINDOW} "
          f"subgroups in their window (median size {np.median(scored['shift']):.2f} σ), "
          f"{scored['ic']:,} in-control subgroups. Delays in subgroups from the step's first subgroup "
          "(1 = at once).")
    print(f"\n    {'':35s}{' all steps ':-^31s} {' steps ≤ 1σ ':-^17s} {' in control ':-^28s}")
    print(f"    {'scheme':10s} {'design':24s}{'in window':>10s}{'≤ 2':>6s}{'≤ 4':>6s}{'median':>9s}"
          f"{'in window':>10s}{'median':>8s}{'alarms':>9s}{'per subgroup':>13s}{'ARL₀':>7s}")
    for title, schemes in groups.items():
        print(f"  group {title.split(' (')[0]}")
        for s in schemes:
            r = res[s]
            delay = np.array(r["delay"], dtype=float)  # ∞: not signalled inside the window
            small = np.array(r["shift"]) <= 1.0
            rate = r["false"] / r["ic"] if r["ic"] else math.nan
            arl0 = 1 / rate if rate else math.inf
            print(f"    {s.name:10s} {s.design():24s}{_counted(delay):>10s}{(delay <= 2).sum():>6d}"
                  f"{(delay <= 4).sum():>6d}{_median(delay):>9s}{_counted(delay[small]):>10s}"
                  f"{_median(delay[small]):>8s}{r['false']:>9d}{rate:13.4f}{arl0:7.0f}")
    # Paired on the same shifts (the delays are listed in the same order for every scheme):
    # the median hides how often one scheme is ahead when windows are short and misses common.
    print("\n  paired with the X̄ chart of the same group, shift by shift (a miss counts as never):")
    for title, schemes in groups.items():
        base = np.array(res[schemes[0]]["delay"], dtype=float)
        for s in schemes[1:]:
            other = np.array(res[s]["delay"], dtype=float)
            both = np.isfinite(base) & np.isfinite(other)
            seen = np.isfinite(base) | np.isfinite(other)
            print(f"    group {title.split(' (')[0]} {s.name:6s} {s.design():22s} sooner on "
                  f"{(other < base).sum():3d}, same {((other == base) & seen).sum():3d}, later "
                  f"{(other > base).sum():3d} of {seen.sum()} shifts either caught; mean delay where both "
                  f"caught {other[both].mean():.2f} vs {base[both].mean():.2f} subgroups")
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
