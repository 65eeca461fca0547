"""Mail transports: SMTP for production, a folder of .eml files or the console for trials."""

from __future__ import annotations

import smtplib
import socket
import ssl
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from petition.db import utcnow


@dataclass(frozen=True)
class Outgoing:
    id: int
    to_address: str
    subject: str
    body_text: str


class PermanentFailure(Exception):
    """The server refused this message for good (bad address); retrying will not help."""


class ExchangeTooSlow(smtplib.SMTPServerDisconnected):
    """The mail server did not finish an exchange in time, and the connection was cut."""


class UntrustedServer(OSError):
    """STARTTLS met a certificate that does not prove the server is the one named: the
    connection is dropped before anything (an address, a password) is sent over it."""


@lru_cache(maxsize=4)
def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """What STARTTLS trusts: the system's certificate authorities, or only the certificates in
    `ca_file` (a relay with a private or self-signed certificate). The host name is checked
    either way; raises OSError or ssl.SSLError for a file that holds no certificate."""
    return ssl.create_default_context(cafile=ca_file)


class Backend(Protocol):
    def __enter__(self) -> Backend: ...
    def __exit__(self, *exc: object) -> None: ...
    def send(self, message: EmailMessage) -> None: ...


def build(outgoing: Outgoing, sender: str) -> EmailMessage:
    """A plain-text UTF-8 email with the headers mail servers expect."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = outgoing.to_address
    message["Subject"] = outgoing.subject
    message["Date"] = format_datetime(utcnow())
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(f"petition.{outgoing.id}", domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(outgoing.body_text)
    return message


class SMTPBackend:
    """One connection per batch; STARTTLS and login when configured.

    PETITION_SMTP_TIMEOUT bounds each read, not an exchange: a server that sends a byte every
    few seconds would hold the worker (and the count folding it does between batches) for hours,
    with nothing in the log. Each exchange (connecting and logging in, each message, quitting)
    must so end within EXCHANGE_TIMEOUTS of those timeouts, or the connection is cut, which
    the worker reports as a lost connection and tries again later.
    """

    EXCHANGE_TIMEOUTS = 3

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.connection: smtplib.SMTP | None = None
        self._lock = threading.Lock()
        self._exchange: threading.Event | None = None  # set when the one under way is cut

    def __enter__(self) -> SMTPBackend:
        config = self.config
        host, port = config["SMTP_HOST"], int(config["SMTP_PORT"])
        self.connection = smtplib.SMTP(timeout=float(config["SMTP_TIMEOUT"]))  # not yet connected
        # smtplib learns the host's name only in its constructor, which would connect outside the
        # deadline; STARTTLS names the server by it.
        self.connection._host = host
        try:
            with self._deadline(whole_answers=True):
                code, said = self.connection.connect(host, port)
                if code != 220:  # a server that will not serve (421 busy, 554 refused)
                    raise smtplib.SMTPConnectError(code, said)
                if config["SMTP_STARTTLS"]:
                    self._starttls(host, config["SMTP_CA_FILE"])
                if config.get("SMTP_USERNAME"):
                    self.connection.login(
                        config["SMTP_USERNAME"], config.get("SMTP_PASSWORD") or ""
                    )
        except BaseException:
            self.connection.close()
            self.connection = None
            raise
        return self

    def _starttls(self, host: str, ca_file: str | None) -> None:
        assert self.connection is not None
        try:
            self.connection.starttls(context=tls_context(ca_file))
        except ssl.SSLCertVerificationError as error:
            trusted = f"the certificates in {ca_file}" if ca_file else "the system's"
            raise UntrustedServer(
                f"the mail server's certificate does not prove it is {host} "
                f"({error.verify_message}; trusted: {trusted}). If the server is yours, "
                "name its certificate or CA in PETITION_SMTP_CA_FILE"
            ) from error

    def __exit__(self, *exc: object) -> None:
        if self.connection is not None:
            try:
                with self._deadline():
                    self.connection.quit()
            except OSError:  # smtplib's errors too
                self.connection.close()
            self.connection = None

    @contextmanager
    def _deadline(self, *, whole_answers: bool = False) -> Iterator[None]:
        """Cut the connection if the exchange in the block takes longer than its limit.
        whole_answers: also fail if the cut came as it ended (an answer cut short reads as a
        whole one); not for a message, whose 250 may have been the last thing read."""
        limit = float(self.config["SMTP_TIMEOUT"]) * self.EXCHANGE_TIMEOUTS
        cut = threading.Event()
        with self._lock:
            self._exchange = cut
        timer = threading.Timer(limit, self._cut, args=(cut,))
        timer.daemon = True
        timer.start()
        too_slow = f"the mail server gave no full answer within {limit:g} s"
        try:
            yield
        except OSError as error:  # smtplib's errors too
            if cut.is_set():
                raise ExchangeTooSlow(too_slow) from error
            raise
        finally:
            timer.cancel()
            with self._lock:
                self._exchange = None
        if whole_answers and cut.is_set():
            raise ExchangeTooSlow(too_slow)

    def _cut(self, cut: threading.Event) -> None:
        """End the exchange under way, if it is still `cut`'s: a read blocked on the socket
        returns at once, empty."""
        with self._lock:
            if self._exchange is not cut:
                return  # that exchange ended in time; another may be under way
            cut.set()
            connection = self.connection
            sock = connection.sock if connection is not None else None
            if sock is not None:
                # The socket's own shutdown, even under TLS: SSLSocket.shutdown() also drops the
                # TLS layer, under a read that may be using it (an AttributeError or ValueError,
                # not the OSError a cut connection gives).
                with suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def send(self, message: EmailMessage) -> None:
        assert self.connection is not None
        try:
            with self._deadline():
                refused = self.connection.send_message(message)
        except smtplib.SMTPRecipientsRefused as error:
            _raise_for_refusal(error.recipients)
        except smtplib.SMTPSenderRefused:
            raise  # the sender's address or the login, not this message: see services/mail.py
        except smtplib.SMTPNotSupportedError:
            raise PermanentFailure(
                "the mail server cannot take this address (it needs SMTPUTF8)"
            ) from None
        except smtplib.SMTPResponseException as error:
            if 500 <= error.smtp_code < 600:
                raise PermanentFailure(f"{error.smtp_code} {error.smtp_error!r}") from None
            raise
        if refused:
            _raise_for_refusal(refused)


def _raise_for_refusal(refused: dict[str, tuple[int, bytes]]) -> None:
    """A refused recipient: for good (5xx), for now (4xx, tried again later), or the server
    closing the connection (421, which smtplib has already closed)."""
    codes = [code for code, _reply in refused.values()]
    if 421 in codes:
        raise smtplib.SMTPServerDisconnected(_describe_refusal(refused))
    if all(500 <= code < 600 for code in codes):
        raise PermanentFailure(_describe_refusal(refused))
    raise smtplib.SMTPResponseException(min(codes), _describe_refusal(refused).encode())


def _describe_refusal(refused: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{code} {reply.decode(errors='replace')}" for code, reply in refused.values())


class FileBackend:
    """Writes each message as an .eml file, named so that a directory listing sorts by time."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.directory = Path(config["MAIL_DIR"])

    def __enter__(self) -> FileBackend:
        self.directory.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def send(self, message: EmailMessage) -> None:
        stamp = utcnow().strftime("%Y%m%dT%H%M%S%f")
        ident = message["Message-ID"].strip("<>").split("@")[0]
        path = self.directory / f"{stamp}-{ident}.eml"
        partial = path.with_suffix(".tmp")
        partial.write_bytes(bytes(message))
        partial.replace(path)


class ConsoleBackend:
    """Prints each message to standard output: for trying the app on one machine."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.stream = sys.stdout

    def __enter__(self) -> ConsoleBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def send(self, message: EmailMessage) -> None:
        rule = "-" * 72
        body = message.get_content()
        self.stream.write(
            f"\n{rule}\nTo: {message['To']}\nSubject: {message['Subject']}\n\n{body}{rule}\n"
        )
        self.stream.flush()


BACKENDS: dict[str, type[SMTPBackend | FileBackend | ConsoleBackend]] = {
    "smtp": SMTPBackend,
    "file": FileBackend,
    "console": ConsoleBackend,
}


def backend_from_config(config: dict[str, Any]) -> Backend:
    """The transport PETITION_MAIL_BACKEND names (config.py has already checked the name)."""
    return BACKENDS[config["MAIL_BACKEND"]](config)
