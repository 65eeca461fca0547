"""The signatories as CSV: streamed from the database in constant memory, safe in spreadsheets."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import ColumnElement, Connection, Engine, case, func, literal, select

from petition.models import Letter, Signature, SignatureState

# A spreadsheet treats a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
ROWS_PER_CHUNK = 1000


def _neutralised(column: ColumnElement[str | None]) -> ColumnElement[str]:
    """The text, or '' for none, with an apostrophe before a formula-like start so spreadsheets
    show it as text. Done by the database: in Python it was a fifth of the export's time."""
    return case(
        (func.substr(column, 1, 1).in_(FORMULA_STARTS), literal("'") + column),
        else_=func.coalesce(column, literal("")),
    )


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
    details = [Signature.name]
    if letter.ask_postcode:
        details.append(Signature.postcode)
    if letter.ask_organisation:
        details.append(Signature.organisation)
    if letter.ask_comment:
        details.append(Signature.comment)
    with engine.connect() as connection:
        # The database formats the email column and the timestamp: turning each timestamp into
        # a datetime only to print it again was a quarter of the export's time.
        # An address may legally start with "=" or "+" (=1+2|cmd!A0@example.org), so it is
        # neutralised like the free text.
        shared_email = case(
            (Signature.share_email, _neutralised(Signature.email)), else_=literal("")
        )
        cells = [_neutralised(column) for column in details]
        query = (
            select(*cells, shared_email, _utc_iso_seconds(connection, Signature.verified_at))
            .where(Signature.letter_id == letter.id, Signature.state == SignatureState.VERIFIED)
            .order_by(Signature.verified_at, Signature.id)
        )
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(columns(letter))
        yield "\ufeff" + buffer.getvalue()
        result = connection.execution_options(stream_results=True, yield_per=ROWS_PER_CHUNK)
        for partition in result.execute(query).partitions():
            buffer.seek(0)
            buffer.truncate()
            writer.writerows(partition)
            yield buffer.getvalue()


def _utc_iso_seconds(connection: Connection, column: ColumnElement) -> ColumnElement[str]:
    """The timestamp as 2026-11-26T09:01:36+00:00, formatted by the database itself."""
    if connection.dialect.name == "postgresql":
        formatted = func.to_char(
            func.timezone("UTC", column), literal('YYYY-MM-DD"T"HH24:MI:SS"+00:00"')
        )
    else:
        # SQLite keeps UTC timestamps as text, "2026-11-26 09:01:36.123456": cutting it up
        # takes the export 15 % less time than strftime() parsing it.
        formatted = (
            func.substr(column, 1, 10) + "T" + func.substr(column, 12, 8) + literal("+00:00")
        )
    return func.coalesce(formatted, literal("")).label("signed_at")
