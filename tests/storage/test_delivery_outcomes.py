"""Each outcome of a send, one at a time: what it does to the delivery row, the
subscription, the limiter and the metrics (``core.delivery_outcomes``)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from sqlalchemy import select

from core.channels import DestinationGone, PermanentError, RateLimit, RetryLater, TransientError
from core.context import HubContext
from core.delivery_outcomes import DeliveryOutcomes, describe
from core.metrics import Metrics
from core.ratelimit import ScopedLimiter
from core.settings import DispatcherSettings
from domain.filters import SignalFilter
from storage.models import Delivery, DeliveryStatus, Subscription
from storage.repositories import deliveries as repo
from storage.repositories.deliveries import Claimed
from tests.fakes import signal
from tests.manual_clock import ManualClock

Outcome = Callable[[DeliveryOutcomes, Claimed], Awaitable[None]]
LIMITS = (RateLimit("global", 5, 60.0), RateLimit("chat:a", 1, 60.0))


class Jitter:
    """Records what the backoff asked for and returns a fixed factor."""

    def __init__(self, factor: float = 1.0) -> None:
        self.factor = factor
        self.calls: list[tuple[float, float]] = []

    def __call__(self, low: float, high: float) -> float:
        self.calls.append((low, high))
        return self.factor


class World:
    def __init__(self, ctx: HubContext, **settings: object) -> None:
        self.ctx = ctx
        self.clock = ManualClock()
        self.metrics = Metrics()
        self.limiter = ScopedLimiter(clock=self.clock, timer=self.clock.call_later)
        self.jitter = Jitter()
        self.outcomes = DeliveryOutcomes(
            ctx.db,
            DispatcherSettings(**settings),
            "fake",
            limiter=self.limiter,
            clock=self.clock.wall,
            metrics=self.metrics,
            jitter=self.jitter,
        )

    async def subscribe(self, dest: str) -> int:
        user = await self.ctx.services.accounts.resolve("fake", dest)
        info, _ = await self.ctx.services.subscriptions.subscribe(
            "fake", dest, user.id, SignalFilter.from_text("")
        )
        return info.id

    async def claim(self) -> list[Claimed]:
        now = self.clock.wall()
        async with self.ctx.db.transaction() as session:
            return await repo.claim_due(
                "fake", now, now + timedelta(seconds=30), 100, session=session
            )

    async def one(self, dest: str = "a") -> Claimed:
        await self.subscribe(dest)
        await self.ctx.publisher.publish(signal("s1"))
        (item,) = await self.claim()
        return item

    async def row(self, delivery_id: int) -> Delivery:
        async with self.ctx.db.session() as session:
            row = await session.get(Delivery, delivery_id)
            assert row is not None
            return row

    async def rows(self) -> list[Delivery]:
        async with self.ctx.db.session() as session:
            result = await session.execute(select(Delivery).order_by(Delivery.id))  # type: ignore[arg-type]
            return list(result.scalars().all())

    async def subscription(self, sub_id: int) -> Subscription:
        async with self.ctx.db.session() as session:
            sub = await session.get(Subscription, sub_id)
            assert sub is not None
            return sub

    def counted(self, state: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "catalyst_deliveries_total", {"channel": "fake", "state": state}
        )
        return value or 0.0

    def lost(self) -> float:
        value = self.metrics.registry.get_sample_value(
            "catalyst_delivery_claims_lost_total", {"channel": "fake"}
        )
        return value or 0.0

    def latency(self, sample: str) -> float:
        value = self.metrics.registry.get_sample_value(
            f"catalyst_delivery_latency_seconds_{sample}", {"channel": "fake"}
        )
        return value or 0.0


def _stolen(item: Claimed) -> Claimed:
    """The same delivery after another worker took the claim over."""
    return dataclasses.replace(item, token="someone-else")


def _states(world: World) -> dict[str, float]:
    states = ("sent", "dead", "expired", "failed", "rate_limited")
    return {s: world.counted(s) for s in states if world.counted(s)}


def _assert_unclaimed(row: Delivery) -> None:
    assert row.claim_token is None and row.claimed_until is None


# ---- final outcomes --------------------------------------------------------
async def test_sent_records_the_send_and_its_latency(any_ctx: HubContext) -> None:
    world = World(any_ctx)
    item = await world.one()
    await world.clock.advance(2.0)
    await world.outcomes.sent(item)
    row = await world.row(item.delivery_id)
    assert row.status == DeliveryStatus.SENT.value
    assert row.attempts == 1 and row.last_error is None and row.sent_at is not None
    _assert_unclaimed(row)
    assert _states(world) == {"sent": 1}
    assert world.latency("count") == 1
    assert 2.0 <= world.latency("sum") < 60.0


async def test_a_send_before_its_creation_time_has_no_negative_latency(
    any_ctx: HubContext,
) -> None:
    world = World(any_ctx)
    item = await world.one()
    world.clock.now -= 10  # this worker's clock is behind the publisher's
    await world.outcomes.sent(item)
    assert world.latency("count") == 1
    assert world.latency("sum") == 0.0


FINAL: list[tuple[Outcome, tuple[str, str, int], dict[str, float]]] = [
    (lambda o, i: o.inactive(i), ("dead", "subscription inactive", 1), {"dead": 1}),
    # Expiring is not an attempt.
    (lambda o, i: o.expired(i), ("expired", "expired: older than TTL", 0), {"expired": 1}),
    # Given up without a send to blame: no delivery state is counted.
    (lambda o, i: o.dead(i, "moved too often"), ("dead", "moved too often", 1), {}),
    (lambda o, i: o.permanent(i, "message rejected"), ("dead", "message rejected", 1), {"dead": 1}),
]


@pytest.mark.parametrize(("outcome", "recorded", "states"), FINAL)
async def test_final_outcomes(
    any_ctx: HubContext,
    outcome: Outcome,
    recorded: tuple[str, str, int],
    states: dict[str, float],
) -> None:
    world = World(any_ctx)
    item = await world.one()
    await outcome(world.outcomes, item)
    row = await world.row(item.delivery_id)
    assert (row.status, row.last_error, row.attempts) == recorded
    _assert_unclaimed(row)
    assert _states(world) == states


# ---- put back ---------------------------------------------------------------
async def test_rate_limited_waits_without_an_attempt(any_ctx: HubContext) -> None:
    world = World(any_ctx)
    item = await world.one()
    start = world.clock.wall()
    until = await world.outcomes.rate_limited(item, 7.5)
    assert 7.5 <= (until - start).total_seconds() < 8.5
    row = await world.row(item.delivery_id)
    assert row.next_attempt_at == until.replace(tzinfo=row.next_attempt_at.tzinfo)
    assert (row.status, row.last_error, row.attempts) == (
        DeliveryStatus.PENDING.value,
        "rate limited",
        0,
    )
    _assert_unclaimed(row)
    assert _states(world) == {}


async def test_retry_later_refunds_blocks_and_waits(any_ctx: HubContext) -> None:
    world = World(any_ctx)
    item = await world.one()
    permit = await world.limiter.acquire(LIMITS)
    await world.clock.advance(1.0)
    other = await world.limiter.acquire(LIMITS[:1])  # a later send, not refused
    exc = RetryLater(4.0, scope="chat:a")
    start = world.clock.wall()
    until = await world.outcomes.retry_later(item, exc, LIMITS, permit)
    assert timedelta(seconds=4) <= until - start < timedelta(seconds=5)
    # Its own slots are given back (the other send's stay); its scope is blocked.
    assert world.limiter.stamps(LIMITS[0]) == [other.at]
    assert world.limiter.stamps(LIMITS[1]) == []
    assert world.limiter.blocked_for(["chat:a"]) == 4.0
    assert world.limiter.blocked_for(["global"]) <= 0
    row = await world.row(item.delivery_id)
    assert (row.status, row.last_error, row.attempts) == (
        DeliveryStatus.PENDING.value,
        exc.reason,
        0,
    )
    assert _states(world) == {"rate_limited": 1}


async def test_transient_backs_off_exponentially_with_jitter(any_ctx: HubContext) -> None:
    world = World(any_ctx, backoff_base_seconds=2.0, backoff_max_seconds=300.0, max_attempts=8)
    world.jitter.factor = 1.25
    item = await world.one()
    for attempts, delay in ((0, 2.0), (1, 4.0), (3, 16.0)):
        start = world.clock.wall()
        until = await world.outcomes.transient(
            dataclasses.replace(item, attempts=attempts), "502 Bad Gateway"
        )
        assert until is not None
        waited = (until - start).total_seconds()
        assert delay * 1.25 <= waited < delay * 1.25 + 1
        item = await _reclaim(world, item)
    assert world.jitter.calls == [(0.8, 1.2)] * 3
    row = await world.row(item.delivery_id)
    assert (row.status, row.last_error) == (DeliveryStatus.FAILED.value, "502 Bad Gateway")
    assert row.attempts == 3  # one per call, from the row's own count
    assert _states(world) == {"failed": 3}


async def _reclaim(world: World, item: Claimed) -> Claimed:
    """Make the put-back row due and claim it again."""
    async with world.ctx.db.transaction() as session:
        row = await session.get(Delivery, item.delivery_id)
        assert row is not None
        row.next_attempt_at = world.clock.wall() - timedelta(seconds=1)
        session.add(row)
    (again,) = await world.claim()
    return again


async def test_transient_backoff_is_capped(any_ctx: HubContext) -> None:
    world = World(any_ctx, backoff_base_seconds=2.0, backoff_max_seconds=10.0, max_attempts=20)
    item = await world.one()
    start = world.clock.wall()
    until = await world.outcomes.transient(dataclasses.replace(item, attempts=10), "down")
    assert until is not None
    assert 10.0 <= (until - start).total_seconds() < 11.0


async def test_transient_is_dead_at_max_attempts(any_ctx: HubContext) -> None:
    world = World(any_ctx, max_attempts=3)
    item = await world.one()
    assert await world.outcomes.transient(dataclasses.replace(item, attempts=1), "e1") is not None
    item = await _reclaim(world, item)
    assert _states(world) == {"failed": 1}
    # The third attempt is the last: dead, not put back.
    assert await world.outcomes.transient(dataclasses.replace(item, attempts=2), "e3") is None
    row = await world.row(item.delivery_id)
    assert (row.status, row.last_error) == (DeliveryStatus.DEAD.value, "e3")
    _assert_unclaimed(row)
    assert _states(world) == {"failed": 1, "dead": 1}
    assert world.jitter.calls == [(0.8, 1.2)]


async def test_release_puts_back_without_an_attempt(any_ctx: HubContext) -> None:
    world = World(any_ctx)
    await world.subscribe("a")
    await any_ctx.publisher.publish(signal("s1"))
    await any_ctx.publisher.publish(signal("s2"))
    items = await world.claim()
    until = world.clock.wall() + timedelta(seconds=3)
    await world.outcomes.release(items, until)
    await world.outcomes.release([], until)  # nothing to do
    for row in await world.rows():
        assert row.next_attempt_at == until.replace(tzinfo=row.next_attempt_at.tzinfo)
        assert (row.status, row.last_error, row.attempts) == (
            DeliveryStatus.PENDING.value,
            "waiting behind an earlier delivery",
            0,
        )
        _assert_unclaimed(row)
    assert world.lost() == 0


# ---- the destination --------------------------------------------------------
async def test_gone_deactivates_and_kills_open_deliveries(any_ctx: HubContext) -> None:
    world = World(any_ctx)
    sub_id = await world.subscribe("a")
    other_sub = await world.subscribe("b")
    for n in range(3):
        await any_ctx.publisher.publish(signal(f"s{n}"))
    claimed = await world.claim()
    item = next(c for c in claimed if c.subscription_id == sub_id)
    await world.outcomes.gone(item, "bot was blocked")
    assert world.outcomes.gone_subscriptions == {sub_id}
    sub = await world.subscription(sub_id)
    assert not sub.active and sub.deactivated_reason == "bot was blocked"
    rows = {r.id: r for r in await world.rows()}
    assert rows[item.delivery_id].last_error == "bot was blocked"
    for row in rows.values():
        if row.subscription_id == sub_id:
            assert row.status == DeliveryStatus.DEAD.value
            if row.id != item.delivery_id:
                assert row.last_error == "subscription deactivated: bot was blocked"
        else:
            assert row.subscription_id == other_sub
            assert row.status == DeliveryStatus.PENDING.value
    assert rows[item.delivery_id].attempts == 1
    assert _states(world) == {"dead": 1}


async def test_moved_follows_the_destination(any_ctx: HubContext) -> None:
    world = World(any_ctx)
    item = await world.one("-100")
    assert await world.outcomes.moved(item, "-100", "-100200") is True
    sub = await world.subscription(item.subscription_id)
    assert sub.destination == "-100200" and sub.active
    row = await world.row(item.delivery_id)
    assert row.claim_token == item.token  # still ours: the caller sends again
    assert world.outcomes.gone_subscriptions == set()
    assert _states(world) == {}


async def test_moved_onto_a_taken_destination_is_gone(any_ctx: HubContext) -> None:
    world = World(any_ctx)
    item = await world.one("-100")
    await world.subscribe("-100200")
    assert await world.outcomes.moved(item, "-100", "-100200") is False
    sub = await world.subscription(item.subscription_id)
    assert sub.destination == "-100" and not sub.active
    assert sub.deactivated_reason == "moved to -100200, which is taken"
    row = await world.row(item.delivery_id)
    assert row.status == DeliveryStatus.DEAD.value
    assert world.outcomes.gone_subscriptions == {item.subscription_id}
    assert _states(world) == {"dead": 1}


# ---- a lost claim ------------------------------------------------------------
@pytest.mark.parametrize("outcome", ["sent", "expired", "permanent", "rate_limited", "release"])
async def test_a_lost_claim_changes_nothing_and_is_counted(
    any_ctx: HubContext, outcome: str
) -> None:
    world = World(any_ctx)
    item = _stolen(await world.one())
    before = await world.row(item.delivery_id)
    if outcome == "sent":
        await world.outcomes.sent(item)
    elif outcome == "expired":
        await world.outcomes.expired(item)
    elif outcome == "permanent":
        await world.outcomes.permanent(item, "rejected")
    elif outcome == "rate_limited":
        await world.outcomes.rate_limited(item, 1.0)
    else:
        await world.outcomes.release([item], world.clock.wall())
    after = await world.row(item.delivery_id)
    assert (after.status, after.attempts, after.last_error, after.next_attempt_at) == (
        before.status,
        before.attempts,
        before.last_error,
        before.next_attempt_at,
    )
    assert world.lost() == 1


async def test_no_metrics_is_fine(any_ctx: HubContext) -> None:
    world = World(any_ctx)
    outcomes = DeliveryOutcomes(
        any_ctx.db,
        DispatcherSettings(),
        "fake",
        limiter=world.limiter,
        clock=world.clock.wall,
    )
    item = await world.one()
    assert await outcomes.transient(item, "down") is not None
    item = await _reclaim(world, item)
    await outcomes.sent(item)
    await outcomes.sent(_stolen(item))  # lost, and nothing to count it on
    assert (await world.row(item.delivery_id)).status == DeliveryStatus.SENT.value


# ---- which outcome an error means -------------------------------------------
@pytest.mark.parametrize(
    ("error", "status", "last_error", "state"),
    [
        (TimeoutError(), "failed", "send timed out before its claim's lease ran out", "failed"),
        (RetryLater(3.0, scope="chat:a", reason="429"), "pending", "429", "rate_limited"),
        (DestinationGone("chat deleted"), "dead", "chat deleted", "dead"),
        (PermanentError("too long"), "dead", "too long", "dead"),
        (TransientError("502 Bad Gateway"), "failed", "502 Bad Gateway", "failed"),
        (RuntimeError("boom"), "failed", "RuntimeError: boom", "failed"),
    ],
)
async def test_failed_maps_each_error_to_its_outcome(
    any_ctx: HubContext, error: Exception, status: str, last_error: str, state: str
) -> None:
    world = World(any_ctx)
    item = await world.one()
    permit = await world.limiter.acquire(LIMITS)
    await world.clock.advance(1.0)
    other = await world.limiter.acquire(LIMITS[:1])  # a later send, not refused
    hold = await world.outcomes.failed(item, error, LIMITS, permit)
    row = await world.row(item.delivery_id)
    assert (row.status, row.last_error) == (status, last_error)
    assert (hold is None) == (status == "dead")
    assert _states(world) == {state: 1}
    if isinstance(error, RetryLater):  # exactly the refused send's slots come back
        assert world.limiter.stamps(LIMITS[0]) == [other.at]
        assert world.limiter.stamps(LIMITS[1]) == []
    else:
        assert world.limiter.stamps(LIMITS[0]) == [permit.at, other.at]
        assert world.limiter.stamps(LIMITS[1]) == [permit.at]


def test_describe_prefers_the_reason() -> None:
    assert describe(TransientError("502")) == "502"
    assert describe(RuntimeError("boom")) == "RuntimeError: boom"
    blank = TransientError("")
    assert describe(blank) == "TransientError: "


# ---- what operators read in the log ---------------------------------------
def _logged(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [
        (r.levelname, r.getMessage()) for r in caplog.records if r.name == "core.delivery_outcomes"
    ]


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="core.delivery_outcomes")
    return caplog


async def test_log_lost_claim(any_ctx: HubContext, logs: pytest.LogCaptureFixture) -> None:
    world = World(any_ctx)
    item = _stolen(await world.one())
    await world.outcomes.sent(item)
    assert _logged(logs) == [
        (
            "WARNING",
            f"delivery {item.delivery_id}: claim lost before its result was recorded "
            "(lease ran out)",
        )
    ]


async def test_log_retry_later(any_ctx: HubContext, logs: pytest.LogCaptureFixture) -> None:
    world = World(any_ctx)
    item = await world.one()
    permit = await world.limiter.acquire(LIMITS)
    await world.outcomes.retry_later(item, RetryLater(4.0, scope="chat:a"), LIMITS, permit)
    assert _logged(logs) == [("WARNING", "fake rate limited (chat:a) for 4.0s")]


async def test_log_transient(any_ctx: HubContext, logs: pytest.LogCaptureFixture) -> None:
    world = World(any_ctx, max_attempts=2, backoff_base_seconds=2.0)
    world.jitter.factor = 1.25
    item = await world.one()
    await world.outcomes.transient(item, "502 Bad Gateway")
    item = await _reclaim(world, item)
    await world.outcomes.transient(item, "503 Unavailable")
    n = item.delivery_id
    assert _logged(logs) == [
        ("INFO", f"fake delivery {n} failed (502 Bad Gateway); retry in 2.5s"),
        ("WARNING", f"fake delivery {n} dead after 2 attempts: 503 Unavailable"),
    ]


async def test_log_permanent(any_ctx: HubContext, logs: pytest.LogCaptureFixture) -> None:
    world = World(any_ctx)
    item = await world.one()
    await world.outcomes.permanent(item, "message rejected")
    assert _logged(logs) == [
        ("WARNING", f"fake delivery {item.delivery_id} rejected: message rejected")
    ]


async def test_log_moved_and_gone(any_ctx: HubContext, logs: pytest.LogCaptureFixture) -> None:
    world = World(any_ctx)
    item = await world.one("-100")
    await world.outcomes.moved(item, "-100", "-100200")
    await world.outcomes.gone(item, "chat deleted")
    assert _logged(logs) == [
        ("INFO", "fake destination -100 moved to -100200"),
        (
            "WARNING",
            f"destination of subscription {item.subscription_id} is gone (chat deleted); "
            "deactivating",
        ),
    ]
