"""Dialect-specific INSERT ... ON CONFLICT DO NOTHING for SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def insert_ignore(session: AsyncSession, table: Any, conflict_cols: list[str]) -> Any:
    """An INSERT that skips rows violating the unique constraint on ``conflict_cols``."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=conflict_cols)
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=conflict_cols)


def dialect_name(session: AsyncSession) -> str:
    return session.bind.dialect.name if session.bind is not None else "sqlite"
