"""Organiser sessions with Flask-Login."""

from __future__ import annotations

from flask import Flask
from flask_babel import lazy_gettext as _l
from flask_login import LoginManager

from petition.db import get_session
from petition.models import Organiser

login_manager = LoginManager()
login_manager.login_view = "organiser.login"
login_manager.login_message = _l("Please log in to see that page.")
login_manager.session_protection = "strong"


@login_manager.user_loader
def _load(user_id: str) -> Organiser | None:
    if not user_id.isdigit():
        return None
    return get_session().get(Organiser, int(user_id))


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
