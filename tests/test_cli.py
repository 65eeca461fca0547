"""Operators script the site with the `petition` command."""

from __future__ import annotations

import csv
import importlib.metadata
import signal
import sqlite3
import subprocess
import sys
import threading

import pytest
from sqlalchemy import select, update

from petition.cli import cli
from petition.db import transaction
from petition.models import Letter, Organiser
from tests.conftest import free_port, fresh_session, sign_and_confirm


def run(app, *args: str, input: str | bytes | None = None):
    return app.test_cli_runner().invoke(cli, list(args), input=input, catch_exceptions=False)


def test_create_organiser_reads_the_password_from_stdin_only(app):
    result = run(app, "organisers", "create", "Ops@Example.org", "--password-stdin",
                 input="long enough password\n")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Created organiser ops@example.org" in result.output
    organiser = fresh_session().scalar(select(Organiser))
    assert organiser.password_hash.startswith("$argon2id$")
    assert "long enough password" not in organiser.password_hash

    duplicate = run(app, "organisers", "create", "ops@example.org", "--password-stdin",
                    input="long enough password\n")  # fmt: skip
    assert duplicate.exit_code == 1
    assert "already exists" in duplicate.output
    short = run(app, "organisers", "create", "new@example.org", "--password-stdin", input="x\n")
    assert short.exit_code == 1
    assert "at least 10 characters" in short.output
    two_lines = run(app, "organisers", "create", "new@example.org", "--name", "a\nb",
                    "--password-stdin", input="long enough password\n")  # fmt: skip
    assert two_lines.exit_code == 1
    assert "The organiser's name: Keep this on one line" in two_lines.output
    bad = run(app, "organisers", "create", "not-an-email", "--password-stdin", input="x" * 12)
    assert bad.exit_code == 1
    assert "not valid" in bad.output
    assert "--password" not in run(app, "organisers", "create", "--help").output.replace(
        "--password-stdin", ""
    )


def test_export_counts_signatories_not_lines(app, client, mailbox, make_letter, tmp_path):
    letter = make_letter(ask_comment=True)
    sign_and_confirm(client, mailbox, letter, comment="First line.\nSecond line.")
    out = tmp_path / "out.csv"
    exported = run(app, "letters", "export", letter.slug, "-o", str(out))
    assert exported.exit_code == 0, exported.output
    assert exported.stderr.strip() == f"Wrote 1 signatory to {out}"
    with out.open(encoding="utf-8-sig", newline="") as handle:
        assert [row["Comment"] for row in csv.DictReader(handle)] == ["First line.\nSecond line."]


def test_create_organiser_prompts_for_the_password(app):
    result = run(app, "organisers", "create", "ops@example.org",
                 input="long enough password\nlong enough password\n")  # fmt: skip
    assert result.exit_code == 0, result.output


def test_create_list_export_and_recount_letters(app, client, mailbox, tmp_path):
    body = tmp_path / "letter.md"
    body.write_text("Dear Alex,\n\nPlease stand.\n", encoding="utf-8")
    created = run(app, "letters", "create", "--title", "Stand now", "--recipient-name", "Alex",
                  "--body-file", str(body), "--goal", "100", "--publish")  # fmt: skip
    assert created.exit_code == 0, created.output
    assert created.output.strip() == "http://localhost/letters/stand-now"
    draft = run(app, "letters", "create", "--title", "Later", "--recipient-name", "Alex",
                "--body-file", str(body), "--slug", "later-on", "--closes-on", "2030-06-30",
                "--ask-postcode", "--ask-comment")  # fmt: skip
    assert draft.stdout.strip() == "http://localhost/letters/later-on"
    assert "petition letters publish later-on" in draft.stderr
    later = fresh_session().scalar(select(Letter).where(Letter.slug == "later-on"))
    assert later.closes_at.isoformat() == "2030-06-30T23:00:00+00:00"  # midnight BST
    assert (later.ask_postcode, later.ask_organisation, later.ask_comment) == (True, False, True)
    bad_day = run(app, "letters", "create", "--title", "X", "--recipient-name", "Alex",
                  "--body-file", str(body), "--closes-on", "30/06/2030")  # fmt: skip
    assert bad_day.exit_code == 2
    assert "write the day as YYYY-MM-DD, e.g. 2027-03-31, not '30/06/2030'" in bad_day.output
    no_such_day = run(app, "letters", "create", "--title", "X", "--recipient-name", "Alex",
                      "--body-file", str(body), "--closes-on", "2027-02-30")  # fmt: skip
    assert no_such_day.exit_code == 2
    assert "there is no day 2027-02-30 in the calendar" in no_such_day.output
    last_day = run(app, "letters", "create", "--title", "X", "--recipient-name", "Alex",
                   "--body-file", str(body), "--closes-on", "9999-12-31")  # fmt: skip
    assert last_day.exit_code == 2
    assert (
        "Invalid value for --closes-on: The closing date must be within five years."
        in last_day.output
    )

    letter = fresh_session().scalar(select(Letter).where(Letter.slug == "stand-now"))
    sign_and_confirm(client, mailbox, letter, email="a@example.org")
    sign_and_confirm(client, mailbox, letter, email="b@example.org", share_email="y")

    listing = run(app, "letters", "list").output.splitlines()
    assert listing[0].split() == ["SLUG", "STATUS", "SIGNATURES"]
    assert listing[1].split() == ["stand-now", "open", "2"]
    assert listing[2].split() == ["later-on", "draft", "0"]

    out = tmp_path / "out.csv"
    exported = run(app, "letters", "export", "stand-now", "-o", str(out))
    assert exported.exit_code == 0
    with out.open(encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["Email"] for row in rows] == ["", "b@example.org"]
    to_stdout = run(app, "letters", "export", "stand-now")
    assert to_stdout.output.count("\n") == 3

    assert run(app, "letters", "recount").output.splitlines() == [
        "stand-now: 2 (correct)",
        "later-on: 0 (correct)",
    ]
    with transaction() as session:
        session.execute(update(Letter).where(Letter.slug == "stand-now").values(signature_count=7))
    drift = run(app, "letters", "recount", "stand-now")
    assert drift.output.strip() == "stand-now: stored 7, actual 2 (repaired, -5)"
    assert drift.exit_code == 1  # so that cron notices
    assert run(app, "letters", "recount", "stand-now").output.strip() == "stand-now: 2 (correct)"


def test_bad_arguments_get_specific_errors(app, tmp_path):
    empty = tmp_path / "empty.md"
    empty.write_text("  \n")
    result = run(app, "letters", "create", "--title", "T", "--recipient-name", "R",
                 "--body-file", str(empty))  # fmt: skip
    assert result.exit_code == 2
    assert "the file is empty" in result.output
    missing = run(app, "letters", "create", "--title", "T", "--recipient-name", "R",
                  "--body-file", str(tmp_path / "nope.md"))  # fmt: skip
    assert missing.exit_code == 2
    assert "does not exist" in missing.output
    binary = tmp_path / "binary.md"
    binary.write_bytes(b"\xff\xfe\x00bad")
    undecodable = run(app, "letters", "create", "--title", "T", "--recipient-name", "R",
                      "--body-file", str(binary))  # fmt: skip
    assert "not UTF-8 text" in undecodable.output
    bad_slug = run(app, "letters", "create", "--title", "T", "--recipient-name", "R",
                   "--body-file", str(empty.with_name("b.md")), "--slug", "A!")  # fmt: skip
    assert bad_slug.exit_code == 2
    for wrong in ("0", "abc", "1,00", "1.5", "999,999,999", "-5"):
        goal = run(app, "letters", "create", "--title", "T", "--recipient-name", "R",
                   "--body-file", str(empty), "--goal", wrong)  # fmt: skip
        assert goal.exit_code == 2
        assert f"give a whole number from 1 to 100,000,000, not '{wrong}'" in (goal.output)
    unknown = run(app, "letters", "export", "no-such-letter")
    assert unknown.exit_code == 1
    assert "There is no letter with the slug 'no-such-letter'" in unknown.output
    assert run(app, "letters", "recount", "no-such").exit_code == 2  # 1 means "repaired"


def test_bad_slug_is_explained(app, tmp_path):
    body = tmp_path / "b.md"
    body.write_text("Hello")
    result = run(app, "letters", "create", "--title", "T", "--recipient-name", "R",
                 "--body-file", str(body), "--slug", "Bad Slug")  # fmt: skip
    assert result.exit_code == 2
    assert "Invalid value for --slug: " in result.output
    assert "lower-case letters, digits and single hyphens" in result.output


def test_a_refused_detail_names_its_option(app, tmp_path):
    body = tmp_path / "b.md"
    body.write_text("Hello")
    letter = ["letters", "create", "--title", "T", "--recipient-name", "R"]
    long_role = run(app, *letter, "--body-file", str(body), "--recipient-role", "r" * 201)
    assert long_role.exit_code == 2
    assert "Invalid value for --recipient-role: Keep this to 200 characters." in long_role.output
    tab = run(app, "letters", "create", "--title", "T", "--recipient-name", "a\tb",
              "--body-file", str(body))  # fmt: skip
    assert "Invalid value for --recipient-name: " in tab.output and "U+0009" in tab.output
    piped = run(app, *letter, "--body-file", "-", input=b"\xff\xfe not UTF-8")
    assert piped.exit_code == 2
    assert "Invalid value for --body-file: the file is not UTF-8 text" in piped.output


def test_mail_commands_report_and_retry(app, client, make_letter, mailbox):
    letter = make_letter()
    client.post(f"/letters/{letter.slug}/sign", data={"name": "J", "email": "j@example.org"})
    assert "queued: 1" in run(app, "mail", "status").output
    sent = run(app, "mail", "send-pending")
    assert (sent.exit_code, sent.output.strip()) == (0, "sent 1, will retry 0, parked 0")
    assert len(mailbox.messages) == 1
    assert "sent: 1" in run(app, "mail", "status").output
    app.config["SMTP_PORT"] = free_port()  # the mail server is down
    client.post(f"/letters/{letter.slug}/sign", data={"name": "K", "email": "k@example.org"})
    failed = run(app, "mail", "send-pending")
    assert failed.exit_code == 1  # for cron, or whoever runs it, to notice
    assert failed.output.startswith("sent 0, will retry 1, parked 0")
    assert "cannot connect" in failed.output
    # Anything that stops delivery before a message is tried (the database gone, say; here a
    # setting broken behind the app's back) is a failure too, not "sent 0".
    app.config["MAIL_LEASE_SECONDS"] = "broken"
    stopped = run(app, "mail", "send-pending")
    assert stopped.exit_code == 1
    assert "error: delivery stopped: TypeError" in stopped.output


def test_the_console_script_runs_migrations_and_refuses_a_missing_secret(tmp_path):
    file = tmp_path / "data" / "db.sqlite3"  # its folder too is made by db upgrade alone
    env = {"PATH": "", "PETITION_DATABASE_URL": f"sqlite:///{file}"}
    script = [sys.executable, "-m", "petition.cli"]

    def petition(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*script, *args], env=env, capture_output=True, text=True)

    refused = petition("db", "upgrade")
    assert refused.returncode == 2
    assert "PETITION_SECRET_KEY is not set" in refused.stderr
    assert "Traceback" not in refused.stderr
    helped = petition("--help")
    assert helped.returncode == 0
    assert "letters" in helped.stdout and helped.stderr == ""
    version = importlib.metadata.version("petition")
    assert petition("--version").stdout == f"petition {version}\n"
    env["PETITION_SECRET_KEY"] = "short"
    assert "too short" in petition("db", "upgrade").stderr
    env["PETITION_SECRET_KEY"] = "s" * 40
    no_file = petition("letters", "list")  # a mistyped path, say: nothing is left behind
    assert no_file.returncode == 1
    assert f"There is no database at {file}." in no_file.stderr
    assert "create it with: petition db upgrade" in no_file.stderr
    assert "Traceback" not in no_file.stderr
    assert petition("db", "current").returncode == 1
    recount = petition("letters", "recount")  # could not run: 2, never 1 ("repaired")
    assert (recount.returncode, "There is no database at" in recount.stderr) == (2, True)
    assert not file.parent.exists()
    file.parent.mkdir()
    file.touch()
    no_tables = petition("letters", "list")
    assert no_tables.returncode == 1
    assert f"The database sqlite:///{file} has no tables yet" in no_tables.stderr
    assert "run: petition db upgrade" in no_tables.stderr
    assert "Traceback" not in no_tables.stderr
    file.write_text("Dear diary,\n" * 100)
    not_a_database = petition("letters", "list")
    assert not_a_database.returncode == 1
    assert (
        f"The database sqlite:///{file} cannot be used: the file is not a SQLite database."
        in not_a_database.stderr
    )
    assert "Traceback" not in not_a_database.stderr
    file.unlink()
    upgraded = petition("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.startswith(f"Upgraded the database sqlite:///{file} from empty to ")
    assert f"The database sqlite:///{file} is already at " in petition("db", "upgrade").stdout
    assert "Migration failed" in petition("db", "upgrade", "nonsense").stderr
    assert petition("db", "downgrade", "-1").returncode == 0  # as its help offers
    assert petition("db", "upgrade").returncode == 0
    with sqlite3.connect(file) as connection:  # as if made before a column was added
        connection.execute("ALTER TABLE letter DROP COLUMN news_sent_at")
    behind = petition("letters", "list")
    assert behind.returncode == 1
    assert "was made by an older version of petition" in behind.stderr
    assert behind.stderr.rstrip().endswith("Bring it up to date with: petition db upgrade")
    with sqlite3.connect(file) as connection:
        connection.execute("ALTER TABLE letter ADD COLUMN news_sent_at DATETIME")
    assert "No letters yet" in petition("letters", "list").stdout
    (tmp_path / "body.md").write_text("Dear Alex,\n\nPlease stand.\n", encoding="utf-8")
    body = str(tmp_path / "body.md")
    created = petition("letters", "create", "--title", "Zoë's letter", "--recipient-name", "Alex",
                       "--body-file", body, "--slug", "zoe", "--publish")  # fmt: skip
    assert created.returncode == 0, created.stderr
    env["PYTHONIOENCODING"] = "cp1252"  # a Windows console: the CSV is still UTF-8
    for to_stdout in (["letters", "export", "zoe"], ["letters", "export", "zoe", "-o", "-"]):
        exported = subprocess.run([*script, *to_stdout], env=env, capture_output=True)
        assert exported.returncode == 0, exported.stderr
        assert exported.stdout == "\ufeffName,Email,Confirmed (UTC)\r\n".encode()
    assert not (tmp_path / "-").exists()
    env["PETITION_DATABASE_URL"] = "postgresql+psycopg://nobody:secret@127.0.0.1:1/none"
    unreachable = petition("letters", "list")
    assert unreachable.returncode == 1
    assert "Cannot use the database" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr and "secret" not in unreachable.stderr


def test_the_console_script_reads_settings_from_the_file_e_names(tmp_path):
    settings = tmp_path / "petition.env"
    settings.write_text(
        "# as in deploy/petition.env.example\n"
        f"PETITION_SECRET_KEY={'s' * 40}\n"
        f"PETITION_DATABASE_URL=sqlite:///{tmp_path / 'db.sqlite3'}\n"
        'PETITION_MAIL_FROM="Open letters <letters@example.org>"\n'
    )
    (tmp_path / ".env").write_text("PETITION_SECRET_KEY=short\n")  # never read by itself
    env = {"PATH": ""}

    def petition(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "petition.cli", *args]
        return subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True)

    upgraded = petition("-e", str(settings), "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert "No letters yet" in petition("-e", str(settings), "letters", "list").stdout
    assert "PETITION_SECRET_KEY is not set" in petition("letters", "list").stderr
    missing = petition("-e", str(tmp_path / "nowhere.env"), "letters", "list")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    (tmp_path / "latin1.env").write_bytes(b"PETITION_MAIL_FROM=Ren\xe9 <r@example.org>\n")
    undecodable = petition("-e", str(tmp_path / "latin1.env"), "letters", "list")
    assert undecodable.returncode == 2
    assert "latin1.env is not UTF-8 text." in undecodable.stderr
    assert "Traceback" not in undecodable.stderr
    # The help names our options only: Flask's --app and --debug mean nothing here.
    shown = petition("--help").stdout
    assert "Read PETITION_* settings from this file" in shown
    assert "--app" not in shown and "--debug" not in shown and ".flaskenv" not in shown


def test_the_worker_says_when_it_starts_and_when_a_sigterm_has_stopped_it(tmp_path):
    env = {
        "PATH": "",
        "PETITION_SECRET_KEY": "s" * 40,
        "PETITION_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    command = [sys.executable, "-m", "petition.cli"]
    subprocess.run([*command, "db", "upgrade"], env=env, check=True, capture_output=True)
    worker = subprocess.Popen(
        [*command, "mail", "worker", "--interval", "0.1"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stderr is not None
        assert worker.stderr.readline().startswith("Worker running (mail backend: console)")
        worker.send_signal(signal.SIGTERM)
        _out, rest = worker.communicate(timeout=20)
    finally:
        worker.kill()
    assert worker.returncode == 0
    assert rest.strip().endswith("Worker stopped.")


def test_publish_and_close_from_the_command_line(app, make_letter, tmp_path):
    draft = make_letter(status="draft", slug="later-on")
    assert run(app, "letters", "publish", draft.slug).output.strip() == (
        "http://localhost/letters/later-on"
    )
    again = run(app, "letters", "publish", draft.slug)
    assert again.exit_code == 1
    assert "This letter is already published and open for signatures." in again.output
    assert run(app, "letters", "close", draft.slug).output.strip() == "Closed later-on."
    assert "already closed" in run(app, "letters", "close", draft.slug).output
    assert "cannot be reopened" in run(app, "letters", "publish", draft.slug).output
    unpublished = make_letter(status="draft", slug="not-yet")
    assert "publish it before" in run(app, "letters", "close", unpublished.slug).output
    assert run(app, "letters", "close", "nope").exit_code == 1
    failed = run(app, "letters", "export", draft.slug, "-o", str(tmp_path / "no" / "x.csv"))
    assert failed.exit_code == 1
    assert "Cannot write" in failed.output and "No such file or directory" in failed.output


def test_db_backup_copies_a_sqlite_database_while_it_is_written(
    app, client, mailbox, make_letter, tmp_path
):
    url = app.config["DATABASE_URL"]
    if not url.startswith("sqlite"):
        pytest.skip("SQLite test: PostgreSQL is backed up with pg_dump")
    letter = make_letter()
    for number in range(3):
        sign_and_confirm(client, mailbox, letter, email=f"s{number}@example.org")
    stop = threading.Event()

    def write_all_the_time() -> None:
        with app.app_context():
            while not stop.is_set():
                with transaction() as session:
                    session.execute(update(Letter).values(title=Letter.title))

    writer = threading.Thread(target=write_all_the_time)
    writer.start()
    try:
        made = run(app, "db", "backup", str(tmp_path / "copy.sqlite3"))
    finally:
        stop.set()
        writer.join(10)
    assert made.exit_code == 0, made.output
    assert "Backed up 3 signatures to" in made.output and "checked" in made.output
    copy = tmp_path / "copy.sqlite3"
    assert copy.stat().st_mode & 0o777 == 0o600
    with sqlite3.connect(copy) as database:
        assert database.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert database.execute("SELECT count(*) FROM signature").fetchone()[0] == 3

    again = run(app, "db", "backup", str(copy))
    assert again.exit_code == 1
    assert "already exists: name a new file" in again.output
    nowhere = run(app, "db", "backup", str(tmp_path / "no" / "such" / "copy.sqlite3"))
    assert nowhere.exit_code == 1
    assert "There is no folder" in nowhere.output
    assert not list(tmp_path.glob("*.partial"))
    (tmp_path / "other.sqlite3.partial").write_bytes(b"")  # a backup killed half-way
    leftover = run(app, "db", "backup", str(tmp_path / "other.sqlite3"))
    assert leftover.exit_code == 1
    assert "stopped half-way. Delete it if no backup is running" in leftover.output
    assert (tmp_path / "other.sqlite3.partial").exists()  # not ours to delete


def test_db_backup_sends_postgresql_to_pg_dump(app, tmp_path):
    app.config["DATABASE_URL"] = "postgresql+psycopg://petition@127.0.0.1:5432/petition"
    refused = run(app, "db", "backup", str(tmp_path / "copy"))
    assert refused.exit_code == 1
    assert "Back up PostgreSQL with pg_dump" in refused.output
    assert not (tmp_path / "copy").exists()
