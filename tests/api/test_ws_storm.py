"""Connect storms and the fast send path: correctness only (bench/ws_fanout.py times them).

* A storm of a few hundred clients connecting at once: every one is welcomed,
  none is dropped, and every one gets the next signal.
* uvicorn's protocol keepalive: its pong deadline is the app's heartbeat timeout
  (``ApiServer``, and ``FastSendMiddleware`` under a bare ``uvicorn --factory``).
* The broadcast's fast path (``catalyst.write_frame``) is active under ``uvicorn
  --factory hub.web:create_app`` with uvicorn's defaults, not only under ``catalyst
  run``.
"""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from fastapi import FastAPI
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from api import ApiServer, create_app
from api.fastsend import EXTENSION, FastSendMiddleware
from api.server import WS_PING_INTERVAL
from api.ws import ConnectionManager
from hub.build import build_context, prepare_database
from tests.api.conftest import HubFactory, auth, recv_type
from tests.conftest import TEST_JWT_SECRET, settings_for

STORM = 300


async def test_storm_of_connects_all_welcomed_none_dropped(make_hub: HubFactory) -> None:
    limits = {"max_connections_per_ip": STORM + 50, "rest_requests_per_minute": 100_000}
    hub = await make_hub(limits=limits, api={"max_open_connections_per_ip": STORM + 100})
    _user, key = await hub.user("storm", ("read", "publish"))
    gate = asyncio.Semaphore(32)  # as the bench: 32 parallel connectors

    async def one() -> Any:
        async with gate:
            ws = await websockets.connect(f"{hub.ws_url}?token={key}", open_timeout=30)
            welcome = await recv_type(ws, "welcome", within=30)
            return ws, welcome

    opened = await asyncio.gather(*(one() for _ in range(STORM)))
    sockets = [ws for ws, _ in opened]
    hub.sockets.extend(sockets)
    assert len({w["client_id"] for _, w in opened}) == STORM
    assert all(set(w) == {"type", "client_id", "timestamp"} for _, w in opened)
    assert hub.server.manager.connection_count == STORM

    response = await hub.http.post(
        "/api/v1/signals", json={"ticker": "STRM", "confidence": 0.9}, headers=auth(key)
    )
    assert response.status_code == 201, response.text
    got = await asyncio.gather(*(recv_type(ws, "signal", within=20) for ws in sockets))
    assert {m["data"]["ticker"] for m in got} == {"STRM"}
    assert all(ws.close_code is None for ws in sockets)  # nobody was closed
    assert hub.server.manager.connection_count == STORM


async def test_api_server_keepalive_waits_as_long_as_the_heartbeat(
    make_hub: HubFactory,
) -> None:
    hub = await make_hub(api={"heartbeat_timeout_seconds": 77.0})
    config = hub.server._config
    assert config.ws_ping_interval == WS_PING_INTERVAL == 20.0
    assert config.ws_ping_timeout == 77.0


# ---- the bare uvicorn web role ----------------------------------------------------


def _unwrap(app: Any) -> FastAPI:
    while not isinstance(app, FastAPI):
        app = app.app
    return app


@pytest.fixture
async def bare_uvicorn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``uvicorn --factory hub.web:create_app`` with uvicorn's defaults (``--ws auto``,
    20 s pings and pong deadline), in this process so the test can look inside."""
    db = tmp_path / "web.db"
    ctx = build_context(settings_for(tmp_path, f"sqlite+aiosqlite:///{db}"))
    await prepare_database(ctx, force=True)
    user = await ctx.services.accounts.create_user("web")
    key, _ = await ctx.auth.create_key(user.id, ("read", "publish"))
    await ctx.db.dispose()
    for name, value in {
        "CATALYST_DATABASE__URL": f"sqlite+aiosqlite:///{db}",
        "CATALYST_AUTH__JWT_SECRET": TEST_JWT_SECRET,
        "CATALYST_CONSOLE__ENABLED": "false",
        "CATALYST_SCHEDULER__ENABLED": "false",
        "CATALYST_API__HEARTBEAT_TIMEOUT_SECONDS": "90",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CATALYST_CONFIG", raising=False)
    config = uvicorn.Config(
        "hub.web:create_app",
        factory=True,
        host="127.0.0.1",
        port=0,
        proxy_headers=False,
        log_config=None,
        log_level="warning",
    )
    server = uvicorn.Server(config)
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.01)
    try:
        yield server, port, key
    finally:
        server.should_exit = True
        await task


async def test_bare_uvicorn_web_role_uses_the_fast_path(bare_uvicorn: Any) -> None:
    server, port, key = bare_uvicorn
    assert server.config.ws == "auto"
    assert server.config.ws_ping_timeout == 20.0  # uvicorn's default, as on its CLI
    app = _unwrap(server.config.loaded_app)
    manager: ConnectionManager = app.state.ws_manager
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws?token={key}") as ws:
        await recv_type(ws, "welcome")
        (client,) = manager._clients.values()
        assert EXTENSION in client.websocket.scope["extensions"]
        assert client.fast_path
        (protocol,) = [
            c for c in server.server_state.connections if isinstance(c, WebSocketsSansIOProtocol)
        ]
        assert protocol.ping_timeout == 90.0  # the app's heartbeat timeout
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            response = await http.post(
                "/api/v1/signals", json={"ticker": "FAST", "confidence": 0.9}, headers=auth(key)
            )
        assert response.status_code == 201, response.text
        message = await recv_type(ws, "signal")
        assert message["data"]["ticker"] == "FAST"
        assert json.loads(json.dumps(message)) == message


async def test_fast_send_middleware_leaves_other_servers_alone() -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)

    async def plain_send(message: Any) -> None:
        return None

    middleware = FastSendMiddleware(app, ping_timeout=90.0)
    await middleware({"type": "websocket", "extensions": {}}, plain_send, plain_send)
    await middleware({"type": "http"}, plain_send, plain_send)
    assert seen[0]["extensions"] == {}
    assert "extensions" not in seen[1]


async def test_fast_path_under_catalyst_run_server(make_hub: HubFactory) -> None:
    hub = await make_hub()
    _user, key = await hub.user("fast")
    ws = await hub.connect(key)
    await recv_type(ws, "welcome")
    (client,) = hub.server.manager._clients.values()
    assert client.fast_path


def test_api_server_without_fast_fanout_has_no_fast_path(tmp_path: Path) -> None:
    ctx = build_context(settings_for(tmp_path))
    server = ApiServer(create_app(ctx), "127.0.0.1", 0, fast_fanout=False)
    assert server._config.ws == "websockets-sansio"
