"""The FastAPI application for one HubContext."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api import routes_account, routes_admin, routes_signals, routes_system, routes_ws
from api.errors import install_error_handlers
from api.ratelimit import KeyedRateLimiter
from api.ws import CLOSE_GOING_AWAY, ConnectionManager
from core.context import HubContext

DESCRIPTION = """Real-time catalyst trading signals over WebSocket (`/ws`) and REST.

Authenticate with `Authorization: Bearer <API key or JWT>`. Errors are
`{"detail": "<message>"}`. The WebSocket protocol is described in the project
README and in `examples/signal_client.py`."""


def create_app(ctx: HubContext, *, extra_routers: Sequence[APIRouter] = ()) -> FastAPI:
    """Build the app. Nothing starts until the ASGI server runs its lifespan: then
    the WebSocket manager subscribes to ``ctx.bus``; on shutdown it closes every
    client with 1001."""
    manager = ConnectionManager(ctx)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        manager.start()
        try:
            yield
        finally:
            await manager.stop(CLOSE_GOING_AWAY)

    app = FastAPI(
        title="Catalyst Signal API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    app.state.ws_manager = manager
    app.state.rest_limiter = KeyedRateLimiter(ctx.settings.limits.rest_requests_per_minute, 60.0)
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
