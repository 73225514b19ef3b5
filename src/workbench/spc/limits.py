"""Multi-level limits of a characteristic: operating, alarm, specification and engineering.

A plant's variable-system analysis gives each characteristic nested bands around the nominal::

    engineering_low ≤ alarm_low_low ≤ alarm_low ≤ operating_low ≤ nominal
                    ≤ operating_high ≤ alarm_high ≤ alarm_high_high ≤ engineering_high

and the specification limits (LSL, USL) sit among them as follows — a plant's reading:

* ``engineering_low ≤ LSL`` and ``USL ≤ engineering_high``: engineering limits are the design /
  instrument envelope; a spec the equipment cannot hold or the gauge cannot read is a typo.
* ``LSL ≤ alarm_low`` and ``alarm_high ≤ USL``: the (first) alarm must sound while the product is
  still good, otherwise it warns of nothing that has not already happened.
* LL and HH are *not* ordered against the specification: some plants put HH inside the spec as a
  last warning, others beyond it as an interlock that protects the equipment. Both are valid.
* ``LSL < USL`` strictly, and ``LSL ≤ nominal ≤ USL``.

Any level may be missing; the ordering is checked between the levels that are present, so an
error names exactly the two neighbouring levels that are out of order and their values.

Evaluation reports the most severe band a value is beyond (limits are inclusive: a value equal
to a limit is inside it). Severity, from least to most severe:

====  ===========================================  ==========================================
rank  severity                                     meaning
====  ===========================================  ==========================================
0     ``normal``                                   inside the operating limits
1     ``off_operating_low`` / ``_high``            outside operating, inside the alarms
2     ``alarm_low`` / ``alarm_high``               beyond the L / H alarm
3     ``alarm_low_low`` / ``alarm_high_high``      beyond the LL / HH alarm
4     ``out_of_spec_low`` / ``_high``              beyond LSL / USL: nonconforming product
5     ``beyond_engineering_low`` / ``_high``       beyond the design or instrument envelope
====  ===========================================  ==========================================

Out of specification ranks above every process alarm: a nonconforming part is a quality escape
whatever the alarm configuration says. Beyond the engineering limits ranks highest: the value is
outside what the equipment is designed for or the instrument can measure — a damaged process or
a failed sensor.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import SPCError
from workbench.spc._input import as_pandas

LEVELS = ("engineering_low", "alarm_low_low", "alarm_low", "operating_low", "nominal",
          "operating_high", "alarm_high", "alarm_high_high", "engineering_high")
# The specification's place in the order: the main chain with LL/HH swapped for LSL/USL.
_SPEC_CHAIN = ("engineering_low", "lsl", "alarm_low", "operating_low", "nominal", "operating_high",
               "alarm_high", "usl", "engineering_high")

__all__ = ["LEVELS", "LimitSet", "Severity", "limit_sets"]


class Severity(StrEnum):
    """Where a value sits among the limits; compare with :attr:`rank`."""

    NORMAL = "normal"
    OFF_OPERATING_LOW = "off_operating_low"
    OFF_OPERATING_HIGH = "off_operating_high"
    ALARM_LOW = "alarm_low"
    ALARM_HIGH = "alarm_high"
    ALARM_LOW_LOW = "alarm_low_low"
    ALARM_HIGH_HIGH = "alarm_high_high"
    OUT_OF_SPEC_LOW = "out_of_spec_low"
    OUT_OF_SPEC_HIGH = "out_of_spec_high"
    BEYOND_ENGINEERING_LOW = "beyond_engineering_low"
    BEYOND_ENGINEERING_HIGH = "beyond_engineering_high"

    @property
    def rank(self) -> int:
        """0 (normal) … 5 (beyond engineering limits)."""
        return _RANK[self]

    @property
    def side(self) -> str | None:
        """``"low"``, ``"high"`` or None for normal."""
        if self is Severity.NORMAL:
            return None
        return "low" if self.value.endswith("low") else "high"


_RANK = {Severity.NORMAL: 0,
         Severity.OFF_OPERATING_LOW: 1, Severity.OFF_OPERATING_HIGH: 1,
         Severity.ALARM_LOW: 2, Severity.ALARM_HIGH: 2,
         Severity.ALARM_LOW_LOW: 3, Severity.ALARM_HIGH_HIGH: 3,
         Severity.OUT_OF_SPEC_LOW: 4, Severity.OUT_OF_SPEC_HIGH: 4,
         Severity.BEYOND_ENGINEERING_LOW: 5, Severity.BEYOND_ENGINEERING_HIGH: 5}

# Most severe first: (limit attribute, beyond it is below?, severity).
_CHECKS = (
    ("engineering_low", True, Severity.BEYOND_ENGINEERING_LOW),
    ("engineering_high", False, Severity.BEYOND_ENGINEERING_HIGH),
    ("lsl", True, Severity.OUT_OF_SPEC_LOW),
    ("usl", False, Severity.OUT_OF_SPEC_HIGH),
    ("alarm_low_low", True, Severity.ALARM_LOW_LOW),
    ("alarm_high_high", False, Severity.ALARM_HIGH_HIGH),
    ("alarm_low", True, Severity.ALARM_LOW),
    ("alarm_high", False, Severity.ALARM_HIGH),
    ("operating_low", True, Severity.OFF_OPERATING_LOW),
    ("operating_high", False, Severity.OFF_OPERATING_HIGH),
)


def _number(value: Any, name: str, where: str) -> float | None:
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SPCError(f"{where}{name} must be a number (got {value!r})") from None
    if math.isinf(number):
        raise SPCError(f"{where}{name} must be finite (got {value!r})")
    return number


@dataclass(frozen=True)
class LimitSet:
    """The limits of one characteristic; every level is optional.

    Parameters
    ----------
    engineering_low, engineering_high : float, optional
        Design / instrument envelope.
    alarm_low_low, alarm_low, alarm_high, alarm_high_high : float, optional
        Process alarms (LL, L, H, HH).
    operating_low, operating_high : float, optional
        Normal operating window.
    lsl, usl : float, optional
        Specification limits.
    nominal : float, optional
        Nominal (target) value.
    name : str
        What the limits belong to, used in messages (e.g. ``"P-100 / bore_diameter"``).

    Raises
    ------
    SPCError
        When two present levels are out of order (the message names both and their values).
    """

    engineering_low: float | None = None
    alarm_low_low: float | None = None
    alarm_low: float | None = None
    operating_low: float | None = None
    nominal: float | None = None
    operating_high: float | None = None
    alarm_high: float | None = None
    alarm_high_high: float | None = None
    engineering_high: float | None = None
    lsl: float | None = None
    usl: float | None = None
    name: str = ""

    def __post_init__(self) -> None:
        where = f"{self.name}: " if self.name else ""
        for f in fields(self):
            if f.name != "name":
                object.__setattr__(self, f.name, _number(getattr(self, f.name), f.name, where))
        self._check_chain(LEVELS, where)
        self._check_chain(_SPEC_CHAIN, where)
        if self.lsl is not None and self.usl is not None and not self.lsl < self.usl:
            raise SPCError(f"{where}lsl ({self.lsl:g}) must be below usl ({self.usl:g})")

    def _check_chain(self, chain: tuple[str, ...], where: str) -> None:
        present = [(name, getattr(self, name)) for name in chain if getattr(self, name) is not None]
        for (low_name, low), (high_name, high) in itertools.pairwise(present):
            if low > high:
                raise SPCError(f"{where}limits out of order: {low_name} ({low:g}) is above "
                               f"{high_name} ({high:g}); expected {low_name} ≤ {high_name}")

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | pd.Series) -> LimitSet:
        """Build from a ``characteristics`` table row (columns as in :mod:`workbench.schema`).

        Parameters
        ----------
        row : mapping or pandas.Series
            Must have the limit columns it uses; missing columns and nulls mean "no such level".
            ``part_number`` and ``characteristic`` name the set in error messages.

        Returns
        -------
        LimitSet
        """
        get = row.get
        label = " / ".join(str(get(k)) for k in ("part_number", "characteristic")
                           if get(k) is not None and not pd.isna(get(k)))
        values = {f.name: get(f.name) for f in fields(cls) if f.name != "name"}
        return cls(**values, name=label)

    def evaluate(self, value: float) -> Severity:
        """The most severe band ``value`` is beyond.

        Parameters
        ----------
        value : float
            One reading.

        Returns
        -------
        Severity
        """
        x = _number(value, "value", f"{self.name}: " if self.name else "")
        if x is None:
            raise SPCError(f"{self.name + ': ' if self.name else ''}cannot evaluate a missing value")
        for attr, below, severity in _CHECKS:
            limit = getattr(self, attr)
            if limit is not None and (x < limit if below else x > limit):
                return severity
        return Severity.NORMAL

    def evaluate_series(self, values: pd.Series | Any) -> pd.DataFrame:
        """Vectorised :meth:`evaluate` for a Series (NaN readings get a missing severity).

        Parameters
        ----------
        values : pandas.Series or array_like
            Readings.

        Returns
        -------
        pandas.DataFrame
            Same index as ``values``; columns ``value``, ``severity`` (the :class:`Severity`
            value as a string, missing for a NaN reading), ``rank`` (nullable Int64) and
            ``side``.
        """
        series = values if isinstance(values, pd.Series) else pd.Series(values)
        x = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
        severity = np.full(x.shape, Severity.NORMAL.value, dtype=object)
        decided = np.isnan(x)
        severity[decided] = None
        for attr, below, level in _CHECKS:
            limit = getattr(self, attr)
            if limit is None:
                continue
            hit = ~decided & ((x < limit) if below else (x > limit))
            severity[hit] = level.value
            decided |= hit
        rank = pd.array([None if s is None else Severity(s).rank for s in severity], dtype="Int64")
        side = [None if s is None else Severity(s).side for s in severity]
        return pd.DataFrame({"value": x, "severity": severity, "rank": rank, "side": side},
                            index=series.index)


def limit_sets(characteristics: Any) -> dict[tuple[str, str], LimitSet]:
    """Limit sets of every row of a ``characteristics`` table.

    Parameters
    ----------
    characteristics : pandas.DataFrame or polars.DataFrame
        Rows of the canonical ``characteristics`` table.

    Returns
    -------
    dict
        ``(part_number, characteristic)`` → :class:`LimitSet`.
    """
    df = as_pandas(characteristics)
    out: dict[tuple[str, str], LimitSet] = {}
    for _, row in df.iterrows():
        out[(str(row.get("part_number")), str(row.get("characteristic")))] = LimitSet.from_row(row)
    return out
