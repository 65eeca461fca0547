"""gunicorn under the benchmark: started on a free 127.0.0.1 port, stopped by its own PID."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class GunicornSettings:
    """One set of settings, used for the baseline and every app run alike."""

    workers: int = 2
    worker_class: str = "sync"
    threads: int = 1
    backlog: int = 2048
    timeout: int = 60

    def args(self) -> list[str]:
        return [
            "--workers",
            str(self.workers),
            "--worker-class",
            self.worker_class,
            "--threads",
            str(self.threads),
            "--backlog",
            str(self.backlog),
            "--timeout",
            str(self.timeout),
            "--graceful-timeout",
            "5",
            "--log-level",
            "warning",
        ]

    def describe(self) -> str:
        threads = f" x {self.threads} threads" if self.worker_class == "gthread" else ""
        return f"{self.workers} {self.worker_class} workers{threads}, backlog {self.backlog}"


def child_pids(pid: int) -> list[int]:
    """The direct children of a process (gunicorn's workers, nginx's), or [] if it has gone."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(part) for part in text.split()]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """The harness's environment without any PETITION_* setting of its own, plus `extra`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PETITION_")}
    env.update(extra)
    return env


class Gunicorn:
    """A gunicorn master and its workers; `stop()` ends exactly these processes."""

    def __init__(
        self,
        app: str,
        settings: GunicornSettings,
        env: dict[str, str],
        log_path: Path,
        ready_path: str = "/",
    ) -> None:
        self.app = app
        self.settings = settings
        self.env = env
        self.log_path = log_path
        self.ready_path = ready_path
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.worker_pids: list[int] = []

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"{HOST}:{self.port}",
            *self.settings.args(),
            "--error-logfile",
            str(self.log_path),
            self.app,
        ]
        self.process = subprocess.Popen(
            command,
            cwd=REPO,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C reaches the harness only; it stops us in order
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited at start:\n{self.log_tail()}")
            status = self._probe()
            if status is not None and status < 500:
                self.worker_pids = self._children()
                if len(self.worker_pids) >= self.settings.workers:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def _probe(self) -> int | None:
        return probe(self.port, self.ready_path)

    def pids(self) -> list[int]:
        """The master and its current workers."""
        return [self.process.pid, *self._children()] if self.process else []

    def _children(self) -> list[int]:
        assert self.process is not None
        return child_pids(self.process.pid)

    def stop(self) -> None:
        if self.process is None:
            return
        workers = self._children() or self.worker_pids
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        for pid in workers:  # normally gone with the master; never leave one behind
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.process = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def log_problems(self) -> list[str]:
        """Tracebacks and error lines gunicorn logged (the app logs unexpected errors there)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        return [
            line
            for line in text.splitlines()
            if "Traceback" in line or "[ERROR]" in line or "[CRITICAL]" in line
        ]

    def __enter__(self) -> Gunicorn:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


def probe(port: int, path: str) -> int | None:
    """The status of GET `path` on 127.0.0.1:`port`, or None while nothing answers."""
    connection = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()
