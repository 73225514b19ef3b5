"""A KEPServerEX IoT Gateway stand-in: publishes a :class:`~workbench.simulate.plc.PlcImage` as MQTT.

Every scan, one message per machine on ``<prefix>/<machine_id>`` in KEPServerEX's standard JSON
(``{"timestamp": ms, "values": [{"id", "v", "q", "t"}, …]}``), QoS 1, on a persistent session so
that messages published while the broker is down are delivered when it is back (paho queues them).
The publisher's own log — one JSON line per message: topic, plant time, the ids and values — is
what fault tests count the warehouse against.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from workbench.simulate.plc import PlantClock, PlcImage, tag_id

log = logging.getLogger("workbench.simulate.kepware")


class KepwarePublisher:
    """Publish the PLC image of ``machines`` to an MQTT broker at ``speed`` × real time.

    Parameters
    ----------
    image : PlcImage
    machines : list of str
        Machines whose tags go through KEPServerEX (default: all in the image).
    url : str
        ``mqtt://host:port`` (127.0.0.1 only in tests and demos).
    prefix : str
        Topic prefix; messages go to ``<prefix>/<machine_id>``.
    speed : float
        Plant seconds per wall second.
    log_path : Path, optional
        Where to append the publisher's log (JSON lines).
    """

    def __init__(
        self,
        image: PlcImage,
        *,
        machines: list[str] | None = None,
        url: str = "mqtt://127.0.0.1:1883",
        prefix: str = "kepware",
        speed: float = 1.0,
        log_path: Path | None = None,
        client_id: str = "workbench-kepware-sim",
    ) -> None:
        self.image = image
        self.machines = list(machines or image.machines)
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 1883
        self.prefix = prefix
        self.clock = PlantClock(image, speed=speed)
        self.log_path = Path(log_path) if log_path else None
        self.client_id = client_id
        self.next_scan = 0
        self.published = 0
        self.values = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: paho.Client | None = None
        self._log = None

    def message(self, machine_id: str, k: int) -> tuple[str, bytes, list[str]]:
        """Topic, payload and tag ids of one machine's message at scan ``k``."""
        t = int(self.image.times[k])
        values = [
            {"id": tag_id(machine_id, metric), "v": v, "q": good, "t": t}
            for metric, (v, good) in self.image.values(machine_id, k).items()
        ]
        payload = json.dumps({"timestamp": t, "values": values}, separators=(",", ":")).encode()
        return f"{self.prefix}/{machine_id}", payload, [v["id"] for v in values]

    def start(self) -> KepwarePublisher:
        """Connect and start publishing in a background thread."""
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=paho.MQTTv5)
        client.max_queued_messages_set(0)  # keep everything while the broker is away
        client.max_inflight_messages_set(1000)
        client.reconnect_delay_set(min_delay=1, max_delay=5)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        client.connect(self.host, self.port, keepalive=30, clean_start=False, properties=props)
        client.loop_start()
        self._client = client
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("a", encoding="utf-8")
        self._thread = threading.Thread(target=self._run, name="kepware-publisher", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        n = len(self.image.times)
        while not self._stop.is_set() and self.next_scan < n:
            due = self.clock.wall_of_scan(self.next_scan)
            wait = due - time.time()
            if wait > 0:
                self._stop.wait(min(wait, 0.5))
                continue
            k = self.next_scan
            for mid in self.machines:
                topic, payload, ids = self.message(mid, k)
                self._client.publish(topic, payload, qos=1)
                self.published += 1
                self.values += len(ids)
                if self._log:
                    self._log.write(
                        json.dumps({"topic": topic, "t": int(self.image.times[k]), "scan": k, "n": len(ids)})
                        + "\n"
                    )
            if self._log:
                self._log.flush()
            self.next_scan += 1

    @property
    def finished(self) -> bool:
        """Whether every scan of the image was published."""
        return self.next_scan >= len(self.image.times)

    def wait_delivered(self, timeout_s: float = 60.0) -> bool:
        """Wait until the broker acknowledged every published message."""
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            # paho keeps QoS 1 messages until the broker's PUBACK
            if self._client is not None and not self._client._out_messages:
                return True
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        """Stop publishing and disconnect."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
        if self._log:
            self._log.close()
            self._log = None
