"""Streaming normalisation: counters, states, faults and data-quality rules, by hand-computed cases."""

from __future__ import annotations

import textwrap

import pytest

from workbench.ingest.stream import Normalizer
from workbench.sources.base import Batch, Gap, Reading
from workbench.sources.tags import load_tags

T0 = 1_763_300_000_000  # 2025-11-16 13:33:20 UTC
NOW = T0 + 3_600_000


@pytest.fixture
def tags(tmp_path):
    path = tmp_path / "tags.yaml"
    path.write_text(
        textwrap.dedent("""\
        version: 1
        defaults: {clock_skew_s: 5, max_rate_per_s: 2}
        sources:
          kep: {protocol: mqtt, url: "mqtt://127.0.0.1:1883"}
        states: {0: planned_stop, 1: running, 2: idle, 3: down, 4: setup}
        fault_codes: {2110: MECH-BRG}
        tags:
          - {source: kep, id: M1.good, machine_id: M1, metric: good_count, unit: count, kind: counter, counts: good}
          - {source: kep, id: M1.rej, machine_id: M1, metric: reject_count, unit: count, kind: counter, counts: reject}
          - {source: kep, id: M1.big, machine_id: M1, metric: big_count, unit: count, kind: counter, counts: good,
             bits: 32}
          - {source: kep, id: M1.state, machine_id: M1, metric: state, kind: state}
          - {source: kep, id: M1.fault, machine_id: M1, metric: fault, kind: fault}
          - {source: kep, id: M1.part, machine_id: M1, metric: part, kind: context, field: part_number}
          - {source: kep, id: M1.temp, machine_id: M1, metric: temp, unit: degC, kind: gauge, range: [-20, 150]}
        """)
    )
    return load_tags(path)


def batch(*items, gaps=()):
    return Batch(
        source="kep",
        readings=[Reading("kep", a, v, T0 + int(s * 1000), q) for a, v, s, q in items],
        gaps=list(gaps),
    )


def prod(rows):
    t = rows.tables.get("production_events")
    return (
        []
        if t is None
        else list(zip(t["good_count"].to_pylist(), t["reject_count"].to_pylist(), strict=True))
    )


def test_counter_increments_rollover_and_reset(tags):
    n = Normalizer(tags)
    # baseline 65530; +3 → 65533; rollover to 4: 65536 - 65533 + 4 = 7 increments in 10 s (≤ 2/s × 10 s = 20).
    rows = n.process(
        batch(("M1.good", 65530, 0, True), ("M1.good", 65533, 10, True), ("M1.good", 4, 20, True)),
        received_ms=NOW,
    )
    assert prod(rows) == [(3, 0), (7, 0)]
    assert rows.stats["counter_rollovers"] == 1
    # A drop from 500 to 6 in 10 s: a rollover would be 65536 - 500 + 6 = 65042 > 20, so a reset: 6 parts.
    n.state["counter"]["kep|M1.good"] = [T0 + 20_000, 500]
    rows = n.process(batch(("M1.good", 6, 30, True)), received_ms=NOW)
    assert prod(rows) == [(6, 0)] and rows.stats["counter_resets"] == 1
    # From 6 to 3 in 10 s: rollover 65533 > 20, and 3 parts since a reset would be possible — but a reset
    # needs the value to be reachable from 0, which 3 is: reset. From 60 to 40: neither → dead letter.
    n.state["counter"]["kep|M1.good"] = [T0 + 30_000, 60]
    rows = n.process(batch(("M1.good", 40, 40, True)), received_ms=NOW)
    assert prod(rows) == [] and rows.stats["counter_backwards"] == 1
    assert "went from 60 to 40" in rows.dead_letters[0]["reason"]
    # The baseline stays at 60: the next good reading (62) counts 2.
    rows = n.process(batch(("M1.good", 62, 50, True)), received_ms=NOW)
    assert prod(rows) == [(2, 0)]


def test_32_bit_counter_rolls_over_at_2_to_the_32(tags):
    n = Normalizer(tags)
    rows = n.process(batch(("M1.big", 4_294_967_290, 0, True), ("M1.big", 3, 5, True)), received_ms=NOW)
    assert prod(rows) == [(9, 0)]  # 2**32 - 4294967290 + 3 = 9
    rows = n.process(batch(("M1.big", 4_294_967_296, 6, True)), received_ms=NOW)
    assert rows.stats["out_of_range"] == 1


def test_good_and_reject_at_one_time_share_a_row_and_context_is_attached(tags):
    n = Normalizer(tags)
    n.process(
        batch(("M1.good", 10, 0, True), ("M1.rej", 5, 0, True), ("M1.part", "P-7", 0, True)), received_ms=NOW
    )
    rows = n.process(batch(("M1.good", 12, 10, True), ("M1.rej", 6, 10, True)), received_ms=NOW)
    t = rows.tables["production_events"]
    assert prod(rows) == [(2, 1)] and t["part_number"].to_pylist() == ["P-7"]
    # The reject reading of the same instant arriving in a later batch is not lost: 1 ms later.
    n.process(batch(("M1.good", 13, 20, True)), received_ms=NOW)
    rows = n.process(batch(("M1.rej", 7, 20, True)), received_ms=NOW)
    t = rows.tables["production_events"]
    assert prod(rows) == [(0, 1)] and t["time"][0].as_py().timestamp() * 1000 == T0 + 20_001


def test_bad_quality_is_kept_flagged_and_not_counted(tags):
    n = Normalizer(tags)
    rows = n.process(
        batch(("M1.good", 10, 0, True), ("M1.good", 999, 10, False), ("M1.good", 13, 20, True)),
        received_ms=NOW,
    )
    assert prod(rows) == [(3, 0)]  # 10 → 13; the flagged 999 is not used
    tel = rows.tables["machine_telemetry"]
    assert tel["quality"].to_pylist() == ["good", "bad", "good"] and tel["value"].to_pylist()[1] == 999.0


def test_states_become_intervals_and_stops_become_downtime_with_mapped_reason(tags):
    n = Normalizer(tags, reason_codes={"MECH-BRG": ("Mechanical Failure", False)})
    rows = n.process(
        batch(
            ("M1.state", 1, 0, True),
            ("M1.state", 1, 10, True),
            ("M1.state", 3, 60, True),
            ("M1.fault", 2110, 70, True),
            ("M1.fault", 0, 200, True),
            ("M1.state", 1, 300, True),
        ),
        received_ms=NOW,
    )
    st = rows.tables["machine_states"].to_pylist()
    assert [(r["state"], (r["time_end"] - r["time_start"]).total_seconds()) for r in st] == [
        ("running", 60.0),
        ("down", 240.0),
    ]
    dt = rows.tables["downtime_events"].to_pylist()
    assert len(dt) == 1 and dt[0]["duration_min"] == 4.0
    assert (dt[0]["fault_code"], dt[0]["reason_code"], dt[0]["reason_category"], dt[0]["planned"]) == (
        "2110",
        "MECH-BRG",
        "Mechanical Failure",
        False,
    )


def test_a_gap_is_no_data_from_the_last_good_reading_to_the_reconnect(tags):
    n = Normalizer(tags)
    n.process(batch(("M1.state", 1, 0, True)), received_ms=NOW)
    rows = n.process(
        batch(("M1.state", 1, 100, True), gaps=[Gap("kep", T0 + 30_000, T0 + 100_000, "lost")]),
        received_ms=NOW,
    )
    st = [
        (r["state"], (r["time_end"] - r["time_start"]).total_seconds())
        for r in rows.tables["machine_states"].to_pylist()
    ]
    assert st == [("running", 30.0), ("no_data", 70.0)]
    assert n.state["open_state"]["M1"][:2] == [T0 + 100_000, "running"]


@pytest.mark.parametrize(
    ("address", "value", "rule"),
    [
        ("M9.unknown", 1, "unknown_tag"),
        ("M1.temp", "hot", "wrong_type"),
        ("M1.temp", float("nan"), "not_finite"),
        ("M1.temp", 151.0, "out_of_range"),
        ("M1.temp", 1e300, "out_of_range"),
        ("M1.good", 1.5, "wrong_type"),
        ("M1.good", -1, "out_of_range"),
        ("M1.state", 9, "unknown_state"),
        ("M1.temp", True, "wrong_type"),
        ("M1.part", ["x"], "wrong_type"),
        ("M1.temp", None, "wrong_type"),
    ],
)
def test_data_quality_rules_dead_letter_with_the_rule(tags, address, value, rule):
    n = Normalizer(tags)
    rows = n.process(batch((address, value, 0, True), ("M1.temp", 20.0, 0, True)), received_ms=NOW)
    assert rows.stats[rule] == 1 and len(rows.dead_letters) == 1
    assert rows.dead_letters[0]["reason"].startswith(rule + ":")
    assert rows.dead_letters[0]["location"] == address
    assert rows.tables["machine_telemetry"].num_rows == 1  # the good reading beside it is stored


def test_timestamps_in_the_future_or_behind_the_watermark_are_dead_letters(tags):
    n = Normalizer(tags)
    rows = n.process(batch(("M1.temp", 20.0, 10, True)), received_ms=T0)  # 10 s ahead, tolerance 5 s
    assert rows.stats["future_timestamp"] == 1
    n.process(batch(("M1.temp", 20.0, 10, True)), received_ms=NOW)
    rows = n.process(batch(("M1.temp", 21.0, 5, True)), received_ms=NOW)
    assert (
        rows.stats["late"] == 1
        and "older than this tag's watermark by 5.000 s" in rows.dead_letters[0]["reason"]
    )
    rows = n.process(
        Batch(source="kep", readings=[Reading("kep", "M1.temp", 1.0, 12, True)]), received_ms=NOW
    )
    assert rows.stats["bad_timestamp"] == 1


def test_state_survives_a_round_trip_through_json(tags):
    import json

    n = Normalizer(tags)
    n.process(
        batch(("M1.good", 100, 0, True), ("M1.state", 1, 0, True), ("M1.part", "P-1", 0, True)),
        received_ms=NOW,
    )
    again = Normalizer(tags, state=json.loads(json.dumps(n.state)))
    rows = again.process(batch(("M1.good", 104, 10, True), ("M1.state", 2, 20, True)), received_ms=NOW)
    assert prod(rows) == [(4, 0)] and rows.tables["production_events"]["part_number"].to_pylist() == ["P-1"]
    assert rows.tables["machine_states"]["state"].to_pylist() == ["running"]


def test_a_drop_near_the_top_while_stopped_is_a_reset_not_a_rollover(tags):
    # 65533 → 0 could be 3 parts and a rollover (3 ≤ 2/s × 10 s); but the machine was down from before the
    # previous reading to after this one, so it made nothing: a PLC restart reset the counter (0 parts).
    n = Normalizer(tags)
    rows = n.process(
        batch(
            ("M1.state", 3, 0, True),
            ("M1.rej", 65533, 0, True),
            ("M1.rej", 0, 10, True),
            ("M1.state", 3, 10, True),
        ),
        received_ms=NOW,
    )
    assert prod(rows) == [] and rows.stats["counter_resets"] == 1 and rows.stats["counter_rollovers"] == 0
    # The same drop while running is a rollover: 3 parts.
    n = Normalizer(tags)
    rows = n.process(
        batch(
            ("M1.state", 1, 0, True),
            ("M1.rej", 65533, 0, True),
            ("M1.rej", 0, 10, True),
            ("M1.state", 3, 10, True),
        ),
        received_ms=NOW,
    )
    assert prod(rows) == [(0, 3)] and rows.stats["counter_rollovers"] == 1


def test_a_long_state_is_written_at_every_checkpoint_and_the_stop_stays_one_downtime(tags):
    # Down from T0 for 40 min, with a temperature reading every 5 min: 15-minute boundaries at B1 = the first
    # multiple of 900 000 ms after T0 and B2 = B1 + 15 min are passed, so [T0, B1) and [B1, B2) are written
    # before the stop ends; the downtime event still covers the whole stop, T0 … T0 + 40 min.
    n = Normalizer(tags)
    items = [("M1.state", 3, 0, True)] + [("M1.temp", 20.0, 300 * k, True) for k in range(1, 8)]
    rows = n.process(batch(*items), received_ms=NOW)
    b1 = (T0 // 900_000 + 1) * 900_000
    st = rows.tables["machine_states"].to_pylist()
    spans = [(int(r["time_start"].timestamp() * 1000), int(r["time_end"].timestamp() * 1000)) for r in st]
    assert spans == [(T0, b1), (b1, b1 + 900_000)] and {r["state"] for r in st} == {"down"}
    assert "downtime_events" not in rows.tables
    rows = n.process(batch(("M1.state", 1, 2400, True)), received_ms=NOW)
    st = rows.tables["machine_states"].to_pylist()
    assert [int(r["time_start"].timestamp() * 1000) for r in st] == [b1 + 900_000]
    dt = rows.tables["downtime_events"].to_pylist()
    assert len(dt) == 1 and dt[0]["duration_min"] == 40.0
