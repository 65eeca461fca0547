"""GET /api/v1/letters/<slug>: the letter's details and live count."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.conftest import sign_and_confirm


def test_letter_json_has_the_documented_fields(client, make_letter, mailbox):
    closes = datetime(2030, 1, 1, tzinfo=UTC)
    letter = make_letter(goal=5000, closes_at=closes)
    sign_and_confirm(client, mailbox, letter)
    response = client.get(f"/api/v1/letters/{letter.slug}")
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {
        "slug", "title", "recipient", "status", "signature_count", "goal", "closes_at",
        "closed_at", "updated_at",
    }  # fmt: skip
    assert body["slug"] == letter.slug
    assert body["recipient"] == {"name": "Alex Morgan MP", "role": "MP for Northtown"}
    assert body["status"] == "open"
    assert body["signature_count"] == 1
    assert body["goal"] == 5000
    assert body["closes_at"] == "2030-01-01T00:00:00+00:00"
    assert body["closed_at"] is None
    assert "public" in response.headers["Cache-Control"]
    closed = make_letter(status="closed", slug="closed-early", closes_at=closes)
    body = client.get(f"/api/v1/letters/{closed.slug}").get_json()
    assert (body["status"], body["closes_at"]) == ("closed", "2030-01-01T00:00:00+00:00")
    assert body["closed_at"].startswith(str(closed.closed_at.date()))


def test_etag_lets_pollers_skip_unchanged_bodies(client, make_letter, mailbox):
    letter = make_letter()
    first = client.get(f"/api/v1/letters/{letter.slug}")
    etag = first.headers["ETag"]
    unchanged = client.get(f"/api/v1/letters/{letter.slug}", headers={"If-None-Match": etag})
    assert unchanged.status_code == 304
    assert unchanged.get_data() == b""
    sign_and_confirm(client, mailbox, letter)
    changed = client.get(f"/api/v1/letters/{letter.slug}", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.get_json()["signature_count"] == 1


def test_unknown_letter_is_a_json_404(client):
    response = client.get("/api/v1/letters/nope")
    assert response.status_code == 404
    assert response.get_json()["error"]["title"] == "Letter not found"


def test_cached_polls_are_answered_before_flask_exactly_as_flask_would(app_config, make_letter):
    from petition import create_app
    from petition.cache import ProcessCache

    def answers(path: str, **headers: str) -> list:
        out = []
        for fast in (False, True):
            application = create_app({**app_config, "COUNT_CACHE_SECONDS": 60})
            application.extensions["petition.cache"] = cache = ProcessCache()
            application.wsgi_app.cache = cache
            client = application.test_client()
            first = client.get(path, headers=headers)  # through Flask; fills the cache
            answer = client.get(path, headers=headers) if fast else first
            out.append((answer.status_code, sorted(answer.headers.items()), answer.get_data()))
            application.extensions["petition.engine"].dispose()
        return out

    letter = make_letter()
    path = f"/api/v1/letters/{letter.slug}"
    flask_answer, fast_answer = answers(path)
    assert flask_answer == fast_answer
    assert flask_answer[0] == 200 and b'"signature_count":0' in flask_answer[2]
    etag = dict(flask_answer[1])["ETag"]
    flask_304, fast_304 = answers(path, **{"If-None-Match": f'W/"x", {etag}'})
    assert flask_304 == fast_304 and flask_304[0] == 304 and flask_304[2] == b""
    # Not cached (an unknown letter) or not the poll: Flask answers as usual.
    missing = answers("/api/v1/letters/no-such-letter")
    assert [status for status, _headers, _body in missing] == [404, 404]


def test_polls_ignore_the_visitors_session_so_shared_caches_keep_one_copy(client, make_letter):
    letter = make_letter()
    client.get(f"/letters/{letter.slug}")  # a visitor with a session cookie (the CSRF secret)
    assert client.get_cookie("session") is not None
    poll = client.get(f"/api/v1/letters/{letter.slug}")
    assert poll.status_code == 200
    assert "Vary" not in poll.headers and "Set-Cookie" not in poll.headers
