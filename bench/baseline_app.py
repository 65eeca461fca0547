"""The baseline: a bare Flask app answering one constant, small JSON body.

`python -m bench` serves it with exactly the gunicorn settings it gives the petition app, and
every figure in the table is a ratio of what this achieves in the same run. It does nothing per
request beyond Flask's own routing and response: no database, no session, no templates.
"""

from __future__ import annotations

from flask import Flask, Response

BODY = b'{"slug":"baseline","signature_count":12345,"status":"open"}'

app = Flask(__name__)


@app.get("/")
def index() -> Response:
    return Response(BODY, mimetype="application/json")
