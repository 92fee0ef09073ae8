"""FIFO waking per scope, counting at departure, and refunds by permit.

On a :class:`ManualClock`: the limiter's release timers fire only when the test
advances time, and ``run_ready`` only lets already-woken tasks run.
"""

from __future__ import annotations

import asyncio

from core.channels import RateLimit
from core.ratelimit import Permit, ScopedLimiter
from tests.manual_clock import ManualClock


def _limiter(clock: ManualClock) -> ScopedLimiter:
    return ScopedLimiter(clock=clock, timer=clock.call_later)


async def _one_slot_taken(period: float) -> tuple[ManualClock, ScopedLimiter, RateLimit]:
    """A limiter at time 0 whose one-send window of ``period`` seconds is taken."""
    clock = ManualClock(0.0)
    limiter = _limiter(clock)
    limit = RateLimit("global", 1, period)
    await limiter.acquire((limit,))
    return clock, limiter, limit


async def _queued(
    clock: ManualClock, limiter: ScopedLimiter, *limits: RateLimit
) -> asyncio.Task[Permit]:
    """A send that has reached its place in the queues when this returns."""
    task = asyncio.create_task(limiter.acquire(limits))
    await clock.run_ready()
    return task


async def test_waiters_are_released_in_arrival_order() -> None:
    clock = ManualClock()
    limiter = _limiter(clock)
    limits = (RateLimit("global", 2, 0.25),)
    order: list[int] = []

    async def one(i: int) -> None:
        await limiter.acquire(limits)
        order.append(i)

    tasks = []
    for i in range(8):
        tasks.append(asyncio.create_task(one(i)))
        await asyncio.sleep(0)  # arrival order = i (a yield, no time passes)
    await clock.run_ready()
    assert order == [0, 1]
    for released in ([0, 1, 2, 3], [0, 1, 2, 3, 4, 5], list(range(8))):
        await clock.advance(0.25)  # two slots free per period, two waiters go
        assert order == released
    await asyncio.gather(*tasks)


async def test_one_waiter_is_let_through_per_freed_slot() -> None:
    clock = ManualClock()
    limiter = _limiter(clock)
    limit = RateLimit("global", 1, 60.0)
    first = await limiter.acquire((limit,))
    waiters = [asyncio.create_task(limiter.acquire((limit,))) for _ in range(3)]
    await clock.run_ready()
    assert limiter.waiting(limit) == 3
    limiter.refund((limit,), first)  # one slot frees: exactly one waiter goes
    await clock.run_ready()
    assert [t.done() for t in waiters] == [True, False, False]
    assert limiter.waiting(limit) == 2
    for task in waiters[1:]:
        task.cancel()
    await asyncio.gather(*waiters[1:], return_exceptions=True)
    assert limiter.waiting(limit) == 0


async def test_scopes_wait_independently() -> None:
    clock = ManualClock()
    limiter = _limiter(clock)
    chat_a = (RateLimit("global", 30, 1.0), RateLimit("chat:a", 1, 60.0))
    chat_b = (RateLimit("global", 30, 1.0), RateLimit("chat:b", 1, 60.0))
    await limiter.acquire(chat_a)
    blocked = asyncio.create_task(limiter.acquire(chat_a))
    await clock.run_ready()
    # chat:a's waiter holds no global slot while it waits for its chat.
    await asyncio.wait_for(limiter.acquire(chat_b), 1.0)
    assert len(limiter.stamps(chat_a[0])) == 2
    assert not blocked.done()
    blocked.cancel()
    await asyncio.gather(blocked, return_exceptions=True)


async def test_a_burst_is_counted_when_each_send_leaves() -> None:
    clock = ManualClock(100.0)
    limiter = _limiter(clock)
    limit = RateLimit("global", 3, 1.0)

    async def send() -> float:
        permit = await limiter.acquire((limit,))
        return permit.at

    # Queued together at 100.0; the slots are taken (reserved) but not counted yet.
    tasks = [asyncio.create_task(send()) for _ in range(3)]
    clock.now = 100.5  # the event loop only runs them later: they leave now
    done = await asyncio.gather(*tasks)
    assert done == [100.5, 100.5, 100.5]
    assert limiter.stamps(limit) == [100.5, 100.5, 100.5]


async def test_reservation_becomes_departure_time() -> None:
    clock = ManualClock(10.0)
    limiter = _limiter(clock)
    chat = RateLimit("chat:x", 1, 5.0)
    glob = RateLimit("global", 5, 1.0)
    await limiter.acquire((glob, chat))
    waiter = await _queued(clock, limiter, glob, chat)
    assert clock.pending() == [15.0]  # armed for the moment chat's slot frees
    await clock.advance(5.0)  # chat's slot frees; the send leaves at 15.0
    permit = await waiter
    assert permit.at == 15.0
    assert limiter.stamps(glob) == [15.0]  # 10.0 has left the 1 s window


async def test_settle_keeps_the_slot_until_the_answer() -> None:
    clock = ManualClock(0.0)
    limiter = _limiter(clock)
    limit = RateLimit("global", 1, 1.0)
    permit = await limiter.acquire((limit,))
    clock.now = 0.25  # the platform answered 250 ms later
    limiter.settle(permit)
    assert permit.stamp == 0.25 and permit.at == 0.0
    assert limiter.stamps(limit) == [0.25]
    clock.now = 1.125
    assert limiter.ready_in((limit,)) == 0.125  # not free at departure + 1 s
    clock.now = 1.25
    assert limiter.ready_in((limit,)) == 0


async def test_refund_by_permit_removes_its_own_stamp() -> None:
    clock = ManualClock(0.0)
    limiter = _limiter(clock)
    limit = RateLimit("global", 5, 1.0)
    refused = await limiter.acquire((limit,))
    clock.now = 0.125
    await limiter.acquire((limit,))  # a later send, not refused
    limiter.refund((limit,), refused)
    assert limiter.stamps(limit) == [0.125]
    limiter.refund((limit,), refused)  # twice changes nothing
    assert limiter.stamps(limit) == [0.125]


async def test_cancelled_waiter_passes_its_turn_on() -> None:
    clock = ManualClock()
    limiter = _limiter(clock)
    limit = RateLimit("global", 1, 60.0)
    held = await limiter.acquire((limit,))
    gone = asyncio.create_task(limiter.acquire((limit,)))
    nxt = await _queued(clock, limiter, limit)
    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    await clock.run_ready()
    assert not nxt.done()  # a cancelled waiter frees no slot it never had
    assert limiter.waiting(limit) == 1
    limiter.refund((limit,), held)
    await clock.run_ready()
    assert isinstance(nxt.result(), Permit)
    assert limiter.ready_in((limit,)) == 60.0


async def test_settle_never_moves_a_send_earlier() -> None:
    """An answer timed before the departure (a clock that stepped back) leaves the
    send counted from its departure."""
    clock = ManualClock(10.0)
    limiter = _limiter(clock)
    limit = RateLimit("global", 1, 1.0)
    permit = await limiter.acquire((limit,))
    clock.now = 9.5
    limiter.settle(permit)
    assert permit.stamp == 10.0
    clock.now = 10.5
    assert limiter.stamps(limit) == [10.0]


async def test_first_queues_at_the_head() -> None:
    """The second request of a send under way (Discord's post after a DM open)
    goes before sends that have not started."""
    clock = ManualClock()
    limiter = _limiter(clock)
    limit = RateLimit("global", 1, 60.0)
    held = await limiter.acquire((limit,))
    later = await _queued(clock, limiter, limit)
    under_way = asyncio.create_task(limiter.acquire((limit,), first=True))
    await clock.run_ready()
    limiter.refund((limit,), held)
    await clock.run_ready()
    assert under_way.done() and not later.done()
    later.cancel()
    await asyncio.gather(later, return_exceptions=True)


async def test_a_waiter_cancelled_as_it_is_let_through_passes_the_slot_on() -> None:
    clock = ManualClock()
    limiter = _limiter(clock)
    limit = RateLimit("global", 1, 60.0)
    held = await limiter.acquire((limit,))
    first = asyncio.create_task(limiter.acquire((limit,)))
    second = await _queued(clock, limiter, limit)
    limiter.refund((limit,), held)  # lets ``first`` through before it runs again
    first.cancel()  # ... and it is cancelled before it does
    await asyncio.gather(first, return_exceptions=True)
    await clock.run_ready()
    assert first.cancelled()
    assert second.done() and isinstance(second.result(), Permit)
    assert limiter.ready_in((limit,)) == 60.0  # one slot, one send: nothing left over


async def test_a_cancelled_send_gives_back_the_slots_it_held_while_waiting() -> None:
    clock = ManualClock()
    limiter = _limiter(clock)
    glob = RateLimit("global", 1, 60.0)
    chat = RateLimit("chat:a", 1, 60.0)
    await limiter.acquire((glob,))
    # Takes its chat's slot first (narrowest first), then waits for the global one.
    stuck = await _queued(clock, limiter, glob, chat)
    alone = await _queued(clock, limiter, chat)
    assert not alone.done()  # the chat's only slot is reserved
    stuck.cancel()
    await asyncio.gather(stuck, return_exceptions=True)
    await clock.run_ready()
    assert alone.done()
    assert limiter.stamps(chat) == [clock.now]
    assert limiter.ready_in((chat,)) == 60.0  # its one slot is used: none left over


async def test_a_reserved_slot_arms_its_release_when_the_send_leaves() -> None:
    clock = ManualClock(0.0)
    limiter = _limiter(clock)
    glob = RateLimit("global", 1, 1.0)
    chat = RateLimit("chat:a", 1, 4.0)
    await limiter.acquire((glob,))
    mover = asyncio.create_task(limiter.acquire((glob, chat)))  # holds chat, waits for glob
    await clock.run_ready()
    waiter = await _queued(clock, limiter, chat)
    # Nothing in chat's window has a time yet: no release can be timed, none is armed.
    assert clock.pending() == [1.0]
    assert limiter.ready_in((chat,)) == 0  # not counting the queue: no departure to wait for
    await clock.advance(1.0)  # global frees: the mover leaves at 1.0
    assert mover.done()
    assert clock.pending() == [5.0]  # chat's slot frees one period after that departure
    await clock.advance(3.0)
    assert not waiter.done()
    await clock.advance(1.0)
    assert waiter.result().at == 5.0


async def test_a_blocked_scope_lets_its_waiters_go_when_the_block_ends() -> None:
    clock = ManualClock(0.0)
    limiter = _limiter(clock)
    limit = RateLimit("chat:a", 5, 1.0)
    limiter.block("chat:a", 2.0)
    waiter = await _queued(clock, limiter, limit)
    assert clock.pending() == [2.0]
    await clock.advance(1.5)
    assert not waiter.done()
    await clock.advance(0.5)
    assert waiter.result().at == 2.0


async def test_a_queue_does_not_arm_a_timer_once_it_is_empty() -> None:
    clock, limiter, limit = await _one_slot_taken(1.0)
    waiter = await _queued(clock, limiter, limit)
    assert clock.pending() == [1.0]
    await clock.advance(1.0)
    assert waiter.result().at == 1.0
    assert clock.pending() == []


async def test_settle_counts_a_send_from_its_answer_even_past_its_window() -> None:
    clock = ManualClock(0.0)
    limiter = _limiter(clock)
    limit = RateLimit("global", 2, 1.0)
    slow = await limiter.acquire((limit,))
    clock.now = 0.5
    fast = await limiter.acquire((limit,))
    clock.now = 0.25  # (answers are seen in any order; this one at 0.25)
    limiter.settle(slow)
    assert limiter.stamps(limit) == [0.25, 0.5]  # kept in time order
    clock.now = 1.5  # the fast send's answer; the slow one had left the window
    limiter.settle(fast)
    assert limiter.stamps(limit) == [1.5]
    clock.now = 3.0  # an answer after the send left the window: counted from it
    limiter.settle(slow)
    assert limiter.stamps(limit) == [3.0]


async def test_a_final_settle_is_not_moved_by_a_later_one() -> None:
    clock = ManualClock(0.0)
    limiter = _limiter(clock)
    limit = RateLimit("global", 2, 1.0)
    permit = await limiter.acquire((limit,))
    clock.now = 0.4
    limiter.settle(permit, final=True)  # its request was answered at 0.4
    clock.now = 0.9
    limiter.settle(permit)  # the whole send ended later: changes nothing
    assert limiter.stamps(limit) == [0.4]


async def test_settle_does_not_count_a_refunded_send() -> None:
    clock = ManualClock(0.0)
    limiter = _limiter(clock)
    limit = RateLimit("global", 2, 1.0)
    permit = await limiter.acquire((limit,))
    limiter.refund((limit,), permit)
    clock.now = 0.5
    limiter.settle(permit)
    assert limiter.stamps(limit) == []


async def test_refund_of_a_send_that_already_left_changes_nothing() -> None:
    clock = ManualClock(0.0)
    limiter = _limiter(clock)
    limit = RateLimit("global", 2, 1.0)
    old = await limiter.acquire((limit,))
    clock.now = 1.5
    await limiter.acquire((limit,))
    limiter.refund((limit,), old)  # its stamp has left the window
    assert limiter.stamps(limit) == [1.5]
    limiter.refund((RateLimit("chat:none", 1, 1.0),))  # an empty window: nothing to give back
    assert limiter.stamps(limit) == [1.5]


async def test_a_limit_listed_twice_takes_two_slots() -> None:
    clock = ManualClock(0.0)
    limiter = _limiter(clock)
    limit = RateLimit("global", 2, 1.0)
    await limiter.acquire((limit, limit))
    assert limiter.stamps(limit) == [0.0, 0.0]
    assert limiter.ready_in((limit,)) == 1.0


async def test_limits_differing_in_size_or_period_are_separate_windows() -> None:
    clock = ManualClock(0.0)
    limiter = _limiter(clock)
    await limiter.acquire((RateLimit("global", 1, 1.0),))
    assert limiter.ready_in((RateLimit("global", 2, 1.0),)) == 0
    assert limiter.ready_in((RateLimit("global", 1, 2.0),)) == 0
    assert limiter.ready_in((RateLimit("global", 1, 1.0),)) == 1.0


def test_a_block_starting_at_time_zero_counts() -> None:
    clock = ManualClock(0.0)
    limiter = _limiter(clock)
    limiter.block("chat:a", 0.5)
    assert limiter.blocked_for(["chat:a"]) == 0.5
    assert limiter.blocked_for([]) == 0.0


async def test_a_newcomer_never_overtakes_a_waiter_whose_slot_has_come() -> None:
    """The slot is free but the timer that hands it to the queue has not run yet
    (the event loop is late): a send arriving now queues behind."""
    clock, limiter, limit = await _one_slot_taken(1.0)
    waiter = await _queued(clock, limiter, limit)
    clock.now = 1.0  # the slot is free; its timer is due but has not fired
    newcomer = await _queued(clock, limiter, limit)
    assert not newcomer.done()
    await clock.advance(0.0)  # the timer fires
    assert waiter.result().at == 1.0
    assert not newcomer.done()
    await clock.advance(1.0)
    assert newcomer.result().at == 2.0


async def test_waiters_are_released_on_time_before_the_clock_reaches_one() -> None:
    clock, limiter, limit = await _one_slot_taken(0.5)
    waiter = await _queued(clock, limiter, limit)
    await clock.advance(0.5)
    assert waiter.result().at == 0.5
