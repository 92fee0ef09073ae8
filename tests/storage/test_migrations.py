"""Alembic migrations build the schema the models describe, on every backend."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import storage.models  # noqa: F401
from core.context import HubContext
from domain.errors import ConfigError
from hub.build import build_context, prepare_database
from storage.migrate import current_revision, head_revision, upgrade
from tests.conftest import settings_for

ROOT = Path(__file__).resolve().parents[2]


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
        "stream_receipts",
        "admin_actions",
        "alembic_version",
    } <= names
    before = await current_revision(any_ctx.db)
    assert await upgrade(any_ctx.db) == []  # a second upgrade is a no-op
    assert await current_revision(any_ctx.db) == before == head_revision() == "0009"


async def test_models_and_migrations_agree(any_ctx: HubContext) -> None:
    def diff(conn: Connection) -> list[object]:
        ctx = MigrationContext.configure(conn, opts={"compare_type": False})
        return list(compare_metadata(ctx, SQLModel.metadata))

    async with any_ctx.db.engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_processes_starting_at_once_migrate_an_empty_database_once(
    fresh_pg_url: str,
) -> None:
    """N processes racing on an empty PostgreSQL database all come up: the
    migration lock lets the first migrate and the others find nothing to do."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATALYST_")}
    env.update(PYTHONPATH=str(ROOT), CATALYST_DATABASE__URL=fresh_pg_url)
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hub.cli",
            "db",
            "upgrade",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        for _ in range(4)
    ]
    outputs = [(await p.communicate())[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outputs
    assert sum("applied migration(s) 0001, 0002, 0003, 0004, 0005" in o for o in outputs) == 1, outputs
    assert sum("nothing applied" in o for o in outputs) == 3, outputs


async def test_a_role_on_an_unmigrated_database_says_what_to_run(
    fresh_pg_url: str, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, db_url=fresh_pg_url, database={"auto_migrate": False})
    ctx = build_context(settings)
    try:
        with pytest.raises(ConfigError, match="run `catalyst db upgrade`"):
            await prepare_database(ctx)
    finally:
        await ctx.db.dispose()
