"""The PostgreSQL log's writer: this process's appends, committed in groups.

Notes (do not fix without reading this):
1. One task per store takes the queued appends (a group) and commits them
   in one transaction, one statement, one round trip: the server-side
   function `append_group` (`_schema.py`) locks `log_head` (note 1 there),
   reads each stream's version, checks each append's expected version (an
   append that conflicts fails alone; the rest of its group lands), inserts
   the rows, moves the head and `pg_notify`s once; the statement commits.
   Writers on other machines wait for the lock, so the whole log is written
   one transaction at a time, in position order; group commit is what makes
   that fast (one lock, one round trip per statement, one WAL flush for
   every append queued meanwhile).
2. A caller cancelled before its append was taken writes nothing; one
   cancelled after lands whole (the writer, not the caller, owns the
   transaction), as on SQLite.
3. A `Job` (an import) runs in a transaction of its own between groups; it
   locks the head itself.
4. The connection comes from the store's pool for each group, so a server
   restart costs the groups in flight, not the store.
5. A group (or job) is committed once its statement (or transaction)
   returns; the pool then resets the connection as it takes it back, and
   that reset fails if the server cut the connection meanwhile (a restart,
   `pg_terminate_backend`). Such a failure is not the group's: it is
   reported committed, else a caller told "failed" would append it again.
6. One append whose values the server or asyncpg cannot take (a lone UTF-16
   surrogate, an integer beyond 64 bits) failed its whole group: the others'
   callers were told nothing was written for another's mistake. Such a group
   is tried again one append at a time, so only that one fails; a failure of
   the connection or the server is not retried (every append fails alike).
7. ...but for the errors that say the group surely did not commit, met on a
   pooled connection the server ended meanwhile (a restart, a failover,
   `pg_terminate_backend`), before asyncpg saw it close: `InternalClientError`
   ("cannot switch to state ...": the statement was never sent), or the
   connection closed with the server's "terminating connection due to
   administrator command" (57P01) as its cause. A backend told to end ends at
   its next read of a command or aborts the statement it runs, and it commits
   at the Sync behind the statement with interrupts held, then answers
   ReadyForQuery before it reads again: told to end, it did not commit, or it
   answered first. Such a group is sent again on another connection (the pool
   opens new ones for those closed), at most once per connection of the pool:
   an append right after a restart failed for nothing. A connection cut any
   other way (the network) leaves the commit unknown: not sent again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from .._encoding import Encoded
from .._envelope import (
    ANY,
    NO_STREAM,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    new_appended,
)
from ..errors import FleetError, StoreClosed, StoreError, VersionConflict
from ._errors import store_error
from ._schema import Tables

# What an append's own values raise (note 6): asyncpg's encoding, or the server's data
# exceptions (SQLSTATE class 22).
_VALUE_ERRORS = (ValueError, OverflowError, TypeError, asyncpg.DataError)

__all__ = ["MAX_GROUP_ROWS", "Job", "PendingAppend", "PostgresWriter", "lock_head", "write_rows"]

logger = logging.getLogger(__name__)

MAX_GROUP_ROWS = 10_000

Outcome = list[RecordedEvent] | BaseException


@dataclass(slots=True)
class PendingAppend:
    """One `append` call waiting for the writer: its rows are encoded already."""

    stream_id: str
    events: tuple[NewEvent, ...]
    # Their stored values, column by column (`events._encoding.encode_batch`).
    encoded: Encoded
    expected_version: ExpectedVersion
    future: asyncio.Future[list[RecordedEvent]] = field(repr=False)


@dataclass(slots=True)
class Job:
    """A write that is not an append, run in a transaction of its own (note 3)."""

    run: Callable[[asyncpg.Connection], Awaitable[Any]]
    doing: str
    future: asyncio.Future[Any] = field(repr=False)


async def lock_head(conn: asyncpg.Connection, tables: Tables) -> tuple[int, int]:
    """Lock the log's head row for this transaction; (last position, last recorded_at)."""
    row = await conn.fetchrow(f"SELECT position, recorded_at FROM {tables.head} FOR UPDATE")
    assert row is not None  # created with the schema
    return int(row[0]), int(row[1])


async def write_rows(
    conn: asyncpg.Connection, tables: Tables, columns: list[list[Any]], head: int, last_us: int
) -> None:
    """Insert the rows (one list per column), move the head, notify on commit: one round trip."""
    await conn.execute(tables.insert, *columns, head, last_us)


class PostgresWriter:
    """Commits queued appends in groups from one task (note 1)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        tables: Tables,
        location: str,
        on_commit: Callable[[], None],
    ) -> None:
        self._pool = pool
        self._tables = tables
        self._location = location
        self._on_commit = on_commit
        self._queue: deque[PendingAppend | Job] = deque()
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the writer task (on the running loop)."""
        self._task = asyncio.get_running_loop().create_task(
            self._serve(), name="fleet-postgres-writer"
        )

    def submit(self, item: PendingAppend | Job) -> None:
        """Queue an append for the next group, or a job (call on the event loop)."""
        if self._stopping:
            item.future.set_exception(StoreClosed())
            return
        self._queue.append(item)
        self._wake.set()

    async def stop(self) -> None:
        """Commit what is queued, then end the task (cancelling the caller does not cancel it)."""
        self._stopping = True
        self._wake.set()
        task = self._task
        if task is not None:
            await asyncio.wait([task])
            error = None if task.cancelled() else task.exception()
            if error is not None:
                raise error

    async def _serve(self) -> None:
        queue = self._queue
        try:
            while True:
                if not queue:
                    if self._stopping:
                        break
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                group = self._take()
                if not group:
                    continue
                try:
                    if isinstance(group[0], Job):
                        outcomes = [await self._run_job(group[0])]
                    else:
                        outcomes = await self._commit(group)  # type: ignore[arg-type]  # appends
                except asyncio.CancelledError:
                    self._deliver(group, [StoreClosed() for _ in group])
                    raise
                self._deliver(group, outcomes)
        finally:
            self._stopping = True
            leftovers = list(queue)
            queue.clear()
            if leftovers:
                self._deliver(leftovers, [StoreClosed() for _ in leftovers])

    def _take(self) -> list[PendingAppend | Job]:
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
            if item.future.done():  # cancelled before it was taken: write nothing (note 2)
                continue
            group.append(item)
            rows += len(item.events)
        return group

    async def _run_job(self, job: Job) -> Any:
        done: list[Any] = []
        try:
            async with self._pool.acquire() as conn:
                async with conn.transaction():
                    result = await job.run(conn)
                done.append(result)  # committed
        except Exception as e:
            if done:  # committed; only handing the connection back failed (note 5)
                logger.debug(
                    "%s %s committed, then its connection failed: %s", job.doing, self._location, e
                )
                return done[0]
            logger.debug("%s %s rolled back: %s", job.doing, self._location, e)
            if isinstance(e, FleetError):
                return e
            return store_error(e, job.doing, self._location)
        return done[0]

    async def _commit(self, group: list[PendingAppend], *, resends: int = 0) -> list[Outcome]:
        outcomes: list[Outcome] | None = None
        try:
            async with self._pool.acquire() as conn:
                outcomes = await self._insert(conn, group)  # committed when it returns
        except Exception as e:
            if outcomes is not None:  # only handing the connection back failed (note 5)
                logger.debug("append group committed, then its connection failed: %s", e)
                return outcomes
            if _not_committed(e) and resends < self._pool.get_max_size():  # note 7
                logger.debug("append group not committed on an ended connection: %s; again", e)
                return await self._commit(group, resends=resends + 1)
            logger.debug("append group of %d rolled back: %s", len(group), e)
            if len(group) > 1 and isinstance(e, _VALUE_ERRORS):
                # One append's own values (note 6): each alone, so only it fails.
                return [outcome for item in group for outcome in await self._commit([item])]
            return [self._failure(e) for _ in group]
        return outcomes

    async def _insert(self, conn: asyncpg.Connection, group: list[PendingAppend]) -> list[Outcome]:
        """The group in one call of `append_group` (note 1): one statement, its own transaction."""
        streams: list[str] = []
        expected: list[int] = []
        counts: list[int] = []
        columns: list[list[Any]] = [[] for _ in range(9)]
        for item in group:
            streams.append(item.stream_id)
            version = item.expected_version
            expected.append(-1 if version is ANY else -2 if version is NO_STREAM else version)  # type: ignore[arg-type]
            counts.append(len(item.events))
            encoded = item.encoded
            columns[0] += encoded.types
            columns[1] += encoded.schemas
            columns[2] += encoded.data
            metas = zip(*encoded.metas, strict=True)
            for column, values in zip(columns[3:], metas, strict=True):
                column += [value or None for value in values]  # '' and 0 are NULL
        rows = await conn.fetch(
            self._tables.append_group, streams, expected, counts, *columns, time.time_ns() // 1000
        )
        outcomes: list[Outcome] = []
        for item, (first, actual, recorded_us) in zip(group, rows, strict=True):
            if first is None:
                outcomes.append(VersionConflict(item.stream_id, item.expected_version, actual))
                continue
            recorded_at = datetime.fromtimestamp(recorded_us / 1_000_000, UTC)
            outcomes.append(
                new_appended(
                    first,
                    item.stream_id,
                    actual + 1,
                    item.events,
                    recorded_at,
                    relative=item.encoded.relative,  # `append_group` stored them as positions
                )
            )
        return outcomes

    def _failure(self, error: Exception) -> StoreError:
        if isinstance(error, StoreError):
            return error
        failure = store_error(error, "appending to", self._location)
        return failure

    def _deliver(self, group: list[PendingAppend | Job], outcomes: list[Any]) -> None:
        for item, outcome in zip(group, outcomes, strict=True):
            if item.future.done():  # the caller was cancelled
                continue
            if isinstance(outcome, BaseException):
                item.future.set_exception(outcome)
            else:
                item.future.set_result(outcome)
        self._on_commit()


def _not_committed(error: BaseException) -> bool:
    """Whether `error` says the statement surely did not commit on a connection the server
    ended (note 7)."""
    if isinstance(error, asyncpg.InternalClientError):
        return True
    return isinstance(error, asyncpg.ConnectionDoesNotExistError) and isinstance(
        error.__cause__, asyncpg.AdminShutdownError
    )
