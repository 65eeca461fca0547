"""Migrations run both ways and match the models."""

import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, event, inspect, text

from petition import migrate
from petition.db import Base, transaction
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


def test_an_upgrade_on_sqlite_goes_through_while_the_site_writes(app, make_letter):
    """The rebuild of `signature` (9d3a6c1e5f27) reads the table before it writes: begun as a
    reader, it failed ("database is locked") when the site committed in between. It now waits
    for the writers' turn, and the site's writes wait for it."""
    url = app.config["DATABASE_URL"]
    if not url.startswith("sqlite"):
        pytest.skip("SQLite test: PostgreSQL's migrations take their locks as they go")
    letter = make_letter()
    head = migrate.current_revision(url)
    migrate.downgrade(url, "e4b81f2c6a90")
    written = threading.Event()

    def site_writes() -> None:
        with app.app_context(), transaction() as session:
            session.execute(
                text("UPDATE letter SET title = :title WHERE id = :id"),
                {"title": "Renamed while migrating", "id": letter.id},
            )
        written.set()

    site = []

    def as_the_rebuild_begins_to_write(_conn, _cursor, statement: str, *_args) -> None:
        if statement.lstrip().startswith("CREATE TABLE _alembic_tmp_signature") and not site:
            site.append(threading.Thread(target=site_writes))
            site[0].start()
            written.wait(0.5)  # committed at once, unless the migration holds the writers' turn

    event.listen(Engine, "before_cursor_execute", as_the_rebuild_begins_to_write)
    try:
        migrate.upgrade(url)
    finally:
        event.remove(Engine, "before_cursor_execute", as_the_rebuild_begins_to_write)
        for thread in site:
            thread.join(10)
    assert migrate.current_revision(url) == head
    assert written.is_set()  # the site's write went through once the migration was done
