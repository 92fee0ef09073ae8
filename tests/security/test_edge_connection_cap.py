"""Open connections are capped per client address: the N+1th gets 503 and is
closed, a slot frees when a connection closes (WebSockets included), and a
trusted proxy (which carries every client) is not capped."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from api.edge_protocol import EdgeGuard
from tests.api.conftest import recv_json
from tests.security.edge_support import (
    HTTP_IMPLS,
    close_raw,
    edge_hub,
    get_on,
    open_raw,
)

CAP = 5
# Long enough that the request-head deadline closes nothing during the test.
SETTINGS = {"max_open_connections_per_ip": CAP, "header_timeout_seconds": 30.0}


async def _refused(port: int) -> bool:
    """Connect and ask for /health: True for the cap's 503 (or a close), False for 200."""
    reader, writer = await open_raw(port, b"GET /health HTTP/1.1\r\nHost: hub\r\n\r\n")
    try:
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return True
    finally:
        close_raw(writer)
    if head.startswith(b"HTTP/1.1 503") and b"connection: close" in head.lower():
        return True
    assert head.startswith(b"HTTP/1.1 200"), head
    return False


async def _until_admitted(port: int, within: float = 5.0) -> None:
    """The server counts a closed connection out once it has seen the close."""
    async with asyncio.timeout(within):
        while await _refused(port):
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("http", HTTP_IMPLS)
async def test_the_connection_past_the_cap_is_refused(tmp_path: Path, http: str) -> None:
    async with edge_hub(tmp_path, http=http, api=SETTINGS) as hub:
        port = hub.server.port
        held = [await open_raw(port) for _ in range(CAP)]
        try:
            assert await _refused(port)
            # The admitted ones work.
            assert await get_on(*held[0]) == 200
            assert await get_on(*held[-1]) == 200
            # Closing one frees a slot.
            close_raw(held.pop(1)[1])
            await _until_admitted(port)
        finally:
            for _, writer in held:
                close_raw(writer)


async def test_websockets_count_until_they_close(tmp_path: Path) -> None:
    async with edge_hub(tmp_path, api=SETTINGS) as hub:
        _user, key = await hub.user("alice")
        streams = []
        for _ in range(CAP):
            ws = await hub.connect(key)
            assert (await recv_json(ws))["type"] == "welcome"
            streams.append(ws)
        assert await _refused(hub.server.port)
        await streams[0].close()
        await _until_admitted(hub.server.port)


async def test_a_trusted_proxy_is_not_capped(tmp_path: Path) -> None:
    async with edge_hub(
        tmp_path,
        api={**SETTINGS, "max_open_connections_per_ip": 2, "trusted_proxies": ["127.0.0.1"]},
    ) as hub:
        held = [await open_raw(hub.server.port) for _ in range(6)]
        try:
            for reader, writer in held:
                assert await get_on(reader, writer) == 200
        finally:
            for _, writer in held:
                close_raw(writer)


class FakeTransport:
    def __init__(self) -> None:
        self.closing = False

    def is_closing(self) -> bool:
        return self.closing


def test_the_guard_counts_live_transports_per_address() -> None:
    guard = EdgeGuard(max_per_ip=2, trusted_proxies=["10.0.0.0/8"])
    a, b, c = FakeTransport(), FakeTransport(), FakeTransport()
    admit: Any = guard.admit
    assert admit("192.0.2.1", a) and admit("192.0.2.1", b)
    assert not admit("192.0.2.1", c) and guard.refused == 1
    assert admit("192.0.2.2", FakeTransport())  # another address
    assert admit("2001:db8::1", FakeTransport()) and admit("2001:db8::2", FakeTransport())
    assert not admit("2001:db8::3", FakeTransport())  # the same /64
    a.closing = True  # e.g. a WebSocket whose protocol is no longer ours
    assert admit("192.0.2.1", c)
    assert guard.open_connections("192.0.2.1") == 2
    assert all(admit("10.1.2.3", FakeTransport()) for _ in range(10))  # a trusted proxy
    for t in (b, c):
        t.closing = True
    guard._sweep()
    assert guard.open_connections("192.0.2.1") == 0
