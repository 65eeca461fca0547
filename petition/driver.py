"""The busiest writes, run straight on the database driver: fixed statements, no ORM session.

Signing and confirming are each a few fixed statements. Through an ORM session and its
connection they cost three times what the database itself spends on them: the session's
transaction, SQLAlchemy's per-execution bookkeeping and its BEGIN/COMMIT events, on every
signature. Here each statement is compiled by SQLAlchemy once per dialect, its parameters are
converted by the same bind processors SQLAlchemy would apply, and it runs on a pooled
connection's own cursor, in a transaction of its own (see unit()).

Errors come out as SQLAlchemy's exceptions, the connection discarded when the server has gone,
so callers and the error pages see what they would see from a session.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement

# What a parameter needs: its bind name, its name in the SQL (named styles), the bind
# processor or None, and its default (a literal's value) or _REQUIRED.
_Bind = tuple[str, str, Callable[[Any], Any] | None, Any]


@dataclass(frozen=True)
class _Compiled:
    sql: str
    positional: bool
    binds: tuple[_Bind, ...]  # positional: one per marker, in order (a name may recur)

    def parameters(self, values: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        converted = [
            (key, process(value) if process is not None and value is not None else value)
            for name, key, process, default in self.binds
            for value in (values[name] if default is _REQUIRED or name in values else default,)
        ]
        if self.positional:
            return tuple(value for _key, value in converted)
        return dict(converted)


_REQUIRED = object()


class Prepared:
    """A statement built once per dialect by `build(dialect_name)`, then run with values."""

    def __init__(self, build: Callable[[str], ClauseElement]) -> None:
        self._build = build
        self._compiled: dict[tuple[str, str, str], _Compiled] = {}

    def compiled(self, dialect: Dialect) -> _Compiled:
        key = (dialect.name, dialect.driver, dialect.paramstyle)
        found = self._compiled.get(key)
        if found is None:
            found = self._compiled[key] = self._compile(dialect)
        return found

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = self._build(dialect.name).compile(dialect=dialect)
        escaped = compiled.escaped_bind_names or {}
        binds: dict[str, _Bind] = {}
        for bind, name in compiled.bind_names.items():
            if bind.expanding or bind.callable is not None:
                raise TypeError(f"{name}: a prepared statement takes plain values only")
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            default = _REQUIRED if bind.required else bind.value
            binds[name] = (name, escaped.get(name, name), process, default)
        if dialect.positional:
            ordered = tuple(binds[name] for name in compiled.positiontup or ())
        else:
            ordered = tuple(binds.values())
        return _Compiled(sql=compiled.string, positional=dialect.positional, binds=ordered)


# Called with each SQL string a unit sends and the driver connection it goes to (see listen()).
_listeners: list[Callable[[str, Any], None]] = []


def listen(callback: Callable[[str, Any], None]) -> None:
    """Call `callback(sql, driver_connection)` before each statement a unit sends.

    These statements bypass SQLAlchemy's engine events; benchmarks and tests that count
    statements listen here as well.
    """
    _listeners.append(callback)


def remove(callback: Callable[[str, Any], None]) -> None:
    _listeners.remove(callback)


def _send(cursor: Any, sql: str, parameters: Any = ()) -> Any:
    for callback in _listeners:
        callback(sql, cursor.connection)
    return cursor.execute(sql, parameters)


class Unit:
    """A transaction on a driver connection, to execute() prepared statements in."""

    def __init__(self, dialect: Dialect, cursor: Any) -> None:
        self.dialect = dialect
        self._cursor = cursor

    def execute(self, statement: Prepared, values: Mapping[str, Any]) -> Any:
        """Run the statement; returns the DB-API cursor (fetchone() for RETURNING rows)."""
        compiled = statement.compiled(self.dialect)
        return _send(self._cursor, compiled.sql, compiled.parameters(values))


@contextmanager
def unit(engine: Engine, *, one_statement: bool = False) -> Iterator[Unit]:
    """A write of its own on a pooled connection, committed when the block ends.

    On SQLite it holds the write lock from the start, after the writers' turn (db.py's
    QueuedSQLiteConnection), as a session's writing transaction does. On PostgreSQL,
    one_statement=True runs the one statement the block executes autocommitted: a single
    round trip, where BEGIN and COMMIT would add two.
    """
    dialect = engine.dialect
    pooled = _check_out(engine)
    driver = pooled.driver_connection
    cursor = None
    autocommit = one_statement and dialect.name == "postgresql"
    try:
        try:
            if dialect.name == "sqlite":
                cursor = driver.cursor()
                if hasattr(driver, "begin_writing"):  # db.QueuedSQLiteConnection: a file's
                    driver.begin_writing(lambda: _send(cursor, "BEGIN IMMEDIATE"))
                else:
                    _send(cursor, "BEGIN IMMEDIATE")
            else:
                if autocommit:
                    driver.autocommit = True
                cursor = driver.cursor()
            yield Unit(dialect, cursor)
            if not autocommit:
                driver.commit()
        except BaseException as error:
            _end_quietly(driver, autocommit)
            if isinstance(error, dialect.loaded_dbapi.Error):
                raise _as_sqlalchemy_error(error, engine, driver, cursor, pooled) from error
            raise
        finally:
            if autocommit and pooled.is_valid:
                _leave_autocommit(pooled, driver, dialect)
    finally:
        if cursor is not None:
            with suppress(dialect.loaded_dbapi.Error):
                cursor.close()
        pooled.close()  # back to the pool, which rolls back anything left open


def unit_for(db: Session | Engine) -> AbstractContextManager[Unit]:
    """A session's transaction if it has one (within()), else a unit of its own that commits
    when the block ends (unit(), one statement on PostgreSQL); an engine always gets the
    latter, without the cost of a session."""
    if isinstance(db, Engine):
        return unit(db, one_statement=True)
    if db.in_transaction():
        return within(db)
    return unit(db.get_bind(), one_statement=True)


@contextmanager
def within(session: Session) -> Iterator[Unit]:
    """The session's own transaction (begun if need be) as a unit; the session commits it."""
    connection = session.connection()
    dialect = connection.dialect
    cursor = connection.connection.driver_connection.cursor()
    try:
        yield Unit(dialect, cursor)
    except dialect.loaded_dbapi.Error as error:
        driver = connection.connection.driver_connection
        raise _as_sqlalchemy_error(error, connection.engine, driver, cursor, connection) from error
    finally:
        with suppress(dialect.loaded_dbapi.Error):
            cursor.close()


@contextmanager
def reading(engine: Engine) -> Iterator[Any]:
    """A pooled connection's own DB-API cursor for one long read (the CSV export).

    No transaction of ours is begun, so on SQLite the read takes no write lock and signers go
    on writing; one statement reads one snapshot on either database. Errors come out as
    SQLAlchemy's, as from unit().
    """
    dialect = engine.dialect
    pooled = _check_out(engine)
    driver = pooled.driver_connection
    cursor = None
    try:
        cursor = driver.cursor()
        yield cursor
    except dialect.loaded_dbapi.Error as error:
        raise _as_sqlalchemy_error(error, engine, driver, cursor, pooled) from error
    finally:
        if cursor is not None:
            with suppress(dialect.loaded_dbapi.Error):
                cursor.close()
        pooled.close()  # back to the pool, which rolls back what the read left open


def _check_out(engine: Engine) -> Any:
    """A pooled connection. SQLAlchemy's raw_connection() lets the driver's own error out when
    a new connection cannot be made (the server down, or refusing: too many clients); it is
    raised as SQLAlchemy's, as the ORM would, so that the site answers 503, not 500."""
    try:
        return engine.raw_connection()
    except engine.dialect.loaded_dbapi.Error as error:
        raise DBAPIError.instance(
            None,
            None,
            error,
            engine.dialect.loaded_dbapi.Error,
            hide_parameters=True,
            dialect=engine.dialect,
        ) from error


def _as_sqlalchemy_error(
    error: Exception, engine: Engine, driver: Any, cursor: Any, holder: Any
) -> DBAPIError:
    """The exception SQLAlchemy would have raised (an OperationalError for a lost server).

    When the server has gone, the connection is discarded (`holder`, the pooled connection or
    the session's, is invalidated). Other pooled connections are pinged before use once idle a
    second (db.PingWhenIdle); one that went with the server fails its request and is discarded
    in turn.
    """
    dialect = engine.dialect
    gone = dialect.is_disconnect(error, driver, cursor)
    if gone:
        holder.invalidate(error)
    return DBAPIError.instance(
        None,
        None,
        error,
        dialect.loaded_dbapi.Error,
        hide_parameters=True,
        connection_invalidated=gone,
        dialect=dialect,
    )


def _leave_autocommit(pooled: Any, driver: Any, dialect: Dialect) -> None:
    try:
        driver.autocommit = False
    except dialect.loaded_dbapi.Error as error:
        pooled.invalidate(error)  # not fit to go back to the pool


def _end_quietly(driver: Any, autocommit: bool) -> None:
    """Roll back after an error; a connection that has gone cannot, and is discarded anyway."""
    if not autocommit:
        with suppress(Exception):  # the original error is the one to report
            driver.rollback()
