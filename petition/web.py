"""Cross-cutting web concerns: security headers, template helpers, fingerprinted assets."""

from __future__ import annotations

import hashlib
from datetime import datetime
from functools import cache
from pathlib import Path

from flask import (
    Flask,
    Response,
    current_app,
    has_request_context,
    request,
    url_for,
)
from flask_babel import format_date, format_datetime, format_decimal, format_timedelta
from werkzeug.routing import BaseConverter, IntegerConverter, Map, UnicodeConverter

from petition.dates import closing_day, days_left
from petition.db import utcnow
from petition.services import signatories

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'"
)


class IdConverter(IntegerConverter):
    """A database id in a URL: a positive integer that fits a 64-bit column (else 404)."""

    def __init__(self, url_map: Map) -> None:
        super().__init__(url_map, min=1, max=2**63 - 1)


class PrintableConverter(BaseConverter):
    """A path segment without control characters: no slug or token holds one, and PostgreSQL
    refuses a NUL in text, so `/letters/a%00b` was a 500 there; now it matches no route (404).
    Werkzeug's default, less those characters (no route here gives a length)."""

    regex = "[^/\x00-\x1f\x7f]+"
    part_isolating = True  # one segment (BaseConverter guesses otherwise: the regex has a "/")


def allow_framing(response: Response, policy: str) -> Response:
    """Give one response its own content security policy (the embeddable widget)."""
    response.petition_csp = policy
    return response


def init_app(app: Flask) -> None:
    app.extensions["petition.assets"] = {}
    app.url_map.converters["id"] = IdConverter
    app.url_map.converters["default"] = app.url_map.converters["string"] = PrintableConverter
    # A link's secret may come mangled (a mail program's doing): any text reaches the view, which
    # only ever looks up its digest, and says that the link does not work.
    app.url_map.converters["token"] = UnicodeConverter
    # /letters/x/ finds /letters/x rather than a 404: links get pasted with a trailing slash.
    app.url_map.strict_slashes = False
    app.after_request(_security_headers)
    app.jinja_env.globals.update(asset=asset, now=utcnow)
    app.jinja_env.filters.update(
        number=_number,
        datetime=_datetime,
        closing_day=_closing_day,
        ago=_ago,
        days_left=lambda closes_at: days_left(closes_at, utcnow()),
        spoken_name=signatories.spoken_name,
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
NO_STORE = ("Cache-Control", "private, no-store")
# Pages with tokens or personal data: never cached by a proxy, never leak the URL. Their
# referrer is the site's origin alone: on HTTPS, CSRFProtect refuses a form posted with no
# referrer from this site, so "no-referrer" broke logging in and confirming behind TLS.
PRIVATE_HEADERS = (
    NO_STORE,
    ("Referrer-Policy", "strict-origin"),
    ("X-Robots-Tag", "noindex, nofollow"),
)


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
        for name, value in PRIVATE_HEADERS:
            headers[name] = value
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
