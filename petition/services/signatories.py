"""The public list of signatories: only those who chose to be shown, as first name and initial."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, literal, literal_column, select, true, tuple_
from sqlalchemy.orm import Session

from petition.models import Letter, Signature, SignatureState

PER_PAGE = 50


@dataclass(frozen=True)
class PublicSignatory:
    name: str
    organisation: str | None
    comment: str | None
    signed_at: datetime


# What separates the words of a name besides spaces: "John_Smith", and characters that show
# nothing ("John\u200bSmith"; not the joiners, which belong inside words in some scripts). Dots
# too, in a name with no space: "Jan.Kowalski".
_BETWEEN_WORDS = re.compile(r"[\s_\u200b\u2060\ufeff]+")
# What may follow a comma after a whole name: "Anne O'Brien, Jr." is not "Jr. Anne O'Brien",
# nor is "Jane Doe, Chair" a Chair D.
_AFTER_A_NAME = {
    *("jr", "sr", "ii", "iii", "iv", "phd", "md", "mp", "msp", "ms", "obe", "mbe", "cbe"),
    *("chair", "vice", "secretary", "treasurer", "councillor", "cllr", "member", "officer"),
    *("organiser", "organizer", "convenor", "president", "director", "founder", "ceo"),
}

# Titles before a name: "Cllr Jane Smith" is "Jane S.", but "Dr Smith" stays "Dr S.".
_BEFORE_A_NAME = {
    *("mr", "mrs", "ms", "miss", "mx", "dr", "prof", "cllr", "councillor", "rev", "revd"),
    *("sir", "dame", "lord", "lady", "baroness", "rt", "hon"),
}
# An aside after a name, or within it: "Jane Smith - Unison rep", "Jane Smith (Hackney)".
_ASIDE = re.compile(r"\s+[-–—|/]\s.*|\s*[(\[].*?[)\]]")


def public_name(full_name: str) -> str:
    """'Jane Doe' -> 'Jane D.': enough to recognise a friend, not enough to profile a stranger.

    The initial is the first letter of the last word that has one, before any comma: "Anne
    O'Brien, Jr." is "Anne O.", "Zoë Ångström 🎉" is "Zoë Å.". Surnames first, as lists write
    them, come last: "García Márquez, Gabriel" is "Gabriel M.". Titles, suffixes and asides
    are left out: "Cllr Jane Smith MP (Hackney)" is "Jane S.". A name of one word is shown
    whole.
    """
    parts = _name_words(full_name)
    if len(parts) < 2:
        return parts[0] if parts else full_name.strip()  # commas and spaces: nothing to hide
    for word in reversed(parts[1:]):
        initial = next((character for character in word if character.isalpha()), None)
        if initial is not None:
            return f"{parts[0]} {initial}."
    return parts[0]


def spoken_name(full_name: str) -> str:
    """The name to greet someone by, in the order it is spoken: "Doe, Jane" is "Jane Doe",
    "Cllr Jane Smith (Hackney)" is "Jane Smith"."""
    return " ".join(_name_words(full_name)) or full_name.strip()


def _name_words(full_name: str) -> list[str]:
    """The words of a name, given name first, without titles, suffixes or asides."""
    named = _ASIDE.sub(" ", full_name).strip() or re.sub(r"[()\[\]]", " ", full_name)
    head, comma, tail = named.partition(",")
    given = tail.split(",", 1)[0].split()
    # After a whole name, three words or more are a role ("Jane Doe, Hackney Branch
    # Secretary"); after a surname alone they are given names ("Doe, Jane Mary Ann").
    a_role = len(given) > 2 and len(head.split()) > 1
    if comma and given and not a_role and _first_part(given[0]) not in _AFTER_A_NAME:
        head = f"{' '.join(given)} {head}"
    parts = _words(head) or _words(full_name.replace(",", " "))
    while len(parts) > 2 and _first_part(parts[0]) in _BEFORE_A_NAME:
        parts = parts[1:]
    while len(parts) > 2 and _first_part(parts[-1]) in _AFTER_A_NAME:
        parts = parts[:-1]
    return parts


def _first_part(word: str) -> str:
    """'Ph.D.' -> 'phd', 'Vice-Chair' -> 'vice'."""
    return word.replace(".", "").split("-")[0].lower()


def _words(text: str) -> list[str]:
    words = [word for word in _BETWEEN_WORDS.split(text) if word]
    if len(words) == 1:
        words = [word for word in words[0].split(".") if word] or words
    return words


# The signatures on the public list, written as ix_signature_listed's condition (constants, not
# bound values) so that both databases find the list in that index alone.
LISTED = (Signature.state == literal_column(f"'{SignatureState.VERIFIED.value}'")) & (
    Signature.show_name == true()
)
_COLUMNS = (Signature.name, Signature.organisation, Signature.comment, Signature.verified_at)
_OLDEST_FIRST = (Signature.verified_at, Signature.id)
_NEWEST_FIRST = (Signature.verified_at.desc(), Signature.id.desc())


def _listed(letter: Letter, *columns):
    return select(*columns).where(Signature.letter_id == letter.id, LISTED)


def _signatory(row) -> PublicSignatory:
    name, organisation, comment, verified_at = row
    return PublicSignatory(public_name(name), organisation, comment, verified_at)


def recent(session: Session, letter: Letter, limit: int = 5) -> list[PublicSignatory]:
    """The newest public signatories, newest first."""
    query = _listed(letter, *_COLUMNS).order_by(*_NEWEST_FIRST).limit(limit)
    return [_signatory(row) for row in session.execute(query)]


@dataclass(frozen=True)
class Listed:
    """The public list as one read saw it: how many, and the newest of them (confirmed when,
    and its id). Pages counted with a total kept for a few seconds keep to the list as it was
    then, or every page counted from the end would shift by the signers since."""

    total: int
    newest: tuple[datetime, int] | None

    def encode(self) -> bytes:
        """For the shared cache."""
        at, newest_id = self.newest or (None, None)
        return json.dumps([self.total, at.isoformat() if at else None, newest_id]).encode()

    @classmethod
    def decode(cls, kept: bytes) -> Listed:
        total, at, newest_id = json.loads(kept)
        return cls(total, (datetime.fromisoformat(at), newest_id) if at else None)


def listed(session: Session, letter: Letter) -> Listed:
    """The public list now: how many, and the newest (one statement, one snapshot)."""

    def newest(column):
        return _listed(letter, column).order_by(*_NEWEST_FIRST).limit(1).scalar_subquery()

    count = _listed(letter, func.count()).scalar_subquery()
    total, at, newest_id = session.execute(
        select(count, newest(Signature.verified_at), newest(Signature.id))
    ).one()
    return Listed(total or 0, (at, newest_id) if newest_id is not None else None)


@dataclass(frozen=True)
class Page:
    items: list[PublicSignatory]
    number: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // PER_PAGE))

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.pages


def page(session: Session, letter: Letter, number: int, known: Listed | None = None) -> Page:
    """One page of public signatories, oldest first so pages stay stable as people sign.

    `known`: listed() as the caller has it (kept for a few seconds will do): the pages are those
    of the list then, less anyone who has left it since. A page is found in ix_signature_listed
    alone, from whichever end of the list is nearer (the last pages, the newest signers, are the
    ones most asked for), and only its own rows are read from the table: an OFFSET over the
    table read every signature before the page.
    """
    if known is None:
        known = listed(session, letter)
    total = known.total
    number = min(max(number, 1), max(1, -(-total // PER_PAGE)))
    before = (number - 1) * PER_PAGE
    on_page = max(min(PER_PAGE, total - before), 0)
    after = total - before - on_page
    if after < before:
        order, skip, size = _NEWEST_FIRST, after, on_page
    else:
        order, skip, size = _OLDEST_FIRST, before, PER_PAGE
    ids = _listed(letter, Signature.id)
    if known.newest is not None:
        at, newest_id = known.newest
        ids = ids.where(
            tuple_(Signature.verified_at, Signature.id)
            <= tuple_(literal(at, Signature.verified_at.type), literal(newest_id))
        )
    ids = ids.order_by(*order).offset(skip).limit(size).subquery()
    query = select(*_COLUMNS).join(ids, Signature.id == ids.c.id).order_by(*_OLDEST_FIRST)
    return Page([_signatory(row) for row in session.execute(query)], number, total)
