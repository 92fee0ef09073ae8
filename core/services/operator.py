"""The operator's questions and actions: "I didn't get the FDA alert on ABCD."

* :meth:`OperatorService.trace`: a signal and every outbox row it made (alerts and
  edits), with where each went, what became of it and why;
* :meth:`OperatorService.channels`: per channel, what the outbox did lately
  (:mod:`core.services.operator_channels`);
* :meth:`OperatorService.dead_letters` and :meth:`OperatorService.retry`: dead
  rows, and putting them back through the outbox (the dispatcher sends them under
  the usual rate limits). Every retry is recorded in ``admin_actions``.

A retried row keeps its ``created_at``: one older than the dispatcher's TTL would
only expire again (news goes stale), so it is refused with that reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core.services.operator_channels import ChannelStats, SenderView, StreamStats, channel_stats
from core.settings import DispatcherSettings
from domain.errors import InvalidInput, NotFound
from domain.signals import Signal
from storage.database import Database
from storage.models import DeliveryKind, DeliveryStatus, SignalStatus, utcnow
from storage.repositories import operator as operator_repo
from storage.repositories import signals as signals_repo
from storage.repositories.operator import DeadRow, RetryCandidate, TraceRow

#: Rows one retry takes at most (by ids, or a channel's newest dead rows).
MAX_RETRY = 1000
#: Dead letters one listing shows at most.
MAX_DEAD_LIST = 1000
RETRY_ACTION = "retry_dead"

__all__ = [
    "MAX_DEAD_LIST",
    "MAX_RETRY",
    "ChannelStats",
    "OperatorService",
    "RetryResult",
    "SenderView",
    "SignalTrace",
    "StreamStats",
]


@dataclass(frozen=True, slots=True)
class SignalTrace:
    signal: Signal
    deliveries: list[TraceRow]


@dataclass(frozen=True, slots=True)
class RetryResult:
    retried: int
    #: (delivery id, why it was not retried), in the order asked.
    skipped: list[tuple[int, str]] = field(default_factory=list)
    retried_ids: list[int] = field(default_factory=list)


class OperatorService:
    def __init__(
        self,
        db: Database,
        settings: DispatcherSettings,
        *,
        dispatcher: SenderView | None = None,
        configured: Sequence[str] = (),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = db
        self._settings = settings
        self._dispatcher = dispatcher
        #: Chat platforms enabled in the settings: listed even before any traffic.
        self._configured = tuple(configured)
        self._clock = clock

    # ---- the view ---------------------------------------------------------
    async def trace(self, signal_id: str) -> SignalTrace:
        """The signal and every delivery row it made, oldest first."""
        async with self._db.session() as session:
            signal = await signals_repo.get_signal(signal_id, session=session)
            if signal is None or signal.seq is None:
                raise NotFound(f"no signal with id {signal_id[:128]!r}")
            rows = await operator_repo.trace(signal.seq, session=session)
        return SignalTrace(signal, rows)

    async def channels(self, stream: StreamStats | None = None) -> list[ChannelStats]:
        """Per channel: subscriptions, the outbox's last hour and day, 429s and blocked
        scopes seen by this process, send latency; ``stream`` adds the WebSocket."""
        return await channel_stats(
            self._db,
            self._clock(),
            dispatcher=self._dispatcher,
            configured=self._configured,
            stream=stream,
        )

    async def dead_letters(self, channel: str | None = None, limit: int = 100) -> list[DeadRow]:
        """Dead rows (of ``channel``, or every channel), newest first."""
        if not 1 <= limit <= MAX_DEAD_LIST:
            raise InvalidInput(f"limit must be 1 to {MAX_DEAD_LIST}", field="limit")
        async with self._db.session() as session:
            return await operator_repo.dead_letters(channel or None, limit, session=session)

    # ---- the action -------------------------------------------------------
    async def retry(
        self,
        actor: str,
        *,
        delivery_ids: Sequence[int] | None = None,
        channel: str | None = None,
    ) -> RetryResult:
        """Put dead rows back through the outbox: by ids, or ``channel``'s newest
        :data:`MAX_RETRY` dead rows. Only dead rows young enough to still be sent
        (the dispatcher's TTL), of an active subscription and (alerts) a signal not
        retracted, go back; the rest are skipped with the reason. Recorded in
        ``admin_actions`` under ``actor``."""
        if (delivery_ids is None) == (channel is None):
            raise InvalidInput("give delivery ids, or a channel to retry all its dead rows")
        now = self._clock()
        async with self._db.transaction() as session:
            if delivery_ids is not None:
                ids = list(dict.fromkeys(int(i) for i in delivery_ids))
                if not ids:
                    raise InvalidInput("give at least one delivery id", field="delivery_ids")
                if len(ids) > MAX_RETRY:
                    raise InvalidInput(
                        f"at most {MAX_RETRY} delivery ids at once", field="delivery_ids"
                    )
            else:
                assert channel is not None
                ids = await operator_repo.dead_ids(channel, MAX_RETRY, session=session)
            found = await operator_repo.retry_candidates(ids, session=session)
            skipped: list[tuple[int, str]] = []
            eligible: list[int] = []
            for delivery_id in ids:
                reason = self._refusal(found.get(delivery_id), now)
                if reason is None:
                    eligible.append(delivery_id)
                else:
                    skipped.append((delivery_id, reason))
            retried = await operator_repo.requeue_dead(
                eligible, f"retried by {actor}", now, session=session
            )
            # A row that stopped being dead since it was read (retried twice at once).
            lost = set(eligible) - set(retried)
            skipped += [(i, "no longer dead") for i in eligible if i in lost]
            detail: dict[str, object] = {
                "request": {"delivery_ids": ids} if channel is None else {"channel": channel},
                "retried": retried,
                "skipped": [{"id": i, "reason": r} for i, r in skipped],
            }
            await operator_repo.record_action(actor, RETRY_ACTION, detail, now, session=session)
        if retried and self._dispatcher is not None:
            self._dispatcher.wake()
        return RetryResult(len(retried), skipped, retried)

    def _refusal(self, row: RetryCandidate | None, now: datetime) -> str | None:
        """Why ``row`` cannot be retried, or None when it can."""
        if row is None:
            return "no such delivery"
        if row.status != DeliveryStatus.DEAD.value:
            return f"status is {row.status}; only dead deliveries can be retried"
        ttl = self._settings.ttl_seconds
        if now - row.created_at > timedelta(seconds=ttl):
            return f"older than the TTL ({ttl:g}s): it would expire again (news goes stale)"
        if not row.subscription_active:
            why = f": {row.deactivated_reason}" if row.deactivated_reason else ""
            return f"subscription inactive{why}"
        if row.kind == DeliveryKind.ALERT.value and row.signal_status == SignalStatus.RETRACTED:
            return "signal retracted"
        return None

    async def recent_actions(self, limit: int = 20) -> list[dict[str, object]]:
        """The newest admin actions, newest first."""
        async with self._db.session() as session:
            rows = await operator_repo.recent_actions(limit, session=session)
        return [
            {"id": r.id, "at": r.at, "actor": r.actor, "action": r.action, "detail": r.detail}
            for r in rows
        ]
