"""A member signs, confirms by email, and can withdraw: the double opt-in, end to end."""

from __future__ import annotations

import secrets
import threading
import time
from datetime import timedelta
from hashlib import sha256
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.pool import NullPool

from petition import db, driver, tokens
from petition.db import transaction, utcnow
from petition.models import Message, MessageState, Signature, SignatureState
from petition.services import letters, signatures
from tests.conftest import api_count, fresh_session, sign_and_confirm, sign_data


def test_letter_page_shows_the_letter_and_an_unticked_form(client, make_letter):
    letter = make_letter(ask_postcode=True)
    page = client.get(f"/letters/{letter.slug}").get_data(as_text=True)
    assert "Stand for the leadership" in page
    assert "<strong>stand</strong>" in page
    assert 'name="postcode"' in page
    assert 'name="organisation"' not in page
    assert 'name="show_name"' in page and 'name="share_email"' in page
    assert "checked" not in page


def test_signing_sends_a_link_that_only_shows_until_the_button_is_pressed(
    client, make_letter, mailbox
):
    letter = make_letter()
    response = client.post(f"/letters/{letter.slug}/sign", data=sign_data())
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/letters/{letter.slug}/check-your-inbox")
    assert "Check your inbox" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert api_count(client, letter) == 0

    mailbox.deliver()
    [mail] = mailbox.messages_to("jane@example.org")
    assert mail["Subject"] == "Please confirm your signature: Stand for the leadership"
    verify_path = mailbox.link("jane@example.org", "/verify/")

    # A mail scanner fetching the link twice changes nothing.
    for _ in range(2):
        page = client.get(verify_path)
        assert page.status_code == 200
        assert "Confirm my signature" in page.get_data(as_text=True)
    assert api_count(client, letter) == 0

    confirmed = client.post(verify_path)
    assert confirmed.status_code == 200
    assert "your signature is confirmed" in confirmed.get_data(as_text=True)
    assert "You are signature #1" in confirmed.get_data(as_text=True)
    assert api_count(client, letter) == 1

    again = client.post(verify_path)
    assert again.status_code == 200
    assert "already confirmed" in again.get_data(as_text=True)
    assert api_count(client, letter) == 1
    assert "already confirmed" in client.get(verify_path).get_data(as_text=True)


def test_confirmation_mail_links_to_withdrawal_which_deletes_everything(
    client, make_letter, mailbox
):
    letter = make_letter()
    manage_path = sign_and_confirm(client, mailbox, letter)
    assert api_count(client, letter) == 1

    page = client.get(manage_path)
    assert page.status_code == 200
    assert "Withdraw my signature" in page.get_data(as_text=True)
    assert api_count(client, letter) == 1  # GET only shows

    withdrawn = client.post(f"{manage_path}/withdraw")
    assert withdrawn.status_code == 200
    assert "withdrawn" in withdrawn.get_data(as_text=True)
    assert api_count(client, letter) == 0
    session = fresh_session()
    assert session.scalar(select(func.count()).select_from(Signature)) == 0
    unsent = session.scalars(select(Message).where(Message.state == MessageState.PENDING))
    assert [m.kind for m in unsent] == ["withdrawn"]

    again = client.post(f"{manage_path}/withdraw")
    assert again.status_code == 404
    assert api_count(client, letter) == 0


def test_a_withdrawn_signature_is_not_left_readable_in_the_sqlite_file(
    app, client, make_letter, mailbox, database_url
):
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's file format")
    letter = make_letter()
    manage_path = sign_and_confirm(client, mailbox, letter, name="Carol Privatename")
    client.post(f"{manage_path}/withdraw")
    mailbox.deliver()  # the "withdrawn" email, which greets them by name
    with db.engine().connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    path = database_url.removeprefix("sqlite:///")
    assert b"Carol Privatename" not in Path(path).read_bytes()


def test_signing_again_with_the_same_mailbox_never_reveals_it_and_never_doubles(
    client, make_letter, mailbox
):
    letter = make_letter()
    first = client.post(f"/letters/{letter.slug}/sign", data=sign_data(email="Jane@Example.org"))
    second = client.post(f"/letters/{letter.slug}/sign", data=sign_data(email="jane@EXAMPLE.org"))
    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == second.headers["Location"]
    mailbox.deliver()
    # Both go to the address first given; the second carries a fresh link, the old one dies.
    mails = mailbox.messages_to("Jane@example.org")
    assert len(mails) == 2
    assert "fresh link" in mailbox.body(mails[1])
    newest = mailbox.link("Jane@example.org", "/verify/")
    mailbox.messages.pop()
    oldest = mailbox.link("Jane@example.org", "/verify/")
    assert client.post(oldest).status_code == 404
    assert client.post(newest).status_code == 200
    assert api_count(client, letter) == 1
    assert fresh_session().scalar(select(func.count()).select_from(Signature)) == 1


def test_a_repeat_signing_costs_the_request_what_a_new_one_does(app, client, make_letter, mailbox):
    """Whether someone signed is a political opinion, and a slower answer for an address that
    has signed would tell it to anyone who types that address. The request writes two rows
    either way and nothing else; the worker handles the repeat afterwards."""
    letter = make_letter()
    sent: list[str] = []

    def seen(_conn, _cursor, statement, *_args):
        sent.append(" ".join(statement.split())[:32])

    def statements_of_signing(email: str) -> list[str]:
        sent.clear()
        event.listen(db.engine(), "before_cursor_execute", seen)
        driver.listen(seen_on_driver)
        try:
            response = client.post(f"/letters/{letter.slug}/sign", data=sign_data(email=email))
        finally:
            event.remove(db.engine(), "before_cursor_execute", seen)
            driver.remove(seen_on_driver)
        assert response.status_code == 303
        return list(sent)

    def seen_on_driver(sql, _connection):
        sent.append(" ".join(sql.split())[:32])

    new = statements_of_signing("jane@example.org")
    repeat = statements_of_signing("JANE@example.org")
    assert len(new) == len(repeat)
    assert [sql.split()[0] for sql in new] == [sql.split()[0] for sql in repeat]
    first_link = fresh_session().scalar(select(Signature.verify_token_hash))
    mailbox.deliver()  # the worker applies the repeat: a fresh link replaces the first
    assert fresh_session().scalar(select(Signature.verify_token_hash)) != first_link
    assert (
        fresh_session().scalar(
            select(func.count()).select_from(Message).where(Message.kind == signatures.REPEAT_KIND)
        )
        == 0
    )


def test_a_repeat_that_cannot_be_applied_is_parked_and_the_rest_go_on(client, make_letter, mailbox):
    letter = make_letter()
    for email in ("ann@example.org", "bob@example.org"):
        for _ in range(2):
            client.post(f"/letters/{letter.slug}/sign", data=sign_data(email=email))
    with transaction() as session:
        ann = session.scalars(
            select(Message).where(Message.kind == signatures.REPEAT_KIND).order_by(Message.id)
        ).first()
        ann.context = ann.context.replace(f'"letter_id":{letter.id}', '"letter_id":999999')
    mailbox.deliver()
    [(state, error)] = fresh_session().execute(
        select(Message.state, Message.last_error).where(Message.kind == signatures.REPEAT_KIND)
    )
    assert state is MessageState.FAILED
    assert "cannot apply the repeat signing" in error
    assert len(mailbox.messages_to("bob@example.org")) == 2  # the link, then a fresh one
    assert len(mailbox.messages_to("ann@example.org")) == 1


def test_a_repeat_queued_before_a_withdrawal_is_a_signing_afresh(client, make_letter, mailbox):
    letter = make_letter()
    manage_path = sign_and_confirm(client, mailbox, letter)
    client.post(f"/letters/{letter.slug}/sign", data=sign_data(name="Jane Again"))
    assert client.post(f"{manage_path}/withdraw").status_code == 200
    mailbox.clear()
    mailbox.deliver()
    signature = fresh_session().scalar(select(Signature))
    assert (signature.name, signature.state) == ("Jane Again", SignatureState.PENDING)
    assert "/verify/" in mailbox.body(mailbox.messages_to("jane@example.org")[-1])
    assert api_count(client, letter) == 0


def _meanwhile(
    app, monkeypatch, method: str, path: str
) -> tuple[list[int], list[threading.Thread]]:
    """Once the worker applying a repeat signing has read the signature, another visitor sends
    `method` to `path` in a thread, given a second before the worker goes on (it may have to
    wait for the worker). Returns [their status], once that thread is joined, and [the thread]."""
    statuses: list[int] = []
    threads: list[threading.Thread] = []
    find = signatures._find

    def read_then_someone_else_acts(session, letter_id, email_key):
        found = find(session, letter_id, email_key)
        visitor = app.test_client()
        thread = threading.Thread(
            target=lambda: statuses.append(visitor.open(path, method=method).status_code)
        )
        thread.start()
        thread.join(1.0)
        threads.append(thread)
        return found

    monkeypatch.setattr(signatures, "_find", read_then_someone_else_acts)
    return statuses, threads


def test_a_confirmation_meeting_a_repeat_being_applied_never_confirms_what_it_did_not_show(
    app, client, make_letter, mailbox, monkeypatch
):
    letter = make_letter()
    assert client.post(f"/letters/{letter.slug}/sign", data=sign_data()).status_code == 303
    mailbox.deliver()
    first_link = mailbox.link("jane@example.org", "/verify/")
    planted = sign_data(name="Jane Doe (Hackney)", show_name="y", share_email="y")
    assert client.post(f"/letters/{letter.slug}/sign", data=planted).status_code == 303
    statuses, threads = _meanwhile(app, monkeypatch, "POST", first_link)
    mailbox.deliver()  # applies the repeat while the first link's button is pressed
    [thread] = threads
    thread.join(10)

    signature = fresh_session().scalar(select(Signature))
    if signature.state is SignatureState.VERIFIED:  # the press came first: what its page showed
        assert statuses == [200]
        assert (signature.name, signature.show_name, signature.share_email) == (
            "Jane Doe",
            False,
            False,
        )
    else:  # the repeat came first: its fresh link replaced the first one
        assert statuses == [404]
        assert (signature.name, signature.show_name) == ("Jane Doe (Hackney)", True)


def test_a_withdrawal_meeting_a_repeat_being_applied_leaves_no_mail_for_the_deleted_signature(
    app, client, make_letter, mailbox, monkeypatch
):
    letter = make_letter()
    manage_path = sign_and_confirm(client, mailbox, letter)
    assert client.post(f"/letters/{letter.slug}/sign", data=sign_data()).status_code == 303
    statuses, threads = _meanwhile(app, monkeypatch, "POST", f"{manage_path}/withdraw")
    mailbox.clear()
    mailbox.deliver()  # applies the repeat while the signer withdraws
    [thread] = threads
    thread.join(10)
    mailbox.deliver()

    signature = fresh_session().scalar(select(Signature))
    subjects = [m["Subject"] for m in mailbox.messages_to("jane@example.org")]
    parked = fresh_session().scalars(select(Message).where(Message.state == MessageState.FAILED))
    assert list(parked) == []
    if signature is None:  # the withdrawal came first; the repeat was then a signing afresh
        assert statuses == [200]
        assert [s.split(":")[0] for s in subjects] == [
            "Your signature has been removed",
            "Please confirm your signature",
        ]
    else:  # the repeat came first: a new manage link, and the old one is out of date
        assert statuses == [404]
        assert signature.state is SignatureState.VERIFIED
        assert [s.split(":")[0] for s in subjects] == ["You have already signed"]


def test_a_repeat_before_confirmation_replaces_what_the_first_form_said(
    client, make_letter, mailbox
):
    # Someone else signs first with this address, sharing it and writing a comment...
    letter = make_letter(ask_organisation=True, ask_comment=True)
    planted = sign_data(
        name="Victoria Smith",
        organisation="Acme HR",
        comment="Sack the union reps",
        show_name="y",
        share_email="y",
    )
    assert client.post(f"/letters/{letter.slug}/sign", data=planted).status_code == 303
    # ...then the owner of the mailbox signs, sharing nothing.
    own = sign_data(name="Vicky Smith", comment="")
    assert client.post(f"/letters/{letter.slug}/sign", data=own).status_code == 303
    mailbox.deliver()
    page = client.get(mailbox.link("jane@example.org", "/verify/")).get_data(as_text=True)
    assert "Vicky Smith" in page and "Victoria" not in page
    assert "Sack the union reps" not in page and "Acme HR" not in page
    assert "Not shared with the recipient" in page
    assert "Not shown: you are counted, but not listed" in page

    assert client.post(mailbox.link("jane@example.org", "/verify/")).status_code == 200
    signature = fresh_session().scalar(select(Signature))
    assert signature.name == "Vicky Smith"
    assert (signature.organisation, signature.comment) == (None, None)
    assert (signature.show_name, signature.share_email) == (False, False)


def test_past_the_mail_limit_a_repeat_changes_nothing_a_link_confirms(client, make_letter, mailbox):
    """A link confirms what its page showed: someone who knows the address cannot change the
    details (show the name, share the address, add a comment) between that page and the press
    of its button."""
    letter = make_letter(ask_comment=True)
    for name in ("Gwen One", "Gwen Two"):
        assert (
            client.post(f"/letters/{letter.slug}/sign", data=sign_data(name=name)).status_code
            == 303
        )
    mailbox.deliver()
    assert len(mailbox.messages_to("jane@example.org")) == 2  # the link and one fresh link
    link = mailbox.link("jane@example.org", "/verify/")
    page = client.get(link).get_data(as_text=True)
    assert "Gwen Two" in page and "Not shared with the recipient" in page

    planted = sign_data(name="Gwen Exposed", comment="Planted", show_name="y", share_email="y")
    assert client.post(f"/letters/{letter.slug}/sign", data=planted).status_code == 303
    mailbox.deliver()
    assert len(mailbox.messages_to("jane@example.org")) == 2  # past the limit: no more mail
    assert client.post(link).status_code == 200
    signature = fresh_session().scalar(select(Signature))
    assert (signature.name, signature.comment) == ("Gwen Two", None)
    assert (signature.show_name, signature.share_email) == (False, False)


def test_the_confirmation_page_lists_every_choice_before_the_button(client, make_letter, mailbox):
    letter = make_letter(ask_postcode=True)
    data = sign_data(postcode="ls1 4ap", show_name="y", share_email="y", wants_updates="y")
    client.post(f"/letters/{letter.slug}/sign", data=data)
    mailbox.deliver()
    page = client.get(mailbox.link("jane@example.org", "/verify/")).get_data(as_text=True)
    assert "LS1 4AP" in page
    assert "Shown as “Jane D.”" in page
    assert "Shared with the recipient when the letter is delivered" in page
    assert "Yes, a few emails at most" in page


@pytest.mark.parametrize(
    ("typed", "kept"),
    [
        ("ls73ah", "LS7 3AH"),
        (" sw1a  1aa ", "SW1A 1AA"),
        ("EC1A1BB", "EC1A 1BB"),
        ("m1 1ae", "M1 1AE"),
        ("d02 x285", "D02 X285"),  # not a UK one: kept as typed, in capitals
        ("75001", "75001"),
    ],
)
def test_a_postcode_is_kept_as_the_recipients_office_will_sort_it(
    client, make_letter, mailbox, typed, kept
):
    letter = make_letter(ask_postcode=True)
    assert (
        client.post(f"/letters/{letter.slug}/sign", data=sign_data(postcode=typed)).status_code
        == 303
    )
    assert fresh_session().scalar(select(Signature.postcode)) == kept


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ({"comment": "Yes"}, "Shown as “Jane D.”, with your comment"),
        ({"organisation": "Unison"}, "Shown as “Jane D.”, with your organisation<"),
        ({"organisation": "Unison", "comment": "Yes"}, "with your organisation and comment"),
        ({}, "Shown as “Jane D.”<"),
    ],
)
def test_the_confirmation_page_says_which_details_are_listed(
    client, make_letter, mailbox, given, said
):
    letter = make_letter(ask_organisation=True, ask_comment=True)
    client.post(f"/letters/{letter.slug}/sign", data=sign_data(show_name="y", **given))
    mailbox.deliver()
    page = client.get(mailbox.link("jane@example.org", "/verify/")).get_data(as_text=True)
    assert said in page


def test_gmail_dots_and_plus_tags_are_the_same_mailbox(client, make_letter, mailbox):
    letter = make_letter()
    sign_and_confirm(client, mailbox, letter, email="jane.doe@gmail.com")
    again = client.post(
        f"/letters/{letter.slug}/sign", data=sign_data(email="Jane.D.o.e+letters@googlemail.com")
    )
    assert again.status_code == 303
    mailbox.deliver()
    assert mailbox.messages_to("Jane.D.o.e+letters@googlemail.com") == []
    notice = mailbox.messages_to("jane.doe@gmail.com")[-1]
    assert "already signed" in mailbox.body(notice)
    assert "/signature/" in mailbox.body(notice)
    assert api_count(client, letter) == 1


def test_plus_tags_are_distinct_where_the_provider_does_not_ignore_them(
    client, make_letter, mailbox
):
    letter = make_letter()
    sign_and_confirm(client, mailbox, letter, email="jane@example.org")
    sign_and_confirm(client, mailbox, letter, email="jane+work@example.org")
    assert api_count(client, letter) == 2


def test_repeated_signing_does_not_flood_the_mailbox(client, make_letter, mailbox):
    letter = make_letter()
    for _ in range(5):
        client.post(f"/letters/{letter.slug}/sign", data=sign_data())
    mailbox.deliver()
    assert len(mailbox.messages_to("jane@example.org")) == 2  # the link, then one fresh link


def test_expired_link_says_so_and_does_not_count(client, make_letter, mailbox):
    letter = make_letter()
    client.post(f"/letters/{letter.slug}/sign", data=sign_data())
    mailbox.deliver()
    verify_path = mailbox.link("jane@example.org", "/verify/")
    with transaction() as session:
        signature = session.scalar(select(Signature))
        signature.verify_expires_at = utcnow() - timedelta(minutes=1)
    assert client.get(verify_path).status_code == 410
    response = client.post(verify_path)
    assert response.status_code == 410
    assert "expired" in response.get_data(as_text=True)
    assert api_count(client, letter) == 0


def test_expired_pending_signatures_are_purged(app, client, make_letter, mailbox):
    letter = make_letter()
    client.post(f"/letters/{letter.slug}/sign", data=sign_data())
    client.post(f"/letters/{letter.slug}/sign", data=sign_data(email="sam@example.org"))
    with transaction() as session:
        signature = session.scalar(select(Signature).where(Signature.email == "sam@example.org"))
        signature.verify_expires_at = utcnow() - timedelta(seconds=1)
    with transaction() as session:
        assert signatures.purge_expired(session) == 1
    remaining = fresh_session().scalars(select(Signature.email)).all()
    assert remaining == ["jane@example.org"]
    unsent = fresh_session().scalars(select(Message.to_address)).all()
    assert "sam@example.org" not in unsent


def test_links_mailed_before_tokens_carried_their_time_still_work(client, make_letter, mailbox):
    """A token from before the time prefix (43 random characters, stored as its whole hash)
    confirms and manages the signature as it did."""
    letter = make_letter()
    client.post(f"/letters/{letter.slug}/sign", data=sign_data())
    old_verify = secrets.token_urlsafe(32)
    with transaction() as session:
        session.scalar(select(Signature)).verify_token_hash = sha256(
            old_verify.encode()
        ).hexdigest()
    page = client.post(f"/verify/{old_verify}")
    assert "You are signature #1" in page.get_data(as_text=True)

    old_manage = secrets.token_urlsafe(32)
    with transaction() as session:
        session.scalar(select(Signature)).manage_token_hash = sha256(
            old_manage.encode()
        ).hexdigest()
    assert "Withdraw my signature" in client.get(f"/signature/{old_manage}").get_data(as_text=True)


def test_token_digests_keep_time_order_and_only_a_hash_of_the_secret():
    first_raw, first = tokens.new_token()
    time.sleep(0.002)
    second_raw, second = tokens.new_token()
    assert first < second  # each new row's index entry lands beside the last one's
    for raw, digest in ((first_raw, first), (second_raw, second)):
        assert len(digest) == 64 and tokens.looks_like_token(raw)
        secret = raw[tokens.TIME_DIGITS :]
        assert secret not in digest and digest == tokens.digest(raw)
        assert digest[tokens.TIME_DIGITS :] == sha256(secret.encode()).hexdigest()[:52]


def test_unknown_and_malformed_tokens_get_a_friendly_404(client, make_letter):
    make_letter()
    for path in ("/verify/not-a-real-token-but-long-enough", "/verify/x", "/verify/%00%01"):
        response = client.get(path)
        assert response.status_code == 404
        assert "This link does not work" in response.get_data(as_text=True)
    assert client.post("/verify/not-a-real-token-but-long-enough").status_code == 404
    assert client.get("/signature/not-a-real-token-but-long-enough").status_code == 404


def test_form_errors_keep_what_was_typed_and_name_each_field(client, make_letter, mailbox):
    letter = make_letter(ask_postcode=True, ask_comment=True)
    response = client.post(
        f"/letters/{letter.slug}/sign",
        data={"name": "Jane\x07 Doe", "email": "jane@", "postcode": "", "comment": "Go on!"},
    )
    assert response.status_code == 422
    assert response.headers["Cache-Control"] == "private, no-store"  # it holds the address
    page = response.get_data(as_text=True)
    assert "Please check the form" in page
    assert "Remove the invisible control character U+0007 at character 5." in page
    assert "Enter a valid email address" in page
    assert "Enter your postcode." in page
    assert 'value="jane@"' in page
    assert "Go on!" in page
    assert 'aria-invalid="true"' in page
    mailbox.deliver()
    assert mailbox.messages == []


def test_an_email_address_in_the_name_box_is_refused_before_it_can_be_listed(client, make_letter):
    letter = make_letter()
    data = sign_data(name="frank.jones@example.net", email="frank@example.net", show_name="y")
    response = client.post(f"/letters/{letter.slug}/sign", data=data)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Enter your name here, not an email address." in page
    assert 'value="frank.jones@example.net"' in page
    assert fresh_session().scalar(select(func.count()).select_from(Signature)) == 0


def test_an_at_sign_in_a_name_is_refused_for_what_it_is(client, make_letter):
    letter = make_letter()
    data = sign_data(name="@Admin Person", email="frank@example.net")
    response = client.post(f"/letters/{letter.slug}/sign", data=data)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Leave out the “@”: a name on the list cannot contain one." in page
    assert 'value="@Admin Person"' in page


@pytest.fixture
def two_signatures_an_hour(app_config):
    app_config["SIGN_RATE_LIMIT"] = "2 per hour"


def test_signatures_from_one_network_are_limited_and_the_form_is_kept(
    two_signatures_an_hour, client, make_letter, mailbox
):
    letter = make_letter(ask_comment=True)
    for number in (1, 2):
        data = sign_data(email=f"person{number}@example.org")
        assert client.post(f"/letters/{letter.slug}/sign", data=data).status_code == 303
    third = sign_data(name="Third Person", email="third@example.org", comment="Me too")
    refused = client.post(f"/letters/{letter.slug}/sign", data=third)
    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= 3600
    page = refused.get_data(as_text=True)
    assert "Too many signatures have come from your network recently" in page
    assert 'value="Third Person"' in page and 'value="third@example.org"' in page
    assert "Me too" in page
    mailbox.deliver()
    assert mailbox.messages_to("third@example.org") == []
    assert fresh_session().scalar(select(func.count()).select_from(Signature)) == 2
    # Another network is not held back.
    other = client.post(
        f"/letters/{letter.slug}/sign", data=third, environ_base={"REMOTE_ADDR": "192.0.2.7"}
    )
    assert other.status_code == 303


def test_invisible_names_are_refused_and_line_breaks_count_once(client, make_letter):
    letter = make_letter(ask_comment=True)
    invisible = client.post(
        f"/letters/{letter.slug}/sign", data=sign_data(name="\u200b\u200b \u00a0")
    )
    assert invisible.status_code == 422
    assert "Type some visible text" in invisible.get_data(as_text=True)
    # What a phone's textarea counts as 500 characters arrives with CRLF line breaks.
    comment = "\r\n".join(["123456789"] * 50)
    assert len(comment) == 548
    signed = client.post(f"/letters/{letter.slug}/sign", data=sign_data(comment=comment))
    assert signed.status_code == 303
    stored = fresh_session().scalar(select(Signature.comment))
    assert stored == comment.replace("\r\n", "\n") and len(stored) == 499


def test_every_field_has_a_length_limit(client, make_letter):
    letter = make_letter(ask_comment=True, ask_organisation=True)
    response = client.post(
        f"/letters/{letter.slug}/sign",
        data=sign_data(name="x" * 121, organisation="o" * 161, comment="c" * 501),
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "at most 120 characters" in page
    assert "160 characters" in page
    assert "500 characters" in page


def test_draft_and_unknown_letters_are_not_found(client, make_letter):
    draft = make_letter(status="draft")
    for path in (f"/letters/{draft.slug}", "/letters/no-such-letter"):
        response = client.get(path)
        assert response.status_code == 404
        assert "Letter not found" in response.get_data(as_text=True)
    assert client.post(f"/letters/{draft.slug}/sign", data=sign_data()).status_code == 404
    assert client.get(f"/api/v1/letters/{draft.slug}").status_code == 404


def test_closed_letter_shows_closed_and_refuses_signatures_politely(client, make_letter, mailbox):
    letter = make_letter(status="closed")
    page = client.get(f"/letters/{letter.slug}").get_data(as_text=True)
    assert "This letter is closed" in page
    assert 'name="email"' not in page
    response = client.post(f"/letters/{letter.slug}/sign", data=sign_data())
    assert response.status_code == 409
    assert "no longer collecting signatures" in response.get_data(as_text=True)
    assert f'<a href="/letters/{letter.slug}">Back to the letter</a>' in response.get_data(True)
    assert "Back to the letter" not in client.get("/letters/no-such-letter").get_data(True)


def test_letter_past_its_closing_date_is_closed(client, make_letter):
    letter = make_letter(closes_at=utcnow() + timedelta(hours=1))
    with transaction() as session:
        session.merge(letter).closes_at = utcnow() - timedelta(seconds=1)
    assert client.post(f"/letters/{letter.slug}/sign", data=sign_data()).status_code == 409
    assert client.get(f"/api/v1/letters/{letter.slug}").get_json()["status"] == "closed"


def test_closing_takes_effect_at_once_though_the_sign_form_is_cached(
    app, client, make_letter, mailbox
):
    app.config["COUNT_CACHE_SECONDS"] = 60
    letter = make_letter()
    assert client.post(f"/letters/{letter.slug}/sign", data=sign_data()).status_code == 303
    with transaction() as session:
        letters.close(session, session.merge(letter))
    # The letter's terms are still cached for the form; the INSERT itself sees it closed.
    again = client.post(f"/letters/{letter.slug}/sign", data=sign_data(email="late@example.org"))
    assert again.status_code == 409
    assert "no longer collecting signatures" in again.get_data(as_text=True)
    # A repeat from someone who already signed is told the same, and no mail is queued.
    repeat = client.post(f"/letters/{letter.slug}/sign", data=sign_data())
    assert repeat.status_code == 409
    emails = fresh_session().scalars(select(Signature.email).order_by(Signature.id)).all()
    assert emails == ["jane@example.org"]
    assert fresh_session().scalar(select(func.count()).select_from(Message)) == 1


def test_pending_signature_cannot_be_confirmed_after_the_letter_closes(
    client, make_letter, mailbox
):
    letter = make_letter()
    client.post(f"/letters/{letter.slug}/sign", data=sign_data())
    mailbox.deliver()
    verify_path = mailbox.link("jane@example.org", "/verify/")
    with transaction() as session:
        letters.close(session, session.merge(letter))
    assert client.post(verify_path).status_code == 409
    assert api_count(client, letter) == 0


def test_optional_fields_are_stored_only_when_the_letter_asks(client, make_letter, mailbox):
    letter = make_letter(ask_postcode=True)
    client.post(
        f"/letters/{letter.slug}/sign",
        data=sign_data(postcode="ls1 1aa", organisation="Sneaky Ltd", show_name="y"),
    )
    signature = fresh_session().scalar(select(Signature))
    assert signature.postcode == "LS1 1AA"
    assert signature.organisation is None
    assert signature.show_name is True
    assert signature.share_email is False
    assert signature.state is SignatureState.PENDING


def test_email_addresses_never_appear_on_public_pages(client, make_letter, mailbox):
    letter = make_letter()
    sign_and_confirm(client, mailbox, letter, email="private.person@example.org", show_name="y")
    for path in (f"/letters/{letter.slug}", f"/api/v1/letters/{letter.slug}", "/"):
        assert "private.person" not in client.get(path).get_data(as_text=True)


def test_missing_csrf_token_gets_a_clear_page(app, make_letter):
    app.config["WTF_CSRF_ENABLED"] = True
    letter = make_letter()
    response = app.test_client().post(f"/letters/{letter.slug}/sign", data=sign_data())
    assert response.status_code == 400
    assert "This form has expired" in response.get_data(as_text=True)


def test_names_in_every_script_are_welcome_but_bidi_tricks_are_not(client, make_letter):
    letter = make_letter()
    wales = "🏴" + "".join(chr(0xE0000 + ord(c)) for c in "gbwls") + "\U000e007f"
    names = ["محمد\u200cرضا", "ශ්\u200dරී", f"Siân {wales}"]
    for number, name in enumerate(names):
        data = sign_data(name=name, email=f"person{number}@example.org")
        response = client.post(f"/letters/{letter.slug}/sign", data=data)
        assert response.status_code == 303, name
    stored = fresh_session().scalars(select(Signature.name).order_by(Signature.id)).all()
    assert stored == names
    refused = client.post(f"/letters/{letter.slug}/sign", data=sign_data(name="Eve\u202eevE"))
    assert refused.status_code == 422
    assert "U+202E at character 4" in refused.get_data(as_text=True)


def test_stray_urls_lead_somewhere_useful(client, make_letter):
    letter = make_letter()
    reloaded = client.get(f"/letters/{letter.slug}/sign")
    assert reloaded.status_code == 303
    assert reloaded.headers["Location"] == f"/letters/{letter.slug}"
    assert client.get(f"/letters/{letter.slug}/").status_code == 200
    wrong_method = client.delete(f"/letters/{letter.slug}")
    assert wrong_method.status_code == 405
    assert "GET" in wrong_method.headers["Allow"]


def test_postcodes_are_letters_digits_and_spaces(client, make_letter):
    letter = make_letter(ask_postcode=True)
    refused = client.post(f"/letters/{letter.slug}/sign", data=sign_data(postcode="!!!"))
    assert refused.status_code == 422
    assert "A postcode has letters and digits, like LS1 4AP." in refused.get_data(as_text=True)
    assert (
        client.post(f"/letters/{letter.slug}/sign", data=sign_data(postcode="hello")).status_code
        == 422
    )
    accepted = client.post(f"/letters/{letter.slug}/sign", data=sign_data(postcode="10115"))
    assert accepted.status_code == 303


def test_on_postgresql_signing_and_confirming_are_each_one_autocommitted_statement(
    app, client, make_letter, mailbox, database_url
):
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL test: set PETITION_TEST_DATABASE_URL to run it")
    letter = make_letter()
    engine = db.engine()
    seen: list[tuple[str, bool]] = []

    def executed(conn, _cursor, statement, *_args):
        seen.append((" ".join(statement.split())[:30], conn.connection.dbapi_connection.autocommit))

    def sent_on_driver(sql, connection):
        seen.append((" ".join(sql.split())[:30], connection.autocommit))

    def writes_of(path: str, expect: int) -> list[tuple[str, bool]]:
        seen.clear()
        event.listen(engine, "before_cursor_execute", executed)
        driver.listen(sent_on_driver)
        try:
            response = client.post(path, data=sign_data(email="a@example.org"))
        finally:
            event.remove(engine, "before_cursor_execute", executed)
            driver.remove(sent_on_driver)
        assert response.status_code == expect
        # Reads aside (the letter's terms, cached outside tests): no BEGIN, no COMMIT.
        return [(sql, autocommit) for sql, autocommit in seen if not sql.startswith("SELECT")]

    # The signature and its mail; one round trip, atomic as a single statement.
    assert writes_of(f"/letters/{letter.slug}/sign", 303) == [
        ("WITH signed AS (INSERT INTO si", True)
    ]
    session = fresh_session()
    signature = session.scalars(select(Signature).where(Signature.letter_id == letter.id)).one()
    message = session.scalars(select(Message).where(Message.signature_id == signature.id)).one()
    assert (message.kind, message.state, message.attempts) == ("verify", MessageState.PENDING, 0)
    mailbox.deliver()
    verify_path = mailbox.link("a@example.org", "/verify/")

    # The confirmation, its count event and the thank-you mail.
    assert writes_of(verify_path, 200) == [("WITH confirmed AS (UPDATE sign", True)]
    assert api_count(client, letter) == 1
    mailbox.deliver()
    assert client.get(mailbox.link("a@example.org", "/signature/")).status_code == 200

    # A second press changes nothing, and says so.
    assert writes_of(verify_path, 200) == [("WITH confirmed AS (UPDATE sign", True)]
    assert api_count(client, letter) == 1

    # The connection went back to the pool out of autocommit: the next write is a transaction.
    with transaction() as write:
        assert not write.connection().connection.dbapi_connection.autocommit


def test_the_thank_you_mail_is_the_same_whichever_database_queued_it(client, make_letter, mailbox):
    # On PostgreSQL the confirming statement builds this mail itself; elsewhere Python does.
    title = 'Stand "now" — 100% for Zoë\\Ünïcode'
    letter = make_letter(title=title)
    manage_path = sign_and_confirm(client, mailbox, letter, name='Jo "JJ" O\'Neil')
    [thanks] = [m for m in mailbox.messages_to("jane@example.org") if "/signature/" in str(m)]
    assert thanks["Subject"] == f"Thank you for signing: {title}"
    body = mailbox.body(thanks)
    assert 'Hello Jo "JJ" O\'Neil,' in body
    assert f"Your signature on “{title}” is confirmed." in body
    assert f"http://localhost/letters/{letter.slug}\r\n" in body
    assert f"http://localhost{manage_path}" in body
    assert client.get(manage_path).status_code == 200
    message = fresh_session().scalars(select(Message).where(Message.kind == "confirmed")).one()
    assert (message.state, message.attempts, message.body_text) == (MessageState.SENT, 1, "")


@pytest.mark.postgres
def test_a_lock_held_for_long_gives_a_signer_the_503_page_not_a_hang(
    app, client, make_letter, database_url
):
    letter = make_letter()
    client.get(f"/letters/{letter.slug}")  # the form's CSRF token, and the letter read once
    holder = create_engine(database_url, poolclass=NullPool)
    with holder.connect() as connection:
        # Should the signer wait for the lock, the server ends this session after 20 s and the
        # signature goes through: a failure, not a test that hangs.
        connection.execute(text("SET idle_in_transaction_session_timeout = '20s'"))
        # As an ALTER TABLE of a migration would, or an operator's LOCK TABLE.
        connection.execute(text("LOCK TABLE signature IN ACCESS EXCLUSIVE MODE"))
        refused = client.post(f"/letters/{letter.slug}/sign", data=sign_data())
        connection.rollback()
    holder.dispose()
    assert refused.status_code == 503
    assert "Please try again in a minute" in refused.get_data(as_text=True)
    assert client.post(f"/letters/{letter.slug}/sign", data=sign_data()).status_code == 303
