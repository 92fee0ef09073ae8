"""the operator's view: admin actions recorded, when a delivery ended unsent

``admin_actions`` records what an operator did (a dead-letter retry); deliveries
get ``ended_at`` (when a row went dead, expired or was canceled) and an index on
``created_at`` for the per-channel counts over the last hour and day.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.models

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "admin_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", _text(64), nullable=False),
        sa.Column("action", _text(32), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(
            sa.Column("ended_at", storage.models.UTCDateTime(timezone=True), nullable=True)
        )
    op.create_index("ix_deliveries_created", "deliveries", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_created", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("ended_at")
    op.drop_table("admin_actions")
