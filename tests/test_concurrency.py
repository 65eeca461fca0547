"""Many people at once: no double signatures, no lost or double counts.

Runs on SQLite by default and on PostgreSQL when PETITION_TEST_DATABASE_URL is set (as in CI).
"""

from __future__ import annotations

import fcntl
import os
import re
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from petition import db, driver
from petition.db import transaction
from petition.models import Signature, SignatureState
from petition.services import counts
from petition.worker import run_worker
from tests.conftest import fresh_session, sign_data

THREADS = 50
PEOPLE = 25


def _in_parallel(app, jobs):
    barrier = threading.Barrier(len(jobs))

    def run(job):
        client = app.test_client()
        barrier.wait()
        return job(client)

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return list(pool.map(run, jobs))


def test_fifty_threads_sign_and_verify_at_once(app, make_letter, mailbox):
    letter = make_letter()
    # Each person signs twice at the same moment, the second time in other letter case.
    addresses = [f"member{i}@example.org" for i in range(PEOPLE)]
    typed = addresses + [
        address.upper().replace("@EXAMPLE.ORG", "@Example.org") for address in addresses
    ]
    assert len(typed) == THREADS

    def signer(address):
        return lambda client: (
            client.post(f"/letters/{letter.slug}/sign", data=sign_data(email=address)).status_code
        )

    assert _in_parallel(app, [signer(address) for address in typed]) == [303] * THREADS

    # Two workers deliver at once: each message is claimed by exactly one.
    workers = [
        threading.Thread(target=run_worker, args=(app, threading.Event()), kwargs={"once": True})
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    mailbox.deliver()
    ids = [m["Message-ID"] for m in mailbox.messages]
    assert len(ids) == len(set(ids))

    links: dict[str, list[str]] = {}
    for message in mailbox.messages:
        path = re.search(r"http://localhost(/verify/[\w-]+)", mailbox.body(message)).group(1)
        links.setdefault(message["To"].lower(), []).append(path)
    assert sorted(links) == sorted(addresses)

    # Every person presses the button twice at once (on every link they got).
    def confirmer(address):
        def press(client):
            return [client.post(path).status_code for path in links[address]]

        return press

    results = _in_parallel(app, [confirmer(a) for a in addresses for _ in range(2)])
    for statuses in results:
        assert 200 in statuses
        assert set(statuses) <= {200, 404}

    session = fresh_session()
    per_state = dict(
        session.execute(select(Signature.state, func.count()).group_by(Signature.state)).all()
    )
    assert per_state == {SignatureState.VERIFIED: PEOPLE}
    keys = session.scalars(select(Signature.email_key)).all()
    assert len(keys) == len(set(keys)) == PEOPLE
    assert counts.current(session, letter.id) == PEOPLE
    with transaction() as write:
        [result] = counts.recount(write, letter.slug)
    assert (result.stored, result.actual) == (PEOPLE, PEOPLE)
    assert (
        app.test_client().get(f"/api/v1/letters/{letter.slug}").get_json()["signature_count"]
        == PEOPLE
    )


def _turn_is_free(lock_path: str) -> bool:
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # also drops the lock if it was taken
    return True


def test_sqlite_writers_take_turns_and_always_give_the_turn_back(app, database_url):
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite test: the writers' queue exists only for a SQLite file")
    lock_path = database_url.removeprefix("sqlite:///") + ".writers"
    with transaction() as session:
        session.execute(select(func.count()).select_from(Signature))
        assert not _turn_is_free(lock_path)  # held for the whole writing transaction
    assert _turn_is_free(lock_path)
    with pytest.raises(RuntimeError), transaction():
        raise RuntimeError("a failed write rolls back")
    assert _turn_is_free(lock_path)
    fresh_session().scalar(select(func.count()).select_from(Signature))  # a plain read
    assert _turn_is_free(lock_path)


def test_sqlite_writers_turn_is_given_back_only_after_sqlite_has_committed(app, database_url):
    # SQLAlchemy announces a commit before SQLite runs it: a turn given back then would send the
    # next writer's BEGIN IMMEDIATE into SQLite's sleeping busy handler.
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite test: the writers' queue exists only for a SQLite file")
    lock_path = database_url.removeprefix("sqlite:///") + ".writers"
    held_when_announced: list[bool] = []

    def announced(_conn):
        held_when_announced.append(not _turn_is_free(lock_path))

    engine = db.engine()
    event.listen(engine, "commit", announced)
    try:
        with transaction() as session:
            session.execute(select(func.count()).select_from(Signature))
    finally:
        event.remove(engine, "commit", announced)
    assert held_when_announced == [True]
    assert _turn_is_free(lock_path)


def test_a_writers_turn_file_that_cannot_be_opened_is_a_503_that_names_it_and_reads_go_on(
    app, client, make_letter, database_url, caplog
):
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite test: the writers' queue exists only for a SQLite file")
    letter = make_letter()
    db.engine().dispose()  # connections made from here on open the file at their first write
    turn_file = Path(database_url.removeprefix("sqlite:///") + ".writers")
    turn_file.unlink()
    turn_file.mkdir()  # as unusable as a read-only disk's, even to root
    assert client.get(f"/letters/{letter.slug}").status_code == 200
    assert client.get(f"/api/v1/letters/{letter.slug}").status_code == 200
    refused = client.post(f"/letters/{letter.slug}/sign", data=sign_data())
    assert refused.status_code == 503
    assert "Please try again in a minute" in refused.get_data(as_text=True)
    assert f"cannot open {turn_file} (the writers' turn): Is a directory" in caplog.text
    assert "Traceback" not in caplog.text


def test_after_one_writer_met_an_outside_lock_the_others_wait_briefly_not_in_turn(
    app, database_url
):
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite test: another process holding the file's write lock")
    engine = db.engine()
    traced: list[str] = []

    def short_and_traced(dbapi_connection, _record):  # 15 s in production
        dbapi_connection.execute("PRAGMA busy_timeout=1000")
        dbapi_connection.set_trace_callback(traced.append)

    def write(_number: int = 0) -> str:
        try:
            with driver.unit(engine):
                return "written"
        except OperationalError as error:
            assert "database is locked" in str(error)
            return "refused"

    event.listen(engine, "connect", short_and_traced)
    engine.dispose()
    holder = sqlite3.connect(database_url.removeprefix("sqlite:///"))
    try:
        holder.execute("BEGIN IMMEDIATE")  # an operator's sqlite3 shell, in a transaction
        with ThreadPoolExecutor(max_workers=4) as pool:
            outcomes = list(pool.map(write, range(4)))
        holder.rollback()
        assert write() == "written"  # gone: the next writer goes on at once
    finally:
        holder.close()
        event.remove(engine, "connect", short_and_traced)
        engine.dispose()
    assert outcomes == ["refused"] * 4
    # The first waited SQLite's whole timeout; the three queued behind it a moment each.
    hurried = f"PRAGMA busy_timeout={db.QueuedSQLiteConnection.HURRIED_BUSY_MS}"
    assert traced.count(hurried) == 4  # the three, and the writer after the lock had gone


def test_postgresql_pings_only_connections_that_sat_idle_and_replaces_a_dead_one(
    app, database_url, monkeypatch
):
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL test: set PETITION_TEST_DATABASE_URL to run it")
    engine = db.engine()
    pings: list[int] = []
    ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda conn: pings.append(1) or ping(conn))

    def backend_pid() -> int:
        with engine.connect() as connection:
            return connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()

    first = backend_pid()
    assert backend_pid() == first and pings == []  # in use a moment ago: no round trip spent

    killer = create_engine(database_url, poolclass=NullPool)
    with killer.connect() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
    killer.dispose()
    monkeypatch.setattr(db.PingWhenIdle, "IDLE_SECONDS", 0.0)  # as if it sat idle for a while

    replacement = backend_pid()  # no error reaches the caller
    assert replacement != first
    assert pings == [1, 1]  # the dead connection's ping, then the new one's
