"""Everything the API does with uvicorn beyond its public API, in one place.

Written against uvicorn 0.54.0 (pyproject pins ``uvicorn[standard]>=0.54,<0.55``);
``tests/api/test_uvicorn_internals.py`` fails, naming the library, the version and
what moved, when an upgrade changes any of it. After an upgrade: re-read this
module against the new uvicorn, then widen :data:`CHECKED_VERSIONS` and the pin
together. Nothing else in the project imports from ``uvicorn.protocols``,
``uvicorn.server`` or ``uvicorn.config``, or overrides a uvicorn method.

Each use is here because a measured gain or a protection needs it:

* :class:`EmbeddedServer`: ``uvicorn.Server`` without its signal capture. The hub
  owns SIGINT/SIGTERM (it closes WebSocket clients with 1001 before uvicorn stops);
  uvicorn has no option for this, so :meth:`Server.capture_signals` is overridden
  with a no-op (the method ``Server.serve`` enters).
* :class:`FanoutProtocol` (``ApiServer``) and :class:`FastSendMiddleware` (a bare
  ``uvicorn --factory``): the ``catalyst.write_frame`` extension, with which a
  broadcast writes one pre-built frame per client instead of going through ASGI
  (``bench/ws_fanout.py``: several times faster at thousands of clients), and
  a bounded closing handshake (``catalyst.hang_up``: a client closed for flooding
  costs nothing more). They read the sans-I/O protocol's ``conn``, ``transport``,
  ``writable``, ``close_sent``, ``disconnected``, ``handshake_complete``,
  ``close_timer``, ``close_timeout``, ``ping_timeout``, ``loop``, ``scope`` and
  ``response``, and override ``data_received`` and ``handle_connect``.
* :class:`EdgeH11Protocol` and :class:`EdgeHttpToolsProtocol`: uvicorn's HTTP
  protocols plus a request-head deadline and a per-address connection cap (the
  policy is :mod:`api.edge_protocol`'s; only the hooks are here). uvicorn calls a
  non-string ``Config(http=...)`` with ``config=``, ``server_state=``,
  ``app_state=``, ``_loop=``; the subclasses override ``connection_made``,
  ``connection_lost``, ``data_received``, ``on_response_complete``, httptools'
  ``on_headers_complete`` and h11's ``handle_events`` and
  ``handle_websocket_upgrade``, and read ``transport``, ``client``, ``loop`` and
  ``cycle`` (with ``response_complete``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Protocol, cast

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.protocol import State

#: uvicorn versions this module was checked against (major, minor).
CHECKED_VERSIONS = ((0, 54),)

#: ASGI scope extensions offered to the app (read by :mod:`api.ws_client`).
EXTENSION = "catalyst.write_frame"
HANG_UP_EXTENSION = "catalyst.hang_up"
#: After the server's close frame: how long, and how many bytes, until the peer's close.
CLOSE_TIMEOUT = 2.0
CLOSE_DRAIN_BYTES = 1 << 16
HANG_UP_SECONDS = 0.25

#: (class, attribute) pairs the edge protocols override or call.
EDGE_INTERNALS: tuple[tuple[str, str], ...] = (
    ("H11Protocol", "connection_made"),
    ("H11Protocol", "connection_lost"),
    ("H11Protocol", "data_received"),
    ("H11Protocol", "on_response_complete"),
    ("H11Protocol", "handle_events"),
    ("H11Protocol", "handle_websocket_upgrade"),
    ("HttpToolsProtocol", "connection_made"),
    ("HttpToolsProtocol", "connection_lost"),
    ("HttpToolsProtocol", "data_received"),
    ("HttpToolsProtocol", "on_response_complete"),
    ("HttpToolsProtocol", "on_headers_complete"),
)
#: Every (class, attribute) pair this module overrides or calls; the test checks each.
UVICORN_INTERNALS: tuple[tuple[str, str], ...] = (
    ("Server", "serve"),
    ("Server", "capture_signals"),
    ("WebSocketsSansIOProtocol", "data_received"),
    ("WebSocketsSansIOProtocol", "handle_connect"),
    *EDGE_INTERNALS,
)
#: Attributes every instance of both HTTP protocols must have after ``__init__``.
UVICORN_INSTANCE_ATTRIBUTES = ("transport", "client", "loop", "cycle")
#: Attributes every sans-I/O WebSocket protocol instance must have after ``__init__``.
UVICORN_WS_INSTANCE_ATTRIBUTES = (
    "conn",
    "transport",
    "writable",
    "close_sent",
    "disconnected",
    "close_timer",
    "close_timeout",
    "ping_timeout",
    "handshake_complete",
    "loop",
)


# ---- the server ---------------------------------------------------------------------


class EmbeddedServer(uvicorn.Server):
    """``uvicorn.Server`` that leaves SIGINT and SIGTERM to the process that embeds it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


# ---- WebSocket: pre-built frames and a bounded close ---------------------------------


def write_frame(protocol: WebSocketsSansIOProtocol, frame: bytes) -> bool:
    """Write a complete text frame on ``protocol``'s connection now, if uvicorn itself
    could (open, no close sent, not compressed, no fragment in progress, no back
    pressure); else False and nothing is written."""
    conn = protocol.conn
    if (
        protocol.close_sent
        or protocol.disconnected
        or not protocol.handshake_complete
        or not protocol.writable.is_set()
        or conn.state is not State.OPEN
        or conn.extensions
        or conn.expect_continuation_frame
        or protocol.transport.is_closing()
    ):
        return False
    protocol.transport.write(frame)
    return True


class FanoutProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol plus the ``catalyst.write_frame`` and
    ``catalyst.hang_up`` extensions and a bounded closing handshake."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.close_timeout = CLOSE_TIMEOUT
        self._after_close = 0
        self._hung_up = False

    def data_received(self, data: bytes) -> None:
        if self.close_sent:
            if self._hung_up:
                return  # closed for flooding: its frames are not even parsed
            self._after_close += len(data)
            if self._after_close > CLOSE_DRAIN_BYTES:
                # Still streaming after our close frame: stop reading it.
                self.transport.close()
                return
        super().data_received(data)

    def hang_up(self) -> None:
        """The app is about to close this client for flooding: read nothing after the
        close frame and close the connection HANG_UP_SECONDS after it."""
        self._hung_up = True
        self.close_timeout = HANG_UP_SECONDS
        if self.close_sent and self.close_timer is not None:
            self.close_timer.cancel()
            self.close_timer = self.loop.call_later(HANG_UP_SECONDS, self.transport.close)

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None and getattr(self, "response", None) is not None:
            # The app's task has been created but has not run yet: it sees this.
            scope["extensions"][EXTENSION] = self.write_frame
            scope["extensions"][HANG_UP_EXTENSION] = self.hang_up

    def write_frame(self, frame: bytes) -> bool:
        """Write a complete text frame now if uvicorn itself could; else False."""
        return write_frame(self, frame)


def frame_writer(protocol: WebSocketsSansIOProtocol) -> Callable[[bytes], bool]:
    """``write_frame`` bound to one connection."""

    def write(frame: bytes) -> bool:
        return write_frame(protocol, frame)

    return write


class FastSendMiddleware:
    """Offers ``catalyst.write_frame`` under a server that did not install
    :class:`FanoutProtocol` but runs uvicorn's sans-I/O protocol (``uvicorn --factory
    hub.web:create_app``, whose ``--ws auto`` picks it), and raises that protocol's
    keepalive pong deadline to at least ``ping_timeout`` (see :mod:`api.fastsend`).

    It must be the outermost middleware, so the ``send`` it sees is the server's own
    (a bound method of the protocol). Anything else passes through untouched."""

    def __init__(self, app: ASGIApp, ping_timeout: float | None = None) -> None:
        self.app = app
        self.ping_timeout = ping_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            protocol = getattr(send, "__self__", None)
            if isinstance(protocol, WebSocketsSansIOProtocol):
                extensions = scope.get("extensions")
                if extensions is None:
                    extensions = scope["extensions"] = {}
                if EXTENSION not in extensions:
                    extensions[EXTENSION] = frame_writer(protocol)
                wanted = self.ping_timeout
                current = protocol.ping_timeout
                # Before the accept, which starts the keepalive: it applies from the start.
                if wanted is not None and current is not None and current < wanted:
                    protocol.ping_timeout = wanted
        await self.app(scope, receive, send)


# ---- HTTP: hooks for the edge's deadline and connection cap --------------------------


class ConnectionWatch(Protocol):
    """What the edge protocols report to (:class:`api.edge_protocol.ConnectionWatch`)."""

    def opened(self, transport: asyncio.Transport, client: tuple[str, int] | None) -> None: ...
    def received(self) -> None: ...
    def head_complete(self) -> None: ...
    def response_complete(self, transport: asyncio.Transport, idle: bool) -> None: ...
    def closed(self) -> None: ...


WatchFactory = Callable[[asyncio.AbstractEventLoop], ConnectionWatch]


def _idle(cycle: Any) -> bool:
    """No request is under way on the connection (the newest cycle has responded)."""
    return cycle is None or bool(cycle.response_complete)


class _EdgeHooks:
    """What both edge protocols add to uvicorn's: they tell their watch when the
    connection opens, receives bytes, completes a response, and closes. (Mixed in
    before uvicorn's class, so ``super()`` is uvicorn's method.)"""

    loop: asyncio.AbstractEventLoop
    client: tuple[str, int] | None
    transport: asyncio.Transport
    cycle: Any

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        watch: WatchFactory,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)  # type: ignore[call-arg]
        self._edge = watch(self.loop)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._edge.opened(cast(asyncio.Transport, transport), self.client)

    def data_received(self, data: bytes) -> None:
        self._edge.received()
        super().data_received(data)  # type: ignore[misc]

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        self._edge.response_complete(self.transport, _idle(self.cycle))

    def connection_lost(self, exc: Exception | None) -> None:
        self._edge.closed()
        super().connection_lost(exc)  # type: ignore[misc]


class EdgeH11Protocol(_EdgeHooks, H11Protocol):
    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before:
            self._edge.head_complete()

    def handle_websocket_upgrade(self, event: Any) -> None:
        self._edge.head_complete()
        super().handle_websocket_upgrade(event)


class EdgeHttpToolsProtocol(_EdgeHooks, HttpToolsProtocol):
    def on_headers_complete(self) -> None:
        self._edge.head_complete()  # a complete request head (or WebSocket handshake)
        super().on_headers_complete()
