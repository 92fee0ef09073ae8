"""Each WebSocket connection keeps its own filter (the design document keeps one
per client); the user's stored filter is only what a new connection (and REST)
starts with. ``POST /api/v1/config`` changes only the fields given and refuses
what it does not know."""

from __future__ import annotations

import asyncio
import json
import sys

from tests.api.conftest import Hub, HubFactory, auth, recv_json
from tests.api.test_example_client import EXAMPLE, read_until


async def _client(hub: Hub, key: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE),
        "--api-key",
        key,
        "--url",
        hub.ws_url,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_two_design_clients_of_one_user_keep_their_own_filters(
    make_hub: HubFactory,
) -> None:
    """The issue's case: a client filtering FDA/M&A under $20 got a WATCH NEWS signal
    because the same user's second client subscribed with no filter."""
    hub = await make_hub()
    _user, key = await hub.user("two-clients")
    narrow = await _client(
        hub, key, "--catalyst", "FDA", "--catalyst", "M&A", "--max-price", "20",
        "--max-signals", "1",
    )  # fmt: skip
    assert narrow.stderr is not None and narrow.stdout is not None
    seen: list[str] = []
    await read_until(narrow.stderr, "filters:", seen)
    # Subscribes with a filter that lets everything through (the example client, as
    # the design document's, sends no subscribe at all without a filter).
    wide = await _client(hub, key, "--min-confidence", "0", "--max-signals", "2")
    assert wide.stderr is not None and wide.stdout is not None
    try:
        await read_until(wide.stderr, "filters:", seen)
        await hub.publish(signal_id="news", signal_type="WATCH", catalyst_type="NEWS", price=5)
        await hub.publish(signal_id="fda", ticker="WXYZ", catalyst_type="FDA", price=10)
        narrow_lines: list[str] = []
        await read_until(narrow.stdout, "WXYZ", narrow_lines)
        wide_lines: list[str] = []
        await read_until(wide.stdout, "WXYZ", wide_lines)
        assert await asyncio.wait_for(narrow.wait(), 10) == 0
        assert await asyncio.wait_for(wide.wait(), 10) == 0
    finally:
        for proc in (narrow, wide):
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert len(narrow_lines) == 1 and "NEWS" not in narrow_lines[0]
    assert len(wide_lines) == 2 and "NEWS" in wide_lines[0]


async def test_subscribe_persists_unless_told_not_to(hub: Hub) -> None:
    _user, key = await hub.user("persist")
    first = await hub.connect(key)
    assert (await recv_json(first))["type"] == "welcome"
    await first.send(json.dumps({"type": "subscribe", "filters": {"tickers": ["AAPL"]}}))
    answer = await recv_json(first)
    assert answer == {"type": "subscribed", "filters": {"tickers": ["AAPL"]}, "persisted": True}
    stored = (await hub.http.get("/api/v1/config", headers=auth(key))).json()
    assert stored["filters"]["tickers"] == ["AAPL"]

    message = {"type": "subscribe", "filters": {"tickers": ["TSLA"]}, "persist": False}
    await first.send(json.dumps(message))
    assert (await recv_json(first))["persisted"] is False
    stored = (await hub.http.get("/api/v1/config", headers=auth(key))).json()
    assert stored["filters"]["tickers"] == ["AAPL"]  # the default did not change

    second = await hub.connect(key)  # starts with the stored default
    assert (await recv_json(second))["type"] == "welcome"
    await hub.publish(signal_id="a", ticker="AAPL")
    await hub.publish(signal_id="t", ticker="TSLA")
    assert (await recv_json(first))["data"]["signal_id"] == "t"
    assert (await recv_json(second))["data"]["signal_id"] == "a"

    await first.send(json.dumps({"type": "subscribe", "filters": {}, "persist": "no"}))
    assert "persist must be true or false" in (await recv_json(first))["message"]


async def test_config_updates_only_the_fields_given(hub: Hub) -> None:
    _user, key = await hub.user("config")
    url, headers = "/api/v1/config", auth(key)
    body = {"filters": {"min_confidence": 0.7, "catalyst_types": ["FDA", "M&A"]}}
    assert (await hub.http.post(url, json=body, headers=headers)).status_code == 200
    # Another field alone: the first ones stay.
    await hub.http.post(url, json={"filters": {"max_price": 20}}, headers=headers)
    filters = (await hub.http.get(url, headers=headers)).json()["filters"]
    assert filters["min_confidence"] == 0.7 and filters["catalyst_types"] == ["FDA", "M&A"]
    assert filters["max_price"] == 20
    # An explicit null clears one field; {} changes nothing.
    await hub.http.post(url, json={"filters": {"min_confidence": None}}, headers=headers)
    assert (await hub.http.post(url, json={}, headers=headers)).status_code == 200
    filters = (await hub.http.get(url, headers=headers)).json()["filters"]
    assert filters.get("min_confidence") is None and filters["max_price"] == 20


async def test_config_refuses_what_it_does_not_know_and_keeps_the_filter(hub: Hub) -> None:
    _user, key = await hub.user("config-bad")
    url, headers = "/api/v1/config", auth(key)
    await hub.http.post(url, json={"filters": {"tickers": ["AAPL"]}}, headers=headers)
    cases = [
        ({"min_confidence": 0.7, "catalyst_types": ["FDA"]}, 'go under \\"filters\\"'),
        ({"min_confidence": 7}, "filters"),
        ({"filters": {"min_confidence": 7}}, "min_confidence"),
        ({"filters": {"colour": "red"}}, "colour"),
        ({"filtres": {}}, "filtres"),
    ]
    for body, named in cases:
        response = await hub.http.post(url, json=body, headers=headers)
        assert response.status_code == 422, (body, response.text)
        assert named in response.text, (body, response.text)
    filters = (await hub.http.get(url, headers=headers)).json()["filters"]
    assert {k: v for k, v in filters.items() if v is not None} == {"tickers": ["AAPL"]}


async def test_config_post_leaves_open_connections_alone(hub: Hub) -> None:
    _user, key = await hub.user("config-open")
    ws = await hub.connect(key)
    assert (await recv_json(ws))["type"] == "welcome"
    await ws.send(json.dumps({"type": "subscribe", "filters": {"tickers": ["AAPL"]}}))
    await recv_json(ws)
    body = {"filters": {"tickers": ["TSLA"]}}
    await hub.http.post("/api/v1/config", json=body, headers=auth(key))
    await hub.publish(signal_id="t2", ticker="TSLA")
    await hub.publish(signal_id="a2", ticker="AAPL")
    assert (await recv_json(ws))["data"]["signal_id"] == "a2"
