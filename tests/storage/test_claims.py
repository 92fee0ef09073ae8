"""Fenced claims and graceful stop: a delivery is sent once however many
dispatchers race for it, a result that arrives after its claim was lost changes
nothing, a send never outlives its lease, and stopping lets in-flight sends finish."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import ClassVar

from sqlalchemy import select, update

from core.channels import Alert, Channel, RateLimit
from core.context import HubContext
from core.dispatcher import Dispatcher
from core.metrics import Metrics
from core.settings import DispatcherSettings
from storage.database import Database
from storage.models import Delivery, DeliveryStatus
from storage.repositories import deliveries as repo
from tests.fakes import signal, wait_for


class SlowChannel(Channel):
    platform: ClassVar[str] = "fake"

    def __init__(self, delay: float, sends: Counter[int], started: list[int] | None = None) -> None:
        self.delay = delay
        self.sends = sends
        self.started = started if started is not None else []

    def limits_for(self, destination: str) -> tuple[RateLimit, ...]:
        return ()

    async def send(self, alert: Alert) -> None:
        self.started.append(alert.delivery_id)
        await asyncio.sleep(self.delay)
        self.sends[alert.delivery_id] += 1


async def _subscribe(ctx: HubContext, *dests: str) -> None:
    for dest in dests:
        user = await ctx.services.accounts.resolve("fake", dest)
        await ctx.services.subscriptions.subscribe("fake", dest, user.id)


async def _rows(db: Database) -> list[Delivery]:
    async with db.session() as session:
        rows = await session.execute(select(Delivery).order_by(Delivery.id))  # type: ignore[arg-type]
        return list(rows.scalars().all())


def _settings(**kw: object) -> DispatcherSettings:
    base: dict[str, object] = {"poll_seconds": 0.02, "batch_size": 10, "concurrency": 8}
    base.update(kw)
    return DispatcherSettings(**base)  # type: ignore[arg-type]


async def test_racing_dispatchers_send_each_delivery_exactly_once(any_ctx: HubContext) -> None:
    await _subscribe(any_ctx, "a", "b", "c")
    for i in range(15):
        await any_ctx.publisher.publish(signal(f"race{i:02d}"))
    sends: Counter[int] = Counter()
    dbs = [Database(any_ctx.db.url) for _ in range(2)]
    dispatchers = []
    for db in dbs:
        db.connect()
        d = Dispatcher(db, _settings(lease_seconds=5.0))
        d.register(SlowChannel(0.03, sends))
        dispatchers.append(d)
    try:
        for d in dispatchers:
            await d.start()
        await wait_for(
            lambda: len(sends) == 45, timeout=30
        )  # every delivery sent at least once
        await asyncio.sleep(0.3)  # and nothing more comes
    finally:
        for d in dispatchers:
            await d.stop(grace=5)
        for db in dbs:
            await db.dispose()
    assert sorted(sends.values()) == [1] * 45, "a delivery was sent twice"
    assert {r.status for r in await _rows(any_ctx.db)} == {DeliveryStatus.SENT.value}


async def test_a_result_after_the_claim_was_lost_changes_nothing(any_ctx: HubContext) -> None:
    await _subscribe(any_ctx, "a")
    await any_ctx.publisher.publish(signal("fenced"))
    now = datetime.now(UTC)
    async with any_ctx.db.transaction() as session:
        (first,) = await repo.claim_due("fake", now, now + timedelta(seconds=1), 10, session=session)
    later = now + timedelta(seconds=2)  # the first lease ran out; another worker retakes
    async with any_ctx.db.transaction() as session:
        (second,) = await repo.claim_due("fake", later, later + timedelta(seconds=30), 10, session=session)
    assert second.delivery_id == first.delivery_id and second.token != first.token
    async with any_ctx.db.transaction() as session:
        assert not await repo.finish(
            first.delivery_id, first.token, DeliveryStatus.SENT, session=session, now=later
        )
        assert not await repo.reschedule(
            first.delivery_id, first.token, later, session=session, error="x", count_attempt=True
        )
    (row,) = await _rows(any_ctx.db)
    assert row.status == DeliveryStatus.PENDING.value and row.attempts == 0
    assert row.claim_token == second.token
    async with any_ctx.db.transaction() as session:
        assert await repo.finish(
            second.delivery_id, second.token, DeliveryStatus.SENT, session=session, now=later
        )


async def test_a_lost_claim_is_counted_and_not_recorded(any_ctx: HubContext) -> None:
    await _subscribe(any_ctx, "a")
    await any_ctx.publisher.publish(signal("stolen"))
    metrics = Metrics()

    class StealingChannel(SlowChannel):
        async def send(self, alert: Alert) -> None:
            # Mid-send, another worker takes the delivery over.
            async with any_ctx.db.transaction() as session:
                await session.execute(
                    update(Delivery)
                    .where(Delivery.id == alert.delivery_id)  # type: ignore[arg-type]
                    .values(claim_token="someone-else")
                )
            await super().send(alert)

    sends: Counter[int] = Counter()
    dispatcher = Dispatcher(any_ctx.db, _settings(), metrics=metrics)
    dispatcher.register(StealingChannel(0.0, sends))
    assert await dispatcher.run_once("fake") == 1
    (row,) = await _rows(any_ctx.db)
    assert row.status == DeliveryStatus.PENDING.value and row.claim_token == "someone-else"
    value = metrics.registry.get_sample_value(
        "catalyst_delivery_claims_lost_total", {"channel": "fake"}
    )
    assert value == 1


async def test_a_send_never_outlives_its_lease(any_ctx: HubContext) -> None:
    await _subscribe(any_ctx, "a")
    await any_ctx.publisher.publish(signal("stuck"))
    sends: Counter[int] = Counter()
    dispatcher = Dispatcher(any_ctx.db, _settings(lease_seconds=0.5))
    dispatcher.register(SlowChannel(30.0, sends))  # a send that would take 30 s
    # Cut off at the lease, not after the 30 s send (the 5 s is a hang guard only).
    await asyncio.wait_for(dispatcher.run_once("fake"), 5)
    assert sends == Counter()  # the send never completed
    (row,) = await _rows(any_ctx.db)
    assert row.status == DeliveryStatus.FAILED.value and row.attempts == 1
    assert row.claim_token is None and row.last_error is not None and "lease" in row.last_error


async def test_stop_lets_in_flight_sends_finish_and_releases_the_rest(
    any_ctx: HubContext,
) -> None:
    await _subscribe(any_ctx, "a")
    for i in range(5):
        await any_ctx.publisher.publish(signal(f"grace{i}"))
    sends: Counter[int] = Counter()
    started: list[int] = []
    dispatcher = Dispatcher(any_ctx.db, _settings())
    dispatcher.register(SlowChannel(0.5, sends, started))
    await dispatcher.start()
    await wait_for(lambda: len(started) == 1)
    await dispatcher.stop(grace=5)
    rows = await _rows(any_ctx.db)
    # The one in flight finished and was recorded; the rest went back unclaimed.
    assert [r.status for r in rows] == ["sent"] + ["pending"] * 4
    assert sends == Counter({rows[0].id: 1})
    assert all(r.claim_token is None and r.claimed_until is None for r in rows)
    assert all(r.next_attempt_at <= datetime.now(UTC) for r in rows[1:])
    # A restart sends the rest, and nothing twice.
    again = Dispatcher(any_ctx.db, _settings())
    again.register(SlowChannel(0.0, sends))
    while await again.run_once("fake"):
        pass
    assert sorted(sends.values()) == [1] * 5
