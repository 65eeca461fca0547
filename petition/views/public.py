"""What members see: letters, the sign form, confirming, and their own signature."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from urllib.parse import quote

from babel import Locale, numbers
from flask import (
    Blueprint,
    Response,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import get_locale, ngettext
from werkzeug.exceptions import TooManyRequests

from petition import links, share_image, sharing, text
from petition.cache import remember
from petition.cookies import csrf_token
from petition.db import get_session, transaction, utcnow
from petition.forms.sign import PreferencesForm, SignForm
from petition.limits import check_signing, minutes_to_wait, seconds_to_wait
from petition.models import Letter
from petition.services import letters, news, signatories, signatures
from petition.services.letters import LetterRef
from petition.views import cached_count, cached_listed, forget_count, signable_letter
from petition.web import NO_STORE, allow_framing

bp = Blueprint("public", __name__)

SHARE_IMAGE_SECONDS = 60
EMBED_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors *"
)


@bp.get("/")
def home():
    session = get_session()
    sort = request.args.get("sort", "popular")
    if sort not in letters.SORTS:
        sort = "popular"
    search = text.printable(request.args.get("q", "")).strip()[:100]
    closed = request.args.get("archive") == "1"
    found = letters.list_public(session, sort=sort, search=search, closed=closed)
    return render_template(
        "public/home.html",
        letters=[(letter, cached_count(session, letter)) for letter in found],
        sort=sort,
        search=search,
        archive=closed,
    )


def _letter_page(slug: str, form: SignForm | None = None, status: int = 200):
    session = get_session()
    letter = letters.get_public(session, slug)
    form = form or SignForm.for_letter(letter)
    url = links.letter(letter.slug)
    count = cached_count(session, letter)
    return (
        render_template(
            "public/letter.html",
            letter=letter,
            form=form,
            count=count,
            accepting=letter.accepts_signatures(utcnow()),
            recent=signatories.recent(session, letter),
            share_links=sharing.links(url, letter.title),
            page_url=url,
            share_image_url=links.share_image(letter.slug, count),
        ),
        status,
    )


# A page number beyond any list: asked for, it shows the last page.
MAX_PAGE = 10**30

# Stands in for the visitor's CSRF token in a cached page (no real token contains a space).
CSRF_PLACEHOLDER = "\x00csrf token\x00"


@bp.get("/letters/<slug>")
def letter(slug: str):
    """The page most visitors see, rendered once every few seconds and shared between them.

    Only the CSRF token differs from one visitor to the next, so it is put in afterwards; the
    count in the page is as fresh as the cached count would be anyway, and the page's JavaScript
    keeps it live. Organisers (their own header) and anyone with a message waiting are served a
    fresh page.
    """
    if slug != slug.lower():  # typed from a poster: addresses are made in lower case
        query = quote(request.query_string, safe="=&;+%/?:@,")  # as received, in ASCII
        target = url_for("public.letter", slug=slug.lower())
        return redirect(f"{target}?{query}" if query else target, 301)
    seconds = current_app.config["COUNT_CACHE_SECONDS"]
    if seconds <= 0 or not _plain_visitor():
        return _letter_page(slug)

    def render() -> bytes:
        page, _status = _letter_page(slug)
        return page.replace(csrf_token(), CSRF_PLACEHOLDER).encode()

    cache = current_app.extensions["petition.cache"]
    page = remember(cache, _letter_page_key(slug), seconds, render)
    page = page.replace(CSRF_PLACEHOLDER.encode(), csrf_token().encode())
    return Response(page, mimetype="text/html")


def kept_letter_page(slug: str) -> bytes | None:
    """The shared copy of the letter page, if there is one, with CSRF_PLACEHOLDER for the token."""
    return current_app.extensions["petition.cache"].get(_letter_page_key(slug))


def _letter_page_key(slug: str) -> str:
    return f"page:{get_locale()}:{slug}"


# A form sent back holds what the signer typed, their address included: kept by no cache.
TYPED_BACK = dict([NO_STORE])


@bp.post("/letters/<slug>/sign")
def sign(slug: str):
    letter = signable_letter(slug)
    form = SignForm.for_letter(letter)
    if not form.validate_on_submit():
        page, status = _letter_page(slug, form, 422)
        return page, status, TYPED_BACK
    try:
        check_signing()
    except TooManyRequests as refused:
        minutes = minutes_to_wait(refused)
        form.form_errors.append(
            ngettext(
                "Too many signatures have come from your network recently, so this one was not "
                "saved. Please try again in %(num)s minute.",
                "Too many signatures have come from your network recently, so this one was not "
                "saved. Please try again in %(num)s minutes.",
                minutes,
            )
        )
        page, status = _letter_page(slug, form, 429)
        return page, status, {**TYPED_BACK, "Retry-After": str(seconds_to_wait(refused))}
    with transaction(lock_now=False) as session:
        signatures.sign(session, letter, form.to_input())
    return redirect(url_for("public.check_inbox", slug=slug), 303)


@bp.get("/letters/<slug>/sign")
def sign_page(slug: str):
    """Reloading after a form error lands here: send people back to the letter."""
    return redirect(url_for("public.letter", slug=slug), 303)


@bp.get("/letters/<slug>/check-your-inbox")
def check_inbox(slug: str):
    """Where every signer lands: as costly to render as the signing itself, and the same for
    everyone, so kept like the letter page."""

    def render() -> str:
        letter = letters.get_public(get_session(), slug)
        return render_template("public/check_inbox.html", letter=letter)

    if not _plain_visitor():
        return render()
    return _kept(f"check-inbox:{slug}", render)


@bp.get("/letters/<slug>/signatories")
def signatory_list(slug: str):
    session = get_session()
    letter = letters.get_public(session, slug)
    wanted = text.whole_number(request.args.get("page", "1"), 1, MAX_PAGE) or 1
    shown = signatories.page(session, letter, wanted, cached_listed(session, letter))
    return render_template(
        "public/signatories.html",
        letter=letter,
        page=shown,
        count=cached_count(session, letter),
    )


@bp.get("/letters/<slug>/embed")
def embed(slug: str):
    """A small card for other sites to frame: the only page that may be framed."""
    session = get_session()
    letter = letters.get_public(session, slug)
    response = Response(
        render_template(
            "public/embed.html",
            letter=letter,
            # From PETITION_BASE_URL, never the Host header: proxies share this page for 30 s.
            letter_url=links.letter(letter.slug),
            count=cached_count(session, letter),
            accepting=letter.accepts_signatures(utcnow()),
        )
    )
    response.headers["Cache-Control"] = "public, max-age=30"
    return allow_framing(response, EMBED_POLICY)


@bp.get("/letters/<slug>/share.png")
def share_png(slug: str):
    """The link-preview picture, redrawn at most once a minute as the count moves."""

    def draw() -> bytes:
        session = get_session()
        letter = letters.get_public(session, slug)
        count = cached_count(session, letter)
        return share_image.render(letter.title, letter.recipient_name, count, letter.goal)

    cache = current_app.extensions["petition.cache"]
    image = remember(cache, f"share:{slug}", SHARE_IMAGE_SECONDS, draw)
    response = Response(image, mimetype="image/png")
    response.headers["Cache-Control"] = f"public, max-age={SHARE_IMAGE_SECONDS}"
    return response


@bp.get("/verify/<token:token>")
def confirm(token: str):
    """Shows the confirm button and changes nothing: mail scanners open every link."""
    session = get_session()
    signature = signatures.find_by_verify_token(session, token)
    letter = session.get_one(Letter, signature.letter_id)
    signatures.check_verifiable(signature, letter, utcnow())
    return render_template(
        "public/confirm.html",
        letter=letter,
        signature=signature,
        shown_as=signatories.public_name(signature.name),
        token=token,
    )


@bp.post("/verify/<token:token>")
def verify(token: str):
    with transaction(lock_now=False) as session:
        result = signatures.verify(session, token)
    return confirmed_page(result)


def confirmed_page(result: signatures.VerifyResult) -> str:
    """What someone sees after pressing the confirm button (needs a request context)."""
    letter = result.letter
    if result.newly_verified and result.number and _plain_visitor():
        return _thank_you_page(letter, result.number)
    return _verified_page(
        letter, result.newly_verified, result.number or cached_count(get_session(), letter)
    )


def _verified_page(letter: Letter | LetterRef, newly_verified: bool, count: int) -> str:
    url = links.letter(letter.slug)
    return render_template(
        "public/verified.html",
        letter=letter,
        newly_verified=newly_verified,
        count=count,
        page_url=url,
        share_links=sharing.links(url, letter.title, signed=True),
    )


# Formatted into the cached thank-you page where the signer's number goes; no count reaches it.
NUMBER_PLACEHOLDER = 987_654_321_987_654


def _thank_you_page(letter: Letter | LetterRef, number: int) -> str:
    """The page after confirming, rendered once every few seconds per letter in this process.

    Everyone who confirms sees the same page but for their number, and rendering it was 40 % of
    a confirmation; the number is put in afterwards, formatted as the template formats it.
    """
    page = kept_thank_you_page(letter, number, render=True)
    if page is None:  # a title that contains the placeholder: no cached copy will do
        return _verified_page(letter, True, number)
    return page


def kept_thank_you_page(
    letter: Letter | LetterRef, number: int, *, render: bool = False
) -> str | None:
    """This process's copy of the letter's thank-you page with `number` put in; None when there
    is none (rendered when `render`, which needs a request context) or it cannot be used."""
    key = f"verified:{letter.id}:{letter.slug}:{letter.title}"
    if render:
        page = _kept(key, lambda: _verified_page(letter, True, NUMBER_PLACEHOLDER))
    else:
        page = _kept_copy(key)
    locale = get_locale()
    placeholder = _formatted_placeholder(locale)
    if page is None or page.count(placeholder) != 1:
        return None
    # As the template's `number` filter formats it (flask_babel.format_decimal, for this locale).
    return page.replace(placeholder, numbers.format_decimal(number, locale=locale))


@lru_cache(maxsize=16)
def _formatted_placeholder(locale: Locale) -> str:
    return numbers.format_decimal(NUMBER_PLACEHOLDER, locale=locale)


def _kept(key: str, render: Callable[[], str]) -> str:
    """A page rendered at most once every COUNT_CACHE_SECONDS per locale in this process."""
    seconds = current_app.config["COUNT_CACHE_SECONDS"]
    cache = current_app.extensions["petition.pages"]
    return remember(cache, _per_locale(key), seconds, render)


def _kept_copy(key: str) -> str | None:
    """What _kept() holds for the key now, if anything."""
    if current_app.config["COUNT_CACHE_SECONDS"] <= 0:
        return None
    return current_app.extensions["petition.pages"].get(_per_locale(key))


def _per_locale(key: str) -> str:
    return f"{key}:{get_locale()}"


def _plain_visitor() -> bool:
    """Nobody logged in and no message waiting: the page is the same for every such visitor."""
    return "_user_id" not in session and "_flashes" not in session


@bp.get("/signature/<token:token>")
def manage(token: str):
    session = get_session()
    signature = signatures.find_by_manage_token(session, token)
    letter = session.get_one(Letter, signature.letter_id)
    form = PreferencesForm(obj=signature)
    return render_template(
        "public/manage.html",
        letter=letter,
        signature=signature,
        shown_as=signatories.public_name(signature.name),
        token=token,
        form=form,
    )


@bp.post("/signature/<token:token>/preferences")
def preferences(token: str):
    form = PreferencesForm()
    if not form.validate_on_submit():
        return redirect(url_for("public.manage", token=token), 303)
    with transaction() as session:
        signatures.set_preferences(
            session,
            token,
            show_name=form.show_name.data,
            share_email=form.share_email.data,
            wants_updates=form.wants_updates.data,
        )
    return redirect(url_for("public.manage", token=token, saved=1), 303)


@bp.post("/signature/<token:token>/withdraw")
def withdraw(token: str):
    with transaction() as session:
        letter = signatures.withdraw(session, token)
    forget_count(letter.id)
    return render_template("public/withdrawn.html", letter=letter)


@bp.get("/news/stop/<token:token>")
def stop_news(token: str):
    """Shows the button and changes nothing: mail scanners open every link."""
    session = get_session()
    signature = news.find_by_stop_token(session, token)
    letter = session.get_one(Letter, signature.letter_id)
    return render_template(
        "public/stop_news.html", letter=letter, token=token, stopped=not signature.wants_updates
    )


@bp.post("/news/stop/<token:token>")
def confirm_stop_news(token: str):
    with transaction() as session:
        signature = news.stop(session, token)
        letter = session.get_one(Letter, signature.letter_id)
    return render_template("public/stop_news.html", letter=letter, token=token, stopped=True)
