"""A Redis that stops answering is asked once, then left alone for a while: no request waits
on it, rate limits go on in each process, and all is shared again once it answers."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from limits import parse
from werkzeug.exceptions import TooManyRequests

from petition.breaker import CircuitBreaker
from petition.cache import RedisCache
from petition.limits import Limiter

RETRY_SECONDS = 0.5


def _breaker_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "petition.breaker"]


def test_rate_limits_count_in_this_process_while_redis_does_not_answer(private_redis, caplog):
    limiter = Limiter(private_redis.url, "outage")
    limiter.breaker.retry_seconds = RETRY_SECONDS
    three = [parse("3 per hour")]
    for _ in range(3):
        limiter.hit("login", three, "192.0.2.9")  # counted in Redis only
    private_redis.freeze()
    caplog.set_level(logging.WARNING, "petition.breaker")
    for _ in range(3):
        limiter.hit("login", three, "192.0.2.1")
    with pytest.raises(TooManyRequests):  # counted in this process meanwhile
        limiter.hit("login", three, "192.0.2.1")
    limiter.hit("login", three, "192.0.2.9")  # ... which had not seen this one before
    [failed] = _breaker_messages(caplog)  # Redis was asked once, not five times
    assert failed.startswith("Redis (rate limits) failed (TimeoutError)")

    private_redis.thaw()
    time.sleep(RETRY_SECONDS)
    with pytest.raises(TooManyRequests):  # Redis's count again
        limiter.hit("login", three, "192.0.2.9")
    assert _breaker_messages(caplog)[1:] == ["Redis (rate limits) answers again"]


def test_the_shared_cache_misses_at_once_while_redis_does_not_answer(private_redis, caplog):
    cache = RedisCache(private_redis.url)
    cache.breaker.retry_seconds = RETRY_SECONDS
    cache.set("count:1", b"41", 60)
    private_redis.freeze()
    caplog.set_level(logging.WARNING, "petition.breaker")
    assert [cache.get("count:1") for _ in range(5)] == [None] * 5
    cache.set("count:1", b"42", 60)
    cache.delete("count:1")
    [failed] = _breaker_messages(caplog)
    assert failed.startswith("Redis (shared cache) failed (TimeoutError)")

    private_redis.thaw()
    time.sleep(RETRY_SECONDS)
    assert cache.get("count:1") == b"41"  # what was written while it was away was dropped
    assert _breaker_messages(caplog)[1:] == ["Redis (shared cache) answers again"]


def test_a_redis_that_has_gone_is_refused_at_once_and_asked_again_later(private_redis, caplog):
    cache = RedisCache(private_redis.url)
    cache.breaker.retry_seconds = RETRY_SECONDS
    private_redis.stop()
    caplog.set_level(logging.WARNING, "petition.breaker")
    assert cache.get("count:1") is None and cache.get("count:1") is None
    time.sleep(RETRY_SECONDS)
    assert cache.get("count:1") is None
    assert [message.split(":")[0] for message in _breaker_messages(caplog)] == [
        "Redis (shared cache) failed (ConnectionError)"
    ] * 2


def test_once_the_wait_is_over_one_caller_tries_and_the_others_wait_on():
    breaker = CircuitBreaker("Redis (test)", retry_seconds=RETRY_SECONDS)
    breaker.trip(TimeoutError())
    assert breaker.is_open()
    time.sleep(RETRY_SECONDS)
    with ThreadPoolExecutor(max_workers=8) as pool:  # gthread workers' threads, at once
        asked = list(pool.map(lambda _n: not breaker.is_open(), range(8)))
    assert asked.count(True) == 1
    breaker.succeeded()
    assert not breaker.is_open()
