"""Blueprints: parse input, call a service, render. No domain rules here."""

from flask import Response, current_app
from flask_wtf import FlaskForm
from sqlalchemy.orm import Session

from petition import db
from petition.cache import remember
from petition.db import utcnow
from petition.errors import DomainError
from petition.models import Letter
from petition.services import exports, letters, signatories
from petition.services.counts import CountCache


def cached_count(session: Session, letter: Letter) -> int:
    """The letter's count from the per-process cache (a few seconds old at most)."""
    cache: CountCache = current_app.extensions["petition.counts"]
    return cache.get(session, letter.id)


def signable_letter(slug: str) -> letters.SignableLetter:
    """The letter as the sign form needs it, kept in this process as long as a cached count.

    An organiser's edit reaches the form within those seconds, as it reaches the cached page;
    whether the letter still takes signatures is checked by the signing INSERT itself.
    """
    return remember(
        current_app.extensions["petition.signable"],
        slug,
        current_app.config["COUNT_CACHE_SECONDS"],
        lambda: _read_signable(slug),
    )


def _read_signable(slug: str) -> letters.SignableLetter:
    # In a session of its own, ended before the signature is stored on a connection of its
    # own: a request that held one connection while asking for another could wait forever
    # behind a pooler with no more server connections than there are workers.
    with db.new_session() as session:
        return letters.get_signable(session, slug)


def cached_listed(session: Session, letter: Letter) -> signatories.Listed:
    """The letter's public list as signatories.listed() saw it, shared as a count is (a few
    seconds old at most): counting it cost every page of the list a read of the whole index."""
    kept = remember(
        current_app.extensions["petition.cache"],
        f"listed:{letter.id}",
        current_app.config["COUNT_CACHE_SECONDS"],
        lambda: signatories.listed(session, letter).encode(),
    )
    return signatories.Listed.decode(kept)


def forget_count(letter_id: int) -> None:
    """Drop the cached count after a change the person will want to see at once."""
    current_app.extensions["petition.counts"].forget(letter_id)


def csv_response(letter: Letter) -> Response:
    """Stream a letter's signatories as a CSV download."""
    # No request context is needed while streaming: the export has its own connection.
    body = exports.stream_csv(db.engine(), letter)
    return Response(
        body,
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{exports.filename(letter, utcnow())}"',
            "Cache-Control": "private, no-store",
        },
    )


def show_on_form(form: FlaskForm, error: DomainError) -> None:
    """Put a service's refusal beside the field it is about (or above the form)."""
    field = form._fields.get(error.field) if error.field else None
    if field is not None:
        field.errors = [*field.errors, error.text]
    else:
        form.form_errors.append(error.text)
