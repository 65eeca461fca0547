"""the outbox's queues: partial indexes for due mail, due news, the worker's tasks, parked mail

They replace ix_message_state_next_attempt_at, which held every pending message in one queue:
behind a million emails of news a confirmation link waited hours, and finding the worker's
next task read every pending message.

Revision ID: e7b3c5d9a1f2
Revises: d4a8e6f1c3b9
Create Date: 2026-12-07 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e7b3c5d9a1f2"
down_revision: str | None = "d4a8e6f1c3b9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As in petition/models/message.py: name, columns, condition.
QUEUES = (
    (
        "ix_message_due_mail",
        ["next_attempt_at", "id"],
        "state = 'pending' AND kind NOT IN ('news', 'repeat_signing', 'news_fanout')",
    ),
    ("ix_message_due_news", ["next_attempt_at", "id"], "state = 'pending' AND kind = 'news'"),
    ("ix_message_repeat_signing", ["id"], "state = 'pending' AND kind = 'repeat_signing'"),
    ("ix_message_news_fanout", ["id"], "state = 'pending' AND kind = 'news_fanout'"),
    ("ix_message_parked", ["id"], "state = 'failed'"),
)
OLD = "ix_message_state_next_attempt_at"


def upgrade() -> None:
    context = op.get_context()
    if context.dialect.name != "postgresql":
        for name, columns, where in QUEUES:
            op.create_index(name, "message", columns, sqlite_where=sa.text(where))
        op.drop_index(OLD, table_name="message")
        return
    # Built without holding up the worker or the site, however long the outbox.
    with context.autocommit_block():
        for name, columns, where in QUEUES:
            # An interrupted build leaves an invalid index behind, and this revision unapplied.
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            op.create_index(
                name,
                "message",
                columns,
                postgresql_where=sa.text(where),
                postgresql_concurrently=True,
            )
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {OLD}")


def downgrade() -> None:
    op.create_index(OLD, "message", ["state", "next_attempt_at"])
    for name, _columns, _where in reversed(QUEUES):
        op.drop_index(name, table_name="message")
