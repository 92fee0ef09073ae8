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
``ApiServer`` installs this protocol; under any other server the extension is
absent and everything goes through ASGI.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

EXTENSION = "catalyst.write_frame"


def text_frame(payload: bytes) -> bytes:
    """One final, unmasked text frame (server to client) carrying ``payload``."""
    length = len(payload)
    if length < 126:
        return bytes((0x81, length)) + payload
    if length < 1 << 16:
        return bytes((0x81, 126)) + length.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + length.to_bytes(8, "big") + payload


class FanoutProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol plus the ``catalyst.write_frame`` extension."""

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None and getattr(self, "response", None) is not None:
            # The app's task has been created but has not run yet: it sees this.
            scope["extensions"][EXTENSION] = self.write_frame

    def write_frame(self, frame: bytes) -> bool:
        """Write a complete text frame now if uvicorn itself could; else False."""
        conn = self.conn
        if (
            self.close_sent
            or self.disconnected
            or not self.handshake_complete
            or not self.writable.is_set()
            or conn.state is not State.OPEN
            or conn.extensions
            or conn.expect_continuation_frame
            or self.transport.is_closing()
        ):
            return False
        self.transport.write(frame)
        return True
