"""Signing, confirming and withdrawing: the double opt-in that makes a signature count."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Protocol

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Engine,
    Insert,
    Select,
    String,
    Text,
    Update,
    and_,
    bindparam,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    literal_column,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from petition import driver, links, tokens
from petition.db import is_postgres, utcnow
from petition.emails import Address
from petition.errors import InvalidToken, LetterClosed, TokenExpired
from petition.i18n import gettext_kept
from petition.models import (
    CountEvent,
    Letter,
    LetterStatus,
    Message,
    MessageState,
    Signature,
    SignatureState,
)
from petition.services import mail
from petition.services.letters import LetterRef

DUPLICATE_NOTICE_INTERVAL = timedelta(minutes=10)


@dataclass(frozen=True)
class SignatureInput:
    name: str
    address: Address
    show_name: bool = False
    share_email: bool = False
    wants_updates: bool = False
    postcode: str | None = None
    organisation: str | None = None
    comment: str | None = None


class SignOutcome(enum.Enum):
    """What happened; never shown to the person, who always sees "check your inbox"."""

    PENDING = "pending"
    REPEAT = "repeat"  # this mailbox had signed: queued for the worker (apply_repeats)
    RESENT = "resent"
    ALREADY_VERIFIED = "already_verified"
    THROTTLED = "throttled"


class SigningTerms(Protocol):
    """What signing needs of a letter: a Letter, or a cached snapshot of one."""

    id: int
    title: str
    ask_postcode: bool
    ask_organisation: bool
    ask_comment: bool


def sign(
    db: Session | Engine, letter: SigningTerms, data: SignatureInput, now: datetime | None = None
) -> SignOutcome:
    """Record a pending signature and queue its confirmation link, or handle a repeat signing.

    The letter may be a snapshot a few seconds old: whether it still takes signatures is
    decided by the INSERT itself, against the letter row as it is now. Given an engine, or a
    session with no transaction in progress, the work is committed at once, in a driver unit of
    its own (petition.driver). A repeat signing is queued in that unit for the worker
    (apply_repeats), never handled here: the answer must take as long either way.
    """
    choices = {
        "name": data.name,
        "postcode": data.postcode if letter.ask_postcode else None,
        "organisation": data.organisation if letter.ask_organisation else None,
        "comment": data.comment if letter.ask_comment else None,
        "show_name": data.show_name,
        "share_email": data.share_email,
        "wants_updates": data.wants_updates,
    }
    values, message = _pending(letter, data.address.email, data.address.key, choices, now)
    # The INSERT decides: a mailbox that already signed (even a moment ago, in a concurrent
    # request) meets the unique constraint, and a closed letter selects no row. A repeat is not
    # handled here: the same unit queues it for the worker, so that the answer takes as long
    # whether or not this address has signed (the time would tell who signed the letter).
    with driver.unit_for(db) as unit:
        outcome = _insert_pending(unit, values, message)
    if outcome is None:
        raise LetterClosed()
    return outcome


def _pending(
    letter: SigningTerms,
    email: str,
    email_key: str,
    choices: Mapping[str, object],
    now: datetime | None,
) -> tuple[dict[str, object], dict[str, object]]:
    """A new pending signature's row (with a fresh confirmation token) and its link's mail."""
    now = now or utcnow()
    raw, digest = tokens.new_token()
    values = {
        "letter_id": letter.id,
        "email": email,
        "email_key": email_key,
        **{choice: choices[choice] for choice in _CHOICES},
        "verify_token_hash": digest,
        "verify_expires_at": now + _verify_lifetime(),
        "created_at": now,
    }
    message = _verify_link_message(
        letter,
        email=email,
        name=str(values["name"]),
        raw=raw,
        expires_at=values["verify_expires_at"],
        repeat=False,
    )
    return values, message


def _insert_pending(
    unit: driver.Unit, values: dict[str, object], message: dict[str, object]
) -> SignOutcome | None:
    """Store a new pending signature and queue its link, or queue the repeat signing for the
    worker; None if the letter takes no signatures.

    On PostgreSQL one statement does it all (WITH signed AS (INSERT …), queued AS (INSERT INTO
    message …), repeated AS (INSERT … WHERE NOT EXISTS (SELECT FROM signed))), one round trip
    that is atomic by itself; on SQLite, two statements in the unit's transaction. Either way a
    new and a repeat signing each write two rows.
    """
    queued = mail.bound_values(message)
    if unit.dialect.name == "postgresql":
        repeat = mail.bound_values(_repeat_job(values), prefix="repeat_")
        signed, repeated = unit.execute(_SIGN_OR_REPEAT, values | queued | repeat).fetchone()
        if signed is not None:
            return SignOutcome.PENDING
        return SignOutcome.REPEAT if repeated else None
    row = unit.execute(_SIGN, values).fetchone()
    if row is not None:
        unit.execute(mail.QUEUE, queued | {"signature_id": row[0]})
        return SignOutcome.PENDING
    repeat = mail.bound_values(_repeat_job(values), prefix="repeat_")
    cursor = unit.execute(
        _REPEAT, repeat | {"letter_id": values["letter_id"], "created_at": values["created_at"]}
    )
    return SignOutcome.REPEAT if cursor.rowcount else None


REPEAT_KIND = mail.REPEAT_SIGNING


def _repeat_job(values: dict[str, object]) -> dict[str, object]:
    """The outbox row that hands a repeat signing to the worker: what the form said."""
    submitted = {name: values[name] for name in ("letter_id", "email", "email_key", *_CHOICES)}
    return mail.message_values(
        REPEAT_KIND, str(values["email"]), "", submitted_at=values["created_at"], **submitted
    )


def apply_repeats(session: Session, limit: int = 500) -> int:
    """Handle the repeat signings sign() queued, oldest first; returns how many.

    Each is what a repeat signing did before it was queued (see _signed_again), at the time of
    the signing. One that fails is parked with its error, for an operator to see, and the rest
    go on. Run it in a writing transaction (db.transaction()).
    """
    query = select(Message).where(mail.pending_task(REPEAT_KIND)).order_by(Message.id).limit(limit)
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    jobs = list(session.scalars(query))
    for job in jobs:
        try:
            with session.begin_nested():
                _apply_repeat(session, mail.decode_context(job.context))
        except Exception as error:
            job.state = MessageState.FAILED
            job.last_error = f"cannot apply the repeat signing: {type(error).__name__}: {error}"
            continue
        session.delete(job)
    session.flush()
    return len(jobs)


def _apply_repeat(session: Session, submitted: dict[str, object]) -> SignOutcome | None:
    letter = session.get_one(Letter, submitted["letter_id"])
    now = submitted["submitted_at"]
    assert isinstance(now, datetime)
    existing = _find(session, letter.id, str(submitted["email_key"]))
    if existing is not None:
        return _signed_again(session, letter, existing, submitted, now)
    # Withdrawn since (or the signing it met was undone): this is a signing afresh.
    email, key = str(submitted["email"]), str(submitted["email_key"])
    values, message = _pending(letter, email, key, submitted, now)
    with driver.within(session) as unit:
        return _insert_pending(unit, values, message)  # None: the letter has closed since


# What a signer chose or wrote; a repeat signing before confirmation replaces them all.
_CHOICES = (
    "name",
    "postcode",
    "organisation",
    "comment",
    "show_name",
    "share_email",
    "wants_updates",
)
_SIGN_COLUMNS = (
    "letter_id",
    "email",
    "email_key",
    *_CHOICES,
    "verify_token_hash",
    "verify_expires_at",
    "created_at",
)


def _open_letter(letter_id: ColumnElement[int], now: ColumnElement) -> ColumnElement[bool]:
    """The letter row, if it takes signatures at `now` (an INSERT … SELECT FROM it, or an
    EXISTS correlated with the signature's letter_id)."""
    letters = Letter.__table__
    return and_(
        letters.c.id == letter_id,
        letters.c.status == LetterStatus.OPEN,
        or_(letters.c.closes_at.is_(None), letters.c.closes_at > now),
    )


@cache
def _sign_statement(dialect: str) -> Insert:
    """INSERT … SELECT … FROM letter WHERE it is open … ON CONFLICT DO NOTHING RETURNING id.

    Built once per dialect: constructing it per request cost more than executing it.
    """
    table = Signature.__table__
    now = bindparam("created_at", type_=table.c.created_at.type)
    row = select(
        *(bindparam(name, type_=table.c[name].type) for name in _SIGN_COLUMNS),
        literal(SignatureState.PENDING, table.c.state.type),
    ).where(_open_letter(bindparam("letter_id"), now))
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(table)
        .from_select([*_SIGN_COLUMNS, "state"], row)
        .on_conflict_do_nothing(index_elements=["letter_id", "email_key"])
        .returning(table.c.id)
    )


def _repeat_statement(unless_signed: object = None) -> Insert:
    """INSERT INTO message … SELECT the repeat job FROM letter WHERE it is open [… AND NOT
    EXISTS (the signature CTE's row)]."""
    columns = {name: mail.bound(name, prefix="repeat_") for name in mail.MESSAGE_COLUMNS}
    conditions = [_open_letter(bindparam("letter_id"), bindparam("created_at"))]
    if unless_signed is not None:
        conditions.append(~exists(select(unless_signed.c.id)))
    return mail.insert_selected(*conditions, **columns, signature_id=null())


@cache
def _sign_or_repeat_statement() -> Select:
    """PostgreSQL: a new signature and its mail, or else the repeat job, in one statement;
    returns (the new signature's id or NULL, how many repeat jobs were queued)."""
    signed = _sign_statement("postgresql").cte("signed")
    message = {name: mail.bound(name) for name in mail.MESSAGE_COLUMNS}
    queued = mail.insert_selected(**message, signature_id=signed.c.id).cte("queued")
    repeated = (
        _repeat_statement(unless_signed=signed).returning(Message.__table__.c.id).cte("repeated")
    )
    return select(
        select(signed.c.id).scalar_subquery(),
        select(func.count()).select_from(repeated).scalar_subquery(),
    ).add_cte(queued)


_SIGN = driver.Prepared(_sign_statement)
_REPEAT = driver.Prepared(lambda _dialect: _repeat_statement())
_SIGN_OR_REPEAT = driver.Prepared(lambda _dialect: _sign_or_repeat_statement())


def _queue_verify_link(
    session: Session,
    letter: SigningTerms,
    *,
    signature_id: int,
    email: str,
    name: str,
    raw: str,
    expires_at: datetime,
    repeat: bool,
) -> None:
    session.connection().execute(
        mail.INSERT_MESSAGE,
        _verify_link_message(
            letter, email=email, name=name, raw=raw, expires_at=expires_at, repeat=repeat
        )
        | {"signature_id": signature_id},
    )


def _verify_link_message(
    letter: SigningTerms, *, email: str, name: str, raw: str, expires_at: datetime, repeat: bool
) -> dict[str, object]:
    return mail.message_values(
        "verify",
        email,
        gettext_kept("Please confirm your signature: %(title)s", title=letter.title),
        title=letter.title,
        name=name,
        verify_url=links.verify(raw),
        expires_at=expires_at,
        repeat=repeat,
    )


def _find(session: Session, letter_id: int, email_key: str) -> Signature | None:
    """The signature, locked until the transaction ends (on PostgreSQL: SQLite's writers take
    turns). The repeat signing decides from its state and writes it back: unlocked, a confirmation
    or a withdrawal committed in between would be written over (a confirmed signature given
    choices nobody confirmed) or written under (mail queued for a signature being deleted)."""
    query = select(Signature).where(
        Signature.letter_id == letter_id, Signature.email_key == email_key
    )
    return session.scalar(query.with_for_update())


def _verify_lifetime() -> timedelta:
    return timedelta(hours=current_app.config["VERIFY_TOKEN_HOURS"])


def _signed_again(
    session: Session,
    letter: SigningTerms,
    signature: Signature,
    values: dict[str, object],
    now: datetime,
) -> SignOutcome:
    """Explain by email, never on the page, so the form cannot reveal who has signed.

    Before confirmation the newest submission wins, with a fresh link that replaces the earlier
    one: whoever confirms confirms what the form last said, which the confirmation page shows
    in full, never details that somebody else typed with this address first. The details
    change only together with the link, so a link confirms exactly what its page showed.
    """
    pending = signature.state is SignatureState.PENDING
    kind = "verify" if pending else "already_signed"
    # Within the interval: the original link plus one fresh one, or one "already signed" notice.
    # Past it the submission is dropped: applied under a link already mailed, it would let
    # anyone who knows the address change what that link confirms while its page is open.
    allowed = 2 if pending else 1
    if mail.count_recent(session, signature.id, kind, now - DUPLICATE_NOTICE_INTERVAL) >= allowed:
        return SignOutcome.THROTTLED
    raw, digest = tokens.new_token()
    if pending:
        for choice in _CHOICES:
            setattr(signature, choice, values[choice])
        signature.verify_token_hash = digest
        signature.verify_expires_at = now + _verify_lifetime()
        _queue_verify_link(
            session,
            letter,
            signature_id=signature.id,
            email=signature.email,
            name=signature.name,
            raw=raw,
            expires_at=signature.verify_expires_at,
            repeat=True,
        )
        return SignOutcome.RESENT
    signature.manage_token_hash = digest
    mail.queue(
        session,
        "already_signed",
        signature.email,
        _("You have already signed: %(title)s", title=letter.title),
        signature_id=signature.id,
        title=letter.title,
        name=signature.name,
        manage_url=links.manage(raw),
    )
    return SignOutcome.ALREADY_VERIFIED


def find_by_verify_token(session: Session, raw: str) -> Signature:
    """The signature a confirmation link belongs to, or InvalidToken."""
    signature = None
    if tokens.looks_like_token(raw):
        query = select(Signature).where(Signature.verify_token_hash == tokens.digest(raw))
        signature = session.scalar(query)
    if signature is None:
        raise InvalidToken()
    return signature


def check_verifiable(signature: Signature, letter: Letter, now: datetime) -> None:
    """Raise if a pending signature can no longer be confirmed."""
    if signature.state is SignatureState.PENDING:
        if signature.verify_expires_at <= now:
            raise TokenExpired()
        if not letter.accepts_signatures(now):
            raise LetterClosed()


@dataclass(frozen=True)
class VerifyResult:
    letter: Letter | LetterRef
    newly_verified: bool
    number: int | None = None  # the count the moment this signature joined it


def verify(session: Session, raw: str, now: datetime | None = None) -> VerifyResult:
    """Confirm a signature once; a second press finds it already confirmed and changes nothing.

    One conditional UPDATE does the work (confirm()); anything else falls back to reading the
    signature to say what is wrong. Called with no transaction in progress, the confirmation is
    committed at once, in a driver unit of its own (petition.driver).
    """
    now = now or utcnow()
    confirmed = confirm(session, raw, now)
    if confirmed is not None:
        return confirmed
    signature = find_by_verify_token(session, raw)
    letter = session.get_one(Letter, signature.letter_id)
    check_verifiable(signature, letter, now)
    # Pending and confirmable, yet not changed: only a concurrent press confirming it first.
    return VerifyResult(letter, newly_verified=False)


def confirm(db: Session | Engine, raw: str, now: datetime | None = None) -> VerifyResult | None:
    """Confirm, count and queue the thank-you mail if the token is pending, unexpired and its
    letter still open; None, having read and changed nothing, otherwise.

    One conditional UPDATE decides, so two presses at once confirm, and count, only once.
    """
    if not tokens.looks_like_token(raw):
        return None
    manage_raw, manage_digest = tokens.new_token()
    parameters = {"token": tokens.digest(raw), "now": now or utcnow(), "manage": manage_digest}
    with driver.unit_for(db) as unit:
        confirmed = _confirm(unit, parameters, manage_raw)
    if confirmed is None:
        return None
    _id, letter_id, _name, _email, number, slug, title = confirmed
    return VerifyResult(LetterRef(letter_id, slug, title), newly_verified=True, number=number)


def _confirm(unit: driver.Unit, parameters: dict[str, object], manage_raw: str) -> tuple | None:
    """Confirm, count and queue the thank-you mail; the confirmed row, or None if none was.

    On PostgreSQL one statement does all three; on SQLite, three in the unit's transaction.
    """
    if unit.dialect.name == "postgresql":
        return unit.execute(_CONFIRM, parameters | _thank_you_parts(manage_raw)).fetchone()
    confirmed = unit.execute(_VERIFY, parameters).fetchone()
    if confirmed is None:
        return None
    signature_id, letter_id, name, email, _number, slug, title = confirmed
    now = parameters["now"]
    unit.execute(_COUNT_ONE, {"letter_id": letter_id, "created_at": now})
    message = mail.message_values(
        "confirmed",
        email,
        _thank_you_subject(title),
        title=title,
        name=name,
        letter_url=links.letter(slug),
        manage_url=links.manage(manage_raw),
    )
    unit.execute(mail.QUEUE, mail.bound_values(message) | {"signature_id": signature_id})
    return confirmed


def _thank_you_subject(title: str) -> str:
    return gettext_kept("Thank you for signing: %(title)s", title=title)


# Stands for the letter's title in the translated subject; no title contains it.
_TITLE = "\ue000"


def _thank_you_parts(manage_raw: str) -> dict[str, str]:
    """What _confirm_statement() builds the thank-you mail from, around the row's own values.

    The subject is the translation split where the title goes; a translation that leaves the
    title out gets it at the end. Titles are single lines, so only the parts need folding.
    """
    subject = " ".join(_thank_you_subject(_TITLE).split())
    before, _title, after = subject.partition(_TITLE)
    return {
        "subject_before": before,
        "subject_after": after,
        "letter_url_before": links.letter(""),
        "manage_url": links.manage(manage_raw),
    }


@cache
def _confirm_statement() -> Select:
    """PostgreSQL: confirm, count and queue the thank-you mail in one statement.

    WITH confirmed AS (the UPDATE of _verify_statement()), counted AS (INSERT INTO count_event
    … FROM confirmed), thanked AS (INSERT INTO message … FROM confirmed) SELECT … FROM
    confirmed. The mail's context is the JSON that verify() would queue for it in Python:
    tests/test_signing.py reads the same email on both databases.
    """
    confirmed = _verify_statement().cte("confirmed")
    events = CountEvent.__table__
    now = bindparam("now", type_=events.c.created_at.type)
    counted = insert(events).from_select(
        ["letter_id", "delta", "created_at"],
        select(confirmed.c.letter_id, literal(1, events.c.delta.type), now),
    )

    def text(name: str) -> BindParameter[str]:
        return bindparam(name, type_=String())

    context = func.json_build_object(
        literal("title", String()),
        confirmed.c.title,
        literal("name", String()),
        confirmed.c.name,
        literal("letter_url", String()),
        text("letter_url_before") + confirmed.c.slug,
        literal("manage_url", String()),
        text("manage_url"),
    )
    thanked = mail.insert_selected(
        kind=literal("confirmed", String()),
        to_address=confirmed.c.email,
        subject=func.substr(
            text("subject_before") + confirmed.c.title + text("subject_after"), 1, 250
        ),
        body_text=literal("", Text()),
        context=cast(context, Text()),
        next_attempt_at=now,
        created_at=now,
        signature_id=confirmed.c.id,
    )
    return select(*confirmed.c).add_cte(counted.cte("counted"), thanked.cte("thanked"))


@cache
def _verify_statement() -> Update:
    """UPDATE … WHERE the token is pending, unexpired, on an open letter … RETURNING.

    Besides the signer's details it returns the letter's count including this signature, read
    in the statement's own snapshot (stored count + events not yet folded + 1), and the letter's
    slug and title for the page and the mail: no other read is needed.
    """
    table = Signature.__table__
    letters = Letter.__table__
    events = CountEvent.__table__
    now = bindparam("now", type_=table.c.verified_at.type)
    open_letter = select(letters.c.id).where(_open_letter(table.c.letter_id, now)).exists()

    # The signature's letter, named in full: SQLAlchemy writes SQLite's RETURNING clause without
    # table names, subqueries included, and an unqualified letter_id in the count_event subquery
    # is count_event's own (every letter's events summed into this signer's number).
    signature_letter = literal_column(f"{table.name}.{table.c.letter_id.name}")

    def of_letter(column):
        return select(column).where(letters.c.id == signature_letter).scalar_subquery()

    unfolded = select(func.coalesce(func.sum(events.c.delta), 0)).where(
        events.c.letter_id == signature_letter
    )
    return (
        update(table)
        .where(
            table.c.verify_token_hash == bindparam("token"),
            table.c.state == SignatureState.PENDING,
            table.c.verify_expires_at > now,
            open_letter,
        )
        .values(
            state=SignatureState.VERIFIED, verified_at=now, manage_token_hash=bindparam("manage")
        )
        .returning(
            table.c.id,
            table.c.letter_id,
            table.c.name,
            table.c.email,
            (of_letter(letters.c.signature_count) + unfolded.scalar_subquery() + 1).label("number"),
            of_letter(letters.c.slug).label("slug"),
            of_letter(letters.c.title).label("title"),
        )
    )


def _count_one_statement(_dialect: str) -> Insert:
    events = CountEvent.__table__
    return insert(events).values(
        letter_id=bindparam("letter_id", type_=events.c.letter_id.type),
        delta=literal(1, events.c.delta.type),
        created_at=bindparam("created_at", type_=events.c.created_at.type),
    )


_VERIFY = driver.Prepared(lambda _dialect: _verify_statement())
_CONFIRM = driver.Prepared(lambda _dialect: _confirm_statement())
_COUNT_ONE = driver.Prepared(_count_one_statement)


def find_by_manage_token(session: Session, raw: str, *, lock: bool = False) -> Signature:
    """The confirmed signature a "manage my signature" link belongs to, or InvalidToken.
    lock: for a change decided from what is read (held until the transaction ends)."""
    signature = None
    if tokens.looks_like_token(raw):
        query = select(Signature).where(Signature.manage_token_hash == tokens.digest(raw))
        signature = session.scalar(query.with_for_update() if lock else query)
    if signature is None:
        raise InvalidToken(
            str(
                _(
                    "This link is not valid any more. If you withdrew your signature, your "
                    "details have been deleted and there is nothing more to do. If you signed "
                    "again since, we emailed you a new link: use the newest email from us."
                )
            )
        )
    return signature


def set_preferences(
    session: Session, raw: str, *, show_name: bool, share_email: bool, wants_updates: bool
) -> None:
    """Change whether the signer is listed, whether the recipient gets their address, and
    whether they hear more: consent given at signing can be taken back at any time."""
    signature = find_by_manage_token(session, raw)
    signature.show_name = show_name
    signature.share_email = share_email
    signature.wants_updates = wants_updates
    session.flush()


def withdraw(session: Session, raw: str) -> Letter:
    """Delete a signature and everything personal about it, and take it off the count.

    Locked before anything is decided: a repeat signing being applied meanwhile (it gives the
    signature a new manage link) finishes first, and this link is then out of date, as its page
    says; one applied afterwards finds no signature and is a signing afresh."""
    signature = find_by_manage_token(session, raw, lock=True)
    letter = session.get_one(Letter, signature.letter_id)
    email, name, was_verified = signature.email, signature.name, signature.state
    mail.discard_for_signatures(session, [signature.id])
    deleted = session.execute(
        delete(Signature)
        .where(Signature.id == signature.id)
        .execution_options(synchronize_session=False)
    ).rowcount
    session.expunge(signature)
    if deleted and was_verified is SignatureState.VERIFIED:
        session.add(CountEvent(letter_id=letter.id, delta=-1))
    if deleted:
        mail.queue(
            session,
            "withdrawn",
            email,
            _("Your signature has been removed: %(title)s", title=letter.title),
            title=letter.title,
            name=name,
            letter_url=links.letter(letter.slug),
        )
    session.flush()
    return letter


def purge_expired(session: Session, now: datetime | None = None) -> int:
    """Delete pending signatures whose confirmation link has expired; returns how many."""
    now = now or utcnow()
    expired = select(Signature.id).where(
        Signature.state == SignatureState.PENDING, Signature.verify_expires_at <= now
    )
    ids = list(session.scalars(expired))
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        mail.discard_for_signatures(session, chunk)
        session.execute(delete(Signature).where(Signature.id.in_(chunk)))
    return len(ids)
