"""Configuration of the business syncs: the ERP mapping file, the pipelines' sync block, and the one
query per ERP entity (composed from quoted identifiers, values always bound)."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import psycopg
import pytest

from workbench import pipelines
from workbench.errors import ConfigError
from workbench.sources.erp import SqlErp, load_mapping
from workbench.sources.records import RecordError, as_count, as_time

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_mapping_and_sync_pipelines_load():
    mapping = load_mapping(ROOT / "pipelines" / "plant" / "erp.yaml")
    assert set(mapping.entities) == {"work_orders", "parts", "bom"}
    assert mapping.entities["bom"].key == ("parent_part", "mtl_part")
    found = pipelines.load_all(ROOT, default_timezone="America/Chicago")
    mm, erp = found["machinemetrics_sync"], found["erp_sync"]
    assert (mm.sync_source, mm.interval, mm.sync.overlap) == ("machinemetrics", dt.timedelta(minutes=5),
                                                              dt.timedelta(minutes=60))
    assert (erp.sync_source, erp.interval, erp.sync.overlap) == ("erp", dt.timedelta(minutes=15),
                                                                 dt.timedelta(minutes=15))


@pytest.mark.parametrize(("text", "says"), [
    ("entities:\n  work_order:\n    sql_table: a.b\n", "erp.yaml:2: unknown entity 'work_order'"),
    ("entities:\n  parts:\n    sql_table: a.b\n    key: [p]\n    modified: m\n    columns:\n"
     "      part_number: p\n      colour: c\n", "erp.yaml:8: parts has no column 'colour'"),
    ("entities:\n  work_orders:\n    sql_table: a.b\n    key: [w]\n    modified: m\n    columns:\n"
     "      work_order: w\n", "must map part_number, order_qty"),
    ("entities:\n  parts:\n    sql_table: a.b.c\n    key: [p]\n    modified: m\n    columns: {part_number: p}\n",
     "erp.yaml:3: 'a.b.c' is not a schema.table name"),
    ("entities:\n  parts:\n    sql_table: a.b\n    key: [p]\n    modified: m\n    columns: {part_number: p}\n"
     "    filter: x > 1\n", "erp.yaml:7: unknown key 'filter'"),
    ("entities:\n  parts:\n    sql_table: a.b\n    key: [p]\n    key: [q]\n", "erp.yaml:5: key 'key' given twice"),
])
def test_a_wrong_mapping_file_says_where(tmp_path, text, says):
    path = tmp_path / "erp.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=None) as err:
        load_mapping(path)
    assert says in str(err.value)


def test_one_parameterized_query_per_entity_with_quoted_identifiers(tmp_path, pg_url):
    """A hostile column name in the mapping stays one quoted identifier; no value is ever in the text."""
    path = tmp_path / "erp.yaml"
    path.write_text('entities:\n  parts:\n    sql_table: erp.part_master\n    key: [part_num]\n'
                    '    modified: last_modified\n    columns:\n      part_number: part_num\n'
                    '      description: \'x"; DROP TABLE parts; --\'\n')
    spec = load_mapping(path).entities["parts"]
    with psycopg.connect(pg_url) as conn:
        first = SqlErp.query(spec, after=True, keyset=False).as_string(conn)
        page = SqlErp.query(spec, after=False, keyset=True).as_string(conn)
    assert first == ('SELECT "part_num", "x""; DROP TABLE parts; --", "last_modified" FROM "erp"."part_master" '
                     'WHERE "last_modified" > %s ORDER BY "last_modified", "part_num" LIMIT %s')
    assert page.endswith('WHERE ("last_modified", "part_num") > (%s, %s) ORDER BY "last_modified", "part_num" '
                         'LIMIT %s')


_SQL_MODULES = ["src/workbench/sources/erp.py", "src/workbench/sources/machinemetrics.py",
                "src/workbench/sources/sync.py", "src/workbench/sources/syncs.py",
                "src/workbench/sources/health.py", "src/workbench/simulate/erp.py"]


@pytest.mark.parametrize("module", _SQL_MODULES)
def test_no_sql_is_built_by_string_formatting(module):
    """Every ``execute`` / ``query`` call of the sync path gets a literal or a psycopg ``sql`` object —
    never an f-string, ``%`` or ``+`` or ``.format`` of text (bandit's B608 checks the same in make test)."""
    path = ROOT / module
    if not path.exists():
        pytest.skip(f"{module} not there")
    tree = ast.parse(path.read_text())
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr in ("execute", "executemany", "query", "copy") and node.args:
            arg = node.args[0]
            stringy = isinstance(arg, ast.JoinedStr) or (
                isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Mod | ast.Add)) or (
                isinstance(arg, ast.Call) and isinstance(arg.func, ast.Attribute) and arg.func.attr == "format"
                and isinstance(arg.func.value, ast.Constant))
            if stringy:
                bad.append(f"{module}:{node.lineno}")
    assert not bad, f"SQL built from text: {bad}"


def test_records_are_read_strictly():
    assert as_count(4.0, "goodParts") == 4
    for value in ("12 pcs", 3.5, True, -1, None, float("nan")):
        with pytest.raises(RecordError, match="goodParts"):
            as_count(value, "goodParts")
    assert as_time("2026-10-19T11:00:05.123Z", "t") == dt.datetime(2026, 10, 19, 11, 0, 5, 123000, tzinfo=dt.UTC)
    with pytest.raises(RecordError, match="without a UTC offset"):
        as_time("2026-10-19T11:00:05", "t")


@pytest.mark.parametrize(("block", "says"), [
    ("sync: {overlap: 5 minutes}", "sync.overlap must look like 90s, 60m, 2h or 7d"),
    ("sync: {machines: M01}", "sync.machines must be a list"),
    ("sync: {entities: [work_orders]}", "sync.entities is for erp_sync pipelines"),
    ("sync: {page_size: 0}", "sync.page_size must be a whole number ≥ 1"),
    ("sync: {pages: 3}", "unknown key(s) pages"),
])
def test_a_wrong_sync_block_says_what(tmp_path, block, says):
    (tmp_path / "pipelines").mkdir()
    path = tmp_path / "pipelines" / "mm.yaml"
    path.write_text(f"kind: machinemetrics_sync\nschedule: {{interval: 5m}}\n{block}\n")
    with pytest.raises(ConfigError) as err:
        pipelines.load_pipeline(path, home=tmp_path, default_timezone="UTC")
    assert says in str(err.value)
