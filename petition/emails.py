"""Email addresses: validate and normalise them, and derive the canonical mailbox key."""

from __future__ import annotations

from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email

# Providers that deliver name+anything@ to name@. Only these: many ISPs treat "+" as an
# ordinary character, and a blanket rule would merge different people's mailboxes.
PLUS_TAG_DOMAINS = frozenset(
    {
        # Google
        "gmail.com",
        "googlemail.com",
        # Microsoft's consumer mail, under each of its names (the commonest in Europe)
        *(f"hotmail.{tld}" for tld in ("com", "co.uk", "fr", "de", "it", "es", "nl", "be")),
        *(f"outlook.{tld}" for tld in ("com", "fr", "de", "it", "es")),
        *(f"live.{tld}" for tld in ("com", "co.uk", "fr", "de", "it", "nl", "be", "ie", "ca")),
        "msn.com",
        "windowslive.com",
        # Apple
        "icloud.com",
        "me.com",
        "mac.com",
        # Fastmail, Proton, Yahoo
        "fastmail.com",
        "fastmail.fm",
        "protonmail.com",
        "protonmail.ch",
        "proton.me",
        "pm.me",
        "yahoo.com",
        "yahoo.co.uk",
    }
)
# Providers whose mailboxes ignore dots in the local part.
DOTLESS_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
DOMAIN_ALIASES = {"googlemail.com": "gmail.com"}


@dataclass(frozen=True)
class Address:
    email: str  # normalised for sending: domain lower-cased and IDNA-decoded
    key: str  # the canonical mailbox: two addresses with one key reach one person


class InvalidEmail(ValueError):
    """Not an email address; the message says why in words a person understands."""


def parse(text: str) -> Address:
    """Validate an address typed by a person and return it with its canonical key."""
    try:
        result = validate_email(text.strip(), check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidEmail(str(error)) from None
    return Address(email=result.normalized, key=canonical_key(result.local_part, result.domain))


def canonical_key(local_part: str, domain: str) -> str:
    """Lower-case everything; drop +tags and dots only where the provider ignores them."""
    domain = domain.lower()
    domain = DOMAIN_ALIASES.get(domain, domain)
    local = local_part.lower()
    if domain in PLUS_TAG_DOMAINS or domain in DOMAIN_ALIASES.values():
        local = local.split("+", 1)[0] or local
    if domain in DOTLESS_DOMAINS:
        local = local.replace(".", "") or local
    return f"{local}@{domain}"
