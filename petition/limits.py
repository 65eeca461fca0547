"""Rate limits (Flask-Limiter): in process by default, shared through Redis when configured."""

from __future__ import annotations

from flask import Flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from werkzeug.middleware.proxy_fix import ProxyFix

limiter = Limiter(get_remote_address, swallow_errors=True)

LOGIN_LIMIT = "10 per minute;50 per hour"


def init_app(app: Flask) -> None:
    """Share limits across instances through Redis, and see clients' addresses behind a proxy."""
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["REDIS_URL"] or "memory://")
    proxies = app.config["TRUSTED_PROXIES"]
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)
    limiter.init_app(app)
