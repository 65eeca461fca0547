"""Secret tokens for links: random, mailed in the clear, stored only as a digest."""

import secrets
import time
from hashlib import sha256

# A token starts with the time it was made: milliseconds since 1970 in hexadecimal, always this
# many digits, so that the order of the text is the order in time (until the year 10889).
TIME_DIGITS = 12
SECRET_LENGTH = 43  # secrets.token_urlsafe(32): 256 random bits
TIMED_LENGTH = TIME_DIGITS + SECRET_LENGTH
DIGEST_LENGTH = 64
_HEX_DIGITS = frozenset("0123456789abcdef")


def new_token() -> tuple[str, str]:
    """A fresh token and the digest to store in its place.

    The digest keeps the token's time in front, so digests of tokens made one after another
    sort together: a new row's entry goes into the few index pages that the rows made just
    before it wrote, pages already in memory. A digest that was all hash sent every signature
    (and every confirmation's manage token) to a random page of an index as large as the table:
    at a million signatures, a page read and, on PostgreSQL, a whole page written to the WAL for
    most of them. The time shows when the link was made, which its email says anyway; the
    secret is the rest, 256 random bits, and only its hash is stored.
    """
    stamp = f"{time.time_ns() // 1_000_000:0{TIME_DIGITS}x}"
    raw = stamp + secrets.token_urlsafe(32)
    return raw, digest(raw)


def digest(raw: str) -> str:
    """The stored form of a token; look rows up by this, never by the raw token.

    A token from new_token() keeps its time and adds the hash of its secret, cut to the same
    64 characters; a token made before tokens carried their time (43 random characters, still
    in people's inboxes) is hashed whole, as then, so its link goes on working.
    """
    if len(raw) == TIMED_LENGTH and _HEX_DIGITS.issuperset(raw[:TIME_DIGITS]):
        stamp, secret = raw[:TIME_DIGITS], raw[TIME_DIGITS:]
        return stamp + _hash(secret)[: DIGEST_LENGTH - TIME_DIGITS]
    return _hash(raw)


def _hash(text: str) -> str:
    return sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def looks_like_token(raw: str) -> bool:
    """Cheap shape check so junk in a URL never reaches the database."""
    return 20 <= len(raw) <= 64 and all(c.isalnum() or c in "-_" for c in raw)
