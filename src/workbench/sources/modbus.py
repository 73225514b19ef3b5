"""Modbus TCP connector: polls one device's registers in blocks and hands over raw readings.

One :class:`ModbusConnector` reads one ``protocol: modbus`` source of the tag dictionary (one
host, port and unit id). Modbus has no subscriptions, timestamps or quality flags, so the
connector supplies them:

* **Block reads.** The source's tags are grouped per function (holding / input) into contiguous
  register ranges (:func:`plan_blocks`): small holes are read along rather than paying a request
  for each side (a request costs a round trip; a few unused registers cost nothing), and a block
  never exceeds the 125 registers one request may read. Each block is read with one request per
  poll, so the values of one block are one consistent snapshot of the PLC's memory.
* **Time stamps.** With ``clock_register`` set, the PLC's own clock (epoch ms as a 64-bit number,
  high word first) is read in the same request as its neighbouring values and stamps the whole
  poll: the readings then carry plant time, which is what an accelerated simulator serves and what
  a PLC that timestamps its scans reports. Without it, the collector's clock at the poll is used.
* **Adaptive polling** (MS5.0, :func:`poll_interval_ms`): every ``poll_active_ms`` while a state or
  counter tag keeps changing, every ``poll_idle_ms`` once nothing changed for a few polls — a
  stopped machine needs no 1 s polling, a running one does to see every cycle and state change.
* **An unreachable device.** Each request has ``timeout_s``; a timeout or a lost connection drops
  the connection (a late answer to an abandoned request must not be taken for the next one) and
  reconnects with backoff (0.5 s doubling to 30 s) until :meth:`ModbusConnector.close`. Nothing is
  yielded meanwhile; the first good poll afterwards carries a :class:`~workbench.sources.base.Gap`
  from the last good poll to itself, which the collector turns into ``no_data``. Each outage is
  logged once, when it starts, and once when it ends.
* **A Modbus exception** (illegal address, …) for one block is reported once as
  :class:`~workbench.sources.base.Rejected` (again only if it recurs after the block was read
  fine); the other blocks go on being read.

Mapping readings to machines and metrics is :mod:`workbench.ingest.stream`'s job; this module
never imports analytics or the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ConnectionException, ModbusException

from workbench.errors import ConfigError, SourceError
from workbench.sources.base import Batch, Gap, Reading, Rejected, now_ms
from workbench.sources.tags import Source, Tag

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Most registers one read request may ask for (Modbus application protocol, function 3 and 4).
MAX_REGISTERS = 125
#: Unused registers read along to join two ranges into one request.
MAX_HOLE = 8
#: Registers of the PLC clock (uint64 epoch ms).
CLOCK_WORDS = 4
#: Consecutive polls without a state or counter change before polling slows down.
IDLE_AFTER_POLLS = 5
#: Reconnect backoff: first wait and ceiling, seconds.
BACKOFF_S = (0.5, 30.0)
#: Tag kinds whose changes show that the machine is doing something.
ACTIVITY_KINDS = ("state", "counter")


# ---------------------------------------------------------------------------------------------
# block planning


@dataclass(frozen=True, repr=False)
class Block:
    """One read request: ``count`` registers of ``function`` from ``start``, and the tags in them.

    Attributes
    ----------
    function : str
        ``holding`` or ``input``.
    start, count : int
        First register and number of registers.
    tags : tuple of Tag
        Tags whose registers lie in the block, by address.
    clock : bool
        Whether the PLC clock (:attr:`workbench.sources.tags.Source.clock_register`) is in it.
    """

    function: str
    start: int
    count: int
    tags: tuple[Tag, ...] = ()
    clock: bool = False

    def __repr__(self) -> str:
        return f"Block({self.location}, {len(self.tags)} tags{', clock' if self.clock else ''})"

    @property
    def end(self) -> int:
        """Last register of the block (inclusive)."""
        return self.start + self.count - 1

    @property
    def location(self) -> str:
        """``function:start-end``, e.g. ``holding:0-15``."""
        return f"{self.function}:{self.start}-{self.end}"

    def describe(self) -> str:
        """What the block reads, for a dead letter or a log line."""
        what = [t.address for t in self.tags] + (["PLC clock"] if self.clock else [])
        return f"{self.count} {self.function} registers {self.start}–{self.end} ({', '.join(what)})"


def plan_blocks(tags: Iterable[Tag], *, clock_register: int | None = None, max_hole: int = MAX_HOLE,
                max_count: int = MAX_REGISTERS) -> list[Block]:
    """Group tags into the fewest read requests: contiguous ranges per function.

    Ranges are taken in address order and merged while the hole between them is at most
    ``max_hole`` unused registers and the merged block stays within ``max_count`` registers.

    Parameters
    ----------
    tags : iterable of Tag
        Modbus tags (each with a ``register``).
    clock_register : int, optional
        Holding register of the PLC clock; its four registers are read like a tag's.
    max_hole : int
        Most unused registers read along to join two ranges.
    max_count : int
        Most registers per request (125 is the protocol's limit for reading registers).

    Returns
    -------
    list of Block
        Holding blocks first, then input blocks, each by start address.
    """
    spans: list[tuple[str, int, int, Tag | None]] = []  # function, first, last register, tag (None: clock)
    for tag in tags:
        if tag.register is None:
            raise ConfigError(f"tag {tag.address!r} of {tag.source!r} has no Modbus register")
        r = tag.register
        spans.append((r.function, r.address, r.address + r.words - 1, tag))
    if clock_register is not None:
        spans.append(("holding", clock_register, clock_register + CLOCK_WORDS - 1, None))
    order = {"holding": 0, "input": 1}
    spans.sort(key=lambda s: (order.get(s[0], 2), s[0], s[1]))
    blocks: list[Block] = []
    current: list[tuple[str, int, int, Tag | None]] = []

    def flush() -> None:
        if current:
            first, last = current[0][1], max(s[2] for s in current)
            blocks.append(Block(function=current[0][0], start=first, count=last - first + 1,
                                tags=tuple(s[3] for s in current if s[3] is not None),
                                clock=any(s[3] is None for s in current)))

    for span in spans:
        if current:
            function, first, last = current[0][0], current[0][1], max(s[2] for s in current)
            joinable = (span[0] == function and span[1] - last - 1 <= max_hole
                        and max(last, span[2]) - first + 1 <= max_count)
            if not joinable:
                flush()
                current = []
        current.append(span)
    flush()
    return blocks


# ---------------------------------------------------------------------------------------------
# adaptive polling


def poll_interval_ms(polls_since_change: int, *, active_ms: int, idle_ms: int,
                     idle_after: int = IDLE_AFTER_POLLS) -> int:
    """How long to wait before the next poll, given how long the machine has been still (MS5.0).

    A machine whose state or counters changed within the last ``idle_after`` polls is *active* and
    polled every ``active_ms``, so that no cycle or state change is missed; once ``idle_after``
    consecutive polls saw no change it is *idle* and polled every ``idle_ms``, which spares the
    PLC and the network while it stands still. The first change seen at the idle rate switches
    back at once.

    Parameters
    ----------
    polls_since_change : int
        Consecutive polls without a change: 0 when the last poll saw one (or was the first).
    active_ms, idle_ms : int
        Poll intervals of the source (``poll_active_ms``, ``poll_idle_ms``).
    idle_after : int
        Consecutive unchanged polls after which the machine counts as idle.

    Returns
    -------
    int
        ``active_ms`` or ``idle_ms``.

    Examples
    --------
    >>> poll_interval_ms(0, active_ms=1000, idle_ms=5000)
    1000
    >>> poll_interval_ms(5, active_ms=1000, idle_ms=5000)
    5000
    """
    return idle_ms if polls_since_change >= idle_after else active_ms


# ---------------------------------------------------------------------------------------------
# the connector


class _NotAnsweringError(Exception):
    """The device did not answer (timeout, refused or lost connection)."""


class _ClosedError(Exception):
    """:meth:`ModbusConnector.close` was called while waiting."""


def _clock_ms(words: Sequence[int]) -> int:
    return struct.unpack(">Q", struct.pack(">4H", *words[:CLOCK_WORDS]))[0]


def _exception_name(code: int) -> str:
    try:
        return ExcCodes(code).name.lower().replace("_", " ")
    except ValueError:
        return "unknown exception"


class ModbusConnector:
    """Polls one Modbus TCP device (one ``protocol: modbus`` source) — see the module docstring.

    Parameters
    ----------
    source : Source
        The source: host, port, unit id, poll intervals, timeout, clock register.
    tags : list of Tag
        Its tags (each with a ``register``).
    backoff_s : (float, float)
        First reconnect wait and its ceiling, seconds (doubling in between).
    idle_after : int
        Unchanged polls before polling at the idle rate (:func:`poll_interval_ms`).

    Examples
    --------
    >>> conn = ModbusConnector(tags.sources["modbus_M03"], tags.tags_of("modbus_M03"))  # doctest: +SKIP
    >>> await conn.connect()                                                            # doctest: +SKIP
    >>> async for batch in conn.stream():                                               # doctest: +SKIP
    ...     spool(batch)
    """

    def __init__(self, source: Source, tags: list[Tag], *, backoff_s: tuple[float, float] = BACKOFF_S,
                 idle_after: int = IDLE_AFTER_POLLS) -> None:
        if source.protocol != "modbus" or not source.host:
            raise ConfigError(f"source {source.name!r} is not a Modbus source with a host")
        foreign = [t.address for t in tags if t.source != source.name]
        if foreign:
            raise ConfigError(f"tags {foreign} do not belong to source {source.name!r}")
        self.source = source
        self.name = source.name
        self.tags = list(tags)
        self.blocks = plan_blocks(self.tags, clock_register=source.clock_register)
        self.backoff_s = backoff_s
        self.idle_after = idle_after
        self._client: AsyncModbusTcpClient | None = None
        self._closed = asyncio.Event()
        self._watched = [t for t in self.tags if t.kind in ACTIVITY_KINDS]
        self._last_activity: dict[str, Any] | None = None
        self._polls_since_change = 0
        #: Interval until the next poll, ms (changes with the machine's activity).
        self.interval_ms = source.poll_active_ms
        self._rejected_blocks: set[str] = set()

    @property
    def _where(self) -> str:
        return f"{self.source.host}:{self.source.port} unit {self.source.unit_id}"

    # -- contract ------------------------------------------------------------------------------------
    async def connect(self) -> None:
        """Open the TCP connection to the device.

        Raises
        ------
        SourceError
            The device cannot be reached within ``timeout_s``.
        """
        self._closed.clear()
        try:
            await self._open()
        except _NotAnsweringError as exc:
            raise SourceError(f"Modbus source {self.name!r}: {exc}") from None
        except _ClosedError:
            return

    async def close(self) -> None:
        """Stop polling and drop the connection; :meth:`stream` ends within a moment."""
        self._closed.set()
        self._drop()

    async def stream(self) -> AsyncIterator[Batch]:
        """Poll until :meth:`close`, one :class:`Batch` per good poll (see the module docstring)."""
        last_good_ms: int | None = None  # time stamp of the last good poll
        outage: tuple[float, int | None, str] | None = None  # (since, start_ms, reason)
        backoff = self.backoff_s[0]
        next_poll = time.monotonic()
        try:
            while not self._closed.is_set():
                if outage is None:
                    wait = next_poll - time.monotonic()
                else:
                    wait, backoff = backoff, min(2 * backoff, self.backoff_s[1])
                if wait > 0 and await self._sleep(wait):
                    break
                started = time.monotonic()
                try:
                    if self._client is None:
                        await self._open()
                    batch, time_ms = await self._poll()
                except _NotAnsweringError as exc:
                    self._drop()
                    if outage is None:
                        backoff = self.backoff_s[0]
                        # Without a previous poll the loss itself starts the gap — but only with
                        # the collector's clock; the PLC's time at the loss is unknown.
                        start = (last_good_ms if last_good_ms is not None
                                 else now_ms() if self.source.clock_register is None else None)
                        outage = (started, start, str(exc))
                        log.warning("Modbus source %s (%s) not answering: %s; reconnecting with backoff",
                                    self.name, self._where, exc)
                    continue
                if outage is not None:
                    since, start, reason = outage
                    if start is not None:
                        batch.gaps.append(Gap(source=self.name, start_ms=start, end_ms=time_ms,
                                              reason=f"Modbus device not answering: {reason}"))
                    log.info("Modbus source %s (%s) answers again after %.1f s", self.name, self._where,
                             time.monotonic() - since)
                    outage, backoff = None, self.backoff_s[0]
                last_good_ms = time_ms
                self._adapt(batch.readings)
                next_poll = started + self.interval_ms / 1000.0
                if batch.readings or batch.rejected or batch.gaps:  # every block failing again: nothing new
                    yield batch
        except _ClosedError:
            pass
        finally:
            self._drop()

    # -- polling -------------------------------------------------------------------------------------
    async def _poll(self) -> tuple[Batch, int]:
        """Read every block once: the batch and its time stamp (PLC clock or collector clock)."""
        polled_ms = now_ms()
        clock_ms: int | None = None
        words_of: list[tuple[Block, list[int]]] = []
        batch = Batch(source=self.name)
        for block in self.blocks:
            response = await self._read(block)
            if response.isError():
                code = getattr(response, "exception_code", 0)
                self._reject(batch, block, f"Modbus exception {code} ({_exception_name(code)})")
                continue
            words = list(response.registers)
            if len(words) < block.count:
                self._reject(batch, block, f"short response: {len(words)} of {block.count} registers")
                continue
            self._rejected_blocks.discard(block.location)
            if block.clock:
                offset = self.source.clock_register - block.start  # type: ignore[operator]
                clock_ms = _clock_ms(words[offset:offset + CLOCK_WORDS])
            words_of.append((block, words))
        # One time stamp for the whole poll: the PLC's clock when it was read (the values of its
        # block are of the same scan), the collector's otherwise.
        time_ms = clock_ms if clock_ms is not None else polled_ms
        for block, words in words_of:
            for tag in block.tags:
                r = tag.register
                offset = r.address - block.start  # type: ignore[union-attr]
                value = r.decode(words[offset:offset + r.words])  # type: ignore[union-attr]
                batch.readings.append(Reading(source=self.name, address=tag.address, value=value,
                                              time_ms=time_ms, good=True))
        return batch, time_ms

    def _reject(self, batch: Batch, block: Block, reason: str) -> None:
        # The device answered, so this is not an outage; it will answer the same next poll, so it
        # is reported once rather than flooding the dead letters.
        if block.location in self._rejected_blocks:
            return
        self._rejected_blocks.add(block.location)
        log.warning("Modbus source %s (%s): %s reading %s", self.name, self._where, reason, block.describe())
        batch.rejected.append(Rejected(source=self.name, reason=f"{reason} reading {block.location}",
                                       payload=block.describe(), location=block.location,
                                       received_ms=now_ms()))

    def _adapt(self, readings: list[Reading]) -> None:
        """Update the poll interval from the state and counter values of a poll."""
        if not self._watched:
            return  # nothing tells whether the machine is busy: keep the configured (active) rate
        watched = {t.address for t in self._watched}
        now = {r.address: r.value for r in readings if r.address in watched}
        last = self._last_activity
        changed = last is None or any(last.get(a, v) != v for a, v in now.items())
        self._last_activity = {**(last or {}), **now}
        self._polls_since_change = 0 if changed else self._polls_since_change + 1
        interval = poll_interval_ms(self._polls_since_change, active_ms=self.source.poll_active_ms,
                                    idle_ms=self.source.poll_idle_ms, idle_after=self.idle_after)
        if interval != self.interval_ms:
            log.debug("Modbus source %s: %s, polling every %d ms", self.name,
                      "state and counters unchanged" if interval == self.source.poll_idle_ms
                      else "machine active", interval)
        self.interval_ms = interval

    # -- connection ----------------------------------------------------------------------------------
    async def _open(self) -> None:
        client = AsyncModbusTcpClient(
            self.source.host, port=self.source.port or 502, name=f"modbus:{self.name}",
            # Our own timeouts (below) govern; pymodbus' are only a backstop. It must neither retry
            # (a retry per timeout would multiply timeout_s) nor reconnect on its own (we do, with
            # backoff, and report the gap).
            timeout=2 * self.source.timeout_s + 1, retries=0, reconnect_delay=0)
        try:
            ok = await self._guard(client.connect(), f"no connection to {self._where}")
        except BaseException:
            client.close()
            raise
        if not ok:
            client.close()
            raise _NotAnsweringError(f"cannot connect to {self.source.host}:{self.source.port}")
        self._client = client

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def _read(self, block: Block) -> Any:
        client = self._client
        if client is None or not client.connected:
            raise _NotAnsweringError("connection lost")
        read = client.read_holding_registers if block.function == "holding" else client.read_input_registers
        try:
            return await self._guard(read(block.start, count=block.count, device_id=self.source.unit_id),
                                     f"no response to reading {block.location}")
        except ConnectionException:  # the device closed the connection since the last request
            raise _NotAnsweringError(f"connection lost reading {block.location}") from None
        except ModbusException as exc:  # garbled frame, …: resynchronise on a new connection
            raise _NotAnsweringError(f"{type(exc).__name__} reading {block.location}: {exc}") from None

    async def _guard(self, aw: Awaitable[T], what: str) -> T:
        """Await ``aw`` for at most ``timeout_s``; raise :class:`_ClosedError` once close() is called."""
        task = asyncio.ensure_future(aw)
        closing = asyncio.ensure_future(self._closed.wait())
        try:
            done, _ = await asyncio.wait({task, closing}, timeout=self.source.timeout_s,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
            if not task.done():
                task.cancel()
        if task in done:
            return task.result()
        # Let the abandoned request unwind (pymodbus releases its request lock on cancellation).
        await asyncio.wait({task})
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not warn about it
        if self._closed.is_set():
            raise _ClosedError
        raise _NotAnsweringError(f"{what} within {self.source.timeout_s:g} s")

    async def _sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` or until close(); whether close() was called."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closed.wait(), seconds)
        return self._closed.is_set()
