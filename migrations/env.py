"""Alembic environment: runs migrations against the URL petition.migrate passes in."""

from alembic import context

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
    )
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
            render_as_batch=True,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
