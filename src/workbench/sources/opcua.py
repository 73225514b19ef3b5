"""OPC UA connector: one server, its tags read by subscription (or polling), reconnecting by itself.

:class:`OpcUaConnector` keeps the connector contract of :mod:`workbench.sources.base` for one
``protocol: opcua`` source of the tag dictionary:

* **Subscription** (the default): one subscription whose publishing interval is the shortest
  sampling interval of the tags, one monitored item per tag with its own sampling interval
  (``tag.sampling_ms`` or ``source.sampling_ms``) and data-change notifications. Every
  notification becomes a :class:`~workbench.sources.base.Reading` stamped with the value's
  SourceTimestamp (else its ServerTimestamp, else the collector's clock) and ``good`` = status Good.
* **Polling**: when ``subscribe: false`` or the server refuses the subscription, the tags are read
  every sampling interval with one Read call per interval group; a value is reported when its
  value, status or source timestamp differ from the previous read (what a data-change subscription
  would have sent).
* **Reconnect**: a lost session (transport closed, failed keep-alive, failed read) is retried with
  backoff (0.5 s doubling to 30 s) until :meth:`OpcUaConnector.close`. The outage is reported as a
  :class:`~workbench.sources.base.Gap` from the last good reading's source time to the first
  reading's after the reconnect, so the collector writes ``no_data`` for the source's machines
  instead of guessing.
* A node id the server does not know (or that does not parse) never stops the connector: it is
  logged once and reported once as a :class:`~workbench.sources.base.Rejected`; a known-format
  node id is asked for again after a reconnect (a restarting server may not have it loaded yet).

Readings are gathered into batches flushed at least every 200 ms or every 5000 readings.

:func:`browse` lists a server's variables and :func:`browse_yaml` drafts a tag dictionary from
them, the starting point for mapping a new server.

This module talks OPC UA only: it never imports the analytics or the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

from asyncua import Client, ua
from asyncua.common.node import Node
from asyncua.common.subscription import DataChangeEvent, StatusChangeEvent, Subscription

from workbench.errors import ConfigError, SourceError
from workbench.sources.base import Batch, Gap, Reading, Rejected, now_ms
from workbench.sources.tags import Source, Tag

__all__ = ["BACKOFF_MAX_S", "BACKOFF_START_S", "FLUSH_READINGS", "FLUSH_S", "QUEUE_SIZE", "OpcUaConnector",
           "browse", "browse_yaml"]

#: First reconnect delay after a lost session; doubled after each failed attempt up to the maximum.
BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 30.0
#: A batch is handed over at least this often (seconds) …
FLUSH_S = 0.2
#: … or as soon as it holds this many readings.
FLUSH_READINGS = 5000
#: Server-side queue of each monitored item: up to this many samples are kept between two publishes,
#: so a burst of changes (a counter stepping several times within one publishing interval, a server
#: catching up) reaches the collector instead of being collapsed to the last value.
QUEUE_SIZE = 10
#: A session lost sooner than this after it opened does not reset the reconnect backoff.
_FLAPPING_S = 10.0
#: Session timeout requested from the server (ms): the session outlives a short network glitch.
SESSION_TIMEOUT_MS = 120_000
#: Items per CreateMonitoredItems / Read request: servers cap operations per call (often at 1000+).
_CALL_CHUNK = 1000
#: Status codes that mean the node itself is wrong (rejected once), not that its value is bad.
_NODE_ERRORS = frozenset({ua.StatusCodes.BadNodeIdUnknown, ua.StatusCodes.BadNodeIdInvalid,
                          ua.StatusCodes.BadAttributeIdInvalid, ua.StatusCodes.BadNotReadable,
                          ua.StatusCodes.BadUserAccessDenied})
_UTC = dt.UTC
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=_UTC)
# OPC UA's "no timestamp" is DateTime 0 = 1601-01-01; anything before 1970 is treated as missing.
_MIN_TS = _EPOCH

_log = logging.getLogger(__name__)


class _AsyncuaTeardownNoise(logging.Filter):
    """Drops asyncua's log records about a connection that is already known to be lost.

    When a server goes away (or a session is closed), asyncua logs the failed publish request as
    an ERROR with a traceback, and warns or logs tracebacks while the dead session is torn down.
    The connector reports a loss itself (one warning and a :class:`Gap`), so these records only
    bury it. Records with other messages, or caused by other exceptions, pass.
    """

    _MESSAGES = ("Publish iteration crashed", "close_session was called but connection is closed",
                 "close_secure_channel was called but connection is closed",
                 "close_session raised during disconnect", "close_secure_channel raised during disconnect")

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(self._MESSAGES):
            return True
        exc = record.exc_info[1] if record.exc_info else None
        return exc is not None and not isinstance(exc, ConnectionError | OSError | TimeoutError)


_NOISE_FILTER = _AsyncuaTeardownNoise()
for _name in ("asyncua.client.ua_session.UaSession", "asyncua.client.ua_client.UaClient",
              "asyncua.client.client"):
    logging.getLogger(_name).addFilter(_NOISE_FILTER)


class _SessionLostError(Exception):
    """The session is gone (the message says why); the connector reconnects."""


def _epoch_ms(ts: dt.datetime | None) -> int | None:
    """Epoch milliseconds of an OPC UA DateTime, None when absent (null or 1601-01-01)."""
    if ts is None:
        return None
    if ts.tzinfo is None:  # asyncua decodes UTC-aware datetimes; be safe with naive ones
        ts = ts.replace(tzinfo=_UTC)
    if ts <= _MIN_TS:
        return None
    return (ts - _EPOCH) // dt.timedelta(milliseconds=1)


_PLAIN = (int, float, str, bool, type(None))


def _py_value(value: Any) -> Any:
    """A plain Python value for the few asyncua types a tag may hold (numbers pass as they are)."""
    if type(value) in _PLAIN:
        return value
    if isinstance(value, ua.LocalizedText):
        return value.Text
    if isinstance(value, ua.QualifiedName | ua.NodeId):
        return value.to_string()
    if isinstance(value, ua.StatusCode):
        return value.value
    if isinstance(value, int):  # an IntEnum: the value of a standard enumeration
        return int(value)
    return value


def _describe(exc: BaseException) -> str:
    """``Type: message``, or just the type when the message is empty (as for timeouts)."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _status_name(code: ua.StatusCode) -> str:
    try:
        return code.name
    except Exception:  # an unknown numeric code
        return f"0x{code.value:08X}"


class OpcUaConnector:
    """Read the tags of one OPC UA source (see the module docstring).

    Parameters
    ----------
    source : Source
        The ``protocol: opcua`` source (``url``, ``sampling_ms``, ``subscribe``, ``timeout_s``).
    tags : list of Tag
        The source's tags; ``tag.address`` is the node id string (``ns=2;s=M01.good_count``) and
        is reported back unchanged as :attr:`Reading.address`.
    queue_size : int
        Server-side queue of each monitored item (:data:`QUEUE_SIZE`).
    flush_s, flush_readings : optional
        Batch flush interval and size (:data:`FLUSH_S`, :data:`FLUSH_READINGS`).

    Attributes
    ----------
    name : str
        The source name.
    mode : str or None
        ``"subscription"`` or ``"polling"`` while a session is up, None otherwise.
    sessions : int
        Sessions opened so far (1 + reconnects).
    """

    def __init__(self, source: Source, tags: Sequence[Tag], *, queue_size: int = QUEUE_SIZE,
                 flush_s: float = FLUSH_S, flush_readings: int = FLUSH_READINGS) -> None:
        if source.protocol != "opcua" or not source.url:
            raise ConfigError(f"source {source.name!r} is not an OPC UA source with a url")
        wrong = [t.address for t in tags if t.source != source.name]
        if wrong:
            raise ConfigError(f"tags of other sources given to the OPC UA source {source.name!r}: "
                              f"{wrong[:5]}")
        if queue_size < 1 or flush_s <= 0 or flush_readings < 1:
            raise ConfigError("queue_size and flush_readings must be at least 1, flush_s positive")
        self.name = source.name
        self.source = source
        self.tags = list(tags)
        self.queue_size = int(queue_size)
        self.flush_s = float(flush_s)
        self.flush_readings = int(flush_readings)
        self.mode: str | None = None
        self.sessions = 0
        # What to read: (address, node id, sampling ms) of every tag whose node id parses.
        self._items: list[tuple[str, ua.NodeId, int]] = []
        self._rejected_addresses: set[str] = set()
        self._handles: dict[int, str] = {}  # client handle of a monitored item → tag address
        # The batch being filled.
        self._readings: list[Reading] = []
        self._rejected: list[Rejected] = []
        self._gaps: list[Gap] = []
        self._wake = asyncio.Event()  # a batch is full, or the connector is closing
        self._closing = asyncio.Event()
        self._client: Client | None = None
        self._session_lost: asyncio.Event | None = None
        self._lost_reason = ""
        self._runner: asyncio.Task[None] | None = None
        self._last_good_ms: int | None = None
        self._gap_open: tuple[int, str] | None = None  # (start ms, reason) of an outage not yet closed
        for tag in self.tags:
            try:
                node_id = ua.NodeId.from_string(tag.address)
            except Exception as exc:
                self._reject(tag.address, f"not an OPC UA node id ({exc})")
                continue
            self._items.append((tag.address, node_id, int(tag.sampling_ms or source.sampling_ms)))

    # -- the contract ------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the session (the first one; later ones are opened by :meth:`stream` itself).

        Raises
        ------
        SourceError
            When the server cannot be reached or refuses the session.
        """
        if self._closing.is_set():
            raise SourceError(f"OPC UA source {self.name!r} is closed")
        if self._client is not None:
            return
        try:
            await self._open()
        except Exception as exc:
            raise SourceError(f"OPC UA source {self.name!r}: cannot connect to {self.source.url}: "
                              f"{_describe(exc)}") from exc

    async def stream(self) -> AsyncIterator[Batch]:
        """Yield batches of readings (and gaps, rejected node ids) until :meth:`close`.

        The session is served (and re-opened after a loss) by a background task started here;
        this generator only hands over what it gathered, at least every :attr:`flush_s` seconds
        or as soon as :attr:`flush_readings` readings are waiting.
        """
        if self._runner is None and not self._closing.is_set():
            self._runner = asyncio.create_task(self._run(), name=f"opcua-connector:{self.name}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.flush_s
        while True:
            timeout = deadline - loop.time()
            if timeout > 0 and len(self._readings) < self.flush_readings and not self._closing.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            deadline = loop.time() + self.flush_s
            batch = self._take()
            if batch is not None:
                yield batch
            if self._closing.is_set() and not (self._readings or self._rejected or self._gaps):
                return

    async def close(self) -> None:
        """Stop reading, close the session and end :meth:`stream` (idempotent)."""
        self._closing.set()
        self._wake.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        client, self._client = self._client, None
        if client is not None:
            await self._disconnect(client)
        self.mode = None

    async def __aenter__(self) -> OpcUaConnector:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- batches -----------------------------------------------------------------------------

    def _take(self) -> Batch | None:
        if not (self._readings or self._rejected or self._gaps):
            return None
        batch = Batch(source=self.name, readings=self._readings, rejected=self._rejected, gaps=self._gaps)
        self._readings, self._rejected, self._gaps = [], [], []
        return batch

    def _add(self, address: str, dv: ua.DataValue, received_ms: int | None = None) -> None:
        """Turn one DataValue into a Reading of the current batch (closing an open gap first)."""
        status = dv.StatusCode
        good = status is None or status.value == 0  # Good is 0; any other code is not plainly Good
        value = _py_value(dv.Value.Value) if dv.Value is not None else None
        src_ms = _epoch_ms(dv.SourceTimestamp)
        time_ms = src_ms if src_ms is not None else _epoch_ms(dv.ServerTimestamp)
        if time_ms is None:
            time_ms = received_ms if received_ms is not None else now_ms()
        if self._gap_open is not None:
            self._close_gap(dv, time_ms)
        if good and (self._last_good_ms is None or time_ms > self._last_good_ms):
            self._last_good_ms = time_ms
        self._readings.append(Reading(self.name, address, value, time_ms, good))
        if len(self._readings) >= self.flush_readings:
            self._wake.set()

    def _close_gap(self, dv: ua.DataValue, time_ms: int) -> None:
        start, reason = self._gap_open
        # A value unchanged since before the outage keeps its old SourceTimestamp; the outage then
        # ended when the server sampled it again (ServerTimestamp), or at the latest now.
        end = time_ms
        if end < start:
            server_ms = _epoch_ms(dv.ServerTimestamp)
            end = server_ms if server_ms is not None and server_ms >= start else max(start, now_ms())
        self._gaps.append(Gap(self.name, start, end, reason))
        self._gap_open = None
        _log.info("OPC UA source %r: reading again; gap %d–%d ms reported", self.name, start, end)

    def _reject(self, address: str, reason: str) -> None:
        """Report an unusable node id once (a log warning and a Rejected in the next batch)."""
        if address in self._rejected_addresses:
            return
        self._rejected_addresses.add(address)
        _log.warning("OPC UA source %r: node %s is not read: %s", self.name, address, reason)
        self._rejected.append(Rejected(source=self.name, reason=reason, payload=address, location=address,
                                       received_ms=now_ms()))

    # -- sessions ----------------------------------------------------------------------------

    async def _open(self) -> None:
        """Connect a new client (a fresh one per session: nothing stale carries over)."""
        timeout = float(self.source.timeout_s)
        # The keep-alive (a read of the server state) runs every watchdog interval with that as
        # its timeout; asyncua's 1 s default declares a busy server lost, so use the source's timeout.
        client = Client(self.source.url, timeout=timeout, watchdog_intervall=max(1.0, timeout))
        # Servers cap the session timeout (asyncua's at 10 min) and asyncua warns when its 1 h
        # default is revised; a short one also frees a dead session's resources on the server soon.
        client.session_timeout = SESSION_TIMEOUT_MS
        lost = asyncio.Event()

        async def on_lost(exc: Exception) -> None:
            # asyncua's connection supervisor (auto_reconnect off) calls this when the transport
            # closes or its keep-alive read of the server state fails.
            self._lost_reason = _describe(exc)
            lost.set()

        client.connection_lost_callback = on_lost
        try:
            # connect() applies the timeout per request; bound the whole handshake as well.
            await asyncio.wait_for(client.connect(auto_reconnect=False), timeout * 3)
        except BaseException:
            await self._disconnect(client)
            raise
        self._client, self._session_lost, self._lost_reason = client, lost, ""
        self.sessions += 1

    async def _disconnect(self, client: Client) -> None:
        """Close the session politely if the server answers in time; close the socket regardless."""
        try:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(client.disconnect(), float(self.source.timeout_s) + 1.0)
        finally:
            with contextlib.suppress(Exception):
                client.disconnect_socket()

    async def _run(self) -> None:
        """Serve sessions until closed, reconnecting with backoff after each loss."""
        loop = asyncio.get_running_loop()
        delay = 0.0
        failures = 0
        while not self._closing.is_set():
            if self._client is None:
                if delay and await self._sleep(delay):
                    break
                try:
                    await self._open()
                except Exception as exc:
                    failures += 1
                    delay = BACKOFF_START_S if not delay else min(delay * 2, BACKOFF_MAX_S)
                    log = _log.warning if failures == 1 else _log.debug
                    log("OPC UA source %r: cannot connect to %s (%s); retrying in %.1f s (attempt %d)",
                        self.name, self.source.url, _describe(exc), delay, failures)
                    continue
                if failures or self._gap_open is not None:
                    _log.warning("OPC UA source %r: reconnected to %s", self.name, self.source.url)
                failures = 0
            client = self._client
            started = loop.time()
            reason = await self._serve(client)
            self._client, self.mode = None, None
            await self._disconnect(client)
            if reason is None or self._closing.is_set():
                break
            self._lost(reason)
            # Back off afresh after a session that lasted; keep doubling when sessions die as soon
            # as they open (a server that accepts and then drops us must not be hammered).
            short = loop.time() - started < _FLAPPING_S
            delay = min(delay * 2, BACKOFF_MAX_S) if short and delay else BACKOFF_START_S

    async def _sleep(self, seconds: float) -> bool:
        """Sleep, waking early when closing; True when the connector is closing."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)
        return self._closing.is_set()

    def _lost(self, reason: str) -> None:
        if self._gap_open is None:
            start = self._last_good_ms if self._last_good_ms is not None else now_ms()
            self._gap_open = (start, f"OPC UA session lost: {reason}")
        _log.warning("OPC UA source %r: session to %s lost (%s); reconnecting", self.name,
                     self.source.url, reason)

    async def _serve(self, client: Client) -> str | None:
        """Read through one session; the reason it was lost, or None when closing."""
        readers: list[asyncio.Task[None]] = []
        try:
            if self.source.subscribe:
                try:
                    sub = await self._subscribe(client)
                except (ConnectionError, OSError, TimeoutError, _SessionLostError):
                    raise
                except Exception as exc:
                    if self._session_lost is not None and self._session_lost.is_set():
                        raise _SessionLostError(self._lost_reason) from exc
                    _log.warning("OPC UA source %r: subscription refused (%s: %s); polling instead",
                                 self.name, type(exc).__name__, exc)
                else:
                    self.mode = "subscription"
                    readers.append(asyncio.create_task(self._consume(sub)))
            if not readers:
                self.mode = "polling"
                readers = [asyncio.create_task(self._poll(client, group)) for group in self._poll_groups()]
        except _SessionLostError as exc:
            return str(exc)
        except Exception as exc:
            return _describe(exc)
        watcher = asyncio.create_task(self._watch(client))
        try:
            done, _ = await asyncio.wait([watcher, *readers], return_when=asyncio.FIRST_COMPLETED)
            if watcher in done and watcher.exception() is not None and self.mode == "subscription":
                # Let the consumer hand over what was published before the loss: asyncua queues a
                # BadShutdown status change after the last notification, which ends it.
                await asyncio.wait(readers, timeout=1.0)
            if self._closing.is_set():
                return None
            if self._lost_reason:  # what asyncua's supervisor saw is the most telling reason
                return self._lost_reason
            for task in (watcher, *readers):
                if task.done() and not task.cancelled() and task.exception() is not None:
                    exc = task.exception()
                    return str(exc) if isinstance(exc, _SessionLostError) else _describe(exc)
            return "the reader stopped"
        finally:
            for task in (watcher, *readers):
                task.cancel()
            await asyncio.gather(watcher, *readers, return_exceptions=True)

    async def _watch(self, client: Client) -> None:
        """Return when closing; raise :class:`_SessionLostError` when the session is gone."""
        lost = self._session_lost
        while not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), 1.0)
            if lost.is_set():
                raise _SessionLostError(self._lost_reason or "connection lost")
            try:
                await client.check_connection()  # raises once the client knows it is disconnected
            except Exception as exc:
                raise _SessionLostError(_describe(exc)) from exc

    # -- subscription ------------------------------------------------------------------------

    async def _subscribe(self, client: Client) -> Subscription:
        """One subscription with a monitored item per tag (our client handle = item index)."""
        # Nodes refused in an earlier session are asked for again (a restarting server may not
        # have loaded them yet); _reject reports each only once.
        items = self._items
        publish_ms = min((ms for _, _, ms in items), default=self.source.sampling_ms)
        # Iterator mode with an unbounded queue: asyncua never drops a notification on our side
        # (its handler mode would also start one task per notification).
        sub = await client.create_subscription(publish_ms, None, queue_maxsize=0)
        self._handles = {}
        for lo in range(0, len(items), _CALL_CHUNK):
            chunk = items[lo:lo + _CALL_CHUNK]
            requests = []
            for handle, (address, node_id, ms) in enumerate(chunk, start=lo + 1):
                self._handles[handle] = address
                requests.append(ua.MonitoredItemCreateRequest(
                    ItemToMonitor=ua.ReadValueId(NodeId=node_id, AttributeId=ua.AttributeIds.Value),
                    MonitoringMode=ua.MonitoringMode.Reporting,
                    RequestedParameters=ua.MonitoringParameters(
                        ClientHandle=handle, SamplingInterval=float(ms), QueueSize=self.queue_size,
                        DiscardOldest=True)))
            results = await sub.create_monitored_items(requests)
            for (address, _, _), result in zip(chunk, results, strict=True):
                if isinstance(result, ua.StatusCode):
                    self._reject(address, f"monitored item refused: {_status_name(result)}")
        return sub

    async def _consume(self, sub: Subscription) -> None:
        """The notification handler: each data change becomes a Reading of the current batch."""
        handles = self._handles
        while True:
            try:
                event = await sub.next_event()
            except StopAsyncIteration:
                raise _SessionLostError("subscription closed") from None
            if isinstance(event, DataChangeEvent):
                item = event.data.monitored_item
                address = handles.get(item.ClientHandle)
                if address is not None and item.Value is not None:
                    self._add(address, item.Value)
            elif isinstance(event, StatusChangeEvent):
                status = event.notification.Status
                if status is not None and status.is_bad():
                    raise _SessionLostError(f"subscription status {_status_name(status)}")

    # -- polling -----------------------------------------------------------------------------

    def _poll_groups(self) -> list[tuple[int, list[tuple[str, ua.NodeId]]]]:
        groups: dict[int, list[tuple[str, ua.NodeId]]] = {}
        for address, node_id, ms in self._items:
            groups.setdefault(ms, []).append((address, node_id))
        return sorted(groups.items())

    async def _poll(self, client: Client, group: tuple[int, list[tuple[str, ua.NodeId]]]) -> None:
        """Read one sampling-interval group on its schedule; report what changed since the last read."""
        interval_ms, members = group
        interval = interval_ms / 1000.0
        last: dict[str, tuple[Any, int, Any]] = {}
        loop = asyncio.get_running_loop()
        due = loop.time()
        while members:
            received = now_ms()
            results: list[ua.DataValue] = []
            try:
                for lo in range(0, len(members), _CALL_CHUNK):
                    chunk = members[lo:lo + _CALL_CHUNK]
                    params = ua.ReadParameters(
                        NodesToRead=[ua.ReadValueId(NodeId=nid, AttributeId=ua.AttributeIds.Value)
                                     for _, nid in chunk],
                        TimestampsToReturn=ua.TimestampsToReturn.Both)
                    results += await client.uaclient.read(params)
            except Exception as exc:
                raise _SessionLostError(f"read failed: {_describe(exc)}") from exc
            dropped: set[str] = set()
            for (address, _), dv in zip(members, results, strict=True):
                code = dv.StatusCode.value if dv.StatusCode is not None else 0
                if code in _NODE_ERRORS:
                    self._reject(address, f"read refused: {_status_name(dv.StatusCode)}")
                    dropped.add(address)
                    continue
                key = (dv.Value.Value if dv.Value is not None else None, code, dv.SourceTimestamp)
                if last.get(address) != key:
                    last[address] = key
                    self._add(address, dv, received)
            if dropped:  # not read again in this session
                members = [m for m in members if m[0] not in dropped]
            # Keep to the schedule; after a slow read skip the missed slots instead of bursting.
            due += interval
            now = loop.time()
            if due < now:
                due = now + interval - (now - due) % interval
            await asyncio.sleep(due - now)
        await self._closing.wait()  # every node rejected: nothing to read, wait for close


# -- browsing ------------------------------------------------------------------------------------

_PROPERTY_TYPE = ua.NodeId(ua.ObjectIds.PropertyType)
_SERVER_OBJECT = ua.NodeId(ua.ObjectIds.Server)


async def browse(url: str, *, timeout_s: float = 5.0) -> list[dict[str, str]]:
    """List every variable under the server's Objects folder.

    The standard Server object (and everything else in namespace 0) is skipped, as are
    properties (``PropertyType`` metadata such as EURange), which are not process values.

    Parameters
    ----------
    url : str
        ``opc.tcp://host:port/path`` of the server.
    timeout_s : float
        Per-request timeout.

    Returns
    -------
    list of dict
        One ``{"node", "name", "path", "data_type"}`` per variable, in browse order: the node id
        string, the browse name, the browse-name path below Objects (``M01/good_count``) and the
        data type's name (``Double``, ``UInt32``, ``String`` …).

    Raises
    ------
    SourceError
        When the server cannot be reached or browsed.
    """
    client = Client(url, timeout=timeout_s)
    try:
        await asyncio.wait_for(client.connect(), timeout_s * 3)
    except Exception as exc:
        with contextlib.suppress(Exception):
            await client.disconnect()
        raise SourceError(f"cannot connect to OPC UA server {url}: {type(exc).__name__}: {exc}") from exc
    try:
        found: list[tuple[ua.NodeId, str, str]] = []  # node id, browse name, path
        seen: set[ua.NodeId] = set()
        level: list[tuple[Node, str]] = [(client.nodes.objects, "")]
        while level:
            refs = await asyncio.gather(*(node.get_children_descriptions() for node, _ in level))
            nxt: list[tuple[Node, str]] = []
            for (_, path), children in zip(level, refs, strict=True):
                for ref in children:
                    nid = ua.NodeId(ref.NodeId.Identifier, ref.NodeId.NamespaceIndex, ref.NodeId.NodeIdType)
                    if nid.NamespaceIndex == 0 or nid == _SERVER_OBJECT or nid in seen:
                        continue
                    seen.add(nid)
                    name = ref.BrowseName.Name or str(nid.Identifier)
                    child_path = f"{path}/{name}" if path else name
                    if ref.NodeClass == ua.NodeClass.Variable:
                        type_def = ua.NodeId(ref.TypeDefinition.Identifier, ref.TypeDefinition.NamespaceIndex)
                        if type_def == _PROPERTY_TYPE:
                            continue
                        found.append((nid, name, child_path))
                        nxt.append((client.get_node(nid), child_path))  # variables may have components
                    elif ref.NodeClass == ua.NodeClass.Object:
                        nxt.append((client.get_node(nid), child_path))
            level = nxt
        type_names = await _data_type_names(client, [nid for nid, _, _ in found])
        return [{"node": nid.to_string(), "name": name, "path": path, "data_type": tname}
                for (nid, name, path), tname in zip(found, type_names, strict=True)]
    except SourceError:
        raise
    except Exception as exc:
        raise SourceError(f"browsing OPC UA server {url} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        with contextlib.suppress(Exception):
            await client.disconnect()


async def _data_type_names(client: Client, nodes: list[ua.NodeId]) -> list[str]:
    """Name of each variable's data type (standard types by table, others by their browse name)."""
    types: list[Any] = []
    for lo in range(0, len(nodes), _CALL_CHUNK):
        dvs = await client.uaclient.read_attributes(nodes[lo:lo + _CALL_CHUNK], ua.AttributeIds.DataType)
        types += [dv.Value.Value if dv.Value is not None else None for dv in dvs]
    custom = sorted({t for t in types if isinstance(t, ua.NodeId) and t.NamespaceIndex != 0},
                    key=lambda n: n.to_string())
    custom_names: dict[ua.NodeId, str] = {}
    if custom:
        dvs = await client.uaclient.read_attributes(custom, ua.AttributeIds.BrowseName)
        for nid, dv in zip(custom, dvs, strict=True):
            qn = dv.Value.Value if dv.Value is not None else None
            custom_names[nid] = qn.Name if isinstance(qn, ua.QualifiedName) else nid.to_string()
    out = []
    for t in types:
        if not isinstance(t, ua.NodeId):
            out.append("Unknown")
        elif t.NamespaceIndex == 0 and isinstance(t.Identifier, int):
            out.append(ua.ObjectIdNames.get(t.Identifier, t.to_string()))
        else:
            out.append(custom_names.get(t, t.to_string()))
    return out


_BAD_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.\-]+")


def _clean_name(text: str) -> str:
    """A machine_id / metric the tag dictionary accepts (letters, digits, '_', '.', '-')."""
    return _BAD_NAME_CHARS.sub("_", text).strip("_") or "unnamed"


def _yaml_str(text: str) -> str:
    """A single-quoted YAML scalar (node ids hold ';' and '=', names may look like numbers)."""
    return "'" + str(text).replace("'", "''") + "'"


def browse_yaml(variables: Iterable[dict[str, str]], *, source_name: str = "opcua",
                url: str = "opc.tcp://127.0.0.1:4840/workbench/", sampling_ms: int = 1000) -> str:
    """Draft a tag dictionary (YAML text) from :func:`browse`'s variables.

    Every variable becomes a ``gauge`` of the machine named by the first component of its path,
    its metric the variable's name (the rest of the path when a machine has two variables of the
    same name), with ``unit: 'TODO'`` to be filled in. Review the result: set the real kinds
    (``counter`` with ``counts:``, ``state``, ``fault``, ``context``), units and ranges, and drop
    what the plant does not need. The draft loads with :func:`workbench.sources.tags.load_tags`.

    Parameters
    ----------
    variables : iterable of dict
        ``{"node", "name", "path", "data_type"}`` as :func:`browse` returns them.
    source_name : str
        Name of the source entry.
    url : str
        The server's endpoint URL.
    sampling_ms : int
        The source's default sampling interval.
    """
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", source_name):
        raise ConfigError(f"source name {source_name!r} may hold letters, digits, '_', '.', '-'")
    lines = [f"# Tag dictionary drafted by browsing {url} (workbench.sources.opcua.browse_yaml).",
             "# Review every tag: set kind (gauge, counter + counts, state, fault, context + field),",
             "# replace each unit 'TODO' with the real unit, and delete what the plant does not need.",
             "version: 1", "sources:", f"  {source_name}:", "    protocol: opcua",
             f"    url: {_yaml_str(url)}", f"    sampling_ms: {int(sampling_ms)}", "tags:"]
    used: set[tuple[str, str]] = set()
    seen_nodes: set[str] = set()
    for var in variables:
        node = var["node"]
        if node in seen_nodes:
            continue
        seen_nodes.add(node)
        parts = [p for p in str(var.get("path") or var["name"]).split("/") if p]
        machine = _clean_name(parts[0])
        metric = _clean_name(var.get("name") or parts[-1])
        if (machine, metric) in used and len(parts) > 2:
            metric = _clean_name(".".join(parts[1:]))
        base, n = metric, 2
        while (machine, metric) in used:
            metric, n = f"{base}_{n}", n + 1
        used.add((machine, metric))
        dtype = var.get("data_type") or "Unknown"
        hint = "  # TODO unit"
        if dtype in ("String", "LocalizedText", "ByteString"):
            hint += "; text: probably kind: context (field: part_number, work_order or operator_id)"
        elif dtype == "Boolean":
            hint += "; a flag: a gauge of 0/1, or a state"
        lines.append(f"  - {{source: {source_name}, node: {_yaml_str(node)}, "
                     f"machine_id: {_yaml_str(machine)}, metric: {_yaml_str(metric)}, kind: gauge, "
                     f"unit: 'TODO'}}{hint} ({dtype}, {'/'.join(parts)})")
    return "\n".join(lines) + "\n"

