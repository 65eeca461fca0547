"""pending signatures out of the manage token index: unique where manage_token_hash is set

Revision ID: 9d3a6c1e5f27
Revises: e4b81f2c6a90
Create Date: 2026-12-07 06:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9d3a6c1e5f27"
down_revision: str | None = "e4b81f2c6a90"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "uq_signature_manage_token_hash"
SET = sa.text("manage_token_hash IS NOT NULL")


def upgrade() -> None:
    # On SQLite the constraint is part of the table: batch mode rebuilds it (env.py keeps
    # foreign keys off meanwhile).
    with op.batch_alter_table("signature", schema=None) as batch_op:
        batch_op.drop_constraint(NAME, type_="unique")
    op.create_index(
        NAME,
        "signature",
        ["manage_token_hash"],
        unique=True,
        sqlite_where=SET,
        postgresql_where=SET,
    )


def downgrade() -> None:
    op.drop_index(NAME, table_name="signature")
    with op.batch_alter_table("signature", schema=None) as batch_op:
        batch_op.create_unique_constraint(NAME, ["manage_token_hash"])
