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
