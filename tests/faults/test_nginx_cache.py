"""The shipped nginx site's cache of the count JSON, in front of the app under gunicorn."""

from __future__ import annotations

from tests.nginx_site import http_get, running_nginx


def test_no_request_can_fill_a_letters_cached_count_with_another_answer(
    start_web, make_letter, tmp_path
):
    web = start_web()
    letter = make_letter()
    with running_nginx(tmp_path, app_port=web.port) as (_plain, tls):
        # The letter's address written otherwise, into an empty cache: nginx resolves the ".."
        # before it makes the cache key, Werkzeug does not (the app's answer was a 404).
        http_get(tls, f"/api/v1/letters/x/../{letter.slug}", tls=True)
        status, headers = http_get(tls, f"/api/v1/letters/{letter.slug}", tls=True)
    assert (status, headers["X-Cache"]) == (200, "HIT")


def test_only_a_letters_address_reaches_the_cache(start_web, make_letter, tmp_path):
    web = start_web()
    letter = make_letter()
    with running_nginx(tmp_path, app_port=web.port) as (_plain, tls):
        status, headers = http_get(tls, f"/api/v1/letters/{letter.slug}%0A", tls=True)
    assert status == 404  # the app's answer for no such letter, never a request line cut short
    assert "X-Cache" not in headers
