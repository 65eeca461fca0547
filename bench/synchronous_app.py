"""The app with the database's commit durability set by the benchmark, for `gunicorn
bench.synchronous_app:app` with BENCH_SYNCHRONOUS in its environment.

The app commits SQLite with synchronous=NORMAL (in WAL mode a commit reaches the operating system
but is not flushed to disk: it survives the app crashing, not the machine) and PostgreSQL with
synchronous_commit=on (every commit flushed). Comparing the two as they are compares unequal
promises. This sets SQLite's `synchronous` pragma or PostgreSQL's `synchronous_commit` on every
new connection, after the app's own settings, so that either can be measured at the other's.
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import event

from petition.wsgi import app

_engine = app.extensions["petition.engine"]
_level = os.environ["BENCH_SYNCHRONOUS"]  # checked by bench.interleaved.parse_config


@event.listens_for(_engine, "connect")
def _set_durability(dbapi_connection: Any, _record: Any) -> None:
    if _engine.dialect.name == "sqlite":
        dbapi_connection.execute(f"PRAGMA synchronous={_level}")
    else:
        dbapi_connection.execute(f"SET synchronous_commit = {_level}")
        dbapi_connection.commit()  # a pooled connection's reset would roll the SET back


_engine.dispose()  # connections made before the listener was added
