"""The sliding-window limiter the dispatcher applies per channel and scope.

Time is a :class:`ManualClock`: sends are counted through the public
``acquire`` / ``settle`` / ``refund`` / ``block`` API, and time moves only when
the test advances it.
"""

from __future__ import annotations

import asyncio

import pytest

from core.channels import RateLimit
from core.ratelimit import ScopedLimiter, loop_timer
from tests.manual_clock import ManualClock


def _limiter(clock: ManualClock, *, margin: float = 0.0) -> ScopedLimiter:
    return ScopedLimiter(margin=margin, clock=clock, timer=clock.call_later)


async def test_window_allows_n_per_period_then_waits() -> None:
    clock = ManualClock()
    limiter = _limiter(clock)
    limits = (RateLimit("global", 3, 1.0),)
    for _ in range(3):
        assert limiter.ready_in(limits) == 0
        await limiter.acquire(limits)
        await clock.advance(0.25)
    assert limiter.ready_in(limits) == 0.25  # the oldest send leaves at +1.0
    await clock.advance(0.125)
    assert limiter.ready_in(limits) == 0.125
    await clock.advance(0.125)  # exactly one period after the first send: it has left
    assert limiter.ready_in(limits) == 0


async def test_scopes_are_independent_and_the_strictest_applies() -> None:
    clock = ManualClock()
    limiter = _limiter(clock)
    chat_a = (RateLimit("global", 30, 1.0), RateLimit("chat:a", 1, 1.0))
    chat_b = (RateLimit("global", 30, 1.0), RateLimit("chat:b", 1, 1.0))
    await limiter.acquire(chat_a)
    assert limiter.ready_in(chat_a) == 1.0
    assert limiter.ready_in(chat_b) == 0
    assert limiter.stamps(chat_a[0]) == [clock.now]  # one send, counted in both windows


def test_retry_after_blocks_only_its_scope() -> None:
    clock = ManualClock()
    limiter = _limiter(clock)
    limiter.block("chat:a", 5)
    assert limiter.ready_in((RateLimit("global", 30, 1), RateLimit("chat:a", 1, 1))) == 5
    assert limiter.ready_in((RateLimit("global", 30, 1), RateLimit("chat:b", 1, 1))) == 0
    limiter.block("chat:a", 1)  # a shorter block never shortens a longer one
    assert limiter.blocked_for(["chat:a"]) == 5
    limiter.block("chat:a", 7)  # a longer one extends it
    assert limiter.blocked_for(["chat:a"]) == 7
    clock.now += 7
    assert limiter.blocked_for(["chat:a"]) <= 0
    assert limiter.ready_in((RateLimit("chat:a", 1, 1),)) == 0


async def test_acquire_records_and_spaces_sends() -> None:
    clock = ManualClock()
    limiter = _limiter(clock)
    limits = (RateLimit("chat:x", 2, 0.25),)
    start = clock.now
    tasks = [asyncio.create_task(limiter.acquire(limits)) for _ in range(4)]
    await clock.run_ready()
    assert [t.done() for t in tasks] == [True, True, False, False]
    await clock.advance(0.125)
    assert [t.done() for t in tasks] == [True, True, False, False]
    await clock.advance(0.125)  # the first two leave the window: the next two go
    permits = await asyncio.gather(*tasks)
    assert [p.at for p in permits] == [start, start, start + 0.25, start + 0.25]


async def test_refund_gives_back_a_refused_send() -> None:
    clock = ManualClock()
    limiter = _limiter(clock)
    limits = (RateLimit("group:1", 1, 60.0),)
    await limiter.acquire(limits)
    assert limiter.ready_in(limits) > 59
    limiter.refund(limits)
    assert limiter.ready_in(limits) == 0
    assert limiter.stamps(limits[0]) == []


async def test_margin_widens_every_window_for_clock_skew() -> None:
    """The clock-skew margin: with 12.5 %, a 1 s window holds a send for 1.125 s."""
    clock = ManualClock()
    limiter = _limiter(clock, margin=0.125)
    limits = (RateLimit("chat:x", 1, 1.0),)
    await limiter.acquire(limits)
    assert limiter.ready_in(limits) == 1.125
    await clock.advance(1.0625)  # past the platform's 1 s, inside the margin
    assert limiter.ready_in(limits) == 0.0625
    assert len(limiter.stamps(limits[0])) == 1
    await clock.advance(0.0625)
    assert limiter.ready_in(limits) == 0


async def test_no_margin_by_default() -> None:
    clock = ManualClock()
    limiter = ScopedLimiter(clock=clock, timer=clock.call_later)
    limits = (RateLimit("chat:x", 1, 1.0),)
    await limiter.acquire(limits)
    assert limiter.ready_in(limits) == 1.0


async def test_the_default_timer_is_the_event_loops() -> None:
    loop = asyncio.get_running_loop()
    fired: list[str] = []
    later = loop_timer(30.0, lambda: fired.append("later"))
    assert isinstance(later, asyncio.TimerHandle)
    assert later.when() - loop.time() == pytest.approx(30.0, abs=1.0)
    later.cancel()
    loop_timer(0.0, lambda: fired.append("now"))
    for _ in range(3):  # due at once: it runs within a loop turn or two, no time passes
        await asyncio.sleep(0)
    assert fired == ["now"]


async def test_a_refund_is_given_once_even_beside_a_send_of_the_same_instant() -> None:
    clock = ManualClock()
    limiter = _limiter(clock)
    limits = (RateLimit("global", 5, 1.0),)
    refused = await limiter.acquire(limits)
    await limiter.acquire(limits)  # the same instant, not refused
    limiter.refund(limits, refused)
    limiter.refund(limits, refused)
    assert limiter.stamps(limits[0]) == [clock.now]
    limiter.settle(refused)  # a refunded send stays uncounted
    assert limiter.stamps(limits[0]) == [clock.now]


def test_a_scope_never_blocked_is_not_blocked_at_time_zero() -> None:
    clock = ManualClock(0.0)
    limiter = _limiter(clock)
    assert limiter.blocked_for(["chat:a"]) == 0.0
    assert limiter.ready_in((RateLimit("chat:a", 1, 1.0),)) == 0.0
