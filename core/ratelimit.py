"""Sliding-window rate limiting by scope, used by the dispatcher for every channel.

A sliding window (at most N sends in any ``period`` seconds) is what the platforms
enforce, so it is what we enforce: a token bucket would allow a burst of N at the
start and then N more within the same second.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence

from core.channels import RateLimit

Clock = Callable[[], float]


class _Window:
    __slots__ = ("max_calls", "period", "stamps")

    def __init__(self, max_calls: int, period: float) -> None:
        self.max_calls = max_calls
        self.period = period
        self.stamps: deque[float] = deque()

    def wait_time(self, now: float) -> float:
        while self.stamps and self.stamps[0] <= now - self.period:
            self.stamps.popleft()
        if len(self.stamps) < self.max_calls:
            return 0.0
        return self.stamps[0] + self.period - now


class ScopedLimiter:
    """Holds a window per scope and the scopes blocked by a platform's retry-after.

    ``margin`` widens each window slightly so clock skew between us and the
    platform never turns a permitted send into a 429.
    """

    def __init__(self, *, margin: float = 0.02, clock: Clock = time.monotonic) -> None:
        self._windows: dict[tuple[str, int, float], _Window] = {}
        self._blocked: dict[str, float] = {}
        self._margin = margin
        self._clock = clock

    def block(self, scope: str, seconds: float) -> None:
        """Nothing in ``scope`` may go out for ``seconds`` (a platform's retry-after)."""
        until = self._clock() + seconds
        if until > self._blocked.get(scope, 0.0):
            self._blocked[scope] = until

    def blocked_for(self, scopes: Sequence[str]) -> float:
        now = self._clock()
        return max((self._blocked.get(s, 0.0) - now for s in scopes), default=0.0)

    def _window(self, limit: RateLimit) -> _Window:
        key = (limit.scope, limit.max_calls, limit.period)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window(
                limit.max_calls, limit.period * (1 + self._margin)
            )
        return window

    def _delay(self, limits: Sequence[RateLimit], now: float) -> float:
        delay = max((self._blocked.get(lim.scope, 0.0) - now for lim in limits), default=0.0)
        for limit in limits:
            delay = max(delay, self._window(limit).wait_time(now))
        return delay

    async def acquire(self, limits: Sequence[RateLimit]) -> None:
        """Wait until a send under all ``limits`` is allowed, then record it.

        Check-and-record runs without an ``await`` in between, so it is atomic
        on the event loop; a waiter never holds anything that blocks others.
        """
        while True:
            now = self._clock()
            delay = self._delay(limits, now)
            if delay <= 0:
                for limit in limits:
                    self._window(limit).stamps.append(now)
                return
            await asyncio.sleep(delay)

    def refund(self, limits: Sequence[RateLimit]) -> None:
        """Forget the newest recorded send under ``limits``: the platform refused it
        (429), so it did not count against the platform's window either."""
        for limit in limits:
            stamps = self._window(limit).stamps
            if stamps:
                stamps.pop()

    def ready_in(self, limits: Sequence[RateLimit]) -> float:
        """How long until a send under ``limits`` would be allowed (0 if now)."""
        return max(0.0, self._delay(limits, self._clock()))
