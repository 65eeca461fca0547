"""Migrations run both ways and match the models."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from petition import migrate
from petition.db import Base
from tests.conftest import sign_and_confirm


def test_downgrade_to_base_and_back(database_url):
    migrate.downgrade(database_url, "base")
    engine = create_engine(database_url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(database_url)
    assert {"letter", "signature", "message", "count_event", "delivery", "organiser"} <= set(
        inspect(engine).get_table_names()
    )
    engine.dispose()


def test_models_and_migrations_agree(database_url):
    engine = create_engine(database_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


def test_a_downgrade_keeps_every_signature_and_its_mail(app, client, mailbox, make_letter):
    """Rolling back past a4c2e9d17b3f rebuilds the letter table on SQLite: the rebuild must not
    take the signatures (ON DELETE CASCADE) or the outbox's links (SET NULL) with it."""
    sign_and_confirm(client, mailbox, make_letter())
    url = app.config["DATABASE_URL"]
    app.extensions["petition.engine"].dispose()
    engine = create_engine(url)

    def kept() -> tuple[int, int]:
        with engine.connect() as connection:
            signatures = connection.exec_driver_sql("SELECT count(*) FROM signature").scalar()
            linked = connection.exec_driver_sql(
                "SELECT count(*) FROM message WHERE signature_id IS NOT NULL"
            ).scalar()
        return signatures, linked

    before = kept()
    assert before[0] == 1 and before[1] >= 2  # the confirmation link and the thank-you
    migrate.downgrade(url, "a4c2e9d17b3f")
    assert kept() == before
    migrate.upgrade(url)
    assert kept() == before
    engine.dispose()
