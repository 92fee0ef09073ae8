"""One WebSocket client cannot hog the hub: limits count frames on arrival, a hung-up
client's queued frames are dropped, resume is limited, pongs are small and limited."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from domain.filters import SignalFilter
from tests.api.conftest import Hub, HubFactory, make_hub, recv_json, recv_type

__all__ = ["make_hub"]


async def drain(ws: Any, within: float = 5.0) -> tuple[int | None, list[dict[str, Any]]]:
    """Everything the server sends until it closes (close code) or goes quiet (None)."""
    seen: list[dict[str, Any]] = []
    try:
        while True:
            seen.append(json.loads(await asyncio.wait_for(ws.recv(), within)))
    except TimeoutError:
        return None, seen
    except ConnectionClosed as exc:
        return (exc.rcvd.code if exc.rcvd is not None else 1006), seen


async def burst(ws: Any, frames: list[str]) -> None:
    """Send every frame at once (each its own WebSocket message)."""
    for frame in frames:
        await ws.send(frame)


def subscribe(*tickers: str) -> str:
    return json.dumps({"type": "subscribe", "filters": {"tickers": list(tickers)}})


async def test_a_hung_up_clients_queued_subscribes_never_overwrite_a_later_filter(
    make_hub: HubFactory,
) -> None:
    """Before: the frames of a client that hung up were still handled one by one,
    writing the database long after it left; one overwrote a later real filter."""
    hub = await make_hub(limits={"max_messages_per_client_per_sec": 10_000})
    user, key = await hub.user("alice")
    real = await hub.connect(key)
    await recv_json(real)
    ghost = await hub.connect(key)
    await recv_json(ghost)
    await burst(ghost, [subscribe("GHOST") for _ in range(400)])
    await ghost.close()
    await real.send(subscribe("REAL"))
    assert (await recv_type(real, "subscribed"))["filters"]["tickers"] == ["REAL"]
    writes: list[SignalFilter] = []
    service = hub.ctx.services.subscriptions
    original = service.set_stream_filter

    async def counting(user_id: int, flt: SignalFilter) -> SignalFilter:
        writes.append(flt)
        return await original(user_id, flt)

    service.set_stream_filter = counting  # type: ignore[method-assign]
    await asyncio.sleep(1.5)
    assert writes == [], f"{len(writes)} writes after the client hung up"
    assert (await service.stream(user.id)).filter.tickers == ("REAL",)


async def test_the_rate_limit_counts_frames_as_they_arrive(make_hub: HubFactory) -> None:
    """Before: frames were counted when handled, so slow handling let every frame in."""
    hub = await make_hub(limits={"max_messages_per_client_per_sec": 3})
    _user, key = await hub.user("alice")
    service = hub.ctx.services.subscriptions
    original = service.set_stream_filter

    async def slow(user_id: int, flt: SignalFilter) -> SignalFilter:
        await asyncio.sleep(0.6)
        return await original(user_id, flt)

    service.set_stream_filter = slow  # type: ignore[method-assign]
    ws = await hub.connect(key)
    await recv_json(ws)
    await burst(ws, [subscribe(f"T{i}") for i in range(8)])
    answers = [await recv_json(ws, 10) for _ in range(8)]
    assert [a["type"] for a in answers] == ["subscribed"] * 3 + ["error"] * 5
    assert all("rate limit" in a["message"] for a in answers[3:])


async def test_a_flood_is_never_queued_without_bound_it_is_closed_1008(
    make_hub: HubFactory,
) -> None:
    """Before: every frame of a flood was read and answered, one by one."""
    hub = await make_hub(limits={"max_messages_per_client_per_sec": 3})
    _user, key = await hub.user("alice")
    ws = await hub.connect(key)
    await recv_json(ws)
    await burst(ws, [subscribe("X") for _ in range(300)])
    code, seen = await drain(ws)
    assert code == 1008
    assert len(seen) < 100
    assert any("too many" in m.get("message", "") for m in seen), seen[-3:]
    for _ in range(100):
        if hub.server.manager.connection_count == 0:
            break
        await asyncio.sleep(0.02)
    assert hub.server.manager.connection_count == 0


async def test_resume_is_rate_limited(make_hub: HubFactory) -> None:
    """Before: a client could loop on resume, re-reading the log each time."""
    hub = await make_hub(limits={"ws_resumes_per_minute": 2})
    _user, key = await hub.user("alice")
    for i in range(5):
        await hub.publish(signal_id=f"s{i}")
    ws = await hub.connect(key)
    await recv_json(ws)
    for _ in range(2):
        await ws.send(json.dumps({"type": "resume", "after_seq": 0}))
        assert (await recv_type(ws, "resumed"))["replayed"] == 5
    await ws.send(json.dumps({"type": "resume", "after_seq": 0}))
    error = await recv_type(ws, "error")
    assert "resume" in error["message"] and "per minute" in error["message"]
    await hub.publish(signal_id="live")
    while (message := await recv_json(ws))["type"] != "signal" or (
        message["data"]["signal_id"] != "live"
    ):
        pass


async def test_resume_from_too_far_back_is_refused_and_the_stream_goes_on(
    make_hub: HubFactory,
) -> None:
    hub = await make_hub(limits={"ws_resume_max_signals": 20})
    _user, key = await hub.user("alice")
    for i in range(30):
        await hub.publish(signal_id=f"s{i}")
    ws = await hub.connect(key)
    await recv_json(ws)
    await ws.send(json.dumps({"type": "resume", "after_seq": 0}))
    error = await recv_type(ws, "error")
    assert "after_seq" in error["message"] and "/api/v1/signals" in error["message"]
    await ws.send(json.dumps({"type": "resume", "after_seq": 15}))
    assert (await recv_type(ws, "resumed"))["replayed"] == 15
    # At connect time too: an error, then live.
    late = await hub.connect(key, "after_seq=0")
    assert (await recv_json(late))["type"] == "welcome"
    assert "after_seq" in (await recv_type(late, "error"))["message"]
    await hub.publish(signal_id="live")
    assert (await recv_type(late, "signal"))["data"]["signal_id"] == "live"


async def test_resume_reads_bounded_pages(make_hub: HubFactory) -> None:
    hub = await make_hub()
    _user, key = await hub.user("alice")
    for i in range(1200):
        await hub.publish(signal_id=f"s{i}")
    reads: list[int] = []
    service = hub.ctx.services.signals
    original = service.query

    async def recording(**kw: Any) -> Any:
        page = await original(**kw)
        reads.append(len(page))
        return page

    service.query = recording  # type: ignore[method-assign]
    ws = await hub.connect(key, "after_seq=0")
    await recv_json(ws)
    resumed = await recv_type(ws, "resumed", within=20)
    assert resumed["replayed"] == 1200
    assert reads and max(reads) <= 500 and sum(reads) == 1200


async def test_pongs_are_small(hub: Hub) -> None:
    """Before: a 60 KB pong was parsed and accepted, never limited."""
    _user, key = await hub.user("alice")
    ws = await hub.connect(key)
    await recv_json(ws)
    await ws.send(json.dumps({"type": "pong", "pad": "x" * 1000}))
    assert "pong" in (await recv_type(ws, "error"))["message"]
    await ws.send(json.dumps({"type": "pong"}))
    await hub.publish(signal_id="still")
    assert (await recv_type(ws, "signal"))["data"]["signal_id"] == "still"


async def test_a_pong_flood_is_closed_1008(hub: Hub) -> None:
    _user, key = await hub.user("alice")
    ws = await hub.connect(key)
    await recv_json(ws)
    await burst(ws, [json.dumps({"type": "pong"}) for _ in range(200)])
    code, _seen = await drain(ws)
    assert code == 1008


@pytest.fixture
async def hub(make_hub: HubFactory) -> Hub:
    return await make_hub()
