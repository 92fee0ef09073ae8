"""The outbox queries one by one, on a fixed clock: what a claim takes (open, due,
this platform, not held by a live lease, lowest ids first, at most ``limit``), what
it returns, and what ``finish``, ``reschedule``, ``expire_older_than`` and
``kill_open_for_subscription`` change, only under the claim's token.

``test_claims.py`` races real dispatchers; these pin each condition of the
queries, so dropping one (two dispatchers taking the same delivery) fails here
deterministically."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

from core.context import HubContext
from domain.signals import Signal
from storage.database import Database
from storage.models import Delivery, DeliveryStatus, Subscription
from storage.repositories import deliveries as repo
from storage.repositories import signals as signals_repo
from tests.fakes import signal

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)
LEASE = timedelta(seconds=30)


async def _subscription(ctx: HubContext, dest: str, platform: str = "fake") -> int:
    user = await ctx.services.accounts.resolve(platform, dest)
    info, _ = await ctx.services.subscriptions.subscribe(platform, dest, user.id)
    return info.id


async def _signal(ctx: HubContext, name: str) -> int:
    async with ctx.db.transaction() as session:
        seq, _ = await signals_repo.insert_signal(Signal.parse(signal(name)), session=session)
    return seq


async def _enqueue(ctx: HubContext, seq: int, subs: list[int], now: datetime = T0) -> int:
    async with ctx.db.transaction() as session:
        return await repo.enqueue(seq, subs, now, session=session)


async def _claim(
    ctx: HubContext, now: datetime, limit: int = 10, platform: str = "fake"
) -> list[repo.Claimed]:
    async with ctx.db.transaction() as session:
        return await repo.claim_due(platform, now, now + LEASE, limit, session=session)


async def _rows(ctx: HubContext) -> dict[int, Delivery]:
    async with ctx.db.session() as session:
        rows = await session.execute(select(Delivery).order_by(Delivery.id))  # type: ignore[arg-type]
        return {r.id: r for r in rows.scalars().all() if r.id is not None}


async def _set(ctx: HubContext, delivery_id: int, **values: object) -> None:
    async with ctx.db.transaction() as session:
        await session.execute(
            update(Delivery).where(Delivery.id == delivery_id).values(**values)  # type: ignore[arg-type]
        )


async def _one_delivery(ctx: HubContext) -> int:
    sub = await _subscription(ctx, "a")
    assert await _enqueue(ctx, await _signal(ctx, "one"), [sub]) == 1
    (delivery_id,) = await _rows(ctx)
    return delivery_id


async def _two_claimed(ctx: HubContext) -> tuple[repo.Claimed, repo.Claimed]:
    subs = [await _subscription(ctx, d) for d in "ab"]
    await _enqueue(ctx, await _signal(ctx, "s1"), subs)
    a, b = await _claim(ctx, T0)
    return a, b


# ---- enqueue ---------------------------------------------------------------


async def test_enqueue_adds_one_pending_row_per_subscription_once(any_ctx: HubContext) -> None:
    a, b = await _subscription(any_ctx, "a"), await _subscription(any_ctx, "b", "other")
    seq = await _signal(any_ctx, "s1")
    assert await _enqueue(any_ctx, seq, []) == 0
    assert await _enqueue(any_ctx, seq, [a, b]) == 2
    assert await _enqueue(any_ctx, seq, [a, b]) == 0  # again: nothing duplicated
    rows = list((await _rows(any_ctx)).values())
    assert [(r.subscription_id, r.platform) for r in rows] == [(a, "fake"), (b, "other")]
    for r in rows:
        assert (r.signal_seq, r.status, r.attempts) == (seq, DeliveryStatus.PENDING.value, 0)
        assert r.next_attempt_at == T0 and r.created_at == T0
        assert r.claimed_until is None and r.claim_token is None


async def test_enqueue_stores_times_as_utc_whatever_their_zone(any_ctx: HubContext) -> None:
    sub = await _subscription(any_ctx, "a")
    now = (T0 + timedelta(microseconds=500)).astimezone(timezone(timedelta(hours=2)))
    assert await _enqueue(any_ctx, await _signal(any_ctx, "s1"), [sub], now=now) == 1
    (row,) = (await _rows(any_ctx)).values()
    assert row.created_at == row.next_attempt_at == now
    assert row.created_at.utcoffset() == timedelta(0)
    # Due at that very instant, and not a microsecond before.
    assert await _claim(any_ctx, T0 + timedelta(microseconds=499)) == []
    assert [c.delivery_id for c in await _claim(any_ctx, T0 + timedelta(microseconds=500))] == [row.id]


# ---- claim_due -------------------------------------------------------------


async def test_a_live_claim_is_not_taken_again_until_its_lease_has_passed(
    any_ctx: HubContext,
) -> None:
    delivery_id = await _one_delivery(any_ctx)
    (first,) = await _claim(any_ctx, T0)
    assert first.delivery_id == delivery_id
    assert len(first.token) == 32  # fits deliveries.claim_token (32 characters)
    # Another dispatcher, while the lease runs, up to and including its last instant.
    assert await _claim(any_ctx, T0) == []
    assert await _claim(any_ctx, T0 + LEASE) == []
    # Once the lease has passed (a crashed worker), the delivery is retaken.
    (second,) = await _claim(any_ctx, T0 + LEASE + TICK)
    assert second.delivery_id == delivery_id and second.token != first.token
    row = (await _rows(any_ctx))[delivery_id]
    assert row.claim_token == second.token and row.claimed_until == T0 + 2 * LEASE + TICK


async def test_only_open_due_deliveries_of_the_platform_are_claimed(any_ctx: HubContext) -> None:
    subs = [await _subscription(any_ctx, d) for d in "abcdef"]
    other = await _subscription(any_ctx, "z", "other")
    seq = await _signal(any_ctx, "s1")
    await _enqueue(any_ctx, seq, [*subs, other])
    ids = list(await _rows(any_ctx))
    pending, failed, sent, dead, expired, later, other_platform = ids
    await _set(any_ctx, failed, status=DeliveryStatus.FAILED.value)
    await _set(any_ctx, sent, status=DeliveryStatus.SENT.value)
    await _set(any_ctx, dead, status=DeliveryStatus.DEAD.value)
    await _set(any_ctx, expired, status=DeliveryStatus.EXPIRED.value)
    await _set(any_ctx, later, next_attempt_at=T0 + TICK)
    assert [c.delivery_id for c in await _claim(any_ctx, T0)] == [pending, failed]
    # Due exactly at its time.
    assert [c.delivery_id for c in await _claim(any_ctx, T0 + TICK)] == [later]
    assert [c.delivery_id for c in await _claim(any_ctx, T0 + TICK, platform="other")] == [
        other_platform
    ]


async def test_a_claim_takes_at_most_limit_lowest_ids_first(any_ctx: HubContext) -> None:
    subs = [await _subscription(any_ctx, d) for d in "abcde"]
    await _enqueue(any_ctx, await _signal(any_ctx, "s1"), subs)
    ids = list(await _rows(any_ctx))
    first = await _claim(any_ctx, T0, limit=2)
    assert [c.delivery_id for c in first] == ids[:2]
    assert len({c.token for c in first}) == 1
    rest = await _claim(any_ctx, T0, limit=10)
    assert [c.delivery_id for c in rest] == ids[2:]
    assert rest[0].token != first[0].token
    rows = await _rows(any_ctx)
    assert [rows[i].claim_token for i in ids] == [first[0].token] * 2 + [rest[0].token] * 3
    assert all(rows[i].claimed_until == T0 + LEASE for i in ids)
    assert await _claim(any_ctx, T0) == []


async def test_lowest_ids_go_first_whatever_their_due_time_or_status(
    any_ctx: HubContext,
) -> None:
    """The oldest deliveries first, not the order of the due index (platform,
    status, next_attempt_at): later rows here are failed and due earlier."""
    subs = [await _subscription(any_ctx, d) for d in "abcd"]
    await _enqueue(any_ctx, await _signal(any_ctx, "s1"), subs)
    ids = list(await _rows(any_ctx))
    # Updated newest first: on PostgreSQL the heap then holds them in reverse order too.
    for n, delivery_id in reversed(list(enumerate(ids))):
        await _set(
            any_ctx,
            delivery_id,
            next_attempt_at=T0 - timedelta(seconds=n),
            status=DeliveryStatus.FAILED.value if n else DeliveryStatus.PENDING.value,
        )
    assert [c.delivery_id for c in await _claim(any_ctx, T0, limit=2)] == ids[:2]
    assert [c.delivery_id for c in await _claim(any_ctx, T0, limit=1)] == ids[2:3]


async def test_a_claim_skips_rows_another_worker_is_claiming(any_ctx: HubContext) -> None:
    """PostgreSQL: while one worker's claim is not yet committed, another neither
    waits for it nor takes its rows (SELECT ... FOR UPDATE SKIP LOCKED); it takes
    the rest. SQLite serialises writers instead, so this runs on PostgreSQL only."""
    if any_ctx.db.is_sqlite:
        pytest.skip("SQLite has one writer at a time")
    subs = [await _subscription(any_ctx, d) for d in "ab"]
    await _enqueue(any_ctx, await _signal(any_ctx, "s1"), subs)
    first_id, second_id = list(await _rows(any_ctx))
    other = Database(any_ctx.db.url)
    other.connect()
    try:
        async with any_ctx.db.transaction() as session:
            mine = await repo.claim_due("fake", T0, T0 + LEASE, 1, session=session)
            assert [c.delivery_id for c in mine] == [first_id]
            # Still uncommitted: the other worker must not wait for it
            # (the 10 s is a hang guard, not a timing check).
            async with other.transaction() as other_session:
                theirs = await asyncio.wait_for(
                    repo.claim_due("fake", T0, T0 + LEASE, 10, session=other_session), 10
                )
            assert [c.delivery_id for c in theirs] == [second_id]
    finally:
        await other.dispose()
    rows = await _rows(any_ctx)
    assert rows[first_id].claim_token == mine[0].token
    assert rows[second_id].claim_token == theirs[0].token


async def test_a_claim_returns_what_the_sender_needs(any_ctx: HubContext) -> None:
    a, b = await _subscription(any_ctx, "dest-a"), await _subscription(any_ctx, "dest-b")
    seq = await _signal(any_ctx, "s1")
    await _enqueue(any_ctx, seq, [a, b], now=T0 - timedelta(minutes=5))
    id_a, id_b = list(await _rows(any_ctx))
    await _set(any_ctx, id_b, attempts=3)
    async with any_ctx.db.transaction() as session:
        await session.execute(
            update(Subscription).where(Subscription.id == b).values(active=False)  # type: ignore[arg-type]
        )
    got = await _claim(any_ctx, T0)
    token = got[0].token
    assert got == [
        repo.Claimed(
            id_a, a, seq, 0, T0 - timedelta(minutes=5), "dest-a", True, token, prefs={}
        ),
        repo.Claimed(
            id_b, b, seq, 3, T0 - timedelta(minutes=5), "dest-b", False, token, prefs={}
        ),
    ]


# ---- finish and reschedule -------------------------------------------------


async def test_finish_records_the_outcome_only_for_its_delivery_and_token(
    any_ctx: HubContext,
) -> None:
    a, b = await _two_claimed(any_ctx)
    assert a.token == b.token  # one batch, one token: the id must still match
    async with any_ctx.db.transaction() as session:
        assert not await repo.finish(
            a.delivery_id, "not-the-token", DeliveryStatus.SENT, session=session, now=T0
        )
        assert await repo.finish(
            a.delivery_id, a.token, DeliveryStatus.SENT, session=session, now=T0 + TICK
        )
    rows = await _rows(any_ctx)
    done, untouched = rows[a.delivery_id], rows[b.delivery_id]
    assert (done.status, done.attempts, done.sent_at, done.last_error) == (
        DeliveryStatus.SENT.value,
        1,
        T0 + TICK,
        None,
    )
    assert done.claim_token is None and done.claimed_until is None
    assert (untouched.status, untouched.attempts, untouched.claim_token) == (
        DeliveryStatus.PENDING.value,
        0,
        b.token,
    )
    assert untouched.sent_at is None
    # A second result under the same token finds nothing to change.
    async with any_ctx.db.transaction() as session:
        assert not await repo.finish(
            a.delivery_id, a.token, DeliveryStatus.DEAD, session=session, now=T0
        )


async def test_a_final_failure_keeps_its_error_and_no_sent_time(any_ctx: HubContext) -> None:
    delivery_id = await _one_delivery(any_ctx)
    (c,) = await _claim(any_ctx, T0)
    async with any_ctx.db.transaction() as session:
        assert await repo.finish(
            c.delivery_id,
            c.token,
            DeliveryStatus.DEAD,
            session=session,
            now=T0,
            error="x" * 600,
            attempts_delta=0,
        )
    row = (await _rows(any_ctx))[delivery_id]
    assert (row.status, row.attempts, row.sent_at) == (DeliveryStatus.DEAD.value, 0, None)
    assert row.last_error == "x" * 500


async def test_reschedule_puts_the_delivery_back_under_its_token_only(
    any_ctx: HubContext,
) -> None:
    a, b = await _two_claimed(any_ctx)
    retry_at = T0 + timedelta(seconds=7)
    async with any_ctx.db.transaction() as session:
        assert not await repo.reschedule(
            a.delivery_id, "stale", retry_at, session=session, error="e", count_attempt=True
        )
        assert await repo.reschedule(
            a.delivery_id, a.token, retry_at, session=session, error="e" * 600, count_attempt=True
        )
        # Rate limited, not failed: the status and the attempt count stay.
        assert await repo.reschedule(
            b.delivery_id, b.token, retry_at, session=session, error="wait", count_attempt=False
        )
    rows = await _rows(any_ctx)
    ra, rb = rows[a.delivery_id], rows[b.delivery_id]
    assert (ra.status, ra.attempts, ra.last_error) == (DeliveryStatus.FAILED.value, 1, "e" * 500)
    assert (rb.status, rb.attempts, rb.last_error) == (DeliveryStatus.PENDING.value, 0, "wait")
    for r in (ra, rb):
        assert r.next_attempt_at == retry_at
        assert r.claim_token is None and r.claimed_until is None
    # Back in the queue at its time, not before.
    assert await _claim(any_ctx, retry_at - TICK) == []
    assert [c.delivery_id for c in await _claim(any_ctx, retry_at)] == [
        a.delivery_id,
        b.delivery_id,
    ]


# ---- expiry and killing ----------------------------------------------------


async def test_expiry_takes_old_open_unclaimed_deliveries_only(any_ctx: HubContext) -> None:
    subs = [await _subscription(any_ctx, d) for d in "abcdef"]
    seq = await _signal(any_ctx, "s1")
    await _enqueue(any_ctx, seq, subs, now=T0 - timedelta(hours=1))
    old, failed, at_cutoff, held, lapsed, sent = list(await _rows(any_ctx))
    cutoff = T0 - timedelta(minutes=1)
    await _set(any_ctx, failed, status=DeliveryStatus.FAILED.value)
    await _set(any_ctx, at_cutoff, created_at=cutoff)
    await _set(any_ctx, held, claimed_until=T0, claim_token="live")  # lease to its last instant
    await _set(any_ctx, lapsed, claimed_until=T0 - TICK, claim_token="lapsed")
    await _set(any_ctx, sent, status=DeliveryStatus.SENT.value)
    async with any_ctx.db.transaction() as session:
        assert await repo.expire_older_than(cutoff, T0, session=session) == 3
        assert await repo.expire_older_than(cutoff, T0, session=session) == 0  # none left
    rows = await _rows(any_ctx)
    for i in (old, failed, lapsed):
        assert rows[i].status == DeliveryStatus.EXPIRED.value
        assert rows[i].claim_token is None and rows[i].claimed_until is None
        assert rows[i].last_error == "expired: older than TTL"
    assert rows[at_cutoff].status == DeliveryStatus.PENDING.value
    assert rows[held].status == DeliveryStatus.PENDING.value and rows[held].claim_token == "live"
    assert rows[sent].status == DeliveryStatus.SENT.value and rows[sent].last_error is None


async def test_killing_a_subscription_ends_its_open_deliveries_only(any_ctx: HubContext) -> None:
    a, b = await _subscription(any_ctx, "a"), await _subscription(any_ctx, "b")
    for name in ("s1", "s2", "s3"):
        await _enqueue(any_ctx, await _signal(any_ctx, name), [a, b])
    ids = list(await _rows(any_ctx))  # s1→a, s1→b, s2→a, s2→b, s3→a, s3→b
    await _set(any_ctx, ids[0], status=DeliveryStatus.SENT.value)
    await _set(any_ctx, ids[2], status=DeliveryStatus.FAILED.value, claim_token="t", claimed_until=T0)
    async with any_ctx.db.transaction() as session:
        assert await repo.kill_open_for_subscription(a, "gone" * 200, session=session) == 2
        assert await repo.kill_open_for_subscription(a, "again", session=session) == 0
    rows = await _rows(any_ctx)
    assert [rows[i].status for i in ids] == ["sent", "pending", "dead", "pending", "dead", "pending"]
    for i in (ids[2], ids[4]):
        assert rows[i].last_error == ("gone" * 200)[:500]
        assert rows[i].claim_token is None and rows[i].claimed_until is None
    assert rows[ids[0]].last_error is None


async def test_signals_by_seq(any_ctx: HubContext) -> None:
    seqs = [await _signal(any_ctx, name) for name in ("s1", "s2", "s3")]
    async with any_ctx.db.session() as session:
        got = await repo.signals_by_seq([seqs[0], seqs[2]], session=session)
    assert sorted(got) == [seqs[0], seqs[2]]
    assert got[seqs[2]].signal_id == "s3"
