"""Real processes for fault tests: gunicorn serving the app, the mail worker, SMTP servers."""

from __future__ import annotations

import asyncio
import http.client
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message as EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from tests.conftest import free_port

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.faults)


def wait_for(condition, timeout: float = 20.0, interval: float = 0.05, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")


def children(pid: int) -> list[int]:
    """Direct child processes of `pid` (gunicorn's workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


# -- SMTP ----------------------------------------------------------------------------------------


@dataclass
class SMTPRecorder:
    """An aiosmtpd handler that records mail, can be slow, and can refuse some recipients."""

    delay: float = 0.0
    refuse: set[str] = field(default_factory=set)
    messages: list[EmailMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        with self.lock:
            self.messages.append(message_from_bytes(envelope.content, policy=default_policy))
        return "250 OK"

    def recipients(self) -> list[str]:
        with self.lock:
            return [m["To"] for m in self.messages]


class SMTPServer:
    """A real SMTP server on a fixed port that a test can stop and start again."""

    def __init__(self, recorder: SMTPRecorder, port: int | None = None) -> None:
        self.recorder = recorder
        self.port = port or free_port()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp_recorder() -> Iterator[tuple[SMTPServer, SMTPRecorder]]:
    recorder = SMTPRecorder()
    server = SMTPServer(recorder)
    yield server, recorder
    server.stop()


# -- processes -----------------------------------------------------------------------------------


def app_environment(database_url: str, smtp_port: int, base_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PETITION_")}
    env.update(
        PETITION_SECRET_KEY="fault-tests-" + "s" * 40,
        PETITION_DATABASE_URL=database_url,
        PETITION_BASE_URL=base_url,
        PETITION_MAIL_BACKEND="smtp",
        PETITION_SMTP_HOST="127.0.0.1",
        PETITION_SMTP_PORT=str(smtp_port),
        PETITION_SMTP_TIMEOUT="5",
        PETITION_SESSION_COOKIE_SECURE="false",
        PETITION_COUNT_CACHE_SECONDS="0",
        PETITION_MAIL_RETRY_SECONDS="1",
        PETITION_MAIL_LEASE_SECONDS="3",
        PETITION_SIGN_RATE_LIMIT="1000000000 per hour",  # every burst comes from 127.0.0.1
    )
    return env


class Process:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.log_file = log.open("ab")
        self.handle = subprocess.Popen(
            args, env=env, stdout=self.log_file, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.handle.pid

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.handle.poll() is None:
            os.kill(self.handle.pid, sig)

    def stop(self) -> None:
        if self.handle.poll() is None:
            self.handle.terminate()
            try:
                self.handle.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.handle.kill()
                self.handle.wait()
        self.handle.wait()
        self.log_file.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class Gunicorn(Process):
    """`gunicorn petition.wsgi:app` on a free port of 127.0.0.1."""

    def __init__(self, env: dict[str, str], log: Path, port: int, workers: int = 2) -> None:
        self.port = port
        args = [sys.executable, "-m", "gunicorn", "--workers", str(workers)]
        args += ["--bind", f"127.0.0.1:{port}", "--graceful-timeout", "3", "petition.wsgi:app"]
        super().__init__(args, env, log)
        wait_for(self._answers, timeout=30, what="gunicorn to answer")

    def _answers(self) -> bool:
        assert self.handle.poll() is None, self.output()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
        try:
            connection.request("GET", "/")
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()

    def workers(self) -> list[int]:
        return children(self.pid)


class MailWorker(Process):
    def __init__(self, env: dict[str, str], log: Path) -> None:
        args = [sys.executable, "-m", "petition.cli", "mail", "worker", "--interval", "0.2"]
        super().__init__(args, env, log)


@pytest.fixture
def start_web(database_url, smtp_recorder, processes, tmp_path):
    """Start gunicorn for this test's database; links in its mail point at it."""

    def start(**extra_env: str) -> Gunicorn:
        port = free_port()
        server, _recorder = smtp_recorder
        env = app_environment(database_url, server.port, f"http://127.0.0.1:{port}")
        env.update(extra_env)
        web = Gunicorn(env, tmp_path / f"gunicorn-{port}.log", port)
        processes.append(web)
        return web

    return start


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    """Everything a test starts, stopped at the end whatever happens."""
    started: list[Process] = []
    yield started
    for process in started:
        process.stop()


# -- HTTP as a browser would -------------------------------------------------------------------


class Browser:
    """One visitor: keeps the session cookie and the form's CSRF token, follows no redirects."""

    def __init__(self, port: int, timeout: float = 10, forwarded_for: str = "") -> None:
        self.port = port
        self.timeout = timeout
        self.cookie = ""
        self.token = ""
        # The client's address as a proxy in front would pass it (PETITION_TRUSTED_PROXIES).
        self.forwarded_for = forwarded_for

    def request(self, method: str, path: str, body: str = "") -> tuple[int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        headers = {"Cookie": self.cookie} if self.cookie else {}
        if self.forwarded_for:
            headers["X-Forwarded-For"] = self.forwarded_for
        if body:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            text = response.read().decode("utf-8", "replace")
        finally:
            connection.close()
        for cookie in response.msg.get_all("Set-Cookie") or []:
            if cookie.startswith("session="):
                self.cookie = cookie.split(";", 1)[0]
        field = re.search(r'<input[^>]*name="csrf_token"[^>]*>', text)
        if field:
            self.token = re.search(r'value="([^"]+)"', field.group(0)).group(1)
        return response.status, text

    def sign(self, slug: str, email: str) -> tuple[int, str]:
        if not self.token:
            self.request("GET", f"/letters/{slug}")
        from urllib.parse import urlencode

        body = urlencode({"csrf_token": self.token, "name": "Burst Signer", "email": email})
        return self.request("POST", f"/letters/{slug}/sign", body)

    def confirm(self, path: str) -> tuple[int, str]:
        from urllib.parse import urlencode

        status, _page = self.request("GET", path)
        if status != 200:
            return status, _page
        return self.request("POST", path, urlencode({"csrf_token": self.token}))


@dataclass
class Outcome:
    email: str
    status: int | None  # None: no response at all (connection reset by a dying worker)
    body: str = ""


def burst(
    port: int, slug: str, prefix: str, threads: int, each: int, pause: float = 0.0
) -> list[Outcome]:
    """`threads` visitors each sign `each` times with fresh addresses, as fast as they can."""
    outcomes: list[Outcome] = []
    lock = threading.Lock()

    def visitor(number: int) -> None:
        browser = Browser(port)
        for count in range(each):
            email = f"{prefix}-{number}-{count}@example.org"
            try:
                status, body = browser.sign(slug, email)
            except (OSError, http.client.HTTPException):
                status, body = None, ""
                browser = Browser(port)
            with lock:
                outcomes.append(Outcome(email, status, body))
            if pause:
                time.sleep(pause)

    workers = [threading.Thread(target=visitor, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return outcomes


def verify_links(text: str) -> list[str]:
    return re.findall(r"http://[^/\s]+(/verify/[A-Za-z0-9_-]+)", text)
