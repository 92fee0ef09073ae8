"""The FastAPI application for one HubContext."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from api import routes_account, routes_admin, routes_signals, routes_system, routes_ws
from api.errors import install_error_handlers
from api.ratelimit import KeyedRateLimiter
from api.ws import CLOSE_GOING_AWAY, ConnectionManager
from core.context import HubContext

#: Largest REST request body accepted (a signal is at most a few KiB).
MAX_BODY_BYTES = 1 << 20

DESCRIPTION = """Real-time catalyst trading signals over WebSocket (`/ws`) and REST.

Authenticate with `Authorization: Bearer <API key or JWT>`. Errors are
`{"detail": "<message>"}`. The WebSocket protocol is described in
`examples/README.md`; `examples/signal_client.py` is a working client."""

Hook = Callable[[], Awaitable[None]]


class BodySizeLimit:
    """Answer 413 to a request whose declared Content-Length is above the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope.get("headers", ()):
                if name == b"content-length":
                    if not value.isdigit() or int(value) > self.max_bytes:
                        await _too_large(send, self.max_bytes)
                        return
                    break
        await self.app(scope, receive, send)


async def _too_large(send: Send, max_bytes: int) -> None:
    body = b'{"detail":"request body too large: at most %d bytes"}' % max_bytes
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app(
    ctx: HubContext,
    *,
    extra_routers: Sequence[APIRouter] = (),
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
) -> FastAPI:
    """Build the app. Nothing starts until the ASGI server runs its lifespan: then
    ``on_startup`` hooks run (e.g. preparing the database when served by a bare
    ``uvicorn --factory``), and the WebSocket manager subscribes to ``ctx.bus``. On
    shutdown every client is closed with 1001, then ``on_shutdown`` hooks run."""
    manager = ConnectionManager(ctx)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        for hook in on_startup:
            await hook()
        manager.start()
        try:
            yield
        finally:
            await manager.stop(CLOSE_GOING_AWAY)
            for hook in on_shutdown:
                await hook()

    app = FastAPI(
        title="Catalyst Signal API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    app.state.ws_manager = manager
    app.state.rest_limiter = KeyedRateLimiter(ctx.settings.limits.rest_requests_per_minute, 60.0)
    app.add_middleware(BodySizeLimit)
    if ctx.settings.api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=ctx.settings.api.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["Retry-After"],
        )
    install_error_handlers(app)
    for module in (routes_system, routes_signals, routes_account, routes_admin, routes_ws):
        app.include_router(module.router)
    for router in extra_routers:
        app.include_router(router)
    return app
