"""Request bodies are limited while they stream, before parsing or authentication:
a chunked body (no Content-Length) with a garbage token gets 413 at once, the app
never receives more than the limit, and the server's memory does not grow with
what the client sends. A body that does not arrive in time gets 408."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.security.edge_support import close_raw, closed_within, edge_hub, open_raw

LIMIT = 1 << 20  # api.max_body_bytes's default
CHUNK = b"x" * 65536


class CountBody:
    """Outermost middleware: how many body bytes the server handed to the app."""

    received = 0

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counting() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                CountBody.received += len(message.get("body", b""))
            return message

        await self.app(scope, counting, send)


def _count(app: FastAPI) -> None:
    CountBody.received = 0
    app.add_middleware(CountBody)


async def send_chunked(port: int, total: int, token: str = "garbage-token") -> tuple[bytes, float]:
    """POST ``total`` bytes as chunks to /api/v1/signals; (the response, seconds taken).
    Stops sending as soon as the server answers or closes."""
    reader, writer = await open_raw(
        port,
        b"POST /api/v1/signals HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + token.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    started = time.monotonic()
    response = asyncio.create_task(closed_within(reader, 30))
    frame = b"%x\r\n" % len(CHUNK) + CHUNK + b"\r\n"
    sent = 0
    try:
        while sent < total and not response.done():
            writer.write(frame)
            await writer.drain()
            sent += len(CHUNK)
        if not response.done():
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except ConnectionError:
        pass  # the server answered and closed while we were still sending
    data = await response
    close_raw(writer)
    assert data is not None, "the server neither answered nor closed in 30 s"
    return data, time.monotonic() - started


async def test_chunked_body_over_the_limit_is_413_before_authentication(
    tmp_path: Path, monkeypatch: Any
) -> None:
    async with edge_hub(tmp_path, wrap=_count) as hub:
        calls: list[str] = []
        authenticate = hub.ctx.auth.authenticate

        async def counted(credential: str) -> Any:
            calls.append(credential)
            return await authenticate(credential)

        monkeypatch.setattr(hub.ctx.auth, "authenticate", counted)
        response, seconds = await send_chunked(hub.server.port, 5 * 1024 * 1024)
        assert response.startswith(b"HTTP/1.1 413"), response[:200]
        assert b"at most 1048576 bytes" in response
        assert seconds < 3
        # Never buffered past the limit (plus what one read of the socket brings).
        assert CountBody.received <= LIMIT + 320 * 1024, CountBody.received
        assert calls == []  # refused before any authentication
        assert (await hub.http.get("/health")).status_code == 200


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


async def test_memory_does_not_grow_with_a_huge_chunked_body(tmp_path: Path) -> None:
    """The probe's attack: 300 MB took the hub from 98 MB to 994 MB. 64 MB here."""
    async with edge_hub(tmp_path) as hub:
        await hub.http.get("/health")  # warm up
        peak = baseline = _rss_kib()
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, _rss_kib())
                time.sleep(0.002)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            response, _ = await send_chunked(hub.server.port, 64 * 1024 * 1024)
        finally:
            stop.set()
            sampler.join()
        grown_mib = (peak - baseline) / 1024
        assert grown_mib < 16, f"RSS grew by {grown_mib:.0f} MiB for a refused body"
        # The server answers 413 and closes while this client is still sending: its
        # kernel may then reset the connection, and a reset can discard the answer
        # before it is read (no lingering close; the 5 MB test above checks the 413).
        assert response == b"" or response.startswith(b"HTTP/1.1 413"), response[:200]


async def test_declared_content_length_over_the_limit_is_413(tmp_path: Path) -> None:
    async with edge_hub(tmp_path, wrap=_count) as hub:
        reader, writer = await open_raw(
            hub.server.port,
            b"POST /api/v1/signals HTTP/1.1\r\nHost: hub\r\nContent-Length: 99999999\r\n\r\n",
        )
        try:
            async with asyncio.timeout(5):
                head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 413")
            # ... and the connection closes: the 99 MB the client announced are not read.
            assert await closed_within(reader, 5) is not None
        finally:
            close_raw(writer)
        assert CountBody.received == 0


async def test_a_body_that_does_not_arrive_in_time_is_408(tmp_path: Path) -> None:
    async with edge_hub(tmp_path, api={"body_timeout_seconds": 1.0}) as hub:
        reader, writer = await open_raw(
            hub.server.port,
            b"POST /api/v1/signals HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"ticker":',
        )
        try:
            response = await closed_within(reader, 4)
        finally:
            close_raw(writer)
        assert response is not None, "a stalled body held the connection"
        assert response.startswith(b"HTTP/1.1 408")


async def test_bodies_within_the_limit_still_work(tmp_path: Path) -> None:
    async with edge_hub(tmp_path) as hub:
        _user, key = await hub.user("pub", ("read", "publish"))

        def chunks() -> Any:
            yield b'{"ticker": "ABCD", "confidence": 0.8, '
            yield b'"signal_id": "chunked-ok"}'

        response = await hub.http.post(
            "/api/v1/signals",
            content=_aiter(chunks()),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        assert response.status_code in (200, 201), response.text
        assert response.json()["signal_id"] == "chunked-ok"


async def _aiter(items: Any) -> Any:
    for item in items:
        yield item
