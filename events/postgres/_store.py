"""The event store for many machines: one PostgreSQL schema, through asyncpg.

Notes (do not fix without reading this):
1. Positions have no gaps and no reader skips one (`_schema.py`, note 1):
   every transaction that adds events holds the `log_head` row lock from
   numbering to commit, so transactions commit in position order and a
   page read `position > after` can never be followed by a commit below it.
   Sequences would not do: they leave gaps on rollback and commit out of
   order, and a reader that has passed position n misses an n-1 committed
   after it. The price is that writers on all machines take turns; group
   commit (`_writer.py`, note 1) keeps each turn short and full.
2. A subscription wakes on a `NOTIFY` on the log's channel (one per
   committed transaction, sent by its writer, delivered on commit) through
   one listening connection per store, and on this store's own commits; it
   also polls every `poll_interval` seconds, so a lost notification or a
   dropped listener costs latency, never an event. A listening connection
   that drops (the server restarted, a proxy cut it) is opened again, every
   few seconds until it is back (`_relisten`): polling alone would leave
   every subscription a poll behind for the rest of the store's life.
3. Reads go through a small connection pool, one query per page, decoded
   on the event loop by the shared `RowDecoder`.
4. Opened with `readonly=True`, the store has no writer, its connections
   are read-only sessions, the log must exist (`LogNotFound`), and every
   write raises `StoreUnavailable`.
5. A store belongs to the event loop that opened it.
6. A subscription outlives an outage: when a page cannot be read because
   the server cannot be reached (`StoreUnavailable`: a restart, a network
   cut, a refused login), it says so once (one warning per outage for the
   store, and one line when reads work again), retries from the same
   position every `poll_interval` doubling up to 5 s, or at once when the
   listener is back. Ending it instead would stop, for good, whatever
   follows the log: an API server's projections and SSE streams, workers.
   A page that waited past `lock_timeout` for a lock another session holds
   (`LOCK TABLE` in psql, a migration, `VACUUM FULL`) is waited out the same
   way: the lock ends, the log does not. Any other error still ends it.
7. Every statement waits at most `command_timeout` for the server's answer
   (asyncpg's own timeout, which then cancels it and drops the connection).
   On a network that drops packets silently (a cut link, a firewall that
   forgets the connection, a failed-over address) a statement otherwise
   waits for TCP to give up, about a quarter of an hour, with every append
   queued behind it and nothing said. A statement past it is
   `StoreUnavailable`, waited out as any outage; an append's commit is then
   unknown (the runtime looks in the log, `runtime/_outage.py` note 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from types import TracebackType
from typing import Any, Self

import asyncpg

from .._decoding import Row, RowDecoder
from .._encoding import DEFAULT_MAX_EVENT_BYTES, check_append, check_limit, encode_batch
from .._envelope import ANY, ExpectedVersion, NewEvent, RecordedEvent
from .._store import EventFilter, ImportedEvent
from ..errors import LogNotFound, StoreClosed, StoreError, StoreUnavailable
from ._checkpoints import PostgresCheckpointStore
from ._errors import translated
from ._import import insert_run
from ._leases import PostgresLeases
from ._schema import Location, Tables, parse_location, select_events
from ._writer import Job, PendingAppend, PostgresWriter

__all__ = ["PostgresEventStore"]

logger = logging.getLogger(__name__)

_PAGE = 1_000


class PostgresEventStore:
    """An `EventStore` in one PostgreSQL schema. Use as `async with PostgresEventStore(url)`.

    Args:
        url: `postgresql://user@host:port/database?schema=NAME` (`schema`
            defaults to `fleet`; created with its tables if missing, unless `readonly`).
        readonly: open an existing log for reading only (note 4).
        max_event_bytes: the largest encoded data of one event.
        poll_interval: how often (seconds) an idle subscription looks for
            appends when no notification came (note 2).
        pool_size: the most connections this store opens for reads and writes
            (plus one that listens); 4.
        connect_timeout: how long (seconds) opening a connection waits for the server; 10.
        lock_timeout: how long (seconds) a statement waits for a lock another
            session holds (`LOCK TABLE` in psql, a stuck transaction) before it
            fails with `StoreUnavailable` saying so; 0 waits for ever (PostgreSQL's
            `lock_timeout`); 10.
        command_timeout: how long (seconds) a statement waits for the server's
            answer before it fails with `StoreUnavailable` (note 7); 0 waits for ever; 60.

    The last four may be given in the URL's query instead (`?lock_timeout=2`: `fleet run
    --db` takes only a URL); an argument given here wins over the URL's.
    """

    def __init__(
        self,
        url: str,
        *,
        readonly: bool = False,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        poll_interval: float = 1.0,
        pool_size: int | None = None,
        connect_timeout: float | None = None,
        lock_timeout: float | None = None,
        command_timeout: float | None = None,
    ) -> None:
        if max_event_bytes < 1:
            raise ValueError(f"max_event_bytes must be positive, got {max_event_bytes}")
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be positive, got {poll_interval}")
        self._where: Location = parse_location(url)
        given = self._where.options
        self.pool_size = int(_option(pool_size, given, "pool_size", 4))
        self.connect_timeout = _option(connect_timeout, given, "connect_timeout", 10.0)
        self.lock_timeout = _option(lock_timeout, given, "lock_timeout", 10.0)
        self.command_timeout = _option(command_timeout, given, "command_timeout", 60.0)
        if self.lock_timeout < 0:
            raise ValueError(f"lock_timeout must not be negative, got {self.lock_timeout}")
        if self.command_timeout < 0:
            raise ValueError(f"command_timeout must not be negative, got {self.command_timeout}")
        if self.connect_timeout <= 0:
            raise ValueError(f"connect_timeout must be positive, got {self.connect_timeout}")
        if self.pool_size < 1:
            raise ValueError(f"pool_size must be positive, got {self.pool_size}")
        self.tables = Tables(self._where.schema)
        self.readonly = readonly
        self.max_event_bytes = max_event_bytes
        self.poll_interval = poll_interval
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None
        self._relistening: asyncio.Task[None] | None = None
        self._writer: PostgresWriter | None = None
        self._decoder = RowDecoder()
        self._appended = asyncio.Event()
        self._state = "new"
        self._outage: StoreError | None = None  # why subscriptions cannot read now
        self._checkpoints = PostgresCheckpointStore(self)
        self._leases = PostgresLeases(self)

    def __repr__(self) -> str:
        mode = " read-only" if self.readonly else ""
        return f"<PostgresEventStore {self.location!r}{mode} {self._state}>"

    # -- lifecycle ----------------------------------------------------------

    async def open(self) -> Self:
        """Connect, creating the schema and its tables if missing (unless `readonly`).

        Raises `StoreUnavailable` if the server cannot be reached or refuses
        the login, `LogNotFound` if the database (or, `readonly`, the log)
        does not exist, `StoreError` otherwise or if the store was opened before.
        """
        if self._state != "new":
            raise StoreError(f"this store was opened before (it is {self._state})")
        self._state = "opening"
        lock_ms = self.lock_timeout * 1000
        try:
            # Without a lock_timeout an append behind a lock held in psql waits for ever, silently.
            # The URL's application_name is kept: asyncpg lets these settings win over the DSN's.
            settings = {
                "application_name": self._where.application_name,
                "lock_timeout": f"{round(lock_ms)}ms",
            }
            if self.readonly:
                settings["default_transaction_read_only"] = "on"
            with translated("opening", self.location):
                self._pool = await asyncpg.create_pool(
                    self._where.dsn,
                    # No floor: asyncpg restores one in the background during an outage, with
                    # a traceback at each retry; the store says it once (note 6). A connection
                    # stays pooled while used (asyncpg closes it after 5 idle minutes).
                    min_size=0,
                    max_size=self.pool_size,
                    timeout=self.connect_timeout,
                    command_timeout=self.command_timeout or None,  # note 7
                    server_settings=settings,
                )
                async with self._pool.acquire() as conn:
                    if self.readonly:
                        found = await conn.fetchval("SELECT to_regclass($1)", self.tables.head)
                        if found is None:
                            raise LogNotFound(self.location)
                    else:
                        async with conn.transaction():
                            await conn.execute(
                                "SELECT pg_advisory_xact_lock($1)", self.tables.ddl_lock
                            )
                            await conn.execute(self.tables.ddl())
            await self._listen()
            if not self.readonly:
                assert self._pool is not None
                self._writer = PostgresWriter(
                    self._pool, self.tables, self.location, self._committed
                )
                self._writer.start()
        except BaseException:
            await self._close_connections()
            self._state = "closed"
            raise
        self._state = "open"
        return self

    async def _listen(self, *, quiet: bool = False) -> bool:
        """One connection that LISTENs on the log's channel (note 2); polling covers its loss."""
        conn: asyncpg.Connection | None = None
        try:
            with translated("listening to", self.location):
                conn = await asyncpg.connect(
                    self._where.dsn,
                    timeout=self.connect_timeout,
                    # Named as the pool's are, so an operator finds it in pg_stat_activity.
                    server_settings={"application_name": self._where.application_name},
                )
                await conn.add_listener(self.tables.channel, self._notified)
        except BaseException as e:
            # Connected but not listening: closed here, or each retry of `_relisten` leaks one
            # (terminated: no await, so a cancel cannot skip it).
            if conn is not None:
                conn.terminate()
            if not isinstance(e, StoreError):
                raise
            if not quiet:
                logger.warning(
                    "no notifications from %s, subscriptions will poll: %s", self.location, e
                )
            return False
        conn.add_termination_listener(self._listener_lost)
        self._listener = conn
        return True

    def _listener_lost(self, conn: asyncpg.Connection) -> None:
        if conn is not self._listener or self._state != "open":
            return  # closed by us
        self._listener = None
        logger.warning("lost the notifications from %s; listening again", self.location)
        self._relistening = asyncio.get_running_loop().create_task(
            self._relisten(), name="fleet-postgres-relisten"
        )

    async def _relisten(self) -> None:
        """Open the listening connection again (note 2), waking subscriptions once it is."""
        delay = min(1.0, self.poll_interval)
        while self._state == "open":
            if await self._listen(quiet=True):
                if self._state != "open":  # closed while connecting: not ours to keep
                    await self._close_listener(self._listener)
                    self._listener = None
                    return
                logger.info("listening to %s again", self.location)
                self._committed()  # what was committed meanwhile
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    def _unreachable(self, error: StoreError) -> None:
        if self._outage is None:  # one line per outage, not one per subscription and retry
            logger.warning("%s; subscriptions wait and go on", error)
        self._outage = error

    def _reachable(self) -> None:
        if self._outage is not None:
            self._outage = None
            logger.warning("reading %s again; subscriptions go on", self.location)

    def _notified(self, *_: Any) -> None:
        self._committed()

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
            self._appended.set()

    async def _close_connections(self) -> None:
        writer, listener, pool = self._writer, self._listener, self._pool
        self._writer = self._listener = None
        relistening, self._relistening = self._relistening, None
        if relistening is not None:
            relistening.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await relistening
        try:
            if writer is not None:
                await writer.stop()
        finally:
            self._pool = None
            await self._close_listener(listener)
            if pool is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pool.close(), 10)

    @staticmethod
    async def _close_listener(listener: asyncpg.Connection | None) -> None:
        if listener is not None:
            with contextlib.suppress(Exception):
                await listener.close(timeout=5)

    @property
    def closed(self) -> bool:
        """True once `aclose()` has begun."""
        return self._state in ("closing", "closed")

    def _check_open(self) -> None:
        if self._state != "open":
            raise StoreClosed()

    def pool(self) -> asyncpg.Pool:
        """The open pool (for the checkpoint store and leases). Raises `StoreClosed`."""
        self._check_open()
        if self._pool is None:
            raise StoreClosed()
        return self._pool

    def _writing(self) -> PostgresWriter:
        self._check_open()
        if self._writer is None:
            raise StoreUnavailable("the log was opened read-only")
        return self._writer

    def check_writable(self) -> asyncpg.Pool:
        """The pool, once the store may write. Raises `StoreClosed`, `StoreUnavailable`."""
        self._writing()
        return self.pool()

    @property
    def location(self) -> str:
        """The log's URL, as given (without its password)."""
        return self._where.url

    @property
    def checkpoints(self) -> PostgresCheckpointStore:
        """The projections' checkpoints and snapshots, in this schema."""
        return self._checkpoints

    @property
    def leases(self) -> PostgresLeases:
        """Who drives which agent or run, in this schema (`_leases.py`)."""
        return self._leases

    def _committed(self) -> None:
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

        Raises `VersionConflict` if `expected_version` does not match,
        `EventTooLarge` or `InvalidEvent` for a bad event (before anything is
        queued), `StoreClosed` after `aclose()`, `StoreUnavailable` when the
        server cannot be reached; in every case nothing of this append is
        written. `events` is never mutated.
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

        `events` is iterated once, in chunks, on worker threads (it may read a
        file): a run of any size is written with one chunk of it in memory.
        Raises `ImportConflict` when a stream of `events` exists already,
        `StoreClosed`, `StoreUnavailable`; in every case nothing is written.
        """
        writer = self._writing()
        batch = events
        tables = self.tables

        async def run(conn: asyncpg.Connection) -> int:
            return await insert_run(conn, tables, run_id, batch)

        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        writer.submit(Job(run, "importing into", future))
        return await future

    # -- reading ------------------------------------------------------------

    async def fetch(self, sql: str, *params: Any) -> list[Row]:
        """Every row of a query, on a pooled connection. Raises `StoreClosed` or a StoreError."""
        pool = self.pool()
        with translated("reading", self.location):
            try:
                rows = await pool.fetch(sql, *params)
            except asyncpg.InterfaceError:
                if self.closed:
                    raise StoreClosed() from None
                raise
        return rows  # type: ignore[no-any-return]  # asyncpg Records index like tuples

    async def _events(self, sql: str, params: list[Any], *, lenient: bool) -> list[RecordedEvent]:
        return self._decoder.decode_all(await self.fetch(sql, *params), lenient=lenient)

    async def head(self) -> int:
        """The last position in the log (0 when empty). Raises `StoreClosed`."""
        rows = await self.fetch(f"SELECT position FROM {self.tables.head}")
        return int(rows[0][0])

    async def stream_version(self, stream_id: str) -> int:
        """The last version of `stream_id` (0 when it does not exist). Raises `StoreClosed`."""
        rows = await self.fetch(
            f"SELECT COALESCE(MAX(version), 0) FROM {self.tables.events} WHERE stream_id = $1",
            stream_id,
        )
        return int(rows[0][0])

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
        `lenient`, `StoreClosed`, `ValueError` for a negative `limit`.
        """
        check_limit("limit", limit)
        sql = (
            f"SELECT {_COLUMNS} FROM {self.tables.events} WHERE stream_id = $1 AND version > $2 "
            "ORDER BY version"
        )
        params: list[Any] = [stream_id, after_version]
        if limit is not None:
            sql += " LIMIT $3"
            params.append(limit)
        return await self._events(sql, params, lenient=lenient)

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

        Raises `UnknownEventType` for an unknown stored type unless `lenient`,
        `StoreClosed`, `ValueError` for a negative `limit`.
        """
        check_limit("limit", limit)
        sql, params = select_events(self.tables.events, after, until, where, limit)
        return await self._events(sql, params, lenient=lenient)

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
        """Catch up from `after`, then follow new appends from any machine (note 2).

        Each page is read strictly after the last position seen, and commits
        land in position order (note 1), so nothing is skipped or repeated.
        Waits out a server that cannot be reached (note 6). Ends when the
        store closes. Raises `StoreClosed` if the store is
        closed when iteration starts.
        """
        self._check_open()
        position = after
        retry = self.poll_interval
        while not self.closed:
            appended = self._appended
            sql, params = select_events(self.tables.events, position, None, where, _PAGE)
            try:
                page = await self._events(sql, params, lenient=lenient)
            except StoreClosed:
                return
            except StoreError as e:
                if not _passing(e):
                    raise
                # The server restarted, the network cut us or a lock held us (note 6): wait
                # it out and read on from `position`, rather than end every subscriber.
                self._unreachable(e)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(retry):
                        await appended.wait()  # aclose(), or the listener back (`_relisten`)
                retry = min(retry * 2, 5.0)
                continue
            retry = self.poll_interval
            self._reachable()
            for event in page:
                position = event.position
                yield event
            if len(page) == _PAGE:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await appended.wait()


def _option(
    argument: float | None, given: dict[str, float | int], name: str, default: float
) -> float:
    """A store option: the argument if given, else the URL's (`_schema.STORE_OPTIONS`),
    else its default."""
    if argument is not None:
        return argument
    return given.get(name, default)


def _passing(error: StoreError) -> bool:
    """Whether a subscription waits `error` out (note 6): an outage, a lock held elsewhere
    included (`_errors.py`)."""
    return isinstance(error, StoreUnavailable)


_COLUMNS = (
    "position, stream_id, version, type, schema_version, data, run_id, agent_id, "
    "parent_id, causation_id, correlation_id, source, recorded_at"
)
