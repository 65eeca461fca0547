"""Two app instances on one PostgreSQL and one Redis behave as one site."""

from __future__ import annotations

import json
import uuid
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from petition.db import transaction
from petition.models import Message
from petition.services import organisers
from tests.conftest import REDIS_URL, fresh_session
from tests.faults.conftest import Browser, verify_links, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def two_instances(app, start_web):
    """Both with the same Redis and their own rate-limit namespace for this test."""
    shared = {
        "PETITION_REDIS_URL": REDIS_URL,
        "PETITION_COUNT_CACHE_SECONDS": "1",
        "PETITION_RATELIMIT_KEY_PREFIX": "t" + uuid.uuid4().hex,
    }
    return [start_web(**shared), start_web(**shared)]


def _count(port: int, slug: str) -> int:
    status, body = Browser(port).request("GET", f"/api/v1/letters/{slug}")
    assert status == 200
    return json.loads(body)["signature_count"]


def test_sign_on_one_confirm_on_the_other_and_both_count_it(two_instances, make_letter):
    first, second = two_instances
    letter = make_letter()
    status, _page = Browser(first.port).sign(letter.slug, "jane@example.org")
    assert status == 303
    # The same mailbox on the other instance is recognised as the same person.
    assert Browser(second.port).sign(letter.slug, "JANE@example.org")[0] == 303
    bodies = fresh_session().scalars(select(Message.context).where(Message.kind == "verify"))
    newest = [link for body in bodies for link in verify_links(body)][-1]
    assert Browser(second.port).confirm(newest)[0] == 200
    wait_for(lambda: _count(first.port, letter.slug) == 1, timeout=5, what="instance A's count")
    assert _count(second.port, letter.slug) == 1


def test_an_organiser_stays_logged_in_across_instances(two_instances):
    first, second = two_instances
    with transaction() as session:
        organisers.create(session, "org@example.org", "long enough password")
    browser = Browser(first.port)
    browser.request("GET", "/organiser/login")
    form = {
        "csrf_token": browser.token,
        "email": "org@example.org",
        "password": "long enough password",
    }
    assert browser.request("POST", "/organiser/login", urlencode(form))[0] == 303
    browser.port = second.port  # the proxy sends the next request elsewhere
    status, page = browser.request("GET", "/organiser/")
    assert status == 200 and "Your letters" in page


def test_login_attempts_are_limited_across_instances(two_instances):
    first, second = two_instances
    statuses = []
    for attempt in range(11):
        browser = Browser((first if attempt % 2 else second).port)
        browser.request("GET", "/organiser/login")
        form = {"csrf_token": browser.token, "email": "who@example.org", "password": "guess"}
        statuses.append(browser.request("POST", "/organiser/login", urlencode(form))[0])
    assert statuses == [401] * 10 + [429]
