"""The WSGI entry point for gunicorn: `gunicorn petition.wsgi:app`."""

import sys

from petition import create_app
from petition.config import ConfigError

try:
    app = create_app()
except ConfigError as error:
    # Said once, without a traceback, and with gunicorn's "app failed to load" status, so that
    # the master stops at once instead of booting worker after worker into the same error.
    print(f"petition: {error}", file=sys.stderr)
    sys.exit(4)
