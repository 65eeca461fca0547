"""Share links for a letter: plain URLs, no third-party scripts or trackers."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlencode

from flask_babel import gettext as _


@dataclass(frozen=True)
class ShareLink:
    label: str
    href: str
    service: str


def links(url: str, title: str, *, signed: bool = False) -> list[ShareLink]:
    """Share links; the text says "I signed" only on the page that follows signing."""
    if signed:
        text = _("I signed this open letter: %(title)s", title=title)
    else:
        text = _("Sign this open letter: %(title)s", title=title)
    return [
        ShareLink("WhatsApp", "https://wa.me/?" + urlencode({"text": f"{text} {url}"}), "whatsapp"),
        ShareLink("X", "https://x.com/intent/post?" + urlencode({"text": text, "url": url}), "x"),
        ShareLink(
            "Facebook",
            "https://www.facebook.com/sharer/sharer.php?" + urlencode({"u": url}),
            "facebook",
        ),
        ShareLink(
            _("Email"),
            f"mailto:?subject={quote(title)}&body={quote(text + chr(10) + chr(10) + url)}",
            "email",
        ),
    ]
