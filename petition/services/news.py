"""News about a letter, emailed by its organisers to the signers who asked for it."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from petition import links, text
from petition.db import utcnow
from petition.errors import InvalidInput, InvalidToken
from petition.models import Letter, LetterStatus, Message, Signature, SignatureState
from petition.services import mail

SUBJECT_MAX = 150
BODY_MAX = 3_000
# The sign form promises news "at most a few times": one mailing a day per letter at the most.
INTERVAL = timedelta(hours=24)
_CHUNK = 1_000
_STOP_SALT = "petition.stop-news"


def _audience(letter: Letter) -> Select:
    return select(Signature.id, Signature.email, Signature.name).where(
        Signature.letter_id == letter.id,
        Signature.state == SignatureState.VERIFIED,
        Signature.wants_updates.is_(True),
    )


def audience_size(session: Session, letter: Letter) -> int:
    """How many confirmed signers asked for news of this letter (and still want it)."""
    return session.scalar(select(func.count()).select_from(_audience(letter).subquery())) or 0


def last_sent(session: Session, letter: Letter) -> datetime | None:
    """When news of this letter was last queued, if ever."""
    query = (
        select(func.max(Message.created_at))
        .join(Signature, Message.signature_id == Signature.id)
        .where(Message.kind == "news", Signature.letter_id == letter.id)
    )
    return session.scalar(query)


def next_allowed(session: Session, letter: Letter) -> datetime | None:
    """The earliest time the next news may go out, if that is still to come."""
    last = last_sent(session, letter)
    return last + INTERVAL if last is not None and last + INTERVAL > utcnow() else None


def send(
    session: Session, letter: Letter, subject: str, body: str, now: datetime | None = None
) -> int:
    """Queue one email to every signer who asked for news; returns how many."""
    now = now or utcnow()
    subject, body = subject.strip(), text.one_line_ending(body).strip()
    if letter.status is LetterStatus.DRAFT:
        raise InvalidInput("Publish the letter first: nobody has signed a draft.")
    for field, value, limit, multiline, missing in (
        ("subject", subject, SUBJECT_MAX, False, "Give the news a subject."),
        ("body", body, BODY_MAX, True, "Write the news."),
    ):
        if not value:
            raise InvalidInput(missing, field=field)
        if len(value) > limit:
            raise InvalidInput(f"Keep this to {limit:,} characters.", field=field)
        if message := text.problem(value, multiline=multiline):
            raise InvalidInput(message, field=field)
    last = last_sent(session, letter)
    if last is not None and now < last + INTERVAL:
        raise InvalidInput(
            "News of this letter went out less than a day ago; signers were promised news at "
            "most a few times. Send this one after "
            f"{(last + INTERVAL).strftime('%d %B %Y at %H:%M')} UTC."
        )
    sent = 0
    rows = session.execute(_audience(letter)).all()
    for start in range(0, len(rows), _CHUNK):
        messages = [
            mail.message_values(
                "news",
                email,
                subject,
                title=letter.title,
                name=name,
                body=body,
                letter_url=links.letter(letter.slug),
                stop_url=links.stop_news(stop_token(signature_id)),
            )
            | {"signature_id": signature_id}
            for signature_id, email, name in rows[start : start + _CHUNK]
        ]
        session.connection().execute(mail.INSERT_MESSAGE, messages)
        sent += len(messages)
    return sent


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.secret_key, salt=_STOP_SALT)


def stop_token(signature_id: int) -> str:
    """The token in a news email's "stop" link: it names the signature and cannot be forged."""
    return _serializer().dumps(signature_id)


def find_by_stop_token(session: Session, token: str) -> Signature:
    """The signature a stop link belongs to, or InvalidToken (bad link, or withdrawn since)."""
    try:
        signature_id = _serializer().loads(token)
    except BadSignature:
        raise InvalidToken() from None
    signature = session.get(Signature, signature_id) if isinstance(signature_id, int) else None
    if signature is None:
        raise InvalidToken()
    return signature


def stop(session: Session, token: str) -> Signature:
    """No more news of this letter for this signer."""
    signature = find_by_stop_token(session, token)
    signature.wants_updates = False
    session.flush()
    return signature
