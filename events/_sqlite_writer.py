"""The SQLite log's single writer: one thread, one connection, group commit.

Notes (do not fix without reading this):
1. The writer is a dedicated thread with its own stdlib `sqlite3` connection,
   not an aiosqlite connection. aiosqlite sends every statement to its thread
   and back (one hop, ~45 us on the reference machine), and a group's
   transaction is BEGIN, a SELECT, an INSERT and a COMMIT: run as one function
   on one thread it costs one hop per group instead of four to nine, which is
   what lets a lone appender beat a synchronous library. The thread talks to
   the event loop only through `call_soon_threadsafe`; it never blocks it.
2. Group commit: appends queue up while a transaction is in flight, and the
   thread takes all of them (up to `MAX_GROUP_ROWS` rows) into the next one:
   many appends, one fsync. Each append stays atomic: its version check and its
   rows are all-or-nothing within the group, and a conflicting append is left
   out while the others of its group land.
3. Positions are assigned here as `max(position) + 1 ...` inside `BEGIN
   IMMEDIATE`, which holds SQLite's write lock: two processes appending to one
   file never lose or duplicate a position, and a reader never sees position
   N+1 committed without N. Stream versions are read under the same lock, in
   the same statement as the head, with one index seek per stream (a
   `GROUP BY` would scan the whole stream: 11 ms for a stream of 200,000).
4. WAL with `synchronous=FULL`: the WAL is fsynced at every commit, so an
   event is durable when `append` returns.
5. Cancellation: an append whose caller was cancelled before the thread took
   it into a transaction writes nothing; once taken, it lands whole. Either way
   the caller sees `CancelledError`, and no append is ever half-written.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Any

from ._envelope import ANY, NO_STREAM, ExpectedVersion, NewEvent, RecordedEvent, new_recorded
from ._sqlite_rows import (
    BACKFILL_SPANS,
    INSERT_ROWS,
    ROW_PARAMS,
    SCHEMA,
    UPSERT_SPAN,
    gc_paused,
    insert_rows,
)
from .errors import NotADatabase, StoreClosed, StoreError, VersionConflict

__all__ = ["APPLICATION_ID", "MAX_GROUP_ROWS", "GroupWriter", "PendingAppend"]

logger = logging.getLogger(__name__)

APPLICATION_ID = 0x666C7431  # "flt1": marks a file as a fleet log
MAX_GROUP_ROWS = 10_000

Outcome = list[RecordedEvent] | BaseException


@dataclass(slots=True)
class PendingAppend:
    """One `append` call waiting for the writer: its rows are encoded already."""

    stream_id: str
    events: tuple[NewEvent, ...]
    # Per event: (type, schema_version, data JSON, *meta params) in INSERT order.
    params: list[tuple[Any, ...]]
    # (index of the first event, run id, agent id) wherever those change ('' for none).
    segments: list[tuple[int, str, str]]
    expected_version: ExpectedVersion
    future: asyncio.Future[list[RecordedEvent]] = field(repr=False)


_STOP = None


class GroupWriter:
    """Owns the write connection on its own thread and commits appends in groups."""

    def __init__(
        self,
        path: Path,
        loop: asyncio.AbstractEventLoop,
        on_commit: Callable[[], None],
        *,
        busy_timeout_ms: int,
    ) -> None:
        self._path = path
        self._loop = loop
        self._on_commit = on_commit
        self._busy_timeout_ms = busy_timeout_ms
        self._queue: SimpleQueue[PendingAppend | None] = SimpleQueue()
        self._opened: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._stopped: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._last_us = 0
        # Daemon, and told to stop if the store is dropped unclosed, so a
        # forgotten store never keeps the interpreter from exiting.
        self._thread = threading.Thread(
            target=_run, args=(weakref.ref(self), self._queue), name="fleet-store-writer",
            daemon=True,
        )  # fmt: skip
        weakref.finalize(self, self._queue.put, _STOP)

    async def start(self) -> None:
        """Open the file on the writer thread. Raises `NotADatabase` or `StoreError`."""
        self._thread.start()
        await asyncio.wrap_future(self._opened)

    def submit(self, item: PendingAppend) -> None:
        """Queue an append for the next group (call on the event loop)."""
        self._queue.put(item)

    async def stop(self) -> None:
        """Commit what is queued, then close the connection and end the thread."""
        self._queue.put(_STOP)
        await asyncio.wrap_future(self._stopped)

    # -- on the writer thread ------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self._path, isolation_level=None, check_same_thread=False, cached_statements=256
            )
        except sqlite3.Error as e:
            raise StoreError(f"cannot open {self._path}: {e}") from e
        try:
            conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
            _init_schema(conn, self._path)
        except BaseException:
            conn.close()
            raise
        return conn

    def _commit(self, conn: sqlite3.Connection, group: list[PendingAppend]) -> list[Outcome]:
        live = [item for item in group if not item.future.cancelled()]
        if not live:
            return [asyncio.CancelledError() for _ in group]
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                outcomes = self._insert(conn, live)
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
        except Exception as e:
            # Every caller of the group gets the error; nothing was written.
            logger.debug("append group of %d rolled back: %s", len(live), e)
            return [_failure(e) for _ in group]
        by_item = dict(zip(map(id, live), outcomes, strict=True))
        return [by_item.get(id(item), asyncio.CancelledError()) for item in group]

    def _insert(self, conn: sqlite3.Connection, group: list[PendingAppend]) -> list[Outcome]:
        streams = list(dict.fromkeys(item.stream_id for item in group))
        values = ",".join(["(?)"] * len(streams))
        found = conn.execute(
            f"WITH s(id) AS (VALUES {values}) SELECT id, "
            "(SELECT COALESCE(MAX(version), 0) FROM events WHERE stream_id = s.id), "
            "(SELECT COALESCE(MAX(position), 0) FROM events) FROM s",
            streams,
        ).fetchall()
        versions = {stream: version for stream, version, _ in found}
        head = found[0][2]
        # recorded_at never goes backwards along positions, even if the clock does.
        now_us = self._last_us = max(time.time_ns() // 1000, self._last_us)
        flat: list[Any] = []  # every row's parameters, one after the other
        outcomes: list[Outcome] = []
        spans: dict[tuple[str, str], list[int]] = {}
        if len(group) == 1 and len(group[0].params) < 64:
            self._number(group, versions, head, now_us, flat, outcomes, spans)
        else:
            with gc_paused():  # a CPU-only loop over many new objects (_sqlite_rows.py, note 4)
                self._number(group, versions, head, now_us, flat, outcomes, spans)
        if flat:
            rows = len(flat) // ROW_PARAMS
            try:
                for first in range(0, rows, INSERT_ROWS):
                    count = min(INSERT_ROWS, rows - first)
                    start = first * ROW_PARAMS
                    conn.execute(insert_rows(count), flat[start : start + count * ROW_PARAMS])
            except sqlite3.IntegrityError as e:
                raise StoreError(f"log integrity check failed: {e}") from e
            conn.executemany(UPSERT_SPAN, [(*key, *span) for key, span in spans.items()])
        return outcomes

    @staticmethod
    def _number(
        group: list[PendingAppend],
        versions: dict[str, int],
        head: int,
        now_us: int,
        flat: list[Any],
        outcomes: list[Outcome],
        spans: dict[tuple[str, str], list[int]],
    ) -> None:
        """Check each append's expected version and give its events positions and versions.

        Fills `flat` with the rows, `outcomes` with each append's result and
        `spans` with the first and last position of each run and agent id.
        """
        recorded_at = datetime.fromtimestamp(now_us / 1_000_000, UTC)
        extend = flat.extend
        for item in group:
            stream = item.stream_id
            actual = versions[stream]
            expected = item.expected_version
            if expected is not ANY and (
                actual != 0 if expected is NO_STREAM else expected != actual
            ):
                outcomes.append(VersionConflict(stream, expected, actual))
                continue
            _widen(spans, item.segments, head + 1, head + len(item.events))
            recorded: list[RecordedEvent] = []
            for event, params in zip(item.events, item.params, strict=True):
                head += 1
                actual += 1
                extend((head, stream, actual, now_us, *params))
                recorded.append(
                    new_recorded(head, stream, actual, event.data, event.meta, recorded_at)
                )
            versions[stream] = actual
            outcomes.append(recorded)

    def _deliver(self, group: list[PendingAppend], outcomes: list[Outcome]) -> None:
        # On the event loop.
        for item, outcome in zip(group, outcomes, strict=True):
            if item.future.done():  # the caller was cancelled
                continue
            if isinstance(outcome, BaseException):
                item.future.set_exception(outcome)
            else:
                item.future.set_result(outcome)
        self._on_commit()

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            logger.debug("event loop closed; dropping a writer callback")


def _run(ref: weakref.ref[GroupWriter], queue: SimpleQueue[PendingAppend | None]) -> None:
    """The writer thread: open, then commit groups until told to stop."""
    writer = ref()
    if writer is None:
        return
    try:
        conn = writer._connect()
    except BaseException as e:
        writer._opened.set_exception(e)
        writer._stopped.set_result(None)
        return
    writer._opened.set_result(None)
    del writer  # hold no strong reference while waiting, so a dropped store can be collected
    try:
        _serve(ref, queue, conn)
    finally:
        conn.close()
        writer = ref()
        if writer is not None:
            writer._stopped.set_result(None)


def _serve(
    ref: weakref.ref[GroupWriter],
    queue: SimpleQueue[PendingAppend | None],
    conn: sqlite3.Connection,
) -> None:
    stopping = False
    while not stopping:
        first = queue.get()
        if first is _STOP:
            break
        group = [first]
        rows = len(first.events)
        while rows < MAX_GROUP_ROWS:
            try:
                item = queue.get_nowait()
            except Empty:
                break
            if item is _STOP:
                stopping = True
                break
            group.append(item)
            rows += len(item.events)
        writer = ref()
        if writer is None:
            return
        outcomes = writer._commit(conn, group)
        writer._post(writer._deliver, group, outcomes)
        del writer
    # Nothing can be queued behind the stop sentinel by the store itself (it
    # stops taking appends first); refuse anything that raced in regardless.
    leftovers: list[PendingAppend] = []
    while True:
        try:
            item = queue.get_nowait()
        except Empty:
            break
        if item is not _STOP:
            leftovers.append(item)
    writer = ref()
    if leftovers and writer is not None:
        writer._post(writer._deliver, leftovers, [StoreClosed() for _ in leftovers])


def _widen(
    spans: dict[tuple[str, str], list[int]],
    segments: list[tuple[int, str, str]],
    first: int,
    last: int,
) -> None:
    """Widen `spans` by an append's events at positions `first..last`."""
    ends = [start for start, _, _ in segments[1:]] + [last - first + 1]
    for (start, run, agent), end in zip(segments, ends, strict=True):
        for key in (("run", run), ("agent", agent)):
            if not key[1]:
                continue
            span = spans.get(key)
            if span is None:
                spans[key] = [first + start, first + end - 1]
            else:
                span[1] = first + end - 1


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:  # SQLite may have rolled back already (e.g. on an I/O error)
            logger.debug("rollback after a failed append group failed too", exc_info=True)


def _failure(error: Exception) -> StoreError:
    if isinstance(error, StoreError):
        failure = StoreError(str(error))
    else:
        failure = StoreError(f"append failed, nothing was written: {error}")
    failure.__cause__ = error
    return failure


def _init_schema(conn: sqlite3.Connection, path: Path) -> None:
    try:
        (app_id,) = conn.execute("PRAGMA application_id").fetchone()
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    except sqlite3.DatabaseError as e:
        if "not a database" in str(e) or "file is encrypted" in str(e):
            raise NotADatabase(str(path)) from e
        raise StoreError(f"cannot open {path}: {e}") from e
    if app_id not in (0, APPLICATION_ID) or (app_id == 0 and tables):
        raise NotADatabase(str(path))
    try:
        (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if mode != "wal":
            raise StoreError(f"cannot put {path} in WAL mode (it is in {mode} mode)")
        conn.execute("PRAGMA synchronous = FULL")
        # One transaction, so a second process opening a new file at the same
        # time sees either nothing or the whole schema. A log from before
        # `spans` existed gets them built from its rows.
        names = {name for (name,) in tables}
        backfill = BACKFILL_SPANS if "events" in names and "spans" not in names else ""
        conn.executescript(
            f"BEGIN IMMEDIATE; PRAGMA application_id = {APPLICATION_ID};{SCHEMA} {backfill} COMMIT;"
        )
    except sqlite3.Error as e:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise StoreError(f"cannot initialise {path}: {e}") from e
