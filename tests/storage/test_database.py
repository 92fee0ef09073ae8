"""Engine setup: SQLite runs in WAL mode with a busy timeout."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import text

from core.context import HubContext


async def test_sqlite_uses_wal_and_a_busy_timeout(ctx: HubContext) -> None:
    async with ctx.db.engine.connect() as conn:
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"
        assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar_one() == 5000
        assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar_one() == 1


async def test_ping(any_ctx: HubContext) -> None:
    assert await any_ctx.db.ping()


async def test_reads_never_wait_for_a_writer(ctx: HubContext) -> None:
    import asyncio

    from sqlalchemy import select

    from storage.models import User

    async with ctx.db.transaction() as session:  # holds SQLite's write lock
        session.add(User(name="writer"))
        await session.flush()

        async def read() -> list[User]:
            async with ctx.db.session() as other:
                return list((await other.execute(select(User))).scalars().all())

        assert await asyncio.wait_for(read(), 2) == []  # not the uncommitted row, no wait


async def test_a_cancelled_write_returns_its_connection_without_an_error(
    ctx: HubContext, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 11's shutdown "pool-reset" traceback: a task cancelled (a stopping hub,
    a closed WebSocket) just as its transaction hands the connection back to the
    pool interrupted the pool's reset, and SQLAlchemy logged "Exception during
    reset or similar" with a traceback. Deterministic here: the pool's ``reset``
    event cancels the writer at exactly that moment. The commit and the return
    must run to completion, the cancellation arrive afterwards, and the pool stay
    healthy."""
    import asyncio

    from sqlalchemy import event, select

    from storage.models import User

    writer: asyncio.Task[None] | None = None
    resets: list[bool] = []

    def cancel_the_writer(_dbapi: object, _record: object, _state: object) -> None:
        if writer is not None and not resets:
            resets.append(True)
            writer.cancel()

    async def write() -> None:
        async with ctx.db.transaction() as session:
            session.add(User(name="cancelled-at-return"))

    event.listen(ctx.db.engine.sync_engine, "reset", cancel_the_writer)
    try:
        with caplog.at_level(logging.WARNING, logger="sqlalchemy"):
            writer = asyncio.create_task(write())
            with pytest.raises(asyncio.CancelledError):
                await writer
    finally:
        event.remove(ctx.db.engine.sync_engine, "reset", cancel_the_writer)
    assert resets, "the connection went back to the pool"
    assert [r.getMessage() for r in caplog.records if r.name.startswith("sqlalchemy")] == []
    async with ctx.db.session() as session:  # committed, and the pool still works
        names = (await session.execute(select(User.name))).scalars().all()
    assert "cancelled-at-return" in names
