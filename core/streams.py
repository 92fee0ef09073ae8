"""The user's API/WebSocket stream filter, read without writing and remembered briefly.

Reads (REST queries, ``GET /api/v1/config``, a WebSocket connect) only need the
filter: a user who never set one has the empty filter, whether or not the
subscription row exists yet. So reading never creates the row (on SQLite that
write would queue every reader behind the one write lock); the row is created
where a write is wanted anyway (setting the filter). What was read is remembered
for ``ttl`` seconds per user, so a busy client costs no database read either; a
change made in this process is seen at once (:meth:`StreamFilters.forget`), one
made by another process within ``ttl``.
"""

from __future__ import annotations

import asyncio
import time

from core.router import STREAM_PLATFORM
from core.services.subscriptions import SubscriptionInfo, SubscriptionService
from domain.filters import SignalFilter

#: Users remembered at most (the oldest go first).
MAX_USERS = 10_000


def default_stream(user_id: int) -> SubscriptionInfo:
    """What a user's stream is before anything was stored: active, empty filter (id 0:
    no row yet)."""
    return SubscriptionInfo(0, user_id, STREAM_PLATFORM, str(user_id), SignalFilter(), True, None)


class StreamFilters:
    def __init__(self, subscriptions: SubscriptionService, ttl: float = 2.0) -> None:
        self._subscriptions = subscriptions
        self._ttl = ttl
        self._known: dict[int, tuple[float, SubscriptionInfo]] = {}
        self._asking: dict[int, asyncio.Future[SubscriptionInfo | None]] = {}
        self._generation = 0  #: bumped by every forget

    async def get(self, user_id: int) -> SubscriptionInfo:
        """The user's stream as the fronts apply it. Never writes. A stream that was
        deactivated reads as active with its filter kept (what using it restores)."""
        now = time.monotonic()
        known = self._known.get(user_id)
        if known is not None and now < known[0]:
            return known[1]
        generation = self._generation
        asking = self._asking.get(user_id)
        if asking is None:
            asking = asyncio.ensure_future(self._subscriptions.get(STREAM_PLATFORM, str(user_id)))
            self._asking[user_id] = asking
            asking.add_done_callback(lambda _f: self._asking.pop(user_id, None))
        info = await asyncio.shield(asking)  # concurrent readers share one query
        if info is None:
            info = default_stream(user_id)
        elif not info.active:
            info = SubscriptionInfo(
                info.id, info.user_id, info.platform, info.destination, info.filter, True, None
            )
        if self._ttl > 0 and generation == self._generation:  # no change began meanwhile
            self._known.pop(user_id, None)
            if len(self._known) >= MAX_USERS:
                del self._known[next(iter(self._known))]
            self._known[user_id] = (now + self._ttl, info)
        return info

    def forget(self, user_id: int) -> None:
        self._generation += 1
        self._known.pop(user_id, None)
        self._asking.pop(user_id, None)  # a read begun before the change is not reused
