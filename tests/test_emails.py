"""Canonical mailbox keys: merge only what the provider itself merges."""

import pytest

from petition.emails import InvalidEmail, parse


@pytest.mark.parametrize(
    ("typed", "key"),
    [
        ("Jane@Example.org", "jane@example.org"),
        ("jane.doe+petition@gmail.com", "janedoe@gmail.com"),
        ("J.A.N.E.Doe@GoogleMail.com", "janedoe@gmail.com"),
        ("jane+x@outlook.com", "jane@outlook.com"),
        ("alice+1@hotmail.fr", "alice@hotmail.fr"),
        ("alice+2@live.co.uk", "alice@live.co.uk"),
        ("alice+3@pm.me", "alice@pm.me"),
        ("alice+4@mac.com", "alice@mac.com"),
        ("jane.doe@outlook.com", "jane.doe@outlook.com"),
        ("jane+x@example.org", "jane+x@example.org"),
        ("jane.doe@example.org", "jane.doe@example.org"),
    ],
)
def test_canonical_keys(typed, key):
    assert parse(typed).key == key


def test_the_address_for_sending_keeps_what_was_typed():
    assert parse("  Jane.Doe+x@GMAIL.com ").email == "Jane.Doe+x@gmail.com"


@pytest.mark.parametrize("typed", ["", "jane", "jane@", "@example.org", "jane@exa mple.org"])
def test_invalid_addresses_are_refused(typed):
    with pytest.raises(InvalidEmail):
        parse(typed)
