"""The in-memory backend: a log in this process's memory, for tests and embedding.

It keeps the protocol honest: it passes the same contract suite as SQLite
(tests/events/test_store_contract.py, test_checkpoint_contract.py) with none
of SQLite's machinery. Events are stored as rows of JSON text, like a real
backend, and decoded by the shared `RowDecoder` on every read, so what a read
returns is a new object that does not share state with the log, and old
schemas, unknown types and corrupt rows behave as they do on disk.

Notes (do not fix without reading this):
1. A `MemoryLog` is the log; a `MemoryEventStore` is an open handle on it.
   Several stores may share one log (as several connections share a file):
   an append through one wakes the subscriptions of all. Closing a store
   leaves its log as it is; the log lives as long as something holds it.
2. Every write happens in one synchronous step, with no await in it, so it
   is atomic and isolated on the event loop; there is nothing to roll back.
   An append or an import first yields to the loop once (as a real backend's
   hop to its database does), so other tasks interleave with it as they
   would on disk, and a caller cancelled there writes nothing. One that got
   that far lands even if the store is closed meanwhile, and `aclose` waits
   for it, as SQLite's writer commits what was queued before it closes.
3. Nothing is durable: the log ends with the process.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from .._checkpoints import Checkpoint, Snapshot
from .._decoding import Row, RowDecoder, microseconds
from .._encoding import (
    DEFAULT_MAX_EVENT_BYTES,
    Encoded,
    check_append,
    check_limit,
    encode_batch,
    resolved,
)
from .._envelope import (
    ANY,
    NO_STREAM,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    new_appended,
)
from .._leases import Lease
from .._store import EventFilter, ImportedEvent
from ..errors import (
    ImportConflict,
    LeaseHeld,
    StoreClosed,
    StoreError,
    StoreUnavailable,
    VersionConflict,
)

__all__ = ["MemoryCheckpointStore", "MemoryEventStore", "MemoryLeaseStore", "MemoryLog"]

_PAGE = 1_000


class MemoryLog:
    """The events, checkpoints and snapshots of one in-memory log (note 1)."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        """The stored rows in position order (`events._decoding.Row`); read, never change."""
        self._streams: dict[str, list[int]] = {}  # stream id -> positions, in version order
        self._last_us = 0
        self._stores: set[MemoryEventStore] = set()
        self.checkpoints: dict[str, Checkpoint] = {}
        self.snapshots: dict[tuple[str, int], dict[int, bytes]] = {}
        self.leases: dict[str, Lease] = {}

    def __repr__(self) -> str:
        return f"<MemoryLog {len(self.rows)} events>"

    @property
    def head(self) -> int:
        """The last position (0 when empty)."""
        return self.rows[-1][0] if self.rows else 0

    def stream_positions(self, stream_id: str) -> list[int]:
        """The positions of a stream's events, in version order (empty if none)."""
        return self._streams.get(stream_id, [])

    def insert_rows(self, rows: Sequence[Row]) -> None:
        """Store `rows` as they are, unchecked, after the head, and wake every subscription.

        For the store, and for tests that need rows another fleet wrote
        (an unknown type, an old schema); positions must follow the head.
        """
        for row in rows:
            if row[0] != self.head + 1:
                raise StoreError(f"row at position {row[0]} does not follow the head {self.head}")
            self.rows.append(tuple(row))
            self._streams.setdefault(row[1], []).append(row[0])
        for store in list(self._stores):
            store._committed()

    def now_us(self) -> int:
        """The time for new rows: never before the last one's (the clock may go back)."""
        self._last_us = max(time.time_ns() // 1000, self._last_us)
        return self._last_us

    def attach(self, store: MemoryEventStore) -> None:
        self._stores.add(store)

    def detach(self, store: MemoryEventStore) -> None:
        self._stores.discard(store)


class MemoryEventStore:
    """An `EventStore` in memory. Use as `async with MemoryEventStore() as store`.

    Args:
        log: the log to open (a new, empty one by default); share one between
            stores to see each other's appends.
        readonly: refuse every write with `StoreUnavailable`.
        max_event_bytes: the largest encoded data of one event.
        poll_interval, lock_timeout: accepted (and checked) so the options of
            `open_store` work on every backend; unused, as no other process
            writes this log.
    """

    def __init__(
        self,
        log: MemoryLog | None = None,
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
        self.log = MemoryLog() if log is None else log
        self.readonly = readonly
        self.max_event_bytes = max_event_bytes
        self._decoder = RowDecoder()
        self._appended = asyncio.Event()
        self._in_flight: set[asyncio.Future[None]] = set()
        self._state = "new"
        self._checkpoints = MemoryCheckpointStore(self)
        self._leases = MemoryLeaseStore(self)

    def __repr__(self) -> str:
        return f"<MemoryEventStore {self.log!r} {self._state}>"

    # -- lifecycle ----------------------------------------------------------

    async def open(self) -> Self:
        """Open the store on its log. Raises `StoreError` if it was opened before."""
        if self._state != "new":
            raise StoreError(f"this store was opened before (it is {self._state})")
        self.log.attach(self)
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
        """Close the store (its log stays as it is). Safe to call twice."""
        if self._state == "closed":
            return
        self._state = "closed"
        if self._in_flight:  # note 2
            await asyncio.wait(self._in_flight)
        self.log.detach(self)
        self._appended.set()  # wakes subscriptions so they see the store is closed

    @property
    def closed(self) -> bool:
        """True once `aclose()` has begun."""
        return self._state == "closed"

    @property
    def location(self) -> str:
        """`memory:`, what `open_store` takes for an in-memory log."""
        return "memory:"

    @property
    def checkpoints(self) -> MemoryCheckpointStore:
        """The projections' checkpoints and snapshots, in this log."""
        return self._checkpoints

    @property
    def leases(self) -> MemoryLeaseStore:
        """Who drives which agent and run, in this log."""
        return self._leases

    def _check_open(self) -> None:
        if self._state != "open":
            raise StoreClosed()

    def _check_writable(self) -> None:
        self._check_open()
        if self.readonly:
            raise StoreUnavailable("the log was opened read-only")

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
        """Append `events` to `stream_id` atomically (note 2).

        Raises like `EventStore.append`: `VersionConflict`, `EventTooLarge`,
        `InvalidEvent`, `StoreClosed`, `StoreUnavailable` (read-only); in
        every case nothing is written. `events` is never mutated.
        """
        self._check_open()
        batch = check_append(stream_id, events, expected_version)
        if not batch:
            return []
        self._check_writable()
        encoded = encode_batch(stream_id, batch, self.max_event_bytes)
        async with self._turn():
            return self._append(stream_id, batch, encoded, expected_version)

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """Yield to the loop once, then hold the write (note 2)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._in_flight.add(done)
        try:
            await asyncio.sleep(0)
            yield
        finally:
            self._in_flight.discard(done)
            done.set_result(None)

    def _append(
        self,
        stream_id: str,
        batch: tuple[NewEvent, ...],
        encoded: Encoded,
        expected_version: ExpectedVersion,
    ) -> list[RecordedEvent]:
        log = self.log
        actual = len(log.stream_positions(stream_id))
        if expected_version is not ANY and (
            actual != 0 if expected_version is NO_STREAM else expected_version != actual
        ):
            raise VersionConflict(stream_id, expected_version, actual)
        now_us = log.now_us()
        recorded_at = datetime.fromtimestamp(now_us / 1_000_000, UTC)
        head = log.head
        relative = encoded.relative  # causes given as -k (`events._encoding`, note 5)
        encoded = resolved(encoded, head + 1)
        rows: list[Row] = []
        for n, (name, schema, text, (run, agent, parent, cause, corr, source)) in enumerate(
            zip(encoded.types, encoded.schemas, encoded.data, encoded.metas, strict=True), start=1
        ):
            rows.append(
                (
                    head + n, stream_id, actual + n, name, schema, text, run or None,
                    agent or None, parent or None, cause or None, corr or None, source, now_us,
                )
            )  # fmt: skip
        log.insert_rows(rows)
        return new_appended(head + 1, stream_id, actual + 1, batch, recorded_at, relative=relative)

    async def import_run(self, run_id: str, events: Iterable[ImportedEvent]) -> int:
        """Write another log's run after the head, keeping `recorded_at` (note 2).

        Returns the first new position; `events` is iterated once. Raises
        `ImportConflict`, `StoreClosed`, `StoreUnavailable`; in every case
        nothing is written.
        """
        self._check_writable()
        async with self._turn():
            return self._import(run_id, list(events))

    def _import(self, run_id: str, events: Sequence[ImportedEvent]) -> int:
        log = self.log
        existing = {e.stream_id for e in events if log.stream_positions(e.stream_id)}
        if existing:
            raise ImportConflict(run_id, existing)
        head = log.head
        new_position = {event.position: head + i for i, event in enumerate(events, start=1)}
        rows: list[Row] = []
        for event in events:
            meta, cause = event.meta, event.meta.causation_id
            rows.append(
                (
                    new_position[event.position], event.stream_id, event.version, event.type,
                    event.schema_version, event.data, meta.run_id, meta.agent_id,
                    meta.parent_id, None if cause is None else new_position.get(cause),
                    meta.correlation_id, meta.source, microseconds(event.recorded_at),
                )
            )  # fmt: skip
        log.insert_rows(rows)
        return head + 1

    # -- reading ------------------------------------------------------------

    async def head(self) -> int:
        """The last position in the log (0 when empty). Raises `StoreClosed`."""
        self._check_open()
        return self.log.head

    async def stream_version(self, stream_id: str) -> int:
        """The last version of `stream_id` (0 when it does not exist). Raises `StoreClosed`."""
        self._check_open()
        positions = self.log.stream_positions(stream_id)
        return int(self.log.rows[positions[-1] - 1][2]) if positions else 0

    async def read_stream(
        self,
        stream_id: str,
        *,
        after_version: int = 0,
        limit: int | None = None,
        lenient: bool = False,
    ) -> list[RecordedEvent]:
        """Events of one stream in version order, after `after_version`.

        Raises `UnknownEventType` unless `lenient`, `StoreClosed`, `ValueError`
        for a negative `limit`.
        """
        check_limit("limit", limit)
        self._check_open()
        rows = self.log.rows
        chosen = [rows[p - 1] for p in self.log.stream_positions(stream_id)]
        chosen = [row for row in chosen if row[2] > after_version][:limit]
        return self._decoder.decode_all(chosen, lenient=lenient)

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

        Raises `UnknownEventType` unless `lenient`, `StoreClosed`, `ValueError`
        for a negative `limit`.
        """
        check_limit("limit", limit)
        self._check_open()
        return self._decoder.decode_all(self._select(after, until, where, limit), lenient=lenient)

    def _select(
        self, after: int, until: int | None, where: EventFilter | None, limit: int | None
    ) -> list[Row]:
        rows = self.log.rows
        # Positions are gap-free from 1: position p is rows[p - 1].
        start = max(after, 0)
        end = len(rows) if until is None else max(start, min(until, len(rows)))
        if where is None:
            return rows[start : end if limit is None else min(end, start + limit)]
        matched: list[Row] = []
        for index in range(start, end):
            row = rows[index]
            if _matches(where, row):
                matched.append(row)
                if limit is not None and len(matched) >= limit:
                    break
        return matched

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
        """Catch up from `after`, then follow new appends, with no gap and no duplicate.

        Ends when the store closes. Raises `StoreClosed` if the store is
        closed when iteration starts.
        """
        self._check_open()
        position = after
        while not self.closed:
            appended = self._appended
            scanned = self.log.head
            page = self._decoder.decode_all(
                self._select(position, None, where, _PAGE), lenient=lenient
            )
            for event in page:
                position = event.position
                yield event
            if len(page) == _PAGE:
                continue
            # A short page means every row up to `scanned` was looked at.
            position = max(position, scanned)
            if self.log.head > position:
                continue  # appended while the page was being consumed
            await appended.wait()


def _matches(where: EventFilter, row: Row) -> bool:
    return (
        (where.stream_ids is None or row[1] in where.stream_ids)
        and (where.types is None or row[3] in where.types)
        and (where.run_id is None or row[6] == where.run_id)
        and (where.agent_id is None or row[7] == where.agent_id)
    )


class MemoryCheckpointStore:
    """A `CheckpointStore` in a `MemoryLog`, through one of its stores."""

    def __init__(self, store: MemoryEventStore) -> None:
        self._store = store

    def _log(self, *, writing: bool = False) -> MemoryLog:
        if writing:
            self._store._check_writable()
        else:
            self._store._check_open()
        return self._store.log

    async def load_checkpoints(self) -> dict[str, Checkpoint]:
        """Every stored checkpoint by projection name."""
        return dict(self._log().checkpoints)

    async def save_checkpoints(self, checkpoints: Sequence[Checkpoint]) -> None:
        """Store `checkpoints` at once; none moves backwards within its version."""
        stored = self._log(writing=True).checkpoints
        for checkpoint in checkpoints:
            old = stored.get(checkpoint.name)
            if (
                old is None
                or old.version != checkpoint.version
                or checkpoint.position >= old.position
            ):
                stored[checkpoint.name] = checkpoint

    async def save_snapshots(self, snapshots: Sequence[Snapshot]) -> None:
        """Store `snapshots` at once."""
        stored = self._log(writing=True).snapshots
        for snapshot in snapshots:
            stored.setdefault((snapshot.name, snapshot.version), {})[snapshot.position] = bytes(
                snapshot.blob
            )

    async def best_snapshot(self, name: str, version: int, position: int) -> Snapshot | None:
        """The snapshot of `name` at `version` with the greatest position `<= position`."""
        blobs = self._log().snapshots.get((name, version), {})
        positions = sorted(blobs)
        i = bisect.bisect_right(positions, position)
        if i == 0:
            return None
        found = positions[i - 1]
        return Snapshot(name, version, found, blobs[found])

    async def snapshot_positions(self, name: str, version: int) -> list[int]:
        """The positions of the stored snapshots of `name` at `version`, ascending."""
        return sorted(self._log().snapshots.get((name, version), {}))

    async def delete_snapshots(
        self, name: str, *, positions: Collection[int] | None = None
    ) -> None:
        """Delete the snapshots of `name` at `positions` (of any version), or all of them."""
        stored = self._log(writing=True).snapshots
        for key in [key for key in stored if key[0] == name]:
            if positions is None:
                del stored[key]
                continue
            for position in positions:
                stored[key].pop(position, None)


class MemoryLeaseStore:
    """A `LeaseStore` in a `MemoryLog`, through one of its stores (each call is one step)."""

    def __init__(self, store: MemoryEventStore) -> None:
        self._store = store

    def _leases(self, *, writing: bool = False) -> dict[str, Lease]:
        if writing:
            self._store._check_writable()
        else:
            self._store._check_open()
        return self._store.log.leases

    async def acquire_lease(
        self, key: str, owner: str, ttl_s: float, *, replacing: str | None = None
    ) -> Lease:
        """Hold `key` for `ttl_s` seconds from now. Raises `LeaseHeld` if another holds it."""
        _check_ttl(ttl_s)
        leases = self._leases(writing=True)
        now = time.time()
        held = leases.get(key)
        if held is not None and held.owner not in (owner, replacing) and held.live(now):
            raise LeaseHeld(key, held.owner, held.expires_at)
        leases[key] = Lease(key, owner, now + ttl_s)
        return leases[key]

    async def renew_leases(self, keys: Collection[str], owner: str, ttl_s: float) -> set[str]:
        """Extend `owner`'s leases on `keys` by `ttl_s` from now; the keys it still held."""
        _check_ttl(ttl_s)
        leases = self._leases(writing=True)
        expires_at = time.time() + ttl_s
        renewed = set()
        for key in set(keys):
            held = leases.get(key)
            if held is not None and held.owner == owner:
                leases[key] = Lease(key, owner, expires_at)
                renewed.add(key)
        return renewed

    async def release_leases(self, keys: Collection[str], owner: str) -> None:
        """Let go of `owner`'s leases on `keys` (others' leases are left alone)."""
        leases = self._leases(writing=True)
        for key in set(keys):
            if (held := leases.get(key)) is not None and held.owner == owner:
                del leases[key]

    async def leases(self, *, prefix: str = "") -> list[Lease]:
        """Every lease whose key starts with `prefix`, expired ones included, by key."""
        leases = self._leases()
        return [leases[key] for key in sorted(leases) if key.startswith(prefix)]


def _check_ttl(ttl_s: float) -> None:
    if not ttl_s > 0:
        raise ValueError(f"ttl_s must be positive, got {ttl_s}")
