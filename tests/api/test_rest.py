"""REST endpoints through a real uvicorn server."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from api import ApiServer, create_app
from tests.api.conftest import Hub, HubFactory, auth


async def test_health_reports_clients_and_database(hub: Hub) -> None:
    _user, key = await hub.user("alice")
    ws = await hub.connect(key)
    await ws.recv()
    response = await hub.http.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["database"] == "ok"
    assert body["connected_clients"] == 1
    assert body["timestamp"].endswith("Z") or "+00:00" in body["timestamp"]


async def test_health_degraded_when_database_is_gone(hub: Hub) -> None:
    await hub.ctx.db.dispose()
    try:
        response = await hub.http.get("/health")
        assert response.status_code == 503
        assert response.json()["database"] == "unavailable"
    finally:
        hub.ctx.db.connect()


async def test_metrics_are_prometheus_text(hub: Hub) -> None:
    _user, key = await hub.user("alice")
    ws = await hub.connect(key)
    await ws.recv()
    await hub.publish(signal_id="m1")
    await ws.recv()
    response = await hub.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "catalyst_signals_published_total" in text
    assert "catalyst_websocket_connections 1.0" in text
    assert 'catalyst_websocket_messages_sent_total{type="signal"} 1.0' in text
    assert "catalyst_deliveries_total" in text or "catalyst_delivery_latency_seconds" in text


async def test_openapi_documents_every_endpoint(hub: Hub) -> None:
    schema = (await hub.http.get("/openapi.json")).json()
    paths = schema["paths"]
    for path in (
        "/health",
        "/metrics",
        "/api/v1/signals",
        "/api/v1/signals/{signal_id}",
        "/api/v1/config",
        "/api/v1/feedback",
        "/api/v1/stats",
        "/api/v1/auth/token",
        "/api/v1/link",
        "/api/v1/admin/stats/catalysts",
    ):
        assert path in paths, path
    post = paths["/api/v1/signals"]["post"]
    assert "requestBody" in post and "201" in post["responses"]
    assert (await hub.http.get("/docs")).status_code == 200


async def test_signals_newest_first_with_limit_since_ticker_and_cursor(hub: Hub) -> None:
    _user, key = await hub.user("alice")
    published = [
        await hub.publish(signal_id=f"s{i}", ticker="ABCD" if i % 2 else "WXYZ") for i in range(6)
    ]
    response = await hub.http.get("/api/v1/signals", headers=auth(key))
    assert response.status_code == 200
    assert [s["signal_id"] for s in response.json()] == [f"s{i}" for i in range(5, -1, -1)]

    response = await hub.http.get("/api/v1/signals?limit=2", headers=auth(key))
    assert [s["signal_id"] for s in response.json()] == ["s5", "s4"]

    response = await hub.http.get("/api/v1/signals?ticker=abcd", headers=auth(key))
    assert [s["signal_id"] for s in response.json()] == ["s5", "s3", "s1"]

    cursor = published[3]["seq"]
    response = await hub.http.get(f"/api/v1/signals?after_seq={cursor}", headers=auth(key))
    assert [s["signal_id"] for s in response.json()] == ["s4", "s5"]  # ascending from the cursor
    assert response.headers["X-Next-After-Seq"] == str(published[5]["seq"])

    since = published[4]["timestamp"]
    response = await hub.http.get("/api/v1/signals", params={"since": since}, headers=auth(key))
    assert [s["signal_id"] for s in response.json()] == ["s5"]

    response = await hub.http.get(
        "/api/v1/signals", params={"since": "2000-01-01T00:00:00"}, headers=auth(key)
    )
    assert len(response.json()) == 6


async def test_signals_limit_above_100_is_400_with_message(hub: Hub) -> None:
    _user, key = await hub.user("alice")
    response = await hub.http.get("/api/v1/signals?limit=101", headers=auth(key))
    assert response.status_code == 400
    assert response.json() == {"detail": "limit cannot exceed 100"}
    response = await hub.http.get("/api/v1/signals?limit=0", headers=auth(key))
    assert response.status_code == 400
    response = await hub.http.get("/api/v1/signals?since=yesterday", headers=auth(key))
    assert response.status_code == 422
    assert "since" in response.json()["detail"]
    response = await hub.http.get("/api/v1/signals?ticker=$$$", headers=auth(key))
    assert response.status_code == 400


async def test_signals_apply_the_users_own_filter(hub: Hub) -> None:
    _alice, alice_key = await hub.user("alice")
    _bob, bob_key = await hub.user("bob")
    await hub.publish(signal_id="low", confidence=0.3)
    await hub.publish(signal_id="high", confidence=0.9)
    response = await hub.http.post(
        "/api/v1/config", json={"filters": {"min_confidence": 0.5}}, headers=auth(alice_key)
    )
    assert response.status_code == 200
    alice = await hub.http.get("/api/v1/signals", headers=auth(alice_key))
    bob = await hub.http.get("/api/v1/signals", headers=auth(bob_key))
    assert [s["signal_id"] for s in alice.json()] == ["high"]
    assert [s["signal_id"] for s in bob.json()] == ["high", "low"]


async def test_get_signal_by_id_and_unknown_is_404(hub: Hub) -> None:
    _user, key = await hub.user("alice")
    stored = await hub.publish(signal_id="fda-abcd-1", catalyst_type="FDA")
    response = await hub.http.get("/api/v1/signals/fda-abcd-1", headers=auth(key))
    assert response.status_code == 200
    assert response.json() == stored
    response = await hub.http.get("/api/v1/signals/nope", headers=auth(key))
    assert response.status_code == 404
    assert "nope" in response.json()["detail"]
    response = await hub.http.get("/api/v1/signals/%20bad%20id", headers=auth(key))
    assert response.status_code == 404


async def test_ingest_needs_publish_scope_and_is_idempotent(hub: Hub) -> None:
    _reader, reader_key = await hub.user("reader")
    _producer, producer_key = await hub.user("producer", ("publish",))
    body = {
        "signal_id": "ing-1",
        "ticker": "abcd",
        "signal_type": "buy",
        "confidence": 0.85,
        "catalyst_type": "FDA",
        "source": "SEC_8K",
        "price": 12.5,
        "rvol": 2.3,
        "sector": "Healthcare",
        "metadata": {"form": "8-K"},
    }
    response = await hub.http.post("/api/v1/signals", json=body, headers=auth(reader_key))
    assert response.status_code == 403
    assert "publish" in response.json()["detail"]

    first = await hub.http.post("/api/v1/signals", json=body, headers=auth(producer_key))
    assert first.status_code == 201
    # A publish-only key gets a receipt, never stored content.
    receipt = first.json()
    assert set(receipt) == {"signal_id", "seq", "created"} and receipt["created"]
    stored = (await hub.http.get("/api/v1/signals/ing-1", headers=auth(reader_key))).json()
    assert stored["ticker"] == "ABCD" and stored["signal_type"] == "BUY"
    assert isinstance(stored["seq"], int) and stored["seq"] == receipt["seq"]

    again = await hub.http.post("/api/v1/signals", json=body, headers=auth(producer_key))
    assert again.status_code == 200
    assert again.json() == {**receipt, "created": False}
    listed = await hub.http.get("/api/v1/signals", headers=auth(reader_key))
    assert [s["signal_id"] for s in listed.json()] == ["ing-1"]


async def test_ingest_rejects_bad_signals_with_the_reason(hub: Hub) -> None:
    _producer, key = await hub.user("producer", ("read", "publish"))
    cases = [
        ({"ticker": "ABCD", "confidence": 1.5}, "confidence"),
        ({"ticker": "not a ticker!", "confidence": 0.5}, "ticker"),
        ({"ticker": "ABCD"}, "confidence"),
        ({"ticker": "ABCD", "confidence": 0.5, "seq": 9}, "seq"),
        ({"ticker": "ABCD", "confidence": 0.5, "timestamp": "2026-01-01T00:00:00"}, "timezone"),
        ({"ticker": "ABCD", "confidence": 0.5, "url": "ftp://x"}, "url"),
    ]
    for body, word in cases:
        response = await hub.http.post("/api/v1/signals", json=body, headers=auth(key))
        assert response.status_code == 422, body
        detail = response.json()["detail"]
        assert word in detail, (body, detail)
        assert "Traceback" not in detail
    for ts in ("9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+01:00"):
        body = {"ticker": "ABCD", "confidence": 0.5, "timestamp": ts}
        response = await hub.http.post("/api/v1/signals", json=body, headers=auth(key))
        assert response.status_code == 422 and "timestamp" in response.json()["detail"]
        response = await hub.http.get("/api/v1/signals", params={"since": ts}, headers=auth(key))
        assert response.status_code == 400
    response = await hub.http.post(
        "/api/v1/signals",
        content=b"{not json",
        headers={**auth(key), "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert "JSON" in response.json()["detail"]


async def test_config_get_and_post(hub: Hub) -> None:
    user, key = await hub.user("alice")
    response = await hub.http.get("/api/v1/config", headers=auth(key))
    assert response.status_code == 200
    assert response.json() == {"user_id": user.id, "filters": {**_EMPTY}, "active": True}

    filters = {"min_confidence": 0.7, "catalyst_types": ["FDA", "m&a"], "max_price": 20}
    response = await hub.http.post("/api/v1/config", json={"filters": filters}, headers=auth(key))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "updated" and body["user_id"] == user.id
    assert body["config"]["filters"]["catalyst_types"] == ["FDA", "M&A"]

    response = await hub.http.get("/api/v1/config", headers=auth(key))
    assert response.json()["filters"]["min_confidence"] == 0.7

    bad = await hub.http.post(
        "/api/v1/config",
        json={"filters": {"min_price": 5, "max_price": 1}},
        headers=auth(key),
    )
    assert bad.status_code == 422
    assert "min_price" in bad.json()["detail"]
    unknown = await hub.http.post(
        "/api/v1/config", json={"filters": {"colour": "red"}}, headers=auth(key)
    )
    assert unknown.status_code == 422


_EMPTY = {
    "min_confidence": None,
    "tickers": None,
    "exclude_tickers": None,
    "catalyst_types": None,
    "signal_types": None,
    "sectors": None,
    "min_rvol": None,
    "min_price": None,
    "max_price": None,
}


async def test_feedback_and_stats(hub: Hub) -> None:
    user, key = await hub.user("alice")
    await hub.publish(signal_id="s1", catalyst_type="FDA")
    await hub.publish(signal_id="s2", catalyst_type="FDA")
    response = await hub.http.post(
        "/api/v1/feedback",
        json={"signal_id": "s1", "outcome": "win", "return_pct": 12.5},
        headers=auth(key),
    )
    assert response.status_code == 200
    assert response.json() == {
        "status": "received",
        "signal_id": "s1",
        "outcome": "win",
        "return_pct": 12.5,
        "updated": False,
    }
    # The design document's object form of the outcome.
    response = await hub.http.post(
        "/api/v1/feedback",
        json={"signal_id": "s2", "outcome": {"outcome": "loss", "return_pct": "-4%"}},
        headers=auth(key),
    )
    assert response.status_code == 200
    assert response.json()["return_pct"] == -4.0

    stats = (await hub.http.get("/api/v1/stats", headers=auth(key))).json()
    assert stats["user_id"] == user.id
    assert stats["trades_executed"] == 2
    assert stats["wins"] == 1 and stats["losses"] == 1
    assert stats["win_rate"] == 0.5
    assert stats["avg_return"] == 4.25
    assert "signals_received" in stats

    bad = await hub.http.post(
        "/api/v1/feedback", json={"signal_id": "s1", "outcome": "maybe"}, headers=auth(key)
    )
    assert bad.status_code == 422 and "outcome" in bad.json()["detail"]
    missing = await hub.http.post(
        "/api/v1/feedback", json={"signal_id": "zzz", "outcome": "win"}, headers=auth(key)
    )
    assert missing.status_code == 404


async def test_feedback_needs_feedback_scope(hub: Hub) -> None:
    _user, key = await hub.user("readonly", ("read",))
    await hub.publish(signal_id="s1")
    response = await hub.http.post(
        "/api/v1/feedback", json={"signal_id": "s1", "outcome": "win"}, headers=auth(key)
    )
    assert response.status_code == 403


async def test_cross_user_isolation(hub: Hub) -> None:
    alice, alice_key = await hub.user("alice")
    bob, bob_key = await hub.user("bob")
    await hub.publish(signal_id="s1")
    await hub.http.post(
        "/api/v1/config", json={"filters": {"tickers": ["AAPL"]}}, headers=auth(alice_key)
    )
    await hub.http.post(
        "/api/v1/feedback", json={"signal_id": "s1", "outcome": "win"}, headers=auth(alice_key)
    )
    bob_config = (await hub.http.get("/api/v1/config", headers=auth(bob_key))).json()
    assert bob_config["user_id"] == bob.id
    assert bob_config["filters"]["tickers"] is None
    bob_stats = (await hub.http.get("/api/v1/stats", headers=auth(bob_key))).json()
    assert bob_stats["user_id"] == bob.id and bob_stats["trades_executed"] == 0
    alice_stats = (await hub.http.get("/api/v1/stats", headers=auth(alice_key))).json()
    assert alice_stats["user_id"] == alice.id and alice_stats["wins"] == 1
    # Bob's feedback on the same signal is his own row; Alice's stays a win.
    await hub.http.post(
        "/api/v1/feedback", json={"signal_id": "s1", "outcome": "loss"}, headers=auth(bob_key)
    )
    alice_stats = (await hub.http.get("/api/v1/stats", headers=auth(alice_key))).json()
    assert alice_stats["wins"] == 1 and alice_stats["losses"] == 0
    # A user id in the body is not a field (422): nobody writes someone else's config.
    sneaky = await hub.http.post(
        "/api/v1/config",
        json={"user_id": alice.id, "filters": {"tickers": []}},
        headers=auth(bob_key),
    )
    assert sneaky.status_code == 422 and "user_id" in sneaky.text
    alice_config = (await hub.http.get("/api/v1/config", headers=auth(alice_key))).json()
    assert alice_config["filters"]["tickers"] == ["AAPL"]


async def test_auth_failures(hub: Hub) -> None:
    user, key = await hub.user("alice")
    missing = await hub.http.get("/api/v1/signals")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = await hub.http.get("/api/v1/signals", headers=auth("catalyst_" + "x" * 43))
    assert wrong.status_code == 401
    garbage = await hub.http.get("/api/v1/signals", headers=auth("not-a-jwt"))
    assert garbage.status_code == 401
    basic = await hub.http.get("/api/v1/signals", headers={"Authorization": "Basic YWxpY2U6eA=="})
    assert basic.status_code == 401
    for response in (missing, wrong, garbage, basic):
        assert "catalyst_" not in response.text and "Traceback" not in response.text

    keys = await hub.ctx.auth.list_keys(user.id)
    await hub.ctx.auth.revoke_key(keys[0].id)
    revoked = await hub.http.get("/api/v1/signals", headers=auth(key))
    assert revoked.status_code == 401


async def test_token_exchange_and_jwt_use(hub: Hub) -> None:
    user, key = await hub.user("alice")
    response = await hub.http.post("/api/v1/auth/token", headers=auth(key))
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] > 0
    token = body["access_token"]
    assert token.count(".") == 2

    via_body = await hub.http.post("/api/v1/auth/token", json={"api_key": key})
    assert via_body.status_code == 200

    config = await hub.http.get("/api/v1/config", headers=auth(token))
    assert config.status_code == 200 and config.json()["user_id"] == user.id

    # A token cannot mint tokens, and a bad key gets nothing.
    assert (await hub.http.post("/api/v1/auth/token", headers=auth(token))).status_code == 400
    bad = await hub.http.post("/api/v1/auth/token", json={"api_key": "catalyst_nope"})
    assert bad.status_code == 401
    assert (await hub.http.post("/api/v1/auth/token")).status_code == 401

    # Revoking the key kills its tokens.
    keys = await hub.ctx.auth.list_keys(user.id)
    await hub.ctx.auth.revoke_key(keys[0].id)
    assert (await hub.http.get("/api/v1/config", headers=auth(token))).status_code == 401


async def test_link_code_from_chat(hub: Hub) -> None:
    api_user, key = await hub.user("alice")
    chat_user = await hub.ctx.services.accounts.resolve("telegram", 42)
    code = await hub.ctx.services.accounts.issue_link_code(chat_user.id, "telegram")
    response = await hub.http.post("/api/v1/link", json={"code": code}, headers=auth(key))
    assert response.status_code == 200
    assert response.json()["status"] == "linked"
    assert response.json()["user_id"] == min(api_user.id, chat_user.id)
    again = await hub.http.post("/api/v1/link", json={"code": code}, headers=auth(key))
    assert again.status_code == 404


async def test_admin_endpoints_need_admin(hub: Hub) -> None:
    _user, key = await hub.user("alice")
    _admin, admin_key = await hub.user("root", ("read", "admin"), is_admin=True)
    await hub.publish(signal_id="s1", catalyst_type="FDA", confidence=0.85)
    await hub.http.post(
        "/api/v1/feedback", json={"signal_id": "s1", "outcome": "win"}, headers=auth(key)
    )
    forbidden = await hub.http.get("/api/v1/admin/stats/catalysts", headers=auth(key))
    assert forbidden.status_code == 403
    by_catalyst = await hub.http.get("/api/v1/admin/stats/catalysts", headers=auth(admin_key))
    assert by_catalyst.status_code == 200
    assert by_catalyst.json() == [
        {
            "key": "FDA",
            "stats": {
                "trades_executed": 1,
                "wins": 1,
                "losses": 0,
                "breakeven": 0,
                "skipped": 0,
                "win_rate": 1.0,
                "avg_return": None,
            },
        }
    ]
    by_conf = await hub.http.get("/api/v1/admin/stats/confidence", headers=auth(admin_key))
    assert [g["key"] for g in by_conf.json()] == ["0.8-0.9"]


async def test_rest_rate_limit_per_key_answers_429_with_retry_after(make_hub: HubFactory) -> None:
    hub = await make_hub(limits={"rest_requests_per_minute": 3})
    _alice, alice_key = await hub.user("alice")
    _bob, bob_key = await hub.user("bob")
    for _ in range(3):
        assert (await hub.http.get("/api/v1/config", headers=auth(alice_key))).status_code == 200
    limited = await hub.http.get("/api/v1/config", headers=auth(alice_key))
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert "rate limit" in limited.json()["detail"]
    # Another key has its own budget; unauthenticated health is not limited.
    assert (await hub.http.get("/api/v1/config", headers=auth(bob_key))).status_code == 200
    assert (await hub.http.get("/health")).status_code == 200


async def test_cors_origins_from_settings(make_hub: HubFactory) -> None:
    hub = await make_hub(api={"cors_origins": ["https://app.example"]})
    preflight = await hub.http.options(
        "/api/v1/signals",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "Authorization",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    other = await hub.http.options(
        "/api/v1/signals",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in other.headers


async def test_unexpected_errors_hide_details_and_extra_routers_mount(hub: Hub) -> None:
    router = APIRouter()

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret=hunter2 database exploded")

    @router.get("/extra")
    async def extra() -> dict[str, str]:
        return {"ok": "yes"}

    server = ApiServer(create_app(hub.ctx, extra_routers=[router]), "127.0.0.1", 0)
    await server.start()
    try:
        import httpx

        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/extra")).json() == {"ok": "yes"}
            response = await http.get("/boom")
            assert response.status_code == 500
            assert response.json() == {"detail": "internal server error; it has been logged"}
            assert "hunter2" not in response.text
    finally:
        await server.stop()


async def test_server_port_zero_and_restartable_stop(hub: Hub) -> None:
    assert hub.server.port > 0
    assert (await hub.http.get("/health")).status_code == 200
    await hub.server.stop()
    await hub.server.stop()  # idempotent
    await asyncio.sleep(0)


async def test_oversized_body_is_413(hub: Hub) -> None:
    _user, key = await hub.user("producer", ("publish",))
    body = b'{"ticker":"ABCD","confidence":0.5,"headline":"' + b"x" * (2 << 20) + b'"}'
    response = await hub.http.post(
        "/api/v1/signals", content=body, headers={**auth(key), "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert "too large" in response.json()["detail"]


async def test_hooks_run_around_the_lifespan(hub: Hub) -> None:
    calls: list[str] = []

    async def started() -> None:
        calls.append("start")

    async def stopped() -> None:
        calls.append("stop")

    server = ApiServer(
        create_app(hub.ctx, on_startup=[started], on_shutdown=[stopped]), "127.0.0.1", 0
    )
    await server.start()
    assert calls == ["start"]
    await server.stop()
    assert calls == ["start", "stop"]


async def test_after_seq_pages_through_everything_exactly_once(hub: Hub) -> None:
    _user, key = await hub.user("pager")
    for i in range(1000):
        await hub.ctx.publisher.publish(
            {"signal_id": f"p{i:04d}", "ticker": "PAGE", "confidence": 0.5}
        )
    seen: list[int] = []
    cursor = 0
    while True:
        response = await hub.http.get(
            f"/api/v1/signals?after_seq={cursor}&limit=100", headers=auth(key)
        )
        assert response.status_code == 200
        page = [s["seq"] for s in response.json()]
        if not page:
            assert response.headers["X-Next-After-Seq"] == str(cursor)
            break
        assert page == sorted(page) and page[0] > cursor
        seen.extend(page)
        cursor = int(response.headers["X-Next-After-Seq"])
    assert len(seen) == len(set(seen)) == 1000
