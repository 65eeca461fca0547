"""Configuration fails fast with a message that says what to fix."""

from __future__ import annotations

import re
import sqlite3

import pytest

from petition import create_app, migrate
from petition.config import ConfigError


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in ("PETITION_SECRET_KEY", "PETITION_ENV", "PETITION_MAIL_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PETITION_DATABASE_URL", f"sqlite:///{tmp_path / 'x.sqlite3'}")
    return monkeypatch


def test_production_start_without_secret_key_refuses(clean_env):
    with pytest.raises(ConfigError, match="PETITION_SECRET_KEY is not set"):
        create_app()


def test_development_start_gets_a_throwaway_secret(clean_env):
    clean_env.setenv("PETITION_ENV", "development")
    assert len(create_app().config["SECRET_KEY"]) > 40


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PETITION_MAIL_BACKEND", "carrier-pigeon", "must be one of smtp, file, console"),
        ("PETITION_SMTP_PORT", '"twenty-five"', "must be a whole number"),
        ("PETITION_SMTP_STARTTLS", '"maybe"', "must be true or false"),
        ("PETITION_BASE_URL", "letters.example.org", "absolute http"),
        ("PETITION_DATABASE_URL", "mysql://x", "SQLite"),
        (
            "PETITION_DATABASE_URL",
            "postgresql+pg8000://u@127.0.0.1/x",
            "needs the PostgreSQL driver",
        ),
        ("PETITION_DATABASE_URL", "postgresql+psycopg://u@[::1/x", "not a URL SQLAlchemy can read"),
        ("PETITION_ENV", "staging", "'production' or 'development'"),
        ("PETITION_COUNT_CACHE_SECONDS", "-1", "must not be negative"),
        ("PETITION_SIGN_RATE_LIMIT", "lots per day", "SIGN_RATE_LIMIT must be like"),
        ("PETITION_SIGN_RATE_LIMIT", "0 per hour", "SIGN_RATE_LIMIT must be like"),
        ("PETITION_VERIFY_TOKEN_HOURS", "100000000", "VERIFY_TOKEN_HOURS must be from 1 to 8760"),
        ("PETITION_SMTP_TIMEOUT", "0", "SMTP_TIMEOUT must be more than 0"),
        ("PETITION_VERIFY_TOKEN_HOURS", "0", "VERIFY_TOKEN_HOURS must be from 1 to 8760"),
        ("PETITION_DELIVERY_LINK_DAYS", "0", "DELIVERY_LINK_DAYS must be from 1 to 3650"),
        ("PETITION_SMTP_PORT", "99999", "SMTP_PORT must be from 1 to 65535"),
        ("PETITION_MAIL_FROM", "bad", "MAIL_FROM must be an address"),
        ("PETITION_MAIL_FROM", "x\r\nBcc: evil@x <a@b.org>", "MAIL_FROM must be an address"),
        ("PETITION_BASE_URL", "http://[::1", "absolute http"),
        ("PETITION_BASE_URL", "http://exa mple.org", "absolute http"),
        ("PETITION_BASE_URL", "http://letters.example.org:99999", "absolute http"),
        ("PETITION_BASE_URL", "http://letters.example.org:abc", "absolute http"),
        ("PETITION_BASE_URL", "https://:443", "absolute http"),
        ("PETITION_BASE_URL", "https://x.org/?a=1", "absolute http"),
        ("PETITION_BASE_URL", "https://x.org#f", "absolute http"),
        ("PETITION_BASE_URL", "https://user:pw@x.org", "absolute http"),
        ("PETITION_BASE_URL", "http://x.org:0", "absolute http"),
        ("PETITION_BASE_URL", "http://x.org:", "absolute http"),
        ("PETITION_BASE_URL", "http://-", "absolute http"),
        ("PETITION_SMTP_TIMEOUT", "nan", "SMTP_TIMEOUT must be a number of seconds"),
        ("PETITION_SMTP_TIMEOUT", "inf", "SMTP_TIMEOUT must be a number of seconds"),
        ("PETITION_COUNT_CACHE_SECONDS", "1e400", "COUNT_CACHE_SECONDS must be a number"),
        ("PETITION_COUNT_CACHE_SECONDS", "true", "COUNT_CACHE_SECONDS must be a number"),
        ("PETITION_COUNT_CACHE_SECONDS", "86400", "COUNT_CACHE_SECONDS must be at most 3600"),
        ("PETITION_MAX_CONTENT_LENGTH", "abc", "MAX_CONTENT_LENGTH must be a whole number"),
        ("PETITION_MAX_CONTENT_LENGTH", "100", "MAX_CONTENT_LENGTH must be from 65536"),
        ("PETITION_SESSION_COOKIE_SAMESITE", "Bogus", "SAMESITE must be Lax or Strict"),
        ("PETITION_BABEL_DEFAULT_LOCALE", "xx_YY", "BABEL_DEFAULT_LOCALE must be a locale"),
        ("PETITION_DATABASE_ECHO", '"maybe"', "DATABASE_ECHO must be true or false"),
        ("PETITION_SIGN_RATE_LIMIT", "1 per 99999999999999999999 years", "SIGN_RATE_LIMIT"),
        ("PETITION_TRUSTED_HOSTS", "https://letters.example.org", "'https://letters.example.org'"),
        ("PETITION_TRUSTED_HOSTS", "letters.example.org/letters", "not a URL"),
        (
            "PETITION_SECRET_KEY",
            "change-me-to-48-random-characters-from-secrets-token-urlsafe",
            "still the example's placeholder",
        ),
    ],
)
def test_malformed_settings_are_named(clean_env, name, value, message):
    clean_env.setenv("PETITION_SECRET_KEY", "s" * 40)
    clean_env.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        create_app()


@pytest.mark.parametrize(
    ("contents", "starttls", "message"),
    [
        (None, "true", "'/nowhere/ca.pem' cannot be used: No such file or directory"),
        ("not a certificate", "true", "cannot be used: it holds no certificate in PEM form"),
        ("not read", "false", "only used with STARTTLS: set PETITION_SMTP_STARTTLS=true"),
    ],
)
def test_an_smtp_ca_file_that_cannot_be_used_is_named(
    clean_env, tmp_path, contents, starttls, message
):
    clean_env.setenv("PETITION_SECRET_KEY", "s" * 40)
    clean_env.setenv("PETITION_SMTP_STARTTLS", starttls)
    path = "/nowhere/ca.pem"
    if contents is not None:
        path = str(tmp_path / "ca.pem")
        (tmp_path / "ca.pem").write_text(contents)
    clean_env.setenv("PETITION_SMTP_CA_FILE", path)
    with pytest.raises(ConfigError, match=re.escape(message)):
        create_app()


@pytest.mark.parametrize(
    "address",
    [
        "https://letters.example.org",
        "https://example.org/letters/",
        "http://127.0.0.1:5000",
        "http://[::1]:8000",
        "https://xn--bcher-kva.example",
        "https://bücher.example",
        "http://localhost",
    ],
)
def test_every_usable_base_url_is_taken(clean_env, address):
    clean_env.setenv("PETITION_SECRET_KEY", "s" * 40)
    clean_env.setenv("PETITION_BASE_URL", address)
    assert create_app().config["BASE_URL"] == address.rstrip("/")


def test_samesite_is_taken_in_any_case(clean_env):
    clean_env.setenv("PETITION_SECRET_KEY", "s" * 40)
    clean_env.setenv("PETITION_SESSION_COOKIE_SAMESITE", "strict")
    assert create_app().config["SESSION_COOKIE_SAMESITE"] == "Strict"


def test_any_flask_setting_can_be_overridden_from_the_environment(clean_env):
    clean_env.setenv("PETITION_SECRET_KEY", "s" * 40)
    clean_env.setenv("PETITION_SESSION_COOKIE_SECURE", "false")
    clean_env.setenv("PETITION_SMTP_PORT", "2525")
    app = create_app()
    assert app.config["SESSION_COOKIE_SECURE"] is False
    assert app.config["SMTP_PORT"] == 2525
    assert app.config["SECRET_KEY"] == "s" * 40


def test_trusted_hosts_are_names_separated_by_commas(clean_env):
    clean_env.setenv("PETITION_SECRET_KEY", "s" * 40)
    clean_env.setenv("PETITION_TRUSTED_HOSTS", "Letters.example.org, .example.net")
    assert create_app().config["TRUSTED_HOSTS"] == ["letters.example.org", ".example.net"]
    clean_env.setenv("PETITION_TRUSTED_HOSTS", '["letters.example.org"]')
    assert create_app().config["TRUSTED_HOSTS"] == ["letters.example.org"]
    # As Werkzeug takes them: ports ignored, other scripts and IPv6 addresses compared as such.
    clean_env.setenv("PETITION_TRUSTED_HOSTS", "localhost:8000, bücher.example, [::1]")
    assert create_app().config["TRUSTED_HOSTS"] == ["localhost:8000", "bücher.example", "[::1]"]
    clean_env.setenv("PETITION_TRUSTED_HOSTS", "")
    assert create_app().config["TRUSTED_HOSTS"] is None


def test_an_unknown_host_is_a_short_400_and_nothing_in_the_log(app_config, make_letter, caplog):
    letter = make_letter()
    trusting = create_app(dict(app_config, TRUSTED_HOSTS=["letters.example.org", ".example.net"]))
    client = trusting.test_client()
    paths = ("/", f"/letters/{letter.slug}", f"/api/v1/letters/{letter.slug}", "/nowhere")
    for host in ("letters.example.org", "evil.example"):  # the second after the page is kept
        answer = client.get(f"/letters/{letter.slug}", headers={"Host": host})
    assert (answer.status_code, answer.get_data(as_text=True)) == (400, "Unknown host.\n")
    assert (
        client.post(f"/letters/{letter.slug}/sign", headers={"Host": "evil.example"}).status_code
        == 400
    )
    for path in paths:  # scanners send any Host: no page can be built for one
        answer = client.get(path, headers={"Host": "evil.example"})
        assert (answer.status_code, answer.get_data(as_text=True)) == (400, "Unknown host.\n")
    assert caplog.records == []
    for host in ("letters.example.org", "letters.example.org:8443", "www.example.net"):
        assert client.get(f"/letters/{letter.slug}", headers={"Host": host}).status_code == 200
    trusting.extensions["petition.engine"].dispose()


def test_security_headers_are_set(client, make_letter):
    letter = make_letter()
    response = client.get(f"/letters/{letter.slug}")
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/organiser/login").headers["Cache-Control"] == "private, no-store"


def test_the_sign_rate_limit_can_be_turned_off(clean_env):
    clean_env.setenv("PETITION_SECRET_KEY", "s" * 40)
    clean_env.setenv("PETITION_SIGN_RATE_LIMIT", "off")
    app = create_app()
    assert app.extensions["petition.sign_limits"] == []


@pytest.mark.parametrize("secret", ["1" * 48, "true" + "0" * 40])
def test_a_secret_key_is_text_whatever_it_looks_like(clean_env, secret):
    clean_env.setenv("PETITION_SECRET_KEY", secret)
    assert create_app().config["SECRET_KEY"] == secret


def test_the_session_signer_is_kept_until_the_secret_key_changes(clean_env):
    from itsdangerous import BadSignature

    clean_env.setenv("PETITION_SECRET_KEY", "s" * 40)
    app = create_app()
    sessions = app.session_interface
    first = sessions.get_signing_serializer(app)
    assert sessions.get_signing_serializer(app) is first
    cookie = first.dumps({"csrf_token": "x"})
    app.secret_key = "t" * 40
    rotated = sessions.get_signing_serializer(app)
    with pytest.raises(BadSignature):
        rotated.loads(cookie)
    app.config["SECRET_KEY_FALLBACKS"] = ["s" * 40]  # the old key still reads old cookies
    assert sessions.get_signing_serializer(app).loads(cookie) == {"csrf_token": "x"}


def test_a_file_that_is_not_a_database_or_is_behind_is_a_503_that_says_so(
    clean_env, monkeypatch, tmp_path, caplog
):
    file = tmp_path / "notes.txt"
    file.write_text("not a database\n" * 100)
    monkeypatch.setenv("PETITION_ENV", "development")
    monkeypatch.setenv("PETITION_DATABASE_URL", f"sqlite:///{file}")
    for path in ("/", "/api/v1/letters/any-letter"):
        assert create_app().test_client().get(path).status_code == 503
    assert "the file is not a SQLite database (check PETITION_DATABASE_URL)" in caplog.text

    behind = tmp_path / "behind.sqlite3"
    monkeypatch.setenv("PETITION_DATABASE_URL", f"sqlite:///{behind}")
    migrate.upgrade(f"sqlite:///{behind}")
    with sqlite3.connect(behind) as connection:  # as if made before a column was added
        connection.execute("ALTER TABLE letter DROP COLUMN news_sent_at")
    caplog.clear()
    assert create_app().test_client().get("/").status_code == 503
    assert "no such column: letter.news_sent_at (run: petition db upgrade)" in caplog.text


def test_a_missing_sqlite_file_is_a_503_that_names_it_and_nothing_is_made(
    clean_env, monkeypatch, tmp_path, caplog
):
    file = tmp_path / "mistyped" / "petition.sqlite3"
    monkeypatch.setenv("PETITION_ENV", "development")
    monkeypatch.setenv("PETITION_DATABASE_URL", f"sqlite:///{file}")
    response = create_app().test_client().get("/")
    assert response.status_code == 503
    assert f"no database file at {file} (run: petition db upgrade)" in caplog.text
    assert not file.parent.exists()
