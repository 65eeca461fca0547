"""The in-process rate-limit counters (used when there is no Redis)."""

from __future__ import annotations

import threading
import time

from limits import parse
from limits.strategies import FixedWindowRateLimiter

from petition.limits import ProcessWindows


def test_a_window_counts_until_it_ends_then_starts_again():
    storage = ProcessWindows()
    limiter = FixedWindowRateLimiter(storage)
    two_a_second = parse("2 per second")
    assert [limiter.hit(two_a_second, "sign", "192.0.2.1") for _ in range(3)] == [True, True, False]
    assert limiter.hit(two_a_second, "sign", "192.0.2.2")  # someone else has their own count
    reset_at, remaining = limiter.get_window_stats(two_a_second, "sign", "192.0.2.1")
    assert remaining == 0 and time.time() < reset_at <= time.time() + 1
    time.sleep(1.05)
    assert limiter.hit(two_a_second, "sign", "192.0.2.1")


def test_ended_windows_are_swept_and_no_thread_is_started():
    storage = ProcessWindows()
    threads_before = threading.active_count()
    for number in range(100):
        storage.incr(f"client-{number}", 0.01)
    assert threading.active_count() == threads_before
    time.sleep(0.02)
    storage.swept -= ProcessWindows.SWEEP_SECONDS  # as if a minute had passed
    storage.incr("client-new", 60)
    assert set(storage.counts) == {"client-new"}
