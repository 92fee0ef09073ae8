"""The API edge's per-key limiter: one sliding window per key, idle keys forgotten."""

from __future__ import annotations

from api.ratelimit import KeyedRateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_each_key_has_its_own_window() -> None:
    clock = Clock()
    limiter = KeyedRateLimiter(2, 60.0, clock=clock)
    assert limiter.hit("a") == 0.0
    assert limiter.hit("a") == 0.0
    assert limiter.hit("a") == 60.0
    assert limiter.hit("b") == 0.0
    clock.now += 15.0
    assert limiter.hit("a") == 45.0
    clock.now += 45.0
    assert limiter.hit("a") == 0.0
    assert (limiter.max_events, limiter.period) == (2, 60.0)


def test_idle_keys_are_forgotten_when_the_table_is_full() -> None:
    clock = Clock()
    limiter = KeyedRateLimiter(1, 1.0, clock=clock, max_keys=2)
    limiter.hit("old")
    clock.now += 0.5
    limiter.hit("busy")
    clock.now += 0.75  # "old" has left its window, "busy" has not
    assert limiter.hit("new") == 0.0
    assert set(limiter._windows) == {"busy", "new"}
    assert limiter.hit("busy") == 0.25  # its window was kept
    assert limiter.hit("old") == 0.0  # forgotten: a fresh window
