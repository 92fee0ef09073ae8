"""One WebSocket connection's outgoing side: its bounded send queue and its close.

A client's messages leave in the order they were queued. Broadcast signals are
offered as a pre-built frame first (:meth:`Client.offer`): written at once when
nothing is queued ahead and the socket takes it. Everything else is queued and
written on the next loop turn (:meth:`Client.flush`). A full queue drops the client
(the manager closes it with 1008); a replay waits for room instead
(:meth:`Client.put`), so it never overflows the queue it fills.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable

from starlette.websockets import WebSocket

from api.fastsend import EXTENSION as FRAME_EXTENSION
from api.fastsend import HANG_UP_EXTENSION, text_frame
from core.auth import Principal
from domain.filters import CompiledFilter, SignalFilter
from domain.signals import Signal

log = logging.getLogger(__name__)

#: How long a close (and the error message before it) may wait for a stuck peer.
CLOSE_TIMEOUT = 2.0
#: Seqs a client got live, remembered so a later ``resume`` does not send them twice.
RECENT_LIVE = 4096


def hook_up(websocket: WebSocket) -> None:
    """Ask the server protocol to read nothing after this connection's close frame."""
    hang_up = (websocket.scope.get("extensions") or {}).get(HANG_UP_EXTENSION)
    if hang_up is not None:
        hang_up()


class ClientGone(Exception):
    """The client closed (or was closed) while something waited on it."""


class Client:
    """One authenticated WebSocket connection and its bounded outgoing queue.

    Sending: queued texts are written by :meth:`flush`, which the fan-out calls
    once per event-loop turn for every client that has something queued. While the
    socket takes them at once (the usual case) they are written as frames, with no
    task switch. Otherwise (no frame shortcut under this server, or the peer is not
    reading) a task of this client's own sends the rest of the queue; meanwhile new
    messages only queue up, so a slow client never holds anyone else up, and a
    full queue drops it.
    """

    def __init__(
        self,
        websocket: WebSocket,
        principal: Principal,
        ip: str,
        flt: SignalFilter,
        *,
        capacity: int,
        on_ready: Callable[[Client], None],
        on_overflow: Callable[[Client], None],
    ) -> None:
        self.id = secrets.token_hex(8)
        self.websocket = websocket
        self.principal = principal
        self.user_id = principal.user.id
        self.ip = ip
        self.capacity = capacity
        self.last_pong = time.monotonic()
        self.filter = flt
        self.matcher: CompiledFilter | None = None if flt.is_empty() else flt.compile()
        #: While a resume runs, live messages wait here as (seq, revision, text); the
        #: revision is 0 for a new signal, else that of a ``signal_update``.
        self.side_buffer: deque[tuple[int, int, str]] | None = None
        self.recent_live: deque[int] = deque(maxlen=RECENT_LIVE)
        self.closing = False
        #: Set when the queue overflowed; the close follows in a task.
        self.dropped = False
        #: Set when the credential ended (revoked, expired): nothing more is accepted.
        self.revoked = False
        self._close_started = False
        self.expiry: asyncio.TimerHandle | None = None
        self.closed = asyncio.get_running_loop().create_future()
        self._pending: deque[str] = deque()
        self._space = asyncio.Event()
        self._on_ready = on_ready
        self._on_overflow = on_overflow
        self._scheduled = False
        self._sender: asyncio.Task[None] | None = None
        extensions = websocket.scope.get("extensions") or {}
        self._write_frame: Callable[[bytes], bool] | None = extensions.get(FRAME_EXTENSION)

    @property
    def fast_path(self) -> bool:
        """Whether broadcasts may write pre-built frames to this client (api.fastsend)."""
        return self._write_frame is not None

    # ---- filter ---------------------------------------------------------
    def set_filter(self, flt: SignalFilter) -> None:
        self.filter = flt
        self.matcher = None if flt.is_empty() else flt.compile()

    def wants(self, signal: Signal) -> bool:
        return self.matcher is None or self.matcher(signal)

    # ---- queue ------------------------------------------------------------
    def enqueue(self, text: str) -> bool:
        """Queue ``text`` without waiting; a full queue drops the client."""
        if self.closing or self.dropped:
            return False
        if len(self._pending) >= self.capacity:
            self._on_overflow(self)
            return False
        self._pending.append(text)
        if not self._scheduled and self._sender is None:
            self._scheduled = True
            self._on_ready(self)
        return True

    def offer(self, text: str, frame: bytes) -> bool:
        """A broadcast message: written at once as the pre-built ``frame`` when nothing
        is queued ahead of it and the socket takes it, else queued as ``text``."""
        if (
            self._write_frame is not None
            and not self._pending
            and self._sender is None
            and not self.closing
            and not self.dropped
        ):
            try:
                if self._write_frame(frame):
                    return True
            except Exception:
                self._mark_closed()
                return False
        return self.enqueue(text)

    def buffer_live(self, seq: int, text: str, update_revision: int = 0) -> None:
        """Hold a live message while a resume runs: a new signal, or with
        ``update_revision`` a ``signal_update`` to that revision."""
        buffer = self.side_buffer
        assert buffer is not None
        if self.dropped:
            return
        if len(buffer) >= self.capacity:
            self._on_overflow(self)
            return
        buffer.append((seq, update_revision, text))

    async def put(self, text: str) -> None:
        """Queue ``text``, waiting for room (replays); raises ClientGone when closed.

        It waits while the queue is half full, so heartbeats and answers queued by
        :meth:`enqueue` during a long replay always fit."""
        while len(self._pending) >= max(1, self.capacity // 2):
            if self.closing:
                raise ClientGone
            self._space.clear()
            await self._space.wait()
        if self.closing or not self.enqueue(text):
            raise ClientGone

    @property
    def queued(self) -> int:
        return len(self._pending)

    # ---- sending ------------------------------------------------------------
    def flush(self) -> None:
        """Write what is queued: as pre-built frames while the socket takes them at once
        (api.fastsend), else from a task of this client's own that sends the rest in
        order through ASGI (waiting for the socket as needed)."""
        self._scheduled = False
        if self._sender is not None or self.closing:
            return
        pending = self._pending
        write_frame = self._write_frame
        if write_frame is not None:
            try:
                while pending and write_frame(text_frame(pending[0].encode())):
                    pending.popleft()
            except Exception:
                self._mark_closed()
                return
            if not self._space.is_set():
                self._space.set()
        if pending:
            self._sender = asyncio.create_task(self._drain(), name=f"ws-send-{self.id}")

    async def _drain(self) -> None:
        try:
            pending = self._pending
            send = self.websocket.send
            while pending and not self.closing:
                text = pending.popleft()
                if not self._space.is_set():
                    self._space.set()
                await send({"type": "websocket.send", "text": text})
        except asyncio.CancelledError:
            raise
        except Exception:
            # The peer went away mid-send; the receive side notices and unregisters.
            self._mark_closed()
        finally:
            if self._sender is asyncio.current_task():
                self._sender = None

    def _mark_closed(self) -> None:
        self.closing = True
        self._pending.clear()
        self._space.set()
        if not self.closed.done():
            self.closed.set_result(None)

    async def close(
        self, code: int, reason: str = "", final: str | None = None, *, hang_up: bool = False
    ) -> None:
        """Stop sending and close the socket with ``code`` (bounded wait for a stuck peer),
        after sending the ``final`` message (an error saying why) when given. With
        ``hang_up`` nothing more is read from the peer (see api.fastsend)."""
        if self._close_started:
            return
        self._close_started = True
        self.closing = True
        self._pending.clear()
        self._space.set()
        await self.stop_sender()
        if hang_up:
            hook_up(self.websocket)
        try:
            if final is not None:
                await asyncio.wait_for(
                    self.websocket.send({"type": "websocket.send", "text": final}),
                    CLOSE_TIMEOUT,
                )
            await asyncio.wait_for(self.websocket.close(code, reason), CLOSE_TIMEOUT)
        except Exception:
            log.debug("closing client %s with %d did not complete", self.id, code)
        self._mark_closed()

    @property
    def close_started(self) -> bool:
        return self._close_started

    def abandon(self) -> None:
        """The session is over: stop sending and wake anything waiting for queue room."""
        self.closing = True
        self._pending.clear()
        self._space.set()

    async def stop_sender(self) -> None:
        sender = self._sender
        if sender is not None and not sender.done():
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender
