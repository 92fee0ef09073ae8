"""Per-key rate limits: REST requests per minute and WebSocket messages per second.

Both are sliding windows (at most N events in any ``period`` seconds), the same
:class:`core.ratelimit.SlidingWindow` the dispatcher's limiter is built on: a
decision is ``0.0`` (allowed, and recorded) or the seconds to wait before the next
event would be allowed. Checking never awaits, so it is atomic on the event loop.
"""

from __future__ import annotations

import time
from collections.abc import Hashable

from core.ratelimit import Clock, SlidingWindow


class KeyedRateLimiter:
    """A sliding window per key (an API key id, a user), forgetting idle keys."""

    def __init__(
        self,
        max_events: int,
        period: float,
        *,
        clock: Clock = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self.max_events = max_events
        self.period = period
        self._clock = clock
        self._max_keys = max_keys
        self._windows: dict[Hashable, SlidingWindow] = {}

    def hit(self, key: Hashable) -> float:
        now = self._clock()
        window = self._windows.get(key)
        if window is None:
            if len(self._windows) >= self._max_keys:
                self._prune(now)
            window = self._windows[key] = SlidingWindow(self.max_events, self.period)
        return window.hit(now)

    def _prune(self, now: float) -> None:
        for key in [k for k, w in self._windows.items() if w.idle(now)]:
            del self._windows[key]
