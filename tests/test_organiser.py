"""An organiser logs in, writes, previews, publishes, edits, closes, exports and delivers."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from urllib.parse import parse_qs, unquote

import pytest
from sqlalchemy import select

from petition.cli import cli
from petition.db import utcnow
from petition.models import Letter, LetterStatus
from petition.services import counts, letters
from tests.conftest import PASSWORD, api_count, fresh_session, sign_and_confirm, sign_data

LETTER_FORM = {
    "title": "Stand for the leadership",
    "recipient_name": "Alex Morgan MP",
    "recipient_role": "MP for Northtown",
    "body": "Dear Alex,\n\nPlease stand.\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1))",
    "goal": "500",
    "ask_postcode": "y",
}


def test_login_required_and_wrong_password_is_refused(client, make_organiser):
    make_organiser()
    response = client.get("/organiser/")
    assert response.status_code == 302
    assert "/organiser/login" in response.headers["Location"]
    wrong = client.post(
        "/organiser/login", data={"email": "organiser@example.org", "password": "nope"}
    )
    assert wrong.status_code == 401
    page = wrong.get_data(as_text=True)
    assert "do not match" in page
    assert 'value="organiser@example.org"' in page
    unknown = client.post("/organiser/login", data={"email": "who@example.org", "password": "x"})
    assert unknown.status_code == 401


def test_login_ignores_an_offsite_next(client, make_organiser):
    make_organiser()
    response = client.post(
        "/organiser/login?next=https://evil.example/",
        data={"email": "organiser@example.org", "password": PASSWORD},
    )
    assert response.headers["Location"] == "/organiser/"


def test_write_preview_publish_edit_close(client, logged_in, mailbox):
    created = client.post("/organiser/letters/new", data=LETTER_FORM)
    assert created.status_code == 303
    letter_path = created.headers["Location"]
    letter = fresh_session().scalar(select(Letter))
    assert letter.status is LetterStatus.DRAFT
    assert letter.slug == "stand-for-the-leadership"
    assert "<script>" not in letter.body_html
    assert 'href="javascript' not in letter.body_html
    assert client.get(f"/letters/{letter.slug}").status_code == 404  # drafts are private

    preview = client.get(f"{letter_path}/preview")
    assert preview.status_code == 200
    assert "Preview" in preview.get_data(as_text=True)
    assert "Please stand." in preview.get_data(as_text=True)

    assert client.post(f"{letter_path}/publish").status_code == 303
    assert client.get(f"/letters/{letter.slug}").status_code == 200

    edited = dict(LETTER_FORM, body="Dear Alex,\n\nPlease stand for leader.")
    assert client.post(f"{letter_path}/edit", data=edited).status_code == 303
    assert "Please stand for leader." in client.get(f"/letters/{letter.slug}").get_data(True)

    assert client.post(f"{letter_path}/close").status_code == 303
    assert api_count(client, letter) == 0
    assert client.get(f"/api/v1/letters/{letter.slug}").get_json()["status"] == "closed"
    again = client.post(f"{letter_path}/close")
    assert again.status_code == 409
    assert client.post(f"{letter_path}/edit", data=edited).status_code == 409


def test_letter_form_errors_keep_the_text(client, logged_in):
    data = dict(LETTER_FORM, title="", goal="-3", slug="Not A Slug!", closes_on="yesterday")
    data["recipient_role"] = "MP\u202e"
    response = client.post("/organiser/letters/new", data=data)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Give the letter a title." in page
    assert "Enter a whole number from 1 to 100,000,000." in page
    assert "lower-case letters, digits and single hyphens" in page
    assert "Enter the date as year-month-day, e.g. 2027-03-31." in page
    assert 'value="yesterday"' in page
    no_such_day = client.post(
        "/organiser/letters/new", data=dict(LETTER_FORM, closes_on="2027-02-30")
    )
    assert no_such_day.status_code == 422
    assert "There is no such day: check the month and the day." in no_such_day.get_data(
        as_text=True
    )
    assert "Please stand." in page
    assert 'value="Not A Slug!"' in page  # exactly as typed
    assert "U+202E" in page


@pytest.mark.parametrize(
    ("typed", "goal"),
    [
        ("1000", 1000),
        ("1,000", 1000),
        ("10 000", 10000),
        ("2\u202f500", 2500),
        ("100,000,000", 10**8),
    ],
)
def test_a_goal_may_be_written_with_thousands_separators(client, logged_in, typed, goal):
    assert (
        client.post("/organiser/letters/new", data=dict(LETTER_FORM, goal=typed)).status_code == 303
    )
    assert fresh_session().scalar(select(Letter.goal)) == goal


@pytest.mark.parametrize("typed", ["1,00", "1,000 000", "1.5", "1,000.0", ",100", "１０", "0"])
def test_a_goal_that_is_not_a_whole_number_in_range_is_refused(client, logged_in, typed):
    refused = client.post("/organiser/letters/new", data=dict(LETTER_FORM, goal=typed))
    assert refused.status_code == 422
    assert "Enter a whole number from 1 to 100,000,000." in refused.get_data(as_text=True)


def test_each_refused_detail_says_what_is_wrong_in_its_own_words(client, logged_in):
    data = dict(
        LETTER_FORM,
        recipient_name="R" * 201,
        recipient_role="r" * 201,
        recipient_email=f"{'a' * 250}@example.org",
        closes_on="٢٠٢٧-٠٣-٣١",  # digits, but not the ones a date input sends
    )
    page = client.post("/organiser/letters/new", data=data).get_data(as_text=True)
    assert "Keep the recipient’s name to 200 characters." in page
    assert "Keep the recipient’s role to 200 characters." in page
    assert "An email address is at most 254 characters." in page
    assert "Enter the date as year-month-day, e.g. 2027-03-31." in page
    assert "Field cannot be longer" not in page


def test_closing_date_must_be_in_the_future_and_within_reason(client, logged_in):
    response = client.post("/organiser/letters/new", data=dict(LETTER_FORM, closes_on="2001-01-01"))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "closing date must be in the future" in page
    assert 'id="closes_on-error"' in page  # shown beside the field, not only in the summary
    for typed, problem in (
        ("9998-12-31", "within five years"),
        ("9999-12-31", "within five years"),  # the last day a date can hold: none after it
        ("1900-01-01", "in the future"),
    ):
        response = client.post("/organiser/letters/new", data=dict(LETTER_FORM, closes_on=typed))
        assert response.status_code == 422
        assert f"The closing date must be {problem}." in response.get_data(as_text=True)


def test_a_past_closing_date_is_named_with_the_other_mistakes_at_once(client, logged_in):
    data = dict(LETTER_FORM, goal="0", closes_on="2020-01-01")
    page = client.post("/organiser/letters/new", data=data).get_data(as_text=True)
    assert "Enter a whole number from 1 to 100,000,000." in page
    assert "The closing date must be in the future." in page


def test_the_preview_shows_the_days_left_as_members_will_see_them(client, logged_in):
    created = client.post("/organiser/letters/new", data=dict(LETTER_FORM, closes_on="2030-06-30"))
    preview = client.get(f"{created.headers['Location']}/preview").get_data(as_text=True)
    assert "days left · closes at the end of 30 June 2030" in preview
    assert "no longer collecting signatures" not in preview


def test_closing_date_survives_editing_unchanged(client, logged_in):
    created = client.post("/organiser/letters/new", data=dict(LETTER_FORM, closes_on="2030-06-30"))
    letter_path = created.headers["Location"]
    for _ in range(2):
        form = client.get(f"{letter_path}/edit").get_data(as_text=True)
        assert 'value="2030-06-30"' in form
        client.post(f"{letter_path}/edit", data=dict(LETTER_FORM, closes_on="2030-06-30"))
    page = client.get(letter_path).get_data(as_text=True)
    assert "At the end of 30 June 2030 (UK time)" in page
    letter = fresh_session().scalar(select(Letter))
    assert letter.closes_at.isoformat() == "2030-06-30T23:00:00+00:00"  # midnight BST


def _form_of(letter: Letter, **changes: str) -> dict[str, str]:
    """The edit form as it comes, with these changes typed in."""
    form = {
        "title": letter.title,
        "recipient_name": letter.recipient_name,
        "recipient_role": letter.recipient_role,
        "body": letter.body_markdown,
    }
    return {**form, **changes}


def test_a_question_people_have_answered_cannot_be_dropped(client, logged_in, make_letter, mailbox):
    letter = make_letter(organiser=logged_in, ask_postcode=True, ask_comment=True)
    sign_and_confirm(client, mailbox, letter, postcode="LS1 4AP")
    edit = f"/organiser/letters/{letter.id}/edit"
    edited = _form_of(letter, goal="750")  # neither question ticked
    refused = client.post(edit, data=edited)
    assert refused.status_code == 422
    page = refused.get_data(as_text=True)
    assert "People who signed have given a postcode, so the letter keeps asking for it" in page
    assert 'value="750"' in page
    # Nobody wrote a comment, so that question may go; the postcode stays.
    assert client.post(edit, data=dict(edited, ask_postcode="y")).status_code == 303
    saved = fresh_session().get(Letter, letter.id, populate_existing=True)
    assert (saved.goal, saved.ask_postcode, saved.ask_comment) == (750, True, False)


def test_the_words_people_signed_stay_as_they_signed_them(client, logged_in, make_letter, mailbox):
    letter = make_letter(organiser=logged_in)
    edit = f"/organiser/letters/{letter.id}/edit"
    # Published but not yet signed: a typo can still be put right.
    fixed = _form_of(letter, title="Stand for the leadership, Alex")
    assert client.post(edit, data=fixed).status_code == 303
    sign_and_confirm(client, mailbox, letter)

    form = client.get(edit).get_data(as_text=True)
    assert "People have signed this letter, so its title, recipient and text stay" in form
    assert re.search(r'<input[^>]*id="title"[^>]*readonly', form)
    assert re.search(r'<textarea[^>]*id="body"[^>]*readonly', form)
    assert not re.search(r'<input[^>]*id="goal"[^>]*readonly', form)
    for change in (
        {"recipient_name": "Acme Property Developers Ltd"},
        {"recipient_role": "Buyer of the library"},
        {"title": "Sell the library"},
        {"body": "We support selling the library."},
    ):
        refused = client.post(edit, data=dict(fixed, goal="900", **change))
        assert refused.status_code == 422, change
        page = refused.get_data(as_text=True)
        assert "People have signed this letter as it stands" in page
        field = next(iter(change))
        assert f'id="{field}-error"' in page  # beside the field that changed
        assert 'value="900"' in page  # and what was typed is kept, but for the signed words,
        assert 'value="Stand for the leadership, Alex"' in page  # which show what was signed
        assert "Acme" not in page and "selling" not in page and "Sell the" not in page
    saved = fresh_session().get(Letter, letter.id, populate_existing=True)
    assert (saved.title, saved.recipient_name, saved.goal) == (
        "Stand for the leadership, Alex",
        "Alex Morgan MP",
        None,
    )
    # The rest can still change, with the signed words sent back as they are.
    assert (
        client.post(edit, data=dict(fixed, goal="900", closes_on="2030-06-30")).status_code == 303
    )
    saved = fresh_session().get(Letter, letter.id, populate_existing=True)
    assert (saved.body_markdown, saved.goal) == ("Dear Alex,\n\nPlease **stand**.", 900)


def test_absurd_ids_in_urls_are_not_found(client, logged_in):
    for path in ("/organiser/letters/99999999999999999999999", "/organiser/letters/0/edit"):
        assert client.get(path).status_code == 404


def test_taken_slug_is_refused_and_titles_get_unique_slugs(client, logged_in, make_letter):
    make_letter(slug="stand-now")
    taken = client.post("/organiser/letters/new", data=dict(LETTER_FORM, slug="stand-now"))
    assert taken.status_code == 422
    assert "already uses that web address" in taken.get_data(as_text=True)
    for _ in range(2):
        assert client.post("/organiser/letters/new", data=LETTER_FORM).status_code == 303
    slugs = sorted(fresh_session().scalars(select(Letter.slug)))
    assert slugs == ["stand-for-the-leadership", "stand-for-the-leadership-2", "stand-now"]


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("Søren's Straße must stay open", "sorens-strasse-must-stay-open"),
        ("Ærø, Łódź and Þórshöfn", "aero-lodz-and-thorshofn"),
        ("Cadwch Ysgol Bro Dŵr ar agor", "cadwch-ysgol-bro-dwr-ar-agor"),
        ("Ελεύθερη πρόσβαση", "letter"),  # no Latin letters to read: the organiser can set one
    ],
)
def test_slugs_spell_out_letters_from_other_languages(client, logged_in, title, slug):
    assert (
        client.post("/organiser/letters/new", data=dict(LETTER_FORM, title=title)).status_code
        == 303
    )
    assert fresh_session().scalars(select(Letter.slug)).all() == [slug]


def test_organisers_see_only_their_own_letters(client, make_organiser, make_letter):
    other = make_organiser("other@example.org")
    theirs = make_letter(organiser=other)
    make_organiser()
    client.post("/organiser/login", data={"email": "organiser@example.org", "password": PASSWORD})
    assert client.get(f"/organiser/letters/{theirs.id}").status_code == 404
    assert client.post(f"/organiser/letters/{theirs.id}/close").status_code == 404
    assert client.get(f"/organiser/letters/{theirs.id}/signatories.csv").status_code == 404
    assert theirs.title not in client.get("/organiser/").get_data(as_text=True)
    their_draft = make_letter(status="draft", organiser=other)
    assert client.post(f"/organiser/letters/{their_draft.id}/delete").status_code == 404
    assert fresh_session().scalar(select(Letter.id).where(Letter.id == their_draft.id))


def test_a_draft_can_be_deleted_and_a_published_letter_cannot(client, logged_in, make_letter):
    draft = make_letter(status="draft", organiser=logged_in, title="Typed by mistake")
    page = client.get(f"/organiser/letters/{draft.id}").get_data(as_text=True)
    assert "Delete this draft? It cannot be undone." in page
    deleted = client.post(f"/organiser/letters/{draft.id}/delete")
    assert deleted.headers["Location"].endswith("/organiser/")
    listing = client.get("/organiser/").get_data(as_text=True)
    assert "Deleted the draft “Typed by mistake”." in listing
    assert fresh_session().scalar(select(Letter.id).where(Letter.id == draft.id)) is None
    fresh_session().expunge_all()  # SQLite may give the next letter the deleted one's id

    published = make_letter(organiser=logged_in)
    refused = client.post(f"/organiser/letters/{published.id}/delete")
    assert refused.status_code == 409
    assert "Only a draft can be deleted" in refused.get_data(as_text=True)
    assert "Delete draft" not in client.get(f"/organiser/letters/{published.id}").get_data(True)
    assert fresh_session().scalar(select(Letter.id).where(Letter.id == published.id))


def _rows(response) -> list[dict[str, str]]:
    text = response.get_data().decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_neutralises_formulas_in_every_free_text_column_and_leaves_blanks_blank(
    client, logged_in, make_letter, mailbox
):
    letter = make_letter(organiser=logged_in, ask_organisation=True, ask_comment=True)
    sign_and_confirm(client, mailbox, letter, name="-SUM(A1)", email="=1+2|cmd!A0@example.org",
                     organisation="+44 Group", comment="@SUM(A2)", share_email="y")  # fmt: skip
    sign_and_confirm(client, mailbox, letter, name="Plain = fine", email="b@example.org")
    rows = _rows(client.get(f"/organiser/letters/{letter.id}/signatories.csv"))
    assert [(r["Name"], r["Organisation or role"], r["Comment"]) for r in rows] == [
        ("'-SUM(A1)", "'+44 Group", "'@SUM(A2)"),
        ("Plain = fine", "", ""),
    ]
    assert [r["Email"] for r in rows] == ["'=1+2|cmd!A0@example.org", ""]


def test_csv_has_verified_signers_only_emails_by_consent_and_no_formulas(
    client, logged_in, make_letter, mailbox
):
    letter = make_letter(organiser=logged_in, ask_postcode=True)
    sign_and_confirm(client, mailbox, letter, name="=HYPERLINK(1)", email="a@example.org",
                     postcode="LS1 1AA", share_email="y")  # fmt: skip
    sign_and_confirm(client, mailbox, letter, name="Zoë Ünal", email="b@example.org",
                     postcode="M1 1AA")  # fmt: skip
    client.post(
        f"/letters/{letter.slug}/sign",
        data={"name": "Pending", "email": "c@example.org", "postcode": "B1"},
    )
    response = client.get(f"/organiser/letters/{letter.id}/signatories.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    assert response.get_data().startswith(b"\xef\xbb\xbf")
    rows = _rows(response)
    assert [r["Name"] for r in rows] == ["'=HYPERLINK(1)", "Zoë Ünal"]
    assert [r["Email"] for r in rows] == ["a@example.org", ""]
    assert [r["Postcode"] for r in rows] == ["LS1 1AA", "M1 1AA"]
    assert list(rows[0]) == ["Name", "Postcode", "Email", "Confirmed (UTC)"]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", r["Confirmed (UTC)"]) for r in rows)


def test_delivery_link_lets_the_office_download_until_revoked(
    client, app, logged_in, make_letter, mailbox
):
    letter = make_letter(organiser=logged_in)
    sign_and_confirm(client, mailbox, letter)
    created = client.post(f"/organiser/letters/{letter.id}/deliveries")
    assert created.status_code == 303  # a reload of the next page makes no second link
    page = client.get(created.headers["Location"]).get_data(as_text=True)
    url = page.split('value="http://localhost', 1)[1].split('"', 1)[0]
    assert "http://localhost" + url not in client.get(created.headers["Location"]).get_data(True)
    office = app.test_client()
    shown = office.get(url)
    assert shown.status_code == 200
    assert "Download the signatories" in shown.get_data(as_text=True)
    assert "Still collecting signatures" in shown.get_data(as_text=True)
    assert "This link works until " in shown.get_data(as_text=True)
    assert shown.headers["Cache-Control"] == "private, no-store"
    rows = _rows(office.get(f"{url}/signatories.csv"))
    assert [r["Name"] for r in rows] == ["Jane Doe"]
    organiser_page = client.get(f"/organiser/letters/{letter.id}").get_data(as_text=True)
    assert "1</td>" in organiser_page
    made = re.search(r"<td>(\d+ \w+ \d{4}, \d\d:\d\d)</td>", organiser_page).group(1)
    assert f"Revoke the link created {made}? Whoever has it" in organiser_page
    client.post(f"/organiser/letters/{letter.id}/close")
    closed = office.get(url).get_data(as_text=True)
    assert ": nobody can sign any more." in closed
    assert "download the file again whenever you use it" in closed

    from petition.models import Delivery

    delivery = fresh_session().scalar(select(Delivery))
    client.post(f"/organiser/letters/{letter.id}/deliveries/{delivery.id}/revoke")
    revoked = office.get(url)
    assert revoked.status_code == 404
    assert "The organisers have revoked this delivery link." in revoked.get_data(as_text=True)
    garbled = office.get("/deliveries/made-up-token-that-is-long")
    assert garbled.status_code == 404
    assert "check that the whole link was copied" in garbled.get_data(as_text=True)


def test_a_new_delivery_link_can_be_emailed_to_the_recipient_from_the_organisers_mail(
    client, logged_in, make_letter
):
    letter = make_letter(
        organiser=logged_in,
        recipient_email="office+letters@example.org",
        title="Save St Mary's library & park",
    )
    created = client.post(f"/organiser/letters/{letter.id}/deliveries")
    page = client.get(created.headers["Location"]).get_data(as_text=True)
    link = page.split('id="delivery-url" type="text" readonly value="', 1)[1].split('"', 1)[0]
    mailto = re.search(r'href="(mailto:[^"]+)"', page).group(1).replace("&amp;", "&")
    address, query = mailto.removeprefix("mailto:").split("?", 1)
    assert unquote(address) == "office+letters@example.org"
    fields = parse_qs(query)
    assert fields["subject"] == ["Open letter: Save St Mary's library & park"]
    assert "“Save St Mary's library & park”" in fields["body"][0]
    assert fields["body"][0].endswith(f"\r\n\r\n{link}\r\n")
    assert "Email it to office+letters@example.org" in page
    # Shown with the link, once: the next view of the page has neither.
    again = client.get(f"/organiser/letters/{letter.id}").get_data(as_text=True)
    assert "mailto:" not in again


def test_the_organiser_sees_how_many_signers_have_yet_to_confirm(
    client, logged_in, make_letter, mailbox
):
    letter = make_letter(organiser=logged_in)
    page = f"/organiser/letters/{letter.id}"

    def waiting() -> str:
        shown = client.get(page).get_data(as_text=True)
        return re.search(r"<dt>Waiting for confirmation</dt><dd>([\d,]+) ", shown).group(1)

    assert waiting() == "0"
    for email in ("ann@example.org", "bob@example.org"):
        signed = client.post(f"/letters/{letter.slug}/sign", data=sign_data(email=email))
        assert signed.status_code == 303
    assert waiting() == "2"
    sign_and_confirm(client, mailbox, letter, email="cat@example.org")
    assert waiting() == "2"  # cat confirmed at once
    mailbox.deliver()
    assert client.post(mailbox.link("ann@example.org", "/verify/")).status_code == 200
    assert waiting() == "1"
    client.post(f"{page}/close")  # bob can no longer confirm: nothing is waiting any more
    assert "Waiting for confirmation" not in client.get(page).get_data(as_text=True)
    a_year_on = utcnow() + timedelta(days=366)  # bob's link has expired: he can no longer confirm
    assert counts.unconfirmed(fresh_session(), letter.id, now=a_year_on) == 0


def test_a_pending_signer_holds_the_words_too_until_their_link_expires(
    client, logged_in, make_letter
):
    letter = make_letter(organiser=logged_in)
    edit = f"/organiser/letters/{letter.id}/edit"
    assert client.post(f"/letters/{letter.slug}/sign", data=sign_data()).status_code == 303
    # Not confirmed yet, but they will confirm what they signed: the body stays.
    changed = client.post(edit, data=_form_of(letter, body="We support selling the library."))
    assert changed.status_code == 422
    assert "People have signed this letter as it stands" in changed.get_data(as_text=True)
    assert letters.has_signers(fresh_session(), letter)
    a_year_on = utcnow() + timedelta(days=366)  # their link has expired: nobody holds them now
    assert not letters.has_signers(fresh_session(), letter, now=a_year_on)


def test_a_body_from_a_windows_file_can_still_be_saved_unchanged_once_signed(
    app, client, logged_in, mailbox, tmp_path
):
    body = tmp_path / "letter.md"
    body.write_bytes(b"Dear Alex,\r\n\r\nPlease stand.\r\n")
    created = app.test_cli_runner().invoke(cli, [
        "letters", "create", "--title", "Stand", "--recipient-name", "Alex",
        "--body-file", str(body), "--organiser", logged_in.email, "--publish",
    ])  # fmt: skip
    assert created.exit_code == 0, created.output
    letter = fresh_session().scalar(select(Letter).where(Letter.title == "Stand"))
    assert letter.body_markdown == "Dear Alex,\n\nPlease stand.\n"
    sign_and_confirm(client, mailbox, letter)
    form = _form_of(letter, goal="900")
    form["body"] = form["body"].replace("\n", "\r\n")  # as a browser sends a textarea back
    assert client.post(f"/organiser/letters/{letter.id}/edit", data=form).status_code == 303


def test_delivery_links_say_whom_they_are_for(client, logged_in, make_letter):
    letter = make_letter(organiser=logged_in)
    deliveries = f"/organiser/letters/{letter.id}/deliveries"
    too_long = "Office of " + "Alex Morgan MP " * 6
    refused = client.post(deliveries, data={"label": too_long})
    assert refused.status_code == 422
    page = refused.get_data(as_text=True)
    assert "Keep this to 80 characters." in page
    assert 'id="label-error"' in page
    assert f'value="{too_long.strip()}"' in page
    assert "/deliveries/" not in page.split('id="deliver"', 1)[1].split("<form", 1)[0]
    assert client.get(deliveries).headers["Location"].endswith(f"/letters/{letter.id}#deliver")
    control = client.post(deliveries, data={"label": "Office\u0007"})
    assert control.status_code == 422
    assert "U+0007" in control.get_data(as_text=True)

    assert client.post(deliveries, data={"label": "  Office of Alex Morgan MP "}).status_code == 303
    assert client.post(deliveries, data={"label": ""}).status_code == 303
    shown = client.get(f"/organiser/letters/{letter.id}").get_data(as_text=True)
    assert "<td>Office of Alex Morgan MP</td>" in shown
    assert "Revoke the link for Office of Alex Morgan MP, created " in shown
    assert "<td>—</td>" in shown  # the link made without a label
    assert "Revoke the link created " in shown


def test_repeated_wrong_passwords_are_slowed_down(client, make_organiser):
    make_organiser()
    statuses = [
        client.post(
            "/organiser/login", data={"email": "organiser@example.org", "password": "guess"}
        ).status_code
        for _ in range(11)
    ]
    assert statuses == [401] * 10 + [429]
    limited = client.post(
        "/organiser/login", data={"email": "organiser@example.org", "password": "right?"}
    )
    page = limited.get_data(as_text=True)
    assert "Too many attempts to log in have come from your network. Please try again in" in page
    assert 'value="organiser@example.org"' in page and "right?" not in page
    assert int(limited.headers["Retry-After"]) > 0


def test_an_organiser_session_taken_to_another_browser_is_refused(client, logged_in):
    assert client.get("/organiser/", headers={"User-Agent": "Firefox"}).status_code == 302


def _copy_of(client, app):
    """Another browser holding a copy of this client's session cookie."""
    other = app.test_client()
    other.set_cookie("session", client.get_cookie("session").value)
    return other


def test_logging_out_ends_every_copy_of_the_session(app, client, logged_in):
    copy = _copy_of(client, app)
    assert copy.get("/organiser/").status_code == 200
    assert client.post("/organiser/logout").status_code == 303
    assert copy.get("/organiser/").status_code == 302  # to the login page


def test_a_form_sent_after_a_logout_elsewhere_leads_back_to_its_page(
    app, client, logged_in, make_letter
):
    letter = make_letter(organiser=logged_in, status="draft")
    edit = f"/organiser/letters/{letter.id}/edit"
    copy = _copy_of(client, app)  # the organiser's other browser, which logs out
    assert copy.post("/organiser/logout").status_code == 303
    # As browsers send it from these pages (Referrer-Policy: strict-origin): the origin only.
    origin = {"Referer": "http://localhost/"}
    sent = client.post(edit, data=LETTER_FORM, headers=origin)
    assert sent.status_code == 302
    assert sent.headers["Location"] == f"/organiser/login?next={edit}"
    shown = client.get(sent.headers["Location"]).get_data(as_text=True)
    assert "You had been logged out, so that was not saved. Log in, then do it again." in shown
    # A button's address takes only forms: the way back is its letter's page.
    published = client.post(f"/organiser/letters/{letter.id}/publish", headers=origin)
    assert published.headers["Location"] == f"/organiser/login?next=/organiser/letters/{letter.id}"
    # Logging out when already logged out loses nothing, and says nothing.
    assert client.post("/organiser/logout").headers["Location"] == "/"
    logged_in_again = client.post(
        sent.headers["Location"],
        data={"email": logged_in.email, "password": PASSWORD},
    )
    assert logged_in_again.headers["Location"] == edit
    assert client.get(edit).status_code == 200
    looked = copy.get(f"/organiser/letters/{letter.id}?tab=1")  # a page: back to it as it was
    assert looked.headers["Location"].endswith(f"next=/organiser/letters/{letter.id}?tab%3D1")


def test_a_new_password_or_a_disabled_account_ends_sessions(app, client, logged_in):
    copy = _copy_of(client, app)
    changed = app.test_cli_runner().invoke(
        cli, ["organisers", "set-password", logged_in.email, "--password-stdin"],
        input="another long password\n",
    )  # fmt: skip
    assert "they are logged out everywhere" in changed.output
    assert copy.get("/organiser/").status_code == 302

    login = {"email": logged_in.email, "password": "another long password"}
    assert client.post("/organiser/login", data=login).status_code == 303
    disabled = app.test_cli_runner().invoke(cli, ["organisers", "disable", logged_in.email])
    assert disabled.exit_code == 0, disabled.output
    assert client.get("/organiser/").status_code == 302
    assert client.post("/organiser/login", data=login).status_code == 401
    again = app.test_cli_runner().invoke(cli, ["organisers", "disable", logged_in.email])
    assert again.exit_code == 0 and "was already disabled; nothing changed" in again.output
    enabled = app.test_cli_runner().invoke(cli, ["organisers", "enable", logged_in.email])
    assert "they can log in again" in enabled.output
    assert client.post("/organiser/login", data=login).status_code == 303
    again = app.test_cli_runner().invoke(cli, ["organisers", "enable", logged_in.email])
    assert "was not disabled; nothing changed" in again.output
    missing = app.test_cli_runner().invoke(cli, ["organisers", "disable", "nobody@example.org"])
    assert missing.exit_code == 1
    assert "No organiser has the email 'nobody@example.org'." in missing.output
    empty = app.test_cli_runner().invoke(cli, ["organisers", "enable", ""])
    assert empty.exit_code == 1 and "No organiser has the email ''." in empty.output
