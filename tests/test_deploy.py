"""The example deployment in deploy/ is accepted by the programs that read it."""

from __future__ import annotations

import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def test_the_nginx_site_passes_nginx_t(tmp_path):
    if not os.access(NGINX, os.X_OK):
        pytest.skip("nginx test: install nginx (apt-get install -y nginx) to run it")
    if not shutil.which("openssl"):
        pytest.skip("nginx test: needs openssl for a throwaway certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    throwaway = ["-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=letters.example.org"]
    subprocess.run(
        ["openssl", "req", "-x509", *throwaway, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    site = (DEPLOY / "nginx" / "petition.conf").read_text()
    # Only the machine-specific paths change; every directive is nginx's to judge.
    for example, here in {
        "/etc/letsencrypt/live/letters.example.org/fullchain.pem": cert,
        "/etc/letsencrypt/live/letters.example.org/privkey.pem": key,
        "/var/cache/nginx/petition-count": tmp_path / "cache",
        "/etc/nginx/snippets/petition-proxy.conf": DEPLOY / "nginx" / "petition-proxy.conf",
    }.items():
        assert example in site
        site = site.replace(example, str(here))
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\n"
        "events {}\n"
        f"http {{ access_log off; include {tmp_path}/site.conf; }}\n"
    )
    logs = ["-e", str(tmp_path / "error.log")]
    checked = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), *logs],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr
    assert "syntax is ok" in checked.stderr


def test_gunicorn_settings_take_the_documented_environment_variables(monkeypatch):
    monkeypatch.setenv("GUNICORN_WORKERS", "3")
    monkeypatch.setenv("GUNICORN_WORKER_CLASS", "sync")
    monkeypatch.setenv("GUNICORN_BIND", "127.0.0.1:8123")
    settings = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))
    assert (settings["workers"], settings["worker_class"], settings["bind"]) == (
        3,
        "sync",
        "127.0.0.1:8123",
    )
    monkeypatch.delenv("GUNICORN_WORKER_CLASS")
    assert runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))["worker_class"] == "gthread"


def test_gunicorn_stops_with_the_configuration_error_alone(tmp_path):
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("PETITION_")
    }
    environment["PETITION_DATABASE_URL"] = f"sqlite:///{tmp_path / 'petition.sqlite3'}"
    started = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:0", "petition.wsgi:app"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode != 0
    assert "petition: PETITION_SECRET_KEY is not set" in started.stderr
    assert "Traceback" not in started.stderr
    assert "App failed to load" in started.stderr
