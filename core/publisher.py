"""Publishing: validate, store, route and enqueue in one transaction, then announce.

``publish`` is idempotent on ``signal_id``: publishing the same signal again
returns the stored one with ``created=False`` and enqueues nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from core.metrics import Metrics
from core.router import SubscriptionIndex
from domain.signals import Signal
from storage.database import Database
from storage.repositories import deliveries as deliveries_repo
from storage.repositories import signals as signals_repo

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PublishResult:
    signal: Signal
    created: bool
    deliveries: int
    route_seconds: float


class LiveFeed(Protocol):
    async def offer(self, signal: Signal) -> None:
        """Announce a committed signal to this process's live listeners; never raises."""


class Publisher:
    def __init__(
        self,
        db: Database,
        *,
        feed: LiveFeed | None = None,
        metrics: Metrics | None = None,
        on_enqueued: Callable[[], None] | None = None,
    ) -> None:
        self._db = db
        self._feed = feed
        self._metrics = metrics
        self._on_enqueued = on_enqueued
        self._index = SubscriptionIndex()
        # One publish at a time per process; across processes the signal log's own
        # lock keeps seqs visible in order (storage.repositories.signals).
        self._lock = asyncio.Lock()

    def set_wake(self, on_enqueued: Callable[[], None]) -> None:
        self._on_enqueued = on_enqueued

    async def publish(self, data: Mapping[str, Any] | Signal) -> PublishResult:
        signal = Signal.parse(data)
        async with self._lock:
            started = time.perf_counter()
            async with self._db.transaction() as session:
                seq, created = await signals_repo.insert_signal(signal, session=session)
                count = 0
                if created:
                    await signals_repo.announce(seq, session=session)
                    await self._index.refresh(session=session)
                    targets = self._index.route(signal)
                    count = await deliveries_repo.enqueue(
                        seq, targets, datetime.now(UTC), session=session
                    )
            elapsed = time.perf_counter() - started
            stored = signal.with_seq(seq)
            if not created:
                existing = await self.get(signal.signal_id)
                return PublishResult(existing or stored, False, 0, elapsed)
            if self._feed is not None:
                await self._feed.offer(stored)
        if self._metrics is not None:
            label = self._metrics.source_label(stored.source)
            self._metrics.signals_published.labels(source=label).inc()
        if count and self._on_enqueued is not None:
            self._on_enqueued()
        log.info(
            "published %s %s seq=%d -> %d deliveries (%.1f ms)",
            stored.ticker,
            stored.signal_id,
            seq,
            count,
            elapsed * 1000,
        )
        return PublishResult(stored, True, count, elapsed)

    async def warm(self) -> int:
        """Load the routing index now (at start-up) rather than on the first publish."""
        async with self._lock, self._db.session() as session:
            await self._index.refresh(session=session)
        return len(self._index)

    async def get(self, signal_id: str) -> Signal | None:
        async with self._db.session() as session:
            return await signals_repo.get_signal(signal_id, session=session)
