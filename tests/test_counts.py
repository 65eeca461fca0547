"""Counts are exact, folded in batches by one writer, and repairable."""

from __future__ import annotations

from sqlalchemy import func, select

from petition.cache import ProcessCache
from petition.db import transaction
from petition.models import CountEvent, Letter
from petition.services import counts
from tests.conftest import api_count, fresh_session, sign_and_confirm, sign_data


def test_confirmations_append_events_and_fold_moves_them_into_the_letter(
    client, make_letter, mailbox
):
    letter = make_letter()
    managed = [
        sign_and_confirm(client, mailbox, letter, email=f"p{i}@example.org") for i in range(3)
    ]
    client.post(f"{managed[0]}/withdraw")
    mailbox.deliver()  # one worker pass: sends the mail and folds the events
    session = fresh_session()
    assert session.scalar(select(func.count()).select_from(CountEvent)) == 0  # worker folded
    assert session.get(Letter, letter.id, populate_existing=True).signature_count == 2
    assert api_count(client, letter) == 2

    # Unfolded events are still counted: the count never waits for the folder.
    sign_and_confirm(client, mailbox, letter, email="late@example.org")
    client.post(
        f"/letters/{letter.slug}/sign", data={"name": "X", "email": "x@example.org"}
    )  # pending: not counted
    assert api_count(client, letter) == 3


def test_fold_is_exact_with_many_letters_and_withdrawals(app, make_letter):
    first, second = make_letter(title="One"), make_letter(title="Two")
    with transaction() as session:
        for delta in (1, 1, 1, -1):
            session.add(CountEvent(letter_id=first.id, delta=delta))
        session.add(CountEvent(letter_id=second.id, delta=1))
    with transaction() as session:
        assert counts.current(session, first.id) == 2
        assert counts.fold(session) == 5
        assert counts.fold(session) == 0
    session = fresh_session()
    assert session.get(Letter, first.id, populate_existing=True).signature_count == 2
    assert session.get(Letter, second.id, populate_existing=True).signature_count == 1
    assert counts.current(session, first.id) == 2


def test_recount_reports_and_repairs_drift(app, client, make_letter, mailbox):
    letter = make_letter()
    sign_and_confirm(client, mailbox, letter)
    with transaction() as session:
        session.add(CountEvent(letter_id=letter.id, delta=5))  # a bug's worth of drift
    with transaction() as session:
        [result] = counts.recount(session, letter.slug)
    assert (result.stored, result.actual, result.difference) == (6, 1, -5)
    assert api_count(client, letter) == 1
    with transaction() as session:
        [again] = counts.recount(session)
    assert again.difference == 0


def test_count_cache_serves_a_recent_value_then_refreshes(app, make_letter):
    letter = make_letter()
    cache = counts.CountCache(ProcessCache(), seconds=60)
    session = fresh_session()
    assert cache.get(session, letter.id) == 0
    with transaction() as write:
        write.add(CountEvent(letter_id=letter.id, delta=1))
    assert cache.get(session, letter.id) == 0  # cached
    cache.forget(letter.id)
    assert cache.get(session, letter.id) == 1


def test_confirming_tells_the_signer_their_number_whether_or_not_events_are_folded(
    app, client, make_letter, mailbox
):
    letter = make_letter()
    other = make_letter(title="Another letter")
    for name in ("one", "two"):
        sign_and_confirm(client, mailbox, letter, email=f"{name}@example.org")
    sign_and_confirm(client, mailbox, other, email="elsewhere@example.org")
    for name in ("three", "four"):
        client.post(f"/letters/{letter.slug}/sign", data=sign_data(email=f"{name}@example.org"))
    client.post(f"/letters/{other.slug}/sign", data=sign_data(email="also@example.org"))
    mailbox.deliver()  # the worker folds every event so far
    assert fresh_session().scalar(select(func.count()).select_from(CountEvent)) == 0

    def confirm(email: str) -> str:
        return client.post(mailbox.link(email, "/verify/")).get_data(as_text=True)

    assert "You are signature #2" in confirm("also@example.org")  # the other letter's, unfolded
    assert "You are signature #3" in confirm("three@example.org")  # two folded, one new
    assert "You are signature #4" in confirm("four@example.org")  # and one not yet folded
    assert fresh_session().scalar(select(func.count()).select_from(CountEvent)) == 3
    assert api_count(client, letter) == 4


def test_the_worker_folds_and_gives_back_the_space_of_folded_events(app, make_letter):
    from sqlalchemy import insert, text

    from petition.db import engine, utcnow
    from petition.worker import CountFolder

    letter = make_letter()
    with transaction() as session:
        session.execute(
            insert(CountEvent),
            [{"letter_id": letter.id, "delta": 1, "created_at": utcnow()}] * 5000,
        )
    folder = CountFolder(reclaim_after=5000)
    assert folder.step() == 5000 and folder.folded == 5000
    assert counts.current(fresh_session(), letter.id) == 5000
    if engine().dialect.name == "postgresql":
        # VACUUM ran: the table's pages, all dead rows, were given back.
        size = fresh_session().scalar(text("SELECT pg_relation_size('count_event')"))
        assert size == 0
