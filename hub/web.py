"""The ASGI app for an outside server: ``uvicorn --factory hub.web:create_app``.

This is the Procfile's ``web`` role: the API and WebSocket stream, with settings
from ``$CATALYST_CONFIG`` (else ``./config.toml``) and ``CATALYST_*`` variables.
Signals published by other processes reach WebSocket clients through the
database tail.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from core.logs import configure_logging
from core.settings import load_settings
from hub.runtime import Hub


def create_app() -> FastAPI:
    settings = load_settings(os.environ.get("CATALYST_CONFIG"))
    configure_logging(settings)
    hub = Hub(settings, frozenset({"api"}))
    hub.build()
    app: FastAPI = hub.app
    if app is None:
        raise RuntimeError("api.enabled is false; nothing to serve")
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[None]:
        await hub.start(serve_api=False)
        try:
            async with inner(a):
                yield
        finally:
            await hub.stop()

    app.router.lifespan_context = lifespan
    return app
