"""Fresh databases for a run, and the letters and signatures the scenarios need.

Letters are made by the app's own services (petition.services.letters.create) in an app
context; signatures are bulk-inserted with one set-based statement (generate_series on
PostgreSQL, a recursive CTE on SQLite), then petition.services.counts.recount makes the stored
counts right, as `petition letters recount` would.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask

from bench.servers import HOST
from petition import create_app, migrate, tokens
from petition.db import transaction
from petition.models import Signature, SignatureState
from petition.services import counts, letters

SECRET_KEY = "bench-" + "k" * 40  # a fixed, long key: cookies survive a gunicorn restart

BODY = """Dear Minister,

We, the undersigned, are writing to ask you to keep the **Riverside library** open.

The library is used every week by thousands of people: children at story time, students who
have nowhere quiet to work at home, older people who come for company and the newspapers, and
job seekers who need a computer and someone patient to help them use it.

## What we ask

1. Withdraw the proposal to close the Riverside branch.
2. Publish the usage figures the decision was based on.
3. Meet the Friends of Riverside Library before any decision is taken.

Closing it would save a small sum this year and cost far more later. Libraries are one of the
few places left where anyone may walk in, stay as long as they like, and pay nothing.

Yours sincerely,

*The signatories*
"""


def bench_database_problem() -> str | None:
    """What stops a PostgreSQL run with PETITION_BENCH_DATABASE_URL as set, or None."""
    text = os.environ.get("PETITION_BENCH_DATABASE_URL")
    if not text:
        return "postgresql needs PETITION_BENCH_DATABASE_URL"
    return postgresql_url_problem(text)


def postgresql_url_problem(text: str) -> str | None:
    """Why the benchmark will not use this PostgreSQL server URL, or None.

    It must reach this machine only: 127.0.0.1, or a Unix socket directory given as ?host=/path
    (postgresql+psycopg://user@/db?host=/var/run/postgresql). A URL with no host at all is
    refused: libpq would take one from PGHOST. The URL is never repeated: it may hold a password.
    """
    try:
        url = sa.make_url(text)
    except (sa.exc.ArgumentError, ValueError):
        return "PETITION_BENCH_DATABASE_URL is not a database URL"
    if not url.drivername.startswith("postgresql"):
        return f"PETITION_BENCH_DATABASE_URL is not PostgreSQL: {url.drivername}"
    socket_dir = url.query.get("host")
    over_tcp = url.host == HOST and socket_dir is None
    over_socket = url.host is None and isinstance(socket_dir, str) and socket_dir.startswith("/")
    if (over_tcp or over_socket) and "hostaddr" not in url.query:
        return None
    where = url.host or socket_dir or "PGHOST"
    return f"refusing to use a database server at {where!r}: {HOST} or a socket only"


@dataclass(frozen=True)
class SeededLetter:
    key: str  # what the harness calls it: empty, million, small, writes
    slug: str
    letter_id: int
    verified: int


@contextmanager
def migrated_database(backend: str, prefix: str) -> Iterator[tuple[BenchDatabase, Path]]:
    """A migrated database of `backend` (see BenchDatabase.for_backend) and a work directory,
    both removed when the block ends."""
    with tempfile.TemporaryDirectory(prefix=prefix) as directory:
        workdir = Path(directory)
        db = BenchDatabase.for_backend(backend, workdir)
        try:
            db.migrate()
            yield db, workdir
        finally:
            db.drop()


class BenchDatabase:
    """A database made for one run and removed at the end: a SQLite file or a PG database."""

    def __init__(self, backend: str, url: str, admin_url: str | None = None) -> None:
        self.backend = backend
        self.url = url
        self.admin_url = admin_url
        self.engine = _engine(url)

    @classmethod
    def for_backend(cls, backend: str, directory: Path) -> BenchDatabase:
        """A SQLite file in `directory`, or a PostgreSQL database on the server that
        PETITION_BENCH_DATABASE_URL names (SystemExit, saying why, without one)."""
        if backend != "postgresql":
            return cls.sqlite(directory)
        problem = bench_database_problem()
        if problem:
            raise SystemExit(f"--backend {problem}")
        return cls.postgresql(os.environ["PETITION_BENCH_DATABASE_URL"])

    @classmethod
    def sqlite(cls, directory: Path) -> BenchDatabase:
        return cls("sqlite", f"sqlite:///{directory / 'bench.sqlite3'}")

    @classmethod
    def postgresql(cls, server_url: str) -> BenchDatabase:
        problem = postgresql_url_problem(server_url)
        if problem:
            raise SystemExit(problem)
        base = sa.make_url(server_url)
        name = f"petition_bench_{uuid.uuid4().hex[:10]}"
        admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        finally:
            admin.dispose()
        url = base.set(database=name).render_as_string(hide_password=False)
        return cls("postgresql", url, admin_url=base.render_as_string(hide_password=False))

    @property
    def name(self) -> str:
        return sa.make_url(self.url).database or ""

    def migrate(self) -> None:
        migrate.upgrade(self.url)

    def server_version(self) -> str:
        with self.engine.connect() as connection:
            if self.backend == "postgresql":
                return str(connection.exec_driver_sql("SHOW server_version").scalar())
            return str(connection.exec_driver_sql("SELECT sqlite_version()").scalar())

    def reached_through(self) -> str:
        """How the app reaches the database: a file, TCP or a Unix socket."""
        url = sa.make_url(self.url)
        if self.backend == "sqlite":
            return "a file"
        if url.host is None:
            return f"the Unix socket in {url.query['host']}"
        return f"TCP to {url.host}:{url.port or 5432}"

    def server_settings(self) -> dict[str, str]:
        """The settings that decide write and read speed (PostgreSQL) or the SQLite pragmas
        the app sets itself (see petition/db.py)."""
        if self.backend != "postgresql":
            return {"journal_mode": "wal", "synchronous": "NORMAL (set by the app)"}
        names = ("synchronous_commit", "fsync", "shared_buffers", "max_connections", "jit")
        with self.engine.connect() as connection:
            return {
                name: str(connection.exec_driver_sql(f"SHOW {name}").scalar()) for name in names
            }

    def drop(self) -> None:
        self.engine.dispose()
        if self.backend == "sqlite":
            path = self.url.removeprefix("sqlite:///")
            for suffix in ("", "-wal", "-shm"):
                Path(path + suffix).unlink(missing_ok=True)
            return
        admin = sa.create_engine(sa.make_url(self.admin_url), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            admin.dispose()

    # -- seeding -------------------------------------------------------------------------------

    def app(self, mail_dir: Path, redis_url: str | None = None) -> Flask:
        """The petition app in this process, for seeding, recounting and counting queries."""
        overrides: dict[str, Any] = {
            "SECRET_KEY": SECRET_KEY,
            "DATABASE_URL": self.url,
            "MAIL_BACKEND": "file",
            "MAIL_DIR": str(mail_dir),
            "SESSION_COOKIE_SECURE": False,
            "REDIS_URL": redis_url,
        }
        return create_app(overrides)

    def create_letter(self, app: Flask, key: str, slug: str, title: str) -> SeededLetter:
        with app.app_context(), transaction() as session:
            data = letters.LetterInput(
                title=title,
                recipient_name="The Minister for Libraries",
                recipient_role="Department for Culture",
                body_markdown=BODY,
                slug=slug,
                goal=2_000_000,
            )
            letter = letters.create(session, data, publish=True)
            return SeededLetter(key, letter.slug, letter.id, 0)

    def seed_verified(self, letter: SeededLetter, rows: int) -> SeededLetter:
        """Insert `rows` verified signatures in one statement: distinct addresses and tokens,
        verified 10 ms apart (a viral afternoon), every second signer listed publicly and every
        third sharing their email with the recipient."""
        if rows <= 0:
            return letter
        tag = f"{letter.key}{uuid.uuid4().hex[:6]}"
        start = datetime.now(UTC) - timedelta(milliseconds=10 * rows) - timedelta(minutes=5)
        base_epoch = int(start.timestamp())
        params = {"letter": letter.letter_id, "rows": rows, "tag": tag}
        columns = (
            "letter_id, name, email, email_key, show_name, share_email, wants_updates, state, "
            "verify_token_hash, verify_expires_at, manage_token_hash, created_at, verified_at"
        )
        if self.backend == "postgresql":
            params["start"] = datetime.fromtimestamp(base_epoch, UTC)
            stamp = ":start + (g * 10) * interval '1 millisecond'"
            statement = f"""
                INSERT INTO signature ({columns})
                SELECT :letter, 'Bench Signer ' || g,
                       'seed-' || :tag || '-' || g || '@example.org',
                       'seed-' || :tag || '-' || g || '@example.org',
                       g % 2 = 0, g % 3 = 0, true, 'verified',
                       encode(sha256(('v' || :tag || g)::bytea), 'hex'),
                       {stamp} + interval '72 hours',
                       encode(sha256(('m' || :tag || g)::bytea), 'hex'),
                       {stamp}, {stamp} + interval '1 minute'
                FROM generate_series(1, :rows) AS g
            """
        else:
            params["epoch"] = base_epoch
            # The text format SQLAlchemy itself writes for a DateTime on SQLite.
            stamp = (
                "strftime('%Y-%m-%d %H:%M:%S', :epoch + {shift} + g / 100, 'unixepoch') "
                "|| printf('.%06d', (g % 100) * 10000)"
            )
            statement = f"""
                WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < :rows)
                INSERT INTO signature ({columns})
                SELECT :letter, 'Bench Signer ' || g,
                       'seed-' || :tag || '-' || g || '@example.org',
                       'seed-' || :tag || '-' || g || '@example.org',
                       g % 2 = 0, g % 3 = 0, 1, 'verified',
                       sha256hex('v' || :tag || g),
                       {stamp.format(shift=72 * 3600)},
                       sha256hex('m' || :tag || g),
                       {stamp.format(shift=0)}, {stamp.format(shift=60)}
                FROM s
            """
        with self.engine.begin() as connection:
            connection.execute(sa.text(statement), params)
        return SeededLetter(letter.key, letter.slug, letter.letter_id, letter.verified + rows)

    def seed_pending(self, letter: SeededLetter, rows: int) -> list[str]:
        """Pending signatures whose raw confirmation tokens we know; returns the tokens."""
        now = datetime.now(UTC)
        tag = uuid.uuid4().hex[:6]
        raw_tokens = []
        table = Signature.__table__
        batch = []
        with self.engine.begin() as connection:
            for number in range(rows):
                raw, digest = tokens.new_token()
                raw_tokens.append(raw)
                address = f"pending-{tag}-{number}@example.org"
                batch.append(
                    {
                        "letter_id": letter.letter_id,
                        "name": f"Pending Signer {number}",
                        "email": address,
                        "email_key": address,
                        "show_name": number % 2 == 0,
                        "share_email": False,
                        "wants_updates": True,
                        "state": SignatureState.PENDING,
                        "verify_token_hash": digest,
                        "verify_expires_at": now + timedelta(hours=72),
                        "created_at": now,
                    }
                )
                if len(batch) == 5000:
                    connection.execute(table.insert(), batch)
                    batch = []
            if batch:
                connection.execute(table.insert(), batch)
        return raw_tokens

    def settle(self) -> None:
        """Leave the bulk load behind, as a site that grew to this size over weeks would have:
        PostgreSQL gets VACUUM ANALYZE (as autovacuum would) and a CHECKPOINT, so that writing
        out the load's pages does not fall into a measurement; SQLite gets its WAL copied into
        the database file and emptied, which the first commit after the load would otherwise
        do while holding the writers' turn. SQLite gets no ANALYZE: the app never runs it."""
        with self.engine.connect() as connection:
            if self.backend == "postgresql":
                auto = connection.execution_options(isolation_level="AUTOCOMMIT")
                auto.exec_driver_sql("VACUUM ANALYZE")
                # Needs pg_checkpoint or a superuser; without, the timed checkpoint comes anyway.
                with suppress(sa.exc.ProgrammingError):
                    auto.exec_driver_sql("CHECKPOINT")
            else:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def recount(self, app: Flask) -> dict[str, tuple[int, int]]:
        """Fold and repair as `petition letters recount` does: slug -> (shown, actual)."""
        with app.app_context(), transaction() as session:
            return {r.slug: (r.stored, r.actual) for r in counts.recount(session)}

    def backend_pids(self) -> list[int]:
        """PostgreSQL server processes serving this database (not our own connection)."""
        query = sa.text(
            "SELECT pid FROM pg_stat_activity WHERE datname = :name AND pid <> pg_backend_pid()"
        )
        with self.engine.connect() as connection:
            return [int(pid) for pid in connection.execute(query, {"name": self.name}).scalars()]

    def scalar(self, statement: str, **params: Any) -> Any:
        with self.engine.connect() as connection:
            return connection.execute(sa.text(statement), params).scalar()

    def verified_among(self, raw_tokens: list[str]) -> int:
        """How many of these tokens' signatures are verified now."""
        digests = [tokens.digest(raw) for raw in raw_tokens]
        query = sa.text(
            "SELECT count(*) FROM signature WHERE state = 'verified' "
            "AND verify_token_hash IN :digests"
        ).bindparams(sa.bindparam("digests", expanding=True))
        total = 0
        with self.engine.connect() as connection:
            for start in range(0, len(digests), 1000):
                chunk = digests[start : start + 1000]
                total += int(connection.execute(query, {"digests": chunk}).scalar() or 0)
        return total


def _engine(url: str) -> sa.Engine:
    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_size=2)
    engine = sa.create_engine(url, connect_args={"timeout": 30})

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.create_function(
            "sha256hex",
            1,
            lambda text: hashlib.sha256(text.encode()).hexdigest(),
            deterministic=True,
        )
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.close()

    return engine


@contextmanager
def timed(label: str, log: Any) -> Iterator[None]:
    started = time.perf_counter()
    yield
    log(f"{label}: {time.perf_counter() - started:.1f} s")


def redis_pid(url: str) -> list[int]:
    """The Redis server's process id, when it runs on this machine (it is 127.0.0.1)."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=1)
        return [int(client.info("server")["process_id"])]
    except Exception:
        return []


def redis_version(url: str) -> str | None:
    import redis

    try:
        return str(redis.Redis.from_url(url, socket_timeout=1).info("server")["redis_version"])
    except Exception:
        return None
