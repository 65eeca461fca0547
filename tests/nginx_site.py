"""deploy/nginx run on this machine: the example site with local paths, ports and certificate."""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import free_port, throwaway_certificate

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def site_here(
    tmp_path: Path, plain_port: int = 80, tls_port: int = 443, app_port: int = 8000
) -> Path:
    """deploy/nginx with this machine's paths, a throwaway certificate, the given ports and the
    app at app_port: returns the nginx.conf to give `nginx -c`. Every directive is otherwise
    nginx's to judge."""
    if not os.access(NGINX, os.X_OK):
        pytest.skip("nginx test: install nginx (apt-get install -y nginx) to run it")
    cert, key = throwaway_certificate(tmp_path, "letters.example.org", "nginx test")
    site = (DEPLOY / "nginx" / "petition.conf").read_text()
    for example, here in {
        "/etc/letsencrypt/live/letters.example.org/fullchain.pem": cert,
        "/etc/letsencrypt/live/letters.example.org/privkey.pem": key,
        "/var/cache/nginx/petition-count": tmp_path / "cache",
        "/etc/nginx/snippets/petition-proxy.conf": DEPLOY / "nginx" / "petition-proxy.conf",
        "/var/log/nginx/access.log": tmp_path / "access.log",
        "/srv/petition/static/": f"{DEPLOY.parent / 'static'}/",
        "listen 80;": f"listen 127.0.0.1:{plain_port};",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{tls_port} ssl http2;",
        "listen [::]:80;": "",
        "listen [::]:443 ssl http2;": "",
        "listen 80 default_server;": f"listen 127.0.0.1:{plain_port} default_server;",
        "listen 443 ssl default_server;": f"listen 127.0.0.1:{tls_port} ssl default_server;",
        "listen [::]:80 default_server;": "",
        "listen [::]:443 ssl default_server;": "",
        "server 127.0.0.1:8000;": f"server 127.0.0.1:{app_port};",
    }.items():
        assert example in site
        site = site.replace(example, str(here))
    (tmp_path / "site.conf").write_text(site)
    # Started as root, nginx's workers would run as "nobody", who cannot reach the cache in the
    # test's private directory.
    user = "user root;\n" if os.geteuid() == 0 else ""
    (tmp_path / "nginx.conf").write_text(
        f"{user}pid {tmp_path}/nginx.pid;\n"
        "daemon off;\n"
        "events {}\n"
        f"http {{ access_log off; include {tmp_path}/site.conf; }}\n"
    )
    return tmp_path / "nginx.conf"


def nginx_command(config: Path, *args: str) -> list[str]:
    return [
        NGINX,
        "-p",
        str(config.parent),
        "-c",
        str(config),
        "-e",
        str(config.parent / "e.log"),
        *args,
    ]


def wait_for_port(port: int, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


def http_get(
    port: int, path: str, *, tls: bool = False, host: str = "letters.example.org"
) -> tuple[int, http.client.HTTPMessage]:
    """The status and headers nginx answers with for `host` (named in TLS's SNI too)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    if tls:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        plain = socket.create_connection(("127.0.0.1", port), timeout=10)
        connection.sock = context.wrap_socket(plain, server_hostname=host)
    try:
        connection.request("GET", path, headers={"Host": host})
        answer = connection.getresponse()
        return answer.status, answer.headers
    finally:
        connection.close()


@contextmanager
def running_nginx(tmp_path: Path, app_port: int = 8000) -> Iterator[tuple[int, int]]:
    """nginx serving the example site in front of the app at app_port: its HTTP and HTTPS ports."""
    plain, tls = free_port(), free_port()
    nginx = subprocess.Popen(
        nginx_command(site_here(tmp_path, plain, tls, app_port)), stderr=subprocess.PIPE
    )
    try:
        wait_for_port(tls)
        yield plain, tls
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
        nginx.stderr.close()
