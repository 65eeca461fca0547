"""Cross-cutting web concerns: security headers, template helpers, fingerprinted assets."""

from __future__ import annotations

import hashlib
from datetime import datetime
from functools import cache
from pathlib import Path

from flask import Flask, Response, current_app, request, url_for
from flask_babel import format_datetime, format_decimal

from petition.db import utcnow

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'"
)


def init_app(app: Flask) -> None:
    app.after_request(_security_headers)
    app.jinja_env.globals.update(asset=asset, now=utcnow)
    app.jinja_env.filters.update(number=_number, datetime=_datetime)


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Permissions-Policy", "interest-cohort=()")
    if request.path.startswith(("/organiser", "/verify", "/signature", "/deliveries")):
        # Pages with tokens or personal data: never cached by a proxy, never leak the URL.
        response.headers["Cache-Control"] = "private, no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
    return response


@cache
def _fingerprint(static_folder: str, filename: str) -> str:
    digest = hashlib.sha256((Path(static_folder) / filename).read_bytes()).hexdigest()
    return digest[:12]


def asset(filename: str) -> str:
    """URL of a static file with a content hash, so it can be cached for a year."""
    version = _fingerprint(current_app.static_folder or "", filename)
    return url_for("static", filename=filename, v=version)


def _number(value: int) -> str:
    return format_decimal(value)


def _datetime(value: datetime | None, format: str = "d MMMM yyyy") -> str:
    return format_datetime(value, format) if value else ""
