"""The delivery outbox: enqueue, claim, and record outcomes."""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    and_,
    bindparam,
    cast,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.models import (
    Delivery,
    DeliveryStatus,
    SignalRow,
    Subscription,
    UTCDateTime,
    utcnow,
)
from storage.repositories._dialect import dialect_name

_OPEN = (DeliveryStatus.PENDING.value, DeliveryStatus.FAILED.value)
#: Claimable: open, or held until a due time (a digest's rows).
_DUE = (*_OPEN, DeliveryStatus.HELD.value)
#: Held rows one digest takes at most; the rest follow in the next round.
MAX_DIGEST_ROWS = 500


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
    #: Set once the row was held (quiet hours, digest, cap): it goes out in a digest.
    held_reason: str | None = None
    kind: str = "alert"
    revision: int = 0
    #: The platform message an edit row changes.
    message_id: str | None = None
    #: The subscription's delivery settings (domain.delivery_prefs), as stored.
    prefs: dict[str, Any] | None = None


_ENQUEUE_SQLITE = """
INSERT INTO deliveries
    (signal_seq, subscription_id, platform, status, attempts, next_attempt_at, created_at,
     kind, revision)
SELECT :seq, s.id, s.platform, 'pending', 0, :now, :now, 'alert', 0
FROM subscriptions AS s
WHERE s.id IN (SELECT value FROM json_each(:ids))
ON CONFLICT (signal_seq, subscription_id, revision) DO NOTHING
"""

_ENQUEUE_POSTGRES = """
INSERT INTO deliveries
    (signal_seq, subscription_id, platform, status, attempts, next_attempt_at, created_at,
     kind, revision)
SELECT :seq, s.id, s.platform, 'pending', 0, :now, :now, 'alert', 0
FROM subscriptions AS s
WHERE s.id = ANY(:ids)
ON CONFLICT (signal_seq, subscription_id, revision) DO NOTHING
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
    unclaimed = or_(d.c.claimed_until.is_(None), d.c.claimed_until < now)
    due = (
        select(d.c.id)
        .where(
            d.c.platform == platform,
            d.c.status.in_(_DUE),
            d.c.next_attempt_at <= now,
            unclaimed,
        )
        .order_by(d.c.id)
        .limit(limit)
    )
    if dialect_name(session) == "postgresql":
        due = due.with_for_update(skip_locked=True)
    first = await _claim(due, lease_until, token, session=session)
    if not first:
        return []
    claimed_ids = [delivery_id for delivery_id, _sub in first]
    # A digest goes out whole: every due held row of a subscription that has one in
    # this batch joins it (the batch limit could otherwise split a digest in two).
    # Most batches hold none: then this costs no second statement.
    digest_subs = sorted({sub for _id, sub in first if sub is not None})
    if digest_subs:
        rest = (
            select(d.c.id)
            .where(
                d.c.subscription_id.in_(digest_subs),
                d.c.held_reason.is_not(None),
                d.c.status.in_(_DUE),
                d.c.next_attempt_at <= now,
                unclaimed,
            )
            .order_by(d.c.id)
            .limit(MAX_DIGEST_ROWS)
        )
        if dialect_name(session) == "postgresql":
            rest = rest.with_for_update(skip_locked=True)
        claimed_ids += [i for i, _sub in await _claim(rest, lease_until, token, session=session)]
    rows = await session.execute(
        select(
            d.c.id,
            d.c.subscription_id,
            d.c.signal_seq,
            d.c.attempts,
            d.c.created_at,
            s.c.destination,
            s.c.active,
            d.c.held_reason,
            d.c.kind,
            d.c.revision,
            d.c.message_id,
            s.c.delivery,
        )
        .join(s, s.c.id == d.c.subscription_id)
        .where(d.c.id.in_(claimed_ids))
        .order_by(d.c.id)
    )
    return [
        Claimed(
            r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), token, r[7], r[8], r[9], r[10], r[11]
        )
        for r in rows.all()
    ]


async def _claim(
    ids: Any, lease_until: datetime, token: str, *, session: AsyncSession
) -> list[tuple[int, int | None]]:
    """Claim the rows ``ids`` selects; (id, its subscription when the row is held
    for a digest, else None) of each."""
    d = Delivery.__table__  # type: ignore[attr-defined]
    result = await session.execute(
        update(d)
        .where(d.c.id.in_(ids.scalar_subquery()))
        .values(claimed_until=lease_until, claim_token=token)
        .returning(d.c.id, d.c.subscription_id, d.c.held_reason)
    )
    return [
        (int(i), int(sub) if reason is not None else None) for i, sub, reason in result.all()
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
    message_id: str | None = None,
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
        if message_id is not None:
            values["message_id"] = message_id[:64]
    else:
        values["ended_at"] = now
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
    (a live claim is left to its owner, which checks the TTL itself). Rows held
    for a digest have the digest's own TTL, applied when it is sent."""
    d = Delivery.__table__  # type: ignore[attr-defined]
    result = await session.execute(
        update(d)
        .where(
            d.c.status.in_(_OPEN),
            d.c.held_reason.is_(None),
            d.c.created_at < cutoff,
            or_(d.c.claimed_until.is_(None), d.c.claimed_until < now),
        )
        .values(
            status=DeliveryStatus.EXPIRED.value,
            claimed_until=None,
            claim_token=None,
            last_error="expired: older than TTL",
            ended_at=now,
        )
    )
    return max(result.rowcount or 0, 0)  # type: ignore[attr-defined]


async def kill_open_for_subscription(
    subscription_id: int, reason: str, *, session: AsyncSession, now: datetime | None = None
) -> int:
    d = Delivery.__table__  # type: ignore[attr-defined]
    result = await session.execute(
        update(d)
        .where(d.c.subscription_id == subscription_id, d.c.status.in_(_DUE))
        .values(
            status=DeliveryStatus.DEAD.value,
            claimed_until=None,
            claim_token=None,
            last_error=reason[:500],
            ended_at=now or utcnow(),
        )
    )
    return max(result.rowcount or 0, 0)  # type: ignore[attr-defined]


async def signals_by_seq(seqs: Sequence[int], *, session: AsyncSession) -> dict[int, SignalRow]:
    rows = await session.execute(select(SignalRow).where(col(SignalRow.seq).in_(seqs)))
    return {r.seq: r for r in rows.scalars().all() if r.seq is not None}


# ---- held rows and digests ------------------------------------------------------
async def hold(
    delivery_id: int,
    token: str,
    until: datetime,
    reason: str,
    *,
    session: AsyncSession,
) -> bool:
    """Hold a claimed delivery until ``until`` for a digest (quiet hours, digest
    period, cap); not an attempt. False when the claim was lost."""
    result = await session.execute(
        update(Delivery)
        .where(_owned(delivery_id, token))
        .values(
            status=DeliveryStatus.HELD.value,
            next_attempt_at=until,
            held_reason=reason[:8],
            claimed_until=None,
            claim_token=None,
            last_error=None,
        )
    )
    return (result.rowcount or 0) == 1  # type: ignore[attr-defined]


async def release_held(subscription_id: int, now: datetime, *, session: AsyncSession) -> int:
    """Make a subscription's held rows due now (its settings changed: plan again)."""
    d = Delivery.__table__  # type: ignore[attr-defined]
    result = await session.execute(
        update(d)
        .where(
            d.c.subscription_id == subscription_id,
            d.c.status == DeliveryStatus.HELD.value,
            d.c.next_attempt_at > now,
        )
        .values(next_attempt_at=now)
    )
    return max(result.rowcount or 0, 0)  # type: ignore[attr-defined]


async def finish_batch(
    claims: Sequence[tuple[int, str]],
    batch_id: str,
    *,
    now: datetime,
    message_id: str | None,
    session: AsyncSession,
) -> int:
    """Mark the rows of one digest part sent, under their claim tokens; returns
    how many were still owned."""
    kept = 0
    for delivery_id, token in claims:
        result = await session.execute(
            update(Delivery)
            .where(_owned(delivery_id, token))
            .values(
                status=DeliveryStatus.SENT.value,
                sent_at=now,
                batch_id=batch_id,
                message_id=message_id,
                claimed_until=None,
                claim_token=None,
                attempts=col(Delivery.attempts) + 1,
                last_error=None,
            )
        )
        kept += result.rowcount or 0  # type: ignore[attr-defined]
    return kept


async def recent_sends(
    subscription_ids: Sequence[int], since: datetime, *, session: AsyncSession
) -> dict[int, list[datetime]]:
    """When each subscription's messages went out after ``since``: one time per
    alert, and one per digest part (its rows share a batch id)."""
    if not subscription_ids:
        return {}
    d = Delivery.__table__  # type: ignore[attr-defined]
    message = func.coalesce(d.c.batch_id, cast(d.c.id, String))
    rows = await session.execute(
        select(d.c.subscription_id, func.min(d.c.sent_at))
        .where(
            d.c.subscription_id.in_(list(subscription_ids)),
            d.c.status == DeliveryStatus.SENT.value,
            d.c.kind == "alert",
            d.c.sent_at > since,
        )
        .group_by(d.c.subscription_id, message)
    )
    out: dict[int, list[datetime]] = {}
    for sub_id, sent_at in rows.all():
        if isinstance(sent_at, str):  # SQLite returns min() of a datetime column as text
            sent_at = datetime.fromisoformat(sent_at)
        if sent_at.tzinfo is None:
            sent_at = sent_at.replace(tzinfo=UTC)
        out.setdefault(sub_id, []).append(sent_at)
    return out


# ---- corrections and retractions -------------------------------------------------
def _unclaimed(now: datetime) -> ColumnElement[bool]:
    d = Delivery.__table__  # type: ignore[attr-defined]
    return or_(d.c.claimed_until.is_(None), d.c.claimed_until < now)


async def cancel_open(
    signal_seq: int,
    reason: str,
    now: datetime,
    *,
    kind: str,
    below_revision: int | None = None,
    session: AsyncSession,
) -> int:
    """Cancel a signal's open rows of ``kind`` that nobody is sending (a row in
    flight is left to its sender, which checks the signal again); edit rows only
    below ``below_revision`` (superseded by a newer edit)."""
    d = Delivery.__table__  # type: ignore[attr-defined]
    stmt = update(d).where(
        d.c.signal_seq == signal_seq,
        d.c.kind == kind,
        d.c.status.in_(_DUE),
        _unclaimed(now),
    )
    if below_revision is not None:
        stmt = stmt.where(d.c.revision < below_revision)
    result = await session.execute(
        stmt.values(
            status=DeliveryStatus.CANCELED.value,
            claimed_until=None,
            claim_token=None,
            last_error=reason[:500],
            ended_at=now,
        )
    )
    return max(result.rowcount or 0, 0)  # type: ignore[attr-defined]


async def enqueue_edits(
    signal_seq: int, revision: int, now: datetime, *, session: AsyncSession
) -> int:
    """One edit row at ``revision`` for every destination that got the signal (a
    sent alert with a message id) or may be getting it right now (claimed): the
    dispatcher checks the original again when the edit comes up."""
    d = Delivery.__table__  # type: ignore[attr-defined]
    delivered = and_(d.c.status == DeliveryStatus.SENT.value, d.c.message_id.is_not(None))
    in_flight = and_(d.c.status.in_(_DUE), d.c.claimed_until >= now)
    source = select(
        d.c.signal_seq,
        d.c.subscription_id,
        d.c.platform,
        literal(DeliveryStatus.PENDING.value),
        literal(0),
        literal(now, UTCDateTime()),
        literal(now, UTCDateTime()),
        literal("edit"),
        literal(revision),
    ).where(d.c.signal_seq == signal_seq, d.c.kind == "alert", or_(delivered, in_flight))
    stmt = insert(d).from_select(
        [
            "signal_seq",
            "subscription_id",
            "platform",
            "status",
            "attempts",
            "next_attempt_at",
            "created_at",
            "kind",
            "revision",
        ],
        source,
    )
    result = await session.execute(stmt)
    return max(result.rowcount or 0, 0)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Original:
    """The alert row an edit changes."""

    delivery_id: int
    status: str
    message_id: str | None
    batch_id: str | None
    in_flight: bool
    sent_at: datetime | None


async def original_of(
    signal_seq: int, subscription_id: int, now: datetime, *, session: AsyncSession
) -> Original | None:
    d = Delivery.__table__  # type: ignore[attr-defined]
    row = (
        await session.execute(
            select(
                d.c.id, d.c.status, d.c.message_id, d.c.batch_id, d.c.claimed_until, d.c.sent_at
            ).where(
                d.c.signal_seq == signal_seq,
                d.c.subscription_id == subscription_id,
                d.c.kind == "alert",
            )
        )
    ).first()
    if row is None:
        return None
    in_flight = row[4] is not None and row[4] >= now and row[1] in _DUE
    return Original(row[0], row[1], row[2], row[3], in_flight, row[5])


async def batch_rows(
    batch_id: str, *, session: AsyncSession
) -> list[tuple[int, int, datetime, str | None]]:
    """(delivery id, signal seq, created at, held reason) of one digest part's rows."""
    d = Delivery.__table__  # type: ignore[attr-defined]
    rows = await session.execute(
        select(d.c.id, d.c.signal_seq, d.c.created_at, d.c.held_reason)
        .where(d.c.batch_id == batch_id)
        .order_by(d.c.id)
    )
    return [(r[0], r[1], r[2], r[3]) for r in rows.all()]
