"""Helpers for the input-validation tests (tests/security/test_input_*.py).

``hub_on`` starts a real API server on SQLite or on a PostgreSQL database of
its own, with a REST limit high enough for many requests (and resumes).
``replay`` reads signals back through a WebSocket ``resume``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from api import ApiServer, create_app
from core.settings import Settings
from tests.api.conftest import Hub, auth, recv_json
from tests.conftest import PG_URL, _context, settings_for


def backends() -> list[Any]:
    return ["sqlite", "postgresql"] if PG_URL else ["sqlite"]


@asynccontextmanager
async def _database(backend: str) -> AsyncIterator[str | None]:
    """None (SQLite in the hub's folder) or the URL of a new PostgreSQL database of
    its own, dropped afterwards, so concurrent test runs never share one."""
    if backend != "postgresql":
        yield None
        return
    name = f"catalyst_sec_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(
        Settings(database={"url": PG_URL}).database.url, isolation_level="AUTOCOMMIT"
    )
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@asynccontextmanager
async def hub_on(backend: str, folder: Path) -> AsyncIterator[Hub]:
    """A real API server (as tests/api's ``hub``) on ``backend``, with a REST limit
    high enough for many requests (and resumes)."""
    async with _database(backend) as url:
        ctx = await _context(
            settings_for(
                folder,
                url,
                limits={"rest_requests_per_minute": 100_000, "ws_resumes_per_minute": 100_000},
            )
        )
        server = ApiServer(create_app(ctx), "127.0.0.1", 0)
        await server.start()
        http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=20)
        hub = Hub(ctx, server, http)
        try:
            yield hub
        finally:
            for ws in hub.sockets:
                await ws.close()
            await http.aclose()
            await server.stop()
            await ctx.dispatcher.stop()
            await ctx.db.dispose()


async def post_json(hub: Hub, path: str, body: Any, key: str) -> httpx.Response:
    """POST ``body`` encoded by ``json.dumps`` (ASCII, so NUL, lone surrogates, NaN and
    Infinity reach the server exactly as a hostile client would send them)."""
    content = json.dumps(body, allow_nan=True).encode()
    headers = {**auth(key), "Content-Type": "application/json"}
    return await hub.http.post(path, content=content, headers=headers)


async def replay(hub: Hub, key: str, after_seq: int) -> list[dict[str, Any]]:
    """Every signal a WebSocket ``resume`` after ``after_seq`` replays."""
    ws = await hub.connect(key)
    try:
        assert (await recv_json(ws))["type"] == "welcome"
        await ws.send(json.dumps({"type": "resume", "after_seq": after_seq}))
        out: list[dict[str, Any]] = []
        while True:
            message = await recv_json(ws, 10.0)
            if message["type"] == "signal":
                out.append(message["data"])
            elif message["type"] == "resumed":
                return out
            elif message["type"] == "error":
                raise AssertionError(f"resume answered an error: {message}")
    finally:
        await ws.close()
        hub.sockets.remove(ws)
