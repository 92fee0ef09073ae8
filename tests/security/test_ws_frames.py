"""Hostile WebSocket frames: each gets a clear error frame (or the documented close),
never a 1011 close or a traceback in the log. One test per attack."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from tests.api.conftest import Hub, HubFactory, auth, make_hub, recv_json, recv_type

__all__ = ["make_hub"]  # the fixture, for pytest


@pytest.fixture
async def hub(make_hub: HubFactory) -> Hub:
    return await make_hub()


@pytest.fixture(autouse=True)
def no_error_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.WARNING)
    yield
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [f"{r.name}: {r.getMessage()}" for r in bad]


async def closed_code(ws: Any, within: float = 5.0) -> int:
    with pytest.raises(ConnectionClosed) as info:
        while True:
            await asyncio.wait_for(ws.recv(), within)
    assert info.value.rcvd is not None
    return int(info.value.rcvd.code)


async def still_streaming(hub: Hub, ws: Any, signal_id: str) -> None:
    await hub.publish(signal_id=signal_id)
    while True:
        message = await recv_json(ws)
        if message["type"] == "signal" and message["data"]["signal_id"] == signal_id:
            return


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


async def test_deeply_nested_first_frame_is_an_auth_error_not_1011(hub: Hub) -> None:
    """Before: RecursionError in json.loads, a traceback, close 1011 (no auth needed)."""
    ws = await hub.connect()
    await ws.send('{"type":"auth","token":' + deep(20_000) + "}")
    error = await recv_json(ws)
    assert error["type"] == "error" and "authentication" in error["message"]
    assert await closed_code(ws) == 4001


async def test_deeply_nested_frame_after_auth_is_an_error_frame(hub: Hub) -> None:
    _user, key = await hub.user("alice")
    ws = await hub.connect(key)
    await recv_json(ws)
    await ws.send('{"type":"subscribe","filters":' + deep(20_000) + "}")
    assert "nested" in (await recv_type(ws, "error"))["message"]
    await ws.send('{"type":"subscribe","filters":{"tickers":' + deep(40) + "}}")
    assert "nested" in (await recv_type(ws, "error"))["message"]
    await still_streaming(hub, ws, "after-deep")


async def test_huge_return_pct_in_feedback_is_an_error_frame(hub: Hub) -> None:
    """Before: a 400-digit return_pct closed the socket with 1011 (REST says 422)."""
    _user, key = await hub.user("alice")
    await hub.publish(signal_id="s1")
    ws = await hub.connect(key)
    await recv_json(ws)
    huge = "9" * 400
    for frame in (
        '{"type":"feedback","signal_id":"s1","outcome":"win","return_pct":' + huge + "}",
        '{"type":"feedback","signal_id":"s1","outcome":{"outcome":"win","return_pct":-'
        + huge
        + "}}",
        '{"type":"feedback","signal_id":"s1","outcome":"win","return_pct":1e999}',
        '{"type":"feedback","signal_id":"s1","outcome":"win","return_pct":NaN}',
    ):
        await ws.send(frame)
        error = await recv_type(ws, "error")
        assert "number" in error["message"] or "return_pct" in error["message"], error
    rest = await hub.http.post(
        "/api/v1/feedback",
        content='{"signal_id":"s1","outcome":"win","return_pct":' + huge + "}",
        headers={**auth(key), "Content-Type": "application/json"},
    )
    assert rest.status_code == 422
    await ws.send(json.dumps({"type": "feedback", "signal_id": "s1", "outcome": "win"}))
    assert (await recv_type(ws, "feedback_recorded"))["outcome"] == "win"


@pytest.mark.parametrize(
    "frame",
    [
        '{"type":"feedback","signal_id":"s\\u0000","outcome":"win"}',
        '{"type":"feedback","signal_id":"s\\ud800","outcome":"win"}',
        '{"type":"subscribe","filters":{"tickers":["\\udfff"]}}',
        '{"type":"subscribe","filters":{"sectors":["bio\\u0000tech"]}}',
        '{"type":"\\ud83d","x":1}',
        '{"\\ud800":1,"type":"subscribe"}',
    ],
)
async def test_nul_and_lone_surrogates_are_error_frames(hub: Hub, frame: str) -> None:
    _user, key = await hub.user("alice")
    await hub.publish(signal_id="s1")
    ws = await hub.connect(key)
    await recv_json(ws)
    await ws.send(frame)
    message = (await recv_type(ws, "error"))["message"]
    assert "NUL" in message or "surrogate" in message, message
    await still_streaming(hub, ws, "after-bad-text")


async def test_auth_frame_with_a_lone_surrogate_token_is_4001(hub: Hub) -> None:
    ws = await hub.connect()
    await ws.send('{"type":"auth","token":"catalyst_\\ud800"}')
    assert (await recv_json(ws))["type"] == "error"
    assert await closed_code(ws) == 4001
