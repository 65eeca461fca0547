"""letters remember when news last went to their signers

Revision ID: c7d3f5a8e216
Revises: a4c2e9d17b3f
Create Date: 2026-11-26 15:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import petition.db

revision: str = "c7d3f5a8e216"
down_revision: str | None = "a4c2e9d17b3f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("letter", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("news_sent_at", petition.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("letter", schema=None) as batch_op:
        batch_op.drop_column("news_sent_at")
