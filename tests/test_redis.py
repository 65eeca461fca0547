"""Several app instances share rate limits through Redis."""

from __future__ import annotations

import uuid

import pytest
import redis
from werkzeug.exceptions import TooManyRequests

from petition import create_app
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.redis


def test_login_limit_is_shared_between_instances(app_config, make_organiser):
    make_organiser()
    prefix = uuid.uuid4().hex
    config = dict(app_config, REDIS_URL=REDIS_URL, RATELIMIT_KEY_PREFIX=prefix)
    first, second = create_app(config), create_app(config)
    attempts = {"email": "organiser@example.org", "password": "guess"}
    statuses = [
        (first if i % 2 else second)
        .test_client()
        .post("/organiser/login", data=attempts)
        .status_code
        for i in range(11)
    ]
    for instance in (first, second):
        instance.extensions["petition.engine"].dispose()
    assert statuses == [401] * 10 + [429]
    # The counters live in Redis, where every instance (process or host) sees them.
    connection = redis.Redis.from_url(REDIS_URL)
    keys = connection.keys(f"*{prefix}*")
    assert keys, "no rate-limit counters in Redis"
    connection.delete(*keys)
    connection.close()


def test_the_shared_cache_lives_in_redis_with_a_short_local_copy():
    from petition.cache import from_config

    first, second = from_config(REDIS_URL), from_config(REDIS_URL)  # two instances
    key = "test:" + uuid.uuid4().hex
    first.set(key, b"41", 5)
    assert second.get(key) == b"41"  # read through Redis
    first.set(key, b"42", 5)
    assert second.get(key) == b"41"  # its local copy, at most a second old
    second.local.delete(key)
    assert second.get(key) == b"42"
    first.delete(key)


def test_a_client_asks_redis_only_once_it_has_used_its_share_in_this_process():
    from limits import parse

    from petition.limits import Limiter

    prefix = uuid.uuid4().hex
    first, second = Limiter(REDIS_URL, prefix), Limiter(REDIS_URL, prefix)  # two processes
    hundred = [parse("100 per hour")]  # a share of 5 in each process
    connection = redis.Redis.from_url(REDIS_URL)
    try:
        for _ in range(5):
            first.hit("sign", hundred, "192.0.2.1")
        assert connection.keys(f"*{prefix}*") == []  # five signatures, no round trip
        first.hit("sign", hundred, "192.0.2.1")
        [key] = connection.keys(f"*{prefix}*")
        assert int(connection.get(key)) == 6  # the five are counted when the sixth comes
        for _ in range(5):
            second.hit("sign", hundred, "192.0.2.1")
        for _ in range(100 - 6):
            first.hit("sign", hundred, "192.0.2.1")
        assert int(connection.get(key)) == 100
        # 105 let through in all: at most 5 % more per process than the limit, then no more.
        for process in (first, second):
            with pytest.raises(TooManyRequests):
                process.hit("sign", hundred, "192.0.2.1")
    finally:
        for key in connection.keys(f"*{prefix}*"):
            connection.delete(key)
        connection.close()
