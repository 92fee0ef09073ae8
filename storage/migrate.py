"""Apply Alembic migrations programmatically (``catalyst db upgrade`` and start-up).

On PostgreSQL the whole upgrade runs in one transaction holding an advisory lock,
so N processes starting at once on an empty database migrate it exactly once:
the first applies the revisions, the others wait for it and find nothing to do.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from storage.database import Database
from storage.locks import lock_key

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
MIGRATION_LOCK = lock_key("migrate")


class SchemaNotCurrent(RuntimeError):
    """The database schema is older (or newer) than this code expects."""


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def _pending(connection: Connection, cfg: Config) -> list[str]:
    """Revisions between the database's current one and head, oldest first."""
    script = ScriptDirectory.from_config(cfg)
    current = MigrationContext.configure(connection).get_current_revision()
    revisions = [r.revision for r in script.iterate_revisions("heads", current)]
    return list(reversed(revisions))


async def upgrade(db: Database, revision: str = "head") -> list[str]:
    """Bring the schema to ``revision`` using the database's own engine. Returns
    the revisions applied (empty when it was already current)."""
    cfg = alembic_config(db.url)

    def _upgrade(connection: Connection) -> list[str]:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
        pending = _pending(connection, cfg)
        if pending:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)
        return pending

    async with db.engine.begin() as conn:
        return await conn.run_sync(_upgrade)


async def current_revision(db: Database) -> str | None:
    def _current(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with db.engine.connect() as conn:
        return await conn.run_sync(_current)


async def check_current(db: Database) -> None:
    """Raise :class:`SchemaNotCurrent`, saying what to run, unless the schema is at head."""
    current = await current_revision(db)
    head = head_revision()
    if current != head:
        state = "has no tables yet" if current is None else f"is at revision {current}"
        raise SchemaNotCurrent(
            f"the database schema {state}, this version needs {head}: "
            "run `catalyst db upgrade` (or set database.auto_migrate = true)"
        )
