"""What each outcome of a send means for its delivery row (and the metrics).

One :class:`DeliveryOutcomes` per dispatcher round and platform; one method per
outcome, each recording it under the delivery's claim token and returning what the
dispatcher needs to keep the destination's order: ``None`` when the delivery is
done, or the time it was put back until (later deliveries to the same destination
wait as long). A row whose claim was lost (its lease ran out and another worker may
have retaken it) is left alone: :meth:`DeliveryOutcomes.lost` logs and counts it.

* sent -> ``sent`` (and its latency);
* older than the TTL -> ``expired``, not an attempt;
* :class:`RetryLater` -> the send's slots are refunded, its scope blocked for
  ``retry_after``, and the delivery waits that long, not counted as an attempt;
* :class:`TransientError` (or anything unexpected) -> ``failed`` with exponential
  backoff (``backoff_base_seconds * 2**(attempts-1)``, capped at
  ``backoff_max_seconds``, times a jitter of 0.8 to 1.2), ``dead`` once
  ``max_attempts`` are used;
* :class:`DestinationGone` -> the subscription is deactivated and its open
  deliveries are marked ``dead``;
* :class:`DestinationMoved` -> the subscription follows (the caller resends), or,
  when the new destination is taken, as gone;
* :class:`PermanentError` -> ``dead``.

Metrics: deliveries by state, publish -> send latency, and per signal publish -> first
alert sent and publish -> last (:meth:`DeliveryOutcomes.observe_fan_out`, after the
round). Log lines about one delivery carry ``delivery_id`` and ``seq`` as extras.
"""

from __future__ import annotations

import logging
import random
import secrets
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from core.channels import DestinationGone, PermanentError, RateLimit, RetryLater
from core.metrics import Metrics
from core.ratelimit import Permit, ScopedLimiter
from core.settings import DispatcherSettings
from storage.database import Database
from storage.models import DeliveryKind, DeliveryStatus
from storage.repositories import deliveries as deliveries_repo
from storage.repositories import delivery_stats
from storage.repositories import subscriptions as subscriptions_repo
from storage.repositories.deliveries import Claimed

log = logging.getLogger(__name__)

WallClock = Callable[[], datetime]
#: ``random.uniform``'s signature: a factor between its two arguments.
Jitter = Callable[[float, float], float]


def ids(item: Claimed) -> dict[str, object]:
    """The ``extra=`` of a log line about one delivery (JSON logs show them)."""
    return {"delivery_id": item.delivery_id, "seq": item.signal_seq}


def _since(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds())


def describe(exc: BaseException) -> str:
    """The error recorded for an unexpected exception: its ``reason`` if it has one."""
    reason = getattr(exc, "reason", None) or f"{exc.__class__.__name__}: {exc}"
    return str(reason)


class DeliveryOutcomes:
    """Records outcomes for one platform's round of claimed deliveries."""

    def __init__(
        self,
        db: Database,
        settings: DispatcherSettings,
        platform: str,
        *,
        limiter: ScopedLimiter,
        clock: WallClock,
        metrics: Metrics | None = None,
        jitter: Jitter = random.uniform,
    ) -> None:
        self._db = db
        self._settings = settings
        self.platform = platform
        self._limiter = limiter
        self._clock = clock
        self._metrics = metrics
        self._jitter = jitter
        #: Subscriptions found gone this round: their other claims are skipped.
        self.gone_subscriptions: set[int] = set()
        #: Alerts sent this round, per signal seq: (published at, last sent at).
        self._fanned_out: dict[int, tuple[datetime, datetime]] = {}

    # ---- bookkeeping ----------------------------------------------------
    def lost(self, item: Claimed) -> None:
        """A result that came after the claim was lost: recorded by nobody, counted."""
        log.warning(
            "delivery %d: claim lost before its result was recorded (lease ran out)",
            item.delivery_id,
            extra=ids(item),
        )
        if self._metrics is not None:
            self._metrics.claims_lost.labels(channel=self.platform).inc()

    def _count(self, state: str) -> None:
        if self._metrics is not None:
            self._metrics.deliveries.labels(channel=self.platform, state=state).inc()

    async def _finish(
        self,
        item: Claimed,
        status: DeliveryStatus,
        error: str | None,
        *,
        message_id: str | None = None,
        now: datetime | None = None,
    ) -> None:
        counted = status not in (DeliveryStatus.EXPIRED, DeliveryStatus.CANCELED)
        async with self._db.transaction() as session:
            kept = await deliveries_repo.finish(
                item.delivery_id,
                item.token,
                status,
                session=session,
                now=now or self._clock(),
                error=error,
                attempts_delta=1 if counted else 0,
                message_id=message_id,
            )
        if not kept:
            self.lost(item)

    async def reschedule(
        self, item: Claimed, delay: float, reason: str, *, count_attempt: bool
    ) -> datetime:
        """Put the delivery back for ``delay`` seconds; returns until when."""
        until = self._clock() + timedelta(seconds=delay)
        await self._put_back([item], until, reason, count_attempt=count_attempt)
        return until

    async def release(
        self,
        items: Sequence[Claimed],
        until: datetime,
        reason: str = "waiting behind an earlier delivery",
    ) -> None:
        """Put claimed deliveries back, unsent and not counted, until ``until``."""
        if items:
            await self._put_back(items, until, reason, count_attempt=False)

    async def _put_back(
        self, items: Sequence[Claimed], until: datetime, reason: str, *, count_attempt: bool
    ) -> None:
        async with self._db.transaction() as session:
            for item in items:
                kept = await deliveries_repo.reschedule(
                    item.delivery_id,
                    item.token,
                    until,
                    session=session,
                    error=reason,
                    count_attempt=count_attempt,
                )
                if not kept:
                    self.lost(item)

    # ---- outcomes -------------------------------------------------------
    async def failed(
        self, item: Claimed, exc: Exception, limits: Sequence[RateLimit], permit: Permit
    ) -> datetime | None:
        """The send under ``limits`` and ``permit`` raised ``exc`` (anything but
        :class:`DestinationMoved`, which the sender follows): record what it means."""
        if isinstance(exc, TimeoutError):
            return await self.transient(item, "send timed out before its claim's lease ran out")
        if isinstance(exc, RetryLater):
            return await self.retry_later(item, exc, limits, permit)
        if isinstance(exc, DestinationGone):
            await self.gone(item, exc.reason)
            return None
        if isinstance(exc, PermanentError):
            await self.permanent(item, exc.reason)
            return None
        return await self.transient(item, describe(exc))

    async def sent(self, item: Claimed, message_id: str | None = None) -> None:
        sent_at = self._clock()
        await self._finish(item, DeliveryStatus.SENT, None, message_id=message_id, now=sent_at)
        self._count("sent")
        if self._metrics is not None:
            self._metrics.delivery_latency.labels(channel=self.platform).observe(
                _since(item.created_at, sent_at)
            )
            if item.kind == DeliveryKind.ALERT.value:
                self._sent_alert(self._metrics, item, sent_at)

    def _sent_alert(self, metrics: Metrics, item: Claimed, sent_at: datetime) -> None:
        """Publish -> first alert sent, observed now (a signal's first on the platform
        since this process started sending it); the send is kept for
        :meth:`observe_fan_out`. An alert's row is created by the publish."""
        seq = item.signal_seq
        if metrics.first_sent(self.platform, seq):
            metrics.first_delivery.labels(channel=self.platform).observe(
                _since(item.created_at, sent_at)
            )
        previous = self._fanned_out.get(seq)
        latest = sent_at if previous is None else max(previous[1], sent_at)
        self._fanned_out[seq] = (item.created_at, latest)

    async def observe_fan_out(self) -> None:
        """After the round: publish -> last alert sent, for each signal sent this round
        that has no alert left to go on the platform (one grouped query; alerts held
        for a digest wait by choice and do not count). A signal whose last alerts fail
        or expire is not observed. Never raises: a metric is not worth a round."""
        sent, self._fanned_out = self._fanned_out, {}
        if self._metrics is None or not sent:
            return
        try:
            async with self._db.session() as session:
                to_go = await delivery_stats.signals_with_alerts_to_go(
                    self.platform, sent.keys(), session=session
                )
        except Exception as exc:
            log.warning(
                "%s: last-delivery times not measured (%s)", self.platform, type(exc).__name__
            )
            return
        histogram = self._metrics.last_delivery.labels(channel=self.platform)
        for seq, (published, last_sent) in sent.items():
            if seq not in to_go:
                histogram.observe(_since(published, last_sent))

    async def hold(self, items: Sequence[Claimed], until: datetime, reason: str) -> None:
        """Hold for a digest until ``until`` (quiet hours, digest period, cap)."""
        async with self._db.transaction() as session:
            for item in items:
                if not await deliveries_repo.hold(
                    item.delivery_id, item.token, until, reason, session=session
                ):
                    self.lost(item)
        self._count("held")

    async def digest_sent(self, items: Sequence[Claimed], message_id: str | None) -> None:
        """One digest part carrying ``items`` went out as one message."""
        sent_at = self._clock()
        async with self._db.transaction() as session:
            kept = await deliveries_repo.finish_batch(
                [(i.delivery_id, i.token) for i in items],
                secrets.token_hex(16),
                now=sent_at,
                message_id=message_id,
                session=session,
            )
        if kept < len(items):
            log.warning(
                "%s digest: %d of %d rows lost their claim before being recorded",
                self.platform,
                len(items) - kept,
                len(items),
            )
        self._count("digest")
        if self._metrics is not None:
            for item in items:
                self._metrics.deliveries.labels(channel=self.platform, state="sent").inc()
                self._metrics.delivery_latency.labels(channel=self.platform).observe(
                    _since(item.created_at, sent_at)
                )

    async def inactive(self, item: Claimed) -> None:
        await self._finish(item, DeliveryStatus.DEAD, "subscription inactive")
        self._count("dead")

    async def canceled(self, item: Claimed, reason: str) -> None:
        """Not to be sent after all (its signal was retracted; an edit with nothing to
        edit); not an attempt."""
        await self._finish(item, DeliveryStatus.CANCELED, reason)
        self._count("canceled")

    async def expired(self, item: Claimed) -> None:
        await self._finish(item, DeliveryStatus.EXPIRED, "expired: older than TTL")
        self._count("expired")

    async def dead(self, item: Claimed, reason: str) -> None:
        """Given up without a send to blame (not counted as a delivery state)."""
        await self._finish(item, DeliveryStatus.DEAD, reason)

    async def rate_limited(self, item: Claimed, wait: float) -> datetime:
        """Our own limiter would hold it too long: back after ``wait``, no attempt."""
        return await self.reschedule(item, wait, "rate limited", count_attempt=False)

    async def retry_later(
        self, item: Claimed, exc: RetryLater, limits: Sequence[RateLimit], permit: Permit
    ) -> datetime:
        """The platform refused the send for ``exc.retry_after`` seconds."""
        self._limiter.refund(limits, permit)
        self._limiter.block(exc.scope, exc.retry_after)
        log.warning(
            "%s rate limited (%s) for %.1fs",
            self.platform,
            exc.scope,
            exc.retry_after,
            extra=ids(item),
        )
        self._count("rate_limited")
        return await self.reschedule(item, exc.retry_after, exc.reason, count_attempt=False)

    async def transient(self, item: Claimed, reason: str) -> datetime | None:
        """A failure that may pass: back off, or give up after ``max_attempts``."""
        attempts = item.attempts + 1
        if attempts >= self._settings.max_attempts:
            log.warning(
                "%s delivery %d dead after %d attempts: %s",
                self.platform,
                item.delivery_id,
                attempts,
                reason,
                extra=ids(item),
            )
            await self._finish(item, DeliveryStatus.DEAD, reason)
            self._count("dead")
            return None
        delay = min(
            self._settings.backoff_max_seconds,
            self._settings.backoff_base_seconds * (2 ** (attempts - 1)),
        ) * self._jitter(0.8, 1.2)
        log.info(
            "%s delivery %d failed (%s); retry in %.1fs",
            self.platform,
            item.delivery_id,
            reason,
            delay,
            extra=ids(item),
        )
        self._count("failed")
        return await self.reschedule(item, delay, reason, count_attempt=True)

    async def permanent(self, item: Claimed, reason: str) -> None:
        """The platform will never take this message: ``dead``."""
        log.warning(
            "%s delivery %d rejected: %s",
            self.platform,
            item.delivery_id,
            reason,
            extra=ids(item),
        )
        await self._finish(item, DeliveryStatus.DEAD, reason)
        self._count("dead")

    async def moved(self, item: Claimed, old: str, new: str) -> bool:
        """The destination moved to ``new``: True when the subscription followed
        (send again there); False when ``new`` is taken (handled as gone)."""
        async with self._db.transaction() as session:
            followed = await subscriptions_repo.move(item.subscription_id, new, session=session)
        if not followed:
            await self.gone(item, f"moved to {new}, which is taken")
            return False
        log.info("%s destination %s moved to %s", self.platform, old, new, extra=ids(item))
        return True

    async def gone(self, item: Claimed, reason: str) -> None:
        """The destination no longer exists: deactivate the subscription and kill
        its open deliveries (this one included)."""
        log.warning(
            "destination of subscription %d is gone (%s); deactivating",
            item.subscription_id,
            reason,
            extra=ids(item),
        )
        self.gone_subscriptions.add(item.subscription_id)
        async with self._db.transaction() as session:
            await subscriptions_repo.deactivate(item.subscription_id, reason, session=session)
            await deliveries_repo.finish(
                item.delivery_id,
                item.token,
                DeliveryStatus.DEAD,
                session=session,
                now=self._clock(),
                error=reason,
            )
            await deliveries_repo.kill_open_for_subscription(
                item.subscription_id, f"subscription deactivated: {reason}", session=session
            )
        self._count("dead")
