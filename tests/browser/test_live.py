"""The live parts in a real browser: the count rising on an open page, the widget in a frame,
and the rest of the public pages under axe-core."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from petition.db import transaction
from petition.models import CountEvent
from petition.services import deliveries, organisers

pytestmark = [pytest.mark.browser, pytest.mark.only_browser("chromium")]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "img"


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    return {**app_config, "COUNT_POLL_SECONDS": 0.3}


def sign_and_confirm_in(page: Page, letter, mailbox, emailed_link, email: str) -> None:
    page.goto(f"/letters/{letter.slug}")
    form = page.locator("form", has=page.get_by_role("button", name="Sign the letter"))
    form.get_by_label("Your name", exact=True).fill("Sam Jones")
    form.get_by_label("Email address", exact=True).fill(email)
    if form.get_by_label("Postcode", exact=True).count():
        form.get_by_label("Postcode", exact=True).fill("LS1 4AP")
    form.get_by_label("Show my first name", exact=False).check()
    form.get_by_role("button", name="Sign the letter").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your inbox")
    mailbox.deliver()
    page.goto(emailed_link(email, "/verify/"))
    page.get_by_role("button", name="Confirm my signature").click()


def test_the_count_rises_on_an_open_page_without_reloading(
    context, make_letter, mailbox, emailed_link
):
    letter = make_letter(goal=10)
    watcher = context.new_page()
    watcher.goto(f"/letters/{letter.slug}")
    number = watcher.locator("[data-count-number]")
    expect(number).to_have_text("0")
    navigations: list[str] = []
    watcher.on("framenavigated", lambda frame: navigations.append(frame.url))

    signer = context.new_page()
    sign_and_confirm_in(signer, letter, mailbox, emailed_link, "sam@example.org")
    expect(signer.get_by_text("You are signature #1")).to_be_visible()

    expect(number).to_have_text("1", timeout=5000)
    assert watcher.locator("progress.bar").evaluate("bar => bar.value") == 1
    assert navigations == []  # updated in place, not reloaded


@pytest.fixture
def other_site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Someone else's website: static files on another port of 127.0.0.1 (another origin)."""
    handler = functools.partial(QuietHandler, directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", tmp_path
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_the_widget_works_inside_a_frame_on_another_site(
    page: Page, make_letter, live_server, other_site
):
    letter = make_letter(goal=100)
    site, folder = other_site
    (folder / "blog.html").write_text(
        f'<iframe id="w" src="{live_server.url}/letters/{letter.slug}/embed" '
        f'title="Letter" width="400" height="240"></iframe>'
        f'<iframe id="page" src="{live_server.url}/letters/{letter.slug}" title="Page"></iframe>'
    )
    page.goto(f"{site}/blog.html")
    widget = page.frame_locator("#w")
    expect(widget.get_by_role("heading", name=letter.title)).to_be_visible()
    expect(widget.locator("[data-count-number]")).to_have_text("0")
    expect(widget.get_by_role("link", name="Read and sign")).to_have_attribute("target", "_blank")
    # Every other page refuses to be framed (frame-ancestors 'none'): Chromium shows its own
    # error page in that frame instead of ours.
    framed = page.frame_locator("#page")
    expect(framed.get_by_role("button", name="Sign the letter")).to_have_count(0)
    assert not any(
        frame.url.endswith(f"/letters/{letter.slug}") and frame.locator("h1").count()
        for frame in page.frames
    )


def _public_pages(page: Page, letter, mailbox, emailed_link, live_server) -> list[str]:
    sign_and_confirm_in(page, letter, mailbox, emailed_link, "sam@example.org")
    mailbox.deliver()
    manage = emailed_link("sam@example.org", "/signature/")
    return [
        f"/letters/{letter.slug}/signatories",
        f"/letters/{letter.slug}/embed",
        manage,
        "/?archive=1",
        "/?q=nothing-matches",
    ]


def test_more_pages_have_no_serious_accessibility_violations(
    page: Page, make_letter, mailbox, emailed_link, live_server, assert_accessible
):
    letter = make_letter(goal=100, ask_organisation=True)
    with transaction() as session:
        delivery = deliveries.create(session, session.merge(letter), days=30)
    paths = _public_pages(page, letter, mailbox, emailed_link, live_server)
    for path in [*paths, f"/deliveries/{delivery}"]:
        response = page.goto(path)
        assert response is not None and response.status == 200, path
        assert_accessible(page)
    page.goto(paths[2])  # the signer's own page: withdrawing ends on one more page
    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Withdraw my signature").click()
    assert questions == ["Withdraw your signature and delete your details? This cannot be undone."]
    expect(page.get_by_role("heading", level=1)).to_have_text("Your signature")  # still there
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Withdraw my signature").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your signature has been withdrawn")
    assert_accessible(page)


@pytest.mark.https
def test_over_https_the_forms_on_private_pages_work_and_send_no_token(
    page: Page, make_letter, mailbox, emailed_link, live_server
):
    """On HTTPS, CSRFProtect refuses a post without a referrer from this site; the pages with a
    token in their address must send one all the same, with their origin alone."""
    with transaction() as session:
        organisers.create(session, "org@example.org", "long enough password")
    letter = make_letter()
    referrers: list[str | None] = []
    page.on(
        "request",
        lambda sent: referrers.append(sent.headers.get("referer")) if sent.method == "POST" else 0,
    )
    page.goto("/organiser/login")
    page.get_by_label("Email address").fill("org@example.org")
    page.get_by_label("Password").fill("long enough password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Your letters")).to_be_visible()

    sign_and_confirm_in(page, letter, mailbox, emailed_link, "sam@example.org")
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Thank you: your signature is confirmed"
    )
    mailbox.deliver()
    page.goto(emailed_link("sam@example.org", "/signature/"))
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Withdraw my signature").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your signature has been withdrawn")

    origin = f"{live_server.url}/"
    # login and confirm (private pages: the origin), sign (the public letter page: its path)
    assert referrers[0] == origin and referrers[2:] == [origin, origin], referrers
    assert referrers[1] == f"{live_server.url}/letters/{letter.slug}"


def test_organiser_pages_have_no_serious_accessibility_violations(
    page: Page, make_letter, assert_accessible
):
    with transaction() as session:
        organiser = organisers.create(session, "org@example.org", "long enough password")
    letter = make_letter(organiser=organiser)
    page.goto("/organiser/login")
    page.get_by_label("Email address").fill("org@example.org")
    page.get_by_label("Password").fill("long enough password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Your letters")).to_be_visible()
    assert_accessible(page)
    for path in (f"/organiser/letters/{letter.id}", "/organiser/letters/new"):
        page.goto(path)
        assert_accessible(page)
    page.get_by_role("button", name="Save draft").click()  # empty: every error shown
    expect(page.get_by_role("alert")).to_be_visible()
    assert_accessible(page)


# Two presses of a form's button while the first is on its way; how many the page lets through.
# (Synthetic submit events: they run the page's script but send nothing, so no timing is needed.)
PRESS_TWICE = """form => [1, 2].filter(() => {
    const press = new SubmitEvent("submit", {bubbles: true, cancelable: true});
    form.dispatchEvent(press);
    return !press.defaultPrevented;
}).length"""


def test_a_second_press_does_not_send_a_form_again(page: Page, make_letter):
    with transaction() as session:
        organiser = organisers.create(session, "org@example.org", "long enough password")
    page.goto("/organiser/login")
    page.get_by_label("Email address").fill("org@example.org")
    page.get_by_label("Password").fill("long enough password")
    page.get_by_role("button", name="Log in").click()
    page.goto("/organiser/letters/new")
    let_through = page.locator("form[novalidate]").evaluate(PRESS_TWICE)
    assert let_through == 1

    # A form that asks first asks once: the second press is stopped before its question.
    letter = make_letter(organiser=organiser)
    page.goto(f"/organiser/letters/{letter.id}")
    questions: list[str] = []
    page.on("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    let_through = page.locator("form[data-confirm]").first.evaluate(PRESS_TWICE)
    assert (let_through, len(questions)) == (1, 1)


def test_screenshots_of_the_letter_page(page: Page, make_letter, mailbox, emailed_link, tmp_path):
    """Phone and desktop pictures for the README (PETITION_UPDATE_SCREENSHOTS=1 writes them)."""
    from tests.browser.test_pages import BODY

    letter = make_letter(body_markdown=BODY, goal=5000, ask_postcode=True)
    sign_and_confirm_in(page, letter, mailbox, emailed_link, "sam@example.org")
    with transaction() as session:  # a letter in full swing, for the picture
        session.add(CountEvent(letter_id=letter.id, delta=1233))
    folder = SCREENSHOTS if os.environ.get("PETITION_UPDATE_SCREENSHOTS") else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    for name, size in (("phone", (390, 844)), ("desktop", (1280, 860))):
        page.set_viewport_size({"width": size[0], "height": size[1]})
        page.goto(f"/letters/{letter.slug}")
        page.screenshot(path=str(folder / f"letter-{name}.png"), full_page=name == "phone")
        assert (folder / f"letter-{name}.png").stat().st_size > 10_000


def test_a_new_delivery_link_can_be_copied_in_one_press(context, page: Page, make_letter):
    with transaction() as session:
        organiser = organisers.create(session, "org@example.org", "long enough password")
    letter = make_letter(organiser=organiser)
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto("/organiser/login")
    page.get_by_label("Email address").fill("org@example.org")
    page.get_by_label("Password").fill("long enough password")
    page.get_by_role("button", name="Log in").click()
    page.goto(f"/organiser/letters/{letter.id}")
    page.get_by_role("button", name="Create a delivery link").click()
    shown = page.locator("#delivery-url").input_value()
    assert "/deliveries/" in shown
    page.get_by_role("button", name="Copy link").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == shown
