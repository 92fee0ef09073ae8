"""``GET /api/v1/signals`` below FastAPI's routing (api.fast_reads): the plain
request is answered without the route, byte for byte as the route answers it;
everything else (errors, ``since``, answers that need the database, 429s) goes
to the route and gets its usual answer; each request counts once against the
rate limit."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import Request

from api.deps import _ctx
from tests.api.conftest import Hub, HubFactory, auth
from tests.api.test_read_path import live_hub

__all__ = ["live_hub"]

PATH = "/api/v1/signals"
FAR_PAST = "2000-01-01T00:00:00Z"  # forces the route, same answer as without it


@pytest.fixture
async def hub_with_signals(live_hub: HubFactory) -> Hub:
    hub = await live_hub()
    for i in range(30):
        ticker = ("AAPL", "TSLA", "ABCD")[i % 3]
        await hub.publish(signal_id=f"f{i}", ticker=ticker, confidence=0.5 + (i % 5) / 10)
    return hub


def route_calls(hub: Hub) -> list[int]:
    """Counts the FastAPI route's runs (its context dependency)."""
    calls: list[int] = []
    app = hub.server.app

    async def counted(request: Request) -> Any:
        calls.append(1)
        return request.app.state.ctx

    app.dependency_overrides[_ctx] = counted
    return calls


@pytest.mark.parametrize(
    "params",
    [{}, {"limit": "5"}, {"ticker": "aapl"}, {"after_seq": "10", "limit": "7"}, {"limit": "100"}],
)
async def test_the_plain_read_skips_the_route_and_equals_its_answer(
    hub_with_signals: Hub, params: dict[str, str]
) -> None:
    hub = hub_with_signals
    _user, key = await hub.user("reader")
    await hub.http.post(
        "/api/v1/config", json={"filters": {"min_confidence": 0.6}}, headers=auth(key)
    )
    calls = route_calls(hub)
    fast = await hub.http.get(PATH, params=params, headers=auth(key))
    assert fast.status_code == 200 and calls == []
    routed = await hub.http.get(PATH, params={**params, "since": FAR_PAST}, headers=auth(key))
    assert routed.status_code == 200 and calls == [1]
    assert fast.content == routed.content
    assert fast.headers["content-type"] == routed.headers["content-type"]
    assert fast.headers.get("x-next-after-seq") == routed.headers.get("x-next-after-seq")
    assert all(s["confidence"] >= 0.6 for s in fast.json())  # the caller's own filter


@pytest.mark.parametrize(
    ("params", "headers", "status"),
    [
        ({}, {}, 401),
        ({}, {"Authorization": "Bearer catalyst_nope"}, 401),
        ({}, {"Authorization": "Basic abc"}, 401),
        ({"limit": "0"}, None, 400),
        ({"limit": "101"}, None, 400),
        ({"limit": "x"}, None, 422),
        ({"after_seq": "-1"}, None, 422),
        ({"ticker": "$$$"}, None, 400),
        ({"since": "not-a-time"}, None, 422),
    ],
)
async def test_everything_else_goes_to_the_route(
    hub_with_signals: Hub, params: dict[str, str], headers: dict[str, str] | None, status: int
) -> None:
    hub = hub_with_signals
    _user, key = await hub.user("edge")
    calls = route_calls(hub)
    answer = await hub.http.get(
        PATH, params=params, headers=auth(key) if headers is None else headers
    )
    assert answer.status_code == status, answer.text
    assert "detail" in answer.json()
    assert calls or status == 401  # a 401 may come from the route's auth dependency


async def test_a_key_without_read_is_403_from_the_route(hub_with_signals: Hub) -> None:
    _user, key = await hub_with_signals.user("producer", ("publish",))
    answer = await hub_with_signals.http.get(PATH, headers=auth(key))
    assert answer.status_code == 403 and "read" in answer.text


async def test_each_request_counts_once_against_the_rate_limit(live_hub: HubFactory) -> None:
    hub = await live_hub(limits={"rest_requests_per_minute": 5})
    await hub.publish(signal_id="one")
    _user, key = await hub.user("limited")
    statuses = [(await hub.http.get(PATH, headers=auth(key))).status_code for _ in range(7)]
    assert statuses == [200] * 5 + [429] * 2
    limited = await hub.http.get(PATH, headers=auth(key))
    assert "Retry-After" in limited.headers
