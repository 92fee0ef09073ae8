"""A PostgreSQL database of a bench's own, created and dropped around a run
(bench/cross_node.py, bench/telegram_delivery.py --workers)."""

from __future__ import annotations

import os
import uuid


class ScratchDatabase:
    """A PostgreSQL database of the bench's own on the server of ``base_url``."""

    def __init__(self, base_url: str, prefix: str) -> None:
        from sqlalchemy.engine import make_url

        base = make_url(base_url)
        if not base.drivername.startswith("postgresql"):
            raise SystemExit(f"error: --pg-url must be a postgresql:// URL, not {base_url!r}")
        self._admin_url = base_url
        self.name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self.url = base.set(database=self.name).render_as_string(hide_password=False)
        self.created = False

    async def _admin(self, sql: str) -> None:
        import asyncpg

        from storage.notify import asyncpg_dsn

        conn = await asyncpg.connect(asyncpg_dsn(self._admin_url), timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def create(self) -> None:
        await self._admin(f'CREATE DATABASE "{self.name}"')
        self.created = True

    async def drop(self) -> None:
        if self.created:
            await self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self.created = False
