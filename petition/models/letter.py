"""An open letter: its text, its recipient, what it asks of signers, and its stored count."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from petition.db import Base, utcnow
from petition.models.types import state_enum


class LetterStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    CLOSED = "closed"


class Letter(Base):
    __tablename__ = "letter"
    __table_args__ = (
        CheckConstraint("goal IS NULL OR goal > 0", name="goal_positive"),
        CheckConstraint("signature_count >= 0", name="count_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    organiser_id: Mapped[int | None] = mapped_column(
        ForeignKey("organiser.id", ondelete="SET NULL"), index=True
    )
    title: Mapped[str] = mapped_column(String(200))
    recipient_name: Mapped[str] = mapped_column(String(200))
    recipient_role: Mapped[str] = mapped_column(String(200), default="")
    recipient_email: Mapped[str | None] = mapped_column(String(320))
    body_markdown: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    goal: Mapped[int | None]
    closes_at: Mapped[datetime | None]
    ask_postcode: Mapped[bool] = mapped_column(default=False)
    ask_organisation: Mapped[bool] = mapped_column(default=False)
    ask_comment: Mapped[bool] = mapped_column(default=False)
    status: Mapped[LetterStatus] = mapped_column(
        state_enum(LetterStatus, "letter_status"), default=LetterStatus.DRAFT
    )
    # Verified signatures folded in by services.counts.fold(); events not yet folded are added
    # on read, so this plus the pending events is always exact.
    signature_count: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    # When news of the letter last went to its signers (services/news.py: once a day at most).
    news_sent_at: Mapped[datetime | None]

    def accepts_signatures(self, now: datetime, *, as_published: bool = False) -> bool:
        """Open, and not past its closing date; `as_published` counts a draft as open, as its
        preview shows it."""
        open_statuses = (
            (LetterStatus.OPEN, LetterStatus.DRAFT) if as_published else (LetterStatus.OPEN,)
        )
        return self.status in open_statuses and (self.closes_at is None or now < self.closes_at)

    def effective_status(self, now: datetime) -> LetterStatus:
        """The status a visitor sees: an open letter past its closing date reads as closed."""
        if self.status is LetterStatus.OPEN and not self.accepts_signatures(now):
            return LetterStatus.CLOSED
        return self.status
