"""The broadcast's shortcut: one ready-made frame written straight to each client.

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
``ApiServer`` installs the protocol that offers it. Under a bare ``uvicorn --factory
hub.web:create_app`` (uvicorn's own sans-I/O protocol) :class:`FastSendMiddleware`
offers the same ``write_frame`` for each connection, found through the ASGI
``send`` the server passed (a method of its protocol). Under any other server the
extension is absent and everything goes through ASGI. Both reach into uvicorn's
protocol, so they live in :mod:`api.uvicorn_internals` (pinned, and checked by a
test); this module is what the app uses.

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

from api.uvicorn_internals import (
    CLOSE_DRAIN_BYTES,
    CLOSE_TIMEOUT,
    EXTENSION,
    HANG_UP_EXTENSION,
    HANG_UP_SECONDS,
    FanoutProtocol,
    FastSendMiddleware,
)


def text_frame(payload: bytes) -> bytes:
    """One final, unmasked text frame (server to client) carrying ``payload``."""
    length = len(payload)
    if length < 126:
        return bytes((0x81, length)) + payload
    if length < 1 << 16:
        return bytes((0x81, 126)) + length.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + length.to_bytes(8, "big") + payload


__all__ = [
    "CLOSE_DRAIN_BYTES",
    "CLOSE_TIMEOUT",
    "EXTENSION",
    "HANG_UP_EXTENSION",
    "HANG_UP_SECONDS",
    "FanoutProtocol",
    "FastSendMiddleware",
    "text_frame",
]
