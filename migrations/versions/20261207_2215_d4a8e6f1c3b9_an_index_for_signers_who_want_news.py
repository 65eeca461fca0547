"""an index for signers who want news: ix_signature_news

Revision ID: d4a8e6f1c3b9
Revises: c1f7a3e9b2d4
Create Date: 2026-12-07 22:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d4a8e6f1c3b9"
down_revision: str | None = "c1f7a3e9b2d4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_signature_news"
COLUMNS = ["letter_id", "state", "wants_updates", "id"]


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
                postgresql_where=sa.text("state = 'verified' AND wants_updates = true"),
                postgresql_concurrently=True,
            )
    else:
        op.create_index(
            NAME,
            "signature",
            COLUMNS,
            sqlite_where=sa.text("state = 'verified' AND wants_updates = 1"),
        )


def downgrade() -> None:
    op.drop_index(NAME, table_name="signature")
