"""The tag dictionary: every PLC / KEPServerEX address mapped to the canonical model.

One YAML file under version control (``pipelines/plant/tags.yaml`` by default) names the sources
(an MQTT broker with KEPServerEX's IoT Gateway, OPC UA servers, Modbus TCP devices) and maps every
address to ``machine_id``, ``metric``, ``unit`` and a **kind**:

``gauge``
    a measured value → ``machine_telemetry``.
``counter``
    a cumulative part or reject counter (``counts: good`` or ``reject``) of ``bits`` 16 or 32 →
    increments in ``production_events``; rollovers and resets are told apart by ``max_rate_per_s``.
``state``
    a machine-state code → ``machine_states`` intervals (``states:`` maps codes to state names).
``fault``
    an active fault code (0 / empty: none) → the stop's ``fault_code`` and, through
    ``fault_codes:``, its reason code in ``downtime_events``.
``context``
    what the machine is making (``field: part_number``, ``work_order`` or ``operator_id``) → attached
    to the production rows that follow.

Every raw reading is also kept in ``machine_telemetry`` with its quality, so any derived row can be
recomputed. Validation is strict: an unknown key, a tag mapped twice (same address, or the same
machine and metric), a gauge or counter without a unit, a Modbus register that overlaps another,
are errors that name the file and line.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench import yamlconf
from workbench.errors import ConfigError

KINDS = ("gauge", "counter", "state", "fault", "context")
PROTOCOLS = ("mqtt", "opcua", "modbus")
STATES = ("running", "idle", "down", "setup", "planned_stop", "no_data")
CONTEXT_FIELDS = ("part_number", "work_order", "operator_id")
REGISTER_TYPES = {
    "int16": (1, "h"),
    "uint16": (1, "H"),
    "int32": (2, "i"),
    "uint32": (2, "I"),
    "float32": (2, "f"),
}
REGISTER_FUNCTIONS = ("holding", "input")
DEFAULT_TAGS_FILE = Path("pipelines") / "plant" / "tags.yaml"
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


@dataclass(frozen=True)
class Register:
    """A Modbus value: which registers hold it and how to decode them.

    ``word_order`` says which 16-bit word of a 32-bit value comes first (``big``: high word
    first, the Modbus convention; ``little``: low word first, common on some PLCs). The
    engineering value is ``raw * scale + offset``.
    """

    function: str
    address: int
    type: str
    word_order: str = "big"
    scale: float = 1.0
    offset: float = 0.0

    @property
    def words(self) -> int:
        """Number of 16-bit registers the value occupies."""
        return REGISTER_TYPES[self.type][0]

    @property
    def key(self) -> str:
        """The address as the tag dictionary indexes it, e.g. ``holding:100``."""
        return f"{self.function}:{self.address}"

    def decode(self, words: Sequence[int]) -> float:
        """Engineering value of the raw register ``words`` (each 0–65535)."""
        n, code = REGISTER_TYPES[self.type]
        w = list(words[:n])
        if self.word_order == "little":
            w.reverse()
        raw = struct.unpack(">" + code, struct.pack(">" + "H" * n, *w))[0]
        value = raw * self.scale + self.offset
        return float(value) if self.type == "float32" or self.scale != 1.0 or self.offset else raw

    def encode(self, value: float) -> list[int]:
        """Registers that hold ``value`` (the inverse of :meth:`decode`; for simulators)."""
        n, code = REGISTER_TYPES[self.type]
        raw = (value - self.offset) / self.scale
        packed = struct.pack(">" + code, raw if self.type == "float32" else round(raw))
        w = list(struct.unpack(">" + "H" * n, packed))
        if self.word_order == "little":
            w.reverse()
        return w


@dataclass(frozen=True)
class Tag:
    """One address of one source, mapped to the canonical model (see the module docstring)."""

    source: str
    address: str
    machine_id: str
    metric: str
    kind: str
    unit: str | None = None
    counts: str | None = None  # counter: good / reject
    bits: int = 16
    max_rate_per_s: float = 10.0
    low: float | None = None
    high: float | None = None
    states: Mapping[str, str] = field(default_factory=dict)
    field: str | None = None  # context
    register: Register | None = None
    sampling_ms: int | None = None
    line: int = 0

    @property
    def modulus(self) -> int:
        """Where a counter rolls over (2**bits)."""
        return 1 << self.bits


@dataclass(frozen=True)
class Source:
    """A place readings come from: an MQTT broker, an OPC UA server or a Modbus TCP device."""

    name: str
    protocol: str
    url: str | None = None  # mqtt://host:port, opc.tcp://host:port/path
    host: str | None = None  # modbus
    port: int | None = None
    unit_id: int = 1
    topic: str = "kepware/#"
    client_id: str | None = None
    sampling_ms: int = 1000
    poll_active_ms: int = 1000
    poll_idle_ms: int = 5000
    timeout_s: float = 3.0
    subscribe: bool = True
    #: Modbus: holding register of a 64-bit PLC clock (epoch ms, high word first) read with the
    #: values; without it readings carry the collector's clock.
    clock_register: int | None = None
    line: int = 0


@dataclass(frozen=True)
class TagDictionary:
    """The whole tag dictionary: sources, tags, fault-code mapping and data-quality settings."""

    path: Path
    sources: Mapping[str, Source]
    tags: tuple[Tag, ...]
    fault_codes: Mapping[str, str]
    clock_skew_s: float = 5.0
    index: Mapping[tuple[str, str], Tag] = field(default_factory=dict, repr=False)

    def tag(self, source: str, address: str) -> Tag | None:
        """The tag at ``address`` of ``source``, or None when it is not in the dictionary."""
        return self.index.get((source, address))

    def tags_of(self, source: str) -> list[Tag]:
        """Every tag of one source, in file order."""
        return [t for t in self.tags if t.source == source]

    @property
    def machines(self) -> list[str]:
        """Machines the dictionary maps, sorted."""
        return sorted({t.machine_id for t in self.tags})


# ---------------------------------------------------------------------------------------------


class _Where:
    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, line: int, message: str) -> ConfigError:
        return ConfigError(f"{self.path}:{line}: {message}")


def _check_keys(w: _Where, node: Any, allowed: Sequence[str], what: str) -> yamlconf.LocatedDict:
    if not isinstance(node, dict):
        raise w.error(getattr(node, "line", 0), f"{what} must be a mapping, got {type(node).__name__}")
    for key in node:
        if key not in allowed:
            raise w.error(node.line_of(key), f"unknown key {key!r} in {what}; allowed: {', '.join(allowed)}")
    return node


def _num(
    w: _Where,
    node: yamlconf.LocatedDict,
    key: str,
    default: Any,
    *,
    positive: bool = False,
    integer: bool = False,
) -> Any:
    if key not in node or node[key] is None:
        return default
    value = node[key]
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (integer and not isinstance(value, int))
    ):
        raise w.error(
            node.line_of(key), f"{key} must be a {'whole ' if integer else ''}number, got {value!r}"
        )
    if not math.isfinite(value) or (positive and value <= 0):
        raise w.error(
            node.line_of(key), f"{key} must be a {'positive' if positive else 'finite'} number, got {value!r}"
        )
    return value


def _text(
    w: _Where,
    node: yamlconf.LocatedDict,
    key: str,
    *,
    required: bool = False,
    choices: Sequence[str] | None = None,
) -> str | None:
    value = node.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise w.error(node.line, f"{key} is required")
        return None
    if isinstance(value, bool | dict | list):
        raise w.error(node.line_of(key), f"{key} must be text, got {value!r}")
    text = str(value).strip()
    if choices is not None and text not in choices:
        raise w.error(node.line_of(key), f"{key} must be one of {', '.join(choices)}, got {text!r}")
    return text


_SOURCE_KEYS = (
    "protocol",
    "url",
    "host",
    "port",
    "unit_id",
    "topic",
    "client_id",
    "sampling_ms",
    "poll_active_ms",
    "poll_idle_ms",
    "timeout_s",
    "subscribe",
    "clock_register",
)
_TAG_KEYS = (
    "source",
    "id",
    "node",
    "register",
    "machine_id",
    "metric",
    "unit",
    "kind",
    "counts",
    "bits",
    "max_rate_per_s",
    "range",
    "states",
    "field",
    "sampling_ms",
)
_REGISTER_KEYS = ("function", "address", "type", "word_order", "scale", "offset")


def _source(w: _Where, name: str, node: Any) -> Source:
    node = _check_keys(w, node, _SOURCE_KEYS, f"source {name!r}")
    protocol = _text(w, node, "protocol", required=True, choices=PROTOCOLS)
    url = _text(w, node, "url")
    host = _text(w, node, "host")
    if protocol in ("mqtt", "opcua") and not url:
        raise w.error(node.line, f"source {name!r} ({protocol}) needs url")
    if protocol == "opcua" and not url.startswith("opc.tcp://"):
        raise w.error(node.line_of("url"), f"an OPC UA url starts with opc.tcp://, got {url!r}")
    if protocol == "mqtt" and not url.startswith(("mqtt://", "tcp://")):
        raise w.error(node.line_of("url"), f"an MQTT url looks like mqtt://host:1883, got {url!r}")
    if protocol == "modbus" and not host:
        raise w.error(node.line, f"source {name!r} (modbus) needs host (and port, default 502)")
    subscribe = node.get("subscribe", True)
    if not isinstance(subscribe, bool):
        raise w.error(node.line_of("subscribe"), f"subscribe must be true or false, got {subscribe!r}")
    return Source(
        name=name,
        protocol=protocol,
        url=url,
        host=host,
        port=_num(w, node, "port", 502 if protocol == "modbus" else None, positive=True, integer=True),
        unit_id=_num(w, node, "unit_id", 1, integer=True),
        topic=_text(w, node, "topic") or "kepware/#",
        client_id=_text(w, node, "client_id"),
        sampling_ms=_num(w, node, "sampling_ms", 1000, positive=True, integer=True),
        poll_active_ms=_num(w, node, "poll_active_ms", 1000, positive=True, integer=True),
        poll_idle_ms=_num(w, node, "poll_idle_ms", 5000, positive=True, integer=True),
        timeout_s=_num(w, node, "timeout_s", 3.0, positive=True),
        subscribe=subscribe,
        clock_register=_num(w, node, "clock_register", None, integer=True),
        line=node.line,
    )


def _register(w: _Where, node: Any) -> Register:
    node = _check_keys(w, node, _REGISTER_KEYS, "register")
    function = _text(w, node, "function", choices=REGISTER_FUNCTIONS) or "holding"
    address = _num(w, node, "address", None, integer=True)
    if address is None or not 0 <= address <= 65535:
        raise w.error(
            node.line_of("address"), f"register address must be 0–65535, got {node.get('address')!r}"
        )
    rtype = _text(w, node, "type", required=True, choices=tuple(REGISTER_TYPES))
    order = _text(w, node, "word_order", choices=("big", "little")) or "big"
    scale = _num(w, node, "scale", 1.0)
    if scale == 0:
        raise w.error(node.line_of("scale"), "scale must not be 0")
    return Register(
        function=function,
        address=address,
        type=rtype,
        word_order=order,
        scale=scale,
        offset=_num(w, node, "offset", 0.0),
    )


def _states(w: _Where, node: Any, what: str) -> dict[str, str]:
    if not isinstance(node, dict):
        raise w.error(getattr(node, "line", 0), f"{what} must map state codes to state names")
    out = {}
    for code, name in node.items():
        if name not in STATES:
            raise w.error(
                node.line_of(code), f"state code {code!r} maps to {name!r}; states are {', '.join(STATES)}"
            )
        out[str(code)] = name
    return out


def _tag(
    w: _Where,
    node: Any,
    sources: Mapping[str, Source],
    default_states: dict[str, str],
    defaults: dict[str, Any],
) -> Tag:
    node = _check_keys(w, node, _TAG_KEYS, "tag")
    src_name = _text(w, node, "source", required=True)
    if src_name not in sources:
        raise w.error(node.line_of("source"), f"unknown source {src_name!r}; sources: {', '.join(sources)}")
    src = sources[src_name]
    want = {"mqtt": "id", "opcua": "node", "modbus": "register"}[src.protocol]
    for other in ("id", "node", "register"):
        if other != want and other in node:
            raise w.error(
                node.line_of(other), f"a {src.protocol} tag is addressed by {want!r}, not {other!r}"
            )
    register = None
    if want == "register":
        if "register" not in node:
            raise w.error(node.line, "a modbus tag needs register: {function, address, type}")
        register = _register(w, node["register"])
        address = register.key
    else:
        address = _text(w, node, want, required=True)
    kind = _text(w, node, "kind", required=True, choices=KINDS)
    machine = _text(w, node, "machine_id", required=True)
    metric = _text(w, node, "metric", required=True)
    for key, value in (("machine_id", machine), ("metric", metric)):
        if not _NAME.match(value):
            raise w.error(
                node.line_of(key), f"{key} {value!r} may hold letters, digits, '_', '.' and '-' only"
            )
    unit = _text(w, node, "unit")
    if kind in ("gauge", "counter") and unit is None:
        raise w.error(node.line, f"{kind} {machine}/{metric} has no unit (e.g. unit: count, bar, degC)")
    counts = _text(w, node, "counts", choices=("good", "reject"))
    if kind == "counter" and counts is None:
        raise w.error(node.line, f"counter {machine}/{metric} needs counts: good or reject")
    if kind != "counter":
        for key in ("counts", "bits", "max_rate_per_s"):
            if key in node:
                raise w.error(node.line_of(key), f"{key} applies to counters only, not to a {kind}")
    bits = _num(w, node, "bits", 16 if register is None else min(32, 16 * register.words), integer=True)
    if bits not in (16, 32):
        raise w.error(node.line_of("bits"), f"bits must be 16 or 32, got {bits}")
    low = high = None
    if "range" in node:
        rng = node["range"]
        if (
            not isinstance(rng, list)
            or len(rng) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in rng)
            or rng[0] > rng[1]
        ):
            raise w.error(node.line_of("range"), f"range must be [low, high] numbers, got {rng!r}")
        low, high = float(rng[0]), float(rng[1])
    if kind == "context":
        fld = _text(w, node, "field", required=True, choices=CONTEXT_FIELDS)
    else:
        if "field" in node:
            raise w.error(node.line_of("field"), "field applies to context tags only")
        fld = None
    states = default_states
    if "states" in node:
        if kind != "state":
            raise w.error(node.line_of("states"), "states applies to state tags only")
        states = _states(w, node["states"], "states")
    if kind == "state" and not states:
        raise w.error(node.line, f"state tag {machine}/{metric} needs states: (or a top-level states:)")
    return Tag(
        source=src_name,
        address=address,
        machine_id=machine,
        metric=metric,
        kind=kind,
        unit=unit,
        counts=counts,
        bits=bits,
        max_rate_per_s=_num(w, node, "max_rate_per_s", defaults["max_rate_per_s"], positive=True),
        low=low,
        high=high,
        states=states if kind == "state" else {},
        field=fld,
        register=register,
        sampling_ms=_num(w, node, "sampling_ms", None, positive=True, integer=True),
        line=node.line,
    )


_TOP_KEYS = ("version", "sources", "tags", "fault_codes", "states", "defaults")
_DEFAULT_KEYS = ("clock_skew_s", "max_rate_per_s")


def load_tags(path: Path | str) -> TagDictionary:
    """Read and validate a tag dictionary.

    Raises
    ------
    ConfigError
        Anything wrong, with the file and line: unknown keys, a tag mapped twice, a gauge or
        counter without a unit, an unknown source, an invalid register, overlapping registers.
    """
    path = Path(path)
    w = _Where(path)
    doc = yamlconf.load(path)
    doc = _check_keys(w, doc if doc is not None else yamlconf.LocatedDict(), _TOP_KEYS, "the tag dictionary")
    if doc.get("version", 1) != 1:
        raise w.error(
            doc.line_of("version"), f"unsupported version {doc['version']!r} (this workbench reads 1)"
        )
    defaults = _check_keys(w, doc.get("defaults") or yamlconf.LocatedDict(), _DEFAULT_KEYS, "defaults")
    settings = {
        "clock_skew_s": _num(w, defaults, "clock_skew_s", 5.0, positive=True),
        "max_rate_per_s": _num(w, defaults, "max_rate_per_s", 10.0, positive=True),
    }
    raw_sources = doc.get("sources")
    if not isinstance(raw_sources, dict) or not raw_sources:
        raise w.error(doc.line_of("sources"), "sources: must name at least one source")
    sources = {}
    for name, node in raw_sources.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise w.error(
                raw_sources.line_of(name), f"source name {name!r} may hold letters, digits, '_', '.', '-'"
            )
        sources[name] = _source(w, name, node)
    default_states = _states(w, doc["states"], "states") if "states" in doc else {}
    faults = doc.get("fault_codes") or {}
    if not isinstance(faults, dict):
        raise w.error(doc.line_of("fault_codes"), "fault_codes must map fault codes to reason codes")
    fault_codes = {str(k): str(v) for k, v in faults.items()}
    raw_tags = doc.get("tags")
    if not isinstance(raw_tags, list) or not raw_tags:
        raise w.error(doc.line_of("tags"), "tags: must list at least one tag")
    tags: list[Tag] = []
    index: dict[tuple[str, str], Tag] = {}
    metric_of: dict[tuple[str, str], Tag] = {}
    for node in raw_tags:
        tag = _tag(w, node, sources, default_states, settings)
        if (tag.source, tag.address) in index:
            raise w.error(
                tag.line,
                f"address {tag.address!r} of source {tag.source!r} is mapped twice "
                f"(first on line {index[(tag.source, tag.address)].line})",
            )
        if (tag.machine_id, tag.metric) in metric_of:
            first = metric_of[(tag.machine_id, tag.metric)]
            raise w.error(
                tag.line, f"{tag.machine_id}/{tag.metric} is mapped twice (first on line {first.line})"
            )
        index[(tag.source, tag.address)] = tag
        metric_of[(tag.machine_id, tag.metric)] = tag
        tags.append(tag)
    _check_registers(w, tags)
    return TagDictionary(
        path=path,
        sources=sources,
        tags=tuple(tags),
        fault_codes=fault_codes,
        clock_skew_s=settings["clock_skew_s"],
        index=index,
    )


def _check_registers(w: _Where, tags: list[Tag]) -> None:
    used: dict[tuple[str, str, int], Tag] = {}
    for tag in tags:
        if tag.register is None:
            continue
        for k in range(tag.register.words):
            slot = (tag.source, tag.register.function, tag.register.address + k)
            if slot in used:
                raise w.error(
                    tag.line,
                    f"register {tag.register.function}:{tag.register.address + k} of "
                    f"{tag.source!r} is already used by the tag on line {used[slot].line}",
                )
            used[slot] = tag
