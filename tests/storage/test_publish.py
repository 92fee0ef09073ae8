"""Publishing: idempotency, routing, outbox uniqueness, one transaction. Runs on every backend."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from core.context import HubContext
from domain.errors import InvalidInput
from domain.filters import SignalFilter
from storage.models import Delivery, SignalRow
from storage.repositories import deliveries as deliveries_repo
from tests.fakes import signal


async def _count(ctx: HubContext, model: type) -> int:
    async with ctx.db.session() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def _subscribe(ctx: HubContext, dest: str, flt: str = "", platform: str = "fake") -> int:
    user = await ctx.services.accounts.resolve(platform, dest)
    info, _ = await ctx.services.subscriptions.subscribe(
        platform, dest, user.id, SignalFilter.from_text(flt)
    )
    return info.id


async def test_publish_stores_routes_and_enqueues(any_ctx: HubContext) -> None:
    await _subscribe(any_ctx, "all")
    await _subscribe(any_ctx, "tsla", "tickers=TSLA")
    await _subscribe(any_ctx, "cheap", "max_price=20 min_confidence=0.7")
    result = await any_ctx.publisher.publish(signal("s1", ticker="AAPL", price=10, confidence=0.8))
    assert result.created and result.deliveries == 2
    assert result.signal.seq is not None and result.signal.seq > 0
    assert await _count(any_ctx, Delivery) == 2


async def test_publish_is_idempotent_on_signal_id(any_ctx: HubContext) -> None:
    await _subscribe(any_ctx, "all")
    first = await any_ctx.publisher.publish(signal("dup-1"))
    # A retry with a fresh time and metadata is the same signal: nothing changes.
    again = await any_ctx.publisher.publish(
        signal("dup-1", timestamp="2030-01-01T00:00:00Z", metadata={"try": 2})
    )
    assert first.created and not again.created and not again.revised
    assert again.deliveries == 0
    assert again.signal.seq == first.signal.seq
    assert again.signal == first.signal
    assert await _count(any_ctx, SignalRow) == 1
    assert await _count(any_ctx, Delivery) == 1
    # A changed field a trader sees is a correction (tests/storage/test_revisions.py).
    fixed = await any_ctx.publisher.publish(signal("dup-1", confidence=0.1))
    assert fixed.revised and fixed.signal.confidence == 0.1 and fixed.signal.revision == 1
    assert fixed.signal.timestamp == first.signal.timestamp
    assert await _count(any_ctx, SignalRow) == 1


async def test_outbox_is_unique_per_signal_and_subscription(any_ctx: HubContext) -> None:
    sub_id = await _subscribe(any_ctx, "all")
    result = await any_ctx.publisher.publish(signal("u-1"))
    seq = result.signal.seq
    assert seq is not None
    from datetime import UTC, datetime

    async with any_ctx.db.transaction() as session:
        added = await deliveries_repo.enqueue(seq, [sub_id], datetime.now(UTC), session=session)
    assert added == 0
    with pytest.raises(IntegrityError):
        async with any_ctx.db.transaction() as session:
            session.add(Delivery(signal_seq=seq, subscription_id=sub_id, platform="fake"))
    assert await _count(any_ctx, Delivery) == 1


async def test_invalid_signal_stores_nothing(any_ctx: HubContext) -> None:
    await _subscribe(any_ctx, "all")
    with pytest.raises(InvalidInput):
        await any_ctx.publisher.publish(signal("bad", confidence=2))
    assert await _count(any_ctx, SignalRow) == 0
    assert await _count(any_ctx, Delivery) == 0


async def test_routing_follows_subscription_changes(any_ctx: HubContext) -> None:
    await _subscribe(any_ctx, "a")
    assert (await any_ctx.publisher.publish(signal("r1"))).deliveries == 1
    await any_ctx.services.subscriptions.set_field("fake", "a", "tickers", "TSLA")
    assert (await any_ctx.publisher.publish(signal("r2"))).deliveries == 0
    await any_ctx.services.subscriptions.reset_filter("fake", "a")
    assert (await any_ctx.publisher.publish(signal("r3"))).deliveries == 1
    await any_ctx.services.subscriptions.unsubscribe("fake", "a")
    assert (await any_ctx.publisher.publish(signal("r4"))).deliveries == 0
    await _subscribe(any_ctx, "b")
    assert (await any_ctx.publisher.publish(signal("r5"))).deliveries == 1


async def test_stream_subscriptions_are_not_enqueued(any_ctx: HubContext) -> None:
    user = await any_ctx.services.accounts.create_user("scripter")
    await any_ctx.services.subscriptions.stream(user.id)
    assert (await any_ctx.publisher.publish(signal("w1"))).deliveries == 0


async def test_live_bus_gets_each_new_signal_once(any_ctx: HubContext) -> None:
    seen: list[int | None] = []
    any_ctx.bus.subscribe(lambda s: seen.append(s.seq))
    a = await any_ctx.publisher.publish(signal("b1"))
    await any_ctx.publisher.publish(signal("b1"))
    b = await any_ctx.publisher.publish(signal("b2"))
    assert seen == [a.signal.seq, b.signal.seq]
