"""News about a letter, emailed by its organisers to the signers who asked for it."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import func, literal_column, select, true
from sqlalchemy.orm import Session

from petition import links, text
from petition.dates import uk_time
from petition.db import is_postgres, utcnow
from petition.errors import InvalidInput, InvalidToken, LetterNotEditable
from petition.models import Letter, LetterStatus, Message, Signature, SignatureState
from petition.services import mail
from petition.services.letters import check_text

SUBJECT_MAX = 150
BODY_MAX = 3_000
# The sign form promises news "at most a few times": one mailing a day per letter at the most.
INTERVAL = timedelta(hours=24)
# Emails queued in one transaction by fan_out.
BATCH = 1_000
NEWS_FANOUT = mail.NEWS_FANOUT
_STOP_SALT = "petition.stop-news"


# Signers who asked for news, written as ix_signature_news's condition (constants, not bound
# values) so that both databases count and walk them in that index alone.
WANTS_NEWS = (Signature.state == literal_column(f"'{SignatureState.VERIFIED.value}'")) & (
    Signature.wants_updates == true()
)


def audience_size(session: Session, letter: Letter) -> int:
    """How many confirmed signers asked for news of this letter (and still want it)."""
    query = select(func.count()).where(Signature.letter_id == letter.id, WANTS_NEWS)
    return session.scalar(query) or 0


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
    """Send news to every confirmed signer who asked for it; returns how many they are.

    Their emails are queued by the worker (fan_out) from the news kept here."""
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
    # FOR NO KEY UPDATE, not FOR UPDATE: every signing's foreign key takes a key-share lock on
    # this row, and would wait for the end of this transaction.
    session.refresh(letter, with_for_update={"key_share": True})
    if (allowed := next_allowed(letter, now)) is not None:
        raise InvalidInput(
            "News of this letter went out less than a day ago, and signers were promised news "
            f"at most a few times. Send this one after {uk_time(allowed)}."
        )
    audience = audience_size(session, letter)
    if not audience:  # and the day's one mailing is not used up on nobody
        raise InvalidInput(
            "No confirmed signer has asked for news of this letter, so nothing was sent."
        )
    letter.news_sent_at = now
    # The emails are queued by the worker, a batch at a time (fan_out): a letter with a million
    # signers took a minute and 700 MB to queue here, past any request's time.
    job = mail.message_values(
        NEWS_FANOUT, "", subject, letter_id=letter.id, body=body, sent_at=now, after_id=0
    )
    session.connection().execute(mail.INSERT_MESSAGE, [job | {"signature_id": None}])
    return audience


def fan_out(session: Session, limit: int = BATCH) -> int | None:
    """Queue the next `limit` emails of the oldest news still going out; returns how many, or
    None when no news is waiting.

    The news goes to the signers who were confirmed when it was sent and still want news when
    their batch is queued (a stop link or a withdrawal in between is honoured), in the order
    they signed. Run it in a writing transaction (db.transaction()), one batch each, so that
    no transaction holds up signing for long.
    """
    query = select(Message).where(mail.pending_task(NEWS_FANOUT)).order_by(Message.id).limit(1)
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    job = session.scalar(query)
    if job is None:
        return None
    news = mail.decode_context(job.context)
    letter = session.get(Letter, news["letter_id"])
    rows = [] if letter is None else _next_signers(session, letter, news, limit)
    if rows:
        assert letter is not None
        letter_url, serializer = links.letter(letter.slug), _serializer()
        messages = [
            mail.message_values(
                mail.NEWS,
                email,
                job.subject,
                title=letter.title,
                name=name,
                body=news["body"],
                letter_url=letter_url,
                stop_url=links.stop_news(serializer.dumps(_identity(signature_id, created_at))),
            )
            | {"signature_id": signature_id}
            for signature_id, created_at, email, name in rows
        ]
        session.connection().execute(mail.INSERT_MESSAGE, messages)
    if len(rows) < limit:
        session.delete(job)
    else:
        job.context = mail.encode_context(news | {"after_id": rows[-1][0]})
    session.flush()
    return len(rows)


def _next_signers(session: Session, letter: Letter, news: dict, limit: int) -> list:
    """The next `limit` signers the news is for (id, created_at, email, name), in signing order
    after the last one queued: confirmed when it was sent, and wanting news now."""
    query = (
        select(Signature.id, Signature.created_at, Signature.email, Signature.name)
        .where(
            Signature.letter_id == letter.id,
            WANTS_NEWS,
            Signature.id > news["after_id"],
            Signature.verified_at <= news["sent_at"],
        )
        .order_by(Signature.id)
        .limit(limit)
    )
    return list(session.execute(query).all())


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
