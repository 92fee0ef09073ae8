"""Engine setup: SQLite runs in WAL mode with a busy timeout."""

from __future__ import annotations

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
