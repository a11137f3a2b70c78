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
   to the connection's thread and back (~45 us here), so the store keeps hops
   few: four to six per group commit however many appends it holds, one per
   page read; see `_writer.py` note 1 and `_rows.py` note 2.
4. A store belongs to the event loop that opened it: its writer task and its
   connections' futures live on that loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from pydantic_core import PydanticSerializationError

from .._catalogue import EVENT_TYPES, EventModel
from .._envelope import ANY, NO_STREAM, ExpectedVersion, Meta, NewEvent, RecordedEvent
from .._store import EventFilter
from ..errors import EventTooLarge, InvalidEvent, StoreClosed, StoreError
from ._rows import SELECT_COLUMNS, PageReader, gc_paused, meta_params, select_events
from ._writer import GroupWriter, PendingAppend

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "SQLiteEventStore"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_EVENT_BYTES = 1024 * 1024
MAX_STREAM_ID_LENGTH = 200
_PAGE = 1_000

Encoded = tuple[list[tuple[Any, ...]], list[tuple[int, str, str]]]

# The event classes that may be appended: their stored type, schema and JSON
# serializer (the serializer itself: `model_dump_json` adds ~0.4 us of argument
# handling per call, a third of the cost of encoding an event).
_WRITABLE: dict[type[EventModel], tuple[str, int, Callable[[Any], bytes]]] = {
    cls: (name, cls.SCHEMA_VERSION, cls.__pydantic_serializer__.to_json)
    for name, cls in EVENT_TYPES.items()
}


class SQLiteEventStore:
    """An `EventStore` in one SQLite file. Use as `async with SQLiteEventStore(path) as store`.

    Args:
        path: the log file; created (with its folder) if missing.
        max_event_bytes: the largest encoded data of one event; larger raises
            `EventTooLarge` and writes nothing.
        poll_interval: how often (seconds) an idle subscription looks for
            appends made by other processes.
        lock_timeout: how long (seconds) an append waits for another
            process's write transaction before it fails with `StoreError`
            (nothing written).
    """

    def __init__(
        self,
        path: str | Path,
        *,
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
        self.max_event_bytes = max_event_bytes
        self.poll_interval = poll_interval
        self.lock_timeout = lock_timeout
        self._writer: GroupWriter | None = None
        self._reader: PageReader | None = None
        self._appended = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state = "new"

    def __repr__(self) -> str:
        return f"<SQLiteEventStore {str(self.path)!r} {self._state}>"

    # -- lifecycle ----------------------------------------------------------

    async def open(self) -> Self:
        """Open (creating if needed) the log file.

        Raises `NotADatabase` if the file is not a fleet log, `StoreError` if it
        cannot be opened, and `StoreError` if the store was opened before.
        """
        if self._state != "new":
            raise StoreError(f"this store was opened before (it is {self._state})")
        self._state = "opening"
        try:
            await asyncio.to_thread(self.path.parent.mkdir, parents=True, exist_ok=True)
            self._loop = asyncio.get_running_loop()
            writer = GroupWriter(
                self.path, self._committed, busy_timeout_ms=round(self.lock_timeout * 1000)
            )
            await writer.start()
            self._writer = writer
            reader = PageReader(self.path, busy_timeout_ms=round(self.lock_timeout * 1000))
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
        if type(stream_id) is not str or not 0 < len(stream_id) <= MAX_STREAM_ID_LENGTH:
            raise InvalidEvent(
                f"stream_id must be a string of 1 to {MAX_STREAM_ID_LENGTH} characters, "
                f"got {stream_id!r}"
            )
        if isinstance(events, NewEvent) or not isinstance(events, Sequence):
            raise InvalidEvent(
                f"events must be a sequence of NewEvent, got {type(events).__name__}"
            )
        if not (
            expected_version is ANY
            or expected_version is NO_STREAM
            or (type(expected_version) is int and expected_version >= 0)
        ):
            raise InvalidEvent(
                f"expected_version must be ANY, NO_STREAM or an int >= 0, got {expected_version!r}"
            )
        batch = tuple(events)
        if not batch:
            return []
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            raise StoreError("this store was opened on another event loop (note 4)")
        params, segments = self._encode(stream_id, batch)
        assert self._writer is not None
        future: asyncio.Future[list[RecordedEvent]] = loop.create_future()
        self._writer.submit(
            PendingAppend(stream_id, batch, params, segments, expected_version, future)
        )
        return await future

    def _encode(self, stream_id: str, batch: tuple[NewEvent, ...]) -> Encoded:
        if len(batch) < 64:
            return self._encode_all(stream_id, batch)
        with gc_paused():  # many new objects, no await (_rows.py, note 4)
            return self._encode_all(stream_id, batch)

    def _encode_all(self, stream_id: str, batch: tuple[NewEvent, ...]) -> Encoded:
        """Each event's row parameters, and where its run and agent ids change."""
        limit = self.max_event_bytes
        # A str of n characters is at most 4n UTF-8 bytes: most events skip the encode.
        safe_chars = limit // 4
        params: list[tuple[Any, ...]] = []
        segments: list[tuple[int, str, str]] = []
        last_meta: Meta | None = None
        stored_meta: tuple[Any, ...] = ()
        segment_run = segment_agent = ""
        for index, event in enumerate(batch):
            if type(event) is not NewEvent:
                raise InvalidEvent(f"events must be NewEvent instances, got {type(event).__name__}")
            data = event.data
            kind = _WRITABLE.get(type(data))
            if kind is None:
                raise InvalidEvent(
                    f"data must be an instance of one of the event types, got {type(data).__name__}"
                )
            name, schema, to_json = kind
            meta = event.meta
            if meta is not last_meta:
                stored_meta = meta_params(meta)
                last_meta = meta
                run, agent = stored_meta[0], stored_meta[1]
                if run != segment_run or agent != segment_agent or not segments:
                    segments.append((index, run, agent))
                    segment_run, segment_agent = run, agent
            try:
                text = to_json(data).decode()
            except PydanticSerializationError as e:
                raise InvalidEvent(f"{name} data is not JSON-serializable: {e}") from e
            if len(text) > safe_chars:
                size = len(text.encode())
                if size > limit:
                    raise EventTooLarge(stream_id, name, size, limit)
            params.append((name, schema, text, *stored_meta))
        return params, segments

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
        _check_limit("limit", limit)
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
        _check_limit("limit", limit)
        sql, params = select_events(after, until, where, limit)
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
        _check_limit("page", page)
        if page == 0:
            raise ValueError("page must be positive, got 0")
        position = after
        while True:
            batch = await self.read_all(
                after=position, until=until, where=where, limit=page, lenient=lenient
            )
            for event in batch:
                yield event
            if len(batch) < page:
                return
            position = batch[-1].position

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
        while not self.closed:
            # Take the wake-up event before reading, so an append that lands
            # between the read and the wait still wakes us.
            appended = self._appended
            sql, params = select_events(position, None, where, _PAGE)
            try:
                page = await self._read().events(sql, params, lenient=lenient)
            except StoreClosed:
                return
            for event in page:
                position = event.position
                yield event
            if len(page) == _PAGE:
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


def _check_limit(name: str, value: int | None) -> None:
    if value is not None and (type(value) is not int or value < 0):
        raise ValueError(f"{name} must be an int >= 0 or None, got {value!r}")
