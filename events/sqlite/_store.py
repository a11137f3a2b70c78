"""The default event store: one SQLite file.

Writes go through one writer task that group-commits on its own aiosqlite
connection (`_writer.py`); reads go through a second aiosqlite
connection, one hop per page, decoded on the event loop (`_rows.py`).
The event loop never blocks on SQLite. The file is in WAL mode, so readers (in
this process or another) never block the writer and always see a consistent
prefix of the log.

Notes (do not fix without reading this):
1. Events are encoded and checked in `append` itself, on the caller's task,
   before anything is queued: a bad event raises there and nothing of its
   append is written, and the writer only ever sees valid rows.
2. A subscription wakes up on this store's own commits at once, and polls
   every `poll_interval` seconds for appends made by other processes (SQLite
   has no cross-process notification).
3. SQLite through aiosqlite, and only its public API. Each statement is a hop
   to the connection's thread and back (~30 us on a quiet 2-core machine), so
   the store keeps round trips few: one per group commit of up to 64 events,
   two for a larger group however many appends it holds, one per page read;
   see `_writer.py` note 1 and `_rows.py` note 2.
4. A store belongs to the event loop that opened it: its writer task and its
   connections' futures live on that loop.
5. Opened with `readonly=True`, the store has no writer at all: the reader
   connection opens the file with `mode=ro`, the file must exist and be a
   fleet log, and every write raises `StoreUnavailable`. The projections'
   checkpoints are then read but never written.
6. `iter_all` fetches the next page while the caller consumes the current one:
   SQLite releases the GIL while it steps, so the fetch overlaps the decoding.
7. Pages are sized by bytes as well as by count: `iter_all` and `subscribe`
   take at most `_PAGE` events (or `page`), fewer when the previous page's
   data averaged more than `_PAGE_CHARS / _PAGE` characters an event. A page
   of a thousand events of 100 KB would otherwise be 100 MB decoded at once,
   in each of the server's subscribers (projections, SSE, runtime) as it
   catches up after a large import.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import aiosqlite

from .._decoding import Row
from .._encoding import DEFAULT_MAX_EVENT_BYTES, check_append, check_limit, encode_batch
from .._envelope import ANY, ExpectedVersion, NewEvent, RecordedEvent
from .._store import EventFilter, ImportedEvent
from ..errors import LogNotFound, StoreClosed, StoreError, StoreUnavailable
from ._checkpoints import SQLiteCheckpointStore
from ._import import insert_run
from ._leases import SQLiteLeaseStore
from ._rows import SELECT_COLUMNS, PageReader, select_events
from ._writer import GroupWriter, Job, PendingAppend

__all__ = ["SQLiteEventStore"]

logger = logging.getLogger(__name__)

_PAGE = 1_000
_PAGE_CHARS = 2 * 1024 * 1024  # note 7
_FIRST_PAGE = 100  # a page of unknown event sizes (note 7)


def _next_page(count: int, chars: int, most: int, previous: int) -> int:
    """The next page's size after a page of `count` events holding `chars` (note 7).

    An empty page says nothing of the sizes to come: the size stays.
    """
    if count == 0:
        return previous
    if chars == 0:
        return most
    return max(1, min(most, _PAGE_CHARS * count // chars))


class SQLiteEventStore:
    """An `EventStore` in one SQLite file. Use as `async with SQLiteEventStore(path) as store`.

    Args:
        path: the log file; created (with its folder) if missing, unless `readonly`.
        readonly: open an existing log for reading only (note 5).
        max_event_bytes: the largest encoded data of one event; larger raises
            `EventTooLarge` and writes nothing.
        poll_interval: how often (seconds) an idle subscription looks for
            appends made by other processes.
        lock_timeout: how long (seconds) an append waits for another
            process's write transaction before it fails with
            `StoreUnavailable` (nothing written; the lock ends, so agents wait).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        readonly: bool = False,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        poll_interval: float = 0.2,
        lock_timeout: float = 10.0,
    ) -> None:
        if max_event_bytes < 1:
            raise ValueError(f"max_event_bytes must be positive, got {max_event_bytes}")
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be positive, got {poll_interval}")
        if lock_timeout < 0:
            raise ValueError(f"lock_timeout must not be negative, got {lock_timeout}")
        self.path = Path(path)
        self.readonly = readonly
        self.max_event_bytes = max_event_bytes
        self.poll_interval = poll_interval
        self.lock_timeout = lock_timeout
        self._writer: GroupWriter | None = None
        self._reader: PageReader | None = None
        self._appended = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state = "new"
        self._checkpoints = SQLiteCheckpointStore(self._connections, readonly=readonly)
        self._leases = SQLiteLeaseStore(self._connections, readonly=readonly)

    def __repr__(self) -> str:
        mode = " read-only" if self.readonly else ""
        return f"<SQLiteEventStore {str(self.path)!r}{mode} {self._state}>"

    # -- lifecycle ----------------------------------------------------------

    async def open(self) -> Self:
        """Open (creating if needed) the log file.

        Raises `NotADatabase` if the file is not a fleet log, `LogNotFound` if
        it is missing and `readonly`, `StoreUnavailable` if it or its folder
        cannot be written (and not `readonly`), `StoreError` if it cannot be
        opened otherwise or the store was opened before.
        """
        if self._state != "new":
            raise StoreError(f"this store was opened before (it is {self._state})")
        self._state = "opening"
        busy_timeout_ms = round(self.lock_timeout * 1000)
        try:
            self._loop = asyncio.get_running_loop()
            if self.readonly:
                if not await asyncio.to_thread(self.path.is_file):
                    raise LogNotFound(str(self.path))
            else:
                await asyncio.to_thread(_make_folder, self.path.parent)
                writer = GroupWriter(self.path, self._committed, busy_timeout_ms=busy_timeout_ms)
                await writer.start()
                self._writer = writer
            reader = PageReader(self.path, busy_timeout_ms=busy_timeout_ms, readonly=self.readonly)
            self._reader = reader
            await reader.open()
        except BaseException:
            await self._close_connections()
            self._state = "closed"
            raise
        self._state = "open"
        return self

    async def __aenter__(self) -> Self:
        if self._state == "new":
            await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Commit the appends already queued, then close. Safe to call twice."""
        if self._state in ("closing", "closed"):
            return
        self._state = "closing"
        try:
            await self._close_connections()
        finally:
            self._state = "closed"
            self._appended.set()  # wakes subscriptions so they see the store is closed

    async def _close_connections(self) -> None:
        writer, reader = self._writer, self._reader
        self._writer = self._reader = None
        try:
            if writer is not None:
                await writer.stop()
        finally:
            if reader is not None:
                await reader.aclose()

    @property
    def closed(self) -> bool:
        """True once `aclose()` has begun."""
        return self._state in ("closing", "closed")

    def _check_open(self) -> None:
        if self._state != "open":
            raise StoreClosed()

    def _connections(self) -> tuple[GroupWriter | None, PageReader]:
        """The open connections (for the checkpoint store). Raises `StoreClosed`."""
        self._check_open()
        assert self._reader is not None
        return self._writer, self._reader

    def _writing(self) -> GroupWriter:
        """The writer, after checking the store may write now. Raises `StoreClosed`,
        `StoreUnavailable` (read-only), `StoreError` (another event loop)."""
        self._check_open()
        if self._writer is None:
            raise StoreUnavailable("the log was opened read-only")
        if asyncio.get_running_loop() is not self._loop:
            raise StoreError("this store was opened on another event loop (note 4)")
        return self._writer

    @property
    def location(self) -> str:
        """The log file's path, as given."""
        return str(self.path)

    @property
    def checkpoints(self) -> SQLiteCheckpointStore:
        """The projections' checkpoints and snapshots, in this file."""
        return self._checkpoints

    @property
    def leases(self) -> SQLiteLeaseStore:
        """Who drives which agent and run, in this file (`events/_leases.py`)."""
        return self._leases

    def _committed(self) -> None:
        # Called on the event loop after each group commit.
        self._appended.set()
        self._appended = asyncio.Event()

    # -- writing ------------------------------------------------------------

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        *,
        expected_version: ExpectedVersion = ANY,
    ) -> list[RecordedEvent]:
        """Append `events` to `stream_id` atomically; durable when this returns.

        `expected_version` is `ANY`, `NO_STREAM` (the stream must not exist) or
        the stream's current version (0 for a new stream). Raises
        `VersionConflict` if it does not match, `EventTooLarge` or `InvalidEvent`
        for a bad event (before anything is queued), `StoreClosed` after
        `aclose()`; in every case nothing of this append is written. `events`
        is never mutated. Appending no events returns `[]` and checks nothing.
        """
        self._check_open()
        batch = check_append(stream_id, events, expected_version)
        if not batch:
            return []
        writer = self._writing()
        encoded = encode_batch(stream_id, batch, self.max_event_bytes)
        future: asyncio.Future[list[RecordedEvent]] = asyncio.get_running_loop().create_future()
        writer.submit(PendingAppend(stream_id, batch, encoded, expected_version, future))
        return await future

    async def import_run(self, run_id: str, events: Iterable[ImportedEvent]) -> int:
        """Write another log's run in one transaction after the head (`_import.py`).

        Returns the first new position; the others follow it. `events` is
        iterated once, in chunks, on worker threads (it may read a file).
        Raises `ImportConflict` when a stream of `events` exists already,
        `StoreClosed`, `StoreUnavailable`; in every case nothing is written.
        """
        writer = self._writing()
        batch = events

        async def run(conn: aiosqlite.Connection) -> int:
            return await insert_run(conn, run_id, batch)

        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        writer.submit(Job(run, "importing into", True, future))
        return await future

    # -- reading ------------------------------------------------------------

    async def head(self) -> int:
        """The last position in the log (0 when empty). Raises `StoreClosed`."""
        return int(await self._read().scalar("SELECT COALESCE(MAX(position), 0) FROM events"))

    async def stream_version(self, stream_id: str) -> int:
        """The last version of `stream_id` (0 when it does not exist). Raises `StoreClosed`."""
        return int(
            await self._read().scalar(
                "SELECT COALESCE(MAX(version), 0) FROM events WHERE stream_id = ?", (stream_id,)
            )
        )

    async def read_stream(
        self,
        stream_id: str,
        *,
        after_version: int = 0,
        limit: int | None = None,
        lenient: bool = False,
    ) -> list[RecordedEvent]:
        """Events of one stream in version order, after `after_version`.

        Raises `UnknownEventType` for a type this code does not know unless
        `lenient`, `StoreClosed` after `aclose()`, `ValueError` for a
        negative `limit`.
        """
        check_limit("limit", limit)
        return await self._read().events(
            f"SELECT {SELECT_COLUMNS} FROM events WHERE stream_id = ? AND version > ? "
            "ORDER BY version LIMIT ?",
            (stream_id, after_version, -1 if limit is None else limit),
            lenient=lenient,
        )

    async def read_all(
        self,
        *,
        after: int = 0,
        until: int | None = None,
        where: EventFilter | None = None,
        limit: int | None = None,
        lenient: bool = False,
    ) -> list[RecordedEvent]:
        """One page of the log in position order, `after < position <= until`.

        With `lenient=False` an unknown stored type raises `UnknownEventType`
        naming its position; with `lenient=True` it comes back as `UnknownEvent`.
        Raises `StoreClosed` after `aclose()`, `ValueError` for a negative `limit`.
        """
        check_limit("limit", limit)
        sql, params = select_events(after, until, where, limit, skip=True)
        return await self._read().events(sql, params, lenient=lenient)

    async def iter_all(
        self,
        *,
        after: int = 0,
        until: int | None = None,
        where: EventFilter | None = None,
        lenient: bool = False,
        page: int = _PAGE,
    ) -> AsyncIterator[RecordedEvent]:
        """Every matching event after `after` up to `until` (or the head), page by page.

        Raises `ValueError` if `page` is not positive.
        """
        check_limit("page", page)
        if page == 0:
            raise ValueError("page must be positive, got 0")
        reader = self._read()

        def fetch(position: int, limit: int) -> asyncio.Future[list[Row]]:
            return asyncio.ensure_future(
                reader.fetch(*select_events(position, until, where, limit))
            )

        limit = min(page, _FIRST_PAGE)
        ahead = fetch(after, limit)
        try:
            while True:
                rows = await ahead
                more = len(rows) == limit and (until is None or rows[-1][0] < until)
                if more:
                    # The next page is fetched on the reader's thread while this
                    # one decodes and its events are consumed (note 6), sized by
                    # this one's bytes (note 7).
                    limit = _next_page(len(rows), sum(len(row[5]) for row in rows), page, limit)
                    ahead = fetch(rows[-1][0], limit)
                for event in reader.decode(rows, lenient=lenient):
                    yield event
                if not more:
                    return
        finally:
            if not ahead.done():
                ahead.cancel()
            elif not ahead.cancelled():
                ahead.exception()  # a page nobody asked for: its error is not news

    async def subscribe(
        self, *, after: int = 0, where: EventFilter | None = None, lenient: bool = True
    ) -> AsyncIterator[RecordedEvent]:
        """Catch up from `after`, then follow new appends (from any process).

        The seam is exact: each page is read strictly after the last position
        seen, so nothing is skipped or repeated. Unknown types come back as
        `UnknownEvent` unless `lenient=False`. Ends when the store closes.
        Raises `StoreClosed` if the store is closed when iteration starts.
        """
        self._check_open()
        position = after
        limit = _FIRST_PAGE
        while not self.closed:
            # Take the wake-up event before reading, so an append that lands
            # between the read and the wait still wakes us.
            appended = self._appended
            sql, params = select_events(position, None, where, limit)
            try:
                page, chars = await self._read().sized_events(sql, params, lenient=lenient)
            except StoreClosed:
                return
            for event in page:
                position = event.position
                yield event
            full = len(page) == limit
            limit = _next_page(len(page), chars, _PAGE, limit)
            del page
            if full:
                continue
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            # that arrives as the wait ends, and the subscriber would never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await appended.wait()

    def _read(self) -> PageReader:
        self._check_open()
        assert self._reader is not None
        return self._reader


def _make_folder(folder: Path) -> None:
    """Create the log's folder; a folder that cannot be made is `StoreUnavailable`."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        reason = "read-only" if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM) else "unusable"
        raise StoreUnavailable(
            f"cannot create the folder {folder} for the log ({reason}: {e.strerror})"
        ) from e
