"""Organisers send news of a letter to the signers who asked for it, and only to them."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select, update

from petition import db
from petition.cli import cli
from petition.db import transaction, utcnow
from petition.mailer import backend_from_config
from petition.models import Letter, Message, Signature
from petition.services import mail, news
from tests.conftest import fresh_session, sign_and_confirm, sign_data

NEWS = {"subject": "We delivered the letter", "body": "Alex has it.\r\nThank you all."}


def test_news_reaches_only_confirmed_signers_who_asked_and_each_can_stop_it(
    client, logged_in, make_letter, mailbox
):
    letter = make_letter(organiser=logged_in)
    sign_and_confirm(client, mailbox, letter, name="Ann Keen", email="ann@example.org",
                     wants_updates="y")  # fmt: skip
    sign_and_confirm(client, mailbox, letter, name="Bo Quiet", email="bo@example.org")
    client.post(f"/letters/{letter.slug}/sign",
                data=sign_data(email="pending@example.org", wants_updates="y"))  # fmt: skip
    page = client.get(f"/organiser/letters/{letter.id}").get_data(as_text=True)
    assert "1 confirmed signer asked for news of this letter." in page

    sent = client.post(f"/organiser/letters/{letter.id}/news", data=NEWS)
    assert sent.status_code == 303
    assert "News queued for 1 signer." in client.get(sent.headers["Location"]).get_data(True)
    mailbox.deliver()
    [news] = [m for m in mailbox.messages if m["Subject"] == "We delivered the letter"]
    assert news["To"] == "ann@example.org"
    text = mailbox.body(news).replace("\r\n", "\n")
    assert "Hello Ann Keen," in text and "Alex has it.\nThank you all." in text
    assert f"http://localhost/letters/{letter.slug}" in text

    stop_path = mailbox.link("ann@example.org", "/news/stop/")
    shown = client.get(stop_path)
    assert shown.status_code == 200 and "Stop the news" in shown.get_data(as_text=True)
    assert shown.headers["Referrer-Policy"] == "strict-origin"
    stopped = client.post(stop_path)
    assert "You will get no more news" in stopped.get_data(as_text=True)
    page = client.get(f"/organiser/letters/{letter.id}").get_data(as_text=True)
    assert "0 confirmed signers asked for news of this letter." in page
    assert client.get("/news/stop/forged-or-garbled").status_code == 404


def test_news_goes_out_at_most_once_a_day_and_a_refusal_keeps_the_text(
    client, logged_in, make_letter, mailbox
):
    letter = make_letter(organiser=logged_in)
    sign_and_confirm(client, mailbox, letter, wants_updates="y")
    assert client.post(f"/organiser/letters/{letter.id}/news", data=NEWS).status_code == 303
    again = client.post(
        f"/organiser/letters/{letter.id}/news", data={"subject": "More", "body": "Second news"}
    )
    assert again.status_code == 422
    page = again.get_data(as_text=True)
    assert "went out less than a day ago" in page
    assert 'value="More"' in page and "Second news" in page

    with transaction() as session:  # a day later
        session.execute(update(Letter).values(news_sent_at=utcnow() - timedelta(hours=25)))
    empty = client.post(f"/organiser/letters/{letter.id}/news", data={"subject": "", "body": "x"})
    assert empty.status_code == 422
    assert "Give the news a subject." in empty.get_data(as_text=True)
    later = {"subject": "More", "body": "Second news"}
    assert client.post(f"/organiser/letters/{letter.id}/news", data=later).status_code == 303
    mailbox.deliver()
    with transaction() as session:
        kinds = session.scalars(select(Message.subject).where(Message.kind == "news")).all()
    assert sorted(kinds) == ["More", "We delivered the letter"]


def test_news_refusals_are_all_shown_and_a_mailing_to_nobody_is_refused(
    client, logged_in, make_letter, mailbox
):
    draft = make_letter(organiser=logged_in, status="draft")
    refused = client.post(f"/organiser/letters/{draft.id}/news", data=NEWS)
    assert refused.status_code == 409
    assert "Publish the letter first: nobody has signed a draft." in refused.get_data(True)

    letter = make_letter(organiser=logged_in, slug="another")
    news = f"/organiser/letters/{letter.id}/news"
    both = client.post(news, data={"subject": " ", "body": ""}).get_data(as_text=True)
    assert "Give the news a subject." in both and "Write the news." in both
    # Nobody asked yet (the form is not even offered): said so, and the day's mailing is kept.
    sign_and_confirm(client, mailbox, letter)  # without asking for news
    nobody = client.post(news, data=NEWS)
    assert nobody.status_code == 422
    page = nobody.get_data(as_text=True)
    assert "No confirmed signer has asked for news of this letter, so nothing was sent." in page
    assert 'value="We delivered the letter"' in page
    saved = fresh_session().get(Letter, letter.id, populate_existing=True)
    assert saved.news_sent_at is None


def test_another_organisers_letter_takes_no_news(client, logged_in, make_letter, make_organiser):
    other = make_organiser("other@example.org")
    letter = make_letter(organiser=other)
    assert client.post(f"/organiser/letters/{letter.id}/news", data=NEWS).status_code == 404


def test_a_stop_link_dies_with_its_signature_even_when_its_id_is_given_again(
    client, logged_in, make_letter, mailbox, database_url
):
    letter = make_letter(organiser=logged_in)
    manage = sign_and_confirm(client, mailbox, letter, email="jack@example.org", wants_updates="y")
    client.post(f"/organiser/letters/{letter.id}/news", data=NEWS)
    mailbox.deliver()
    jacks_link = mailbox.link("jack@example.org", "/news/stop/")
    jacks_id = fresh_session().scalar(select(Signature.id))
    client.post(f"{manage}/withdraw")
    sign_and_confirm(client, mailbox, letter, email="kim@example.org", wants_updates="y")
    kim = fresh_session().scalar(select(Signature))
    if database_url.startswith("sqlite"):
        assert kim.id == jacks_id  # SQLite gives the highest id again; PostgreSQL never does
    assert client.get(jacks_link).status_code == 404
    assert client.post(jacks_link).status_code == 404
    assert fresh_session().get(Signature, kim.id, populate_existing=True).wants_updates is True


def test_simultaneous_sends_make_one_mailing(app, client, logged_in, make_letter, mailbox):
    letter = make_letter(organiser=logged_in)
    sign_and_confirm(client, mailbox, letter, wants_updates="y")
    cookie = client.get_cookie("session").value
    statuses: list[int] = []

    def send(number: int) -> None:
        other = app.test_client()
        other.set_cookie("session", cookie)
        subject = {"subject": f"Race {number}", "body": "News"}
        statuses.append(
            other.post(f"/organiser/letters/{letter.id}/news", data=subject).status_code
        )

    threads = [threading.Thread(target=send, args=(number,)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [303, 422, 422, 422]
    mailbox.deliver()
    with transaction() as session:
        assert len(session.scalars(select(Message).where(Message.kind == "news")).all()) == 1


def _queued_verify_path(address: str) -> str:
    """The confirmation link queued for `address`, read from the outbox without running the
    worker (which would queue the news meanwhile)."""
    context = fresh_session().scalar(
        select(Message.context).where(Message.kind == "verify", Message.to_address == address)
    )
    return urlsplit(mail.decode_context(context)["verify_url"]).path


def test_news_is_queued_a_batch_at_a_time_for_the_signers_who_still_want_it(
    app, client, logged_in, make_letter, mailbox
):
    """A letter with a million signers took a minute and 700 MB to queue in the request, which
    gunicorn ended at 30 s: the worker queues it now, one short transaction a batch."""
    letter = make_letter(organiser=logged_in)
    manage = {
        name: sign_and_confirm(
            client, mailbox, letter, email=f"{name}@example.org", wants_updates="y"
        )
        for name in ("ann", "bo", "cy", "di", "ed")
    }
    sign_and_confirm(client, mailbox, letter, email="quiet@example.org")
    sent = client.post(f"/organiser/letters/{letter.id}/news", data=NEWS)
    assert "News queued for 5 signers." in client.get(sent.headers["Location"]).get_data(True)
    assert news_messages() == []
    status = app.test_cli_runner().invoke(cli, ["mail", "status"]).output
    assert "queued: 0" in status  # the news is not yet mail
    assert "the worker has yet to: queue news for its signers (1)" in status
    with transaction() as session:
        assert news.fan_out(session, limit=2) == 2
    assert sorted(news_messages()) == ["ann@example.org", "bo@example.org"]

    assert client.post(f"{manage['cy']}/withdraw").status_code in (200, 303)
    signed = client.post(
        f"/letters/{letter.slug}/sign", data=sign_data(email="fay@example.org", wants_updates="y")
    )
    assert signed.status_code == 303
    assert client.post(_queued_verify_path("fay@example.org")).status_code == 200  # after it
    with transaction() as session:
        assert news.fan_out(session, limit=2) == 2
        assert news.fan_out(session, limit=2) == 0  # the last batch was full: one more look
        assert news.fan_out(session, limit=2) is None
    mailbox.deliver()
    received = [m["To"] for m in mailbox.messages if m["Subject"] == NEWS["subject"]]
    assert sorted(received) == [f"{name}@example.org" for name in ("ann", "bo", "di", "ed")]


def news_messages() -> list[str]:
    return list(fresh_session().scalars(select(Message.to_address).where(Message.kind == "news")))


def test_sending_news_holds_up_no_signing_of_the_letter(
    app, client, logged_in, make_letter, mailbox, database_url
):
    """On PostgreSQL each signing's foreign key takes a key-share lock on the letter's row:
    news that locked the row FOR UPDATE made every signing wait, and after 5 s fail."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL test: set PETITION_TEST_DATABASE_URL to run it")
    letter = make_letter(organiser=logged_in)
    sign_and_confirm(client, mailbox, letter, wants_updates="y")
    with transaction() as session:
        mine = session.get_one(Letter, letter.id)
        assert news.send(session, mine, NEWS["subject"], NEWS["body"]) == 1
        started = time.monotonic()
        signed = client.post(f"/letters/{letter.slug}/sign", data=sign_data(email="b@example.org"))
        assert signed.status_code == 303
        assert time.monotonic() - started < 2


def test_a_confirmation_link_goes_out_before_news_queued_earlier(
    app, client, logged_in, make_letter, mailbox
):
    """Oldest first, a link asked for after news to a million signers waited hours for it."""
    letter = make_letter(organiser=logged_in)
    for name in ("ann", "bo", "cy"):
        sign_and_confirm(client, mailbox, letter, email=f"{name}@example.org", wants_updates="y")
    client.post(f"/organiser/letters/{letter.id}/news", data=NEWS)
    with transaction() as session:
        assert news.fan_out(session) == 3
    signed = client.post(f"/letters/{letter.slug}/sign", data=sign_data(email="late@example.org"))
    assert signed.status_code == 303
    mailbox.messages.clear()
    for _ in range(4):
        mail.deliver_pending(
            db.new_session,
            backend_from_config(app.config),
            app.config["MAIL_FROM"],
            max_attempts=8,
            batch_size=1,
        )
    first, *after = [m["To"] for m in mailbox.messages]
    assert first == "late@example.org"
    assert sorted(after) == [f"{name}@example.org" for name in ("ann", "bo", "cy")]
