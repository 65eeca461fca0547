"""Absolute links that go into emails, built from PETITION_BASE_URL (there is no request), and
paths as they may be logged."""

import re

from flask import current_app

# The paths whose next segment is a secret: whoever reads it in a log could use the link.
# A request line may give the whole address ("GET http://host/verify/..."): the path is masked.
_SECRET_SEGMENT = re.compile(
    r"^((?:[a-zA-Z][a-zA-Z0-9+.-]*://[^/]*)?)/(verify|signature|news/stop|deliveries)/[^/]+"
)


def _absolute(path: str) -> str:
    return f"{current_app.config['BASE_URL']}{path}"


def letter(slug: str) -> str:
    return _absolute(f"/letters/{slug}")


def verify(token: str) -> str:
    return _absolute(f"/verify/{token}")


def manage(token: str) -> str:
    return _absolute(f"/signature/{token}")


def stop_news(token: str) -> str:
    return _absolute(f"/news/stop/{token}")


def delivery(token: str) -> str:
    return _absolute(f"/deliveries/{token}")


def login() -> str:
    return _absolute("/organiser/login")


def share_image(slug: str, count: int) -> str:
    # The count in the URL makes link previews fetch a fresh picture as the letter grows.
    return _absolute(f"/letters/{slug}/share.png?n={count}")


def embed(slug: str) -> str:
    return _absolute(f"/letters/{slug}/embed")


def loggable(path: str) -> str:
    """The path with any secret in it replaced by <token>, as deploy/nginx logs it."""
    return _SECRET_SEGMENT.sub(r"\1/\2/<token>", path)
