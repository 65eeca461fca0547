"""Rules for text people type: which characters we refuse, named so they can find them."""

from __future__ import annotations

import re
import unicodedata

# Bidirectional overrides and isolates can make text display in a different order than it is
# stored (names that read differently on screen and in the CSV). Other invisible formatting
# characters (zero-width joiners in Persian or Sinhala, emoji sequences, soft hyphens) are
# ordinary parts of text and are kept.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_LINE_BREAKS = frozenset("\n\r\u2028\u2029\x85")
_MULTILINE_ALLOWED = frozenset("\n\r\t")


def problem(text: str, *, multiline: bool = False) -> str | None:
    """Say what is wrong with a character in `text`, or None if every character is fine."""
    for position, char in enumerate(text, start=1):
        if multiline and char in _MULTILINE_ALLOWED:
            continue
        if not multiline and char in _LINE_BREAKS:
            return "Keep this on one line (it contains a line break)."
        if unicodedata.category(char) == "Cc" or char in BIDI_CONTROLS:
            return (
                f"Remove the invisible control character U+{ord(char):04X} at character {position}."
            )
    if text and not any(_visible(char) for char in text):
        return "Type some visible text (this has only spaces or invisible characters)."
    return None


def _visible(char: str) -> bool:
    # Letters, digits, punctuation and symbols; not spaces (Z*), formatting (Cf) or controls.
    return unicodedata.category(char)[0] not in "ZC"


def printable(value: str) -> str:
    """`value` with its control characters (NUL, line breaks, tabs...) taken out: for what a
    search box sends, where a stray one should find what the rest says, not fail."""
    return "".join(char for char in value if unicodedata.category(char) != "Cc")


# ASCII digits, in groups of three after the first if separated, as people write them:
# "1000", "1,000", "10 000" (a space, a no-break space or a narrow one).
_WHOLE_NUMBER = re.compile(r"[0-9]+|[0-9]{1,3}(?:([, \u00a0\u202f])[0-9]{3})(?:\1[0-9]{3})*")


def whole_number(text: str, low: int, high: int) -> int | None:
    """The number `text` spells if it lies from low to high; None otherwise (signs, decimals,
    misplaced separators and other scripts' digits included)."""
    text = text.strip()
    # Longer than the highest number written out cannot be in range (and int() refuses a
    # few thousand digits).
    if len(text) > len(f"{high:,}") or not _WHOLE_NUMBER.fullmatch(text):
        return None
    number = int(re.sub(r"[^0-9]", "", text))
    return number if low <= number <= high else None


def one_line_ending(value: str) -> str:
    """Line breaks as one character each: browsers send CRLF but count, and limit, one."""
    return value.replace("\r\n", "\n")


# A UK postcode without its space: outward code (area, district), inward code (sector, unit).
_UK_POSTCODE_UNSPACED = re.compile(r"([A-Z]{1,2}[0-9][A-Z0-9]?)([0-9][A-Z]{2})")


def postcode(value: str) -> str:
    """A postcode as the recipient's office will sort it: capitals, single spaces, and the
    space a UK postcode has ("ls73ah" is "LS7 3AH"); others are kept as typed."""
    value = " ".join(value.upper().split())
    if unspaced := _UK_POSTCODE_UNSPACED.fullmatch(value):
        return " ".join(unspaced.groups())
    return value
