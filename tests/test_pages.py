"""The public pages: letter, signatories, home, embed, link previews, a signer's own page."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from PIL import Image, ImageDraw

from petition import share_image
from petition.dates import LOCAL_TIME, days_left, end_of_day
from petition.db import transaction, utcnow
from petition.models import Signature, SignatureState
from petition.services import counts, signatories
from tests.conftest import api_count, fresh_session, sign_and_confirm, sign_data


def test_letter_page_shows_count_progress_days_left_and_recent_public_signers(
    client, make_letter, mailbox
):
    today = utcnow().astimezone(LOCAL_TIME).date()
    letter = make_letter(goal=5000, closes_at=end_of_day(today + timedelta(days=9)))
    sign_and_confirm(client, mailbox, letter, name="Jane Doe", email="a@example.org", show_name="y")
    sign_and_confirm(client, mailbox, letter, name="Hidden Person", email="b@example.org")
    page = client.get(f"/letters/{letter.slug}").get_data(as_text=True)
    assert re.search(r"data-count-number>2</strong>", page)
    assert "of 5,000 signatures" in page
    assert '<progress class="bar" max="5000" value="2"' in page
    assert "10 days left" in page
    assert "Jane D." in page
    assert "Jane Doe" not in page
    assert "Hidden" not in page


def test_an_address_typed_in_capitals_leads_to_the_letter(client, make_letter):
    letter = make_letter()
    typed = client.get("/letters/Stand-For-The-Leadership?utm_source=poster")
    assert typed.status_code == 301
    assert typed.headers["Location"] == f"/letters/{letter.slug}?utm_source=poster"
    assert client.get("/letters/STAND-for-the-leadership").headers["Location"] == (
        f"/letters/{letter.slug}"
    )
    assert client.get("/letters/No-Such-Letter", follow_redirects=True).status_code == 404
    raw = client.get(  # the raw bytes of "café", as WSGI hands them over (latin-1)
        "/letters/Stand-For-The-Leadership",
        environ_overrides={"QUERY_STRING": "q=caf\xc3\xa9&x=%41"},
    )
    assert raw.headers["Location"] == f"/letters/{letter.slug}?q=caf%C3%A9&x=%41"


def test_the_closing_day_says_it_is_the_last_day(client, make_letter):
    today = utcnow().astimezone(LOCAL_TIME).date()
    letter = make_letter(closes_at=end_of_day(today))
    page = client.get(f"/letters/{letter.slug}").get_data(as_text=True)
    assert "Last day to sign" in page and "day left" not in page
    assert days_left(end_of_day(today + timedelta(days=1)), utcnow()) == 2


def test_letter_page_is_small(client, make_letter):
    letter = make_letter(body_markdown="Dear Alex,\n\n" + "Please stand. " * 200)
    page = client.get(f"/letters/{letter.slug}").get_data(as_text=True)
    assert len(page.encode()) < 30_000
    icon = re.search(r'<link rel="icon" href="([^"]+)"', page).group(1)
    answer = client.get(icon)
    assert answer.status_code == 200  # so browsers stop asking for /favicon.ico
    answer.close()


def test_link_previews_have_open_graph_tags_and_a_png(client, make_letter, mailbox):
    letter = make_letter(goal=100)
    sign_and_confirm(client, mailbox, letter)
    page = client.get(f"/letters/{letter.slug}").get_data(as_text=True)
    assert '<meta property="og:title" content="Stand for the leadership">' in page
    assert '<meta name="twitter:card" content="summary_large_image">' in page
    image_url = re.search(r'<meta property="og:image" content="([^"]+)"', page).group(1)
    assert image_url == f"http://localhost/letters/{letter.slug}/share.png?n=1"
    image = client.get(image_url.removeprefix("http://localhost"))
    assert image.status_code == 200
    assert image.mimetype == "image/png"
    assert image.get_data().startswith(b"\x89PNG\r\n\x1a\n")
    assert "public" in image.headers["Cache-Control"]


def test_the_preview_font_has_the_letters_of_british_and_european_names():
    font = share_image._font(64)

    def drawn(text: str) -> bytes:
        image = Image.new("L", (120, 120))
        ImageDraw.Draw(image).text((10, 10), text, font=font, fill=255)
        return image.tobytes()

    missing = drawn("\U000f0000")  # a private-use character: the box for a missing letter
    for character in "éóźŁâŵŷŴŶĉ–—’€":
        assert drawn(character) != missing, character
    card = share_image.render("Cadwch lyfrgell Llanfair ar agor – Siân", "Łódź café", 1, None)
    assert card.startswith(b"\x89PNG")
    # Lines are measured as drawn: wide letters wrap sooner, and a long title ends in "…".
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines = share_image._fit(draw, "W" * 60 + " and the rest of a long title", font, max_lines=3)
    assert len(lines) == 3 and lines[-1].endswith("…")
    assert all(draw.textlength(line, font=font) <= share_image.WIDTH - 144 for line in lines)


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("Jane Doe", "Jane D."),
        ("Cher", "Cher"),
        ("Zoë Ångström-Ñúñez 🎉", "Zoë Å."),
        ('Anne "Nan" O\'Brien, Jr.', "Anne O."),
        ("Al 🎉", "Al"),
        ("Mary-Jane van der Berg", "Mary-Jane B."),
        # A surname first, or words run together, still show a first name and a letter.
        ("Wojcik, Agnieszka", "Agnieszka W."),
        ("Smith,John", "John S."),
        ("Wojcik, Agnieszka, PhD", "Agnieszka W."),
        ("Jane Doe, MP", "Jane D."),
        ("Jane Doe, Chair", "Jane D."),
        ("Jane Doe, Vice-Chair", "Jane D."),
        ("Jane Doe, Ph.D.", "Jane D."),
        ("Cllr Jane Smith", "Jane S."),
        ("Rt. Hon. Jane Smith MP", "Jane S."),
        ("Dr Smith", "Dr S."),
        ("Jane Smith - Unison rep", "Jane S."),
        ("Jane Smith – Hackney / Unite", "Jane S."),
        ("Jane Smith (Hackney)", "Jane S."),
        ("Nazia (Naz) Khan", "Nazia K."),
        ("Jane Smith-Jones", "Jane S."),
        ("(Jane Smith)", "Jane S."),
        ("Jane Doe, Vice-Chair of Hackney CLP", "Jane D."),
        ("Jane Doe, Hackney Branch Secretary", "Jane D."),
        ("Doe, Jane Mary Ann", "Jane D."),  # a surname alone before the comma
        ("Doe, J. R. R.", "J. D."),
        ("Smith, Jr.", "Smith"),
        ("Jan.Kowalski", "Jan K."),
        ("John_Smith", "John S."),
        ("John\u200bSmith", "John S."),
        ("J.R.R. Tolkien", "J.R.R. T."),
        ("García Márquez, Gabriel", "Gabriel M."),
        ("Mc Donald, Mary Ann", "Mary D."),
        (", Jane Doe", "Jane D."),
        ("_, Jane Doe", "Jane D."),
        ("Ali Mahdi\u200czadeh", "Ali M."),  # a joiner belongs inside the word
        (" , ", ","),
    ],
)
def test_public_names_are_a_first_name_and_a_letter(name, shown):
    assert signatories.public_name(name) == shown


@pytest.mark.parametrize(
    ("name", "spoken"),
    [
        ("Jane Doe", "Jane Doe"),
        ("Doe, Jane", "Jane Doe"),
        ("García Márquez, Gabriel", "Gabriel García Márquez"),
        ("Jane Doe, Chair", "Jane Doe"),
        ("Cllr Jane Smith MP (Hackney)", "Jane Smith"),
        ("Dr Smith", "Dr Smith"),
        ("Cher", "Cher"),
        (" , ", ","),
    ],
)
def test_people_are_greeted_by_name_in_the_order_it_is_spoken(name, spoken):
    assert signatories.spoken_name(name) == spoken


def _signed(letter, number: int, name: str, **columns) -> Signature:
    """Signature `number` on the letter, confirmed unless `state` says otherwise."""
    return Signature(
        letter_id=letter.id,
        name=name,
        email=f"p{number}@example.org",
        email_key=f"p{number}@example.org",
        verify_token_hash=f"{number:064d}",
        verify_expires_at=utcnow(),
        **{"state": SignatureState.VERIFIED} | columns,
    )


def test_signatory_list_is_paginated_and_public_names_only(client, make_letter, mailbox):
    letter = make_letter(ask_organisation=True, ask_comment=True)
    with transaction() as session:
        for number in range(60):
            session.add(
                _signed(
                    letter,
                    number,
                    f"Person{number:02d} Surname",
                    organisation="Union branch" if number == 0 else None,
                    comment="Go on!" if number == 0 else None,
                    show_name=number % 10 != 9,  # six of them chose not to be listed
                    verified_at=utcnow() + timedelta(seconds=number),
                )
            )
    first = client.get(f"/letters/{letter.slug}/signatories").get_data(as_text=True)
    assert "54 chose to be listed" in first
    assert "Person00 S." in first and "Union branch" in first and "Go on!" in first
    assert "Page 1 of 2" in first
    assert "p0@example.org" not in first
    second = client.get(f"/letters/{letter.slug}/signatories?page=2").get_data(as_text=True)
    assert second.count('class="who"') == 4
    listed = re.findall(r'class="who">(Person\d\d) S\.', first + second)
    assert listed == [f"Person{n:02d}" for n in range(60) if n % 10 != 9]
    assert client.get(f"/letters/{letter.slug}/signatories?page=99").status_code == 200
    assert client.get(f"/letters/{letter.slug}/signatories?page=x").status_code == 200
    for odd in ("²", "①", "-1", "9" * 5000):  # "²".isdigit(), yet int("²") fails
        assert client.get(f"/letters/{letter.slug}/signatories?page={odd}").status_code == 200


def test_every_listed_signatory_is_on_exactly_one_page_in_signing_order(make_letter):
    """Pages are found from whichever end of the list is nearer; signatures confirmed in the
    same instant keep their order (by id) either way."""
    letter = make_letter()
    start = utcnow()
    with transaction() as session:
        for number in range(140):
            confirmed = number < 135
            session.add(
                _signed(
                    letter,
                    number,
                    f"Person{number:03d} Surname",
                    show_name=number % 14 != 13,  # some chose not to be listed
                    state=SignatureState.VERIFIED if confirmed else SignatureState.PENDING,
                    verified_at=start + timedelta(seconds=number // 3) if confirmed else None,
                )
            )
    session = fresh_session()
    known = signatories.listed(session, letter)
    expected = [f"Person{n:03d} S." for n in range(135) if n % 14 != 13]
    assert known.total == len(expected) == 126
    pages = [signatories.page(session, letter, number) for number in (1, 2, 3)]
    assert [page.number for page in pages] == [1, 2, 3]
    assert [len(page.items) for page in pages] == [50, 50, 26]
    assert [item.name for page in pages for item in page.items] == expected
    assert signatories.page(session, letter, 4).items == pages[2].items  # beyond: the last

    # Signers confirmed since the list was counted (kept for a few seconds, as the page has it)
    # wait for the next count: nobody is left out or shown twice meanwhile.
    with transaction() as later:
        for number in range(140, 145):
            later.add(
                _signed(
                    letter,
                    number,
                    f"Person{number:03d} Surname",
                    show_name=True,
                    verified_at=start + timedelta(seconds=number // 3),
                )
            )
    session = fresh_session()
    walked = [signatories.page(session, letter, number, known) for number in (1, 2, 3)]
    assert [item.name for page in walked for item in page.items] == expected
    now = signatories.listed(session, letter)
    assert now.total == 131
    walked = [signatories.page(session, letter, number, now) for number in (1, 2, 3)]
    assert [item.name for page in walked for item in page.items] == [
        *expected,
        *(f"Person{n:03d} S." for n in range(140, 145)),
    ]
    assert signatories.Listed.decode(now.encode()) == now  # as the shared cache keeps it


def test_home_lists_open_letters_by_count_or_date_with_search_and_an_archive(
    client, make_letter, mailbox
):
    older = make_letter(title="Fix the roads")
    make_letter(title="Save the library", recipient_name="Cllr Smith")
    make_letter(title="Old campaign", status="closed")
    sign_and_confirm(client, mailbox, older)
    with transaction() as session:
        counts.fold(session)  # "most signed" orders by the folded count

    def titles(html: str) -> list[str]:
        return re.findall(r'<a href="/letters/[^"]+">([^<]+)</a>', html)

    assert titles(client.get("/").get_data(True)) == ["Fix the roads", "Save the library"]
    newest = titles(client.get("/?sort=newest").get_data(True))
    assert newest == ["Save the library", "Fix the roads"]
    assert titles(client.get("/?q=smith").get_data(True)) == ["Save the library"]
    assert titles(client.get("/?q=ROAD").get_data(True)) == ["Fix the roads"]
    assert titles(client.get("/?q=100%25").get_data(True)) == []
    archive = client.get("/?archive=1").get_data(True)
    assert titles(archive) == ["Old campaign"]
    assert "closed with" in archive
    assert client.get("/?sort=bogus").status_code == 200


def test_embed_may_be_framed_anywhere_and_nothing_else_may(client, make_letter):
    letter = make_letter(goal=10)
    embed = client.get(f"/letters/{letter.slug}/embed")
    assert embed.status_code == 200
    assert "frame-ancestors *" in embed.headers["Content-Security-Policy"]
    assert "Read and sign" in embed.get_data(as_text=True)
    page = client.get(f"/letters/{letter.slug}")
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]


def test_the_thank_you_page_is_shared_but_each_signer_sees_their_own_number(
    app, client, make_letter, mailbox, logged_in
):
    app.config.update(COUNT_CACHE_SECONDS=60)
    letter = make_letter()
    addresses = [f"reader{number}@example.org" for number in range(1, 4)]
    visitors = [app.test_client() for _ in addresses]
    for visitor, address in zip(visitors, addresses, strict=True):
        assert (
            visitor.post(f"/letters/{letter.slug}/sign", data=sign_data(email=address)).status_code
            == 303
        )
    mailbox.deliver()
    pages = [
        visitor.post(mailbox.link(address, "/verify/")).get_data(as_text=True)
        for visitor, address in zip(visitors, addresses, strict=True)
    ]
    for number, page in enumerate(pages, start=1):
        assert f"You are signature #{number}<" in page
        assert "987,654" not in page  # no trace of the placeholder
    assert pages[0].replace("#1<", "#2<") == pages[1]  # the same page but for the number

    # The organiser (logged in as `client`) is served their own page, with their header.
    client.post(f"/letters/{letter.slug}/sign", data=sign_data(email="organiser@example.org"))
    mailbox.deliver()
    own = client.post(mailbox.link("organiser@example.org", "/verify/")).get_data(as_text=True)
    assert "You are signature #4<" in own and "Your letters" in own
    assert "Your letters" not in pages[0]


def test_check_your_inbox_is_kept_per_letter_but_never_for_an_organiser(
    app, client, make_letter, logged_in
):
    app.config.update(COUNT_CACHE_SECONDS=60)
    first, second = make_letter(), make_letter(title="A second letter")
    visitor = app.test_client()
    for letter in (first, second, first):
        page = visitor.get(f"/letters/{letter.slug}/check-your-inbox").get_data(as_text=True)
        assert f"“{letter.title}”" in page
        assert "Your letters" not in page
    assert visitor.get("/letters/no-such-letter/check-your-inbox").status_code == 404
    own = client.get(f"/letters/{first.slug}/check-your-inbox").get_data(as_text=True)
    assert "Your letters" in own  # the organiser's header, not the visitors' copy


def test_the_shared_embed_links_to_the_site_whatever_host_was_asked_for(client, make_letter):
    letter = make_letter()
    embed = client.get(f"/letters/{letter.slug}/embed", headers={"Host": "evil.example"})
    assert "public" in embed.headers["Cache-Control"]
    page = embed.get_data(as_text=True)
    assert f'href="http://localhost/letters/{letter.slug}"' in page
    assert "evil.example" not in page


def test_verified_page_numbers_the_signer_and_offers_plain_share_links(
    client, make_letter, mailbox
):
    letter = make_letter()
    client.post(f"/letters/{letter.slug}/sign", data=sign_data())
    mailbox.deliver()
    page = client.post(mailbox.link("jane@example.org", "/verify/")).get_data(as_text=True)
    assert "You are signature #1" in page
    for service in (
        "https://wa.me/",
        "https://x.com/intent/post",
        "facebook.com/sharer",
        "mailto:",
    ):
        assert service in page
    assert "<script src=" in page and page.count("<script") == 1  # our own file, nothing else


def test_signer_can_hide_their_name_stop_updates_and_still_withdraw(client, make_letter, mailbox):
    letter = make_letter()
    manage = sign_and_confirm(
        client, mailbox, letter, name="Jane Doe", show_name="y", share_email="y"
    )
    assert "Jane D." in client.get(f"/letters/{letter.slug}").get_data(as_text=True)
    page = client.get(manage).get_data(as_text=True)
    assert re.search(r'<input checked[^>]*name="show_name"', page)
    assert re.search(r'<input [^>]*checked[^>]*name="share_email"', page)
    assert "one already delivered stays with the recipient" in page
    assert "you are shown as “Jane D.”" in page
    signature = fresh_session().query(Signature).one()
    assert signature.wants_updates is False  # nobody is opted in to news without asking
    saved = client.post(f"{manage}/preferences", data={})  # every box unticked
    assert saved.status_code == 303
    assert "Saved." in client.get(saved.headers["Location"]).get_data(as_text=True)
    assert "Jane D." not in client.get(f"/letters/{letter.slug}").get_data(as_text=True)
    assert "you are counted, but not listed" in client.get(manage).get_data(as_text=True)
    assert api_count(client, letter) == 1  # hiding is not withdrawing
    signature = fresh_session().query(Signature).populate_existing().one()
    assert (signature.show_name, signature.share_email, signature.wants_updates) == (
        False,
        False,
        False,
    )
    client.post(f"{manage}/preferences", data={"show_name": "y", "wants_updates": "y"})
    assert "Jane D." in client.get(f"/letters/{letter.slug}").get_data(as_text=True)
    unknown = client.post("/signature/not-a-real-token-but-long/preferences", data={})
    assert unknown.status_code == 404


def test_visitors_get_no_cookie_churn(app, client, make_letter):
    """A reader's page view sets at most the session cookie for the form, and nothing else."""
    app.config["WTF_CSRF_ENABLED"] = True
    letter = make_letter()
    first = client.get(f"/letters/{letter.slug}")
    assert [c.split("=")[0] for c in first.headers.getlist("Set-Cookie")] == ["session"]
    again = client.get(f"/letters/{letter.slug}")
    assert again.headers.getlist("Set-Cookie") == []
    assert client.get("/").headers.getlist("Set-Cookie") == []


def test_the_letter_page_is_shared_between_visitors_but_each_gets_their_own_token(
    app, make_letter, mailbox
):
    app.config.update(COUNT_CACHE_SECONDS=60, WTF_CSRF_ENABLED=True)
    letter = make_letter()

    def token(html: str) -> str:
        return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)

    first, second = app.test_client(), app.test_client()
    page_one = first.get(f"/letters/{letter.slug}").get_data(as_text=True)
    with transaction() as session:
        session.merge(letter).title = "A new title"
    page_two = second.get(f"/letters/{letter.slug}").get_data(as_text=True)
    assert "Stand for the leadership" in page_two  # served from the shared copy
    assert token(page_one) != token(page_two)
    assert "\x00" not in page_two
    for client, page in ((first, page_one), (second, page_two)):
        response = client.post(
            f"/letters/{letter.slug}/sign",
            data=sign_data(email=f"{id(client)}@example.org", csrf_token=token(page)),
        )
        assert response.status_code == 303


def test_a_token_works_only_with_the_session_it_was_made_for(app, make_letter):
    app.config.update(WTF_CSRF_ENABLED=True)
    letter = make_letter()
    token = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
    theirs = token.search(app.test_client().get(f"/letters/{letter.slug}").get_data(as_text=True))
    mine = app.test_client()
    mine.get(f"/letters/{letter.slug}")
    response = mine.post(f"/letters/{letter.slug}/sign", data=sign_data(csrf_token=theirs.group(1)))
    assert response.status_code == 400
    assert "This form has expired" in response.get_data(as_text=True)


def test_cookies_and_tokens_made_by_flask_and_flask_wtf_themselves_still_work(app, make_letter):
    """Sessions and tokens are written without compression now; those written before (by
    Flask's and Flask-WTF's own serializers, a long session compressed) must still be read."""
    from flask.sessions import SecureCookieSessionInterface
    from itsdangerous import URLSafeTimedSerializer

    app.config.update(WTF_CSRF_ENABLED=True)
    letter = make_letter()
    raw = "0123456789abcdef0123456789abcdef01234567"
    earlier = {"csrf_token": raw, "_flashes": [("message", "x" * 800)]}
    cookie = SecureCookieSessionInterface().get_signing_serializer(app).dumps(earlier)
    assert cookie.startswith(".")  # compressed, as Flask writes a long session
    token = URLSafeTimedSerializer(app.secret_key, salt="wtf-csrf-token").dumps(raw)
    client = app.test_client()
    client.set_cookie("session", cookie)
    response = client.post(f"/letters/{letter.slug}/sign", data=sign_data(csrf_token=token))
    assert response.status_code == 303


def test_templates_follow_a_change_of_locale_within_a_request(app):
    from flask_babel import force_locale, get_translations

    from petition import i18n

    with app.test_request_context("/"):
        default = i18n._translations()
        assert default is get_translations()
        assert i18n._translations() is default  # kept for the next string
        with force_locale("fr"):
            french = i18n._translations()
            assert french is get_translations() and french is not default
        assert i18n._translations() is default


@pytest.mark.parametrize(
    "path",
    [
        "/letters/%00",
        "/letters/a%00b/signatories",
        "/letters/a%00b/embed",
        "/letters/a%00b/share.png",
        "/letters/a%00b/check-your-inbox",
        "/api/v1/letters/a%00b",
        "/verify/ab%00c",
        "/letters/tab%09in-it",
    ],
)
def test_a_control_character_in_an_address_is_a_404_on_every_database(client, path, caplog):
    # PostgreSQL refuses a NUL in text: this was a 500 and a traceback there.
    assert client.get(path).status_code == 404
    assert client.post(path).status_code in (404, 405)
    assert caplog.records == []


def test_a_control_character_in_a_search_is_dropped(client, make_letter):
    make_letter(title="Save the library")
    page = client.get("/?q=li%00brary").get_data(as_text=True)
    assert "Save the library" in page


def test_a_control_character_in_the_login_email_is_named_on_every_database(client, caplog):
    answer = client.post(
        "/organiser/login", data={"email": "a\x00@example.org", "password": "a password"}
    )
    assert answer.status_code == 422  # PostgreSQL refuses a NUL in text: this was a 500
    assert "Remove the invisible control character U+0000" in answer.get_data(as_text=True)
    assert "Traceback" not in caplog.text
