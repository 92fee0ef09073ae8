"""The operator's queries: a signal's delivery trace, per-channel counts from the
outbox, dead letters, putting dead rows back, and the record of admin actions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    AdminAction,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    SignalRow,
    Subscription,
    User,
)

_D = Delivery.__table__  # type: ignore[attr-defined]
_S = Subscription.__table__  # type: ignore[attr-defined]
_U = User.__table__  # type: ignore[attr-defined]
_G = SignalRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class TraceRow:
    """One outbox row of a signal, with where it went."""

    id: int
    kind: str
    revision: int
    platform: str
    destination: str
    subscription_id: int
    user_name: str | None
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None
    ended_at: datetime | None


@dataclass(frozen=True, slots=True)
class DeadRow:
    id: int
    platform: str
    destination: str
    subscription_id: int
    signal_id: str
    ticker: str
    kind: str
    revision: int
    attempts: int
    last_error: str | None
    created_at: datetime
    ended_at: datetime | None


@dataclass(frozen=True, slots=True)
class RetryCandidate:
    """What deciding whether a row may be retried needs."""

    id: int
    status: str
    created_at: datetime
    subscription_active: bool
    deactivated_reason: str | None
    kind: str
    signal_status: str


async def trace(signal_seq: int, *, session: AsyncSession) -> list[TraceRow]:
    """Every outbox row of the signal (alerts and edits), oldest first."""
    rows = await session.execute(
        select(
            _D.c.id,
            _D.c.kind,
            _D.c.revision,
            _D.c.platform,
            _S.c.destination,
            _D.c.subscription_id,
            _U.c.name.label("user_name"),
            _D.c.status,
            _D.c.attempts,
            _D.c.last_error,
            _D.c.created_at,
            _D.c.next_attempt_at,
            _D.c.sent_at,
            _D.c.ended_at,
        )
        .join(_S, _S.c.id == _D.c.subscription_id)
        .outerjoin(_U, _U.c.id == _S.c.user_id)
        .where(_D.c.signal_seq == signal_seq)
        .order_by(_D.c.id)
    )
    return [TraceRow(**r._mapping) for r in rows.all()]


async def active_subscriptions(*, session: AsyncSession) -> dict[str, int]:
    """Active subscriptions per platform, in one grouped query."""
    rows = await session.execute(
        select(_S.c.platform, func.count()).where(_S.c.active.is_(True)).group_by(_S.c.platform)
    )
    return {platform: int(n) for platform, n in rows.all()}


async def status_counts(since: datetime, *, session: AsyncSession) -> dict[str, dict[str, int]]:
    """Outbox rows created since ``since``, per platform and status (one grouped query)."""
    rows = await session.execute(
        select(_D.c.platform, _D.c.status, func.count())
        .where(_D.c.created_at >= since)
        .group_by(_D.c.platform, _D.c.status)
    )
    out: dict[str, dict[str, int]] = {}
    for platform, status, n in rows.all():
        out.setdefault(platform, {})[status] = int(n)
    return out


async def send_latencies(
    since: datetime, limit: int, *, session: AsyncSession
) -> dict[str, list[float]]:
    """Seconds from enqueue to send of the newest ``limit`` alerts created since
    ``since`` and sent at once, per platform (digest rows wait on purpose: left out)."""
    rows = await session.execute(
        select(_D.c.platform, _D.c.created_at, _D.c.sent_at)
        .where(
            _D.c.created_at >= since,
            _D.c.status == DeliveryStatus.SENT.value,
            _D.c.kind == DeliveryKind.ALERT.value,
            _D.c.held_reason.is_(None),
            _D.c.sent_at.is_not(None),
        )
        .order_by(_D.c.id.desc())
        .limit(limit)
    )
    out: dict[str, list[float]] = {}
    for platform, created_at, sent_at in rows.all():
        out.setdefault(platform, []).append(max(0.0, (sent_at - created_at).total_seconds()))
    return out


async def dead_letters(platform: str | None, limit: int, *, session: AsyncSession) -> list[DeadRow]:
    """Dead rows (of ``platform``, or all), newest first."""
    stmt = (
        select(
            _D.c.id,
            _D.c.platform,
            _S.c.destination,
            _D.c.subscription_id,
            _G.c.signal_id,
            _G.c.ticker,
            _D.c.kind,
            _D.c.revision,
            _D.c.attempts,
            _D.c.last_error,
            _D.c.created_at,
            _D.c.ended_at,
        )
        .join(_S, _S.c.id == _D.c.subscription_id)
        .join(_G, _G.c.seq == _D.c.signal_seq)
        .where(_D.c.status == DeliveryStatus.DEAD.value)
        .order_by(_D.c.id.desc())
        .limit(limit)
    )
    if platform is not None:
        stmt = stmt.where(_D.c.platform == platform)
    rows = await session.execute(stmt)
    return [DeadRow(**r._mapping) for r in rows.all()]


async def dead_ids(platform: str, limit: int, *, session: AsyncSession) -> list[int]:
    """Ids of ``platform``'s dead rows, newest first, at most ``limit``."""
    rows = await session.execute(
        select(_D.c.id)
        .where(_D.c.platform == platform, _D.c.status == DeliveryStatus.DEAD.value)
        .order_by(_D.c.id.desc())
        .limit(limit)
    )
    return [int(i) for i in rows.scalars().all()]


async def retry_candidates(
    ids: Sequence[int], *, session: AsyncSession
) -> dict[int, RetryCandidate]:
    if not ids:
        return {}
    rows = await session.execute(
        select(
            _D.c.id,
            _D.c.status,
            _D.c.created_at,
            _S.c.active,
            _S.c.deactivated_reason,
            _D.c.kind,
            _G.c.status,
        )
        .join(_S, _S.c.id == _D.c.subscription_id)
        .join(_G, _G.c.seq == _D.c.signal_seq)
        .where(_D.c.id.in_(list(ids)))
    )
    return {
        r[0]: RetryCandidate(r[0], r[1], r[2], bool(r[3]), r[4], r[5], r[6]) for r in rows.all()
    }


async def requeue_dead(
    ids: Sequence[int], note: str, now: datetime, *, session: AsyncSession
) -> list[int]:
    """Put dead rows back in the outbox, due now, as if never tried (a row no longer
    dead is left alone). Returns the ids put back."""
    if not ids:
        return []
    result = await session.execute(
        update(_D)
        .where(_D.c.id.in_(list(ids)), _D.c.status == DeliveryStatus.DEAD.value)
        .values(
            status=DeliveryStatus.PENDING.value,
            attempts=0,
            next_attempt_at=now,
            claimed_until=None,
            claim_token=None,
            held_reason=None,
            ended_at=None,
            last_error=note[:500],
        )
        .returning(_D.c.id)
    )
    return sorted(int(i) for i in result.scalars().all())


async def record_action(
    actor: str, action: str, detail: dict[str, Any], now: datetime, *, session: AsyncSession
) -> None:
    table = AdminAction.__table__  # type: ignore[attr-defined]
    await session.execute(
        insert(table).values(at=now, actor=actor[:64], action=action[:32], detail=detail)
    )


async def recent_actions(limit: int, *, session: AsyncSession) -> list[AdminAction]:
    rows = await session.execute(
        select(AdminAction).order_by(AdminAction.id.desc()).limit(limit)  # type: ignore[union-attr]
    )
    return list(rows.scalars().all())
