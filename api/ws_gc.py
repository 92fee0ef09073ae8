"""Connect storms and the garbage collector: no full collection while clients pour in.

Each new stream connection leaves a few hundred objects the cyclic garbage collector
tracks (the protocol, the ASGI scope, tasks, futures, the session). CPython runs a
full collection, which walks every tracked object in the process, each time the
old generation has grown by a quarter; while thousands of clients connect at once
(after a deploy) that happens again and again, each pause longer than the last,
and every connection being handshaken waits through it. A py-spy profile of
``bench/ws_fanout.py --storm 5000`` put a quarter of the event loop's busy time in
``gc_collect_main``.

:class:`StormGC` watches the connect rate. From BURST_CONNECTS connections within
one WINDOW seconds it raises the oldest generation's threshold so that no full
collection starts; the young generations are still collected as usual, so
short-lived cyclic garbage is still freed. When a window passes with fewer
connections (or after MAX_SECONDS at most) the thresholds are restored, and the
next young collection runs the postponed full one if it is still due. Only the
thresholds this class set are ever restored: if someone else changed them
meanwhile, theirs stand.
"""

from __future__ import annotations

import asyncio
import gc

#: Connections within one window that make a storm.
BURST_CONNECTS = 64
#: Seconds per window.
WINDOW = 1.0
#: The longest a storm may postpone full collections (a steady stream of connects
#: must not postpone them for ever).
MAX_SECONDS = 60.0
#: After a storm reached MAX_SECONDS, full collections run normally this long.
COOLDOWN = 30.0
#: The oldest generation's threshold during a storm: never reached.
POSTPONED = 1 << 30


class StormGC:
    """Postpones full garbage collections while connections arrive in a burst."""

    def __init__(
        self,
        *,
        burst: int = BURST_CONNECTS,
        window: float = WINDOW,
        max_seconds: float = MAX_SECONDS,
        cooldown: float = COOLDOWN,
    ) -> None:
        self._burst = burst
        self._window = window
        self._max_seconds = max_seconds
        self._cooldown = cooldown
        self._count = 0
        self._window_start = 0.0
        #: Connections since the last check (while postponed).
        self._arrivals = 0
        self._saved: tuple[int, int, int] | None = None
        self._since = 0.0
        self._resume_at = 0.0
        self._timer: asyncio.TimerHandle | None = None

    @property
    def active(self) -> bool:
        """Whether full collections are postponed now."""
        return self._saved is not None

    def connected(self) -> None:
        """A client connected (called once per new stream connection)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now - self._window_start >= self._window:
            self._window_start = now
            self._count = 0
        self._count += 1
        self._arrivals += 1
        if self._saved is None and self._count >= self._burst and now >= self._resume_at:
            self._postpone(loop, now)

    def _postpone(self, loop: asyncio.AbstractEventLoop, now: float) -> None:
        threshold = gc.get_threshold()
        if not gc.isenabled() or threshold[0] == 0:
            return  # collection is off (or managed by someone else): leave it alone
        self._saved = threshold
        self._since = now
        self._arrivals = 0
        gc.set_threshold(threshold[0], threshold[1], POSTPONED)
        self._timer = loop.call_later(self._window, self._check)

    def _check(self) -> None:
        self._timer = None
        if self._saved is None:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        still_busy = self._arrivals >= self._burst  # within the last window
        self._arrivals = 0
        if now - self._since >= self._max_seconds:
            self._resume_at = now + self._cooldown
            self.restore()
        elif still_busy:
            self._timer = loop.call_later(self._window, self._check)
        else:
            self.restore()

    def restore(self) -> None:
        """Let full collections run again (the storm is over, or the manager stops)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        saved, self._saved = self._saved, None
        if saved is not None and gc.get_threshold() == (saved[0], saved[1], POSTPONED):
            gc.set_threshold(*saved)
