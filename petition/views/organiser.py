"""What organisers see: log in, write and preview letters, publish, close, export, deliver."""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import format_decimal, ngettext
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy.orm import Session
from werkzeug.exceptions import TooManyRequests

from petition import links
from petition.db import get_session, transaction, utcnow
from petition.errors import DomainError
from petition.forms import Form
from petition.forms.organiser import DeliveryForm, LetterForm, LoginForm, NewsForm
from petition.limits import check_login_attempt, minutes_to_wait, seconds_to_wait
from petition.models import Letter
from petition.services import counts, deliveries, letters, news, organisers
from petition.services.letters import LetterInput
from petition.views import csv_response, show_on_form

bp = Blueprint("organiser", __name__, url_prefix="/organiser")


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if request.method == "POST":
        try:
            check_login_attempt()
        except TooManyRequests as refused:
            minutes = minutes_to_wait(refused)
            form.form_errors.append(
                ngettext(
                    "Too many attempts to log in have come from your network. Please try "
                    "again in %(num)s minute.",
                    "Too many attempts to log in have come from your network. Please try "
                    "again in %(num)s minutes.",
                    minutes,
                )
            )
            page = render_template("organiser/login.html", form=form)
            return page, 429, {"Retry-After": str(seconds_to_wait(refused))}
    if form.validate_on_submit():
        with transaction() as session:
            organiser = organisers.authenticate(session, form.email.data, form.password.data)
        if organiser is not None:
            login_user(organiser)
            return redirect(_safe_next(request.args.get("next")), 303)
        form.password.errors.append(_("That email and password do not match an organiser account."))
        return render_template("organiser/login.html", form=form), 401
    status = 422 if form.is_submitted() else 200
    return render_template("organiser/login.html", form=form), status


def _safe_next(target: str | None) -> str:
    """Only follow a ?next= that stays on this site's organiser pages."""
    if target and target.startswith("/organiser/") and not target.startswith("//"):
        return target
    return url_for("organiser.dashboard")


@bp.post("/logout")
@login_required
def logout():
    # A copy of the cookie (another browser, a stolen one) must not outlive the logout.
    with transaction() as session:
        organisers.end_sessions(session, current_user._get_current_object())
    logout_user()
    return redirect(url_for("public.home"), 303)


@bp.get("/")
@login_required
def dashboard():
    session = get_session()
    own = letters.list_for_organiser(session, current_user)
    rows = [(letter, counts.current(session, letter.id)) for letter in own]
    return render_template("organiser/dashboard.html", rows=rows)


@bp.route("/letters/new", methods=["GET", "POST"])
@login_required
def new_letter():
    return _letter_form(
        LetterForm(),
        None,
        lambda session, data: letters.create(session, data, current_user),
        _("Draft saved. Preview it, then publish when you are ready."),
    )


def _letter_form(
    form: LetterForm,
    letter: Letter | None,
    save: Callable[[Session, LetterInput], Letter | None],
    saved_message: str,
    *,
    signed: Callable[[], bool] = lambda: False,
):
    """Show the letter form, or save it and go to the letter; refusals return to the form.

    signed: whether people have signed, asked when the form is shown (a save needs no answer):
    the words they signed are then shown but cannot be changed.
    """
    if form.validate_on_submit():
        try:
            with transaction() as session:
                letter = save(session, form.to_input()) or letter
        except DomainError as error:
            show_on_form(form, error)
        else:
            flash(saved_message)
            return redirect(url_for("organiser.show_letter", letter_id=letter.id), 303)
    status = 422 if form.is_submitted() else 200
    words_signed = letter is not None and signed()
    if words_signed:
        form.show_signed_words(letter)
    page = render_template(
        "organiser/letter_form.html", form=form, letter=letter, signed=words_signed
    )
    return page, status


@bp.get("/letters/<id:letter_id>")
@login_required
def show_letter(
    letter_id: int,
    news_form: NewsForm | None = None,
    delivery_form: DeliveryForm | None = None,
    status: int = 200,
):
    session = get_session()
    letter = letters.get_for_organiser(session, current_user, letter_id)
    now = utcnow()
    accepting = letter.accepts_signatures(now)
    page = render_template(
        "organiser/letter.html",
        letter=letter,
        count=counts.current(session, letter.id),
        unconfirmed=counts.unconfirmed(session, letter.id) if accepting else None,
        deliveries=deliveries.list_for_letter(session, letter),
        public_url=links.letter(letter.slug),
        embed_url=links.embed(letter.slug),
        news_form=news_form or NewsForm(),
        delivery_form=delivery_form or DeliveryForm(),
        news_audience=news.audience_size(session, letter),
        news_next=news.next_allowed(letter),
        now=now,
    )
    return page, status


def _refused_on_the_letter_page(letter_id: int, error: DomainError, **sent: Form):
    """The letter's page again, with the refusal beside the field of the form that was sent
    (news_form= or delivery_form=); a refusal that is not about what was typed is its own page."""
    if error.status != 422:
        raise error
    for form in sent.values():
        show_on_form(form, error)
    return show_letter(letter_id, status=422, **sent)


@bp.post("/letters/<id:letter_id>/news")
@login_required
def send_news(letter_id: int):
    form = NewsForm()
    if not form.validate():  # both fields' problems at once, before the service's rules
        return show_letter(letter_id, news_form=form, status=422)
    try:
        with transaction() as session:
            letter = letters.get_for_organiser(session, current_user, letter_id)
            sent = news.send(session, letter, form.subject.data or "", form.body.data or "")
    except DomainError as error:
        return _refused_on_the_letter_page(letter_id, error, news_form=form)
    # Shown in the news section, where the page opens after sending (its #news anchor).
    message = ngettext(
        "News queued for %(shown)s signer.",
        "News queued for %(shown)s signers.",
        sent,
        shown=format_decimal(sent),
    )
    flash(message, "news")
    return redirect(url_for("organiser.show_letter", letter_id=letter_id, _anchor="news"), 303)


@bp.get("/letters/<id:letter_id>/news")
@login_required
def news_page(letter_id: int):
    """Reloading after a refused send lands here: back to the letter's news section."""
    return redirect(url_for("organiser.show_letter", letter_id=letter_id, _anchor="news"), 303)


@bp.route("/letters/<id:letter_id>/edit", methods=["GET", "POST"])
@login_required
def edit_letter(letter_id: int):
    session = get_session()
    letter = letters.get_for_organiser(session, current_user, letter_id)
    letters.ensure_editable(letter)
    form = LetterForm() if request.method == "POST" else LetterForm.from_letter(letter)
    return _letter_form(
        form,
        letter,
        lambda session, data: letters.update(session, letter, data),
        _("Changes saved."),
        signed=lambda: letters.has_signers(get_session(), letter),
    )


@bp.get("/letters/<id:letter_id>/preview")
@login_required
def preview_letter(letter_id: int):
    session = get_session()
    letter = letters.get_for_organiser(session, current_user, letter_id)
    return render_template(
        "public/letter.html",
        letter=letter,
        form=None,
        count=counts.current(session, letter.id),
        accepting=letter.accepts_signatures(utcnow(), as_published=True),
        preview=True,
    )


@bp.post("/letters/<id:letter_id>/publish")
@login_required
def publish_letter(letter_id: int):
    with transaction() as session:
        letter = letters.get_for_organiser(session, current_user, letter_id)
        letters.publish(session, letter)
    flash(_("Published. Share the link: %(url)s", url=links.letter(letter.slug)))
    return redirect(url_for("organiser.show_letter", letter_id=letter_id), 303)


@bp.post("/letters/<id:letter_id>/close")
@login_required
def close_letter(letter_id: int):
    with transaction() as session:
        letter = letters.get_for_organiser(session, current_user, letter_id)
        letters.close(session, letter)
    flash(_("Closed. The letter stays online with its final count."))
    return redirect(url_for("organiser.show_letter", letter_id=letter_id), 303)


@bp.post("/letters/<id:letter_id>/delete")
@login_required
def delete_draft(letter_id: int):
    with transaction() as session:
        letter = letters.get_for_organiser(session, current_user, letter_id)
        title = letter.title
        letters.delete_draft(session, letter)
    flash(_("Deleted the draft “%(title)s”.", title=title))
    return redirect(url_for("organiser.dashboard"), 303)


@bp.get("/letters/<id:letter_id>/signatories.csv")
@login_required
def export_letter(letter_id: int):
    letter = letters.get_for_organiser(get_session(), current_user, letter_id)
    return csv_response(letter)


@bp.post("/letters/<id:letter_id>/deliveries")
@login_required
def create_delivery(letter_id: int):
    form = DeliveryForm()
    days = current_app.config["DELIVERY_LINK_DAYS"]
    try:
        with transaction() as session:
            letter = letters.get_for_organiser(session, current_user, letter_id)
            token = deliveries.create(session, letter, days, label=form.label.data)
    except DomainError as error:
        return _refused_on_the_letter_page(letter_id, error, delivery_form=form)
    # Shown once, on the next page (redirecting, so a reload does not make another link).
    flash(links.delivery(token), "delivery-link")
    return redirect(url_for("organiser.show_letter", letter_id=letter_id, _anchor="deliver"), 303)


@bp.get("/letters/<id:letter_id>/deliveries")
@login_required
def deliveries_page(letter_id: int):
    """Reloading after a refused link lands here: back to the letter's delivery section."""
    return redirect(url_for("organiser.show_letter", letter_id=letter_id, _anchor="deliver"), 303)


@bp.post("/letters/<id:letter_id>/deliveries/<id:delivery_id>/revoke")
@login_required
def revoke_delivery(letter_id: int, delivery_id: int):
    with transaction() as session:
        letter = letters.get_for_organiser(session, current_user, letter_id)
        deliveries.revoke(session, letter, delivery_id)
    flash(_("The delivery link no longer works."))
    return redirect(url_for("organiser.show_letter", letter_id=letter_id), 303)
