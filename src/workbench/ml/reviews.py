"""Analysts' verdicts on the stored anomalies, and the detectors' false-alarm rate they give.

An anomaly "needing a look" gets one: an analyst or a maintenance lead who looked marks it
``confirmed`` or ``false_alarm`` (``workbench reviews mark``; a later verdict replaces an earlier
one) in ``ml_anomaly_reviews``. The reviews are the plant's own labels for the detectors: the
anomalies section states, per detector, how many of the reviewed anomalies before the day were
false alarms, and says so when that share is above the seed's retraining trigger (20 %) with
enough reviews to tell. The detectors learn the week before each day afresh, so there is no model
to retrain: the trigger is a statement for whoever tunes them (train days, thresholds), in the
report, the e-mail's confidence and the morning model run's log.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from workbench.errors import MLError
from workbench.ml.scrap import DETECTOR as SCRAP_DETECTOR

#: The verdicts an anomaly can get.
VERDICTS = ("confirmed", "false_alarm")

#: The seed's retraining trigger: more than this share of reviewed anomalies were false alarms.
FALSE_ALARM_TRIGGER = 0.20

#: Fewer reviewed anomalies than this say too little to pull the trigger.
MIN_REVIEWED = 10

#: Days of anomalies the morning model run checks the reviews of.
REVIEW_DAYS = 28


def source_of(detector: str) -> str:
    """``scrap`` for the scrap detector, ``telemetry`` for the others (Telemanom)."""
    return "scrap" if str(detector) == SCRAP_DETECTOR else "telemetry"


def review_rows(anomaly_ids: Sequence[str], verdict: str, *, reviewed_at: dt.datetime,
                reviewed_by: str | None = None, note: str | None = None,
                known: Iterable[str] | None = None) -> pd.DataFrame:
    """``ml_anomaly_reviews`` rows giving ``verdict`` to each anomaly.

    Parameters
    ----------
    anomaly_ids : sequence of str
        The anomalies (``ml_anomalies.anomaly_id``).
    verdict : {"confirmed", "false_alarm"}
    reviewed_at : datetime
        Timezone-aware.
    reviewed_by, note : str, optional
    known : iterable of str, optional
        The ids that exist: any other is refused (a typo must not become a review of nothing).

    Raises
    ------
    MLError
        An unknown verdict, no id, a naive time or an id that is not in ``known``.
    """
    if verdict not in VERDICTS:
        raise MLError(f"verdict {verdict!r} is not one of {', '.join(VERDICTS)}")
    ids = [str(i).strip() for i in anomaly_ids]
    if not ids or any(not i for i in ids):
        raise MLError("give the id of each anomaly reviewed (workbench reviews list shows them)")
    if reviewed_at.tzinfo is None:
        raise MLError(f"reviewed_at must be timezone-aware, got {reviewed_at!r}")
    if known is not None:
        unknown = sorted(set(ids) - set(known))
        if unknown:
            raise MLError(f"not in ml_anomalies: {', '.join(unknown)} (workbench reviews list shows the "
                          "stored anomalies and their ids)")
    return pd.DataFrame({"anomaly_id": list(dict.fromkeys(ids)), "verdict": verdict,
                         "reviewed_at": pd.Timestamp(reviewed_at).tz_convert("UTC"),
                         "reviewed_by": reviewed_by, "note": note})


@dataclass(frozen=True)
class ReviewRate:
    """The reviewed anomalies of one detector over a window.

    Attributes
    ----------
    source : str
        ``telemetry`` or ``scrap``.
    anomalies : int
        Anomalies stored in the window.
    reviewed : int
        Of them, reviewed.
    false_alarms : int
        Of those, false alarms.
    """

    source: str
    anomalies: int
    reviewed: int
    false_alarms: int

    @property
    def rate(self) -> float:
        """Share of the reviewed anomalies that were false alarms (NaN when none was reviewed)."""
        return self.false_alarms / self.reviewed if self.reviewed else float("nan")

    @property
    def triggered(self) -> bool:
        """Above :data:`FALSE_ALARM_TRIGGER` with at least :data:`MIN_REVIEWED` reviews."""
        return self.reviewed >= MIN_REVIEWED and self.rate > FALSE_ALARM_TRIGGER

    def text(self) -> str:
        """E.g. "telemetry: 3 false alarms of 20 reviewed (15 %; 24 stored)"."""
        if not self.reviewed:
            return f"{self.source}: none of {self.anomalies} reviewed"
        return (f"{self.source}: {self.false_alarms} false alarm{'s' if self.false_alarms != 1 else ''} of "
                f"{self.reviewed} reviewed ({100 * self.rate:.0f} %; {self.anomalies} stored)")


def review_rates(anomalies: pd.DataFrame | None, reviews: pd.DataFrame | None, *,
                 start: dt.datetime | None = None, end: dt.datetime) -> dict[str, ReviewRate]:
    """Per detector, the stored anomalies that started in ``[start, end)`` and their verdicts.

    Parameters
    ----------
    anomalies : DataFrame or None
        ``ml_anomalies`` rows (anomaly_id, detector, time_start).
    reviews : DataFrame or None
        ``ml_anomaly_reviews`` rows (anomaly_id, verdict); the latest per anomaly counts.
    start : datetime, optional
        Window start (default: every anomaly before ``end``).
    end : datetime
        Window end: anomalies of the day being reported are not judged by reviews of themselves.

    Returns
    -------
    dict of str to ReviewRate
        Keyed ``telemetry`` and ``scrap``, for the detectors with anomalies in the window.
    """
    if anomalies is None or anomalies.empty:
        return {}
    t = pd.to_datetime(anomalies["time_start"], utc=True)
    inside = t < pd.Timestamp(end).tz_convert("UTC")
    if start is not None:
        inside &= t >= pd.Timestamp(start).tz_convert("UTC")
    mine = anomalies[inside].drop_duplicates("anomaly_id")
    verdicts = pd.Series(dtype=object)
    if reviews is not None and not reviews.empty:
        latest = reviews.sort_values("reviewed_at", kind="stable").drop_duplicates("anomaly_id", keep="last")
        verdicts = latest.set_index(latest["anomaly_id"].astype(str))["verdict"].astype(str)
    out = {}
    for source, group in mine.groupby(mine["detector"].map(source_of), sort=True):
        given = group["anomaly_id"].astype(str).map(verdicts)
        out[str(source)] = ReviewRate(str(source), len(group), int(given.notna().sum()),
                                      int((given == "false_alarm").sum()))
    return out


def review_statements(rates: dict[str, ReviewRate], *, since: str) -> tuple[str, list[str]]:
    """What the anomalies section says of the reviews: a clause for its confidence, and a note per
    detector above the trigger.

    Parameters
    ----------
    rates : dict
        :func:`review_rates`.
    since : str
        The window, as text (e.g. "since Thu 19 Nov").
    """
    if not rates:
        return "", []
    clause = "analysts' reviews of the stored anomalies " + since + ": " + "; ".join(
        r.text() for r in rates.values())
    notes = [f"{r.source} anomalies: {100 * r.rate:.0f} % of the {r.reviewed} reviewed {since} were false "
             f"alarms, above the {100 * FALSE_ALARM_TRIGGER:.0f} % trigger — read them with care and have "
             "the detector's settings (train days, threshold) looked at"
             for r in rates.values() if r.triggered]
    return clause, notes


def detector_reviews(warehouse: Any, *, end: dt.datetime, days: int = REVIEW_DAYS) -> dict[str, ReviewRate]:
    """:func:`review_rates` of the anomalies stored over the ``days`` before ``end``, read from a
    warehouse (the morning model run's daily check of the detectors)."""
    start = end - dt.timedelta(days=days)
    with warehouse.held():
        anomalies = warehouse.read("ml_anomalies", columns=["anomaly_id", "detector", "time_start"],
                                   start=start, end=end)
        reviews = warehouse.read("ml_anomaly_reviews")
    return review_rates(anomalies, reviews, start=start, end=end)
