"""Does the sign form answer an address that has signed as fast as a new one?  A privacy check.

Whether someone signed a letter is a political opinion. If signing again with an address that
has signed took longer to answer, anyone could type a person's address into the form and learn
it from the time. This runs the app under gunicorn as the benchmark does (SQLite in a temporary
directory, or PostgreSQL with --backend postgresql and PETITION_BENCH_DATABASE_URL), then signs,
one request at a time, alternately a new address and one that signed a moment before, and
compares the two sets of response times (median and deciles).

    .venv/bin/python -m bench.repeat_timing            # 500 of each, about a minute
    .venv/bin/python -m bench.repeat_timing --pairs 2000

It exits 1 when the medians differ by more than --tolerance (5 %).
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import time
import urllib.parse

from bench import seed
from bench.harness import app_env, form_session
from bench.servers import HOST, Gunicorn, GunicornSettings


def _timed_sign(port: int, slug: str, cookie: str, csrf: str, address: str) -> float:
    form = {"csrf_token": csrf, "name": "Timing Check", "email": address}
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        headers = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}
        started = time.perf_counter()
        connection.request("POST", f"/letters/{slug}/sign", urllib.parse.urlencode(form), headers)
        response = connection.getresponse()
        response.read()
        elapsed = time.perf_counter() - started
    finally:
        connection.close()
    if response.status != 303:
        raise SystemExit(f"signing {address} answered {response.status}, not 303")
    return elapsed


def _describe(label: str, times: list[float]) -> str:
    deciles = ", ".join(f"{value * 1000:.2f}" for value in statistics.quantiles(times, n=10))
    return f"{label:<7} median {statistics.median(times) * 1000:.3f} ms; deciles (ms) {deciles}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=500, help="new and repeat signings, each")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--tolerance", type=float, default=0.05, help="largest median difference")
    args = parser.parse_args(argv)
    if args.pairs < 20:
        parser.error("--pairs must be at least 20")

    with seed.migrated_database(args.backend, "petition-timing-") as (db, workdir):
        letter = db.create_letter(db.app(workdir), "timing", "timing-check", "Timing check")
        server = Gunicorn("petition.wsgi:app", GunicornSettings(), {}, workdir / "gunicorn.log")
        server.env = app_env(db.url, workdir, None, server.port)
        with server:
            cookie, csrf = form_session(server.port, letter.slug)

            def sign(address: str) -> float:
                return _timed_sign(server.port, letter.slug, cookie, csrf, address)

            for number in range(50):  # warm up both paths in both workers
                sign(f"warm-{number}@example.org")
                sign(f"warm-{number}@example.org")
            new, repeat = [], []
            for number in range(args.pairs):
                new.append(sign(f"signer-{number}@example.org"))
                repeat.append(sign(f"signer-{number}@example.org"))

    difference = statistics.median(repeat) / statistics.median(new) - 1
    print(f"{args.pairs} new and {args.pairs} repeat signings on {args.backend}, one at a time:")
    print(_describe("new", new))
    print(_describe("repeat", repeat))
    verdict = "PASS" if abs(difference) <= args.tolerance else "FAIL"
    print(f"repeat / new median: {difference:+.1%} (tolerance ±{args.tolerance:.0%}): {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
