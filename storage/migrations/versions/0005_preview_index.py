"""a covering index for the filter preview's grouped count

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 05:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A migration keeps its own copy of the columns (storage.models.PREVIEW_INDEX_COLUMNS
    # may change later; this revision must not).
    columns = [
        "catalyst_type",
        "ticker",
        "timestamp",
        "confidence",
        "signal_type",
        "price",
        "rvol",
        "sector",
    ]
    op.create_index("ix_signals_preview", "signals", columns)


def downgrade() -> None:
    op.drop_index("ix_signals_preview", table_name="signals")
