"""`python -m bench.interleaved`: settings compared by taking turns, not one run after another.

On a shared machine two runs of the same code minutes apart can differ by 40 %, more than most
changes worth measuring. This starts one gunicorn per configuration, all at once, against fresh
databases, then takes turns: a few seconds of sign, then of verify, for each configuration in
turn, for several rounds. Every round compares each configuration with the first one measured
moments before it, and the summary gives the median of those ratios. Only 127.0.0.1 is used;
the gunicorn processes started here are stopped by their PIDs.

    python -m bench.interleaved sqlite,workers=2 postgresql,workers=2 postgresql,workers=4
    python -m bench.interleaved postgresql,workers=4 postgresql,workers=4,reclaim=20000

A configuration is a backend (sqlite, postgresql) and any of workers=N, class=sync|gthread,
threads=N (gunicorn), fold=S (seconds between folds of count events), reclaim=N (vacuum
count_event after every N folded events) and synchronous=LEVEL (SQLite's synchronous pragma:
off, normal, full, extra; PostgreSQL's synchronous_commit: off, local, on; see
bench/synchronous_app.py), and on PostgreSQL socket=DIR (the app connects through the Unix
socket in DIR instead of the URL's host). PostgreSQL needs PETITION_BENCH_DATABASE_URL, and
uses Redis too when PETITION_BENCH_REDIS_URL is set, as `python -m bench` does.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import urllib.parse
import uuid
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench import harness, seed, wrk
from bench.servers import Gunicorn, GunicornSettings
from petition.worker import FOLD_EVERY_SECONDS, RECLAIM_AFTER_EVENTS

SIGN_PATH = "/letters/bench-writes/sign"
_SETTING_NAMES = {"worker_class": "class"}
SYNCHRONOUS_LEVELS = {
    "sqlite": ("off", "normal", "full", "extra"),
    "postgresql": ("off", "local", "on"),
}
SCENARIOS = ("sign", "verify")


@dataclass(frozen=True)
class Config:
    backend: str
    workers: int = 2
    worker_class: str = "sync"
    threads: int = 1
    fold: float = FOLD_EVERY_SECONDS
    reclaim: int = RECLAIM_AFTER_EVENTS
    synchronous: str | None = None  # the app's own: SQLite normal, PostgreSQL on
    socket: str | None = None  # PostgreSQL: a Unix socket directory, instead of the URL's host

    @property
    def name(self) -> str:
        """The backend, its workers, and every other setting that is not the default."""
        defaults = Config(self.backend)
        shown = [self.backend, f"workers={self.workers}"]
        for key, value in asdict(self).items():
            if key not in ("backend", "workers") and value != getattr(defaults, key):
                shown.append(f"{_SETTING_NAMES.get(key, key)}={value}")
        return ",".join(shown)

    @property
    def database_key(self) -> tuple[str, float, int]:
        """Configurations that fold alike share a database; the others get one each."""
        return (self.backend, self.fold, self.reclaim)


def parse_config(text: str) -> Config:
    backend, *settings = [part.strip() for part in text.split(",")]
    if backend not in harness.BACKENDS:
        backends = ", ".join(harness.BACKENDS)
        raise argparse.ArgumentTypeError(f"{text!r}: start with one of {backends}")
    kinds = {
        "workers": int,
        "class": str,
        "threads": int,
        "fold": float,
        "reclaim": int,
        "synchronous": str.lower,
        "socket": str,
    }
    fields = {"class": "worker_class"}
    values: dict[str, Any] = {}
    for setting in settings:
        key, equals, value = setting.partition("=")
        if not equals or key not in kinds:
            known = ", ".join(kinds)
            raise argparse.ArgumentTypeError(f"{text!r}: settings are {known}, as key=value")
        try:
            values[fields.get(key, key)] = kinds[key](value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: {key} takes a number") from None
    levels = SYNCHRONOUS_LEVELS[backend]
    if values.get("synchronous", levels[0]) not in levels:
        raise argparse.ArgumentTypeError(
            f"{text!r}: synchronous on {backend} is one of {', '.join(levels)}"
        )
    socket = values.get("socket")
    if socket is not None and (backend != "postgresql" or not socket.startswith("/")):
        raise argparse.ArgumentTypeError(
            f"{text!r}: socket is for postgresql, a directory such as /var/run/postgresql"
        )
    return Config(backend, **values)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.interleaved",
        description="Compare gunicorn and count-folding settings for sign and verify by taking "
        "turns; the first configuration is the reference.",
    )
    parser.add_argument(
        "configs",
        nargs="+",
        type=parse_config,
        metavar="CONFIG",
        help="sqlite or postgresql, then any of workers=N, class=sync|gthread, threads=N, "
        "fold=SECONDS, reclaim=N, synchronous=LEVEL and (postgresql) socket=DIR, comma-separated: "
        "postgresql,workers=4,socket=/var/run/postgresql",
    )
    parser.add_argument("--rounds", type=int, default=4, help="turns per configuration (4)")
    parser.add_argument("--seconds", type=float, default=5.0, help="per scenario and turn (5)")
    parser.add_argument("--output", type=Path, default=None, help="also write the results as JSON")
    args = parser.parse_args(argv)
    postgresql = any(c.backend == "postgresql" for c in args.configs)
    if postgresql and (problem := seed.bench_database_problem()):
        parser.error(problem)
    if args.rounds < 1 or args.seconds <= 0:
        parser.error("--rounds and --seconds must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    wrk.wrk_binary()
    report = compare(
        args.configs,
        rounds=args.rounds,
        seconds=args.seconds,
        redis_url=harness.checked_redis_url(),
    )
    print()
    print(report["text"])
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwritten to {args.output}")
    return 0 if report["errors"] == 0 else 1


def compare(
    configs: list[Config],
    *,
    rounds: int,
    seconds: float,
    redis_url: str | None,
    rows: int = 0,
) -> dict[str, Any]:
    """Serve every configuration at once and take turns at sign and verify; the summary
    (_summary()) with every turn's results. `rows` verified signatures are seeded on another
    letter of each database, as `python -m bench` seeds its big letter."""
    work = Path(tempfile.mkdtemp(prefix="petition-bench-interleaved-"))
    # The harness's own settings for what is shared: wrk, re-measuring off (turns replace it).
    runner = harness.Runner(
        harness.parse_args(["--seconds", str(seconds), "--warmup", "1", "--retries", "0"]),
        work,
    )
    tokens_needed = harness.VERIFY_RATE_CEILING * int(seconds + 1) * rounds
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        databases: dict[tuple[str, float, int], dict[str, Any]] = {}
        turns = []
        for number, config in enumerate(configs):
            found = databases.get(config.database_key)
            if found is None:
                folder = work / f"db{len(databases)}"
                found = _database(stack, config, folder, redis_url, rows)
                databases[config.database_key] = found
            found["tokens_needed"] += tokens_needed
            turns.append((config, found, _server(stack, config, found, work / f"g{number}.log")))
        for found in databases.values():
            harness.log(f"{found['db'].name or found['db'].url}: seeding pending signatures")
            found["tokens"] = found["db"].seed_pending(found["writes"], found["tokens_needed"])
            found["db"].settle()
            found["folder"].start()
        for round_number in range(rounds):
            # The order reverses every round, so that no configuration always comes first.
            ordered = turns if round_number % 2 == 0 else turns[::-1]
            for config, found, (server, cookie, csrf) in ordered:
                runner.database = found["db"] if config.backend == "postgresql" else None
                runner.redis_url = found["redis_url"]
                measured = results.setdefault(config.name, {name: [] for name in SCENARIOS})
                label = f"round {round_number + 1} {config.name}"
                measured["sign"].append(_sign(runner, server, cookie, csrf, label))
                measured["verify"].append(_verify(runner, server, cookie, csrf, found, label))
    return _summary(configs, results) | {"results": results}


def _database(
    stack: ExitStack, config: Config, folder: Path, redis_url: str | None, rows: int
) -> dict:
    folder.mkdir()
    if config.backend == "sqlite":
        db, redis_url = seed.BenchDatabase.sqlite(folder), None
    else:
        db = seed.BenchDatabase.postgresql(os.environ["PETITION_BENCH_DATABASE_URL"])
    stack.callback(db.drop)
    db.migrate()
    app = db.app(folder / "mail", redis_url)
    stack.callback(lambda: app.extensions["petition.engine"].dispose())
    writes = db.create_letter(app, "writes", "bench-writes", "Open the library on Sundays")
    big = db.create_letter(app, "million", "bench-million", "Save the Riverside library")
    if rows:
        with seed.timed(f"{config.backend}: seeded {rows:,} verified signatures", harness.log):
            db.seed_verified(big, rows)
    folder_thread = harness.Folder(db, folder / "mail", config.fold, config.reclaim)
    stack.callback(folder_thread.stop)
    return {
        "db": db,
        "mail": folder / "mail",
        "writes": writes,
        "redis_url": redis_url,
        "folder": folder_thread,
        "tokens_needed": 0,
        "used": 0,
    }


def _server(stack: ExitStack, config: Config, found: dict, log_path: Path):
    settings = GunicornSettings(
        workers=config.workers, worker_class=config.worker_class, threads=config.threads
    )
    app = "petition.wsgi:app" if config.synchronous is None else "bench.synchronous_app:app"
    server = Gunicorn(app, settings, {}, log_path, ready_path="/api/v1/letters/bench-million")
    server.env = harness.app_env(
        _app_url(found["db"].url, config), found["mail"], found["redis_url"], server.port
    )
    if config.synchronous is not None:
        server.env["BENCH_SYNCHRONOUS"] = config.synchronous
    stack.enter_context(server)
    cookie, csrf = harness.form_session(server.port, "bench-writes")
    return server, cookie, urllib.parse.quote(csrf, safe="")


def _app_url(url: str, config: Config) -> str:
    """The database URL the app gets: through the Unix socket when the configuration says so."""
    if config.socket is None:
        return url
    tcp = sa.make_url(url)
    # The port stays: it names the socket file (.s.PGSQL.<port>) in the directory.
    through_socket = sa.URL.create(
        tcp.drivername,
        tcp.username,
        tcp.password,
        port=tcp.port,
        database=tcp.database,
        query={**tcp.query, "host": config.socket},
    )
    return through_socket.render_as_string(hide_password=False)


def _sign(runner, server, cookie: str, csrf: str, label: str) -> dict[str, Any]:
    prefix = f"i{uuid.uuid4().hex[:8]}"
    result = runner.load(
        server,
        f"{label} sign",
        "/",
        "sign.lua",
        [SIGN_PATH, cookie, csrf, prefix],
        warmup_args=[SIGN_PATH, cookie, csrf, f"u{prefix}"],
    )
    return _kept(result, harness.expected_status_errors(result, 303))


def _verify(runner, server, cookie: str, csrf: str, found: dict, label: str) -> dict[str, Any]:
    share = harness.VERIFY_RATE_CEILING * int(runner.args.seconds + 1)
    chunk = found["tokens"][found["used"] : found["used"] + share]
    found["used"] += share
    token_file = runner.workdir / f"tokens-{uuid.uuid4().hex}.txt"
    token_file.write_text("\n".join(chunk) + "\n")
    result = runner.load(
        server,
        f"{label} verify",
        "/",
        "verify.lua",
        [str(token_file), str(runner.args.threads), cookie, csrf],
    )
    errors = harness.expected_status_errors(result, 200) + (1 if result["exhausted"] else 0)
    return _kept(result, errors)


def _kept(result: dict[str, Any], errors: int) -> dict[str, Any]:
    return {
        "rps": result["rps"],
        "cpu_ms": result["server_cpu_ms_per_req"],
        "db_ms": result.get("database_cpu_ms_per_req"),
        "other_pct": result["foreign_cpu_pct"],
        "errors": errors,
    }


def _summary(configs: list[Config], results: dict) -> dict[str, Any]:
    reference = configs[0].name
    lines = [
        f"{'configuration':<44} {'scenario':<7} {'median req/s':>12} {'× first':>8}  per round"
    ]
    errors = 0
    rows = []
    for config in configs:
        for scenario in SCENARIOS:
            turns = results[config.name][scenario]
            ratios = [
                turn["rps"] / first["rps"]
                for turn, first in zip(turns, results[reference][scenario], strict=True)
            ]
            errors += sum(turn["errors"] for turn in turns)
            row = {
                "config": config.name,
                "scenario": scenario,
                "median_rps": statistics.median(turn["rps"] for turn in turns),
                "median_ratio": round(statistics.median(ratios), 3),
                "ratios": [round(ratio, 3) for ratio in ratios],
                "cpu_ms": [turn["cpu_ms"] for turn in turns],
                "db_ms": [turn["db_ms"] for turn in turns],
                "errors": sum(turn["errors"] for turn in turns),
            }
            rows.append(row)
            lines.append(
                f"{config.name:<44} {scenario:<7} {row['median_rps']:>12,.0f} "
                f"{row['median_ratio']:>8.2f}  {', '.join(f'{r:.2f}' for r in row['ratios'])}"
                f"  (cpu ms {row['cpu_ms']}, db ms {row['db_ms']}, errors {row['errors']})"
            )
    lines.append("")
    lines.append(
        f"× first: the median over rounds of req/s / the first configuration's ({reference}) "
        "in the same round; cpu ms: the gunicorn workers' CPU per request; db ms: "
        "PostgreSQL's and Redis's."
    )
    return {"reference": reference, "rows": rows, "errors": errors, "text": "\n".join(lines)}


if __name__ == "__main__":
    sys.exit(main())
