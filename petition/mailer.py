"""Mail transports: SMTP for production, a folder of .eml files or the console for trials."""

from __future__ import annotations

import smtplib
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
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

    def __enter__(self) -> SMTPBackend:
        config = self.config
        self.connection = smtplib.SMTP(timeout=float(config["SMTP_TIMEOUT"]))  # not yet connected
        try:
            with self._deadline():
                self.connection.connect(config["SMTP_HOST"], int(config["SMTP_PORT"]))
                if config["SMTP_STARTTLS"]:
                    self.connection.starttls()
                if config.get("SMTP_USERNAME"):
                    self.connection.login(
                        config["SMTP_USERNAME"], config.get("SMTP_PASSWORD") or ""
                    )
        except BaseException:
            self.connection.close()
            self.connection = None
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.connection is not None:
            try:
                with self._deadline():
                    self.connection.quit()
            except (smtplib.SMTPException, OSError):
                self.connection.close()
            self.connection = None

    @contextmanager
    def _deadline(self) -> Iterator[None]:
        limit = float(self.config["SMTP_TIMEOUT"]) * self.EXCHANGE_TIMEOUTS
        cut = threading.Event()
        timer = threading.Timer(limit, self._cut, args=(cut,))
        timer.daemon = True
        timer.start()
        too_slow = f"the mail server gave no full answer within {limit:g} s"
        try:
            yield
        except (OSError, smtplib.SMTPException) as error:
            if cut.is_set():
                raise smtplib.SMTPServerDisconnected(too_slow) from error
            raise
        finally:
            timer.cancel()
        if cut.is_set():  # a partial answer, read as a whole one when the socket closed
            raise smtplib.SMTPServerDisconnected(too_slow)

    def _cut(self, cut: threading.Event) -> None:
        """End the exchange under way: a read blocked on the socket returns at once, empty."""
        cut.set()
        sock = self.connection.sock if self.connection is not None else None
        if sock is not None:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def send(self, message: EmailMessage) -> None:
        assert self.connection is not None
        try:
            with self._deadline():
                refused = self.connection.send_message(message)
        except smtplib.SMTPRecipientsRefused as error:
            raise PermanentFailure(_describe_refusal(error.recipients)) from None
        except smtplib.SMTPResponseException as error:
            if 500 <= error.smtp_code < 600:
                raise PermanentFailure(f"{error.smtp_code} {error.smtp_error!r}") from None
            raise
        if refused:
            raise PermanentFailure(_describe_refusal(refused))


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
