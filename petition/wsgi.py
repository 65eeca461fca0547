"""The WSGI entry point for gunicorn: `gunicorn petition.wsgi:app`."""

from petition import create_app

app = create_app()
