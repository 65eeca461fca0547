"""The WSGI entry point for gunicorn: `gunicorn petition.wsgi:app`."""

import logging
import sys

from petition import create_app, logs
from petition.config import ConfigError


def _log_with_gunicorn() -> None:
    """The app's lines in gunicorn's error log, with its time, process and level."""
    gunicorn = logging.getLogger("gunicorn.error")
    if gunicorn.handlers:
        logs.send_to(gunicorn.handlers)


try:
    app = create_app()
except ConfigError as error:
    # Said once, without a traceback, and with gunicorn's "app failed to load" status, so that
    # the master stops at once instead of booting worker after worker into the same error.
    print(f"petition: {error}", file=sys.stderr)
    sys.exit(4)
_log_with_gunicorn()
