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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from core.channels import (
    Alert,
    Channel,
    DestinationGone,
    DestinationMoved,
    PermanentError,
    RetryLater,
)
from core.metrics import Metrics
from core.ratelimit import ScopedLimiter, UsesLimiter
from core.settings import DispatcherSettings
from storage.database import Database
from storage.models import DeliveryStatus, SignalRow
from storage.repositories import deliveries as repo
from storage.repositories import subscriptions as subs_repo
from storage.repositories.deliveries import Claimed
from storage.repositories.signals import to_signal

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

#: Waiting longer than this for a rate limit releases the claim instead of holding it.
MAX_INLINE_WAIT = 5.0


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
    ) -> None:
        self._db = db
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._channels: dict[str, Channel] = {}
        self._limiters: dict[str, ScopedLimiter] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._sweeper_task: asyncio.Task[None] | None = None
        #: Platforms being stopped: no new claims, no new sends.
        self._draining: set[str] = set()
        self._platform_of: dict[int, str] = {}
        #: Per platform, subscriptions found gone this round: skip their other claims.
        self._gone_subs: dict[str, set[int]] = {}

    # ---- setup ----------------------------------------------------------
    def register(self, channel: Channel) -> None:
        if channel.platform in self._channels:
            raise ValueError(f"a channel for {channel.platform!r} is already registered")
        self._channels[channel.platform] = channel
        limiter = self._limiters[channel.platform] = ScopedLimiter()
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
                await asyncio.sleep(min(30.0, self._settings.poll_seconds * 2 ** min(failures, 5)))
            if handled or platform in self._draining:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), self._settings.poll_seconds)

    async def _sweeper(self) -> None:
        while True:
            try:
                await self.expire_stale()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("expiry sweep failed")
            await asyncio.sleep(max(self._settings.poll_seconds * 10, 1.0))

    async def expire_stale(self) -> int:
        now = self._clock()
        cutoff = now - timedelta(seconds=self._settings.ttl_seconds)
        async with self._db.transaction() as session:
            count = await repo.expire_older_than(cutoff, now, session=session)
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
            claimed = await repo.claim_due(
                platform, now, now + lease, self._settings.batch_size, session=session
            )
        if not claimed:
            return 0
        for item in claimed:
            self._platform_of[item.delivery_id] = platform
        try:
            return await self._run_claimed(platform, channel, claimed)
        finally:
            for item in claimed:
                self._platform_of.pop(item.delivery_id, None)

    async def _run_claimed(self, platform: str, channel: Channel, claimed: list[Claimed]) -> int:
        async with self._db.session() as session:
            signals = await repo.signals_by_seq([c.signal_seq for c in claimed], session=session)
        groups: dict[str, list[Claimed]] = {}
        for item in claimed:
            groups.setdefault(item.destination, []).append(item)
        deadline = asyncio.get_running_loop().time() + self._settings.lease_seconds * 0.8
        sem = asyncio.Semaphore(self._settings.concurrency)
        gone = self._gone_subs[platform] = set()

        async def run_group(items: list[Claimed]) -> None:
            for index, item in enumerate(items):
                if item.subscription_id in gone:
                    continue  # deactivated earlier this round; its deliveries are dead
                if platform in self._draining:
                    # Stopping: what has not started goes back for the next sender now.
                    await self._release(items[index:], self._clock(), "released at shutdown")
                    return
                hold = await self._process(channel, item, signals, sem, deadline)
                if hold is not None:
                    # Keep the destination's order: the rest wait as long as this one.
                    await self._release(items[index + 1 :], hold)
                    return

        results = await asyncio.gather(
            *(run_group(items) for items in groups.values()), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                log.error("delivery group failed: %r", result)
        return len(claimed)

    async def _release(
        self,
        items: list[Claimed],
        until: datetime,
        reason: str = "waiting behind an earlier delivery",
    ) -> None:
        if not items:
            return
        async with self._db.transaction() as session:
            for item in items:
                kept = await repo.reschedule(
                    item.delivery_id,
                    item.token,
                    until,
                    session=session,
                    error=reason,
                    count_attempt=False,
                )
                if not kept:
                    self._lost(item)

    def _lost(self, item: Claimed) -> None:
        """A result that came after the claim was lost: recorded by nobody, counted."""
        platform = self._platform_of.get(item.delivery_id, "unknown")
        log.warning(
            "delivery %d: claim lost before its result was recorded (lease ran out)",
            item.delivery_id,
        )
        if self._metrics is not None:
            self._metrics.claims_lost.labels(channel=platform).inc()

    def _count(self, platform: str, state: str) -> None:
        if self._metrics is not None:
            self._metrics.deliveries.labels(channel=platform, state=state).inc()

    async def _finish(
        self, item: Claimed, status: DeliveryStatus, error: str | None = None
    ) -> None:
        async with self._db.transaction() as session:
            kept = await repo.finish(
                item.delivery_id,
                item.token,
                status,
                session=session,
                now=self._clock(),
                error=error,
                attempts_delta=0 if status is DeliveryStatus.EXPIRED else 1,
            )
        if not kept:
            self._lost(item)

    async def _process(
        self,
        channel: Channel,
        item: Claimed,
        signals: Mapping[int, SignalRow],
        sem: asyncio.Semaphore,
        deadline: float,
    ) -> datetime | None:
        """Handle one claimed delivery.

        Returns None when done, or the time before which later deliveries to the
        same destination must not go (this one was put back until then).
        """
        platform = channel.platform
        now = self._clock()
        if not item.active:
            await self._finish(item, DeliveryStatus.DEAD, "subscription inactive")
            self._count(platform, "dead")
            return None
        if now - item.created_at > timedelta(seconds=self._settings.ttl_seconds):
            await self._finish(item, DeliveryStatus.EXPIRED, "expired: older than TTL")
            self._count(platform, "expired")
            return None
        row = signals.get(item.signal_seq)
        if row is None:  # pragma: no cover - foreign key makes this impossible
            await self._finish(item, DeliveryStatus.DEAD, "signal missing")
            return None
        signal = to_signal(row)
        limiter = self._limiters[platform]
        destination = item.destination
        for _hop in range(3):
            limits = channel.limits_for(destination)
            wait = limiter.ready_in(limits)
            loop_now = asyncio.get_running_loop().time()
            if wait > MAX_INLINE_WAIT or loop_now + wait > deadline:
                return await self._reschedule(item, wait, "rate limited", count_attempt=False)
            async with sem:
                try:
                    # Queued behind other sends (FIFO per scope): give up the wait,
                    # not the claim, if the slot would come after the deadline.
                    async with asyncio.timeout_at(deadline):
                        permit = await limiter.acquire(limits)
                except TimeoutError:
                    return await self._reschedule(item, 0.0, "rate limited", count_attempt=False)
                try:
                    # A send never outlives its claim: past the deadline (well inside
                    # the lease) another worker could retake and resend it.
                    async with asyncio.timeout_at(deadline):
                        try:
                            await channel.send(
                                Alert(item.delivery_id, item.subscription_id, destination, signal)
                            )
                        finally:
                            limiter.settle(permit)  # answered (or not): counted by now
                except TimeoutError:
                    return await self._transient(
                        item, platform, "send timed out before its claim's lease ran out"
                    )
                except RetryLater as exc:
                    limiter.refund(limits, permit)
                    limiter.block(exc.scope, exc.retry_after)
                    log.warning(
                        "%s rate limited (%s) for %.1fs", platform, exc.scope, exc.retry_after
                    )
                    self._count(platform, "rate_limited")
                    return await self._reschedule(
                        item, exc.retry_after, exc.reason, count_attempt=False
                    )
                except DestinationMoved as exc:
                    async with self._db.transaction() as session:
                        moved = await subs_repo.move(
                            item.subscription_id, exc.new_destination, session=session
                        )
                    if not moved:
                        await self._gone(
                            platform, item, f"moved to {exc.new_destination}, which is taken"
                        )
                        return None
                    log.info(
                        "%s destination %s moved to %s", platform, destination, exc.new_destination
                    )
                    destination = exc.new_destination
                    continue
                except DestinationGone as exc:
                    await self._gone(platform, item, exc.reason)
                    return None
                except PermanentError as exc:
                    log.warning(
                        "%s delivery %d rejected: %s", platform, item.delivery_id, exc.reason
                    )
                    await self._finish(item, DeliveryStatus.DEAD, exc.reason)
                    self._count(platform, "dead")
                    return None
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    reason = getattr(exc, "reason", None) or f"{exc.__class__.__name__}: {exc}"
                    return await self._transient(item, platform, str(reason))
            sent_at = self._clock()
            await self._finish(item, DeliveryStatus.SENT)
            self._count(platform, "sent")
            if self._metrics is not None:
                self._metrics.delivery_latency.labels(channel=platform).observe(
                    max(0.0, (sent_at - item.created_at).total_seconds())
                )
            return None
        await self._finish(item, DeliveryStatus.DEAD, "destination moved too many times")
        return None

    async def _transient(self, item: Claimed, platform: str, reason: str) -> datetime | None:
        attempts = item.attempts + 1
        if attempts >= self._settings.max_attempts:
            log.warning(
                "%s delivery %d dead after %d attempts: %s",
                platform,
                item.delivery_id,
                attempts,
                reason,
            )
            await self._finish(item, DeliveryStatus.DEAD, reason)
            self._count(platform, "dead")
            return None
        delay = min(
            self._settings.backoff_max_seconds,
            self._settings.backoff_base_seconds * (2 ** (attempts - 1)),
        ) * random.uniform(0.8, 1.2)
        log.info(
            "%s delivery %d failed (%s); retry in %.1fs", platform, item.delivery_id, reason, delay
        )
        self._count(platform, "failed")
        return await self._reschedule(item, delay, reason, count_attempt=True)

    async def _reschedule(
        self, item: Claimed, delay: float, reason: str, *, count_attempt: bool
    ) -> datetime:
        until = self._clock() + timedelta(seconds=delay)
        async with self._db.transaction() as session:
            kept = await repo.reschedule(
                item.delivery_id,
                item.token,
                until,
                session=session,
                error=reason,
                count_attempt=count_attempt,
            )
        if not kept:
            self._lost(item)
        return until

    async def _gone(self, platform: str, item: Claimed, reason: str) -> None:
        log.warning(
            "destination of subscription %d is gone (%s); deactivating",
            item.subscription_id,
            reason,
        )
        self._gone_subs.setdefault(platform, set()).add(item.subscription_id)
        async with self._db.transaction() as session:
            await subs_repo.deactivate(item.subscription_id, reason, session=session)
            await repo.finish(
                item.delivery_id,
                item.token,
                DeliveryStatus.DEAD,
                session=session,
                now=self._clock(),
                error=reason,
            )
            await repo.kill_open_for_subscription(
                item.subscription_id, f"subscription deactivated: {reason}", session=session
            )
        self._count(platform, "dead")
