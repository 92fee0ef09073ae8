"""The dispatcher's delivery rules, on every backend."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from core.channels import (
    Alert,
    DestinationGone,
    DestinationMoved,
    PermanentError,
    RateLimit,
    RetryLater,
    TransientError,
)
from core.context import HubContext
from core.dispatcher import Dispatcher
from core.settings import DispatcherSettings
from domain.filters import SignalFilter
from storage.models import Delivery, DeliveryStatus, Subscription
from tests.fakes import RecordingChannel, signal, wait_for
from tests.manual_clock import ManualClock


async def _sub(ctx: HubContext, dest: str, platform: str = "fake", flt: str = "") -> int:
    user = await ctx.services.accounts.resolve(platform, dest)
    info, _ = await ctx.services.subscriptions.subscribe(
        platform, dest, user.id, SignalFilter.from_text(flt)
    )
    return info.id


async def _deliveries(ctx: HubContext) -> list[Delivery]:
    async with ctx.db.session() as session:
        rows = await session.execute(select(Delivery).order_by(Delivery.id))  # type: ignore[arg-type]
        return list(rows.scalars().all())


def _dispatcher(ctx: HubContext, clock=None, **settings: object) -> Dispatcher:  # type: ignore[no-untyped-def]
    kwargs = {"clock": clock} if clock else {}
    return Dispatcher(ctx.db, DispatcherSettings(**settings), **kwargs)  # type: ignore[arg-type]


def _manual(ctx: HubContext, clock: ManualClock, **settings: object) -> Dispatcher:
    """A dispatcher whose rows, rate limiters and sleeps all run on ``clock``."""
    return Dispatcher(
        ctx.db,
        DispatcherSettings(**settings),
        clock=clock.wall,
        monotonic=clock,
        timer=clock.call_later,
        sleep=clock.sleep,
    )


async def test_sends_pending_deliveries_and_marks_them_sent(any_ctx: HubContext) -> None:
    channel = RecordingChannel()
    dispatcher = _dispatcher(any_ctx)
    dispatcher.register(channel)
    await _sub(any_ctx, "a")
    await _sub(any_ctx, "b", flt="tickers=TSLA")
    await any_ctx.publisher.publish(signal("s1"))
    await any_ctx.publisher.publish(signal("s2", ticker="TSLA"))
    assert await dispatcher.run_once("fake") == 3
    assert channel.sent_to("a") == ["s1", "s2"]
    assert channel.sent_to("b") == ["s2"]
    rows = await _deliveries(any_ctx)
    assert {r.status for r in rows} == {DeliveryStatus.SENT.value}
    assert all(r.sent_at is not None for r in rows)
    assert await dispatcher.run_once("fake") == 0  # nothing is sent twice


async def test_stale_deliveries_expire_instead_of_sending(any_ctx: HubContext) -> None:
    channel = RecordingChannel()
    later = datetime.now(UTC) + timedelta(seconds=120)
    dispatcher = _dispatcher(any_ctx, clock=lambda: later, ttl_seconds=60)
    dispatcher.register(channel)
    await _sub(any_ctx, "a")
    await any_ctx.publisher.publish(signal("old"))
    await dispatcher.run_once("fake")
    assert channel.sent == []
    (row,) = await _deliveries(any_ctx)
    assert row.status == DeliveryStatus.EXPIRED.value
    assert row.last_error is not None and "TTL" in row.last_error


async def test_sweeper_expires_deliveries_of_channels_that_are_down(any_ctx: HubContext) -> None:
    later = datetime.now(UTC) + timedelta(seconds=120)
    dispatcher = _dispatcher(any_ctx, clock=lambda: later, ttl_seconds=60)
    await _sub(any_ctx, "a", platform="offline")
    await any_ctx.publisher.publish(signal("old"))
    assert await dispatcher.expire_stale() == 1
    (row,) = await _deliveries(any_ctx)
    assert row.status == DeliveryStatus.EXPIRED.value


async def test_gone_destination_deactivates_the_subscription(any_ctx: HubContext) -> None:
    def behaviour(alert: Alert) -> None:
        if alert.destination == "blocked":
            raise DestinationGone("bot was blocked by the user")

    channel = RecordingChannel(behaviour=behaviour)
    dispatcher = _dispatcher(any_ctx)
    dispatcher.register(channel)
    blocked = await _sub(any_ctx, "blocked")
    await _sub(any_ctx, "fine")
    await any_ctx.publisher.publish(signal("g1"))
    await any_ctx.publisher.publish(signal("g2"))
    await dispatcher.run_once("fake")
    assert len([a for a in channel.attempts if a.destination == "blocked"]) == 1  # not retried
    assert channel.sent_to("fine") == ["g1", "g2"]
    async with any_ctx.db.session() as session:
        sub = await session.get(Subscription, blocked)
        assert sub is not None and not sub.active
        assert sub.deactivated_reason == "bot was blocked by the user"
    statuses = {r.status for r in await _deliveries(any_ctx) if r.subscription_id == blocked}
    assert statuses == {DeliveryStatus.DEAD.value}
    assert (await any_ctx.publisher.publish(signal("g3"))).deliveries == 1


async def test_retry_after_blocks_only_its_scope(any_ctx: HubContext) -> None:
    limited = {"count": 0}

    def behaviour(alert: Alert) -> None:
        if alert.destination == "slow" and limited["count"] == 0:
            limited["count"] += 1
            raise RetryLater(0.4, scope="chat:slow")

    channel = RecordingChannel(
        behaviour=behaviour,
        limits=lambda d: (RateLimit("global", 100, 1.0), RateLimit(f"chat:{d}", 100, 1.0)),
    )
    clock = ManualClock()
    dispatcher = _manual(any_ctx, clock)
    dispatcher.register(channel)
    await _sub(any_ctx, "slow")
    await _sub(any_ctx, "fast")
    await any_ctx.publisher.publish(signal("r1"))
    await any_ctx.publisher.publish(signal("r2"))
    await dispatcher.run_once("fake")
    # The other chat is unaffected; the limited chat keeps its order and waits.
    assert channel.sent_to("fast") == ["r1", "r2"]
    assert channel.sent_to("slow") == []
    assert dispatcher.limiter("fake").blocked_for(["chat:slow"]) == pytest.approx(0.4)
    assert dispatcher.limiter("fake").blocked_for(["chat:fast", "global"]) <= 0
    pending = [r for r in await _deliveries(any_ctx) if r.status != DeliveryStatus.SENT.value]
    assert len(pending) == 2
    assert all(r.attempts == 0 for r in pending)  # a rate limit is not a failed attempt
    assert all(r.next_attempt_at > datetime.now(UTC) for r in pending)
    await clock.advance(0.25)
    assert await dispatcher.run_once("fake") == 0  # not due yet
    await clock.advance(0.25)
    await dispatcher.run_once("fake")
    assert channel.sent_to("slow") == ["r1", "r2"]


async def test_transient_failures_back_off_then_die(any_ctx: HubContext) -> None:
    def behaviour(alert: Alert) -> None:
        raise TransientError("502 Bad Gateway")

    clock_offset = {"s": 0.0}

    def clock() -> datetime:
        return datetime.now(UTC) + timedelta(seconds=clock_offset["s"])

    channel = RecordingChannel(behaviour=behaviour)
    dispatcher = _dispatcher(any_ctx, clock=clock, max_attempts=3, backoff_base_seconds=10)
    dispatcher.register(channel)
    await _sub(any_ctx, "a")
    await any_ctx.publisher.publish(signal("t1"))
    await dispatcher.run_once("fake")
    (row,) = await _deliveries(any_ctx)
    assert row.status == DeliveryStatus.FAILED.value and row.attempts == 1
    assert row.next_attempt_at > datetime.now(UTC) + timedelta(seconds=7)
    assert await dispatcher.run_once("fake") == 0  # not due yet
    for _ in range(2):
        clock_offset["s"] += 100
        await dispatcher.run_once("fake")
    (row,) = await _deliveries(any_ctx)
    assert row.status == DeliveryStatus.DEAD.value and row.attempts == 3
    assert row.last_error == "502 Bad Gateway"
    assert len(channel.attempts) == 3


async def test_unexpected_exceptions_are_transient(any_ctx: HubContext) -> None:
    def behaviour(alert: Alert) -> None:
        raise RuntimeError("boom")

    channel = RecordingChannel(behaviour=behaviour)
    dispatcher = _dispatcher(any_ctx)
    dispatcher.register(channel)
    await _sub(any_ctx, "a")
    await any_ctx.publisher.publish(signal("x1"))
    await dispatcher.run_once("fake")
    (row,) = await _deliveries(any_ctx)
    assert row.status == DeliveryStatus.FAILED.value
    assert row.last_error == "RuntimeError: boom"


async def test_permanent_error_gives_up_on_that_message_only(any_ctx: HubContext) -> None:
    def behaviour(alert: Alert) -> None:
        if alert.signal.signal_id == "p1":
            raise PermanentError("message rejected")

    channel = RecordingChannel(behaviour=behaviour)
    dispatcher = _dispatcher(any_ctx)
    dispatcher.register(channel)
    await _sub(any_ctx, "a")
    await any_ctx.publisher.publish(signal("p1"))
    await any_ctx.publisher.publish(signal("p2"))
    await dispatcher.run_once("fake")
    assert channel.sent_to("a") == ["p2"]
    rows = await _deliveries(any_ctx)
    assert [r.status for r in rows] == [DeliveryStatus.DEAD.value, DeliveryStatus.SENT.value]


async def test_moved_destination_is_followed(any_ctx: HubContext) -> None:
    def behaviour(alert: Alert) -> None:
        if alert.destination == "-100":
            raise DestinationMoved("-100200")

    channel = RecordingChannel(behaviour=behaviour)
    dispatcher = _dispatcher(any_ctx)
    dispatcher.register(channel)
    sub_id = await _sub(any_ctx, "-100")
    await any_ctx.publisher.publish(signal("m1"))
    await dispatcher.run_once("fake")
    assert channel.sent_to("-100200") == ["m1"]
    async with any_ctx.db.session() as session:
        sub = await session.get(Subscription, sub_id)
        assert sub is not None and sub.destination == "-100200" and sub.active


async def test_one_failing_channel_never_stalls_another(any_ctx: HubContext) -> None:
    stuck = RecordingChannel("stuck", delay=30)
    broken = RecordingChannel(
        "broken", behaviour=lambda a: (_ for _ in ()).throw(TransientError("down"))
    )
    healthy = RecordingChannel("healthy")
    dispatcher = _dispatcher(any_ctx, poll_seconds=0.05)
    for ch in (stuck, broken, healthy):
        dispatcher.register(ch)
        await _sub(any_ctx, f"{ch.platform}-dest", platform=ch.platform)
    any_ctx.publisher.set_wake(dispatcher.wake)
    await dispatcher.start()
    try:
        await any_ctx.publisher.publish(signal("i1"))
        await any_ctx.publisher.publish(signal("i2"))
        await wait_for(lambda: len(healthy.sent) == 2, timeout=5)
        assert stuck.sent == [] and broken.sent == []
    finally:
        await dispatcher.stop(grace=0)  # the stuck send is not worth waiting for


async def test_dispatcher_wakes_on_publish(any_ctx: HubContext) -> None:
    channel = RecordingChannel()
    dispatcher = _dispatcher(any_ctx, poll_seconds=30)  # only a wake can deliver quickly
    dispatcher.register(channel)
    any_ctx.publisher.set_wake(dispatcher.wake)
    await _sub(any_ctx, "a")
    await dispatcher.start()
    try:
        await asyncio.sleep(0.1)
        await any_ctx.publisher.publish(signal("w1"))
        await wait_for(lambda: channel.sent_to("a") == ["w1"], timeout=5)
    finally:
        await dispatcher.stop()


async def test_inactive_subscription_deliveries_are_dropped(any_ctx: HubContext) -> None:
    channel = RecordingChannel()
    dispatcher = _dispatcher(any_ctx)
    dispatcher.register(channel)
    await _sub(any_ctx, "a")
    await any_ctx.publisher.publish(signal("d1"))
    await any_ctx.services.subscriptions.unsubscribe("fake", "a")
    await dispatcher.run_once("fake")
    assert channel.sent == []
    (row,) = await _deliveries(any_ctx)
    assert row.status == DeliveryStatus.DEAD.value


async def test_a_refused_send_gives_its_rate_slot_back(any_ctx: HubContext) -> None:
    """A 429'd send did not count on the platform, so it must not use up our window
    either: with one send a minute allowed, the retry still goes out right after
    the retry-after instead of a minute later."""
    refused = {"done": False}

    def behaviour(alert: Alert) -> None:
        if not refused["done"]:
            refused["done"] = True
            raise RetryLater(0.2, scope="group:1")

    channel = RecordingChannel(
        behaviour=behaviour, limits=lambda d: (RateLimit("group:1", 1, 60.0),)
    )
    clock = ManualClock()
    dispatcher = _manual(any_ctx, clock)
    dispatcher.register(channel)
    await _sub(any_ctx, "group")
    await any_ctx.publisher.publish(signal("q1"))
    await dispatcher.run_once("fake")
    assert channel.sent == []
    limits = channel.limits_for("group")
    assert dispatcher.limiter("fake").ready_in(limits) == pytest.approx(0.2)  # blocked only
    await clock.advance(0.25)
    assert dispatcher.limiter("fake").ready_in(limits) == 0  # the refused send left no stamp
    await dispatcher.run_once("fake")
    assert channel.sent_to("group") == ["q1"]


class _FlakyDatabase:
    """The hub's database, except that the rounds listed in ``down`` fail to
    open a transaction (the database is unreachable then)."""

    def __init__(self, db: Any, down: set[int]) -> None:
        self._db = db
        self._down = down
        self.rounds = 0

    def transaction(self) -> Any:
        self.rounds += 1
        if self.rounds in self._down:
            raise ConnectionError("database unreachable")
        return self._db.transaction()

    def session(self) -> Any:
        return self._db.session()


async def test_failed_rounds_back_off_exponentially_and_reset(any_ctx: HubContext) -> None:
    clock = ManualClock()
    db = _FlakyDatabase(any_ctx.db, down={1, 2, 3, 5, 6})
    dispatcher = Dispatcher(
        db,  # type: ignore[arg-type]
        DispatcherSettings(poll_seconds=0.5),
        clock=clock.wall,
        monotonic=clock,
        timer=clock.call_later,
        sleep=clock.sleep,
    )
    dispatcher.register(RecordingChannel())
    await dispatcher.start_platform("fake")
    try:
        for n in (1, 2, 3):  # poll_seconds * 2**failures
            await wait_for(lambda n=n: len(clock.sleeps) == n)  # type: ignore[misc]
            await clock.advance(clock.sleeps[-1])
            dispatcher.wake()  # not the idle poll after it, which runs in real time
        await wait_for(lambda: db.rounds >= 4)  # round 4 reaches the database
        dispatcher.wake()
        for n in (4, 5):  # a good round started the backoff over
            await wait_for(lambda n=n: len(clock.sleeps) == n)  # type: ignore[misc]
            await clock.advance(clock.sleeps[-1])
            dispatcher.wake()  # not the idle poll after it, which runs in real time
        assert clock.sleeps == [1.0, 2.0, 4.0, 1.0, 2.0]
    finally:
        await dispatcher.stop(grace=0)


@pytest.mark.parametrize(
    ("poll", "sleeps"),
    [
        (0.5, [1.0, 2.0, 4.0, 8.0, 16.0, 16.0, 16.0]),  # doubling stops after 5 failures
        (1.0, [2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]),  # and no wait is over 30 s
    ],
)
async def test_backoff_is_capped(any_ctx: HubContext, poll: float, sleeps: list[float]) -> None:
    clock = ManualClock()
    db = _FlakyDatabase(any_ctx.db, down=set(range(1, 100)))
    dispatcher = Dispatcher(
        db,  # type: ignore[arg-type]
        DispatcherSettings(poll_seconds=poll),
        clock=clock.wall,
        sleep=clock.sleep,
    )
    dispatcher.register(RecordingChannel())
    await dispatcher.start_platform("fake")
    try:
        for n in range(1, 8):
            await wait_for(lambda n=n: len(clock.sleeps) == n)  # type: ignore[misc]
            await clock.advance(clock.sleeps[-1])
            dispatcher.wake()  # not the idle poll after it, which runs in real time
        assert clock.sleeps == sleeps
    finally:
        await dispatcher.stop(grace=0)


async def test_the_sweeper_sleeps_on_the_injected_clock(any_ctx: HubContext) -> None:
    clock = ManualClock()
    dispatcher = _manual(any_ctx, clock, poll_seconds=0.5, ttl_seconds=60)
    await _sub(any_ctx, "a", platform="offline")
    await any_ctx.publisher.publish(signal("old"))
    dispatcher.start_sweeper()
    try:
        await wait_for(lambda: clock.sleeps == [5.0])  # max(poll_seconds * 10, 1)
        (row,) = await _deliveries(any_ctx)
        assert row.status == DeliveryStatus.PENDING.value
        clock.now += 120.0  # two minutes pass: the sweeper's timer is overdue
        await clock.advance(0.0)  # it fires; the next sweep finds the row stale
        await wait_for(lambda: len(clock.sleeps) == 2)
        (row,) = await _deliveries(any_ctx)
        assert row.status == DeliveryStatus.EXPIRED.value
    finally:
        await dispatcher.stop()
