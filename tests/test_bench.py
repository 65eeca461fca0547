"""The benchmark's own arguments: what `python -m bench` and `bench.interleaved` accept."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest
from sqlalchemy import make_url

from bench import measured
from bench import news as news_bench
from bench.harness import (
    judge,
    missed_targets,
    parse_args,
    rows_written,
    table,
    workers_by_backend,
)
from bench.interleaved import Config, _app_url, parse_config
from bench.interleaved import parse_args as interleaved_args
from bench.seed import postgresql_url_problem


def test_workers_follow_the_deployment_unless_told():
    assert workers_by_backend("auto", 2) == {"sqlite": 4, "postgresql": 4}
    assert workers_by_backend("3", 2) == {"sqlite": 3, "postgresql": 3}
    assert workers_by_backend("postgresql=6", 8) == {"sqlite": 16, "postgresql": 6}
    assert workers_by_backend("sqlite=1, postgresql=2", 2) == {"sqlite": 1, "postgresql": 2}


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("x", "give auto, a number, or sqlite=N,postgresql=M, not 'x'"),
        ("mysql=2", "not 'mysql=2'"),
        ("sqlite=0", "a whole number from 1, not '0'"),
        ("sqlite=2,", "not 'sqlite=2,'"),
    ],
)
def test_a_wrong_worker_count_is_named(setting, message):
    with pytest.raises(ValueError, match=message):
        workers_by_backend(setting, 2)


def test_an_interleaved_configuration_is_a_backend_and_its_settings():
    config = parse_config("postgresql,workers=4,class=gthread,threads=2,fold=0.25,reclaim=20000")
    assert config == Config("postgresql", 4, "gthread", 2, 0.25, 20000)
    assert config.name == "postgresql,workers=4,class=gthread,threads=2,fold=0.25,reclaim=20000"
    assert parse_config("sqlite").name == "sqlite,workers=2"
    assert (
        parse_config("sqlite,fold=0.5").database_key
        == parse_config("sqlite,workers=4").database_key
    )


def test_a_configuration_can_reach_postgresql_through_its_unix_socket():
    config = parse_config("postgresql,workers=4,socket=/var/run/postgresql")
    assert config.name == "postgresql,workers=4,socket=/var/run/postgresql"
    assert config.database_key == parse_config("postgresql,workers=4").database_key
    url = "postgresql+psycopg://postgres:secret@127.0.0.1:5433/petition_bench_1"
    through_socket = make_url(_app_url(url, config))
    assert (through_socket.host, through_socket.port) == (None, 5433)
    assert through_socket.query == {"host": "/var/run/postgresql"}
    assert (through_socket.username, through_socket.password) == ("postgres", "secret")
    assert through_socket.database == "petition_bench_1"
    assert _app_url(url, parse_config("postgresql")) == url


def test_durability_is_a_setting_in_each_database_s_own_words():
    assert parse_config("sqlite,synchronous=FULL").synchronous == "full"
    assert parse_config("postgresql,synchronous=off").name == "postgresql,workers=2,synchronous=off"
    assert parse_config("postgresql").synchronous is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mysql", "start with one of sqlite, postgresql"),
        ("sqlite,workers=two", "workers takes a number"),
        ("sqlite,speed=3", "settings are workers, class, threads, fold, reclaim"),
        ("sqlite,workers", "as key=value"),
        ("sqlite,synchronous=on", "synchronous on sqlite is one of off, normal, full, extra"),
        ("postgresql,synchronous=full", "synchronous on postgresql is one of off, local, on"),
        ("sqlite,socket=/var/run/postgresql", "socket is for postgresql, a directory"),
        ("postgresql,socket=run/postgresql", "socket is for postgresql, a directory"),
    ],
)
def test_a_wrong_interleaved_configuration_is_named(text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        parse_config(text)


def test_the_durability_app_commits_at_the_level_it_is_given(database_url):
    sqlite = database_url.startswith("sqlite")
    level, query, expected = (
        ("full", "PRAGMA synchronous", "2") if sqlite else ("off", "SHOW synchronous_commit", "off")
    )
    shown = (
        "import bench.synchronous_app as served\n"
        "with served.app.extensions['petition.engine'].connect() as connection:\n"
        f"    print(connection.exec_driver_sql({query!r}).scalar())\n"
    )
    environment = os.environ | {
        "PETITION_ENV": "development",
        "PETITION_DATABASE_URL": database_url,
        "BENCH_SYNCHRONOUS": level,
    }
    answer = subprocess.run(
        [sys.executable, "-c", shown], env=environment, capture_output=True, text=True, check=True
    )
    assert answer.stdout.strip() == expected


def test_the_rows_an_export_says_it_wrote_are_read_from_its_message():
    assert rows_written("Wrote 1,000,000 signatories to /tmp/x.csv") == 1_000_000
    assert rows_written("Wrote 1 signatory to /tmp/x.csv") == 1
    assert rows_written("Error: There is no letter with the slug 'x'.") == -1


def test_a_measured_command_is_charged_only_its_own_memory(tmp_path):
    """A child forked from a large process inherits that process's peak in ru_maxrss; the
    export's figure must be the export's."""
    ballast = bytearray(200 * 1024 * 1024)
    ballast[::4096] = b"\x01" * len(ballast[::4096])  # touch every page: resident
    grow = "x = bytearray(40 * 1024 * 1024); x[::4096] = b'1' * len(x[::4096]); print('done')"
    result = measured.run([sys.executable, "-c", grow], cwd=tmp_path, env=dict(os.environ))
    assert result.returncode == 0 and result.stdout == "done\n"
    assert 40 < result.peak_rss_mb < 100, result.peak_rss_mb
    del ballast

    failed = measured.run(["/bin/sh", "-c", "echo why >&2; exit 3"], cwd=tmp_path, env={})
    assert (failed.returncode, failed.stderr) == (3, "why\n")


def test_postgresql_is_judged_against_sqlite_on_the_turns_when_taken():
    measured = {"p50_ms": 9.0, "p99_ms": 20.0, "errors": 0, "server_cpu_ms_per_req": 0.7}
    measured |= {"foreign_cpu_pct": 1.0}
    rows = [
        {"scenario": "sign", "backend": "sqlite", "rps": 2000.0, **measured},
        {"scenario": "sign", "backend": "postgresql+redis", "rps": 1400.0, **measured},
    ]
    judge(rows, lambda _backend: 7000.0, {"sign": 0.83})
    assert rows[1]["pass"] and rows[1]["ratio_to_sqlite"] == 0.7
    assert rows[1]["ratio_to_sqlite_in_turns"] == 0.83
    assert "(is 0.83 in turns, 0.70 apart)" in table(rows, [])
    assert missed_targets(rows) == []

    judge(rows, lambda _backend: 7000.0, {"sign": 0.0})  # turns that got wrong answers
    assert not rows[1]["pass"]
    assert missed_targets(rows) == ["sign on postgresql+redis"]  # and the bench exits 1
    rows[1].pop("ratio_to_sqlite_in_turns")
    judge(rows, lambda _backend: 7000.0)  # no turns taken: the two runs' own figures
    assert not rows[1]["pass"] and "(is 0.70)" in table(rows, [])


@pytest.mark.parametrize(
    ("rows", "rows_per_s", "passes", "target"),
    [
        (1_000_000, 400_000.0, True, "≥ 60 × baseline"),
        (1_000_000, 100_000.0, False, "≥ 60 × baseline"),
        (100_000, 100_000.0, True, "speed judged at 1,000,000 rows"),  # --quick
    ],
)
def test_the_export_s_speed_is_judged_on_a_million_rows(rows, rows_per_s, passes, target):
    export = {"scenario": "export", "backend": "sqlite", "rows": rows, "errors": 0}
    export |= {"rows_per_s": rows_per_s, "peak_rss_mb": 72.0}
    small = {"scenario": "export-small", "backend": "sqlite", "rows": 10_000, "errors": 0}
    small |= {"rows_per_s": 15_000.0, "peak_rss_mb": 72.0}
    rows_judged = [small, export]
    judge(rows_judged, lambda _backend: 5000.0)
    assert export["pass"] is passes and target in export["target"]
    assert missed_targets(rows_judged) == ([] if passes else ["export on sqlite"])


def test_turns_are_a_count_of_rounds():
    assert parse_args([]).turns == 6
    assert parse_args(["--quick"]).turns == 3
    assert parse_args(["--quick", "--turns", "5"]).turns == 5
    assert parse_args(["--turns", "0"]).turns == 0
    with pytest.raises(SystemExit):
        parse_args(["--turns", "-1"])


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://postgres@127.0.0.1:5432/test",
        "postgresql+psycopg://postgres@/test?host=/var/run/postgresql",
    ],
)
def test_bench_accepts_a_database_on_this_machine(url: str) -> None:
    assert postgresql_url_problem(url) is None


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgresql+psycopg://postgres@db.example.org/test", "at 'db.example.org'"),
        ("postgresql+psycopg://postgres@/test", "at 'PGHOST'"),  # libpq would read PGHOST
        ("postgresql+psycopg://postgres@/test?host=db.example.org", "at 'db.example.org'"),
        ("postgresql+psycopg://postgres@/test?host=/run/pg&hostaddr=192.0.2.1", "at '/run/pg'"),
        ("postgresql+psycopg://postgres@127.0.0.1/test?host=db.example.org", "at '127.0.0.1'"),
        ("sqlite:///bench.sqlite3", "is not PostgreSQL: sqlite"),
        ("postgresql+psycopg://postgres:secret@127.0.0.1:port/test", "is not a database URL"),
    ],
)
def test_bench_refuses_a_database_elsewhere(url: str, problem: str) -> None:
    said = postgresql_url_problem(url)
    assert said is not None and problem in said and "secret" not in said


def test_a_database_elsewhere_is_refused_before_anything_starts(monkeypatch, capsys) -> None:
    monkeypatch.setenv("PETITION_BENCH_DATABASE_URL", "postgresql+psycopg://u@db.example.org/t")
    for parse in (lambda: parse_args([]), lambda: interleaved_args(["postgresql"])):
        with pytest.raises(SystemExit):
            parse()
        assert "refusing to use a database server at 'db.example.org'" in capsys.readouterr().err


def test_the_news_benchmark_queues_every_signer_s_email_once(capsys):
    assert news_bench.main(["--rows", "1500", "--batches", "0"]) == 0
    said = capsys.readouterr().out
    assert "audience count (1,500)" in said
    assert "news.fan_out: 2 batches, 1,500 emails queued" in said
