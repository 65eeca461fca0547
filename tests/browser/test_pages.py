"""What members see in a real browser: signing, confirming, keyboard use, errors, small screens.

Every test here runs against the live server (tests/browser/conftest.py) in headless Chromium.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from petition.db import utcnow

pytestmark = [pytest.mark.browser, pytest.mark.only_browser("chromium")]

ONE = re.compile(r"(?<![\d,.])1(?![\d,.])")  # the count, 1, as a number of its own

BODY = """Dear Alex,

We, the undersigned members, ask you to **stand** for the leadership.

## Why now

- The election is in *spring*.
- [Read the rules](https://example.org/rules) before you decide.

The timetable: https://example.org/consultations/2026/leadership-election-rules-and-timetable-final-version.pdf

> A leader is a dealer in hope.

Yours, the members"""


def open_letter(make_letter, **overrides: Any):
    """A letter that asks for every optional detail, with a goal and a closing date."""
    data = {
        "body_markdown": BODY,
        "goal": 1000,
        "closes_at": utcnow() + timedelta(days=30),
        "ask_postcode": True,
        "ask_organisation": True,
        "ask_comment": True,
    }
    data.update(overrides)
    return make_letter(**data)


def fill_and_sign(page: Page, name: str = "Jane Doe", email: str = "jane@example.org") -> None:
    form = page.locator("form", has=page.get_by_role("button", name="Sign the letter"))
    form.get_by_label("Your name", exact=True).fill(name)
    form.get_by_label("Email address", exact=True).fill(email)
    if form.get_by_label("Postcode", exact=True).count():
        form.get_by_label("Postcode", exact=True).fill("LS1 4AP")
    form.get_by_role("button", name="Sign the letter").click()


def focused(page: Page) -> dict[str, Any]:
    return page.evaluate(
        "() => ({id: document.activeElement.id, tag: document.activeElement.tagName,"
        " text: document.activeElement.textContent.trim()})"
    )


def tab_to(page: Page, element_id: str, limit: int = 30) -> int:
    """Press Tab until the element with this id has focus; how many presses it took."""
    for presses in range(1, limit + 1):
        page.keyboard.press("Tab")
        if focused(page)["id"] == element_id:
            return presses
    raise AssertionError(f"#{element_id} never got focus in {limit} presses of Tab")


def api_count(page: Page, slug: str) -> int:
    response = page.request.get(f"/api/v1/letters/{slug}")
    assert response.ok, response.status
    return response.json()["signature_count"]


# -- signing -------------------------------------------------------------------------------------


def test_a_member_signs_confirms_from_the_email_and_is_counted(
    page: Page, make_letter, mailbox, emailed_link
):
    letter = make_letter()
    page.goto(f"/letters/{letter.slug}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Stand for the leadership")

    fill_and_sign(page)
    expect(page).to_have_url(f"/letters/{letter.slug}/check-your-inbox")
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your inbox")
    assert api_count(page, letter.slug) == 0

    mailbox.deliver()
    verify_url = emailed_link("jane@example.org", "/verify/")
    page.goto(verify_url)
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm your signature")
    assert api_count(page, letter.slug) == 0  # opening the link changes nothing

    page.get_by_role("button", name="Confirm my signature").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("your signature is confirmed")
    expect(page.get_by_role("main")).to_contain_text(ONE)
    assert api_count(page, letter.slug) == 1


def test_signing_needs_only_a_keyboard(page: Page, make_letter, mailbox, emailed_link):
    letter = make_letter()
    page.goto(f"/letters/{letter.slug}")

    # The first Tab reaches a visible "Skip to content" link.
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()

    tab_to(page, "name")
    page.keyboard.type("Jane Doe")
    page.keyboard.press("Tab")
    assert focused(page)["id"] == "email"
    page.keyboard.type("jane@example.org")
    tab_to(page, "show_name", limit=3)
    page.keyboard.press("Space")
    expect(page.get_by_role("checkbox", name=re.compile(r"^Show my"))).to_be_checked()
    expect(page.get_by_role("checkbox", name=re.compile(r"^Share my email"))).not_to_be_checked()
    page.keyboard.press("Tab")
    assert focused(page)["id"] == "share_email"
    page.keyboard.press("Tab")
    assert focused(page)["id"] == "wants_updates"
    expect(page.get_by_role("checkbox", name=re.compile(r"^Email me news"))).not_to_be_checked()
    page.keyboard.press("Tab")
    assert (focused(page)["tag"], focused(page)["text"]) == ("BUTTON", "Sign the letter")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your inbox")

    mailbox.deliver()
    page.goto(emailed_link("jane@example.org", "/verify/"))
    for _ in range(30):
        page.keyboard.press("Tab")
        if focused(page)["text"] == "Confirm my signature":
            break
    else:
        raise AssertionError("Tab never reached the Confirm my signature button")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_contain_text("your signature is confirmed")
    expect(page.get_by_role("main")).to_contain_text(ONE)
    assert api_count(page, letter.slug) == 1


def test_form_errors_are_announced_linked_to_their_fields_and_keep_what_was_typed(
    page: Page, make_letter
):
    letter = make_letter(ask_postcode=True)
    page.goto(f"/letters/{letter.slug}")
    page.get_by_label("Your name", exact=True).fill("Jane Doe")
    page.get_by_label("Email address", exact=True).fill("jane@example")
    page.get_by_label("Postcode", exact=True).fill("LS1 4AP!")
    page.get_by_role("button", name="Sign the letter").click()

    # Announced: an alert, focused so that a screen reader starts there (an alert already in
    # the page when it loads is not reliably read out on its own).
    summary = page.get_by_role("alert")
    expect(summary).to_be_visible()
    expect(summary).to_be_focused()
    expect(page).to_have_title(f"Error: {letter.title}")

    errors = {"email": "Enter a valid email address", "postcode": "A postcode has letters"}
    expect(summary.get_by_role("link")).to_have_count(len(errors))
    for field_id, message in errors.items():
        field = page.locator(f"#{field_id}")
        expect(field).to_have_attribute("aria-invalid", "true")
        described_by = (field.get_attribute("aria-describedby") or "").split()
        description = " ".join(page.locator(f"#{id_}").inner_text() for id_ in described_by)
        assert message in description, f"#{field_id} is described by {described_by!r}"
        # The summary links to the field, and following the link puts the cursor there.
        link = summary.locator(f'a[href="#{field_id}"]')
        expect(link).to_contain_text(message)
        link.click()
        expect(field).to_be_focused()
    expect(page.get_by_label("Your name", exact=True)).to_have_attribute("aria-invalid", "false")

    # What was typed is still there.
    expect(page.get_by_label("Your name", exact=True)).to_have_value("Jane Doe")
    expect(page.get_by_label("Email address", exact=True)).to_have_value("jane@example")
    expect(page.get_by_label("Postcode", exact=True)).to_have_value("LS1 4AP!")


def test_the_letter_page_fits_a_320_pixel_screen(page: Page, make_letter):
    """WCAG 1.4.10 (reflow): no sideways scrolling at 320 CSS pixels, errors shown or not."""
    letter = open_letter(make_letter)  # every field, a goal, a closing date, a long link
    page.set_viewport_size({"width": 320, "height": 640})
    page.goto(f"/letters/{letter.slug}")
    expect(page.get_by_role("button", name="Sign the letter")).to_be_visible()
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 320, f"the letter page scrolls sideways: {width}px wide in 320px"

    page.get_by_role("button", name="Sign the letter").click()
    expect(page.get_by_role("alert")).to_be_visible()
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 320, f"with form errors, the page scrolls sideways: {width}px wide in 320px"


def test_a_field_reached_from_the_error_summary_shows_its_label_on_a_phone(page: Page, make_letter):
    letter = open_letter(make_letter)
    page.set_viewport_size({"width": 320, "height": 568})
    page.goto(f"/letters/{letter.slug}")
    page.get_by_label("Your name", exact=True).fill("Jane Doe")
    page.get_by_label("Postcode", exact=True).fill("LS1 4AP!")
    page.get_by_role("button", name="Sign the letter").click()
    page.get_by_role("alert").locator('a[href="#postcode"]').click()
    expect(page.locator("#postcode")).to_be_focused()
    label = page.locator('label[for="postcode"]').bounding_box()
    assert label is not None and label["y"] >= 0, f"the label is above the screen: {label}"


def test_the_letter_text_has_a_heading_to_jump_to(page: Page, make_letter):
    letter = open_letter(make_letter)
    page.goto(f"/letters/{letter.slug}")
    article = page.get_by_role("article", name="The letter")
    expect(article).to_contain_text("We, the undersigned members")
    headings = page.get_by_role("heading", level=2).all_inner_texts()
    assert headings.index("The letter") < headings.index("Why now")  # the text's own headings


def test_one_signers_long_words_do_not_widen_the_pages_on_a_phone(
    page: Page, make_letter, mailbox, emailed_link
):
    letter = open_letter(make_letter)
    page.set_viewport_size({"width": 320, "height": 640})
    page.goto(f"/letters/{letter.slug}")
    form = page.locator("form", has=page.get_by_role("button", name="Sign the letter"))
    form.get_by_label("Your name", exact=True).fill("Jane " + "Doe" * 30)
    form.get_by_label("Email address", exact=True).fill("jane@example.org")
    form.get_by_label("Postcode", exact=True).fill("LS1 4AP")
    link = "https://www.example.org/politics/2026/dec/07/members-urge-their-mp-to-stand-for-leader"
    form.get_by_role("textbox", name="Comment").fill(f"Read this: {link}")
    form.get_by_label("Show my first name", exact=False).check()
    form.get_by_role("button", name="Sign the letter").click()
    mailbox.deliver()
    confirm = emailed_link("jane@example.org", "/verify/")
    manage = None
    for path in (confirm, None, f"/letters/{letter.slug}", f"/letters/{letter.slug}/signatories"):
        if path is None:  # the thank-you page, then the signer's own page from its link
            page.get_by_role("button", name="Confirm my signature").click()
            expect(page.get_by_text("You are signature #1")).to_be_visible()
            mailbox.deliver()
            manage = emailed_link("jane@example.org", "/signature/")
        else:
            page.goto(path)
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 320, f"{page.url} scrolls sideways: {width}px wide in 320px"
    page.goto(manage)
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 320, f"the signer's page scrolls sideways: {width}px wide in 320px"


def test_a_copy_button_stays_hidden_where_it_cannot_work(page: Page, make_letter):
    """Without the clipboard (no script, or plain HTTP), the button that would copy is not shown."""
    letter = make_letter()
    page.add_init_script("delete Navigator.prototype.clipboard")
    page.goto(f"/letters/{letter.slug}")
    copy = page.locator("button.copy-link")
    assert copy.count() > 0
    expect(copy.first).to_be_hidden()


# -- accessibility (axe-core: no serious or critical violations) --------------------------------


def visit(page: Page, path: str, status: int = 200) -> None:
    response = page.goto(path)
    assert response is not None and response.status == status, (
        f"GET {path}: {response and response.status}, expected {status}"
    )


def _home(page: Page, letter, mailbox, emailed_link) -> None:
    visit(page, "/")
    expect(page.get_by_role("link", name=letter.title)).to_be_visible()


def _letter(page: Page, letter, mailbox, emailed_link) -> None:
    visit(page, f"/letters/{letter.slug}")
    expect(page.get_by_role("button", name="Sign the letter")).to_be_visible()


def _letter_with_errors(page: Page, letter, mailbox, emailed_link) -> None:
    _letter(page, letter, mailbox, emailed_link)
    page.get_by_role("button", name="Sign the letter").click()
    expect(page.get_by_role("alert")).to_be_visible()


def _check_your_inbox(page: Page, letter, mailbox, emailed_link) -> None:
    _letter(page, letter, mailbox, emailed_link)
    fill_and_sign(page)
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your inbox")


def _confirm(page: Page, letter, mailbox, emailed_link) -> None:
    _check_your_inbox(page, letter, mailbox, emailed_link)
    mailbox.deliver()
    visit(page, emailed_link("jane@example.org", "/verify/"))
    expect(page.get_by_role("button", name="Confirm my signature")).to_be_visible()


def _verified(page: Page, letter, mailbox, emailed_link) -> None:
    _confirm(page, letter, mailbox, emailed_link)
    page.get_by_role("button", name="Confirm my signature").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("confirmed")


def _organiser_login(page: Page, letter, mailbox, emailed_link) -> None:
    visit(page, "/organiser/login")
    expect(page.get_by_role("button", name="Log in")).to_be_visible()


def _closed_letter(page: Page, letter, mailbox, emailed_link) -> None:
    visit(page, f"/letters/{letter.slug}-closed")
    expect(page.get_by_role("heading", name="This letter is closed")).to_be_visible()


def _not_found(page: Page, letter, mailbox, emailed_link) -> None:
    visit(page, "/letters/no-such-letter", status=404)


PAGES: dict[str, Callable[..., None]] = {
    "home": _home,
    "letter": _letter,
    "letter-with-errors": _letter_with_errors,
    "check-your-inbox": _check_your_inbox,
    "confirm": _confirm,
    "verified": _verified,
    "organiser-login": _organiser_login,
    "closed-letter": _closed_letter,
    "not-found": _not_found,
}


@pytest.mark.parametrize("name", list(PAGES))
def test_no_serious_accessibility_violations(
    name: str, page: Page, make_letter, mailbox, emailed_link, assert_accessible
):
    letter = open_letter(make_letter)
    open_letter(make_letter, status="closed", slug=f"{letter.slug}-closed")
    PAGES[name](page, letter, mailbox, emailed_link)
    assert_accessible(page)


def test_the_accessibility_check_names_each_problem_and_where_it_is(page: Page, assert_accessible):
    """The helper itself: axe runs under the site's Content-Security-Policy and reports clearly."""
    page.goto("/")
    page.evaluate(
        """() => {
            const main = document.querySelector("main");
            const picture = document.createElement("img");
            picture.src = "data:,";
            picture.id = "no-alt";
            main.append(picture);
        }"""
    )
    with pytest.raises(pytest.fail.Exception) as failure:
        assert_accessible(page)
    report = str(failure.value)
    assert "image-alt (critical): Images must have alternative text" in report
    assert "at #no-alt" in report
