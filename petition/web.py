"""Cross-cutting web concerns: security headers, template helpers, fingerprinted assets."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from flask import (
    Flask,
    Request,
    Response,
    current_app,
    g,
    has_request_context,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_babel import format_date, format_datetime, format_decimal, format_timedelta
from itsdangerous import Serializer, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode
from werkzeug.routing import IntegerConverter, Map

from petition.dates import closing_day, days_left
from petition.db import utcnow

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'"
)


class IdConverter(IntegerConverter):
    """A database id in a URL: a positive integer that fits a 64-bit column (else 404)."""

    def __init__(self, url_map: Map) -> None:
        super().__init__(url_map, min=1, max=2**63 - 1)


def allow_framing(response: Response, policy: str) -> Response:
    """Give one response its own content security policy (the embeddable widget)."""
    response.petition_csp = policy
    return response


class Sessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, except that the public API has none.

    Nothing under /api/ reads or writes the session; without this, decoding the cookie cost
    the count poll a tenth of its time, and Flask-Login's look at the session after every
    request made the answer carry "Vary: Cookie", so a shared cache kept one copy per visitor.
    """

    _serializer: tuple[tuple[object, ...], URLSafeTimedSerializer | None] | None = None

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if request.path.startswith("/api/"):
            return None  # Flask uses a null session: readable, never saved
        return super().open_session(app, request)

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        # Flask builds a new serializer (and signer) to read and again to write every cookie;
        # one per set of keys does, and a changed SECRET_KEY still takes effect at once.
        keys = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        cached = self._serializer
        if cached is None or cached[0] != keys:
            cached = self._serializer = (keys, self._new_serializer(app))
        return cached[1]

    def _new_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        """Flask's own serializer for these settings, but a CompactSerializer."""
        if not app.secret_key:
            return None
        # itsdangerous expects the current key last.
        keys = [*(app.config["SECRET_KEY_FALLBACKS"] or ()), app.secret_key]
        return CompactSerializer(
            keys,
            salt=self.salt,
            serializer=self.serializer,
            signer_kwargs={
                "key_derivation": self.key_derivation,
                "digest_method": self.digest_method,
            },
        )


class CompactSerializer(URLSafeTimedSerializer):
    """itsdangerous' URL-safe serializer, without trying zlib on short payloads.

    It compresses every payload to see whether it shrinks. A session cookie or a CSRF token is
    a few dozen bytes of random hex that never does, and setting zlib up for it cost each new
    visitor's letter page two compressions, 6 % of the page. What it writes reads the same.
    """

    COMPRESS_FROM = 512

    def dump_payload(self, obj: Any) -> bytes:
        json = Serializer.dump_payload(self, obj)
        if len(json) >= self.COMPRESS_FROM:
            return super().dump_payload(obj)
        return base64_encode(json)


CSRF_SALT = "wtf-csrf-token"  # Flask-WTF's, so that its CSRFProtect checks these tokens


def csrf_token() -> str:
    """Flask-WTF's generate_csrf() for our settings, with one serializer per secret key.

    Flask-WTF builds a serializer for every token; every letter page makes one. The token is
    the one Flask-WTF would make (the session's random value, signed and timestamped with its
    salt), so CSRFProtect checks it as its own.
    """
    if "csrf_token" not in g:
        if "csrf_token" not in session:
            session["csrf_token"] = secrets.token_hex(20)  # as long as Flask-WTF's
        g.csrf_token = _csrf_serializer(_csrf_key()).dumps(session["csrf_token"])
    return g.csrf_token


def _csrf_key() -> str | bytes:
    return current_app.config.get("WTF_CSRF_SECRET_KEY") or current_app.secret_key


@lru_cache(maxsize=4)
def _csrf_serializer(key: str | bytes) -> CompactSerializer:
    return CompactSerializer(key, salt=CSRF_SALT)


def init_app(app: Flask) -> None:
    app.session_interface = Sessions()
    app.extensions["petition.assets"] = {}
    app.url_map.converters["id"] = IdConverter
    # /letters/x/ finds /letters/x rather than a 404: links get pasted with a trailing slash.
    app.url_map.strict_slashes = False
    app.after_request(_security_headers)
    # Replaces the csrf_token() that CSRFProtect.init_app() gave templates (the same tokens).
    app.jinja_env.globals.update(asset=asset, now=utcnow, csrf_token=csrf_token)
    app.jinja_env.filters.update(
        number=_number,
        datetime=_datetime,
        closing_day=_closing_day,
        ago=_ago,
        days_left=lambda closes_at: days_left(closes_at, utcnow()),
    )


COMMON_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Permissions-Policy", "interest-cohort=()"),
)
# What a public response carries when its view set none of these (see _security_headers).
PUBLIC_HEADERS = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    *COMMON_HEADERS,
    ("Referrer-Policy", "same-origin"),
)
PRIVATE_PATHS = ("/organiser", "/verify", "/signature", "/deliveries", "/news")


def _security_headers(response: Response) -> Response:
    # Only appends and assignments: asking werkzeug's Headers about a missing header raises
    # and catches an exception, which on the count poll cost a fifth of the request.
    headers = response.headers
    private = request.path.startswith(PRIVATE_PATHS)
    policy = getattr(response, "petition_csp", None)
    if policy is None and not private:
        headers.extend(PUBLIC_HEADERS)
        return response
    headers["Content-Security-Policy"] = policy or CONTENT_SECURITY_POLICY
    headers.extend(COMMON_HEADERS)
    if private:
        # Pages with tokens or personal data: never cached by a proxy, never leak the URL.
        headers["Cache-Control"] = "private, no-store"
        headers["Referrer-Policy"] = "no-referrer"
        headers["X-Robots-Tag"] = "noindex, nofollow"
    else:
        headers["Referrer-Policy"] = "same-origin"
    return response


@cache
def _fingerprint(static_folder: str, filename: str) -> str:
    digest = hashlib.sha256((Path(static_folder) / filename).read_bytes()).hexdigest()
    return digest[:12]


def asset(filename: str) -> str:
    """URL of a static file with a content hash, so it can be cached for a year."""
    # Kept per mount point and file: building it with url_for was 5 % of rendering a page.
    urls = current_app.extensions["petition.assets"]
    key = (request.script_root if has_request_context() else "", filename)
    url = urls.get(key)
    if url is None:
        version = _fingerprint(current_app.static_folder or "", filename)
        url = urls[key] = url_for("static", filename=filename, v=version)
    return url


def _number(value: int) -> str:
    return format_decimal(value)


def _closing_day(value: datetime) -> str:
    return format_date(closing_day(value), "d MMMM yyyy")


def _ago(value: datetime) -> str:
    return format_timedelta(value - utcnow(), add_direction=True, threshold=1.0)


def _datetime(value: datetime | None, format: str = "d MMMM yyyy") -> str:
    return format_datetime(value, format) if value else ""
