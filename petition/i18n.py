"""Translations: Flask-Babel, with a quicker way for templates to reach the catalogue.

Flask-Babel looks up the locale and the catalogue afresh for every string (about 7 µs each, a
third of the time it takes to render a page). Templates here ask the same per-request
namespace for them once, then keep the catalogue beside the locale it belongs to: a change of
locale (`force_locale`, `refresh`) is seen at the next string.
"""

from __future__ import annotations

from babel import Locale
from babel.support import NullTranslations
from flask import Flask, g
from flask_babel import Babel, get_locale, get_translations, gettext

babel = Babel()

_MEMO = "petition_translations"


def init_app(app: Flask) -> None:
    # Flask-Babel parses the default locale afresh for every request (a file-system check in
    # babel, a tenth of the letter page's time); there is one language, so parse it once.
    language = Locale.parse(app.config["BABEL_DEFAULT_LOCALE"])
    babel.init_app(app, locale_selector=lambda: language)
    app.jinja_env.install_gettext_callables(
        gettext=lambda string: _translations().ugettext(string),
        ngettext=lambda singular, plural, n: _translations().ungettext(singular, plural, n),
        newstyle=True,
    )


def _translations() -> NullTranslations:
    # Flask-Babel keeps the current locale in g._flask_babel.babel_locale.
    state = g.__dict__.get("_flask_babel")
    locale = getattr(state, "babel_locale", None)
    if locale is not None:
        memo = getattr(state, _MEMO, None)
        if memo is not None and memo[0] is locale:
            return memo[1]
    translations = get_translations()
    state = g.__dict__.get("_flask_babel")
    locale = getattr(state, "babel_locale", None)
    if locale is not None:
        setattr(state, _MEMO, (locale, translations))
    return translations


_KEPT_MAX = 1024
_kept: dict[tuple[str, ...], str] = {}


def gettext_kept(string: str, **variables: str) -> str:
    """gettext for a string made again and again with the same values, such as a letter's mail
    subject on every signature: kept per locale, string and values in this process, as the
    catalogue is. A lookup through Flask-Babel cost a twentieth of a signature."""
    key = (str(get_locale()), string, *(f"{name}={value}" for name, value in variables.items()))
    found = _kept.get(key)
    if found is None:
        if len(_kept) >= _KEPT_MAX:
            _kept.clear()
        found = _kept[key] = gettext(string, **variables)
    return found
