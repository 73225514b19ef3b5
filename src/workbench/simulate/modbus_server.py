"""A Modbus TCP server that plays a :class:`~workbench.simulate.plc.PlcImage`, for tests and demos.

Every simulated machine is one Modbus unit (unit id = machine number, ``M03`` → 3) whose holding
registers 0–15 hold its tags as :data:`~workbench.simulate.plc.MODBUS_LAYOUT` says, plus the PLC
clock at :data:`~workbench.simulate.plc.MODBUS_CLOCK_REGISTER` (epoch milliseconds of the scan in
force, unsigned 64-bit, high word first). Plant time runs ``speed`` times faster than the wall
clock (:class:`~workbench.simulate.plc.PlantClock`), so an hour of plant can be collected in
seconds while the readings still carry plant time through the clock register.

Design notes
------------
* **Scan-consistent reads.** The registers of a unit are brought to the scan in force at the
  moment a request is served, in one synchronous step of the event loop right before pymodbus
  copies them into the response (the device's ``action`` hook). Nothing else runs in between, so
  a read of one block never mixes two scans: its clock register and its values always agree.
  Doing it on access rather than from a timer also means a request never sees a stale scan.
* **A PLC that stops answering.** :meth:`ModbusPlcServer.pause` drops every response at the last
  moment (pymodbus' ``trace_packet`` hook returns no bytes): the server keeps accepting TCP
  connections and reading requests, but never replies — the behaviour of a PLC whose CPU is
  stopped or hung behind a still-working network card.
* The registers are read-only (a write gets an *illegal address* exception), and the device
  model is pymodbus' shared one: input registers read the same 16 registers as the holding ones.
* Values are encoded with :meth:`workbench.sources.tags.Register.encode`, the inverse of what the
  connector decodes, so the round trip is exact up to the register's resolution (a value outside
  the type's range saturates, as a PLC's conversion would; NaN becomes 0 in an integer register).
* Only 127.0.0.1 is served: this is a simulator, not something to expose on a network.
* The datastore is pymodbus' ``SimDevice`` / ``SimData`` (3.16): ``ModbusDeviceContext`` and
  ``ModbusServerContext`` are deprecated there and log a warning each time one is built.
"""

from __future__ import annotations

import asyncio
import logging
import math
import struct
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from workbench.errors import SimulationError
from workbench.simulate.plc import (
    MODBUS_BLOCK,
    MODBUS_CLOCK_REGISTER,
    MODBUS_LAYOUT,
    PlantClock,
    PlcImage,
)
from workbench.sources.tags import Register

log = logging.getLogger(__name__)

HOST = "127.0.0.1"

# pymodbus logs its server's start, connections and requests at INFO and DEBUG; a simulator in a
# test run or a demo should only speak up when something breaks.
logging.getLogger("pymodbus").setLevel(logging.WARNING)

#: Registers of the layout, built once: metric → Register at its offset in the unit's block.
_REGISTERS: dict[str, Register] = {
    metric: Register(function="holding", address=offset, type=rtype, scale=scale)
    for metric, (offset, rtype, scale) in MODBUS_LAYOUT.items()}

_INT_RANGES = {"int16": (-(1 << 15), (1 << 15) - 1), "uint16": (0, (1 << 16) - 1),
               "int32": (-(1 << 31), (1 << 31) - 1), "uint32": (0, (1 << 32) - 1)}


def machine_unit(machine_id: str) -> int:
    """Modbus unit id of a simulated machine: its number (``M03`` → 3)."""
    try:
        unit = int(machine_id.lstrip("Mm"))
    except ValueError:
        raise SimulationError(f"machine id {machine_id!r} has no number to use as Modbus unit id") from None
    if not 1 <= unit <= 247:
        # 0 is the broadcast address and 248–255 are reserved by the Modbus specification.
        raise SimulationError(f"Modbus unit ids are 1–247; machine {machine_id!r} would be {unit}")
    return unit


def encode_value(register: Register, value: float) -> list[int]:
    """Registers holding ``value``, saturated to what the register type can represent.

    :meth:`Register.encode` raises on values its type cannot hold (a gauge a little below 0 in an
    unsigned register, NaN in an integer one); a PLC's conversion saturates instead, and so does
    this simulator.
    """
    if register.type in _INT_RANGES:
        raw = (value - register.offset) / register.scale
        lo, hi = _INT_RANGES[register.type]
        raw = 0.0 if math.isnan(raw) else min(max(raw, lo), hi)  # ±inf saturates too
        value = round(raw) * register.scale + register.offset
    return register.encode(value)


def clock_words(ms: int) -> list[int]:
    """The four registers of the PLC clock: epoch milliseconds as uint64, high word first."""
    return list(struct.unpack(">4H", struct.pack(">Q", ms)))


def unit_registers(image: PlcImage, machine_id: str, k: int) -> list[int]:
    """All :data:`MODBUS_BLOCK` holding registers of one machine's unit at scan ``k``."""
    words = [0] * MODBUS_BLOCK
    values = image.values(machine_id, k)
    for metric, register in _REGISTERS.items():
        value, _good = values[metric]  # Modbus has no quality flag: a bad sensor value is served as is
        words[register.address:register.address + register.words] = encode_value(register, float(value))
    words[MODBUS_CLOCK_REGISTER:MODBUS_CLOCK_REGISTER + 4] = clock_words(int(image.times[k]))
    return words


async def _no_such_unit(function_code: int, start_address: int, address: int, count: int,
                        registers: list[int], set_values: list[int] | list[bool] | None) -> ExcCodes:
    return ExcCodes.GATEWAY_NO_RESPONSE


class ModbusPlcServer:
    """Modbus TCP server of a :class:`PlcImage` on 127.0.0.1 (see the module docstring).

    Parameters
    ----------
    image : PlcImage
        What the PLCs show, scan by scan.
    port : int
        TCP port (0: any free port; :attr:`port` tells which after :meth:`start`).
    speed : float
        Plant seconds per wall second (ignored when ``clock`` is given).
    machines : iterable of str, optional
        Machines to serve (default: every machine of the image).
    clock : PlantClock, optional
        Plant clock to follow, e.g. one shared with other simulators of the same image so that
        they all show the same scan; by default one is started on the first :meth:`start`.

    Examples
    --------
    >>> async with ModbusPlcServer(image, port=5020, speed=60) as srv:  # doctest: +SKIP
    ...     srv.pause(True)   # the PLCs stop answering
    """

    def __init__(self, image: PlcImage, *, port: int = 5020, speed: float = 1.0,
                 machines: Iterable[str] | None = None, clock: PlantClock | None = None) -> None:
        self.image = image
        self.port = port
        self.speed = speed
        ids = list(image.machines) if machines is None else list(machines)
        unknown = [m for m in ids if m not in image.machines]
        if unknown:
            raise SimulationError(f"machines {unknown} are not in the PLC image "
                                  f"({', '.join(image.machines)})")
        #: unit id → machine id
        self.units: dict[int, str] = {}
        for mid in ids:
            unit = machine_unit(mid)
            if unit in self.units:
                raise SimulationError(f"machines {self.units[unit]} and {mid} would share Modbus unit {unit}")
            self.units[unit] = mid
        self.clock: PlantClock | None = clock
        self._paused = False
        self._server: ModbusTcpServer | None = None
        # Scan each unit's registers show now, so an unchanged scan costs no re-encoding.
        self._shown: dict[int, int] = {}

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start listening (plant time starts now on the first start and keeps running after a stop)."""
        if self._server is not None:
            return
        if self.clock is None:
            self.clock = PlantClock(self.image, speed=self.speed)
        self._shown = {}
        devices = [SimDevice(id=unit, action=self._action(unit),
                             simdata=[SimData(0, count=MODBUS_BLOCK, values=0, datatype=DataType.REGISTERS,
                                              readonly=True)])
                   for unit in self.units]
        # Device 0 stands for every other unit id: answer as a Modbus TCP gateway does for a unit
        # behind it that is not there (pymodbus would otherwise fail the request with a traceback).
        devices.append(SimDevice(id=0, action=_no_such_unit,
                                 simdata=[SimData(0, count=1 << 16, datatype=DataType.REGISTERS)]))
        server = ModbusTcpServer(devices, address=(HOST, self.port), trace_packet=self._trace_packet)
        try:
            await server.serve_forever(background=True)
        except RuntimeError as exc:  # pymodbus' way of saying the port could not be bound
            raise SimulationError(f"cannot serve Modbus on {HOST}:{self.port}: {exc}") from exc
        self._server = server
        if self.port == 0:
            self.port = server.transport.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        log.info("Modbus PLC simulator on %s:%d: units %s, %g× plant speed", HOST, self.port,
                 ", ".join(f"{u}={m}" for u, m in self.units.items()), self.clock.speed)

    async def stop(self) -> None:
        """Stop listening and drop every connection (the plant clock keeps running)."""
        server, self._server = self._server, None
        if server is None:
            return
        await server.shutdown()
        # Let the transports' close callbacks run, so the port is free when this returns.
        await asyncio.sleep(0)

    async def __aenter__(self) -> ModbusPlcServer:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        """Whether the server is listening."""
        return self._server is not None

    # -- fault injection -----------------------------------------------------------------------------
    def pause(self, paused: bool = True) -> None:
        """Stop (``True``) or resume (``False``) answering requests.

        While paused, connections are still accepted and requests read, but no response is ever
        sent — requests made during the pause stay unanswered even after it.
        """
        if paused != self._paused:
            log.info("Modbus PLC simulator on port %d %s", self.port,
                     "stops answering" if paused else "answers again")
        self._paused = paused

    @property
    def paused(self) -> bool:
        """Whether requests are currently left unanswered."""
        return self._paused

    # -- pymodbus hooks ------------------------------------------------------------------------------
    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        # Called with every frame received and sent; an empty frame is not sent at all.
        return b"" if sending and self._paused else data

    def _action(self, unit: int) -> Callable[..., Awaitable[None]]:
        machine_id = self.units[unit]

        # A plain coroutine function (not a partial of a method): pymodbus checks it with
        # inspect.iscoroutinefunction, which does not see through a partial of a bound method.
        async def action(function_code: int, start_address: int, address: int, count: int,
                         registers: list[int], set_values: list[int] | list[bool] | None) -> None:
            # No await in here: the update and pymodbus' copy of the registers into the response
            # happen in one step of the event loop, so a response never mixes two scans.
            assert self.clock is not None
            k = self.clock.scan()
            if self._shown.get(unit) != k:
                registers[0:MODBUS_BLOCK] = unit_registers(self.image, machine_id, k)
                self._shown[unit] = k
            return None

        return action
