"""A signature: pending until its owner confirms by email, then counted."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ColumnElement, ForeignKey, Index, String, UniqueConstraint, false, text
from sqlalchemy.orm import Mapped, mapped_column

from petition.db import Base, utcnow
from petition.models.types import state_enum


class SignatureState(StrEnum):
    PENDING = "pending"
    VERIFIED = "verified"


class Signature(Base):
    __tablename__ = "signature"
    __table_args__ = (
        UniqueConstraint("letter_id", "email_key"),
        Index("ix_signature_letter_state_verified", "letter_id", "state", "verified_at"),
        # A pending signature has no manage token yet: kept out of the index, it costs a
        # signing nothing there (a unique index still holds every NULL).
        Index(
            "uq_signature_manage_token_hash",
            "manage_token_hash",
            unique=True,
            sqlite_where=text("manage_token_hash IS NOT NULL"),
            postgresql_where=text("manage_token_hash IS NOT NULL"),
        ),
        # The public list (services/signatories.py) in its order: a page is found by walking
        # this index alone. Its condition is the list's, word for word (see LISTED), or the
        # databases would not use it; `state` and `show_name` among the columns too, or SQLite
        # prefers the index above and reads each signature's row for show_name.
        Index(
            "ix_signature_listed",
            "letter_id",
            "state",
            "show_name",
            "verified_at",
            "id",
            sqlite_where=text("state = 'verified' AND show_name = 1"),
            postgresql_where=text("state = 'verified' AND show_name = true"),
        ),
        # Signers who want news (services/news.py, WANTS_NEWS word for word): counted on the
        # organiser's page and walked in batches of signing order when news goes out.
        Index(
            "ix_signature_news",
            "letter_id",
            "state",
            "wants_updates",
            "id",
            sqlite_where=text("state = 'verified' AND wants_updates = 1"),
            postgresql_where=text("state = 'verified' AND wants_updates = true"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    letter_id: Mapped[int] = mapped_column(ForeignKey("letter.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(120))
    # The address as typed (normalised), for mail; email_key is the canonical mailbox that
    # decides duplicates. Neither is ever shown publicly.
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320))
    postcode: Mapped[str | None] = mapped_column(String(16))
    organisation: Mapped[str | None] = mapped_column(String(160))
    comment: Mapped[str | None] = mapped_column(String(500))
    show_name: Mapped[bool] = mapped_column(default=False)
    share_email: Mapped[bool] = mapped_column(default=False)
    # Whether the signer asked for news about this letter (unticked by default; changeable later).
    wants_updates: Mapped[bool] = mapped_column(default=False, server_default=false())
    state: Mapped[SignatureState] = mapped_column(
        state_enum(SignatureState, "signature_state"), default=SignatureState.PENDING
    )
    verify_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    verify_expires_at: Mapped[datetime]
    manage_token_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    verified_at: Mapped[datetime | None]

    @classmethod
    def confirmable(cls, now: datetime) -> ColumnElement[bool]:
        """Pending, with a confirmation link that still works: a signer who can yet confirm."""
        return (cls.state == SignatureState.PENDING) & (cls.verify_expires_at > now)
