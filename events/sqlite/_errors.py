"""The one place where the SQLite driver's errors become fleet's.

Every statement the backend sends runs inside `translated(...)` (or, for a
group of appends that share one failure, goes through `store_error`), so
callers only ever see `events.errors`: a full disk or a read-only file is
`StoreUnavailable` with the reason, a file that is not a database is
`NotADatabase`, a lock held too long by another process is `StoreUnavailable`
saying so (waited out by agents, as PostgreSQL's lock_timeout is). The
driver's exception is kept as the `__cause__`.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import NotADatabase, StoreError, StoreUnavailable

__all__ = ["store_error", "translated"]

# SQLite's primary result codes (the low byte of an extended code).
_BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _CONSTRAINT, _NOTADB = (
    5, 6, 8, 10, 11, 13, 14, 19, 26,
)  # fmt: skip


def store_error(error: sqlite3.Error, doing: str, path: Path) -> StoreError:
    """The fleet error for a driver error met while `doing` (e.g. "appending to") `path`."""
    code = getattr(error, "sqlite_errorcode", None)
    primary = -1 if code is None else code & 0xFF
    if primary == _FULL:
        return StoreUnavailable(f"the disk holding {path} is full ({error})")
    if primary == _READONLY:
        return StoreUnavailable(
            f"{path} is read-only ({error}); open it with readonly=True to read"
        )
    if primary == _IOERR:
        return StoreUnavailable(f"disk I/O error on {path} ({error})")
    if primary == _CANTOPEN:
        return _cannot_open(path, error)
    if primary == _NOTADB:
        return NotADatabase(str(path))
    if primary == _CORRUPT:
        return StoreError(f"{doing} {path} failed: the file is corrupt ({error})")
    if primary in (_BUSY, _LOCKED):
        # Nothing was written, and the lock ends (a `BEGIN IMMEDIATE` left open in the
        # sqlite3 shell, a backup): an outage to wait out, as PostgreSQL's lock_timeout is.
        return StoreUnavailable(
            f"{doing} {path} failed: another process held the log's write lock too long "
            f"({error}); nothing was written"
        )
    if primary == _CONSTRAINT:
        return StoreError(f"{doing} {path} failed: log integrity check failed: {error}")
    return StoreError(f"{doing} {path} failed: {error}")


def _cannot_open(path: Path, error: sqlite3.Error) -> StoreError:
    folder = path.parent
    if path.is_dir():
        return StoreError(f"cannot open {path}: it is a folder, not a log file")
    if not folder.is_dir():
        return StoreError(f"cannot open {path}: its folder {folder} does not exist")
    if path.exists() and not os.access(path, os.R_OK):
        return StoreUnavailable(f"cannot open {path}: the file is not readable")
    if not os.access(folder, os.W_OK):
        return StoreUnavailable(f"cannot open {path}: its folder {folder} is read-only")
    return StoreError(f"cannot open {path} ({error})")


@contextmanager
def translated(doing: str, path: Path) -> Iterator[None]:
    """Raise the fleet error for any driver error in the block (`raise ... from e`)."""
    try:
        yield
    except sqlite3.Error as e:
        raise store_error(e, doing, path) from e
