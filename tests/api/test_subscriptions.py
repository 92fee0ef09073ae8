"""``/api/v1/subscriptions``: a user's chat subscriptions and their delivery settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from storage.models import Delivery, DeliveryStatus
from tests.api.conftest import Hub, auth


async def test_list_and_set_delivery_settings_of_your_own_subscriptions(hub: Hub) -> None:
    alice, key = await hub.user("alice")
    bob, bob_key = await hub.user("bob")
    subs = hub.ctx.services.subscriptions
    mine, _ = await subs.subscribe("telegram", "100", alice.id)
    theirs, _ = await subs.subscribe("telegram", "200", bob.id)
    await subs.stream(alice.id)  # the API stream itself is not listed

    listed = await hub.http.get("/api/v1/subscriptions", headers=auth(key))
    assert listed.status_code == 200, listed.text
    assert [(s["id"], s["platform"], s["destination"]) for s in listed.json()] == [
        (mine.id, "telegram", "100")
    ]
    assert listed.json()[0]["delivery"] == {"quiet": None, "digest": None, "max": None}

    body = {"quiet": "22:00-07:00 America/New_York", "digest": "15m", "max": "10/h"}
    response = await hub.http.put(
        f"/api/v1/subscriptions/{mine.id}/delivery", json=body, headers=auth(key)
    )
    assert response.status_code == 200, response.text
    assert response.json() == body
    prefs = await hub.ctx.services.delivery.get("telegram", "100")
    assert prefs.lines() == ["quiet 22:00-07:00 America/New_York", "digest 15m", "max 10/h"]
    listed = await hub.http.get("/api/v1/subscriptions", headers=auth(key))
    assert listed.json()[0]["delivery"] == body

    # Someone else's subscription is not found, and nothing changes.
    response = await hub.http.put(
        f"/api/v1/subscriptions/{theirs.id}/delivery", json={"digest": "1h"}, headers=auth(key)
    )
    assert response.status_code == 404, response.text
    assert (await hub.ctx.services.delivery.get("telegram", "200")).empty
    assert (await hub.http.get("/api/v1/subscriptions", headers=auth(bob_key))).json()[0][
        "delivery"
    ] == {"quiet": None, "digest": None, "max": None}


async def test_clearing_the_settings_releases_held_alerts(hub: Hub) -> None:
    alice, key = await hub.user("alice")
    mine, _ = await hub.ctx.services.subscriptions.subscribe("telegram", "100", alice.id)
    await hub.ctx.services.delivery.apply("telegram", "100", "digest 24h")
    await hub.publish(signal_id="s1")
    async with hub.ctx.db.transaction() as session:
        from sqlalchemy import update

        await session.execute(
            update(Delivery).values(
                status=DeliveryStatus.HELD.value,
                held_reason="digest",
                next_attempt_at=datetime.now(UTC) + timedelta(hours=20),
            )
        )
    response = await hub.http.put(
        f"/api/v1/subscriptions/{mine.id}/delivery", json={}, headers=auth(key)
    )
    assert response.status_code == 200 and response.json() == {
        "quiet": None,
        "digest": None,
        "max": None,
    }
    async with hub.ctx.db.session() as session:
        [row] = (await session.execute(select(Delivery))).scalars().all()
    assert row.status == DeliveryStatus.HELD.value
    assert row.next_attempt_at <= datetime.now(UTC)  # due now: planned again at once


async def test_bad_delivery_settings_are_refused_by_name(hub: Hub) -> None:
    alice, key = await hub.user("alice")
    mine, _ = await hub.ctx.services.subscriptions.subscribe("telegram", "100", alice.id)
    cases = [
        ({"quiet": "22:00-07:00 Mars/Base"}, "unknown time zone"),
        ({"quiet": "7pm-7am"}, "quiet"),
        ({"digest": "1m"}, "5m-24h"),
        ({"max": "0/h"}, "1-1000"),
        ({"max": 10}, "max"),
        ({"loud": "yes"}, "loud"),
        ({"digest": "x" * 5000}, "digest"),
    ]
    for body, needle in cases:
        response = await hub.http.put(
            f"/api/v1/subscriptions/{mine.id}/delivery", json=body, headers=auth(key)
        )
        assert response.status_code == 422, (body, response.text)
        assert needle in response.text, (body, response.text)
        assert "Traceback" not in response.text
    for path in ("0", "abc", "99999999999"):
        response = await hub.http.put(
            f"/api/v1/subscriptions/{path}/delivery", json={}, headers=auth(key)
        )
        assert response.status_code == 422, (path, response.text)
    assert (await hub.http.get("/api/v1/subscriptions")).status_code == 401
    assert (await hub.ctx.services.delivery.get("telegram", "100")).empty
