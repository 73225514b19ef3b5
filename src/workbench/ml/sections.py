"""What the daily report and the e-mail say about the models, computed once per day.

Three sections, each a :class:`MLSection` that either shows its table with the confidence it
deserves or says why it is not shown — never a number a model produced without enough confidence:

:func:`uncoded_stops` — "likely causes of uncoded stops"
    The day's stops without a reason code with the root-cause champion's predicted category, its
    calibrated confidence and the top SHAP contributions; plus coded stops whose entered code
    disagrees with a confident prediction (suspect codes). Not shown without a champion or when
    the champion's held-out accuracy is below ``min_accuracy``.
:func:`anomalies_needing_a_look` — "anomalies needing a look"
    Telemetry anomalies (Telemanom, trained on the ``train_days`` before the day) detected during
    the day and scrap anomalies (binomial detector, baselines from the hours before the day)
    overlapping it, each with its likely cause. Not shown without enough history.
:func:`week_ahead` — "the week ahead"
    The yield forecast per line for the 7 days after the report day, with intervals and
    recommendations. Not shown with fewer than three weeks of history or when the forecast's
    backtest is not better than last week's numbers (relative MASE ≥ 1).

History each section needs (the caller reads it; nothing here opens a warehouse):

==================  =========================================================================
section             tables and range
==================  =========================================================================
uncoded stops       downtime_events and machine_states over the day and a few weeks before
                    (time since the last stop of each category, tool run time), scrap_events
                    and machine_telemetry from one hour before the day (the features' window)
anomalies           machine_telemetry and machine_states from ``train_days`` (7) before the day;
                    production_events, scrap_events, downtime_events, machine_states,
                    quality_measurements, characteristics over at least ``train_days`` before it
week ahead          production_events, machines, shift_calendar, part_rates, planned_stops,
                    work_orders over at least 21 days (:data:`~workbench.ml.forecast.MIN_HISTORY_DAYS`;
                    8 weeks are better); shift_calendar and planned_stops of the coming week too
==================  =========================================================================

A notebook keeps each section for the e-mail with ``nb.record(name, section)`` under
:data:`UNCODED_RECORD`, :data:`ANOMALIES_RECORD` and :data:`WEEK_AHEAD_RECORD`;
:meth:`MLSection.from_record` reads it back.

For the data scientist's notebook: :func:`train_rootcause` (time-ordered hold-out beside
stratified CV, baselines, confusion matrix) and :func:`register_challenger`.
"""


from __future__ import annotations

import contextlib
import datetime as dt
import math
import re
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import MLError
from workbench.ml import forecast as yf
from workbench.ml import reviews
from workbench.ml.daily import Tables
from workbench.ml.features import TELEMETRY_METRICS, hourly_features

# The records' names and statuses are re-exported (`X as X`): a notebook imports `sections` only.
from workbench.ml.records import ANOMALIES_RECORD as ANOMALIES_RECORD
from workbench.ml.records import (
    ANOMALIES_TITLE,
    ANOMALY_COLUMNS,
    OK,
    TIME_COLUMNS,
    UNCODED_COLUMNS,
    UNCODED_TITLE,
    WEEK_AHEAD_COLUMNS,
    WEEK_AHEAD_TITLE,
    MLSection,
    not_shown,
    plain,
)
from workbench.ml.records import NOT_SHOWN as NOT_SHOWN
from workbench.ml.records import UNCODED_RECORD as UNCODED_RECORD
from workbench.ml.records import WEEK_AHEAD_RECORD as WEEK_AHEAD_RECORD
from workbench.ml.registry import (
    CHAMPION,
    DeferredModel,
    LoadedModel,
    ModelVersion,
    Registry,
    RegistryUnreadableError,
    default_tracking_uri,
    sqlite_card,
)
from workbench.ml.retrain import ROOTCAUSE, model_features
from workbench.ml.rootcause import (
    RootCauseClassifier,
    predict_stops,
)
from workbench.ml.scrap import ScrapAnomalyDetector, scrap_mix
from workbench.ml.stored import stored_section
from workbench.ml.telemanom import DEFAULT_METRICS, TelemanomDetector, telemetry_anomalies
from workbench.ml.telemanom_plant import running_from_states

NO_MODEL = "no root-cause model in the registry yet — run `workbench run retrain --force`"
#: What a deviation of each telemetry channel usually means on a machine tool: what to check,
#: not a diagnosis.
METRIC_HINTS: dict[str, str] = {
    "vibration_rms": "vibration off its predicted level: check bearings and spindle",
    "hydraulic_pressure": "hydraulic pressure off its predicted level: check for leaks, the pump, the oil",
    "motor_current": "motor current off its predicted level: check the drive, the servo and binding axes",
    "drive_temp": "drive temperature off its predicted level: check the drive and its cooling",
    "spindle_load": "spindle load off its predicted level: check the tool and the process",
}
_SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2}
# tqdm.auto (imported by SHAP and MLflow, which a section imports only when it computes) warns once
# per kernel that ipywidgets is missing; their progress bars are off anyway. Without this the
# warning lands on a report page whose section was computed rather than read back.
warnings.filterwarnings("ignore", message="IProgress not found")

#: SHAP contributions kept per stop in the likely-causes section (its default ``top``).
TOP_CONTRIBUTIONS = 3

#: Days of production history the week-ahead section carries for its chart (its default).
HISTORY_SHOWN_DAYS = 28

#: Backtest R² of good output below which the week ahead says its days are rough (the seed's
#: retraining trigger; the forecast refits every day, so there is no model to retrain).
WEAK_R2 = 0.5


# =============================================================================================

def _utc(value: Any, what: str) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        raise MLError(f"{what} must be timezone-aware, got {value!r}")
    return ts.tz_convert("UTC")


def _table(tables: Mapping[str, pd.DataFrame], name: str) -> pd.DataFrame | None:
    frame = tables.get(name)
    return frame if frame is not None and len(frame) else None


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def _local(ts: Any, tz: str, fmt: str = "%a %d %b %Y %H:%M") -> str:
    return f"{pd.Timestamp(ts).tz_convert(tz):{fmt}}"


# =============================================================================================
# the model


def load_model(uri: str = "", *, name: str = ROOTCAUSE, alias: str = CHAMPION,
               deferred: bool = False) -> tuple[LoadedModel | DeferredModel | None, str]:
    """The registry's model under ``alias``, or None and why not (the notebooks' one call to the registry).

    Parameters
    ----------
    uri : str
        Tracking URI; ``""``: :func:`~workbench.ml.registry.default_tracking_uri` (``MLFLOW_TRACKING_URI``,
        else ``data/mlflow/mlflow.db``). A SQLite store that does not exist is not created.
    name, alias : str
        Registered model and alias.
    deferred : bool
        Return its card now and load the model when first used (:class:`DeferredModel`): a
        section read back from the morning run's results does not need it.

    Returns
    -------
    (LoadedModel or DeferredModel or None, str)
        The model with its card and ``""``, or None and the reason (no store, no model, no alias).
        A model that fails the registry's checks (changed artifact, untrusted types) raises.
    """
    where = uri or default_tracking_uri()
    if where.startswith("sqlite:///") and not Path(where.removeprefix("sqlite:///")).is_file():
        return None, (f"no model registry at {where.removeprefix('sqlite:///')} yet — run "
                      "`workbench run retrain --force`")
    if deferred and where.startswith("sqlite:///"):
        try:  # the card without importing MLflow; the model (and MLflow) only if it is used
            card = sqlite_card(where, name, alias)
        except RegistryUnreadableError:
            pass
        else:
            if card is not None:
                return DeferredModel(where, card), ""
    with _quiet():
        registry = Registry(where)
        if name not in registry.names() or registry.alias_version(name, alias) is None:
            if alias == CHAMPION:
                return None, NO_MODEL
            return None, f"model {name!r} has no version with the alias {alias!r} in the registry at {where}"
        return (registry.deferred(name, alias=alias) if deferred else registry.load(name, alias=alias)), ""


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """MLflow's artifact download imports tqdm's notebook bar, which warns in a kernel without
    ipywidgets (its progress bars are off anyway)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        yield


def stop_features_as_trained(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Stop features built the way :mod:`workbench.ml.retrain` builds the champion's training rows
    (:func:`workbench.ml.retrain.model_features`)."""
    return model_features(tables)


def _holdout_text(card: ModelVersion) -> str:
    metrics = card.metrics
    n = metrics.get("holdout_n")
    stops = f"{int(n)} held-out coded stops" if n is not None and math.isfinite(n) else "held-out coded stops"
    start = f"{card.training_end:%Y-%m-%d}" if card.training_end else None
    found = re.search(r"held out \d+ to (\d{4}-\d{2}-\d{2})", card.description or "")
    if start and found:
        return f"{stops} {start} – {found.group(1)}"
    return f"{stops} after its training range"


_BASELINES = (("holdout_fault_code_accuracy", "fault-code lookup"),
              ("holdout_majority_accuracy", "majority class"))


def card_confidence(card: ModelVersion) -> str:
    """One sentence on what a root-cause model's predictions rest on: version, held-out accuracy and
    its window, training range."""
    aliases = f" ({', '.join(card.aliases)})" if card.aliases else ""
    acc = card.metrics.get("holdout_accuracy")
    text = f"root-cause model v{card.version}{aliases}"
    if acc is not None and math.isfinite(acc):
        text += f": {_pct(acc)} accurate on {_holdout_text(card)} (against the codes operators entered"
        # Baselines on the same held-out stops (recorded by train_models and by retrain rounds).
        baselines = [f"{label} {_pct(card.metrics[key])}" for key, label in _BASELINES
                     if math.isfinite(card.metrics.get(key, math.nan))]
        text += f"; on the same stops {', '.join(baselines)})" if baselines else ")"
    if card.training_start and card.training_end:
        text += f"; trained on {card.training_start:%Y-%m-%d} – {card.training_end:%Y-%m-%d}"
    return text


_METRIC_NAMES = {"holdout_accuracy": "held-out accuracy",
                 "holdout_balanced_accuracy": "held-out balanced accuracy",
                 "holdout_macro_f1": "held-out macro F1", "holdout_n": "held-out coded stops",
                 "holdout_majority_accuracy": "held-out accuracy of the majority class (baseline)",
                 "holdout_fault_code_accuracy": "held-out accuracy of the fault-code lookup (baseline)",
                 "cv_balanced_accuracy": "stratified CV balanced accuracy (training range)"}


def card_table(card: ModelVersion) -> pd.DataFrame:
    """A registered model's card as ``field, value`` rows (text): version, aliases, training range,
    description and every recorded metric (held-out scores, baselines when the run recorded them)."""
    rows = [("model", f"{card.name} v{card.version}"), ("aliases", ", ".join(card.aliases) or "–"),
            ("registered", f"{card.created_at:%Y-%m-%d %H:%M} UTC"),
            ("trained on", f"{card.training_start:%Y-%m-%d %H:%M} – {card.training_end:%Y-%m-%d %H:%M} UTC"
             if card.training_start and card.training_end else "–"),
            ("features", str(len(card.features))), ("description", card.description or "–")]
    for key, value in sorted(card.metrics.items()):
        text = f"{value:,.0f}" if key.endswith("_n") else f"{value:.3f}"
        rows.append((_METRIC_NAMES.get(key, key), text))
    return pd.DataFrame(rows, columns=["field", "value"])


# =============================================================================================
# likely causes of uncoded stops


def _contribution_rows(explained: pd.DataFrame) -> pd.DataFrame:
    rows = [{"event_id": event_id, "rank": rank + 1, "feature": feature, "value": plain(value), "shap": shap}
            for event_id, contributions in explained["contributions"].items()
            for rank, (feature, value, shap) in enumerate(contributions)]
    return pd.DataFrame(rows, columns=["event_id", "rank", "feature", "value", "shap"])


def uncoded_params(card: ModelVersion, *, min_accuracy: float, suspect_threshold: float,
                   top: int) -> dict[str, Any]:
    """What :func:`uncoded_stops` depends on besides its tables (the key of a stored section)."""
    return {"model": f"{card.name} v{card.version}", "min_accuracy": float(min_accuracy),
            "suspect_threshold": float(suspect_threshold), "top": int(top)}


def uncoded_stops(tables: Mapping[str, pd.DataFrame], *,
                  model: RootCauseClassifier | LoadedModel | DeferredModel | None = None,
                  card: ModelVersion | None = None, day_start: dt.datetime, day_end: dt.datetime,
                  min_accuracy: float = 0.65, suspect_threshold: float = 0.8, top: int = TOP_CONTRIBUTIONS,
                  stored: pd.DataFrame | None = None, tz: str = "UTC") -> MLSection:
    """The day's stops without a reason code, with the likely cause; and the day's suspect codes.

    Parameters
    ----------
    tables : mapping of DataFrames
        ``downtime_events`` over the day and the weeks before (earlier stops feed "time since the
        last stop of each category"), ``machine_states`` likewise, ``scrap_events`` and
        ``machine_telemetry`` from an hour before the day (optional: their features are then
        missing, as they would be for the model).
    model : RootCauseClassifier or LoadedModel or DeferredModel, optional
        The champion (None: not shown, :data:`NO_MODEL`); from the registry, with its card (a
        deferred one is loaded only when the section is computed, not read back).
    card : ModelVersion, optional
        Its registry card (default: the loaded model's); its ``holdout_accuracy`` metric decides
        whether to show anything.
    day_start, day_end : datetime
        Timezone-aware bounds of the day (stops starting in ``[day_start, day_end)``).
    min_accuracy : float
        Held-out accuracy the model needs for its predictions to be shown.
    suspect_threshold : float
        A coded stop is suspect when the prediction differs and is at least this confident.
    top : int
        SHAP contributions per stop.
    stored : DataFrame, optional
        ``ml_sections`` rows of the day: the section the morning run computed with this model
        version, these settings and the same data is read back instead of computed
        (:func:`workbench.ml.stored.stored_section`).
    tz : str
        Plant time zone (the note on a section read back).

    Returns
    -------
    MLSection
        Table: kind (``blank code`` / ``suspect code``), event_id, machine_id, time_start, time_end,
        duration_min, fault_code, entered_category, predicted_category, predicted_confidence,
        top_contributions; blank codes first, by time. ``details["contributions"]``: event_id,
        rank, feature, value, shap.
    """
    title = UNCODED_TITLE
    lo, hi = _utc(day_start, "day_start"), _utc(day_end, "day_end")
    if model is None:
        return not_shown(title, NO_MODEL)
    if isinstance(model, LoadedModel | DeferredModel):
        card = card if card is not None else model.card
    acc = card.metrics.get("holdout_accuracy") if card is not None else None
    if acc is None or not math.isfinite(acc):
        return not_shown(title, "the model's held-out accuracy is not recorded, so its predictions cannot "
                                 "be stated with a confidence — register it with a holdout_accuracy metric")
    confidence = card_confidence(card)
    if acc < min_accuracy:
        return not_shown(title, f"the root-cause model v{card.version} is {_pct(acc)} accurate on its "
                                 f"held-out stops, below the {_pct(min_accuracy)} needed to show its "
                                 "predictions",
                          confidence=confidence)
    params = uncoded_params(card, min_accuracy=min_accuracy, suspect_threshold=suspect_threshold, top=top)
    kept = stored_section(stored, UNCODED_RECORD, day_start=lo, day_end=hi, params=params, tables=tables,
                          tz=tz)
    if kept is not None:
        return kept
    if isinstance(model, LoadedModel | DeferredModel):
        model = model.model
    downtime = _table(tables, "downtime_events")
    starts = (pd.to_datetime(downtime["time_start"], utc=True) if downtime is not None
              else pd.Series(dtype="datetime64[ns, UTC]"))
    day = downtime[(starts >= lo) & (starts < hi)] if downtime is not None else pd.DataFrame()
    columns = list(UNCODED_COLUMNS)
    if day.empty:
        return MLSection(title, OK, confidence=confidence, table=pd.DataFrame(columns=columns),
                         notes=("no stops in the day",))
    try:
        features = stop_features_as_trained(tables)
        pred = predict_stops(model, features, day, model_version=f"v{card.version}",
                             suspect_threshold=suspect_threshold, top=0)
        pick = pred[pred["fills_blank"] | pred["suspect"]].reset_index(drop=True)
        explained = model.explain(features.loc[pick["event_id"].to_numpy()], top=top)
    except MLError as exc:
        return not_shown(title, f"the model could not score the day's stops: {exc}", confidence=confidence)
    facts = day.assign(event_id=day["event_id"].astype(str)).set_index("event_id")
    table = pd.DataFrame({
        "kind": np.where(pick["fills_blank"], "blank code", "suspect code"),
        "event_id": pick["event_id"].to_numpy(), "machine_id": pick["machine_id"].to_numpy(),
        "time_start": pd.to_datetime(pick["time_start"], utc=True).to_numpy(),
        "time_end": pd.to_datetime(facts.loc[pick["event_id"], "time_end"], utc=True).to_numpy(),
        "duration_min": pd.to_numeric(facts.loc[pick["event_id"], "duration_min"],
                                      errors="coerce").to_numpy(),
        "fault_code": facts.loc[pick["event_id"], "fault_code"].to_numpy(dtype=object),
        "entered_category": pick["entered_category"].to_numpy(dtype=object),
        "predicted_category": pick["predicted_category"].to_numpy(dtype=object),
        "predicted_confidence": pick["predicted_confidence"].to_numpy(dtype=float),
        "top_contributions": explained["text"].to_numpy(dtype=object)}, columns=columns)
    for col in ("time_start", "time_end"):
        table[col] = pd.to_datetime(table[col], utc=True)
    table = table.sort_values(["kind", "time_start"], kind="stable").reset_index(drop=True)
    n_blank, n_suspect = int(pick["fills_blank"].sum()), int(pick["suspect"].sum())
    n_coded = int((~pred["fills_blank"]).sum())
    notes = [f"{n_blank} of the day's {len(pred)} unplanned or uncoded stops have no reason code; each "
             "shows the model's most likely category and its confidence (a calibrated probability: of "
             "stops predicted at 80 %, about 8 in 10 are that category)",
             f"{n_suspect} of {n_coded} coded stops disagree with a prediction at least "
             f"{_pct(suspect_threshold)} confident: worth asking the operator (suspect codes)",
             "contributions: SHAP values of the forest for the predicted category, in probability points"]
    telemetry_features = [c for c in getattr(model, "feature_names_", ())
                          if c.startswith(tuple(f"{m}_" for m in TELEMETRY_METRICS))]
    if telemetry_features and _table(tables, "machine_telemetry") is None:
        notes.append(f"no machine telemetry in the data: the model's {len(telemetry_features)} telemetry "
                     "features are missing, so its predictions rest on the other features (its held-out "
                     "accuracy was measured with them)")
    if card.training_end is not None and card.training_end > lo.to_pydatetime():
        notes.append(f"the model was trained on stops up to {card.training_end:%Y-%m-%d %H:%M} UTC, which "
                     "includes this day: its suspect flags on coded stops it learned from are optimistic")
    return MLSection(title, OK, confidence=confidence, table=table, notes=tuple(notes),
                     details={"contributions": _contribution_rows(explained)})


# =============================================================================================
# anomalies needing a look


@dataclass(frozen=True)
class _Part:
    rows: pd.DataFrame | None  # None: not judged (``reason`` says why)
    reason: str = ""
    performance: str = ""
    detail: pd.DataFrame | None = None


def _judged_readings(tel: pd.DataFrame, states: pd.DataFrame | None) -> int:
    if states is None:
        return len(tel)
    return int(sum(running_from_states(pd.DatetimeIndex(g["time"]), machine, states).sum()
                   for machine, g in tel.groupby("machine_id", sort=True)))


def _good(tel: pd.DataFrame) -> pd.DataFrame:
    if "quality" not in tel.columns:
        return tel
    return tel[(tel["quality"].astype("string") == "good").fillna(False).to_numpy(bool)]


def _telemetry_part(tables: Mapping[str, pd.DataFrame], lo: pd.Timestamp, hi: pd.Timestamp, train_days: float,
                    tz: str) -> _Part:
    tel = _table(tables, "machine_telemetry")
    need = lo - pd.Timedelta(days=train_days)
    if tel is None:
        return _Part(None, f"no machine telemetry in the data: telemetry anomalies need {train_days:g} days "
                           f"of it before the day (from {_local(need, tz)}) and the day itself")
    times = pd.to_datetime(tel["time"], utc=True)
    tel = tel[(times >= need) & (times < hi)]
    first = pd.to_datetime(tel["time"], utc=True).min() if len(tel) else pd.NaT
    if pd.isna(first) or first > need + pd.Timedelta(hours=1):
        have = 0.0 if pd.isna(first) else max((lo - first) / pd.Timedelta(days=1), 0.0)
        return _Part(None, f"telemetry anomalies need {train_days:g} days of telemetry before the day (from "
                           f"{_local(need, tz)}) to learn each channel; the data has {have:.1f} days")
    states = _table(tables, "machine_states")
    found = telemetry_anomalies(tel, machine_states=states, train_until=lo)
    skipped = [n for n in found.attrs.get("notes", []) if "not judged" in n]
    when = found["detected_at"].fillna(found["time_start"])
    found = found[(when >= lo) & (when < hi)].reset_index(drop=True)
    judged_metrics = _good(tel[tel["metric"].isin(list(DEFAULT_METRICS))])
    day = judged_metrics[pd.to_datetime(judged_metrics["time"], utc=True) >= lo]
    channels = judged_metrics.groupby(["machine_id", "metric"]).ngroups
    performance = (f"telemetry: {channels - len(skipped)} channels (machine × metric) each trained on its "
                   f"running readings from {_local(need, tz)} to {_local(lo, tz)}; "
                   f"{_judged_readings(day, states):,} readings of the day judged (those taken while running)"
                   + (f"; {len(skipped)} channel(s) not judged: too little training data" if skipped else ""))
    rows = pd.DataFrame({
        "source": "telemetry", "machine_id": found["machine_id"].astype(str),
        "what": found["target"].astype(str),
        "time_start": found["time_start"], "time_end": found["time_end"], "detected_at": found["detected_at"],
        "score": found["score"].astype(float), "severity": found["severity"].astype(str),
        "likely_cause": [METRIC_HINTS.get(m, f"{m} off its predicted level") for m in found["target"]],
        "detail": [f"raised at {_local(t, tz, '%H:%M')}" if pd.notna(t) else ""
                   for t in found["detected_at"]]},
        columns=list(ANOMALY_COLUMNS))
    return _Part(rows, performance=performance, detail=found)


def _scrap_part(tables: Mapping[str, pd.DataFrame], lo: pd.Timestamp, hi: pd.Timestamp, train_days: float,
                tz: str) -> _Part:
    events = _table(tables, "production_events")
    need = lo - pd.Timedelta(days=train_days)
    if events is None:
        return _Part(None, "no production events in the data: scrap anomalies need production over "
                           f"{train_days:g} days before the day and the day itself")
    times = pd.to_datetime(events["time"], utc=True)
    first = times.min()
    if first > need + pd.Timedelta(hours=1):
        have = max((lo - first) / pd.Timedelta(days=1), 0.0)
        return _Part(None, f"scrap anomalies need {train_days:g} days of production before the day to "
                           f"learn each machine × part's usual scrap rate; the data has {have:.1f} days")
    hourly = hourly_features(events[times < hi], scrap_events=_table(tables, "scrap_events"),
                             downtime_events=_table(tables, "downtime_events"),
                             machine_states=_table(tables, "machine_states"),
                             quality_measurements=_table(tables, "quality_measurements"),
                             characteristics=_table(tables, "characteristics"))
    scrap = _table(tables, "scrap_events")
    mix = scrap_mix(scrap) if scrap is not None else None
    train = hourly[hourly["hour"] < lo]
    if train.empty or train["produced"].sum() <= 0:
        return _Part(None, "no production before the day to learn the usual scrap rates from")
    detector = ScrapAnomalyDetector().fit(train, mix=mix)
    # From 8 h before the day: three-hour stretches and "operator change" look back that far.
    judged = hourly[(hourly["hour"] >= lo - pd.Timedelta(hours=8)) & (hourly["hour"] < hi)]
    found = detector.detect(judged, mix=mix) if len(judged) else pd.DataFrame()
    if len(found):
        found = found[(found["time_end"] > lo) & (found["time_start"] < hi)].reset_index(drop=True)
    pairs = train.groupby(["machine_id", "part_number"]).ngroups
    n_day = int((judged["hour"] >= lo).sum())
    performance = (f"scrap: usual reject rates of {pairs} machine × part pairs learned from {len(train):,} "
                   f"production hours ({_local(train['hour'].min(), tz, '%a %d %b')} – "
                   f"{_local(lo, tz, '%a %d %b')}); {n_day:,} machine × part hours of the day judged")
    if found.empty:
        return _Part(pd.DataFrame(columns=list(ANOMALY_COLUMNS)), performance=performance, detail=found)
    rows = pd.DataFrame({
        "source": "scrap", "machine_id": found["machine_id"].astype(str),
        "what": "part " + found["part_number"].astype(str),
        "time_start": found["time_start"], "time_end": found["time_end"],
        "detected_at": found["time_start"] + pd.Timedelta(hours=1), "score": found["score"].astype(float),
        "severity": found["severity"].astype(str),
        "likely_cause": [h[0][2] if h else "unexplained: no cause has evidence in the data"
                         for h in found["hypotheses"]],
        "detail": [f"{r:.0f} rejects of {n:.0f} parts where {e:.1f} were expected"
                   for r, n, e in zip(found["rejects"], found["produced"], found["expected"], strict=True)]},
        columns=list(ANOMALY_COLUMNS))
    return _Part(rows, performance=performance, detail=found)


def anomaly_params(*, train_days: float, tz: str) -> dict[str, Any]:
    """What :func:`anomalies_needing_a_look` depends on besides its tables."""
    return {"train_days": float(train_days), "tz": tz}


def anomalies_needing_a_look(tables: Mapping[str, pd.DataFrame], *, day_start: dt.datetime,
                             day_end: dt.datetime, train_days: float = 7, tz: str = "UTC",
                             stored: pd.DataFrame | None = None) -> MLSection:
    """Telemetry anomalies raised during the day and scrap anomalies overlapping it, with likely causes.

    Telemetry: :func:`~workbench.ml.telemanom.telemetry_anomalies` with each channel's predictor
    trained on the ``train_days`` before ``day_start`` and the day judged causally; an anomaly
    belongs to the day when it was raised (``detected_at``) in it. Scrap:
    :class:`~workbench.ml.scrap.ScrapAnomalyDetector` with the usual rates learned from every
    production hour before the day in ``tables`` (at least ``train_days``), episodes overlapping
    the day, their most likely cause first.

    Parameters
    ----------
    tables : mapping of DataFrames
        ``machine_telemetry`` and ``machine_states`` from ``train_days`` before the day;
        ``production_events``, ``scrap_events``, ``downtime_events``, ``quality_measurements``,
        ``characteristics`` over at least ``train_days`` before it. Rows after ``day_end`` are
        ignored.
    day_start, day_end : datetime
        Timezone-aware bounds of the day.
    train_days : float
        Days of history before the day each detector needs.
    tz : str
        Plant time zone, for the times in the texts.
    stored : DataFrame, optional
        ``ml_sections`` rows of the day: the section the morning run computed with these settings
        and the same data is read back instead of computed.

    Returns
    -------
    MLSection
        Table: source (telemetry / scrap), machine_id, what (metric or part), time_start, time_end,
        detected_at, score, severity, likely_cause, detail; high severity first. Not shown when
        neither detector had enough history; a detector that had not is named in the notes.
        ``details``: ``telemetry`` (the ``ml_anomalies`` rows) and ``scrap`` (episodes with all
        their hypotheses).
    """
    title = ANOMALIES_TITLE
    lo, hi = _utc(day_start, "day_start"), _utc(day_end, "day_end")
    kept = stored_section(stored, ANOMALIES_RECORD, day_start=lo, day_end=hi,
                          params=anomaly_params(train_days=train_days, tz=tz), tables=tables, tz=tz)
    if kept is not None:
        return kept
    parts = {"telemetry": _telemetry_part(tables, lo, hi, train_days, tz),
             "scrap": _scrap_part(tables, lo, hi, train_days, tz)}
    judged = {k: p for k, p in parts.items() if p.rows is not None}
    if not judged:
        return not_shown(title, "; ".join(p.reason for p in parts.values()))
    frames = [p.rows for p in judged.values() if p.rows is not None and len(p.rows)]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(ANOMALY_COLUMNS))
    for col in TIME_COLUMNS:
        table[col] = pd.to_datetime(table[col], utc=True)
    table = (table.assign(_rank=table["severity"].map(_SEVERITY_ORDER).fillna(3))
             .sort_values(["_rank", "time_start", "machine_id"], kind="stable").drop(columns="_rank")
             .reset_index(drop=True))
    notes = [f"{k} anomalies not shown: {p.reason}" for k, p in parts.items() if p.rows is None]
    if table.empty:
        notes.insert(0, f"no {' or '.join(judged)} anomaly in the day")
    if "telemetry" in judged:
        notes.append("telemetry score: how far the smoothed prediction error rose above its threshold, in "
                     "units of the errors' usual level (high ≥ 2, medium ≥ 0.5); the likely cause is what "
                     "such a deviation usually means, not a diagnosis")
    if "scrap" in judged:
        notes.append("scrap score: −log10 of the probability of so many rejects at the usual rate (3 = one "
                     "in a thousand; high ≥ 6); the likely cause is the hypothesis with the most evidence")
    details = {k: p.detail for k, p in judged.items() if p.detail is not None}
    confidence = "; ".join(p.performance for p in judged.values())
    # The plant's own labels: how many of the reviewed anomalies before the day were false alarms.
    given = _table(tables, "ml_anomaly_reviews")
    rates = reviews.review_rates(given, end=lo)
    if rates:
        first = pd.to_datetime(given["anomaly_start"], utc=True).min()
        clause, alarms = reviews.review_statements(rates, since=f"from {_local(first, tz, '%a %d %b')} on")
        confidence = "; ".join(c for c in (confidence, clause) if c)
        notes = alarms + notes
    return MLSection(title, OK, confidence=confidence, table=table, notes=tuple(notes), details=details)


def scrap_hypotheses(section: MLSection) -> pd.DataFrame:
    """Every cause hypothesis of the section's scrap anomalies, most evidence first per anomaly.

    Returns
    -------
    DataFrame
        machine_id, part_number, time_start, rank, cause, evidence (0–1), text.
    """
    columns = ["machine_id", "part_number", "time_start", "rank", "cause", "evidence", "text"]
    found = section.details.get("scrap")
    if found is None or found.empty:
        return pd.DataFrame(columns=columns)
    rows = [(a.machine_id, a.part_number, a.time_start, rank, cause, evidence, text)
            for a in found.itertuples(index=False)
            for rank, (cause, evidence, text) in enumerate(a.hypotheses, start=1)]
    return pd.DataFrame(rows, columns=columns)


@dataclass(frozen=True, eq=False)
class AnomalyTrace:
    """One telemetry channel over the day as the detector saw it (for a chart).

    Attributes
    ----------
    machine_id, metric : str
        The channel.
    frame : DataFrame
        :meth:`~workbench.ml.telemanom.TelemanomDetector.score` rows of the day: time, value,
        predicted, error, smoothed_error, threshold, judged, anomaly, score, final, decided_at.
    anomalies : DataFrame
        The section's anomalies of this channel.
    train_range : (Timestamp, Timestamp)
        The readings the predictor was trained on.
    """

    machine_id: str
    metric: str
    frame: pd.DataFrame
    anomalies: pd.DataFrame
    train_range: tuple[pd.Timestamp, pd.Timestamp]


def anomaly_traces(tables: Mapping[str, pd.DataFrame], anomalies: pd.DataFrame, *, day_start: dt.datetime,
                   day_end: dt.datetime, train_days: float = 7, top: int = 3) -> list[AnomalyTrace]:
    """The channels of the ``top`` first telemetry anomalies, scored again over the day for a chart.

    The same detector, training stretch and running-only judging as :func:`anomalies_needing_a_look`
    (so the chart shows the threshold that flagged the anomaly). Without ``machine_states`` every
    reading is judged here.

    Parameters
    ----------
    tables : mapping of DataFrames
        As for :func:`anomalies_needing_a_look`.
    anomalies : DataFrame
        The section's table (rows with source ``telemetry`` are used, in order).
    day_start, day_end : datetime
        The day.
    train_days : float
        As for :func:`anomalies_needing_a_look`.
    top : int
        Channels to trace at most.

    Returns
    -------
    list of AnomalyTrace
    """
    lo, hi = _utc(day_start, "day_start"), _utc(day_end, "day_end")
    if "machine_telemetry" not in tables or anomalies.empty or "source" not in anomalies.columns:
        return []
    states = _table(tables, "machine_states")
    rows = anomalies[anomalies["source"] == "telemetry"]
    channels = list(dict.fromkeys(zip(rows["machine_id"].astype(str), rows["what"].astype(str), strict=True)))
    need = lo - pd.Timedelta(days=train_days)
    out = []
    for machine, metric in channels[:top]:
        # Only the channel's readings become a DataFrame (a week of a plant's telemetry need not).
        tel = (tables.where("machine_telemetry", machine_id=machine, metric=metric)
               if isinstance(tables, Tables) else tables["machine_telemetry"])
        t = pd.to_datetime(tel["time"], utc=True)
        one = _good(tel[(tel["machine_id"].astype(str) == machine) & (tel["metric"] == metric)
                        & (t >= need) & (t < hi)])
        series = one.groupby(pd.to_datetime(one["time"], utc=True))["value"].last().astype(float).dropna()
        series.name = metric
        judge = (running_from_states(series.index, machine, states) if states is not None
                 else np.ones(len(series), bool))
        train = np.asarray(series.index < lo)
        det = TelemanomDetector().fit(series[train], judge=judge[train])
        frame = det.score(series, judge=judge, start=lo)
        frame = frame[frame["time"] >= lo].reset_index(drop=True)
        mine = rows[(rows["machine_id"].astype(str) == machine) & (rows["what"] == metric)]
        out.append(AnomalyTrace(machine, metric, frame, mine.reset_index(drop=True),
                                (series.index[train].min(), series.index[train].max())))
    return out


# =============================================================================================
# the week ahead


def _finite(x: float) -> bool:
    return x is not None and math.isfinite(x)


def week_ahead_params(*, origin_day: dt.date, tz: str, target_yield: float, forecaster: yf.YieldForecaster,
                      history_shown: int) -> dict[str, Any]:
    """What :func:`week_ahead` depends on besides its tables."""
    return {"origin_day": origin_day.isoformat(), "tz": tz, "target_yield": float(target_yield),
            "history_shown": int(history_shown), "forecaster": type(forecaster).__name__,
            **{f"forecaster.{k}": v for k, v in sorted(forecaster.get_params().items())}}


def week_ahead(tables: Mapping[str, pd.DataFrame], *, origin_day: dt.date, tz: str,
               target_yield: float = 0.95, day_end: dt.datetime | None = None,
               forecaster: yf.YieldForecaster | None = None, history_shown: int = HISTORY_SHOWN_DAYS,
               stored: pd.DataFrame | None = None, day_start: dt.datetime | None = None) -> MLSection:
    """Good output and yield per line for the days after the report day, with intervals.

    :class:`~workbench.ml.forecast.YieldForecaster` fitted on the production history in
    ``tables`` up to ``origin_day``; its own rolling-origin calibration backtest decides what is
    shown: nothing when good output does not beat the seasonal naive ("last week's numbers",
    relative MASE ≥ 1), no yield columns when yield does not.

    Parameters
    ----------
    tables : mapping of DataFrames
        ``production_events``, ``machines``, ``shift_calendar`` (and ``part_rates``,
        ``planned_stops``, ``work_orders``) over at least :data:`~workbench.ml.forecast.MIN_HISTORY_DAYS`
        (21) days up to ``origin_day`` — 8 weeks give the backtest more origins. The calendar and
        planned stops of the coming week are used when given (else each machine's weekday pattern).
    origin_day : date
        The report day: the forecast covers the ``horizon`` days after the last production day
        up to it.
    tz : str
        Plant time zone.
    target_yield : float
        Yield target of the recommendations.
    day_end : datetime, optional
        Production events at or after it are ignored (the end of the report day).
    forecaster : YieldForecaster, optional
        Hyperparameters (default ``YieldForecaster(random_state=0)``: 7 days).
    history_shown : int
        Days of actual history kept in ``details["history"]`` for the chart.
    stored : DataFrame, optional
        ``ml_sections`` rows of the day: the section the morning run computed with these settings
        and the same data is read back instead of computed (needs ``day_start`` and ``day_end``,
        the report day's bounds).
    day_start : datetime, optional
        The report day's start (the key of a stored section).

    Returns
    -------
    MLSection
        Table: line, day, scheduled, good, good_low, good_high, produced, produced_low, produced_high,
        yield, yield_low, yield_high (one row per line and day). Notes: the recommendations, then the
        forecast's data notes. ``details``: ``history`` (line, day, good, produced, yield) and
        ``backtest`` (the calibration metrics).
    """
    title = WEEK_AHEAD_TITLE
    est = forecaster if forecaster is not None else yf.YieldForecaster(random_state=0)
    if stored is not None and day_start is not None and day_end is not None:
        params = week_ahead_params(origin_day=origin_day, tz=tz, forecaster=est, target_yield=target_yield,
                                   history_shown=history_shown)
        kept = stored_section(stored, WEEK_AHEAD_RECORD, day_start=_utc(day_start, "day_start"),
                              day_end=_utc(day_end, "day_end"), tables=tables, tz=tz, params=params)
        if kept is not None:
            return kept
    events = _table(tables, "production_events")
    if events is None:
        return not_shown(title, "no production history: the forecast needs at least "
                                 f"{yf.MIN_HISTORY_DAYS} days")
    if day_end is not None:
        events = events[pd.to_datetime(events["time"], utc=True) < _utc(day_end, "day_end")]
    try:
        history, planned = yf.from_tables({**tables, "production_events": events}, tz=tz)
    except MLError as exc:
        return not_shown(title, str(exc))
    history = history[pd.to_datetime(history["day"]).dt.date <= origin_day]
    worked = history[history["produced"] > 0]
    if worked.empty:
        return not_shown(title, f"no production up to {origin_day}: the forecast needs at least "
                                 f"{yf.MIN_HISTORY_DAYS} days of history")
    first, last = pd.Timestamp(worked["day"].min()).date(), pd.Timestamp(worked["day"].max()).date()
    span = (last - first).days + 1
    if span < yf.MIN_HISTORY_DAYS:
        return not_shown(title, f"the forecast needs at least {yf.MIN_HISTORY_DAYS} days (three weeks) of "
                                 f"production history; the data has {span} ({first} – {last})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Prophet's chatter; the fit's own notes say what matters
            forecast = est.fit(history, planned).predict()
    except MLError as exc:
        return not_shown(title, str(exc))
    bt = forecast.calibration
    good_mase, yield_mase = bt.value("mase", target="good"), bt.value("mase", target="yield")
    cov, good_r2 = bt.value("coverage", target="good"), bt.value("r2", target="good")
    origins = bt.origins
    confidence = (f"backtest from {len(origins)} origins ({origins[0]} – {origins[-1]}) on this plant: "
                  f"relative MASE {good_mase:.2f} for good output and {yield_mase:.2f} for yield against "
                  f"last week's numbers (below 1 is better)"
                  + (f", R² {good_r2:.2f} for good output on working days" if _finite(good_r2) else "")
                  + f"; {_pct(forecast.interval)} intervals"
                  + (f", which held {_pct(cov)} of the backtest's line-days" if _finite(cov) else "")
                  + f"; trained on {forecast.training_range[0]} – {forecast.training_range[1]}"
                  ) if origins else ""
    if not (_finite(good_mase) and good_mase < 1.0):
        return not_shown(title, "the forecast is not better than last week's numbers (backtest relative "
                                 f"MASE {good_mase:.2f} for good output, 1 or more)", confidence=confidence)
    table = forecast.table[list(WEEK_AHEAD_COLUMNS)].copy()
    notes = [s for s in yf.recommendations(forecast, target_yield=target_yield)]
    if not (_finite(yield_mase) and yield_mase < 1.0):
        table[["yield", "yield_low", "yield_high"]] = np.nan
        notes = [n for n in notes if not n.startswith("yield ")]
        notes.insert(0, "yield not shown: its forecast is not better than last week's numbers (backtest "
                        f"relative MASE {yield_mase:.2f})")
    if _finite(good_r2) and good_r2 < WEAK_R2:
        notes.insert(0, f"the forecast explains little of the day-to-day variation of good output (backtest "
                        f"R² {good_r2:.2f} on working days, below {WEAK_R2}): it beats last week's numbers, "
                        "but read its days as rough")
    if last < origin_day:
        notes.append(f"the last production day up to {origin_day} is {last}: the forecast starts after it")
    notes += [f"line {line} not forecast: {why}" for line, why in forecast.skipped.items()]
    notes += list(forecast.notes)
    shown = history[pd.to_datetime(history["day"]).dt.date > last - dt.timedelta(days=history_shown)].copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        shown["yield"] = np.where(shown["produced"] > 0, shown["good"] / shown["produced"], np.nan)
    return MLSection(title, OK, confidence=confidence, table=table.reset_index(drop=True), notes=tuple(notes),
                     details={"history": shown.reset_index(drop=True), "backtest": bt.metrics})


# =============================================================================================
# training a root-cause model (the data scientist's notebook): workbench.ml.training, reachable
# here as before (sections.train_rootcause) without importing it with the report's sections

_TRAINING = frozenset({"TrainingRun", "train_rootcause", "register_challenger"})


def __getattr__(name: str) -> Any:
    if name in _TRAINING:
        from workbench.ml import training

        return getattr(training, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
