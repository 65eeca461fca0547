"""Alembic, driven from Python so that `petition db ...` and the tests share one setup.

Alembic is imported only when a migration command runs: it costs a tenth of a second at
start-up, which every other command (an export, the mail worker) would pay for nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config

FILE_TEMPLATE = "%%(year)d%%(month).2d%%(day).2d_%%(hour).2d%%(minute).2d_%%(rev)s_%%(slug)s"


class MigrationFailed(Exception):
    """Alembic refused (an unknown revision, a conflicting history...); the message says why."""


@contextmanager
def _commands() -> Iterator[ModuleType]:
    import alembic.util
    from alembic import command

    try:
        yield command
    except alembic.util.CommandError as error:
        raise MigrationFailed(str(error)) from None


def alembic_config(database_url: str) -> Config:
    from alembic.config import Config

    from petition import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    config.set_main_option("file_template", FILE_TEMPLATE)
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate up; a SQLite file that is not there yet is made, with its folder."""
    config = alembic_config(database_url)
    config.attributes["create_database"] = True
    with _commands() as command:
        command.upgrade(config, revision)


def downgrade(database_url: str, revision: str) -> None:
    with _commands() as command:
        command.downgrade(alembic_config(database_url), revision)


def current_revision(database_url: str) -> str | None:
    """The revision the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    from petition.db import make_engine, sqlite_file

    file = sqlite_file(database_url)
    if file is not None and not file.exists():
        return None
    engine = make_engine(database_url, prepared_statements=False)  # one query, maybe via PgBouncer
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def current(database_url: str) -> None:
    with _commands() as command:
        command.current(alembic_config(database_url), verbose=False)


def revision(database_url: str, message: str, autogenerate: bool) -> None:
    with _commands() as command:
        command.revision(alembic_config(database_url), message=message, autogenerate=autogenerate)
