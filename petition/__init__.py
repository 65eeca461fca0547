"""petition: open letters that members sign, verified by email, delivered as a CSV."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

from flask import Flask, request
from flask_wtf import CSRFProtect

from petition import auth, cache, config, cookies, db, errors, i18n, limits, links, web
from petition.services import letters
from petition.services.counts import CountCache

_HERE = Path(__file__).resolve().parent


def _resource(name: str) -> str:
    """Folders that sit beside the package in a checkout and inside it in a wheel."""
    inside = _HERE / name
    return str(inside if inside.is_dir() else _HERE.parent / name)


TEMPLATES = _resource("templates")
STATIC = _resource("static")
MIGRATIONS = _resource("migrations")

csrf = CSRFProtect()


class PetitionFlask(Flask):
    def log_exception(
        self,
        exc_info: tuple[type, BaseException, TracebackType] | tuple[None, None, None],
    ) -> None:
        """Flask's line for an unhandled exception, without the secret a path may hold."""
        self.logger.error(
            "Exception on %s [%s]", links.loggable(request.path), request.method, exc_info=exc_info
        )


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: configuration, extensions and blueprints. No queries, no network here."""
    app = PetitionFlask(
        __name__, template_folder=TEMPLATES, static_folder=STATIC, instance_relative_config=True
    )
    if test_config and test_config.get("TESTING"):
        app.testing = True
    config.load(app, test_config)
    db.init_app(app)
    csrf.init_app(app)
    i18n.init_app(app)
    auth.init_app(app)
    errors.init_app(app)
    web.init_app(app)
    cookies.init_app(app)
    app.extensions["petition.cache"] = shared_cache = cache.from_config(app.config["REDIS_URL"])
    app.extensions["petition.counts"] = CountCache(shared_cache, app.config["COUNT_CACHE_SECONDS"])
    app.extensions["petition.signable"] = cache.ProcessCache[letters.SignableLetter]()
    app.extensions["petition.pages"] = cache.ProcessCache[str]()
    from petition.views import api, deliveries, direct, organiser, public

    for blueprint in (public.bp, organiser.bp, deliveries.bp, api.bp):
        app.register_blueprint(blueprint)
    # WSGI middleware, innermost first: the two busiest form posts answered before Flask, then
    # ProxyFix (so both see the client's address), then the count poll, which needs neither.
    direct.init_app(app)
    limits.init_app(app)
    api.init_app(app)
    return app
