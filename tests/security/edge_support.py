"""Helpers for the edge tests (tests/security/test_edge_*.py).

``edge_hub`` starts a real API server (``ApiServer``, as ``catalyst run`` does) on
SQLite with settings overrides and a choice of uvicorn HTTP parser; the raw
socket helpers speak just enough HTTP/1.1 to misbehave on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI

from api import ApiServer, create_app
from tests.api.conftest import Hub
from tests.conftest import _context, settings_for

HTTP_IMPLS = ("httptools", "h11")


@asynccontextmanager
async def edge_hub(
    folder: Path,
    *,
    http: str = "httptools",
    routers: tuple[APIRouter, ...] = (),
    wrap: Any = None,
    **overrides: Any,
) -> AsyncIterator[Hub]:
    """A real server on 127.0.0.1:0. ``wrap(app)`` may add test middleware."""
    ctx = await _context(settings_for(folder, **overrides))
    app: FastAPI = create_app(ctx, extra_routers=routers)
    if wrap is not None:
        wrap(app)
    kwargs: dict[str, Any] = {} if http == "auto" else {"http": http}
    server = ApiServer(app, "127.0.0.1", 0, **kwargs)
    await server.start()
    client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=10)
    hub = Hub(ctx, server, client)
    try:
        yield hub
    finally:
        for ws in hub.sockets:
            with contextlib.suppress(Exception):
                await ws.close()
        await client.aclose()
        await server.stop()
        await ctx.dispatcher.stop()
        await ctx.db.dispose()


async def open_raw(
    port: int, data: bytes = b""
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if data:
        writer.write(data)
        await writer.drain()
    return reader, writer


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes | None:
    """Everything the server sent before closing, or None if still open after ``seconds``."""
    chunks: list[bytes] = []
    try:
        async with asyncio.timeout(seconds):
            while True:
                try:
                    chunk = await reader.read(65536)
                except ConnectionError:
                    break
                if not chunk:
                    break
                chunks.append(chunk)
    except TimeoutError:
        return None
    return b"".join(chunks)


async def get_on(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str = "/health"
) -> int:
    """One keep-alive GET on an open raw connection; its status (body read and dropped)."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: hub\r\n\r\n".encode())
    await writer.drain()
    async with asyncio.timeout(5):
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
    return int(head.split(b" ", 2)[1])


def close_raw(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.close()
