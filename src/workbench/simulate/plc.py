"""The PLC image of a simulated plant: what each machine's controller shows at every scan.

The protocol simulators (KEPServerEX-format MQTT publisher, OPC UA server, Modbus TCP server) all
serve this one image, so the live path is scored against the same ground truth as the rest of the
simulator. Per machine and scan time ``t`` (epoch-aligned multiples of ``scan_ms``):

* ``good_count`` / ``reject_count``: 16-bit cumulative counters of the cycles completed at or
  before ``t`` (good / rejected), starting high enough to roll over within hours, and set to 0 by
  PLC restarts (the simulator's resets plus one injected reset per machine, in its first long
  stop). :attr:`PlcImage.counter_events` lists every rollover and reset.
* ``state``: code of the machine state at ``t`` (:data:`STATE_CODES`).
* ``fault_code``: the active PLC fault as a number (``F2110`` → 2110), 0 when none.
* ``part_number``: the part of the current work order (text).
* the five analog gauges, sample-and-hold from the simulated telemetry, with its quality flags.

:meth:`PlcImage.expected_counts` is the reference for reconciliation: cycles counted at the scan
that first sees them (a reading at ``t`` includes cycles completed at or before ``t``), summed per
machine-hour — computed from the simulator's cycles, not from anything the collector wrote.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from workbench.errors import SimulationError
from workbench.simulate.plant import SimulatedPlant
from workbench.simulate.signals import COUNTER_MODULO, METRICS, counter_values
from workbench.simulate.timeline import HOUR

#: PLC state codes of the simulated machines.
STATE_CODES: dict[str, int] = {"planned_stop": 0, "running": 1, "idle": 2, "down": 3, "setup": 4}
GAUGES: tuple[tuple[str, str], ...] = tuple(m for m in METRICS if not m[0].endswith("_count_total"))
GAUGE_RANGES: dict[str, tuple[float, float]] = {
    "spindle_load": (0.0, 200.0),
    "vibration_rms": (0.0, 50.0),
    "hydraulic_pressure": (0.0, 400.0),
    "motor_current": (0.0, 200.0),
    "drive_temp": (-20.0, 150.0),
}
COUNTERS: tuple[str, ...] = ("good_count", "reject_count")


def _ms(series: pd.Series) -> np.ndarray:
    return series.astype("datetime64[ms, UTC]").astype("int64").to_numpy()


@dataclass(frozen=True, eq=False)
class MachineImage:
    """Tag values of one machine at every scan (arrays aligned with :attr:`PlcImage.times`)."""

    machine_id: str
    good_count: np.ndarray
    reject_count: np.ndarray
    state: np.ndarray
    fault_code: np.ndarray
    part_number: np.ndarray
    gauges: dict[str, np.ndarray]
    gauge_good: dict[str, np.ndarray]


@dataclass(frozen=True, eq=False)
class PlcImage:
    """Every machine's tag values at every scan of ``[start_ms, end_ms)`` (see the module docstring)."""

    scan_ms: int
    times: np.ndarray
    machines: dict[str, MachineImage]
    counter_events: pd.DataFrame
    cycles: pd.DataFrame  # machine_id, time (ms), good (bool): every simulated cycle

    @classmethod
    def from_plant(
        cls,
        plant: SimulatedPlant,
        *,
        scan_s: float = 10.0,
        start: pd.Timestamp | None = None,
        hours: float | None = None,
    ) -> PlcImage:
        """Build the image of ``plant`` (simulated with ``collector_outages=False``).

        Parameters
        ----------
        plant : SimulatedPlant
            The plant; it needs telemetry and one production event per cycle.
        scan_s : float
            Scan interval of the PLCs, seconds (whole milliseconds, dividing an hour).
        start, hours : optional
            Restrict the image to ``hours`` from ``start`` (default: the whole horizon).
        """
        cfg = plant.config
        if cfg.collector_outages or not cfg.telemetry or not cfg.cycle_events:
            raise SimulationError(
                "a PLC image needs a plant simulated with collector_outages=False, "
                "telemetry=True and cycle_events=True"
            )
        scan_ms = round(scan_s * 1000)
        if scan_ms <= 0 or HOUR % scan_ms:
            raise SimulationError(f"scan_s must divide an hour into whole milliseconds, got {scan_s}")
        states = plant.tables["machine_states"]
        t0 = (
            int(_ms(states["time_start"]).min())
            if start is None
            else int(pd.Timestamp(start).value // 1_000_000)
        )
        t_end = int(_ms(states["time_end"]).max())
        if hours is not None:
            t_end = min(t_end, t0 + int(hours * HOUR))
        first = -(-t0 // scan_ms) * scan_ms
        times = np.arange(first, t_end, scan_ms, dtype=np.int64)
        events = plant.tables["production_events"]
        cycles = events[events["event_type"] == "cycle"]
        resets = plant.truth.counter_resets
        telemetry = plant.tables["machine_telemetry"]
        downtime = plant.tables["downtime_events"]
        machines: dict[str, MachineImage] = {}
        events_out: list[pd.DataFrame] = []
        cyc_out: list[pd.DataFrame] = []
        for m, mid in enumerate(cfg.machine_ids):
            cyc = cycles[cycles["machine_id"] == mid]
            c_time = _ms(cyc["time"])
            good_mask = cyc["good_count"].to_numpy() > 0
            order = np.argsort(c_time, kind="stable")
            c_time, good_mask = c_time[order], good_mask[order]
            parts = cyc["part_number"].to_numpy()[order]
            st = states[states["machine_id"] == mid].sort_values("time_start")
            st_start = _ms(st["time_start"])
            st_code = np.array([STATE_CODES.get(s, STATE_CODES["down"]) for s in st["state"]], np.int64)
            k = np.clip(np.searchsorted(st_start, times, side="right") - 1, 0, None)
            state = st_code[k] if len(st_code) else np.zeros(len(times), np.int64)
            # Resets: the simulator's PLC restarts plus one injected in the machine's first long stop.
            r = resets[
                (resets["machine_id"] == mid)
                & (resets["kind"] == "reset")
                & (resets["metric"] == "part_count_total")
            ]
            reset_times = set(_ms(r["time"]).tolist())
            dt_m = downtime[(downtime["machine_id"] == mid) & (downtime["reason_category"] != "Changeover")]
            long_stop = dt_m[
                (dt_m["duration_min"] >= 5) & (dt_m["time_start"] >= pd.Timestamp(first, unit="ms", tz="UTC"))
            ]
            if len(long_stop):
                s0 = int(_ms(long_stop["time_start"].iloc[:1])[0])
                s1 = int(_ms(long_stop["time_end"].iloc[:1])[0])
                reset_times.add((s0 + s1) // 2)
            reset_arr = np.array(sorted(reset_times), np.int64)
            # Start close to the top so that both counters roll over within the first hours.
            before = int(np.searchsorted(c_time, first, side="right"))
            n_good0 = int(good_mask[:before].sum())
            n_rej0 = before - n_good0
            g_off = (COUNTER_MODULO - 60 - 20 * m - n_good0) % COUNTER_MODULO
            r_off = (COUNTER_MODULO - 3 - m - n_rej0) % COUNTER_MODULO
            good_val, good_ev = counter_values(c_time[good_mask], reset_arr, g_off, times)
            rej_val, rej_ev = counter_values(c_time[~good_mask], reset_arr, r_off, times)
            for metric, ev in (("good_count", good_ev), ("reject_count", rej_ev)):
                keep = (ev.time >= first) & (ev.time < t_end)
                events_out.append(
                    pd.DataFrame(
                        {
                            "machine_id": mid,
                            "metric": metric,
                            "time_ms": ev.time[keep],
                            "kind": np.where(ev.kind[keep] == 0, "rollover", "reset"),
                            "value_before": ev.value_before[keep],
                        }
                    )
                )
            cyc_out.append(pd.DataFrame({"machine_id": mid, "time_ms": c_time, "good": good_mask}))
            # Active fault: a downtime event's fault code while it lasts.
            fault = np.zeros(len(times), np.int64)
            f = downtime[(downtime["machine_id"] == mid) & downtime["fault_code"].notna()]
            for f0, f1, code in zip(_ms(f["time_start"]), _ms(f["time_end"]), f["fault_code"], strict=True):
                lo, hi = np.searchsorted(times, [f0, f1], side="left")
                fault[lo:hi] = int(str(code).lstrip("F") or 0)
            # Current part: the part of the last cycle at or before t (the first one before any).
            pk = np.clip(np.searchsorted(c_time, times, side="right") - 1, 0, None)
            part = parts[pk] if len(parts) else np.full(len(times), "", object)
            gauges, gauge_good = {}, {}
            tel = telemetry[telemetry["machine_id"] == mid]
            for metric, _unit in GAUGES:
                g = tel[tel["metric"] == metric].sort_values("time")
                g_time = _ms(g["time"])
                gk = np.clip(np.searchsorted(g_time, times, side="right") - 1, 0, None)
                gauges[metric] = np.round(g["value"].to_numpy()[gk], 4) if len(g) else np.zeros(len(times))
                gauge_good[metric] = (
                    (g["quality"].to_numpy()[gk] == "good") if len(g) else np.ones(len(times), bool)
                )
            machines[mid] = MachineImage(
                machine_id=mid,
                good_count=good_val,
                reject_count=rej_val,
                state=state,
                fault_code=fault,
                part_number=np.asarray(part, dtype=object),
                gauges=gauges,
                gauge_good=gauge_good,
            )
        counter_events = pd.concat(events_out, ignore_index=True).sort_values(
            ["machine_id", "metric", "time_ms"]
        )
        return cls(
            scan_ms=scan_ms,
            times=times,
            machines=machines,
            counter_events=counter_events.reset_index(drop=True),
            cycles=pd.concat(cyc_out, ignore_index=True),
        )

    @property
    def start_ms(self) -> int:
        """First scan time."""
        return int(self.times[0]) if len(self.times) else 0

    @property
    def end_ms(self) -> int:
        """End of the image (after the last scan)."""
        return int(self.times[-1]) + self.scan_ms if len(self.times) else 0

    def values(self, machine_id: str, k: int) -> dict[str, tuple[object, bool]]:
        """``metric → (value, good)`` of one machine at scan ``k``."""
        m = self.machines[machine_id]
        out: dict[str, tuple[object, bool]] = {
            "good_count": (int(m.good_count[k]), True),
            "reject_count": (int(m.reject_count[k]), True),
            "state": (int(m.state[k]), True),
            "fault_code": (int(m.fault_code[k]), True),
            "part_number": (str(m.part_number[k]), True),
        }
        for metric, _unit in GAUGES:
            out[metric] = (float(m.gauges[metric][k]), bool(m.gauge_good[metric][k]))
        return out

    def expected_counts(
        self, *, upto_ms: int | None = None, since_ms: dict[str, int] | None = None
    ) -> pd.DataFrame:
        """Good and reject counts per machine-hour as the scans see them (the reconciliation reference).

        A cycle completed at ``c`` is first seen by the scan at ``ceil(c / scan) * scan``; only
        scans after the first one (which sets the baseline) and before ``upto_ms`` count.
        ``since_ms`` moves the baseline per machine (e.g. to the first reading a collector got).
        """
        end = self.end_ms if upto_ms is None else upto_ms
        c = self.cycles
        seen = -(-c["time_ms"] // self.scan_ms) * self.scan_ms
        base = self.start_ms
        if since_ms:
            base = (
                c["machine_id"].map(since_ms).fillna(self.start_ms).astype("int64").clip(lower=self.start_ms)
            )
        keep = (seen > base) & (seen < end)
        df = pd.DataFrame(
            {
                "machine_id": c["machine_id"][keep],
                "hour": seen[keep] // HOUR * HOUR,
                "good": c["good"][keep].astype(int),
                "rejects": (~c["good"][keep]).astype(int),
            }
        )
        out = df.groupby(["machine_id", "hour"], as_index=False)[["good", "rejects"]].sum()
        out["hour"] = pd.to_datetime(out["hour"], unit="ms", utc=True)
        return out


def tag_id(machine_id: str, metric: str) -> str:
    """KEPServerEX tag id of a simulated tag (``Channel.Device.Tag``)."""
    return f"Plant.{machine_id}.{metric}"


def opcua_node(machine_id: str, metric: str, *, namespace: int = 2) -> str:
    """OPC UA node id of a simulated tag (string identifier)."""
    return f"ns={namespace};s={machine_id}.{metric}"


#: Modbus layout of one simulated machine: register offsets within its block of 16 (holding).
MODBUS_LAYOUT: dict[str, tuple[int, str, float]] = {
    "good_count": (0, "uint16", 1.0),
    "reject_count": (1, "uint16", 1.0),
    "state": (2, "uint16", 1.0),
    "fault_code": (3, "uint16", 1.0),
    "spindle_load": (4, "float32", 1.0),
    "vibration_rms": (6, "uint16", 0.01),
    "hydraulic_pressure": (7, "float32", 1.0),
    "motor_current": (9, "uint16", 0.1),
    "drive_temp": (10, "int16", 0.1),
}
#: Holding registers 12–15 of each simulated unit: the PLC clock, epoch milliseconds as an unsigned
#: 64-bit number, high word first (the source's ``clock_register``).
MODBUS_CLOCK_REGISTER = 12
MODBUS_BLOCK = 16


class PlantClock:
    """Maps the wall clock to plant time for a simulator replaying a :class:`PlcImage`.

    Plant time starts at the image's first scan when the clock is created and advances ``speed``
    times faster than the wall clock; :meth:`scan` is the index of the scan in force now (clamped
    to the last one once the image has been played, see :attr:`finished`).
    """

    def __init__(self, image: PlcImage, *, speed: float = 1.0, wall0: float | None = None) -> None:
        import time

        if speed <= 0:
            raise SimulationError(f"speed must be positive, got {speed}")
        self.image = image
        self.speed = float(speed)
        self.wall0 = time.time() if wall0 is None else wall0

    def plant_ms(self, wall: float | None = None) -> int:
        """Plant time (epoch ms) at wall time ``wall`` (default: now)."""
        import time

        w = time.time() if wall is None else wall
        return self.image.start_ms + int((w - self.wall0) * 1000 * self.speed)

    def scan(self, wall: float | None = None) -> int:
        """Index of the scan in force at ``wall`` (0 … len(times) - 1)."""
        k = (self.plant_ms(wall) - self.image.start_ms) // self.image.scan_ms
        return int(min(max(k, 0), len(self.image.times) - 1))

    def wall_of_scan(self, k: int) -> float:
        """Wall time at which scan ``k`` comes into force."""
        return self.wall0 + (int(self.image.times[k]) - self.image.start_ms) / 1000.0 / self.speed

    @property
    def finished(self) -> bool:
        """Whether plant time has passed the end of the image."""
        return self.plant_ms() >= self.image.end_ms


def tag_dictionary_yaml(
    *,
    mqtt: list[str] = (),
    opcua: list[str] = (),
    modbus: list[str] = (),
    mqtt_url: str = "mqtt://127.0.0.1:1883",
    topic: str = "kepware/#",
    opcua_url: str = "opc.tcp://127.0.0.1:4840/workbench/",
    modbus_host: str = "127.0.0.1",
    modbus_port: int = 5020,
    client_id: str = "workbench-collector",
) -> str:
    """A tag dictionary (YAML text) for simulated machines served over each protocol.

    Machines in ``mqtt`` are read through KEPServerEX's IoT Gateway, ``opcua`` from the OPC UA
    server, ``modbus`` from the Modbus TCP server (unit id = machine number, block of
    :data:`MODBUS_BLOCK` holding registers per machine as :data:`MODBUS_LAYOUT`).
    """
    from workbench.simulate.catalog import ALL_CODES_BY_FAULT

    lines = [
        "# Tag dictionary of the simulated plant (generated by workbench.simulate.plc).",
        "version: 1",
        "defaults:",
        "  clock_skew_s: 5",
        "  max_rate_per_s: 5",
        "sources:",
    ]
    if mqtt:
        lines += [
            "  kepware:",
            "    protocol: mqtt",
            f"    url: {mqtt_url}",
            f"    topic: {topic}",
            f"    client_id: {client_id}",
        ]
    if opcua:
        lines += ["  opcua:", "    protocol: opcua", f"    url: {opcua_url}", "    sampling_ms: 1000"]
    for mid in modbus:
        lines += [
            f"  modbus_{mid}:",
            "    protocol: modbus",
            f"    host: {modbus_host}",
            f"    port: {modbus_port}",
            f"    unit_id: {int(mid.lstrip('M'))}",
            "    poll_active_ms: 1000",
            "    poll_idle_ms: 5000",
            f"    clock_register: {MODBUS_CLOCK_REGISTER}",
        ]
    lines += ["states:"] + [f"  {code}: {name}" for name, code in STATE_CODES.items()]
    lines += ["fault_codes:"] + [
        f"  {int(f.lstrip('F'))}: {code}" for f, code in sorted(ALL_CODES_BY_FAULT.items())
    ]
    lines.append("tags:")

    def entry(
        source: str,
        address: str,
        mid: str,
        metric: str,
        unit: str | None,
        kind: str,
        extra: tuple[str, ...] = (),
    ) -> None:
        lines.append(
            f"  - {{source: {source}, {address}, machine_id: {mid}, metric: {metric}, kind: {kind}"
            + (f", unit: '{unit}'" if unit else "")
            + "".join(f", {e}" for e in extra)
            + "}"
        )

    def machine(mid: str, source: str, address: callable) -> None:
        entry(source, address(mid, "good_count"), mid, "good_count", "count", "counter", ("counts: good",))
        entry(
            source, address(mid, "reject_count"), mid, "reject_count", "count", "counter", ("counts: reject",)
        )
        entry(source, address(mid, "state"), mid, "state", None, "state")
        entry(source, address(mid, "fault_code"), mid, "fault_code", None, "fault")
        if source != "modbus":
            entry(
                source,
                address(mid, "part_number"),
                mid,
                "part_number",
                None,
                "context",
                ("field: part_number",),
            )
        for metric, unit in GAUGES:
            lo, hi = GAUGE_RANGES[metric]
            entry(source, address(mid, metric), mid, metric, unit, "gauge", (f"range: [{lo:g}, {hi:g}]",))

    for mid in mqtt:
        machine(mid, "kepware", lambda m, x: f"id: {tag_id(m, x)}")
    for mid in opcua:
        machine(mid, "opcua", lambda m, x: f"node: '{opcua_node(m, x)}'")
    for mid in modbus:

        def reg(m: str, x: str) -> str:
            off, rtype, scale = MODBUS_LAYOUT[x]
            return (
                f"register: {{function: holding, address: {off}, type: {rtype}"
                + (f", scale: {scale:g}" if scale != 1.0 else "")
                + "}"
            )

        src = f"modbus_{mid}"
        before = len(lines)
        machine(mid, "modbus", reg)
        lines[before:] = [ln.replace("source: modbus,", f"source: {src},") for ln in lines[before:]]
    return "\n".join(lines) + "\n"
