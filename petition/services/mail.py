"""The outbox: queue mail inside the caller's transaction, deliver it later with retries."""

from __future__ import annotations

import json
import logging
import smtplib
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import render_template
from sqlalchemy import (
    Insert,
    bindparam,
    delete,
    func,
    insert,
    literal,
    literal_column,
    select,
    update,
)
from sqlalchemy.orm import Session

from petition.db import begin_write, is_postgres, utcnow
from petition.driver import Prepared
from petition.mailer import Backend, ExchangeTooSlow, Outgoing, PermanentFailure, build
from petition.models import Message, MessageState

log = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(minutes=2)
BACKOFF_FIRST = timedelta(seconds=30)
BATCH_SIZE = 100  # messages claimed, then sent over one SMTP connection
BACKOFF_MAX = timedelta(hours=1)
# While the mail server cannot be reached, each message is tried again at least this often
# and never parked for it: an outage of any length ends with the mail going out within a few
# minutes of the server's return (parked after MAIL_MAX_ATTEMPTS, a message queued in an
# outage of an hour or more stayed unsent, and its signer's pending signature expired).
OUTAGE_RETRY_MAX = timedelta(minutes=5)


def queue(
    session: Session,
    kind: str,
    to_address: str,
    subject: str,
    *,
    signature_id: int | None = None,
    **context: Any,
) -> None:
    """Add a message to the outbox in the caller's transaction.

    The body is templates/email/<kind>.txt with `context`, rendered by the worker when it sends
    (rendering here cost a tenth of a sign request); the context holds only plain values.
    """
    # A plain INSERT on the session's connection: every signature queues one, and the ORM's
    # unit of work cost a tenth of the sign request without adding anything here.
    session.connection().execute(
        INSERT_MESSAGE,
        message_values(kind, to_address, subject, **context) | {"signature_id": signature_id},
    )


def message_values(kind: str, to_address: str, subject: str, **context: Any) -> dict[str, Any]:
    """The columns of a new outbox message, but for its signature_id (see queue())."""
    now = utcnow()
    return {
        "kind": kind,
        "to_address": to_address,
        "subject": " ".join(subject.split())[:250],  # one line: a header must not break
        "body_text": "",
        "context": encode_context(context),
        "next_attempt_at": now,
        "created_at": now,
    }


def insert_selected(*where: Any, **columns: Any) -> Insert:
    """INSERT INTO message … SELECT … [WHERE …]: one pending message per row selected.

    Give an SQL expression for each of MESSAGE_COLUMNS and signature_id, typically columns of a
    CTE that made the signature, so the message is queued by the same statement; bound() gives
    a column whose value comes from message_values(). `where` conditions limit the rows.
    """
    names = [*MESSAGE_COLUMNS, "signature_id"]
    if set(columns) != set(names):
        raise TypeError(f"insert_selected() needs exactly these columns: {', '.join(names)}")
    table = Message.__table__
    row = select(
        *(columns[name] for name in names),
        literal(MessageState.PENDING, table.c.state.type),
        literal(0, table.c.attempts.type),
    ).where(*where)
    return insert(table).from_select([*names, "state", "attempts"], row, include_defaults=False)


def bound(name: str, prefix: str = "message_") -> Any:
    """The bind parameter insert_selected() reads a message_values() column from."""
    return bindparam(f"{prefix}{name}", type_=Message.__table__.c[name].type)


def bound_values(values: dict[str, Any], prefix: str = "message_") -> dict[str, Any]:
    """message_values() as parameters for the columns bound() names."""
    return {f"{prefix}{name}": value for name, value in values.items()}


MESSAGE_COLUMNS = (
    "kind",
    "to_address",
    "subject",
    "body_text",
    "context",
    "next_attempt_at",
    "created_at",
)


INSERT_MESSAGE = insert(Message.__table__)

# Outbox rows that are work for the worker rather than mail to send: a repeat signing
# (signatures.apply_repeats) and news still to be queued for its signers (news.fan_out).
REPEAT_SIGNING = "repeat_signing"
NEWS_FANOUT = "news_fanout"
NOT_MAIL = (REPEAT_SIGNING, NEWS_FANOUT)
# Mail sent to many at once, after everything else that is due: a confirmation link queued
# behind news to a million signers waited hours for it.
NEWS = "news"


def _constant(value: str) -> Any:
    return literal_column(f"'{value}'")


# The outbox's queues, written as their partial indexes' conditions (models/message.py):
# constants, not bound values, or the databases would not use the indexes.
_PENDING = Message.state == _constant(MessageState.PENDING.value)
PARKED = Message.state == _constant(MessageState.FAILED.value)
URGENT_MAIL = _PENDING & Message.kind.not_in([_constant(kind) for kind in (NEWS, *NOT_MAIL)])
BULK_MAIL = _PENDING & (Message.kind == _constant(NEWS))


def pending_task(kind: str) -> Any:
    """The condition for the worker's waiting tasks of one of the NOT_MAIL kinds."""
    return _PENDING & (Message.kind == _constant(kind))


def _queue_statement(_dialect: str) -> Insert:
    table = Message.__table__
    return insert(table).values(
        {name: bound(name) for name in MESSAGE_COLUMNS}
        | {
            "signature_id": bindparam("signature_id", type_=table.c.signature_id.type),
            "state": literal(MessageState.PENDING, table.c.state.type),
            "attempts": literal(0, table.c.attempts.type),
        }
    )


# One message on a driver unit: bound_values(message_values(...)) plus "signature_id".
QUEUE = Prepared(_queue_statement)
_DATETIME = "$datetime"


def encode_context(context: dict[str, Any]) -> str:
    """A message's context as stored: JSON, with timestamps kept as such."""

    def plain(value: object) -> object:
        if isinstance(value, datetime):
            return {_DATETIME: value.isoformat()}
        raise TypeError(f"mail context values must be plain, not {type(value).__name__}")

    return json.dumps(context, default=plain, separators=(",", ":"))


def decode_context(text: str | None) -> dict[str, Any]:
    """A message's context as message_values() was given it (timestamps come back as such)."""
    return _decode(text or "{}")


def _decode(text: str) -> dict[str, Any]:
    def revive(item: dict[str, Any]) -> object:
        return datetime.fromisoformat(item[_DATETIME]) if _DATETIME in item else item

    return json.loads(text, object_hook=revive)


def render_body(kind: str, context: str | None) -> str:
    """The text of a queued message (needs the app: templates and translations)."""
    return render_template(f"email/{kind}.txt", **_decode(context or "{}"))


def count_recent(session: Session, signature_id: int, kind: str, since: datetime) -> int:
    """How many messages of this kind went to this signer after `since` (limits mail-bombing)."""
    query = select(func.count()).where(
        Message.signature_id == signature_id, Message.kind == kind, Message.created_at >= since
    )
    return session.scalar(query) or 0


def discard_for_signatures(session: Session, signature_ids: list[int]) -> None:
    """Drop unsent mail to signers whose signature is being deleted: it holds their address."""
    session.execute(
        delete(Message).where(
            Message.signature_id.in_(signature_ids), Message.state != MessageState.SENT
        )
    )


@dataclass
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    parked: int = 0
    errors: list[str] = field(default_factory=list)
    # Why sends failed, in words a log may hold (no address), and how many times each.
    problems: Counter[str] = field(default_factory=Counter)

    @property
    def attempted(self) -> int:
        return self.sent + self.retrying + self.parked

    def add(self, other: DeliveryReport) -> None:
        """Count another batch's report in this one (a worker's pass)."""
        self.sent += other.sent
        self.retrying += other.retrying
        self.parked += other.parked
        self.errors += other.errors
        self.problems += other.problems


def loggable_reason(error: BaseException) -> str:
    """A failed send in a log's words: the error's kind, the server's code or the network's
    words, never the text of an SMTP reply (which may quote the recipient's address)."""
    if isinstance(error, smtplib.SMTPResponseException):
        return f"{type(error).__name__} {error.smtp_code}"
    if isinstance(error, ExchangeTooSlow):  # our own words
        return f"{type(error).__name__}: {error}"
    if isinstance(error, OSError) and not isinstance(error, smtplib.SMTPException):
        return f"{type(error).__name__}: {error}"
    return type(error).__name__


def backoff(attempts: int, first: timedelta = BACKOFF_FIRST) -> timedelta:
    """30 s, 1 min, 2 min, ... capped at an hour."""
    return min(first * (2 ** max(attempts - 1, 0)), BACKOFF_MAX)


def deliver_pending(
    session_factory: Callable[[], Session],
    backend: Backend,
    sender: str,
    *,
    max_attempts: int,
    batch_size: int = BATCH_SIZE,
    lease: timedelta = DEFAULT_LEASE,
    first_retry: timedelta = BACKOFF_FIRST,
    stop: threading.Event | None = None,
) -> DeliveryReport:
    """Send one batch of due messages. Safe to run in several workers at once.

    Messages are claimed with a short lease in their own transaction and sent outside it, so no
    lock is held while talking to the mail server. A crash between sending and recording leaves
    the lease to expire and the message is sent again: at most one duplicate per crash. A batch
    still sending when half its lease has gone (a slow mail server) hands the rest back rather
    than send what another worker may by then have taken over. Whatever a batch records but
    "sent" applies only while the message is still under its own lease (see _Lease): a batch that
    outlived it neither parks nor hands back what another worker now holds. Once `stop` is set
    (the worker is asked to end) the message in hand, if any, is finished and the rest handed
    back.

    A mail server that cannot be reached says nothing about the messages: they are never parked
    for it (see OUTAGE_RETRY_MAX). When the connection breaks mid-batch, the message being sent
    counts an attempt (it may be the cause) and the rest go back to the queue untried.
    """
    report = DeliveryReport()
    held = _claim(session_factory, batch_size, lease)
    claimed = _render(held, session_factory, report)
    if not claimed:
        return report
    hand_back_after = time.monotonic() + lease.total_seconds() / 2
    if _stopping(stop):  # asked to end while claiming: nothing is in hand yet
        _release(session_factory, held, claimed)
        return report
    try:
        connection = backend.__enter__()
    except OSError as error:  # smtplib's errors too
        report.problems[f"cannot connect to the mail server: {loggable_reason(error)}"] += len(
            claimed
        )
        for outgoing in claimed:
            _record_failure(
                session_factory, held, outgoing.id, f"cannot connect: {error}", report, first_retry
            )
        return report
    try:
        for position, outgoing in enumerate(claimed):
            # One message at least however slow the server, none once asked to stop.
            late = position and time.monotonic() > hand_back_after
            if late or _stopping(stop):
                _release(session_factory, held, claimed[position:])
                break
            try:
                connection.send(build(outgoing, sender))
            except (PermanentFailure, OSError) as error:  # smtplib's errors are OSErrors
                failed = _failed_send(error, max_attempts)
                report.problems[failed.problem] += 1
                _record_failure(
                    session_factory,
                    held,
                    outgoing.id,
                    str(error),
                    report,
                    first_retry,
                    park_after=failed.park_after,
                )
                if failed.stop_batch:
                    _release(session_factory, held, claimed[position + 1 :])
                    break
            else:
                _record_sent(session_factory, outgoing.id)
                report.sent += 1
    finally:
        backend.__exit__(None, None, None)
    return report


def _stopping(stop: threading.Event | None) -> bool:
    return stop is not None and stop.is_set()


@dataclass(frozen=True)
class FailedSend:
    """What a failed send means for the message and the rest of the batch."""

    problem: str  # in a log's words
    park_after: int | None  # attempts after which the message is parked; None: not its fault
    stop_batch: bool  # the connection is lost, or every message would fail the same way


def _failed_send(error: Exception, max_attempts: int) -> FailedSend:
    if isinstance(error, PermanentFailure):
        return FailedSend("refused by the mail server for good", 1, False)
    if isinstance(error, smtplib.SMTPSenderRefused):  # our address or login, not the message
        refused = f"the mail server refuses the sender: {loggable_reason(error)}"
        return FailedSend(refused, None, True)
    # 421: the server is closing the connection (and smtplib closes its end).
    if isinstance(error, smtplib.SMTPResponseException) and error.smtp_code != 421:
        return FailedSend(loggable_reason(error), max_attempts, False)  # refused for now
    return FailedSend(f"connection lost: {loggable_reason(error)}", max_attempts, True)


@dataclass(frozen=True)
class _Claimed:
    id: int
    kind: str
    to_address: str
    subject: str
    body_text: str
    context: str | None


@dataclass(frozen=True)
class _Lease:
    """The messages a batch claimed, and until when: the time it wrote into their locked_until,
    which also says whose they are. A worker taking one over after the lease ran out writes a
    later time, so a batch that outlived its lease can tell the message is no longer its own."""

    messages: list[_Claimed]
    until: datetime


def _render(
    held: _Lease, session_factory: Callable[[], Session], report: DeliveryReport
) -> list[Outgoing]:
    """Bodies for the claimed messages; one that cannot be rendered is parked, not retried."""
    ready = []
    for message in held.messages:
        try:
            body = message.body_text or render_body(message.kind, message.context)
        except Exception as error:  # a broken template or context: a person must look
            log.exception("mail %s cannot be rendered", message.id)
            reason = f"cannot render the {message.kind} email: {type(error).__name__}: {error}"
            report.problems[f"cannot render the {message.kind} email"] += 1
            _record_failure(
                session_factory, held, message.id, reason, report, BACKOFF_FIRST, park_after=1
            )
            continue
        ready.append(Outgoing(message.id, message.to_address, message.subject, body))
    return ready


def _claim(session_factory: Callable[[], Session], batch_size: int, lease: timedelta) -> _Lease:
    now = utcnow()
    until = now + lease
    with session_factory() as session, session.begin():
        begin_write(session)
        messages: list[Message] = []
        for queue in (URGENT_MAIL, BULK_MAIL):  # news only where nothing else fills the batch
            if len(messages) == batch_size:
                break
            query = (
                select(Message)
                .where(queue, Message.next_attempt_at <= now)
                .where((Message.locked_until.is_(None)) | (Message.locked_until < now))
                .order_by(Message.next_attempt_at, Message.id)
                .limit(batch_size - len(messages))
            )
            if is_postgres(session):
                query = query.with_for_update(skip_locked=True)
            messages.extend(session.scalars(query))
        for message in messages:
            message.locked_until = until
        claimed = [
            _Claimed(m.id, m.kind, m.to_address, m.subject, m.body_text, m.context)
            for m in messages
        ]
        return _Lease(claimed, until)


def _record_sent(session_factory: Callable[[], Session], message_id: int) -> None:
    with session_factory() as session, session.begin():
        begin_write(session)
        session.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(
                state=MessageState.SENT,
                sent_at=utcnow(),
                attempts=Message.attempts + 1,
                locked_until=None,
                last_error=None,
                to_address="",
                body_text="",
                context=None,
            )
        )


def _record_failure(
    session_factory: Callable[[], Session],
    held: _Lease,
    message_id: int,
    reason: str,
    report: DeliveryReport,
    first_retry: timedelta,
    *,
    park_after: int | None = None,
) -> None:
    """Count a failed attempt: park the message once it has had `park_after` of them, else try
    again later. park_after=None (the server unreachable, or refusing our sender): not counted
    as an attempt, so an outage of any length parks nothing, and tried again within
    OUTAGE_RETRY_MAX."""
    with session_factory() as session, session.begin():
        begin_write(session)
        query = select(Message).where(
            Message.id == message_id,
            Message.state == MessageState.PENDING,
            Message.locked_until == held.until,
        )
        if is_postgres(session):  # waits for a worker taking it over, then sees its lease
            query = query.with_for_update()
        message = session.scalars(query).one_or_none()
        if message is None:  # withdrawn meanwhile, or another worker's now (even sent)
            log.info(
                "mail %s: no longer this batch's to record (withdrawn, or taken over)", message_id
            )
            return
        counted = park_after is not None  # an attempt that says something about this message
        if counted:
            message.attempts += 1
        message.last_error = reason[:2000]
        message.locked_until = None
        if counted and message.attempts >= park_after:
            message.state = MessageState.FAILED
            report.parked += 1
            log.warning("mail %s parked after %s attempts", message_id, message.attempts)
        elif counted:
            message.next_attempt_at = utcnow() + backoff(message.attempts, first_retry)
            report.retrying += 1
        else:  # as if it were one more attempt, but within minutes
            wait = min(backoff(message.attempts + 1, first_retry), OUTAGE_RETRY_MAX)
            message.next_attempt_at = utcnow() + wait
            report.retrying += 1
        report.errors.append(reason)


def _release(session_factory: Callable[[], Session], held: _Lease, unsent: list[Outgoing]) -> None:
    """Hand claimed messages back untried: due as they were, for whichever worker comes next.
    Those another worker has taken over since are left under its lease."""
    message_ids = [message.id for message in unsent]
    if not message_ids:
        return
    with session_factory() as session, session.begin():
        begin_write(session)
        session.execute(
            update(Message)
            .where(Message.id.in_(message_ids), Message.locked_until == held.until)
            .values(locked_until=None)
        )


def retry_failed(session: Session) -> int:
    """Put parked messages back in the queue (after an operator fixed the cause)."""
    result = session.execute(
        update(Message)
        .where(PARKED)
        .values(state=MessageState.PENDING, attempts=0, next_attempt_at=utcnow())
    )
    return result.rowcount


def status(session: Session) -> dict[str, int]:
    """How many messages are in each state (mail only: not the worker's other work)."""
    rows = session.execute(
        select(Message.state, func.count())
        .where(Message.kind.not_in(NOT_MAIL))
        .group_by(Message.state)
    )
    counts = {state.value: 0 for state in MessageState}
    counts.update({state.value: count for state, count in rows})
    return counts


def work_in_hand(session: Session) -> dict[str, int]:
    """How many of the worker's other tasks (NOT_MAIL kinds) wait, by kind; none left out."""
    return {
        kind: session.scalar(select(func.count()).where(pending_task(kind))) or 0
        for kind in NOT_MAIL
    }


@dataclass(frozen=True)
class Retrying:
    """Queued messages that have failed at least once: a mail server that is down or refusing."""

    count: int
    next_attempt_at: datetime | None
    errors: list[tuple[str, int]]  # the commonest last errors, with how many messages have each


def retrying(session: Session, kinds_of_error: int = 5) -> Retrying:
    failing = (Message.state == MessageState.PENDING) & Message.last_error.is_not(None)
    count, next_attempt_at = session.execute(
        select(func.count(), func.min(Message.next_attempt_at)).where(failing)
    ).one()
    errors = session.execute(
        select(Message.last_error, func.count())
        .where(failing)
        .group_by(Message.last_error)
        .order_by(func.count().desc())
        .limit(kinds_of_error)
    )
    return Retrying(count, next_attempt_at, [(error or "", n) for error, n in errors])


def purge_parked(session: Session, older_than: datetime) -> int:
    """Delete parked messages queued before `older_than`: each holds an address, a name and
    often a link, and nobody is going to send it now. Returns how many."""
    result = session.execute(delete(Message).where(PARKED, Message.created_at < older_than))
    return result.rowcount


def failed(session: Session, limit: int = 50) -> list[Message]:
    """Parked messages with their last error, for operators."""
    query = select(Message).where(PARKED).order_by(Message.id)
    return list(session.scalars(query.limit(limit)))
