"""Alembic environment: runs migrations against the URL petition.migrate passes in."""

from alembic import context
from sqlalchemy import Connection

from petition import models  # noqa: F401 - registers every table on Base.metadata
from petition.db import Base, make_engine

config = context.config
target_metadata = Base.metadata


def run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    # Only an upgrade makes a SQLite file that is not there yet (see petition.migrate).
    engine = make_engine(
        config.get_main_option("sqlalchemy.url"),
        create=bool(config.attributes.get("create_database")),
        # A migration repeats little, and may run through PgBouncer in transaction mode.
        prepared_statements=False,
    )
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # A writer from the start, after the site's writers' turn (petition.db): begun as a
            # reader, a migration that reads a table before rebuilding it failed at its first
            # write ("database is locked") whenever the site committed anything in between.
            connection.execution_options(sqlite_immediate=True)
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
            render_as_batch=True,
            compare_type=True,
        )
        if sqlite:
            _sqlite_foreign_keys(connection, on=False)
        try:
            with context.begin_transaction():
                context.run_migrations()
                if sqlite:
                    _check_sqlite_foreign_keys(connection)
        finally:
            if sqlite:
                _sqlite_foreign_keys(connection, on=True)
    engine.dispose()


def _sqlite_foreign_keys(connection: Connection, *, on: bool) -> None:
    """Foreign keys off while batch mode rebuilds a table, as SQLite's own procedure for
    altering a table says: with them on, its DROP TABLE deletes the old table's rows first, and
    ON DELETE CASCADE / SET NULL would empty or unlink every table that refers to it (a letter
    rebuilt took every signature with it). SQLite ignores this pragma inside a transaction,
    so it goes to the driver's connection before the migration's transaction begins."""
    connection.connection.driver_connection.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


def _check_sqlite_foreign_keys(connection: Connection) -> None:
    """Refuse to commit a migration that left a row pointing at nothing."""
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        table, _rowid, parent, _key = broken[0]
        raise RuntimeError(
            f"the migration would leave {len(broken)} row(s) of {table} referring to missing "
            f"rows of {parent}; nothing was changed"
        )


if context.is_offline_mode():
    run_offline()
else:
    run_online()
