"""What each platform's sender reports about itself (:class:`SenderHealth`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.models import SenderHealth


async def report(
    platform: str,
    sender: str,
    now: datetime,
    *,
    rate_limited_hour: int,
    rate_limited_day: int,
    blocked_until: dict[str, datetime],
    session: AsyncSession,
) -> None:
    """Replace ``platform``'s report (one row per platform: its current sender's)."""
    await session.execute(delete(SenderHealth).where(col(SenderHealth.platform) == platform))
    session.add(
        SenderHealth(
            platform=platform,
            sender=sender[:128],
            updated_at=now,
            rate_limited_hour=rate_limited_hour,
            rate_limited_day=rate_limited_day,
            blocked={scope: until.isoformat() for scope, until in blocked_until.items()},
        )
    )
    await session.flush()


async def reports(*, session: AsyncSession) -> dict[str, SenderHealth]:
    rows = (await session.execute(select(SenderHealth))).scalars().all()
    return {r.platform: r for r in rows}
