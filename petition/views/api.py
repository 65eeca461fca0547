"""The public JSON API: a letter's details and live count, cheap to poll and to cache."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.http import parse_etags

from petition.cache import Cache, remember
from petition.db import get_session, utcnow
from petition.models import Letter
from petition.services import letters
from petition.views import cached_count
from petition.web import PUBLIC_HEADERS

bp = Blueprint("api", __name__, url_prefix="/api/v1")

LETTER_PATH = "/api/v1/letters/"
CACHE_CONTROL = "public, max-age=5, stale-while-revalidate=10, stale-if-error=60"


def _iso(value) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def letter_json(letter: Letter, count: int) -> dict:
    return {
        "slug": letter.slug,
        "title": letter.title,
        "recipient": {"name": letter.recipient_name, "role": letter.recipient_role},
        "status": letter.effective_status(utcnow()).value,
        "signature_count": count,
        "goal": letter.goal,
        "closes_at": _iso(letter.closes_at),  # as planned: a letter may close before it
        "closed_at": _iso(letter.closed_at),
        "updated_at": _iso(letter.updated_at),
    }


def _cache_key(slug: str) -> str:
    return f"letter-json:{slug}"


def _poll_headers(body: bytes) -> tuple[str, list[tuple[str, str]]]:
    """The body's ETag and the caching headers every answer to the poll carries."""
    etag = f'"{hashlib.blake2b(body, digest_size=12).hexdigest()}"'
    return etag, [
        ("ETag", etag),
        ("Cache-Control", CACHE_CONTROL),
        ("Access-Control-Allow-Origin", "*"),
    ]


def _unchanged(etag: str, if_none_match: str | None) -> bool:
    # Read straight from the environ (cheaper than make_conditional, and all this needs).
    return bool(if_none_match) and etag.strip('"') in parse_etags(if_none_match)


@bp.get("/letters/<slug>")
def letter(slug: str):
    """Polled by every open letter page: served from the shared cache, touching no table."""

    def render() -> bytes:
        session = get_session()
        found = letters.get_public(session, slug)
        document = letter_json(found, cached_count(session, found))
        return json.dumps(document, separators=(",", ":")).encode()

    body = remember(
        current_app.extensions["petition.cache"],
        _cache_key(slug),
        current_app.config["COUNT_CACHE_SECONDS"],
        render,
    )
    etag, headers = _poll_headers(body)
    if _unchanged(etag, request.environ.get("HTTP_IF_NONE_MATCH")):
        return Response(status=304, headers=headers)
    return Response(body, mimetype="application/json", headers=headers)


class CachedPolls:
    """WSGI middleware: answers the count poll from the shared cache before Flask runs.

    The poll is most of the site's traffic when a letter spreads (every open page asks every
    few seconds), and Flask's request machinery cost more than the answer itself. When the
    letter's JSON is in the cache, the answer is built here with exactly the view's headers;
    otherwise, and for anything else, the request goes on to Flask, whose view fills the cache.
    """

    def __init__(self, app: Callable, cache: Cache) -> None:
        self.app = app
        self.cache = cache

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(LETTER_PATH) and environ.get("REQUEST_METHOD") == "GET":
            slug = path[len(LETTER_PATH) :]
            body = self.cache.get(_cache_key(slug)) if slug and "/" not in slug else None
            if body is not None:
                return self._answer(body, environ, start_response)
        return self.app(environ, start_response)

    @staticmethod
    def _answer(body: bytes, environ: dict, start_response: Callable) -> Iterable[bytes]:
        etag, headers = _poll_headers(body)
        if _unchanged(etag, environ.get("HTTP_IF_NONE_MATCH")):
            start_response("304 NOT MODIFIED", [*headers, *PUBLIC_HEADERS])
            return []
        content = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        start_response("200 OK", [*content, *headers, *PUBLIC_HEADERS])
        return [body]


def init_app(app: Flask) -> None:
    """Put the poll's fast path in front of the app (only worth it while answers are cached)."""
    if app.config["COUNT_CACHE_SECONDS"] > 0:
        app.wsgi_app = CachedPolls(app.wsgi_app, app.extensions["petition.cache"])
