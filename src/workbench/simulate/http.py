"""HTTP plumbing of the simulated APIs: a uvicorn server in a thread, and the shared fault injection.

:class:`ServedApp` runs any ASGI app on 127.0.0.1 in a background thread, for tests and for
``workbench simulate serve``::

    with ServedApp(machinemetrics_app(plant, api_key="k")) as served:
        httpx.get(f"{served.url}/v1/machines", headers={"Authorization": "Bearer k"})

:class:`SimMiddleware` is what every simulated API shares (the MachineMetrics-shaped API and the
ERP's REST face): bearer authentication, a log of every request served (``GET`` / ``DELETE
/_sim/requests``: the API's traffic, without the ``/_sim/*`` control requests) and faults
injected into the next requests to ``/v1/*`` (``POST /_sim/faults``):

``{"http_429": n, "retry_after_s": s, "http_500": n, "http_503": n, "delay_s": s, "delay_count": n,
"truncate": n, "malformed": n, "path": "production"}`` — all keys optional; posting replaces what
is pending, ``{}`` clears it. A request to ``/v1/*`` (whose path contains ``path``, when given)
takes **one** fault: the first kind in the order 429, 500, 503, delay, truncate, malformed whose
count is not used up, and uses up one of it. So ``{"http_429": 1, "http_500": 1}`` answers 429,
then 500, then normally. A delayed request is answered normally after ``delay_s``; a truncated one
is a 200 whose body is cut to half its bytes (``Content-Length`` matching the cut body: the client
sees a complete response whose JSON is invalid); ``malformed`` counts only responses that have
data, and spoils one value of their first record (which value is up to the app: its ``malform``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import secrets
import socket
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict, dataclass, fields
from types import TracebackType
from typing import Any
from urllib.parse import unquote

from workbench.errors import SimulationError

try:  # orjson comes with the workbench's dependencies; plain json is the fallback
    import orjson

    def dumps(obj: Any) -> bytes:
        """Serialise ``obj`` to compact JSON bytes."""
        return orjson.dumps(obj)

    def loads(data: bytes | str) -> Any:
        """Parse JSON bytes or text."""
        return orjson.loads(data)

except ImportError:  # pragma: no cover - orjson is installed with the workbench

    def dumps(obj: Any) -> bytes:
        """Serialise ``obj`` to compact JSON bytes."""
        return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()

    def loads(data: bytes | str) -> Any:
        """Parse JSON bytes or text."""
        return json.loads(data)


HOST = "127.0.0.1"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
#: ``malform(path, body)``: spoil one value of ``body["data"][0]`` in place (the body has data).
Malform = Callable[[str, dict[str, Any]], None]


# -- errors and JSON answers ----------------------------------------------------------------------


class ApiError(Exception):
    """An error answer of a simulated API: ``status`` and JSON ``{"error": message}``.

    Parameters
    ----------
    status : int
        HTTP status of the answer.
    message : str
        What is wrong, for the client.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def json_response(obj: Any, *, status: int = 200, headers: dict[str, str] | None = None):
    """A Starlette response with ``obj`` as compact JSON."""
    from starlette.responses import Response

    return Response(dumps(obj), status_code=status, headers=headers, media_type="application/json")


async def api_error_handler(request: Any, exc: Exception):
    """Starlette exception handler: :class:`ApiError` as its status and ``{"error": ...}``;
    anything else as a JSON 500 (a simulator bug, but the client should still get JSON)."""
    if isinstance(exc, ApiError):
        return json_response({"error": exc.message}, status=exc.status)
    return json_response({"error": f"internal error: {type(exc).__name__}: {exc}"}, status=500)


def parse_instant(value: str | None, name: str, *, required: bool = True) -> dt.datetime | None:
    """A query parameter as a timezone-aware instant (ISO-8601 with an offset or ``Z``).

    Raises
    ------
    ApiError
        400 when the parameter is missing (and ``required``), unreadable or has no offset.
    """
    if value is None or value == "":
        if required:
            raise ApiError(
                400, f"missing query parameter {name} (ISO-8601 with offset, e.g. 2026-10-19T11:00:00Z)"
            )
        return None
    # A client that does not percent-encode "+01:00" sends a space, which the query parser decoded.
    text = value.strip().replace(" ", "+")
    try:
        out = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(400, f"{name}={value!r} is not an ISO-8601 date-time") from None
    if out.tzinfo is None or out.utcoffset() is None:
        raise ApiError(400, f"{name}={value!r} has no UTC offset: add Z or +hh:mm")
    return out


def parse_int(value: str | None, name: str, *, default: int, low: int, high: int | None = None) -> int:
    """A positive integer query parameter within ``[low, high]``; 400 :class:`ApiError` otherwise."""
    if value is None or value == "":
        return default
    try:
        out = int(value)
    except ValueError:
        raise ApiError(400, f"{name}={value!r} is not an integer") from None
    if out < low:
        raise ApiError(400, f"{name} must be at least {low}, got {out}")
    if high is not None and out > high:
        raise ApiError(400, f"{name} must be at most {high}, got {out}")
    return out


def iso_z(value: dt.datetime) -> str:
    """An instant as ISO-8601 UTC with ``Z``: milliseconds when it is whole milliseconds, else
    microseconds (so a client parsing it gets exactly the same instant back)."""
    utc = value.astimezone(dt.UTC)
    spec = "milliseconds" if utc.microsecond % 1000 == 0 else "microseconds"
    return utc.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


# -- faults and the request log ---------------------------------------------------------------------

#: Fault kinds in the order a request takes them.
FAULT_ORDER: tuple[str, ...] = ("http_429", "http_500", "http_503", "delay", "truncate", "malformed")


@dataclass
class Faults:
    """Faults pending for the next requests to ``/v1/*`` (see the module docstring)."""

    http_429: int = 0
    retry_after_s: float = 1.0
    http_500: int = 0
    http_503: int = 0
    delay_s: float = 0.0
    delay_count: int = 0
    truncate: int = 0
    malformed: int = 0
    path: str | None = None

    @classmethod
    def from_json(cls, body: Any) -> Faults:
        """Validate a ``POST /_sim/faults`` body; :class:`ApiError` 400 names what is wrong."""
        if not isinstance(body, dict):
            raise ApiError(400, "the faults must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(body) - known)
        if unknown:
            raise ApiError(
                400, f"unknown fault key(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        values: dict[str, Any] = {}
        for key, value in body.items():
            if key == "path":
                if value is not None and not isinstance(value, str):
                    raise ApiError(400, "path must be a string or null")
                values[key] = value or None
            elif key in ("retry_after_s", "delay_s"):
                if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 3600:
                    raise ApiError(
                        400, f"{key} must be a number of seconds between 0 and 3600, got {value!r}"
                    )
                values[key] = float(value)
            else:
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ApiError(400, f"{key} must be a non-negative integer, got {value!r}")
                values[key] = value
        return cls(**values)

    def count(self, kind: str) -> int:
        """Requests left for ``kind`` (one of :data:`FAULT_ORDER`)."""
        return self.delay_count if kind == "delay" else getattr(self, kind)

    def use(self, kind: str) -> None:
        """Use up one request of ``kind``."""
        attr = "delay_count" if kind == "delay" else kind
        setattr(self, attr, getattr(self, attr) - 1)

    def applies(self, path: str) -> bool:
        """Whether the faults are meant for a request to ``path``."""
        return path.startswith("/v1/") and (self.path is None or self.path in path)


class SimControl:
    """The pending faults and the request log of one simulated API.

    The app runs in uvicorn's event-loop thread while tests and the CLI may look from others,
    so every access goes through one lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults = Faults()
        self._log: list[dict[str, Any]] = []

    def set_faults(self, faults: Faults) -> None:
        """Replace the pending faults."""
        with self._lock:
            self._faults = faults

    def faults(self) -> dict[str, Any]:
        """The pending faults, as JSON values."""
        with self._lock:
            return asdict(self._faults)

    def take(self, path: str) -> tuple[str | None, Faults]:
        """The fault a request to ``path`` takes (used up here), except ``malformed``, which is
        only used up by a response with data (:meth:`take_malformed`); and a copy of the settings."""
        with self._lock:
            f = self._faults
            if not f.applies(path):
                return None, Faults()
            for kind in FAULT_ORDER:
                if f.count(kind) > 0:
                    if kind != "malformed":
                        f.use(kind)
                    return kind, Faults(**asdict(f))
            return None, Faults()

    def take_malformed(self, path: str) -> bool:
        """Use up one ``malformed`` response, if one is still pending for ``path``."""
        with self._lock:
            if self._faults.applies(path) and self._faults.malformed > 0:
                self._faults.malformed -= 1
                return True
            return False

    def record(self, *, path: str, query: str, status: int) -> None:
        """Log one request served (``query`` percent-decoded)."""
        entry = {
            "time": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
            "path": path,
            "query": query,
            "status": status,
        }
        with self._lock:
            self._log.append(entry)

    def requests(self) -> list[dict[str, Any]]:
        """Every request served since the start or the last :meth:`clear_requests`, oldest first."""
        with self._lock:
            return list(self._log)

    def clear_requests(self) -> int:
        """Forget the request log; returns how many entries it had."""
        with self._lock:
            n = len(self._log)
            self._log.clear()
            return n


class SimMiddleware:
    """ASGI middleware of every simulated API: bearer auth, ``/_sim/faults``, ``/_sim/requests``,
    fault injection on ``/v1/*`` and the request log (see the module docstring).

    Parameters
    ----------
    app : ASGI app
        The API proper.
    api_key : str
        The bearer key every request must carry.
    control : SimControl
        Faults and log (shared with whoever wants to look at them from Python).
    malform : callable
        ``malform(path, body)`` spoils one value of ``body["data"][0]`` in place.
    """

    def __init__(self, app: ASGIApp, *, api_key: str, control: SimControl, malform: Malform) -> None:
        self.app = app
        self.api_key = api_key.encode()
        self.control = control
        self.malform = malform

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith("/_sim/"):  # control requests are not the API's traffic
            await self._dispatch(scope, receive, send)
            return
        status: list[int] = []

        async def send_logged(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        try:
            await self._dispatch(scope, receive, send_logged)
        finally:
            self.control.record(
                path=scope["path"],
                query=unquote(scope.get("query_string", b"").decode("latin-1")),
                status=status[0] if status else 500,
            )

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        if not self._authorised(scope):
            await _send_json(send, 401, {"error": "unauthorized"}, {"www-authenticate": "Bearer"})
            return
        if path == "/_sim/faults":
            if method == "GET":
                await _send_json(send, 200, {"faults": self.control.faults()})
            elif method == "POST":
                try:
                    body = await _read_body(receive)
                    faults = Faults.from_json(loads(body) if body.strip() else {})
                except ApiError as exc:
                    await _send_json(send, exc.status, {"error": exc.message})
                    return
                except ValueError as exc:
                    await _send_json(send, 400, {"error": f"the faults are not JSON: {exc}"})
                    return
                self.control.set_faults(faults)
                await _send_json(send, 200, {"faults": self.control.faults()})
            else:
                await _send_json(send, 405, {"error": f"{method} not allowed on {path}"})
            return
        if path == "/_sim/requests":
            if method == "GET":
                await _send_json(send, 200, {"data": self.control.requests()})
            elif method == "DELETE":
                await _send_json(send, 200, {"cleared": self.control.clear_requests()})
            else:
                await _send_json(send, 405, {"error": f"{method} not allowed on {path}"})
            return
        kind, faults = self.control.take(path)
        if kind == "http_429":
            retry = str(max(0, math.ceil(faults.retry_after_s)))
            await _send_json(send, 429, {"error": "rate limited"}, {"retry-after": retry})
        elif kind == "http_500":
            await _send_json(send, 500, {"error": "internal server error (simulated)"})
        elif kind == "http_503":
            await _send_json(send, 503, {"error": "service unavailable (simulated)"})
        elif kind == "delay":
            await asyncio.sleep(faults.delay_s)
            await self.app(scope, receive, send)
        elif kind in ("truncate", "malformed"):
            start, body = await _buffered(self.app, scope, receive)
            if kind == "truncate" and start["status"] == 200:
                body = body[: len(body) // 2]
            elif kind == "malformed" and start["status"] == 200:
                body = self._malformed(path, body)
            await _send_buffered(send, start, body)
        else:
            await self.app(scope, receive, send)

    def _authorised(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                return scheme.lower() == b"bearer" and secrets.compare_digest(token.strip(), self.api_key)
        return False

    def _malformed(self, path: str, body: bytes) -> bytes:
        try:
            doc = loads(body)
        except ValueError:
            return body
        if not (isinstance(doc, dict) and isinstance(doc.get("data"), list) and doc["data"]):
            return body  # no data: the fault waits for a response that has some
        if not self.control.take_malformed(path):
            return body
        self.malform(path, doc)
        return dumps(doc)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _send_json(send: Send, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
    body = dumps(obj)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _buffered(app: ASGIApp, scope: Scope, receive: Receive) -> tuple[Message, bytes]:
    """Run ``app`` and keep its whole answer (start message, body) instead of sending it."""
    start: Message = {}
    chunks: list[bytes] = []

    async def keep(message: Message) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, keep)
    return start, b"".join(chunks)


async def _send_buffered(send: Send, start: Message, body: bytes) -> None:
    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": start["status"], "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


# -- serving ------------------------------------------------------------------------------------------


class ServedApp:
    """An ASGI app served by uvicorn on 127.0.0.1 in a background thread.

    Parameters
    ----------
    app : ASGI app
        What to serve (a Starlette app, for instance).
    port : int
        Port on 127.0.0.1; 0 picks a free one (read it from :attr:`url` once started).

    Examples
    --------
    >>> with ServedApp(app) as served:  # doctest: +SKIP
    ...     httpx.get(served.url + "/v1/machines")
    """

    def __init__(self, app: Any, *, port: int = 0) -> None:
        self.app = app
        self.port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, with the real port once started."""
        return f"http://{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the server thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, *, timeout_s: float = 10.0) -> ServedApp:
        """Start serving; returns once the server accepts connections.

        Raises
        ------
        SimulationError
            When the port cannot be bound or the server does not come up within ``timeout_s``.
        """
        import uvicorn

        if self.running:
            return self
        # Binding here rather than in uvicorn makes a busy port an exception in the caller's
        # thread, and gives the real port of port=0 before the server starts.
        # proto=IPPROTO_TCP, not 0: asyncio only sets TCP_NODELAY on the accepted connections of
        # such a socket; without it every small answer waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, self.port))
        except OSError as exc:
            sock.close()
            raise SimulationError(f"cannot serve on {HOST}:{self.port}: {exc}") from None
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            # A request held by a delay fault must not keep stop() waiting for long.
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._error = None

        def run() -> None:
            try:
                self._server.run(sockets=[sock])
            except BaseException as exc:  # SystemExit from a failed startup included
                self._error = exc
            finally:
                sock.close()

        self._thread = threading.Thread(target=run, name=f"served-app-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise SimulationError(
                    f"the server on {self.url} did not start"
                    + (f": {self._error!r}" if self._error else f" within {timeout_s:g} s")
                )
            time.sleep(0.01)
        return self

    def stop(self, *, timeout_s: float = 10.0) -> None:
        """Ask the server to exit (finishing requests in flight) and wait for its thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(timeout_s)
        self._thread = None

    def __enter__(self) -> ServedApp:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


__all__ = [
    "FAULT_ORDER",
    "ApiError",
    "Faults",
    "ServedApp",
    "SimControl",
    "SimMiddleware",
    "api_error_handler",
    "dumps",
    "iso_z",
    "json_response",
    "loads",
    "parse_instant",
    "parse_int",
]
