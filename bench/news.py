"""News to a big letter: what the organiser's request costs, and the worker's batches.

Seeds a letter with --rows verified signers who all asked for news (SQLite in a temporary
directory, or PostgreSQL with --backend postgresql and PETITION_BENCH_DATABASE_URL), then, in
this process, times the organiser page's count of who asked for news, news.send() as the
request runs it (the news kept, the count taken), and news.fan_out() a batch at a time as the
worker runs it, for --batches batches (0: every batch, until the news is all queued).

    .venv/bin/python -m bench.news --rows 1000000
    .venv/bin/python -m bench.news --rows 1000000 --backend postgresql --batches 0

On PostgreSQL the table is vacuumed after seeding, as autovacuum would have done by the time a
letter that size sends news: an index-only count needs the visibility map.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time

from bench import seed
from petition.db import transaction
from petition.models import Letter
from petition.services import news


def _milliseconds(since: float) -> float:
    return (time.perf_counter() - since) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="signers on the letter")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--batches", type=int, default=20, help="batches to time; 0 for all")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.batches < 0:
        parser.error("--rows must be at least 1 and --batches not negative")

    with seed.migrated_database(args.backend, "petition-news-") as (db, workdir):
        app = db.app(workdir / "mail")
        letter = db.create_letter(app, "news", "news-check", "News check")
        started = time.perf_counter()
        db.seed_verified(letter, args.rows)
        seeded = _milliseconds(started)
        print(f"seeded {args.rows:,} signers on {args.backend} in {seeded:,.0f} ms")
        if args.backend == "postgresql":
            with db.engine.connect() as connection:
                autocommit = connection.execution_options(isolation_level="AUTOCOMMIT")
                autocommit.exec_driver_sql("VACUUM ANALYZE signature")
        with app.app_context():
            _measure(letter.letter_id, args.batches)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak:.0f} MB")
    return 0


def _measure(letter_id: int, batches: int) -> None:
    with transaction() as session:
        letter = session.get_one(Letter, letter_id)
        counted = []
        for _ in range(7):
            started = time.perf_counter()
            audience = news.audience_size(session, letter)
            counted.append(_milliseconds(started))
    print(f"audience count ({audience:,}): median of 7 {statistics.median(counted):.1f} ms")
    with transaction() as session:
        letter = session.get_one(Letter, letter_id)
        started = time.perf_counter()
        news.send(session, letter, "News of the letter", "We delivered it. " * 150)
    print(f"news.send (the organiser's request): {_milliseconds(started):.1f} ms")
    taken, queued = [], 0
    began = time.perf_counter()
    while batches == 0 or len(taken) < batches:
        started = time.perf_counter()
        with transaction() as session:
            count = news.fan_out(session)
        if count is None:
            break
        taken.append(_milliseconds(started))
        queued += count
    print(
        f"news.fan_out: {len(taken):,} batches, {queued:,} emails queued in "
        f"{_milliseconds(began):,.0f} ms; a batch of {news.BATCH:,}: median "
        f"{statistics.median(taken):.1f} ms, slowest {max(taken):.1f} ms"
    )


if __name__ == "__main__":
    sys.exit(main())
