"""How should a letter keep its signature count?  A standalone benchmark.

When a signature is confirmed, the confirming transaction updates that signature's row to
state='verified'.  Three ways of keeping the letter's count are compared:

  A. hot row        the same transaction also runs
                    UPDATE letter SET signature_count = signature_count + 1 WHERE id = 1,
                    so every confirmation locks the same row until it commits.
  B. count events   the same transaction instead appends INSERT INTO count_event (letter_id,
                    delta) VALUES (1, 1); a reader adds letter.signature_count and the sum of the
                    unfolded events, and a single folder periodically moves events into the
                    letter row in one batch (during B's write test the folder runs alongside).
  C. indexed count  the transaction does nothing extra; a reader runs
                    SELECT count(*) FROM signature WHERE letter_id = 1 AND state = 'verified'
                    using an index on (letter_id, state).  C is the baseline.

It measures, on PostgreSQL and on SQLite (a temporary file in WAL mode, synchronous=NORMAL,
busy_timeout=15000, BEGIN IMMEDIATE for writes):

  1. Write throughput.  N threads (16 on PostgreSQL, 4 on SQLite), each with its own
     connection, confirm distinct pre-inserted pending signatures for a fixed time (5 s per
     strategy) or a fixed number of confirmations (--count).  One confirmation is one
     transaction: the signature UPDATE, the strategy's extra statement, a simulated
     in-transaction delay (--hold-ms, 2 ms by default: the rest of the request's work while the
     transaction is open, which is what makes lock queues visible) and COMMIT.  Reported as
     confirmations/s, as a ratio of C measured in the same run, with p50/p99/max transaction
     times, the fewest and most confirmations any one thread managed (SQLite's busy handler is
     not fair, so a waiting writer can starve), and a check that the count each strategy keeps
     equals the verified signatures.
  2. Read cost with 1,000,000 verified signatures for the letter: median time of 50 reads of
     C's count(*) (on PostgreSQL with the planner's own plan and with an index scan forced,
     each before and after VACUUM sets the visibility map, without which an index-only scan
     still visits the heap), of B's read with 100 unfolded events, and of one fold of 10,000
     events, both set-based (one DELETE ... RETURNING) and app-style (SELECT the batch, UPDATE
     the letter, DELETE in chunks of 1,000 ids, as petition.services.counts.fold does).

The tables mirror the app's: signature and count_event have a foreign key to letter, so on
PostgreSQL every count_event INSERT also takes a KEY SHARE lock on the letter row (it does not
conflict with other KEY SHARE locks nor with A's UPDATE); --no-event-fk drops that key.

It does not import the app: it uses SQLAlchemy Core with its own throwaway tables, named
bench_counts_<random>_*, created in the PostgreSQL database given by PETITION_BENCH_DATABASE_URL
(default postgresql+psycopg://postgres@127.0.0.1:5432/test) and dropped at the end.  Only a
server on 127.0.0.1 is accepted.

Run from the repository root:

    python -m bench.counts                  # everything, about 1-2 minutes
    python -m bench.counts --quick          # a smoke run, under 30 s
    python -m bench.counts --backends sqlite --hold-ms 0 --seconds 10

It prints a table and writes bench/results/counts.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import secrets
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from bench.seed import postgresql_url_problem
from petition.db import sqlite_pragmas

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
RESULTS_PATH = Path(__file__).resolve().parent / "results" / "counts.json"
LETTER_ID = 1
STRATEGIES = ("C", "A", "B")  # C first: it is the baseline the others are compared with
STRATEGY_NAMES = {"A": "hot row", "B": "count events", "C": "indexed count"}
BACKENDS = ("postgresql", "sqlite")


# --------------------------------------------------------------------------- schema


class Schema:
    """The throwaway tables, shaped like the app's letter, signature and count_event."""

    def __init__(self, prefix: str, event_fk: bool = True) -> None:
        self.prefix = prefix
        self.metadata = sa.MetaData()
        bigint = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # rowid alias on SQLite
        self.letter = sa.Table(
            f"{prefix}letter",
            self.metadata,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("title", sa.String(200), nullable=False),
            sa.Column("signature_count", sa.BigInteger, nullable=False, server_default="0"),
        )
        self.signature = sa.Table(
            f"{prefix}signature",
            self.metadata,
            sa.Column("id", bigint, primary_key=True, autoincrement=False),
            sa.Column(
                "letter_id",
                sa.Integer,
                sa.ForeignKey(f"{prefix}letter.id", ondelete="CASCADE"),
                nullable=False,
            ),
            sa.Column("email", sa.String(320), nullable=False),
            sa.Column("state", sa.String(16), nullable=False),
            sa.Column("verified_at", sa.DateTime),
            sa.Index(f"{prefix}ix_signature_letter_state", "letter_id", "state"),
        )
        self.count_event = sa.Table(
            f"{prefix}count_event",
            self.metadata,
            sa.Column("id", bigint, primary_key=True, autoincrement=True),
            sa.Column(
                "letter_id",
                sa.Integer,
                *([sa.ForeignKey(f"{prefix}letter.id", ondelete="CASCADE")] if event_fk else []),
                nullable=False,
                index=True,
            ),
            sa.Column("delta", sa.Integer, nullable=False),
        )
        sig, ev, letter = self.signature.name, self.count_event.name, self.letter.name
        self.confirm = sa.text(
            f"UPDATE {sig} SET state = 'verified', verified_at = CURRENT_TIMESTAMP "
            "WHERE id = :id AND state = 'pending'"
        )
        self.extra = {
            "A": sa.text(
                f"UPDATE {letter} SET signature_count = signature_count + 1 WHERE id = :letter"
            ),
            "B": sa.text(f"INSERT INTO {ev} (letter_id, delta) VALUES (:letter, 1)"),
            "C": None,
        }
        self.read_b = sa.text(
            f"SELECT l.signature_count + (SELECT coalesce(sum(e.delta), 0) FROM {ev} e "
            f"WHERE e.letter_id = :letter) FROM {letter} l WHERE l.id = :letter"
        )
        self.read_c = sa.text(
            f"SELECT count(*) FROM {sig} WHERE letter_id = :letter AND state = 'verified'"
        )
        self.stored = sa.text(f"SELECT signature_count FROM {letter} WHERE id = :letter")
        self.pending_events = sa.text(
            f"SELECT count(*), coalesce(sum(delta), 0) FROM {ev} WHERE letter_id = :letter"
        )

    def reset(self, engine: Engine) -> None:
        self.metadata.drop_all(engine)
        self.metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(
                self.letter.insert().values(
                    id=LETTER_ID, title="Benchmark letter", signature_count=0
                )
            )

    def drop(self, engine: Engine) -> None:
        self.metadata.drop_all(engine)


# --------------------------------------------------------------------------- engines


def pg_engine(url_text: str, pool_size: int) -> Engine:
    problem = postgresql_url_problem(url_text)
    if problem:
        raise SystemExit(problem)
    return sa.create_engine(url_text, pool_size=pool_size, max_overflow=4)


def sqlite_engine(path: Path, pool_size: int) -> Engine:
    engine = sa.create_engine(
        f"sqlite:///{path}",
        pool_size=pool_size,
        max_overflow=4,
        connect_args={"check_same_thread": False, "timeout": 15},
    )

    event.listen(engine, "connect", sqlite_pragmas)  # the app's own connection settings

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # Writers take the write lock up front; readers opt out with sqlite_begin="DEFERRED".
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


@contextmanager
def reader(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn:
        yield conn.execution_options(sqlite_begin="DEFERRED")


def is_pg(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def seed_signatures(engine: Engine, schema: Schema, rows: int, state: str) -> None:
    """Insert signatures 1..rows for the letter, set-based on both backends."""
    sig = schema.signature.name
    columns = f"{sig} (id, letter_id, email, state, verified_at)"
    verified_at = "CURRENT_TIMESTAMP" if state == "verified" else "NULL"
    values = f"g, :letter, 'user' || g || '@example.org', :state, {verified_at}"
    if is_pg(engine):
        stmt = f"INSERT INTO {columns} SELECT {values} FROM generate_series(1, :rows) AS g"
    else:
        stmt = (
            "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < :rows) "
            f"INSERT INTO {columns} SELECT {values} FROM s"
        )
    with engine.begin() as conn:
        conn.execute(sa.text(stmt), {"letter": LETTER_ID, "state": state, "rows": rows})
    analyze(engine, sig)


def seed_events(engine: Engine, schema: Schema, events: int) -> None:
    ev = schema.count_event.name
    if is_pg(engine):
        stmt = f"INSERT INTO {ev} (letter_id, delta) SELECT :letter, 1 FROM generate_series(1, :n)"
    else:
        stmt = (
            "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < :n) "
            f"INSERT INTO {ev} (letter_id, delta) SELECT :letter, 1 FROM s"
        )
    with engine.begin() as conn:
        conn.execute(sa.text(stmt), {"letter": LETTER_ID, "n": events})


def analyze(engine: Engine, table: str, vacuum: bool = False) -> None:
    if is_pg(engine):
        with engine.connect() as conn:
            auto = conn.execution_options(isolation_level="AUTOCOMMIT")
            auto.exec_driver_sql(f"{'VACUUM ' if vacuum else ''}ANALYZE {table}")
    else:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"ANALYZE {table}")


# --------------------------------------------------------------------------- folding


def fold_set_based(conn: Connection, schema: Schema, batch: int) -> int:
    """Move up to `batch` events into the letter row; the caller commits.  Returns events moved.

    Sums exactly the rows it deleted (DELETE ... RETURNING), so an event committed meanwhile is
    neither lost nor added twice.
    """
    ev, letter = schema.count_event.name, schema.letter.name
    params = {"letter": LETTER_ID, "batch": batch}
    victims = (
        f"DELETE FROM {ev} WHERE id IN (SELECT id FROM {ev} WHERE letter_id = :letter "
        "ORDER BY id LIMIT :batch)"
    )
    if is_pg(conn.engine):
        row = conn.execute(
            sa.text(
                f"WITH moved AS ({victims} RETURNING delta), "
                "total AS (SELECT count(*) AS n, coalesce(sum(delta), 0) AS s FROM moved), "
                f"bump AS (UPDATE {letter} SET signature_count = signature_count + total.s "
                "FROM total WHERE id = :letter AND total.n > 0) "
                "SELECT n FROM total"
            ),
            params,
        ).one()
        return int(row[0])
    deltas = conn.execute(sa.text(f"{victims} RETURNING delta"), params).scalars().all()
    if deltas:
        conn.execute(
            sa.text(
                f"UPDATE {letter} SET signature_count = signature_count + :s WHERE id = :letter"
            ),
            {"s": sum(deltas), "letter": LETTER_ID},
        )
    return len(deltas)


def fold_app_style(conn: Connection, schema: Schema, batch: int) -> int:
    """The shape of petition.services.counts.fold: SELECT the batch, UPDATE, DELETE by id lists."""
    ev, letter = schema.count_event.name, schema.letter.name
    rows = conn.execute(
        sa.text(f"SELECT id, letter_id, delta FROM {ev} ORDER BY id LIMIT :batch"),
        {"batch": batch},
    ).all()
    totals: dict[int, int] = {}
    for _id, letter_id, delta in rows:
        totals[letter_id] = totals.get(letter_id, 0) + delta
    for letter_id in sorted(totals):
        conn.execute(
            sa.text(f"UPDATE {letter} SET signature_count = signature_count + :s WHERE id = :l"),
            {"s": totals[letter_id], "l": letter_id},
        )
    ids = [row[0] for row in rows]
    delete = sa.text(f"DELETE FROM {ev} WHERE id IN :ids").bindparams(
        sa.bindparam("ids", expanding=True)
    )
    for start in range(0, len(ids), 1000):
        conn.execute(delete, {"ids": ids[start : start + 1000]})
    return len(rows)


FOLDS: dict[str, Callable[[Connection, Schema, int], int]] = {
    "set-based": fold_set_based,
    "app-style": fold_app_style,
}


# --------------------------------------------------------------------------- write test


@dataclass
class WorkerStats:
    done: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    error_sample: str | None = None


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def run_writes(
    engine: Engine,
    schema: Schema,
    strategy: str,
    *,
    threads: int,
    seconds: float,
    count: int | None,
    hold_ms: float,
    fold_interval: float,
    fold_batch: int,
) -> dict[str, Any]:
    rows = (
        count
        if count is not None
        else max(20_000, int(seconds * (20_000 if is_pg(engine) else 10_000)))
    )
    schema.reset(engine)
    seed_signatures(engine, schema, rows, "pending")

    ids = itertools.count(1)
    ids_lock = threading.Lock()
    exhausted = threading.Event()
    stop = threading.Event()
    ready = threading.Barrier(threads + 1, timeout=120)
    stats = [WorkerStats() for _ in range(threads)]
    extra = schema.extra[strategy]
    hold = hold_ms / 1000
    deadline = [float("inf")]

    def next_id() -> int | None:
        with ids_lock:
            value = next(ids)
        if value > rows:
            exhausted.set()
            return None
        return value

    def worker(mine: WorkerStats) -> None:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1")).scalar()
            conn.rollback()
            ready.wait()
            while not stop.is_set() and time.perf_counter() < deadline[0]:
                sid = next_id()
                if sid is None:
                    return
                started = time.perf_counter()
                try:
                    with conn.begin():
                        conn.execute(schema.confirm, {"id": sid})
                        if extra is not None:
                            conn.execute(extra, {"letter": LETTER_ID})
                        if hold:
                            time.sleep(hold)
                except sa.exc.DBAPIError as exc:  # count it; the row stays pending
                    mine.errors += 1
                    mine.error_sample = mine.error_sample or str(exc.orig)[:200]
                    continue
                mine.latencies.append(time.perf_counter() - started)
                mine.done += 1

    folds = {"runs": 0, "events": 0, "max_ms": 0.0}

    def folder() -> None:
        with engine.connect() as conn:
            while not stop.wait(fold_interval):
                while True:
                    started = time.perf_counter()
                    with conn.begin():
                        moved = fold_set_based(conn, schema, fold_batch)
                    folds["runs"] += 1
                    folds["events"] += moved
                    folds["max_ms"] = max(folds["max_ms"], (time.perf_counter() - started) * 1000)
                    if moved < fold_batch:
                        break

    pool = [threading.Thread(target=worker, args=(s,), daemon=True) for s in stats]
    if strategy == "B":
        pool.append(threading.Thread(target=folder, daemon=True))
    for thread in pool:
        thread.start()
    try:
        ready.wait()
        start = time.perf_counter()
        if count is None:
            deadline[0] = start + seconds
        for thread in pool[:threads]:
            thread.join()
        elapsed = time.perf_counter() - start
    finally:
        stop.set()
        for thread in pool:
            thread.join()

    if strategy == "B":  # fold the rest, so the stored count alone must now be exact
        with engine.begin() as conn:
            while fold_set_based(conn, schema, fold_batch):
                pass
    with reader(engine) as conn:
        verified = conn.execute(schema.read_c, {"letter": LETTER_ID}).scalar_one()
        stored = conn.execute(schema.stored, {"letter": LETTER_ID}).scalar_one()
    kept = {"A": stored, "B": stored, "C": verified}[strategy]

    done = sum(s.done for s in stats)
    latencies = [x for s in stats for x in s.latencies]
    errors = sum(s.errors for s in stats)
    result: dict[str, Any] = {
        "strategy": strategy,
        "name": STRATEGY_NAMES[strategy],
        "threads": threads,
        "hold_ms": hold_ms,
        "confirmations": done,
        "seconds": round(elapsed, 3),
        "per_second": round(done / elapsed, 1) if elapsed else None,
        "p50_ms": ms(percentile(latencies, 0.50)),
        "p99_ms": ms(percentile(latencies, 0.99)),
        "max_ms": ms(max(latencies, default=None)),
        "per_thread": [s.done for s in stats],
        "errors": errors,
        "error_sample": next((s.error_sample for s in stats if s.error_sample), None),
        "pending_rows_seeded": rows,
        "ran_out_of_rows": exhausted.is_set() and count is None,
        "verified": verified,
        "count_kept": kept,
        "count_ok": kept == verified == done,
    }
    if strategy == "B":
        result["background_folds"] = {
            "interval_s": fold_interval,
            "runs": folds["runs"],
            "events": folds["events"],
            "max_ms": round(folds["max_ms"], 3),
        }
    return result


# --------------------------------------------------------------------------- read test


def time_reads(
    engine: Engine, stmt: sa.TextClause, reads: int, setup: str | None = None
) -> tuple[list[float], int]:
    """Each read in its own short transaction, as a page view would; two warm-up reads first.

    `setup` is a session setting (PostgreSQL) applied before the reads and reset after them.
    """
    times = []
    value = 0
    with reader(engine) as conn:
        if setup:
            conn.exec_driver_sql(setup)
            conn.commit()
        for i in range(reads + 2):
            started = time.perf_counter()
            value = conn.execute(stmt, {"letter": LETTER_ID}).scalar_one()
            conn.rollback()
            if i >= 2:
                times.append(time.perf_counter() - started)
        if setup:
            conn.exec_driver_sql("RESET ALL")
            conn.commit()
    return times, int(value)


def summarize(times: list[float]) -> dict[str, Any]:
    return {
        "n": len(times),
        "median_ms": ms(statistics.median(times)),
        "p90_ms": ms(percentile(times, 0.90)),
        "min_ms": ms(min(times)),
        "max_ms": ms(max(times)),
    }


def explain(engine: Engine, stmt: sa.TextClause, setup: str | None = None) -> dict[str, Any]:
    """Plan nodes and heap fetches of one EXPLAIN ANALYZE run (PostgreSQL only)."""
    sql = stmt.text.replace(":letter", str(LETTER_ID))
    with reader(engine) as conn:
        if setup:
            conn.exec_driver_sql(f"SET LOCAL {setup.removeprefix('SET ')}")
        plan = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}").scalar_one()
        conn.rollback()
    root = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
    nodes, heap_fetches, stack = [], 0, [root]
    while stack:
        node = stack.pop()
        nodes.append(node["Node Type"])
        heap_fetches += int(node.get("Heap Fetches", 0))
        stack.extend(node.get("Plans", []))
    return {"nodes": nodes, "heap_fetches": heap_fetches}


def run_reads(
    engine: Engine,
    schema: Schema,
    *,
    rows: int,
    reads: int,
    events: int,
    fold_events: int,
    fold_repeats: int,
) -> dict[str, Any]:
    schema.reset(engine)
    pg = is_pg(engine)
    if pg:  # so that "before VACUUM" really is before it, whatever autovacuum would do
        with engine.begin() as conn:
            conn.exec_driver_sql(
                f"ALTER TABLE {schema.signature.name} SET (autovacuum_enabled = false)"
            )
    started = time.perf_counter()
    seed_signatures(engine, schema, rows, "verified")
    seed_seconds = time.perf_counter() - started
    with engine.begin() as conn:
        conn.execute(
            schema.letter.update().where(schema.letter.c.id == LETTER_ID),
            {"signature_count": rows - events},
        )
    seed_events(engine, schema, events)
    analyze(engine, schema.count_event.name)

    out: dict[str, Any] = {"rows": rows, "seed_seconds": round(seed_seconds, 2), "reads": reads}
    if pg:
        # The planner's choice, and an index-only scan forced, before and after VACUUM sets the
        # visibility map: until it does, an index-only scan still visits every heap page.
        out["plans"] = {}
        force = "SET enable_seqscan = off"
        for when in ("before VACUUM", "after VACUUM"):
            if when == "after VACUUM":
                analyze(engine, schema.signature.name, vacuum=True)
            for how, setup in (("planner's choice", None), ("index forced", force)):
                label = f"C count(*), {when}, {how}"
                out["plans"][label] = explain(engine, schema.read_c, setup)
                times, c_value = time_reads(engine, schema.read_c, reads, setup)
                out[label] = summarize(times)
    else:
        times, c_value = time_reads(engine, schema.read_c, reads)
        out["C count(*)"] = summarize(times)
    times, b_value = time_reads(engine, schema.read_b, reads)
    out[f"B stored + {events} events"] = summarize(times)
    out["values_agree"] = b_value == c_value == rows

    expected = b_value
    for name, fold in FOLDS.items():
        fold_times = []
        for _ in range(fold_repeats):
            with engine.begin() as conn:  # start from no pending events
                while fold_set_based(conn, schema, fold_events):
                    pass
            seed_events(engine, schema, fold_events)
            analyze(engine, schema.count_event.name)
            expected += fold_events
            started = time.perf_counter()
            with engine.begin() as conn:
                moved = fold(conn, schema, fold_events)
            fold_times.append(time.perf_counter() - started)
            if moved != fold_events:
                raise RuntimeError(f"{name} fold moved {moved}, not {fold_events}")
        with reader(engine) as conn:
            stored = conn.execute(schema.stored, {"letter": LETTER_ID}).scalar_one()
            left = conn.execute(schema.pending_events, {"letter": LETTER_ID}).one()
        out[f"B fold {fold_events:,} events ({name})"] = summarize(fold_times)
        out["values_agree"] = out["values_agree"] and stored + left[1] == expected
    return out


# --------------------------------------------------------------------------- driver


def run_backend(backend: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    threads = args.pg_threads if backend == "postgresql" else args.sqlite_threads
    if backend == "postgresql":
        engine = pg_engine(args.database_url, pool_size=threads + 2)
    else:
        engine = sqlite_engine(workdir / "bench_counts.sqlite3", pool_size=threads + 2)
    schema = Schema(f"bench_counts_{secrets.token_hex(3)}_", event_fk=not args.no_event_fk)
    result: dict[str, Any] = {"threads": threads}
    try:
        with engine.connect() as conn:
            if backend == "postgresql":
                result["server"] = conn.exec_driver_sql("SHOW server_version").scalar_one()
                result["synchronous_commit"] = conn.exec_driver_sql(
                    "SHOW synchronous_commit"
                ).scalar_one()
            else:
                result["server"] = sqlite3.sqlite_version
        order = list(STRATEGIES)
        writes: dict[str, list[dict[str, Any]]] = {s: [] for s in order}
        for round_no in range(args.rounds):
            for strategy in order if round_no % 2 == 0 else order[::-1]:
                print(f"  [{backend}] write test: {strategy} ({STRATEGY_NAMES[strategy]}) ...")
                writes[strategy].append(
                    run_writes(
                        engine,
                        schema,
                        strategy,
                        threads=threads,
                        seconds=args.seconds,
                        count=args.count,
                        hold_ms=args.hold_ms,
                        fold_interval=args.fold_interval,
                        fold_batch=args.fold_events,
                    )
                )
        result["write"] = {}
        for strategy in order:
            runs = writes[strategy]
            row = dict(runs[0])
            if len(runs) > 1:
                row["per_second"] = round(statistics.median(r["per_second"] for r in runs), 1)
                row["rounds"] = [r["per_second"] for r in runs]
                row["count_ok"] = all(r["count_ok"] for r in runs)
                row["note"] = "per_second is the median of the rounds; the rest is round 1"
            result["write"][strategy] = row
        baseline = result["write"]["C"]["per_second"]
        for row in result["write"].values():
            row["ratio_to_C"] = round(row["per_second"] / baseline, 3) if baseline else None
        print(f"  [{backend}] read test: seeding {args.read_rows:,} verified signatures ...")
        result["read"] = run_reads(
            engine,
            schema,
            rows=args.read_rows,
            reads=args.reads,
            events=args.events,
            fold_events=args.fold_events,
            fold_repeats=args.fold_repeats,
        )
    finally:
        schema.drop(engine)
        engine.dispose()
    return result


def fmt(value: Any, spec: str = ",.1f") -> str:
    return "-" if value is None else format(value, spec)


def print_tables(results: dict[str, Any], args: argparse.Namespace) -> None:
    for backend in BACKENDS:
        data = results.get(backend)
        if not data:
            continue
        if "error" in data:
            print(f"\n{backend}: not measured: {data['error']}")
            continue
        mode = f"{args.count:,} confirmations" if args.count else f"{args.seconds:g} s each"
        print(
            f"\n{backend} {data['server']}: write throughput "
            f"({data['threads']} threads, hold {args.hold_ms:g} ms, {mode})"
        )
        print(
            f"  {'strategy':<20}{'conf/s':>10}{'vs C':>7}{'p50 ms':>9}{'p99 ms':>9}"
            f"{'max ms':>9}{'per thread':>13}{'errors':>8}  count"
        )
        for key in ("A", "B", "C"):
            row = data["write"][key]
            spread = f"{min(row['per_thread']):,}-{max(row['per_thread']):,}"
            flags = "ok" if row["count_ok"] else f"WRONG ({row['count_kept']})"
            if row["ran_out_of_rows"]:
                flags += ", ran out of rows"
            print(
                f"  {key + ' ' + row['name']:<20}{fmt(row['per_second']):>10}"
                f"{fmt(row['ratio_to_C'], '.2f'):>7}{fmt(row['p50_ms'], '.2f'):>9}"
                f"{fmt(row['p99_ms'], '.2f'):>9}{fmt(row['max_ms'], ',.1f'):>9}"
                f"{spread:>13}{row['errors']:>8}  {flags}"
            )
        folds = data["write"]["B"].get("background_folds")
        if folds:
            print(
                f"  (B's folder, alongside, every {folds['interval_s']:g} s: "
                f"{folds['runs']} folds, {folds['events']:,} events, "
                f"slowest {folds['max_ms']:.1f} ms incl. lock wait)"
            )
        read = data["read"]
        print(
            f"\n{backend}: read cost with {read['rows']:,} verified signatures "
            f"(seeded in {read['seed_seconds']:.1f} s)"
        )
        print(f"  {'operation':<52}{'median ms':>11}{'p90 ms':>10}{'n':>5}")
        for name, value in read.items():
            if isinstance(value, dict) and "median_ms" in value:
                print(
                    f"  {name:<52}{fmt(value['median_ms'], ',.3f'):>11}"
                    f"{fmt(value['p90_ms'], ',.3f'):>10}{value['n']:>5}"
                )
        for label, plan in read.get("plans", {}).items():
            print(
                f"  plan of {label.removeprefix('C count(*), ')}: {' > '.join(plan['nodes'])}, "
                f"heap fetches {plan['heap_fetches']:,}"
            )
        print(f"  values agree: {read['values_agree']}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.counts",
        description="Compare hot-row, count-event and indexed-count signature counts.",
    )
    parser.add_argument("--backends", default=",".join(BACKENDS), help="postgresql,sqlite")
    parser.add_argument("--seconds", type=float, default=5.0, help="write test per strategy")
    parser.add_argument("--count", type=int, help="confirmations per strategy instead of time")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the write tests (median)")
    parser.add_argument("--pg-threads", type=int, default=16)
    parser.add_argument("--sqlite-threads", type=int, default=4)
    parser.add_argument("--hold-ms", type=float, default=2.0, help="sleep before COMMIT")
    parser.add_argument("--fold-interval", type=float, default=1.0, help="B's folder, seconds")
    parser.add_argument("--read-rows", type=int, default=1_000_000)
    parser.add_argument("--reads", type=int, default=50)
    parser.add_argument("--events", type=int, default=100, help="unfolded events for B's read")
    parser.add_argument("--fold-events", type=int, default=10_000)
    parser.add_argument("--fold-repeats", type=int, default=5)
    parser.add_argument(
        "--no-event-fk",
        action="store_true",
        help="count_event.letter_id without the app's foreign key to letter",
    )
    parser.add_argument("--quick", action="store_true", help="short smoke run, about 30 s")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds = min(args.seconds, 1.5)
        args.reads = min(args.reads, 11)
        args.fold_repeats = min(args.fold_repeats, 2)
        args.read_rows = min(args.read_rows, 300_000)
    args.database_url = os.environ.get("PETITION_BENCH_DATABASE_URL", DEFAULT_PG_URL)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(args.backends) - set(BACKENDS)
    if unknown:
        parser.error(f"unknown backends: {sorted(unknown)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "meta": {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "sqlalchemy": sa.__version__,
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "database_url": sa.make_url(args.database_url).render_as_string(hide_password=True),
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        }
    }
    results["meta"]["args"].pop("database_url")
    with tempfile.TemporaryDirectory(prefix="bench_counts_") as tmp:
        for backend in args.backends:
            print(f"{backend}:")
            try:
                results[backend] = run_backend(backend, args, Path(tmp))
            except sa.exc.OperationalError as exc:
                print(f"  {backend} unavailable: {exc.orig}")
                results[backend] = {"error": str(exc.orig)}
    results["meta"]["total_seconds"] = round(time.perf_counter() - started, 1)
    print_tables(results, args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nTotal {results['meta']['total_seconds']} s; results in {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
