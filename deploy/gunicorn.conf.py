"""gunicorn settings for petition (gunicorn -c deploy/gunicorn.conf.py petition.wsgi:app).

The values that differ between hosts can be overridden with an environment variable of the same
name in capitals (GUNICORN_BIND, _WORKERS, _WORKER_CLASS, _THREADS, _ACCESSLOG, _LOGLEVEL), e.g.
GUNICORN_WORKERS=8, so one file serves every host size.
"""

import os
import sys

from gunicorn.glogging import Logger

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Two sync workers per core: while one waits (on PostgreSQL for the server's answer and its
# commit, on SQLite for the writers' turn), the other keeps the core busy. In interleaved runs on
# 2 cores, 4 workers signed and confirmed a fifth to a third more than 2 on PostgreSQL, and as
# much as 2 workers of 4 threads with half the database connections; on SQLite 5-8 % more than
# 2, and 6 no more than 4 (bench/README.md).
# Cores this process may run on (a container's cpuset, not the host's count; a CPU quota such
# as docker's --cpus is not seen: set GUNICORN_WORKERS there).
cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
workers = int(os.environ.get("GUNICORN_WORKERS", 2 * cores))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "sync")
threads = int(os.environ.get("GUNICORN_THREADS", 1))
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


class SecretMaskingLogger(Logger):
    """gunicorn's logger, writing a secret link's path as the app's log does (/verify/<token>):
    in the access log, if it is turned on, and in "Error handling request", which gunicorn
    writes when a request fails past the app's own error page."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        loggable, uri = _loggable(), environ["RAW_URI"]
        atoms["r"] = atoms["r"].replace(uri, loggable(uri), 1)
        atoms["U"] = loggable(atoms["U"] or "")
        return atoms

    def exception(self, msg, *args, **kwargs):
        loggable = _loggable()
        masked = (loggable(arg) if isinstance(arg, str) else arg for arg in args)
        super().exception(msg, *masked, **kwargs)


def _loggable():
    # Looked up, not imported: requests are served by workers, which have loaded the app, and
    # the master must never import it (see on_starting).
    links = sys.modules.get("petition.links")
    return links.loggable if links else str


logger_class = SecretMaskingLogger
forwarded_allow_ips = "127.0.0.1"


def on_starting(server):
    """Check the settings once, before any worker boots: a missing or wrong PETITION_* value
    is one message and a stop, not one traceback per worker.

    The check runs in a child process so that the master never imports the app: workers
    started by a reload (HUP, `systemctl reload`) then load the code installed since.
    """
    import subprocess

    checked = subprocess.run([sys.executable, "-c", SETTINGS_CHECK], check=False)  # noqa: S603
    if checked.returncode != 0:
        sys.exit(4)


SETTINGS_CHECK = """
import sys
from petition import create_app
from petition.config import ConfigError
try:
    create_app()
except ConfigError as error:
    sys.exit(f"petition: {error}")
"""
