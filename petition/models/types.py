"""Column types shared by the models."""

from enum import StrEnum

from sqlalchemy import Enum


def state_enum(enum: type[StrEnum], name: str) -> Enum:
    """A portable enum column: a short string with a CHECK constraint on every database."""
    return Enum(
        enum,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )
