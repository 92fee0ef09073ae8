"""Trade outcomes reported by users, and the statistics built from them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Delivery, DeliveryStatus, SignalRow, Subscription, TradeOutcome


async def get(user_id: int, signal_seq: int, *, session: AsyncSession) -> TradeOutcome | None:
    stmt = select(TradeOutcome).where(
        TradeOutcome.user_id == user_id, TradeOutcome.signal_seq == signal_seq
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def outcome_rows(
    *, session: AsyncSession, user_id: int | None = None
) -> list[tuple[str, float | None, str, float]]:
    """(outcome, return_pct, catalyst_type, confidence) for every outcome (of a user)."""
    stmt = select(
        TradeOutcome.outcome,
        TradeOutcome.return_pct,
        SignalRow.catalyst_type,
        SignalRow.confidence,
    ).join(SignalRow, SignalRow.seq == TradeOutcome.signal_seq)  # type: ignore[arg-type]
    if user_id is not None:
        stmt = stmt.where(TradeOutcome.user_id == user_id)
    rows = (await session.execute(stmt)).all()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


async def signals_received(user_id: int, *, session: AsyncSession) -> int:
    """Distinct signals successfully delivered to any of the user's destinations."""
    stmt = (
        select(func.count(func.distinct(Delivery.signal_seq)))
        .join(Subscription, Subscription.id == Delivery.subscription_id)  # type: ignore[arg-type]
        .where(and_(Subscription.user_id == user_id, Delivery.status == DeliveryStatus.SENT.value))
    )
    return int((await session.execute(stmt)).scalar_one() or 0)


async def recent_delivered_signal_ids(
    user_id: int, limit: int, *, session: AsyncSession
) -> list[tuple[str, str, Any]]:
    """(signal_id, ticker, timestamp) of the newest signals sent to the user."""
    stmt = (
        select(SignalRow.signal_id, SignalRow.ticker, SignalRow.timestamp)
        .join(Delivery, Delivery.signal_seq == SignalRow.seq)  # type: ignore[arg-type]
        .join(Subscription, Subscription.id == Delivery.subscription_id)  # type: ignore[arg-type]
        .where(Subscription.user_id == user_id)
        .group_by(SignalRow.seq, SignalRow.signal_id, SignalRow.ticker, SignalRow.timestamp)
        .order_by(SignalRow.seq.desc())  # type: ignore[union-attr]
        .limit(limit)
    )
    return [(r[0], r[1], r[2]) for r in (await session.execute(stmt)).all()]
