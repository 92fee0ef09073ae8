"""A real uvicorn server on 127.0.0.1:0 per test, with users and keys to call it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from api import ApiServer, create_app
from core.context import HubContext
from core.services.accounts import UserRef
from tests.conftest import _context, settings_for


@dataclass
class Hub:
    ctx: HubContext
    server: ApiServer
    http: httpx.AsyncClient
    sockets: list[ClientConnection] = field(default_factory=list)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}/ws"

    async def user(
        self, name: str, scopes: tuple[str, ...] = ("read", "feedback"), *, is_admin: bool = False
    ) -> tuple[UserRef, str]:
        user = await self.ctx.services.accounts.create_user(name, is_admin=is_admin)
        key, _info = await self.ctx.auth.create_key(user.id, scopes)
        return user, key

    async def connect(
        self, token: str | None = None, query: str = "", **kw: Any
    ) -> ClientConnection:
        url = self.ws_url
        params = [p for p in ((f"token={token}" if token else ""), query) if p]
        if params:
            url += "?" + "&".join(params)
        ws = await websockets.connect(url, open_timeout=5, **kw)
        self.sockets.append(ws)
        return ws

    async def publish(self, **fields: Any) -> dict[str, Any]:
        data = {"ticker": "ABCD", "confidence": 0.8, **fields}
        result = await self.ctx.publisher.publish(data)
        return result.signal.to_public()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def recv_json(ws: ClientConnection, within: float = 5.0) -> dict[str, Any]:
    import asyncio

    raw = await asyncio.wait_for(ws.recv(), within)
    data: dict[str, Any] = json.loads(raw)
    return data


async def recv_type(ws: ClientConnection, kind: str, within: float = 5.0) -> dict[str, Any]:
    """The next message of ``kind``, skipping heartbeats and other kinds."""
    while True:
        message = await recv_json(ws, within)
        if message.get("type") == kind:
            return message


HubFactory = Callable[..., Awaitable[Hub]]


@pytest.fixture
async def make_hub(tmp_path: Path) -> AsyncIterator[HubFactory]:
    hubs: list[Hub] = []

    async def _make(**overrides: Any) -> Hub:
        folder = tmp_path / f"hub{len(hubs)}"
        folder.mkdir()
        ctx = await _context(settings_for(folder, **overrides))
        server = ApiServer(create_app(ctx), "127.0.0.1", 0)
        await server.start()
        http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=10)
        hub = Hub(ctx, server, http)
        hubs.append(hub)
        return hub

    yield _make
    for hub in hubs:
        for ws in hub.sockets:
            await ws.close()
        await hub.http.aclose()
        await hub.server.stop()
        await hub.ctx.dispatcher.stop()
        await hub.ctx.db.dispose()


@pytest.fixture
async def hub(make_hub: HubFactory) -> Hub:
    return await make_hub()
