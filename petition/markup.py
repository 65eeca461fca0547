"""Letter bodies: Markdown in, safe HTML out."""

import nh3
from markdown_it import MarkdownIt

from petition import text

# Raw HTML in the source is shown as text, not run; nh3 then strips anything that still
# slipped through (javascript: links, event attributes) as a second line of defence.
# A line break in the source is kept ("breaks"): organisers write letters, not Markdown, and
# "Yours sincerely,⏎The signatories" must not run together on one line.
_markdown = MarkdownIt(
    "commonmark", {"html": False, "linkify": False, "typographer": False, "breaks": True}
)
# Direction overrides can arrive as entities (&#x202E;), past the check on typed text.
_DIRECTION_CONTROLS = str.maketrans(dict.fromkeys(map(ord, text.BIDI_CONTROLS)))
_ALLOWED_TAGS = {
    "p", "br", "hr", "strong", "em", "a", "ul", "ol", "li", "blockquote",
    "h2", "h3", "h4", "code", "pre",
}  # fmt: skip


def render(markdown_text: str) -> str:
    """Render a letter body; headings start at h2 because the page title is the h1."""
    html = _markdown.render(markdown_text)
    html = html.replace("<h1>", "<h2>").replace("</h1>", "</h2>")
    return nh3.clean(
        html.translate(_DIRECTION_CONTROLS),
        tags=_ALLOWED_TAGS,
        attributes={"a": {"href", "title"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="nofollow noopener noreferrer",
    )
