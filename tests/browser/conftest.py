"""Browser fixtures: the real app on a local port, driven by Debian's Chromium through Playwright.

Each test gets its own database (the `app` fixture of tests/conftest.py), a werkzeug server for
that app on 127.0.0.1 and a free port, and a fresh browser context pointed at it. The browser is
launched once per session. Mail goes through the session's aiosmtpd server; `BASE_URL` is the live
server's address, so the links in those emails open in the browser.
"""

from __future__ import annotations

import os
import re
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from flask import Flask
from playwright.sync_api import BrowserContext, Page
from werkzeug.serving import BaseWSGIServer, make_server

from tests.conftest import throwaway_certificate

CHROMIUM = Path(os.environ.get("PETITION_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
NO_CHROMIUM = (
    f"browser test: no Chromium at {CHROMIUM} (apt-get install chromium, "
    "or set PETITION_TEST_CHROMIUM to its path)"
)
TIMEOUT_MS = 10_000  # fail in seconds, not Playwright's default 30 s
BLOCKING_IMPACTS = ("serious", "critical")
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test in this folder `browser`, and skip them all when there is no Chromium."""
    for item in items:
        if HERE not in item.path.parents:
            continue
        item.add_marker(pytest.mark.browser)
        if not CHROMIUM.exists():
            item.add_marker(pytest.mark.skip(reason=NO_CHROMIUM))


# -- the live server -----------------------------------------------------------------------------


class _Deferred:
    """A WSGI callable to bind the socket before the app exists (the app needs the port).

    It also keeps every exception the app raises: the browser only sees a 500 page, which
    could otherwise pass an accessibility check; the test fails with the traceback instead.
    """

    def __init__(self) -> None:
        self.app: Flask | None = None
        self.errors: list[str] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        assert self.app is not None, "the live server got a request before its app was set"
        try:
            return self.app(environ, start_response)
        except Exception:
            method, path = environ.get("REQUEST_METHOD"), environ.get("PATH_INFO")
            self.errors.append(f"{method} {path}\n{traceback.format_exc()}")
            raise


class LiveServer:
    """The app served over real HTTP on 127.0.0.1, in a background thread; over HTTPS when
    given a certificate and its key."""

    def __init__(self, certificate: tuple[str, str] | None = None) -> None:
        self.wsgi = _Deferred()
        # Port 0: the kernel picks a free port, bound at once, so no other process can take it.
        self.server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, self.wsgi, threaded=True, ssl_context=certificate
        )
        scheme = "https" if certificate else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.port}"
        self.thread: threading.Thread | None = None

    def start(self, app: Flask) -> None:
        self.wsgi.app = app
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket (safe to call twice)."""
        if self.thread is not None:
            self.server.shutdown()
            self.thread.join(timeout=10)
            self.thread = None
        if self.server.socket.fileno() != -1:
            self.server.server_close()


@pytest.fixture
def _live_server_socket(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    """The server's socket; HTTPS with a throwaway certificate for a test marked `https`."""
    certificate = None
    if request.node.get_closest_marker("https"):
        files = throwaway_certificate(tmp_path, "127.0.0.1", "HTTPS browser test")
        certificate = (str(files[0]), str(files[1]))
    server = LiveServer(certificate)
    yield server
    server.stop()


@pytest.fixture
def app_config(app_config: dict[str, Any], _live_server_socket: LiveServer) -> dict[str, Any]:
    """The app of tests/conftest.py, with real forms (CSRF on) and links to the live server."""
    return {
        **app_config,
        "BASE_URL": _live_server_socket.url,
        "WTF_CSRF_ENABLED": True,
        "COUNT_CACHE_SECONDS": 0,
    }


@pytest.fixture
def live_server(app: Flask, _live_server_socket: LiveServer) -> Iterator[LiveServer]:
    """This test's app served on 127.0.0.1; stopped before the app and its database go away."""
    _live_server_socket.start(app)
    yield _live_server_socket
    _live_server_socket.stop()
    if errors := _live_server_socket.wsgi.errors:
        pytest.fail("the app raised while serving the browser:\n" + "\n".join(errors))


@pytest.fixture
def emailed_link(mailbox: Any, live_server: LiveServer) -> Callable[[str, str], str]:
    """The full URL of the newest link to `path` (e.g. /verify/) mailed to `address`.

    tests/conftest.py's `mailbox.link` expects BASE_URL http://localhost; here links carry the
    live server's address and port, and the browser opens them as they are.
    """

    def find(address: str, path: str) -> str:
        pattern = re.compile(rf"{re.escape(live_server.url + path)}[A-Za-z0-9_-]+")
        for message in reversed(mailbox.messages_to(address)):
            match = pattern.search(mailbox.body(message))
            if match:
                return match.group(0)
        raise AssertionError(f"no {live_server.url}{path}… link mailed to {address}")

    return find


# -- the browser (pytest-playwright's fixtures, pointed at Debian's Chromium) --------------------


@pytest.fixture(scope="session")
def browser_type_launch_args(pytestconfig: pytest.Config) -> dict[str, Any]:
    if not CHROMIUM.exists():
        pytest.skip(NO_CHROMIUM)
    return {
        "executable_path": str(CHROMIUM),
        "headless": not pytestconfig.getoption("--headed"),
        "args": CHROMIUM_ARGS,
    }


@pytest.fixture(scope="session")
def base_url() -> None:
    """Replaces pytest-playwright's fallback `base_url` fixture, which pytest 9 warns about
    (a session fixture defined as an instance method; warnings are errors here). Each test's
    context gets its live server's address instead (see `context`)."""
    return None


@pytest.fixture
def context(new_context: Callable[..., BrowserContext], live_server: LiveServer) -> BrowserContext:
    """A fresh browser (no cookies) whose relative URLs go to this test's live server."""
    browser_context = new_context(
        base_url=live_server.url,
        locale="en-GB",
        ignore_https_errors=live_server.url.startswith("https:"),  # the throwaway certificate
    )
    browser_context.set_default_timeout(TIMEOUT_MS)
    return browser_context


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


# -- accessibility -------------------------------------------------------------------------------


_AXE = Axe()


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now (offline copy)."""
    results = _AXE.run(page)
    return [v for v in results.response["violations"] if v["impact"] in BLOCKING_IMPACTS]


def describe_violations(violations: list[dict[str, Any]]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"- {violation['id']} ({violation['impact']}): {violation['help']}")
        lines.append(f"  {violation['helpUrl']}")
        for node in violation["nodes"]:
            target = " ".join(str(part) for part in node["target"])
            lines.append(f"    at {target}")
            for line in (node.get("failureSummary") or "").strip().splitlines():
                lines.append(f"      {line.strip()}")
    return "\n".join(lines)


@pytest.fixture
def assert_accessible() -> Callable[[Page], None]:
    """Fail with a readable list if axe-core finds a serious or critical violation."""

    def check(page: Page) -> None:
        violations = axe_violations(page)
        if violations:
            pytest.fail(
                f"{len(violations)} serious/critical accessibility violation(s) on "
                f"{page.url}:\n{describe_violations(violations)}",
                pytrace=False,
            )

    return check
