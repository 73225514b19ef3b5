"""Scrap anomalies: hours where a machine scraps a part far more than it usually does, with the
likely causes ranked by the evidence in the data.

Two detectors share one interface (:class:`ScrapAnomalyDetector`, ``method=``):

``binomial`` (the default)
    Each machine × part has a baseline reject rate learned from the training hours (shrunk towards
    the part's plant-wide rate when the pair has little history). An hour is surprising when its
    rejects are improbable under that rate: the binomial tail ``P(X ≥ rejects | produced,
    baseline)``; so are three-hour stretches, which catch a climb no single hour shows. The score
    is ``-log10`` of the smaller tail probability, so 3 means "one in a thousand".
``isolation_forest``
    scikit-learn's IsolationForest over the hour's scrap rates by category and its context, for
    comparison: it finds *unusual* hours, including unusually good ones and hours of little
    production, so it is filtered to hours that scrapped more than the baseline.

``tests/ml/test_scrap_truth.py`` scores both against the simulator's injected bad material lots and
tool end-of-life windows on plants neither was tuned on (seeds 11, 13, 17; 8 machines × 6 weeks,
3 weeks judged): both find 29 of 29 bad-lot windows; of the tool end-of-life windows whose scrap
actually rose, binomial finds 56 of 59 and IsolationForest 53; IsolationForest is the more precise
(178 of 179 episodes on a true window, binomial 100 of 106). Binomial is the default for the
recall and because its score is a probability with an expected count beside it ("22 rejects where
4 were expected") that a quality engineer can check by hand.

Hypotheses (:func:`hypotheses`) are stated with their numbers and ranked by an evidence score in
[0, 1]: *material* (the rejects are material defects, and the same part scraps on other machines
at the same time: a material lot), *tool wear* (many running minutes on the tool and dimension
rejects), *SPC drift* (the part's characteristic mean far from nominal in those hours),
*changeover* (the episode starts soon after a setup) and *operator change* (another operator
than in the hours before). A hypothesis without evidence is not listed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import binom
from sklearn.base import BaseEstimator
from sklearn.ensemble import IsolationForest

from workbench.errors import MLError

DETECTOR = "scrap"
#: Scrap reason codes that mean "a dimension out of tolerance" (the tool-wear signature).
DIMENSION_CODES: tuple[str, ...] = ("QH-DIM",)
MATERIAL_CATEGORY = "Material"
ANOMALY_COLUMNS: tuple[str, ...] = (
    "anomaly_id", "machine_id", "part_number", "time_start", "time_end", "hours", "produced", "rejects",
    "expected", "score", "severity", "top_cause", "hypotheses")
_NEEDED = ("machine_id", "part_number", "hour", "produced", "rejects")


def scrap_mix(scrap_events: pd.DataFrame, *,
              dimension_codes: Sequence[str] = DIMENSION_CODES) -> pd.DataFrame:
    """Material and dimension scrap per machine × part × UTC hour (one group-by over the table).

    Returns
    -------
    DataFrame
        ``machine_id, part_number, hour, material_qty, dimension_qty``.
    """
    missing = [c for c in ("time", "machine_id", "part_number", "quantity") if c not in scrap_events.columns]
    if missing:
        raise MLError(f"scrap_events: missing column(s) {', '.join(missing)}")
    qty = pd.to_numeric(scrap_events["quantity"], errors="coerce").fillna(0).to_numpy(float)
    cat = scrap_events.get("scrap_category", pd.Series(index=scrap_events.index, dtype=object)).astype(str)
    reason = scrap_events.get("scrap_reason", pd.Series(index=scrap_events.index, dtype=object)).astype(str)
    frame = pd.DataFrame({
        "machine_id": scrap_events["machine_id"].astype(str).to_numpy(),
        "part_number": scrap_events["part_number"].astype(str).to_numpy(),
        "hour": pd.to_datetime(scrap_events["time"], utc=True).dt.floor("h").to_numpy(),
        "material_qty": qty * (cat == MATERIAL_CATEGORY).to_numpy(),
        "dimension_qty": qty * reason.isin(list(dimension_codes)).to_numpy()})
    return frame.groupby(["machine_id", "part_number", "hour"], as_index=False).sum()


def _check(hourly: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in _NEEDED if c not in hourly.columns]
    if missing:
        raise MLError(f"hourly features: missing column(s) {', '.join(missing)} "
                      "(build them with workbench.ml.features.hourly_features)")
    out = hourly.copy()
    out["hour"] = pd.to_datetime(out["hour"], utc=True)
    for col in ("produced", "rejects"):
        out[col] = pd.to_numeric(out[col], errors="coerce")
        bad = out[col].isna() | (out[col] < 0)
        if bad.any():
            raise MLError(f"hourly features: {int(bad.sum())} row(s) with a missing or negative {col} "
                          f"(first: {out.loc[bad, ['machine_id', 'hour']].iloc[0].to_dict()})")
    if (out["rejects"] > out["produced"]).any():
        raise MLError("hourly features: rejects exceed produced in "
                      f"{int((out['rejects'] > out['produced']).sum())} row(s)")
    return out.sort_values(["machine_id", "part_number", "hour"]).reset_index(drop=True)


@dataclass(frozen=True)
class _Baseline:
    pair_rate: pd.Series  # (machine_id, part_number) -> reject rate
    part_rate: pd.Series  # part_number -> reject rate
    plant_rate: float
    material_share: pd.Series  # (machine_id, part_number) -> share of rejects that are material
    dimension_share: pd.Series
    tool_life_min: pd.Series  # machine_id -> 90th percentile of tool_run_min in training


class ScrapAnomalyDetector(BaseEstimator):
    """Hours of surprising scrap per machine × part (see the module docstring).

    Parameters
    ----------
    method : {"binomial", "isolation_forest"}
        The detector.
    alpha : float
        Tail probability below which an hour (or a three-hour stretch) is flagged (binomial).
    prior_strength : float
        Cycles of the part's plant-wide rate mixed into a machine-part baseline (shrinkage).
    contamination : float
        Share of training hours IsolationForest treats as anomalous.
    min_produced : int
        Hours with fewer cycles are not judged on their own (too few to tell).
    random_state : int
        Seed of IsolationForest.
    """

    def __init__(self, *, method: str = "binomial", alpha: float = 1e-3, prior_strength: float = 500.0,
                 contamination: float = 0.02, min_produced: int = 5, random_state: int = 0) -> None:
        self.method = method
        self.alpha = alpha
        self.prior_strength = prior_strength
        self.contamination = contamination
        self.min_produced = min_produced
        self.random_state = random_state

    def fit(self, hourly: pd.DataFrame, y: None = None, *,
            mix: pd.DataFrame | None = None) -> ScrapAnomalyDetector:
        """Learn the baselines from training hours (``mix`` from :func:`scrap_mix`, optional)."""
        if self.method not in ("binomial", "isolation_forest"):
            raise MLError("ScrapAnomalyDetector: method must be 'binomial' or 'isolation_forest', "
                          f"got {self.method!r}")
        h = _with_mix(_check(hourly), mix)
        if h["produced"].sum() <= 0:
            raise MLError("ScrapAnomalyDetector: the training hours produced nothing")
        sums = ["produced", "rejects", "material_qty", "dimension_qty"]
        pair = h.groupby(["machine_id", "part_number"])[sums].sum()
        part = h.groupby("part_number")[["produced", "rejects"]].sum()
        plant = float(h["rejects"].sum() / h["produced"].sum())
        part_rate = (part["rejects"] + self.prior_strength * plant) / (part["produced"] + self.prior_strength)
        prior = part_rate.reindex(pair.index.get_level_values("part_number")).to_numpy()
        pair_rate = (pair["rejects"] + self.prior_strength * prior) / (pair["produced"] + self.prior_strength)
        with np.errstate(invalid="ignore", divide="ignore"):
            material = (pair["material_qty"] / pair["rejects"]).fillna(0.0)
            dimension = (pair["dimension_qty"] / pair["rejects"]).fillna(0.0)
        tool = (h.dropna(subset=["tool_run_min"]).groupby("machine_id")["tool_run_min"].quantile(0.9)
                if "tool_run_min" in h.columns else pd.Series(dtype=float))
        self.baseline_ = _Baseline(pair_rate=pair_rate, part_rate=part_rate, plant_rate=plant,
                                   material_share=material, dimension_share=dimension, tool_life_min=tool)
        # ISO text: the registry's skops format holds text, not Timestamps.
        last = h["hour"].max() + pd.Timedelta(hours=1)
        self.training_range_ = (h["hour"].min().isoformat(), last.isoformat())
        if self.method == "isolation_forest":
            x = _forest_features(h, self.baseline_)
            self.forest_ = IsolationForest(contamination=self.contamination, random_state=self.random_state,
                                           n_jobs=1).fit(x)
        return self

    def _expected_rate(self, h: pd.DataFrame) -> np.ndarray:
        b = self.baseline_
        idx = pd.MultiIndex.from_frame(h[["machine_id", "part_number"]])
        rate = b.pair_rate.reindex(idx).to_numpy()
        fallback = b.part_rate.reindex(h["part_number"]).fillna(b.plant_rate).to_numpy()
        return np.clip(np.where(np.isnan(rate), fallback, rate), 1e-6, 1 - 1e-6)

    def score(self, hourly: pd.DataFrame, *, mix: pd.DataFrame | None = None) -> pd.DataFrame:
        """Every hour with its expected rejects, score and flag.

        Returns
        -------
        DataFrame
            The hourly rows plus ``expected``, ``score`` (-log10 tail probability, binomial; the
            negated IsolationForest score otherwise) and ``flagged``.
        """
        if not hasattr(self, "baseline_"):
            raise MLError("ScrapAnomalyDetector: call fit before score")
        h = _with_mix(_check(hourly), mix)
        rate = self._expected_rate(h)
        n = h["produced"].to_numpy(float)
        r = h["rejects"].to_numpy(float)
        h["expected"] = n * rate
        if self.method == "binomial":
            hour_p = binom.sf(r - 1, n, rate)
            # Three-hour sums per machine-part (the hour and the two before it): a slow climb.
            g = h.groupby(["machine_id", "part_number"], sort=False)
            n3 = g["produced"].transform(lambda s: s.rolling(3, min_periods=1).sum()).to_numpy(float)
            r3 = g["rejects"].transform(lambda s: s.rolling(3, min_periods=1).sum()).to_numpy(float)
            e3 = g["expected"].transform(lambda s: s.rolling(3, min_periods=1).sum()).to_numpy(float)
            with np.errstate(invalid="ignore", divide="ignore"):
                rate3 = np.clip(np.where(n3 > 0, e3 / n3, rate), 1e-6, 1 - 1e-6)
            win_p = binom.sf(r3 - 1, n3, rate3)
            judged = n >= self.min_produced
            p = np.where(judged, np.minimum(hour_p, win_p), win_p)
            h["score"] = -np.log10(np.clip(p, 1e-300, 1.0))
            h["flagged"] = (p < self.alpha) & (r > h["expected"])
        else:
            x = _forest_features(h, self.baseline_)
            h["score"] = -self.forest_.score_samples(x)
            h["flagged"] = (self.forest_.predict(x) == -1) & (r > h["expected"]) & (n >= self.min_produced)
        return h

    def detect(self, hourly: pd.DataFrame, *, mix: pd.DataFrame | None = None, merge_gap_h: int = 1,
               model_version: str = "0") -> pd.DataFrame:
        """Flagged hours merged into episodes per machine × part, with ranked cause hypotheses.

        Hours at most ``merge_gap_h`` hours apart join one episode.

        Returns
        -------
        DataFrame
            Columns :data:`ANOMALY_COLUMNS`; ``hypotheses`` is a list of ``(cause, evidence, text)``
            tuples, most likely first; ``top_cause`` the first cause or ``unexplained``.
        """
        scored = self.score(hourly, mix=mix)
        flagged = scored[scored["flagged"]].copy()
        if flagged.empty:
            return pd.DataFrame(columns=list(ANOMALY_COLUMNS))
        gap = flagged.groupby(["machine_id", "part_number"])["hour"].diff() > pd.Timedelta(hours=merge_gap_h)
        new = flagged["machine_id"].ne(flagged["machine_id"].shift()) | flagged["part_number"].ne(
            flagged["part_number"].shift()) | gap
        flagged["episode"] = new.cumsum()
        rows = []
        for _, ep in flagged.groupby("episode", sort=True):
            first = ep.iloc[0]
            start, end = ep["hour"].min(), ep["hour"].max() + pd.Timedelta(hours=1)
            hyps = hypotheses(ep, scored=scored, flagged=flagged, baseline=self.baseline_)
            rows.append({
                "anomaly_id": _anomaly_id(first["machine_id"], first["part_number"], start, model_version),
                "machine_id": first["machine_id"], "part_number": first["part_number"],
                "time_start": start, "time_end": end, "hours": len(ep),
                "produced": float(ep["produced"].sum()), "rejects": float(ep["rejects"].sum()),
                "expected": float(ep["expected"].sum()), "score": float(ep["score"].max()),
                "severity": "high" if ep["score"].max() >= 6 else "medium",
                "top_cause": hyps[0][0] if hyps else "unexplained", "hypotheses": hyps})
        return pd.DataFrame(rows, columns=list(ANOMALY_COLUMNS))


def _with_mix(h: pd.DataFrame, mix: pd.DataFrame | None) -> pd.DataFrame:
    keys = ["machine_id", "part_number", "hour"]
    if mix is None:
        for col in ("material_qty", "dimension_qty"):
            if col not in h.columns:
                from_features = col == "material_qty" and "scrap_material_qty" in h
                h[col] = h["scrap_material_qty"] if from_features else 0.0
        return h
    m = mix.copy()
    m["hour"] = pd.to_datetime(m["hour"], utc=True)
    h = h.drop(columns=[c for c in ("material_qty", "dimension_qty") if c in h.columns])
    h = h.merge(m[[*keys, "material_qty", "dimension_qty"]], on=keys, how="left")
    h[["material_qty", "dimension_qty"]] = h[["material_qty", "dimension_qty"]].fillna(0.0)
    return h


def _forest_features(h: pd.DataFrame, b: _Baseline) -> np.ndarray:
    n = h["produced"].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        cols = [h["rejects"] / n, h["material_qty"] / n, h["dimension_qty"] / n]
    x = np.column_stack([np.nan_to_num(np.asarray(c, float)) for c in cols] + [
        np.nan_to_num(h.get("tool_run_min", pd.Series(0.0, index=h.index)).to_numpy(float)) / 1000.0,
        np.nan_to_num(h.get("spc_abs_dev_tol", pd.Series(0.0, index=h.index)).to_numpy(float))])
    return x


def _anomaly_id(machine: str, part: str, start: pd.Timestamp, version: str) -> str:
    key = f"ml_anomalies|{DETECTOR}|{machine}|{part}|{int(start.value)}|{version}"
    return hashlib.md5(key.encode(), usedforsecurity=False).hexdigest()


def hypotheses(episode: pd.DataFrame, *, scored: pd.DataFrame, flagged: pd.DataFrame,
               baseline: _Baseline) -> list[tuple[str, float, str]]:
    """Cause hypotheses of one episode, most evidence first: ``(cause, evidence 0..1, sentence)``."""
    machine, part = episode["machine_id"].iloc[0], episode["part_number"].iloc[0]
    start, end = episode["hour"].min(), episode["hour"].max() + pd.Timedelta(hours=1)
    rejects = float(episode["rejects"].sum())
    out: list[tuple[str, float, str]] = []
    key = (machine, part)
    usual_mat = float(baseline.material_share.get(key, np.nan))
    usual_dim = float(baseline.dimension_share.get(key, np.nan))

    material = float(episode["material_qty"].sum())
    two_h = pd.Timedelta(hours=2)
    near = (flagged["hour"] >= start - two_h) & (flagged["hour"] < end + two_h)
    others = flagged[(flagged["part_number"] == part) & (flagged["machine_id"] != machine) & near]
    other_machines = sorted(others["machine_id"].unique())
    if rejects > 0 and material > 0:
        share = material / rejects
        excess = share - (0.0 if np.isnan(usual_mat) else usual_mat)
        evidence = float(np.clip(excess, 0, 1)) * 0.6 + (0.4 if other_machines else 0.0)
        if evidence > 0.1:
            text = (f"material: {material:.0f} of {rejects:.0f} rejects are material defects "
                    f"(usually {usual_mat:.0%})" if not np.isnan(usual_mat) else
                    f"material: {material:.0f} of {rejects:.0f} rejects are material defects")
            if other_machines:
                text += (f"; {part} scraps on {', '.join(other_machines)} at the same time — check the "
                         "material lot")
            out.append(("material", round(evidence, 3), text))

    dimension = float(episode["dimension_qty"].sum())
    tool_min = float(episode["tool_run_min"].iloc[0]) if "tool_run_min" in episode else np.nan
    life = float(baseline.tool_life_min.get(machine, np.nan))
    known = not (np.isnan(tool_min) or np.isnan(life) or life <= 0)
    age = float(np.clip(tool_min / life, 0, 1.5)) if known else 0.0
    # 0 for a tool in the first half of its usual life, 1 at or past its usual end.
    old_tool = float(np.clip((age - 0.5) / 0.5, 0, 1))
    if rejects > 0 and dimension > 0:
        share = dimension / rejects
        excess = share - (0.0 if np.isnan(usual_dim) else usual_dim)
        evidence = float(np.clip(excess, 0, 1)) * 0.5 + 0.5 * old_tool
        if evidence > 0.1:
            text = f"tool wear: {dimension:.0f} of {rejects:.0f} rejects are dimensions out of tolerance"
            if not np.isnan(tool_min):
                text += f"; the tool has run {tool_min:,.0f} min"
                if not np.isnan(life):
                    text += f" (tools on {machine} usually run up to ~{life:,.0f} min)"
            out.append(("tool wear", round(evidence, 3), text))

    if "spc_abs_dev_tol" in episode and episode["spc_abs_dev_tol"].notna().any():
        dev = float(episode["spc_abs_dev_tol"].max())
        if dev >= 0.5:
            # A worn tool drifts the characteristic too: then the drift is its symptom, not a cause
            # of its own, and ranks below it.
            evidence = float(np.clip((dev - 0.4) / 0.6, 0, 1)) * (1.0 - 0.6 * old_tool)
            text = (f"SPC drift: the part's measured mean reached {dev:.0%} of the half tolerance "
                    "from nominal")
            if old_tool > 0.5:
                text += " (consistent with the worn tool)"
            out.append(("SPC drift", round(evidence, 3), text))

    if "min_since_changeover" in episode:
        since = float(episode["min_since_changeover"].iloc[0])
        if not np.isnan(since) and since < 120:
            out.append(("changeover", round(float(np.clip(1 - since / 120, 0, 1)) * 0.8, 3),
                        f"changeover: the episode starts {since:.0f} min after a setup"))

    if "operator_id" in episode and "operator_id" in scored:
        before = scored[(scored["machine_id"] == machine) & (scored["hour"] < start)
                        & (scored["hour"] >= start - pd.Timedelta(hours=8))]["operator_id"].dropna()
        now = episode["operator_id"].dropna()
        if len(before) and len(now) and now.iloc[0] not in set(before):
            earlier = ", ".join(sorted(set(before)))
            out.append(("operator change", 0.3,
                        f"operator change: {now.iloc[0]} took over (before: {earlier})"))
    return sorted(out, key=lambda h: -h[1])
