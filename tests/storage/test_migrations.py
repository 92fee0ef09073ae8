"""Alembic migrations build the schema the models describe, on every backend."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import storage.models  # noqa: F401
from core.context import HubContext
from storage.migrate import current_revision, upgrade


async def test_upgrade_creates_every_table_and_is_repeatable(any_ctx: HubContext) -> None:
    def tables(conn: Connection) -> set[str]:
        return set(inspect(conn).get_table_names())

    async with any_ctx.db.engine.connect() as conn:
        names = await conn.run_sync(tables)
    assert {
        "signals",
        "users",
        "accounts",
        "api_keys",
        "subscriptions",
        "deliveries",
        "trade_outcomes",
        "link_codes",
        "source_cursors",
        "platform_memos",
        "alembic_version",
    } <= names
    before = await current_revision(any_ctx.db)
    await upgrade(any_ctx.db)  # a second upgrade is a no-op
    assert await current_revision(any_ctx.db) == before == "0002"


async def test_models_and_migrations_agree(any_ctx: HubContext) -> None:
    def diff(conn: Connection) -> list[object]:
        ctx = MigrationContext.configure(conn, opts={"compare_type": False})
        return list(compare_metadata(ctx, SQLModel.metadata))

    async with any_ctx.db.engine.connect() as conn:
        assert await conn.run_sync(diff) == []
