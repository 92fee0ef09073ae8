"""One stream connection's incoming side: a reader and a worker.

The *reader* takes frames as they arrive and decides at once: a pong (at most
PONG_MAX_BYTES, at most PONGS_PER_SEC a second) only notes liveness; any other
frame counts against the message rate *on arrival*, is parsed safely
(:func:`api.ws_frames.parse_message`) and goes into a bounded inbox, as the message
or as the error that answers it, so answers keep the order of the frames. A client
that fills the inbox (or floods pongs, or keeps sending past the rate) is closed
with 1008: nothing is queued without bound. The *worker* handles the inbox in
order (:mod:`api.ws_handlers`), checking the connection's credential before each
message. When the connection ends, whatever is still queued is dropped: a client
that hung up never writes anything afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Mapping
from typing import Any

from fastapi import WebSocket

from api import ws_handlers as handlers
from api.ws import ConnectionManager
from api.ws_client import CLOSE_TIMEOUT, Client, ClientGone
from api.ws_frames import FrameError, parse_message
from api.ws_messages import error
from core.context import HubContext
from core.ratelimit import SlidingWindow
from domain.errors import HubError

log = logging.getLogger(__name__)

#: A pong is liveness only: small, and at most this many a second (more: close 1008).
PONG_MAX_BYTES = 256
PONGS_PER_SEC = 16
#: Messages over the rate answered with an error per second (at least twice the
#: rate); a client that keeps sending past that is closed with 1008.
REFUSALS_PER_SEC = 16
#: How long a message being handled when the client leaves may take to finish.
WORKER_GRACE = 10.0

#: An inbox entry: ("message", parsed object), ("error", text), ("resume", seq).
_Item = tuple[str, Any]


class Session:
    """Reads one client's frames as they arrive and handles them in order."""

    def __init__(
        self, websocket: WebSocket, ctx: HubContext, manager: ConnectionManager, client: Client
    ) -> None:
        self.websocket = websocket
        self.ctx = ctx
        self.manager = manager
        self.client = client
        self.max_bytes = ctx.settings.api.max_message_bytes
        limits = ctx.settings.limits
        per_sec = limits.max_messages_per_client_per_sec
        self.window = SlidingWindow(per_sec, 1.0)
        #: Messages refused for the rate, per second: past this the client is closed.
        self.refusals = SlidingWindow(max(REFUSALS_PER_SEC, 2 * per_sec), 1.0)
        self.pongs = SlidingWindow(PONGS_PER_SEC, 1.0)
        self.inbox: deque[_Item] = deque()
        self.inbox_size = limits.ws_inbox_size
        self.wake = asyncio.Event()
        #: The connection is over: queued messages are dropped, none is started.
        self.stopped = False
        self.rate_message = (
            f"message rate limit exceeded: at most {per_sec} messages per second; "
            "this message was ignored"
        )

    def send(self, payload: dict[str, Any]) -> None:
        self.manager.send(self.client, payload)

    # ---- the two tasks --------------------------------------------------------
    async def run(self, resume_from: int | None) -> None:
        if resume_from is not None:
            self.inbox.append(("resume", resume_from))
        client = self.client
        worker = asyncio.create_task(self._work(), name=f"ws-work-{client.id}")
        reader = asyncio.create_task(self._read(), name=f"ws-read-{client.id}")
        try:
            await asyncio.wait({worker, reader, client.closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.stopped = True
            self.inbox.clear()
            self.wake.set()
            reader.cancel()
            client.abandon()
            if not worker.done():
                # The message in hand started while the client was there; let it finish.
                await asyncio.wait({worker}, timeout=WORKER_GRACE)
                worker.cancel()
            for task in (reader, worker):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if not worker.cancelled() and worker.exception() is not None:
                log.error("WebSocket worker failed", exc_info=worker.exception())
            if client.close_started:
                # A close with its reason is under way (in a task): the connection must
                # not end under it, or the client would see 1006 instead of the code.
                await asyncio.wait({client.closed}, timeout=2 * CLOSE_TIMEOUT + 1)

    async def _read(self) -> None:
        receive = self.websocket.receive
        while True:
            try:
                message = await receive()
            except Exception:
                return
            if message["type"] == "websocket.disconnect" or not self.arrive(message):
                return

    async def _work(self) -> None:
        inbox = self.inbox
        while not self.stopped:
            if not inbox:
                self.wake.clear()
                await self.wake.wait()
                continue
            kind, value = inbox.popleft()
            if kind == "error":
                self.send(error(value))
                continue
            if not await self.manager.credential_ok(self.client):
                return  # the manager closes it with 4001
            if self.stopped:
                return
            try:
                if kind == "resume":
                    await handlers.resume(self, value)
                else:
                    await handlers.handle(self, value)
            except ClientGone:
                return
            except HubError as exc:
                self.send(error(exc.message))
            except Exception:
                log.exception("WebSocket %s message failed", kind)
                self.send(error("internal error handling this message; it has been logged"))

    # ---- arrival --------------------------------------------------------------
    def arrive(self, message: Mapping[str, Any]) -> bool:
        """Take one frame as it arrives; False when the connection is being closed."""
        client = self.client
        if client.closing or client.revoked:
            return False
        if client.principal.expired():
            self.manager.revoke(client, "token expired; get a new one and reconnect")
            return False
        now = asyncio.get_running_loop().time()
        text = message.get("text")
        if not isinstance(text, str):
            if self.window.hit(now) > 0:
                return self.refuse(now)
            return self.queue(("error", "send JSON text frames, not binary"))
        data: dict[str, Any] | None = None
        problem: str | None = None
        small = len(text) <= PONG_MAX_BYTES
        if small:  # perhaps a pong: those are not counted against the message rate
            try:
                data = parse_message(text)
            except FrameError as exc:
                problem = exc.message
            if data is not None and data.get("type") == "pong":
                if self.pongs.hit(now) > 0:
                    self.manager.flooded(
                        client, f"too many pongs: at most {PONGS_PER_SEC} per second"
                    )
                    return False
                self.manager.pong(client)
                return True
        if self.window.hit(now) > 0:
            return self.refuse(now)
        if not small:
            if len(text) > self.max_bytes or (
                len(text) * 4 > self.max_bytes and len(text.encode()) > self.max_bytes
            ):
                return self.queue(("error", f"message too large: at most {self.max_bytes} bytes"))
            try:
                data = parse_message(text)
            except FrameError as exc:
                problem = exc.message
            if data is not None and data.get("type") == "pong":
                problem = f"pong messages are at most {PONG_MAX_BYTES} bytes"
        if problem is not None or data is None:
            return self.queue(("error", problem or "malformed JSON"))
        return self.queue(("message", data))

    def refuse(self, now: float) -> bool:
        """A message over the rate: answered with an error, unless the client keeps on
        sending regardless (more than ``refusals`` a second): then it is closed (1008)."""
        if self.refusals.hit(now) > 0:
            self.stopped = True
            self.inbox.clear()
            self.manager.flooded(
                self.client, f"too many messages: at most {self.window.max_events} per second"
            )
            return False
        return self.queue(("error", self.rate_message))

    def queue(self, item: _Item) -> bool:
        if len(self.inbox) >= self.inbox_size:
            self.stopped = True
            self.inbox.clear()
            self.manager.flooded(
                self.client,
                f"too many messages waiting (at most {self.inbox_size}); "
                f"send at most {self.window.max_events} per second",
            )
            return False
        self.inbox.append(item)
        self.wake.set()
        return True
