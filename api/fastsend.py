"""A uvicorn WebSocket protocol that lets the broadcast write a ready-made frame.

Sending one message through ASGI costs a coroutine, Starlette's state checks,
uvicorn's ``send`` and the websockets library building the frame, for every
client. A broadcast sends the *same* text to thousands of clients, so it frames
the text once and hands the bytes to :meth:`FanoutProtocol.write_frame` of each
connection: one check and one ``transport.write``.

The shortcut is offered only when it is exactly what uvicorn would have written:
the connection is open, no close was sent, no compression was negotiated, no
fragmented message is in progress, and the transport is not applying back
pressure. Otherwise ``write_frame`` returns False and the caller uses the normal
ASGI path (which waits for the socket, so a slow client is still detected).
``ApiServer`` installs this protocol. Under a bare ``uvicorn --factory
hub.web:create_app`` (uvicorn's own sans-I/O protocol) :class:`FastSendMiddleware`
offers the same ``write_frame`` for each connection, found through the ASGI
``send`` the server passed (a method of its protocol). Under any other server the
extension is absent and everything goes through ASGI.

Keepalive: the app's own heartbeat (``api.heartbeat_seconds``, closing 4000 after
``api.heartbeat_timeout_seconds`` without a pong) decides whether a client is
alive. uvicorn's protocol pings stay (they keep idle connections open through
proxies and NAT), but their pong deadline is raised to the app's heartbeat
timeout: under a connect storm the loop may read a pong many seconds after it
arrived, and uvicorn's default 20 s deadline then closed healthy clients with
1011 ("keepalive ping timeout").

Closing: once the server has sent its close frame, uvicorn keeps reading (and
parsing) whatever the peer sends for up to 10 s, waiting for the peer's close. A
client closed for flooding would go on costing a core for those 10 s, so here the
peer gets CLOSE_TIMEOUT seconds and CLOSE_DRAIN_BYTES bytes to answer; past
either the connection is cut. The ``catalyst.hang_up`` extension (called by the
app before it closes a client for flooding) goes further: after the close frame
nothing more is read, and the TCP connection is closed HANG_UP_SECONDS later.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

EXTENSION = "catalyst.write_frame"
HANG_UP_EXTENSION = "catalyst.hang_up"
#: After the server's close frame: how long, and how many bytes, until the peer's close.
CLOSE_TIMEOUT = 2.0
CLOSE_DRAIN_BYTES = 1 << 16
HANG_UP_SECONDS = 0.25


def text_frame(payload: bytes) -> bytes:
    """One final, unmasked text frame (server to client) carrying ``payload``."""
    length = len(payload)
    if length < 126:
        return bytes((0x81, length)) + payload
    if length < 1 << 16:
        return bytes((0x81, 126)) + length.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + length.to_bytes(8, "big") + payload


class FanoutProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol plus the ``catalyst.write_frame`` extension
    and a bounded closing handshake."""

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


def frame_writer(protocol: WebSocketsSansIOProtocol) -> Callable[[bytes], bool]:
    """``write_frame`` bound to one connection, for the ``catalyst.write_frame``
    extension."""

    def write(frame: bytes) -> bool:
        return write_frame(protocol, frame)

    return write


class FastSendMiddleware:
    """Offers ``catalyst.write_frame`` under a server that did not install
    :class:`FanoutProtocol` but runs uvicorn's sans-I/O protocol (``uvicorn --factory
    hub.web:create_app``, whose ``--ws auto`` picks it), and raises that protocol's
    keepalive pong deadline to at least ``ping_timeout`` (see the module docstring).

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
