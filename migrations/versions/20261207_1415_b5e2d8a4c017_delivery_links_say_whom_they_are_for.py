"""delivery links say whom they are for: delivery.label

Revision ID: b5e2d8a4c017
Revises: 9d3a6c1e5f27
Create Date: 2026-12-07 14:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b5e2d8a4c017"
down_revision: str | None = "9d3a6c1e5f27"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("delivery", sa.Column("label", sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_column("label")
