"""The public JSON API: a letter's details and live count, cheap to poll and to cache."""

from __future__ import annotations

import hashlib
import json

from flask import Blueprint, Response, current_app, request
from werkzeug.http import parse_etags

from petition.cache import remember
from petition.db import get_session, utcnow
from petition.models import Letter
from petition.services import letters
from petition.views import cached_count

bp = Blueprint("api", __name__, url_prefix="/api/v1")

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
        "closes_at": _iso(letter.closes_at),
        "updated_at": _iso(letter.updated_at),
    }


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
        f"letter-json:{slug}",
        current_app.config["COUNT_CACHE_SECONDS"],
        render,
    )
    etag = hashlib.blake2b(body, digest_size=12).hexdigest()
    headers = {
        "ETag": f'"{etag}"',
        "Cache-Control": CACHE_CONTROL,
        "Access-Control-Allow-Origin": "*",
    }
    # The poller's If-None-Match, read straight from the environ (cheaper than make_conditional
    # and all this endpoint needs): unchanged means an empty 304.
    if etag in parse_etags(request.environ.get("HTTP_IF_NONE_MATCH")):
        return Response(status=304, headers=headers)
    return Response(body, mimetype="application/json", headers=headers)
