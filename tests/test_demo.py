"""`petition demo`, the README's first command: the whole site on one SQLite file."""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def demo(port: int, database: Path) -> subprocess.Popen[str]:
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("PETITION_")
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "petition.cli",
            "demo",
            "--port",
            str(port),
            "--database",
            str(database),
        ],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def banner(process: subprocess.Popen[str], deadline: float = 60.0) -> str:
    lines = []
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Stop with Ctrl+C." in line:
            return "".join(lines)
    raise AssertionError(
        f"no banner: {''.join(lines)}{process.stderr.read() if process.poll() is not None else ''}"
    )


def browser() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )


def log_in(base: str, password: str) -> str:
    """The URL an organiser lands on after logging in with the demo's password."""
    session = browser()
    form = session.open(f"{base}/organiser/login").read().decode()
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form).group(1)
    fields = {"csrf_token": token, "email": "organiser@example.org", "password": password}
    try:
        answer = session.open(f"{base}/organiser/login", urllib.parse.urlencode(fields).encode())
    except urllib.error.HTTPError as refused:
        return f"refused {refused.code}"
    return answer.geturl()


@pytest.fixture
def running_demo(tmp_path):
    port = free_port()
    process = demo(port, tmp_path / "demo.sqlite3")
    try:
        yield port, banner(process), process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=20)
        process.stdout.close()
        process.stderr.close()


def test_the_demo_serves_its_letter_and_a_second_one_leaves_it_alone(running_demo, tmp_path):
    port, printed, process = running_demo
    base = f"http://127.0.0.1:{port}"
    assert f"{base}/letters/stand-for-the-leadership" in printed
    password = re.search(r"password (\S+)", printed).group(1)
    with browser().open(f"{base}/letters/stand-for-the-leadership") as page:
        assert page.status == 200
        html = page.read().decode()
        assert "Stand for the leadership" in html
        assert "We have watched you argue for fair pay" in html  # one paragraph, unbroken

    second = demo(port, tmp_path / "demo.sqlite3")
    _out, err = second.communicate(timeout=60)
    assert second.returncode == 1
    assert f"Cannot listen on 127.0.0.1:{port}: the port is in use" in err
    assert "Traceback" not in err
    # The first demo's password still works: the second changed nothing.
    assert log_in(base, password) == f"{base}/organiser/"

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=20) == 0
    log = process.stderr.read()
    assert '"GET /letters/stand-for-the-leadership HTTP/1.1" 200' in log
    assert "\x1b[" not in log  # no terminal colours in a log that is not a terminal


def test_the_settings_the_demo_prints_point_other_commands_at_it(running_demo, tmp_path):
    port, printed, _process = running_demo
    line = printed.split("Commands:", 1)[1].splitlines()[1]
    settings = dict(setting.split("=", 1) for setting in line.split())
    environment = {key: value for key, value in os.environ.items() if key != "PETITION_ENV"}
    (tmp_path / "body.md").write_text("Dear Alex,\n\nPlease.\n", encoding="utf-8")
    created = subprocess.run(
        [sys.executable, "-m", "petition.cli", "letters", "create", "--title", "Second",
         "--recipient-name", "Alex", "--body-file", str(tmp_path / "body.md"), "--publish"],
        env=environment | settings, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert f"http://127.0.0.1:{port}/letters/second" in created.stdout
    with browser().open(f"http://127.0.0.1:{port}/letters/second") as page:
        assert page.status == 200


def test_ctrl_c_stops_the_demo_even_when_started_in_the_background(tmp_path):
    """A shell starts `petition demo &` with SIGINT ignored; the demo still stops on it."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # what the child inherits
    try:
        process = demo(free_port(), tmp_path / "demo.sqlite3")
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        banner(process)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
        said = process.stdout.read()
        assert f"Stopped. The demo's data stays in {tmp_path / 'demo.sqlite3'}" in said
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()
