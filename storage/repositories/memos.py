"""Platform memos: small key/value facts per namespace."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.models import PlatformMemo, utcnow


async def load(namespace: str, *, session: AsyncSession) -> dict[str, str]:
    rows = await session.execute(
        select(col(PlatformMemo.key), col(PlatformMemo.value)).where(
            col(PlatformMemo.namespace) == namespace
        )
    )
    return {key: value for key, value in rows.all()}


async def put(namespace: str, key: str, value: str, *, session: AsyncSession) -> None:
    row = await session.get(PlatformMemo, (namespace, key))
    if row is None:
        row = PlatformMemo(namespace=namespace, key=key, value=value)
    else:
        row.value = value
        row.updated_at = utcnow()
    session.add(row)
