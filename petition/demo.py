"""`petition demo`: the whole site on one machine, with a letter to sign and an organiser."""

from __future__ import annotations

import errno
import os
import secrets
import signal
import socket
import sys
import threading
from pathlib import Path

import click
from flask import Flask
from sqlalchemy import select
from werkzeug.serving import WSGIRequestHandler, make_server, select_address_family
from werkzeug.urls import uri_to_iri

from petition import create_app, links, migrate
from petition.db import transaction
from petition.models import Letter
from petition.services import letters, organisers
from petition.worker import run_worker

DEMO_ORGANISER = "organiser@example.org"
DEMO_SLUG = "stand-for-the-leadership"
# A newline inside a paragraph would show as a line break (organisers' line breaks are kept), so
# the long line is continued with a backslash.
DEMO_BODY = """Dear Alex,

We are members of the party in your constituency and across the country. We have watched you \
argue for fair pay, for decent homes and for a politics that listens.

**We ask you to stand for the leadership.**

The party needs someone who can win back the places we have lost, and who will:

- put working people's living standards first;
- build the homes this country needs;
- rebuild trust in public life.

If you stand, we will campaign for you.

Yours sincerely,

The undersigned members
"""


class _RequestLog(WSGIRequestHandler):
    """werkzeug's line per request, in colour only on a terminal: its colour codes made a log
    file written from the demo hard to read."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if sys.stderr.isatty():
            super().log_request(code, size)
            return
        line = f"{self.command} {uri_to_iri(self.path)} {self.request_version}"
        self.log("info", '"%s" %s %s', line, code, size)


def run(host: str, port: int, database: Path | None = None) -> None:
    # A shell starts a background command with SIGINT ignored, and Python then never raises
    # KeyboardInterrupt, so `kill -INT` did nothing: the demo stops on it, as its banner says.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # Its own file, whatever PETITION_DATABASE_URL says: the demo resets an organiser's
    # password and adds a letter, which must never happen to a real database.
    database = database or Path(Flask("petition").instance_path) / "demo.sqlite3"
    settings = {
        "ENV": "development",
        "DATABASE_URL": f"sqlite:///{database.resolve()}",
        "BASE_URL": f"http://{host}:{port}",
        "SESSION_COOKIE_SECURE": False,
        "REMEMBER_COOKIE_SECURE": False,
        "MAIL_BACKEND": os.environ.get("PETITION_MAIL_BACKEND", "console"),
    }
    app = create_app(settings)
    # Listen before touching the database: a second demo on a port in use must fail without
    # changing the password that the first one printed.
    try:
        family = select_address_family(host, port)
        listener = socket.create_server((host, port), family=family)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            hint = "the port is in use (is a demo already running?): choose another with --port"
        else:
            hint = "give --host an address of this machine, such as 127.0.0.1"
        raise click.ClickException(f"Cannot listen on {host}:{port}: {hint}.") from None
    with listener:
        server = make_server(
            host, port, app, threaded=True, request_handler=_RequestLog, fd=listener.fileno()
        )
    migrate.upgrade(app.config["DATABASE_URL"])
    password = secrets.token_urlsafe(9)
    with app.app_context():
        with transaction() as session:
            organiser = organisers.find(session, DEMO_ORGANISER)
            if organiser is None:
                organiser = organisers.create(session, DEMO_ORGANISER, password, "Demo organiser")
            else:
                organisers.set_password(session, organiser, password)
            if session.scalar(select(Letter.id).where(Letter.slug == DEMO_SLUG)) is None:
                letters.create(
                    session,
                    letters.LetterInput(
                        title="Stand for the leadership",
                        recipient_name="Alex Morgan MP",
                        recipient_role="Member of Parliament for Northtown",
                        body_markdown=DEMO_BODY,
                        slug=DEMO_SLUG,
                        goal=1000,
                        ask_postcode=True,
                        ask_comment=True,
                    ),
                    organiser,
                    publish=True,
                )
        letter_url = links.letter(DEMO_SLUG)
        login_url = links.login()
    mail_where = {
        "console": "printed in this terminal",
        "file": f"written as .eml files to {app.config['MAIL_DIR']}",
        "smtp": f"sent to {app.config['SMTP_HOST']}:{app.config['SMTP_PORT']}",
    }[app.config["MAIL_BACKEND"]]
    stop = threading.Event()
    worker = threading.Thread(
        target=run_worker, args=(app, stop), kwargs={"interval": 1.0}, daemon=True
    )
    try:  # from before the banner: a Ctrl+C the moment it shows still stops the demo cleanly
        worker.start()
        click.echo(
            "\n"
            f"  Letter:     {letter_url}\n"
            f"  Organiser:  {login_url}\n"
            f"              email {DEMO_ORGANISER}, password {password}\n"
            f"  Emails:     {mail_where}\n"
            f"  Database:   {app.config['DATABASE_URL']}\n"
            "  Commands:   with these settings the other petition commands use this demo:\n"
            f"              PETITION_ENV=development "
            f"PETITION_DATABASE_URL={app.config['DATABASE_URL']} "
            f"PETITION_BASE_URL={app.config['BASE_URL']}\n"
            "  Stop with Ctrl+C.\n"
        )
        # werkzeug directly: app.run() declines to start inside a Flask CLI command.
        server.serve_forever()  # returns on Ctrl+C: werkzeug takes the KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.server_close()
    click.echo(
        f"\nStopped. The demo's data stays in {database} for its next start"
        " (delete the file to begin afresh)."
    )
