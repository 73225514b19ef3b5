"""The MachineMetrics-shaped API simulator, over real HTTP (httpx → uvicorn on 127.0.0.1).

The reference is the simulated plant's own frames: what the API answers must be exactly their
rows (same instants, same counts), whatever the paging; late data, faults and the request log
must behave as the contract in :mod:`workbench.simulate.machinemetrics` says.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from workbench.errors import SimulationError
from workbench.simulate import PlantConfig, SimulatedPlant, simulate_plant
from workbench.simulate.http import ServedApp
from workbench.simulate.machinemetrics import machinemetrics_app

KEY = "test-key-mm"
AUTH = {"Authorization": f"Bearer {KEY}"}
#: Monday 2026-10-19 06:00 CDT is 11:00 UTC: the plant runs three days from then.
CONFIG = PlantConfig(seed=3, n_machines=3, n_lines=1, days=3, start=dt.date(2026, 10, 19),
                     telemetry=False, cycle_events=False)


def z(when: dt.datetime | pd.Timestamp) -> str:
    return pd.Timestamp(when).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture(scope="module")
def plant() -> SimulatedPlant:
    return simulate_plant(CONFIG)


@pytest.fixture
def serve(plant: SimulatedPlant) -> Iterator[Callable[..., httpx.Client]]:
    """``serve(**options)`` serves a fresh app (no faults, empty log) and returns a client of it."""
    with ExitStack() as stack:

        def start(**options: Any) -> httpx.Client:
            served = stack.enter_context(ServedApp(machinemetrics_app(plant, api_key=KEY, **options)))
            return stack.enter_context(httpx.Client(base_url=served.url, headers=AUTH, timeout=10))

        yield start


def fetch_all(client: httpx.Client, path: str, params: dict[str, Any]) -> tuple[list[dict], list[int]]:
    """Every record by following nextPage; also the size of each page."""
    records, sizes, page = [], [], 1
    while page is not None:
        r = client.get(path, params={**params, "page": page})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["page"] == page
        records += body["data"]
        sizes.append(len(body["data"]))
        page = body["nextPage"]
        assert page is None or page == body["page"] + 1
    return records, sizes


def utc(values: list[str]) -> pd.Series:
    return pd.Series(pd.to_datetime(values, utc=True, format="ISO8601")).astype("datetime64[us, UTC]")


# ---------------------------------------------------------------------------------------------
# serving


def test_served_app_reports_its_port_accepts_connections_and_stops(plant: SimulatedPlant) -> None:
    served = ServedApp(machinemetrics_app(plant, api_key=KEY), port=0)
    with served:
        port = served.port
        assert port > 0 and served.url == f"http://127.0.0.1:{port}"
        assert httpx.get(f"{served.url}/v1/machines", headers=AUTH).status_code == 200
    assert not served.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/v1/machines", headers=AUTH, timeout=2)
    # A restart on the same port works (a demo that is stopped and started again).
    with ServedApp(machinemetrics_app(plant, api_key=KEY), port=port) as again:
        assert httpx.get(f"{again.url}/v1/machines", headers=AUTH).status_code == 200


def test_a_busy_port_is_a_simulation_error(plant: SimulatedPlant) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(SimulationError, match="cannot serve"):
            ServedApp(machinemetrics_app(plant, api_key=KEY), port=busy.getsockname()[1]).start()


# ---------------------------------------------------------------------------------------------
# auth, machines, reports


def test_every_endpoint_needs_the_bearer_key(serve) -> None:
    client = serve()
    paths = ["/v1/machines", "/v1/report/production?machineId=M01&startDate=2026-10-19T00:00:00Z"
             "&endDate=2026-10-20T00:00:00Z", "/_sim/requests", "/_sim/faults", "/_sim/clock"]
    for path in paths:
        for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
            r = client.get(path, headers=headers)
            assert r.status_code == 401, (path, headers)
            assert r.json() == {"error": "unauthorized"}
        assert client.get(path).status_code == 200, path


def test_machines_are_the_plants_machines(serve, plant: SimulatedPlant) -> None:
    body = serve().get("/v1/machines").json()
    assert body["page"] == 1 and body["nextPage"] is None
    m = plant.tables["machines"].sort_values("machine_id")
    assert [d["machineId"] for d in body["data"]] == m["machine_id"].tolist()
    assert [d["name"] for d in body["data"]] == m["name"].tolist()
    assert [d["line"] for d in body["data"]] == m["line"].tolist()
    assert [d["machineType"] for d in body["data"]] == m["machine_type"].tolist()
    assert [d["idealCycleTimeS"] for d in body["data"]] == m["ideal_cycle_time_s"].tolist()
    # Paging applies to machines too.
    first = serve().get("/v1/machines", params={"pageSize": 2}).json()
    assert len(first["data"]) == 2 and first["nextPage"] == 2


def test_production_across_pages_is_exactly_the_simulators_rows(serve, plant: SimulatedPlant) -> None:
    start, end = pd.Timestamp("2026-10-19T14:30:00Z"), pd.Timestamp("2026-10-21T09:15:00Z")
    records, sizes = fetch_all(serve(), "/v1/report/production",
                               {"machineId": "M02", "startDate": z(start), "endDate": z(end), "pageSize": 500})
    pe = plant.tables["production_events"]
    truth = pe[(pe["machine_id"] == "M02") & (pe["time"] >= start) & (pe["time"] < end)].sort_values("time")
    assert len(sizes) >= 3 and all(s == 500 for s in sizes[:-1]) and 0 < sizes[-1] <= 500
    assert len(records) == len(truth)

    got = pd.DataFrame(records)
    assert got["timestamp"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z").all()
    # The same instants, to the microsecond, in the same order.
    assert (utc(got["timestamp"].tolist()).to_numpy() == truth["time"].to_numpy()).all()
    got["hour"] = utc(got["timestamp"].tolist()).dt.floor("h")
    by_hour = got.groupby("hour")[["goodParts", "rejectParts"]].sum()
    want = truth.assign(hour=truth["time"].dt.floor("h")).groupby("hour")[["good_count", "reject_count"]].sum()
    assert by_hour["goodParts"].tolist() == want["good_count"].astype(int).tolist()
    assert by_hour["rejectParts"].tolist() == want["reject_count"].astype(int).tolist()
    assert (by_hour.index == want.index).all()

    first, row = records[0], truth.iloc[0]
    assert first["machineId"] == "M02" and first["type"] == row["event_type"] == "count"
    assert first["partNumber"] == row["part_number"] and first["workOrder"] == row["work_order"]
    assert first["cycleTimeMs"] == row["cycle_time_ms"] and first["operator"] == row["operator_id"]
    assert got["rejectReason"].isna().sum() == truth["reject_reason"].isna().sum()
    assert set(got["rejectReason"].dropna()) == set(truth["reject_reason"].dropna())


def test_states_and_downtime_are_the_intervals_ending_in_the_window(serve, plant: SimulatedPlant) -> None:
    client = serve()
    start, end = pd.Timestamp("2026-10-20T02:00:00Z"), pd.Timestamp("2026-10-21T02:00:00Z")
    params = {"machineId": "M01", "startDate": z(start), "endDate": z(end), "pageSize": 50}

    states, _ = fetch_all(client, "/v1/report/states", params)
    ms = plant.tables["machine_states"]
    want = ms[(ms["machine_id"] == "M01") & (ms["time_end"] >= start) & (ms["time_end"] < end)]
    want = want.sort_values(["time_end", "time_start"])
    assert len(states) == len(want) > 50
    assert (utc([s["start"] for s in states]).to_numpy() == want["time_start"].to_numpy()).all()
    assert (utc([s["end"] for s in states]).to_numpy() == want["time_end"].to_numpy()).all()
    assert [s["state"] for s in states] == want["state"].tolist()
    assert [s["faultCode"] for s in states] == [None if pd.isna(f) else f for f in want["fault_code"]]

    stops, _ = fetch_all(client, "/v1/report/downtime", params)
    de = plant.tables["downtime_events"]
    want = de[(de["machine_id"] == "M01") & (de["time_end"] >= start) & (de["time_end"] < end)]
    want = want.sort_values(["time_end", "time_start"])
    assert len(stops) == len(want) > 0
    assert (utc([s["start"] for s in stops]).to_numpy() == want["time_start"].to_numpy()).all()
    assert [s["reasonCode"] for s in stops] == [None if pd.isna(v) else v for v in want["reason_code"]]
    assert [s["category"] for s in stops] == [None if pd.isna(v) else v for v in want["reason_category"]]
    assert [s["planned"] for s in stops] == [None if pd.isna(v) else bool(v) for v in want["planned"]]
    assert [s["operator"] for s in stops] == [None if pd.isna(v) else v for v in want["operator_id"]]
    assert set(stops[0]) == {"machineId", "start", "end", "reasonCode", "category", "planned", "workOrder",
                             "operator", "faultCode", "notes"}


def test_an_empty_window_and_a_page_past_the_end_have_no_next_page(serve) -> None:
    client = serve()
    base = {"machineId": "M03", "startDate": "2026-10-18T00:00:00Z", "endDate": "2026-10-18T06:00:00Z"}
    assert client.get("/v1/report/production", params=base).json() == {
        "data": [], "page": 1, "pageSize": 1000, "nextPage": None}
    busy = {**base, "startDate": "2026-10-19T00:00:00Z", "endDate": "2026-10-23T00:00:00Z", "page": 999}
    assert client.get("/v1/report/production", params=busy).json()["nextPage"] is None


def test_bad_requests_are_400_and_unknown_machines_404(serve) -> None:
    client = serve(max_page_size=100)
    ok = {"machineId": "M01", "startDate": "2026-10-19T11:00:00Z", "endDate": "2026-10-19T12:00:00+00:00"}
    assert client.get("/v1/report/production", params=ok).status_code == 200
    bad = [
        {k: v for k, v in ok.items() if k != "startDate"},
        {k: v for k, v in ok.items() if k != "machineId"},
        {**ok, "startDate": "yesterday"},
        {**ok, "startDate": "2026-10-19T11:00:00"},  # no offset
        {**ok, "endDate": ok["startDate"]},
        {**ok, "startDate": "2026-10-19T13:00:00Z"},
        {**ok, "pageSize": 101},
        {**ok, "pageSize": 0},
        {**ok, "page": 0},
        {**ok, "page": "two"},
    ]
    for params in bad:
        r = client.get("/v1/report/states", params=params)
        assert r.status_code == 400, params
        assert isinstance(r.json()["error"], str) and r.json()["error"]
    r = client.get("/v1/report/downtime", params={**ok, "machineId": "M99"})
    assert r.status_code == 404 and "M99" in r.json()["error"]
    assert client.get("/v1/report/nothing", params=ok).status_code == 404


# ---------------------------------------------------------------------------------------------
# late data and the clock


def test_late_records_appear_once_their_delay_has_passed(serve, plant: SimulatedPlant) -> None:
    late = 900.0
    params = {"machineId": "M01", "startDate": "2026-10-20T12:00:00Z", "endDate": "2026-10-20T18:00:00Z",
              "pageSize": 5000}
    pe = plant.tables["production_events"]
    truth = pe[(pe["machine_id"] == "M01") & (pe["time"] >= params["startDate"])
               & (pe["time"] < params["endDate"])]
    # Now: 3 h into the window, moved to the first record with 10 records in the 15 minutes before
    # it (the machine may be stopped at a given hour).
    t = truth["time"].sort_values().reset_index(drop=True)
    n_before = np.arange(len(t)) - np.searchsorted(t, t - pd.Timedelta(seconds=late), side="right")
    now = t[(t >= pd.Timestamp("2026-10-20T15:00:00Z")) & (n_before >= 10)].iloc[0]
    client = serve(now=now.to_pydatetime(), late_max_s=late)

    seen = utc([r["timestamp"] for r in client.get("/v1/report/production", params=params).json()["data"]])
    assert (seen <= now).all(), "nothing after now"
    older = truth["time"][truth["time"] <= now - pd.Timedelta(seconds=late)]
    assert set(older) <= set(seen), "a record older than the largest delay is always visible"
    recent = truth["time"][(truth["time"] > now - pd.Timedelta(seconds=late)) & (truth["time"] <= now)]
    hidden = sorted(set(recent) - set(seen))
    assert len(recent) > 5 and hidden, "some records of the last late_max_s are not reported yet"
    # The same record is always equally late: the same request gives the same answer.
    again = utc([r["timestamp"] for r in client.get("/v1/report/production", params=params).json()["data"]])
    assert list(again) == list(seen)

    later = now + pd.Timedelta(seconds=late)
    assert pd.Timestamp(client.post("/_sim/clock", json={"now": z(later)}).json()["now"]) == later
    seen_later = set(utc([r["timestamp"] for r in client.get("/v1/report/production", params=params).json()["data"]]))
    assert set(hidden) <= seen_later
    assert set(truth["time"][truth["time"] <= now]) <= seen_later


def test_without_late_data_everything_up_to_now_is_visible(serve, plant: SimulatedPlant) -> None:
    client = serve(now=dt.datetime(2026, 10, 20, 15, 0, tzinfo=dt.UTC))
    params = {"machineId": "M03", "startDate": "2026-10-20T14:00:00Z", "endDate": "2026-10-20T16:00:00Z"}
    pe = plant.tables["production_events"]
    truth = pe[(pe["machine_id"] == "M03") & (pe["time"] >= "2026-10-20T14:00:00Z")
               & (pe["time"] <= "2026-10-20T15:00:00Z")]
    assert len(client.get("/v1/report/production", params=params).json()["data"]) == len(truth) > 0
    # The default clock (no now) is the end of the horizon: the whole window is there.
    everything = serve().get("/v1/report/production", params=params).json()["data"]
    assert len(everything) == ((pe["machine_id"] == "M03") & (pe["time"] >= "2026-10-20T14:00:00Z")
                               & (pe["time"] < "2026-10-20T16:00:00Z")).sum()


def test_a_callable_clock_is_read_at_each_request(serve) -> None:
    clock = {"now": dt.datetime(2026, 10, 19, 12, 0, tzinfo=dt.UTC)}
    client = serve(now=lambda: clock["now"])
    params = {"machineId": "M01", "startDate": "2026-10-19T11:00:00Z", "endDate": "2026-10-20T11:00:00Z"}
    before = len(client.get("/v1/report/states", params=params).json()["data"])
    clock["now"] = dt.datetime(2026, 10, 19, 20, 0, tzinfo=dt.UTC)
    assert len(client.get("/v1/report/states", params=params).json()["data"]) > before
    assert client.get("/_sim/clock").json()["now"] == "2026-10-19T20:00:00Z"


# ---------------------------------------------------------------------------------------------
# faults


PROD = {"machineId": "M01", "startDate": "2026-10-19T11:00:00Z", "endDate": "2026-10-19T23:00:00Z"}


def test_error_faults_answer_in_order_then_the_api_recovers(serve) -> None:
    client = serve()
    r = client.post("/_sim/faults", json={"http_429": 2, "retry_after_s": 3, "http_500": 1, "http_503": 1})
    assert r.status_code == 200 and r.json()["faults"]["http_429"] == 2
    answers = [client.get("/v1/report/production", params=PROD) for _ in range(5)]
    assert [a.status_code for a in answers] == [429, 429, 500, 503, 200]
    assert answers[0].headers["Retry-After"] == "3" and answers[0].json() == {"error": "rate limited"}
    assert answers[2].json()["error"] and answers[3].json()["error"]
    assert answers[4].json()["data"]


def test_delay_fault_holds_the_answer(serve) -> None:
    client = serve()
    client.post("/_sim/faults", json={"delay_s": 0.6, "delay_count": 1})
    t0 = time.monotonic()
    slow = client.get("/v1/machines")
    slow_s = time.monotonic() - t0
    t0 = time.monotonic()
    fast = client.get("/v1/machines")
    fast_s = time.monotonic() - t0
    assert slow.status_code == fast.status_code == 200 and slow.json() == fast.json()
    assert slow_s >= 0.6 > fast_s
    # A client with a shorter timeout gives up on a delayed answer.
    client.post("/_sim/faults", json={"delay_s": 1, "delay_count": 1})
    with pytest.raises(httpx.ReadTimeout):
        client.get("/v1/machines", timeout=0.3)


def test_truncate_fault_cuts_the_body_so_the_json_is_invalid(serve) -> None:
    client = serve()
    whole = client.get("/v1/report/production", params=PROD)
    client.post("/_sim/faults", json={"truncate": 1})
    cut = client.get("/v1/report/production", params=PROD)
    assert cut.status_code == 200
    assert int(cut.headers["Content-Length"]) == len(cut.content) == len(whole.content) // 2
    assert cut.content == whole.content[: len(whole.content) // 2]
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut.content)
    assert client.get("/v1/report/production", params=PROD).content == whole.content


def test_malformed_fault_spoils_the_first_record_of_responses_with_data(serve) -> None:
    client = serve()
    empty = {**PROD, "startDate": "2026-10-18T00:00:00Z", "endDate": "2026-10-18T01:00:00Z"}
    client.post("/_sim/faults", json={"malformed": 3})
    # An empty answer has nothing to spoil: the fault waits for one with data.
    assert client.get("/v1/report/production", params=empty).json()["data"] == []
    prod = client.get("/v1/report/production", params=PROD).json()["data"]
    assert prod[0]["goodParts"] == "12 pcs" and isinstance(prod[1]["goodParts"], int)
    assert client.get("/v1/report/states", params=PROD).json()["data"][0]["start"] == "yesterday"
    assert client.get("/v1/machines").json()["data"][0]["idealCycleTimeS"] == "fast"
    assert isinstance(client.get("/v1/report/production", params=PROD).json()["data"][0]["goodParts"], int)
    client.post("/_sim/faults", json={"malformed": 1})
    assert client.get("/v1/report/downtime", params=PROD).json()["data"][0]["start"] == "yesterday"


def test_faults_with_a_path_only_hit_matching_requests(serve) -> None:
    client = serve()
    client.post("/_sim/faults", json={"http_500": 2, "path": "production"})
    assert client.get("/v1/machines").status_code == 200
    assert client.get("/v1/report/states", params=PROD).status_code == 200
    assert [client.get("/v1/report/production", params=PROD).status_code for _ in range(3)] == [500, 500, 200]


def test_posting_faults_replaces_them_and_bad_faults_are_400(serve) -> None:
    client = serve()
    client.post("/_sim/faults", json={"http_503": 5})
    client.post("/_sim/faults", json={"http_500": 1})
    assert [client.get("/v1/machines").status_code for _ in range(2)] == [500, 200]
    client.post("/_sim/faults", json={"http_503": 5})
    assert client.post("/_sim/faults", json={}).json()["faults"]["http_503"] == 0
    assert client.get("/v1/machines").status_code == 200
    for body in ({"http_500": -1}, {"http_500": "2"}, {"teapot": 1}, {"delay_s": "slow"}, [1]):
        assert client.post("/_sim/faults", json=body).status_code == 400, body
    assert client.post("/_sim/faults", content=b"{not json").status_code == 400
    # /_sim endpoints are never faulted.
    client.post("/_sim/faults", json={"http_500": 1})
    assert client.get("/_sim/requests").status_code == 200
    assert client.get("/v1/machines").status_code == 500


def test_request_log_lists_every_request_served(serve) -> None:
    client = serve()
    client.get("/v1/machines")
    assert client.delete("/_sim/requests").status_code == 200
    client.post("/_sim/faults", json={"http_429": 1, "retry_after_s": 0})
    client.get("/v1/report/production", params={**PROD, "pageSize": 10})
    client.get("/v1/report/production", params={**PROD, "pageSize": 10, "page": 2})
    client.get("/v1/report/states", params={**PROD, "machineId": "M77"})
    log = client.get("/_sim/requests").json()["data"]
    # The API's traffic only: the /_sim control requests are not part of it.
    assert [(e["path"], e["status"]) for e in log] == [
        ("/v1/report/production", 429),
        ("/v1/report/production", 200),
        ("/v1/report/states", 404),
    ]
    assert "page=2" in log[1]["query"] and "startDate=2026-10-19T11:00:00Z" in log[1]["query"]
    times = [dt.datetime.fromisoformat(e["time"]) for e in log]
    assert all(t.tzinfo is not None for t in times) and times == sorted(times)
    assert all(len(e["time"].split(".")[1]) >= 6 for e in log)


def test_a_full_page_of_the_largest_size_is_served_whole(serve, plant: SimulatedPlant) -> None:
    """5000 records in one page (a sync asks for big pages): all there, every number finite.
    (How fast it is, is benchmarks/bench_sync.py's business, not a test's.)"""
    client = serve()
    params = {"machineId": "M01", "startDate": "2026-10-19T00:00:00Z", "endDate": "2026-10-23T00:00:00Z",
              "pageSize": 5000}
    body = client.get("/v1/report/production", params=params).json()
    assert len(body["data"]) == min(5000, int((plant.tables["production_events"]["machine_id"] == "M01").sum()))
    assert np.isfinite([d["cycleTimeMs"] for d in body["data"]]).all()


# ---------------------------------------------------------------------------------------------
# simulate serve


def test_serve_apis_prints_the_environment_and_serves_up_to_the_wall_clock(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from workbench.simulate.serve import serve_apis

    monkeypatch.setenv("WORKBENCH_MM_API_KEY", "fixed-mm-key")
    settings = SimpleNamespace(plant_timezone="America/Chicago", site="PLANT9")
    stop = threading.Event()
    # A week, so that whatever the weekday the history has working days in it.
    options = {"machinemetrics": True, "erp": False, "machines": 2, "days": 7, "seed": 5, "mm_port": 0,
               "erp_port": 0, "erp_admin_url": None, "settings": settings}
    thread = threading.Thread(target=serve_apis, kwargs={**options, "stop": stop}, daemon=True)
    thread.start()
    out, deadline = "", time.monotonic() + 30
    while "WORKBENCH_MM_API_KEY" not in out and time.monotonic() < deadline:
        time.sleep(0.05)
        out += capsys.readouterr().out
    try:
        env = dict(line.split("=", 1) for line in out.splitlines() if line.startswith("WORKBENCH_"))
        assert env["WORKBENCH_MM_API_KEY"] == "fixed-mm-key" and set(env) == {
            "WORKBENCH_MM_BASE_URL", "WORKBENCH_MM_API_KEY"}
        with httpx.Client(base_url=env["WORKBENCH_MM_BASE_URL"],
                          headers={"Authorization": "Bearer fixed-mm-key"}) as client:
            machines = client.get("/v1/machines").json()["data"]
            assert [m["machineId"] for m in machines] == ["M01", "M02"] and machines[0]["site"] == "PLANT9"
            now = dt.datetime.now(dt.UTC)
            params = {"machineId": "M01", "startDate": z(now - dt.timedelta(days=8)),
                      "endDate": z(now + dt.timedelta(days=2)), "pageSize": 5000}
            records, _ = fetch_all(client, "/v1/report/production", params)
        # Days of history are there; nothing after the wall clock is.
        times = utc([r["timestamp"] for r in records])
        assert len(records) > 500 and times.max() <= pd.Timestamp(dt.datetime.now(dt.UTC))
        assert times.min() < pd.Timestamp(now - dt.timedelta(days=1))
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()


def test_serve_apis_needs_a_database_for_the_erp() -> None:
    from workbench.errors import ConfigError
    from workbench.simulate.serve import serve_apis

    settings = SimpleNamespace(plant_timezone="America/Chicago", site="PLANT1")
    with pytest.raises(ConfigError, match="needs PostgreSQL: give --erp-admin-url"):
        serve_apis(machinemetrics=False, erp=True, machines=2, days=2, seed=5, mm_port=0, erp_port=0,
                   erp_admin_url=None, settings=settings, stop=threading.Event())
