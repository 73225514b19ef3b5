"""The contract every shop-floor connector keeps, and the records that cross it.

A connector is async and small: ``await connect()``, then ``async for batch in stream()``, then
``await close()``. Each :class:`Batch` holds raw :class:`Reading` objects as the source gave them
(address, value, source timestamp, quality), the payloads the connector could not even parse
(:class:`Rejected`, bound for ``dead_letters``), :class:`Gap` markers for time a source could not be
read, and an ``ack`` callback the collector calls only after the batch is safely in the spool (an
MQTT connector acknowledges its QoS 1 messages there, so the broker keeps them until then).

Connectors know the tag dictionary only for *what to read* (node ids, registers, topics); mapping a
reading to machines, metrics and canonical rows is :mod:`workbench.ingest.stream`'s job, shared by
every protocol. Connectors never import analytics or the store.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

UTC = dt.UTC


def now_ms() -> int:
    """The collector's clock, in milliseconds since the epoch (UTC)."""
    return int(dt.datetime.now(UTC).timestamp() * 1000)


def ms_to_datetime(ms: int) -> dt.datetime:
    """A timezone-aware UTC datetime for epoch milliseconds."""
    return dt.datetime.fromtimestamp(ms / 1000.0, UTC)


#: Dead-letter payloads are cut to this many characters (a 10 MB message is not kept whole).
PAYLOAD_CHARS = 64 * 1024


def item_text(item: Any) -> str:
    """An item as dead-letter text: JSON when it can be, else its repr, at most :data:`PAYLOAD_CHARS`."""
    try:
        text = json.dumps(item, allow_nan=True, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(item)
    return text[:PAYLOAD_CHARS]


@dataclass(frozen=True, slots=True)
class Reading:
    """One value of one address, as the source reported it.

    Attributes
    ----------
    source : str
        Name of the source in the tag dictionary.
    address : str
        KEPServerEX tag id, OPC UA node id, or Modbus ``function:address``.
    value : object
        The value as received (a number, text or bool; anything else is a data-quality problem).
    time_ms : int
        Source timestamp, epoch milliseconds UTC.
    good : bool
        The source's quality flag (KEPServerEX ``q``, OPC UA status Good, Modbus: always True).
    raw : object, optional
        The item as received (its JSON text, or the decoded item, serialised only if it becomes a
        dead letter), kept for a dead letter.
    """

    source: str
    address: str
    value: Any
    time_ms: int
    good: bool = True
    raw: Any = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """A payload the connector could not read at all (malformed JSON, a 10 MB message …)."""

    source: str
    reason: str
    payload: str
    location: str | None = None
    received_ms: int = 0


@dataclass(frozen=True, slots=True)
class Gap:
    """Time a source could not be read: its machines were ``no_data`` from ``start_ms`` to ``end_ms``.

    ``start_ms`` is the last good reading before the loss (or the loss itself when nothing was read
    yet), ``end_ms`` the first reading after the reconnect.
    """

    source: str
    start_ms: int
    end_ms: int
    reason: str


@dataclass
class Batch:
    """What a connector hands over in one go (see the module docstring)."""

    source: str
    readings: list[Reading] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    ack: Callable[[], None] | None = None
    #: Identity of each raw message in the batch (e.g. a hash of topic + payload), so that a message
    #: the broker redelivers after a crash is recognised and not processed twice.
    message_ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.readings) + len(self.rejected)


@runtime_checkable
class Connector(Protocol):
    """The small contract of a shop-floor connector (see the module docstring)."""

    name: str

    async def connect(self) -> None:
        """Open the connection (raise :class:`~workbench.errors.SourceError` when it cannot)."""

    def stream(self) -> AsyncIterator[Batch]:
        """Yield batches until :meth:`close`; reconnect with backoff inside, reporting gaps."""

    async def close(self) -> None:
        """Stop reading and release the connection; :meth:`stream` ends."""
