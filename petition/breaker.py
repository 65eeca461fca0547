"""A circuit breaker for a shared service this process can do without for a while (Redis).

A Redis that has stopped answering (a failover, a partition, a full machine) costs every request
that asks it a socket timeout; under a burst of signatures that would hold every worker. After a
failure the breaker opens: for RETRY_SECONDS this process does not ask at all and works from its
own memory, then one request tries again.
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)

# How long to wait for a Redis on the same network before working without it: it answers in
# well under a millisecond when it is well.
REDIS_TIMEOUTS = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}


class CircuitBreaker:
    RETRY_SECONDS = 5.0

    def __init__(self, what: str, retry_seconds: float = RETRY_SECONDS) -> None:
        self.what = what
        self.retry_seconds = retry_seconds
        self.retry_at = 0.0
        self.tripped = False
        self.lock = threading.Lock()

    def is_open(self) -> bool:
        """True while this process should not ask the service. Once RETRY_SECONDS have passed,
        one caller (thread) gets False and tries; the others go on without the service until
        it succeeds (succeeded()) or fails (trip()) and the wait starts again."""
        if not self.tripped:
            return False
        with self.lock:
            now = time.monotonic()
            if now < self.retry_at:
                return True
            self.retry_at = now + self.retry_seconds  # this caller is the one that tries
            return False

    def trip(self, error: Exception) -> None:
        with self.lock:
            self.tripped = True
            self.retry_at = time.monotonic() + self.retry_seconds
        log.warning(
            "%s failed (%s): this process works without it for the next %g s",
            self.what,
            type(error).__name__,
            self.retry_seconds,
        )

    def succeeded(self) -> None:
        if self.tripped:
            with self.lock:
                was_tripped, self.tripped = self.tripped, False
            if was_tripped:
                log.warning("%s answers again", self.what)
