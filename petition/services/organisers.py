"""Organiser accounts: creation and password checks (Argon2id)."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from petition import emails, text
from petition.errors import InvalidInput
from petition.models import Organiser

MIN_PASSWORD_LENGTH = 10
_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    # Verifying against this when the account does not exist makes a wrong email take as long
    # as a wrong password, so timing does not reveal who has an account. Made on first use:
    # an Argon2 hash costs 0.25 s and 64 MiB, which no other command or worker should pay.
    return _hasher.hash("no such organiser")


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"The password must be at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > 256:
        raise InvalidInput("The password must be at most 256 characters.")


def create(session: Session, email: str, password: str, name: str = "") -> Organiser:
    """A new organiser; the email must be valid and not already registered."""
    try:
        address = emails.parse(email)
    except emails.InvalidEmail as error:
        raise InvalidInput(f"That email address is not valid: {error}") from None
    check_password_strength(password)
    name = name.strip()
    if len(name) > 120:
        raise InvalidInput("The organiser's name must be at most 120 characters.")
    if name and (problem := text.problem(name)):
        raise InvalidInput(f"The organiser's name: {problem}")
    if find(session, address.email) is not None:
        raise InvalidInput(f"An organiser with the email {address.email} already exists.")
    organiser = Organiser(
        email=address.email.lower(), name=name, password_hash=_hasher.hash(password)
    )
    session.add(organiser)
    session.flush()
    return organiser


def set_password(session: Session, organiser: Organiser, password: str) -> None:
    """A new password, which also ends every session the organiser had."""
    check_password_strength(password)
    organiser.password_hash = _hasher.hash(password)
    end_sessions(session, organiser)


def end_sessions(session: Session, organiser: Organiser) -> None:
    """Log the organiser out everywhere: every session cookie made so far stops working."""
    organiser.session_version += 1
    session.flush()


def set_active(session: Session, organiser: Organiser, active: bool) -> bool:
    """Disable an account (its sessions end and it cannot log in) or enable it again; False
    when it already was so, and nothing changed."""
    if organiser.active == active:
        return False
    organiser.active = active
    end_sessions(session, organiser)
    return True


def find(session: Session, email: str) -> Organiser | None:
    return session.scalar(select(Organiser).where(Organiser.email == email.strip().lower()))


def authenticate(session: Session, email: str, password: str) -> Organiser | None:
    """The organiser these credentials belong to, or None; upgrades old hashes on the way."""
    organiser = find(session, email)
    try:
        _hasher.verify(organiser.password_hash if organiser else _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return None
    if organiser is None or not organiser.is_active:
        return None
    if _hasher.check_needs_rehash(organiser.password_hash):
        organiser.password_hash = _hasher.hash(password)
    return organiser
