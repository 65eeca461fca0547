"""Signing and confirming before Flask (views/direct.py): Flask's answer, or Flask's own work.

Every test here runs with CSRF protection on, as deployed. A request the direct path answers
must get exactly what the views would have answered; anything else must reach the views
untouched and be counted against the rate limit once.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, func, select
from werkzeug.datastructures import MultiDict

from petition import db, driver
from petition.db import transaction, utcnow
from petition.forms.sign import SignForm, signature_input
from petition.limits import parse_setting
from petition.models import Letter, Message, Signature, SignatureState
from petition.services import letters
from petition.views.direct import DirectAnswers
from tests.conftest import fresh_session, sign_data

TOKEN = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


class HandedOver:
    """Stands between the direct path and Flask, counting the POSTs (`count`) and the letter
    pages (`pages`) handed to Flask."""

    def __init__(self, layer: DirectAnswers) -> None:
        self.flask = layer.wsgi_app
        self.count = self.pages = 0
        layer.wsgi_app = self

    def __call__(self, environ: dict, start_response: Any) -> Any:
        method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
        self.count += method == "POST"
        self.pages += method == "GET" and path.startswith("/letters/") and path.count("/") == 2
        return self.flask(environ, start_response)


@pytest.fixture
def handed(app: Flask) -> HandedOver:
    app.config.update(WTF_CSRF_ENABLED=True, COUNT_CACHE_SECONDS=60)
    return HandedOver(_direct_layer(app))


def _direct_layer(app: Flask) -> DirectAnswers:
    layer = app.wsgi_app
    while not isinstance(layer, DirectAnswers):
        layer = layer.app
    return layer


@contextmanager
def flask_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Switch the direct path off, to see what the views answer."""
    with monkeypatch.context() as patch:
        patch.setattr(DirectAnswers, "_letter_page", lambda *_args: None)
        patch.setattr(DirectAnswers, "_sign", lambda *_args: None)
        patch.setattr(DirectAnswers, "_confirm", lambda *_args: None)
        yield


class Visitor:
    """A browser that has opened the letter page: a session cookie and the form's token."""

    def __init__(self, app: Flask, letter: Letter) -> None:
        self.client = app.test_client()
        self.slug = letter.slug
        page = self.client.get(f"/letters/{letter.slug}").get_data(as_text=True)
        self.token = TOKEN.search(page).group(1)

    def sign(self, **fields: Any) -> Any:
        data = {"csrf_token": self.token, **sign_data(**fields)}
        return self.client.post(f"/letters/{self.slug}/sign", data=data)

    def confirm(self, path: str) -> Any:
        page = self.client.get(path).get_data(as_text=True)
        match = TOKEN.search(page)
        token = match.group(1) if match else self.token  # an error page has no button
        return self.client.post(path, data={"csrf_token": token})


def answer(response: Any) -> tuple[int, list[tuple[str, str]], str]:
    return response.status_code, list(response.headers.items()), response.get_data(as_text=True)


def stored(email: str) -> dict[str, Any]:
    row = fresh_session().scalars(select(Signature).where(Signature.email == email)).one()
    columns = ("name", "postcode", "organisation", "comment", "show_name", "share_email")
    return {name: getattr(row, name) for name in (*columns, "wants_updates", "state")}


def test_a_valid_signature_gets_the_views_answer_without_flask(
    app, handed, make_letter, mailbox, monkeypatch
):
    letter = make_letter(ask_postcode=True, ask_organisation=True, ask_comment=True)
    visitor = Visitor(app, letter)
    fields = {"postcode": "ls1 4ap", "organisation": "Unison", "comment": "Yes\r\nplease"}
    direct = visitor.sign(email="direct@example.org", show_name="y", **fields)
    assert handed.count == 0
    with flask_only(monkeypatch):
        by_flask = visitor.sign(email="flask@example.org", show_name="y", **fields)
    assert handed.count == 1
    assert direct.status_code == 303
    assert answer(direct) == answer(by_flask)
    assert stored("direct@example.org") == stored("flask@example.org")
    assert stored("direct@example.org")["postcode"] == "LS1 4AP"
    mailbox.deliver()
    for address in ("direct@example.org", "flask@example.org"):
        assert mailbox.link(address, "/verify/")


@contextmanager
def connections_at_once(app: Flask) -> Iterator[list[int]]:
    """How many pooled connections the block held at each checkout."""
    out, held = set(), []

    def checked_out(_dbapi: Any, record: Any, _proxy: Any) -> None:
        out.add(id(record))
        held.append(len(out))

    def checked_in(_dbapi: Any, record: Any) -> None:
        out.discard(id(record))

    engine = app.extensions["petition.engine"]
    event.listen(engine, "checkout", checked_out)
    event.listen(engine, "checkin", checked_in)
    try:
        yield held
    finally:
        event.remove(engine, "checkout", checked_out)
        event.remove(engine, "checkin", checked_in)


@pytest.mark.parametrize("path", ["direct", "flask"])
def test_signing_and_confirming_hold_one_database_connection_at_a_time(
    app, handed, make_letter, mailbox, monkeypatch, path
):
    """Reading the letter and then storing the signature on a second connection, with the
    first still in a transaction, deadlocked behind a pooler with as few server connections
    as workers: each worker held one and waited for another."""
    letter = make_letter()
    visitor = Visitor(app, letter)
    app.extensions["petition.signable"].delete(letter.slug)  # the letter is read afresh
    with monkeypatch.context() as patch:
        if path == "flask":
            patch.setattr(DirectAnswers, "_sign", lambda *_args: None)
            patch.setattr(DirectAnswers, "_confirm", lambda *_args: None)
        with connections_at_once(app) as held:
            assert visitor.sign(email="one@example.org").status_code == 303
        assert held and max(held) == 1, held
        mailbox.deliver()
        with connections_at_once(app) as held:
            assert visitor.confirm(mailbox.link("one@example.org", "/verify/")).status_code == 200
        assert held and max(held) == 1, held
    assert handed.count == (2 if path == "flask" else 0)


def test_confirming_gets_the_views_answer_without_flask(
    app, handed, make_letter, mailbox, monkeypatch
):
    letter = make_letter()
    visitor = Visitor(app, letter)
    addresses = [f"person{number}@example.org" for number in range(3)]
    for address in addresses:
        assert visitor.sign(email=address).status_code == 303
    mailbox.deliver()
    links = [mailbox.link(address, "/verify/") for address in addresses]
    handed.count = 0

    first = visitor.confirm(links[0])  # the thank-you page is rendered for the first time
    with flask_only(monkeypatch):
        second = visitor.confirm(links[1])
    third = visitor.confirm(links[2])  # and kept since
    assert handed.count == 1
    status, headers, page = answer(second)
    assert status == 200 and "You are signature #2" in page
    assert answer(first) == (status, headers, page.replace("signature #2", "signature #1"))
    assert answer(third) == (status, headers, page.replace("signature #2", "signature #3"))
    assert headers == [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Length", str(len(page.encode()))),
        ("Content-Security-Policy", headers[2][1]),
        ("X-Content-Type-Options", "nosniff"),
        ("Permissions-Policy", "interest-cohort=()"),
        ("Cache-Control", "private, no-store"),
        ("Referrer-Policy", "strict-origin"),
        ("X-Robots-Tag", "noindex, nofollow"),
        ("Vary", "Cookie"),
    ]
    verified = select(func.count()).where(Signature.state == SignatureState.VERIFIED)
    assert fresh_session().scalar(verified) == 3
    # A second press is for Flask to explain, and changes nothing.
    again = visitor.confirm(links[0])
    assert handed.count == 2
    assert "Your signature is already confirmed" in again.get_data(as_text=True)
    assert fresh_session().scalar(verified) == 3


@pytest.mark.parametrize(
    ("fields", "status", "shown"),
    [
        ({"name": ""}, 422, "Enter your name."),
        ({"email": "jane@"}, 422, 'value="jane@"'),
        ({"name": "jane@example.org"}, 422, "not an email address"),
        ({"postcode": "??"}, 422, "A postcode has letters and digits, like LS1 4AP."),
        ({"csrf_token": None}, 400, "This form has expired"),
        ({"csrf_token": "forged.token.value"}, 400, "This form has expired"),
    ],
)
def test_a_form_with_errors_goes_to_flask_untouched(
    app, handed, make_letter, fields, status, shown
):
    letter = make_letter(ask_postcode=True)
    visitor = Visitor(app, letter)
    data = {"csrf_token": visitor.token, **sign_data(postcode="LS1 4AP"), **fields}
    response = visitor.client.post(
        f"/letters/{letter.slug}/sign", data={k: v for k, v in data.items() if v is not None}
    )
    assert handed.count == 1
    assert response.status_code == status
    assert shown in response.get_data(as_text=True)
    assert fresh_session().scalar(select(func.count()).select_from(Signature)) == 0


def test_unusual_requests_go_to_flask(app, handed, make_letter, caplog):
    letter = make_letter()
    visitor = Visitor(app, letter)
    path = f"/letters/{letter.slug}/sign"
    form = {"csrf_token": visitor.token, **sign_data(email="one@example.org")}

    multipart = visitor.client.post(path, data=form, content_type="multipart/form-data")
    assert (multipart.status_code, handed.count) == (303, 1)

    raw = f"csrf_token={visitor.token}&name=Siân+Jones&email=two@example.org".encode()
    unencoded = visitor.client.post(
        path, data=raw, content_type="application/x-www-form-urlencoded"
    )
    assert (unencoded.status_code, handed.count) == (303, 2)
    assert stored("two@example.org")["name"] == "Siân Jones"

    padded = {**form, "email": "three@example.org", "padding": "x" * 9000}
    assert (visitor.client.post(path, data=padded).status_code, handed.count) == (303, 3)

    no_cookie = app.test_client().post(path, data={**form, "email": "four@example.org"})
    assert (no_cookie.status_code, handed.count) == (400, 4)

    missing = visitor.client.post("/letters/no-such-letter/sign", data=form)
    assert (missing.status_code, handed.count) == (404, 5)

    # "²".isdigit(), yet int("²") fails: such a length is Flask's to refuse, not an error here.
    with caplog.at_level(logging.ERROR):
        odd = visitor.client.post(path, data=form, environ_overrides={"CONTENT_LENGTH": "²"})
    assert handed.count == 6 and odd.status_code < 500
    assert "after an error" not in caplog.text
    assert fresh_session().scalar(select(func.count()).select_from(Signature)) == 3


@pytest.mark.parametrize(
    "extra", [{"_flashes": [("message", "Saved")]}, {"_user_id": "1", "_fresh": True}]
)
def test_a_session_with_more_than_the_csrf_secret_goes_to_flask(app, handed, make_letter, extra):
    letter = make_letter()
    visitor = Visitor(app, letter)
    with visitor.client.session_transaction() as session:
        session.update(extra)
    assert (visitor.sign().status_code, handed.count) == (303, 1)


def test_https_needs_a_referrer_from_this_site_as_csrfprotect_does(app, handed, make_letter):
    letter = make_letter()
    client = app.test_client()
    page = client.get(f"/letters/{letter.slug}", base_url="https://localhost")
    token = TOKEN.search(page.get_data(as_text=True)).group(1)

    def sign(email: str, referrer: str | None) -> int:
        headers = {"Referer": referrer} if referrer else {}
        data = {"csrf_token": token, **sign_data(email=email)}
        response = client.post(
            f"/letters/{letter.slug}/sign", data=data, base_url="https://localhost", headers=headers
        )
        return response.status_code

    assert (sign("a@example.org", None), handed.count) == (400, 1)
    assert (sign("b@example.org", "https://elsewhere.example/"), handed.count) == (400, 2)
    assert (sign("c@example.org", f"https://localhost/letters/{letter.slug}"), handed.count) == (
        303,
        2,
    )


def test_a_letter_closed_a_moment_ago_is_refused_by_flask_and_counted_once(
    app, handed, make_letter
):
    app.extensions["petition.sign_limits"] = _limit("2 per hour")
    closing, other = make_letter(), make_letter(title="Another letter")
    visitor = Visitor(app, closing)
    with transaction() as session:  # this process still has it as open for a few seconds
        letters.close(session, session.get_one(Letter, closing.id))
    refused = visitor.sign(email="late@example.org")
    assert (refused.status_code, handed.count) == (409, 1)
    second = Visitor(app, other)
    assert second.sign(email="next@example.org").status_code == 303  # the 2nd this hour
    assert second.sign(email="third@example.org").status_code == 429
    assert fresh_session().scalar(select(func.count()).select_from(Signature)) == 1


def test_the_rate_limit_refusal_is_flasks_page_and_counted_once(app, handed, make_letter):
    app.extensions["petition.sign_limits"] = _limit("2 per hour")
    letter = make_letter(ask_comment=True)
    visitor = Visitor(app, letter)
    for number in (1, 2):
        assert visitor.sign(email=f"person{number}@example.org").status_code == 303
    assert handed.count == 0
    refused = visitor.sign(name="Third Person", email="third@example.org", comment="Me too")
    assert (refused.status_code, handed.count) == (429, 1)
    page = refused.get_data(as_text=True)
    assert "Too many signatures have come from your network recently" in page
    assert 'value="Third Person"' in page and "Me too" in page
    assert refused.headers["Cache-Control"] == "private, no-store"
    limiter = app.extensions["petition.limiter"]
    (limit,) = app.extensions["petition.sign_limits"]
    hits = limiter.strategy.storage.get(limit.key_for(limiter.prefix, "sign", "127.0.0.1"))
    assert hits == 3


def _limit(setting: str) -> list:
    return parse_setting("SIGN_RATE_LIMIT", setting)


CORPUS: list[dict[str, Any]] = [
    {"name": "Jane Doe", "email": "jane@example.org"},
    {"name": "", "email": "jane@example.org"},
    {"name": "Ann", "email": "ann@example.org", "show_name": "y", "share_email": "false"},
    {"name": "  Siân  ", "email": " SIÂN@Example.ORG ", "wants_updates": ""},
    {"name": "x" * 121, "email": "long@example.org"},
    {"name": "Bob", "email": "bob@@example.org"},
    {"name": "Eve\u202eevE", "email": "eve@example.org"},
    {"name": "Cy", "email": "cy@example.org", "postcode": "sw1a 1aa", "comment": "A\r\nB"},
    {"name": "Di", "email": "di@example.org", "postcode": "???", "organisation": "Org"},
    {"name": "Ed", "email": "ed@example.org", "postcode": "", "comment": "c" * 501},
    {"name": "Flo", "email": "flo@example.org", "organisation": "line\nbreak"},
    {"email": "nobody@example.org"},
    {"name": "Gil", "email": ["gil@example.org", "other@example.org"], "show_name": ["", "y"]},
    {"name": "Hal", "email": "hal@example.org", "postcode": "E1 6AN", "organisation": " "},
]


@pytest.mark.parametrize("asks", [(False, False, False), (True, True, True), (True, False, True)])
def test_signature_input_says_what_the_sign_form_says(app, asks):
    letter = letters.SignableLetter(1, "x", "X", *asks)
    for fields in [*CORPUS, *reversed(CORPUS)]:  # a kept form must forget the last one
        formdata = MultiDict(
            [(key, item) for key, value in fields.items() for item in _listed(value)]
        )
        form = SignForm.for_letter(letter, formdata=formdata)
        expected = form.to_input() if form.validate() else None
        assert signature_input(letter, formdata) == expected, fields


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_confirming_a_token_that_confirms_nothing_goes_to_flask(app, handed, make_letter, mailbox):
    letter = make_letter()
    visitor = Visitor(app, letter)
    visitor.sign(email="late@example.org")
    mailbox.deliver()
    link = mailbox.link("late@example.org", "/verify/")
    with transaction() as session:
        row = session.scalars(select(Signature)).one()
        row.verify_expires_at = utcnow() - timedelta(minutes=1)
    handed.count = 0
    expired = visitor.confirm(link)
    assert handed.count == 1
    assert expired.status_code == 410
    unknown = visitor.confirm(link[:-4] + "abcd")
    assert unknown.status_code == 404 and handed.count == 2
    assert fresh_session().scalar(select(func.count()).select_from(Message)) >= 1


def test_behind_a_proxy_the_limit_and_the_referrer_check_see_the_client(app_config, make_letter):
    """ProxyFix wraps the direct path too: the limit counts the client's address, and the
    referrer check knows the request came in over HTTPS."""
    from petition import create_app

    proxied = create_app(
        {**app_config, "TRUSTED_PROXIES": 1, "WTF_CSRF_ENABLED": True, "SIGN_RATE_LIMIT": "1/hour"}
    )
    proxied.config["COUNT_CACHE_SECONDS"] = 60
    handed = HandedOver(_direct_layer(proxied))
    letter = make_letter()
    client = proxied.test_client()
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "petition.example"}
    page = client.get(f"/letters/{letter.slug}", headers=forwarded).get_data(as_text=True)
    token = TOKEN.search(page).group(1)

    def sign(email: str, client_address: str, referrer: str) -> int:
        headers = {**forwarded, "X-Forwarded-For": client_address, "Referer": referrer}
        data = {"csrf_token": token, **sign_data(email=email)}
        return client.post(f"/letters/{letter.slug}/sign", data=data, headers=headers).status_code

    here = f"https://petition.example/letters/{letter.slug}"
    assert sign("a@example.org", "198.51.100.1", here) == 303
    assert sign("b@example.org", "198.51.100.2", here) == 303
    assert sign("c@example.org", "198.51.100.1", here) == 429
    assert sign("d@example.org", "198.51.100.3", "https://elsewhere.example/") == 400
    assert handed.count == 2  # the refusals
    proxied.extensions["petition.engine"].dispose()


def _visit(client: Any, letter: Letter) -> tuple[Any, str]:
    response = client.get(f"/letters/{letter.slug}")
    return response, TOKEN.search(response.get_data(as_text=True)).group(1)


def _without_token(response: Any, token: str) -> tuple[int, list[tuple[str, str]], str]:
    status, headers, body = answer(response)
    headers = [
        (name, value.split("=")[0] if name == "Set-Cookie" else value) for name, value in headers
    ]
    return status, headers, body.replace(token, "TOKEN")


def test_the_letter_page_gets_the_views_answer_without_flask(app, handed, make_letter, monkeypatch):
    letter = make_letter()
    _visit(app.test_client(), letter)  # the view renders the page and keeps a copy
    assert handed.pages == 1
    newcomer, returning = app.test_client(), app.test_client()
    first, token = _visit(newcomer, letter)
    again, same_token = _visit(newcomer, letter)
    assert handed.pages == 1
    with flask_only(monkeypatch):
        by_flask, flask_token = _visit(returning, letter)
        by_flask_again, _ = _visit(returning, letter)
    assert handed.pages == 3
    assert _without_token(first, token) == _without_token(by_flask, flask_token)
    assert first.headers["Set-Cookie"].endswith("; HttpOnly; Path=/; SameSite=Lax")
    assert _without_token(again, same_token) == _without_token(by_flask_again, flask_token)
    assert "Set-Cookie" not in again.headers
    # The session and token made here are the ones Flask and CSRFProtect make and check.
    with flask_only(monkeypatch):
        signed = newcomer.post(
            f"/letters/{letter.slug}/sign", data={"csrf_token": same_token, **sign_data()}
        )
    assert signed.status_code == 303


def test_letter_pages_that_are_not_the_usual_go_to_flask(app, handed, make_letter):
    letter = make_letter()
    path = f"/letters/{letter.slug}"
    app.test_client().get(path)
    assert handed.pages == 1
    flashed = app.test_client()
    flashed.get(path)
    with flashed.session_transaction() as session:
        session["_flashes"] = [("message", "Saved")]
    assert flashed.get(path).status_code == 200 and handed.pages == 2
    forged = app.test_client()
    forged.set_cookie("session", "not-a-signed-session")
    answered = forged.get(path)
    assert answered.status_code == 200 and handed.pages == 3
    assert answered.headers["Set-Cookie"].startswith("session=")  # a new session, from Flask
    assert app.test_client().get(f"/letters/{letter.slug}/").status_code == 200
    assert app.test_client().get("/letters/no-such-letter").status_code == 404
    app.config["COUNT_CACHE_SECONDS"] = 0
    assert app.test_client().get(path).status_code == 200
    assert handed.pages == 5


def test_a_database_locked_for_long_is_waited_for_once_not_again_by_the_view(
    app, handed, make_letter, database_url
):
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite test: another process holding the file's write lock")
    letter = make_letter()
    visitor = Visitor(app, letter)
    engine = db.engine()
    began: list[str] = []

    def short_wait(dbapi_connection: Any, _record: Any) -> None:  # 15 s in production
        dbapi_connection.execute("PRAGMA busy_timeout=300")

    def seen(sql: str, _connection: Any) -> None:
        began.extend([sql] if sql.startswith("BEGIN IMMEDIATE") else [])

    def executed(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen(statement, None)

    event.listen(engine, "connect", short_wait)
    event.listen(engine, "before_cursor_execute", executed)
    driver.listen(seen)
    engine.dispose()
    holder = sqlite3.connect(database_url.removeprefix("sqlite:///"))
    holder.execute("BEGIN IMMEDIATE")  # as an operator's open sqlite3 session would
    try:
        refused = visitor.sign(email="locked@example.org")
    finally:
        holder.rollback()
        holder.close()
        driver.remove(seen)
        event.remove(engine, "before_cursor_execute", executed)
        event.remove(engine, "connect", short_wait)
        engine.dispose()
    assert refused.status_code == 503
    assert "Please try again in a minute" in refused.get_data(as_text=True)
    assert began == ["BEGIN IMMEDIATE"], "the view waited for the lock a second time"
    assert visitor.sign(email="later@example.org").status_code == 303
