"""The delivery outbox: enqueue, claim, and record outcomes."""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Integer, and_, bindparam, or_, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.models import Delivery, DeliveryStatus, SignalRow, Subscription, UTCDateTime
from storage.repositories._dialect import dialect_name

_OPEN = (DeliveryStatus.PENDING.value, DeliveryStatus.FAILED.value)


@dataclass(frozen=True, slots=True)
class Claimed:
    delivery_id: int
    subscription_id: int
    signal_seq: int
    attempts: int
    created_at: datetime
    destination: str
    active: bool
    #: The claim's owner token: only its holder can record the delivery's outcome.
    token: str = ""


_ENQUEUE_SQLITE = """
INSERT INTO deliveries
    (signal_seq, subscription_id, platform, status, attempts, next_attempt_at, created_at)
SELECT :seq, s.id, s.platform, 'pending', 0, :now, :now
FROM subscriptions AS s
WHERE s.id IN (SELECT value FROM json_each(:ids))
ON CONFLICT (signal_seq, subscription_id) DO NOTHING
"""

_ENQUEUE_POSTGRES = """
INSERT INTO deliveries
    (signal_seq, subscription_id, platform, status, attempts, next_attempt_at, created_at)
SELECT :seq, s.id, s.platform, 'pending', 0, :now, :now
FROM subscriptions AS s
WHERE s.id = ANY(:ids)
ON CONFLICT (signal_seq, subscription_id) DO NOTHING
"""


async def enqueue(
    signal_seq: int,
    subscription_ids: Sequence[int],
    now: datetime,
    *,
    session: AsyncSession,
) -> int:
    """One pending delivery per subscription, in one set-based statement.

    Rows that already exist (same signal and subscription) are skipped, so
    enqueueing twice never duplicates a delivery. Returns how many were added.
    """
    if not subscription_ids:
        return 0
    ids = [int(i) for i in subscription_ids]
    if dialect_name(session) == "postgresql":
        stmt = text(_ENQUEUE_POSTGRES).bindparams(
            bindparam("ids", type_=ARRAY(Integer)), bindparam("now", type_=UTCDateTime())
        )
        params: dict[str, object] = {"seq": signal_seq, "ids": ids, "now": now}
    else:
        stmt = text(_ENQUEUE_SQLITE).bindparams(bindparam("now", type_=UTCDateTime()))
        params = {"seq": signal_seq, "ids": json.dumps(ids), "now": now}
    result = await session.execute(stmt, params)
    return max(result.rowcount or 0, 0)  # type: ignore[attr-defined]


async def claim_due(
    platform: str,
    now: datetime,
    lease_until: datetime,
    limit: int,
    *,
    session: AsyncSession,
) -> list[Claimed]:
    """Take up to ``limit`` due deliveries for ``platform`` until ``lease_until``.

    A delivery is due when it is open, its time has come, and nobody holds a live
    claim on it (``claimed_until`` unset or past: a crashed worker's claims are
    retaken once their lease ends). The claim gets a fresh owner token; results
    are recorded only under it (:func:`finish`, :func:`reschedule`), so a worker
    whose lease ran out cannot overwrite what the new owner did.

    On PostgreSQL rows are locked with SKIP LOCKED so several workers never claim
    the same delivery; SQLite serialises writers, which gives the same guarantee.
    """
    token = secrets.token_hex(16)
    d = Delivery.__table__  # type: ignore[attr-defined]
    s = Subscription.__table__  # type: ignore[attr-defined]
    due = (
        select(d.c.id)
        .where(
            d.c.platform == platform,
            d.c.status.in_(_OPEN),
            d.c.next_attempt_at <= now,
            or_(d.c.claimed_until.is_(None), d.c.claimed_until < now),
        )
        .order_by(d.c.id)
        .limit(limit)
    )
    if dialect_name(session) == "postgresql":
        due = due.with_for_update(skip_locked=True)
    claimed_ids = (
        (
            await session.execute(
                update(d)
                .where(d.c.id.in_(due.scalar_subquery()))
                .values(claimed_until=lease_until, claim_token=token)
                .returning(d.c.id)
            )
        )
        .scalars()
        .all()
    )
    if not claimed_ids:
        return []
    rows = await session.execute(
        select(
            d.c.id,
            d.c.subscription_id,
            d.c.signal_seq,
            d.c.attempts,
            d.c.created_at,
            s.c.destination,
            s.c.active,
        )
        .join(s, s.c.id == d.c.subscription_id)
        .where(d.c.id.in_(claimed_ids))
        .order_by(d.c.id)
    )
    return [
        Claimed(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), token) for r in rows.all()
    ]


def _owned(delivery_id: int, token: str) -> ColumnElement[bool]:
    return and_(col(Delivery.id) == delivery_id, col(Delivery.claim_token) == token)


async def finish(
    delivery_id: int,
    token: str,
    status: DeliveryStatus,
    *,
    session: AsyncSession,
    now: datetime,
    error: str | None = None,
    attempts_delta: int = 1,
) -> bool:
    """Record a final outcome under the claim ``token``. False (and nothing
    changed) when the claim was lost to another worker."""
    values: dict[str, object] = {
        "status": status.value,
        "claimed_until": None,
        "claim_token": None,
        "attempts": col(Delivery.attempts) + attempts_delta,
        "last_error": error[:500] if error else None,
    }
    if status is DeliveryStatus.SENT:
        values["sent_at"] = now
    result = await session.execute(
        update(Delivery).where(_owned(delivery_id, token)).values(**values)
    )
    return (result.rowcount or 0) == 1  # type: ignore[attr-defined]


async def reschedule(
    delivery_id: int,
    token: str,
    next_attempt_at: datetime,
    *,
    session: AsyncSession,
    error: str,
    count_attempt: bool,
) -> bool:
    """Put a claimed delivery back until ``next_attempt_at``; False when the claim
    was lost."""
    result = await session.execute(
        update(Delivery)
        .where(_owned(delivery_id, token))
        .values(
            status=DeliveryStatus.FAILED.value if count_attempt else col(Delivery.status),
            next_attempt_at=next_attempt_at,
            claimed_until=None,
            claim_token=None,
            attempts=col(Delivery.attempts) + (1 if count_attempt else 0),
            last_error=error[:500],
        )
    )
    return (result.rowcount or 0) == 1  # type: ignore[attr-defined]


async def expire_older_than(cutoff: datetime, now: datetime, *, session: AsyncSession) -> int:
    """Expire open deliveries created before ``cutoff`` that nobody is sending
    (a live claim is left to its owner, which checks the TTL itself)."""
    d = Delivery.__table__  # type: ignore[attr-defined]
    result = await session.execute(
        update(d)
        .where(
            d.c.status.in_(_OPEN),
            d.c.created_at < cutoff,
            or_(d.c.claimed_until.is_(None), d.c.claimed_until < now),
        )
        .values(
            status=DeliveryStatus.EXPIRED.value,
            claimed_until=None,
            claim_token=None,
            last_error="expired: older than TTL",
        )
    )
    return max(result.rowcount or 0, 0)  # type: ignore[attr-defined]


async def kill_open_for_subscription(
    subscription_id: int, reason: str, *, session: AsyncSession
) -> int:
    d = Delivery.__table__  # type: ignore[attr-defined]
    result = await session.execute(
        update(d)
        .where(d.c.subscription_id == subscription_id, d.c.status.in_(_OPEN))
        .values(
            status=DeliveryStatus.DEAD.value,
            claimed_until=None,
            claim_token=None,
            last_error=reason[:500],
        )
    )
    return max(result.rowcount or 0, 0)  # type: ignore[attr-defined]


async def signals_by_seq(seqs: Sequence[int], *, session: AsyncSession) -> dict[int, SignalRow]:
    rows = await session.execute(select(SignalRow).where(col(SignalRow.seq).in_(seqs)))
    return {r.seq: r for r in rows.scalars().all() if r.seq is not None}
