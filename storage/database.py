"""Engine and session setup. Nothing connects until :meth:`Database.connect` is called."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

#: Execution option marking a write transaction (SQLite: BEGIN IMMEDIATE).
_WRITE_OPTION = "catalyst_write"


class Database:
    """Owns the async engine and hands out sessions.

    SQLite gets WAL mode, a busy timeout and foreign keys on every connection;
    PostgreSQL uses asyncpg with a small pool.
    """

    def __init__(self, url: str, *, echo: bool = False, busy_timeout_ms: int = 5000) -> None:
        self.url = url
        self._echo = echo
        self._busy_timeout_ms = busy_timeout_ms
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @property
    def dialect(self) -> str:
        return "sqlite" if self.is_sqlite else "postgresql"

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("Database.connect() has not been called")
        return self._engine

    def connect(self) -> None:
        if self._engine is not None:
            return
        kwargs: dict[str, Any] = {"echo": self._echo}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": self._busy_timeout_ms / 1000}
            if ":memory:" in self.url or self.url.endswith("://"):
                raise ValueError("use a file for SQLite; an in-memory database is per connection")
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        engine = create_async_engine(self.url, **kwargs)
        if self.is_sqlite:
            busy = self._busy_timeout_ms

            @event.listens_for(engine.sync_engine, "connect")
            def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute(f"PRAGMA busy_timeout={int(busy)}")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.close()
                # We issue BEGIN ourselves (below) instead of the driver's implicit one.
                dbapi_conn.isolation_level = None

            @event.listens_for(engine.sync_engine, "begin")
            def _sqlite_begin(conn: Any) -> None:
                # Write transactions (Database.transaction) BEGIN IMMEDIATE: they take
                # the write lock up front, waiting through busy_timeout, where a
                # deferred one that reads then writes fails at once with "database is
                # locked" if another writer got in between. Reads stay deferred, so
                # they never queue behind writers (WAL readers do not block).
                if conn.get_execution_options().get(_WRITE_OPTION):
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                else:
                    conn.exec_driver_sql("BEGIN")

        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session; the caller commits."""
        if self._sessions is None:
            raise RuntimeError("Database.connect() has not been called")
        async with self._sessions() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one write transaction, committed on success, rolled back
        on error. Use :meth:`session` for reads."""
        if self._sessions is None:
            raise RuntimeError("Database.connect() has not been called")
        # ``async_sessionmaker.begin()`` runs the commit (or rollback) and the close
        # to completion even when the calling task is cancelled meanwhile (a
        # stopping hub, a closed WebSocket); the cancellation arrives afterwards.
        # ``session.begin()`` inside ``session()`` would let a cancellation cut the
        # pool's reset of the returned connection, which SQLAlchemy logs as an
        # error with a traceback (tests/storage/test_database.py).
        async with self._sessions.begin() as session:
            await session.connection(execution_options={_WRITE_OPTION: True})
            yield session

    async def ping(self) -> bool:
        from sqlalchemy import text

        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    async def dispose(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
            self._sessions = None


def null_pool_engine(url: str) -> AsyncEngine:
    """A throwaway engine for one-off work such as migrations."""
    return create_async_engine(url, poolclass=NullPool)
