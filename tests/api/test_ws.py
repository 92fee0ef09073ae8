"""The WebSocket stream through a real uvicorn server and the `websockets` client."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from domain.signals import Signal
from tests.api.conftest import Hub, HubFactory, auth, recv_json, recv_type


async def closed_code(ws: Any, within: float = 5.0) -> int:
    """Read until the server closes; the close code it sent."""
    with pytest.raises(ConnectionClosed) as info:
        while True:
            await asyncio.wait_for(ws.recv(), within)
    assert info.value.rcvd is not None
    return int(info.value.rcvd.code)


async def signals_until(ws: Any, last_id: str, within: float = 5.0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        message = await recv_json(ws, within)
        if message["type"] == "signal":
            out.append(message["data"])
            if message["data"]["signal_id"] == last_id:
                return out


# ---- authentication -------------------------------------------------------


async def test_token_in_query_gets_welcome_then_signals(hub: Hub) -> None:
    _user, key = await hub.user("alice")
    ws = await hub.connect(key)
    welcome = await recv_json(ws)
    assert welcome["type"] == "welcome"
    assert welcome["client_id"] and welcome["timestamp"]
    stored = await hub.publish(signal_id="s1", catalyst_type="FDA")
    message = await recv_json(ws)
    assert message == {"type": "signal", "data": stored}


async def test_auth_message_and_jwt(hub: Hub) -> None:
    _user, key = await hub.user("alice")
    token = (await hub.http.post("/api/v1/auth/token", headers=auth(key))).json()["access_token"]
    ws = await hub.connect()
    await ws.send(json.dumps({"type": "auth", "token": token}))
    assert (await recv_json(ws))["type"] == "welcome"
    jwt_query = await hub.connect(token)
    assert (await recv_json(jwt_query))["type"] == "welcome"
    await ws.send(json.dumps({"type": "auth", "token": token}))
    assert (await recv_type(ws, "error"))["message"] == "already authenticated"


@pytest.mark.parametrize(
    "first",
    [
        None,  # a bad ?token=
        {"type": "auth", "token": "catalyst_wrong"},
        {"type": "auth", "token": "eyJhbGciOiJIUzI1NiJ9.e30.x"},
        {"type": "subscribe", "filters": {}},
        "not json",
    ],
)
async def test_failed_authentication_is_error_then_4001(hub: Hub, first: Any) -> None:
    if first is None:
        ws = await hub.connect("catalyst_wrong")
    else:
        ws = await hub.connect()
        await ws.send(first if isinstance(first, str) else json.dumps(first))
    error = await recv_json(ws)
    assert error["type"] == "error" and error["message"]
    assert "catalyst_wrong" not in error["message"]
    assert await closed_code(ws) == 4001


async def test_key_without_read_scope_is_refused(hub: Hub) -> None:
    _user, key = await hub.user("producer", ("publish",))
    ws = await hub.connect(key)
    assert (await recv_json(ws))["type"] == "error"
    assert await closed_code(ws) == 4001


# ---- filters and subscribe ------------------------------------------------------


async def test_without_subscribe_the_stored_filter_applies(hub: Hub) -> None:
    _user, key = await hub.user("alice")
    await hub.http.post(
        "/api/v1/config", json={"filters": {"tickers": ["ABCD"]}}, headers=auth(key)
    )
    ws = await hub.connect(key)
    await recv_json(ws)
    await hub.publish(signal_id="skip", ticker="WXYZ")
    await hub.publish(signal_id="keep", ticker="ABCD")
    assert [s["signal_id"] for s in await signals_until(ws, "keep")] == ["keep"]


async def test_empty_filter_gets_everything(hub: Hub) -> None:
    _user, key = await hub.user("alice")
    ws = await hub.connect(key)
    await recv_json(ws)
    for i in range(3):
        await hub.publish(signal_id=f"s{i}", ticker=["AAA", "BBB", "CCC"][i], confidence=0.1 * i)
    assert [s["signal_id"] for s in await signals_until(ws, "s2")] == ["s0", "s1", "s2"]


async def test_subscribe_applies_to_its_connection_and_persists(hub: Hub) -> None:
    """The connection's own filter changes; the user's other connections keep theirs
    (tests/api/test_per_connection_filters.py); new ones start with the stored one."""
    _user, key = await hub.user("alice")
    first = await hub.connect(key)
    second = await hub.connect(key)
    await recv_json(first)
    await recv_json(second)
    filters = {"min_confidence": 0.7, "catalyst_types": ["fda", "M&A"], "max_price": 20.0}
    await first.send(json.dumps({"type": "subscribe", "filters": filters}))
    answer = await recv_type(first, "subscribed")
    assert answer["filters"] == {
        "min_confidence": 0.7,
        "catalyst_types": ["FDA", "M&A"],
        "max_price": 20.0,
    }
    config = (await hub.http.get("/api/v1/config", headers=auth(key))).json()
    assert config["filters"]["catalyst_types"] == ["FDA", "M&A"]

    await hub.publish(signal_id="no-low", catalyst_type="FDA", confidence=0.5, price=5)
    await hub.publish(signal_id="no-cat", catalyst_type="EARNINGS", confidence=0.9, price=5)
    await hub.publish(signal_id="yes", catalyst_type="FDA", confidence=0.9, price=5)
    assert [s["signal_id"] for s in await signals_until(first, "yes")] == ["yes"]
    everything = ["no-low", "no-cat", "yes"]
    assert [s["signal_id"] for s in await signals_until(second, "yes")] == everything

    # A later connection starts with the stored filter.
    third = await hub.connect(key)
    await recv_json(third)
    await hub.publish(signal_id="no-again", catalyst_type="NEWS", confidence=0.9)
    await hub.publish(signal_id="yes-again", catalyst_type="M&A", confidence=0.9, price=1)
    assert [s["signal_id"] for s in await signals_until(third, "yes-again")] == ["yes-again"]


async def test_bad_subscribe_is_an_error_and_keeps_the_filter(hub: Hub) -> None:
    _user, key = await hub.user("alice")
    ws = await hub.connect(key)
    await recv_json(ws)
    await ws.send(json.dumps({"type": "subscribe", "filters": {"min_confidence": 7}}))
    error = await recv_type(ws, "error")
    assert "min_confidence" in error["message"]
    await ws.send(json.dumps({"type": "subscribe", "filters": ["AAPL"]}))
    assert "JSON object" in (await recv_type(ws, "error"))["message"]
    await hub.publish(signal_id="still")
    assert [s["signal_id"] for s in await signals_until(ws, "still")] == ["still"]


async def test_cross_user_filters_are_isolated(hub: Hub) -> None:
    _alice, alice_key = await hub.user("alice")
    _bob, bob_key = await hub.user("bob")
    alice = await hub.connect(alice_key)
    bob = await hub.connect(bob_key)
    await recv_json(alice)
    await recv_json(bob)
    await alice.send(json.dumps({"type": "subscribe", "filters": {"tickers": ["AAPL"]}}))
    await recv_type(alice, "subscribed")
    await hub.publish(signal_id="tsla", ticker="TSLA")
    await hub.publish(signal_id="aapl", ticker="AAPL")
    assert [s["signal_id"] for s in await signals_until(alice, "aapl")] == ["aapl"]
    assert [s["signal_id"] for s in await signals_until(bob, "aapl")] == ["tsla", "aapl"]
    bob_config = (await hub.http.get("/api/v1/config", headers=auth(bob_key))).json()
    assert bob_config["filters"]["tickers"] is None


async def test_rest_config_change_reaches_new_connections(hub: Hub) -> None:
    _user, key = await hub.user("alice")
    await hub.http.post(
        "/api/v1/config", json={"filters": {"signal_types": ["BUY"]}}, headers=auth(key)
    )
    ws = await hub.connect(key)
    await recv_json(ws)
    await hub.publish(signal_id="watch", signal_type="WATCH")
    await hub.publish(signal_id="buy", signal_type="BUY")
    assert [s["signal_id"] for s in await signals_until(ws, "buy")] == ["buy"]


# ---- feedback, pong, heartbeat ------------------------------------------------------


async def test_feedback_string_and_object_forms(hub: Hub) -> None:
    _user, key = await hub.user("alice")
    await hub.publish(signal_id="s1")
    await hub.publish(signal_id="s2")
    ws = await hub.connect(key)
    await recv_json(ws)
    await ws.send(json.dumps({"type": "feedback", "signal_id": "s1", "outcome": "win"}))
    first = await recv_type(ws, "feedback_recorded")
    assert first["signal_id"] == "s1" and first["outcome"] == "win"
    await ws.send(
        json.dumps(
            {
                "type": "feedback",
                "signal_id": "s2",
                "outcome": {"outcome": "loss", "return_pct": -3.5},
            }
        )
    )
    second = await recv_type(ws, "feedback_recorded")
    assert second["outcome"] == "loss" and second["return_pct"] == -3.5
    stats = (await hub.http.get("/api/v1/stats", headers=auth(key))).json()
    assert stats["wins"] == 1 and stats["losses"] == 1

    for bad in (
        {"type": "feedback", "signal_id": "s1", "outcome": "great"},
        {"type": "feedback", "signal_id": "nope", "outcome": "win"},
        {"type": "feedback", "outcome": "win"},
        {"type": "feedback", "signal_id": "s1", "outcome": 3},
        {"type": "feedback", "signal_id": "s1", "outcome": "win", "return_pct": [1]},
    ):
        await ws.send(json.dumps(bad))
        assert (await recv_type(ws, "error"))["message"]


async def test_feedback_needs_the_scope(hub: Hub) -> None:
    _user, key = await hub.user("reader", ("read",))
    await hub.publish(signal_id="s1")
    ws = await hub.connect(key)
    await recv_json(ws)
    await ws.send(json.dumps({"type": "feedback", "signal_id": "s1", "outcome": "win"}))
    assert "feedback" in (await recv_type(ws, "error"))["message"]


async def test_heartbeats_and_pong_keep_alive_silence_closes_4000(make_hub: HubFactory) -> None:
    hub = await make_hub(api={"heartbeat_seconds": 0.1, "heartbeat_timeout_seconds": 0.5})
    _user, key = await hub.user("alice")
    silent = await hub.connect(key)
    lively = await hub.connect(key)
    await recv_json(silent)
    await recv_json(lively)
    assert await recv_json(silent) == {"type": "heartbeat"}

    async def answer() -> None:
        while True:
            message = await recv_json(lively)
            if message["type"] == "heartbeat":
                await lively.send(json.dumps({"type": "pong"}))

    answering = asyncio.create_task(answer())
    try:
        assert await closed_code(silent) == 4000
        assert not answering.done()
        assert hub.server.manager.connection_count == 1
    finally:
        answering.cancel()


# ---- resume -------------------------------------------------------------------


async def test_resume_replays_missed_then_live_no_gap_no_duplicate(hub: Hub) -> None:
    _user, key = await hub.user("alice")
    await hub.http.post(
        "/api/v1/config", json={"filters": {"tickers": ["ABCD"]}}, headers=auth(key)
    )
    ws = await hub.connect(key)
    await recv_json(ws)
    for i in range(3):
        await hub.publish(signal_id=f"a{i}")
    seen = await signals_until(ws, "a2")
    last_seq = seen[-1]["seq"]
    await ws.close()

    # Missed while away: matching and non-matching signals.
    for i in range(10):
        await hub.publish(signal_id=f"b{i}", ticker="ABCD" if i % 3 else "WXYZ")

    async def publish_more() -> None:
        for i in range(30):
            await hub.publish(signal_id=f"c{i}", ticker="ABCD" if i % 4 else "WXYZ")
            await asyncio.sleep(0)

    again = await hub.connect(key)
    await recv_json(again)
    producer = asyncio.create_task(publish_more())
    await again.send(json.dumps({"type": "resume", "after_seq": last_seq}))
    received: list[dict[str, Any]] = []
    resumed: dict[str, Any] | None = None
    while not received or received[-1]["signal_id"] != "c29":
        message = await recv_json(again)
        if message["type"] == "signal":
            received.append(message["data"])
        elif message["type"] == "resumed":
            resumed = message
    await producer
    expected = [f"b{i}" for i in range(10) if i % 3] + [f"c{i}" for i in range(30) if i % 4]
    ids = [s["signal_id"] for s in received]
    assert len(ids) == len(set(ids)), "duplicate delivered"
    assert sorted(ids, key=expected.index) == expected, "gap or stranger"
    # Order: live signals that came before the resume started form an increasing
    # prefix; from the first replayed signal on, seqs strictly increase (the replay,
    # then the live ones buffered behind it, no reordering).
    seqs = [s["seq"] for s in received]
    start = next(i for i, sid in enumerate(ids) if sid.startswith("b"))
    assert all(sid.startswith("c") for sid in ids[:start])
    assert seqs[:start] == sorted(seqs[:start])
    assert seqs[start:] == sorted(seqs[start:]), "out of order after the replay began"
    assert resumed is not None and resumed["after_seq"] == last_seq
    assert resumed["replayed"] >= 6


async def test_resume_on_connect_is_in_order(hub: Hub) -> None:
    _user, key = await hub.user("alice")
    for i in range(5):
        await hub.publish(signal_id=f"a{i}")
    cursor = (await hub.http.get("/api/v1/signals?limit=1", headers=auth(key))).json()[0]["seq"]
    for i in range(300):
        await hub.publish(signal_id=f"b{i}")

    async def publish_more() -> None:
        for i in range(40):
            await hub.publish(signal_id=f"c{i}")
            await asyncio.sleep(0)

    producer = asyncio.create_task(publish_more())
    ws = await hub.connect(key, f"after_seq={cursor}")
    assert (await recv_json(ws))["type"] == "welcome"
    received = [s["signal_id"] for s in await signals_until(ws, "c39")]
    await producer
    assert received == [f"b{i}" for i in range(300)] + [f"c{i}" for i in range(40)]


async def test_resume_needs_a_cursor(hub: Hub) -> None:
    _user, key = await hub.user("alice")
    ws = await hub.connect(key)
    await recv_json(ws)
    for bad in (
        {"type": "resume"},
        {"type": "resume", "after_seq": -1},
        {"type": "resume", "after_seq": True},
        {"type": "resume", "after_seq": "\u00b2"},
        {"type": "resume", "after_seq": "9" * 5000},
        {"type": "resume", "after_seq": 2**70},
    ):
        await ws.send(json.dumps(bad))
        assert "after_seq" in (await recv_type(ws, "error"))["message"]
    # A bad cursor on the URL is ignored: the client simply goes live.
    other = await hub.connect(key, "after_seq=%C2%B2")
    assert (await recv_json(other))["type"] == "welcome"
    await hub.publish(signal_id="live")
    assert [s["signal_id"] for s in await signals_until(other, "live")] == ["live"]


# ---- bad input and limits --------------------------------------------------------


async def test_bad_frames_get_errors_and_nothing_breaks(make_hub: HubFactory) -> None:
    hub = await make_hub(api={"max_message_bytes": 1024})
    _user, key = await hub.user("alice")
    ws = await hub.connect(key)
    other = await hub.connect(key)
    await recv_json(ws)
    await recv_json(other)
    cases: list[tuple[str | bytes, str]] = [
        ("{not json", "malformed JSON"),
        ("[1, 2]", "JSON object"),
        (json.dumps({"type": "dance"}), "unknown message type"),
        (json.dumps({"no": "type"}), "unknown message type"),
        (json.dumps({"type": "pong", "pad": "x" * 5000}), "too large"),
        (b"\x00\x01", "binary"),
    ]
    for frame, words in cases:
        await ws.send(frame)
        error = await recv_type(ws, "error")
        assert words in error["message"], (frame, error)
    await hub.publish(signal_id="after")
    for client in (ws, other):
        assert [s["signal_id"] for s in await signals_until(client, "after")] == ["after"]
    assert (await hub.http.get("/health")).status_code == 200


async def test_message_rate_limit_errors_and_stays_connected(make_hub: HubFactory) -> None:
    hub = await make_hub(limits={"max_messages_per_client_per_sec": 3})
    _user, key = await hub.user("alice")
    ws = await hub.connect(key)
    await recv_json(ws)
    # Pongs are liveness only and never limited, so answering heartbeats is always safe.
    for _ in range(10):
        await ws.send(json.dumps({"type": "pong"}))
    subscribe = json.dumps({"type": "subscribe", "filters": {}})
    for _ in range(6):
        await ws.send(subscribe)
    answers = [await recv_json(ws) for _ in range(6)]
    assert [a["type"] for a in answers[:3]] == ["subscribed"] * 3
    assert all(a["type"] == "error" and "rate limit" in a["message"] for a in answers[3:])
    await hub.publish(signal_id="still-here")
    assert [s["signal_id"] for s in await signals_until(ws, "still-here")] == ["still-here"]


async def test_connection_limit_per_ip_closes_4029(make_hub: HubFactory) -> None:
    hub = await make_hub(limits={"max_connections_per_ip": 2})
    _user, key = await hub.user("alice")
    first = await hub.connect(key)
    second = await hub.connect(key)
    await recv_json(first)
    await recv_json(second)
    third = await hub.connect(key)
    error = await recv_json(third)
    assert error["type"] == "error" and "too many connections" in error["message"]
    assert await closed_code(third) == 4029
    # Unauthenticated sockets count too, and a closed one frees its slot.
    await second.close()
    for _ in range(50):
        if hub.server.manager.connection_count == 1:
            break
        await asyncio.sleep(0.02)
    fourth = await hub.connect(key)
    assert (await recv_json(fourth))["type"] == "welcome"


async def test_shutdown_closes_clients_with_1001(hub: Hub) -> None:
    _user, key = await hub.user("alice")
    ws = await hub.connect(key)
    await recv_json(ws)
    await hub.server.stop()
    assert await closed_code(ws) == 1001


# ---- fan-out ------------------------------------------------------------------------


def _big_signal(seq: int) -> Signal:
    return Signal(
        signal_id=f"big-{seq}",
        ticker="ABCD",
        confidence=0.9,
        headline="H" * 450,
        metadata={"blob": "x" * 3800},
    ).with_seq(seq)


async def _stuck_client(hub: Hub, key: str) -> Any:
    """A client that stops reading: tiny receive buffer, one-message library queue."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", hub.server.port))
    return await websockets.connect(
        f"{hub.ws_url}?token={key}", sock=sock, max_queue=1, close_timeout=0.1
    )


async def test_slow_client_is_dropped_and_never_delays_others(make_hub: HubFactory) -> None:
    hub = await make_hub(api={"client_queue_size": 64})
    manager = hub.server.manager
    _user, key = await hub.user("alice")
    fast = await hub.connect(key)
    await recv_json(fast)
    slow = await _stuck_client(hub, key)
    try:
        await recv_json(slow)
        assert manager.connection_count == 2
        received: list[int] = []
        progress = asyncio.Event()

        async def read_fast() -> None:
            while True:
                message = await recv_json(fast)
                if message["type"] == "signal":
                    received.append(message["data"]["seq"])
                    progress.set()

        async def caught_up(lag: int) -> None:
            while seq - len(received) > lag:
                progress.clear()
                await asyncio.wait_for(progress.wait(), 5)

        reader = asyncio.create_task(read_fast())
        seq = 0
        # Publish until the stuck client's socket buffers and queue overflow, pacing
        # only on the fast client (it shares this process's event loop).
        while manager.connection_count == 2 and seq < 20_000:
            seq += 1
            hub.ctx.bus.publish(_big_signal(seq))
            await caught_up(32)
        assert manager.connection_count == 1, "the stuck client was never dropped"
        for _ in range(20):
            seq += 1
            hub.ctx.bus.publish(_big_signal(seq))
        await caught_up(0)
        reader.cancel()
        assert received == list(range(1, seq + 1))
        metrics = (await hub.http.get("/metrics")).text
        assert 'catalyst_websocket_messages_sent_total{type="dropped_client"} 1.0' in metrics
    finally:
        slow.transport.abort()


async def test_one_user_many_connections_all_receive(hub: Hub) -> None:
    _user, key = await hub.user("alice")
    sockets = [await hub.connect(key) for _ in range(5)]
    for ws in sockets:
        await recv_json(ws)
    await hub.publish(signal_id="all")
    for ws in sockets:
        assert [s["signal_id"] for s in await signals_until(ws, "all")] == ["all"]
    assert (await hub.http.get("/health")).json()["connected_clients"] == 5


async def test_tokens_in_the_query_never_reach_the_logs(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    from api import ApiServer, create_app

    _user, key = await hub.user("alice")
    server = ApiServer(create_app(hub.ctx), "127.0.0.1", 0, log_level="info", access_log=True)
    await server.start()
    try:
        with caplog.at_level(logging.DEBUG):
            async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws?token={key}") as ws:
                assert (await recv_json(ws))["type"] == "welcome"
            async with websockets.connect(
                f"ws://127.0.0.1:{server.port}/ws?token=catalyst_bad"
            ) as ws:
                assert (await recv_json(ws))["type"] == "error"
    finally:
        await server.stop()
    server_side = [r for r in caplog.records if r.name.startswith(("uvicorn", "api", "core"))]
    text = "\n".join(r.getMessage() for r in server_side)
    assert "/ws?token=***" in text
    assert key not in text and "catalyst_bad" not in text


async def test_long_replay_through_a_small_queue_keeps_heartbeats(make_hub: HubFactory) -> None:
    hub = await make_hub(
        api={"client_queue_size": 8, "heartbeat_seconds": 0.02, "heartbeat_timeout_seconds": 30}
    )
    _user, key = await hub.user("alice")
    for i in range(200):
        await hub.publish(signal_id=f"r{i}")
    ws = await hub.connect(key, "after_seq=0")
    assert (await recv_json(ws))["type"] == "welcome"
    received = [s["signal_id"] for s in await signals_until(ws, "r199")]
    assert received == [f"r{i}" for i in range(200)]
    assert hub.server.manager.connection_count == 1


async def test_fan_out_without_the_frame_shortcut(hub: Hub) -> None:
    """Under a server without api.fastsend (plain uvicorn) everything goes through ASGI."""
    from api import ApiServer, create_app

    _user, key = await hub.user("alice")
    fast = await hub.connect(key)
    await recv_json(fast)
    fast_client = next(iter(hub.server.manager._clients.values()))
    assert fast_client._write_frame is not None

    server = ApiServer(create_app(hub.ctx), "127.0.0.1", 0, fast_fanout=False)
    await server.start()
    try:
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws?token={key}") as ws:
            await recv_json(ws)
            plain_client = next(iter(server.manager._clients.values()))
            assert plain_client._write_frame is None
            for i in range(20):
                await hub.publish(signal_id=f"p{i}")
            expected = [f"p{i}" for i in range(20)]
            assert [s["signal_id"] for s in await signals_until(ws, "p19")] == expected
            assert [s["signal_id"] for s in await signals_until(fast, "p19")] == expected
    finally:
        await server.stop()


async def test_a_client_dropped_mid_broadcast_never_costs_the_others_a_signal(
    make_hub: HubFactory,
) -> None:
    """The stuck client is registered *before* the fast one, so the broadcast that
    drops it still has clients to go: they get that signal too."""
    hub = await make_hub(api={"client_queue_size": 64})
    manager = hub.server.manager
    user, key = await hub.user("alice")
    slow = await _stuck_client(hub, key)
    try:
        await recv_json(slow)
        fast = await hub.connect(key)
        await recv_json(fast)
        assert [c.user_id for c in manager.clients()] == [user.id, user.id]  # stuck one first
        received: list[int] = []
        seq = 0
        while manager.connection_count == 2 and seq < 20_000:
            seq += 1
            hub.ctx.bus.publish(_big_signal(seq))
            while len(received) < seq - 32:
                message = await recv_json(fast)
                if message["type"] == "signal":
                    received.append(message["data"]["seq"])
        assert manager.connection_count == 1, "the stuck client was never dropped"
        seq += 1
        hub.ctx.bus.publish(_big_signal(seq))
        while len(received) < seq:
            message = await recv_json(fast)
            if message["type"] == "signal":
                received.append(message["data"]["seq"])
        assert received == list(range(1, seq + 1))
    finally:
        slow.transport.abort()
