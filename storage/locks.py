"""Named leader locks: exactly one process at a time holds each one.

* PostgreSQL: a session advisory lock, held on a connection kept for the purpose.
  The lock lives exactly as long as that connection: when it dies (a server
  restart, ``pg_terminate_backend``, a network cut) the server frees the lock at
  once and a standby can take it, so the holder must stop its work. :meth:`check`
  is how it finds out.
* SQLite (one machine): an exclusive ``flock`` on a lock file beside the database.
  The kernel frees it when the process ends, however it ends, and it cannot be
  lost while the process lives.

The Catalyst job, Telegram polling, the Discord gateway and each platform's
sender each take one (see :mod:`core.leadership`). :func:`lock_key` also names
the transaction-scoped lock that keeps the signal log in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.database import Database

log = logging.getLogger(__name__)

try:  # pragma: no cover - every supported platform has fcntl; Windows does not
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

#: A lock check slower than this counts as a lost connection.
CHECK_TIMEOUT = 2.0


def lock_key(name: str) -> int:
    """A stable positive 63-bit advisory-lock key for ``name``."""
    digest = hashlib.blake2b(f"catalyst:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFFFFFFFFFF


def sqlite_lock_path(db: Database, name: str) -> Path:
    database = make_url(db.url).database or "catalyst.db"
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)
    return Path(f"{database}.{safe}.lock")


class LeaderLock:
    def __init__(self, db: Database, name: str = "scheduler") -> None:
        self._db = db
        self.name = name
        self._key = lock_key(name)
        self._conn: AsyncConnection | None = None
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None or self._fd is not None

    @property
    def can_be_lost(self) -> bool:
        """True where the lock can vanish while this process lives (PostgreSQL)."""
        return not self._db.is_sqlite

    async def try_acquire(self) -> bool:
        """Take the lock if it is free. True when this process holds it; it stays
        held until :meth:`release`, the end of the process, or (PostgreSQL) the
        end of its connection."""
        if self.held:
            return True
        if self._db.is_sqlite:
            return self._acquire_file()
        conn = await self._db.engine.connect()
        try:
            got = (
                await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key})
            ).scalar_one()
            await conn.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.invalidate()
                await conn.close()
            raise
        if got:
            self._conn = conn
            return True
        await conn.close()
        return False

    def _acquire_file(self) -> bool:
        if fcntl is None:  # pragma: no cover
            return True
        path = sqlite_lock_path(self._db, self.name)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    async def check(self) -> bool:
        """Is the lock still held? On PostgreSQL this asks the lock's own connection
        (a dead or unresponsive connection means the server has freed the lock)."""
        if self._fd is not None:
            return True
        conn = self._conn
        if conn is None:
            return False
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                await conn.execute(text("SELECT 1"))
                await conn.commit()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "lost the %s lock: its database connection failed (%s)",
                self.name,
                exc.__class__.__name__,
            )
            await self._drop_connection(unlock=False)
            return False
        return True

    async def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            if fcntl is not None:
                with contextlib.suppress(OSError):
                    fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        await self._drop_connection(unlock=True)

    async def _drop_connection(self, *, unlock: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if unlock:
                async with asyncio.timeout(CHECK_TIMEOUT):
                    await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
                    await conn.commit()
                await conn.close()
                return
        except Exception:
            pass
        # A connection in an unknown state is thrown away, never returned to the pool
        # (that would keep the lock held by whoever borrows it next).
        with contextlib.suppress(Exception):
            await conn.invalidate()
        with contextlib.suppress(Exception):
            await conn.close()
