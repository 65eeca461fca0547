"""organiser sessions can be ended: logout, a new password or disabling ends them all

Revision ID: a4c2e9d17b3f
Revises: 5b1e0c7d9a31
Create Date: 2026-11-26 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a4c2e9d17b3f"
down_revision: str | None = "5b1e0c7d9a31"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Sessions made before this carry no version, so they end here: organisers log in again.
    with op.batch_alter_table("organiser", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("session_version", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("organiser", schema=None) as batch_op:
        batch_op.drop_column("session_version")
