"""Slowloris: connections that never finish their request head are closed after
``api.header_timeout_seconds``, while the API keeps answering; connections that
did finish one (a request being served, an open WebSocket) are left alone."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import recv_json
from tests.security.edge_support import (
    HTTP_IMPLS,
    close_raw,
    closed_within,
    edge_hub,
    get_on,
    open_raw,
)

DEADLINE = 1.0
SLACK = 3.0  # on top of the deadline, for a busy 2-core machine


@pytest.mark.parametrize("http", HTTP_IMPLS)
async def test_unfinished_request_heads_are_closed_and_health_answers(
    tmp_path: Path, http: str
) -> None:
    async with edge_hub(tmp_path, http=http, api={"header_timeout_seconds": DEADLINE}) as hub:
        port = hub.server.port
        sockets = [await open_raw(port, b"GET /hea") for _ in range(50)]
        try:
            started = time.monotonic()
            health = await hub.http.get("/health")  # meanwhile, the API answers
            assert health.status_code == 200
            assert time.monotonic() - started < DEADLINE
            results = await asyncio.gather(
                *(closed_within(reader, DEADLINE + SLACK) for reader, _ in sockets)
            )
        finally:
            for _, writer in sockets:
                close_raw(writer)
        still_open = sum(1 for r in results if r is None)
        assert still_open == 0, f"{still_open} of 50 slow connections are still open"
        # They had started a request: each is told why.
        assert all(r is not None and r.startswith(b"HTTP/1.1 408") for r in results)
        assert time.monotonic() - started < DEADLINE + SLACK
        # On a new connection: the edge closes the client's idle keep-alive one after
        # the same deadline, and reusing it could race that close (httpx ReadError).
        async with httpx.AsyncClient(base_url=hub.http.base_url, timeout=10) as fresh:
            assert (await fresh.get("/health")).status_code == 200


@pytest.mark.parametrize("http", HTTP_IMPLS)
async def test_idle_connections_and_stalls_after_a_response_are_closed(
    tmp_path: Path, http: str
) -> None:
    async with edge_hub(tmp_path, http=http, api={"header_timeout_seconds": DEADLINE}) as hub:
        port = hub.server.port
        # Never sends a byte.
        idle_reader, idle_writer = await open_raw(port)
        # One good request, then a head that never ends: uvicorn's keep-alive timer is
        # cancelled by the first byte, so only the edge's deadline closes it.
        reader, writer = await open_raw(port)
        try:
            assert await get_on(reader, writer) == 200
            writer.write(b"GET /health HTTP/1.1\r\nHost: hub\r\nX-Slow: ")
            await writer.drain()
            for _ in range(3):  # trickles a byte now and then
                await asyncio.sleep(DEADLINE / 3)
                writer.write(b"a")
                await writer.drain()
            assert await closed_within(reader, DEADLINE + SLACK) is not None
            assert await closed_within(idle_reader, DEADLINE + SLACK) is not None
        finally:
            close_raw(writer)
            close_raw(idle_writer)


@pytest.mark.parametrize("http", HTTP_IMPLS)
async def test_unfinished_websocket_handshake_is_closed(tmp_path: Path, http: str) -> None:
    async with edge_hub(tmp_path, http=http, api={"header_timeout_seconds": DEADLINE}) as hub:
        reader, writer = await open_raw(
            hub.server.port,
            b"GET /ws HTTP/1.1\r\nHost: hub\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 13\r\n",
        )
        try:
            assert await closed_within(reader, DEADLINE + SLACK) is not None
        finally:
            close_raw(writer)


@pytest.mark.parametrize("http", HTTP_IMPLS)
async def test_open_websockets_and_slow_handlers_outlive_the_deadline(
    tmp_path: Path, http: str
) -> None:
    from fastapi import APIRouter

    router = APIRouter()

    @router.get("/slow")
    async def slow() -> dict[str, bool]:
        await asyncio.sleep(DEADLINE * 2)
        return {"ok": True}

    async with edge_hub(
        tmp_path, http=http, routers=(router,), api={"header_timeout_seconds": DEADLINE}
    ) as hub:
        _user, key = await hub.user("alice")
        ws = await hub.connect(key)
        assert (await recv_json(ws))["type"] == "welcome"
        slow_response = await hub.http.get("/slow")  # served past the deadline
        assert slow_response.json() == {"ok": True}
        await hub.publish(signal_id="after-the-deadline")
        while (message := await recv_json(ws))["type"] != "signal":
            pass
        assert message["data"]["signal_id"] == "after-the-deadline"
