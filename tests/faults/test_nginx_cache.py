"""The shipped nginx site's cache of the count JSON, in front of the app under gunicorn."""

from __future__ import annotations

import time

import pytest

from tests.nginx_site import http_get, running_nginx

# The same letter's address written otherwise: nginx resolves these before it matches a location
# and makes the cache key, Werkzeug does not (the app answers 404).
SAME_ADDRESS_OTHERWISE = ["/api/v1/letters/x/../{slug}", "/api/v1/letters/./{slug}"]


@pytest.mark.parametrize("written", SAME_ADDRESS_OTHERWISE, ids=["dot-dot", "dot"])
def test_no_request_can_fill_a_letters_cached_count_with_another_answer(
    start_web, make_letter, tmp_path, written
):
    web = start_web()
    letter = make_letter()
    path = f"/api/v1/letters/{letter.slug}"
    with running_nginx(tmp_path, app_port=web.port) as (_plain, tls):
        assert http_get(tls, path, tls=True)[0] == 200
        time.sleep(1.2)  # the cached copy is now stale: the next request has it refreshed
        assert http_get(tls, written.format(slug=letter.slug), tls=True)[0] == 200  # the stale copy
        watched = []  # what watchers get while that request's refresh lands, and after
        for _ in range(20):
            status, headers = http_get(tls, path, tls=True)
            watched.append((status, headers["X-Cache"]))
            time.sleep(0.1)
    assert {status for status, _cache in watched} == {200}, watched
