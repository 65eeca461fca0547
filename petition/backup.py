"""A consistent copy of a SQLite database taken while the site runs (PostgreSQL has pg_dump).

Copying the file is not a backup: a copy taken while the site writes mixes pages from before and
after a commit (and leaves out what is still in the -wal file), and SQLite then finds it corrupt.
VACUUM INTO writes the database as one read transaction sees it, which in WAL mode holds up no
writer, into a new file; the copy is checked before it gets its name.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from petition.db import sqlite_file

BUSY_TIMEOUT_MS = 15_000  # as the site's connections: a writer's checkpoint may hold us briefly


class BackupRefused(Exception):
    """Why no backup was made, in words for the person who asked."""


@dataclass(frozen=True)
class Backup:
    path: Path
    size: int  # bytes
    signatures: int


def back_up_sqlite(database_url: str, destination: Path) -> Backup:
    """Copy the SQLite database `database_url` names to `destination`, a new file readable by
    its owner only, and check the copy; BackupRefused says why not."""
    source = sqlite_file(database_url)
    if source is None:
        raise BackupRefused(
            "This is for SQLite databases. Back up PostgreSQL with pg_dump "
            "(docs/operators.md, Backups and restore)."
        )
    if not source.is_file():
        raise BackupRefused(f"There is no database at {source}.")
    if destination.exists():
        raise BackupRefused(f"{destination} already exists: name a new file.")
    if not destination.parent.is_dir():
        raise BackupRefused(f"There is no folder {destination.parent} to write the backup in.")
    partial = destination.with_name(destination.name + ".partial")
    try:
        # Empty, new and ours alone before SQLite writes into it: backups hold political opinions.
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        raise BackupRefused(
            f"{partial} is there already: a backup being made now, or one that was stopped "
            "half-way. Delete it if no backup is running, and try again."
        ) from None
    except OSError as error:
        raise BackupRefused(f"Cannot write {partial}: {error.strerror}.") from None
    try:
        with closing(sqlite3.connect(source, timeout=BUSY_TIMEOUT_MS / 1000)) as database:
            database.execute("VACUUM INTO ?", (str(partial),))
        with closing(sqlite3.connect(partial)) as copy:
            checked = copy.execute("PRAGMA integrity_check").fetchone()[0]
            signatures = copy.execute("SELECT count(*) FROM signature").fetchone()[0]
        if checked != "ok":
            raise BackupRefused(f"The copy did not pass SQLite's integrity check: {checked}")
        _on_disk(partial)
        try:  # a link, unlike a rename, never replaces a file made there meanwhile
            os.link(partial, destination)
        except FileExistsError:
            raise BackupRefused(f"{destination} already exists: name a new file.") from None
        _on_disk(destination.parent)
    except sqlite3.Error as error:
        raise BackupRefused(f"Cannot back up {source}: {error}.") from None
    finally:
        partial.unlink(missing_ok=True)
    return Backup(destination, destination.stat().st_size, signatures)


def _on_disk(path: Path) -> None:
    """fsync a file, or a folder's entries: a backup that a power cut can leave half-written
    under its final name is worse than none."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
