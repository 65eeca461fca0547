"""an index for the public list of signatories: ix_signature_listed

Revision ID: c1f7a3e9b2d4
Revises: b5e2d8a4c017
Create Date: 2026-12-07 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c1f7a3e9b2d4"
down_revision: str | None = "b5e2d8a4c017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_signature_listed"
COLUMNS = ["letter_id", "state", "show_name", "verified_at", "id"]


def upgrade() -> None:
    context = op.get_context()
    if context.dialect.name == "postgresql":
        # Built without holding up signing and confirming, however many signatures there are.
        with context.autocommit_block():
            # An interrupted build leaves an invalid index behind, and this revision unapplied.
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {NAME}")
            op.create_index(
                NAME,
                "signature",
                COLUMNS,
                postgresql_where=sa.text("state = 'verified' AND show_name = true"),
                postgresql_concurrently=True,
            )
    else:
        op.create_index(
            NAME, "signature", COLUMNS, sqlite_where=sa.text("state = 'verified' AND show_name = 1")
        )


def downgrade() -> None:
    op.drop_index(NAME, table_name="signature")
