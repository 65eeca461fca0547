"""`python -m bench soak`: many signatures through two app instances, then prove nothing was lost.

Two gunicorn processes on different ports share one database (PostgreSQL, with Redis when
PETITION_BENCH_REDIS_URL is set; or one SQLite file). Half the signatures are signed through
each (one wrk per instance, bench/lua/soak_sign.lua), every signature's confirmation token is read
from the outbox (no mail worker runs, so the `verify` messages stay pending with the link in
their body) and confirmed through the instances in two halves (bench/lua/soak_verify.lua). Then:

- the rows stored equal the 303s answered, one pending confirmation mail per row;
- the rows verified equal the 200s answered and the signatures stored;
- confirming again through the *other* instance changes nothing;
- both instances show the same count, equal to the verified rows;
- `petition letters export` writes exactly the verified set (same rows, same addresses);
- `counts.recount` finds no difference between the count shown and the verified rows.

Exit status 1 when any of these fails.
"""

from __future__ import annotations

import csv
import http.client
import json
import os
import shutil
import signal
import tempfile
import time
import urllib.parse
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import harness, seed, wrk
from bench.servers import HOST, Gunicorn

SLUG = "soak"
FILLER = f"/api/v1/letters/{SLUG}"  # conditional GET, answered 304: see soak_sign.lua
log = harness.log


def backends_for(args: Any) -> list[str]:
    """`python -m bench soak` alone: PostgreSQL when its URL is set, SQLite otherwise."""
    if args.backends is None:
        return ["postgresql"] if os.environ.get("PETITION_BENCH_DATABASE_URL") else ["sqlite"]
    return args.backend_list


def _conditional_status(port: int) -> int:
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        connection.request("GET", FILLER, headers={"If-None-Match": "*"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def _phase(
    servers: list[Gunicorn],
    script: str,
    per_server_args: list[list[str]],
    markers: Path,
    expected_markers: list[list[str]],
    settings: wrk.WrkSettings,
    limit: float,
) -> dict[str, Any]:
    """One wrk per instance at once; each is interrupted as soon as all its threads are done."""
    started = time.monotonic()
    processes = [
        wrk.spawn(server.url + "/", script, limit, settings, args)
        for server, args in zip(servers, per_server_args, strict=True)
    ]
    finished: list[float | None] = [None] * len(processes)
    while any(value is None for value in finished):
        for index, process in enumerate(processes):
            if finished[index] is not None:
                continue
            if all((markers / name).exists() for name in expected_markers[index]):
                finished[index] = time.monotonic() - started
                process.send_signal(signal.SIGINT)
            elif process.poll() is not None:  # ran out of time (-d) or failed
                finished[index] = time.monotonic() - started
        time.sleep(0.05)
    results = [wrk.collect(process) for process in processes]
    wall = max(value or 0.0 for value in finished)
    return {"wall_s": round(wall, 3), "instances": results}


def _stored(db: seed.BenchDatabase, letter_id: int, state: str | None = None) -> int:
    condition = " AND state = :state" if state else ""
    return int(
        db.scalar(
            f"SELECT count(*) FROM signature WHERE letter_id = :id{condition}",
            id=letter_id,
            state=state,
        )
    )


def _tokens(db: seed.BenchDatabase) -> tuple[list[str], int]:
    """The raw tokens of the pending confirmation mails, and the mails' count."""
    import sqlalchemy as sa

    # The soak's database holds this one letter, so no join: through a server-side cursor
    # (which PostgreSQL plans for the first rows) the join was planned as a nested loop over
    # tables never analysed, 39 s for 30,000 rows.
    query = sa.text(
        "SELECT context FROM message WHERE kind = 'verify' AND state = 'pending' "
        "AND signature_id IS NOT NULL ORDER BY id"
    )
    found: list[str] = []
    messages = 0
    with db.engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=5000)
        for (body,) in result.execute(query):
            messages += 1
            match = harness.VERIFY_LINK.search(body or "")
            if match:
                found.append(match.group(1))
    return found, messages


def _export(env: dict[str, str], output: Path) -> tuple[dict[str, Any], list[dict[str, str]]]:
    result = harness.export_measured(env, SLUG, output)
    with output.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    output.unlink()
    return {
        "rows": len(rows),
        "seconds": round(result.seconds, 3),
        "rows_per_s": round(len(rows) / result.seconds, 1) if result.seconds else 0.0,
        "peak_rss_mb": round(result.peak_rss_mb, 1),
    }, rows


def _shown(servers: list[Gunicorn], expected: int, wait: float) -> list[int | None]:
    """Each instance's count, polled until all show `expected` or `wait` seconds pass."""
    deadline = time.monotonic() + wait
    while True:
        shown = [harness.shown_count(server.port, FILLER) for server in servers]
        if all(value == expected for value in shown) or time.monotonic() > deadline:
            return shown
        time.sleep(0.25)


def _phase_summary(name: str, phase: dict[str, Any], done: int, expected: str) -> dict[str, Any]:
    statuses: dict[str, int] = {}
    socket_errors = 0
    for result in phase["instances"]:
        for status, count in result["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
        socket_errors += result["socket_errors"]
    phase.update(
        done=done,
        per_s=round(done / phase["wall_s"], 1) if phase["wall_s"] else 0.0,
        statuses=statuses,
        socket_errors=socket_errors,
        unexpected=sum(n for status, n in statuses.items() if status != expected) + socket_errors,
    )
    latencies = ", ".join(
        f"instance {i + 1}: p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms"
        for i, r in enumerate(phase["instances"])
    )
    log(
        f"soak {name}: {done:,} in {phase['wall_s']:.1f} s = {phase['per_s']:,.0f}/s; "
        f"statuses {statuses}, socket errors {socket_errors}; {latencies}"
    )
    return phase


def run_soak(args: Any, backend: str, redis_url: str | None, workdir: Path) -> dict[str, Any]:
    total = args.soak_signatures
    work = workdir / f"soak-{backend}"
    work.mkdir()
    mail_dir = work / "mail"
    markers = work / "markers"
    markers.mkdir()
    if backend == "sqlite":
        db = seed.BenchDatabase.sqlite(work)
        redis_url = None
    else:
        db = seed.BenchDatabase.postgresql(os.environ["PETITION_BENCH_DATABASE_URL"])
    label = backend + ("+redis" if redis_url else "")
    report: dict[str, Any] = {"backend": label, "signatures": total, "checks": {}}
    checks = report["checks"]
    settings = wrk.WrkSettings(
        threads=args.threads, connections=args.soak_connections, timeout="10s"
    )
    report["wrk"] = settings.describe() + " per instance"
    app = None
    folder = None
    servers: list[Gunicorn] = []
    started = time.monotonic()
    try:
        log(f"soak {label}: migrating {db.name or db.url}")
        db.migrate()
        app = db.app(mail_dir, redis_url)
        letter = db.create_letter(app, "soak", SLUG, "Keep the Riverside library open late")
        for number in (1, 2):
            server = Gunicorn(
                "petition.wsgi:app",
                harness.GunicornSettings(
                    workers=args.workers_by_backend[backend],
                    worker_class=args.worker_class,
                    threads=args.worker_threads,
                ),
                {},
                work / f"gunicorn-{number}.log",
                ready_path=FILLER,
            )
            server.env = harness.app_env(db.url, mail_dir, redis_url, server.port)
            servers.append(server)
            server.start()
        report["instances"] = [server.url for server in servers]
        cookie, csrf = harness.form_session(servers[0].port, SLUG)  # a session from instance 1
        for server in servers:
            status = _conditional_status(server.port)
            if status != 304:
                raise RuntimeError(f"{FILLER} with If-None-Match: * answered {status}, not 304")
        if args.fold_interval > 0:
            folder = harness.Folder(db, mail_dir, args.fold_interval)
            folder.start()
        csrf_form = urllib.parse.quote(csrf, safe="")
        limit = max(120.0, total / 20)  # wrk's -d: a bound, never reached when all is well

        # -- sign: half through each instance, with the session instance 1 gave us ----------
        halves = [total - total // 2, total // 2]
        prefixes = [f"s{uuid.uuid4().hex[:6]}{number}" for number in (1, 2)]
        sign_args = [
            [
                f"/letters/{SLUG}/sign",
                cookie,
                csrf_form,
                prefixes[index],
                str(halves[index]),
                str(args.threads),
                str(markers),
                FILLER,
            ]
            for index in (0, 1)
        ]
        expected = [
            [f"{prefixes[index]}-{thread}" for thread in range(1, args.threads + 1)]
            for index in (0, 1)
        ]
        log(f"soak {label}: signing {total:,} through {servers[0].url} and {servers[1].url}")
        phase = _phase(servers, "soak_sign.lua", sign_args, markers, expected, settings, limit)
        stored = harness.settled(lambda: _stored(db, letter.letter_id))
        sign = _phase_summary("sign", phase, stored, "303")
        report["sign"] = sign
        answered = sign["statuses"].get("303", 0)
        checks["sign: every request answered 303"] = sign["unexpected"] == 0
        checks["sign: rows stored = 303s = signatures sent"] = stored == answered == total

        # -- the tokens, from the outbox ------------------------------------------------------
        collect_started = time.monotonic()
        raw_tokens, messages = _tokens(db)
        report["tokens"] = {
            "messages": messages,
            "tokens": len(raw_tokens),
            "seconds": round(time.monotonic() - collect_started, 2),
        }
        checks["outbox: one pending verify mail with a link per row"] = (
            messages == len(raw_tokens) == len(set(raw_tokens)) == stored
        )

        # -- verify: each token once, half through each instance ------------------------------
        names = [f"v{uuid.uuid4().hex[:6]}{number}" for number in (1, 2)]
        files = [work / f"tokens-{number}.txt" for number in (1, 2)]
        split = len(raw_tokens) // 2
        files[0].write_text("\n".join(raw_tokens[:split]) + "\n")
        files[1].write_text("\n".join(raw_tokens[split:]) + "\n")
        verify_args = [
            [str(files[i]), str(args.threads), cookie, csrf_form, str(markers), names[i], FILLER]
            for i in (0, 1)
        ]
        expected = [
            [f"{names[index]}-{thread}" for thread in range(1, args.threads + 1)]
            for index in (0, 1)
        ]
        log(f"soak {label}: confirming {len(raw_tokens):,} through both instances")
        phase = _phase(servers, "soak_verify.lua", verify_args, markers, expected, settings, limit)
        verified = harness.settled(lambda: _stored(db, letter.letter_id, "verified"))
        verify = _phase_summary("verify", phase, verified, "200")
        report["verify"] = verify
        answered = verify["statuses"].get("200", 0)
        checks["verify: every request answered 200"] = verify["unexpected"] == 0
        checks["verify: verified rows = 200s = rows stored"] = verified == answered == stored

        # -- confirming again through the other instance changes nothing ----------------------
        repeats = raw_tokens[:10] + raw_tokens[split : split + 10]
        statuses = [
            harness.post(
                servers[1 if i < 10 else 0].port, f"/verify/{t}", cookie, {"csrf_token": csrf}
            )
            for i, t in enumerate(repeats)
        ]
        again = _stored(db, letter.letter_id, "verified")
        report["repeat_confirmations"] = {"sent": len(repeats), "statuses": sorted(set(statuses))}
        checks["repeat confirmations on the other instance: 200, nothing changes"] = (
            all(status == 200 for status in statuses) and again == verified
        )

        # -- both instances show the same count --------------------------------------------------
        shown = _shown(servers, verified, wait=15)
        report["shown_counts"] = shown
        checks["both instances show the verified rows"] = all(v == verified for v in shown)

        # -- the export holds exactly the verified set -------------------------------------------
        env = harness.app_env(db.url, mail_dir, None, 5000)
        export, rows = _export(env, work / "soak.csv")
        report["export"] = export
        log(
            f"soak {label}: export {export['rows']:,} rows in {export['seconds']} s = "
            f"{export['rows_per_s']:,.0f} rows/s, peak RSS {export['peak_rss_mb']} MB"
        )
        exported = {row["Email"] for row in rows}
        import sqlalchemy as sa

        with db.engine.connect() as connection:
            expected_emails = set(
                connection.execute(
                    sa.text(
                        "SELECT email FROM signature WHERE letter_id = :id AND state = 'verified'"
                    ),
                    {"id": letter.letter_id},
                ).scalars()
            )
        checks["export: one row per verified signature"] = len(rows) == verified
        checks["export: exactly the verified addresses"] = exported == expected_emails and len(
            exported
        ) == len(rows)

        # -- recount: no drift ---------------------------------------------------------------------
        if folder is not None:
            folder.stop()
            report["folded_events"] = folder.folded
            report["folder_errors"] = folder.errors[:5]
            folder = None
        recount_started = time.monotonic()
        counted = db.recount(app)
        shown_count, actual = counted[SLUG]
        report["recount"] = {
            "shown": shown_count,
            "actual": actual,
            "seconds": round(time.monotonic() - recount_started, 2),
        }
        checks["recount: no difference"] = shown_count == actual
        checks["recount: count = verified rows"] = actual == verified == total
        problems = [line for server in servers for line in server.log_problems()]
        report["server_log_problems"] = problems[:20]
        checks["gunicorn logged no error"] = not problems
    except Exception as error:
        report["error"] = repr(error)[:500]
        checks["ran to the end"] = False
        log(f"soak {label}: FAILED: {error!r}")
    finally:
        if folder is not None:
            folder.stop()
        for server in servers:
            server.stop()
        if app is not None:
            app.extensions["petition.engine"].dispose()
        db.drop()
        log(f"soak {label}: dropped {db.name or db.url}")
    report["seconds"] = round(time.monotonic() - started, 1)
    report["ok"] = bool(checks) and all(checks.values())
    return report


def summary(report: dict[str, Any]) -> str:
    lines = [
        f"soak {report['backend']}: {report['signatures']:,} signatures through 2 instances "
        f"({report.get('wrk', '')}), {report['seconds']} s in all: "
        + ("PASS" if report["ok"] else "FAIL")
    ]
    for phase in ("sign", "verify"):
        if phase in report:
            item = report[phase]
            latency = "; ".join(
                f"p50 {r['p50_ms']} / p99 {r['p99_ms']} ms" for r in item["instances"]
            )
            lines.append(
                f"  {phase:<7} {item['done']:>9,} in {item['wall_s']:7.1f} s = "
                f"{item['per_s']:>7,.0f}/s  statuses {item['statuses']}, socket errors "
                f"{item['socket_errors']}  (per instance: {latency})"
            )
    if "tokens" in report:
        tokens = report["tokens"]
        lines.append(
            f"  tokens  {tokens['tokens']:>9,} read from the outbox in {tokens['seconds']} s"
        )
    if "export" in report:
        export = report["export"]
        lines.append(
            f"  export  {export['rows']:>9,} in {export['seconds']:7.1f} s = "
            f"{export['rows_per_s']:>7,.0f}/s  peak RSS {export['peak_rss_mb']} MB"
        )
    if "recount" in report:
        recount = report["recount"]
        lines.append(
            f"  recount shown {recount['shown']:,}, verified rows {recount['actual']:,} "
            f"({recount['seconds']} s); both instances showed {report.get('shown_counts')}"
        )
    for name, ok in report["checks"].items():
        lines.append(f"  {'ok  ' if ok else 'FAIL'} {name}")
    if report.get("error"):
        lines.append(f"  error: {report['error']}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = harness.parse_args(["--scenarios", "soak", *argv])
    wrk.wrk_binary()
    redis_url = harness.checked_redis_url()
    workdir = Path(tempfile.mkdtemp(prefix="petition-bench-soak-"))
    reports = []
    started = datetime.now(UTC)
    state = harness.git_state()  # before the instances load the code
    try:
        for backend in backends_for(args):
            reports.append(run_soak(args, backend, redis_url, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    for report in reports:
        print(summary(report))
    output = args.output
    if output == harness.RESULTS:
        output = output.with_name("soak.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "command": "python -m bench soak " + " ".join(argv),
        "started_at": started.isoformat(timespec="seconds"),
        "git": state,
        "machine": harness.machine(),
        "soak": reports,
    }
    output.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwritten to {output}")
    return 0 if reports and all(report["ok"] for report in reports) else 1
