"""Where the app's own log lines (the petition.* loggers) go in a long-running process."""

from __future__ import annotations

import logging

# gunicorn's own format, so that the worker's lines read like the site's.
FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S %z"


def send_to(handlers: list[logging.Handler]) -> None:
    """Every petition.* line from INFO up to `handlers`: left alone, Python writes warnings
    bare (no time, no level) and drops INFO. They still reach the root logger's handlers, if
    an operator has set any up (gunicorn's logconfig_dict, an error tracker)."""
    app_log = logging.getLogger("petition")
    app_log.handlers[:] = handlers
    app_log.setLevel(logging.INFO)


def to_stderr() -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))
    send_to([handler])
