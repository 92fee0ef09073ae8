"""Bodies of the operator's admin endpoints: a signal's delivery trace, channel
health, dead letters and their retry (``api/routes_admin.py``)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.schemas import SignalOut
from core.services.operator import MAX_RETRY, RetryResult, SignalTrace
from core.services.operator_channels import STATUSES, ChannelStats
from storage.repositories.operator import DeadRow, TraceRow

#: Statuses a delivery ends in unsent: its ``ended_at`` and ``reason`` are shown.
ENDED = frozenset({"expired", "dead", "canceled"})


class StatusCountsOut(BaseModel):
    """Outbox rows by status."""

    pending: int = 0
    held: int = 0
    sent: int = 0
    failed: int = 0
    expired: int = 0
    dead: int = 0
    canceled: int = 0


class TraceDeliveryOut(BaseModel):
    """One outbox row of the signal: an alert, or an edit of a delivered one."""

    id: int
    kind: str = Field(examples=["alert"], description="alert, or edit (of a delivered one).")
    revision: int = Field(description="The signal revision an edit brings (0 for alerts).")
    platform: str
    destination: str
    subscription_id: int
    user: str | None = Field(description="The subscriber's hub user name.")
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None
    ended_at: datetime | None = Field(
        description="When it ended unsent (expired, dead, canceled); null otherwise."
    )
    reason: str | None = Field(
        description="Why it ended unsent (its last error); null unless expired, dead or canceled."
    )

    @classmethod
    def of(cls, row: TraceRow) -> TraceDeliveryOut:
        ended = row.status in ENDED
        return cls(
            id=row.id,
            kind=row.kind,
            revision=row.revision,
            platform=row.platform,
            destination=row.destination,
            subscription_id=row.subscription_id,
            user=row.user_name,
            status=row.status,
            attempts=row.attempts,
            last_error=row.last_error,
            created_at=row.created_at,
            next_attempt_at=row.next_attempt_at,
            sent_at=row.sent_at,
            ended_at=row.ended_at if ended else None,
            reason=row.last_error if ended else None,
        )


class SignalTraceOut(BaseModel):
    """A signal and every delivery row it made, oldest first."""

    signal: SignalOut
    summary: StatusCountsOut = Field(description="The deliveries by status.")
    deliveries: list[TraceDeliveryOut]

    @classmethod
    def of(cls, trace: SignalTrace) -> SignalTraceOut:
        counts = Counter(row.status for row in trace.deliveries)
        return cls(
            signal=SignalOut.model_validate(trace.signal.to_public()),
            summary=StatusCountsOut(**{s: counts.get(s, 0) for s in STATUSES}),
            deliveries=[TraceDeliveryOut.of(r) for r in trace.deliveries],
        )


class BlockedScopeOut(BaseModel):
    scope: str = Field(examples=["chat:123456"])
    seconds_left: float


class LatencyOut(BaseModel):
    """Enqueue to send of the last hour's alerts sent at once (digests left out)."""

    p50_seconds: float | None
    p95_seconds: float | None
    samples: int


class ChannelOut(BaseModel):
    channel: str = Field(examples=["telegram"])
    registered: bool = Field(description="A sender for it is registered in this process.")
    sending_here: bool = Field(
        description="This process runs its sender now: rate_limited and blocked_scopes "
        "are live; otherwise they are what the sender last reported (report_age_seconds)."
    )
    active_subscriptions: int
    last_hour: StatusCountsOut = Field(description="Outbox rows created in the last hour.")
    last_day: StatusCountsOut = Field(description="Outbox rows created in the last 24 hours.")
    rate_limited: int = Field(description="429s (retry-afters) its sender got in the last hour.")
    rate_limited_day: int = Field(description="The same over the last 24 hours.")
    blocked_scopes: list[BlockedScopeOut]
    reported_by: str | None = Field(
        description="The sending process (host:pid) these 429s and blocks come from; "
        "null when no sender has reported."
    )
    report_age_seconds: float | None = Field(
        description="How old the sender's report is; null when live (sending_here)."
    )
    latency: LatencyOut
    connections: int | None = Field(
        default=None, description="websocket only: open connections in this process."
    )
    stream_users: int | None = Field(
        default=None, description="websocket only: distinct users connected to this process."
    )

    @classmethod
    def of(cls, stats: ChannelStats) -> ChannelOut:
        return cls(
            channel=stats.channel,
            registered=stats.registered,
            sending_here=stats.sending_here,
            active_subscriptions=stats.active_subscriptions,
            last_hour=StatusCountsOut(**stats.last_hour),
            last_day=StatusCountsOut(**stats.last_day),
            rate_limited=stats.rate_limited,
            rate_limited_day=stats.rate_limited_day,
            reported_by=stats.reported_by,
            report_age_seconds=stats.report_age_seconds,
            blocked_scopes=[
                BlockedScopeOut(scope=s, seconds_left=left)
                for s, left in stats.blocked_scopes.items()
            ],
            latency=LatencyOut(
                p50_seconds=stats.latency_p50,
                p95_seconds=stats.latency_p95,
                samples=stats.latency_samples,
            ),
            connections=stats.connections,
            stream_users=stats.stream_users,
        )


class ChannelsOut(BaseModel):
    generated_at: datetime
    channels: list[ChannelOut]


class DeadLetterOut(BaseModel):
    id: int
    signal_id: str
    ticker: str
    kind: str
    revision: int
    platform: str
    destination: str
    subscription_id: int
    attempts: int
    last_error: str | None
    created_at: datetime
    ended_at: datetime | None

    @classmethod
    def of(cls, row: DeadRow) -> DeadLetterOut:
        return cls(
            id=row.id,
            signal_id=row.signal_id,
            ticker=row.ticker,
            kind=row.kind,
            revision=row.revision,
            platform=row.platform,
            destination=row.destination,
            subscription_id=row.subscription_id,
            attempts=row.attempts,
            last_error=row.last_error,
            created_at=row.created_at,
            ended_at=row.ended_at,
        )


DeliveryId = Annotated[int, Field(ge=1, le=2**63 - 1)]


class RetryIn(BaseModel):
    """Exactly one of: ``{"delivery_ids": [...]}``, or ``{"channel": "telegram",
    "all": true}`` (that channel's newest dead rows, up to the batch limit)."""

    model_config = ConfigDict(extra="forbid")

    delivery_ids: list[DeliveryId] | None = Field(
        default=None, min_length=1, max_length=MAX_RETRY, examples=[[12, 13]]
    )
    channel: str | None = Field(default=None, min_length=1, max_length=16, examples=["telegram"])
    all: bool | None = Field(default=None, description="With channel: every dead row of it.")

    @model_validator(mode="after")
    def _one_form(self) -> RetryIn:
        by_ids = self.delivery_ids is not None
        by_channel = self.channel is not None or self.all is not None
        if by_ids and by_channel:
            raise ValueError('give either "delivery_ids" or "channel" with "all": true, not both')
        if not by_ids and not by_channel:
            raise ValueError('give "delivery_ids": [...] or "channel": "...", "all": true')
        if by_channel and self.channel is None:
            raise ValueError('"all" needs "channel": the channel whose dead rows to retry')
        if by_channel and self.all is not True:
            raise ValueError('"channel" needs "all": true (or give "delivery_ids" instead)')
        return self


class SkippedOut(BaseModel):
    id: int
    reason: str = Field(examples=["older than the TTL (900s): it would expire again"])


class RetryOut(BaseModel):
    retried: int
    skipped: list[SkippedOut]
    retried_ids: list[int]

    @classmethod
    def of(cls, result: RetryResult) -> RetryOut:
        return cls(
            retried=result.retried,
            skipped=[SkippedOut(id=i, reason=r) for i, r in result.skipped],
            retried_ids=result.retried_ids,
        )
