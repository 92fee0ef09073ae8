"""Corrections and retractions on the live tail: a revision committed by another
process (another Database and Publisher here) reaches this process's bus as an
update, by the poll or a notification's wake; never before the signal it revises,
and a revision this process offered goes out once though the tail reads it again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from core.bus import LiveBus
from core.context import HubContext
from core.live_tail import SignalTail
from core.publisher import Publisher
from domain.signals import Signal
from storage.database import Database
from storage.repositories import signals as signals_repo
from tests.core.test_live_tail import FakeListener
from tests.fakes import signal, wait_for

Seen = list[tuple[int | None, int, str]]


class Watch:
    """A bus with a tail on it, and what went out: new signals and updates."""

    def __init__(self, db: Database, **kw: Any) -> None:
        self.bus = LiveBus()
        self.new: Seen = []
        self.updates: Seen = []
        self.bus.subscribe(lambda s: self.new.append(self._entry(s)))
        self.bus.subscribe_updates(lambda s: self.updates.append(self._entry(s)))
        kw.setdefault("poll_seconds", 3600)  # only poll_once() and wakes read
        kw.setdefault("fallback_poll_seconds", 3600)
        self.tail = SignalTail(db, self.bus, **kw)

    @staticmethod
    def _entry(s: Signal) -> tuple[int | None, int, str]:
        return (s.seq, s.revision, f"{s.status.value}:{s.headline}")

    async def start(self) -> None:
        await self.tail.start()
        await wait_for(lambda: bool(self.tail._wake._waiters))


@pytest.fixture
async def other(any_ctx: HubContext) -> AsyncIterator[Publisher]:
    """Another process's publisher on the same database (no live feed of its own here)."""
    db = Database(any_ctx.db.url)
    db.connect()
    try:
        yield Publisher(db)
    finally:
        await db.dispose()


async def _latest_revision_id(db: Database) -> int:
    async with db.session() as session:
        return await signals_repo.latest_revision_id(session=session)


async def test_the_poll_puts_another_process_revisions_on_the_bus(
    any_ctx: HubContext, other: Publisher
) -> None:
    watch = Watch(any_ctx.db)
    await watch.start()
    try:
        seq = (await other.publish(signal("x1", headline="first"))).signal.seq
        assert await watch.tail.poll_once() == 1
        assert watch.new == [(seq, 0, "active:first")] and watch.updates == []
        await other.publish(signal("x1", headline="corrected"))
        await other.publish({"signal_id": "x1", "status": "retracted"})
        assert await watch.tail.poll_once() == 2  # two log rows, both read as it is now
        assert watch.updates == [(seq, 2, "retracted:corrected")]
        assert watch.tail.revision_cursor == await _latest_revision_id(any_ctx.db)
        assert await watch.tail.poll_once() == 0
        assert watch.new == [(seq, 0, "active:first")]
    finally:
        await watch.tail.stop()


async def test_a_notification_of_a_revision_wakes_the_tail(
    any_ctx: HubContext, other: Publisher
) -> None:
    listener = FakeListener()
    watch = Watch(any_ctx.db, listener=listener)
    await watch.start()
    try:
        seq = (await other.publish(signal("x1"))).signal.seq
        listener.notify(str(seq))
        await wait_for(lambda: len(watch.new) == 1)
        await other.publish({"signal_id": "x1", "status": "retracted"})
        listener.notify(str(seq))  # a revision's payload is the seq it revises
        await wait_for(lambda: len(watch.updates) == 1)
        assert watch.updates == [(seq, 1, "retracted:Test headline")]
    finally:
        await watch.tail.stop()


async def test_a_signal_revised_before_the_tail_read_it_goes_out_once_as_it_is_now(
    any_ctx: HubContext, other: Publisher
) -> None:
    watch = Watch(any_ctx.db)
    await watch.start()
    try:
        seq = (await other.publish(signal("x1"))).signal.seq
        await other.publish({"signal_id": "x1", "status": "retracted"})
        await watch.tail.poll_once()
        assert watch.new == [(seq, 1, "retracted:Test headline")]
        assert watch.updates == []
    finally:
        await watch.tail.stop()


async def test_a_revision_of_a_signal_committed_after_the_signals_were_read_waits_for_it(
    any_ctx: HubContext, other: Publisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signal and revision both commit between the tail's two reads: the revision
    must not go out before its signal (the client would get an update of a signal
    it never got). (On SQLite the session reads one snapshot: the second poll finds
    both.)"""
    watch = Watch(any_ctx.db)
    await watch.start()
    real = signals_repo.list_signals
    reads: list[int | None] = []

    async def list_then_commit(**kw: Any) -> list[Signal]:
        rows = await real(**kw)
        reads.append(kw.get("after_seq"))
        if len(reads) == 1:
            await other.publish(signal("late"))
            await other.publish({"signal_id": "late", "status": "retracted"})
        return rows

    monkeypatch.setattr(signals_repo, "list_signals", list_then_commit)
    try:
        await watch.tail.poll_once()
        await watch.tail.poll_once()
        late = await other.get("late")
        assert late is not None and late.seq is not None
        assert watch.new == [(late.seq, 1, "retracted:Test headline")]
        assert watch.updates == []
        # PostgreSQL: the first poll read the signals again, for the revision's signal.
        assert len(reads) == (2 if any_ctx.db.is_sqlite else 3)
        assert watch.tail.revision_cursor == await _latest_revision_id(any_ctx.db)
    finally:
        await watch.tail.stop()


async def test_revisions_from_before_the_start_are_not_announced(
    any_ctx: HubContext, other: Publisher
) -> None:
    await other.publish(signal("old"))
    await other.publish({"signal_id": "old", "status": "retracted"})
    watch = Watch(any_ctx.db)
    await watch.start()
    try:
        assert watch.tail.revision_cursor == await _latest_revision_id(any_ctx.db) > 0
        assert await watch.tail.poll_once() == 0
        assert watch.new == [] and watch.updates == []
    finally:
        await watch.tail.stop()


async def test_a_revision_offered_here_goes_out_once(any_ctx: HubContext) -> None:
    watch = Watch(any_ctx.db)
    publisher = Publisher(any_ctx.db, feed=watch.tail)
    await watch.start()
    try:
        seq = (await publisher.publish(signal("mine", headline="first"))).signal.seq
        result = await publisher.publish(signal("mine", headline="second"))
        assert result.revised and result.signal.revision == 1
        # Announced by the offer, without a read.
        assert watch.new == [(seq, 0, "active:first")]
        assert watch.updates == [(seq, 1, "active:second")]
        assert await watch.tail.poll_once() == 1  # the tail reads the log row too...
        assert watch.updates == [(seq, 1, "active:second")]  # ...and the bus drops it
        assert (await publisher.publish(signal("mine", headline="second"))).revised is False
        assert await watch.tail.poll_once() == 0
        assert len(watch.updates) == 1
    finally:
        await watch.tail.stop()


async def test_an_offered_revision_of_a_signal_not_yet_announced_waits_for_the_poll(
    any_ctx: HubContext, other: Publisher
) -> None:
    watch = Watch(any_ctx.db)
    await watch.start()
    try:
        seq = (await other.publish(signal("x1"))).signal.seq
        assert seq is not None
        stored = await other.get("x1")
        assert stored is not None
        watch.tail._wake.clear()
        await watch.tail.offer(stored.model_copy(update={"revision": 1}))
        assert watch.new == [] and watch.updates == []  # not before its signal
        assert watch.tail._wake.is_set()
    finally:
        await watch.tail.stop()
