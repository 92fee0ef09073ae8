"""Quiet hours, digests and caps in the outbox, on every backend, on a fake clock.

Held alerts are rows with a due time: these tests publish, run dispatcher rounds
at chosen moments, and check what went out, as what, and what the rows say.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.channels import TransientError
from core.context import HubContext
from core.dispatcher import Dispatcher
from core.settings import DispatcherSettings
from domain.delivery_prefs import HoldReason
from storage.models import Delivery, DeliveryStatus
from tests.fakes import RecordingChannel, signal
from tests.manual_clock import ManualClock
from tests.storage.test_dispatcher import _deliveries, _sub

HOUR = 3600.0


def _dispatcher(ctx: HubContext, clock: ManualClock, **settings: object) -> Dispatcher:
    # The publisher stamps rows with the real clock, which this test clock runs
    # ahead of: alerts sent one by one must not expire on the way.
    settings.setdefault("ttl_seconds", 7 * 86_400)
    dispatcher = Dispatcher(
        ctx.db,
        DispatcherSettings(**settings),  # type: ignore[arg-type]
        clock=clock.wall,
        monotonic=clock,
        timer=clock.call_later,
        sleep=clock.sleep,
    )
    return dispatcher


def _quiet_around(now: datetime, before: float = HOUR, after: float = HOUR) -> str:
    """Quiet hours (UTC) that started ``before`` seconds ago and end ``after`` from now."""
    start = now - timedelta(seconds=before)
    end = now + timedelta(seconds=after)
    return f"quiet {start:%H:%M}-{end:%H:%M} UTC"


async def _publish(ctx: HubContext, *ids: str, minutes_apart: int = 1) -> None:
    base = datetime.now(UTC) - timedelta(minutes=len(ids) * minutes_apart)
    for n, signal_id in enumerate(ids):
        stamp = base + timedelta(minutes=n * minutes_apart)
        await ctx.publisher.publish(signal(signal_id, timestamp=stamp.isoformat()))


def _by_status(rows: list[Delivery]) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in rows:
        out[row.status] = out.get(row.status, 0) + 1
    return out


async def test_quiet_hours_hold_alerts_and_deliver_one_digest_newest_first(
    any_ctx: HubContext,
) -> None:
    clock = ManualClock()
    channel = RecordingChannel()
    dispatcher = _dispatcher(any_ctx, clock)
    dispatcher.register(channel)
    await _sub(any_ctx, "a")
    await any_ctx.services.delivery.apply("fake", "a", _quiet_around(clock.wall()))
    await _publish(any_ctx, "s1", "s2", "s3")

    assert await dispatcher.run_once("fake") == 3
    assert channel.sent == [] and channel.digests == []
    rows = await _deliveries(any_ctx)
    assert {r.status for r in rows} == {DeliveryStatus.HELD.value}
    assert {r.held_reason for r in rows} == {HoldReason.QUIET.value}
    due = {r.next_attempt_at for r in rows}
    assert len(due) == 1 and timedelta(minutes=59) < due.pop() - clock.wall() <= timedelta(hours=1)

    await clock.advance(30 * 60)  # still quiet: nothing is due
    assert await dispatcher.run_once("fake") == 0

    await clock.advance(31 * 60)
    assert await dispatcher.run_once("fake") == 3
    assert channel.sent == []
    [digest] = channel.digests
    assert [i.signal.signal_id for i in digest.items] == ["s3", "s2", "s1"]
    assert digest.reason is HoldReason.QUIET and digest.omitted == 0
    assert digest.age_of(digest.items[0]) == "1h 1m ago"
    rows = await _deliveries(any_ctx)
    assert {r.status for r in rows} == {DeliveryStatus.SENT.value}
    assert len({r.batch_id for r in rows}) == 1 and rows[0].batch_id is not None
    assert {r.message_id for r in rows} == {"m1"}

    await clock.advance(HOUR)
    assert await dispatcher.run_once("fake") == 0  # nothing twice
    assert len(channel.digests) == 1


async def test_a_restart_while_alerts_are_held_loses_nothing_and_sends_nothing_twice(
    any_ctx: HubContext,
) -> None:
    clock = ManualClock()
    await _sub(any_ctx, "a")
    await any_ctx.services.delivery.apply("fake", "a", _quiet_around(clock.wall()))
    await _publish(any_ctx, "s1", "s2")
    first = _dispatcher(any_ctx, clock)
    first.register(RecordingChannel())
    assert await first.run_once("fake") == 2  # held, then this process is gone

    await clock.advance(HOUR + 60)
    # The next process claims the digest and dies before recording it ...
    crashed_channel = RecordingChannel()
    crashed = _dispatcher(any_ctx, clock, lease_seconds=30)
    crashed.register(crashed_channel)
    async with any_ctx.db.transaction() as session:
        from storage.repositories import deliveries as repo

        now = clock.wall()
        claimed = await repo.claim_due("fake", now, now + timedelta(seconds=30), 10, session=session)
    assert len(claimed) == 2
    # ... so nobody sends it until the lease ends, and then exactly once.
    channel = RecordingChannel()
    survivor = _dispatcher(any_ctx, clock)
    survivor.register(channel)
    assert await survivor.run_once("fake") == 0
    await clock.advance(31)
    assert await survivor.run_once("fake") == 2
    assert [[i.signal.signal_id for i in d.items] for d in channel.digests] == [["s2", "s1"]]
    assert await survivor.run_once("fake") == 0


async def test_digest_mode_batches_matches_into_one_message_per_period(
    any_ctx: HubContext,
) -> None:
    clock = ManualClock()
    channel = RecordingChannel()
    dispatcher = _dispatcher(any_ctx, clock)
    dispatcher.register(channel)
    await _sub(any_ctx, "a")
    await _sub(any_ctx, "b")  # no settings: unaffected
    await any_ctx.services.delivery.apply("fake", "a", "digest 15m")
    await _publish(any_ctx, "s1", "s2")
    assert await dispatcher.run_once("fake") == 4
    assert channel.sent_to("b") == ["s1", "s2"]
    assert channel.sent_to("a") == []
    rows = [r for r in await _deliveries(any_ctx) if r.status == DeliveryStatus.HELD.value]
    boundary = rows[0].next_attempt_at
    assert boundary.minute % 15 == 0 and boundary.second == 0
    assert timedelta(0) < boundary - clock.wall() <= timedelta(minutes=15)

    await clock.advance((boundary - clock.wall()).total_seconds() - 5)
    await _publish(any_ctx, "s3")  # joins the same period's digest
    assert await dispatcher.run_once("fake") == 2  # s3 for a (held) and for b (sent)
    assert channel.digests == []
    await clock.advance(6)
    assert await dispatcher.run_once("fake") == 3
    [digest] = channel.digests
    assert digest.reason is HoldReason.DIGEST
    assert [i.signal.signal_id for i in digest.items] == ["s3", "s2", "s1"]


async def test_a_cap_folds_the_overflow_into_the_next_digest(any_ctx: HubContext) -> None:
    clock = ManualClock()
    channel = RecordingChannel()
    dispatcher = _dispatcher(any_ctx, clock)
    dispatcher.register(channel)
    await _sub(any_ctx, "a")
    await any_ctx.services.delivery.apply("fake", "a", "max 2/h")
    await _publish(any_ctx, "s1", "s2", "s3", "s4", "s5")
    assert await dispatcher.run_once("fake") == 5
    assert channel.sent_to("a") == ["s1", "s2"]
    rows = await _deliveries(any_ctx)
    held = [r for r in rows if r.status == DeliveryStatus.HELD.value]
    assert [r.held_reason for r in held] == [HoldReason.CAP.value] * 3

    await clock.advance(HOUR + 1)
    assert await dispatcher.run_once("fake") == 3
    [digest] = channel.digests
    assert digest.reason is HoldReason.CAP
    assert [i.signal.signal_id for i in digest.items] == ["s5", "s4", "s3"]
    # The digest counted as one message: one more alert fits the hour, then none.
    await _publish(any_ctx, "s6", "s7")
    assert await dispatcher.run_once("fake") == 2
    assert channel.sent_to("a") == ["s1", "s2", "s6"]
    assert _by_status(await _deliveries(any_ctx)) == {"sent": 6, "held": 1}


async def test_held_alerts_past_the_digest_ttl_are_left_out_and_counted(
    any_ctx: HubContext,
) -> None:
    clock = ManualClock()
    channel = RecordingChannel()
    dispatcher = _dispatcher(any_ctx, clock, digest_ttl_seconds=45 * 60)
    dispatcher.register(channel)
    await _sub(any_ctx, "a")
    await any_ctx.services.delivery.apply("fake", "a", _quiet_around(clock.wall()))
    await _publish(any_ctx, "old1", "old2")
    assert await dispatcher.run_once("fake") == 2
    await clock.advance(30 * 60)
    # The publisher stamps rows with the real clock; this one matched 30 min later.
    await _publish(any_ctx, "new")
    async with any_ctx.db.transaction() as session:
        from sqlalchemy import update

        seq = (await any_ctx.publisher.get("new")).seq  # type: ignore[union-attr]
        await session.execute(
            update(Delivery)
            .where(Delivery.signal_seq == seq)  # type: ignore[arg-type]
            .values(created_at=clock.wall())
        )
    assert await dispatcher.run_once("fake") == 1
    await clock.advance(31 * 60)
    assert await dispatcher.run_once("fake") == 3
    [digest] = channel.digests
    assert [i.signal.signal_id for i in digest.items] == ["new"]
    assert digest.omitted == 2
    assert _by_status(await _deliveries(any_ctx)) == {"sent": 1, "expired": 2}


async def test_changing_the_settings_releases_held_alerts_at_once(any_ctx: HubContext) -> None:
    clock = ManualClock()
    channel = RecordingChannel()
    dispatcher = _dispatcher(any_ctx, clock)
    dispatcher.register(channel)
    await _sub(any_ctx, "a")
    await any_ctx.services.delivery.apply("fake", "a", _quiet_around(clock.wall(), after=5 * HOUR))
    await _publish(any_ctx, "s1", "s2")
    assert await dispatcher.run_once("fake") == 2
    assert channel.digests == []
    prefs = await any_ctx.services.delivery.apply("fake", "a", "quiet off")
    assert prefs.empty
    assert await dispatcher.run_once("fake") == 2
    [digest] = channel.digests
    assert [i.signal.signal_id for i in digest.items] == ["s2", "s1"]
    await _publish(any_ctx, "s3")
    assert await dispatcher.run_once("fake") == 1
    assert channel.sent_to("a") == ["s3"]  # settings off: alerts go one by one again


async def test_a_digest_split_in_parts_records_each_part_and_retries_only_the_rest(
    any_ctx: HubContext,
) -> None:
    clock = ManualClock()
    channel = RecordingChannel()
    channel.per_part = 2
    dispatcher = _dispatcher(any_ctx, clock, backoff_base_seconds=10)
    dispatcher.register(channel)
    await _sub(any_ctx, "a")
    await any_ctx.services.delivery.apply("fake", "a", _quiet_around(clock.wall()))
    await _publish(any_ctx, "s1", "s2", "s3", "s4", "s5")
    assert await dispatcher.run_once("fake") == 5

    failures = iter([TransientError("telegram: 502")])

    def second_part_fails_once(digest: object) -> None:
        if getattr(digest, "part", 1) == 2:
            error = next(failures, None)
            if error is not None:
                raise error

    channel.digest_behaviour = second_part_fails_once
    await clock.advance(HOUR + 60)
    assert await dispatcher.run_once("fake") == 5
    assert [(d.part, d.parts) for d in channel.digests] == [(1, 3)]
    rows = await _deliveries(any_ctx)
    assert _by_status(rows) == {"sent": 2, "failed": 1, "held": 2}
    assert all(r.held_reason == HoldReason.QUIET.value for r in rows)

    await clock.advance(15)
    assert await dispatcher.run_once("fake") == 3
    sent = [[i.signal.signal_id for i in d.items] for d in channel.digests]
    assert sent == [["s5", "s4"], ["s3", "s2"], ["s1"]]
    assert _by_status(await _deliveries(any_ctx)) == {"sent": 5}


async def test_held_alerts_of_an_unsubscribed_destination_are_not_sent(
    any_ctx: HubContext,
) -> None:
    clock = ManualClock()
    channel = RecordingChannel()
    dispatcher = _dispatcher(any_ctx, clock)
    dispatcher.register(channel)
    await _sub(any_ctx, "a")
    await any_ctx.services.delivery.apply("fake", "a", "digest 15m")
    await _publish(any_ctx, "s1")
    assert await dispatcher.run_once("fake") == 1
    await any_ctx.services.subscriptions.unsubscribe("fake", "a")
    await clock.advance(16 * 60)
    assert await dispatcher.run_once("fake") == 1
    assert channel.digests == [] and channel.sent == []
    assert _by_status(await _deliveries(any_ctx)) == {"dead": 1}


@pytest.mark.parametrize("line", ["quiet 25:00-07:00 UTC", "digest 1m", "max 0/h", "quiet 1-2"])
async def test_bad_settings_change_nothing(any_ctx: HubContext, line: str) -> None:
    from domain.errors import InvalidInput

    await _sub(any_ctx, "a")
    await any_ctx.services.delivery.apply("fake", "a", "digest 15m")
    with pytest.raises(InvalidInput):
        await any_ctx.services.delivery.apply("fake", "a", line)
    assert (await any_ctx.services.delivery.get("fake", "a")).lines() == ["digest 15m"]


async def test_a_digest_larger_than_a_claim_batch_goes_out_whole(any_ctx: HubContext) -> None:
    """The batch limit takes 2 rows; the digest still carries all 5 held alerts."""
    clock = ManualClock()
    channel = RecordingChannel()
    dispatcher = _dispatcher(any_ctx, clock, batch_size=2)
    dispatcher.register(channel)
    await _sub(any_ctx, "a")
    await any_ctx.services.delivery.apply("fake", "a", _quiet_around(clock.wall()))
    await _publish(any_ctx, "s1", "s2", "s3", "s4", "s5")
    while await dispatcher.run_once("fake"):
        pass  # held, two at a time
    await clock.advance(HOUR + 60)
    assert await dispatcher.run_once("fake") == 5
    [digest] = channel.digests
    assert [i.signal.signal_id for i in digest.items] == ["s5", "s4", "s3", "s2", "s1"]
