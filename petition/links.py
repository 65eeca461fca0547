"""Absolute links that go into emails, built from PETITION_BASE_URL (there is no request)."""

from flask import current_app


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
