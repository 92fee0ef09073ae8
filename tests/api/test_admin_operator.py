"""The operator's view and actions: a signal's delivery trace, channel health, dead
letters and their retry, over real HTTP, on SQLite and (when configured) PostgreSQL.

Delivery rows are made the way production makes them: a Dispatcher runs rounds
through a RecordingChannel that fails for some destinations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from core.channels import Alert, DestinationGone, PermanentError, RetryLater
from core.dispatcher import Dispatcher
from core.settings import DispatcherSettings
from storage.models import AdminAction, Delivery
from tests.api.conftest import Hub, HubFactory, auth
from tests.conftest import PG_URL, _backends, reset_postgres
from tests.fakes import RecordingChannel, signal

ENDPOINTS = (
    ("GET", "/api/v1/admin/signals/s1/deliveries", None),
    ("GET", "/api/v1/admin/channels", None),
    ("GET", "/api/v1/admin/deliveries/dead", None),
    ("POST", "/api/v1/admin/deliveries/retry", {"delivery_ids": [1]}),
)


@pytest.fixture(params=_backends())
async def op_hub(request: pytest.FixtureRequest, make_hub: HubFactory) -> Hub:
    if request.param == "postgresql":
        await reset_postgres(PG_URL)
        return await make_hub(database={"url": PG_URL})
    return await make_hub()


async def _sub(hub: Hub, platform: str, dest: str) -> int:
    user = await hub.ctx.services.accounts.resolve(platform, dest)
    info, _ = await hub.ctx.services.subscriptions.subscribe(platform, dest, user.id)
    return info.id


async def _admin(hub: Hub) -> dict[str, str]:
    _user, key = await hub.user("ops", ("admin",), is_admin=True)
    return auth(key)


def _telegram(failing: set[str], limited: set[str] | None = None) -> RecordingChannel:
    """A telegram channel refusing ``failing`` destinations for good, and answering
    429 (retry after 30 s, its chat blocked) to ``limited`` ones."""

    def behaviour(alert: Alert) -> None:
        if alert.destination in failing:
            raise PermanentError("Bad Request: chat not found")
        if limited and alert.destination in limited:
            raise RetryLater(30.0, scope=f"chat:{alert.destination}")

    return RecordingChannel("telegram", behaviour=behaviour)


async def _rows(hub: Hub) -> dict[int, Delivery]:
    async with hub.ctx.db.session() as session:
        rows = await session.execute(select(Delivery))
        return {r.id: r for r in rows.scalars().all() if r.id is not None}


async def _age(hub: Hub, delivery_id: int, seconds: float) -> None:
    async with hub.ctx.db.transaction() as session:
        await session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id)  # type: ignore[arg-type]
            .values(created_at=datetime.now(UTC) - timedelta(seconds=seconds))
        )


async def test_every_endpoint_needs_an_admin_key(hub: Hub) -> None:
    _reader, read_key = await hub.user("reader", ("read", "feedback"))
    _boss, boss_key = await hub.user("boss", ("read",), is_admin=True)  # admin user, no scope
    for method, path, body in ENDPOINTS:
        anonymous = await hub.http.request(method, path, json=body)
        assert anonymous.status_code == 401, path
        for key in (read_key, boss_key):
            refused = await hub.http.request(method, path, json=body, headers=auth(key))
            assert refused.status_code == 403, path
            assert refused.json() == {"detail": "this key lacks the 'admin' scope"}


async def test_trace_shows_every_delivery_and_why_it_ended(op_hub: Hub) -> None:
    hub, ctx = op_hub, op_hub.ctx
    headers = await _admin(hub)
    ok = await _sub(hub, "telegram", "100")
    bad = await _sub(hub, "telegram", "200")
    late = await _sub(hub, "discord", "300")
    gone = await _sub(hub, "console", "stdout")
    channel = _telegram(failing={"200"})
    ctx.dispatcher.register(channel)
    await ctx.publisher.publish(signal("fda-abcd", ticker="ABCD"))
    await ctx.dispatcher.run_once("telegram")  # 100 sent, 200 dead
    # Discord was down for longer than the TTL: its alert expires instead of going late.
    later = datetime.now(UTC) + timedelta(seconds=120)
    discord = Dispatcher(ctx.db, DispatcherSettings(ttl_seconds=60), clock=lambda: later)
    discord.register(RecordingChannel("discord"))
    await discord.run_once("discord")
    # The producer retracts it: the console alert (never sent) is canceled, and the
    # delivered Telegram message gets an edit row.
    await ctx.publisher.publish({"signal_id": "fda-abcd", "status": "retracted"})

    response = await hub.http.get("/api/v1/admin/signals/fda-abcd/deliveries", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["signal"]["signal_id"] == "fda-abcd"
    assert body["signal"]["ticker"] == "ABCD" and body["signal"]["status"] == "retracted"
    by_sub = {(d["subscription_id"], d["kind"]): d for d in body["deliveries"]}
    assert set(by_sub) == {
        (ok, "alert"),
        (bad, "alert"),
        (late, "alert"),
        (gone, "alert"),
        (ok, "edit"),
    }
    sent = by_sub[ok, "alert"]
    assert sent["status"] == "sent" and sent["attempts"] == 1 and sent["sent_at"]
    assert sent["platform"] == "telegram" and sent["destination"] == "100"
    assert sent["user"] == "telegram:100"
    assert sent["ended_at"] is None and sent["reason"] is None
    dead = by_sub[bad, "alert"]
    assert dead["status"] == "dead" and dead["reason"] == "Bad Request: chat not found"
    assert dead["ended_at"] and dead["sent_at"] is None
    expired = by_sub[late, "alert"]
    assert expired["status"] == "expired" and expired["attempts"] == 0
    assert expired["reason"] == "expired: older than TTL"
    assert expired["ended_at"].startswith(later.strftime("%Y-%m-%dT%H:%M:%S"))
    canceled = by_sub[gone, "alert"]
    assert canceled["status"] == "canceled" and canceled["reason"] == "signal retracted"
    assert canceled["ended_at"]
    edit = by_sub[ok, "edit"]
    assert edit["status"] == "pending" and edit["revision"] == 1 and edit["reason"] is None
    assert body["summary"] == {
        "pending": 1,
        "held": 0,
        "sent": 1,
        "failed": 0,
        "expired": 1,
        "dead": 1,
        "canceled": 1,
    }
    assert [d["id"] for d in body["deliveries"]] == sorted(d["id"] for d in body["deliveries"])


async def test_trace_of_an_unknown_signal_is_404(hub: Hub) -> None:
    headers = await _admin(hub)
    missing = await hub.http.get("/api/v1/admin/signals/nope/deliveries", headers=headers)
    assert missing.status_code == 404
    assert missing.json() == {"detail": "no signal with id 'nope'"}
    odd = await hub.http.get("/api/v1/admin/signals/a%20b/deliveries", headers=headers)
    assert odd.status_code == 404 and "signal ids are" in odd.json()["detail"]


async def test_channels_count_what_the_outbox_did(op_hub: Hub) -> None:
    hub, ctx = op_hub, op_hub.ctx
    headers = await _admin(hub)
    for dest in ("100", "200", "300"):
        await _sub(hub, "telegram", dest)
    await _sub(hub, "discord", "900")
    streamer, _key = await hub.user("streamer")
    await ctx.services.subscriptions.stream(streamer.id)  # an API stream row: not an outbox one
    ctx.dispatcher.register(_telegram(failing={"200"}, limited={"300"}))
    await ctx.publisher.publish(signal("c1"))
    await ctx.publisher.publish(signal("c2"))
    await ctx.dispatcher.run_once("telegram")
    # An old row (two hours): in the day's counts, not the hour's.
    rows = await _rows(hub)
    oldest = min(rows)
    await _age(hub, oldest, 7200)

    response = await hub.http.get("/api/v1/admin/channels", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    names = [c["channel"] for c in body["channels"]]
    assert names == ["telegram", "discord", "websocket"]
    telegram, discord, websocket = body["channels"]
    assert telegram["registered"] is True and telegram["active_subscriptions"] == 3
    # 100: c1, c2 sent; 200: c1, c2 dead; 300: c1 limited (back to pending, not an
    # attempt) and c2 waiting behind it; the oldest row (100's c1, sent) is 2 h old.
    day = {"pending": 2, "held": 0, "sent": 2, "failed": 0, "expired": 0, "dead": 2, "canceled": 0}
    assert telegram["last_day"] == day
    assert telegram["last_hour"] == {**day, "sent": 1}
    assert telegram["rate_limited"] == 1
    (blocked,) = telegram["blocked_scopes"]
    assert blocked["scope"] == "chat:300" and 0 < blocked["seconds_left"] <= 30
    assert telegram["latency"]["samples"] == 1  # the aged row left the hour
    assert telegram["latency"]["p50_seconds"] >= 0
    assert telegram["latency"]["p95_seconds"] >= telegram["latency"]["p50_seconds"]
    assert discord["registered"] is False and discord["active_subscriptions"] == 1
    assert discord["last_hour"]["pending"] == 2 and discord["blocked_scopes"] == []
    assert discord["latency"] == {"p50_seconds": None, "p95_seconds": None, "samples": 0}

    _user, key = await hub.user("watcher", ("read",))
    ws = await hub.connect(key)
    await ws.recv()  # welcome
    after = (await hub.http.get("/api/v1/admin/channels", headers=headers)).json()
    websocket = after["channels"][-1]
    assert websocket["channel"] == "websocket"
    assert websocket["connections"] == 1 and websocket["stream_users"] == 1
    assert websocket["active_subscriptions"] == 1  # the streamer's


async def test_dead_letters_list_newest_first(op_hub: Hub) -> None:
    hub, ctx = op_hub, op_hub.ctx
    headers = await _admin(hub)
    await _sub(hub, "telegram", "200")
    await _sub(hub, "discord", "900")
    ctx.dispatcher.register(_telegram(failing={"200"}))
    ctx.dispatcher.register(
        RecordingChannel("discord", behaviour=_raise(PermanentError("Missing Access")))
    )
    await ctx.publisher.publish(signal("d1", ticker="ABCD"))
    await ctx.publisher.publish(signal("d2", ticker="WXYZ"))
    await ctx.dispatcher.run_once("telegram")
    await ctx.dispatcher.run_once("discord")

    everything = await hub.http.get("/api/v1/admin/deliveries/dead", headers=headers)
    assert everything.status_code == 200
    rows = everything.json()
    assert len(rows) == 4 and [r["id"] for r in rows] == sorted(
        (r["id"] for r in rows), reverse=True
    )
    tg = await hub.http.get(
        "/api/v1/admin/deliveries/dead",
        params={"channel": "telegram", "limit": 1},
        headers=headers,
    )
    (newest,) = tg.json()
    assert newest["signal_id"] == "d2" and newest["ticker"] == "WXYZ"
    assert newest["platform"] == "telegram" and newest["destination"] == "200"
    assert newest["attempts"] == 1 and newest["last_error"] == "Bad Request: chat not found"
    assert newest["kind"] == "alert" and newest["ended_at"]
    none = await hub.http.get(
        "/api/v1/admin/deliveries/dead", params={"channel": "console"}, headers=headers
    )
    assert none.json() == []
    bad = await hub.http.get("/api/v1/admin/deliveries/dead", params={"limit": 0}, headers=headers)
    assert bad.status_code == 422 and "limit" in bad.json()["detail"]


def _raise(exc: Exception) -> Any:
    def behaviour(_alert: Alert) -> None:
        raise exc

    return behaviour


async def test_a_retried_dead_delivery_goes_out_next_round(op_hub: Hub) -> None:
    hub, ctx = op_hub, op_hub.ctx
    headers = await _admin(hub)
    await _sub(hub, "telegram", "100")
    await _sub(hub, "telegram", "200")
    failing = {"200"}
    channel = _telegram(failing)
    ctx.dispatcher.register(channel)
    await ctx.publisher.publish(signal("r1"))
    await ctx.dispatcher.run_once("telegram")
    rows = await _rows(hub)
    dead_id = next(i for i, r in rows.items() if r.status == "dead")
    sent_id = next(i for i, r in rows.items() if r.status == "sent")
    failing.clear()  # the operator fixed the chat

    response = await hub.http.post(
        "/api/v1/admin/deliveries/retry",
        json={"delivery_ids": [dead_id, sent_id, 999_999]},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "retried": 1,
        "retried_ids": [dead_id],
        "skipped": [
            {"id": sent_id, "reason": "status is sent; only dead deliveries can be retried"},
            {"id": 999_999, "reason": "no such delivery"},
        ],
    }
    row = (await _rows(hub))[dead_id]
    assert row.status == "pending" and row.attempts == 0 and row.claimed_until is None
    assert row.last_error == "retried by ops" and row.ended_at is None

    assert await ctx.dispatcher.run_once("telegram") == 1
    assert channel.sent_to("200") == ["r1"]
    row = (await _rows(hub))[dead_id]
    assert row.status == "sent" and row.attempts == 1 and row.last_error is None

    async with ctx.db.session() as session:
        (action,) = (await session.execute(select(AdminAction))).scalars().all()
    assert action.actor == "ops" and action.action == "retry_dead"
    assert action.detail["retried"] == [dead_id]
    assert action.detail["request"] == {"delivery_ids": [dead_id, sent_id, 999_999]}
    assert {s["id"] for s in action.detail["skipped"]} == {sent_id, 999_999}

    again = await hub.http.post(
        "/api/v1/admin/deliveries/retry", json={"delivery_ids": [dead_id]}, headers=headers
    )
    assert again.json()["retried"] == 0  # sent now: nothing to retry twice


async def test_retry_all_of_a_channel_refuses_what_is_past_the_ttl(op_hub: Hub) -> None:
    hub, ctx = op_hub, op_hub.ctx
    headers = await _admin(hub)
    await _sub(hub, "telegram", "200")
    await _sub(hub, "discord", "900")
    failing = {"200"}
    ctx.dispatcher.register(_telegram(failing))
    await ctx.publisher.publish(signal("t1"))
    await ctx.publisher.publish(signal("t2"))
    await ctx.dispatcher.run_once("telegram")
    dead = sorted(i for i, r in (await _rows(hub)).items() if r.status == "dead")
    assert len(dead) == 2
    ttl = ctx.settings.dispatcher.ttl_seconds
    await _age(hub, dead[0], ttl + 60)  # news gone stale: it would only expire again

    response = await hub.http.post(
        "/api/v1/admin/deliveries/retry",
        json={"channel": "telegram", "all": True},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["retried"] == 1 and body["retried_ids"] == [dead[1]]
    (skipped,) = body["skipped"]
    assert skipped["id"] == dead[0]
    assert skipped["reason"].startswith(f"older than the TTL ({ttl:g}s)")
    rows = await _rows(hub)
    assert rows[dead[0]].status == "dead" and rows[dead[1]].status == "pending"
    assert all(r.status == "pending" for r in rows.values() if r.platform == "discord")


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({}, 'give "delivery_ids": [...] or "channel": "...", "all": true'),
        ({"delivery_ids": [1], "channel": "telegram", "all": True}, "not both"),
        ({"channel": "telegram"}, '"channel" needs "all": true'),
        ({"channel": "telegram", "all": False}, '"channel" needs "all": true'),
        ({"all": True}, '"all" needs "channel"'),
        ({"delivery_ids": []}, "delivery_ids: List should have at least 1 item"),
        ({"delivery_ids": list(range(1, 1002))}, "delivery_ids: List should have at most 1000"),
        ({"delivery_ids": ["x"]}, "delivery_ids.0: Input should be a valid integer"),
        ({"delivery_ids": [0]}, "delivery_ids.0: Input should be greater than or equal to 1"),
        ({"ids": [1]}, "ids: is not a known field"),
        ([1, 2], "Input should be a valid dictionary"),
    ],
)
async def test_bad_retry_bodies_are_422_naming_the_problem(
    hub: Hub, body: Any, detail: str
) -> None:
    headers = await _admin(hub)
    response = await hub.http.post("/api/v1/admin/deliveries/retry", json=body, headers=headers)
    assert response.status_code == 422, response.text
    assert detail in response.json()["detail"]


async def test_retry_skips_what_would_only_die_again(op_hub: Hub) -> None:
    hub, ctx = op_hub, op_hub.ctx
    headers = await _admin(hub)
    blocked = await _sub(hub, "telegram", "100")
    await _sub(hub, "telegram", "200")

    def behaviour(alert: Alert) -> None:
        if alert.destination == "100":
            raise DestinationGone("bot was blocked by the user")
        raise PermanentError("Bad Request: chat not found")

    ctx.dispatcher.register(RecordingChannel("telegram", behaviour=behaviour))
    await ctx.publisher.publish(signal("g1"))
    await ctx.dispatcher.run_once("telegram")
    await ctx.publisher.publish({"signal_id": "g1", "status": "retracted"})
    rows = await _rows(hub)
    assert {r.status for r in rows.values()} == {"dead"}
    gone = next(i for i, r in rows.items() if r.subscription_id == blocked)
    other = next(i for i in rows if i != gone)

    response = await hub.http.post(
        "/api/v1/admin/deliveries/retry", json={"delivery_ids": [gone, other]}, headers=headers
    )
    assert response.json() == {
        "retried": 0,
        "retried_ids": [],
        "skipped": [
            {"id": gone, "reason": "subscription inactive: bot was blocked by the user"},
            {"id": other, "reason": "signal retracted"},
        ],
    }


async def test_channels_show_the_senders_report_in_any_process(op_hub: Hub) -> None:
    """The web role answering is not the sender: the sender stores its 429s and
    blocked scopes (Dispatcher.report_health) and any process shows them."""
    hub, ctx = op_hub, op_hub.ctx
    headers = await _admin(hub)
    await _sub(hub, "telegram", "300")
    sender = Dispatcher(ctx.db, DispatcherSettings())
    sender.register(_telegram(failing=set(), limited={"300"}))
    await ctx.publisher.publish(signal("h1"))
    await sender.run_once("telegram")  # a 429 on chat:300
    await sender.start_platform("telegram")
    try:
        await sender.report_health()
    finally:
        await sender.stop()
    body = (await hub.http.get("/api/v1/admin/channels", headers=headers)).json()
    telegram = body["channels"][0]
    assert telegram["channel"] == "telegram" and telegram["sending_here"] is False
    assert telegram["rate_limited"] == 1 and telegram["rate_limited_day"] == 1
    (blocked,) = telegram["blocked_scopes"]
    assert blocked["scope"] == "chat:300" and 0 < blocked["seconds_left"] <= 30
    assert telegram["reported_by"] and ":" in telegram["reported_by"]
    assert 0 <= telegram["report_age_seconds"] < 60
