"""An outgoing email, queued in the same transaction as the change that causes it."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from petition.db import Base, utcnow
from petition.models.types import state_enum


class MessageState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # parked after too many attempts; an operator can retry it


class Message(Base):
    __tablename__ = "message"
    __table_args__ = (
        # The outbox's queues (services/mail.py, word for word: the databases use a partial
        # index only for a query with its very condition). Sent messages stay in the table, so
        # each queue has its own: mail people wait for comes before news, and either is read
        # from its oldest due message on, however long the other.
        *(
            Index(name, *columns, sqlite_where=text(where), postgresql_where=text(where))
            for name, columns, where in (
                (
                    "ix_message_due_mail",
                    ("next_attempt_at", "id"),
                    "state = 'pending' AND kind NOT IN ('news', 'repeat_signing', 'news_fanout')",
                ),
                (
                    "ix_message_due_news",
                    ("next_attempt_at", "id"),
                    "state = 'pending' AND kind = 'news'",
                ),
                (
                    "ix_message_repeat_signing",
                    ("id",),
                    "state = 'pending' AND kind = 'repeat_signing'",
                ),
                ("ix_message_news_fanout", ("id",), "state = 'pending' AND kind = 'news_fanout'"),
                ("ix_message_parked", ("id",), "state = 'failed'"),
            )
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    # Address, body and context are cleared once sent: they hold a live token and personal
    # data, and none of it is needed after delivery.
    to_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(250))
    body_text: Mapped[str] = mapped_column(Text)
    # The template's values as JSON, rendered by the worker when it sends (body_text is then
    # empty); holds a live link and the signer's name, so it is cleared once sent too.
    context: Mapped[str | None] = mapped_column(Text)
    state: Mapped[MessageState] = mapped_column(
        state_enum(MessageState, "message_state"), default=MessageState.PENDING
    )
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    signature_id: Mapped[int | None] = mapped_column(
        ForeignKey("signature.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
