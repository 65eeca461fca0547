"""Delivery links: a secret URL for the recipient's office to download the signatories."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from petition import tokens
from petition.db import utcnow
from petition.errors import InvalidToken, LetterNotEditable, TokenExpired
from petition.models import Delivery, Letter, LetterStatus
from petition.models.delivery import LABEL_MAX
from petition.services.letters import check_text


def create(
    session: Session,
    letter: Letter,
    days: int,
    label: str | None = None,
    now: datetime | None = None,
) -> str:
    """A new delivery link for a published letter, labelled with whom it is for (seen by
    organisers only); returns the raw token (shown once)."""
    if letter.status is LetterStatus.DRAFT:
        raise LetterNotEditable("Publish the letter before delivering it.")
    label = (label or "").strip() or None
    if label:
        check_text("label", label, LABEL_MAX)
    now = now or utcnow()
    raw, digest = tokens.new_token()
    session.add(
        Delivery(
            letter_id=letter.id,
            token_hash=digest,
            label=label,
            created_at=now,
            expires_at=now + timedelta(days=days),
        )
    )
    session.flush()
    return raw


def find(session: Session, raw: str, now: datetime | None = None) -> tuple[Delivery, Letter]:
    """The live delivery behind a link, or InvalidToken / TokenExpired."""
    now = now or utcnow()
    delivery = None
    if tokens.looks_like_token(raw):
        delivery = session.scalar(select(Delivery).where(Delivery.token_hash == tokens.digest(raw)))
    if delivery is None:
        raise InvalidToken(
            "This delivery link is not valid: check that the whole link was copied, "
            "or ask the organisers for a new one."
        )
    if delivery.revoked_at is not None:  # said only to whoever holds the whole link
        raise InvalidToken(
            "The organisers have revoked this delivery link. Ask them for a new one."
        )
    if delivery.expires_at <= now:
        raise TokenExpired("This delivery link has expired. Ask the organisers for a new one.")
    return delivery, session.get_one(Letter, delivery.letter_id)


def record_download(session: Session, delivery: Delivery, now: datetime | None = None) -> None:
    delivery.download_count += 1
    delivery.last_downloaded_at = now or utcnow()
    session.flush()


def list_for_letter(session: Session, letter: Letter) -> list[Delivery]:
    query = select(Delivery).where(Delivery.letter_id == letter.id).order_by(Delivery.id.desc())
    return list(session.scalars(query))


def revoke(session: Session, letter: Letter, delivery_id: int, now: datetime | None = None) -> None:
    delivery = session.get(Delivery, delivery_id)
    if delivery is None or delivery.letter_id != letter.id:
        raise InvalidToken("No such delivery link.")
    delivery.revoked_at = now or utcnow()
    session.flush()
