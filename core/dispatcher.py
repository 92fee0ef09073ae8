"""The dispatcher: drains the delivery outbox through the registered channels.

One worker per channel, so a failing or rate-limited platform never stalls another.
Each round a worker claims a batch of due deliveries (with a lease, so a crashed
worker's claims are retaken), groups them by destination, and sends destination
groups concurrently while keeping each destination's order. Outcomes:

* sent -> ``sent``;
* older than the TTL -> ``expired`` (news goes stale; it is not sent late);
* :class:`RetryLater` -> the scope is blocked for ``retry_after`` and the delivery
  waits that long, not counted as an attempt;
* :class:`TransientError` or anything unexpected -> ``failed`` with exponential
  backoff, ``dead`` after ``max_attempts``;
* :class:`DestinationGone` -> the subscription is deactivated and its open
  deliveries are marked ``dead``;
* :class:`DestinationMoved` -> the subscription follows and the send is retried;
* :class:`PermanentError` -> ``dead``.

What each outcome does to the delivery row is :mod:`core.delivery_outcomes`, one
method per outcome; this module claims, orders, rate-limits and sends.

Time is injectable: ``clock`` (UTC, for rows), ``monotonic`` and ``timer`` (the
rate limiters'), ``sleep`` (the worker's backoff after a failed round, and the
sweeper's interval) and ``jitter`` (the retry backoff's random factor).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from core.channels import Channel
from core.delivery_outcomes import DeliveryOutcomes, Jitter
from core.digests import send_held
from core.edits import send_edit
from core.metrics import Metrics
from core.ratelimit import Clock as Monotonic
from core.ratelimit import ScopedLimiter, Timer, UsesLimiter, loop_timer
from core.sending import Round, send_alert
from core.settings import DispatcherSettings
from domain.delivery_prefs import DeliveryPrefs
from domain.signals import Signal
from storage.database import Database
from storage.models import DeliveryKind
from storage.repositories import deliveries as deliveries_repo
from storage.repositories import sender_health as sender_health_repo
from storage.repositories.deliveries import Claimed

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]
#: The outcome ledger's line for a signal's alert (core/hints.py: OutcomeHints.line_for).
Hints = Callable[[Signal], Awaitable[str | None]]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Dispatcher:
    def __init__(
        self,
        db: Database,
        settings: DispatcherSettings,
        *,
        metrics: Metrics | None = None,
        clock: Clock = _utcnow,
        monotonic: Monotonic = time.monotonic,
        timer: Timer = loop_timer,
        sleep: Sleep = asyncio.sleep,
        jitter: Jitter = random.uniform,
        hints: Hints | None = None,
    ) -> None:
        self._db = db
        self._hints = hints
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._monotonic = monotonic
        self._timer = timer
        self._sleep = sleep
        self._jitter = jitter
        self._channels: dict[str, Channel] = {}
        self._limiters: dict[str, ScopedLimiter] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._sweeper_task: asyncio.Task[None] | None = None
        #: Platforms being stopped: no new claims, no new sends.
        self._draining: set[str] = set()

    # ---- setup ----------------------------------------------------------
    def register(self, channel: Channel) -> None:
        if channel.platform in self._channels:
            raise ValueError(f"a channel for {channel.platform!r} is already registered")
        self._channels[channel.platform] = channel
        limiter = self._limiters[channel.platform] = ScopedLimiter(
            clock=self._monotonic, timer=self._timer
        )
        if isinstance(channel, UsesLimiter):
            # Its extra requests (a DM open before a post) draw from the same budget.
            channel.attach_limiter(limiter)

    @property
    def platforms(self) -> list[str]:
        return list(self._channels)

    def limiter(self, platform: str) -> ScopedLimiter:
        return self._limiters[platform]

    def wake(self) -> None:
        """Tell every worker there is new work (called by the publisher)."""
        for event in self._wake.values():
            event.set()

    # ---- lifecycle ------------------------------------------------------
    async def start(self) -> None:
        """Start the expiry sweeper and a worker for every channel (one process
        alone). :class:`hub.runtime.Hub` instead starts each platform's worker
        only while this process is that platform's elected sender."""
        self.start_sweeper()
        for platform in self._channels:
            await self.start_platform(platform)

    def start_sweeper(self) -> None:
        if self._sweeper_task is None:
            self._sweeper_task = asyncio.create_task(self._sweeper(), name="dispatch-sweeper")

    async def start_platform(self, platform: str) -> None:
        if platform in self._workers:
            return
        self._draining.discard(platform)
        self._wake[platform] = asyncio.Event()
        self._workers[platform] = asyncio.create_task(
            self._worker(platform), name=f"dispatch-{platform}"
        )

    async def stop_platform(self, platform: str, grace: float | None = None) -> None:
        """Stop ``platform``'s worker: no new claims or sends; sends already in
        flight get ``grace`` seconds (default ``shutdown_grace_seconds``) to
        finish and be recorded, and the rest of the batch is put back at once.
        Whatever is still running after that is cancelled (its claims are
        retaken when their lease ends)."""
        task = self._workers.pop(platform, None)
        if task is None:
            return
        self._draining.add(platform)
        event = self._wake.get(platform)
        if event is not None:
            event.set()
        grace = self._settings.shutdown_grace_seconds if grace is None else grace
        done, _ = await asyncio.wait({task}, timeout=grace)
        if not done:
            log.warning(
                "%s: in-flight sends did not finish within %gs; cancelling them",
                platform,
                grace,
            )
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    async def stop(self, grace: float | None = None) -> None:
        platforms = list(self._workers)
        await asyncio.gather(*(self.stop_platform(p, grace) for p in platforms))
        task, self._sweeper_task = self._sweeper_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def sending(self, platform: str) -> bool:
        """True while this process runs ``platform``'s worker."""
        return platform in self._workers

    async def _worker(self, platform: str) -> None:
        event = self._wake[platform]
        failures = 0
        while platform not in self._draining:
            event.clear()  # before the round, so a wake during it is not lost
            try:
                handled = await self.run_once(platform)
                if failures:
                    log.info("dispatcher for %s: database reachable again", platform)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                if failures == 1:
                    log.warning(
                        "dispatcher round for %s failed (%s: %s); retrying with backoff",
                        platform,
                        exc.__class__.__name__,
                        str(exc)[:200],
                    )
                handled = 0
                await self._sleep(min(30.0, self._settings.poll_seconds * 2 ** min(failures, 5)))
            if handled or platform in self._draining:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), self._settings.poll_seconds)

    async def _sweeper(self) -> None:
        while True:
            try:
                await self.expire_stale()
                await self.report_health()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("expiry sweep failed")
            await self._sleep(max(self._settings.poll_seconds * 10, 1.0))

    async def report_health(self) -> None:
        """Store, for each platform this process sends for, its 429s in the last hour
        and day and the scopes a retry-after blocks: the operator's view reads them
        from any process (storage/repositories/sender_health.py)."""
        if not self._workers:
            return
        now = self._clock()
        async with self._db.transaction() as session:
            for platform in list(self._workers):
                limiter = self._limiters[platform]
                await sender_health_repo.report(
                    platform,
                    f"{socket.gethostname()}:{os.getpid()}",
                    now,
                    rate_limited_hour=limiter.blocks_within(3600.0),
                    rate_limited_day=limiter.blocks_within(86_400.0),
                    blocked_until={
                        scope: now + timedelta(seconds=left)
                        for scope, left in limiter.blocked().items()
                    },
                    session=session,
                )

    async def expire_stale(self) -> int:
        now = self._clock()
        cutoff = now - timedelta(seconds=self._settings.ttl_seconds)
        async with self._db.transaction() as session:
            count = await deliveries_repo.expire_older_than(cutoff, now, session=session)
        if count:
            log.info("expired %d deliveries older than %gs", count, self._settings.ttl_seconds)
        return count

    # ---- one round ------------------------------------------------------
    async def run_once(self, platform: str) -> int:
        """Claim and process one batch for ``platform``; returns how many were handled."""
        channel = self._channels[platform]
        now = self._clock()
        lease = timedelta(seconds=self._settings.lease_seconds)
        async with self._db.transaction() as session:
            claimed = await deliveries_repo.claim_due(
                platform, now, now + lease, self._settings.batch_size, session=session
            )
        if not claimed:
            return 0
        return await self._run_claimed(platform, channel, claimed)

    async def _run_claimed(self, platform: str, channel: Channel, claimed: list[Claimed]) -> int:
        async with self._db.session() as session:
            signals = await deliveries_repo.signals_by_seq(
                [c.signal_seq for c in claimed], session=session
            )
            recent = await self._recent_sends(claimed, session)
        groups: dict[str, list[Claimed]] = {}
        for item in claimed:
            groups.setdefault(item.destination, []).append(item)
        deadline = asyncio.get_running_loop().time() + self._settings.lease_seconds * 0.8
        sem = asyncio.Semaphore(self._settings.concurrency)
        outcomes = DeliveryOutcomes(
            self._db,
            self._settings,
            platform,
            limiter=self._limiters[platform],
            clock=self._clock,
            metrics=self._metrics,
            jitter=self._jitter,
        )
        gone = outcomes.gone_subscriptions
        rounds = Round(
            channel,
            outcomes,
            signals,
            recent,
            sem,
            deadline,
            limiter=self._limiters[platform],
            settings=self._settings,
            db=self._db,
            clock=self._clock,
            hint_for=self._hint_for,
        )

        async def run_group(items: list[Claimed]) -> None:
            # Held rows go first, as one digest: they matched before the rest.
            held = [i for i in items if i.held_reason is not None]
            rest = [i for i in items if i.held_reason is None]
            if held and held[0].subscription_id not in gone:
                if platform in self._draining:
                    await outcomes.release(items, self._clock(), "released at shutdown")
                    return
                hold = await send_held(rounds, held)
                if hold is not None:
                    await outcomes.release(rest, hold)
                    return
            for index, item in enumerate(rest):
                if item.subscription_id in gone:
                    continue  # deactivated earlier this round; its deliveries are dead
                if platform in self._draining:
                    # Stopping: what has not started goes back for the next sender now.
                    await outcomes.release(rest[index:], self._clock(), "released at shutdown")
                    return
                if item.kind == DeliveryKind.EDIT.value:
                    hold = await send_edit(rounds, item)
                else:
                    hold = await send_alert(rounds, item)
                if hold is not None:
                    # Keep the destination's order: the rest wait as long as this one.
                    await outcomes.release(rest[index + 1 :], hold)
                    return

        results = await asyncio.gather(
            *(run_group(items) for items in groups.values()), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                log.error("delivery group failed: %r", result)
        await outcomes.observe_fan_out()
        return len(claimed)

    async def _recent_sends(
        self, claimed: list[Claimed], session: AsyncSession
    ) -> dict[int, list[datetime]]:
        """When each capped subscription's recent messages went (for its cap)."""
        periods = {
            c.subscription_id: cap.period
            for c in claimed
            if (cap := DeliveryPrefs.stored(c.prefs).cap) is not None
        }
        if not periods:
            return {}
        since = self._clock() - max(periods.values())
        return await deliveries_repo.recent_sends(list(periods), since, session=session)

    async def _hint_for(self, signal: Signal) -> str | None:
        """The outcome ledger's line for the alert (core/hints.py). A hint is a nicety:
        failing to read it never holds a delivery back."""
        if self._hints is None:
            return None
        try:
            return await self._hints(signal)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "no outcome hint for signal %s: %s",
                signal.signal_id,
                exc.__class__.__name__,
                extra={"signal_id": signal.signal_id, "seq": signal.seq},
            )
            return None
