"""The connection-level edge: a request-head deadline and a per-address connection cap.

uvicorn starts no timer until a request has completed, so a client that opens a
connection and never finishes its request head holds a file descriptor forever
(slowloris); and nothing limits how many connections one address opens. uvicorn
has no option for either, so :func:`protocol_factory` hands ``uvicorn.Config(http=...)``
a subclass of its HTTP protocol (httptools, what ``http="auto"`` picks with
uvicorn[standard]; or h11) that adds:

* **a deadline**: from the moment a connection opens, and again after each
  response, the client has ``api.header_timeout_seconds`` to deliver a complete
  request head (a WebSocket handshake is one). Otherwise it gets 408 (if it had
  started one) and is closed. A request being served and an upgraded WebSocket
  have no deadline here; slow bodies are :mod:`api.edge`'s.
* **a cap**: at most ``api.max_open_connections_per_ip`` open connections per
  client address (an IPv6 /64), REST and WebSocket together; the next one gets
  503 and is closed. Connections from ``api.trusted_proxies`` are not capped:
  behind a proxy every client shares its address, so the proxy must cap.

The count does not rely on uvicorn: :class:`EdgeGuard` keeps each address's
transports and counts those not ``is_closing()``, so a connection handed to the
WebSocket protocol (``transport.set_protocol``) counts until it really closes.

The uvicorn hooks themselves (subclasses of its h11 and httptools protocols that
report to a :class:`ConnectionWatch`) are in :mod:`api.uvicorn_internals`, with
everything else the API takes from uvicorn beyond its public API; they were
written against uvicorn 0.54 and ``tests/api/test_uvicorn_internals.py`` (and
``tests/security/test_edge_uvicorn_internals.py``) fail loudly when that changes.
This module is only the policy: no uvicorn import.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
from collections.abc import Callable, Iterable
from typing import Literal

from api.edge import client_key
from api.uvicorn_internals import EDGE_INTERNALS as UVICORN_INTERNALS
from api.uvicorn_internals import (
    UVICORN_INSTANCE_ATTRIBUTES,
    EdgeH11Protocol,
    EdgeHttpToolsProtocol,
)

HttpImpl = Literal["auto", "h11", "httptools"]

#: Sweep every address's closed transports once per this many admitted connections.
SWEEP_EVERY = 1024


def _raw_response(status: bytes, detail: str, extra: bytes = b"") -> bytes:
    body = json.dumps({"detail": detail}).encode()
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
        b"content-length: "
        + str(len(body)).encode()
        + b"\r\n"
        + extra
        + b"connection: close\r\n\r\n"
        + body
    )


REQUEST_TIMEOUT = _raw_response(b"408 Request Timeout", "request head not received in time")
TOO_MANY_CONNECTIONS = _raw_response(
    b"503 Service Unavailable",
    "too many open connections from your address; close some and retry",
    b"retry-after: 5\r\n",
)


class EdgeGuard:
    """One server's limits and per-address accounting (shared by its connections)."""

    def __init__(
        self,
        *,
        header_timeout: float = 5.0,
        max_per_ip: int = 400,
        trusted_proxies: Iterable[str] = (),
    ) -> None:
        self.header_timeout = header_timeout
        self.max_per_ip = max_per_ip
        trusted = [t.strip() for t in trusted_proxies]
        self._trust_all = "*" in trusted
        self._trusted = [ipaddress.ip_network(t, strict=False) for t in trusted if t != "*"]
        self._open: dict[str, set[asyncio.BaseTransport]] = {}
        self._admitted = 0
        #: Connections refused for the cap, and closed for the deadline (for tests/metrics).
        self.refused = 0
        self.timed_out = 0

    def is_trusted(self, host: str | None) -> bool:
        if self._trust_all:
            return True
        if not host or not self._trusted:
            return False
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(ip in net for net in self._trusted)

    def admit(self, host: str | None, transport: asyncio.BaseTransport) -> bool:
        """Count ``transport`` against its address; False when the address is full."""
        if self.is_trusted(host):
            return True
        self._admitted += 1
        if self._admitted % SWEEP_EVERY == 0:
            self._sweep()
        key = client_key(host)
        live = self._open.setdefault(key, set())
        if len(live) >= self.max_per_ip:
            # Closed WebSockets are only dropped here and by the sweep (their
            # connection_lost goes to the WebSocket protocol, not to ours).
            live.difference_update([t for t in live if t.is_closing()])
            if len(live) >= self.max_per_ip:
                self.refused += 1
                return False
        live.add(transport)
        return True

    def release(self, host: str | None, transport: asyncio.BaseTransport) -> None:
        key = client_key(host)
        live = self._open.get(key)
        if live is not None:
            live.discard(transport)
            if not live:
                del self._open[key]

    def open_connections(self, host: str | None) -> int:
        live = self._open.get(client_key(host), set())
        return sum(1 for t in live if not t.is_closing())

    def _sweep(self) -> None:
        for key in list(self._open):
            live = {t for t in self._open[key] if not t.is_closing()}
            if live:
                self._open[key] = live
            else:
                del self._open[key]


class ConnectionWatch:
    """One connection's slot in the guard and its request-head deadline (told by the
    protocol hooks in :mod:`api.uvicorn_internals`)."""

    __slots__ = ("admitted", "guard", "host", "loop", "started", "timer", "transport")

    def __init__(self, guard: EdgeGuard, loop: asyncio.AbstractEventLoop) -> None:
        self.guard = guard
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.host: str | None = None
        self.admitted = False
        self.timer: asyncio.TimerHandle | None = None
        self.started = False  # bytes of a request head arrived since the deadline was armed

    def opened(self, transport: asyncio.Transport, client: tuple[str, int] | None) -> None:
        self.transport = transport
        self.host = client[0] if client else None
        if not self.guard.admit(self.host, transport):
            transport.write(TOO_MANY_CONNECTIONS)
            transport.close()
            return
        self.admitted = True
        self.arm()

    def arm(self) -> None:
        self.cancel()
        self.started = False
        self.timer = self.loop.call_later(self.guard.header_timeout, self._expire)

    def received(self) -> None:
        if self.timer is not None:
            self.started = True

    def head_complete(self) -> None:
        """A complete request head (or WebSocket handshake): no deadline while it is served."""
        self.cancel()

    def response_complete(self, transport: asyncio.Transport, idle: bool) -> None:
        """After a response: if no other request is under way, the next head has a deadline."""
        if idle and not transport.is_closing():
            self.arm()

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _expire(self) -> None:
        self.timer = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self.guard.timed_out += 1
        if self.started:
            transport.write(REQUEST_TIMEOUT)
        transport.close()

    def closed(self) -> None:
        self.cancel()
        if self.admitted and self.transport is not None:
            self.admitted = False
            self.guard.release(self.host, self.transport)


def protocol_factory(guard: EdgeGuard, http: HttpImpl = "auto") -> Callable[..., asyncio.Protocol]:
    """What to pass as ``uvicorn.Config(http=...)``: the edge protocol bound to ``guard``
    (httptools, as uvicorn's ``auto`` picks with uvicorn[standard]; or h11)."""

    def watch(loop: asyncio.AbstractEventLoop) -> ConnectionWatch:
        return ConnectionWatch(guard, loop)

    if http == "h11":
        return functools.partial(EdgeH11Protocol, watch=watch)
    return functools.partial(EdgeHttpToolsProtocol, watch=watch)


__all__ = [
    "UVICORN_INSTANCE_ATTRIBUTES",
    "UVICORN_INTERNALS",
    "ConnectionWatch",
    "EdgeGuard",
    "EdgeH11Protocol",
    "EdgeHttpToolsProtocol",
    "protocol_factory",
]
