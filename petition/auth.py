"""Organiser sessions with Flask-Login."""

from __future__ import annotations

from flask import Flask, Response, current_app, flash, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import LoginManager
from werkzeug.exceptions import HTTPException

from petition.db import get_session
from petition.models import Organiser


class OrganiserLoginManager(LoginManager):
    """Flask-Login with "strong" session protection for organisers only.

    Stock Flask-Login treats any non-empty session without its identifier as hijacked, so every
    visitor whose session holds just a CSRF token would get a cookie-clearing header on every
    page. A session with no logged-in user has nothing to protect.
    """

    def _session_protection_failed(self) -> bool:
        if "_user_id" not in session:
            return False
        return super()._session_protection_failed()


login_manager = OrganiserLoginManager()
login_manager.login_view = "organiser.login"
login_manager.login_message = _l("Please log in to see that page.")
login_manager.session_protection = "strong"


@login_manager.user_loader
def _load(user_id: str) -> Organiser | None:
    """The organiser a session cookie names, if that session has not been ended since."""
    organiser_id, _, version = user_id.partition(".")
    if not (f"{organiser_id}{version}".isascii() and organiser_id.isdigit() and version.isdigit()):
        return None  # includes cookies from before sessions carried a version
    organiser = get_session().get(Organiser, int(organiser_id))
    if organiser is None or not organiser.active or organiser.session_version != int(version):
        return None
    return organiser


@login_manager.unauthorized_handler
def _log_in_first() -> Response:
    """To the login page, then back to the page the organiser was on.

    A form sent after the session ended (a logout elsewhere ends them all) is not saved and
    cannot be sent again from the login page: its way back is the page it was sent from, and
    the login page says so, rather than leading to an address that only takes forms.
    """
    if request.endpoint == "organiser.logout":  # logged out already: nothing was lost
        return redirect(url_for("public.home"))
    if request.method in ("GET", "HEAD"):
        flash(str(login_manager.login_message))
        back = request.full_path.rstrip("?")
    else:
        flash(_("You had been logged out, so that was not saved. Log in, then do it again."))
        back = _page_of_the_form()
    return redirect(url_for("organiser.login", next=back))


def _page_of_the_form() -> str | None:
    """Where a form posted here was shown. The Referer cannot say (private pages send only the
    origin), so: this address, if it is a page too (an edit form's), else its letter's page."""
    try:
        current_app.create_url_adapter(request).match(request.path, method="GET")
    except HTTPException:
        letter_id = (request.view_args or {}).get("letter_id")
        return url_for("organiser.show_letter", letter_id=letter_id) if letter_id else None
    return request.path


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
