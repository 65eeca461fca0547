"""The CSV the database writes is the CSV Python's csv module would write, on either database."""

from __future__ import annotations

import csv
import io
import itertools
import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select

from petition.db import engine, transaction
from petition.models import Signature, SignatureState
from petition.services import exports

AWKWARD = [
    'Jane "JD" Doe',
    "Smith, John",
    "two\nlines",
    "carriage\r\nreturn",
    "lone\rcarriage",
    "=SUM(A1)",
    "+44 20",
    "-minus",
    "@handle",
    "\tTabbed",
    "\rReturned",
    '"=quoted formula"',
    "=with, comma",
    "'already quoted",
    " leading space",
    "trailing space ",
    "Zoë Ünal 🙂",
    "\\.",
    ",",
    '"',
    "",
    None,
]


_numbers = itertools.count()


def _add(letter, rows: list[dict]) -> None:
    """Store signatures straight away, verified a second apart unless a row says otherwise."""
    start = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    values = [
        {
            "letter_id": letter.id,
            "name": "Signer",
            "email": f"signer{number}@example.org",
            "email_key": f"signer{number}@example.org",
            "state": SignatureState.VERIFIED,
            "verify_token_hash": f"{number:064x}",
            "verify_expires_at": start + timedelta(days=3),
            "created_at": start,
            "verified_at": start + timedelta(seconds=number, microseconds=number % 7 * 1000),
        }
        | row
        for number, row in zip(_numbers, rows, strict=False)
    ]
    with transaction() as session:
        session.execute(insert(Signature), values)


def _expected(letter) -> bytes:
    """What the csv module writes for the stored rows, formulas neutralised in Python."""

    def cell(value: str | None) -> str:
        if not value:
            return ""
        return "'" + value if value.startswith(exports.FORMULA_STARTS) else value

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(exports.columns(letter))
    with transaction() as session:
        stored = session.scalars(
            select(Signature)
            .where(Signature.letter_id == letter.id, Signature.state == SignatureState.VERIFIED)
            .order_by(Signature.verified_at, Signature.id)
        ).all()
        for row in stored:
            asked = [row.postcode, row.organisation, row.comment]
            wanted = [letter.ask_postcode, letter.ask_organisation, letter.ask_comment]
            writer.writerow(
                [
                    cell(row.name),
                    *(cell(value) for value, ask in zip(asked, wanted, strict=True) if ask),
                    cell(row.email) if row.share_email else "",
                    f"{row.verified_at:%Y-%m-%d %H:%M:%S}",
                ]
            )
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def _exported(letter) -> bytes:
    return "".join(exports.stream_csv(engine(), letter)).encode("utf-8")


def test_every_awkward_value_is_written_as_the_csv_module_writes_it(make_letter):
    letter = make_letter(ask_postcode=True, ask_organisation=True, ask_comment=True)
    rows = []
    for number, value in enumerate(AWKWARD):
        rows.append({"name": value or "Named", "comment": value, "share_email": number % 2 == 0})
        rows.append({"name": "Plain", "organisation": value, "postcode": value and value[:16]})
    rows.append({"name": "Formula mail", "email": "=1+2|cmd!A0@example.org", "share_email": True})
    rows.append({"name": "Quoted mail", "email": '"a,b"@example.org', "share_email": True})
    _add(letter, rows)
    _add(letter, [{"name": "Not yet", "state": SignatureState.PENDING, "verified_at": None}])

    exported = _exported(letter)
    assert exported == _expected(letter)
    parsed = list(csv.reader(io.StringIO(exported.decode("utf-8-sig"), newline="")))
    assert len(parsed) == 1 + len(rows)  # the header and every verified row, not the pending one
    assert parsed[1][0] == 'Jane "JD" Doe'
    assert parsed[1][3] == 'Jane "JD" Doe'  # the comment
    assert [row[3] for row in parsed[11:14:2]] == ["'=SUM(A1)", "'+44 20"]


def test_only_the_columns_the_letter_asked_for(make_letter):
    letter = make_letter()
    _add(
        letter, [{"name": "Ann, B", "postcode": "LS1", "comment": "not asked", "share_email": True}]
    )
    exported = _exported(letter).decode("utf-8-sig")
    assert exported.encode("utf-8-sig") == _expected(letter)
    header, row = exported.splitlines()
    assert header == "Name,Email,Confirmed (UTC)"
    assert re.fullmatch(r'"Ann, B",signer\d+@example\.org,2026-11-26 09:\d\d:\d\d', row)


def test_rows_come_in_chunks_and_write_csv_counts_them(make_letter, tmp_path):
    letter = make_letter(ask_comment=True)
    count = exports.ROWS_PER_CHUNK * 2 + 5
    _add(letter, [{"comment": "line one\nline two" if n % 3 else None} for n in range(count)])
    chunks = list(exports.stream_csv(engine(), letter))
    assert len(chunks) == 1 + 3  # the header, then two full chunks and the rest
    path = tmp_path / "out.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        assert exports.write_csv(engine(), letter, handle) == count
    assert path.read_bytes() == "".join(chunks).encode("utf-8") == _expected(letter)


def test_a_download_stopped_halfway_gives_its_connection_back(make_letter):
    letter = make_letter()
    _add(letter, [{} for _ in range(exports.ROWS_PER_CHUNK * 3)])
    pool_size = engine().pool.size()
    for _ in range(pool_size + 2):  # more stopped downloads than the pool holds connections
        chunks = exports.stream_csv(engine(), letter)
        next(chunks)
        next(chunks)
        chunks.close()  # what the server does when the office closes the tab
    assert len(_exported(letter).splitlines()) == 1 + exports.ROWS_PER_CHUNK * 3
    _add(letter, [{"email": "late@example.org", "email_key": "late@example.org",
                   "verify_token_hash": "e" * 64}])  # fmt: skip
    assert b"late@example.org" not in _exported(letter)  # written, and not shared
    assert len(_exported(letter).splitlines()) == 2 + exports.ROWS_PER_CHUNK * 3
