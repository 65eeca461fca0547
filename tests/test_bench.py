"""The benchmark's own arguments: what `python -m bench` and `bench.interleaved` accept."""

from __future__ import annotations

import argparse

import pytest

from bench.harness import workers_by_backend
from bench.interleaved import Config, parse_config


def test_workers_follow_the_deployment_unless_told():
    assert workers_by_backend("auto", 2) == {"sqlite": 2, "postgresql": 4}
    assert workers_by_backend("3", 2) == {"sqlite": 3, "postgresql": 3}
    assert workers_by_backend("postgresql=6", 8) == {"sqlite": 8, "postgresql": 6}
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


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mysql", "start with one of sqlite, postgresql"),
        ("sqlite,workers=two", "workers takes a number"),
        ("sqlite,speed=3", "settings are workers, class, threads, fold, reclaim"),
        ("sqlite,workers", "as key=value"),
    ],
)
def test_a_wrong_interleaved_configuration_is_named(text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        parse_config(text)
