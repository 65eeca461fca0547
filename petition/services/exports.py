"""The signatories as CSV: streamed from the database in constant memory, safe in spreadsheets."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import Engine, select

from petition.models import Letter, Signature, SignatureState

# A spreadsheet treats a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
ROWS_PER_CHUNK = 1000


def neutralise(value: str) -> str:
    """Prefix a formula-like cell with an apostrophe so spreadsheets show it as text."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def columns(letter: Letter) -> list[str]:
    """The header row: only the fields this letter asked signers for."""
    header = ["name"]
    if letter.ask_postcode:
        header.append("postcode")
    if letter.ask_organisation:
        header.append("organisation")
    if letter.ask_comment:
        header.append("comment")
    header += ["email", "signed_at"]
    return header


def filename(letter: Letter, now: datetime) -> str:
    return f"{letter.slug}-signatories-{now:%Y-%m-%d}.csv"


def stream_csv(engine: Engine, letter: Letter) -> Iterator[str]:
    """Yield the CSV in chunks: UTF-8 with a byte-order mark so Excel reads accents right.

    Runs on its own connection with a server-side cursor, so it outlives the request's session
    and never holds more than one chunk of rows in memory.
    """
    wanted = [Signature.name]
    if letter.ask_postcode:
        wanted.append(Signature.postcode)
    if letter.ask_organisation:
        wanted.append(Signature.organisation)
    if letter.ask_comment:
        wanted.append(Signature.comment)
    wanted += [Signature.share_email, Signature.email, Signature.verified_at]
    query = (
        select(*wanted)
        .where(Signature.letter_id == letter.id, Signature.state == SignatureState.VERIFIED)
        .order_by(Signature.verified_at, Signature.id)
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns(letter))
    yield "\ufeff" + buffer.getvalue()
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=ROWS_PER_CHUNK)
        for partition in result.execute(query).partitions():
            buffer.seek(0)
            buffer.truncate()
            for row in partition:
                *details, share_email, email, verified_at = row
                cells = [neutralise(value or "") for value in details]
                cells.append(email if share_email else "")
                cells.append(verified_at.isoformat(timespec="seconds") if verified_at else "")
                writer.writerow(cells)
            yield buffer.getvalue()
