"""quiet hours, digests and caps; retractions and corrections

Subscriptions get their delivery settings; deliveries get held rows (a due time
and why), the digest they went out in, the platform message id, and edit rows
(kind ``edit``, one per later revision of a delivered signal); signals get a
status and a revision.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(sa.Column("delivery", sa.JSON(), nullable=False, server_default="{}"))
    with op.batch_alter_table("signals") as batch:
        batch.add_column(sa.Column("status", _text(12), nullable=False, server_default="active"))
        batch.add_column(sa.Column("revision", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("kind", _text(8), nullable=False, server_default="alert"))
        batch.add_column(sa.Column("revision", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("held_reason", _text(8), nullable=True))
        batch.add_column(sa.Column("batch_id", _text(32), nullable=True))
        batch.add_column(sa.Column("message_id", _text(64), nullable=True))
        batch.drop_constraint("uq_delivery", type_="unique")
        batch.create_unique_constraint("uq_delivery", ["signal_seq", "subscription_id", "revision"])
    # Finding a signal's deliveries when it is corrected or retracted.
    op.create_index("ix_deliveries_signal", "deliveries", ["signal_seq"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_signal", table_name="deliveries")
    op.execute("DELETE FROM deliveries WHERE revision > 0")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint("uq_delivery", type_="unique")
        batch.create_unique_constraint("uq_delivery", ["signal_seq", "subscription_id"])
        for column in ("message_id", "batch_id", "held_reason", "revision", "kind"):
            batch.drop_column(column)
    with op.batch_alter_table("signals") as batch:
        batch.drop_column("revision")
        batch.drop_column("status")
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_column("delivery")
