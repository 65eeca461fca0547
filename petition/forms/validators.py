"""Validators shared by the forms."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import Field, Form, ValidationError

from petition import emails, text


def single_line(form: Form, field: Field) -> None:
    """Refuse control characters and line breaks, naming the first one found."""
    if field.data and (message := text.problem(field.data)):
        raise ValidationError(message)


def multi_line(form: Form, field: Field) -> None:
    """Like single_line, but line breaks and tabs are fine in longer text."""
    if field.data and (message := text.problem(field.data, multiline=True)):
        raise ValidationError(message)


def not_an_address(form: Form, field: Field) -> None:
    """A name goes on the public list: refuse an email address typed into it by mistake, and
    any "@", which could pass part of one off as a name."""
    if field.data and "@" in field.data:
        if len(field.data.split()) == 1:
            raise ValidationError(_l("Enter your name here, not an email address."))
        raise ValidationError(_l("Leave out the “@”: a name on the list cannot contain one."))


def email_address(form: Form, field: Field) -> None:
    """Validate with email-validator and keep the parsed address on the field."""
    if not field.data or len(field.data) > 254:
        return  # the Length validator has already said it is too long
    try:
        field.address = emails.parse(field.data)
    except emails.InvalidEmail as error:
        raise ValidationError(_l("Enter a valid email address. %(reason)s", reason=error)) from None


def one_line_ending(value: str | None) -> str | None:
    return text.one_line_ending(value) if isinstance(value, str) else value


def strip(value: str | None) -> str | None:
    return text.one_line_ending(value).strip() if isinstance(value, str) else value


def whole_number(minimum: int, maximum: int):
    """Parse a whole number in a text field, with one clear message for every way it can fail."""
    message = _l(
        "Enter a whole number from %(low)s to %(high)s.",
        low=f"{minimum:,}",
        high=f"{maximum:,}",
    )

    def check(form: Form, field: Field) -> None:
        raw = (field.data or "").strip()
        field.number = text.whole_number(raw, minimum, maximum) if raw else None
        if raw and field.number is None:
            raise ValidationError(message)

    return check
