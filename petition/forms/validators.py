"""Validators shared by the forms."""

from __future__ import annotations

import unicodedata

from flask_babel import lazy_gettext as _l
from wtforms import Field, Form, ValidationError

from petition import emails

_ALLOWED_CONTROLS = {"\n", "\r", "\t"}


def single_line(form: Form, field: Field) -> None:
    """Reject control characters (including line breaks) in one-line fields."""
    if field.data and any(unicodedata.category(c) in ("Cc", "Cf") for c in field.data):
        raise ValidationError(_l("Please remove the invisible or control characters."))


def multi_line(form: Form, field: Field) -> None:
    """Like single_line, but line breaks and tabs are fine in longer text."""
    if field.data and any(
        unicodedata.category(c) in ("Cc", "Cf") and c not in _ALLOWED_CONTROLS for c in field.data
    ):
        raise ValidationError(_l("Please remove the invisible or control characters."))


def email_address(form: Form, field: Field) -> None:
    """Validate with email-validator and keep the parsed address on the field."""
    if not field.data:
        return
    try:
        field.address = emails.parse(field.data)
    except emails.InvalidEmail as error:
        raise ValidationError(
            _l("Enter a valid email address (%(reason)s)", reason=error)
        ) from None


def strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value
