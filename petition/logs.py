"""Where the app's own log lines (the petition.* loggers) go in a long-running process."""

from __future__ import annotations

import logging

# gunicorn's own format, so that the worker's lines read like the site's.
FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S %z"


def send_to(handlers: list[logging.Handler]) -> None:
    """Every petition.* line from INFO up to `handlers`, and only there: left alone, Python
    writes warnings bare (no time, no level) and drops INFO."""
    app_log = logging.getLogger("petition")
    app_log.handlers[:] = handlers
    app_log.setLevel(logging.INFO)
    app_log.propagate = False


def to_stderr() -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))
    send_to([handler])
