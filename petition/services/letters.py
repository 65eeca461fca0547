"""Writing, publishing and closing letters, and finding them by slug."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from petition import emails, markup, text
from petition.db import utcnow
from petition.errors import InvalidInput, LetterNotEditable, LetterNotFound, NotFound, SlugTaken
from petition.models import Letter, LetterStatus, Organiser, Signature, SignatureState

SLUG_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
SLUG_MAX = 80
RESERVED_SLUGS = frozenset({"new", "edit", "embed", "signatories", "sign", "api", "static"})


@dataclass(frozen=True)
class LetterInput:
    title: str
    recipient_name: str
    body_markdown: str
    recipient_role: str = ""
    recipient_email: str | None = None
    goal: int | None = None
    closes_at: datetime | None = None
    ask_postcode: bool = False
    ask_organisation: bool = False
    ask_comment: bool = False
    slug: str | None = None


# Letters that no Unicode decomposition turns into ASCII, spelled as their languages do.
_SPELLED_OUT = str.maketrans(
    {"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i"}
)


def slugify(text: str) -> str:
    """A readable URL slug: ASCII letters and digits joined by hyphens ("Søren's Straße"
    becomes sorens-strasse)."""
    spelled = unicodedata.normalize("NFKD", text.lower().translate(_SPELLED_OUT))
    ascii_text = spelled.encode("ascii", "ignore").decode().replace("'", "")
    words = re.findall(r"[a-z0-9]+", ascii_text.lower())
    slug = ""
    for word in words:
        candidate = f"{slug}-{word}" if slug else word
        if len(candidate) > SLUG_MAX - 4:  # leave room for a "-NN" suffix
            break
        slug = candidate
    return slug or "letter"


def check_slug(slug: str) -> str:
    """Accept a slug an organiser typed, or say precisely what is wrong with it."""
    if not 3 <= len(slug) <= SLUG_MAX or not SLUG_PATTERN.match(slug):
        raise InvalidInput(
            f"The web address must be 3 to {SLUG_MAX} lower-case letters, digits and single "
            "hyphens, such as stand-for-leader.",
            field="slug",
        )
    if slug in RESERVED_SLUGS:
        raise InvalidInput(f"“{slug}” is reserved; choose another web address.", field="slug")
    return slug


def _unique_slug(session: Session, base: str) -> str:
    taken = set(
        session.scalars(
            select(Letter.slug).where((Letter.slug == base) | Letter.slug.like(f"{base}-%"))
        )
    )
    if base not in taken and base not in RESERVED_SLUGS:
        return base
    suffix = 2
    while f"{base}-{suffix}" in taken:
        suffix += 1
    return f"{base}-{suffix}"


TITLE_MAX = 200
NAME_MAX = 200
BODY_MAX = 20_000
GOAL_MAX = 100_000_000
LONGEST_CAMPAIGN = timedelta(days=5 * 366)


def validate(data: LetterInput, now: datetime) -> None:
    """The rules every letter meets, whether it comes from the web form, the CLI or the API."""
    required = (
        ("title", data.title, TITLE_MAX, "Give the letter a title."),
        ("recipient_name", data.recipient_name, NAME_MAX, "Say who the letter is to."),
    )
    for field, value, limit, missing in required:
        if not value.strip():
            raise InvalidInput(missing, field=field)
        check_text(field, value, limit)
    check_text("recipient_role", data.recipient_role, NAME_MAX)
    if not data.body_markdown.strip():
        raise InvalidInput("Write the letter.", field="body")
    check_text("body", data.body_markdown, BODY_MAX, multiline=True)
    if data.recipient_email:
        try:
            emails.parse(data.recipient_email)
        except emails.InvalidEmail as error:
            raise InvalidInput(
                f"The recipient's email is not valid: {error}", field="recipient_email"
            ) from None
    if data.goal is not None and not 1 <= data.goal <= GOAL_MAX:
        raise InvalidInput(f"The goal must be from 1 to {GOAL_MAX:,}.", field="goal")
    if data.closes_at is not None and (problem := closing_problem(data.closes_at, now)):
        raise InvalidInput(problem, field="closes_on")


def closing_problem(closes_at: datetime, now: datetime) -> str | None:
    """What is wrong with closing a letter at `closes_at`, or None (the form asks this too,
    so that it can say so together with any other mistake)."""
    if closes_at <= now:
        return "The closing date must be in the future."
    if closes_at > now + LONGEST_CAMPAIGN:
        return "The closing date must be within five years."
    return None


def check_text(field: str, value: str, limit: int, *, multiline: bool = False) -> None:
    """Refuse text over `limit` characters or with characters text.problem() names."""
    if len(value) > limit:
        raise InvalidInput(f"Keep this to {limit:,} characters.", field=field)
    if message := text.problem(value, multiline=multiline):
        raise InvalidInput(message, field=field)


def create(
    session: Session,
    data: LetterInput,
    organiser: Organiser | None = None,
    *,
    publish: bool = False,
    now: datetime | None = None,
) -> Letter:
    """Save a new letter as a draft (or publish it at once) under a unique slug."""
    now = now or utcnow()
    validate(data, now)
    if data.slug:
        slug = check_slug(data.slug)
        if session.scalar(select(Letter.id).where(Letter.slug == slug)) is not None:
            raise SlugTaken(field="slug")
    else:
        slug = _unique_slug(session, slugify(data.title))
    letter = Letter(slug=slug, organiser_id=organiser.id if organiser else None, created_at=now)
    _apply(letter, data, now)
    session.add(letter)
    if publish:
        _publish(letter, now)
    session.flush()
    return letter


def update(
    session: Session, letter: Letter, data: LetterInput, now: datetime | None = None
) -> None:
    """Edit a draft or open letter; the slug is fixed once the letter is public."""
    now = now or utcnow()
    ensure_editable(letter)
    validate(data, now)
    _keep_signed_words(session, letter, data)  # first: it may read the letter's row again
    if data.slug and data.slug != letter.slug:
        if letter.status is not LetterStatus.DRAFT:
            raise InvalidInput(
                "The web address cannot change once the letter is published.", field="slug"
            )
        slug = check_slug(data.slug)
        if session.scalar(select(Letter.id).where(Letter.slug == slug)) is not None:
            raise SlugTaken(field="slug")
        letter.slug = slug
    _keep_answered_questions(session, letter, data)
    _apply(letter, data, now)
    session.flush()


# What a signature endorses: the letter's words and whom they are addressed to, as
# (LetterInput's name, the letter form's name).
SIGNED_WORDS = (
    ("title", "title"),
    ("recipient_name", "recipient_name"),
    ("recipient_role", "recipient_role"),
    ("body_markdown", "body"),
)


def has_signers(session: Session, letter: Letter, now: datetime | None = None) -> bool:
    """Whether anyone has signed this letter: confirmed (and not withdrawn), or still able to
    confirm from the link they were sent."""
    signed = select(Signature.id).where(
        Signature.letter_id == letter.id,
        (Signature.state == SignatureState.VERIFIED) | Signature.confirmable(now or utcnow()),
    )
    return session.scalar(signed.limit(1)) is not None


def _keep_signed_words(session: Session, letter: Letter, data: LetterInput) -> None:
    """Once someone has signed, the words stay as they signed them: a signature, and the
    consent to share an email address with the recipient, were given to this letter to this
    recipient, and the recipient must get what people signed. A pending signer confirms what
    they signed, so they count from the start."""
    changed = [
        field
        for (_attribute, field), typed, stored in zip(
            SIGNED_WORDS, _signed_words(data), _signed_words(letter), strict=True
        )
        if typed != stored
    ]
    if not changed:
        return
    # The letter's row, locked: a signature being made (its foreign key's check shares the
    # row) is either committed and seen below, or waits until these words are saved.
    session.refresh(letter, with_for_update=True)
    if has_signers(session, letter):
        raise InvalidInput(
            "People have signed this letter as it stands, so its title, recipient and text "
            "stay as they are. To tell signers something, send them news; to ask for "
            "something else, close this letter and start a new one.",
            field=changed[0],
        )


def _signed_words(source: Letter | LetterInput) -> list[str]:
    # Line endings as stored: a body read from a file or a form may have come with CRLF.
    return [text.one_line_ending(getattr(source, attribute) or "") for attribute, _ in SIGNED_WORDS]


# The optional questions: the letter's flag, the signature's column, what it asks for.
QUESTIONS = (
    ("ask_postcode", "postcode", "a postcode"),
    ("ask_organisation", "organisation", "an organisation or role"),
    ("ask_comment", "comment", "a comment"),
)


def _keep_answered_questions(session: Session, letter: Letter, data: LetterInput) -> None:
    """A question people have answered stays: dropping it would drop their answers from the
    list the recipient gets. Adding one is fine (earlier signers simply have none)."""
    for flag, column, what in QUESTIONS:
        if getattr(letter, flag) and not getattr(data, flag):
            answered = select(Signature.id).where(
                Signature.letter_id == letter.id, getattr(Signature, column).is_not(None)
            )
            if session.scalar(answered.limit(1)) is not None:
                raise InvalidInput(
                    f"People who signed have given {what}, so the letter keeps asking for it: "
                    "their answers still go to the recipient.",
                    field=flag,
                )


def ensure_editable(letter: Letter) -> None:
    """A closed letter is final: what people signed stays as it was."""
    if letter.status is LetterStatus.CLOSED:
        raise LetterNotEditable()


def _apply(letter: Letter, data: LetterInput, now: datetime) -> None:
    letter.title = data.title
    letter.recipient_name = data.recipient_name
    letter.recipient_role = data.recipient_role
    letter.recipient_email = data.recipient_email or None
    letter.body_markdown = text.one_line_ending(data.body_markdown)
    letter.body_html = markup.render(letter.body_markdown)
    letter.goal = data.goal
    letter.closes_at = data.closes_at
    letter.ask_postcode = data.ask_postcode
    letter.ask_organisation = data.ask_organisation
    letter.ask_comment = data.ask_comment
    letter.updated_at = now


def publish(session: Session, letter: Letter, now: datetime | None = None) -> None:
    """Open a draft for signatures."""
    if letter.status is LetterStatus.OPEN:
        raise LetterNotEditable("This letter is already published and open for signatures.")
    if letter.status is not LetterStatus.DRAFT:
        raise LetterNotEditable("This letter is closed: a closed letter cannot be reopened.")
    _publish(letter, now or utcnow())
    session.flush()


def _publish(letter: Letter, now: datetime) -> None:
    letter.status = LetterStatus.OPEN
    letter.published_at = now
    letter.updated_at = now


def close(session: Session, letter: Letter, now: datetime | None = None) -> None:
    """Stop collecting signatures; the letter stays readable with its final count."""
    if letter.status is LetterStatus.CLOSED:
        raise LetterNotEditable("This letter is already closed.")
    if letter.status is not LetterStatus.OPEN:
        raise LetterNotEditable("This letter is a draft: publish it before it can be closed.")
    now = now or utcnow()
    letter.status = LetterStatus.CLOSED
    letter.closed_at = now
    letter.updated_at = now
    session.flush()


def delete_draft(session: Session, letter: Letter) -> None:
    """Delete a letter nobody but its organiser has seen; a published one is closed instead,
    since people have signed it or may yet."""
    if letter.status is not LetterStatus.DRAFT:
        raise LetterNotEditable(
            "Only a draft can be deleted: a published letter stays online, closed if need be."
        )
    session.delete(letter)
    session.flush()


def get_public(session: Session, slug: str) -> Letter:
    """A published (open or closed) letter by slug; drafts do not exist for the public."""
    letter = session.scalar(
        select(Letter).where(Letter.slug == slug, Letter.status != LetterStatus.DRAFT)
    )
    if letter is None:
        raise LetterNotFound()
    return letter


@dataclass(frozen=True)
class LetterRef:
    """A letter's identity and title, for pages and mail that need no more of it."""

    id: int
    slug: str
    title: str


@dataclass(frozen=True)
class SignableLetter:
    """What the sign form and signing need of a published letter: small enough to cache.

    Whether the letter still takes signatures is not part of it; signing checks that in SQL.
    """

    id: int
    slug: str
    title: str
    ask_postcode: bool
    ask_organisation: bool
    ask_comment: bool


def get_signable(session: Session, slug: str) -> SignableLetter:
    """The parts of a published letter that signing needs, or LetterNotFound."""
    row = session.execute(
        select(
            Letter.id,
            Letter.slug,
            Letter.title,
            Letter.ask_postcode,
            Letter.ask_organisation,
            Letter.ask_comment,
        ).where(Letter.slug == slug, Letter.status != LetterStatus.DRAFT)
    ).first()
    if row is None:
        raise LetterNotFound()
    return SignableLetter(*row)


def get_by_slug(session: Session, slug: str) -> Letter:
    """Any letter by slug, drafts included (operators' commands)."""
    letter = session.scalar(select(Letter).where(Letter.slug == slug))
    if letter is None:
        raise LetterNotFound(f"There is no letter with the slug {slug!r}.")
    return letter


def get_for_organiser(session: Session, organiser: Organiser, letter_id: int) -> Letter:
    """One of the organiser's own letters; anyone else's reads as not found."""
    letter = session.get(Letter, letter_id)
    if letter is None or letter.organiser_id != organiser.id:
        raise NotFound()
    return letter


def list_for_organiser(session: Session, organiser: Organiser) -> list[Letter]:
    """The organiser's letters, newest first."""
    query = select(Letter).where(Letter.organiser_id == organiser.id).order_by(Letter.id.desc())
    return list(session.scalars(query))


def list_all(session: Session) -> list[Letter]:
    """Every letter, for operators."""
    return list(session.scalars(select(Letter).order_by(Letter.id)))


SORTS = ("popular", "newest")


def list_public(
    session: Session,
    *,
    sort: str = "popular",
    search: str = "",
    closed: bool = False,
    now: datetime | None = None,
    limit: int = 50,
) -> list[Letter]:
    """Open letters (or the closed archive) for the home page, most signed or newest first.

    "Most signed" orders by the stored count, which the worker keeps seconds behind.
    """
    now = now or utcnow()
    still_open = (Letter.status == LetterStatus.OPEN) & (
        Letter.closes_at.is_(None) | (Letter.closes_at > now)
    )
    query = select(Letter).where(Letter.status != LetterStatus.DRAFT)
    query = query.where(~still_open if closed else still_open)
    if search:
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            Letter.title.ilike(pattern, escape="\\")
            | Letter.recipient_name.ilike(pattern, escape="\\")
        )
    if sort == "newest":
        query = query.order_by(Letter.published_at.desc(), Letter.id.desc())
    else:
        query = query.order_by(Letter.signature_count.desc(), Letter.id.desc())
    return list(session.scalars(query.limit(limit)))
