"""``/ws``: the WebSocket protocol of the design document.

Client -> server: ``auth`` (first message, when no ``?token=``), ``subscribe``,
``pong``, ``feedback``, ``resume``. Server -> client: ``welcome``, ``signal``,
``heartbeat``, ``subscribed``, ``resumed``, ``feedback_recorded``, ``error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, WebSocket

from api.ratelimit import SlidingWindow
from api.streams import set_user_filter, user_stream
from api.ws import (
    CLOSE_AUTH,
    CLOSE_TOO_MANY,
    Client,
    ClientGone,
    ConnectionManager,
    dumps,
)
from core.auth import Principal
from core.context import HubContext
from core.errors import HubError
from core.filters import SignalFilter

log = logging.getLogger(__name__)

router = APIRouter()

AUTH_TIMEOUT = 10.0
MAX_SEQ = 2**63 - 1
MESSAGE_TYPES = ("auth", "subscribe", "pong", "feedback", "resume")


def _error(message: str) -> dict[str, Any]:
    return {"type": "error", "message": message}


async def _send_direct(websocket: WebSocket, payload: dict[str, Any]) -> None:
    with contextlib.suppress(Exception):
        await websocket.send_text(dumps(payload))


async def _reject(websocket: WebSocket, message: str, code: int) -> None:
    await _send_direct(websocket, _error(message))
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
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("type") != "auth":
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
    resume_from = _parse_seq(websocket.query_params.get("after_seq"))
    stream_sub = await user_stream(ctx, principal.user.id)
    client = manager.new_client(websocket, principal, ip, stream_sub.filter)
    welcome = dumps(
        {"type": "welcome", "client_id": client.id, "timestamp": datetime.now(UTC).isoformat()}
    )
    manager.register(client, welcome=welcome, resume_buffering=resume_from is not None)
    session = _Session(websocket, ctx, manager, client)
    try:
        if resume_from is not None:
            await session.resume(resume_from)
        await session.run()
    except ClientGone:
        pass
    finally:
        await manager.unregister(client)


class _Session:
    """Reads one client's messages and answers them (through the client's queue)."""

    def __init__(
        self, websocket: WebSocket, ctx: HubContext, manager: ConnectionManager, client: Client
    ) -> None:
        self.websocket = websocket
        self.ctx = ctx
        self.manager = manager
        self.client = client
        self.max_bytes = ctx.settings.api.max_message_bytes
        per_sec = ctx.settings.limits.max_messages_per_client_per_sec
        self.window = SlidingWindow(per_sec, 1.0)
        self.rate_message = (
            f"message rate limit exceeded: at most {per_sec} messages per second; "
            "this message was ignored"
        )

    def send(self, payload: dict[str, Any]) -> None:
        self.manager.send(self.client, payload)

    async def run(self) -> None:
        closed = self.client.closed
        while True:
            receive = asyncio.ensure_future(self.websocket.receive())
            done, _ = await asyncio.wait({receive, closed}, return_when=asyncio.FIRST_COMPLETED)
            if receive not in done:
                receive.cancel()
                return
            try:
                message = receive.result()
            except Exception:
                return
            if message["type"] == "websocket.disconnect":
                return
            await self.handle(message)

    def over_limit(self) -> bool:
        if self.window.hit(asyncio.get_running_loop().time()) > 0:
            self.send(_error(self.rate_message))
            return True
        return False

    async def handle(self, message: Mapping[str, Any]) -> None:
        """One client message. Pongs are only liveness and never rate limited (so a
        client answering heartbeats can't lock itself out); everything else counts."""
        text = message.get("text")
        if text is None:
            if not self.over_limit():
                self.send(_error("send JSON text frames, not binary"))
            return
        if len(text) > self.max_bytes or (
            len(text) * 4 > self.max_bytes and len(text.encode()) > self.max_bytes
        ):
            if not self.over_limit():
                self.send(_error(f"message too large: at most {self.max_bytes} bytes"))
            return
        try:
            data = json.loads(text)
        except ValueError:
            if not self.over_limit():
                self.send(_error("malformed JSON"))
            return
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "pong":
            self.manager.pong(self.client)
            return
        if self.over_limit():
            return
        if not isinstance(data, dict):
            self.send(_error('send a JSON object such as {"type":"pong"}'))
            return
        try:
            if kind == "subscribe":
                await self.subscribe(data.get("filters"))
            elif kind == "feedback":
                await self.feedback(data)
            elif kind == "resume":
                seq = _parse_seq(data.get("after_seq"))
                if seq is None:
                    self.send(_error("resume needs after_seq: the last seq you received"))
                else:
                    await self.resume(seq)
            elif kind == "auth":
                self.send(_error("already authenticated"))
            else:
                shown = kind if isinstance(kind, str) and len(kind) <= 32 else "?"
                self.send(
                    _error(f"unknown message type {shown!r}; use one of {', '.join(MESSAGE_TYPES)}")
                )
        except HubError as exc:
            self.send(_error(exc.message))

    async def subscribe(self, filters: Any) -> None:
        flt = SignalFilter.from_mapping(filters if filters is not None else {})
        stored = await set_user_filter(self.ctx, self.client.user_id, flt)
        self.manager.set_user_filter(self.client.user_id, stored)
        self.send({"type": "subscribed", "filters": stored.to_mapping()})

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
        info = await self.ctx.services.feedback.record(
            self.client.user_id, signal_id[:256], outcome, return_pct
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

    async def resume(self, after_seq: int) -> None:
        replayed, last = await self.manager.resume(self.client, after_seq)
        self.send(
            {"type": "resumed", "after_seq": after_seq, "replayed": replayed, "last_seq": last}
        )
