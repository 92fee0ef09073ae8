"""Sliding-window rate limiting by scope, used by the dispatcher for every channel.

A sliding window (at most N sends in any ``period`` seconds) is what the platforms
enforce, so it is what we enforce: a token bucket would allow a burst of N at the
start and then N more within the same second.

Waiting is first-in, first-out per scope. Each window keeps a queue of waiters and
one timer, armed for the exact moment its oldest send leaves the window (or its
scope's retry-after ends); when it fires, one waiter is let through per freed slot,
in arrival order. Nobody polls and no herd of sleepers wakes to find the slot taken.

A send is counted when it leaves, not when it is let through: a waiter holds a
reservation (a slot counted, with no time yet) while it waits in its other scopes,
and all its reservations become timestamps at once, when :meth:`ScopedLimiter.acquire`
returns to the caller, who sends at once. Sends released together leave spread
out (the event loop runs them one after another), and each is counted from the
moment it actually left, so the next window starts where theirs really ends.

The platform counts a request somewhere between its departure and its answer (a
new connection, a stalled event loop or a busy server put milliseconds, at times
a hundred, in between). So when the answer comes, :meth:`ScopedLimiter.settle`
moves the send's timestamps to that moment: its slot frees one period after the
platform can last have counted it, which no jitter can turn into a 429. That costs
one round trip per period (0.3 % of a second on a 3 ms link), and it paces: a
burst answered spread out frees its slots spread out.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from typing import Protocol, runtime_checkable

from core.channels import RateLimit

Clock = Callable[[], float]

#: The shortest wait :meth:`SlidingWindow.hit` reports for a refused event, so a
#: refusal is never mistaken for "allowed" (0.0) whatever the rounding.
MIN_WAIT = 0.001


class Cancellable(Protocol):
    def cancel(self) -> None: ...


#: Runs ``callback`` after ``delay`` seconds; returns a handle that can cancel it.
Timer = Callable[[float, Callable[[], None]], Cancellable]


def loop_timer(delay: float, callback: Callable[[], None]) -> Cancellable:
    """The running event loop's timer (the default :data:`Timer`)."""
    return asyncio.get_running_loop().call_later(delay, callback)


class SlidingWindow:
    """At most ``max_events`` events in any ``period`` seconds.

    ``stamps`` are the times of the events still in the window, oldest first. This
    is the one place the sliding-window arithmetic lives: the API edge uses it
    alone (:meth:`hit`, through :class:`api.ratelimit.KeyedRateLimiter` or per
    connection), and :class:`ScopedLimiter`'s windows add reservations and waiters.
    """

    __slots__ = ("max_events", "period", "stamps")

    def __init__(self, max_events: int, period: float) -> None:
        self.max_events = max_events
        self.period = period
        self.stamps: deque[float] = deque()

    def expire(self, now: float) -> None:
        """Forget the events that have left the window by ``now``."""
        stamps = self.stamps
        edge = now - self.period
        while stamps and stamps[0] <= edge:
            stamps.popleft()

    def taken(self) -> int:
        """Slots in use (as of the last :meth:`expire`)."""
        return len(self.stamps)

    def free(self, now: float) -> bool:
        self.expire(now)
        return self.taken() < self.max_events

    def _frees_in(self, now: float) -> float:
        return self.stamps[0] + self.period - now if self.stamps else float("inf")

    def wait_time(self, now: float) -> float:
        """How long until a slot frees: 0 now; else when the oldest event leaves the
        window (re-check then); inf while no event is counted (every slot is taken
        otherwise, e.g. reserved)."""
        return 0.0 if self.free(now) else self._frees_in(now)

    def hit(self, now: float) -> float:
        """Record an event at ``now`` if allowed (returns 0.0); else return the
        seconds to wait (at least :data:`MIN_WAIT`), recording nothing."""
        if self.free(now):
            self.stamps.append(now)
            return 0.0
        return max(self._frees_in(now), MIN_WAIT)

    def idle(self, now: float) -> bool:
        """True when nothing is left in the window (it can be forgotten)."""
        return not self.stamps or self.stamps[-1] <= now - self.period


class _Window(SlidingWindow):
    """One scope's sliding window, its reservations and its FIFO of waiters."""

    __slots__ = ("reserved", "scope", "timer", "waiters")

    def __init__(self, scope: str, max_calls: int, period: float) -> None:
        super().__init__(max_calls, period)
        self.scope = scope
        #: Slots let through to a waiter that has not left yet (no timestamp so far).
        self.reserved = 0
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.timer: Cancellable | None = None

    def taken(self) -> int:
        return len(self.stamps) + self.reserved


class Permit:
    """The slots one send took: one timestamp in each of its windows.

    ``at`` is when the send left; ``stamp`` is where its timestamp stands in the
    platform's windows (``at`` until :meth:`ScopedLimiter.settle` moves it to the
    answer). :meth:`ScopedLimiter.refund` with a permit removes exactly these
    timestamps (never another send's), so a refused send gives back its own slots.
    """

    __slots__ = ("answered", "at", "refunded", "stamp", "windows")

    def __init__(self, windows: list[_Window], at: float) -> None:
        self.windows = windows
        self.at = at
        self.stamp = at
        self.refunded = False
        #: Settled for good (``settle(final=True)``): a later settle changes nothing.
        self.answered = False


#: The permit of the send under way (set by the dispatcher around ``Channel.send``):
#: a channel whose send makes a first request of its own (Discord opens a DM, then
#: posts) settles it as soon as that request is answered, so the slot frees one
#: period after the platform counted it, not one period after it was queued.
CURRENT_PERMIT: ContextVar[Permit | None] = ContextVar("catalyst_current_permit", default=None)


@runtime_checkable
class UsesLimiter(Protocol):
    """A channel that makes more than one request for some sends (Discord opens a DM
    before posting) and draws the extra ones from the dispatcher's limiter itself."""

    def attach_limiter(self, limiter: ScopedLimiter) -> None: ...


class ScopedLimiter:
    """Holds a window per scope and the scopes blocked by a platform's retry-after.

    ``margin`` widens each window by that fraction (default none): slack for clock
    skew between our count and the platform's. Channels that need slack for the
    time between our send and the platform's count put it in their
    :class:`RateLimit` periods, where it can be absolute and per limit.

    ``clock`` (seconds, monotonic) and ``timer`` (what wakes a queue when its next
    slot frees) default to the real ones; tests pass a manual clock for both.
    """

    def __init__(
        self,
        *,
        margin: float = 0.0,
        clock: Clock = time.monotonic,
        timer: Timer = loop_timer,
    ) -> None:
        self._windows: dict[tuple[str, int, float], _Window] = {}
        self._blocked: dict[str, float] = {}
        #: When each retry-after came (the newest 10,000), for the operator's counts.
        self._block_times: deque[float] = deque(maxlen=10_000)
        self._margin = margin
        self._clock = clock
        self._timer = timer

    # ---- retry-after ------------------------------------------------------
    def block(self, scope: str, seconds: float) -> None:
        """Nothing in ``scope`` may go out for ``seconds`` (a platform's retry-after)."""
        now = self._clock()
        self._block_times.append(now)
        until = now + seconds
        if until > self._blocked.get(scope, 0.0):
            self._blocked[scope] = until
            # Queued waiters in that scope see the block when their timer fires.

    def blocked_for(self, scopes: Sequence[str]) -> float:
        now = self._clock()
        return max((self._blocked.get(s, 0.0) - now for s in scopes), default=0.0)

    def blocks_within(self, seconds: float) -> int:
        """How many retry-afters (429s) came in the last ``seconds``."""
        edge = self._clock() - seconds
        return sum(1 for t in self._block_times if t > edge)

    def blocked(self) -> dict[str, float]:
        """Every scope still blocked by a retry-after, with the seconds it has left."""
        now = self._clock()
        return {s: until - now for s, until in self._blocked.items() if until > now}

    # ---- windows ----------------------------------------------------------
    def _window(self, limit: RateLimit) -> _Window:
        key = (limit.scope, limit.max_calls, limit.period)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window(
                limit.scope, limit.max_calls, limit.period * (1 + self._margin)
            )
        return window

    def _window_delay(self, window: _Window, now: float) -> float:
        return max(self._blocked.get(window.scope, 0.0) - now, window.wait_time(now))

    def _delay(self, limits: Sequence[RateLimit], now: float) -> float:
        delay = 0.0
        for limit in limits:
            delay = max(delay, self._window_delay(self._window(limit), now))
        return delay

    def stamps(self, limit: RateLimit) -> list[float]:
        """The departure times counted in ``limit``'s window (oldest first)."""
        window = self._window(limit)
        window.expire(self._clock())
        return list(window.stamps)

    def waiting(self, limit: RateLimit) -> int:
        """How many sends wait in ``limit``'s queue."""
        return sum(1 for f in self._window(limit).waiters if not f.done())

    # ---- waking -----------------------------------------------------------
    def _pump(self, window: _Window) -> None:
        """Let waiters through, one per free slot, in arrival order; then arm the
        timer for the moment the next slot frees."""
        if window.timer is not None:
            window.timer.cancel()
            window.timer = None
        now = self._clock()
        while window.waiters:
            head = window.waiters[0]
            if head.done():  # cancelled while waiting
                window.waiters.popleft()
                continue
            if self._blocked.get(window.scope, 0.0) > now or not window.free(now):
                break
            window.waiters.popleft()
            window.reserved += 1
            head.set_result(None)
        if not window.waiters:
            return
        delay = self._window_delay(window, now)
        if delay != float("inf"):
            window.timer = self._timer(max(0.0, delay), functools.partial(self._pump, window))

    async def _reserve(self, window: _Window, *, first: bool) -> None:
        """Wait in ``window``'s queue until it lets us through with a slot reserved
        (``first``: at the head of the queue)."""
        now = self._clock()
        if not window.waiters and self._blocked.get(window.scope, 0.0) <= now and window.free(now):
            window.reserved += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if first:
            window.waiters.appendleft(future)
        else:
            window.waiters.append(future)
        if window.timer is None:
            self._pump(window)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                # Let through just as we were cancelled: pass the slot on.
                window.reserved -= 1
                self._pump(window)
            raise

    async def acquire(self, limits: Sequence[RateLimit], *, first: bool = False) -> Permit:
        """Wait until a send under all ``limits`` is allowed, then count it as sent now.

        Windows are taken narrowest first (``limits`` come broadest first), so a
        send never holds a slot of the shared, broad windows while it still waits
        for its own chat; and always in that order, so two waiters never hold
        what the other needs. A limit listed twice takes two slots.

        ``first`` queues at the head rather than the tail: for the second request
        of a send already under way (Discord's post after opening a DM), so the
        send finishes before it takes on new ones.
        """
        windows = [self._window(limit) for limit in reversed(limits)]
        held: list[_Window] = []
        try:
            for window in windows:
                await self._reserve(window, first=first)
                held.append(window)
        except BaseException:
            for window in held:
                window.reserved -= 1
                self._pump(window)
            raise
        now = self._clock()
        for window in held:
            window.reserved -= 1
            window.stamps.append(now)
            if window.waiters and window.timer is None:
                self._pump(window)  # a reservation became a time: arm its release
        return Permit(held, now)

    def refund(self, limits: Sequence[RateLimit], permit: Permit | None = None) -> None:
        """Forget a send the platform refused (429): it did not count against the
        platform's window either. With ``permit``, exactly that send's timestamps;
        without, the newest one under each of ``limits``."""
        targets: list[tuple[_Window, float | None]]
        if permit is not None:
            if permit.refunded:
                return
            permit.refunded = True
            targets = [(w, permit.stamp) for w in permit.windows]
        else:
            targets = [(w, None) for w in (self._window(limit) for limit in limits)]
        for window, at in targets:
            if at is None:
                if window.stamps:
                    window.stamps.pop()
            else:
                try:
                    window.stamps.remove(at)
                except ValueError:
                    continue  # already out of the window
            if window.waiters:
                self._pump(window)

    def settle(self, permit: Permit, *, final: bool = False) -> None:
        """The platform answered the send of ``permit`` (or gave up on it): it was
        counted by now at the latest, so its slots free one period from now.

        ``final``: no later settle moves it again. A channel whose send makes a
        request of its own first (CURRENT_PERMIT) settles that request when it is
        answered; the dispatcher's settle when the whole send ends then changes
        nothing."""
        if permit.answered:
            return
        permit.answered = final
        now = self._clock()
        if now <= permit.stamp:
            return
        if not permit.refunded:  # a refused send is not counted at all
            for window in permit.windows:
                with contextlib.suppress(ValueError):  # gone if it outlasted the period
                    window.stamps.remove(permit.stamp)
                bisect.insort(window.stamps, now)
        permit.stamp = now

    def ready_in(self, limits: Sequence[RateLimit]) -> float:
        """How long until a send under ``limits`` would be allowed (0 if now),
        not counting the sends already queued ahead of it."""
        delay = self._delay(limits, self._clock())
        return max(0.0, delay) if delay != float("inf") else 0.0
