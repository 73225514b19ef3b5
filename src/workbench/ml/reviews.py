"""Analysts' verdicts on the stored anomalies, and the detectors' false-alarm rate they give.

An anomaly "needing a look" gets one: an analyst or a maintenance lead who looked marks it
``confirmed`` or ``false_alarm`` (``workbench reviews mark``; a later verdict replaces an earlier
one) in ``ml_anomaly_reviews``, with the anomaly's detector and start (the morning run rewrites
``ml_anomalies`` every day; the reviews alone say what was judged). The reviews are the plant's
own labels for the detectors: the
anomalies section states, per detector, how many of the reviewed anomalies before the day were
false alarms, and says so when that share is above the seed's retraining trigger (20 %) with
enough reviews to tell. The detectors learn the week before each day afresh, so there is no model
to retrain: the trigger is a statement for whoever tunes them (train days, thresholds), in the
report, the e-mail's confidence and the morning model run's log.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
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


def review_rows(anomaly_ids: Sequence[str], verdict: str, *, anomalies: pd.DataFrame,
                reviewed_at: dt.datetime, reviewed_by: str | None = None,
                note: str | None = None) -> pd.DataFrame:
    """``ml_anomaly_reviews`` rows giving ``verdict`` to each anomaly.

    Parameters
    ----------
    anomaly_ids : sequence of str
        The anomalies (``ml_anomalies.anomaly_id``).
    verdict : {"confirmed", "false_alarm"}
    anomalies : DataFrame
        The stored anomalies (``anomaly_id``, ``detector``, ``time_start``): every id must be
        among them (a typo must not become a review of nothing); their detector and start are
        copied into the review.
    reviewed_at : datetime
        Timezone-aware.
    reviewed_by, note : str, optional

    Raises
    ------
    MLError
        An unknown verdict, no id, a naive time or an id that is not in ``anomalies``.
    """
    if verdict not in VERDICTS:
        raise MLError(f"verdict {verdict!r} is not one of {', '.join(VERDICTS)}")
    ids = list(dict.fromkeys(str(i).strip() for i in anomaly_ids))
    if not ids or any(not i for i in ids):
        raise MLError("give the id of each anomaly reviewed (workbench reviews list shows them)")
    if reviewed_at.tzinfo is None:
        raise MLError(f"reviewed_at must be timezone-aware, got {reviewed_at!r}")
    known = (anomalies.assign(anomaly_id=anomalies["anomaly_id"].astype(str))
             .drop_duplicates("anomaly_id").set_index("anomaly_id"))
    unknown = [i for i in ids if i not in known.index]
    if unknown:
        raise MLError(f"not in ml_anomalies: {', '.join(unknown)} (workbench reviews list shows the "
                      "stored anomalies and their ids)")
    found = known.loc[ids]
    return pd.DataFrame({"anomaly_id": ids, "detector": found["detector"].astype(str).to_numpy(),
                         "anomaly_start": pd.to_datetime(found["time_start"], utc=True).to_numpy(),
                         "verdict": verdict, "reviewed_at": pd.Timestamp(reviewed_at).tz_convert("UTC"),
                         "reviewed_by": reviewed_by, "note": note})


@dataclass(frozen=True)
class ReviewRate:
    """The reviewed anomalies of one detector over a window.

    Attributes
    ----------
    source : str
        ``telemetry`` or ``scrap``.
    reviewed : int
        Anomalies reviewed.
    false_alarms : int
        Of them, false alarms.
    anomalies : int or None
        Anomalies stored in the window, when known.
    """

    source: str
    reviewed: int
    false_alarms: int
    anomalies: int | None = None

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
        stored = f"; {self.anomalies} stored" if self.anomalies is not None else ""
        if not self.reviewed:
            return f"{self.source}: none reviewed" + (f" of {self.anomalies} stored" if stored else "")
        return (f"{self.source}: {self.false_alarms} false alarm{'s' if self.false_alarms != 1 else ''} of "
                f"{self.reviewed} reviewed ({100 * self.rate:.0f} %{stored})")


def _window(frame: pd.DataFrame, column: str, start: dt.datetime | None, end: dt.datetime) -> pd.DataFrame:
    t = pd.to_datetime(frame[column], utc=True)
    inside = t < pd.Timestamp(end).tz_convert("UTC")
    if start is not None:
        inside &= t >= pd.Timestamp(start).tz_convert("UTC")
    return frame[inside]


def review_rates(reviews: pd.DataFrame | None, *, start: dt.datetime | None = None, end: dt.datetime,
                 anomalies: pd.DataFrame | None = None) -> dict[str, ReviewRate]:
    """Per detector, the verdicts on the anomalies that started in ``[start, end)``.

    Parameters
    ----------
    reviews : DataFrame or None
        ``ml_anomaly_reviews`` rows (anomaly_id, detector, anomaly_start, verdict, reviewed_at);
        the latest per anomaly counts.
    start : datetime, optional
        Window start (default: every anomaly before ``end``).
    end : datetime
        Window end: the anomalies of the day being reported are not judged by their own reviews.
    anomalies : DataFrame, optional
        ``ml_anomalies`` rows (anomaly_id, detector, time_start): with them, the anomalies stored
        in the window are counted too.

    Returns
    -------
    dict of str to ReviewRate
        Keyed ``scrap`` and ``telemetry``, for the detectors with reviews (or anomalies) in the window.
    """
    counts: dict[str, int] = {}
    if anomalies is not None and len(anomalies):
        mine = _window(anomalies, "time_start", start, end).drop_duplicates("anomaly_id")
        counts = mine["detector"].map(source_of).value_counts().to_dict()
    given = pd.DataFrame(columns=["anomaly_id", "detector", "verdict"])
    if reviews is not None and len(reviews):
        given = (_window(reviews, "anomaly_start", start, end).sort_values("reviewed_at", kind="stable")
                 .drop_duplicates("anomaly_id", keep="last"))
    by_source = given.groupby(given["detector"].map(source_of))["verdict"]
    reviewed = by_source.size().to_dict()
    false = by_source.apply(lambda v: int((v == "false_alarm").sum())).to_dict() if len(given) else {}
    known = anomalies is not None
    return {str(s): ReviewRate(str(s), int(reviewed.get(s, 0)), int(false.get(s, 0)),
                               int(counts.get(s, 0)) if known else None)
            for s in sorted(set(reviewed) | set(counts))}


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
    warehouse (the morning model run's daily check of the detectors; ``workbench reviews rate``)."""
    start = end - dt.timedelta(days=days)
    with warehouse.held():
        anomalies = warehouse.read("ml_anomalies", columns=["anomaly_id", "detector", "time_start"],
                                   start=start, end=end)
        reviews = warehouse.read("ml_anomaly_reviews", start=start, end=end)
    return review_rates(reviews, start=start, end=end, anomalies=anomalies)
