"""The outbox: nothing is lost when the mail server is down, and nothing lingers once sent."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select, update

from petition import db
from petition.cli import cli
from petition.db import get_session, transaction, utcnow
from petition.mailer import SMTPBackend, backend_from_config
from petition.models import CountEvent, Message, MessageState
from petition.services import mail
from petition.worker import run_worker
from tests.conftest import (
    Mailbox,
    api_count,
    free_port,
    fresh_session,
    sign_and_confirm,
    sign_data,
    throwaway_certificate,
)


def _make_due() -> None:
    with transaction() as session:
        session.execute(update(Message).values(next_attempt_at=utcnow() - timedelta(seconds=1)))


def test_mail_waits_in_the_outbox_while_smtp_is_down_then_arrives_once(
    app, client, make_letter, mailbox, caplog
):
    letter = make_letter()
    working_port = app.config["SMTP_PORT"]
    app.config["SMTP_PORT"] = free_port()  # nothing listens there
    for i in range(3):
        client.post(f"/letters/{letter.slug}/sign", data=sign_data(email=f"p{i}@example.org"))
    report = run_worker(app, threading.Event(), once=True)
    assert (report.sent, report.retrying) == (0, 3)
    messages = fresh_session().scalars(select(Message)).all()
    assert {m.state for m in messages} == {MessageState.PENDING}
    # Not an attempt that says anything about the messages: none counts towards parking.
    assert all(m.attempts == 0 and "cannot connect" in m.last_error for m in messages)
    assert all(m.next_attempt_at > utcnow() for m in messages)  # backing off
    # Operators hear of it from the worker's log, and `mail status` says why.
    [logged] = [r.getMessage() for r in caplog.records if r.name == "petition.worker"]
    assert logged == (
        "mail not sent: 3 × cannot connect to the mail server: ConnectionRefusedError: "
        "[Errno 111] Connection refused (sent 0, will retry 3, parked 0)"
    )
    status = app.test_cli_runner().invoke(cli, ["mail", "status"]).output.splitlines()
    assert status[0] == "queued: 3  sent: 0  parked: 0"
    assert status[1].startswith("retrying: 3 queued failed at least once; next try 20")
    assert status[2] == "  3 × cannot connect: [Errno 111] Connection refused"

    app.config["SMTP_PORT"] = working_port
    mailbox.deliver()
    assert mailbox.messages == []  # not due yet
    _make_due()
    mailbox.deliver()
    mailbox.deliver()
    assert sorted(m["To"] for m in mailbox.messages) == [f"p{i}@example.org" for i in range(3)]


def test_a_message_that_keeps_failing_is_parked_with_its_error(app, client, make_letter, mailbox):
    app.config["MAIL_MAX_ATTEMPTS"] = 2
    mailbox.refusal = "451 4.3.0 Try again later"  # the server takes the connection, not the mail
    letter = make_letter()
    client.post(f"/letters/{letter.slug}/sign", data=sign_data())
    for _ in range(2):
        _make_due()
        run_worker(app, threading.Event(), once=True)
    [message] = fresh_session().scalars(select(Message)).all()
    fresh_session().refresh(message)
    assert message.state is MessageState.FAILED
    assert "451" in message.last_error and "Try again later" in message.last_error
    with transaction() as session:
        assert [m.id for m in mail.failed(session)] == [message.id]
        assert mail.retry_failed(session) == 1


def test_a_mail_server_down_for_hours_parks_nothing_and_all_goes_once_it_is_back(
    app, client, make_letter, mailbox
):
    app.config["MAIL_MAX_ATTEMPTS"] = 2
    working_port = app.config["SMTP_PORT"]
    app.config["SMTP_PORT"] = free_port()  # nothing listens there
    letter = make_letter()
    for i in range(3):
        client.post(f"/letters/{letter.slug}/sign", data=sign_data(email=f"p{i}@example.org"))
    for _ in range(12):  # hours of backing off, passed in a moment
        _make_due()
        run_worker(app, threading.Event(), once=True)
    messages = fresh_session().scalars(select(Message)).all()
    assert {(m.state, m.attempts) for m in messages} == {(MessageState.PENDING, 0)}
    # Tried again within minutes, not the hour the backoff grows to for a refused message.
    assert all(m.next_attempt_at <= utcnow() + mail.OUTAGE_RETRY_MAX for m in messages)

    app.config["SMTP_PORT"] = working_port
    _make_due()
    mailbox.deliver()
    assert sorted(m["To"] for m in mailbox.messages) == [f"p{i}@example.org" for i in range(3)]


def test_a_connection_closed_mid_batch_charges_only_the_message_in_flight(
    app, client, make_letter, mailbox
):
    mailbox.refusal = "421 4.3.2 Closing the connection"
    letter = make_letter()
    for i in range(3):
        client.post(f"/letters/{letter.slug}/sign", data=sign_data(email=f"p{i}@example.org"))
    report = run_worker(app, threading.Event(), once=True)
    assert (report.sent, report.retrying, report.parked) == (0, 1, 0)
    messages = fresh_session().scalars(select(Message).order_by(Message.id)).all()
    assert [m.attempts for m in messages] == [1, 0, 0]  # the others were never tried
    assert "421" in messages[0].last_error
    assert all(m.locked_until is None for m in messages)  # handed back, due again at once
    mailbox.refusal = None
    mailbox.deliver()
    assert sorted(m["To"] for m in mailbox.messages) == ["p1@example.org", "p2@example.org"]


def test_a_mail_server_that_drips_its_answers_is_cut_off_and_tried_again_later(
    app, client, make_letter, mailbox
):
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)

    def drip() -> None:  # a greeting a byte at a time, each within the read timeout
        connections = []
        while not stop.is_set():
            try:
                connection, _address = listener.accept()
            except TimeoutError:
                continue
            connections.append(connection)
            for byte in b"220 slow.example ESMTP " * 10:
                if stop.wait(0.2):
                    break
                with contextlib.suppress(OSError):
                    connection.send(bytes([byte]))
        for connection in connections:
            connection.close()

    server = threading.Thread(target=drip)
    server.start()
    app.config.update(SMTP_PORT=listener.getsockname()[1], SMTP_TIMEOUT=0.5)
    letter = make_letter()
    client.post(f"/letters/{letter.slug}/sign", data=sign_data())
    reports: list[mail.DeliveryReport] = []
    worker = threading.Thread(
        target=lambda: reports.append(run_worker(app, threading.Event(), once=True))
    )
    try:
        worker.start()
        worker.join(timeout=30)  # a worker held by the server would still be waiting for days
        assert not worker.is_alive(), "the worker is still waiting for the greeting"
    finally:
        stop.set()
        server.join()
        listener.close()
    [report] = reports
    assert (report.sent, report.retrying, report.parked) == (0, 1, 0)
    [message] = fresh_session().scalars(select(Message)).all()
    assert (message.state, message.attempts) == (MessageState.PENDING, 0)
    assert message.last_error == "cannot connect: the mail server gave no full answer within 1.5 s"


@contextlib.contextmanager
def _starttls_server(app, tmp_path) -> Iterator[Mailbox]:
    """A mail server that takes mail only over STARTTLS, and the app set to use it."""
    certificate, key = throwaway_certificate(tmp_path, "localhost", "STARTTLS test")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate, key)
    received = Mailbox()
    server = Controller(
        received, hostname="127.0.0.1", port=free_port(), tls_context=context, require_starttls=True
    )
    server.start()
    app.config.update(
        SMTP_HOST="localhost",
        SMTP_PORT=server.port,
        SMTP_STARTTLS=True,
        SMTP_CA_FILE=str(certificate),  # the server's own, self-signed
    )
    try:
        yield received
    finally:
        server.stop()


def test_mail_goes_out_over_starttls(app, client, make_letter, tmp_path):
    with _starttls_server(app, tmp_path) as received:
        letter = make_letter()
        client.post(f"/letters/{letter.slug}/sign", data=sign_data(email="tls@example.org"))
        report = run_worker(app, threading.Event(), once=True)
    assert (report.sent, report.errors) == (1, [])
    assert [m["To"] for m in received.messages] == ["tls@example.org"]


@pytest.mark.parametrize(
    ("trusted", "host", "why"),
    [
        (False, "localhost", "self-signed certificate; trusted: the system's"),
        (True, "127.0.0.1", "IP address mismatch, certificate is not valid for '127.0.0.1'"),
    ],
)
def test_a_mail_server_that_cannot_prove_who_it_is_is_sent_nothing(
    app, client, make_letter, tmp_path, trusted, host, why
):
    """Without the check, anyone on the path to the relay could read every address and every
    confirmation link, and take the relay's password."""
    with _starttls_server(app, tmp_path) as received:
        app.config.update(SMTP_HOST=host)
        if not trusted:
            app.config.update(SMTP_CA_FILE=None)
        letter = make_letter()
        client.post(f"/letters/{letter.slug}/sign", data=sign_data(email="tls@example.org"))
        report = run_worker(app, threading.Event(), once=True)
    assert (report.sent, report.retrying, report.parked) == (0, 1, 0)
    assert received.messages == []
    [message] = fresh_session().scalars(select(Message)).all()
    assert (message.state, message.attempts) == (MessageState.PENDING, 0)
    assert message.last_error.startswith(
        f"cannot connect: the mail server's certificate does not prove it is {host} ("
    )
    assert why in message.last_error
    assert message.last_error.endswith("name its certificate or CA in PETITION_SMTP_CA_FILE")


def test_a_mail_server_that_drips_over_tls_is_cut_off_and_tried_again_later(
    app, client, make_letter, tmp_path
):
    certificate, key = throwaway_certificate(tmp_path, "localhost", "STARTTLS test")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate, key)
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:  # STARTTLS, then an answer to EHLO a byte at a time
        connection, _address = listener.accept()
        with connection:
            said = connection.makefile("rb")
            connection.sendall(b"220 tls.example ESMTP\r\n")
            said.readline()  # EHLO
            connection.sendall(b"250-tls.example\r\n250 STARTTLS\r\n")
            said.readline()  # STARTTLS
            connection.sendall(b"220 Go ahead\r\n")
            with context.wrap_socket(connection, server_side=True) as secure:
                secure.makefile("rb").readline()  # EHLO again, now encrypted
                for byte in b"250 tls.example " * 20:
                    if stop.wait(0.1):
                        break
                    with contextlib.suppress(OSError):
                        secure.send(bytes([byte]))

    server = threading.Thread(target=serve)
    server.start()
    app.config.update(
        SMTP_HOST="localhost",
        SMTP_PORT=listener.getsockname()[1],
        SMTP_STARTTLS=True,
        SMTP_CA_FILE=str(certificate),
        SMTP_TIMEOUT=0.3,
    )
    letter = make_letter()
    client.post(f"/letters/{letter.slug}/sign", data=sign_data())
    try:
        report = run_worker(app, threading.Event(), once=True)
    finally:
        stop.set()
        server.join()
        listener.close()
    assert (report.sent, report.retrying, report.parked) == (0, 1, 0)
    [message] = fresh_session().scalars(select(Message)).all()
    assert (message.state, message.attempts) == (MessageState.PENDING, 1)
    assert message.last_error == "the mail server gave no full answer within 0.9 s"


@pytest.mark.parametrize(
    ("greeting", "said"), [("421 busy, come back later", "421"), ("554 no service here", "554")]
)
def test_a_server_that_will_not_serve_parks_nothing(app, client, make_letter, greeting, said):
    listener = socket.create_server(("127.0.0.1", 0))

    def refuse() -> None:
        connection, _address = listener.accept()
        with connection:
            connection.sendall(f"{greeting}\r\n".encode())
            with contextlib.suppress(OSError):
                while connection.recv(1024):  # then "503 bad sequence" to everything
                    connection.sendall(b"503 bad sequence of commands\r\n")

    server = threading.Thread(target=refuse)
    server.start()
    app.config.update(SMTP_PORT=listener.getsockname()[1], MAIL_MAX_ATTEMPTS=1)
    letter = make_letter()
    client.post(f"/letters/{letter.slug}/sign", data=sign_data())
    try:
        report = run_worker(app, threading.Event(), once=True)
    finally:
        server.join(timeout=10)
        listener.close()
    assert (report.sent, report.retrying, report.parked) == (0, 1, 0)
    [message] = fresh_session().scalars(select(Message)).all()
    assert (message.state, message.attempts) == (MessageState.PENDING, 0)
    assert message.last_error.startswith(f"cannot connect: ({said},")


def test_a_recipient_refused_for_now_is_tried_again_and_one_refused_for_good_is_parked(
    app, client, make_letter, mailbox
):
    letter = make_letter()
    mailbox.recipient_refusal = "450 4.2.0 Greylisted, try again in a minute"
    client.post(f"/letters/{letter.slug}/sign", data=sign_data(email="grey@example.org"))
    report = run_worker(app, threading.Event(), once=True)
    assert (report.retrying, report.parked) == (1, 0)
    mailbox.recipient_refusal = "550 5.1.1 No such mailbox"
    _make_due()
    report = run_worker(app, threading.Event(), once=True)
    assert (report.retrying, report.parked) == (0, 1)


def test_a_server_refusing_our_sender_parks_nothing_and_stops_the_batch(
    app, client, make_letter, mailbox
):
    app.config["MAIL_MAX_ATTEMPTS"] = 1
    mailbox.sender_refusal = "530 5.7.0 Authentication required"  # a setting to fix, not the mail
    letter = make_letter()
    for i in range(3):
        client.post(f"/letters/{letter.slug}/sign", data=sign_data(email=f"p{i}@example.org"))
    report = run_worker(app, threading.Event(), once=True)
    assert (report.sent, report.retrying, report.parked) == (0, 1, 0)  # the rest handed back
    assert list(report.problems) == ["the mail server refuses the sender: SMTPSenderRefused 530"]
    messages = fresh_session().scalars(select(Message)).all()
    assert {(m.state, m.attempts) for m in messages} == {(MessageState.PENDING, 0)}
    mailbox.sender_refusal = None
    _make_due()
    mailbox.deliver()
    assert len(mailbox.messages) == 3


def _hold_messages(mailbox: Mailbox, count: int) -> tuple[list[threading.Event], ...]:
    """The first `count` messages wait at DATA, each until its gate opens, while the server goes
    on serving other connections; reached[i] is set when the i-th gets there."""
    reached = [threading.Event() for _ in range(count)]
    gates = [threading.Event() for _ in range(count)]
    arrivals = iter(range(count))

    async def hold() -> None:
        index = next(arrivals, None)
        if index is not None:
            reached[index].set()
            await asyncio.to_thread(gates[index].wait, 10)

    mailbox.before_data = hold
    return reached, gates


def _deliver_batch(app, lease: timedelta, max_attempts: int = 8) -> mail.DeliveryReport:
    """One batch, as a worker sends it, under a lease of its own."""
    with app.app_context():
        return mail.deliver_pending(
            db.new_session,
            backend_from_config(app.config),
            app.config["MAIL_FROM"],
            max_attempts=max_attempts,
            lease=lease,
        )


def _in_thread(work: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


LAPSING = timedelta(seconds=0.5)


def _lease_runs_out_mid_send(app, client, make_letter, mailbox, holds: int, max_attempts: int = 8):
    """Two messages queued; a first batch under a short lease, held at its first message until
    gates[0] opens, has outlived that lease. Returns its thread, reached and gates."""
    letter = make_letter()
    for i in range(2):
        client.post(f"/letters/{letter.slug}/sign", data=sign_data(email=f"p{i}@example.org"))
    reached, gates = _hold_messages(mailbox, holds)
    first = _in_thread(lambda: _deliver_batch(app, LAPSING, max_attempts=max_attempts))
    assert reached[0].wait(5)
    time.sleep(LAPSING.total_seconds() + 0.1)
    return first, reached, gates


def test_a_batch_that_outlived_its_lease_parks_nothing_another_worker_sent(
    app, client, make_letter, mailbox
):
    first, _reached, gates = _lease_runs_out_mid_send(
        app, client, make_letter, mailbox, holds=1, max_attempts=1
    )
    assert _deliver_batch(app, timedelta(minutes=2)).sent == 2  # took both over
    mailbox.refusal = "451 Try again later"  # what the first batch's message now hears
    gates[0].set()
    first.join(10)

    messages = fresh_session().scalars(select(Message).order_by(Message.id)).all()
    assert [(m.state, m.attempts, m.last_error) for m in messages] == [
        (MessageState.SENT, 1, None),
        (MessageState.SENT, 1, None),
    ]


def test_a_batch_that_outlived_its_lease_hands_back_nothing_another_worker_holds(
    app, client, make_letter, mailbox
):
    first, reached, gates = _lease_runs_out_mid_send(app, client, make_letter, mailbox, holds=2)
    second = _in_thread(lambda: _deliver_batch(app, timedelta(minutes=2)))
    assert reached[1].wait(5)  # the second batch holds both, sending the first
    gates[0].set()  # the first batch sends its message, then hands back the other
    first.join(10)
    assert _deliver_batch(app, timedelta(minutes=2)).attempted == 0  # still the second's
    gates[1].set()
    second.join(10)

    received = Counter(m["To"] for m in mailbox.messages)
    # The message in flight as the lease ran out went twice, as the lease allows; no other.
    assert received == {"p0@example.org": 2, "p1@example.org": 1}


def test_a_worker_asked_to_stop_finishes_the_message_in_hand_and_hands_back_the_rest(
    app, client, make_letter, mailbox
):
    letter = make_letter()
    for i in range(6):
        client.post(f"/letters/{letter.slug}/sign", data=sign_data(email=f"p{i}@example.org"))

    async def slowly() -> None:
        await asyncio.sleep(0.3)

    mailbox.before_data = slowly
    stop = threading.Event()
    worker = _in_thread(lambda: run_worker(app, stop))
    deadline = time.monotonic() + 10
    while not mailbox.messages and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()  # as SIGTERM does
    worker.join(10)
    assert not worker.is_alive()

    sent = len(mailbox.messages)
    assert 1 <= sent <= 2  # the one arrived, and perhaps the one then in hand
    messages = fresh_session().scalars(select(Message)).all()
    unsent = [m for m in messages if m.state is MessageState.PENDING]
    assert len(unsent) == 6 - sent
    assert all(m.locked_until is None and m.attempts == 0 for m in unsent)  # due at once


def test_a_worker_asked_to_stop_while_connecting_sends_nothing_and_hands_back_all(
    app, client, make_letter, mailbox
):
    letter = make_letter()
    for i in range(3):
        client.post(f"/letters/{letter.slug}/sign", data=sign_data(email=f"p{i}@example.org"))
    stop = threading.Event()

    class StoppedWhileConnecting(SMTPBackend):
        def __enter__(self) -> SMTPBackend:
            stop.set()  # SIGTERM, as the connection is being made
            return super().__enter__()

    with app.app_context():
        report = mail.deliver_pending(
            db.new_session,
            StoppedWhileConnecting(app.config),
            app.config["MAIL_FROM"],
            max_attempts=8,
            stop=stop,
        )
    assert (report.attempted, mailbox.messages) == (0, [])
    messages = fresh_session().scalars(select(Message)).all()
    assert [(m.state, m.locked_until, m.attempts) for m in messages] == [
        (MessageState.PENDING, None, 0)
    ] * 3


@pytest.mark.parametrize("machine_up_for", [None, 12.0], ids=["this-clock", "just-booted"])
def test_parked_messages_are_deleted_after_the_set_days(
    app, client, make_letter, mailbox, monkeypatch, machine_up_for
):
    if machine_up_for is not None:  # the monotonic clock starts near 0 when a machine boots
        monkeypatch.setattr(time, "monotonic", lambda: machine_up_for)
    app.config["MAIL_MAX_ATTEMPTS"] = 1
    mailbox.refusal = "451 4.3.0 Try again later"
    letter = make_letter()
    for who in ("old", "new"):
        client.post(f"/letters/{letter.slug}/sign", data=sign_data(email=f"{who}@example.org"))
    run_worker(app, threading.Event(), once=True)
    assert mail.status(fresh_session())["failed"] == 2
    with transaction() as session:
        session.execute(
            update(Message)
            .where(Message.to_address == "old@example.org")
            .values(created_at=utcnow() - timedelta(days=app.config["PARKED_MAIL_DAYS"], hours=1))
        )
    run_worker(app, threading.Event(), once=True)  # its first pass does the housekeeping
    assert [m.to_address for m in fresh_session().scalars(select(Message))] == ["new@example.org"]


def test_sent_messages_keep_no_address_or_token(app, client, make_letter, mailbox):
    letter = make_letter()
    client.post(f"/letters/{letter.slug}/sign", data=sign_data())
    mailbox.deliver()
    [message] = fresh_session().scalars(select(Message)).all()
    fresh_session().refresh(message)
    assert message.state is MessageState.SENT
    assert message.to_address == "" and message.body_text == "" and message.context is None
    assert message.sent_at is not None


def test_mail_greets_signers_by_name_in_the_order_it_is_spoken(client, make_letter, mailbox):
    letter = make_letter()
    sign_and_confirm(client, mailbox, letter, name="Doe, Jane", email="jane@example.org")
    signed = sign_data(name="Cllr Sam Roe (Hackney)", email="sam@example.org")
    client.post(f"/letters/{letter.slug}/sign", data=signed)
    mailbox.deliver()
    for address, greeting in (("jane@example.org", "Jane Doe"), ("sam@example.org", "Sam Roe")):
        messages = mailbox.messages_to(address)
        assert messages
        for message in messages:
            assert mailbox.body(message).startswith(f"Hello {greeting},\r\n")


def test_the_worker_writes_the_body_when_it_sends(app, client, make_letter, mailbox):
    letter = make_letter()
    client.post(f"/letters/{letter.slug}/sign", data=sign_data())
    [queued] = fresh_session().scalars(select(Message)).all()
    assert queued.body_text == "" and "/verify/" in queued.context  # values, not text, so far
    mailbox.deliver()
    body = mailbox.body(mailbox.messages_to("jane@example.org")[0])
    assert "Hello Jane Doe," in body and "Stand for the leadership" in body
    assert mailbox.link("jane@example.org", "/verify/").startswith("/verify/")
    expiry = body.split("The link works until ")[1].split(". ")[0]
    assert re.fullmatch(r"\d{1,2} \w+ 20\d\d, \d\d:\d\d (GMT|BST)", expiry), expiry


def test_text_queued_before_an_upgrade_is_sent_as_it_is(app, mailbox):
    with transaction() as session:
        mail.queue(session, "withdrawn", "old@example.org", "Removed", title="T", letter_url="u")
        session.execute(update(Message).values(body_text="Rendered long ago.", context=None))
    mailbox.deliver()
    assert mailbox.body(mailbox.messages_to("old@example.org")[0]).strip() == "Rendered long ago."


def test_a_message_that_cannot_be_rendered_is_parked_with_the_reason(app, mailbox):
    with transaction() as session:
        mail.queue(session, "verify", "who@example.org", "Confirm", expires_at="soon")  # no date
    report = run_worker(app, threading.Event(), once=True)
    assert report.parked == 1 and mailbox.messages_to("who@example.org") == []
    [message] = fresh_session().scalars(select(Message)).all()
    fresh_session().refresh(message)
    assert message.state is MessageState.FAILED
    assert message.last_error.startswith("cannot render the verify email")


def test_backoff_grows_and_is_capped():
    assert mail.backoff(1) == timedelta(seconds=30)
    assert mail.backoff(2) == timedelta(minutes=1)
    assert mail.backoff(20) == timedelta(hours=1)


def test_file_backend_writes_eml_files(app, client, make_letter, tmp_path):
    app.config.update(MAIL_BACKEND="file", MAIL_DIR=str(tmp_path / "mail"))
    letter = make_letter()
    client.post(f"/letters/{letter.slug}/sign", data=sign_data())
    run_worker(app, threading.Event(), once=True)
    [eml] = (tmp_path / "mail").glob("*.eml")
    text = eml.read_text()
    assert "To: jane@example.org" in text
    assert "/verify/" in text


def test_console_backend_prints_messages(app, client, make_letter, capsys):
    app.config.update(MAIL_BACKEND="console")
    letter = make_letter()
    client.post(f"/letters/{letter.slug}/sign", data=sign_data())
    run_worker(app, threading.Event(), once=True)
    out = capsys.readouterr().out
    assert "Subject: Please confirm your signature" in out
    assert "http://localhost/verify/" in out


@pytest.fixture
def no_sign_limit(app_config):
    app_config["SIGN_RATE_LIMIT"] = "off"


@pytest.mark.parametrize("interval", [0.0, 30.0])
def test_a_flood_of_mail_does_not_hold_up_the_count(
    no_sign_limit, app, client, make_letter, mailbox, interval
):
    """During a burst mail is always due: the worker folds counts between batches of it, not
    only once the outbox is empty (each confirmation sums the events not yet folded), whether
    a pass of mail is cut short at once (interval 0) or may go on for half a minute."""
    letter = make_letter()
    client.post(f"/letters/{letter.slug}/sign", data=sign_data())
    mailbox.deliver()
    assert client.post(mailbox.link("jane@example.org", "/verify/")).status_code == 200
    for number in range(2 * mail.BATCH_SIZE):  # more than one batch of mail, then the thank-you
        data = sign_data(email=f"p{number}@example.org")
        assert client.post(f"/letters/{letter.slug}/sign", data=data).status_code == 303
    engine = get_session().get_bind()
    unfolded_at_arrival: list[int] = []

    def count_unfolded() -> None:
        with engine.connect() as connection:
            unfolded = connection.scalar(select(func.count()).select_from(CountEvent))
        unfolded_at_arrival.append(unfolded)

    mailbox.on_arrival = count_unfolded
    stop = threading.Event()
    worker = threading.Thread(target=run_worker, args=(app, stop), kwargs={"interval": interval})
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while len(unfolded_at_arrival) < 2 * mail.BATCH_SIZE + 1 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        worker.join(timeout=10)
    assert len(unfolded_at_arrival) == 2 * mail.BATCH_SIZE + 1
    assert unfolded_at_arrival[: mail.BATCH_SIZE] == [1] * mail.BATCH_SIZE  # the first batch
    assert unfolded_at_arrival[-1] == 0  # folded before the last batch went out
    assert api_count(client, letter) == 1


def test_each_outbox_queue_is_read_from_its_own_index(app, database_url):
    """Sent messages stay in the table: a queue read any other way is read whole, and with a
    million emails of news pending each batch took half a second. A partial index serves only
    a query with its very condition, so a condition written differently is caught here (on
    SQLite, whose plan does not depend on the table's statistics)."""
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite test: PostgreSQL's plan depends on the table's statistics")
    now = utcnow()
    due = (Message.next_attempt_at <= now) & (
        Message.locked_until.is_(None) | (Message.locked_until < now)
    )
    queries = {
        "ix_message_due_mail": select(Message).where(mail.URGENT_MAIL, due),
        "ix_message_due_news": select(Message).where(mail.BULK_MAIL, due),
        "ix_message_news_fanout": select(Message).where(mail.pending_task(mail.NEWS_FANOUT)),
        "ix_message_repeat_signing": select(Message).where(mail.pending_task(mail.REPEAT_SIGNING)),
        "ix_message_parked": select(Message).where(mail.PARKED),
    }
    with db.engine().connect() as connection:
        for index, query in queries.items():
            sql = query.compile(connection, compile_kwargs={"literal_binds": True})
            plan = " ".join(
                row[3] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")
            )
            assert f"USING INDEX {index}" in plan, (index, plan)
