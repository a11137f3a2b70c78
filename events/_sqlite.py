"""The default event store: one SQLite file through aiosqlite.

Design notes (do not fix without reading this):
1. One writer task owns the write connection. Concurrent `append` calls queue
   up while a transaction is in flight and the next transaction takes all of
   them at once (group commit): many appends, one fsync. Each append stays
   atomic: its version check and its rows are all-or-nothing within the group.
2. Positions are assigned by us as `max(position) + 1 ...` inside a
   `BEGIN IMMEDIATE` transaction, which holds SQLite's write lock, so two
   processes appending to one file never lose or duplicate a position, and a
   reader never sees position N+1 committed without N.
3. WAL with `synchronous=FULL`: the WAL is fsynced at every commit, so an event
   is durable when `append` returns.
4. Triggers refuse UPDATE and DELETE on `events`: the log is append-only even
   against a careless hand with the sqlite3 shell.
5. `recorded_at` is stored as integer microseconds since the epoch (UTC):
   cheaper to decode than ISO text, and exact.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiosqlite
from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from ._catalogue import EVENT_TYPES, EventModel, UnknownEvent
from ._envelope import ANY, NO_STREAM, ExpectedVersion, Meta, NewEvent, RecordedEvent
from ._store import EventFilter
from ._upcasting import upcast
from .errors import (
    EventTooLarge,
    InvalidEvent,
    NotADatabase,
    StoreClosed,
    StoreError,
    UnknownEventType,
    VersionConflict,
)

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "SQLiteEventStore"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_EVENT_BYTES = 1024 * 1024
_APPLICATION_ID = 0x666C7431  # "flt1": marks a file as a fleet log
_MAX_GROUP_ROWS = 10_000
_PAGE = 1_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    position       INTEGER PRIMARY KEY,
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    type           TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    data           TEXT    NOT NULL,
    run_id         TEXT,
    agent_id       TEXT,
    parent_id      TEXT,
    causation_id   INTEGER,
    correlation_id TEXT,
    source         TEXT    NOT NULL,
    recorded_at    INTEGER NOT NULL,
    UNIQUE (stream_id, version)
);
CREATE INDEX IF NOT EXISTS events_by_run ON events (run_id, position) WHERE run_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_by_agent ON events (agent_id, position)
    WHERE agent_id IS NOT NULL;
CREATE TRIGGER IF NOT EXISTS events_are_immutable BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are immutable'); END;
CREATE TRIGGER IF NOT EXISTS events_are_never_deleted BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are never deleted'); END;
"""

_COLUMNS = (
    "position, stream_id, version, type, schema_version, data, run_id, agent_id, "
    "parent_id, causation_id, correlation_id, source, recorded_at"
)
_INSERT = f"INSERT INTO events ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"

Row = tuple[Any, ...]


@dataclass(slots=True)
class _PendingAppend:
    stream_id: str
    events: Sequence[NewEvent]
    encoded: list[str]
    expected_version: ExpectedVersion
    future: asyncio.Future[list[RecordedEvent]] = field(repr=False)


class SQLiteEventStore:
    """An `EventStore` in one SQLite file. Use as `async with SQLiteEventStore(path) as store`."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        poll_interval: float = 0.2,
    ) -> None:
        self.path = Path(path)
        self.max_event_bytes = max_event_bytes
        # How often an idle subscription looks for appends made by other processes.
        self.poll_interval = poll_interval
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._queue: asyncio.Queue[_PendingAppend | None] = asyncio.Queue()
        self._writer_task: asyncio.Task[None] | None = None
        self._appended = asyncio.Event()
        self._state: str = "new"

    # -- lifecycle ----------------------------------------------------------

    async def open(self) -> Self:
        """Open (creating if needed) the log file. Raises `NotADatabase`."""
        if self._state != "new":
            raise StoreError(f"store is already {self._state}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._writer = await aiosqlite.connect(self.path, isolation_level=None)
            await self._init_schema(self._writer)
            self._reader = await aiosqlite.connect(self.path, isolation_level=None)
            await self._reader.execute("PRAGMA busy_timeout = 10000")
            await self._reader.execute("PRAGMA query_only = 1")
        except sqlite3.DatabaseError as e:
            await self._close_connections()
            if "not a database" in str(e) or "file is encrypted" in str(e):
                raise NotADatabase(str(self.path)) from e
            raise StoreError(f"cannot open {self.path}: {e}") from e
        self._writer_task = asyncio.create_task(self._write_loop(), name="fleet-store-writer")
        self._state = "open"
        return self

    async def _init_schema(self, conn: aiosqlite.Connection) -> None:
        await conn.execute("PRAGMA busy_timeout = 10000")
        (app_id,) = await _fetchone(conn, "PRAGMA application_id")
        tables = await _fetchall(conn, "SELECT name FROM sqlite_master WHERE type = 'table'")
        if app_id not in (0, _APPLICATION_ID) or (app_id == 0 and tables):
            raise NotADatabase(str(self.path))
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = FULL")
        if app_id == 0:
            await conn.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
        await conn.executescript(_SCHEMA)

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
        """Finish queued appends, then close. Safe to call twice."""
        if self._state in ("closing", "closed"):
            return
        was_open = self._state == "open"
        self._state = "closing"
        if was_open and self._writer_task is not None:
            await self._queue.put(None)
            await self._writer_task
        self._appended.set()  # wakes subscriptions so they see the store is closed
        await self._close_connections()
        self._state = "closed"

    async def _close_connections(self) -> None:
        for conn in (self._writer, self._reader):
            if conn is not None:
                await conn.close()
        self._writer = self._reader = None

    def _check_open(self) -> None:
        if self._state != "open":
            raise StoreClosed()

    @property
    def closed(self) -> bool:
        return self._state in ("closing", "closed")

    # -- writing ------------------------------------------------------------

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        *,
        expected_version: ExpectedVersion = ANY,
    ) -> list[RecordedEvent]:
        """Append `events` to `stream_id` atomically; durable when this returns.

        Raises `VersionConflict` if `expected_version` does not match (nothing is
        written), `EventTooLarge` or `InvalidEvent` before anything is queued,
        and `StoreClosed` after `aclose()`. `events` is never mutated.
        """
        self._check_open()
        if not stream_id or len(stream_id) > 200:
            raise InvalidEvent(f"stream_id must be 1 to 200 characters, got {stream_id!r}")
        if not events:
            return []
        if not (
            expected_version is ANY
            or expected_version is NO_STREAM
            or (isinstance(expected_version, int) and expected_version >= 0)
        ):
            raise InvalidEvent(f"expected_version must be ANY, NO_STREAM or >= 0, got {expected_version!r}")
        encoded = [self._encode(stream_id, event) for event in events]
        future: asyncio.Future[list[RecordedEvent]] = asyncio.get_running_loop().create_future()
        await self._queue.put(_PendingAppend(stream_id, events, encoded, expected_version, future))
        return await future

    def _encode(self, stream_id: str, event: NewEvent) -> str:
        data = event.data
        if not isinstance(data, EventModel) or isinstance(data, UnknownEvent):
            raise InvalidEvent(f"data must be one of the event types, got {type(data).__name__}")
        if EVENT_TYPES.get(data.type) is not type(data):
            raise InvalidEvent(f"{data.type!r} is not a registered event type")
        try:
            text = data.model_dump_json()
        except PydanticSerializationError as e:
            raise InvalidEvent(f"{data.type} data is not JSON-serializable: {e}") from e
        size = len(text.encode())
        if size > self.max_event_bytes:
            raise EventTooLarge(stream_id, data.type, size, self.max_event_bytes)
        return text

    async def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            group = [first]
            rows = len(first.events)
            while rows < _MAX_GROUP_ROWS and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stopping = True
                    break
                group.append(item)
                rows += len(item.events)
            await self._commit_group(group)
        # Anything queued behind the sentinel (a race with aclose) is refused.
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None and not item.future.done():
                item.future.set_exception(StoreClosed())

    async def _commit_group(self, group: list[_PendingAppend]) -> None:
        assert self._writer is not None
        conn = self._writer
        try:
            await conn.execute("BEGIN IMMEDIATE")
            try:
                results = await self._insert_group(conn, group)
                await conn.execute("COMMIT")
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
        except Exception as e:
            logger.exception("append group of %d failed", len(group))
            error = e if isinstance(e, StoreError) else StoreError(f"append failed: {e}")
            for item in group:
                if not item.future.done():
                    item.future.set_exception(error)
            return
        for item, result in zip(group, results, strict=True):
            if item.future.done():  # the caller was cancelled; its events are written
                continue
            if isinstance(result, Exception):
                item.future.set_exception(result)
            else:
                item.future.set_result(result)
        self._appended.set()
        self._appended = asyncio.Event()

    async def _insert_group(
        self, conn: aiosqlite.Connection, group: list[_PendingAppend]
    ) -> list[list[RecordedEvent] | Exception]:
        (head,) = await _fetchone(conn, "SELECT COALESCE(MAX(position), 0) FROM events")
        streams = sorted({item.stream_id for item in group})
        marks = ",".join("?" * len(streams))
        versions: dict[str, int] = dict(
            await _fetchall(
                conn,
                f"SELECT stream_id, MAX(version) FROM events WHERE stream_id IN ({marks}) "
                "GROUP BY stream_id",
                streams,
            )
        )
        now_us = time.time_ns() // 1000
        recorded_at = datetime.fromtimestamp(now_us / 1_000_000, UTC)
        rows: list[Row] = []
        results: list[list[RecordedEvent] | Exception] = []
        for item in group:
            actual = versions.get(item.stream_id, 0)
            expected = item.expected_version
            if (expected is NO_STREAM and actual != 0) or (
                isinstance(expected, int) and expected != actual
            ):
                results.append(VersionConflict(item.stream_id, expected, actual))
                continue
            recorded: list[RecordedEvent] = []
            for event, text in zip(item.events, item.encoded, strict=True):
                head += 1
                actual += 1
                m = event.meta
                rows.append(
                    (
                        head,
                        item.stream_id,
                        actual,
                        event.data.type,
                        type(event.data).SCHEMA_VERSION,
                        text,
                        m.run_id,
                        m.agent_id,
                        m.parent_id,
                        m.causation_id,
                        m.correlation_id,
                        m.source,
                        now_us,
                    )
                )
                recorded.append(
                    RecordedEvent(head, item.stream_id, actual, event.data, m, recorded_at)
                )
            versions[item.stream_id] = actual
            results.append(recorded)
        if rows:
            try:
                await conn.executemany(_INSERT, rows)
            except sqlite3.IntegrityError as e:
                raise StoreError(f"log integrity check failed: {e}") from e
        return results

    # -- reading ------------------------------------------------------------

    async def head(self) -> int:
        """The last position in the log (0 when empty)."""
        (head,) = await _fetchone(self._read_conn(), "SELECT COALESCE(MAX(position), 0) FROM events")
        return int(head)

    async def stream_version(self, stream_id: str) -> int:
        """The last version of `stream_id` (0 when it does not exist)."""
        (version,) = await _fetchone(
            self._read_conn(),
            "SELECT COALESCE(MAX(version), 0) FROM events WHERE stream_id = ?",
            (stream_id,),
        )
        return int(version)

    async def read_stream(
        self, stream_id: str, *, after_version: int = 0, limit: int | None = None
    ) -> list[RecordedEvent]:
        """Events of one stream in version order, after `after_version`."""
        rows = await _fetchall(
            self._read_conn(),
            f"SELECT {_COLUMNS} FROM events WHERE stream_id = ? AND version > ? "
            "ORDER BY version LIMIT ?",
            (stream_id, after_version, -1 if limit is None else limit),
        )
        return [_decode(row, lenient=False) for row in rows]

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
        """
        sql, params = _select(after, until, where, limit)
        rows = await _fetchall(self._read_conn(), sql, params)
        return [_decode(row, lenient=lenient) for row in rows]

    async def iter_all(
        self,
        *,
        after: int = 0,
        until: int | None = None,
        where: EventFilter | None = None,
        lenient: bool = False,
        page: int = _PAGE,
    ) -> AsyncIterator[RecordedEvent]:
        """Every matching event from `after` to `until` (or the head), page by page."""
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
        seen, so nothing is skipped or repeated. Ends when the store closes.
        """
        self._check_open()
        position = after
        while not self.closed:
            # Take the wake-up event before reading, so an append that lands
            # between the read and the wait still wakes us.
            appended = self._appended
            sql, params = _select(position, None, where, _PAGE)
            try:
                rows = await _fetchall(self._read_conn(), sql, params)
            except StoreClosed:
                return
            for row in rows:
                event = _decode(row, lenient=lenient)
                position = event.position
                yield event
            if len(rows) == _PAGE:
                continue
            try:
                await asyncio.wait_for(appended.wait(), self.poll_interval)
            except TimeoutError:
                pass

    def _read_conn(self) -> aiosqlite.Connection:
        self._check_open()
        assert self._reader is not None
        return self._reader


def _select(
    after: int, until: int | None, where: EventFilter | None, limit: int | None
) -> tuple[str, list[Any]]:
    clauses = ["position > ?"]
    params: list[Any] = [after]
    if until is not None:
        clauses.append("position <= ?")
        params.append(until)
    if where is not None:
        if where.stream_ids is not None:
            clauses.append(f"stream_id IN ({','.join('?' * len(where.stream_ids))})")
            params.extend(sorted(where.stream_ids))
        if where.types is not None:
            clauses.append(f"type IN ({','.join('?' * len(where.types))})")
            params.extend(sorted(where.types))
        if where.run_id is not None:
            clauses.append("run_id = ?")
            params.append(where.run_id)
        if where.agent_id is not None:
            clauses.append("agent_id = ?")
            params.append(where.agent_id)
    params.append(-1 if limit is None else limit)
    return (
        f"SELECT {_COLUMNS} FROM events WHERE {' AND '.join(clauses)} ORDER BY position LIMIT ?",
        params,
    )


def _decode(row: Row, *, lenient: bool) -> RecordedEvent:
    (position, stream_id, version, type_, schema, text, run_id, agent_id, parent_id,
     causation_id, correlation_id, source, recorded_us) = row  # fmt: skip
    cls = EVENT_TYPES.get(type_)
    data: Any
    if cls is None:
        if not lenient:
            raise UnknownEventType(position, type_)
        data = UnknownEvent(type=type_, raw=json.loads(text))
    else:
        try:
            if schema == cls.SCHEMA_VERSION:
                data = cls.model_validate_json(text)
            else:
                data = cls.model_validate(upcast(type_, schema, json.loads(text)))
        except ValidationError as e:
            raise StoreError(f"event at position {position} ({type_}) does not decode: {e}") from e
    return RecordedEvent(
        position,
        stream_id,
        version,
        data,
        Meta(run_id, agent_id, parent_id, causation_id, correlation_id, source),
        datetime.fromtimestamp(recorded_us / 1_000_000, UTC),
    )


async def _fetchone(conn: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()) -> Row:
    row = await _run(conn, sql, params, one=True)
    assert row is not None
    return row  # type: ignore[no-any-return]


async def _fetchall(
    conn: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()
) -> list[Row]:
    return await _run(conn, sql, params, one=False)  # type: ignore[no-any-return]


async def _run(conn: aiosqlite.Connection, sql: str, params: Sequence[Any], *, one: bool) -> Any:
    try:
        async with conn.execute(sql, params) as cursor:
            return await (cursor.fetchone() if one else cursor.fetchall())
    except ValueError as e:  # aiosqlite: "no active connection" after close
        raise StoreClosed() from e
