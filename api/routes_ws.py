"""``/ws``: the WebSocket protocol of the design document.

Client -> server: ``auth`` (first message, when no ``?token=``), ``subscribe``,
``pong``, ``feedback``, ``resume``. Server -> client: ``welcome``, ``signal``,
``heartbeat``, ``subscribed``, ``resumed``, ``feedback_recorded``, ``error``.

Each connection has two tasks. The *reader* takes frames as they arrive and decides
at once: a pong (at most PONG_MAX_BYTES, at most PONGS_PER_SEC a second) only notes
liveness; any other frame counts against the message rate *on arrival*, is parsed
safely (:func:`parse_message`: bounded nesting, bounded numbers, no NUL or lone
surrogate) and goes into a bounded inbox, as the message or as the error that
answers it, so answers keep the order of the frames. A client that fills the inbox
(or floods pongs) is closed with 1008: nothing is queued without bound. The
*worker* handles the inbox in order, checking the connection's credential before
each message. When the connection ends, whatever is still queued is dropped: a
client that hung up never writes anything afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, WebSocket

from api.ratelimit import SlidingWindow
from api.streams import set_user_filter, user_stream
from api.ws import (
    CLOSE_AUTH,
    CLOSE_TIMEOUT,
    CLOSE_TOO_MANY,
    CLOSE_TOO_SLOW,
    Client,
    ClientGone,
    ConnectionManager,
    dumps,
    hook_up,
)
from core.auth import Principal
from core.context import HubContext
from domain.errors import HubError
from domain.filters import SignalFilter

log = logging.getLogger(__name__)

router = APIRouter()

#: Seconds an unauthenticated WebSocket may take to send its auth message (as the
#: request-head deadline: nobody unauthenticated holds a connection for long).
AUTH_TIMEOUT = 5.0
MAX_SEQ = 2**63 - 1
MESSAGE_TYPES = ("auth", "subscribe", "pong", "feedback", "resume")

#: Deepest JSON nesting accepted in a client message.
MAX_DEPTH = 32
#: Longest integer (in digits) and longest number literal accepted.
MAX_INT_DIGITS = 30
MAX_NUMBER_CHARS = 40
#: A pong is liveness only: small, and at most this many a second (more: close 1008).
PONG_MAX_BYTES = 256
PONGS_PER_SEC = 16
#: Messages over the rate answered with an error per second (at least twice the
#: rate); a client that keeps sending past that is closed with 1008.
REFUSALS_PER_SEC = 16
#: How long a message being handled when the client leaves may take to finish.
WORKER_GRACE = 10.0

_BRACKETS = re.compile(r'"(?:[^"\\]++|\\.)*+"|[\[\]{}]')
_SURROGATE = re.compile("[\ud800-\udfff]")


class FrameError(Exception):
    """A client message that cannot be accepted; ``message`` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _nesting_ok(text: str) -> bool:
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return True
    depth = 0
    for match in _BRACKETS.finditer(text):
        char = match.group()
        if char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return False
        elif char in "]}":
            depth -= 1
    return True


def _parse_int(text: str) -> int:
    if len(text) - text.startswith("-") > MAX_INT_DIGITS:
        raise FrameError(f"number too large: at most {MAX_INT_DIGITS} digits")
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise FrameError(f"number too long: at most {MAX_NUMBER_CHARS} characters")
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise FrameError(f"number out of range: {text[:MAX_NUMBER_CHARS]}")
    return value


def _no_constants(name: str) -> Any:
    raise FrameError(f"{name} is not a JSON number: numbers must be finite")


def _check_text(value: str) -> None:
    if "\x00" in value:
        raise FrameError("strings may not contain NUL (\\u0000)")
    if _SURROGATE.search(value):
        raise FrameError("strings may not contain unpaired surrogates (\\ud800-\\udfff)")


def _check_strings(data: Any) -> None:
    """Every key and string value (nesting is already bounded)."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict):
            for key, value in item.items():
                _check_text(key)
                stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)


def parse_message(text: str) -> dict[str, Any]:
    """A client message as a JSON object, or FrameError saying what is wrong with it:
    malformed JSON, nesting deeper than MAX_DEPTH, a number too large or not finite,
    a NUL or an unpaired surrogate in a string, or not an object. Never raises anything
    else, whatever ``text`` is."""
    if not _nesting_ok(text):
        raise FrameError(f"JSON nested too deeply: at most {MAX_DEPTH} levels")
    try:
        data = json.loads(
            text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_no_constants
        )
    except FrameError:
        raise
    except (ValueError, RecursionError):
        raise FrameError("malformed JSON") from None
    if "\\u" in text:  # NUL and lone surrogates can only come in as escapes
        _check_strings(data)
    if not isinstance(data, dict):
        raise FrameError('send a JSON object such as {"type":"pong"}')
    return data


def _error(message: str) -> dict[str, Any]:
    return {"type": "error", "message": message}


async def _send_direct(websocket: WebSocket, payload: dict[str, Any]) -> None:
    with contextlib.suppress(Exception):
        await websocket.send_text(dumps(payload))


async def _reject(websocket: WebSocket, message: str, code: int, *, hang_up: bool = False) -> None:
    await _send_direct(websocket, _error(message))
    if hang_up:
        hook_up(websocket)
    with contextlib.suppress(Exception):
        await websocket.close(code)


def _parse_seq(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit() and len(text) <= 19):
            return None
        value = int(text)
    if isinstance(value, int) and 0 <= value <= MAX_SEQ:
        return value
    return None


async def _first_message_token(websocket: WebSocket, max_bytes: int) -> str | None:
    """Wait for ``{"type":"auth","token":...}``; None for anything else."""
    try:
        message = await asyncio.wait_for(websocket.receive(), AUTH_TIMEOUT)
    except Exception:
        return None
    text = message.get("text")
    if message.get("type") != "websocket.receive" or not isinstance(text, str):
        return None
    if len(text) > max_bytes:
        return None
    try:
        data = parse_message(text)
    except FrameError:
        return None
    if data.get("type") != "auth":
        return None
    token = data.get("token")
    return token if isinstance(token, str) else None


@router.websocket("/ws")
async def stream(websocket: WebSocket) -> None:
    ctx: HubContext = websocket.app.state.ctx
    manager: ConnectionManager = websocket.app.state.ws_manager
    ip = websocket.client.host if websocket.client else "unknown"
    try:
        await websocket.accept()
    except Exception:
        return  # the peer left during the handshake
    if manager.stopping:
        await _reject(websocket, "server shutting down", 1001)
        return
    if not manager.reserve_ip(ip):
        await _reject(
            websocket,
            f"too many connections from your address (at most "
            f"{ctx.settings.limits.max_connections_per_ip}); close some and retry",
            CLOSE_TOO_MANY,
        )
        return
    try:
        await _serve(websocket, ctx, manager, ip)
    except Exception:
        log.exception("WebSocket stream failed")
        await _reject(websocket, "internal server error; it has been logged", 1011)
    finally:
        manager.release_ip(ip)


async def _authenticate(websocket: WebSocket, ctx: HubContext) -> Principal | None:
    token = websocket.query_params.get("token")
    if not token:
        token = await _first_message_token(websocket, ctx.settings.api.max_message_bytes)
        if token is None:
            await _reject(
                websocket,
                "authentication required: connect with ?token=<API key or JWT> or send "
                '{"type":"auth","token":...} first',
                CLOSE_AUTH,
            )
            return None
    principal = await ctx.auth.authenticate(token)
    if principal is None:
        await _reject(websocket, "invalid, expired or revoked API key or token", CLOSE_AUTH)
        return None
    if not principal.has("read"):
        await _reject(websocket, "this key lacks the 'read' scope", CLOSE_AUTH)
        return None
    return principal


async def _serve(
    websocket: WebSocket, ctx: HubContext, manager: ConnectionManager, ip: str
) -> None:
    principal = await _authenticate(websocket, ctx)
    if principal is None:
        return
    wait = manager.penalty_left(principal)
    if wait > 0:
        await _reject(
            websocket,
            f"this key was just closed for sending too much; reconnect in {wait:.0f} s",
            CLOSE_TOO_SLOW,
            hang_up=True,
        )
        return
    resume_from = _parse_seq(websocket.query_params.get("after_seq"))
    refused = None
    if resume_from is not None:
        refused = resume_refused(manager, principal.user.id)
        if refused is not None:
            resume_from = None  # straight to live, with an error saying why
    stream_sub = await user_stream(ctx, principal.user.id)
    client = manager.new_client(websocket, principal, ip, stream_sub.filter)
    # The design document's shape; both values are ASCII without quotes or escapes
    # (hex id, ISO time), so no JSON encoder is needed on the connect path.
    welcome = (
        f'{{"type":"welcome","client_id":"{client.id}",'
        f'"timestamp":"{datetime.now(UTC).isoformat()}"}}'
    )
    manager.register(client, welcome=welcome, resume_buffering=resume_from is not None)
    if refused is not None:
        manager.send(client, _error(refused))
    session = _Session(websocket, ctx, manager, client)
    try:
        await session.run(resume_from)
    finally:
        await manager.unregister(client)


def resume_refused(manager: ConnectionManager, user_id: int) -> str | None:
    """Count a resume against the user's budget (all connections together); the error
    message when it is spent."""
    limiter = manager.resume_limiter
    wait = limiter.hit(user_id)
    if wait <= 0:
        return None
    return (
        f"resume rate limit: at most {limiter.max_events} resumes per minute per user "
        f"(all your connections); retry in {wait:.0f} s (the stream goes on)"
    )


#: An inbox entry: ("message", parsed object), ("error", text), ("resume", seq).
_Item = tuple[str, Any]


class _Session:
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
                self.send(_error(value))
                continue
            if not await self.manager.credential_ok(self.client):
                return  # the manager closes it with 4001
            if self.stopped:
                return
            try:
                if kind == "resume":
                    await self.resume(value)
                else:
                    await self.handle(value)
            except ClientGone:
                return
            except HubError as exc:
                self.send(_error(exc.message))
            except Exception:
                log.exception("WebSocket %s message failed", kind)
                self.send(_error("internal error handling this message; it has been logged"))

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

    # ---- handling ----------------------------------------------------------------
    async def handle(self, data: dict[str, Any]) -> None:
        kind = data.get("type")
        if kind == "subscribe":
            await self.subscribe(data.get("filters"), data.get("persist", True))
        elif kind == "feedback":
            await self.feedback(data)
        elif kind == "resume":
            seq = _parse_seq(data.get("after_seq"))
            if seq is None:
                self.send(_error("resume needs after_seq: the last seq you received"))
            else:
                await self.resume(seq, counted=False)
        elif kind == "auth":
            self.send(_error("already authenticated"))
        else:
            shown = kind if isinstance(kind, str) and len(kind) <= 32 else "?"
            self.send(
                _error(f"unknown message type {shown!r}; use one of {', '.join(MESSAGE_TYPES)}")
            )

    async def subscribe(self, filters: Any, persist: Any = True) -> None:
        """This connection's filter, at once (the user's other connections keep theirs).
        Unless ``"persist": false`` it is also stored as the user's default: what new
        connections and REST reads start with."""
        if not isinstance(persist, bool):
            self.send(_error("persist must be true or false"))
            return
        flt = SignalFilter.from_mapping(filters if filters is not None else {})
        user_id = self.client.user_id
        if persist:
            writes = self.manager.filter_write_limiter
            if writes.hit(user_id) > 0:
                # Per user, all connections together: reconnecting must not dodge it.
                self.send(
                    _error(
                        f"subscribe rate limit: at most {writes.max_events} stored filter "
                        "changes per second per user; this one was ignored (send "
                        '"persist": false to change only this connection)'
                    )
                )
                return
            async with self.manager.filter_lock(user_id):
                if self.stopped:
                    return  # the client left while this waited: never overwrite a later one
                flt = await set_user_filter(self.ctx, user_id, flt)
        if self.stopped:
            return
        self.client.set_filter(flt)
        self.send({"type": "subscribed", "filters": flt.to_mapping(), "persisted": persist})

    async def feedback(self, data: dict[str, Any]) -> None:
        if not self.client.principal.has("feedback"):
            self.send(_error("this key lacks the 'feedback' scope"))
            return
        signal_id = data.get("signal_id")
        outcome = data.get("outcome")
        return_pct = data.get("return_pct")
        if isinstance(outcome, dict):
            return_pct = outcome.get("return_pct", return_pct)
            outcome = outcome.get("outcome")
        if not isinstance(signal_id, str) or not signal_id:
            self.send(_error("feedback needs signal_id"))
            return
        if not isinstance(outcome, str):
            self.send(_error("feedback needs outcome: win, loss, breakeven or skipped"))
            return
        if return_pct is not None and (
            isinstance(return_pct, bool) or not isinstance(return_pct, (int, float, str))
        ):
            self.send(_error("return_pct must be a number such as 12.5"))
            return
        if isinstance(return_pct, int):
            return_pct = float(return_pct)  # at most MAX_INT_DIGITS digits: never overflows
        info = await self.ctx.services.feedback.record(
            self.client.user_id, signal_id[:256], outcome[:64], return_pct
        )
        self.send(
            {
                "type": "feedback_recorded",
                "signal_id": info.signal_id,
                "outcome": info.outcome,
                "return_pct": info.return_pct,
                "updated": info.updated,
            }
        )

    async def resume(self, after_seq: int, *, counted: bool = True) -> None:
        if not counted:
            refused = resume_refused(self.manager, self.client.user_id)
            if refused is not None:
                self.send(_error(refused))
                return
        replayed, last = await self.manager.resume(self.client, after_seq)
        self.send(
            {"type": "resumed", "after_seq": after_seq, "replayed": replayed, "last_seq": last}
        )
