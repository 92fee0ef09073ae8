"""Credentials end on open WebSockets too: a revoked key's or an expired JWT's
connection is closed with 4001 and nothing more is accepted on it."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import jwt
import pytest
from sqlalchemy import update
from sqlmodel import col
from websockets.exceptions import ConnectionClosed

from core.auth import JWT_ISSUER
from storage.models import ApiKey, utcnow
from tests.api.conftest import HubFactory, auth, make_hub, recv_json
from tests.conftest import TEST_JWT_SECRET

__all__ = ["make_hub"]


async def close_code_within(ws: Any, seconds: float) -> tuple[int, list[dict[str, Any]]]:
    """Read until the server closes (at most ``seconds``): its close code and what came."""
    seen: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + seconds
    with pytest.raises(ConnectionClosed) as info:
        while True:
            left = deadline - asyncio.get_running_loop().time()
            raw = await asyncio.wait_for(ws.recv(), max(left, 0.01))
            seen.append(json.loads(raw))
    assert info.value.rcvd is not None
    return int(info.value.rcvd.code), seen


async def test_revoked_key_closes_its_open_websockets_with_4001(make_hub: HubFactory) -> None:
    """Before: a revoked key's socket kept streaming forever."""
    hub = await make_hub(limits={"credential_check_seconds": 0.2})
    user, key = await hub.user("alice")
    _other, other_key = await hub.user("bob")
    ws = await hub.connect(key)
    token = (await hub.http.post("/api/v1/auth/token", headers=auth(key))).json()["access_token"]
    via_jwt = await hub.connect(token)
    bystander = await hub.connect(other_key)
    for sock in (ws, via_jwt, bystander):
        assert (await recv_json(sock))["type"] == "welcome"
    (info,) = await hub.ctx.auth.list_keys(user.id)
    # Revoked the way the CLI does it: straight in the database, another process.
    async with hub.ctx.db.transaction() as session:
        await session.execute(
            update(ApiKey).where(col(ApiKey.id) == info.id).values(revoked_at=utcnow())
        )
    started = time.monotonic()
    for sock in (ws, via_jwt):
        code, seen = await close_code_within(sock, 5.0)
        assert code == 4001
        assert any(m["type"] == "error" and "revoked" in m["message"] for m in seen), seen
    assert time.monotonic() - started < 3.0
    await hub.publish(signal_id="still-for-bob")
    while (message := await recv_json(bystander))["type"] != "signal":
        pass
    assert message["data"]["signal_id"] == "still-for-bob"


async def test_nothing_is_accepted_after_revocation_is_noticed(make_hub: HubFactory) -> None:
    """Before: subscribe and feedback kept working on a revoked key's socket."""
    hub = await make_hub(limits={"credential_check_seconds": 30, "credential_cache_seconds": 0.05})
    user, key = await hub.user("alice")
    await hub.publish(signal_id="s1")
    ws = await hub.connect(key)
    assert (await recv_json(ws))["type"] == "welcome"
    await ws.send(json.dumps({"type": "subscribe", "filters": {"tickers": ["AAA"]}}))
    assert (await recv_json(ws))["type"] == "subscribed"
    (info,) = await hub.ctx.auth.list_keys(user.id)
    await hub.ctx.auth.revoke_key(info.id)
    await asyncio.sleep(0.1)
    await ws.send(json.dumps({"type": "subscribe", "filters": {"tickers": ["ZZZ"]}}))
    await ws.send(json.dumps({"type": "feedback", "signal_id": "s1", "outcome": "win"}))
    code, seen = await close_code_within(ws, 5.0)
    assert code == 4001
    assert not [m for m in seen if m["type"] in ("subscribed", "feedback_recorded")], seen
    stream = await hub.ctx.services.subscriptions.stream(user.id)
    assert stream.filter.tickers == ("AAA",)
    stats = await hub.ctx.services.feedback.user_stats(user.id)
    assert stats.outcomes.wins == 0


def mint(user_id: int, key_id: int, exp: float, **extra: Any) -> str:
    payload = {
        "sub": str(user_id),
        "scopes": ["feedback", "read"],
        "iat": int(time.time()),
        "exp": exp,
        "iss": JWT_ISSUER,
        "kid": key_id,
        **extra,
    }
    return jwt.encode(payload, TEST_JWT_SECRET, algorithm="HS256")


async def test_expired_jwt_closes_its_websocket_at_exp(make_hub: HubFactory) -> None:
    """Before: a JWT's socket outlived its ``exp`` indefinitely."""
    hub = await make_hub()  # the default 10 s re-check: the expiry is scheduled exactly
    user, _key = await hub.user("alice")
    (info,) = await hub.ctx.auth.list_keys(user.id)
    exp = int(time.time()) + 2
    ws = await hub.connect(mint(user.id, info.id, exp))
    assert (await recv_json(ws))["type"] == "welcome"
    code, seen = await close_code_within(ws, 6.0)
    assert code == 4001
    assert time.time() < exp + 1.5
    assert any(m["type"] == "error" and "expired" in m["message"] for m in seen), seen
    # A JWT that expired already is refused at the door.
    late = await hub.connect(mint(user.id, info.id, time.time() - 1))
    code, _seen = await close_code_within(late, 5.0)
    assert code == 4001
