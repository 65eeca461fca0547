"""Faults against real processes: nothing acknowledged is lost, nothing is counted twice."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from petition.breaker import CircuitBreaker
from petition.db import transaction
from petition.models import Message, MessageState, Signature, SignatureState
from petition.services import counts
from tests.conftest import fresh_session, sign_data
from tests.faults.conftest import (
    Browser,
    MailWorker,
    Outcome,
    app_environment,
    burst,
    verify_links,
    wait_for,
)


def _stored_emails() -> list[str]:
    return list(fresh_session().scalars(select(Signature.email)))


def _confirm_everyone(port: int) -> int:
    """Press the button in every confirmation mail still in the outbox; returns how many."""
    bodies = fresh_session().scalars(select(Message.context).where(Message.kind == "verify"))
    links = [link for body in bodies for link in verify_links(body)]
    browser = Browser(port)
    for link in links:
        status, _page = browser.confirm(link)
        assert status == 200, (link, status)
    return len(links)


def _assert_counts_exact(letter) -> None:
    session = fresh_session()
    verified = session.scalars(
        select(Signature.id).where(
            Signature.letter_id == letter.id, Signature.state == SignatureState.VERIFIED
        )
    ).all()
    assert counts.current(session, letter.id) == len(verified)
    with transaction() as write:
        [result] = counts.recount(write, letter.slug)
    assert result.difference == 0, result


def test_killing_a_web_worker_mid_burst_loses_no_acknowledged_signature(
    app, make_letter, start_web
):
    letter = make_letter()
    web = start_web()
    port = web.port
    victim = web.workers()[0]
    killer = threading.Timer(0.4, os.kill, args=(victim, signal.SIGKILL))
    started = time.monotonic()
    killer.start()
    outcomes = burst(port, letter.slug, "kill", threads=8, each=40)
    killer.join()
    assert time.monotonic() - started > 0.4, "the burst ended before the worker was killed"

    statuses = Counter(outcome.status for outcome in outcomes)
    assert set(statuses) <= {303, None}, statuses  # None: the dying worker's connections
    assert statuses[303] > 200
    acknowledged = {o.email for o in outcomes if o.status == 303}
    stored = _stored_emails()
    assert acknowledged <= set(stored), acknowledged - set(stored)
    assert len(stored) == len(set(stored))
    wait_for(lambda: len(web.workers()) == 2 and victim not in web.workers(), what="a respawn")

    assert _confirm_everyone(port) == len(stored)
    _assert_counts_exact(letter)


@pytest.mark.postgres
def test_postgresql_going_away_mid_burst_gives_clean_503s_and_the_app_recovers(
    app, make_letter, start_web
):
    letter = make_letter()
    # With the letter kept (as by default), signing goes straight to a pooled connection, and a
    # new one that the server refuses must be a 503 there too.
    web = start_web(PETITION_COUNT_CACHE_SECONDS="2")
    port = web.port
    cluster = ["pg_ctlcluster", "--skip-systemctl-redirect", _pg_version(), "main"]
    back = threading.Event()

    def outage() -> None:
        time.sleep(0.5)
        subprocess.run([*cluster, "stop", "-m", "fast"], check=True, capture_output=True)
        time.sleep(2)
        subprocess.run([*cluster, "start"], check=True, capture_output=True)
        back.set()

    restarter = threading.Thread(target=outage)
    restarter.start()
    outcomes = burst(port, letter.slug, "pg", threads=4, each=120, pause=0.02)
    restarter.join()
    assert back.is_set()
    # Once it is back, the same app processes serve again without a restart (pool pre-ping).
    late = burst(port, letter.slug, "after", threads=2, each=10)

    statuses = Counter(outcome.status for outcome in outcomes)
    assert set(statuses) <= {303, 503}, statuses
    assert statuses[503] > 0, "the outage was not noticed: make the burst longer"
    for outcome in outcomes:
        if outcome.status == 503:
            assert "Please try again in a minute" in outcome.body
            assert "Traceback" not in outcome.body
    assert {outcome.status for outcome in late} == {303}
    # The log says what the server said ("Connection refused", "shutting down"), not a type.
    reasons = set(re.findall(r"database unavailable: (.*)", web.output()))
    assert reasons and "OperationalError" not in reasons, reasons
    acknowledged = {o.email for o in outcomes + late if o.status == 303}
    assert acknowledged <= set(_stored_emails())
    _confirm_everyone(port)
    _assert_counts_exact(letter)


def test_a_redis_that_stops_answering_holds_no_one_up_and_limits_go_on_in_each_process(
    app, make_letter, start_web, private_redis
):
    letter = make_letter()
    web = start_web(
        PETITION_REDIS_URL=private_redis.url,
        PETITION_TRUSTED_PROXIES="1",  # each visitor's address, as nginx would pass it
        PETITION_SIGN_RATE_LIMIT="3 per hour",  # under 100: every signature asks Redis
        PETITION_COUNT_CACHE_SECONDS="2",
    )

    def sign_from(address: str, times: int, prefix: str) -> list[Outcome]:
        browser = Browser(web.port, forwarded_for=address)
        emails = [f"{prefix}-{n}@example.org" for n in range(times)]
        return [Outcome(email, *browser.sign(letter.slug, email)) for email in emails]

    def poll_count(_number: int) -> int:
        return Browser(web.port).request("GET", f"/api/v1/letters/{letter.slug}")[0]

    assert [o.status for o in sign_from("10.0.0.9", 4, "before")] == [303, 303, 303, 429]

    private_redis.freeze()
    frozen_at = time.monotonic()
    with ThreadPoolExecutor(max_workers=4) as pool:
        visitors = pool.map(lambda n: sign_from(f"10.1.{n}.1", 2, f"during{n}"), range(40))
        polls = list(pool.map(poll_count, range(40)))
        during = [outcome for outcomes in visitors for outcome in outcomes]
    # One address keeps signing: each process counts it on its own, so 2 workers let through
    # at most 3 each, and refuse the rest.
    repeated = sign_from("10.2.0.1", 7, "repeated")
    private_redis.thaw()
    outage = time.monotonic() - frozen_at

    assert polls == [200] * len(polls)
    assert {o.status for o in during} == {303}
    assert Counter(o.status for o in repeated)[429] >= 1
    # Each of the 2 workers' 2 breakers (limits, cache) asks a silent Redis once, then leaves it
    # alone for RETRY_SECONDS; asking on every request would have been 120 waits or more.
    waits = web.output().count("failed (TimeoutError)")
    # In gunicorn's log with its time, process and level, like its own lines.
    assert re.search(
        r"^\[\d{4}-\d\d-\d\d [\d:]{8} [+-]\d{4}\] \[\d+\] \[WARNING\] Redis \(rate limits\) "
        r"failed \(TimeoutError\): this process works without it for the next 5 s$",
        web.output(),
        re.MULTILINE,
    )
    tries = 2 * 2 * (int(outage // CircuitBreaker.RETRY_SECONDS) + 1)
    assert 1 <= waits <= tries, (waits, outage)

    time.sleep(CircuitBreaker.RETRY_SECONDS)
    assert [o.status for o in sign_from("10.0.0.9", 1, "after")] == [429]  # Redis's count
    assert [o.status for o in sign_from("10.3.0.1", 4, "shared")] == [303, 303, 303, 429]
    assert "answers again" in web.output()
    acknowledged = {o.email for o in during + repeated if o.status == 303}
    assert acknowledged <= set(_stored_emails())


def _pg_version() -> str:
    return sorted(os.listdir("/etc/postgresql"))[-1]


def _queue_signatures(client, letter, emails: list[str]) -> None:
    for email in emails:
        assert (
            client.post(f"/letters/{letter.slug}/sign", data=sign_data(email=email)).status_code
            == 303
        )


def test_mail_waits_out_an_smtp_outage_and_then_arrives_exactly_once(
    app, client, database_url, make_letter, smtp_recorder, processes, tmp_path
):
    letter = make_letter()
    server, recorder = smtp_recorder  # not started: the mail server is down
    emails = [f"outage{n}@example.org" for n in range(20)]
    _queue_signatures(client, letter, emails)
    env = app_environment(database_url, server.port, "http://127.0.0.1:1")
    worker = MailWorker(env, tmp_path / "worker.log")
    processes.append(worker)

    def all_tried() -> bool:
        messages = fresh_session().scalars(select(Message)).all()
        return all(m.last_error and m.state is MessageState.PENDING for m in messages)

    wait_for(all_tried, what="every message to fail once")
    assert recorder.recipients() == []
    # The worker says so in its log, with the time, and why: operators hear of the outage.
    assert re.search(
        r"^\[\d{4}-\d\d-\d\d [\d:]{8} [+-]\d{4}\] \[\d+\] \[WARNING\] mail not sent: "
        r"\d+ × cannot connect to the mail server: ConnectionRefusedError",
        worker.output(),
        re.MULTILINE,
    )
    server.start()
    wait_for(lambda: len(recorder.recipients()) >= len(emails), what="the queued mail")
    time.sleep(1)  # a duplicate would arrive within the worker's next passes
    assert sorted(recorder.recipients()) == sorted(emails)
    states = fresh_session().scalars(select(Message.state)).all()
    assert set(states) == {MessageState.SENT}


def test_a_refused_address_is_parked_with_its_error_for_operators(
    app, client, database_url, make_letter, smtp_recorder, processes, tmp_path
):
    letter = make_letter()
    server, recorder = smtp_recorder
    recorder.refuse.add("nobody@example.org")
    server.start()
    _queue_signatures(client, letter, ["nobody@example.org", "somebody@example.org"])
    env = app_environment(database_url, server.port, "http://127.0.0.1:1")
    worker = MailWorker(env, tmp_path / "worker.log")
    processes.append(worker)
    # The worker records each message's outcome as it goes: the refusal can be recorded
    # before the next message in the batch has been sent.
    wait_for(
        lambda: (
            MessageState.FAILED in fresh_session().scalars(select(Message.state)).all()
            and recorder.recipients()
        ),
        what="the refused message to be parked and the other one sent",
    )
    assert recorder.recipients() == ["somebody@example.org"]
    status = subprocess.run(
        [sys.executable, "-m", "petition.cli", "mail", "status"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "parked: 1" in status
    assert "550" in status and "No such mailbox" in status


def test_killing_the_mail_worker_mid_batch_loses_nothing_and_repeats_at_most_one(
    app, client, database_url, make_letter, smtp_recorder, processes, tmp_path
):
    letter = make_letter()
    server, recorder = smtp_recorder
    recorder.delay = 0.1  # slow enough to kill the worker in the middle of its batch
    server.start()
    emails = [f"batch{n}@example.org" for n in range(30)]
    _queue_signatures(client, letter, emails)
    env = app_environment(database_url, server.port, "http://127.0.0.1:1")
    first = MailWorker(env, tmp_path / "worker1.log")
    processes.append(first)
    wait_for(lambda: len(recorder.recipients()) >= 8, what="some mail to go out")
    first.kill(signal.SIGKILL)
    first.handle.wait()
    delivered_before = len(recorder.recipients())
    assert delivered_before < len(emails), "the worker finished before it was killed"

    second = MailWorker(env, tmp_path / "worker2.log")  # takes over once the lease lapses
    processes.append(second)
    wait_for(lambda: set(recorder.recipients()) >= set(emails), timeout=30, what="the rest")
    time.sleep(1)
    received = Counter(recorder.recipients())
    assert set(received) == set(emails)
    duplicates = sum(count - 1 for count in received.values())
    assert duplicates <= 1, received  # only the message in flight at the kill may repeat


def test_two_mail_workers_and_a_slow_mail_server_send_each_message_once(
    app, client, database_url, make_letter, smtp_recorder, processes, tmp_path
):
    letter = make_letter()
    server, recorder = smtp_recorder
    recorder.delay = 0.25  # a slow relay: a batch takes longer than its 3 s lease
    server.start()
    emails = [f"slow{n}@example.org" for n in range(40)]
    _queue_signatures(client, letter, emails)
    env = app_environment(database_url, server.port, "http://127.0.0.1:1")
    for number in (1, 2):
        processes.append(MailWorker(env, tmp_path / f"worker{number}.log"))
    wait_for(lambda: set(recorder.recipients()) >= set(emails), timeout=60, what="every mail")
    time.sleep(3)  # a message taken over after its lease ran out would come within a lease
    received = Counter(recorder.recipients())
    assert {email: count for email, count in received.items() if count > 1} == {}
    assert set(received) == set(emails)
