"""Cookies and tokens written here are the ones Flask and Flask-WTF would write."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.json.tag import TaggedJSONSerializer
from flask.sessions import SecureCookieSessionInterface
from markupsafe import Markup

from petition.cookies import KeyCachingSigner, SessionJSON

SESSIONS = [
    {"csrf_token": "0123abcd" * 5},
    {"_user_id": "7.2", "_fresh": True, "_id": "f" * 128, "csrf_token": "x", "n": 3, "z": None},
    {"_flashes": [("message", "Saved.")]},  # a tuple: tagged
    {"note": Markup("<b>bold</b>")},
    {" t": ["looks", "like", "a", "tag"]},  # a key Flask's tags use
    {"nested": {"a": "b"}},
    {},
]


@pytest.mark.parametrize("session", SESSIONS)
def test_a_session_is_written_as_flask_writes_it_and_reads_back(app: Flask, session) -> None:
    flask_json = TaggedJSONSerializer()
    ours = SessionJSON()
    assert ours.dumps(session) == flask_json.dumps(session)
    assert flask_json.loads(ours.dumps(session)) == session


def test_a_signed_cookie_reads_back_through_flask_with_either_key(app: Flask) -> None:
    session = {"csrf_token": "abc", "_user_id": "1.1"}
    ours = app.session_interface.get_signing_serializer(app)
    flasks = SecureCookieSessionInterface().get_signing_serializer(app)
    assert flasks.loads(ours.dumps(session)) == session
    assert ours.loads(flasks.dumps(session)) == session


def test_derived_keys_belong_to_their_secret_and_salt() -> None:
    one = KeyCachingSigner("first secret", salt="a")
    assert one.derive_key() == KeyCachingSigner("first secret", salt="a").derive_key()
    assert one.derive_key() != KeyCachingSigner("first secret", salt="b").derive_key()
    assert one.derive_key() != KeyCachingSigner("other secret", salt="a").derive_key()
    signed = one.sign("value")
    assert KeyCachingSigner(["other secret", "first secret"], salt="a").unsign(signed) == b"value"
