"""What members see: the letter, the sign form, confirming and withdrawing."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, url_for

from petition.db import get_session, transaction, utcnow
from petition.forms.sign import SignForm
from petition.models import Letter
from petition.services import counts, letters, signatures
from petition.views import cached_count, forget_count

bp = Blueprint("public", __name__)


@bp.get("/")
def home():
    session = get_session()
    open_letters = letters.list_public(session)
    return render_template(
        "public/home.html",
        letters=[(letter, cached_count(session, letter)) for letter in open_letters],
    )


def _letter_page(slug: str, form: SignForm | None = None, status: int = 200):
    session = get_session()
    letter = letters.get_public(session, slug)
    form = form or SignForm.for_letter(letter)
    return (
        render_template(
            "public/letter.html",
            letter=letter,
            form=form,
            count=cached_count(session, letter),
            accepting=letter.accepts_signatures(utcnow()),
        ),
        status,
    )


@bp.get("/letters/<slug>")
def letter(slug: str):
    return _letter_page(slug)


@bp.post("/letters/<slug>/sign")
def sign(slug: str):
    letter = letters.get_public(get_session(), slug)
    form = SignForm.for_letter(letter)
    if not form.validate_on_submit():
        return _letter_page(slug, form, 422)
    with transaction() as session:
        signatures.sign(session, letter, form.to_input())
    return redirect(url_for("public.check_inbox", slug=slug), 303)


@bp.get("/letters/<slug>/sign")
def sign_page(slug: str):
    """Reloading after a form error lands here: send people back to the letter."""
    return redirect(url_for("public.letter", slug=slug), 303)


@bp.get("/letters/<slug>/check-your-inbox")
def check_inbox(slug: str):
    letter = letters.get_public(get_session(), slug)
    return render_template("public/check_inbox.html", letter=letter)


@bp.get("/verify/<token>")
def confirm(token: str):
    """Shows the confirm button and changes nothing: mail scanners open every link."""
    session = get_session()
    signature = signatures.find_by_verify_token(session, token)
    letter = session.get_one(Letter, signature.letter_id)
    signatures.check_verifiable(signature, letter, utcnow())
    return render_template("public/confirm.html", letter=letter, signature=signature, token=token)


@bp.post("/verify/<token>")
def verify(token: str):
    with transaction() as session:
        result = signatures.verify(session, token)
    forget_count(result.letter.id)
    count = counts.current(get_session(), result.letter.id)
    return render_template(
        "public/verified.html",
        letter=result.letter,
        signature=result.signature,
        newly_verified=result.newly_verified,
        count=count,
    )


@bp.get("/signature/<token>")
def manage(token: str):
    session = get_session()
    signature = signatures.find_by_manage_token(session, token)
    letter = session.get_one(Letter, signature.letter_id)
    return render_template("public/manage.html", letter=letter, signature=signature, token=token)


@bp.post("/signature/<token>/withdraw")
def withdraw(token: str):
    with transaction() as session:
        letter = signatures.withdraw(session, token)
    forget_count(letter.id)
    return render_template("public/withdrawn.html", letter=letter)
