"""Database wiring: the declarative Base, the engine, and one session per request."""

from __future__ import annotations

import fcntl
import os
import re
import sqlite3
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask, current_app, g, has_request_context, request
from sqlalchemy import DateTime, Engine, MetaData, create_engine, event, exc, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware, SQLite included."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


class NotADatabaseFile(sqlite3.OperationalError):
    """A SQLite path where the file is something else: said as such, not as a crash."""

    def __init__(self) -> None:
        super().__init__("the file is not a SQLite database")


class MissingDatabaseFile(sqlite3.OperationalError):
    """A SQLite path where there is no file: refused rather than made new and empty."""

    def __init__(self, file: Path) -> None:
        super().__init__(f"no database file at {file}")
        self.file = file


def missing_table(message: str) -> bool:
    """Whether a database's error says that a table the code uses is missing, as SQLite and
    PostgreSQL say it: no migrations have run there."""
    return "no such table" in message or ('relation "' in message and "does not exist" in message)


def schema_behind(message: str) -> bool:
    """Whether a database's error says that a column the code uses is missing: the database
    was made by an older version, and its migrations have not been run."""
    return "no such column" in message or ("column" in message and "does not exist" in message)


# A statement psycopg prepared on a server connection that a pooler in transaction mode has since
# given to another client, or one another client prepared under the same name.
_LOST_STATEMENT = re.compile(
    r'prepared statement "[^"]*" (does not exist|already exists)'
    r"|bind message supplies \d+ parameters, but prepared statement"
)


def what_to_do(message: str) -> str | None:
    """What an operator should do about a database error whose first line is `message`, where
    its words alone would mislead (a pooler, a lock held elsewhere); None for any other."""
    if _LOST_STATEMENT.search(message):
        return (
            "behind PgBouncer older than 1.21 in transaction mode, set "
            "PETITION_DATABASE_PREPARED_STATEMENTS=false; with 1.21 or newer, set PgBouncer's "
            "max_prepared_statements instead"
        )
    if "canceling statement due to lock timeout" in message:
        return (
            "another session held a lock for longer than the app waits (5 s): a migration, a "
            "maintenance command or a long transaction; it succeeds once that has ended"
        )
    return None


def first_line(error: BaseException) -> str:
    """The first line of what the driver said for an error raised through SQLAlchemy: the
    database's words, which name no values (they come after it); "" for any other error."""
    cause = getattr(error, "orig", None)
    return (str(cause).strip().splitlines() or [""])[0] if cause is not None else ""


def what_to_do_about(error: BaseException) -> str:
    """what_to_do() for an error raised through SQLAlchemy, as " (...)" to end a log line with;
    "" for an error it has nothing to say about."""
    advice = what_to_do(first_line(error))
    return f" ({advice})" if advice else ""


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names (sqlite:///relative/path, sqlite:////absolute/path);
    None for other databases, in-memory ones and file: URIs."""
    if not url.startswith("sqlite"):
        return None
    path = make_url(url).database or ""
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    return Path(path)


def make_engine(
    url: str,
    echo: bool = False,
    *,
    pool_size: int = 5,
    prepared_statements: bool = True,
    create: bool = False,
) -> Engine:
    """An engine tuned for this app: SQLite in WAL mode, PostgreSQL pinged after idling.

    A SQLite file is made (with its folder) only with create=True, as migrations do; otherwise
    a file that is not there is an error, so that a mistyped path leaves nothing behind.
    prepared_statements=False stops psycopg preparing repeated queries, which a connection
    pooler in transaction mode (PgBouncer before 1.21) cannot follow.
    """
    if url.startswith("sqlite"):
        file = sqlite_file(url)
        connect_args: dict[str, Any] = {"timeout": 15}
        if file is not None:
            connect_args["factory"] = QueuedSQLiteConnection
        engine = create_engine(url, echo=echo, hide_parameters=True, connect_args=connect_args)
        if file is not None and create:
            file.parent.mkdir(parents=True, exist_ok=True)
        elif file is not None:
            event.listen(engine, "do_connect", _require_file(file))
        event.listen(engine, "connect", sqlite_pragmas)
        event.listen(engine, "begin", _queued_begin if file is not None else _sqlite_begin)
        return engine
    engine = create_engine(
        url,
        echo=echo,
        # An error's text (logged, or kept as a parked message's error) would otherwise quote
        # the values being written: addresses, names, comments.
        hide_parameters=True,
        pool_size=pool_size,
        max_overflow=pool_size * 2,
        pool_recycle=1800,
        # The connection used last goes out first: a worker's requests keep to one warm server
        # process, and a second is used only when a request needs two at once (FIFO handed
        # them round in turn, twice the server processes busy for the same work).
        pool_use_lifo=True,
        connect_args={
            # What the URL's query sets (a remote database's own connect_timeout, say) wins.
            **{k: v for k, v in POSTGRESQL_CONNECTION.items() if k not in make_url(url).query},
            **({} if prepared_statements else {"prepare_threshold": None}),
        },
    )
    PingWhenIdle(engine).listen()
    event.listen(engine, "connect", _wait_for_locks_briefly)
    return engine


# A server that does not answer is given up on in seconds, not after TCP's minutes (connecting)
# or hours (a connection whose server vanished without closing it, in the mail worker).
POSTGRESQL_CONNECTION = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}
# How long a statement waits for a lock another session holds before it fails, and the visitor
# gets the "try again in a minute" page. Without a limit, one long lock on `signature` (a
# migration's ALTER TABLE queued behind a long read, an operator's LOCK TABLE) held every
# request until gunicorn killed its worker at 30 s, for every page that reads the table.
LOCK_TIMEOUT = "5s"


def _wait_for_locks_briefly(dbapi_connection: Any, _record: Any) -> None:
    # Set with SET rather than a startup option: PgBouncer refuses startup options it does not
    # know. Behind PgBouncer in transaction mode, also set it on the role (docs/operators.md).
    # A lock_timeout already set (on the role, the database, or the URL's options) is kept.
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    with dbapi_connection.cursor() as cursor:
        if cursor.execute("SHOW lock_timeout").fetchone()[0] == "0":
            cursor.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
    dbapi_connection.autocommit = autocommit


def _require_file(file: Path) -> Any:
    """A "do_connect" listener refusing to connect where SQLite would make a new, empty file."""

    def check(*_args: Any) -> None:
        if not file.exists():
            raise MissingDatabaseFile(file.resolve())

    return check


class PingWhenIdle:
    """Check a pooled connection with a round trip before use, if it has been idle a while.

    SQLAlchemy's pool_pre_ping checks before every use: a tenth of the time of a signature on
    PostgreSQL, to learn what the connection in use a millisecond ago already showed. A
    connection back from the pool within IDLE_SECONDS is used as it is; one that sat longer
    (after a quiet night, a database restart, a failover) is pinged, and replaced if the server
    has gone. If the server goes away while connections are busy, the statement that meets the
    broken connection fails (the visitor gets the 503 page) and SQLAlchemy discards every
    connection the pool held before it, so the next request connects afresh.
    """

    IDLE_SECONDS = 1.0
    _SINCE = "petition.idle_since"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def listen(self) -> None:
        event.listen(self.engine, "connect", self.mark_idle)
        event.listen(self.engine, "checkin", self.mark_idle)
        event.listen(self.engine, "checkout", self.check)

    def mark_idle(self, _dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[self._SINCE] = time.monotonic()

    def check(self, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(self._SINCE)
        if since is not None and time.monotonic() - since < self.IDLE_SECONDS:
            return
        dialect = self.engine.dialect
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                # The pool replaces the connection and tries again (SQLAlchemy's own recipe).
                raise exc.DisconnectionError(str(error)) from error
            raise


def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """The settings of every SQLite connection (a "connect" listener): WAL, synchronous=NORMAL,
    foreign keys, a 15 s busy timeout, deleted rows overwritten, and SQLAlchemy rather than the
    driver deciding where transactions begin (see make_engine)."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
    except sqlite3.DatabaseError as error:
        # Raised as an OperationalError so that the CLI and the site say what is wrong.
        if "not a database" in str(error):
            raise NotADatabaseFile() from error
        raise
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=15000")
    # A withdrawn signature's text is overwritten in its page, not left readable in the file.
    cursor.execute("PRAGMA secure_delete=FAST")
    cursor.close()


class QueuedSQLiteConnection(sqlite3.Connection):
    """A SQLite connection whose writers take turns in the order they arrive, woken at once.

    SQLite admits one writer at a time and makes the others retry, sleeping 1, 2, 5, 10 ms...
    in between: under a burst of signatures the two web workers spent a third of their time
    asleep while the lock was free. A writing transaction here first takes an exclusive flock
    on `<database>.writers`, so the kernel hands the turn straight to the next writer.

    The turn is given back once COMMIT or ROLLBACK has finished in SQLite (SQLAlchemy's commit
    and rollback events fire before them, when the next writer's BEGIN would still meet the
    lock and sleep), when the connection closes, and by the kernel if the process dies. Nested
    writes on a second connection would wait for ever, and nothing here makes them.
    """

    def __init__(self, database: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        self._turn_file = f"{database}.writers"
        self._turn_fd = -1  # opened by the first write: reads need no turn
        self._has_turn = False

    # Another process writing outside the queue (an operator's sqlite3 shell in a transaction, a
    # copy of the file being restored) makes the writer holding the turn wait SQLite's busy
    # timeout (15 s) and fail, then the next in the queue, and the next: the fourth of four
    # waited a minute, past gunicorn's 30 s. The first to fail notes the time in the turn file;
    # for OUTSIDE_LOCK_SECONDS after, writers wait only HURRIED_BUSY_MS for SQLite's lock, so
    # while it lasts each fails in a moment (the 503 page), and once it is gone they go on.
    OUTSIDE_LOCK_SECONDS = 10.0
    HURRIED_BUSY_MS = 100

    def begin_writing(self, begin: Callable[[], object]) -> None:
        """Take the writers' turn and run `begin` (a BEGIN IMMEDIATE); the turn is held until
        the transaction ends, or given back at once if it cannot begin."""
        self.take_turn()
        try:
            hurried = self._locked_from_outside_lately()
            if hurried:
                usual = self.execute("PRAGMA busy_timeout").fetchone()[0]
                self.execute(f"PRAGMA busy_timeout={self.HURRIED_BUSY_MS}")
            try:
                begin()
            except Exception as error:
                if "database is locked" in str(error):
                    with suppress(OSError):  # a full disk: the error to report is the lock
                        os.pwrite(self._turn_fd, struct.pack("d", time.time()), 0)
                raise
            finally:
                if hurried:
                    self.execute(f"PRAGMA busy_timeout={usual}")
        except BaseException:
            self.give_turn_back()
            raise

    def _locked_from_outside_lately(self) -> bool:
        noted = os.pread(self._turn_fd, 8, 0)
        if len(noted) < 8:
            return False
        # The wall clock, shared by every process: one set back makes the age negative.
        return 0 <= time.time() - struct.unpack("d", noted)[0] < self.OUTSIDE_LOCK_SECONDS

    def take_turn(self) -> None:
        """Wait for the writers' turn; held until this transaction ends."""
        if self._turn_fd < 0:
            try:
                self._turn_fd = os.open(self._turn_file, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as error:  # a read-only disk, or the file made by another user
                said = f"cannot open {self._turn_file} (the writers' turn): {error.strerror}"
                raise exc.OperationalError(None, None, sqlite3.OperationalError(said)) from error
        fcntl.flock(self._turn_fd, fcntl.LOCK_EX)
        self._has_turn = True

    def give_turn_back(self) -> None:
        if self._has_turn:
            self._has_turn = False
            fcntl.flock(self._turn_fd, fcntl.LOCK_UN)

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.give_turn_back()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.give_turn_back()

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._turn_fd >= 0:
                os.close(self._turn_fd)  # also gives back a turn still held
                self._turn_fd, self._has_turn = -1, False


def _queued_begin(conn: Any) -> None:
    """BEGIN, and for a writing transaction take the writers' turn first (see _sqlite_begin)."""
    if not conn.get_execution_options().get("sqlite_immediate", False):
        _sqlite_begin(conn)
        return
    driver: QueuedSQLiteConnection = conn.connection.driver_connection
    driver.begin_writing(lambda: _sqlite_begin(conn))


def _sqlite_begin(conn: Any) -> None:
    # A write that starts as a read and upgrades later fails at once (SQLITE_BUSY_SNAPSHOT) when
    # another writer committed in between; transaction() asks for the write lock up front instead,
    # and busy_timeout then queues writers rather than failing them.
    immediate = conn.get_execution_options().get("sqlite_immediate", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def init_app(app: Flask) -> None:
    """Create the engine and close each request's session when the request ends."""
    engine = make_engine(
        app.config["DATABASE_URL"],
        echo=bool(app.config["DATABASE_ECHO"]),
        pool_size=app.config["DATABASE_POOL_SIZE"],
        prepared_statements=app.config["DATABASE_PREPARED_STATEMENTS"],
    )
    app.extensions["petition.engine"] = engine
    app.extensions["petition.sessionmaker"] = sessionmaker(engine, expire_on_commit=False)
    app.teardown_request(_close_session)
    app.teardown_appcontext(_close_session)


def engine() -> Engine:
    """The current app's engine."""
    return current_app.extensions["petition.engine"]


def new_session() -> Session:
    """A session that the caller owns and must close (workers, streams, threads)."""
    return current_app.extensions["petition.sessionmaker"]()


_KEY = "petition.db_session"


def _holder() -> dict[str, Any]:
    # Per request when there is one (its WSGI environ), else per app context (CLI, workers):
    # code that keeps an app context open across requests still gets a session per request.
    return request.environ if has_request_context() else g.__dict__


def get_session() -> Session:
    """The session of the current request or CLI command, opened on first use."""
    holder = _holder()
    session = holder.get(_KEY)
    if session is None:
        session = holder[_KEY] = new_session()
    return session


def _close_session(_exc: BaseException | None) -> None:
    session = _holder().pop(_KEY, None)
    if session is not None:
        session.close()


def begin_write(session: Session) -> None:
    """Start the session's transaction as a writer (on SQLite: take the write lock now)."""
    if session.get_bind().dialect.name == "sqlite":
        session.connection(execution_options={"sqlite_immediate": True})


def is_postgres(session: Session) -> bool:
    """Whether the session talks to PostgreSQL (row locks, advisory locks, SKIP LOCKED)."""
    return session.get_bind().dialect.name == "postgresql"


@contextmanager
def transaction(*, lock_now: bool = True) -> Iterator[Session]:
    """The one place a unit of work commits: commit on success, roll back on any error.

    lock_now=False leaves the session without a transaction, for services that write in
    driver units of their own (signatures.sign, signatures.verify) and only read through the
    session; one that then wrote through it would have to call begin_write() first.
    """
    session = get_session()
    if session.in_transaction():
        # End the read snapshot the view may have opened, keeping its loaded objects, so that
        # the write starts from the newest data and, on SQLite, takes the write lock first.
        session.commit()
    if lock_now:
        begin_write(session)
    try:
        yield session
        if session.in_transaction():
            session.commit()
    except BaseException:
        session.rollback()
        raise
