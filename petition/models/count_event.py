"""A change to a letter's count, appended when a signature is verified or withdrawn."""

from datetime import datetime

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from petition.db import Base, utcnow


class CountEvent(Base):
    """Appending a row locks nothing shared, so confirmations never queue on the letter row."""

    __tablename__ = "count_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    letter_id: Mapped[int] = mapped_column(ForeignKey("letter.id", ondelete="CASCADE"), index=True)
    delta: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
