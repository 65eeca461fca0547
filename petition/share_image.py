"""The picture a link preview shows: the letter's title and its count, as a 1200x630 PNG."""

from __future__ import annotations

import io
import textwrap

from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 1200, 630
INK, ACCENT, PAPER, MUTED = "#1b1b1f", "#b3123b", "#ffffff", "#555861"


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Pillow's bundled scalable font: no system fonts needed, the same on every machine.
    return ImageFont.load_default(size=size)


def render(title: str, recipient: str, count: int, goal: int | None) -> bytes:
    """Draw the card; count and goal are formatted with thousands separators."""
    image = Image.new("RGB", (WIDTH, HEIGHT), PAPER)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, WIDTH, 16), fill=ACCENT)
    draw.text((72, 64), f"An open letter to {recipient}"[:80], font=_font(34), fill=MUTED)
    lines = textwrap.wrap(title, width=34)
    if len(lines) > 3:
        lines = [*lines[:2], lines[2][:31].rstrip() + "…"]
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
