"""Flask-WTF forms: the shape of input, with clear messages. They never touch the database."""

from flask_wtf import FlaskForm


class Form(FlaskForm):
    """The base of every form here.

    CSRFProtect checks the token of every POST before any view runs (and answers a bad one with
    the "form has expired" page), so a form checking it a second time only costs time: templates
    put the token in with the `csrf_field()` macro instead.
    """

    class Meta:
        csrf = False
