"""News about a letter, emailed by its organisers to the signers who asked for it."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from petition import links, text
from petition.dates import uk_time
from petition.db import utcnow
from petition.errors import InvalidInput, InvalidToken, LetterNotEditable
from petition.models import Letter, LetterStatus, Signature, SignatureState
from petition.services import mail
from petition.services.letters import check_text

SUBJECT_MAX = 150
BODY_MAX = 3_000
# The sign form promises news "at most a few times": one mailing a day per letter at the most.
INTERVAL = timedelta(hours=24)
_CHUNK = 1_000
_STOP_SALT = "petition.stop-news"


def _audience(letter: Letter) -> Select:
    return select(Signature.id, Signature.created_at, Signature.email, Signature.name).where(
        Signature.letter_id == letter.id,
        Signature.state == SignatureState.VERIFIED,
        Signature.wants_updates.is_(True),
    )


def audience_size(session: Session, letter: Letter) -> int:
    """How many confirmed signers asked for news of this letter (and still want it)."""
    return session.scalar(select(func.count()).select_from(_audience(letter).subquery())) or 0


def next_allowed(letter: Letter, now: datetime | None = None) -> datetime | None:
    """The earliest time the next news may go out, if that is still to come."""
    now = now or utcnow()
    if letter.news_sent_at is None or letter.news_sent_at + INTERVAL <= now:
        return None
    return letter.news_sent_at + INTERVAL


NO_SUBJECT = "Give the news a subject."
NO_BODY = "Write the news."


def send(
    session: Session, letter: Letter, subject: str, body: str, now: datetime | None = None
) -> int:
    """Queue one email to every signer who asked for news; returns how many."""
    now = now or utcnow()
    subject, body = subject.strip(), text.one_line_ending(body).strip()
    if letter.status is LetterStatus.DRAFT:
        raise LetterNotEditable("Publish the letter first: nobody has signed a draft.")
    for field, value, limit, multiline, missing in (
        ("subject", subject, SUBJECT_MAX, False, NO_SUBJECT),
        ("body", body, BODY_MAX, True, NO_BODY),
    ):
        if not value:
            raise InvalidInput(missing, field=field)
        check_text(field, value, limit, multiline=multiline)
    # The letter's row is the lock: two organisers (or tabs) sending at once queue one mailing.
    session.refresh(letter, with_for_update=True)
    if (allowed := next_allowed(letter, now)) is not None:
        raise InvalidInput(
            "News of this letter went out less than a day ago, and signers were promised news "
            f"at most a few times. Send this one after {uk_time(allowed)}."
        )
    rows = session.execute(_audience(letter)).all()
    if not rows:  # and the day's one mailing is not used up on nobody
        raise InvalidInput(
            "No confirmed signer has asked for news of this letter, so nothing was sent."
        )
    letter.news_sent_at = now
    sent = 0
    letter_url, serializer = links.letter(letter.slug), _serializer()
    for start in range(0, len(rows), _CHUNK):
        messages = [
            mail.message_values(
                "news",
                email,
                subject,
                title=letter.title,
                name=name,
                body=body,
                letter_url=letter_url,
                stop_url=links.stop_news(serializer.dumps(_identity(signature_id, created_at))),
            )
            | {"signature_id": signature_id}
            for signature_id, created_at, email, name in rows[start : start + _CHUNK]
        ]
        session.connection().execute(mail.INSERT_MESSAGE, messages)
        sent += len(messages)
    return sent


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.secret_key, salt=_STOP_SALT)


def _identity(signature_id: int, created_at: datetime) -> list[int]:
    # What a stop link's token names and the serializer signs. The id alone is not enough:
    # SQLite gives a withdrawn signature's id to the next one.
    return [signature_id, int(created_at.timestamp() * 1_000_000)]


def find_by_stop_token(session: Session, token: str) -> Signature:
    """The signature a stop link belongs to, or InvalidToken (bad link, or withdrawn since)."""
    try:
        named = _serializer().loads(token)
    except BadSignature:
        raise InvalidToken() from None
    valid = isinstance(named, list) and len(named) == 2 and all(type(n) is int for n in named)
    signature = session.get(Signature, named[0]) if valid else None
    if signature is None or _identity(signature.id, signature.created_at) != named:
        raise InvalidToken()
    return signature


def stop(session: Session, token: str) -> Signature:
    """No more news of this letter for this signer."""
    signature = find_by_stop_token(session, token)
    signature.wants_updates = False
    session.flush()
    return signature
