"""Letter bodies: what organisers type comes out as they meant it, and nothing runs."""

from petition import markup


def test_a_line_break_is_kept_and_paragraphs_stay_paragraphs():
    html = markup.render("Dear Alex,\n\nPlease stand.\n\nYours sincerely,\nThe signatories")
    assert "<p>Yours sincerely,<br>\nThe signatories</p>" in html
    assert html.count("<p>") == 3


def test_script_links_and_direction_overrides_do_not_survive():
    html = markup.render("<script>alert(1)</script> [x](javascript:alert(1)) abc&#x202E;def")
    assert "<script>" not in html and "href=" not in html  # shown as text, never run
    assert "\u202e" not in html and "abcdef" in html
