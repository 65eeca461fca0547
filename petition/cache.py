"""A small shared cache: in this process by default, in Redis when PETITION_REDIS_URL is set.

It holds things that are cheap to lose and costly to recompute on every request (counts, the
public JSON for a letter, share images), always with a short lifetime.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from petition.breaker import REDIS_TIMEOUTS, CircuitBreaker

V = TypeVar("V")


class Cache(Protocol[V]):
    def get(self, key: str) -> V | None: ...
    def set(self, key: str, value: V, seconds: float) -> None: ...
    def delete(self, key: str) -> None: ...


class ProcessCache(Generic[V]):
    """A dict with expiry times, bounded so that a flood of keys cannot grow it forever.

    It holds bytes when it stands in for the shared cache, and may hold objects that never
    leave this process.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._items: dict[str, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> V | None:
        item = self._items.get(key)
        if item is None or item[0] <= time.monotonic():
            return None
        return item[1]

    def set(self, key: str, value: V, seconds: float) -> None:
        with self._lock:
            if len(self._items) >= self.max_entries:
                now = time.monotonic()
                self._items = {k: v for k, v in self._items.items() if v[0] > now}
                if len(self._items) >= self.max_entries:
                    self._items.clear()
            self._items[key] = (time.monotonic() + seconds, value)

    def delete(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)


class RedisCache:
    """Shared by every instance; a Redis outage degrades to recomputing, never to an error.

    While Redis is failing (see petition.breaker) reads miss and writes are dropped at once:
    every value here has a short lifetime, so nothing stale outlives the outage by long.
    """

    def __init__(self, url: str, prefix: str = "petition:cache:") -> None:
        import redis

        self.client = redis.Redis.from_url(url, **REDIS_TIMEOUTS)
        self.prefix = prefix
        self.breaker = CircuitBreaker("Redis (shared cache)")

    def get(self, key: str) -> bytes | None:
        return self._ask(self.client.get, self.prefix + key)

    def set(self, key: str, value: bytes, seconds: float) -> None:
        self._ask(self.client.set, self.prefix + key, value, px=max(int(seconds * 1000), 1))

    def delete(self, key: str) -> None:
        self._ask(self.client.delete, self.prefix + key)

    def _ask(self, command: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self.breaker.is_open():
            return None
        try:
            answer = command(*args, **kwargs)
        except Exception as error:
            self.breaker.trip(error)
            return None
        self.breaker.succeeded()
        return answer


class TieredCache:
    """Redis shared by every instance, with a second's copy in this process in front of it.

    A Redis round trip costs more than a whole cached count answer; keeping what was just read
    for a second (never longer than the value's own lifetime) spares most of them.
    """

    def __init__(self, shared: Cache, local_seconds: float = 1.0) -> None:
        self.shared = shared
        self.local: ProcessCache[bytes] = ProcessCache()
        self.local_seconds = local_seconds

    def get(self, key: str) -> bytes | None:
        value = self.local.get(key)
        if value is None:
            value = self.shared.get(key)
            if value is not None:
                self.local.set(key, value, self.local_seconds)
        return value

    def set(self, key: str, value: bytes, seconds: float) -> None:
        self.shared.set(key, value, seconds)
        self.local.set(key, value, min(seconds, self.local_seconds))

    def delete(self, key: str) -> None:
        self.shared.delete(key)
        self.local.delete(key)


def remember(cache: Cache[V], key: str, seconds: float, compute: Callable[[], V]) -> V:
    """The cached value for `key`, or compute it and keep it `seconds` (0: never cached)."""
    value = cache.get(key) if seconds > 0 else None
    if value is None:
        value = compute()
        if seconds > 0:
            cache.set(key, value, seconds)
    return value


def from_config(redis_url: str | None) -> Cache[bytes]:
    return TieredCache(RedisCache(redis_url)) if redis_url else ProcessCache[bytes]()
