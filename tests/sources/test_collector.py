"""The collector's own rules, without servers: what happens to the time it was not running."""

from __future__ import annotations

import asyncio

from workbench.simulate.plc import opcua_node, tag_dictionary_yaml, tag_id
from workbench.sources.base import Batch, Reading
from workbench.sources.collector import Collector
from workbench.sources.spool import Spool
from workbench.sources.tags import load_tags

T0 = 1_763_300_000_000


def _collector(tmp_path, state=None):
    path = tmp_path / "tags.yaml"
    path.write_text(tag_dictionary_yaml(mqtt=["M01"], opcua=["M02"]))
    spool = Spool(tmp_path / "spool.sqlite")
    if state is not None:
        from workbench.ingest.stream import Rows

        spool.append(Rows(), state=state)
    return Collector(load_tags(path), spool=spool, open_warehouse=lambda: None), spool


def test_time_the_collector_was_down_is_no_data_for_opcua_not_for_mqtt(tmp_path):
    # Before the stop: M01 (MQTT) and M02 (OPC UA) running since T0, last readings at T0 + 10 s.
    state = {"open_state": {"M01": [T0, "running", None, T0], "M02": [T0, "running", None, T0]},
             "source_last": {"kepware": T0 + 10_000, "opcua": T0 + 10_000}}
    collector, spool = _collector(tmp_path, state)
    opc = Batch(source="opcua", readings=[Reading("opcua", opcua_node("M02", "state"), 1, T0 + 100_000)])
    mqtt = Batch(source="kepware", readings=[Reading("kepware", tag_id("M01", "state"), 1, T0 + 100_000)])
    rows = asyncio.run(collector.handle(opc))
    st = rows.tables["machine_states"].to_pylist()
    assert [(r["machine_id"], r["state"], int(r["time_start"].timestamp() * 1000),
             int(r["time_end"].timestamp() * 1000)) for r in st] == \
        [("M02", "running", T0, T0 + 10_000), ("M02", "no_data", T0 + 10_000, T0 + 100_000)]
    # The broker kept MQTT's messages: no gap, the interval simply goes on.
    rows = asyncio.run(collector.handle(mqtt))
    assert "machine_states" not in rows.tables
    # Only the first batch after the start is checked.
    later = Batch(source="opcua", readings=[Reading("opcua", opcua_node("M02", "state"), 2, T0 + 200_000)])
    rows = asyncio.run(collector.handle(later))
    assert rows.tables["machine_states"]["state"].to_pylist() == ["running"]
    spool.close()
