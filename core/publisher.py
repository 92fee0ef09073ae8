"""Publishing: validate, store, route and enqueue in one transaction, then announce.

``publish`` is idempotent on ``signal_id``: publishing the same signal again
returns the stored one with ``created=False`` and enqueues nothing.

Publishing a known ``signal_id`` with a field a trader sees changed (ticker, type,
confidence, catalyst, price, rvol, sector, headline, url) corrects it, and with
``"status": "retracted"`` withdraws it (the fields given are laid over the stored
ones, so a retraction needs only the id and the status). The time stays as first
published, and new metadata or source alone change nothing: producers that retry
with a fresh timestamp or fetch time are not correcting anything. Either way the signal's
revision goes up by one and, in the same transaction, every destination that got
it gets an edit row in the outbox, and a retraction cancels the deliveries not yet
sent. A retracted signal stays retracted: publishing it again changes nothing.
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
from domain.errors import InvalidInput, NotFound
from domain.signals import Signal, SignalStatus, is_signal_id
from storage.database import Database
from storage.repositories import deliveries as deliveries_repo
from storage.repositories import signals as signals_repo

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PublishResult:
    signal: Signal
    created: bool
    #: Deliveries enqueued: alerts for a new signal, edits for a revised one.
    deliveries: int
    route_seconds: float
    #: True when a known signal was corrected or retracted.
    revised: bool = False


def _given_fields(data: Mapping[str, Any] | Signal) -> dict[str, Any]:
    """The fields a producer actually gave (a Signal's defaults are not "given")."""
    if isinstance(data, Signal):
        return {name: getattr(data, name) for name in data.model_fields_set}
    if not isinstance(data, Mapping):
        raise InvalidInput("a signal must be a JSON object")
    return dict(data)


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
        given = _given_fields(data)
        signal_id = given.get("signal_id")
        known = isinstance(signal_id, str) and is_signal_id(signal_id)
        if known and "status" in given:
            # A retraction names only the id and the status: lay it over the stored signal.
            stored = await self.get(str(signal_id))
            if stored is not None:
                return await self._revise(stored, given)
            if str(given["status"]).strip().lower() == SignalStatus.RETRACTED.value:
                raise NotFound(f"no signal {signal_id!r} to retract")
        try:
            signal = Signal.parse(data)
        except InvalidInput:
            # Incomplete as a new signal; as a correction of a stored one it may do.
            stored = await self.get(str(signal_id)) if known else None
            if stored is None:
                raise
            return await self._revise(stored, given)
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
                if existing is None:  # pragma: no cover - it was there a moment ago
                    return PublishResult(stored, False, 0, elapsed)
                return await self._revise(existing, given, locked=True)
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
            extra={"signal_id": stored.signal_id, "seq": seq},
        )
        return PublishResult(stored, True, count, elapsed)

    async def _revise(
        self, stored: Signal, given: Mapping[str, Any], *, locked: bool = False
    ) -> PublishResult:
        """Correct or retract ``stored`` with the fields ``given``; nothing when they
        change nothing or it is already retracted."""
        revised = Signal.parse({**stored.to_public(), **given, "timestamp": stored.timestamp})
        if stored.retracted or revised.same_content(stored):
            return PublishResult(stored, False, 0, 0.0)
        assert stored.seq is not None
        if locked:
            return await self._store_revision(stored.seq, revised)
        async with self._lock:
            return await self._store_revision(stored.seq, revised)

    async def _store_revision(self, seq: int, revised: Signal) -> PublishResult:
        started = time.perf_counter()
        now = datetime.now(UTC)
        async with self._db.transaction() as session:
            revision = await signals_repo.revise_signal(seq, revised, session=session)
            if revision is None:  # retracted by another publisher since it was read
                current = await signals_repo.get_signal(revised.signal_id, session=session)
                assert current is not None
                return PublishResult(current, False, 0, time.perf_counter() - started)
            canceled = 0
            if revised.retracted:
                canceled = await deliveries_repo.cancel_open(
                    seq, "signal retracted", now, kind="alert", session=session
                )
            await deliveries_repo.cancel_open(
                seq,
                "superseded by a newer revision",
                now,
                kind="edit",
                below_revision=revision,
                session=session,
            )
            edits = await deliveries_repo.enqueue_edits(seq, revision, now, session=session)
            await signals_repo.announce(seq, session=session)
        elapsed = time.perf_counter() - started
        current = revised.model_copy(update={"seq": seq, "revision": revision})
        if self._feed is not None:
            await self._feed.offer(current)
        if edits and self._on_enqueued is not None:
            self._on_enqueued()
        log.info(
            "%s %s %s revision %d: %d edits queued, %d deliveries canceled",
            "retracted" if revised.retracted else "corrected",
            current.ticker,
            current.signal_id,
            revision,
            edits,
            canceled,
            extra={"signal_id": current.signal_id, "seq": seq, "revision": revision},
        )
        return PublishResult(current, False, edits, elapsed, revised=True)

    async def warm(self) -> int:
        """Load the routing index now (at start-up) rather than on the first publish."""
        async with self._lock, self._db.session() as session:
            await self._index.refresh(session=session)
        return len(self._index)

    async def get(self, signal_id: str) -> Signal | None:
        async with self._db.session() as session:
            return await signals_repo.get_signal(signal_id, session=session)
