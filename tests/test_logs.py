"""What the logs and the outbox's errors may hold: never a link's secret, never what was typed."""

from __future__ import annotations

import logging
import smtplib
import threading
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, ProgrammingError

from petition import db, links
from petition.services import mail, signatories, signatures
from petition.worker import run_worker

SECRET = "01a2SECRETnotForTheLogs"


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        (f"/verify/{SECRET}", "/verify/<token>"),
        (f"/signature/{SECRET}/withdraw", "/signature/<token>/withdraw"),
        (f"/news/stop/{SECRET}", "/news/stop/<token>"),
        (f"/deliveries/{SECRET}/signatories.csv", "/deliveries/<token>/signatories.csv"),
        ("/letters/save-the-library/sign", "/letters/save-the-library/sign"),
        ("/verify/", "/verify/"),
        (
            f"http://letters.example.org/verify/{SECRET}",
            "http://letters.example.org/verify/<token>",
        ),
    ],
)
def test_a_path_is_logged_without_its_secret(path, logged):
    assert links.loggable(path) == logged


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    return {**app_config, "PROPAGATE_EXCEPTIONS": False}  # log a failure, as deployed


def test_a_failing_page_is_logged_without_the_secret_in_its_address(client, monkeypatch, caplog):
    def broken(*_args: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(signatures, "find_by_manage_token", broken)
    with caplog.at_level(logging.ERROR):
        assert client.get(f"/signature/{SECRET}").status_code == 500
    assert "Exception on /signature/<token> [GET]" in caplog.text
    assert "RuntimeError: a bug" in caplog.text
    assert SECRET not in caplog.text


def test_a_database_error_does_not_quote_the_values_written(app):
    with pytest.raises(DBAPIError) as raised, db.engine().connect() as connection:
        connection.execute(
            text("INSERT INTO no_such_table (email) VALUES (:email)"),
            {"email": "private.person@example.org"},
        )
    assert "no_such_table" in str(raised.value)
    assert "private.person@example.org" not in str(raised.value)


def test_a_database_behind_the_code_is_a_503_whose_log_says_to_upgrade(app, client, caplog):
    with db.engine().begin() as connection:  # as if made before the column was added
        connection.execute(text("ALTER TABLE letter DROP COLUMN news_sent_at"))
    with caplog.at_level(logging.ERROR):
        response = client.get("/")
    assert response.status_code == 503
    assert "news_sent_at" in caplog.text and "(run: petition db upgrade)" in caplog.text


def test_statements_lost_behind_a_pooler_are_a_503_whose_log_names_the_setting(
    client, make_letter, monkeypatch, caplog
):
    """What psycopg meets behind PgBouncer before 1.21 in transaction mode: a statement it
    prepared on one server connection, asked for on another (a 500 before, which named
    nothing an operator could change)."""
    letter = make_letter()

    def lost(*_args: Any) -> None:
        said = Exception('prepared statement "_pg3_5" does not exist')
        raise ProgrammingError("SELECT ...", {}, said)

    monkeypatch.setattr(signatories, "recent", lost)
    with caplog.at_level(logging.ERROR):
        response = client.get(f"/letters/{letter.slug}")
    assert response.status_code == 503
    assert "Please try again in a minute" in response.get_data(as_text=True)
    assert 'prepared statement "_pg3_5" does not exist (behind PgBouncer' in caplog.text
    assert "set PETITION_DATABASE_PREPARED_STATEMENTS=false" in caplog.text


def test_the_mail_worker_says_what_to_do_about_statements_lost_behind_a_pooler(
    app, monkeypatch, caplog
):
    """Its record of a sent message failed so, and the message went out again after its lease:
    the log must name the setting, as the site's does."""

    def lost(*_args: Any, **_kwargs: Any) -> None:
        said = Exception('prepared statement "_pg3_4" does not exist')
        raise ProgrammingError("UPDATE message ...", {}, said)

    monkeypatch.setattr(mail, "deliver_pending", lost)
    with caplog.at_level(logging.ERROR):
        run_worker(app, threading.Event(), once=True)
    assert "mail delivery failed; will retry (behind PgBouncer older than 1.21" in caplog.text
    assert "set PETITION_DATABASE_PREPARED_STATEMENTS=false;" in caplog.text


@pytest.mark.parametrize(
    ("said", "advice"),
    [
        ('prepared statement "_pg3_5" does not exist', "PREPARED_STATEMENTS=false"),
        ('prepared statement "_pg3_2" already exists', "PREPARED_STATEMENTS=false"),
        (
            'bind message supplies 34 parameters, but prepared statement "_pg3_0" requires 2',
            "PREPARED_STATEMENTS=false",
        ),
        ("canceling statement due to lock timeout", "another session held a lock"),
        ("connection refused", None),
    ],
)
def test_database_errors_that_would_mislead_come_with_what_to_do(said, advice):
    found = db.what_to_do(said)
    assert (found is None) if advice is None else (advice in found)


def test_any_other_programming_error_is_a_500_with_its_traceback(
    client, make_letter, monkeypatch, caplog
):
    letter = make_letter()

    def bug(*_args: Any) -> None:
        raise ProgrammingError("SELECT nonsense", {}, Exception('syntax error at or near "x"'))

    monkeypatch.setattr(signatories, "recent", bug)
    with caplog.at_level(logging.ERROR):
        response = client.get(f"/letters/{letter.slug}")
    assert response.status_code == 500
    assert "Traceback" in caplog.text and "syntax error" in caplog.text
    assert "database unavailable" not in caplog.text


@pytest.mark.parametrize(
    ("error", "logged"),
    [
        (
            smtplib.SMTPRecipientsRefused({"jane@example.org": (550, b"No such user jane")}),
            "SMTPRecipientsRefused",
        ),
        (smtplib.SMTPDataError(554, b"Rejected: jane@example.org"), "SMTPDataError 554"),
        (
            smtplib.SMTPServerDisconnected("Connection unexpectedly closed"),
            "SMTPServerDisconnected",
        ),
        (
            ConnectionRefusedError(111, "Connection refused"),
            "ConnectionRefusedError: [Errno 111] Connection refused",
        ),
        (TimeoutError("timed out"), "TimeoutError: timed out"),
    ],
)
def test_a_failed_send_is_logged_without_the_mail_servers_words(error, logged):
    assert mail.loggable_reason(error) == logged


def test_a_refused_form_is_logged_with_why_and_without_the_secret(app, client, caplog):
    app.config["WTF_CSRF_ENABLED"] = True
    caplog.set_level(logging.INFO, "petition.errors")
    assert client.post(f"/verify/{SECRET}").status_code == 400
    assert caplog.messages == ["form refused (POST /verify/<token>): The CSRF token is missing."]
