"""The REST read path: no write on any read, the authentication cache honours
revocation, and the bytes served from memory are the bytes FastAPI would build."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from pydantic import TypeAdapter
from sqlalchemy import event, update
from sqlmodel import col

from api.schemas import SignalOut
from core.auth import hash_key
from core.router import STREAM_PLATFORM
from storage.models import ApiKey, utcnow
from tests.api.conftest import Hub, HubFactory, auth, make_hub, recv_json

__all__ = ["make_hub"]

WRITES = ("INSERT", "UPDATE", "DELETE", "BEGIN IMMEDIATE")


@pytest.fixture
async def live_hub(make_hub: HubFactory) -> AsyncIterator[HubFactory]:
    """A hub whose tail and recent-signals window run, as under ``catalyst run``."""
    started: list[Hub] = []

    async def _make(**overrides: Any) -> Hub:
        hub = await make_hub(**overrides)
        await hub.ctx.tail.start()
        await hub.ctx.recent.start()
        started.append(hub)
        return hub

    yield _make
    for hub in started:
        await hub.ctx.recent.stop()
        await hub.ctx.tail.stop()
        await hub.ctx.auth.settle()


@contextmanager
def statements(hub: Hub) -> Iterator[list[str]]:
    """Every SQL statement the hub's engine runs inside the block."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()).upper())

    engine = hub.ctx.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def revoke_elsewhere(hub: Hub, key_id: int) -> None:
    """Revoked the way the CLI does it: straight in the database, another process."""
    async with hub.ctx.db.transaction() as session:
        await session.execute(
            update(ApiKey).where(col(ApiKey.id) == key_id).values(revoked_at=utcnow())
        )


@pytest.mark.parametrize(
    "overrides",
    [
        {},  # the defaults: authentication cached, the window answers
        {"auth": {"cache_seconds": 0}, "live": {"recent_signals": 0}},  # every read from the DB
    ],
    ids=["cached", "database"],
)
async def test_reads_never_write(live_hub: HubFactory, overrides: dict[str, Any]) -> None:
    """Before: every REST GET and WebSocket connect ran a write transaction (the stream
    subscription's get-or-create), and a key's last use was stamped in the request."""
    hub = await live_hub(**overrides)
    user, key = await hub.user("alice")
    for i in range(3):
        await hub.publish(signal_id=f"r{i}", ticker="ABCD")
    # The key's first use is stamped (in the background): let that one land first.
    assert (await hub.http.get("/api/v1/signals", headers=auth(key))).status_code == 200
    await hub.ctx.auth.settle()
    token = (await hub.http.post("/api/v1/auth/token", headers=auth(key))).json()["access_token"]
    await hub.ctx.auth.settle()
    with statements(hub) as seen:
        for credential in (key, token, key):
            headers = auth(credential)
            for path in (
                "/api/v1/signals",
                "/api/v1/signals?limit=2&ticker=abcd",
                "/api/v1/signals?after_seq=1",
                "/api/v1/signals?since=2020-01-01T00:00:00Z",
                "/api/v1/signals/r1",
                "/api/v1/signals/nope",
                "/api/v1/config",
                "/api/v1/stats",
            ):
                response = await hub.http.get(path, headers=headers)
                assert response.status_code in (200, 404), (path, response.text)
            ws = await hub.connect(credential)
            assert (await recv_json(ws))["type"] == "welcome"
            await ws.close()
        await asyncio.sleep(0.05)
        await hub.ctx.auth.settle()
    writes = [s for s in seen if s.startswith(WRITES)]
    assert writes == []
    # Reading did not create the stream subscription either; setting the filter does.
    assert await hub.ctx.services.subscriptions.get(STREAM_PLATFORM, str(user.id)) is None
    response = await hub.http.get("/api/v1/config", headers=auth(key))
    assert not any(response.json()["filters"].values()) and response.json()["active"] is True
    posted = await hub.http.post(
        "/api/v1/config", headers=auth(key), json={"filters": {"tickers": ["ZZZ"]}}
    )
    assert posted.status_code == 200
    assert await hub.ctx.services.subscriptions.get(STREAM_PLATFORM, str(user.id)) is not None
    # ... and the next read applies it at once (the cached filter was dropped).
    assert (await hub.http.get("/api/v1/signals", headers=auth(key))).json() == []
    config = (await hub.http.get("/api/v1/config", headers=auth(key))).json()
    assert config["filters"]["tickers"] == ["ZZZ"]


async def test_the_cached_credential_honours_revocation(live_hub: HubFactory) -> None:
    hub = await live_hub(auth={"cache_seconds": 30})
    assert hub.ctx.auth.cache_seconds == 30
    user, key = await hub.user("alice")
    (info,) = await hub.ctx.auth.list_keys(user.id)
    assert (await hub.http.get("/api/v1/signals", headers=auth(key))).status_code == 200
    # Remembered by the key's SHA-256, never by the key itself.
    assert hash_key(key) in hub.ctx.auth._cache
    assert all(key not in str(k) for k in hub.ctx.auth._cache)
    await revoke_elsewhere(hub, info.id)
    # Within the TTL the cache answers: the database is not asked.
    with statements(hub) as seen:
        assert (await hub.http.get("/api/v1/signals", headers=auth(key))).status_code == 200
    assert seen == []
    # Revoked in this process (the API, an admin), the cache forgets the key at once.
    await hub.ctx.auth.revoke_key(info.id)
    response = await hub.http.get("/api/v1/signals", headers=auth(key))
    assert response.status_code == 401


@pytest.mark.parametrize("credential", ["key", "jwt"])
async def test_a_key_revoked_elsewhere_gets_401_after_the_ttl(
    live_hub: HubFactory, credential: str
) -> None:
    hub = await live_hub(auth={"cache_seconds": 0.3})
    assert hub.ctx.auth.cache_seconds == 0.3
    user, key = await hub.user("alice")
    (info,) = await hub.ctx.auth.list_keys(user.id)
    if credential == "jwt":
        response = await hub.http.post("/api/v1/auth/token", headers=auth(key))
        key = response.json()["access_token"]
    assert (await hub.http.get("/api/v1/signals", headers=auth(key))).status_code == 200
    await revoke_elsewhere(hub, info.id)
    await asyncio.sleep(0.4)
    response = await hub.http.get("/api/v1/signals", headers=auth(key))
    assert response.status_code == 401


async def test_without_the_cache_revocation_is_immediate(live_hub: HubFactory) -> None:
    hub = await live_hub(auth={"cache_seconds": 0})
    user, key = await hub.user("alice")
    (info,) = await hub.ctx.auth.list_keys(user.id)
    assert (await hub.http.get("/api/v1/signals", headers=auth(key))).status_code == 200
    await revoke_elsewhere(hub, info.id)
    assert (await hub.http.get("/api/v1/signals", headers=auth(key))).status_code == 401
    assert hub.ctx.auth._cache == {}


async def test_the_window_serves_fastapi_s_own_bytes(live_hub: HubFactory) -> None:
    """The bodies built from each signal's cached JSON equal what ``response_model=
    list[SignalOut]`` made of ``to_public()`` (the path before), byte for byte."""
    hub = await live_hub()
    _user, key = await hub.user("alice")
    odd = {"big": 1e16, "small": 1e-7, "text": 'é \u2028 "q" </script>', "n": [1, 2.5, None]}
    for i in range(30):
        await hub.publish(
            signal_id=f"b{i}",
            ticker=("ABCD", "EFGH")[i % 2],
            price=[1e16, 0.1, 3.0][i % 3],
            metadata=odd if i % 4 == 0 else {},
            headline="Übernahme" if i % 5 == 0 else None,
        )
    adapter = TypeAdapter(list[SignalOut])
    for query in ({"limit": 7}, {"ticker": "EFGH"}, {"after_seq": 10, "limit": 5}):
        response = await hub.http.get("/api/v1/signals", headers=auth(key), params=query)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        expected = await hub.ctx.services.signals.query(
            limit=int(query.get("limit", 50)),
            ticker=query.get("ticker"),  # type: ignore[arg-type]
            after_seq=query.get("after_seq"),  # type: ignore[arg-type]
            ascending="after_seq" in query,
        )
        assert expected
        # What FastAPI did with the dicts: validate into SignalOut, then dump.
        before = adapter.dump_json(adapter.validate_python([s.to_public() for s in expected]))
        assert response.content == before
    one = await hub.http.get("/api/v1/signals/b0", headers=auth(key))
    stored = await hub.ctx.services.signals.get("b0")
    assert one.content == SignalOut.model_validate(stored.to_public()).model_dump_json().encode()
    assert json.loads(one.content)["metadata"] == odd
    paged = await hub.http.get("/api/v1/signals?after_seq=25", headers=auth(key))
    assert paged.headers["X-Next-After-Seq"] == "30"
