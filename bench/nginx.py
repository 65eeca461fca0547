"""nginx in front of the benchmark's gunicorn: the count micro-cache of deploy/nginx/petition.conf.

The configuration is bench/nginx.conf.template with the ports and a temporary directory filled
in; nginx runs in the foreground as our own child (never the system service) and is stopped by
its PID.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from bench.servers import HOST, child_pids, free_port, probe

TEMPLATE = Path(__file__).resolve().parent / "nginx.conf.template"


def binary() -> str | None:
    return shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx",) if os.access(path, os.X_OK)), None
    )


def version() -> str:
    found = binary()
    if not found:
        return "not installed"
    done = subprocess.run([found, "-v"], capture_output=True, text=True, check=False)
    return (done.stderr or done.stdout).strip().removeprefix("nginx version: ")


def render(
    directory: Path, port: int, upstream_port: int, user: str | None, ignore_cache_control: bool
) -> str:
    text = TEMPLATE.read_text()
    for name, value in (
        ("@USER@", f"user {user};" if user else ""),
        ("@IGNORE_MORE@", " Cache-Control Expires" if ignore_cache_control else ""),
        ("@DIR@", str(directory)),
        ("@PORT@", str(port)),
        ("@UPSTREAM_PORT@", str(upstream_port)),
    ):
        text = text.replace(name, value)
    return text


class Nginx:
    """`nginx -c <generated conf>` on a free 127.0.0.1 port, proxying to `upstream_port`."""

    def __init__(self, upstream_port: int, ignore_cache_control: bool = False) -> None:
        found = binary()
        if not found:
            raise SystemExit("nginx is not installed: apt-get install -y nginx")
        self.binary = found
        self.upstream_port = upstream_port
        self.ignore_cache_control = ignore_cache_control
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="petition-bench-nginx-"))
        self.conf = self.directory / "nginx.conf"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        user = None
        if os.geteuid() == 0:
            # As root nginx's workers would switch to "nobody": let them use our directory
            # rather than running them as root.
            nobody = pwd.getpwnam("nobody")
            user = f"nobody {grp.getgrgid(nobody.pw_gid).gr_name}"
            self.directory.chmod(0o755)
            os.chown(self.directory, nobody.pw_uid, nobody.pw_gid)
        self.conf.write_text(
            render(self.directory, self.port, self.upstream_port, user, self.ignore_cache_control)
        )
        command = [self.binary, "-p", str(self.directory), "-e", str(self.directory / "error.log")]
        check = subprocess.run(
            [*command, "-t", "-c", str(self.conf)], capture_output=True, text=True, check=False
        )
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t failed:\n{check.stderr}")
        self.process = subprocess.Popen(
            [*command, "-c", str(self.conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited at start:\n{self.error_log()}")
            if self._probe() is not None and self.worker_pids():
                return
            time.sleep(0.1)
        raise RuntimeError(f"nginx did not answer within {timeout:.0f} s:\n{self.error_log()}")

    def _probe(self) -> int | None:
        return probe(self.port, "/nginx-bench-probe")

    def worker_pids(self) -> list[int]:
        return child_pids(self.process.pid) if self.process is not None else []

    def pids(self) -> list[int]:
        return [self.process.pid, *self.worker_pids()] if self.process else []

    def error_log(self, lines: int = 20) -> str:
        try:
            text = (self.directory / "error.log").read_text(errors="replace")
        except OSError:
            return "(no error log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is not None:
            workers = self.worker_pids()
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGQUIT)  # graceful: finish, then exit
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=5)
            for pid in workers:
                with contextlib.suppress(ProcessLookupError):
                    if Path(f"/proc/{pid}").exists():
                        os.kill(pid, signal.SIGKILL)
            self.process = None
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Nginx:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
