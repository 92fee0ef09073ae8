"""``signals_received`` counts the API stream too: a user who only uses the
WebSocket or REST sees what reached them, once per signal however many
connections or reads brought it."""

from __future__ import annotations

import json

from tests.api.conftest import Hub, auth, recv_json


async def _received(hub: Hub, key: str) -> int:
    stats = (await hub.http.get("/api/v1/stats", headers=auth(key))).json()
    return int(stats["signals_received"])


async def test_websocket_signals_count_once_per_signal(hub: Hub) -> None:
    _user, key = await hub.user("ws-only")
    first, second = await hub.connect(key), await hub.connect(key)
    for ws in (first, second):
        assert (await recv_json(ws))["type"] == "welcome"
    for i in range(3):
        await hub.publish(signal_id=f"w{i}")
    for ws in (first, second):
        for _ in range(3):
            assert (await recv_json(ws))["type"] == "signal"
    assert await _received(hub, key) == 3  # not 6: two connections, three signals
    await hub.ctx.receipts.flush()  # stored: the count survives this process
    assert hub.ctx.receipts.pending(_user.id) == 0
    assert await _received(hub, key) == 3
    stats = await hub.ctx.services.feedback.user_stats(_user.id)
    assert stats.signals_received == 3


async def test_rest_reads_count_new_signals_once(hub: Hub) -> None:
    for i in range(5):
        await hub.publish(signal_id=f"r{i}")
    _user, key = await hub.user("rest-only")
    assert await _received(hub, key) == 0
    assert len((await hub.http.get("/api/v1/signals", headers=auth(key))).json()) == 5
    assert await _received(hub, key) == 5
    await hub.http.get("/api/v1/signals", headers=auth(key))  # the same five again
    assert await _received(hub, key) == 5
    await hub.publish(signal_id="r5")
    await hub.http.get("/api/v1/signals", params={"limit": 2}, headers=auth(key))
    assert await _received(hub, key) == 6


async def test_a_resume_replay_counts_and_live_after_it_does_not_double(hub: Hub) -> None:
    for i in range(4):
        await hub.publish(signal_id=f"p{i}")
    _user, key = await hub.user("replayer")
    ws = await hub.connect(key)
    assert (await recv_json(ws))["type"] == "welcome"
    await ws.send(json.dumps({"type": "resume", "after_seq": 0}))
    kinds = [(await recv_json(ws))["type"] for _ in range(5)]
    assert kinds == ["signal"] * 4 + ["resumed"]
    await hub.http.get("/api/v1/signals", headers=auth(key))  # already received
    assert await _received(hub, key) == 4
