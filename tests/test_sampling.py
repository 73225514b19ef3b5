"""ISO 2859-1 / ANSI/ASQ Z1.4 look-ups against the published tables, and the switching rules.

Sources of the expected values (written next to each group below):

[T1]  ISO 2859-1:1999 Table 1 (= Z1.4 Table I, MIL-STD-105E Table I), sample size code letters,
      as reproduced at wisetool.com/sampling.htm and in the CRAN package AQLSchemes 1.7-2
      (J. Lawson, R/AAZ14Single.R, "from the published tables" of MIL-STD-105E).
[2A/2B/2C] Z1.4 Tables II-A/II-B/II-C (single sampling, normal/tightened/reduced; normal and
      tightened identical to ISO 2859-1:1999 Tables 2-A/2-B) as transcribed, arrows resolved, in
      AQLSchemes 1.7-2 R/AAZ14Single.R. All 3 × 16 × 26 resolved cells of that transcription were
      compared with workbench.sampling during development (0 differences); a broad sample is here.
[PLOS] Jenkins, Peck & Fernando (2023), PLOS figure 22583454 "Operating characteristic curves from
      ISO 2859-1:1999 for the lot size range of 35 001 – 500 000": normal plans (AQL, level, n, Ac/Re)
      0.65 S-4 80 1/2; 0.65 S-3 20 0/1; 0.40 S-4 125 1/2; 0.40 S-3 32 0/1; 0.25 S-4 50 0/1;
      0.15 S-4 80 0/1.
[RULE] AQL Inspector's Rule instructions (aqlinspectorsrule.com/below): normal AQL 0.015 letter R
      → letter P, n = 800, 0/1; reduced AQL 0.015 letter R → P, n = 315, 0/1; tightened AQL 0.025
      letters Q and R → n = 3150, 1/2.
[SW]  Switching rules: ISO 2859-1:1999 clause 9 (switching score ≥ 30 for normal → reduced) and
      ANSI/ASQ Z1.4 §8.3–8.4 (2 of 5 → tightened, 5 accepted → normal, 5 not accepted on
      tightened → discontinue; reduced → normal on a lot not accepted or Ac < d < Re).
"""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from workbench.errors import SamplingError
from workbench.sampling import (
    AQLS,
    INSPECTIONS,
    LETTERS,
    LEVELS,
    LotResult,
    SwitchingState,
    code_letter,
    inspection_schedule,
    next_state,
    resume_inspection,
    single_sampling_plan,
    table_plan,
    tighter_accept_number,
)

# --- Table 1 ------------------------------------------------------------------------------------

# [T1] every row: (smallest lot, largest lot, letters for S-1 S-2 S-3 S-4 I II III)
TABLE_1 = [
    (2, 8, "AAAAAAB"), (9, 15, "AAAAABC"), (16, 25, "AABBBCD"), (26, 50, "ABBCCDE"),
    (51, 90, "BBCCCEF"), (91, 150, "BBCDDFG"), (151, 280, "BCDEEGH"), (281, 500, "BCDEFHJ"),
    (501, 1200, "CCEFGJK"), (1201, 3200, "CDEGHKL"), (3201, 10_000, "CDFGJLM"),
    (10_001, 35_000, "CDFHKMN"), (35_001, 150_000, "DEGJLNP"), (150_001, 500_000, "DEGJMPQ"),
    (500_001, 10_000_000, "DEHKNQR"),
]


@pytest.mark.parametrize(("low", "high", "letters"), TABLE_1)
def test_code_letters_every_row_of_table_1(low: int, high: int, letters: str) -> None:
    for lot in (low, high):
        assert "".join(code_letter(lot, lv) for lv in LEVELS) == letters


# --- master tables ------------------------------------------------------------------------------

# [2A] (code letter, AQL, n, Ac, Re), arrows resolved
NORMAL = [
    ("A", 0.010, 1250, 0, 1), ("A", 0.65, 20, 0, 1), ("A", 0.25, 50, 0, 1), ("B", 15, 3, 1, 2),
    ("B", 6.5, 2, 0, 1), ("C", 6.5, 8, 1, 2), ("C", 400, 5, 30, 31), ("C", 150, 5, 14, 15),
    ("D", 150, 8, 21, 22), ("D", 0.065, 200, 0, 1), ("D", 0.025, 500, 0, 1), ("E", 1.5, 8, 0, 1),
    ("E", 0.65, 20, 0, 1), ("F", 40, 20, 14, 15), ("F", 15, 20, 7, 8), ("G", 15, 32, 10, 11),
    ("G", 1000, 3, 44, 45), ("G", 400, 8, 44, 45), ("H", 0.15, 80, 0, 1), ("H", 0.065, 200, 0, 1),
    ("J", 4.0, 80, 7, 8), ("J", 1.5, 80, 3, 4), ("K", 1.5, 125, 5, 6), ("K", 100, 13, 21, 22),
    ("K", 40, 32, 21, 22), ("L", 0.015, 800, 0, 1), ("L", 1000, 3, 44, 45), ("M", 0.40, 315, 3, 4),
    ("M", 0.15, 315, 1, 2), ("N", 0.15, 500, 2, 3), ("N", 10, 125, 21, 22), ("N", 4.0, 315, 21, 22),
    ("P", 250, 13, 44, 45), ("P", 100, 13, 21, 22), ("Q", 0.040, 1250, 1, 2), ("Q", 0.015, 800, 0, 1),
    ("R", 1.0, 1250, 21, 22), ("R", 0.40, 2000, 14, 15), ("A", 10, 5, 1, 2), ("R", 0.010, 1250, 0, 1),
]
# [2B]
TIGHTENED = [
    ("A", 0.015, 1250, 0, 1), ("A", 1.0, 20, 0, 1), ("A", 0.40, 50, 0, 1), ("B", 25, 3, 1, 2),
    ("B", 10, 8, 1, 2), ("C", 650, 5, 41, 42), ("C", 250, 5, 18, 19), ("D", 250, 8, 27, 28),
    ("D", 0.10, 200, 0, 1), ("D", 0.040, 500, 0, 1), ("E", 2.5, 32, 1, 2), ("E", 1.0, 20, 0, 1),
    ("F", 65, 20, 18, 19), ("F", 25, 20, 8, 9), ("G", 25, 32, 12, 13), ("G", 0.010, 2000, 0, 1),
    ("G", 650, 5, 41, 42), ("H", 0.25, 80, 0, 1), ("H", 0.10, 200, 0, 1), ("J", 6.5, 80, 8, 9),
    ("J", 2.5, 80, 3, 4), ("K", 2.5, 125, 5, 6), ("K", 150, 13, 27, 28), ("K", 65, 20, 18, 19),
    ("L", 0.025, 800, 0, 1), ("L", 0.010, 2000, 0, 1), ("M", 0.65, 315, 3, 4), ("M", 0.25, 315, 1, 2),
    ("N", 0.25, 500, 2, 3), ("N", 15, 80, 18, 19), ("N", 6.5, 200, 18, 19), ("P", 400, 8, 41, 42),
    ("P", 150, 13, 27, 28), ("Q", 0.065, 1250, 1, 2), ("Q", 0.025, 3150, 1, 2),
    ("R", 0.025, 3150, 1, 2), ("R", 1.5, 800, 18, 19), ("R", 0.65, 2000, 18, 19), ("A", 10, 8, 1, 2),
    ("R", 0.015, 1250, 0, 1),
]
# [2C] (Z1.4 reduced: Ac/Re with a gap)
REDUCED = [
    ("A", 0.025, 200, 0, 1), ("A", 1.5, 3, 0, 1), ("A", 0.65, 8, 0, 1), ("B", 40, 2, 2, 4),
    ("B", 15, 2, 0, 2), ("C", 15, 2, 1, 3), ("C", 1000, 2, 30, 31), ("C", 400, 2, 14, 17),
    ("D", 400, 3, 21, 24), ("D", 0.15, 32, 0, 1), ("D", 0.065, 80, 0, 1), ("E", 4.0, 5, 0, 2),
    ("E", 1.5, 3, 0, 1), ("F", 1.5, 13, 0, 2), ("F", 100, 5, 10, 13), ("F", 40, 8, 7, 10),
    ("G", 40, 13, 10, 13), ("G", 0.015, 315, 0, 1), ("G", 1000, 2, 30, 31), ("H", 0.40, 13, 0, 1),
    ("H", 0.15, 32, 0, 1), ("J", 10, 32, 7, 10), ("J", 4.0, 32, 3, 6), ("K", 4.0, 50, 5, 8),
    ("K", 250, 5, 21, 24), ("K", 100, 5, 10, 13), ("L", 0.040, 125, 0, 1), ("L", 0.015, 315, 0, 1),
    ("M", 1.0, 125, 3, 6), ("M", 0.40, 125, 1, 4), ("N", 0.40, 200, 2, 5), ("N", 25, 20, 10, 13),
    ("N", 10, 50, 10, 13), ("P", 650, 2, 21, 24), ("P", 250, 5, 21, 24), ("Q", 0.10, 500, 1, 4),
    ("Q", 0.040, 500, 0, 2), ("R", 0.040, 800, 1, 3), ("R", 2.5, 200, 10, 13), ("R", 1.0, 500, 10, 13),
    ("A", 25, 2, 1, 2), ("B", 65, 2, 3, 5), ("J", 1.0, 32, 1, 3),
]


@pytest.mark.parametrize(
    ("inspection", "letter", "aql", "n", "ac", "re"),
    [("normal", *c) for c in NORMAL] + [("tightened", *c) for c in TIGHTENED]
    + [("reduced", *c) for c in REDUCED],
)
def test_master_tables(inspection: str, letter: str, aql: float, n: int, ac: int, re: int) -> None:
    _, size, accept, reject = table_plan(letter, aql=aql, inspection=inspection)
    assert (size, accept, reject) == (n, ac, re)


@pytest.mark.parametrize(
    ("lot", "level", "aql", "n", "ac", "re"),
    [  # [PLOS] lot range 35 001 – 500 000 (S-3 = G, S-4 = J)
        (100_000, "S-4", 0.65, 80, 1, 2), (100_000, "S-3", 0.65, 20, 0, 1),
        (400_000, "S-4", 0.40, 125, 1, 2), (400_000, "S-3", 0.40, 32, 0, 1),
        (100_000, "S-4", 0.25, 50, 0, 1), (100_000, "S-4", 0.15, 80, 0, 1),
        # [2A] level II, letter J (n = 80) across AQLs, then H and L
        (1000, "II", 0.65, 80, 1, 2), (1000, "II", 1.0, 80, 2, 3), (1000, "II", 1.5, 80, 3, 4),
        (1000, "II", 2.5, 80, 5, 6), (1000, "II", 4.0, 80, 7, 8), (500, "II", 1.0, 50, 1, 2),
        (5000, "II", 1.0, 200, 5, 6), (5000, "II", 0.65, 200, 3, 4),
        # arrows: AQL 1.0 at F (↑ to E, n = 13) and at G (↓ to H, n = 50); 0.10 at J (↓ to K)
        (100, "II", 1.0, 13, 0, 1), (200, "II", 1.0, 50, 1, 2), (1000, "II", 0.10, 125, 0, 1),
        (600_000, "III", 1.0, 1250, 21, 22),  # ↑ below 21/22 at R
        (600_000, "III", 0.015, 800, 0, 1),   # [RULE] R at 0.015 → P
        (5, "II", 1.0, 5, 0, 1),              # n = 13 ≥ lot 5 → 100 % inspection
    ],
)
def test_normal_plans_for_lots(lot: int, level: str, aql: float, n: int, ac: int, re: int) -> None:
    plan = single_sampling_plan(lot, aql=aql, level=level)
    assert (plan.sample_size, plan.accept, plan.reject) == (n, ac, re)


def test_edges_of_the_tables_from_the_aql_rule() -> None:
    # [RULE]
    assert table_plan("R", aql=0.015, inspection="reduced") == ("P", 315, 0, 1)
    for letter in "QR":
        assert table_plan(letter, aql=0.025, inspection="tightened") == ("S", 3150, 1, 2)
    plan = single_sampling_plan(600_000, aql=0.025, level="III", inspection="tightened")
    assert (plan.code_letter, plan.plan_letter, plan.sample_size) == ("R", "S", 3150)


def test_full_inspection_when_sample_reaches_lot() -> None:
    plan = single_sampling_plan(10, aql=0.10)      # letter B, ↓ to K: n = 125 > 10
    assert plan.plan_letter == "K" and plan.table_sample_size == 125
    assert plan.sample_size == 10 and plan.full_inspection


# --- decisions ----------------------------------------------------------------------------------

def test_decisions_normal_and_reduced_gap() -> None:
    plan = single_sampling_plan(1000, aql=1.0)
    assert plan.decide(2) == "accept" and plan.decide(3) == "reject"
    red = single_sampling_plan(1000, aql=1.0, inspection="reduced")   # J: n = 32, 1/3
    assert (red.sample_size, red.accept, red.reject) == (32, 1, 3)
    assert [red.outcome(d) for d in (0, 1, 2, 3)] == [
        "accept", "accept", "accept_reinstate_normal", "reject"]
    assert red.decide(2) == "accept"


def test_nonconformities_may_exceed_the_sample() -> None:
    plan = single_sampling_plan(1000, aql=250)                        # J → ↑ E: n = 13, 44/45
    assert (plan.sample_size, plan.accept, plan.reject, plan.measure) == (13, 44, 45, "nonconformities")
    assert plan.decide(44) == "accept" and plan.decide(45) == "reject"


def test_bad_requests_are_clear_errors() -> None:
    with pytest.raises(SamplingError, match="inspection level 'IV'"):
        code_letter(100, "IV")
    with pytest.raises(SamplingError, match="lot size must be at least 2"):
        code_letter(1)
    with pytest.raises(SamplingError, match=r"AQL 0\.7 is not a preferred AQL"):
        single_sampling_plan(100, aql=0.7)
    with pytest.raises(SamplingError, match="unknown inspection type 'skip'"):
        single_sampling_plan(100, aql=1.0, inspection="skip")
    with pytest.raises(SamplingError, match="only for nonconformities"):
        single_sampling_plan(100, aql=15, measure="nonconforming")
    with pytest.raises(SamplingError, match="unknown measure"):
        single_sampling_plan(100, aql=1.0, measure="ppm")
    plan = single_sampling_plan(1000, aql=1.0)
    with pytest.raises(SamplingError, match="negative"):
        plan.decide(-1)
    with pytest.raises(SamplingError, match="81 nonconforming units in a sample of 80 is impossible"):
        plan.decide(81)
    with pytest.raises(SamplingError, match="whole number"):
        plan.decide(1.5)  # type: ignore[arg-type]


# --- properties ---------------------------------------------------------------------------------

lots = st.integers(2, 2_000_000)
aqls = st.sampled_from(AQLS)
levels = st.sampled_from(LEVELS)


@given(lot=lots, aql=aqls, level=levels, inspection=st.sampled_from(INSPECTIONS))
def test_plans_are_consistent(lot: int, aql: float, level: str, inspection: str) -> None:
    plan = single_sampling_plan(lot, aql=aql, level=level, inspection=inspection)
    assert plan.reject > plan.accept >= 0
    assert 1 <= plan.sample_size <= lot
    if inspection != "reduced":
        assert plan.reject == plan.accept + 1
    top = plan.sample_size if plan.measure == "nonconforming" else plan.reject + 5
    for d in range(0, top + 1):
        if d > plan.accept:
            assert plan.outcome(d) != "accept"      # never accepted outright above Ac
        if d >= plan.reject:
            assert plan.decide(d) == "reject"


@given(lot=lots, aql=aqls, level=levels)
def test_reduced_samples_no_larger_than_normal(lot: int, aql: float, level: str) -> None:
    normal = single_sampling_plan(lot, aql=aql, level=level)
    reduced = single_sampling_plan(lot, aql=aql, level=level, inspection="reduced")
    assert reduced.sample_size <= normal.sample_size


@settings(max_examples=60)
@given(letter=st.sampled_from(LETTERS), aql=aqls,
       p=st.floats(0.0005, 0.6, allow_nan=False))
def test_tightened_never_looser_than_normal(letter: str, aql: float, p: float) -> None:
    # Checked first on the whole table (every cell, p on a grid of 400 points, binomial and
    # Poisson): tightened P(accept) never exceeds normal P(accept).
    _, nn, na, _ = table_plan(letter, aql=aql)
    _, tn, ta, _ = table_plan(letter, aql=aql, inspection="tightened")
    assert stats.binom.cdf(ta, tn, p) <= stats.binom.cdf(na, nn, p) + 1e-12
    assert stats.poisson.cdf(ta, tn * p) <= stats.poisson.cdf(na, nn * p) + 1e-12


# --- switching rules [SW] -----------------------------------------------------------------------

def _run(defects: list[int], *, lot: int = 1000, aql: float = 1.0, **kw: object) -> pd.DataFrame:
    return inspection_schedule([{"lot_id": f"L{i}", "lot_size": lot, "defects": d}
                                for i, d in enumerate(defects, start=1)], aql=aql, **kw)  # type: ignore[arg-type]


def test_two_of_five_not_accepted_switches_to_tightened() -> None:
    out = _run([0, 3, 0, 3, 0])                       # J, n = 80, 2/3: lots 2 and 4 rejected
    assert out["inspection_type"].tolist() == ["normal"] * 4 + ["tightened"]
    assert "2 of the last 4 lots" in out.loc[3, "reason"]
    assert out.loc[4, "sample_size"] == 80 and out.loc[4, "accept"] == 1   # tightened J: 1/2


def test_two_rejections_six_lots_apart_stay_normal() -> None:
    out = _run([3, 0, 0, 0, 0, 3, 0])
    assert set(out["inspection_type"]) == {"normal"}


def test_five_consecutive_accepted_on_tightened_returns_to_normal() -> None:
    out = _run([3, 3, 0, 0, 2, 0, 0, 0, 0, 0, 0])
    types = out["inspection_type"].tolist()
    # lots 3–7 tightened; lot 5 (2 > Ac 1) not accepted restarts the run: 6–10 accepted → normal
    assert types[:2] == ["normal", "normal"]
    assert types[2:10] == ["tightened"] * 8
    assert types[10] == "normal"
    assert "5 consecutive lots accepted" in out.loc[9, "reason"]


def test_five_not_accepted_on_tightened_discontinues_until_resumed() -> None:
    defects = [3, 3] + [2, 0] * 4 + [2, 0, 0]
    history = pd.DataFrame({"lot_size": 1000, "defects": defects})
    history["resume"] = False
    history.loc[len(defects) - 1, "resume"] = True
    out = inspection_schedule(history, aql=1.0)
    assert out.loc[10, "next_inspection"] == "discontinued"   # 5th rejection on tightened
    assert "5 lots not accepted on tightened" in out.loc[10, "reason"]
    assert out.loc[11, "inspection_type"] == "discontinued" and pd.isna(out.loc[11, "decision"])
    assert out.loc[12, "inspection_type"] == "tightened"
    assert "resumed after corrective action" in out.loc[12, "reason"]


def test_switching_score_ac_two_or_more() -> None:
    # J, AQL 1.0: Ac = 2; one step tighter (0.65 at J) has Ac = 1 → +3 when d ≤ 1, else reset.
    plan = single_sampling_plan(1000, aql=1.0)
    assert tighter_accept_number(plan) == 1
    out = _run([0, 1, 2, 0, 1])
    assert out["switching_score"].tolist() == [3, 6, 0, 3, 6]
    assert out["decision"].tolist() == ["accept"] * 5    # d = 2 is accepted but resets the score


def test_switching_score_ac_zero_or_one() -> None:
    # lot 200: G → ↓ H, n = 50, 1/2: +2 per accepted lot, reset on rejection.
    out = _run([0, 1, 0, 2, 0], lot=200)
    assert out["switching_score"].tolist() == [2, 4, 6, 0, 2]


def test_tighter_accept_number_follows_the_plan_letter() -> None:
    plan = single_sampling_plan(600_000, aql=1.0, level="III")   # R → ↑ Q: n = 1250, 21/22
    assert tighter_accept_number(plan) == 14               # 0.65 at Q: 14/15


def test_normal_to_reduced_needs_score_steady_production_and_approval() -> None:
    ten_clean = [0] * 10
    out = _run(ten_clean)
    assert out["switching_score"].iloc[-1] == 30
    assert set(out["next_inspection"]) == {"normal"}
    assert "approval by the responsible authority" in out["reason"].iloc[-1]
    out = _run(ten_clean, reduced_approved=True, production_steady=False)
    assert set(out["next_inspection"]) == {"normal"}
    assert "production steady" in out["reason"].iloc[-1]
    out = _run([*ten_clean, 0], reduced_approved=True)
    assert out["next_inspection"].iloc[9] == "reduced"
    assert out.loc[10, ["inspection_type", "sample_size", "accept", "reject"]].tolist() == [
        "reduced", 32, 1, 3]


def test_reduced_back_to_normal() -> None:
    start = SwitchingState(inspection="reduced")
    plan = single_sampling_plan(1000, aql=1.0, inspection="reduced")     # 32, 1/3
    assert next_state(start, LotResult(plan, 1)).inspection == "reduced"
    gap = next_state(start, LotResult(plan, 2))
    assert gap.inspection == "normal" and "between Ac 1 and Re 3" in gap.reason
    assert next_state(start, LotResult(plan, 3)).inspection == "normal"
    assert next_state(start, LotResult(plan, 0), production_steady=False).inspection == "normal"
    assert next_state(start, LotResult(plan, 0), other_conditions=True).inspection == "normal"


def test_schedule_columns_and_per_lot_flags() -> None:
    history = pd.DataFrame({"lot_id": [f"A{i}" for i in range(12)], "lot_size": 1000, "defects": 0,
                            "reduced_approved": [False] * 9 + [True] * 3})
    out = inspection_schedule(history, aql=1.0)
    assert list(out.columns) == ["lot_id", "lot_size", "inspection_type", "code_letter", "plan_letter",
                                 "sample_size", "accept", "reject", "defects", "decision", "outcome",
                                 "switching_score", "next_inspection", "reason"]
    assert out["lot_id"].iloc[0] == "A0"
    assert out["inspection_type"].tolist() == ["normal"] * 10 + ["reduced"] * 2
    assert out["switching_score"].iloc[10] == 0


def test_switching_errors() -> None:
    with pytest.raises(SamplingError, match="row 2: column 'defects' is missing"):
        inspection_schedule([{"lot_size": 100, "defects": 0}, {"lot_size": 100}], aql=1.0)
    with pytest.raises(SamplingError, match="row 1 \\(lot 1\\): 99 nonconforming units"):
        inspection_schedule([{"lot_size": 1000, "defects": 99}], aql=1.0)
    plan = single_sampling_plan(1000, aql=1.0)
    with pytest.raises(SamplingError, match="scheme is on tightened"):
        next_state(SwitchingState(inspection="tightened"), LotResult(plan, 0))
    with pytest.raises(SamplingError, match="discontinued"):
        next_state(SwitchingState(inspection="discontinued"), LotResult(plan, 0))
    with pytest.raises(SamplingError, match="not discontinued"):
        resume_inspection(SwitchingState())


# --- CLI ----------------------------------------------------------------------------------------

def test_cli_plan_table_and_json() -> None:
    import json

    from typer.testing import CliRunner

    from workbench.sampling_cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["plan", "--lot", "1000", "--aql", "1.0", "--level", "II"])
    assert res.exit_code == 0, res.output
    assert "J" in res.output and "80" in res.output
    res = runner.invoke(app, ["plan", "--lot", "1000", "--aql", "1.0", "--inspection", "reduced", "--json"])
    data = json.loads(res.output)
    assert (data["code_letter"], data["sample_size"], data["accept"], data["reject"]) == ("J", 32, 1, 3)
    res = runner.invoke(app, ["plan", "--lot", "1000", "--aql", "0.7"])
    assert res.exit_code == 2 and "not a preferred AQL" in res.output
