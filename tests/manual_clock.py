"""A clock that moves only when the test moves it, with the timers and sleeps on it.

Pass it as a :class:`core.ratelimit.ScopedLimiter`'s ``clock`` (call it) and
``timer`` (:meth:`call_later`), or a :class:`core.dispatcher.Dispatcher`'s
``monotonic``, ``timer`` and ``sleep``. :meth:`advance` moves time forward, firing
each timer due on the way at its own moment, and lets the tasks it woke run: no
test waits in real time for a rate limit or a backoff.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

#: Timers one :meth:`ManualClock.advance` may fire: more means a timer keeps
#: re-arming itself without time passing (a busy loop), which fails the test.
_MAX_FIRINGS = 10_000
#: Event-loop turns :meth:`ManualClock.run_ready` gives woken tasks (each turn runs
#: every callback ready at its start; a woken acquire needs a few).
_TURNS = 20


class _Handle:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._start = start
        self._timers: list[tuple[float, int, _Handle]] = []
        self._seq = itertools.count()
        #: Every delay passed to :meth:`sleep`, in order.
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wall(self) -> datetime:
        """Real UTC time plus however far the test has advanced this clock (a
        dispatcher's ``clock``: rows published now are due at once)."""
        return datetime.now(UTC) + timedelta(seconds=self.now - self._start)

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Handle:
        handle = _Handle(self.now + delay, callback)
        heapq.heappush(self._timers, (handle.when, next(self._seq), handle))
        return handle

    def pending(self) -> list[float]:
        """When the timers still armed fire (soonest first)."""
        return sorted(h.when for _, _, h in self._timers if not h.cancelled)

    async def sleep(self, delay: float) -> None:
        """An ``asyncio.sleep`` on this clock: returns once the test advanced it."""
        self.sleeps.append(delay)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        self.call_later(delay, wake)
        await future

    async def run_ready(self) -> None:
        """Let every task that can run (without time passing) run."""
        for _ in range(_TURNS):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, firing each due timer at its moment."""
        target = self.now + seconds
        await self.run_ready()
        for _ in range(_MAX_FIRINGS):
            if not (self._timers and self._timers[0][0] <= target):
                break
            when, _, handle = heapq.heappop(self._timers)
            if handle.cancelled:
                continue
            self.now = max(self.now, when)
            handle.callback()
            await self.run_ready()
        else:
            raise AssertionError(f"timers keep firing at {self.now} without time passing")
        self.now = target
        await self.run_ready()
