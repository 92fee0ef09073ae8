"""The ASGI side of the edge: what a client that has not authenticated may cost.

* **Bodies** are read here, before any parsing or authentication, and counted
  while they stream (a chunked body declares no Content-Length to check): past
  ``api.max_body_bytes`` the answer is 413 and nothing more is read; a body that
  has not arrived whole within ``api.body_timeout_seconds`` gets 408. Both close
  the connection. Only then does the app run, the body replayed to it, so the app
  never holds more than the limit.
* **Failed authentications** are counted per client address by
  :class:`AuthFailures` (``app.state.auth_failures``): every REST 401 and every
  WebSocket close 4001 the app sends counts, so routes need not call it. Past
  ``api.auth_failures_per_minute`` the address gets 429 with ``Retry-After`` on
  every request (a WebSocket handshake too) except ``/health`` and ``/metrics``,
  before anything else runs, until its oldest failure is a minute old.

The client address is ``scope["client"]``: the TCP peer, or the forwarded client
when the peer is a trusted proxy (``api.trusted_proxies``). An IPv6 client counts
per /64, the block one subscriber gets. The connection side (request-head
deadline, connections per address) needs the server: :mod:`api.edge_protocol`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import math
import time
from collections import deque
from collections.abc import Callable
from functools import lru_cache

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.ws import CLOSE_AUTH, CLOSE_TOO_MANY

#: Paths that never authenticate: a blocked address may still read them.
OPEN_PATHS = frozenset({"/health", "/metrics"})

Clock = Callable[[], float]


@lru_cache(maxsize=4096)
def client_key(host: str | None) -> str:
    """The address limits count against: the IP, an IPv6 client's /64 network."""
    if not host:
        return "unknown"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def scope_client_key(scope: Scope) -> str:
    client = scope.get("client")
    return client_key(client[0] if client else None)


class AuthFailures:
    """Failed authentications per client address, over a sliding ``period``.

    :meth:`retry_after` is 0.0 while the address may try (fewer than
    ``max_failures`` failures in the last ``period`` seconds), else the seconds until
    its oldest failure ages out. :meth:`failed` records one. Neither awaits.
    """

    def __init__(
        self,
        max_failures: int,
        period: float = 60.0,
        *,
        clock: Clock = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.max_failures = max_failures
        self.period = period
        self._clock = clock
        self._max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, key: str) -> float:
        stamps = self._failures.get(key)
        if not stamps:
            return 0.0
        now = self._clock()
        self._expire(stamps, now)
        if len(stamps) < self.max_failures:
            if not stamps:
                del self._failures[key]
            return 0.0
        return max(stamps[0] + self.period - now, 0.001)

    def failed(self, key: str) -> None:
        now = self._clock()
        stamps = self._failures.get(key)
        if stamps is None:
            if len(self._failures) >= self._max_keys:
                self._prune(now)
            stamps = self._failures[key] = deque(maxlen=self.max_failures)
        self._expire(stamps, now)
        stamps.append(now)

    def _expire(self, stamps: deque[float], now: float) -> None:
        edge = now - self.period
        while stamps and stamps[0] <= edge:
            stamps.popleft()

    def _prune(self, now: float) -> None:
        edge = now - self.period
        for key in [k for k, s in self._failures.items() if not s or s[-1] <= edge]:
            del self._failures[key]


def _json(detail: str) -> bytes:
    return json.dumps({"detail": detail}).encode()


def _retry_header(seconds: float) -> tuple[bytes, bytes]:
    return (b"retry-after", str(max(1, math.ceil(seconds))).encode())


async def reply(
    send: Send, status: int, detail: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    """A ``{"detail": ...}`` response that also closes the connection (whatever the
    client has not sent yet is not read)."""
    body = _json(detail)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *(extra or ()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _declared_length(scope: Scope) -> int | None:
    """The Content-Length header: None when absent, -1 when not a number."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else -1
    return None


class EdgeMiddleware:
    """Body limits and the failed-authentication gate, before the app sees anything."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        failures: AuthFailures,
        max_body_bytes: int = 1 << 20,
        body_timeout: float = 10.0,
    ) -> None:
        self.app = app
        self.failures = failures
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _blocked(self) -> str:
        return (
            f"too many failed authentications from your address (at most "
            f"{self.failures.max_failures} per minute); retry after the Retry-After seconds"
        )

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = scope_client_key(scope)
        if scope.get("path") not in OPEN_PATHS:
            wait = self.failures.retry_after(key)
            if wait > 0:
                await reply(send, 429, self._blocked(), [_retry_header(wait)])
                return
        limit = self.max_body_bytes
        too_large = f"request body too large: at most {limit} bytes"
        declared = _declared_length(scope)
        if declared is not None and not 0 <= declared <= limit:
            await reply(send, 413, too_large)
            return

        chunks: list[bytes] = []
        size = 0
        deadline = asyncio.get_running_loop().time() + self.body_timeout
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                await reply(send, 408, f"request body not received within {self.body_timeout:g} s")
                return
            if message["type"] != "http.request":
                return  # the client left: nobody to answer
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await reply(send, 413, too_large)
                return
            if chunk:
                chunks.append(chunk)
            if not message.get("more_body", False):
                break

        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # waits for the disconnect, as the server's would

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start" and message.get("status") == 401:
                self.failures.failed(key)
            await send(message)

        await self.app(scope, replay, watch)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = scope_client_key(scope)
        wait = self.failures.retry_after(key)
        if wait > 0:
            await self._deny(scope, receive, send, wait)
            return

        async def watch(message: Message) -> None:
            if message["type"] == "websocket.close" and message.get("code") == CLOSE_AUTH:
                self.failures.failed(key)
            await send(message)

        await self.app(scope, receive, watch)

    async def _deny(self, scope: Scope, receive: Receive, send: Send, wait: float) -> None:
        """Refuse the handshake: HTTP 429 with Retry-After where the server can say it
        (ASGI's ``websocket.http.response``), else close 4029 before accepting."""
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        if "websocket.http.response" in (scope.get("extensions") or {}):
            body = _json(self._blocked())
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                _retry_header(wait),
            ]
            await send({"type": "websocket.http.response.start", "status": 429, "headers": headers})
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": CLOSE_TOO_MANY})
