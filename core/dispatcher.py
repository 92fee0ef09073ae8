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
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from core.channels import Alert, Channel, DestinationMoved, Digest, DigestItem, Edit
from core.delivery_outcomes import DeliveryOutcomes, Jitter
from core.metrics import Metrics
from core.ratelimit import Clock as Monotonic
from core.ratelimit import ScopedLimiter, Timer, UsesLimiter, loop_timer
from core.settings import DispatcherSettings
from domain.delivery_prefs import DeliveryPrefs, HoldReason
from domain.signals import Signal, SignalStatus
from storage.database import Database
from storage.models import DeliveryKind, DeliveryStatus, SignalRow
from storage.repositories import deliveries as deliveries_repo
from storage.repositories.deliveries import Claimed, Original
from storage.repositories.signals import to_signal

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]
#: The outcome ledger's line for a signal's alert (core/hints.py: OutcomeHints.line_for).
Hints = Callable[[Signal], Awaitable[str | None]]

#: Waiting longer than this for a rate limit releases the claim instead of holding it.
MAX_INLINE_WAIT = 5.0
#: How many times one send follows its destination moving before it gives up.
MAX_MOVES = 3
#: An edit whose original is being sent right now looks again after this long.
EDIT_WAIT_SECONDS = 5.0


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
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("expiry sweep failed")
            await self._sleep(max(self._settings.poll_seconds * 10, 1.0))

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
        rounds = _Round(channel, outcomes, signals, recent, sem, deadline)

        async def run_group(items: list[Claimed]) -> None:
            # Held rows go first, as one digest: they matched before the rest.
            held = [i for i in items if i.held_reason is not None]
            rest = [i for i in items if i.held_reason is None]
            if held and held[0].subscription_id not in gone:
                if platform in self._draining:
                    await outcomes.release(items, self._clock(), "released at shutdown")
                    return
                hold = await self._digest(rounds, held)
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
                    hold = await self._edit(rounds, item)
                else:
                    hold = await self._process(rounds, item)
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
                "no outcome hint for signal %s: %s", signal.signal_id, exc.__class__.__name__
            )
            return None

    async def _process(self, rounds: _Round, item: Claimed) -> datetime | None:
        """Handle one claimed alert (not held): send it now, or hold it for a digest.

        Returns None when done, or the time before which later deliveries to the
        same destination must not go (this one was put back until then).
        """
        outcomes = rounds.outcomes
        if await self._finished_unsent(outcomes, item):
            return None
        now = self._clock()
        prefs = DeliveryPrefs.stored(item.prefs)
        if not prefs.empty:
            hold = prefs.plan(now, rounds.recent.get(item.subscription_id, []))
            if hold is not None:
                await outcomes.hold([item], hold.until, hold.reason)
                return None
        row = rounds.signals.get(item.signal_seq)
        if row is None:  # pragma: no cover - foreign key makes this impossible
            await outcomes.dead(item, "signal missing")
            return None
        signal = to_signal(row)
        if signal.retracted:  # retracted while this delivery was in flight
            await outcomes.canceled(item, "signal retracted")
            return None
        hint = await self._hint_for(signal)

        def send(destination: str) -> Awaitable[str | None]:
            alert = Alert(item.delivery_id, item.subscription_id, destination, signal, hint)
            return rounds.channel.send(alert)

        result = await self._deliver(rounds, item, send)
        if isinstance(result, _Sent):
            rounds.recent.setdefault(item.subscription_id, []).append(self._clock())
            await outcomes.sent(item, result.message_id)
            return None
        return result

    async def _digest(self, rounds: _Round, held: list[Claimed]) -> datetime | None:
        """Send one destination's due held alerts as a digest (in parts past the
        platform's length limit), or hold them again (quiet hours began, the cap is
        full). Returns the time the rest of the destination must wait, or None."""
        outcomes = rounds.outcomes
        first = held[0]
        if not first.active:
            for item in held:
                await outcomes.inactive(item)
            return None
        now = self._clock()
        prefs = DeliveryPrefs.stored(first.prefs)
        hold = prefs.plan(now, rounds.recent.get(first.subscription_id, []), batching=False)
        if hold is not None:
            await outcomes.hold(held, hold.until, hold.reason)
            return None
        ttl = timedelta(seconds=self._settings.digest_ttl_seconds)
        stale = [i for i in held if now - i.created_at > ttl]
        for item in stale:
            await outcomes.expired(item)
        entries = []
        for item in held:
            row = rounds.signals.get(item.signal_seq)
            if item in stale or row is None:
                continue
            if row.status == SignalStatus.RETRACTED.value:
                await outcomes.canceled(item, "signal retracted")
                continue
            signal = to_signal(row)
            hint = await self._hint_for(signal)
            entries.append((DigestItem(item.delivery_id, signal, item.created_at, hint), item))
        if not entries:
            return None
        entries.sort(key=lambda e: (e[0].signal.timestamp, e[0].signal.seq or 0), reverse=True)
        reasons = Counter(i.held_reason for _d, i in entries)
        digest = Digest(
            first.subscription_id,
            first.destination,
            tuple(d for d, _i in entries),
            _reason(reasons.most_common(1)[0][0]),
            now,
            omitted=len(stale),
        )
        rows = {d.delivery_id: i for d, i in entries}
        parts = rounds.channel.digest_parts(digest)
        for index, part in enumerate(parts):
            part_rows = [rows[d.delivery_id] for d in part.items]

            def send(destination: str, part: Digest = part) -> Awaitable[str | None]:
                return rounds.channel.send_digest(replace(part, destination=destination))

            result = await self._deliver(rounds, part_rows[0], send)
            if isinstance(result, _Sent):
                rounds.recent.setdefault(first.subscription_id, []).append(self._clock())
                await outcomes.digest_sent(part_rows, result.message_id)
                continue
            later = [rows[d.delivery_id] for p in parts[index + 1 :] for d in p.items]
            if result is not None:  # put back: the part's other rows and later parts wait too
                await outcomes.release(part_rows[1:] + later, result)
                return result
            if first.subscription_id in outcomes.gone_subscriptions:
                return None  # its rows were all marked dead with the subscription
            for item in part_rows[1:]:
                await outcomes.dead(item, "its digest part was refused")
        return None

    async def _finished_unsent(self, outcomes: DeliveryOutcomes, item: Claimed) -> bool:
        """Record a delivery that must not go: its subscription ended, or it is older
        than the TTL (news goes stale). True when it was recorded."""
        if not item.active:
            await outcomes.inactive(item)
            return True
        if self._clock() - item.created_at > timedelta(seconds=self._settings.ttl_seconds):
            await outcomes.expired(item)
            return True
        return False

    async def _edit(self, rounds: _Round, item: Claimed) -> datetime | None:
        """Edit the message that carried a signal's alert to the signal's current
        revision. A destination that never got the alert gets nothing; one whose
        alert is being sent right now waits for it."""
        outcomes = rounds.outcomes
        if await self._finished_unsent(outcomes, item):
            return None
        now = self._clock()
        async with self._db.session() as session:
            original = await deliveries_repo.original_of(
                item.signal_seq, item.subscription_id, now, session=session
            )
            row = rounds.signals.get(item.signal_seq)
            signal = to_signal(row) if row is not None else None
            digest = None
            if original is not None and original.batch_id is not None and signal is not None:
                digest = await self._digest_again(item, original, session)
        if original is not None and original.in_flight:
            return await outcomes.reschedule(
                item, EDIT_WAIT_SECONDS, "waiting for the original send", count_attempt=False
            )
        if original is None or signal is None or original.status != DeliveryStatus.SENT.value:
            await outcomes.canceled(item, "the destination never got the original")
            return None
        if original.message_id is None:
            await outcomes.canceled(item, "the original message has no id to edit")
            return None
        message_id = original.message_id
        hint = None if signal.retracted else await self._hint_for(signal)

        def send(destination: str) -> Awaitable[str | None]:
            edit = Edit(
                item.delivery_id,
                item.subscription_id,
                destination,
                message_id,
                signal,
                digest,
                hint,
            )
            return _edited(rounds.channel.edit(edit))

        result = await self._deliver(rounds, item, send)
        if isinstance(result, _Sent):
            await outcomes.sent(item, message_id)
            return None
        return result

    async def _digest_again(
        self, item: Claimed, original: Original, session: AsyncSession
    ) -> Digest | None:
        """The digest part an alert went out in, from its items' current state."""
        assert original.batch_id is not None
        rows = await deliveries_repo.batch_rows(original.batch_id, session=session)
        signals = await deliveries_repo.signals_by_seq([r[1] for r in rows], session=session)
        items = [
            DigestItem(delivery_id, to_signal(signals[seq]), created_at)
            for delivery_id, seq, created_at, _reason in rows
            if seq in signals
        ]
        if not items:
            return None
        items.sort(key=lambda i: (i.signal.timestamp, i.signal.seq or 0), reverse=True)
        return Digest(
            item.subscription_id,
            item.destination,
            tuple(items),
            _reason(rows[0][3]),
            original.sent_at or self._clock(),
        )

    async def _deliver(
        self, rounds: _Round, lead: Claimed, send: Callable[[str], Awaitable[str | None]]
    ) -> _Sent | datetime | None:
        """Send under the destination's rate limits, following it if it moved.

        ``lead`` is the row a failure is recorded on. Returns :class:`_Sent` on
        success (the caller records it); otherwise the failure was recorded and
        the result is the time the destination must wait, or None."""
        channel, outcomes = rounds.channel, rounds.outcomes
        limiter = self._limiters[channel.platform]
        destination = lead.destination
        for _move in range(MAX_MOVES):
            limits = channel.limits_for(destination)
            wait = limiter.ready_in(limits)
            loop_now = asyncio.get_running_loop().time()
            if wait > MAX_INLINE_WAIT or loop_now + wait > rounds.deadline:
                return await outcomes.rate_limited(lead, wait)
            async with rounds.sem:
                try:
                    # Queued behind other sends (FIFO per scope): give up the wait,
                    # not the claim, if the slot would come after the deadline.
                    async with asyncio.timeout_at(rounds.deadline):
                        permit = await limiter.acquire(limits)
                except TimeoutError:
                    return await outcomes.rate_limited(lead, 0.0)
                try:
                    # A send never outlives its claim: past the deadline (well inside
                    # the lease) another worker could retake and resend it.
                    async with asyncio.timeout_at(rounds.deadline):
                        try:
                            message_id = await send(destination)
                        finally:
                            limiter.settle(permit)  # answered (or not): counted by now
                except DestinationMoved as exc:
                    if not await outcomes.moved(lead, destination, exc.new_destination):
                        return None
                    destination = exc.new_destination
                    continue
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # what it means: DeliveryOutcomes.failed
                    return await outcomes.failed(lead, exc, limits, permit)
            return _Sent(message_id)
        await outcomes.dead(lead, "destination moved too many times")
        return None


@dataclass(frozen=True, slots=True)
class _Sent:
    message_id: str | None


@dataclass(frozen=True, slots=True)
class _Round:
    """What one round's sends share."""

    channel: Channel
    outcomes: DeliveryOutcomes
    signals: Mapping[int, SignalRow]
    #: Per capped subscription, when its recent messages went (appended as we send).
    recent: dict[int, list[datetime]]
    sem: asyncio.Semaphore
    deadline: float


async def _edited(edit: Awaitable[None]) -> str | None:
    await edit
    return None


def _reason(value: str | None) -> HoldReason:
    try:
        return HoldReason(value or HoldReason.DIGEST)
    except ValueError:
        return HoldReason.DIGEST
