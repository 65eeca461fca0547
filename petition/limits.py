"""Rate limits (the `limits` library): in process by default, shared through Redis when set.

Only the views that need a limit pay for one: a limiter checked before every request would tax
the count poll, answered thousands of times a second, for nothing.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time

from flask import Flask, current_app, request
from limits import RateLimitItem, parse_many
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from werkzeug.exceptions import TooManyRequests
from werkzeug.middleware.proxy_fix import ProxyFix

from petition.breaker import REDIS_TIMEOUTS, CircuitBreaker
from petition.config import ConfigError

LOGIN_LIMITS = parse_many("10 per minute; 50 per hour")


class ProcessWindows(Storage):
    """Fixed-window counters in this process, for `memory://`: limits' own MemoryStorage
    without its expiry thread.

    MemoryStorage starts a new timer thread whenever its 10 ms one has run out: under a burst of
    signatures that was a thread every few requests, about 4 % of each signature's time. Here a
    window that has ended is dropped when its key is next counted, and all of them once a minute,
    inline. Only what FixedWindowRateLimiter uses is implemented.
    """

    STORAGE_SCHEME = ["petition-process"]
    SWEEP_SECONDS = 60.0

    def __init__(self, uri: str | None = None, **options: float | str | bool) -> None:
        super().__init__(uri, **options)
        self.counts: dict[str, int] = {}
        self.ends: dict[str, float] = {}
        self.lock = threading.Lock()
        self.swept = time.time()

    @property
    def base_exceptions(self) -> type[Exception]:
        return ValueError

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        now = time.time()
        with self.lock:
            if now - self.swept > self.SWEEP_SECONDS:
                self._sweep(now)
            if self.ends.get(key, 0.0) <= now:
                self.counts[key], self.ends[key] = 0, now + expiry
            self.counts[key] += amount
            return self.counts[key]

    def get(self, key: str) -> int:
        with self.lock:
            return self.counts.get(key, 0) if self.ends.get(key, 0.0) > time.time() else 0

    def get_expiry(self, key: str) -> float:
        with self.lock:
            return self.ends.get(key, time.time())

    def check(self) -> bool:
        return True

    def reset(self) -> int:
        with self.lock:
            cleared = len(self.counts)
            self.counts.clear()
            self.ends.clear()
            return cleared

    def clear(self, key: str) -> None:
        with self.lock:
            self.counts.pop(key, None)
            self.ends.pop(key, None)

    def _sweep(self, now: float) -> None:
        for key in [key for key, end in self.ends.items() if end <= now]:
            del self.counts[key], self.ends[key]
        self.swept = now


class Limiter:
    """Counts hits per client address in fixed windows.

    With Redis every process sees the same counts. While Redis fails (see petition.breaker)
    each process counts on its own, as it does without Redis, until Redis answers again.
    """

    # A shared limit of at least LOCAL_FROM lets each process count a client's first 5 % on
    # its own, and ask Redis only from there on: most people sign once, and a round trip to
    # Redis for each of them was an eighth of a signature's time. A client can so get at most
    # 5 % more per app process than the limit; small limits (logins) are always shared.
    LOCAL_FROM = 100
    LOCAL_SHARE = 20

    def __init__(self, storage_uri: str, prefix: str) -> None:
        self.prefix = prefix
        self.own = FixedWindowRateLimiter(ProcessWindows())
        self.strategy = self.own
        self.allowances: ProcessWindows | None = None
        self.breaker = CircuitBreaker("Redis (rate limits)")
        if storage_uri != "memory://":
            redis = storage_uri.startswith(("redis://", "rediss://", "unix://"))
            storage = storage_from_string(storage_uri, **(REDIS_TIMEOUTS if redis else {}))
            self.strategy = FixedWindowRateLimiter(storage)
            self.allowances = ProcessWindows()

    def _cost(self, limit: RateLimitItem, scope: str, key: str) -> int:
        """What this attempt adds to the shared count: 0 while it is within the process's own
        allowance, all that was let through uncounted when it first goes beyond, then 1."""
        if self.allowances is None or limit.amount < self.LOCAL_FROM:
            return 1
        allowance = limit.amount // self.LOCAL_SHARE
        seen = self.allowances.incr(limit.key_for(self.prefix, scope, key), limit.get_expiry())
        if seen <= allowance:
            return 0
        return seen if seen == allowance + 1 else 1

    def hit(self, scope: str, limits: list[RateLimitItem], key: str) -> None:
        """Count one attempt; raise 429 with Retry-After when any limit is exceeded."""
        if self.strategy is self.own or self.breaker.is_open():
            self._count(self.own, scope, limits, key)
            return
        try:
            self._count(self.strategy, scope, limits, key)
        except TooManyRequests:
            self.breaker.succeeded()  # Redis answered, with a refusal
            raise
        except Exception as error:
            self.breaker.trip(error)
            self._count(self.own, scope, limits, key)
        else:
            self.breaker.succeeded()

    def _count(
        self,
        strategy: FixedWindowRateLimiter,
        scope: str,
        limits: list[RateLimitItem],
        key: str,
    ) -> None:
        for limit in limits:
            cost = 1 if strategy is self.own else self._cost(limit, scope, key)
            if cost and not strategy.hit(limit, self.prefix, scope, key, cost=cost):
                reset_at = strategy.get_window_stats(limit, self.prefix, scope, key)[0]
                raise TooManyRequests(retry_after=max(1, math.ceil(reset_at - time.time())))


def init_app(app: Flask) -> None:
    """Share limits across instances through Redis, and see clients' addresses behind a proxy."""
    uri = app.config.get("RATELIMIT_STORAGE_URI") or app.config["REDIS_URL"] or "memory://"
    prefix = str(app.config.get("RATELIMIT_KEY_PREFIX") or "petition")
    app.extensions["petition.limiter"] = Limiter(uri, prefix)
    app.extensions["petition.sign_limits"] = parse_setting(
        "SIGN_RATE_LIMIT", app.config["SIGN_RATE_LIMIT"]
    )
    proxies = app.config["TRUSTED_PROXIES"]
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)


def parse_setting(key: str, value: object) -> list[RateLimitItem]:
    """A setting such as "200 per hour" or "30 per minute; 300 per hour"; "off" for none."""
    text = str(value or "").strip()
    if text.lower() in ("", "off", "none"):
        return []
    try:
        limits = parse_many(text)
    except ValueError:
        limits = []
    if limits and all(limit.amount > 0 and 0 < limit.get_expiry() <= YEAR for limit in limits):
        return limits
    raise ConfigError(
        f'PETITION_{key} must be like "200 per hour" or "30 per minute; 300 per hour" (a '
        f'window of a second to a year), or "off", not {text!r}.'
    )


YEAR = 366 * 24 * 3600


def seconds_to_wait(refused: TooManyRequests) -> int:
    """How long a refused client should wait, as Retry-After says (a minute if unknown)."""
    return int(refused.retry_after or 60)


def minutes_to_wait(refused: TooManyRequests) -> int:
    """The wait in whole minutes, rounded up, for the words people read."""
    return -(-seconds_to_wait(refused) // 60)


def client_key(address: str | None) -> str:
    """Who is asking: the client's address, or its /64 for IPv6 (one home or phone has one)."""
    address = address or "unknown"
    if ":" in address:
        try:
            return str(ipaddress.ip_network(f"{address}/64", strict=False))
        except ValueError:
            pass
    return address


def check_login_attempt() -> None:
    """Organiser logins: 10 a minute and 50 an hour from one address."""
    limiter: Limiter = current_app.extensions["petition.limiter"]
    limiter.hit("login", LOGIN_LIMITS, client_key(request.remote_addr))


# Set in the WSGI environ by a fast path that has counted the signature already (see
# views/direct.py): True, or the TooManyRequests it met, so that the view does not count it again.
SIGNING_COUNTED = "petition.signing_counted"


def check_signing() -> None:
    """Signatures sent from one address (PETITION_SIGN_RATE_LIMIT): each one mails somebody."""
    counted = request.environ.get(SIGNING_COUNTED)
    if isinstance(counted, TooManyRequests):
        raise counted
    if counted is None:
        count_signing(current_app, request.remote_addr)


def count_signing(app: Flask, address: str | None) -> None:
    """Count a signature from this client address; TooManyRequests when it is one too many."""
    limits = app.extensions["petition.sign_limits"]
    if limits:
        limiter: Limiter = app.extensions["petition.limiter"]
        limiter.hit("sign", limits, client_key(address))
