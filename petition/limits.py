"""Rate limits (the `limits` library): in process by default, shared through Redis when set.

Only the views that need a limit pay for one: a limiter checked before every request would tax
the count poll, answered thousands of times a second, for nothing.
"""

from __future__ import annotations

import logging
import math
import time

from flask import Flask, current_app, request
from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter
from werkzeug.exceptions import TooManyRequests
from werkzeug.middleware.proxy_fix import ProxyFix

log = logging.getLogger(__name__)

LOGIN_LIMITS = parse_many("10 per minute; 50 per hour")


class Limiter:
    """Counts hits per client address in fixed windows; a storage outage lets requests through."""

    def __init__(self, storage_uri: str, prefix: str) -> None:
        self.strategy = FixedWindowRateLimiter(storage_from_string(storage_uri))
        self.prefix = prefix

    def hit(self, scope: str, limits: list[RateLimitItem], key: str) -> None:
        """Count one attempt; raise 429 with Retry-After when any limit is exceeded."""
        try:
            for limit in limits:
                if not self.strategy.hit(limit, self.prefix, scope, key):
                    reset_at = self.strategy.get_window_stats(limit, self.prefix, scope, key)[0]
                    raise TooManyRequests(retry_after=max(1, math.ceil(reset_at - time.time())))
        except TooManyRequests:
            raise
        except Exception as error:
            log.warning("rate limit storage failed: %s", type(error).__name__)


def init_app(app: Flask) -> None:
    """Share limits across instances through Redis, and see clients' addresses behind a proxy."""
    uri = app.config.get("RATELIMIT_STORAGE_URI") or app.config["REDIS_URL"] or "memory://"
    prefix = str(app.config.get("RATELIMIT_KEY_PREFIX") or "petition")
    app.extensions["petition.limiter"] = Limiter(uri, prefix)
    proxies = app.config["TRUSTED_PROXIES"]
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)


def check_login_attempt() -> None:
    """Organiser logins: 10 a minute and 50 an hour from one address."""
    limiter: Limiter = current_app.extensions["petition.limiter"]
    limiter.hit("login", LOGIN_LIMITS, request.remote_addr or "unknown")
