"""count events summed from their index: (letter_id, delta) replaces (letter_id)

Revision ID: e4b81f2c6a90
Revises: c7d3f5a8e216
Create Date: 2026-12-07 05:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "e4b81f2c6a90"
down_revision: str | None = "c7d3f5a8e216"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_count_event_letter_id_delta", "count_event", ["letter_id", "delta"])
    op.drop_index("ix_count_event_letter_id", table_name="count_event")


def downgrade() -> None:
    op.create_index("ix_count_event_letter_id", "count_event", ["letter_id"])
    op.drop_index("ix_count_event_letter_id_delta", table_name="count_event")
