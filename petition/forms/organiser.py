"""Forms organisers use: logging in, and writing a letter."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    PasswordField,
    StringField,
    TextAreaField,
    ValidationError,
)
from wtforms.validators import DataRequired, Length, Optional, Regexp

from petition.dates import NoSuchDay, NotADay, closing_day, end_of_day, parse_day
from petition.db import utcnow
from petition.forms import Form
from petition.forms.validators import (
    email_address,
    multi_line,
    one_line_ending,
    single_line,
    strip,
    whole_number,
)
from petition.models import Letter
from petition.models.delivery import LABEL_MAX
from petition.services import news
from petition.services.letters import GOAL_MAX, SLUG_MAX, LetterInput, closing_problem


class DayField(DateField):
    """A date input whose refusals say what is wrong, where WTForms says "Not a valid date
    value" (browsers without a date picker let people type any text)."""

    def process_formdata(self, valuelist: list[str]) -> None:
        self.data = None
        if not valuelist or not valuelist[0].strip():
            return
        try:
            self.data = parse_day(valuelist[0])
        except NoSuchDay:
            raise ValueError(_l("There is no such day: check the month and the day.")) from None
        except NotADay:
            raise ValueError(_l("Enter the date as year-month-day, e.g. 2027-03-31.")) from None


def possible_closing_day(form: object, field: DateField) -> None:
    """The letters service's rule, checked with the form's other fields so that a past date
    is named together with any other mistake, not on the next attempt."""
    if field.data and (problem := closing_problem(end_of_day(field.data), utcnow())):
        raise ValidationError(problem)


class LoginForm(Form):
    email = EmailField(
        _l("Email address"),
        filters=[strip],
        validators=[
            DataRequired(_l("Enter your email address.")),
            Length(max=254, message=_l("An email address is at most 254 characters.")),
            single_line,  # a control character (PostgreSQL refuses a NUL) is no address
        ],
        render_kw={"autocomplete": "username"},
    )
    password = PasswordField(
        _l("Password"),
        validators=[
            DataRequired(_l("Enter your password.")),
            Length(max=256, message=_l("Passwords here are at most 256 characters.")),
        ],
        render_kw={"autocomplete": "current-password"},
    )


class LetterForm(Form):
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
        validators=[
            DataRequired(_l("Say who the letter is to.")),
            Length(max=200, message=_l("Keep the recipient’s name to 200 characters.")),
            single_line,
        ],
    )
    recipient_role = StringField(
        _l("Recipient’s role (optional)"),
        filters=[strip],
        validators=[
            Optional(),
            Length(max=200, message=_l("Keep the recipient’s role to 200 characters.")),
            single_line,
        ],
        description=_l("e.g. “MP for Leeds Central”."),
    )
    recipient_email = EmailField(
        _l("Recipient’s email (optional, never shown publicly)"),
        filters=[strip],
        validators=[
            Optional(),
            Length(max=254, message=_l("An email address is at most 254 characters.")),
            email_address,
        ],
        description=_l("Where to send the delivery link: you can email it from your own mail."),
    )
    body = TextAreaField(
        _l("The letter"),
        filters=[one_line_ending],  # leading spaces are kept: they mean something in Markdown
        validators=[
            DataRequired(_l("Write the letter.")),
            Length(max=20_000, message=_l("Keep the letter under 20,000 characters.")),
            multi_line,
        ],
        description=_l(
            "Markdown: blank lines between paragraphs, **bold**, *italic*, - lists, "
            "## headings, [link text](https://…)."
        ),
        render_kw={"rows": 14},
    )
    slug = StringField(
        _l("Web address (optional)"),
        filters=[strip],
        validators=[
            Optional(),
            Length(
                min=3,
                max=SLUG_MAX,
                message=_l("Use 3 to %(max)s characters.", max=SLUG_MAX),
            ),
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
    goal = StringField(
        _l("Signature goal (optional)"),
        filters=[strip],
        validators=[whole_number(1, GOAL_MAX)],
        render_kw={"inputmode": "numeric"},  # digits; "1,000" and "10 000" are taken too
    )
    closes_on = DayField(
        _l("Closing date (optional)"),
        validators=[Optional(), possible_closing_day],
        description=_l("Signatures are accepted until the end of this day (UK time)."),
    )
    ask_postcode = BooleanField(_l("Ask signers for their postcode"))
    ask_organisation = BooleanField(_l("Ask signers for their organisation or role"))
    ask_comment = BooleanField(_l("Let signers add a comment"))

    @classmethod
    def from_letter(cls, letter: Letter) -> LetterForm:
        closes_on = closing_day(letter.closes_at) if letter.closes_at else None
        return cls(
            data={
                "title": letter.title,
                "recipient_name": letter.recipient_name,
                "recipient_role": letter.recipient_role,
                "recipient_email": letter.recipient_email,
                "body": letter.body_markdown,
                "slug": letter.slug,
                "goal": str(letter.goal) if letter.goal else "",
                "closes_on": closes_on,
                "ask_postcode": letter.ask_postcode,
                "ask_organisation": letter.ask_organisation,
                "ask_comment": letter.ask_comment,
            }
        )

    def show_signed_words(self, letter: Letter) -> None:
        """The words people signed, as stored, in their read-only fields: whatever was sent
        for them was refused, and would be refused again."""
        self.title.data = letter.title
        self.recipient_name.data = letter.recipient_name
        self.recipient_role.data = letter.recipient_role
        self.body.data = letter.body_markdown

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
            goal=self.goal.number,
            closes_at=end_of_day(self.closes_on.data) if self.closes_on.data else None,
            ask_postcode=bool(self.ask_postcode.data),
            ask_organisation=bool(self.ask_organisation.data),
            ask_comment=bool(self.ask_comment.data),
        )


class DeliveryForm(Form):
    """A new delivery link, and whom it is for (the service checks the label)."""

    label = StringField(
        _l("Who is it for? (optional)"),
        filters=[strip],
        render_kw={"maxlength": LABEL_MAX},
        description=_l("Only you see this, e.g. “Office of Alex Morgan MP”."),
    )


class NewsForm(Form):
    """News of a letter for the signers who asked for it (the service checks the rules)."""

    subject = StringField(
        _l("Subject"),
        filters=[strip],
        validators=[DataRequired(news.NO_SUBJECT)],
        render_kw={"maxlength": 150},
        description=_l("e.g. “We delivered the letter”."),
    )
    body = TextAreaField(
        _l("News"),
        filters=[strip],
        validators=[DataRequired(news.NO_BODY)],
        render_kw={"maxlength": 3000, "rows": 8},
        description=_l(
            "Plain text, up to 3,000 characters. Each email greets the signer by name and "
            "ends with a link to the letter and one to stop news."
        ),
    )
