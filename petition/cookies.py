"""Signed cookies and CSRF tokens: Flask's and Flask-WTF's formats, made cheaper to write.

Every visitor's first page writes a session cookie and a CSRF token, and every form post reads
both; each is an HMAC-signed, timestamped payload from itsdangerous. What is written here reads
back through Flask and Flask-WTF unchanged, and what they wrote (before an upgrade) reads here.
"""

from __future__ import annotations

import hmac
import json
import secrets
from functools import lru_cache
from typing import Any, ClassVar

from flask import Flask, Request, current_app, g, session
from flask.json.tag import TaggedJSONSerializer
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from itsdangerous import BadData, Serializer, TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode
from werkzeug.http import dump_cookie


def init_app(app: Flask) -> None:
    app.session_interface = Sessions()
    # Replaces the csrf_token() that CSRFProtect.init_app() gave templates (the same tokens).
    app.jinja_env.globals["csrf_token"] = csrf_token


class SessionJSON(TaggedJSONSerializer):
    """Flask's tagged JSON for sessions, with a shortcut for the usual plain session.

    Tagging walks every value to mark tuples, bytes, Markup and the like; a session of plain
    strings, numbers and booleans (a CSRF token, Flask-Login's ids) needs none of it, and the
    walk cost 6 % of a new visitor's letter page. The output is what Flask writes for it:
    compact, keys sorted.
    """

    PLAIN = (str, int, bool, type(None))

    def dumps(self, value: Any) -> str:
        if (
            type(value) is dict
            and all(type(item) in self.PLAIN for item in value.values())
            and not (len(value) == 1 and next(iter(value)) in self.tags)
        ):
            return json.dumps(value, separators=(",", ":"), sort_keys=True)
        return super().dumps(value)


class KeyCachingSigner(TimestampSigner):
    """itsdangerous' timestamp signer, deriving each signing key once.

    The key for a salt is an HMAC of the secret; itsdangerous computes it again for every
    cookie and token signed or checked, though it only depends on the secret and settings.
    """

    _derived: ClassVar[dict[tuple[Any, ...], bytes]] = {}

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        secret = self.secret_keys[-1] if secret_key is None else secret_key
        key = (secret, self.salt, self.key_derivation, self.digest_method)
        derived = self._derived.get(key)
        if derived is None:
            if len(self._derived) >= 64:  # a few secrets and salts in practice
                self._derived.clear()
            derived = self._derived[key] = super().derive_key(secret_key)
        return derived


class Sessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, except that the public API has none.

    Nothing under /api/ reads or writes the session; without this, decoding the cookie cost
    the count poll a tenth of its time, and Flask-Login's look at the session after every
    request made the answer carry "Vary: Cookie", so a shared cache kept one copy per visitor.
    """

    serializer = SessionJSON()
    _serializer: tuple[tuple[object, ...], URLSafeTimedSerializer | None] | None = None

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if request.path.startswith("/api/"):
            return None  # Flask uses a null session: readable, never saved
        return super().open_session(app, request)

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        # Flask builds a new serializer (and signer) to read and again to write every cookie;
        # one per set of keys does, and a changed SECRET_KEY still takes effect at once.
        keys = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        cached = self._serializer
        if cached is None or cached[0] != keys:
            cached = self._serializer = (keys, self._new_serializer(app))
        return cached[1]

    def _new_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        """Flask's own serializer for these settings, but a CompactSerializer."""
        if not app.secret_key:
            return None
        # itsdangerous expects the current key last.
        keys = [*(app.config["SECRET_KEY_FALLBACKS"] or ()), app.secret_key]
        return CompactSerializer(
            keys,
            salt=self.salt,
            serializer=self.serializer,
            signer_kwargs={
                "key_derivation": self.key_derivation,
                "digest_method": self.digest_method,
            },
        )


class CompactSerializer(URLSafeTimedSerializer):
    """itsdangerous' URL-safe serializer, without trying zlib on short payloads.

    It compresses every payload to see whether it shrinks. A session cookie or a CSRF token is
    a few dozen bytes of random hex that never does, and setting zlib up for it cost each new
    visitor's letter page two compressions, 6 % of the page. What it writes reads the same.
    """

    COMPRESS_FROM = 512
    default_signer = KeyCachingSigner

    def dump_payload(self, obj: Any) -> bytes:
        json = Serializer.dump_payload(self, obj)
        if len(json) >= self.COMPRESS_FROM:
            return super().dump_payload(obj)
        return base64_encode(json)


CSRF_SALT = "wtf-csrf-token"  # Flask-WTF's, so that its CSRFProtect checks these tokens


def csrf_token() -> str:
    """Flask-WTF's generate_csrf() for our settings, with one serializer per secret key.

    Flask-WTF builds a serializer for every token; every letter page makes one. The token is
    the one Flask-WTF would make (the session's random value, signed and timestamped with its
    salt, kept in g for the rest of the request), so CSRFProtect checks it as its own.
    """
    field = current_app.config.get("WTF_CSRF_FIELD_NAME") or "csrf_token"
    token = g.get(field)
    if token is None:
        if field not in session:
            session[field] = new_csrf_secret()
        token = csrf_token_for(current_app, session[field])
        setattr(g, field, token)
    return token


def new_csrf_secret() -> str:
    return secrets.token_hex(20)  # as long as Flask-WTF's


def csrf_token_for(app: Flask, secret: str) -> str:
    """The token for a session's CSRF secret, as csrf_token() makes it."""
    return csrf_serializer(_csrf_key(app)).dumps(secret)


def csrf_token_matches(app: Flask, token: str, secret: str) -> bool:
    """What CSRFProtect checks of a posted token: signed with our key and salt, not older than
    WTF_CSRF_TIME_LIMIT, and made from this session's secret."""
    try:
        made_from = csrf_serializer(_csrf_key(app)).loads(
            token, max_age=app.config["WTF_CSRF_TIME_LIMIT"]
        )
    except BadData:
        return False
    return isinstance(made_from, str) and hmac.compare_digest(secret, made_from)


def csrf_only_session(app: Flask, cookie: str) -> str | None:
    """The CSRF secret of a session cookie that holds nothing else, opened as Flask opens it;
    None for any other session or one that does not open."""
    serializer = app.session_interface.get_signing_serializer(app)
    if serializer is None:
        return None
    try:
        data = serializer.loads(cookie, max_age=int(app.permanent_session_lifetime.total_seconds()))
    except BadData:
        return None
    field = app.config["WTF_CSRF_FIELD_NAME"]
    if not (isinstance(data, dict) and list(data) == [field] and isinstance(data[field], str)):
        return None
    return data[field]


def new_session_cookie(app: Flask, data: dict[str, str]) -> str | None:
    """The Set-Cookie value Flask would send for a new, not permanent session holding `data`."""
    interface = app.session_interface
    serializer = interface.get_signing_serializer(app)
    if serializer is None:
        return None
    return dump_cookie(
        interface.get_cookie_name(app),
        serializer.dumps(data),
        path=interface.get_cookie_path(app),
        domain=interface.get_cookie_domain(app),
        secure=interface.get_cookie_secure(app),
        httponly=interface.get_cookie_httponly(app),
        samesite=interface.get_cookie_samesite(app),
        partitioned=interface.get_cookie_partitioned(app),
    )


def _csrf_key(app: Flask) -> str | bytes:
    return app.config.get("WTF_CSRF_SECRET_KEY") or app.secret_key


@lru_cache(maxsize=4)
def csrf_serializer(key: str | bytes) -> CompactSerializer:
    return CompactSerializer(key, salt=CSRF_SALT)
