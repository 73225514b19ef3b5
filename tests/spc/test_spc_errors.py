"""Bad input gets a clear SPCError that says what is wrong and where."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench import spc
from workbench.errors import SPCError, WorkbenchError


def subgrouped(m: int = 12, n: int = 4, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"sg": np.repeat([f"S{i:02d}" for i in range(m)], n),
                         "v": rng.normal(10, 1, m * n)})


def attributes(m: int = 12) -> pd.DataFrame:
    return pd.DataFrame({"lot": [f"L{i}" for i in range(m)], "D": [3, 4, 2, 5] * (m // 4),
                         "n": [50] * m})


def test_spc_error_is_a_workbench_error() -> None:
    assert issubclass(SPCError, WorkbenchError)


@pytest.mark.parametrize("fn", [spc.xbar_r, spc.xbar_s])
def test_subgroups_of_size_one(fn) -> None:
    df = subgrouped()
    df = df[~((df["sg"] == "S03") & (df.index % 4 != 0))]  # S03 keeps one measurement
    with pytest.raises(SPCError, match=r"at least 2 measurements per subgroup; 1 subgroup\(s\) have "
                                       r"only 1: 'S03'.*imr"):
        fn(df, value="v", subgroup="sg")


def test_nan_value_names_row_and_subgroup() -> None:
    df = subgrouped()
    df.loc[9, "v"] = np.nan
    with pytest.raises(SPCError, match=r"value column 'v' has 1 missing or infinite value\(s\) at "
                                       r"row 9 \(subgroup 'S02'\)"):
        spc.xbar_r(df, value="v", subgroup="sg")
    with pytest.raises(SPCError, match="row 9"):
        spc.imr(df, value="v")


def test_non_numeric_and_missing_columns() -> None:
    df = subgrouped().astype({"v": object})
    df.loc[5, "v"] = "12,3"
    with pytest.raises(SPCError, match=r"value column 'v' is not numeric at row 5 \(subgroup 'S01'\): "
                                       r"'12,3'"):
        spc.xbar_r(df, value="v", subgroup="sg")
    with pytest.raises(SPCError, match=r"value column 'diameter' is not in the data \(columns: sg, v\)"):
        spc.xbar_r(subgrouped(), value="diameter", subgroup="sg")
    with pytest.raises(SPCError, match="pandas or polars DataFrame"):
        spc.xbar_r([1, 2, 3], value="v", subgroup="sg")
    with pytest.raises(SPCError, match="subgroup column 'sg' is empty at row 0"):
        spc.xbar_r(subgrouped().assign(sg=lambda d: d["sg"].where(d.index > 0)), value="v", subgroup="sg")


@pytest.mark.parametrize(("column", "value", "message"), [
    ("D", -1, r"defectives column 'D' has negative counts at row 2 \(subgroup 'L2'\)"),
    ("D", 2.5, r"defectives column 'D' must hold whole counts; 2.5 at row 2 \(subgroup 'L2'\)"),
    ("D", 51, r"more defectives than units inspected: 51 > 50 at row 2 \(subgroup 'L2'\)"),
    ("n", 0, r"size column 'n' must be positive; 0 at row 2"),
    ("n", 49.5, r"size column 'n' must hold whole numbers of units"),
])
def test_bad_counts(column: str, value: float, message: str) -> None:
    df = attributes()
    df[column] = df[column].astype(float)
    df.loc[2, column] = value
    with pytest.raises(SPCError, match=message):
        spc.p_chart(df, defectives="D", size="n", subgroup="lot")


def test_bad_counts_on_count_charts() -> None:
    df = pd.DataFrame({"x": [3, 4, -2, 5] * 3})
    with pytest.raises(SPCError, match="defects column 'x' has negative counts at row 2"):
        spc.c_chart(df, defects="x")
    with pytest.raises(SPCError, match="the u chart needs the sample size column"):
        spc.u_chart(df.abs(), defects="x", size=None)  # type: ignore[arg-type]


def test_constant_size_charts_refuse_varying_sizes() -> None:
    df = attributes()
    df.loc[3, "n"] = 60
    with pytest.raises(SPCError, match="np chart needs one sample size.*50…60 — use the p chart"):
        spc.np_chart(df, defectives="D", size="n")
    with pytest.raises(SPCError, match="use the u chart"):
        spc.c_chart(df, defects="D", size="n")


def test_duplicate_subgroups_in_attribute_and_individual_data() -> None:
    df = attributes()
    df.loc[5, "lot"] = "L1"
    with pytest.raises(SPCError, match=r"subgroup 'L1' appears in 2 rows \(row 1, row 5\)"):
        spc.p_chart(df, defectives="D", size="n", subgroup="lot")
    with pytest.raises(SPCError, match="use xbar_r"):
        spc.imr(subgrouped(), value="v", subgroup="sg")


def test_too_few_subgroups() -> None:
    with pytest.raises(SPCError, match=r"too few subgroups to estimate X̄ chart limits: 6 subgroups "
                                       r"are usable, at least 10 are needed.*min_subgroups="):
        spc.xbar_r(subgrouped(m=6), value="v", subgroup="sg")
    assert spc.xbar_r(subgrouped(m=6), value="v", subgroup="sg", min_subgroups=5).location.ucl
    with pytest.raises(SPCError, match="9 of 12 subgroups are usable"):
        spc.xbar_r(subgrouped(), value="v", subgroup="sg", exclude=["S00", "S01", "S02"])


def test_unknown_chart_rule_set_and_excluded_ids() -> None:
    with pytest.raises(SPCError, match="unknown chart 'shewhart'; charts are xbar_r, xbar_s, imr.*ewma, cusum"):
        spc.control_chart(subgrouped(), chart="shewhart", value="v", subgroup="sg")
    with pytest.raises(SPCError, match="unknown rule set 'western'"):
        spc.xbar_r(subgrouped(), value="v", subgroup="sg", rules="western")
    with pytest.raises(SPCError, match="exclude: subgroup 'S99' is not in the data"):
        spc.xbar_r(subgrouped(), value="v", subgroup="sg", exclude=["S99"])
    with pytest.raises(SPCError, match="needs the subgroup column"):
        spc.control_chart(subgrouped(), chart="xbar-s", value="v")
    with pytest.raises(SPCError, match="nsigmas must be positive"):
        spc.xbar_r(subgrouped(), value="v", subgroup="sg", nsigmas=0)


def test_no_variation() -> None:
    df = attributes().assign(D=0)
    with pytest.raises(SPCError, match=r"estimated sigma is 0 \(binomial\)"):
        spc.p_chart(df, defectives="D", size="n")
    flat = subgrouped().assign(v=5.0)
    with pytest.raises(SPCError, match=r"sigma is 0 \(R̄/d2\)"):
        spc.xbar_r(flat, value="v", subgroup="sg")


def test_phase_two_validates_new_data_too() -> None:
    pair = spc.xbar_r(subgrouped(), value="v", subgroup="sg")
    with pytest.raises(SPCError, match="only 1"):
        pair.apply(pd.DataFrame({"sg": ["N1"], "v": [10.0]}))
    with pytest.raises(SPCError, match="new data is empty"):
        pair.apply(pd.DataFrame({"sg": [], "v": []}))
