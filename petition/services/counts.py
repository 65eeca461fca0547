"""Signature counts: exact, cheap to read, and never a row that every confirmation locks.

Confirming a signature appends a +1 CountEvent; withdrawing a confirmed one appends -1. A single
folder (fold()) periodically moves the events into letter.signature_count in one batch. Readers
add the few events not folded yet, so a count is exact as soon as the confirmation commits, and
recount() proves the stored figures against the signatures themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, delete, func, literal, select, update
from sqlalchemy.orm import Session

from petition.cache import Cache, remember
from petition.db import is_postgres, utcnow
from petition.models import CountEvent, Letter, Signature, SignatureState

# Any constant shared by all app instances; names the folder's advisory lock in PostgreSQL.
FOLD_LOCK_KEY = 0x5E7171_0C
FOLD_BATCH = 50_000


def _pending_sum(letter_id):
    return (
        select(func.coalesce(func.sum(CountEvent.delta), 0))
        .where(CountEvent.letter_id == letter_id)
        .scalar_subquery()
    )


def current(session: Session, letter_id: int) -> int:
    """The exact number of verified signatures, as of this statement."""
    query = select(Letter.signature_count + _pending_sum(Letter.id)).where(Letter.id == letter_id)
    return int(session.scalar(query) or 0)


def unconfirmed(session: Session, letter_id: int, now: datetime | None = None) -> int:
    """Signatures whose signer has not yet pressed the emailed link, and still can: a number
    that grows while the confirmed count does not tells organisers that mail is not arriving."""
    query = select(func.count()).where(
        Signature.letter_id == letter_id, Signature.confirmable(now or utcnow())
    )
    return int(session.scalar(query) or 0)


class CountCache:
    """Counts kept a few seconds in the shared cache, so polls and page views touch no table."""

    def __init__(self, cache: Cache[bytes], seconds: float) -> None:
        self.cache = cache
        self.seconds = seconds

    def get(self, session: Session, letter_id: int) -> int:
        def count() -> bytes:
            return str(current(session, letter_id)).encode()

        return int(remember(self.cache, f"count:{letter_id}", self.seconds, count))

    def forget(self, letter_id: int) -> None:
        self.cache.delete(f"count:{letter_id}")


def fold(session: Session, *, locked: bool = False) -> int:
    """Move pending count events into the letters' stored counts; returns events folded.

    Only one folder runs at a time (an advisory lock on PostgreSQL; SQLite's write lock), so two
    workers can never add the same events twice. `locked` says the caller holds the lock.
    """
    if (
        not locked
        and is_postgres(session)
        and not session.scalar(select(func.pg_try_advisory_xact_lock(literal(FOLD_LOCK_KEY))))
    ):
        return 0
    # One statement takes the batch out and reports it (5x faster than select-then-delete on
    # PostgreSQL, measured in bench/counts.py).
    batch = select(CountEvent.id).order_by(CountEvent.id).limit(FOLD_BATCH)
    events = session.execute(
        delete(CountEvent)
        .where(CountEvent.id.in_(batch))
        .returning(CountEvent.letter_id, CountEvent.delta)
        .execution_options(synchronize_session=False)
    ).all()
    if not events:
        return 0
    totals: dict[int, int] = {}
    for letter_id, delta in events:
        totals[letter_id] = totals.get(letter_id, 0) + delta
    for letter_id in sorted(totals):
        if totals[letter_id]:
            session.execute(
                update(Letter)
                .where(Letter.id == letter_id)
                .values(signature_count=Letter.signature_count + totals[letter_id])
            )
    session.flush()
    return len(events)


def reclaim_folded(engine: Engine) -> None:
    """Give back the space of folded events (PostgreSQL: VACUUM count_event).

    fold() deletes events by the thousand; until a vacuum, every confirmation's sum of unfolded
    events walks past the dead rows as well. Autovacuum may be off, or a minute away in the
    middle of a burst: in a 200,000-signature soak on a server without it, count_event held
    190,000 dead rows beside 677 live ones and PostgreSQL's CPU per confirmation climbed.
    SQLite reuses the freed pages by itself.
    """
    if engine.dialect.name != "postgresql":
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        # SKIP_LOCKED: autovacuum at it already (for wraparound, which it does not give up).
        connection.exec_driver_sql(f"VACUUM (SKIP_LOCKED, ANALYZE) {CountEvent.__tablename__}")


@dataclass(frozen=True)
class RecountResult:
    slug: str
    stored: int  # what the site was showing: stored count plus pending events
    actual: int  # verified signatures

    @property
    def difference(self) -> int:
        return self.actual - self.stored


def recount(session: Session, slug: str | None = None) -> list[RecountResult]:
    """Compare each letter's count with its verified signatures and repair any drift."""
    if is_postgres(session):
        session.execute(select(func.pg_advisory_xact_lock(literal(FOLD_LOCK_KEY))))
    while fold(session, locked=True):
        pass
    verified = (
        select(func.count())
        .where(Signature.letter_id == Letter.id, Signature.state == SignatureState.VERIFIED)
        .scalar_subquery()
    )
    # One statement, so one snapshot: stored, pending and actual are read at the same instant.
    query = select(
        Letter.id, Letter.slug, Letter.signature_count + _pending_sum(Letter.id), verified
    ).order_by(Letter.id)
    if slug is not None:
        query = query.where(Letter.slug == slug)
    results = []
    for letter_id, letter_slug, stored, actual in session.execute(query).all():
        result = RecountResult(slug=letter_slug, stored=int(stored), actual=int(actual))
        if result.difference:
            # Relative, so a confirmation committed since the snapshot is not lost.
            session.execute(
                update(Letter)
                .where(Letter.id == letter_id)
                .values(signature_count=Letter.signature_count + result.difference)
            )
        results.append(result)
    session.flush()
    return results
