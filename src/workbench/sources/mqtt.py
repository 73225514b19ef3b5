"""KEPServerEX IoT Gateway over MQTT: a QoS 1, persistent-session subscriber.

KEPServerEX's IoT Gateway publishes its *standard* JSON::

    {"timestamp": 1700000000000,
     "values": [{"id": "Channel1.Device1.Tag1", "v": 123, "q": true, "t": 1700000000000}, …]}

The connector subscribes with QoS 1 on a persistent session (MQTT 5, ``clean_start=False`` and a
session expiry of a week, fixed client id), so the broker keeps messages while the collector is
away. Messages are acknowledged **manually**, only when the collector has them in its spool
(:attr:`Batch.ack`): a collector killed before that gets them again. Each message's identity is a
hash of topic and payload (:attr:`Batch.message_ids`), so a redelivery is recognised.

A payload that is not KEPServerEX JSON — not UTF-8, not JSON, no ``values`` list, larger than
``max_message_bytes`` — becomes a :class:`Rejected` (→ ``dead_letters``); an item without ``id``,
``v`` or ``t`` is rejected on its own and the rest of the message is kept. Values and tag ids are
checked later, by the shared normaliser.

Broker settings a plant needs (``mosquitto.conf``): ``persistence true`` and a
``max_queued_messages`` large enough for the longest collector outage to be bridged (the default
1000 messages is minutes at a busy plant; ``0`` = unlimited, bounded by memory).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from workbench.errors import SourceError
from workbench.sources.base import Batch, Reading, Rejected, item_text, now_ms
from workbench.sources.tags import Source

log = logging.getLogger("workbench.collect.mqtt")

SESSION_EXPIRY_S = 7 * 24 * 3600
MAX_MESSAGE_BYTES = 1024 * 1024
DEAD_LETTER_PAYLOAD_BYTES = 64 * 1024


def message_id(topic: str, payload: bytes) -> str:
    """Identity of a message for redelivery detection: SHA-1 of topic and payload."""
    return hashlib.sha1(topic.encode("utf-8", "surrogateescape") + b"\0" + payload).hexdigest()


def _text(payload: bytes) -> str:
    if len(payload) > DEAD_LETTER_PAYLOAD_BYTES:
        head = payload[:DEAD_LETTER_PAYLOAD_BYTES].decode("utf-8", "backslashreplace")
        return f"{head}… [{len(payload)} bytes, first {DEAD_LETTER_PAYLOAD_BYTES} kept]"
    return payload.decode("utf-8", "backslashreplace")


def parse_kepware(
    source: str, topic: str, payload: bytes, *, received_ms: int, max_bytes: int = MAX_MESSAGE_BYTES
) -> tuple[list[Reading], list[Rejected]]:
    """Readings in one KEPServerEX standard-JSON message, and what could not be read.

    Parameters
    ----------
    source, topic : str
        Where the message came from (``topic`` becomes the dead letter's location).
    payload : bytes
        The message body.
    received_ms : int
        Collector clock, for the dead letters.
    max_bytes : int
        Larger messages are refused whole.
    """

    def reject(reason: str, text: str, where: str = topic) -> tuple[list[Reading], list[Rejected]]:
        return [], [Rejected(source, reason, text, where, received_ms)]

    if len(payload) > max_bytes:
        return reject(
            f"too_large: message of {len(payload)} bytes exceeds the {max_bytes}-byte limit", _text(payload)
        )
    try:
        doc = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return reject(f"malformed: not UTF-8 ({exc.reason} at byte {exc.start})", _text(payload))
    except json.JSONDecodeError as exc:
        return reject(
            f"malformed: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})", _text(payload)
        )
    except RecursionError:
        return reject("malformed: JSON nested too deeply", _text(payload))
    values = doc.get("values") if isinstance(doc, dict) else None
    if not isinstance(values, list):
        return reject("malformed: not KEPServerEX JSON (no 'values' list)", _text(payload))
    readings: list[Reading] = []
    rejected: list[Rejected] = []
    for i, item in enumerate(values):
        where = f"{topic}#values[{i}]"
        if not isinstance(item, dict):
            rejected.append(
                Rejected(
                    source, f"malformed: values[{i}] is not an object", item_text(item), where, received_ms
                )
            )
            continue
        missing = [k for k in ("id", "v", "t") if k not in item]
        if missing:
            rejected.append(
                Rejected(
                    source,
                    f"malformed: values[{i}] has no {', '.join(missing)}",
                    item_text(item),
                    where,
                    received_ms,
                )
            )
            continue
        tag_id, t, q = item["id"], item["t"], item.get("q", True)
        if not isinstance(tag_id, str):
            rejected.append(
                Rejected(
                    source, f"malformed: values[{i}].id is not text", item_text(item), where, received_ms
                )
            )
            continue
        if isinstance(t, float) and t.is_integer():
            t = int(t)
        if not isinstance(q, bool):
            rejected.append(
                Rejected(
                    source, f"malformed: values[{i}].q is not true/false", item_text(item), where, received_ms
                )
            )
            continue
        readings.append(
            Reading(
                source,
                tag_id,
                item["v"],
                t if isinstance(t, int) and not isinstance(t, bool) else -1,
                q,
                item,  # serialised only if it becomes a dead letter
            )
        )
    return readings, rejected


class MqttConnector:
    """Subscribe to KEPServerEX messages on an MQTT broker (see the module docstring).

    Parameters
    ----------
    source : Source
        ``url`` (``mqtt://host:port``), ``topic`` (default ``kepware/#``), ``client_id`` (fixed,
        so the broker recognises the session; default ``workbench-<source name>``).
    batch_ms, batch_values : int
        A batch is handed over after this long or this many values, whichever comes first.
    """

    def __init__(
        self,
        source: Source,
        *,
        batch_ms: int = 200,
        batch_values: int = 20_000,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        seen: Callable[[list[str]], set[str]] | None = None,
    ) -> None:
        self.name = source.name
        self.source = source
        parts = urlsplit(source.url or "")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 1883
        self.client_id = source.client_id or f"workbench-{source.name}"
        self.batch_ms = batch_ms
        self.batch_values = batch_values
        self.max_message_bytes = max_message_bytes
        self.seen = seen
        self.redelivered = 0
        self._queue: asyncio.Queue[paho.MQTTMessage | None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: paho.Client | None = None
        self._connected = threading.Event()
        self._closed = False
        self.messages = 0

    async def connect(self) -> None:
        """Connect and subscribe; the broker then delivers what it kept for this session."""
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=paho.MQTTv5, manual_ack=True
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        props.ReceiveMaximum = 1000  # unacknowledged messages the broker may send ahead of our spool commit
        self._client = client
        try:
            client.connect(self.host, self.port, keepalive=30, clean_start=False, properties=props)
        except OSError as exc:
            raise SourceError(
                f"MQTT broker {self.host}:{self.port} (source {self.name!r}) is unreachable: "
                f"{exc.strerror or exc}"
            ) from None
        client.loop_start()
        if not await asyncio.to_thread(self._connected.wait, 10.0):
            client.loop_stop()
            raise SourceError(
                f"MQTT broker {self.host}:{self.port} did not accept the connection of "
                f"{self.client_id!r} within 10 s"
            )

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            log.error("MQTT broker %s:%s refused %s: %s", self.host, self.port, self.client_id, reason)
            return
        # Subscribing again on every (re)connect is harmless on a kept session and needed on a new one.
        client.subscribe(self.source.topic, qos=1)
        resumed = bool(getattr(flags, "session_present", False))
        log.info(
            "MQTT connected to %s:%s as %s (%s session), topic %s",
            self.host,
            self.port,
            self.client_id,
            "resumed" if resumed else "new",
            self.source.topic,
        )
        self._connected.set()

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        self._connected.clear()
        if not self._closed:
            log.warning("MQTT connection to %s:%s lost (%s); reconnecting", self.host, self.port, reason)

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        assert self._loop is not None and self._queue is not None
        self._loop.call_soon_threadsafe(self._queue.put_nowait, msg)

    async def stream(self) -> AsyncIterator[Batch]:
        """Batches of parsed messages; each batch's ``ack`` acknowledges its messages to the broker."""
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while not self._closed:
            msg = await self._queue.get()
            if msg is None:
                break
            msgs = [msg]
            deadline = loop.time() + self.batch_ms / 1000.0
            values = 0
            while values < self.batch_values:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    nxt = await asyncio.wait_for(self._queue.get(), timeout)
                except TimeoutError:
                    break
                if nxt is None:
                    self._closed = True
                    break
                msgs.append(nxt)
                values += len(nxt.payload) // 40  # rough: ~40 bytes a value
            yield self._batch(msgs)

    def _batch(self, msgs: list[paho.MQTTMessage]) -> Batch:
        received = now_ms()
        batch = Batch(source=self.name)
        ids = [message_id(m.topic, m.payload) for m in msgs]
        done = self.seen(ids) if self.seen is not None else set()
        for m, mid in zip(msgs, ids, strict=True):
            if mid in done:
                # Spooled before a crash, never acknowledged: acknowledge it now, do not process it again.
                self.redelivered += 1
                continue
            readings, rejected = parse_kepware(
                self.name, m.topic, m.payload, received_ms=received, max_bytes=self.max_message_bytes
            )
            batch.readings.extend(readings)
            batch.rejected.extend(rejected)
            batch.message_ids.append(mid)
        self.messages += len(msgs)
        client = self._client
        acks = [(m.mid, m.qos) for m in msgs if m.qos > 0]

        def ack() -> None:
            for mid, qos in acks:
                client.ack(mid, qos)

        batch.ack = ack
        return batch

    async def close(self) -> None:
        """Stop: unacknowledged messages stay with the broker for the next start."""
        self._closed = True
        if self._queue is not None:
            self._queue.put_nowait(None)
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
