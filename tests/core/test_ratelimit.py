"""The sliding-window limiter the dispatcher applies per channel and scope."""

from __future__ import annotations

from core.channels import RateLimit
from core.ratelimit import ScopedLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_window_allows_n_per_period_then_waits() -> None:
    clock = Clock()
    limiter = ScopedLimiter(margin=0.0, clock=clock)
    limits = (RateLimit("global", 3, 1.0),)
    for _ in range(3):
        assert limiter.ready_in(limits) == 0
        limiter._window(limits[0]).stamps.append(clock.now)
        clock.now += 0.1
    assert abs(limiter.ready_in(limits) - 0.7) < 1e-6  # the oldest send leaves at +1.0
    clock.now += 0.8
    assert limiter.ready_in(limits) == 0


def test_scopes_are_independent_and_the_strictest_applies() -> None:
    clock = Clock()
    limiter = ScopedLimiter(margin=0.0, clock=clock)
    chat_a = (RateLimit("global", 30, 1.0), RateLimit("chat:a", 1, 1.0))
    chat_b = (RateLimit("global", 30, 1.0), RateLimit("chat:b", 1, 1.0))
    for limit in chat_a:
        limiter._window(limit).stamps.append(clock.now)
    assert limiter.ready_in(chat_a) > 0.9
    assert limiter.ready_in(chat_b) == 0


def test_retry_after_blocks_only_its_scope() -> None:
    clock = Clock()
    limiter = ScopedLimiter(clock=clock)
    limiter.block("chat:a", 5)
    assert limiter.ready_in((RateLimit("global", 30, 1), RateLimit("chat:a", 1, 1))) == 5
    assert limiter.ready_in((RateLimit("global", 30, 1), RateLimit("chat:b", 1, 1))) == 0
    limiter.block("chat:a", 1)  # a shorter block never shortens a longer one
    assert limiter.blocked_for(["chat:a"]) == 5
    clock.now += 5
    assert limiter.blocked_for(["chat:a"]) <= 0


async def test_acquire_records_and_spaces_sends() -> None:
    limiter = ScopedLimiter(margin=0.0)
    limits = (RateLimit("chat:x", 2, 0.2),)
    import time

    started = time.monotonic()
    for _ in range(4):
        await limiter.acquire(limits)
    # Four sends at two per 0.2 s need at least one full window of waiting.
    assert time.monotonic() - started >= 0.19


def test_refund_gives_back_a_refused_send() -> None:
    clock = Clock()
    limiter = ScopedLimiter(margin=0.0, clock=clock)
    limits = (RateLimit("group:1", 1, 60.0),)
    limiter._window(limits[0]).stamps.append(clock.now)
    assert limiter.ready_in(limits) > 59
    limiter.refund(limits)
    assert limiter.ready_in(limits) == 0
