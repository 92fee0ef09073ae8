"""Read-only questions about the delivery outbox for the metrics (one query each)."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Delivery, DeliveryKind, DeliveryStatus

#: An alert still to go: due now or later, or being retried. A row held for a digest
#: waits by its subscriber's choice and does not count.
_TO_GO = (DeliveryStatus.PENDING.value, DeliveryStatus.FAILED.value)


async def signals_with_alerts_to_go(
    platform: str, signal_seqs: Collection[int], *, session: AsyncSession
) -> set[int]:
    """Which of ``signal_seqs`` still have an alert to go on ``platform``: one grouped
    query (on the deliveries' signal_seq index)."""
    if not signal_seqs:
        return set()
    d = Delivery.__table__  # type: ignore[attr-defined]
    rows = await session.execute(
        select(d.c.signal_seq)
        .where(
            d.c.signal_seq.in_(sorted(signal_seqs)),
            d.c.platform == platform,
            d.c.kind == DeliveryKind.ALERT.value,
            d.c.status.in_(_TO_GO),
        )
        .group_by(d.c.signal_seq)
    )
    return {int(seq) for seq in rows.scalars().all()}
