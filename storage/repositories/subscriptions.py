"""Subscriptions: a destination on a platform, its filter and whether it is active."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.models import Subscription, utcnow


async def get_by_destination(
    platform: str, destination: str, *, session: AsyncSession
) -> Subscription | None:
    stmt = select(Subscription).where(
        col(Subscription.platform) == platform, col(Subscription.destination) == destination
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def get(subscription_id: int, *, session: AsyncSession) -> Subscription | None:
    return await session.get(Subscription, subscription_id)


async def list_for_user(user_id: int, *, session: AsyncSession) -> list[Subscription]:
    stmt = (
        select(Subscription)
        .where(col(Subscription.user_id) == user_id)
        .order_by(col(Subscription.id))
    )
    return list((await session.execute(stmt)).scalars().all())


async def changed_since(
    watermark: datetime | None, *, session: AsyncSession
) -> list[tuple[int, str, dict[str, Any], bool, datetime]]:
    """(id, platform, filter, active, updated_at) of subscriptions updated at or after
    ``watermark`` (all of them when it is None), for the in-memory routing index."""
    t = Subscription.__table__  # type: ignore[attr-defined]
    stmt = select(t.c.id, t.c.platform, t.c.filter, t.c.active, t.c.updated_at)
    if watermark is not None:
        stmt = stmt.where(t.c.updated_at >= watermark)
    result = await session.execute(stmt)
    return [(r[0], r[1], r[2] or {}, bool(r[3]), r[4]) for r in result.all()]


async def window_probe(since: datetime, *, session: AsyncSession) -> tuple[int, datetime | None]:
    """(how many, newest updated_at) of subscriptions updated at or after ``since``."""
    t = Subscription.__table__  # type: ignore[attr-defined]
    row = (
        await session.execute(
            select(func.count(), func.max(t.c.updated_at)).where(t.c.updated_at >= since)
        )
    ).one()
    newest = row[1]
    if isinstance(newest, str):  # SQLite returns max() of a datetime column as text
        newest = datetime.fromisoformat(newest)
    return int(row[0]), newest


async def deactivate(subscription_id: int, reason: str, *, session: AsyncSession) -> None:
    await session.execute(
        update(Subscription)
        .where(col(Subscription.id) == subscription_id)
        .values(active=False, deactivated_reason=reason[:255], updated_at=utcnow())
    )


async def move(subscription_id: int, new_destination: str, *, session: AsyncSession) -> bool:
    """Point a subscription at a new destination id. False if one already exists there."""
    sub = await session.get(Subscription, subscription_id)
    if sub is None:
        return False
    other = await get_by_destination(sub.platform, new_destination, session=session)
    if other is not None and other.id != sub.id:
        return False
    sub.destination = new_destination
    sub.updated_at = utcnow()
    session.add(sub)
    return True
