"""The ASGI app for an outside server: ``uvicorn --factory hub.web:create_app``.

The API and WebSocket stream, with settings from ``$CATALYST_CONFIG`` (else
``./config.toml``) and ``CATALYST_*`` variables. Signals published by other
processes reach WebSocket clients through the database tail.

**Facing the internet, use ``catalyst run --roles api`` instead** (the Procfile's
``web`` role): it runs uvicorn itself with the connection-level protections that a
bare ``uvicorn`` cannot be given from its command line (:mod:`api.edge_protocol`).
This factory is for deployments with a reverse proxy (nginx, HAProxy, a cloud load
balancer) in front. What the app enforces under any server: request bodies are
limited while they stream (413) and must arrive in time (408), failed
authentications are rate-limited per client address (429), no redirect is built
from the Host header, and credentials are redacted from every log line (installed
here, since ``catalyst run`` is not there to do it). What the proxy must then
enforce, because uvicorn does not:

* a deadline for the request head and WebSocket handshake, e.g. nginx
  ``client_header_timeout 5s`` (uvicorn closes only connections idle *after* a
  response, so a client that never finishes its request head is kept forever);
* a cap on open connections per client address (nginx ``limit_conn``);
* ``X-Forwarded-For`` set to the real client address (nginx
  ``proxy_set_header X-Forwarded-For $remote_addr``), with uvicorn started with
  ``--forwarded-allow-ips=<the proxy's address>``, and only the proxy able to
  reach uvicorn's port. uvicorn's default trusts ``X-Forwarded-For`` from
  127.0.0.1: without a proxy, start it with ``--no-proxy-headers``, or anything
  on the host can pose as any client address (and dodge the per-address limits).
* no logging of request URLs with their query string: ``?token=`` carries keys
  (or a log format that strips ``$args``).

The broadcast's fast path (:mod:`api.fastsend`: pre-built frames written straight
to each socket) is active here too, with uvicorn's default ``--ws auto`` (its
sans-I/O protocol), through :class:`api.fastsend.FastSendMiddleware`; that also
raises the protocol pings' pong deadline to ``api.heartbeat_timeout_seconds``
whatever ``--ws-ping-timeout`` says, so a busy loop does not close healthy
clients with 1011. With ``--ws wsproto`` or ``--ws websockets`` every send goes
through ASGI (slower fan-out, same messages).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from api.fastsend import FastSendMiddleware
from api.server import install_log_redaction
from core.logs import configure_logging
from core.settings import load_settings
from hub.runtime import Hub


def create_app() -> FastAPI:
    settings = load_settings(os.environ.get("CATALYST_CONFIG"))
    configure_logging(settings)
    # uvicorn logs every request line with its query string (?token=catalyst_...).
    install_log_redaction()
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
    # Outermost: the broadcast's pre-built frames (api.fastsend) under uvicorn's own
    # WebSocket protocol, and its keepalive pong deadline no shorter than the app's.
    app.add_middleware(FastSendMiddleware, ping_timeout=settings.api.heartbeat_timeout_seconds)
    return app
