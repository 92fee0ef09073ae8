"""Shared fixtures.

* ``ctx``: a HubContext on a fresh, migrated SQLite file (fast; most tests).
* ``any_ctx``: the same on every configured backend: SQLite always, PostgreSQL
  too when ``CATALYST_TEST_DATABASE_URL`` is set (CI sets it). Storage tests use it.
* ``make_settings``: Settings for a temporary folder with overrides.

No test reaches the internet: fakes listen on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from core.context import HubContext
from core.settings import Settings
from hub.build import build_context, prepare_database

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
os.environ.setdefault("no_proxy", "127.0.0.1,localhost")

PG_URL = os.environ.get("CATALYST_TEST_DATABASE_URL", "").strip()
TEST_JWT_SECRET = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"


def _backends() -> list[Any]:
    backends: list[Any] = ["sqlite"]
    if PG_URL:
        backends.append("postgresql")
    return backends


def settings_for(tmp_path: Path, db_url: str | None = None, **overrides: Any) -> Settings:
    data: dict[str, Any] = {
        "database": {"url": db_url or f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"},
        "auth": {"jwt_secret": TEST_JWT_SECRET},
        "console": {"auto_subscribe": False},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return Settings(**data)


async def reset_postgres(url: str) -> None:
    engine = create_async_engine(Settings(database={"url": url}).database.url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


@pytest.fixture
async def fresh_pg_url() -> AsyncIterator[str]:
    """The URL of a new, empty PostgreSQL database of its own (for multi-process
    tests), dropped afterwards. Skips without CATALYST_TEST_DATABASE_URL."""
    if not PG_URL:
        pytest.skip("needs PostgreSQL: set CATALYST_TEST_DATABASE_URL")
    name = f"catalyst_t_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(
        Settings(database={"url": PG_URL}).database.url, isolation_level="AUTOCOMMIT"
    )
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def _make(**overrides: Any) -> Settings:
        return settings_for(tmp_path, **overrides)

    return _make


async def _context(settings: Settings) -> HubContext:
    ctx = build_context(settings)
    await prepare_database(ctx, force=True)
    return ctx


@pytest.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[HubContext]:
    context = await _context(settings_for(tmp_path))
    try:
        yield context
    finally:
        await context.dispatcher.stop()
        await context.db.dispose()


@pytest.fixture(params=_backends())
async def any_ctx(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[HubContext]:
    if request.param == "postgresql":
        await reset_postgres(PG_URL)
        settings = settings_for(tmp_path, db_url=PG_URL)
    else:
        settings = settings_for(tmp_path)
    context = await _context(settings)
    try:
        yield context
    finally:
        await context.dispatcher.stop()
        await context.db.dispose()
