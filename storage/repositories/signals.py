"""Stored signals."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from domain.signals import Signal, SignalStatus, SignalType
from storage.locks import lock_key
from storage.models import SignalRevision, SignalRow
from storage.repositories._dialect import dialect_name, insert_ignore

#: PostgreSQL NOTIFY channel carrying each new signal's seq.
SIGNALS_CHANNEL = "catalyst_signals"
#: Held from just before a signal's insert to its commit (PostgreSQL).
SIGNAL_LOG_LOCK = lock_key("signal-log")


def to_signal(row: SignalRow) -> Signal:
    return Signal.model_construct(
        signal_id=row.signal_id,
        ticker=row.ticker,
        signal_type=SignalType(row.signal_type),
        confidence=row.confidence,
        catalyst_type=row.catalyst_type,
        source=row.source,
        price=row.price,
        rvol=row.rvol,
        sector=row.sector,
        headline=row.headline,
        url=row.url,
        timestamp=row.timestamp,
        metadata=dict(row.meta or {}),
        status=SignalStatus(row.status or SignalStatus.ACTIVE.value),
        revision=row.revision or 0,
        seq=row.seq,
    )


async def insert_signal(signal: Signal, *, session: AsyncSession) -> tuple[int, bool]:
    """Store ``signal`` unless its ``signal_id`` exists. Returns (seq, created).

    The signal log is read by cursor (``seq > N``), so seqs must become visible in
    seq order. On PostgreSQL a seq is taken at insert but seen at commit, and two
    publishers could commit out of order; a transaction-scoped advisory lock,
    taken just before the insert and held to commit, makes taking a seq and
    committing it one step. (SQLite's single writer already does.)
    """
    if dialect_name(session) == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SIGNAL_LOG_LOCK})
    values = {
        "signal_id": signal.signal_id,
        "ticker": signal.ticker,
        "signal_type": signal.signal_type.value,
        "confidence": signal.confidence,
        "catalyst_type": signal.catalyst_type,
        "source": signal.source,
        "price": signal.price,
        "rvol": signal.rvol,
        "sector": signal.sector,
        "headline": signal.headline,
        "url": signal.url,
        "timestamp": signal.timestamp,
        "meta": signal.metadata,
        "created_at": datetime.now(signal.timestamp.tzinfo),
        "status": signal.status.value,
        "revision": 0,
    }
    table = SignalRow.__table__  # type: ignore[attr-defined]
    stmt = insert_ignore(session, table, ["signal_id"]).values(**values).returning(table.c.seq)
    seq = (await session.execute(stmt)).scalar_one_or_none()
    if seq is not None:
        return int(seq), True
    existing = await session.execute(
        select(table.c.seq).where(table.c.signal_id == signal.signal_id)
    )
    return int(existing.scalar_one()), False


async def revise_signal(seq: int, signal: Signal, *, session: AsyncSession) -> int | None:
    """Store a correction or retraction of the signal at ``seq`` (its content and
    status become ``signal``'s) and log it for live readers. Returns the new revision,
    or None when the stored signal is retracted (by another publisher meanwhile):
    retracted is final, so a correction read before it must not undo it.

    Like :func:`insert_signal`, the log's ids must become visible in order, so the
    same lock is held to commit on PostgreSQL."""
    if dialect_name(session) == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SIGNAL_LOG_LOCK})
    table = SignalRow.__table__  # type: ignore[attr-defined]
    revision = (
        await session.execute(
            update(table)
            .where(table.c.seq == seq, table.c.status != SignalStatus.RETRACTED.value)
            .values(
                ticker=signal.ticker,
                signal_type=signal.signal_type.value,
                confidence=signal.confidence,
                catalyst_type=signal.catalyst_type,
                source=signal.source,
                price=signal.price,
                rvol=signal.rvol,
                sector=signal.sector,
                headline=signal.headline,
                url=signal.url,
                timestamp=signal.timestamp,
                meta=signal.metadata,
                status=signal.status.value,
                revision=table.c.revision + 1,
            )
            .returning(table.c.revision)
        )
    ).scalar_one_or_none()
    if revision is None:
        return None
    session.add(SignalRevision(signal_seq=seq, revision=int(revision)))
    await session.flush()
    return int(revision)


async def revisions_after(
    cursor: int, limit: int, *, session: AsyncSession
) -> list[tuple[int, Signal]]:
    """(log id, the signal as it is now) of corrections and retractions logged after
    ``cursor``, oldest first. A signal revised twice appears twice, as it is now."""
    rows = await session.execute(
        select(col(SignalRevision.id), SignalRow)
        .join(SignalRow, col(SignalRow.seq) == col(SignalRevision.signal_seq))
        .where(col(SignalRevision.id) > cursor)
        .order_by(col(SignalRevision.id))
        .limit(limit)
    )
    return [(int(rid or 0), to_signal(row)) for rid, row in rows.all()]


async def latest_revision_id(*, session: AsyncSession) -> int:
    value = (await session.execute(select(func.max(col(SignalRevision.id))))).scalar_one()
    return int(value or 0)


async def announce(seq: int, *, session: AsyncSession) -> None:
    """Tell every listening process (PostgreSQL NOTIFY, sent at commit) that ``seq``
    is stored. The payload is only the seq: readers read rows from the table, so
    a lost notification costs latency, never a signal."""
    if dialect_name(session) == "postgresql":
        await session.execute(
            text("SELECT pg_notify(:channel, :seq)"),
            {"channel": SIGNALS_CHANNEL, "seq": str(seq)},
        )


async def get_signal(signal_id: str, *, session: AsyncSession) -> Signal | None:
    row = (
        await session.execute(select(SignalRow).where(col(SignalRow.signal_id) == signal_id))
    ).scalar_one_or_none()
    return to_signal(row) if row is not None else None


async def get_signal_row(signal_id: str, *, session: AsyncSession) -> SignalRow | None:
    return (
        await session.execute(select(SignalRow).where(col(SignalRow.signal_id) == signal_id))
    ).scalar_one_or_none()


async def list_signals(
    *,
    session: AsyncSession,
    limit: int = 50,
    since: datetime | None = None,
    ticker: str | None = None,
    after_seq: int | None = None,
    before_seq: int | None = None,
    ascending: bool = False,
) -> list[Signal]:
    stmt = select(SignalRow)
    if since is not None:
        stmt = stmt.where(col(SignalRow.timestamp) > since)
    if ticker:
        stmt = stmt.where(col(SignalRow.ticker) == ticker.upper())
    if after_seq is not None:
        stmt = stmt.where(col(SignalRow.seq) > after_seq)
    if before_seq is not None:
        stmt = stmt.where(col(SignalRow.seq) < before_seq)
    order = col(SignalRow.seq).asc() if ascending else col(SignalRow.seq).desc()
    stmt = stmt.order_by(order).limit(limit)
    rows = (await session.execute(stmt)).scalars().all()
    return [to_signal(r) for r in rows]


async def latest_seq(*, session: AsyncSession) -> int:
    value = (await session.execute(select(func.max(col(SignalRow.seq))))).scalar_one_or_none()
    return int(value or 0)
