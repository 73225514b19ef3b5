"""An OPC UA server that serves a :class:`~workbench.simulate.plc.PlcImage` as live PLC tags.

One object per simulated machine (``ns=2;s=M01``) holds one variable per metric of the image
(``ns=2;s=M01.good_count`` …, the node ids of :func:`~workbench.simulate.plc.opcua_node`). A
:class:`~workbench.simulate.plc.PlantClock` maps the wall clock to plant time; each time a new scan
comes into force every variable is written with the scan's values, a **SourceTimestamp equal to the
plant time of the scan** and status Good or Uncertain per the image's quality flag. Subscribed
clients therefore see data changes stamped with plant time, exactly as from a PLC whose clock runs
in the plant's timeline, and the connector can be scored against the image.

The server listens on 127.0.0.1 only, without security (it is a test and demo fixture), and keeps
asyncua's chatty INFO logging out of the way::

    async with OpcUaPlcServer(image, port=4841, speed=600) as srv:
        ...  # opc.tcp://127.0.0.1:4841/workbench/
        while not srv.finished:
            await asyncio.sleep(0.1)

:meth:`OpcUaPlcServer.stop` then :meth:`OpcUaPlcServer.start` on the same object simulates a
server restart on the same port: every session and subscription is gone, the plant clock keeps
running, so the restarted server resumes at the scan in force by then (the scans in between were
never served, as in a real outage). The address space is kept, because asyncua takes seconds to
build one; a new ``OpcUaPlcServer(image, port=..., clock=old.clock)`` restarts from scratch.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from types import TracebackType

from asyncua import Server, ua

from workbench.errors import SimulationError
from workbench.simulate.plc import COUNTERS, PlantClock, PlcImage, opcua_node

#: Namespace of the simulated plant's nodes; registered first, so it gets index 2 (index 1 is the
#: server's own application URI), which the node ids of :func:`opcua_node` assume.
NAMESPACE_URI = "urn:workbench:plant"
NAMESPACE_INDEX = 2
HOST = "127.0.0.1"

_log = logging.getLogger(__name__)
_GOOD = ua.StatusCode(ua.StatusCodes.Good)
_UNCERTAIN = ua.StatusCode(ua.StatusCodes.Uncertain)
_UTC = dt.UTC
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=_UTC).replace(tzinfo=None)  # naive UTC, see _write_scan


def variant_type(metric: str, value: object) -> ua.VariantType:
    """OPC UA type of a simulated variable: what a PLC would expose for the metric.

    Counters are unsigned 32-bit (a PLC DWORD; the image's 16-bit values fit), state and fault
    codes Int64, the part number a String and every gauge a Double.
    """
    if metric in COUNTERS:
        return ua.VariantType.UInt32
    if isinstance(value, str):
        return ua.VariantType.String
    if isinstance(value, bool | float):
        return ua.VariantType.Double
    return ua.VariantType.Int64


def endpoint_url(port: int, host: str = HOST) -> str:
    """The endpoint URL clients connect to."""
    return f"opc.tcp://{host}:{port}/workbench/"


def quiet_asyncua_logs(level: int = logging.WARNING) -> None:
    """Raise asyncua's loggers to ``level``: at INFO it logs every request and publish."""
    logging.getLogger("asyncua").setLevel(level)


class OpcUaPlcServer:
    """Serve a :class:`PlcImage` over OPC UA, advancing with a :class:`PlantClock`.

    Parameters
    ----------
    image : PlcImage
        What the machines' PLCs show at each scan.
    port : int
        TCP port on 127.0.0.1 (default 4840, the OPC UA default).
    speed : float
        Plant seconds per wall second (ignored when ``clock`` is given).
    clock : PlantClock, optional
        An existing clock to follow (e.g. one shared with other simulators); by default a new one
        whose plant time starts at the image's first scan when the server first starts listening.

    Attributes
    ----------
    clock : PlantClock
        Wall → plant time; it keeps running across :meth:`stop` / :meth:`start`.
    url : str
        ``opc.tcp://127.0.0.1:{port}/workbench/``.
    start_scan, last_scan : int
        The scan served first by the latest :meth:`start`, and the scan whose values the variables
        hold now.

    Notes
    -----
    Writes go straight to the address space (``Server.write_attribute_value``), not through a
    client session: a replay at speed 600 with 10 s scans is 60 scans a second, ten variables
    per machine each, and the session path would spend most of that in request handling.
    """

    def __init__(self, image: PlcImage, *, port: int = 4840, speed: float = 1.0,
                 clock: PlantClock | None = None) -> None:
        if not len(image.times):
            raise SimulationError("the PLC image has no scans to serve")
        self.image = image
        self.port = int(port)
        self._own_clock = clock is None
        self._started_once = False
        self.clock = clock if clock is not None else PlantClock(image, speed=speed)
        self.url = endpoint_url(self.port)
        self._server: Server | None = None
        self._listening = False
        self._task: asyncio.Task[None] | None = None
        # (node id, machine, metric, variant type) of every variable, in a fixed order.
        self._vars: list[tuple[ua.NodeId, str, str, ua.VariantType]] = []
        self.last_scan: int = -1  # the scan whose values the variables hold now
        self.start_scan: int = -1  # the scan served first by the latest start()
        self.scans_written = 0

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> OpcUaPlcServer:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        """Whether the server is listening."""
        return self._listening

    @property
    def finished(self) -> bool:
        """Whether plant time has passed the end of the image (the last scan stays served)."""
        return self.clock.finished

    async def start(self) -> None:
        """Write the scan in force now, then start listening and playing the image.

        The first call builds the address space; after :meth:`stop` the same address space is
        served again (asyncua takes seconds to load its standard nodes), while sessions and
        subscriptions start from nothing, as after a real server restart.

        Raises
        ------
        SimulationError
            When the server is already running, or the plant namespace did not get index 2.
        """
        if self._listening:
            raise SimulationError(f"the OPC UA server on port {self.port} is already running")
        quiet_asyncua_logs()
        if self._server is None:
            self._server = await self._build()
        server = self._server
        if self._own_clock and not self._started_once:
            # Loading the address space takes seconds: start plant time now, so the first scan is
            # served rather than played while nobody could read it.
            self.clock.wall0 = time.time()
        self._started_once = True
        k = self.clock.scan()
        self.start_scan = k
        await self._write_scan(server, k)
        await server.start()
        self._listening = True
        self._task = asyncio.create_task(self._play(server), name=f"opcua-plc-server:{self.port}")
        _log.info("OPC UA PLC server on %s: %d machines, %d variables, from scan %d",
                  self.url, len(self.image.machines), len(self._vars), k)

    async def _build(self) -> Server:
        """An asyncua server with one object per machine and one variable per metric."""
        server = Server()
        await server.init()
        server.set_endpoint(self.url)
        server.set_server_name("workbench simulated PLCs")
        # No security: a local fixture; the encrypted policies would also make asyncua generate
        # and check certificates on every start.
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        # Anonymous only: with user-name or certificate tokens on an unencrypted endpoint asyncua
        # warns at every start that passwords would travel in clear text.
        server.set_identity_tokens([ua.AnonymousIdentityToken])
        idx = await server.register_namespace(NAMESPACE_URI)
        if idx != NAMESPACE_INDEX:
            raise SimulationError(f"namespace {NAMESPACE_URI} got index {idx}, expected {NAMESPACE_INDEX}")
        self._vars = []
        objects = server.nodes.objects
        for mid in self.image.machines:
            obj = await objects.add_object(ua.NodeId(mid, idx), ua.QualifiedName(mid, idx))
            for metric, (value, _good) in self.image.values(mid, 0).items():
                vtype = variant_type(metric, value)
                node_id = ua.NodeId.from_string(opcua_node(mid, metric, namespace=idx))
                await obj.add_variable(node_id, ua.QualifiedName(metric, idx), ua.Variant(value, vtype))
                self._vars.append((node_id, mid, metric, vtype))
        return server

    async def stop(self) -> None:
        """Stop playing and listening: connected clients lose their session and subscriptions."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._listening and self._server is not None:
            self._listening = False
            await self._server.stop()
            _log.info("OPC UA PLC server on %s stopped at scan %d", self.url, self.last_scan)

    # -- playing the image ------------------------------------------------------------------

    async def _play(self, server: Server) -> None:
        """Write each scan when it comes into force, in order, until the image is played.

        A scan is never skipped: when the loop falls behind (a slow machine, a busy event loop),
        it writes the scans it missed back to back, so a subscriber with a deep enough queue
        still sees every change the image holds.
        """
        last = len(self.image.times) - 1
        while self.last_scan < last:
            nxt = self.last_scan + 1
            delay = self.clock.wall_of_scan(nxt) - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            for k in range(nxt, self.clock.scan() + 1):
                await self._write_scan(server, k)
            # Let the server's publish loop and sessions run between bursts.
            await asyncio.sleep(0)

    async def _write_scan(self, server: Server, k: int) -> None:
        """Write every variable's value at scan ``k``, stamped with the scan's plant time."""
        # Naive UTC datetimes: the same on the wire, but asyncua deep-copies the DataValue for every
        # monitored item it notifies, and an aware datetime makes that copy ~2.5 times as slow.
        source_ts = _EPOCH + dt.timedelta(milliseconds=int(self.image.times[k]))
        server_ts = dt.datetime.now(_UTC).replace(tzinfo=None)
        # Machines change one at a time; fetch each machine's values once.
        values: dict[str, dict[str, tuple[object, bool]]] = {}
        for node_id, mid, metric, vtype in self._vars:
            if mid not in values:
                values[mid] = self.image.values(mid, k)
            value, good = values[mid][metric]
            dv = ua.DataValue(ua.Variant(value, vtype), StatusCode=_GOOD if good else _UNCERTAIN,
                              SourceTimestamp=source_ts, ServerTimestamp=server_ts)
            status = await server.write_attribute_value(node_id, dv)
            if status is not None and not status.is_good():
                raise SimulationError(f"writing {node_id.to_string()} = {value!r} failed: {status}")
        self.last_scan = k
        self.scans_written += 1
