"""The anomalies of a day as ``ml_anomalies`` rows: what the morning model run stores.

:func:`~workbench.ml.sections.anomalies_needing_a_look` computes the day's telemetry and scrap
anomalies for the report; :func:`anomaly_rows` turns that section into warehouse rows (every
column of ``ml_anomalies``) so that dashboards, alerts and analysts find them without rerunning
the detectors. Ids are deterministic: a rerun on the same data with the same detector updates the
same rows instead of adding new ones.
"""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd

from workbench import schema
from workbench.errors import MLError
from workbench.ml.records import ANOMALIES_TITLE, MLSection
from workbench.ml.scrap import DETECTOR as SCRAP_DETECTOR
from workbench.ml.telemanom_plant import anomaly_id

#: Version of the scrap detector's rule (binomial tail against the shrunk machine × part rate).
SCRAP_MODEL_VERSION = "scrap-binomial-1"


def _key(frame: pd.DataFrame, what: pd.Series) -> pd.Series:
    return (frame["machine_id"].astype(str) + "|" + what.astype(str) + "|"
            + pd.to_datetime(frame["time_start"], utc=True).astype("int64").astype(str))


def anomaly_rows(section: MLSection, *, created_at: dt.datetime) -> pd.DataFrame:
    """The section's anomalies as ``ml_anomalies`` rows.

    Parameters
    ----------
    section : MLSection
        "Anomalies needing a look", as computed (its ``details`` hold the detectors' rows).
    created_at : datetime
        Timezone-aware time of the run that stores them.

    Returns
    -------
    DataFrame
        Every column of ``ml_anomalies``: telemetry anomalies keep Telemanom's id, detector and
        model version (``target`` = the metric); scrap anomalies get the scrap detector's
        (``target`` = "part …") and their cause hypotheses, most evidence first, as JSON
        ``[[cause, evidence, sentence], …]``. Empty when the section shows nothing.

    Raises
    ------
    MLError
        Another section, a naive ``created_at``, or rows without their detector's details.
    """
    columns = schema.table("ml_anomalies").column_names
    if section.title != ANOMALIES_TITLE:
        raise MLError(f"anomaly_rows needs the section {ANOMALIES_TITLE!r}, not {section.title!r}")
    if created_at.tzinfo is None:
        raise MLError(f"created_at must be timezone-aware, got {created_at!r}")
    table = section.table
    if not section.shown or table.empty:
        return pd.DataFrame(columns=columns)
    out = table.rename(columns={"what": "target"}).assign(
        created_at=pd.Timestamp(created_at).tz_convert("UTC"), hypotheses=None)
    tel = table["source"] == "telemetry"
    if tel.any():
        found = section.details.get("telemetry")
        if found is None:
            raise MLError("the section's telemetry anomalies come without their detector's rows (details)")
        by_key = found.assign(_k=_key(found, found["target"])).set_index("_k")
        keys = _key(table[tel], table.loc[tel, "what"])
        missing = keys[~keys.isin(by_key.index)]
        if len(missing):
            raise MLError(f"{len(missing)} telemetry anomalies of the section are not in its details")
        for col in ("anomaly_id", "detector", "model_version"):
            out.loc[tel, col] = by_key.loc[keys.to_numpy(), col].to_numpy()
    scrap = ~tel
    if scrap.any():
        episodes = section.details.get("scrap")
        hyps: dict[str, str] = {}
        if episodes is not None and len(episodes):
            ek = _key(episodes, "part " + episodes["part_number"].astype(str))
            hyps = {k: json.dumps([[c, round(float(e), 4), t] for c, e, t in h], ensure_ascii=False)
                    for k, h in zip(ek, episodes["hypotheses"], strict=True)}
        keys = _key(table[scrap], table.loc[scrap, "what"])
        out.loc[scrap, "detector"] = SCRAP_DETECTOR
        out.loc[scrap, "model_version"] = SCRAP_MODEL_VERSION
        out.loc[scrap, "hypotheses"] = [hyps.get(k) for k in keys]
        out.loc[scrap, "anomaly_id"] = [
            anomaly_id(m, w, s, detector=SCRAP_DETECTOR, model_version=SCRAP_MODEL_VERSION)
            for m, w, s in zip(table.loc[scrap, "machine_id"], table.loc[scrap, "what"],
                               table.loc[scrap, "time_start"], strict=True)]
    return out[list(columns)].reset_index(drop=True)
