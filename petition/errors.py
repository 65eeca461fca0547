"""Domain errors, and the one place that turns them and HTTP errors into friendly pages."""

from __future__ import annotations

import logging
import sys

from flask import Flask, Response, current_app, jsonify, render_template, request
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException, InternalServerError, SecurityError

from petition import links
from petition.db import (
    MissingDatabaseFile,
    NotADatabaseFile,
    first_line,
    missing_table,
    schema_behind,
    what_to_do,
)

log = logging.getLogger(__name__)


class DomainError(Exception):
    """A rule of the domain said no. Subclasses carry the status and the words people see."""

    status = 400
    title = _l("That did not work")
    message = _l("Something about that request was not right.")

    def __init__(self, detail: str | None = None, *, field: str | None = None) -> None:
        super().__init__(detail or str(self.message))
        self.detail = detail
        self.field = field  # the input it is about, so a form can show it beside that field

    @property
    def text(self) -> str:
        return self.detail or str(self.message)


class NotFound(DomainError):
    status = 404
    title = _l("Page not found")
    message = _l("We could not find that page. Check the address, or start from the home page.")


class LetterNotFound(NotFound):
    title = _l("Letter not found")
    message = _l(
        "There is no published letter at this address. It may have been mistyped, "
        "or the organiser has not published it yet."
    )


class LetterClosed(DomainError):
    status = 409
    title = _l("This letter is closed")
    message = _l("This letter is no longer collecting signatures. Thank you for wanting to sign.")


class LetterNotEditable(DomainError):
    status = 409
    title = _l("This letter cannot be changed now")
    message = _l("A closed letter cannot be edited, published or closed again.")


class InvalidToken(DomainError):
    status = 404
    title = _l("This link does not work")
    message = _l(
        "The link is incomplete or no longer valid. Copy the whole link from the email, "
        "or sign again to get a fresh one."
    )


class TokenExpired(DomainError):
    status = 410
    title = _l("This link has expired")
    message = _l(
        "Confirmation links last a few days. Sign the letter again and we will send you a new one."
    )


class SlugTaken(DomainError):
    status = 409
    title = _l("That web address is taken")
    message = _l("Another letter already uses that web address. Choose another.")


class InvalidInput(DomainError):
    status = 422
    title = _l("Please check what you entered")
    message = _l("Some of the details were not valid.")


class ServiceUnavailable(DomainError):
    status = 503
    title = _l("We are very busy")
    message = _l("The site could not reach its database just now. Please try again in a minute.")


def init_app(app: Flask) -> None:
    """Register the handlers that render every error as a page (or JSON under /api/)."""
    app.register_error_handler(DomainError, _domain_error)
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(SecurityError, _unknown_host)
    app.register_error_handler(OperationalError, _database_down)
    app.register_error_handler(PoolTimeout, _database_down)
    app.register_error_handler(ProgrammingError, _database_behind_or_bug)


def _render(
    status: int, title: str, message: str, extra_headers: dict[str, str] | None = None
) -> tuple[Response | str, int, dict[str, str]]:
    headers = {"Cache-Control": "no-store", **(extra_headers or {})}
    if status == 503:
        headers["Retry-After"] = "30"
    if request.path.startswith("/api/"):
        return (
            jsonify(error={"status": status, "title": title, "message": message}),
            status,
            headers,
        )
    # Refused on a letter's own addresses (signing a closed letter, say): offer the way back to it.
    slug = (request.view_args or {}).get("slug") if status != 404 else None
    page = render_template(
        "errors/error.html", status=status, title=title, message=message, letter_slug=slug
    )
    return page, status, headers


def _domain_error(error: DomainError):
    return _render(error.status, str(error.title), error.detail or str(error.message))


def _csrf_error(error: CSRFError):
    # Flask-WTF's reason ("The referrer does not match the host."): a proxy that forwards the
    # wrong Host shows here as every form refused, and only the log can tell that from expiry.
    path = links.loggable(request.path)
    log.info("form refused (%s %s): %s", request.method, path, error.description)
    return _render(
        400,
        str(_l("This form has expired")),
        str(
            _l(
                "For your security, forms only work for a while and need cookies. "
                "Go back to the form, copy anything long you typed (reloading may clear it), "
                "reload the page and send it again."
            )
        ),
    )


_HTTP_WORDS = {
    404: (NotFound.title, NotFound.message),
    405: (_l("Not allowed"), _l("That address does not accept this kind of request.")),
    413: (_l("Too large"), _l("What you sent is larger than this site accepts.")),
    429: (_l("Too many attempts"), _l("Please wait a little and try again.")),
}


def _http_error(error: HTTPException):
    status = error.code or 500
    title, message = _HTTP_WORDS.get(status, (error.name, error.description or ""))
    # Keep what the exception says about itself (Allow on 405, Retry-After on 429).
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    return _render(status, str(title), str(message), headers)


def _unknown_host(error: SecurityError):
    """A Host not in PETITION_TRUSTED_HOSTS (scanners, mostly): no page can be built for it,
    since every link on one is made for the request's host, and nothing is logged."""
    return Response("Unknown host.\n", 400, {"Cache-Control": "no-store"}, mimetype="text/plain")


def _database_behind_or_bug(error: ProgrammingError):
    """PostgreSQL's word for a missing table or column is a ProgrammingError: a database whose
    migrations have not run is said as such, as is a prepared statement lost behind a pooler;
    any other is a bug, a 500 like any other."""
    said = first_line(error)
    if _schema_problem(said) or what_to_do(said):
        return _database_down(error)
    current_app.log_exception(sys.exc_info())
    return _http_error(InternalServerError())


def _schema_problem(said: str) -> bool:
    """A missing table or column (the database's words name no values)."""
    return missing_table(said) or schema_behind(said)


def _database_down(error: Exception):
    cause = getattr(error, "orig", None)
    said = first_line(error)
    if isinstance(cause, NotADatabaseFile):
        log.error("database unavailable: %s (check PETITION_DATABASE_URL)", cause)
    elif isinstance(cause, MissingDatabaseFile) or _schema_problem(said):
        log.error("database unavailable: %s (run: petition db upgrade)", said)  # names no value
    elif advice := what_to_do(said):
        log.error("database unavailable: %s (%s)", said, advice)
    elif isinstance(error, PoolTimeout):
        log.error("database unavailable: %s", str(error).splitlines()[0])  # the pool's words
    elif said:  # the server's or the file's state ("too many clients", "database is locked"):
        log.error("database unavailable: %s", said)  # values come only after the first line
    else:
        log.error("database unavailable: %s", type(error).__name__)
    return _render(503, str(ServiceUnavailable.title), str(ServiceUnavailable.message))
