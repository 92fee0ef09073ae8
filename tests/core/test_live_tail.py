"""The live tail puts signals stored by another writer (another process: another
Database here) onto this process's bus: by its poll alone, or at once when a
notification wakes it; signals stored before it started are not announced again."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from core.bus import LiveBus
from core.context import HubContext
from core.live_tail import SignalTail
from domain.signals import Signal
from storage.database import Database
from storage.repositories import signals as signals_repo
from tests.fakes import signal, wait_for


async def _store_elsewhere(db: Database, name: str) -> int:
    async with db.transaction() as session:
        seq, _ = await signals_repo.insert_signal(Signal.parse(signal(name)), session=session)
    return seq


async def _get(db: Database, signal_id: str) -> Signal:
    async with db.session() as session:
        stored = await signals_repo.get_signal(signal_id, session=session)
    assert stored is not None
    return stored


class FakeListener:
    """Stands in for the PostgreSQL LISTEN connection: the test fires the notification."""

    connected = True

    def __init__(self) -> None:
        self.callbacks: list[Callable[[str | None], None]] = []

    def add(self, callback: Callable[[str | None], None]) -> None:
        self.callbacks.append(callback)

    def notify(self, payload: str | None) -> None:
        for callback in self.callbacks:
            callback(payload)


async def test_the_poll_delivers_another_writers_signals_onto_the_bus(
    any_ctx: HubContext,
) -> None:
    other = Database(any_ctx.db.url)
    other.connect()
    bus = LiveBus()
    got: list[Signal] = []
    bus.subscribe(got.append)
    tail = SignalTail(any_ctx.db, bus, poll_seconds=0.05)
    try:
        before = await _store_elsewhere(other, "before-start")
        await tail.start()
        assert tail.cursor == before
        seqs = [await _store_elsewhere(other, name) for name in ("x1", "x2")]
        await wait_for(lambda: len(got) == 2)  # no offer, no wake: the poll finds them
        assert [(s.seq, s.signal_id) for s in got] == [(seqs[0], "x1"), (seqs[1], "x2")]
        assert tail.cursor == seqs[1]
    finally:
        await tail.stop()
        await other.dispose()


async def test_a_notification_wakes_the_tail(any_ctx: HubContext) -> None:
    other = Database(any_ctx.db.url)
    other.connect()
    bus = LiveBus()
    got: list[int | None] = []
    bus.subscribe(lambda s: got.append(s.seq))
    listener = FakeListener()
    # Both polls far beyond the test's wait: only a wake makes it read.
    tail = SignalTail(
        any_ctx.db,
        bus,
        poll_seconds=3600,
        fallback_poll_seconds=3600,
        listener=listener,  # type: ignore[arg-type]
    )
    await tail.start()
    try:
        seq = await _store_elsewhere(other, "x1")
        listener.notify(str(seq))
        await wait_for(lambda: got == [seq])
        # Which notifications wake it (checked before the loop can run again):
        tail._wake.clear()
        # Another for a seq announced already: a correction or retraction of it.
        listener.notify(str(seq))
        assert tail._wake.is_set()
        tail._wake.clear()
        # This process's own signal, announced by its offer: its one notification
        # reads nothing; a second one (a revision) does.
        mine = await _store_elsewhere(any_ctx.db, "mine")
        await tail.offer(await _get(any_ctx.db, "mine"))
        assert got == [seq, mine]
        listener.notify(str(mine))
        assert not tail._wake.is_set()
        listener.notify(str(mine))
        assert tail._wake.is_set()
        tail._wake.clear()
        for payload in (str(mine + 1), None, "not-a-seq"):
            listener.notify(payload)
            assert tail._wake.is_set(), payload
            tail._wake.clear()
    finally:
        await tail.stop()
        await other.dispose()


async def test_a_notification_before_the_offer_is_matched_once(ctx: HubContext) -> None:
    """The notification of this process's own signal may come before its offer: it
    wakes the tail (the seq is ahead), and is not expected again afterwards."""
    listener = FakeListener()
    tail = SignalTail(
        ctx.db,
        LiveBus(),
        poll_seconds=3600,
        fallback_poll_seconds=3600,
        listener=listener,  # type: ignore[arg-type]
    )
    await tail.start()
    try:
        seq = await _store_elsewhere(ctx.db, "early")
        await tail.stop()  # no loop: the test drives the wake by hand
        listener.notify(str(seq))
        assert tail._wake.is_set()
        tail._wake.clear()
        await tail.offer(await _get(ctx.db, "early"))
        assert tail.cursor == seq
        listener.notify(str(seq))  # not its own notification again: a revision
        assert tail._wake.is_set()
    finally:
        await tail.stop()


async def test_before_start_an_offer_is_announced_and_moves_the_start(
    any_ctx: HubContext,
) -> None:
    bus = LiveBus()
    got: list[int | None] = []
    bus.subscribe(lambda s: got.append(s.seq))
    tail = SignalTail(any_ctx.db, bus, poll_seconds=3600)
    with pytest.raises(RuntimeError, match="start"):
        await tail.poll_once()
    await tail.offer(Signal.parse(signal("no-seq")))  # never stored: nothing to announce
    offered = Signal.parse(signal("ahead")).with_seq(7)
    await tail.offer(offered)
    assert got == [7]
    await tail.start()
    try:
        assert tail.cursor == 7  # the empty table's 0 does not take it back
        assert await tail.poll_once() == 0
    finally:
        await tail.stop()


@pytest.mark.timeout(30)
async def test_stop_right_after_a_wake_ends_the_tail(ctx: HubContext) -> None:
    """A wake that lands with the stop (a notification at shutdown) must not eat
    the cancellation: stop() returns and the loop is gone."""
    tail = SignalTail(ctx.db, LiveBus(), poll_seconds=3600)
    await tail.start()
    task = tail._task
    assert task is not None
    await wait_for(lambda: bool(tail._wake._waiters))  # type: ignore[attr-defined]  # idle, waiting
    tail.wake()
    await tail.stop()  # in the same step as the wake: a hang fails by the timeout mark
    assert task.done()
