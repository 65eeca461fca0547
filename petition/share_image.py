"""The picture a link preview shows: the letter's title and its count, as a 1200x630 PNG."""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 1200, 630
INK, ACCENT, PAPER, MUTED = "#1b1b1f", "#b3123b", "#ffffff", "#555861"


# DejaVu Sans (Bitstream Vera licence, beside it): Pillow's own font has no accented letters,
# so "Siân" or "Łódź" came out with boxes. Shipped with the package, the same on every machine.
FONT = Path(__file__).resolve().parent / "fonts" / "DejaVuSans.ttf"


@cache
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT), size)


def render(title: str, recipient: str, count: int, goal: int | None) -> bytes:
    """Draw the card; count and goal are formatted with thousands separators."""
    image = Image.new("RGB", (WIDTH, HEIGHT), PAPER)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, WIDTH, 16), fill=ACCENT)
    heading = _fit(draw, f"An open letter to {recipient}", _font(34), max_lines=1)
    draw.text((72, 64), heading[0], font=_font(34), fill=MUTED)
    lines = _fit(draw, title, _font(64), max_lines=3)
    y = 124
    for line in lines:
        draw.text((72, y), line, font=_font(64), fill=INK)
        y += 78
    figure = f"{count:,}"
    draw.text((72, 430), figure, font=_font(96), fill=ACCENT)
    label_x = 72 + draw.textlength(figure, font=_font(96)) + 24
    label = f"of {goal:,} signatures" if goal else ("signature" if count == 1 else "signatures")
    draw.text((label_x, 478), label, font=_font(40), fill=INK)
    if goal:
        filled = int((WIDTH - 144) * min(count / goal, 1))
        draw.rounded_rectangle((72, 560, WIDTH - 72, 584), radius=12, fill="#e6e7ea")
        if filled:
            draw.rounded_rectangle((72, 560, 72 + max(filled, 24), 584), radius=12, fill=ACCENT)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont, max_lines: int):
    """Wrap text to the card's width as drawn (letters differ in width), at most max_lines,
    the last one cut short with an ellipsis if the text goes on."""
    room = WIDTH - 144
    lines: list[str] = []
    for word in text.split():
        while draw.textlength(word, font=font) > room:  # a word wider than the card
            cut = len(word) - 1
            while cut > 1 and draw.textlength(word[:cut], font=font) > room:
                cut -= 1
            lines.append(word[:cut])
            word = word[cut:]
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= room:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        while last and draw.textlength(last + "…", font=font) > room:
            last = last[:-1]
        lines = [*lines[: max_lines - 1], last.rstrip() + "…"]
    return lines or [""]
