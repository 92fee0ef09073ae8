"""SQLModel tables. Schema changes go through an Alembic migration in ``migrations/versions``."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(**kw: Any) -> Any:
    return Field(sa_type=UTCDateTime, **kw)


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    DEAD = "dead"
    EXPIRED = "expired"
    #: Waiting for its due time (quiet hours, a digest period, a cap): it goes out
    #: in a digest with everything else held for the destination by then.
    HELD = "held"
    #: Its signal was retracted before it went out.
    CANCELED = "canceled"


class DeliveryKind(StrEnum):
    ALERT = "alert"
    #: Edit a message already delivered (the signal was corrected or retracted).
    EDIT = "edit"


class SignalStatus(StrEnum):
    ACTIVE = "active"
    RETRACTED = "retracted"


#: Covers the filter preview's grouped count (storage/repositories/preview.py): in
#: group order, so no sort, and holding every filter field, so no table lookups.
PREVIEW_INDEX_COLUMNS = (
    "catalyst_type",
    "ticker",
    "timestamp",
    "confidence",
    "signal_type",
    "price",
    "rvol",
    "sector",
)


class SignalRow(SQLModel, table=True):
    __tablename__ = "signals"
    __table_args__ = (sa.Index("ix_signals_preview", *PREVIEW_INDEX_COLUMNS),)

    seq: int | None = Field(default=None, primary_key=True)
    signal_id: str = Field(max_length=128, unique=True, index=True)
    ticker: str = Field(max_length=16, index=True)
    signal_type: str = Field(max_length=8)
    confidence: float
    catalyst_type: str = Field(max_length=32)
    source: str = Field(max_length=64)
    price: float | None = None
    rvol: float | None = None
    sector: str | None = Field(default=None, max_length=64)
    headline: str | None = Field(default=None, max_length=500)
    url: str | None = Field(default=None, max_length=2048)
    timestamp: datetime = _ts(index=True)
    meta: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    created_at: datetime = _ts(default_factory=utcnow)
    #: ``retracted`` once the producer withdrew it (a false positive).
    status: str = Field(default=SignalStatus.ACTIVE.value, max_length=12)
    #: 0 as first published; each correction or retraction adds one.
    revision: int = 0


class SignalRevision(SQLModel, table=True):
    """One correction or retraction of a stored signal, in commit order: live
    readers in every process tail it (``id > cursor``) to send ``signal_update``."""

    __tablename__ = "signal_revisions"

    id: int | None = Field(default=None, primary_key=True)
    signal_seq: int = Field(foreign_key="signals.seq")
    revision: int
    created_at: datetime = _ts(default_factory=utcnow)


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True, index=True)
    is_admin: bool = False
    created_at: datetime = _ts(default_factory=utcnow)


class Account(SQLModel, table=True):
    """A platform identity (Telegram user, Discord user) belonging to a hub user."""

    __tablename__ = "accounts"
    __table_args__ = (sa.UniqueConstraint("platform", "account_id", name="uq_account"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16)
    account_id: str = Field(max_length=64)
    user_id: int = Field(foreign_key="users.id", index=True)
    created_at: datetime = _ts(default_factory=utcnow)


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    #: First characters of the key, shown in listings; never enough to use it.
    prefix: str = Field(max_length=24)
    key_hash: str = Field(max_length=64, unique=True, index=True)
    scopes: str = Field(max_length=128)
    created_at: datetime = _ts(default_factory=utcnow)
    revoked_at: datetime | None = _ts(default=None)
    last_used_at: datetime | None = _ts(default=None)


class Subscription(SQLModel, table=True):
    __tablename__ = "subscriptions"
    __table_args__ = (sa.UniqueConstraint("platform", "destination", name="uq_destination"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    platform: str = Field(max_length=16)
    destination: str = Field(max_length=128)
    filter: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    active: bool = Field(default=True)
    deactivated_reason: str | None = Field(default=None, max_length=255)
    #: Quiet hours, digest period and cap (domain.delivery_prefs.DeliveryPrefs).
    delivery: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    created_at: datetime = _ts(default_factory=utcnow)
    updated_at: datetime = _ts(default_factory=utcnow, index=True)


class Delivery(SQLModel, table=True):
    """The outbox: one alert row per (signal, subscription), and one edit row per
    later revision of a signal already delivered there."""

    __tablename__ = "deliveries"
    __table_args__ = (
        sa.UniqueConstraint("signal_seq", "subscription_id", "revision", name="uq_delivery"),
        sa.Index("ix_deliveries_due", "platform", "status", "next_attempt_at"),
        # A signal's deliveries, when it is corrected or retracted.
        sa.Index("ix_deliveries_signal", "signal_seq"),
        # The operator's per-channel counts over the last hour and day.
        sa.Index("ix_deliveries_created", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    signal_seq: int = Field(foreign_key="signals.seq")
    subscription_id: int = Field(foreign_key="subscriptions.id", index=True)
    platform: str = Field(max_length=16)
    status: str = Field(default=DeliveryStatus.PENDING.value, max_length=8)
    attempts: int = 0
    next_attempt_at: datetime = _ts(default_factory=utcnow)
    claimed_until: datetime | None = _ts(default=None)
    #: The owner of the current claim: results are recorded only under this token.
    claim_token: str | None = Field(default=None, max_length=32)
    created_at: datetime = _ts(default_factory=utcnow)
    sent_at: datetime | None = _ts(default=None)
    last_error: str | None = Field(default=None, max_length=500)
    kind: str = Field(default=DeliveryKind.ALERT.value, max_length=8)
    #: The signal revision an edit row brings (0 for alerts).
    revision: int = 0
    #: Why a ``held`` row waits (domain.delivery_prefs.HoldReason).
    held_reason: str | None = Field(default=None, max_length=8)
    #: The digest a row went out in (one token per digest part).
    batch_id: str | None = Field(default=None, max_length=32)
    #: The platform's id of the message that carried it, to edit it later.
    message_id: str | None = Field(default=None, max_length=64)
    #: When it ended unsent (``dead``, ``expired``, ``canceled``); why is ``last_error``.
    ended_at: datetime | None = _ts(default=None)


class TradeOutcome(SQLModel, table=True):
    __tablename__ = "trade_outcomes"
    __table_args__ = (sa.UniqueConstraint("user_id", "signal_seq", name="uq_outcome"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    signal_seq: int = Field(foreign_key="signals.seq", index=True)
    outcome: str = Field(max_length=16)
    return_pct: float | None = None
    created_at: datetime = _ts(default_factory=utcnow)
    updated_at: datetime = _ts(default_factory=utcnow)


class LinkCode(SQLModel, table=True):
    __tablename__ = "link_codes"

    code: str = Field(primary_key=True, max_length=32)
    user_id: int = Field(foreign_key="users.id", index=True)
    platform: str = Field(max_length=16)
    created_at: datetime = _ts(default_factory=utcnow)
    expires_at: datetime = _ts()
    used_at: datetime | None = _ts(default=None)


class SourceCursor(SQLModel, table=True):
    """Where a source left off (the jsonl source's byte offset), across restarts."""

    __tablename__ = "source_cursors"

    name: str = Field(primary_key=True, max_length=255)
    state: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    updated_at: datetime = _ts(default_factory=utcnow)


class PlatformMemo(SQLModel, table=True):
    """Small facts a platform adapter learns and should not relearn after a restart
    (the Discord DM channel id of a user: opening it again costs a request)."""

    __tablename__ = "platform_memos"

    namespace: str = Field(primary_key=True, max_length=32)
    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(max_length=128)
    updated_at: datetime = _ts(default_factory=utcnow)


class StreamReceipt(SQLModel, table=True):
    """How many signals a user received over the API stream: WebSocket frames and
    new signals in REST answers (counted in memory per process, added here in
    batches by :mod:`core.receipts`)."""

    __tablename__ = "stream_receipts"

    user_id: int = Field(primary_key=True, foreign_key="users.id")
    received: int = Field(default=0, sa_type=sa.BigInteger)
    updated_at: datetime = _ts(default_factory=utcnow)


class AdminAction(SQLModel, table=True):
    """What an operator did (a dead-letter retry): who, when, and on what."""

    __tablename__ = "admin_actions"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _ts(default_factory=utcnow)
    #: The admin user's name, or ``cli`` for the command line.
    actor: str = Field(max_length=64)
    action: str = Field(max_length=32)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)


class SenderHealth(SQLModel, table=True):
    """What the process sending for a platform last reported (every few seconds):
    its 429s and the scopes a retry-after blocks. The operator's view reads it in
    whichever process answers (the web role is rarely the sender)."""

    __tablename__ = "sender_health"

    platform: str = Field(primary_key=True, max_length=16)
    #: ``host:pid`` of the reporting process.
    sender: str = Field(max_length=128)
    updated_at: datetime = _ts(default_factory=utcnow)
    rate_limited_hour: int = 0
    rate_limited_day: int = 0
    #: Scope -> ISO time (UTC) until which a retry-after blocks it.
    blocked: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
