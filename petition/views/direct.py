"""The three busiest requests, answered before Flask runs when nothing about them is unusual.

When a letter spreads, nearly every request is one of three: a new visitor opening the letter,
a signature, and a press of the confirm button (the count poll has views/api.py's CachedPolls).
Flask's request machinery (the request and its context, routing, the session, the extensions'
hooks, the response object) cost more than the page or the signature itself. This WSGI
middleware answers the usual case of each with the same pieces the views in public.py use and
the same response, byte for byte, and hands everything else to Flask before changing anything:

- a session with anything in it but the CSRF secret (someone logged in, a message waiting), or
  one that does not open;
- the letter page: a letter with no shared copy of its page yet (the view renders and keeps it);
- posts: a body that is not a small urlencoded form, a CSRF token CSRFProtect would refuse;
- signing: a letter that is not published, a form that would show errors;
- confirming: a token that confirms nothing (already confirmed, expired, unknown).

A request that fails here (the letter closed a moment ago, a connection lost in a database
restart) goes to Flask too: the view tries again and shows what went wrong. When the database
is there but cannot serve (locked, refusing connections, a lock timeout), Flask answers with
the 503 page for that error at once: trying again would make the visitor wait as long again.
Once a signature has been counted against the rate limit here the environ says so
(limits.SIGNING_COUNTED), so that the view does not count it twice. tests/test_direct.py sends
requests both ways and compares the answers.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable
from functools import lru_cache
from urllib.parse import parse_qsl, quote

from flask import Flask, request
from flask_wtf.csrf import same_origin
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import SecurityError, TooManyRequests
from werkzeug.http import parse_cookie
from werkzeug.utils import redirect
from werkzeug.wsgi import get_host

from petition import cookies, db, limits, links
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
# What the hooks in web.py and the session add to a public page, and to one under /verify
# (private: it carries a token).
PUBLIC_PAGE_HEADERS = (*PUBLIC_HEADERS, ("Vary", "Cookie"))
CONFIRMED_HEADERS = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    *COMMON_HEADERS,
    *PRIVATE_HEADERS,
    ("Vary", "Cookie"),
)


class DirectAnswers:
    """WSGI middleware in front of Flask, and inside ProxyFix, which sets the client address."""

    def __init__(self, app: Flask, wsgi_app: Callable) -> None:
        self.app = app
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        answer = self._answer(environ, environ.get("REQUEST_METHOD"), environ.get("PATH_INFO", ""))
        if answer is None:
            return self.wsgi_app(environ, start_response)
        status, headers, body = answer
        start_response(status, headers)
        return [body]

    def _answer(self, environ: dict, method: str | None, path: str) -> Answer | None:
        trusted = self.app.config["TRUSTED_HOSTS"]
        if trusted and not _trusted_host(environ, trusted):
            return None  # Flask refuses it (errors._unknown_host)
        try:
            if path.startswith(LETTERS):
                if method == "GET":
                    slug = path[len(LETTERS) :]
                    return self._letter_page(environ, slug) if slug and "/" not in slug else None
                if method == "POST" and path.endswith(SIGN):
                    slug = path[len(LETTERS) : -len(SIGN)]
                    return self._sign(environ, slug) if slug and "/" not in slug else None
            elif method == "POST" and path.startswith(VERIFY):
                token = path[len(VERIFY) :]
                return self._confirm(environ, token) if token and "/" not in token else None
        except OperationalError as error:
            if not error.connection_invalidated:  # a fresh connection would do no better
                environ[DATABASE_FAILED] = error
        except PoolTimeout as error:  # every connection busy: the view would wait as long
            environ[DATABASE_FAILED] = error
        except (DomainError, SQLAlchemyError):
            pass  # the view tries again and shows what went wrong
        except Exception:
            log.exception("%s %s: handed to Flask after an error", method, links.loggable(path))
        return None

    def _letter_page(self, environ: dict, slug: str) -> Answer | None:
        """public.letter() for a visitor with no session or only the CSRF secret, from the
        shared copy of the page."""
        app = self.app
        config = app.config
        if config["COUNT_CACHE_SECONDS"] <= 0:
            return None
        if app.session_interface.get_signing_serializer(app) is None:
            return None
        new_visitor = not _session_cookie(app, environ)
        secret = cookies.new_csrf_secret() if new_visitor else self._csrf_secret(environ)
        if secret is None:  # a session with more in it: the view's
            return None
        with app.app_context():
            page = public.kept_letter_page(slug)
        if page is None:
            return None
        new_cookie = None
        if new_visitor:
            new_cookie = cookies.new_session_cookie(app, {config["WTF_CSRF_FIELD_NAME"]: secret})
        token = cookies.csrf_token_for(app, secret)
        body = page.replace(public.CSRF_PLACEHOLDER.encode(), token.encode())
        cookie_header = [("Set-Cookie", new_cookie)] if new_cookie is not None else []
        return _html("200 OK", body, *PUBLIC_PAGE_HEADERS, *cookie_header)

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
        return _html("200 OK", page.encode(), *CONFIRMED_HEADERS)

    def _posted_with_csrf(self, environ: dict) -> MultiDict | None:
        """The posted form, if CSRFProtect would let it through and the session holds only the
        CSRF secret."""
        posted = _posted_form(environ)
        config = self.app.config
        if posted is None or not (config["WTF_CSRF_ENABLED"] and config["WTF_CSRF_CHECK_DEFAULT"]):
            return None
        secret = self._csrf_secret(environ)
        token = posted.get(config["WTF_CSRF_FIELD_NAME"])
        if secret is None or not token or not cookies.csrf_token_matches(self.app, token, secret):
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

    def _csrf_secret(self, environ: dict) -> str | None:
        """The CSRF secret of a session that holds nothing else (cookies.csrf_only_session)."""
        cookie = _session_cookie(self.app, environ)
        return cookies.csrf_only_session(self.app, cookie) if cookie else None


def _trusted_host(environ: dict, trusted: list[str]) -> bool:
    try:
        get_host(environ, trusted)
    except SecurityError:
        return False
    return True


def _session_cookie(app: Flask, environ: dict) -> str | None:
    return parse_cookie(environ).get(app.session_interface.get_cookie_name(app))


def _posted_form(environ: dict) -> MultiDict | None:
    """The urlencoded form as werkzeug parses it; the body is left for Flask to read again."""
    content_type = environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
    length = environ.get("CONTENT_LENGTH", "")
    if content_type != FORM_TYPE or not (length.isascii() and length.isdigit()):
        return None
    if int(length) > LARGEST_FORM:
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
    return _html(response.status, response.get_data(), ("Location", location), *PUBLIC_PAGE_HEADERS)


def _html(status: str, body: bytes, *headers: tuple[str, str]) -> Answer:
    """An HTML answer with the headers Flask's response puts first."""
    content = [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))]
    return status, [*content, *headers], body


DATABASE_FAILED = "petition.database_failed"


def _database_failed_already() -> None:
    """Raise the database's error met before Flask, for the 503 page (errors.py)."""
    error = request.environ.get(DATABASE_FAILED)
    if error is not None:
        raise error


def init_app(app: Flask) -> None:
    """Go in front of Flask itself, so that ProxyFix (added afterwards) wraps this too."""
    app.wsgi_app = DirectAnswers(app, app.wsgi_app)
    app.before_request(_database_failed_already)
