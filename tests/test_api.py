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
        "updated_at",
    }  # fmt: skip
    assert body["slug"] == letter.slug
    assert body["recipient"] == {"name": "Alex Morgan MP", "role": "MP for Northtown"}
    assert body["status"] == "open"
    assert body["signature_count"] == 1
    assert body["goal"] == 5000
    assert body["closes_at"] == "2030-01-01T00:00:00+00:00"
    assert "public" in response.headers["Cache-Control"]


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
