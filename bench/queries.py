"""SQL statements per request, counted in-process with Flask's test client.

Each request is made twice and the second is counted (caches warm, as under load), except
that the count endpoint and the page are also counted cold, right after the shared cache's
entries for the letter were dropped (what one request in every COUNT_CACHE_SECONDS pays).
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from sqlalchemy import event

from petition import driver

CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


class StatementCounter:
    """Statements sent through SQLAlchemy's engine and by petition.driver's units."""

    def __init__(self, app: Flask) -> None:
        self.engine = app.extensions["petition.engine"]
        self.statements: list[str] = []
        event.listen(self.engine, "before_cursor_execute", self._seen)
        driver.listen(self._sent)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self._sent(statement, None)

    def _sent(self, statement: str, _connection: Any) -> None:
        self.statements.append(" ".join(statement.split())[:160])

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)
        driver.remove(self._sent)


def _forget(app: Flask, slug: str, letter_id: int) -> None:
    cache = app.extensions["petition.cache"]
    cache.delete(f"letter-json:{slug}")
    cache.delete(f"count:{letter_id}")


def count_queries(
    app: Flask, read_slug: str, read_id: int, write_slug: str, verify_tokens: list[str]
) -> dict[str, dict[str, Any]]:
    """Statements for one request of each kind; uses two of `verify_tokens`."""
    counter = StatementCounter(app)
    client = app.test_client()
    found: dict[str, dict[str, Any]] = {}

    def measure(name: str, call: Any, expect: int) -> None:
        counter.statements.clear()
        response = call()
        if response.status_code != expect:
            raise RuntimeError(f"{name}: expected {expect}, got {response.status_code}")
        found[name] = {"statements": len(counter.statements), "sql": list(counter.statements)}

    try:
        for label, path in (
            ("count", f"/api/v1/letters/{read_slug}"),
            ("page", f"/letters/{read_slug}"),
        ):
            _forget(app, read_slug, read_id)
            measure(f"{label} (cold cache)", lambda path=path: client.get(path), 200)
            measure(f"{label} (warm cache)", lambda path=path: client.get(path), 200)
        page = client.get(f"/letters/{write_slug}").get_data(as_text=True)
        match = CSRF.search(page)
        if not match:
            raise RuntimeError("no csrf_token on the letter page")
        csrf = match.group(1)
        for number in (1, 2):
            form = {
                "csrf_token": csrf,
                "name": "Query Counter",
                "email": f"queries-{number}@example.org",
                "show_name": "y",
            }
            measure(
                "sign",
                lambda form=form: client.post(f"/letters/{write_slug}/sign", data=form),
                303,
            )
        for token in verify_tokens[:2]:
            measure(
                "verify",
                lambda token=token: client.post(f"/verify/{token}", data={"csrf_token": csrf}),
                200,
            )
    finally:
        counter.close()
    return found
