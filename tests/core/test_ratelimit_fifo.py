"""FIFO waking per scope, counting at departure, and refunds by permit."""

from __future__ import annotations

import asyncio

from core.channels import RateLimit
from core.ratelimit import ScopedLimiter


async def _queue(limiter: ScopedLimiter, limits: tuple[RateLimit, ...], n: int) -> list[int]:
    order: list[int] = []

    async def one(i: int) -> None:
        await limiter.acquire(limits)
        order.append(i)

    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(one(i)))
        await asyncio.sleep(0)  # arrival order = i
    await asyncio.gather(*tasks)
    return order


async def test_waiters_are_released_in_arrival_order() -> None:
    limiter = ScopedLimiter()
    limits = (RateLimit("global", 2, 0.05),)
    assert await _queue(limiter, limits, 8) == list(range(8))


async def test_one_waiter_is_let_through_per_freed_slot() -> None:
    limiter = ScopedLimiter()
    limit = RateLimit("global", 1, 60.0)
    first = await limiter.acquire((limit,))
    waiters = [asyncio.create_task(limiter.acquire((limit,))) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert limiter.waiting(limit) == 3
    limiter.refund((limit,), first)  # one slot frees: exactly one waiter goes
    await asyncio.sleep(0.01)
    assert [t.done() for t in waiters] == [True, False, False]
    for task in waiters[1:]:
        task.cancel()
    await asyncio.gather(*waiters[1:], return_exceptions=True)
    assert limiter.waiting(limit) == 0


async def test_scopes_wait_independently() -> None:
    limiter = ScopedLimiter()
    chat_a = (RateLimit("global", 30, 1.0), RateLimit("chat:a", 1, 60.0))
    chat_b = (RateLimit("global", 30, 1.0), RateLimit("chat:b", 1, 60.0))
    await limiter.acquire(chat_a)
    blocked = asyncio.create_task(limiter.acquire(chat_a))
    await asyncio.sleep(0.01)
    # chat:a's waiter holds no global slot while it waits for its chat.
    await asyncio.wait_for(limiter.acquire(chat_b), 1.0)
    assert len(limiter.stamps(chat_a[0])) == 2
    blocked.cancel()
    await asyncio.gather(blocked, return_exceptions=True)


async def test_a_burst_is_counted_when_each_send_leaves() -> None:
    clock = [100.0]
    limiter = ScopedLimiter(clock=lambda: clock[0])
    limit = RateLimit("global", 3, 1.0)

    async def send() -> float:
        permit = await limiter.acquire((limit,))
        return permit.at

    # Queued together at 100.0; the slots are taken (reserved) but not counted yet.
    tasks = [asyncio.create_task(send()) for _ in range(3)]
    clock[0] = 100.5  # the event loop only runs them later: they leave now
    done = await asyncio.gather(*tasks)
    assert done == [100.5, 100.5, 100.5]
    assert limiter.stamps(limit) == [100.5, 100.5, 100.5]


async def test_reservation_becomes_departure_time() -> None:
    clock = [10.0]
    limiter = ScopedLimiter(clock=lambda: clock[0])
    chat = RateLimit("chat:x", 1, 5.0)
    glob = RateLimit("global", 5, 1.0)
    await limiter.acquire((glob, chat))
    waiter = asyncio.create_task(limiter.acquire((glob, chat)))
    await asyncio.sleep(0)
    clock[0] = 15.0  # chat's slot frees; the send leaves at 15.0
    limiter._pump(limiter._window(chat))
    permit = await waiter
    assert permit.at == 15.0
    assert limiter.stamps(glob) == [15.0]  # 10.0 has left the 1 s window


async def test_settle_keeps_the_slot_until_the_answer() -> None:
    clock = [0.0]
    limiter = ScopedLimiter(clock=lambda: clock[0])
    limit = RateLimit("global", 1, 1.0)
    permit = await limiter.acquire((limit,))
    clock[0] = 0.2  # the platform answered 200 ms later
    limiter.settle(permit)
    clock[0] = 1.1
    assert limiter.ready_in((limit,)) > 0  # not free at departure + 1 s
    clock[0] = 1.2
    assert limiter.ready_in((limit,)) == 0


async def test_refund_by_permit_removes_its_own_stamp() -> None:
    clock = [0.0]
    limiter = ScopedLimiter(clock=lambda: clock[0])
    limit = RateLimit("global", 5, 1.0)
    refused = await limiter.acquire((limit,))
    clock[0] = 0.1
    await limiter.acquire((limit,))  # a later send, not refused
    limiter.refund((limit,), refused)
    assert limiter.stamps(limit) == [0.1]
    limiter.refund((limit,), refused)  # twice changes nothing
    assert limiter.stamps(limit) == [0.1]


async def test_cancelled_waiter_passes_its_turn_on() -> None:
    limiter = ScopedLimiter()
    limit = RateLimit("global", 1, 60.0)
    held = await limiter.acquire((limit,))
    gone = asyncio.create_task(limiter.acquire((limit,)))
    nxt = asyncio.create_task(limiter.acquire((limit,)))
    await asyncio.sleep(0.01)
    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    limiter.refund((limit,), held)
    await asyncio.wait_for(nxt, 1.0)
