"""JSON over HTTP for the API syncs (MachineMetrics, an ERP's REST API): bearer auth, retries with
backoff, and errors that name the source and the request.

What is retried, and why: HTTP 429 (waiting what ``Retry-After`` asks, within a bound), 5xx,
timeouts and dropped connections are the weather of a cloud API; a 200 whose body is not JSON (cut
off by a proxy or a restart) is the same weather. Anything else — 401, 403, 404, 400 — will not
get better by asking again: it fails at once with the server's message.

The API key is a secret: it goes into the ``Authorization`` header and nowhere else (not into
log lines, errors or ``repr``).
"""

from __future__ import annotations

import email.utils
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from workbench.errors import SourceError

log = logging.getLogger("workbench.sync")

#: Statuses worth asking again.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class SourceUnreachable(SourceError):  # noqa: N818 — it names what happened to the source
    """A source did not answer usefully after every retry (or refused for good: 401, 404 …)."""


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How hard to try one request.

    Attributes
    ----------
    attempts : int
        Tries in all (1 = no retry).
    backoff_s : float
        Wait before the first retry; doubled for each further one, up to ``max_wait_s``.
    max_wait_s : float
        Longest wait between two tries, a ``Retry-After`` included (a server asking for an hour
        gets this, and the next scheduled run takes over).
    timeout_s : float
        Connect / read timeout of one try.
    """

    attempts: int = 5
    backoff_s: float = 1.0
    max_wait_s: float = 60.0
    timeout_s: float = 30.0

    def wait(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based)."""
        backoff = self.backoff_s * 2 ** (attempt - 1)
        return min(self.max_wait_s, max(backoff, retry_after or 0.0))


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: a number of seconds or an HTTP date; ``None`` if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class JsonApi:
    """A small JSON client for one API: ``get(path, params)`` with retries (see the module docstring).

    Parameters
    ----------
    source : str
        Name of the source in messages (``machinemetrics``, ``erp``).
    base_url : str
        Root of the API, e.g. ``https://api.machinemetrics.com``.
    api_key : str
        Bearer token.
    policy : RetryPolicy
        Retries and timeouts.
    sleep : callable
        How to wait (tests pass a recorder; the default sleeps).
    """

    def __init__(
        self,
        source: str,
        base_url: str,
        api_key: str,
        *,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise SourceError(
                f"{source}: the API address must start with http:// or https://, got {base_url!r}"
            )
        self.source = source
        self.base_url = base_url.rstrip("/")
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._client = httpx.Client(
            base_url=self.base_url,
            timeout=self.policy.timeout_s,
            headers={
                "Authorization": f"Bearer {api_key}",
                "Accept": "application/json",
                "User-Agent": "workbench-sync",
            },
        )
        #: Retries made so far (all requests), for the run's report.
        self.retries = 0

    def __repr__(self) -> str:
        return f"JsonApi({self.source!r}, {self.base_url!r})"

    def close(self) -> None:
        """Release the connection pool."""
        self._client.close()

    def __enter__(self) -> JsonApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def where(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        """The request as people read it in an error or a dead letter (no key in it)."""
        query = "&".join(f"{k}={v}" for k, v in (params or {}).items())
        return f"{self.base_url}{path}" + (f"?{query}" if query else "")

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET ``path`` and return its decoded JSON body.

        Raises
        ------
        SourceUnreachable
            After the last try, or at once for a status that retrying cannot fix; the message
            names the source, the request and what went wrong each time.
        """
        what = self.where(path, params)
        last = ""
        for attempt in range(1, self.policy.attempts + 1):
            retry_after = None
            try:
                response = self._client.get(path, params=dict(params or {}))
            except httpx.TimeoutException:
                last = f"no answer within {self.policy.timeout_s:g} s"
            except httpx.TransportError as exc:
                last = f"connection failed ({type(exc).__name__}: {exc})"
            else:
                status = response.status_code
                if status == 200:
                    try:
                        return _loads(response.content)
                    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                        last = (
                            f"the body is not complete JSON ({len(response.content)} bytes, {exc.msg} "
                            f"at char {exc.pos})"
                            if isinstance(exc, json.JSONDecodeError)
                            else f"the body is not UTF-8 JSON ({exc})"
                        )
                elif status in RETRY_STATUSES:
                    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
                    last = (
                        f"HTTP {status}"
                        + (
                            f" (Retry-After {response.headers['Retry-After']})"
                            if retry_after is not None
                            else ""
                        )
                        + _detail(response)
                    )
                else:
                    hint = {
                        401: " — the API key was refused (check the key in .env)",
                        403: " — the API key may not read this",
                    }.get(status, "")
                    raise SourceUnreachable(
                        f"{self.source}: GET {what} answered HTTP {status}{_detail(response)}{hint}"
                    )
            if attempt == self.policy.attempts:
                break
            wait = self.policy.wait(attempt, retry_after)
            self.retries += 1
            log.warning(
                "%s: GET %s: %s; try %d of %d in %.1f s",
                self.source,
                what,
                last,
                attempt + 1,
                self.policy.attempts,
                wait,
            )
            self._sleep(wait)
        raise SourceUnreachable(
            f"{self.source}: GET {what} failed {self.policy.attempts} time(s); last: {last}"
        )


def _loads(body: bytes) -> Any:
    """JSON from bytes: orjson (several times faster on big pages), else the standard library;
    both raise :class:`json.JSONDecodeError` on a body that is not complete JSON."""
    try:
        import orjson
    except ImportError:
        return json.loads(body)
    return orjson.loads(body)


def _detail(response: httpx.Response) -> str:
    """The server's own error message, short."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return f": {text[:200]}" if text else ""
    if isinstance(body, dict):
        for key in ("error", "message", "detail"):
            if body.get(key):
                return f": {str(body[key])[:200]}"
    return ""
