"""Fixtures: a migrated database per test, a real SMTP server, and factories."""

from __future__ import annotations

import contextvars
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message as EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from petition import create_app, migrate
from petition.db import get_session, transaction
from petition.models import Letter, Organiser
from petition.services import letters, organisers
from petition.worker import run_worker

POSTGRES_URL = os.environ.get("PETITION_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("PETITION_TEST_REDIS_URL")
PASSWORD = "correct horse battery"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skips = {
        "postgres": None
        if POSTGRES_URL
        else "PostgreSQL test: set PETITION_TEST_DATABASE_URL="
        "postgresql+psycopg://postgres@127.0.0.1:5432/test to run it",
        "redis": None
        if REDIS_URL
        else "Redis test: set PETITION_TEST_REDIS_URL=redis://127.0.0.1:6379/0 to run it",
    }
    for item in items:
        for marker, reason in skips.items():
            if reason and marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


# -- databases -----------------------------------------------------------------------------------


class SQLiteDatabases:
    """Migrate one template file per run, then copy it for each test (a copy is ~1 ms)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.template = directory / "template.sqlite3"
        migrate.upgrade(f"sqlite:///{self.template}")

    def new(self) -> str:
        path = self.directory / f"{uuid.uuid4().hex}.sqlite3"
        shutil.copyfile(self.template, path)
        return f"sqlite:///{path}"

    def drop(self, url: str) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)


class PostgresDatabases:
    """Migrate one template database per run, then CREATE DATABASE ... TEMPLATE for each test."""

    def __init__(self, url: str) -> None:
        self.base = make_url(url)
        # pre-ping: the fault tests restart the server under this engine's pooled connections.
        self.admin = create_engine(self.base, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
        self.template = f"petition_tpl_{os.getpid()}"
        self._execute(f'DROP DATABASE IF EXISTS "{self.template}"')
        self._execute(f'CREATE DATABASE "{self.template}"')
        migrate.upgrade(self._url(self.template))

    def _url(self, name: str) -> str:
        return self.base.set(database=name).render_as_string(hide_password=False)

    def _execute(self, sql: str) -> None:
        with self.admin.connect() as connection:
            connection.execute(text(sql))

    def new(self) -> str:
        name = f"petition_t_{uuid.uuid4().hex[:16]}"
        self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        return self._url(name)

    def drop(self, url: str) -> None:
        name = make_url(url).database
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        self._execute(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')
        self.admin.dispose()


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if POSTGRES_URL:
        pg = PostgresDatabases(POSTGRES_URL)
        yield pg
        pg.close()
    else:
        yield SQLiteDatabases(tmp_path_factory.mktemp("db"))


@pytest.fixture
def database_url(databases: Any) -> Iterator[str]:
    url = databases.new()
    yield url
    databases.drop(url)


# -- mail ----------------------------------------------------------------------------------------


@dataclass
class Mailbox:
    """What the test SMTP server received, with helpers to read it like a person would."""

    messages: list[EmailMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    app: Flask | None = None
    # Called (in the server's thread) as each message arrives, to see what the app had done then.
    on_arrival: Callable[[], None] | None = None
    # Awaited as a message's DATA begins, before any refusal: to hold that message's sender
    # while the server goes on serving other connections.
    before_data: Callable[[], Awaitable[None]] | None = None
    # What the server says to a message other than "250 OK": "451 Try again later", say.
    refusal: str | None = None
    # ... and to the sender (MAIL FROM) or the recipient (RCPT TO).
    sender_refusal: str | None = None
    recipient_refusal: str | None = None

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options):
        if self.sender_refusal:
            return self.sender_refusal
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options):
        if self.recipient_refusal:
            return self.recipient_refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.before_data is not None:
            await self.before_data()
        if self.refusal:
            return self.refusal
        with self.lock:
            self.messages.append(message_from_bytes(envelope.content, policy=default_policy))
        if self.on_arrival is not None:
            self.on_arrival()
        return "250 OK"

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()
        self.refusal = self.sender_refusal = self.recipient_refusal = None
        self.before_data = None

    def deliver(self) -> None:
        """Run one pass of the mail worker, as `petition mail send-pending` does."""
        assert self.app is not None
        run_worker(self.app, threading.Event(), once=True)

    def messages_to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.messages if m["To"] == address]

    def body(self, message: EmailMessage) -> str:
        return message.get_body(preferencelist=("plain",)).get_content()

    def link(self, address: str, path: str) -> str:
        """The path of the newest link to `path` (e.g. /verify/) mailed to `address`."""
        for message in reversed(self.messages_to(address)):
            match = re.search(
                rf"http://localhost({re.escape(path)}[A-Za-z0-9_.-]*[A-Za-z0-9_-])",
                self.body(message),
            )
            if match:
                return match.group(1)
        raise AssertionError(f"no {path} link mailed to {address}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def throwaway_certificate(folder: Path, name: str, why: str) -> tuple[Path, Path]:
    """A self-signed certificate for `name`, valid a day, and its key (skips `why` without
    openssl)."""
    if not shutil.which("openssl"):
        pytest.skip(f"{why}: needs openssl for a throwaway certificate")
    certificate, key = folder / "cert.pem", folder / "key.pem"
    options = ["-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}"]
    subprocess.run(
        ["openssl", "req", *options, "-keyout", str(key), "-out", str(certificate)],
        check=True,
        capture_output=True,
    )
    return certificate, key


class PrivateRedis:
    """A redis-server of the test's own on a free port, which it may freeze (SIGSTOP: it stops
    answering, as in a partition or a failover) and thaw. The shared one is never touched."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        options = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), *options], stdout=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def answers(self) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def freeze(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.thaw()
            self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    if not shutil.which("redis-server"):
        pytest.skip("needs redis-server (Debian's redis-server package) to stop and restart")
    server = PrivateRedis()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[tuple[Controller, Mailbox]]:
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, mailbox
    controller.stop()


@pytest.fixture
def mailbox(smtp_server: tuple[Controller, Mailbox], app: Flask) -> Mailbox:
    _controller, box = smtp_server
    box.clear()
    box.app = app
    box.on_arrival = None
    return box


# -- the app -------------------------------------------------------------------------------------


@pytest.fixture
def app_config(database_url: str, smtp_server: tuple[Controller, Mailbox]) -> dict[str, Any]:
    controller, _mailbox = smtp_server
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "DATABASE_URL": database_url,
        "BASE_URL": "http://localhost",
        "MAIL_BACKEND": "smtp",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": controller.port,
        "WTF_CSRF_ENABLED": False,
        "SESSION_COOKIE_SECURE": False,
        "REMEMBER_COOKIE_SECURE": False,
        "COUNT_CACHE_SECONDS": 0,
    }


class IsolatedClient(FlaskClient):
    """Each request in a context of its own, as in production.

    The `app` fixture holds an app context open for the test's own code; without this, every
    request would share that context's `g` (Flask-Login's user, Flask-WTF's token) with the
    others, which no deployed request ever does.
    """

    def open(self, *args: Any, **kwargs: Any):
        return contextvars.Context().run(super().open, *args, **kwargs)


@pytest.fixture
def app(app_config: dict[str, Any]) -> Iterator[Flask]:
    application = create_app(app_config)
    application.test_client_class = IsolatedClient
    with application.app_context():
        yield application
    application.extensions["petition.engine"].dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


# -- factories -----------------------------------------------------------------------------------


@pytest.fixture
def make_organiser(app: Flask):
    def make(email: str = "organiser@example.org", password: str = PASSWORD) -> Organiser:
        with transaction() as session:
            return organisers.create(session, email, password, "Org")

    return make


@pytest.fixture
def make_letter(app: Flask):
    def make(status: str = "open", organiser: Organiser | None = None, **overrides: Any) -> Letter:
        data = {
            "title": "Stand for the leadership",
            "recipient_name": "Alex Morgan MP",
            "recipient_role": "MP for Northtown",
            "body_markdown": "Dear Alex,\n\nPlease **stand**.",
        }
        data.update(overrides)
        with transaction() as session:
            letter = letters.create(
                session, letters.LetterInput(**data), organiser, publish=status != "draft"
            )
            if status == "closed":
                letters.close(session, letter)
        return letter

    return make


@pytest.fixture
def logged_in(client: FlaskClient, make_organiser) -> Organiser:
    organiser = make_organiser()
    response = client.post(
        "/organiser/login", data={"email": organiser.email, "password": PASSWORD}
    )
    assert response.status_code == 303
    return organiser


def sign_data(**overrides: Any) -> dict[str, Any]:
    data = {"name": "Jane Doe", "email": "jane@example.org"}
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def api_count(client: FlaskClient, letter: Letter) -> int:
    return client.get(f"/api/v1/letters/{letter.slug}").get_json()["signature_count"]


def sign_and_confirm(
    client: FlaskClient, mailbox: Mailbox, letter: Letter, **overrides: Any
) -> str:
    """Sign, read the mail, press the button; returns the manage link's path."""
    data = sign_data(**overrides)
    assert client.post(f"/letters/{letter.slug}/sign", data=data).status_code == 303
    mailbox.deliver()
    address = data["email"]
    verify_path = mailbox.link(address, "/verify/")
    assert client.post(verify_path).status_code == 200
    mailbox.deliver()
    return mailbox.link(address, "/signature/")


def fresh_session():
    """The test's own session with a new snapshot: requests commit in sessions of their own."""
    session = get_session()
    session.commit()  # ends the read snapshot; expire_on_commit=False keeps loaded objects
    return session
