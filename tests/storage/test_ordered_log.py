"""One ordered signal log: a reader that has seen seq N never later finds a smaller one.

On PostgreSQL a seq is taken at insert and becomes visible at commit; without the
signal log's lock, publisher B could commit seq 2 while A still holds seq 1, and a
cursor reader (the live tail, WebSocket resume, REST ``after_seq``) that read 2
would skip 1 forever. These tests force exactly that interleaving.
"""

from __future__ import annotations

import asyncio

from core.bus import LiveBus
from core.context import HubContext
from core.live_tail import SignalTail
from domain.signals import Signal
from storage.database import Database
from storage.repositories import signals as signals_repo
from tests.fakes import signal, wait_for


async def _read_after(db: Database, cursor: int) -> list[int]:
    async with db.session() as session:
        rows = await signals_repo.list_signals(
            session=session, after_seq=cursor, ascending=True, limit=1000
        )
    return [s.seq for s in rows if s.seq is not None]


async def test_a_later_publish_never_becomes_visible_before_an_earlier_one(
    any_ctx: HubContext,
) -> None:
    other = Database(any_ctx.db.url)
    other.connect()
    seen: list[int] = []
    cursor = 0

    async def poll() -> None:
        nonlocal cursor
        for seq in await _read_after(any_ctx.db, cursor):
            seen.append(seq)
            cursor = max(cursor, seq)

    try:
        # A takes its seq and holds its transaction open, as a slow publisher would.
        async with other.transaction() as session_a:
            seq_a, _ = await signals_repo.insert_signal(
                Signal.parse(signal("slow-a")), session=session_a
            )
            # B publishes meanwhile, through the real publisher.
            task_b = asyncio.create_task(any_ctx.publisher.publish(signal("fast-b")))
            await asyncio.sleep(0.5)
            await poll()  # a reader polls while A is still open
            assert not task_b.done(), "B committed while A held an earlier seq"
        result_b = await asyncio.wait_for(task_b, 10)
        await poll()
        assert result_b.signal.seq is not None and seq_a < result_b.signal.seq
        assert seen == [seq_a, result_b.signal.seq]  # both seen, in order
    finally:
        await other.dispose()


async def test_tail_announces_in_seq_order_whoever_published(any_ctx: HubContext) -> None:
    """Signals from another process (another Database here) and from this one reach
    the bus once each, in seq order, including a gap this process must fill."""
    other = Database(any_ctx.db.url)
    other.connect()
    bus = LiveBus()
    got: list[int] = []
    bus.subscribe(lambda s: got.append(s.seq or 0))
    tail = SignalTail(any_ctx.db, bus, poll_seconds=30)  # no poll: only offers fill gaps
    await tail.start()
    try:
        # Another process commits two signals that this process has not read yet.
        for name in ("x1", "x2"):
            async with other.transaction() as session:
                await signals_repo.insert_signal(Signal.parse(signal(name)), session=session)
        # This process publishes next and offers its own: the gap comes first.
        mine = await any_ctx.publisher.publish(signal("mine"))
        await tail.offer(mine.signal)
        assert mine.signal.seq is not None
        assert got == sorted(got) and len(got) == 3 and got[-1] == mine.signal.seq
        await tail.offer(mine.signal)  # offered twice: still once
        assert len(got) == 3
        # Someone else's commit is picked up by the poll.
        async with other.transaction() as session:
            seq, _ = await signals_repo.insert_signal(
                Signal.parse(signal("x3")), session=session
            )
        tail.wake()
        await wait_for(lambda: seq in got)
        assert got == sorted(got) and len(got) == len(set(got)) == 4
    finally:
        await tail.stop()
        await other.dispose()
