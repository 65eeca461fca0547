"""Several app instances share rate limits through Redis."""

from __future__ import annotations

import uuid

import pytest
import redis

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
