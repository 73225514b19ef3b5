"""Multi-level limits: ordering validation, severities, the characteristics-table row."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import polars as pl
import pytest

from workbench.errors import SPCError
from workbench.schema import TABLES
from workbench.spc import LimitSet, Severity, limit_sets

# A bore diameter: nominal 10.00, operating 9.95–10.05, alarms L 9.90 / H 10.10,
# LL 9.85 / HH 10.15, spec 9.88–10.12 (HH beyond the spec: an interlock), engineering 9.5–10.5.
FULL = dict(engineering_low=9.5, alarm_low_low=9.85, alarm_low=9.90, operating_low=9.95,
            nominal=10.0, operating_high=10.05, alarm_high=10.10, alarm_high_high=10.15,
            engineering_high=10.5, lsl=9.88, usl=10.12)


@pytest.mark.parametrize(("value", "severity"), [
    (10.0, Severity.NORMAL),
    (9.95, Severity.NORMAL),               # on the operating limit: inside (limits are inclusive)
    (9.94, Severity.OFF_OPERATING_LOW),
    (10.06, Severity.OFF_OPERATING_HIGH),
    (9.89, Severity.ALARM_LOW),
    (10.11, Severity.ALARM_HIGH),
    (9.87, Severity.OUT_OF_SPEC_LOW),      # beyond LSL 9.88 but not yet LL 9.85
    (10.13, Severity.OUT_OF_SPEC_HIGH),
    (10.2, Severity.OUT_OF_SPEC_HIGH),     # beyond HH too: out of spec ranks higher
    (9.4, Severity.BEYOND_ENGINEERING_LOW),
    (11.0, Severity.BEYOND_ENGINEERING_HIGH),
])
def test_severities(value: float, severity: Severity) -> None:
    assert LimitSet(**FULL).evaluate(value) is severity


def test_hh_inside_the_spec_is_allowed_and_reported() -> None:
    limits = LimitSet(**{**FULL, "alarm_high_high": 10.11, "usl": 10.14})
    assert limits.evaluate(10.12) is Severity.ALARM_HIGH_HIGH
    assert limits.evaluate(10.145) is Severity.OUT_OF_SPEC_HIGH


def test_ranks_are_ordered() -> None:
    order = [Severity.NORMAL, Severity.OFF_OPERATING_HIGH, Severity.ALARM_HIGH,
             Severity.ALARM_HIGH_HIGH, Severity.OUT_OF_SPEC_HIGH, Severity.BEYOND_ENGINEERING_HIGH]
    assert [s.rank for s in order] == [0, 1, 2, 3, 4, 5]
    assert Severity.ALARM_LOW.rank == Severity.ALARM_HIGH.rank
    assert Severity.ALARM_LOW.side == "low" and Severity.NORMAL.side is None
    assert str(Severity.ALARM_LOW_LOW) == "alarm_low_low"


def test_missing_levels() -> None:
    only_spec = LimitSet(lsl=1.0, usl=2.0)
    assert only_spec.evaluate(1.5) is Severity.NORMAL
    assert only_spec.evaluate(2.5) is Severity.OUT_OF_SPEC_HIGH
    assert LimitSet().evaluate(1e9) is Severity.NORMAL
    assert LimitSet(alarm_high=5.0).evaluate(6.0) is Severity.ALARM_HIGH


@pytest.mark.parametrize(("changes", "message"), [
    ({"alarm_low": 9.96}, "alarm_low (9.96) is above operating_low (9.95)"),
    ({"operating_high": 9.99}, "nominal (10) is above operating_high (9.99)"),
    ({"alarm_high_high": 10.09}, "alarm_high (10.1) is above alarm_high_high (10.09)"),
    ({"engineering_high": 10.12}, "alarm_high_high (10.15) is above engineering_high (10.12)"),
    ({"lsl": 9.91}, "lsl (9.91) is above alarm_low (9.9)"),           # alarm must warn in spec
    ({"usl": 10.09}, "alarm_high (10.1) is above usl (10.09)"),
    ({"engineering_low": 9.89, "alarm_low_low": None}, "engineering_low (9.89) is above lsl (9.88)"),
])
def test_order_errors_name_both_levels_and_values(changes: dict, message: str) -> None:
    with pytest.raises(SPCError, match=message.replace("(", r"\(").replace(")", r"\)")):
        LimitSet(**{**FULL, **changes})


def test_order_is_checked_across_missing_levels() -> None:
    with pytest.raises(SPCError, match=r"alarm_low_low \(5\) is above nominal \(4\)"):
        LimitSet(alarm_low_low=5.0, nominal=4.0)
    with pytest.raises(SPCError, match=r"lsl \(3\) must be below usl \(3\)"):
        LimitSet(lsl=3.0, usl=3.0)
    with pytest.raises(SPCError, match="must be a number"):
        LimitSet(lsl="low")  # type: ignore[arg-type]


def test_from_characteristics_row_and_names_in_errors() -> None:
    columns = TABLES["characteristics"].column_names
    row = dict.fromkeys(columns)
    row.update(FULL, part_number="P-100", characteristic="bore_diameter", source="test",
               chart_type="xbar_r", subgroup_size=5, rules="western_electric")
    limits = LimitSet.from_row(pd.Series(row))
    assert limits.name == "P-100 / bore_diameter"
    assert limits.usl == 10.12 and limits.evaluate(10.11) is Severity.ALARM_HIGH
    bad = {**row, "operating_low": float("nan"), "alarm_low": 10.01}
    with pytest.raises(SPCError, match=r"^P-100 / bore_diameter: limits out of order: "
                                       r"alarm_low \(10.01\) is above nominal \(10\)"):
        LimitSet.from_row(bad)
    # NaN / None mean "no such level"
    sparse = LimitSet.from_row({"part_number": "P-1", "characteristic": "x", "usl": 3.0,
                                "lsl": np.nan, "nominal": None})
    assert sparse.lsl is None and sparse.nominal is None


def test_limit_sets_from_a_table() -> None:
    frame = pl.DataFrame([{**FULL, "part_number": "P-100", "characteristic": "bore"},
                          {"part_number": "P-200", "characteristic": "length", "lsl": 1.0, "usl": 2.0}])
    sets = limit_sets(frame)
    assert set(sets) == {("P-100", "bore"), ("P-200", "length")}
    assert sets[("P-200", "length")].evaluate(0.5) is Severity.OUT_OF_SPEC_LOW


def test_vectorised_evaluation_matches_scalar() -> None:
    limits = LimitSet(**FULL)
    values = pd.Series([10.0, 9.94, 10.11, float("nan"), 9.87, 11.0], index=list("abcdef"))
    out = limits.evaluate_series(values)
    assert list(out.index) == list("abcdef")
    assert pd.isna(out.loc["d", "severity"]) and pd.isna(out.loc["d", "rank"])
    for key in "abcef":
        scalar = limits.evaluate(values[key])
        assert out.loc[key, "severity"] == scalar.value
        assert out.loc[key, "rank"] == scalar.rank
        side = out.loc[key, "side"]
        assert side == scalar.side if scalar.side else pd.isna(side)
    with pytest.raises(SPCError, match="missing value"):
        limits.evaluate(math.nan)
