"""A process-wide leader lock: PostgreSQL session advisory lock, so exactly one
process runs the Catalyst job when several are started (the Procfile's roles
scaled out). On SQLite (one machine, the embedded default) it is always granted.
"""

from __future__ import annotations

import contextlib

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.database import Database

#: Lock key for the Catalyst job (any 64-bit number, fixed for this application).
SCHEDULER_LOCK_KEY = 0x43415441_4C595354 & 0x7FFFFFFFFFFFFFFF


class LeaderLock:
    def __init__(self, db: Database, key: int = SCHEDULER_LOCK_KEY) -> None:
        self._db = db
        self._key = key
        self._conn: AsyncConnection | None = None
        self._granted = False

    @property
    def held(self) -> bool:
        return self._granted or self._conn is not None

    async def try_acquire(self) -> bool:
        """Take the lock if free; True when this process holds it (it stays held
        until :meth:`release` or the process's connection ends)."""
        if self._db.is_sqlite:
            self._granted = True
            return True
        if self._conn is not None:
            return True
        conn = await self._db.engine.connect()
        try:
            got = (
                await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key})
            ).scalar_one()
            await conn.commit()
        except Exception:
            await conn.close()
            raise
        if got:
            self._conn = conn
            return True
        await conn.close()
        return False

    async def release(self) -> None:
        self._granted = False
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
                await conn.commit()
            await conn.close()
