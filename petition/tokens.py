"""Secret tokens for links: random, mailed in the clear, stored only as a digest."""

import hmac
import secrets
from hashlib import sha256


def new_token() -> tuple[str, str]:
    """A fresh token and the digest to store in its place."""
    raw = secrets.token_urlsafe(32)
    return raw, digest(raw)


def digest(raw: str) -> str:
    """The stored form of a token; look rows up by this, never by the raw token."""
    return sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def token_matches(raw: str, stored_digest: str) -> bool:
    """Compare in constant time, for checks that do not go through an indexed lookup."""
    return hmac.compare_digest(digest(raw), stored_digest)


def looks_like_token(raw: str) -> bool:
    """Cheap shape check so junk in a URL never reaches the database."""
    return 20 <= len(raw) <= 64 and all(c.isalnum() or c in "-_" for c in raw)
