"""Signing and confirming, answered before Flask runs when nothing about the request is unusual.

When a letter spreads, almost every request that writes is one of two form posts: a new
signature, and a press of the confirm button. Flask's request machinery (the request and its
context, routing, the session, the extensions' hooks, the response object) cost more than the
signature itself. This WSGI middleware answers the usual case of each with the same form, the
same services and the same response as the views in public.py, and hands everything else to
Flask before changing anything:

- a body that is not a small urlencoded form, a session with anything in it but the CSRF secret
  (someone logged in, a message waiting), a CSRF token that CSRFProtect would refuse;
- signing: a letter that is not published, a form that would show errors;
- confirming: a token that confirms nothing (already confirmed, expired, unknown).

A request that fails here (the database is down, the letter closed a moment ago) goes to Flask
too: the view tries again and shows what went wrong, the 503 page say. Once a signature has
been counted against the rate limit here the environ says so (limits.SIGNING_COUNTED), so that
the view does not count it twice. tests/test_direct.py sends requests both ways and compares
the answers.
"""

from __future__ import annotations

import hmac
import io
import logging
from collections.abc import Callable, Iterable
from functools import lru_cache
from urllib.parse import parse_qsl, quote

from flask import Flask
from flask_wtf.csrf import same_origin
from itsdangerous import BadData
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import SecurityError, TooManyRequests
from werkzeug.http import parse_cookie
from werkzeug.utils import redirect
from werkzeug.wsgi import get_host

from petition import cookies, db, limits
from petition.errors import DomainError
from petition.forms.sign import signature_input
from petition.services import signatures
from petition.views import public, signable_letter
from petition.web import COMMON_HEADERS, CONTENT_SECURITY_POLICY, PRIVATE_HEADERS, PUBLIC_HEADERS

log = logging.getLogger(__name__)

Answer = tuple[str, list[tuple[str, str]], bytes]

FORM_TYPE = "application/x-www-form-urlencoded"
LARGEST_FORM = 8 * 1024  # a signature with every optional field filled in is under 2 KB
LETTERS, SIGN, VERIFY = "/letters/", "/sign", "/verify/"
# What Flask and the hooks in web.py give a page under /verify (private: it carries a token).
CONFIRMED_HEADERS = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    *COMMON_HEADERS,
    *PRIVATE_HEADERS,
    ("Vary", "Cookie"),
)


class DirectForms:
    """WSGI middleware in front of Flask, and inside ProxyFix, which sets the client address."""

    def __init__(self, app: Flask, wsgi_app: Callable) -> None:
        self.app = app
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "POST":
            answer = self._answer(environ, environ.get("PATH_INFO", ""))
            if answer is not None:
                status, headers, body = answer
                start_response(status, headers)
                return [body]
        return self.wsgi_app(environ, start_response)

    def _answer(self, environ: dict, path: str) -> Answer | None:
        try:
            if path.startswith(LETTERS) and path.endswith(SIGN):
                slug = path[len(LETTERS) : -len(SIGN)]
                return self._sign(environ, slug) if slug and "/" not in slug else None
            if path.startswith(VERIFY):
                token = path[len(VERIFY) :]
                return self._confirm(environ, token) if token and "/" not in token else None
        except (DomainError, SQLAlchemyError):
            pass  # the view tries again and shows what went wrong (the 503 page, say)
        except Exception:
            log.exception("%s: handed to Flask after an error", path)
        return None

    def _sign(self, environ: dict, slug: str) -> Answer | None:
        """public.sign() for a valid form: store the signature, then "check your inbox"."""
        posted = self._posted_with_csrf(environ)
        if posted is None:
            return None
        with self.app.app_context():
            letter = signable_letter(slug)
            signature = signature_input(letter, posted)
            if signature is None:
                return None
            try:
                limits.count_signing(self.app, environ.get("REMOTE_ADDR"))
            except TooManyRequests as refused:
                environ[limits.SIGNING_COUNTED] = refused
                return None
            environ[limits.SIGNING_COUNTED] = True
            signatures.sign(db.engine(), letter, signature)
        script_root = environ.get("SCRIPT_NAME", "")
        return _see_other(f"{script_root}{LETTERS}{quote(slug)}/check-your-inbox")

    def _confirm(self, environ: dict, token: str) -> Answer | None:
        """public.verify() for a token that confirms: the thank-you page with the number."""
        posted = self._posted_with_csrf(environ)
        if posted is None:
            return None
        with self.app.app_context():
            confirmed = signatures.confirm(db.engine(), token)
            if confirmed is None:
                return None
            page = None
            if confirmed.number:
                page = public.kept_thank_you_page(confirmed.letter, confirmed.number)
            if page is None:  # not rendered in this process for a while
                with self.app.request_context(environ):
                    page = public.confirmed_page(confirmed)
        body = page.encode()
        content = [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))]
        return "200 OK", [*content, *CONFIRMED_HEADERS], body

    def _posted_with_csrf(self, environ: dict) -> MultiDict | None:
        """The posted form, if CSRFProtect would let it through and the session holds only the
        CSRF secret."""
        posted = _posted_form(environ)
        config = self.app.config
        if posted is None or not (config["WTF_CSRF_ENABLED"] and config["WTF_CSRF_CHECK_DEFAULT"]):
            return None
        field = config["WTF_CSRF_FIELD_NAME"]
        session = self._session(environ)
        token = posted.get(field)
        if session is None or list(session) != [field] or not token:
            return None
        key = config.get("WTF_CSRF_SECRET_KEY") or self.app.secret_key
        try:
            expected = cookies.csrf_serializer(key).loads(
                token, max_age=config["WTF_CSRF_TIME_LIMIT"]
            )
        except BadData:
            return None
        if not (isinstance(expected, str) and hmac.compare_digest(session[field], expected)):
            return None
        if environ.get("wsgi.url_scheme") == "https" and config["WTF_CSRF_SSL_STRICT"]:
            referrer = environ.get("HTTP_REFERER")
            try:
                host = get_host(environ, config["TRUSTED_HOSTS"])
            except SecurityError:
                return None
            if not referrer or not same_origin(referrer, f"https://{host}/"):
                return None
        return posted

    def _session(self, environ: dict) -> dict | None:
        """The visitor's session as Flask would open it; None without a valid one."""
        app = self.app
        value = parse_cookie(environ).get(app.config["SESSION_COOKIE_NAME"])
        serializer = app.session_interface.get_signing_serializer(app)
        if not value or serializer is None:
            return None
        try:
            data = serializer.loads(
                value, max_age=int(app.permanent_session_lifetime.total_seconds())
            )
        except BadData:
            return None
        return data if isinstance(data, dict) else None


def _posted_form(environ: dict) -> MultiDict | None:
    """The urlencoded form as werkzeug parses it; the body is left for Flask to read again."""
    content_type = environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
    length = environ.get("CONTENT_LENGTH", "")
    if content_type != FORM_TYPE or not length.isdigit() or int(length) > LARGEST_FORM:
        return None
    body = environ["wsgi.input"].read(int(length))
    environ["wsgi.input"] = io.BytesIO(body)
    if not body.isascii():  # browsers percent-encode everything; anything else is Flask's
        return None
    return MultiDict(parse_qsl(body.decode(), keep_blank_values=True, errors="werkzeug.url_quote"))


@lru_cache(maxsize=1024)
def _see_other(location: str) -> Answer:
    """What public.sign()'s redirect(..., 303) is once Flask's hooks have run."""
    response = redirect(location, 303)
    body = response.get_data()
    headers = [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("Location", location),
        *PUBLIC_HEADERS,
        ("Vary", "Cookie"),
    ]
    return response.status, headers, body


def init_app(app: Flask) -> None:
    """Go in front of Flask itself, so that ProxyFix (added afterwards) wraps this too."""
    app.wsgi_app = DirectForms(app, app.wsgi_app)
