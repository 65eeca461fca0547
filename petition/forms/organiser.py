"""Forms organisers use: logging in, and writing a letter."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    IntegerField,
    PasswordField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp

from petition.forms.validators import email_address, multi_line, single_line, strip
from petition.models import Letter
from petition.services.letters import SLUG_MAX, LetterInput

LOCAL_TIME = ZoneInfo("Europe/London")


class LoginForm(FlaskForm):
    email = EmailField(
        _l("Email address"),
        filters=[strip],
        validators=[DataRequired(_l("Enter your email address.")), Length(max=254)],
        render_kw={"autocomplete": "username"},
    )
    password = PasswordField(
        _l("Password"),
        validators=[DataRequired(_l("Enter your password.")), Length(max=256)],
        render_kw={"autocomplete": "current-password"},
    )


class LetterForm(FlaskForm):
    title = StringField(
        _l("Title"),
        filters=[strip],
        validators=[
            DataRequired(_l("Give the letter a title.")),
            Length(max=200, message=_l("Keep the title to 200 characters.")),
            single_line,
        ],
        description=_l("Short and specific, e.g. “Stand for the leadership”."),
    )
    recipient_name = StringField(
        _l("Recipient’s name"),
        filters=[strip],
        validators=[DataRequired(_l("Say who the letter is to.")), Length(max=200), single_line],
    )
    recipient_role = StringField(
        _l("Recipient’s role (optional)"),
        filters=[strip],
        validators=[Optional(), Length(max=200), single_line],
        description=_l("e.g. “MP for Leeds Central”."),
    )
    recipient_email = EmailField(
        _l("Recipient’s email (optional, never shown publicly)"),
        filters=[strip],
        validators=[Optional(), Length(max=254), email_address],
    )
    body = TextAreaField(
        _l("The letter"),
        validators=[
            DataRequired(_l("Write the letter.")),
            Length(max=20_000, message=_l("Keep the letter under 20,000 characters.")),
            multi_line,
        ],
        description=_l("Markdown: blank lines between paragraphs, **bold**, *italic*, - lists."),
        render_kw={"rows": 14},
    )
    slug = StringField(
        _l("Web address (optional)"),
        filters=[lambda v: v.strip().lower() if isinstance(v, str) else v],
        validators=[
            Optional(),
            Length(min=3, max=SLUG_MAX),
            Regexp(
                r"^[a-z0-9]+(?:-[a-z0-9]+)*$",
                message=_l("Use lower-case letters, digits and single hyphens only."),
            ),
        ],
        description=_l(
            "The end of the letter’s address, e.g. stand-for-leader. Left empty, "
            "it is made from the title."
        ),
    )
    goal = IntegerField(
        _l("Signature goal (optional)"),
        validators=[
            Optional(),
            NumberRange(min=1, max=100_000_000, message=_l("Enter a whole number above 0.")),
        ],
        render_kw={"inputmode": "numeric", "min": 1},
    )
    closes_on = DateField(
        _l("Closing date (optional)"),
        validators=[Optional()],
        description=_l("Signatures are accepted until the end of this day (UK time)."),
    )
    ask_postcode = BooleanField(_l("Ask signers for their postcode"))
    ask_organisation = BooleanField(_l("Ask signers for their organisation or role"))
    ask_comment = BooleanField(_l("Let signers add a comment"))

    @classmethod
    def from_letter(cls, letter: Letter) -> LetterForm:
        closes_on = letter.closes_at.astimezone(LOCAL_TIME).date() if letter.closes_at else None
        return cls(
            data={
                "title": letter.title,
                "recipient_name": letter.recipient_name,
                "recipient_role": letter.recipient_role,
                "recipient_email": letter.recipient_email,
                "body": letter.body_markdown,
                "slug": letter.slug,
                "goal": letter.goal,
                "closes_on": closes_on,
                "ask_postcode": letter.ask_postcode,
                "ask_organisation": letter.ask_organisation,
                "ask_comment": letter.ask_comment,
            }
        )

    def to_input(self) -> LetterInput:
        return LetterInput(
            title=self.title.data,
            recipient_name=self.recipient_name.data,
            recipient_role=self.recipient_role.data or "",
            recipient_email=self.recipient_email.address.email
            if self.recipient_email.data
            else None,
            body_markdown=self.body.data,
            slug=self.slug.data or None,
            goal=self.goal.data,
            closes_at=end_of_day(self.closes_on.data) if self.closes_on.data else None,
            ask_postcode=bool(self.ask_postcode.data),
            ask_organisation=bool(self.ask_organisation.data),
            ask_comment=bool(self.ask_comment.data),
        )


def end_of_day(day: date) -> datetime:
    """Midnight at the end of `day`, UK time: a letter "closing on the 5th" takes the 5th."""
    return datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=LOCAL_TIME)
