"""mail is rendered by the worker when it sends

Revision ID: 5b1e0c7d9a31
Revises: 298333678fd8
Create Date: 2026-11-26 11:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5b1e0c7d9a31"
down_revision: str | None = "298333678fd8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("context", sa.Text(), nullable=True))


def downgrade() -> None:
    # Messages still waiting keep their text: render them before the column goes.
    connection = op.get_bind()
    waiting = connection.execute(
        sa.text("SELECT id, kind, context FROM message WHERE context IS NOT NULL")
    ).all()
    if waiting:
        from petition.services.mail import render_body

        for message_id, kind, context in waiting:
            connection.execute(
                sa.text("UPDATE message SET body_text = :body WHERE id = :id"),
                {"body": render_body(kind, context), "id": message_id},
            )
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_column("context")
