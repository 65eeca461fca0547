"""Configuration: defaults, then PETITION_* environment variables, then explicit overrides."""

from __future__ import annotations

import math
import os
import re
import secrets
import ssl
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from babel import Locale, UnknownLocaleError
from flask import Flask
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from petition import text
from petition.mailer import tls_context

MAIL_BACKENDS = ("smtp", "file", "console")


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message says which and how to fix it."""


def defaults(instance_path: str) -> dict[str, Any]:
    """Settings that make a local SQLite install work with no configuration at all."""
    instance = Path(instance_path)
    return {
        "ENV": "production",
        "SECRET_KEY": None,
        "DATABASE_URL": f"sqlite:///{instance / 'petition.sqlite3'}",
        "DATABASE_ECHO": False,
        "DATABASE_POOL_SIZE": 5,  # connections kept open per process (3 times that at a peak)
        "DATABASE_PREPARED_STATEMENTS": True,  # false behind PgBouncer < 1.21 in transaction mode
        "BASE_URL": "http://127.0.0.1:5000",
        "MAIL_BACKEND": "console",
        "MAIL_FROM": "Open letters <letters@localhost>",
        "MAIL_DIR": str(instance / "mail"),
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": 25,
        "SMTP_USERNAME": None,
        "SMTP_PASSWORD": None,
        "SMTP_STARTTLS": False,
        # Certificates STARTTLS trusts instead of the system's (a relay with its own CA).
        "SMTP_CA_FILE": None,
        "SMTP_TIMEOUT": 10.0,
        "MAIL_MAX_ATTEMPTS": 8,
        # How long a worker may hold a message it is sending before another may take it over.
        "MAIL_LEASE_SECONDS": 120,
        # The first retry after a failed send; each further one waits twice as long (to 1 h).
        "MAIL_RETRY_SECONDS": 30,
        # Days a message that could not be sent stays visible to operators before it is deleted.
        "PARKED_MAIL_DAYS": 30,
        "REDIS_URL": None,
        # How many proxies in front of the app set X-Forwarded-For/-Proto/-Host (0: none).
        "TRUSTED_PROXIES": 0,
        # Signatures accepted from one client address (an IPv6 /64): each sends an email, so
        # without a limit anyone could have the site mail any address. "off" for none.
        "SIGN_RATE_LIMIT": "200 per hour",
        "COUNT_CACHE_SECONDS": 2.0,
        # How often an open page first asks for the count (it slows down while nothing changes).
        "COUNT_POLL_SECONDS": 5.0,
        "VERIFY_TOKEN_HOURS": 72,
        "DELIVERY_LINK_DAYS": 30,
        "SESSION_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": True,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "WTF_CSRF_TIME_LIMIT": None,
        "MAX_CONTENT_LENGTH": 1024 * 1024,
        # Every asset URL carries a content hash (web.asset), so browsers may keep files a year.
        "SEND_FILE_MAX_AGE_DEFAULT": 365 * 24 * 3600,
        "BABEL_DEFAULT_LOCALE": "en_GB",
        "BABEL_DEFAULT_TIMEZONE": "Europe/London",
    }


# Settings that are text whatever they look like: from_prefixed_env reads values as JSON first,
# so a secret of digits would become a number and a password "true" a boolean.
TEXT_SETTINGS = (
    "SECRET_KEY",
    "DATABASE_URL",
    "BASE_URL",
    "MAIL_FROM",
    "MAIL_DIR",
    "SMTP_HOST",
    "SMTP_USERNAME",
    "SMTP_PASSWORD",
    "SMTP_CA_FILE",
    "REDIS_URL",
    "SIGN_RATE_LIMIT",
)

# Whole-number settings and the smallest (and largest) value that works.
WHOLE_NUMBERS = {
    "SMTP_PORT": (1, 65535),
    "MAIL_MAX_ATTEMPTS": (1, 1000),
    "MAIL_LEASE_SECONDS": (1, 86400),
    "DATABASE_POOL_SIZE": (1, 1000),
    "MAIL_RETRY_SECONDS": (0, 86400),
    "VERIFY_TOKEN_HOURS": (1, 24 * 365),
    "DELIVERY_LINK_DAYS": (1, 3650),
    "PARKED_MAIL_DAYS": (1, 3650),
    "TRUSTED_PROXIES": (0, 10),
    "MAX_CONTENT_LENGTH": (64 * 1024, 100 * 1024 * 1024),
}
# Settings in seconds, and the largest value that makes sense.
SECONDS = {
    "COUNT_CACHE_SECONDS": 3600,
    "COUNT_POLL_SECONDS": 3600,
    "SMTP_TIMEOUT": 600,
}


def load(app: Flask, overrides: dict[str, Any] | None = None) -> None:
    """Fill app.config and refuse to start on a missing or malformed setting."""
    app.config.update(defaults(app.instance_path))
    app.config.from_prefixed_env("PETITION")
    for key in TEXT_SETTINGS:
        if (raw := os.environ.get(f"PETITION_{key}")) is not None:
            app.config[key] = raw
    if overrides:
        app.config.update(overrides)
    _coerce(app.config)
    _check(app)


def _coerce(config: dict[str, Any]) -> None:
    """from_prefixed_env leaves values it cannot parse as JSON as strings; fix the typed ones."""
    for key, (low, high) in WHOLE_NUMBERS.items():
        config[key] = _integer(key, config[key], low, high)
    for key, high in SECONDS.items():
        config[key] = _number(key, config[key], high)
    config["COUNT_POLL_SECONDS"] = max(config["COUNT_POLL_SECONDS"], 0.2)
    if config["SMTP_TIMEOUT"] == 0:
        raise ConfigError("PETITION_SMTP_TIMEOUT must be more than 0 seconds (10 is usual).")
    for key in (
        "SMTP_STARTTLS",
        "SESSION_COOKIE_SECURE",
        "REMEMBER_COOKIE_SECURE",
        "DATABASE_PREPARED_STATEMENTS",
        "DATABASE_ECHO",
    ):
        config[key] = _boolean(key, config[key])
    config["BASE_URL"] = str(config["BASE_URL"]).rstrip("/")
    config["TRUSTED_HOSTS"] = _host_names("TRUSTED_HOSTS", config.get("TRUSTED_HOSTS"))


def _integer(key: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(f"PETITION_{key} must be a whole number, not {value!r}.")
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"PETITION_{key} must be a whole number, not {value!r}.") from None
    if number < 0:
        raise ConfigError(f"PETITION_{key} must not be negative (got {number}).")
    if not low <= number <= high:
        raise ConfigError(f"PETITION_{key} must be from {low} to {high} (got {number}).")
    return number


def _number(key: str, value: Any, high: float) -> float:
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):  # nan and inf too: float() reads them, nothing else works
        raise ConfigError(f"PETITION_{key} must be a number of seconds, not {value!r}.")
    if number < 0:
        raise ConfigError(f"PETITION_{key} must not be negative (got {number:g}).")
    if number > high:
        raise ConfigError(f"PETITION_{key} must be at most {high:g} seconds (got {number:g}).")
    return number


def _host_names(key: str, value: Any) -> list[str] | None:
    """Host names separated by commas or spaces (or a JSON list), as Werkzeug compares them:
    a port is ignored, a leading dot takes in every subdomain. None, or nothing, lets any host
    through. A URL is refused: Werkzeug would never match it, and every request would fail."""
    if value is None:
        return None
    names = value if isinstance(value, list) else re.split(r"[\s,]+", str(value))
    names = [str(name).strip().lower() for name in names if str(name).strip()]
    wrong = [name for name in names if "/" in name or "@" in name]
    if wrong:
        raise ConfigError(
            f"PETITION_{key} must be host names separated by commas, such as "
            f"letters.example.org (a leading dot takes in every subdomain), not a URL: "
            f"{wrong[0]!r}."
        )
    return names or None


def _boolean(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"PETITION_{key} must be true or false, not {value!r}.")


def _check(app: Flask) -> None:
    config = app.config
    if config["ENV"] not in ("production", "development"):
        raise ConfigError(
            f"PETITION_ENV must be 'production' or 'development', not {config['ENV']!r}."
        )
    if not config.get("SECRET_KEY"):
        if config["ENV"] == "production" and not app.testing:
            raise ConfigError(
                "PETITION_SECRET_KEY is not set. A production start needs a long random value, "
                "for example: python -c 'import secrets; print(secrets.token_urlsafe(48))'. "
                "For a local trial set PETITION_ENV=development instead."
            )
        config["SECRET_KEY"] = secrets.token_urlsafe(48)
    elif config["ENV"] == "production" and not app.testing:
        if len(str(config["SECRET_KEY"])) < 32:
            raise ConfigError(
                "PETITION_SECRET_KEY is too short to be safe: use at least 32 random characters."
            )
        if str(config["SECRET_KEY"]).startswith("change-me"):  # deploy/petition.env.example
            raise ConfigError(
                "PETITION_SECRET_KEY is still the example's placeholder: replace it with "
                "python -c 'import secrets; print(secrets.token_urlsafe(48))'."
            )
    _, sender = parseaddr(str(config["MAIL_FROM"]))
    if "@" not in sender or text.problem(str(config["MAIL_FROM"])):
        raise ConfigError(
            "PETITION_MAIL_FROM must be an address, optionally with a name, such as "
            f"'Open letters <letters@example.org>', not {config['MAIL_FROM']!r}."
        )
    if config["MAIL_BACKEND"] not in MAIL_BACKENDS:
        raise ConfigError(
            f"PETITION_MAIL_BACKEND must be one of {', '.join(MAIL_BACKENDS)}, "
            f"not {config['MAIL_BACKEND']!r}."
        )
    if not _is_site_address(config["BASE_URL"]):
        raise ConfigError(
            f"PETITION_BASE_URL must be an absolute http(s) URL such as "
            f"https://letters.example.org, not {config['BASE_URL']!r}."
        )
    config["SESSION_COOKIE_SAMESITE"] = str(config["SESSION_COOKIE_SAMESITE"]).capitalize()
    if config["SESSION_COOKIE_SAMESITE"] not in ("Lax", "Strict"):
        raise ConfigError(
            "PETITION_SESSION_COOKIE_SAMESITE must be Lax or Strict, not "
            f"{config['SESSION_COOKIE_SAMESITE']!r}."
        )
    try:
        Locale.parse(str(config["BABEL_DEFAULT_LOCALE"]))
    except (ValueError, UnknownLocaleError):
        raise ConfigError(
            "PETITION_BABEL_DEFAULT_LOCALE must be a locale such as en_GB, not "
            f"{config['BABEL_DEFAULT_LOCALE']!r}."
        ) from None
    _check_smtp_ca_file(config)
    redis_url = config.get("REDIS_URL")
    if redis_url and not str(redis_url).startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(
            f"PETITION_REDIS_URL must look like redis://host:6379/0, not {redis_url!r}."
        )
    url = str(config["DATABASE_URL"])
    if not url.startswith(("sqlite:", "postgresql")):
        raise ConfigError(
            "PETITION_DATABASE_URL must be a SQLite (sqlite:///path) or PostgreSQL "
            f"(postgresql+psycopg://user@host/db) URL, not {url!r}."
        )
    if url.startswith("postgresql"):
        _check_postgresql_driver(url)


def _check_smtp_ca_file(config: dict[str, Any]) -> None:
    """A CA file is read at start, so that a wrong path stops the worker with a sentence
    rather than failing every batch; without STARTTLS it would be silently unused."""
    ca_file = config.get("SMTP_CA_FILE") or None
    config["SMTP_CA_FILE"] = ca_file
    if ca_file is None:
        return
    if not config["SMTP_STARTTLS"]:
        raise ConfigError(
            "PETITION_SMTP_CA_FILE is only used with STARTTLS: set PETITION_SMTP_STARTTLS=true "
            "as well, or leave the CA file out."
        )
    problem = _ca_file_problem(str(ca_file))
    if problem:
        raise ConfigError(
            f"PETITION_SMTP_CA_FILE must be a PEM file of the certificates to trust for the "
            f"mail server; {ca_file!r} cannot be used: {problem}."
        )


def _ca_file_problem(path: str) -> str | None:
    try:
        tls_context(path)
    except ssl.SSLError:  # before OSError, whose kind it is
        return "it holds no certificate in PEM form"
    except OSError as error:
        return str(error.strerror or error)
    return None


def _is_site_address(value: object) -> bool:
    """Whether every link in every email can start with this: http(s), a host, a port if any,
    a path if any, and nothing else (no query, fragment or password to carry into links)."""
    address = str(value)
    try:
        base = urlsplit(address)
        port = base.port  # reading it checks it: a port that is no number raises
    except ValueError:  # "http://[::1", "http://x:99999", "http://x:abc"
        return False
    host = base.hostname or ""
    return (
        base.scheme in ("http", "https")
        and (_HOST_NAME.fullmatch(host) is not None or ":" in host)  # or an IPv6 address
        and (port is None or port > 0)
        and not base.netloc.endswith(":")
        and not (base.query or base.fragment or "?" in address or "#" in address)
        and base.username is None
        and not any(character.isspace() for character in address)
        and not text.problem(address)
    )


# Labels of letters, digits and inner hyphens, joined by dots (any script: an IDN as typed).
_HOST_NAME = re.compile(r"(?!-)[^\W_](?:[^\W_]|-)*(?<!-)(?:\.(?!-)[^\W_](?:[^\W_]|-)*(?<!-))*")


def _check_postgresql_driver(url: str) -> None:
    """A PostgreSQL URL whose driver is missing gets one sentence, not an import traceback."""
    try:
        make_url(url).get_dialect().import_dbapi()
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise ConfigError(
            "PETITION_DATABASE_URL is not a URL SQLAlchemy can read: "
            "postgresql+psycopg://user:password@host:5432/dbname is the form."
        ) from None
    except ImportError as error:
        raise ConfigError(
            f"PETITION_DATABASE_URL needs the PostgreSQL driver, which is not installed "
            f"({error}). Install it with: pip install '.[postgres]' (psycopg 3), and write "
            "the URL as postgresql+psycopg://..."
        ) from None
