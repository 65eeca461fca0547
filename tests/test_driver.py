"""Fixed statements on the driver: the same values as through SQLAlchemy, errors as SQLAlchemy's."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import bindparam, exc, insert, select

from petition import driver
from petition.db import engine, get_session, transaction
from petition.models import CountEvent, Message, MessageState
from petition.services import mail

WHEN = datetime(2026, 11, 26, 16, 30, 15, 123456, tzinfo=UTC)


def _queued(subject: str, *, signature_id: int | None = None) -> dict[str, object]:
    values = mail.message_values("verify", "jane@example.org", subject, title="T", when=WHEN)
    return mail.bound_values(values | {"next_attempt_at": WHEN}) | {"signature_id": signature_id}


def _count_event() -> driver.Prepared:
    events = CountEvent.__table__
    statement = insert(events).values(
        letter_id=bindparam("letter_id", type_=events.c.letter_id.type),
        delta=1,
        created_at=bindparam("created_at", type_=events.c.created_at.type),
    )
    return driver.Prepared(lambda _dialect: statement)


def test_a_prepared_statement_stores_what_the_orm_reads_back(app: Flask) -> None:
    with driver.unit(engine()) as unit:
        unit.execute(mail.QUEUE, _queued("Please confirm"))

    stored = get_session().scalars(select(Message)).one()
    assert stored.subject == "Please confirm"
    assert stored.state is MessageState.PENDING  # the literal in the statement, as an enum
    assert stored.attempts == 0
    assert stored.next_attempt_at == WHEN  # timezone-aware, to the microsecond
    assert stored.signature_id is None
    assert mail._decode(stored.context or "") == {"title": "T", "when": WHEN}


def test_a_missing_value_is_refused_before_anything_runs(app: Flask) -> None:
    values = _queued("x")
    del values["message_subject"]
    with pytest.raises(KeyError, match="message_subject"), driver.unit(engine()) as unit:
        unit.execute(mail.QUEUE, values)
    assert get_session().scalars(select(Message)).all() == []


def test_a_database_error_rolls_the_unit_back_as_a_sqlalchemy_error(app: Flask) -> None:
    statement = _count_event()
    with pytest.raises(exc.IntegrityError), driver.unit(engine()) as unit:
        unit.execute(mail.QUEUE, _queued("first, then undone"))
        unit.execute(statement, {"letter_id": None, "created_at": WHEN})  # NOT NULL
    assert get_session().scalars(select(Message)).all() == []


def test_the_next_writer_gets_its_turn_after_an_error(app: Flask) -> None:
    """On SQLite a unit holds the writers' turn; an error must give it back, or every later
    write (here, in another thread) would wait for ever."""
    with pytest.raises(RuntimeError), driver.unit(engine()) as unit:
        unit.execute(mail.QUEUE, _queued("undone"))
        raise RuntimeError("the caller's own failure")

    done = threading.Event()

    def write() -> None:
        with app.app_context(), transaction() as session:
            session.add(CountEvent(letter_id=1, delta=1))
        done.set()

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    assert done.wait(timeout=20), "a later writer was still waiting for the turn"
    assert get_session().scalars(select(Message)).all() == []


def test_a_unit_within_a_session_commits_with_the_session(app: Flask) -> None:
    with transaction() as session:
        with driver.within(session) as unit:
            unit.execute(mail.QUEUE, _queued("in the session"))
        session.add(CountEvent(letter_id=1, delta=1, created_at=WHEN - timedelta(days=1)))
    session = get_session()
    assert [m.subject for m in session.scalars(select(Message))] == ["in the session"]
    assert len(session.scalars(select(CountEvent)).all()) == 1


def test_one_statement_leaves_the_pooled_connection_as_it_found_it(app: Flask) -> None:
    """On PostgreSQL the statement runs autocommitted; the pool must get back a connection in
    its usual mode, or later sessions would commit statement by statement."""
    with driver.unit(engine(), one_statement=True) as unit:
        unit.execute(mail.QUEUE, _queued("alone"))
    pooled = engine().raw_connection()
    try:
        assert getattr(pooled.driver_connection, "autocommit", False) is False
    finally:
        pooled.close()
    with pytest.raises(exc.IntegrityError), transaction() as session:
        session.add(Message(kind="x", to_address="a@example.org", subject="s", body_text=""))
        session.flush()
        session.add(CountEvent(letter_id=None, delta=1))  # type: ignore[arg-type]
        session.flush()
    assert [m.subject for m in get_session().scalars(select(Message))] == ["alone"]


def test_a_lost_server_is_an_operational_error_and_the_next_unit_connects_afresh(
    app: Flask, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL test: set PETITION_TEST_DATABASE_URL to run it")
    pooled = engine().raw_connection()
    backend = pooled.driver_connection.info.backend_pid
    with engine().connect() as other:
        other.exec_driver_sql(f"SELECT pg_terminate_backend({backend})")
    pooled.close()  # back in the pool last, so the next unit takes it (last in, first out)

    with pytest.raises(exc.OperationalError) as lost, driver.unit(engine()) as unit:
        unit.execute(mail.QUEUE, _queued("never stored"))
    assert lost.value.connection_invalidated
    with driver.unit(engine()) as unit:
        unit.execute(mail.QUEUE, _queued("stored"))
    assert [m.subject for m in get_session().scalars(select(Message))] == ["stored"]
