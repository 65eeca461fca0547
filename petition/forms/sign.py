"""The form a member fills in to sign a letter."""

from __future__ import annotations

import threading
from functools import cache

from flask_babel import lazy_gettext as _l
from werkzeug.datastructures import MultiDict
from wtforms import BooleanField, EmailField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, Regexp

from petition import text
from petition.forms import Form
from petition.forms.validators import (
    email_address,
    multi_line,
    not_an_address,
    single_line,
    strip,
)
from petition.services.signatures import SignatureInput, SigningTerms

# Everything the public list shows of a signer who ticks it (see services/signatories.py).
SHOW_NAME_LABEL = _l(
    "Show my first name and initial on the public list of signatories, with any organisation "
    "and comment I give"
)
SHARE_EMAIL_LABEL = _l("Share my email address with the recipient")
WANTS_UPDATES_LABEL = _l("Email me news about this letter (at most a few times)")
OPTIONAL_FIELDS = {
    "postcode": "ask_postcode",
    "organisation": "ask_organisation",
    "comment": "ask_comment",
}


class SignForm(Form):
    name = StringField(
        _l("Your name"),
        filters=[strip],
        validators=[
            DataRequired(_l("Enter your name.")),
            Length(max=120, message=_l("Your name must be at most 120 characters.")),
            single_line,
            not_an_address,
        ],
        render_kw={"autocomplete": "name", "maxlength": 120},
    )
    email = EmailField(
        _l("Email address"),
        filters=[strip],
        validators=[
            DataRequired(_l("Enter your email address.")),
            Length(max=254, message=_l("The email address is too long.")),
            email_address,
        ],
        description=_l("We send you a link to confirm. Your address is never shown publicly."),
        render_kw={"autocomplete": "email", "maxlength": 254, "inputmode": "email"},
    )
    postcode = StringField(
        _l("Postcode"),
        filters=[strip],
        validators=[
            DataRequired(_l("Enter your postcode.")),
            Length(max=10, message=_l("A postcode is at most 10 characters.")),
            Regexp(
                r"^(?=.*[0-9])[A-Za-z0-9][A-Za-z0-9 -]*$",
                message=_l("A postcode has letters and digits, like LS1 4AP."),
            ),
        ],
        render_kw={"autocomplete": "postal-code", "maxlength": 10},
    )
    organisation = StringField(
        _l("Organisation or role (optional)"),
        filters=[strip],
        validators=[
            Optional(),
            Length(max=160, message=_l("Keep this to 160 characters.")),
            single_line,
        ],
        render_kw={"autocomplete": "organization", "maxlength": 160},
    )
    comment = TextAreaField(
        _l("Comment (optional)"),
        filters=[strip],
        validators=[
            Optional(),
            Length(max=500, message=_l("Keep your comment to 500 characters.")),
            multi_line,
        ],
        render_kw={"maxlength": 500, "rows": 3},
    )
    show_name = BooleanField(SHOW_NAME_LABEL)
    share_email = BooleanField(SHARE_EMAIL_LABEL)
    wants_updates = BooleanField(WANTS_UPDATES_LABEL)

    @classmethod
    def for_letter(cls, letter: SigningTerms, **kwargs: object) -> SignForm:
        """The form with only the optional fields this letter asks for."""
        return _with_fields(cls, _asked(letter))(**kwargs)

    def to_input(self) -> SignatureInput:
        return SignatureInput(
            name=self.name.data,
            address=self.email.address,
            show_name=bool(self.show_name.data),
            share_email=bool(self.share_email.data),
            wants_updates=bool(self.wants_updates.data),
            postcode=text.postcode(self.postcode.data) if "postcode" in self else None,
            organisation=(self.organisation.data or None) if "organisation" in self else None,
            comment=(self.comment.data or None) if "comment" in self else None,
        )


def signature_input(letter: SigningTerms, formdata: MultiDict) -> SignatureInput | None:
    """What a valid sign form says, or None if the form would show errors.

    The same form, fields and validators as SignForm.for_letter(letter, formdata=formdata), on an
    instance kept per thread and set of fields and processed afresh each time: building the form
    cost more than validating it. Needs an app context; the errors are not for showing.
    """
    asked = _asked(letter)
    forms: dict[tuple[bool, ...], SignForm] = _kept_forms.__dict__.setdefault("forms", {})
    form = forms.get(asked)
    if form is None:
        form = forms[asked] = _with_fields(SignForm, asked)(formdata=None)
    form.process(formdata)
    return form.to_input() if form.validate() else None


_kept_forms = threading.local()


def _asked(letter: SigningTerms) -> tuple[bool, ...]:
    return tuple(bool(getattr(letter, flag)) for flag in OPTIONAL_FIELDS.values())


@cache
def _with_fields(form: type[SignForm], asked: tuple[bool, ...]) -> type[SignForm]:
    """The form class without the optional fields not asked for (a field set to None is not
    a field): one class per combination, made once, rather than every field bound for each
    request and the unwanted ones deleted again."""
    left_out = {name: None for name, ask in zip(OPTIONAL_FIELDS, asked, strict=True) if not ask}
    return type(form.__name__, (form,), left_out) if left_out else form


class PreferencesForm(Form):
    """A signer's choices after signing, changed from the link in their email."""

    show_name = BooleanField(SHOW_NAME_LABEL)
    share_email = BooleanField(
        SHARE_EMAIL_LABEL,
        description=_l(
            "Takes effect for every list of signatories made from now on; one already "
            "delivered stays with the recipient."
        ),
    )
    wants_updates = BooleanField(WANTS_UPDATES_LABEL)
