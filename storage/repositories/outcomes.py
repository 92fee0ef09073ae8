"""Trade outcomes reported by users, and the statistics built from them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.models import Delivery, DeliveryStatus, SignalRow, Subscription, TradeOutcome


async def get(user_id: int, signal_seq: int, *, session: AsyncSession) -> TradeOutcome | None:
    stmt = select(TradeOutcome).where(
        col(TradeOutcome.user_id) == user_id, col(TradeOutcome.signal_seq) == signal_seq
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def outcome_rows(
    *, session: AsyncSession, user_id: int | None = None
) -> list[tuple[str, float | None, str, float]]:
    """(outcome, return_pct, catalyst_type, confidence) for every outcome (of a user)."""
    stmt = select(
        col(TradeOutcome.outcome),
        col(TradeOutcome.return_pct),
        col(SignalRow.catalyst_type),
        col(SignalRow.confidence),
    ).join(SignalRow, col(SignalRow.seq) == col(TradeOutcome.signal_seq))
    if user_id is not None:
        stmt = stmt.where(col(TradeOutcome.user_id) == user_id)
    rows = (await session.execute(stmt)).all()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


async def signals_received(user_id: int, *, session: AsyncSession) -> int:
    """Distinct signals successfully delivered to any of the user's destinations."""
    stmt = (
        select(func.count(func.distinct(col(Delivery.signal_seq))))
        .join(Subscription, col(Subscription.id) == col(Delivery.subscription_id))
        .where(
            and_(
                col(Subscription.user_id) == user_id,
                col(Delivery.status) == DeliveryStatus.SENT.value,
            )
        )
    )
    return int((await session.execute(stmt)).scalar_one() or 0)


async def recent_delivered_signal_ids(
    user_id: int, limit: int, *, session: AsyncSession
) -> list[tuple[str, str, Any]]:
    """(signal_id, ticker, timestamp) of the newest signals sent to the user."""
    stmt = (
        select(col(SignalRow.signal_id), col(SignalRow.ticker), col(SignalRow.timestamp))
        .join(Delivery, col(Delivery.signal_seq) == col(SignalRow.seq))
        .join(Subscription, col(Subscription.id) == col(Delivery.subscription_id))
        .where(col(Subscription.user_id) == user_id)
        .group_by(
            col(SignalRow.seq),
            col(SignalRow.signal_id),
            col(SignalRow.ticker),
            col(SignalRow.timestamp),
        )
        .order_by(col(SignalRow.seq).desc())
        .limit(limit)
    )
    return [(r[0], r[1], r[2]) for r in (await session.execute(stmt)).all()]


async def user_outcomes_by_time(
    user_id: int, *, session: AsyncSession
) -> list[tuple[datetime, str, float | None]]:
    """(signal timestamp, outcome, return_pct) of the user's reports, oldest signal first."""
    stmt = (
        select(col(SignalRow.timestamp), col(TradeOutcome.outcome), col(TradeOutcome.return_pct))
        .join(SignalRow, col(SignalRow.seq) == col(TradeOutcome.signal_seq))
        .where(col(TradeOutcome.user_id) == user_id)
        .order_by(col(SignalRow.timestamp), col(SignalRow.seq))
    )
    return [(t, o, r) for t, o, r in (await session.execute(stmt)).all()]
