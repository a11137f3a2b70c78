"""The SQLite log's single writer: one task, one aiosqlite connection, group commit.

Notes (do not fix without reading this):
1. The writer is one asyncio task driving its own aiosqlite connection (the
   project's rule: SQLite through aiosqlite). aiosqlite sends every statement
   to its connection's thread and back (~30 us a round trip on a quiet
   2-core machine, several times that on a loaded one: each end wakes a
   sleeping thread), so a group is kept to the fewest round trips. The
   connection is in autocommit mode:
   - A group of at most `PENDING_ROWS` rows (every single append, most
     groups of concurrent ones) is one INSERT through the connection's
     `pending` view, whose triggers widen the spans (`_rows.py`, note 8). One
     statement is atomic and, outside `BEGIN`, a durable transaction of its
     own: one round trip, one fsync.
   - A group of one append of up to 100 events of one type and meta is one
     INSERT through the connection's `pending_append` view, whose trigger
     inserts them and widens their spans (`_rows.py`, note 9): one round
     trip too.
   - A larger group begins with a deferred `BEGIN` (it takes no lock, so it
     cannot fail on another process's lock as `BEGIN IMMEDIATE` can, which
     would leave the INSERTs after it to commit one by one; its first INSERT
     takes the write lock, waiting for it like any statement), sent together
     with its INSERTs and the spans' UPSERT without waiting for each
     (`_sent`: aiosqlite runs them in the order they were sent); then
     `COMMIT`, once every one of them succeeded (one may fail after another
     landed, so COMMIT is never sent ahead): two round trips. A group of one
     append binds its rows straight from its encoded columns, and the
     values its events share once a statement (`_rows.py`, note 6).
     (`SAVEPOINT` would do as well, but would nest silently in a
     transaction left open by mistake, and copies each page it changes to
     a sub-journal.) When another process holds the write lock past
     `busy_timeout`, each statement sent behind the first waits for it in
     turn: a large group fails after up to three times the store's
     `lock_timeout`, writing nothing.
   The single-statement paths rely on no transaction being left open on
   the connection: every failure sends `ROLLBACK` (`_rollback`).
   The rows are numbered on the event loop from the head and stream versions
   the writer remembers (note 7); the loop never blocks on SQLite.
   Tried and dropped: the legacy transaction mode with `COMMIT` queued
   behind the single INSERT (one round trip too, but two tasks and a gather
   a group: 13 loop callbacks an append against 5 now); larger INSERT
   statements for large appends (SQLite prepares a statement of n rows in
   time that grows faster than n: 2 ms for 100 rows, 58 ms for 500, 210 ms
   for 1,000, paid again for each new size); making the `RecordedEvent`s
   while SQLite inserts the rows (no gain measured: the loop holds the GIL
   while it makes them, and the connection's thread needs it between
   statements, so they barely overlap); `PRAGMA wal_autocheckpoint`
   below 1,000 pages (a new WAL's fsyncs cost twice as much while the file
   grows, but no setting gave a difference that stood out of the noise).
2. Group commit: appends queue up while a transaction is in flight, and the
   task takes all of them (up to `MAX_GROUP_ROWS` rows) into the next one:
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
5. Cancellation: an append whose caller was cancelled before the task took
   it into a transaction writes nothing; once taken, it lands whole. Either way
   the caller sees `CancelledError`, and no append is ever half-written. The
   writer task is not the caller's: cancelling an `append` never cancels it.
6. Every other write of the log (an imported run, the projections'
   checkpoints and snapshots) is a `Job` queued to the same task and run in
   a transaction of its own between groups, with the same cancellation rule:
   one connection writes the file, so no second writer in this process
   waits on SQLite's lock, and closing the store closes everything.
7. What the writer remembers: the head and the last version of the streams it
   appended to or read (`_Known`). A group whose streams are all known and
   whose expected versions all match is numbered from memory and inserted at
   once. Anything else (a stream not seen yet expected at a version above 0,
   a conflict to confirm, the first group after an import) first reads the
   head and the versions in the transaction (`BEGIN IMMEDIATE`, then one
   SELECT: two more round trips). Jobs that write no events (checkpoints, leases)
   leave the memory as it is. Memory
   can only be stale if another process appended meanwhile; then the first
   row's position is taken already, the INSERT fails on the primary key, and
   the group is rolled back and redone from a fresh read. Any append moves
   the head, so an INSERT that succeeds proves the versions were current. A
   stream the writer has not seen is taken to be new when the append allows
   that (`ANY`, `NO_STREAM`, 0): if it is not, its version 1 exists, the
   `(stream_id, version)` index refuses the INSERT, and the group is redone
   from a read the same way.
8. Once a group's callers are answered and the queue is empty, the writer
   yields once (`asyncio.sleep(0)`) before it looks again and waits for work. The answers
   wake the callers in the next turn of the event loop, and the writer's
   own step is queued behind them: an append they make then is taken in
   that same turn. Waiting at once would have the first of them wake the
   writer for the turn after: one more turn of the loop an append for a
   caller that appends again once answered (one appender: 4 turns an
   append instead of 5; 64: one a group less).
9. Opening a new file: several processes may do it at once (`fleet run` and
   `fleet serve` started together on a fresh `--db`). Each reads the mark
   (`application_id`) and the tables in one read transaction, switches to
   WAL (tried again while another holds the file: SQLite can answer
   SQLITE_BUSY there without waiting), then marks the file and makes the
   tables in one `BEGIN IMMEDIATE` transaction of `IF NOT EXISTS`: whoever
   comes second finds the work done and changes nothing.
10. A group is one transaction, so one append whose values SQLite cannot take
   (a lone UTF-16 surrogate in a meta id: no UTF-8 for it; an integer beyond
   64 bits) rolled back every other append of its group, each caller told
   "nothing was written" for another's mistake. Such a group is tried again
   one append at a time: only that append fails. Failures of the file
   (I/O, a full disk, a lock) are not retried: they fail every append alike.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from .._encoding import Encoded, resolved
from .._envelope import (
    ANY,
    NO_STREAM,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    new_appended,
)
from .._gc import gc_paused
from ..errors import NotADatabase, StoreClosed, StoreError, VersionConflict
from ._connection import connect
from ._errors import store_error, translated
from ._rows import (
    APPLICATION_ID,
    BACKFILL_SPANS,
    INSERT_ROWS,
    PENDING,
    PENDING_APPEND,
    PENDING_PARAMS,
    ROW_PARAMS,
    SCHEMA,
    UPSERT_SPAN,
    insert_append,
    insert_columns,
    insert_pending,
    insert_rows,
    insert_uniform,
)

__all__ = ["MAX_GROUP_ROWS", "GroupWriter", "Job", "PendingAppend"]

logger = logging.getLogger(__name__)

MAX_GROUP_ROWS = 10_000
# The most stream versions the writer remembers (note 7); past it, it forgets them all.
MAX_KNOWN_STREAMS = 100_000

# The largest group inserted in one statement through the `pending` view (note 1).
PENDING_ROWS = 64

Outcome = list[RecordedEvent] | BaseException
# Each append of a numbered group: its conflict, or (the append, its first position,
# its first version): its RecordedEvents are made apart from the rows (note 1).
_Placed = VersionConflict | tuple["PendingAppend", int, int]


@dataclass(slots=True)
class _Numbered:
    """A group numbered for its INSERT."""

    # How its rows go in: `PENDING_PARAMS` a row through the view (small groups),
    # `ROW_PARAMS` a row, or 0: one append's rows straight from its values.
    width: int
    flat: list[Any]  # with a width, every row's parameters, one row after the other
    placed: list[_Placed]
    spans: dict[tuple[str, str], list[int]]  # the first and last position of each id
    versions: dict[str, int]  # each stream's version after the group
    now_us: int
    head: int = 0  # the last position after the group
    conflicts: int = 0  # how many of `placed` are conflicts


@dataclass(slots=True)
class PendingAppend:
    """One `append` call waiting for the writer: its rows are encoded already."""

    stream_id: str
    events: tuple[NewEvent, ...]
    # Their stored values, column by column (`encode_batch`).
    encoded: Encoded
    expected_version: ExpectedVersion
    future: asyncio.Future[list[RecordedEvent]] = field(repr=False)


@dataclass(slots=True)
class _Known:
    """The head and stream versions as of the writer's last commit (note 7)."""

    head: int | None = None
    versions: dict[str, int] = field(default_factory=dict)

    def forget(self) -> None:
        self.head = None
        self.versions.clear()


# What binding an append's own values raises (note 10); sqlite3.Error subclasses but these
# two are the file's or the connection's.
_VALUE_ERRORS = (ValueError, OverflowError, TypeError, sqlite3.InterfaceError)


class _Stale(Exception):
    """The remembered head was taken by another process: redo the group from a read."""


@dataclass(slots=True)
class Job:
    """A write that is not an append, run by the writer in a transaction of its own (note 6).

    `run` gets the connection inside `BEGIN IMMEDIATE` and its result is the
    future's; `doing` names it in errors ("importing into"); `wakes` says
    whether subscriptions should look for new events once it commits.
    """

    run: Callable[[aiosqlite.Connection], Awaitable[Any]]
    doing: str
    wakes: bool
    future: asyncio.Future[Any] = field(repr=False)


class GroupWriter:
    """Owns the write connection and commits queued appends in groups from one task."""

    def __init__(
        self,
        path: Path,
        on_commit: Callable[[], None],
        *,
        busy_timeout_ms: int,
    ) -> None:
        self._path = path
        self._on_commit = on_commit
        self._busy_timeout_ms = busy_timeout_ms
        self._queue: deque[PendingAppend | Job] = deque()
        # What the writer awaits while it has nothing to do; `_ring` resolves it. (A bare
        # future: an `asyncio.Event` costs a future and its own bookkeeping each wait.)
        self._idle: asyncio.Future[None] | None = None
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._last_us = 0
        self._known = _Known()

    async def start(self) -> None:
        """Open the file and start the writer task. Raises `NotADatabase` or `StoreError`."""
        conn = await _connect(self._path, self._busy_timeout_ms)
        self._task = asyncio.get_running_loop().create_task(
            self._serve(conn), name="fleet-store-writer"
        )

    def submit(self, item: PendingAppend | Job) -> None:
        """Queue an append for the next group, or a job (call on the event loop)."""
        if self._stopping:
            item.future.set_exception(StoreClosed())
            return
        self._queue.append(item)
        self._ring()

    async def stop(self) -> None:
        """Commit what is queued, then close the connection and end the task.

        Cancelling the caller does not cancel the writer: it still commits what
        was queued and closes its connection.
        """
        self._stopping = True
        self._ring()
        task = self._task
        if task is not None:
            await asyncio.wait([task])  # unlike `await task`, never cancels the writer
            error = None if task.cancelled() else task.exception()
            if error is not None:
                raise error

    def _ring(self) -> None:
        """Wake the writer if it is waiting for work."""
        idle, self._idle = self._idle, None
        if idle is not None and not idle.done():
            idle.set_result(None)

    # -- the writer task -----------------------------------------------------

    async def _serve(self, conn: aiosqlite.Connection) -> None:
        queue = self._queue
        try:
            while True:
                if not queue:
                    if self._stopping:
                        break
                    self._idle = asyncio.get_running_loop().create_future()
                    await self._idle
                    continue
                group = self._take()
                if not group:
                    continue
                try:
                    if isinstance(group[0], Job):
                        outcomes = [await self._run_job(conn, group[0])]
                    else:
                        outcomes = await self._commit(conn, group)  # type: ignore[arg-type]  # a group of appends
                except asyncio.CancelledError:
                    # The writer itself was cancelled (the loop is shutting
                    # down): the group was rolled back unless its COMMIT had
                    # been sent, and SQLite keeps it all or nothing either way.
                    self._deliver(group, [StoreClosed() for _ in group])
                    raise
                self._deliver(group, outcomes)
                if not queue:
                    # The callers just answered run first, and what they append next
                    # is taken in the same turn of the loop (note 8).
                    await asyncio.sleep(0)
        finally:
            self._stopping = True
            leftovers = list(queue)
            queue.clear()
            if leftovers:
                self._deliver(leftovers, [StoreClosed() for _ in leftovers])
            await conn.close()

    def _take(self) -> list[PendingAppend | Job]:
        """The next group: queued appends whose callers are still waiting (note 5), up to
        the next job; or that job alone (note 6)."""
        queue = self._queue
        group: list[PendingAppend | Job] = []
        rows = 0
        while queue and rows < MAX_GROUP_ROWS:
            item = queue[0]
            if isinstance(item, Job):
                if group:
                    break
                queue.popleft()
                if item.future.done():
                    continue
                return [item]
            queue.popleft()
            if item.future.done():  # cancelled before it was taken: write nothing
                continue
            group.append(item)
            rows += len(item.events)
        return group

    async def _run_job(self, conn: aiosqlite.Connection, job: Job) -> Any:
        """Run `job` in its own transaction; its result, or the error that rolled it back."""
        if job.wakes:  # it writes events (an import): the head moves (note 7)
            self._known.forget()
        try:
            with translated(job.doing, self._path):
                await conn.execute("BEGIN IMMEDIATE")
                try:
                    result = await job.run(conn)
                    await conn.execute("COMMIT")
                except BaseException:
                    await _rollback(conn)
                    raise
        except Exception as e:
            logger.debug("%s %s rolled back: %s", job.doing, self._path, e)
            return e
        return result

    async def _commit(
        self, conn: aiosqlite.Connection, group: list[PendingAppend]
    ) -> list[Outcome]:
        known = self._known
        try:
            numbered = self._from_memory(group)
            if numbered is not None:
                try:
                    # The INSERT opens the transaction (note 1).
                    return await self._write(conn, numbered, opened=False)
                except _Stale:
                    known.forget()
            await conn.execute("BEGIN IMMEDIATE")
            try:
                numbered = await self._numbered(conn, group)
            except BaseException:
                await _rollback(conn)
                raise
            return await self._write(conn, numbered, opened=True)
        except Exception as e:
            known.forget()
            logger.debug("append group of %d rolled back: %s", len(group), e)
            if len(group) > 1 and isinstance(e, _VALUE_ERRORS):
                # One append's own values (note 10): each alone, so only it fails.
                return [outcome for item in group for outcome in await self._commit(conn, [item])]
            # Every caller of the group gets the error (an instance each); nothing was written.
            return [self._failure(e) for _ in group]
        except BaseException:
            known.forget()
            raise

    def _from_memory(self, group: list[PendingAppend]) -> _Numbered | None:
        """The group numbered from the remembered head and versions, or None if they do not
        cover it or an append would conflict (a conflict is confirmed by a read, note 7)."""
        known = self._known
        if known.head is None:
            return None
        versions: dict[str, int] = {}
        for item in group:
            stream = item.stream_id
            if stream in versions:
                continue
            version = known.versions.get(stream)
            if version is None:
                if item.expected_version not in (ANY, NO_STREAM, 0):
                    return None
                version = 0  # a new stream, or version 1 is taken and the INSERT fails
            versions[stream] = version
        numbered = self._numbering(group, versions, known.head)
        if numbered.conflicts:
            return None
        return numbered

    async def _numbered(self, conn: aiosqlite.Connection, group: list[PendingAppend]) -> _Numbered:
        """The group numbered from the head and versions read in the transaction."""
        streams = list(dict.fromkeys(item.stream_id for item in group))
        values = ",".join(["(?)"] * len(streams))
        found = list(
            await conn.execute_fetchall(
                f"WITH s(id) AS (VALUES {values}) SELECT id, "
                "(SELECT COALESCE(MAX(version), 0) FROM events WHERE stream_id = s.id), "
                "(SELECT COALESCE(MAX(position), 0) FROM events) FROM s",
                streams,
            )
        )
        versions = {stream: version for stream, version, _ in found}
        return self._numbering(group, versions, found[0][2])

    def _numbering(
        self, group: list[PendingAppend], versions: dict[str, int], head: int
    ) -> _Numbered:
        # recorded_at never goes backwards along positions, even if the clock does.
        now_us = self._last_us = max(time.time_ns() // 1000, self._last_us)
        rows = sum(len(item.events) for item in group)
        width = PENDING_PARAMS if rows <= PENDING_ROWS else 0 if len(group) == 1 else ROW_PARAMS
        numbered = _Numbered(width, [], [], {}, versions, now_us, head)
        if rows < 64:
            self._number(group, numbered)
        else:
            with gc_paused():  # a CPU-only loop over many new objects (_rows.py, note 4)
                self._number(group, numbered)
        return numbered

    async def _write(
        self, conn: aiosqlite.Connection, numbered: _Numbered, *, opened: bool
    ) -> list[Outcome]:
        """Insert the numbered rows and their spans and commit; the group's outcomes.

        `opened`: the transaction was begun already (and the numbering read in
        it). If not, the INSERT is a transaction of its own or opens one, and
        `_Stale` is raised (after the rollback) when its positions are taken
        (note 7). Every other error rolls back and is raised.
        """
        width, flat = numbered.width, numbered.flat
        placed = numbered.placed
        if numbered.conflicts:
            placed = [p for p in placed if type(p) is not VersionConflict]
        statement = _one_statement(numbered, placed) if placed else None
        try:
            if not placed:
                outcomes = self._outcomes(numbered)
                if opened:
                    await conn.execute("COMMIT")
            elif statement is not None:
                # One statement: atomic, so it needs no transaction of its own (note 1).
                await conn.execute(*statement)
                outcomes = self._outcomes(numbered)
                if opened:
                    await conn.execute("COMMIT")
            else:
                # A deferred BEGIN takes no lock: unlike `BEGIN IMMEDIATE` it cannot
                # fail on one and leave the INSERTs after it to commit one by one (note 1).
                sent = [] if opened else [_sent(conn.execute("BEGIN"))]
                if width:
                    sent += _insert_rows(conn, flat)
                else:
                    [(item, position, version)] = placed  # type: ignore[misc]
                    sent += _insert_numbered(conn, item, position, version, numbered.now_us)
                if numbered.spans:  # no statement for rows without run or agent ids
                    widened = [(*key, *span) for key, span in numbered.spans.items()]
                    sent.append(_sent(conn.executemany(UPSERT_SPAN, widened)))
                # All are waited for before the COMMIT: one may fail after another landed.
                for done in await asyncio.gather(*sent, return_exceptions=True):
                    if isinstance(done, BaseException):
                        raise done
                with gc_paused():  # many new objects, no await (_rows.py, note 4)
                    outcomes = self._outcomes(numbered)
                await conn.execute("COMMIT")
        except sqlite3.IntegrityError as e:
            await _rollback(conn)
            if opened:
                raise
            raise _Stale() from e
        except BaseException:
            await _rollback(conn)
            raise
        self._remember(numbered)
        return outcomes

    def _remember(self, numbered: _Numbered) -> None:
        """Keep the head and the group's stream versions after a commit (note 7)."""
        known = self._known
        known.head = numbered.head
        if len(known.versions) + len(numbered.versions) > MAX_KNOWN_STREAMS:
            known.versions.clear()
        known.versions.update(numbered.versions)

    @staticmethod
    def _number(group: list[PendingAppend], numbered: _Numbered) -> None:
        """Check each append's expected version and give its events positions and versions.

        Fills `numbered` with each append's place (or conflict), the rows (for
        a width), and the first and last position of each run and agent id;
        through the view, the row that ends an id's span carries its first
        position (`_rows.py`, note 8).
        """
        versions, spans, placed = numbered.versions, numbered.spans, numbered.placed
        width, flat, now_us = numbered.width, numbered.flat, numbered.now_us
        first = head = numbered.head
        extend = flat.extend
        tail = (0, 0) if width == PENDING_PARAMS else ()
        for item in group:
            stream = item.stream_id
            actual = versions[stream]
            expected = item.expected_version
            if expected is not ANY and (
                actual != 0 if expected is NO_STREAM else expected != actual
            ):
                placed.append(VersionConflict(stream, expected, actual))
                numbered.conflicts += 1
                continue
            encoded = item.encoded
            if encoded.relative:  # causes given as -k (`events._encoding`, note 5)
                encoded = resolved(encoded, head + 1)
            count = len(encoded.data)
            _widen(spans, encoded.segments, head + 1, head + count)
            placed.append((item, head + 1, actual + 1))
            if not width:
                head += count
                actual += count
            elif count == 1:  # most appends: no loop, no zip
                head += 1
                actual += 1
                data = encoded.data[0]
                extend((head, stream, actual, now_us, encoded.types[0], encoded.schemas[0], data))
                extend(encoded.metas[0])
                extend(tail)
            else:
                for type_, schema, data, meta in zip(
                    encoded.types, encoded.schemas, encoded.data, encoded.metas, strict=True
                ):
                    head += 1
                    actual += 1
                    extend((head, stream, actual, now_us, type_, schema, data, *meta, *tail))
            versions[stream] = actual
        numbered.head = head
        if width == PENDING_PARAMS:
            for (kind, _), (start, end) in spans.items():
                # The row at `end` has this id: it widens the span (_rows.py, note 8).
                column = ROW_PARAMS if kind == "run" else ROW_PARAMS + 1
                flat[(end - first - 1) * width + column] = start

    @staticmethod
    def _outcomes(numbered: _Numbered) -> list[Outcome]:
        """Each append's RecordedEvents, or its conflict."""
        recorded_at = datetime.fromtimestamp(numbered.now_us / 1_000_000, UTC)
        outcomes: list[Outcome] = []
        for placed in numbered.placed:
            if type(placed) is VersionConflict:
                outcomes.append(placed)
                continue
            item, position, version = placed  # type: ignore[misc]
            outcomes.append(
                new_appended(
                    position,
                    item.stream_id,
                    version,
                    item.events,
                    recorded_at,
                    relative=item.encoded.relative,
                )
            )
        return outcomes

    def _failure(self, error: Exception) -> StoreError:
        if isinstance(error, sqlite3.Error):
            return store_error(error, "appending to", self._path)
        failure = StoreError(f"append failed, nothing was written: {error}")
        failure.__cause__ = error
        return failure

    def _deliver(self, group: list[PendingAppend | Job], outcomes: list[Any]) -> None:
        for item, outcome in zip(group, outcomes, strict=True):
            if item.future.done():  # the caller was cancelled
                continue
            if isinstance(outcome, BaseException):
                item.future.set_exception(outcome)
            else:
                item.future.set_result(outcome)
        if not (group and isinstance(group[0], Job) and not group[0].wakes):
            self._on_commit()


def _widen(
    spans: dict[tuple[str, str], list[int]],
    segments: list[tuple[int, str, str]],
    first: int,
    last: int,
) -> None:
    """Widen `spans` by an append's events at positions `first..last`."""
    if len(segments) == 1:  # one run and agent id for the whole append (most appends)
        [(_, run, agent)] = segments
        # `setdefault` makes the span of a new id, or gives the one there to widen.
        if run:
            spans.setdefault(("run", run), [first, last])[1] = last
        if agent:
            spans.setdefault(("agent", agent), [first, last])[1] = last
        return
    ends = [start for start, _, _ in segments[1:]] + [last - first + 1]
    for (start, run, agent), end in zip(segments, ends, strict=True):
        for key in (("run", run), ("agent", agent)):
            if key[1]:
                spans.setdefault(key, [first + start, first + end - 1])[1] = first + end - 1


def _one_statement(numbered: _Numbered, placed: list[_Placed]) -> tuple[str, list[Any]] | None:
    """The group's INSERT and its parameters when it is one statement (note 1), else None."""
    if numbered.width == PENDING_PARAMS:
        return insert_pending(len(numbered.flat) // PENDING_PARAMS), numbered.flat
    if numbered.width or len(placed) != 1:
        return None
    [(item, position, version)] = placed  # type: ignore[misc]
    encoded = item.encoded
    count = len(encoded.data)
    if encoded.uniform is None or count > INSERT_ROWS:
        return None
    params = [position, item.stream_id, version, numbered.now_us, *_shared(encoded.uniform)]
    params.append(count)
    params += encoded.data
    return insert_append(count), params


def _shared(uniform: tuple[Any, ...]) -> list[Any]:
    """An append's type, schema and meta, bound once a statement: NULL as None, not ''
    (_rows.py, note 6)."""
    return [*uniform[:2], *[value or None for value in uniform[2:]]]


def _insert_rows(conn: aiosqlite.Connection, flat: list[Any]) -> list[asyncio.Future[Any]]:
    """Send the INSERTs of rows of `ROW_PARAMS` parameters each (_rows.py, note 6)."""
    sent = []
    rows = len(flat) // ROW_PARAMS
    full, rest = divmod(rows, INSERT_ROWS)
    chunk = INSERT_ROWS * ROW_PARAMS
    if full:
        chunks = [flat[at : at + chunk] for at in range(0, full * chunk, chunk)]
        sent.append(_sent(conn.executemany(insert_rows(INSERT_ROWS), chunks)))
    if rest:
        sent.append(_sent(conn.execute(insert_rows(rest), flat[full * chunk :])))
    return sent


def _insert_numbered(
    conn: aiosqlite.Connection, item: PendingAppend, position: int, version: int, now_us: int
) -> list[asyncio.Future[Any]]:
    """Send the INSERTs of one append's events, from its columns (_rows.py, note 6)."""
    encoded, stream = resolved(item.encoded, position), item.stream_id
    data, uniform = encoded.data, encoded.uniform
    columns: list[list[Any]] = []
    if uniform is not None:
        shared = _shared(uniform)
    else:
        columns = [encoded.types, encoded.schemas, data]
        columns += map(list, zip(*encoded.metas, strict=True))

    def params(at: int, end: int) -> list[Any]:
        chunk = [position + at, stream, version + at, now_us]
        if uniform is not None:
            chunk += shared
            chunk += data[at:end]
        else:
            for column in columns:
                chunk += column[at:end]
        return chunk

    insert = insert_columns if uniform is None else insert_uniform
    sent = []
    full, rest = divmod(len(data), INSERT_ROWS)
    if full:
        chunks = [params(at, at + INSERT_ROWS) for at in range(0, full * INSERT_ROWS, INSERT_ROWS)]
        sent.append(_sent(conn.executemany(insert(INSERT_ROWS), chunks)))
    if rest:
        done = full * INSERT_ROWS
        sent.append(_sent(conn.execute(insert(rest), params(done, done + rest))))
    return sent


def _sent(call: Awaitable[Any]) -> asyncio.Future[Any]:
    """A statement sent to the connection's thread without waiting for it (note 1).

    aiosqlite queues it when its task first runs, in the order of the calls.
    """
    return asyncio.ensure_future(call)


async def _rollback(conn: aiosqlite.Connection) -> None:
    # Always sent (reading `in_transaction` would race a statement still in
    # flight on the connection's thread); it runs after any such statement.
    try:
        await conn.execute("ROLLBACK")
    except (sqlite3.Error, ValueError):  # no transaction left (e.g. after an I/O error)
        # Nothing to translate: the error that made us roll back is the one reported.
        logger.debug("rollback after a failed transaction failed too", exc_info=True)


async def _connect(path: Path, busy_timeout_ms: int) -> aiosqlite.Connection:
    with translated("opening", path):
        # Autocommit: a statement outside `BEGIN IMMEDIATE` is a transaction of its own (note 1).
        # Up to 64 + 100 + 100 INSERTs of different sizes (`_rows.py`), and the rest: a
        # statement of 100 rows takes SQLite ~2 ms to prepare again.
        conn = await connect(path, isolation_level=None, cached_statements=512)
    try:
        with translated("opening", path):
            await conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
        await _init_schema(conn, path, busy_timeout_ms)
        with translated("opening", path):
            await conn.executescript(PENDING + PENDING_APPEND)
    except BaseException:
        await conn.close()
        raise
    return conn


async def _init_schema(conn: aiosqlite.Connection, path: Path, busy_timeout_ms: int) -> None:
    """Mark the file as a log, put it in WAL mode and make its tables (note 9).

    Several processes may open one new file at the same moment (`fleet run` and
    `fleet serve` started together): each step tolerates another having done it.
    """
    try:
        with translated("opening", path):
            # One read transaction, so the mark and the tables are seen as of one
            # moment: read apart, another process's schema could land between them
            # (tables without the mark, a fleet log taken for another database).
            await conn.execute("BEGIN")
            ((app_id,),) = await conn.execute_fetchall("PRAGMA application_id")
            tables = await conn.execute_fetchall(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
            )
            await conn.execute("COMMIT")
        if app_id not in (0, APPLICATION_ID) or (app_id == 0 and tables):
            raise NotADatabase(str(path))
        with translated("initialising", path):
            mode = await _switch_to_wal(conn, busy_timeout_ms)
            if mode != "wal":
                raise StoreError(f"cannot put {path} in WAL mode (it is in {mode} mode)")
            await conn.execute("PRAGMA synchronous = FULL")
            # One transaction, so a second process opening a new file at the same
            # time sees either nothing or the whole schema; `IF NOT EXISTS`
            # throughout, so the second to take the lock changes nothing. A log
            # from before `spans` existed gets them built from its rows (an upsert:
            # done twice, it builds the same spans).
            names = {name for (name,) in tables}
            backfill = BACKFILL_SPANS if "events" in names and "spans" not in names else ""
            await conn.executescript(
                f"BEGIN IMMEDIATE; PRAGMA application_id = {APPLICATION_ID};{SCHEMA} {backfill} "
                "COMMIT;"
            )
    except StoreError:
        if conn.in_transaction:
            await _rollback(conn)
        raise


async def _switch_to_wal(conn: aiosqlite.Connection, busy_timeout_ms: int) -> str:
    """`PRAGMA journal_mode = WAL`, tried again while another connection holds the file.

    Leaving rollback mode needs the file to itself, and SQLite may answer
    SQLITE_BUSY at once rather than call the busy handler (another process
    reading the new file, or switching it too): the switch is tried again for
    up to the lock timeout, as any other statement waits for a lock.
    """
    deadline = time.monotonic() + busy_timeout_ms / 1000
    pause = 0.005
    while True:
        try:
            ((mode,),) = await conn.execute_fetchall("PRAGMA journal_mode = WAL")
            return str(mode)
        except sqlite3.OperationalError as e:
            code = getattr(e, "sqlite_errorcode", 0) & 0xFF
            if code not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise
            if time.monotonic() + pause > deadline:
                raise
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.1)
