"""The example deployment in deploy/ is accepted by the programs that read it."""

from __future__ import annotations

import http.client
import os
import runpy
import shutil
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.nginx_site import (
    DEPLOY,
    http_get,
    nginx_command,
    running_nginx,
    site_here,
    wait_for_port,
)


def test_the_nginx_site_passes_nginx_t(tmp_path):
    checked = subprocess.run(
        nginx_command(site_here(tmp_path), "-t"), capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr
    assert "syntax is ok" in checked.stderr


def test_nginx_logs_secret_links_without_their_token_and_always_sends_hsts(tmp_path):
    secret_links = {
        "verify": "/verify/SECRETverify",
        "signature": "/signature/SECRETmanage",
        "news/stop": "/news/stop/SECRETnews",
        "deliveries": "/deliveries/SECRETdl",
    }
    with running_nginx(tmp_path) as (plain, tls):
        for path in secret_links.values():
            assert http_get(plain, path)[0] == 301  # to HTTPS, and logged
            # no app behind it here, but logged all the same
            assert http_get(tls, path, tls=True)[0] == 502
        # Every location's answers, errors too: one with add_header of its own inherits none.
        for path in ("/letters/open-one", "/static/css/site.css", "/api/v1/letters/open-one"):
            status, headers = http_get(tls, path, tls=True)
            assert headers.get("Strict-Transport-Security") == "max-age=31536000", (path, status)
        status, headers = http_get(tls, "/static/css/site.css", tls=True)
        assert status == 200
        assert headers.get_all("Cache-Control") == ["public, max-age=31536000, immutable"]
    log = (tmp_path / "access.log").read_text()
    assert "SECRET" not in log
    for kind in secret_links:
        assert log.count(f"GET /{kind}/<token> HTTP/1.1") == 2
    assert "GET /letters/open-one HTTP/1.1" in log


def test_nginx_closes_requests_for_any_other_host_without_an_answer(tmp_path):
    with running_nginx(tmp_path) as (plain, tls):
        with pytest.raises(http.client.RemoteDisconnected):
            http_get(plain, "/", host="scanner.example")
        with pytest.raises(ssl.SSLError):  # refused in the handshake: no certificate shown
            http_get(tls, "/", tls=True, host="scanner.example")
        assert http_get(tls, "/static/css/site.css", tls=True)[0] == 200


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
    for name in ("GUNICORN_WORKERS", "GUNICORN_WORKER_CLASS"):
        monkeypatch.delenv(name)
    cores = len(os.sched_getaffinity(0))
    for url in ("sqlite:////srv/petition/petition.sqlite3", "postgresql+psycopg://db/petition"):
        monkeypatch.setenv("PETITION_DATABASE_URL", url)
        settings = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))
        assert (settings["workers"], settings["worker_class"]) == (2 * cores, "sync")


def _app_environment(tmp_path: Path) -> dict[str, str]:
    """This environment without any PETITION_* setting, and a SQLite database in tmp_path."""
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("PETITION_")
    }
    environment["PETITION_DATABASE_URL"] = f"sqlite:///{tmp_path / 'petition.sqlite3'}"
    return environment


@pytest.mark.parametrize("settings", [[], ["-c", str(DEPLOY / "gunicorn.conf.py")]])
def test_gunicorn_stops_with_the_configuration_error_alone(tmp_path, settings):
    environment = _app_environment(tmp_path)
    environment["GUNICORN_WORKERS"] = "3"
    started = subprocess.run(
        [sys.executable, "-m", "gunicorn", *settings, "--bind", "127.0.0.1:0", "petition.wsgi:app"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode != 0
    assert "Traceback" not in started.stderr
    if settings:  # the deployed settings check once, in the master, before any worker starts
        assert started.stderr.count("petition: PETITION_SECRET_KEY is not set") == 1
        assert "Booting worker" not in started.stderr
    else:
        assert "petition: PETITION_SECRET_KEY is not set" in started.stderr
        assert "App failed to load" in started.stderr


def test_gunicorns_master_checks_the_settings_without_importing_the_app(tmp_path):
    # Workers that a reload (HUP) starts load the new code only if the master never imported it.
    environment = _app_environment(tmp_path)
    environment["PETITION_SECRET_KEY"] = "s" * 40
    master = (
        "import runpy, sys\n"
        f"runpy.run_path({str(DEPLOY / 'gunicorn.conf.py')!r})['on_starting'](None)\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'petition'))\n"
    )
    checked = subprocess.run(
        [sys.executable, "-c", master], env=environment, capture_output=True, text=True
    )
    assert (checked.returncode, checked.stdout.strip()) == (0, "[]"), checked.stderr


SECRET = "01a2SECRETnotForTheLogs"


def test_gunicorns_access_log_writes_secret_links_without_their_token(tmp_path):
    port = free_port()
    environment = _app_environment(tmp_path)
    environment.update(
        PETITION_SECRET_KEY="s" * 40,
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS="1",
        GUNICORN_ACCESSLOG=str(tmp_path / "access.log"),
    )
    subprocess.run(
        [sys.executable, "-m", "petition.cli", "db", "upgrade"], env=environment, check=True
    )
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(DEPLOY / "gunicorn.conf.py"),
            "petition.wsgi:app",
        ],
        env=environment,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, seconds=30)
        for path in (f"/verify/{SECRET}", f"/signature/{SECRET}?x=1", "/letters/open-one"):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", path)
            connection.getresponse().read()
            connection.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    log = (tmp_path / "access.log").read_text()
    assert SECRET not in log
    assert '"GET /verify/<token> HTTP/1.1"' in log
    assert '"GET /signature/<token> HTTP/1.1"' in log
    assert '"GET /letters/open-one HTTP/1.1"' in log


def test_gunicorns_error_log_writes_a_failed_request_without_its_token(tmp_path):
    from gunicorn.config import Config

    logger_class = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))["logger_class"]
    settings = Config()
    settings.set("errorlog", str(tmp_path / "error.log"))
    logger = logger_class(settings)
    try:
        raise RuntimeError("the error page failed too")
    except RuntimeError:  # as gunicorn's worker logs a request the app could not answer
        logger.exception("Error handling request %s", f"/deliveries/{SECRET}/signatories.csv")
    log = (tmp_path / "error.log").read_text()
    assert "Error handling request /deliveries/<token>/signatories.csv" in log
    assert "RuntimeError: the error page failed too" in log
    assert SECRET not in log


def test_the_systemd_units_pass_systemd_analyze(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd test: needs systemd-analyze")
    venv = Path(sys.executable).parent
    for unit in (DEPLOY / "systemd").glob("*.service"):
        text = unit.read_text()
        # Both web and CLI run the venv's copy of the app, from outside the checkout.
        assert "WorkingDirectory=/var/lib/petition" in text and "StateDirectory=petition" in text
        here = (
            text.replace("/srv/petition/venv/bin/", f"{venv}/")
            .replace("/srv/petition/deploy/", f"{DEPLOY}/")
            .replace("User=petition", "User=root")
            .replace("Group=petition", "Group=root")
        )
        (tmp_path / unit.name).write_text(here)
    units = sorted(str(path) for path in tmp_path.glob("*.service"))
    assert len(units) == 3
    checked = subprocess.run([analyze, "verify", *units], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
