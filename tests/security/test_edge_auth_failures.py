"""Failed authentications are rate-limited per client address: after
``api.auth_failures_per_minute`` REST 401s or WebSocket 4001s, that address gets
429 with Retry-After (REST and WebSocket handshakes alike), other addresses and
``/health`` do not."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from api.edge import AuthFailures
from tests.api.conftest import auth, recv_json
from tests.security.edge_support import edge_hub

MAX = 5
# 127.0.0.1 is a trusted proxy here, so X-Forwarded-For stands for distinct clients.
SETTINGS = {"auth_failures_per_minute": MAX, "trusted_proxies": ["127.0.0.1"]}


def as_client(ip: str, **headers: str) -> dict[str, str]:
    return {"X-Forwarded-For": ip, **headers}


async def test_rest_401s_then_429_for_that_address_only(tmp_path: Path) -> None:
    async with edge_hub(tmp_path, api=SETTINGS) as hub:
        _user, key = await hub.user("alice")
        attacker = "203.0.113.5"
        for _ in range(MAX):
            r = await hub.http.get("/api/v1/signals", headers=as_client(attacker, **auth("bad")))
            assert r.status_code == 401
        blocked = await hub.http.get("/api/v1/signals", headers=as_client(attacker, **auth("bad")))
        assert blocked.status_code == 429
        assert 1 <= int(blocked.headers["Retry-After"]) <= 60
        assert "failed authentications" in blocked.json()["detail"]
        # Even a good key from that address waits (no more guesses from it) ...
        good_there = await hub.http.get("/api/v1/signals", headers=as_client(attacker, **auth(key)))
        assert good_there.status_code == 429
        # ... but its health checks pass, and other addresses are not affected.
        assert (await hub.http.get("/health", headers=as_client(attacker))).status_code == 200
        other = await hub.http.get(
            "/api/v1/signals", headers=as_client("198.51.100.7", **auth(key))
        )
        assert other.status_code == 200
        # A missing credential is a failed authentication too.
        for _ in range(MAX):
            r = await hub.http.get("/api/v1/signals", headers=as_client("198.51.100.8"))
            assert r.status_code == 401
        assert (
            await hub.http.get("/api/v1/signals", headers=as_client("198.51.100.8"))
        ).status_code == 429


async def test_websocket_4001s_count_and_a_blocked_handshake_gets_429(tmp_path: Path) -> None:
    async with edge_hub(tmp_path, api=SETTINGS) as hub:
        _user, key = await hub.user("alice")
        attacker = {"X-Forwarded-For": "203.0.113.9"}
        for _ in range(MAX):
            async with websockets.connect(
                f"{hub.ws_url}?token=catalyst_wrong", additional_headers=attacker, open_timeout=5
            ) as ws:
                assert (await recv_json(ws))["type"] == "error"
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 5)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(
                f"{hub.ws_url}?token={key}", additional_headers=attacker, open_timeout=5
            )
        assert refused.value.response.status_code == 429
        assert int(refused.value.response.headers["Retry-After"]) >= 1
        # The WebSocket failures count for REST too.
        r = await hub.http.get("/api/v1/signals", headers={**attacker, **auth(key)})
        assert r.status_code == 429


async def test_default_limit_is_twenty_a_minute_from_the_tcp_peer(tmp_path: Path) -> None:
    async with edge_hub(tmp_path) as hub:
        codes = [
            (await hub.http.get("/api/v1/signals", headers=auth("nope"))).status_code
            for _ in range(21)
        ]
        assert codes == [401] * 20 + [429]


def test_the_window_slides() -> None:
    now = [0.0]
    failures = AuthFailures(2, 60.0, clock=lambda: now[0])
    assert failures.retry_after("a") == 0.0
    failures.failed("a")
    now[0] = 10.0
    failures.failed("a")
    assert failures.retry_after("a") == pytest.approx(50.0)
    assert failures.retry_after("b") == 0.0
    now[0] = 60.0
    assert failures.retry_after("a") == 0.0  # the first failure aged out
    now[0] = 200.0
    assert failures.retry_after("a") == 0.0


def test_ipv6_clients_count_per_64() -> None:
    from api.edge import client_key

    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::9")
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert client_key(None) == "unknown"
