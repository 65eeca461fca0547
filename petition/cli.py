"""The `petition` command: thin wrappers over the services, for operators and scripts."""

from __future__ import annotations

import io
import signal
import sys
import threading
from collections.abc import Callable
from datetime import date
from pathlib import Path

import click
from flask import current_app
from flask.cli import FlaskGroup, NoAppException, ScriptInfo
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError
from sqlalchemy.orm import Session

from petition import backup, create_app, links, logs, migrate, text
from petition.config import ConfigError
from petition.dates import NoSuchDay, NotADay, end_of_day, parse_day
from petition.db import (
    MissingDatabaseFile,
    NotADatabaseFile,
    missing_table,
    schema_behind,
    transaction,
    what_to_do,
)
from petition.errors import DomainError
from petition.models import Organiser
from petition.services import counts, exports, letters, mail, organisers
from petition.services.letters import GOAL_MAX
from petition.worker import run_worker


def _refusing_undecodable(read: Callable) -> Callable:
    """Flask's reading of the -e file, with a file that is not UTF-8 text refused in a sentence."""

    def read_settings(ctx: click.Context, param: click.Parameter, value: str | None):
        try:
            return read(ctx, param, value)
        except UnicodeDecodeError:
            raise click.BadParameter(f"{value} is not UTF-8 text.") from None

    return read_settings


def _create_app():
    try:
        return create_app()
    except ConfigError as error:
        raise NoAppException(str(error)) from None


class PetitionGroup(FlaskGroup):
    """Flask's CLI group, answering errors in a sentence rather than a traceback."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Flask's --app and --debug mean nothing here (the app is always petition's), and its
        # --env-file help speaks of .env files, which are never read (load_dotenv=False).
        for param in self.params:
            if param.name in ("app", "debug"):
                param.hidden = True  # type: ignore[attr-defined]
            elif param.name == "env_file":
                param.help = (  # type: ignore[attr-defined]
                    "Read PETITION_* settings from this file (KEY=value lines); "
                    "settings already in the environment win."
                )
                param.callback = _refusing_undecodable(param.callback)

    def list_commands(self, ctx: click.Context) -> list[str]:
        # Only our own commands: listing them (and --help) needs no configuration.
        return click.Group.list_commands(self, ctx)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return click.Group.get_command(self, ctx, name)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DomainError as error:
            raise click.ClickException(error.text) from None
        except (OperationalError, ProgrammingError) as error:
            raise click.ClickException(_database_problem(error)) from None
        except migrate.MigrationFailed as error:
            raise click.ClickException(f"Migration failed: {error}") from None


def _database_problem(error: DBAPIError) -> str:
    detail = str(error.orig).strip().splitlines()[0] if error.orig else type(error).__name__
    if isinstance(error.orig, MissingDatabaseFile):
        return (
            f"There is no database at {error.orig.file}. If that is where it should be, "
            "create it with: "
            "petition db upgrade; if not, set PETITION_DATABASE_URL to the one you meant."
        )
    if isinstance(error.orig, NotADatabaseFile):
        return (
            f"The database {_database_shown()}cannot be used: {detail}. "
            "Set PETITION_DATABASE_URL to the petition database."
        )
    if schema_behind(detail):
        return (
            f"The database {_database_shown()}was made by an older version of petition "
            f"({detail}). Bring it up to date with: petition db upgrade"
        )
    if missing_table(detail):
        return (
            f"The database {_database_shown()}has no tables yet ({detail}). "
            "If it is the one you meant, run: petition db upgrade; "
            "if not, set PETITION_DATABASE_URL."
        )
    if advice := what_to_do(detail):
        return f"Cannot use the database: {detail}. {advice[0].upper()}{advice[1:]}."
    # The URL itself is not repeated: it may hold a password.
    return (
        f"Cannot use the database: {detail}. "
        "Check PETITION_DATABASE_URL and that the database server is running."
    )


def _database_shown() -> str:
    """The database the command used, password hidden, and a space; '' if it is not known."""
    info = click.get_current_context().find_object(ScriptInfo)
    try:
        url = info.load_app().config["DATABASE_URL"] if info is not None else None
    except Exception:  # the app did not load: the error being reported matters more
        url = None
    return _without_secrets(url) + " " if url else ""


def _without_secrets(url: str) -> str:
    """A database URL to print: its password hidden, and no query (which may hold one)."""
    return make_url(url).set(query={}).render_as_string(hide_password=True)


# load_dotenv=False: settings come from the environment or the file -e names, never from a
# .env file that happens to lie in the working directory.
@click.group(
    cls=PetitionGroup,
    create_app=_create_app,
    add_default_commands=False,
    add_version_option=False,  # Flask's would print Flask's version, not ours
    load_dotenv=False,
)
@click.version_option(package_name="petition", message="%(prog)s %(version)s")
def cli() -> None:
    """Open letters: run the site, manage letters, organisers and mail.

    Every command except `demo` reads its settings from PETITION_* environment variables
    (PETITION_SECRET_KEY and PETITION_DATABASE_URL at least; see docs/operators.md), or
    from the file `-e` names, e.g. `petition -e /etc/petition/petition.env db upgrade`.
    """


class Day(click.ParamType):
    """A day written YYYY-MM-DD, refused in a sentence that says what is wrong with it."""

    name = "YYYY-MM-DD"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None):
        if isinstance(value, date):
            return value
        try:
            return parse_day(str(value))
        except NoSuchDay:
            self.fail(f"there is no day {value} in the calendar: check the month and the day.")
        except NotADay:
            self.fail(f"write the day as YYYY-MM-DD, e.g. 2027-03-31, not {value!r}.")


class Goal(click.ParamType):
    """A whole number of signatures, with the same words as the organisers' form."""

    name = "NUMBER"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None):
        goal = text.whole_number(str(value), 1, GOAL_MAX)
        if goal is None:
            self.fail(f"give a whole number from 1 to {GOAL_MAX:,}, not {str(value).strip()!r}.")
        return goal


DAY, GOAL = Day(), Goal()


def main() -> None:
    cli.main(prog_name="petition")


def _fail(error: DomainError) -> click.ClickException:
    return click.ClickException(error.text)


def _naming_the_option(error: DomainError) -> click.ClickException:
    """A refusal of the letter's details, naming the option it is about (the form's field)."""
    if error.field is None:
        return _fail(error)
    option = "--body-file" if error.field == "body" else f"--{error.field.replace('_', '-')}"
    return click.BadParameter(error.text, param_hint=option)


# -- database ------------------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """Apply and inspect database migrations."""


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Migrate the database up to REVISION (default: the newest)."""
    url = current_app.config["DATABASE_URL"]
    before = migrate.current_revision(url)
    migrate.upgrade(url, revision)
    after = migrate.current_revision(url)
    # Named, so that a restore is checked on the database it meant to check.
    shown = _without_secrets(url)
    if before == after:
        click.echo(f"The database {shown} is already at {after}: nothing to do.")
    else:
        click.echo(f"Upgraded the database {shown} from {before or 'empty'} to {after}.")


@db.command("backup")
@click.argument("destination", type=click.Path(dir_okay=False, path_type=Path))
def db_backup(destination: Path) -> None:
    """Copy a SQLite database, while the site runs, to DESTINATION (a new file).

    A copy of the file itself taken while the site writes is corrupt. For PostgreSQL use
    pg_dump (docs/operators.md)."""
    try:
        made = backup.back_up_sqlite(current_app.config["DATABASE_URL"], destination)
    except backup.BackupRefused as refused:
        raise click.ClickException(str(refused)) from None
    noun = "signature" if made.signatures == 1 else "signatures"
    click.echo(
        f"Backed up {made.signatures:,} {noun} to {made.path} "
        f"({made.size / 1_000_000:.1f} MB, checked)."
    )


# ignore_unknown_options: "-1", as the help offers, is the revision, not an option.
@db.command("downgrade", context_settings={"ignore_unknown_options": True})
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Migrate the database down to REVISION: an id, -1 for one step, or base."""
    migrate.downgrade(current_app.config["DATABASE_URL"], revision)


@db.command("current")
def db_current() -> None:
    """Show the revision the database is at."""
    migrate.current(current_app.config["DATABASE_URL"])


@db.command("revision")
@click.option("-m", "--message", required=True, help="What the migration does.")
@click.option("--autogenerate/--empty", default=True, help="Compare the models with the database.")
def db_revision(message: str, autogenerate: bool) -> None:
    """Write a new migration file (developers)."""
    migrate.revision(current_app.config["DATABASE_URL"], message, autogenerate)


# -- organisers ----------------------------------------------------------------------------------


@cli.group("organisers")
def organisers_cli() -> None:
    """Manage organiser accounts."""


@organisers_cli.command("create")
@click.argument("email")
@click.option("--name", default="", help="How the organiser is addressed.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def organisers_create(email: str, name: str, password_stdin: bool) -> None:
    """Create an organiser account for EMAIL; the password is never taken on the command line."""
    password = _read_password(password_stdin)
    try:
        with transaction() as session:
            organiser = organisers.create(session, email, password, name)
    except DomainError as error:
        raise _fail(error) from None
    click.echo(f"Created organiser {organiser.email}. Log in at {links.login()}")


@organisers_cli.command("set-password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def organisers_set_password(email: str, password_stdin: bool) -> None:
    """Set a new password for an existing organiser."""
    password = _read_password(password_stdin)
    try:
        with transaction() as session:
            organiser = _existing_organiser(session, email)
            organisers.set_password(session, organiser, password)
    except DomainError as error:
        raise _fail(error) from None
    click.echo(f"Password changed for {organiser.email}; they are logged out everywhere.")


@organisers_cli.command("disable")
@click.argument("email")
def organisers_disable(email: str) -> None:
    """End EMAIL's sessions and refuse their logins (their letters stay as they are)."""
    shown = email.strip().lower()
    if _set_active(email, False):
        click.echo(f"Disabled {shown}: logged out everywhere, and cannot log in.")
    else:
        click.echo(f"{shown} was already disabled; nothing changed.")


@organisers_cli.command("enable")
@click.argument("email")
def organisers_enable(email: str) -> None:
    """Let a disabled organiser log in again."""
    shown = email.strip().lower()
    if _set_active(email, True):
        click.echo(f"Enabled {shown}: they can log in again.")
    else:
        click.echo(f"{shown} was not disabled; nothing changed.")


def _set_active(email: str, active: bool) -> bool:
    """Whether the account changed (False: it already was so)."""
    with transaction() as session:
        return organisers.set_active(session, _existing_organiser(session, email), active)


def _existing_organiser(session: Session, email: str) -> Organiser:
    organiser = organisers.find(session, email)
    if organiser is None:
        raise click.ClickException(f"No organiser has the email {email.strip()!r}.")
    return organiser


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.ClickException("No password on standard input.")
        return password
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


# -- letters -------------------------------------------------------------------------------------


@cli.group("letters")
def letters_cli() -> None:
    """Create, list, export and recount letters."""


@letters_cli.command("create")
@click.option("--title", required=True)
@click.option("--recipient-name", required=True)
@click.option("--recipient-role", default="")
@click.option("--recipient-email", default=None)
@click.option(
    "--body-file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path),
    help="The letter in Markdown ('-' for standard input).",
)
@click.option("--slug", default=None, help="The web address; made from the title if left out.")
@click.option("--goal", type=GOAL, default=None, help=f"Signatures hoped for, 1 to {GOAL_MAX:,}.")
@click.option(
    "--closes-on",
    type=DAY,
    default=None,
    help="The last day to sign, YYYY-MM-DD (it closes at the end of that day, UK time).",
)
@click.option("--ask-postcode", is_flag=True, help="Ask signers for their postcode.")
@click.option("--ask-organisation", is_flag=True, help="Ask for an organisation or role.")
@click.option("--ask-comment", is_flag=True, help="Let signers add a comment.")
@click.option("--organiser", "organiser_email", default=None, help="Owner's email.")
@click.option("--publish", is_flag=True, help="Open it for signatures now.")
def letters_create(
    title: str,
    recipient_name: str,
    recipient_role: str,
    recipient_email: str | None,
    body_file,
    slug: str | None,
    goal: int | None,
    closes_on: date | None,
    ask_postcode: bool,
    ask_organisation: bool,
    ask_comment: bool,
    organiser_email: str | None,
    publish: bool,
) -> None:
    """Create a letter and print its URL."""
    try:
        raw = sys.stdin.buffer.read() if str(body_file) == "-" else body_file.read_bytes()
        body = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise click.BadParameter("the file is not UTF-8 text", param_hint="--body-file") from None
    if not body.strip():
        raise click.BadParameter("the file is empty", param_hint="--body-file")
    try:
        with transaction() as session:
            owner = None
            if organiser_email:
                owner = organisers.find(session, organiser_email)
                if owner is None:
                    raise click.BadParameter(
                        f"no organiser has the email {organiser_email}", param_hint="--organiser"
                    )
            data = letters.LetterInput(
                title=title.strip(),
                recipient_name=recipient_name.strip(),
                recipient_role=recipient_role.strip(),
                recipient_email=recipient_email,
                body_markdown=body,
                slug=slug,
                goal=goal,
                closes_at=end_of_day(closes_on) if closes_on else None,
                ask_postcode=ask_postcode,
                ask_organisation=ask_organisation,
                ask_comment=ask_comment,
            )
            letter = letters.create(session, data, owner, publish=publish)
    except DomainError as error:
        raise _naming_the_option(error) from None
    click.echo(links.letter(letter.slug))
    if not publish:
        click.echo(
            f"Saved as a draft; publish it with: petition letters publish {letter.slug}", err=True
        )


@letters_cli.command("publish")
@click.argument("slug")
def letters_publish(slug: str) -> None:
    """Open the draft SLUG for signatures and print its URL."""
    with transaction() as session:
        letters.publish(session, letters.get_by_slug(session, slug))
    click.echo(links.letter(slug))


@letters_cli.command("close")
@click.argument("slug")
def letters_close(slug: str) -> None:
    """Stop collecting signatures for SLUG (it stays online with its final count)."""
    with transaction() as session:
        letters.close(session, letters.get_by_slug(session, slug))
    click.echo(f"Closed {slug}.")


@letters_cli.command("list")
def letters_list() -> None:
    """Show every letter's slug, status and count."""
    with transaction() as session:
        rows = [
            (letter.slug, letter.status.value, counts.current(session, letter.id))
            for letter in letters.list_all(session)
        ]
    if not rows:
        click.echo("No letters yet. Create one with: petition letters create --help")
        return
    width = max(len(slug) for slug, _status, _count in rows)
    click.echo(f"{'SLUG':<{width}}  {'STATUS':<6}  SIGNATURES")
    for slug, status, count in rows:
        click.echo(f"{slug:<{width}}  {status:<6}  {count}")


@letters_cli.command("recount")
@click.argument("slug", required=False)
def letters_recount(slug: str | None) -> None:
    """Recompute counts from the verified signatures and repair any difference."""
    try:
        with transaction() as session:
            if slug is not None:
                letters.get_by_slug(session, slug)
            results = counts.recount(session, slug)
    except DomainError as error:
        raise _could_not_run(_fail(error)) from None
    except (OperationalError, ProgrammingError) as error:
        raise _could_not_run(click.ClickException(_database_problem(error))) from None
    for result in results:
        if result.difference:
            click.echo(
                f"{result.slug}: stored {result.stored}, actual {result.actual} "
                f"(repaired, {result.difference:+d})"
            )
        else:
            click.echo(f"{result.slug}: {result.actual} (correct)")
    if any(result.difference for result in results):
        # Drift means a bug or a manual edit somewhere: let cron and monitoring notice.
        click.get_current_context().exit(1)


def _could_not_run(failure: click.ClickException) -> click.ClickException:
    # 1 means "repaired": a typo or a database that is down must not look like drift to cron.
    failure.exit_code = 2
    return failure


@letters_cli.command("export")
@click.argument("slug")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None)
def letters_export(slug: str, output: Path | None) -> None:
    """Write the verified signatories of SLUG as CSV (to standard output by default, or -o -)."""
    from petition.db import engine, get_session

    try:
        letter = letters.get_by_slug(get_session(), slug)
    except DomainError as error:
        raise _fail(error) from None
    if output is None or str(output) == "-":
        # UTF-8 and the CSV's own CRLFs whatever the terminal's encoding and platform.
        stdout = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="")
        try:
            exports.write_csv(engine(), letter, stdout)
        finally:
            stdout.flush()
            stdout.detach()
        return
    partial = output.with_name(output.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as handle:
            rows = exports.write_csv(engine(), letter, handle)
        partial.replace(output)
    except OSError as error:
        raise click.ClickException(f"Cannot write {output}: {error.strerror}.") from None
    noun = "signatory" if rows == 1 else "signatories"
    click.echo(f"Wrote {rows:,} {noun} to {output}", err=True)


# -- mail ----------------------------------------------------------------------------------------


@cli.group("mail")
def mail_cli() -> None:
    """Deliver queued mail and look after the outbox."""


@mail_cli.command("worker")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=2.0,
    show_default=True,
    help="Seconds between passes when the site is quiet, and the most a pass sends mail; "
    "while confirmations keep coming, counts are folded every 0.5 s regardless.",
)
def mail_worker(interval: float) -> None:
    """Run the background worker: deliver mail, fold counts, purge expired signatures."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    config = current_app.config
    backend = config["MAIL_BACKEND"]
    if backend == "smtp":
        backend += f" via {config['SMTP_HOST']}:{config['SMTP_PORT']}"
    logs.to_stderr()
    click.echo(f"Worker running (mail backend: {backend}).", err=True)
    run_worker(current_app._get_current_object(), stop, interval=interval)
    click.echo("Worker stopped.", err=True)


@mail_cli.command("send-pending")
def mail_send_pending() -> None:
    """Deliver every message that is due now, once, and report; exit 1 if any send failed."""
    report = run_worker(current_app._get_current_object(), threading.Event(), once=True)
    click.echo(f"sent {report.sent}, will retry {report.retrying}, parked {report.parked}")
    for error in sorted(set(report.errors)):
        click.echo(f"  error: {error}", err=True)
    if report.errors or report.retrying or report.parked:  # for cron, or whoever runs it
        click.get_current_context().exit(1)


@mail_cli.command("status")
def mail_status() -> None:
    """Count messages by state, say why queued ones are failing, and list the parked ones."""
    with transaction() as session:
        totals = mail.status(session)
        work = mail.work_in_hand(session)
        failing = mail.retrying(session)
        parked = [(m.id, m.kind, m.attempts, m.last_error) for m in mail.failed(session)]
    click.echo("  ".join(f"{_MAIL_STATE_WORDS[state]}: {count}" for state, count in totals.items()))
    if any(work.values()):
        click.echo(
            "the worker has yet to: "
            + ", ".join(f"{_WORK_WORDS[kind]} ({count})" for kind, count in work.items() if count)
        )
    if failing.count:
        next_try = f"{failing.next_attempt_at:%Y-%m-%d %H:%M:%S} UTC"
        click.echo(f"retrying: {failing.count} queued failed at least once; next try {next_try}")
        for error, count in failing.errors:
            click.echo(f"  {count} × {error}")
    for message_id, kind, attempts, error in parked:
        click.echo(f"parked #{message_id} {kind} after {attempts} attempts: {error}")


# The words operators read everywhere else (docs, `mail send`), for the outbox's states.
_MAIL_STATE_WORDS = {"pending": "queued", "sent": "sent", "failed": "parked"}
_WORK_WORDS = {
    mail.NEWS_FANOUT: "queue news for its signers",
    mail.REPEAT_SIGNING: "apply repeat signings",
}


@mail_cli.command("retry-failed")
def mail_retry_failed() -> None:
    """Queue parked messages again once the cause is fixed."""
    with transaction() as session:
        count = mail.retry_failed(session)
    click.echo(f"{count} message(s) queued again.")


# -- demo ----------------------------------------------------------------------------------------


@cli.command("demo", with_appcontext=False)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
@click.option(
    "--database",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The demo's SQLite file (default: demo.sqlite3 in the instance folder).",
)
def demo_command(host: str, port: int, database: Path | None) -> None:
    """Run the whole site on this machine with a demo letter and organiser.

    Other commands reach the demo's data with PETITION_ENV=development,
    PETITION_DATABASE_URL=sqlite:///<the file it prints> and
    PETITION_BASE_URL=http://127.0.0.1:<its port> (so that the links they print point at it).
    """
    from petition.demo import run

    run(host, port, database)


if __name__ == "__main__":
    main()
