"""``/ws``: the WebSocket route of the design document's stream.

It accepts the connection, admits it (connections per address, the flood
penalty), authenticates it (``?token=`` or a first ``{"type":"auth","token":...}``
within AUTH_TIMEOUT) with the ``read`` scope, registers it with the
:class:`api.ws.ConnectionManager` (``?after_seq=`` resumes at once, strictly in
order) and runs its :class:`api.ws_session.Session` until it ends.

Client -> server: ``auth``, ``subscribe``, ``pong``, ``feedback``, ``resume``.
Server -> client: ``welcome``, ``signal``, ``signal_update``, ``heartbeat``, ``subscribed``,
``resumed``, ``feedback_recorded``, ``error`` (:mod:`api.ws_messages`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from fastapi import APIRouter, WebSocket

from api.streams import user_stream
from api.ws import ConnectionManager
from api.ws_client import hook_up
from api.ws_frames import FrameError, parse_message, parse_seq
from api.ws_handlers import resume_refused
from api.ws_messages import CLOSE_AUTH, CLOSE_TOO_MANY, CLOSE_TOO_SLOW, dumps, error, welcome
from api.ws_session import Session
from core.auth import Principal
from core.context import HubContext

log = logging.getLogger(__name__)

router = APIRouter()

#: Seconds an unauthenticated WebSocket may take to send its auth message (as the
#: request-head deadline: nobody unauthenticated holds a connection for long).
AUTH_TIMEOUT = 5.0


async def _send_direct(websocket: WebSocket, payload: dict[str, Any]) -> None:
    with contextlib.suppress(Exception):
        await websocket.send_text(dumps(payload))


async def _reject(websocket: WebSocket, message: str, code: int, *, hang_up: bool = False) -> None:
    await _send_direct(websocket, error(message))
    if hang_up:
        hook_up(websocket)
    with contextlib.suppress(Exception):
        await websocket.close(code)


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
    resume_from = parse_seq(websocket.query_params.get("after_seq"))
    refused = None
    if resume_from is not None:
        refused = resume_refused(manager, principal.user.id)
        if refused is not None:
            resume_from = None  # straight to live, with an error saying why
    stream_sub = await user_stream(ctx, principal.user.id)
    client = manager.new_client(websocket, principal, ip, stream_sub.filter)
    manager.register(client, welcome=welcome(client.id), resume_buffering=resume_from is not None)
    if refused is not None:
        manager.send(client, error(refused))
    session = Session(websocket, ctx, manager, client)
    try:
        await session.run(resume_from)
    finally:
        await manager.unregister(client)
