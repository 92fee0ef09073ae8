"""Per-user counts of signals received over the API stream."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from storage.models import StreamReceipt, utcnow
from storage.repositories._dialect import dialect_name


async def add(counts: Mapping[int, int], *, session: AsyncSession) -> None:
    """Add ``counts`` (user id -> signals) to the stored totals, in one statement."""
    if not counts:
        return
    now = utcnow()
    rows = [{"user_id": u, "received": n, "updated_at": now} for u, n in counts.items()]
    table = StreamReceipt.__table__  # type: ignore[attr-defined]
    insert = (postgresql if dialect_name(session) == "postgresql" else sqlite).insert(table)
    stmt = insert.values(rows).on_conflict_do_update(
        index_elements=["user_id"],
        set_={"received": table.c.received + insert.excluded.received, "updated_at": now},
    )
    await session.execute(stmt)


async def received(user_id: int, *, session: AsyncSession) -> int:
    stmt = select(col(StreamReceipt.received)).where(col(StreamReceipt.user_id) == user_id)
    return int((await session.execute(stmt)).scalar_one_or_none() or 0)
