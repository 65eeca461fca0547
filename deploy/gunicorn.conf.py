"""gunicorn settings for petition (gunicorn -c deploy/gunicorn.conf.py petition.wsgi:app).

The values that differ between hosts can be overridden with an environment variable of the same
name in capitals (GUNICORN_BIND, _WORKERS, _WORKER_CLASS, _THREADS, _ACCESSLOG, _LOGLEVEL), e.g.
GUNICORN_WORKERS=8, so one file serves every host size.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Requests spend most of their time in Python, a little waiting on the database: a few threads
# per process hide that wait; one process per core does the rest (on PostgreSQL, 1,241 signatures
# a second against 1,066 with sync workers). On SQLite, where writers take turns,
# GUNICORN_WORKER_CLASS=sync signs faster (1,148 against 799 req/s; bench/README.md).
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count()))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
threads = int(os.environ.get("GUNICORN_THREADS", 4))
backlog = 2048
timeout = 30
graceful_timeout = 20
keepalive = 5
# Recycle workers now and then, so a slow leak in any library can never build up.
max_requests = 20_000
max_requests_jitter = 2_000
accesslog = os.environ.get("GUNICORN_ACCESSLOG")  # off by default: the proxy logs requests
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
forwarded_allow_ips = "127.0.0.1"


def on_starting(server):
    """Check the settings once, in the master, before any worker boots: a missing or wrong
    PETITION_* value is one message and a stop, not one traceback per worker."""
    import sys

    from petition import create_app
    from petition.config import ConfigError

    try:
        create_app()
    except ConfigError as error:
        print(f"petition: {error}", file=sys.stderr)
        sys.exit(4)
