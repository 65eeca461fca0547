"""A change to a letter's count, appended when a signature is verified or withdrawn."""

from datetime import datetime

from sqlalchemy.orm import Mapped, mapped_column

from petition.db import Base, utcnow


class CountEvent(Base):
    """Appending a row locks nothing shared, so confirmations never queue on the letter row.

    letter_id deliberately has no foreign key: in PostgreSQL every insert would take a KEY SHARE
    lock on the letter row, and thousands of those on one row cost measurably (bench/counts.py).
    Events live seconds before fold() removes them, and letters are never deleted.
    """

    __tablename__ = "count_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    letter_id: Mapped[int] = mapped_column(index=True)
    delta: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
