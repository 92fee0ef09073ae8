"""The FastAPI application for one HubContext."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api import (
    routes_account,
    routes_admin,
    routes_dashboard,
    routes_preview,
    routes_signals,
    routes_subscriptions,
    routes_system,
    routes_ws,
)
from api.docs import install_docs
from api.edge import AuthFailures, EdgeMiddleware
from api.errors import install_error_handlers
from api.fast_reads import FastSignalReads
from api.ratelimit import KeyedRateLimiter
from api.ws import CLOSE_GOING_AWAY, ConnectionManager
from core.context import HubContext

DESCRIPTION = """Real-time catalyst trading signals over WebSocket (`/ws`) and REST.

Authenticate with `Authorization: Bearer <API key or JWT>`. Errors are
`{"detail": "<message>"}`. The WebSocket protocol is described in
`examples/README.md`; `examples/signal_client.py` is a working client."""

Hook = Callable[[], Awaitable[None]]


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

    api = ctx.settings.api
    app = FastAPI(
        title="Catalyst Signal API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # A redirect would be built from the client's Host header: 404 instead.
        redirect_slashes=False,
        # /docs is served without a CDN (api.docs); ReDoc needs one, so it is off.
        docs_url=None,
        redoc_url=None,
    )
    install_docs(app)
    app.state.ctx = ctx
    app.state.ws_manager = manager
    app.state.rest_limiter = KeyedRateLimiter(ctx.settings.limits.rest_requests_per_minute, 60.0)
    # Failed authentications per client address (EdgeMiddleware feeds it from 401/4001).
    app.state.auth_failures = AuthFailures(api.auth_failures_per_minute, 60.0)
    # The plain GET /api/v1/signals below FastAPI's routing (api.fast_reads); added
    # first, so it sits inside the edge and CORS middleware.
    app.add_middleware(FastSignalReads, ctx=ctx, limiter=app.state.rest_limiter)
    # Body limits and the failed-auth gate, before parsing or authentication. Added
    # before CORS so it sits inside it: its 413/429 answers carry CORS headers too.
    app.add_middleware(
        EdgeMiddleware,
        failures=app.state.auth_failures,
        max_body_bytes=api.max_body_bytes,
        body_timeout=api.body_timeout_seconds,
    )
    if api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=api.cors_origins,
            allow_methods=["GET", "POST", "PUT", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["Retry-After"],
        )
    install_error_handlers(app)
    for module in (
        routes_system,
        routes_signals,
        routes_account,
        routes_preview,
        routes_subscriptions,
        routes_admin,
        routes_dashboard,
        routes_ws,
    ):
        app.include_router(module.router)
    for router in extra_routers:
        app.include_router(router)
    return app
