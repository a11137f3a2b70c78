"""The event store protocol: the one seam every backend fits.

Every package above `events` knows a log only through `EventStore` (and its
`checkpoints`, a `CheckpointStore`); `open_store` picks the backend from a
path or a URL. A backend provides:

- `append` with an expected version, atomic and durable when it returns;
  global positions without gaps, per-stream versions from 1;
- `read_stream`, `read_all` (filters and `after`/`until`/`limit` paging) and
  `iter_all`, decoding stored rows through the shared decoder (upcasting old
  schemas, `UnknownEvent` for types it does not know when `lenient`);
- `subscribe`: catch-up then live, with no gap and no duplicate at the seam,
  ending when the store closes;
- `head`, `stream_version`;
- `import_run`: another log's run written in one transaction after the head,
  keeping `recorded_at`;
- `checkpoints`, the projections' checkpoint store in the same log;
- `leases`, who drives which agent or run, in the same log (`_leases.py`);
- `open`/`aclose` and `async with`; `location`, `readonly`, `max_event_bytes`.

It raises only `events.errors` (driver errors are translated where the
backend talks to its driver) and passes the contract suite,
tests/events/test_store_contract.py, through `STORE_BACKENDS` in tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import NamedTuple, Protocol, Self, runtime_checkable

from ._checkpoints import CheckpointStore
from ._envelope import ExpectedVersion, Meta, NewEvent, RecordedEvent
from ._leases import LeaseStore

__all__ = ["DataTest", "EventFilter", "EventStore", "ImportedEvent"]


# What a test with no values takes for a field left unset (SQL's NULL, JSON's false, 0, "").
_UNSET = (None, False, 0, "")


@dataclass(frozen=True, slots=True)
class DataTest:
    """What makes an event of `type` wanted: one of `fields` of its data set to one of
    its values, or (values None) to anything but null, false, 0 or "". A hint
    (`EventFilter.skippable`): a store may leave out the events that fail it."""

    type: str
    fields: tuple[tuple[str, frozenset[str] | None], ...]

    def passes(self, data: object) -> bool:
        """Whether `data` (the event's decoded data) passes the test."""
        for name, values in self.fields:
            value = getattr(data, name, None)
            if value not in _UNSET if values is None else value in values:
                return True
        return False


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events a read or a subscription wants; `None` means any.

    `skippable`: tests a reader makes itself of the events of their types
    (`DataTest`); a store may leave out those that fail (the SQLite log tests
    the stored JSON in SQL, on its reading thread), or return them all (the
    PostgreSQL and in-memory logs do). A hint for bulk reads: `matches` and
    subscriptions ignore it.
    """

    stream_ids: frozenset[str] | None = None
    types: frozenset[str] | None = None
    run_id: str | None = None
    agent_id: str | None = None
    skippable: tuple[DataTest, ...] = ()

    @classmethod
    def of(
        cls,
        *,
        stream_ids: Collection[str] | None = None,
        types: Collection[str] | None = None,
        run_id: str | None = None,
        agent_id: str | None = None,
        skippable: Iterable[DataTest] = (),
    ) -> EventFilter:
        """Build a filter from any collections (empty ones mean 'any')."""
        return cls(
            stream_ids=frozenset(stream_ids) if stream_ids else None,
            types=frozenset(types) if types else None,
            run_id=run_id,
            agent_id=agent_id,
            skippable=tuple(skippable),
        )

    def matches(self, event: RecordedEvent) -> bool:
        """True if `event` passes this filter (the same test the SQL query makes)."""
        return (
            (self.stream_ids is None or event.stream_id in self.stream_ids)
            and (self.types is None or event.type in self.types)
            and (self.run_id is None or event.meta.run_id == self.run_id)
            and (self.agent_id is None or event.meta.agent_id == self.agent_id)
        )


class ImportedEvent(NamedTuple):
    """An event of another log, checked and ready for `EventStore.import_run`.

    `position` is its position in the log it comes from, and `meta.causation_id`
    refers to positions of that log too; `data` is the JSON text of the event's
    data at `schema_version`. `parse_export` builds these. (A named tuple, not
    a frozen dataclass: an import of 10^5 events builds one each, three times
    faster.)
    """

    position: int
    stream_id: str
    version: int
    type: str
    schema_version: int
    data: str
    meta: Meta
    recorded_at: datetime


@runtime_checkable
class EventStore(Protocol):
    """An append-only log of events with global positions and per-stream versions.

    Every backend passes the same contract suite (tests/events/test_store_contract.py).
    """

    @property
    def location(self) -> str:
        """Where the log is, as `open_store` takes it (a path or a URL), for messages."""
        ...

    @property
    def max_event_bytes(self) -> int:
        """The largest encoded data of one event this store accepts."""
        ...

    @property
    def readonly(self) -> bool:
        """True when the store was opened read-only: every write raises `StoreUnavailable`."""
        ...

    @property
    def closed(self) -> bool:
        """True once `aclose()` has begun."""
        ...

    @property
    def checkpoints(self) -> CheckpointStore:
        """The projections' checkpoints and snapshots, kept in this log."""
        ...

    @property
    def leases(self) -> LeaseStore:
        """Who drives which agent and run, kept in this log."""
        ...

    async def open(self) -> Self:
        """Open the log. Raises `StoreError` (or a subclass) if it cannot be opened."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        *,
        expected_version: ExpectedVersion = ...,
    ) -> list[RecordedEvent]:
        """Append `events` to `stream_id` atomically; durable when this returns.

        Raises `VersionConflict` (nothing written) when `expected_version` does
        not match, `EventTooLarge` / `InvalidEvent` before anything is queued.
        """
        ...

    async def read_stream(
        self,
        stream_id: str,
        *,
        after_version: int = 0,
        limit: int | None = None,
        lenient: bool = False,
    ) -> list[RecordedEvent]:
        """Events of one stream in version order."""
        ...

    async def read_all(
        self,
        *,
        after: int = 0,
        until: int | None = None,
        where: EventFilter | None = None,
        limit: int | None = None,
        lenient: bool = False,
    ) -> list[RecordedEvent]:
        """One page of the whole log in position order: `after < position <= until`."""
        ...

    def iter_all(
        self,
        *,
        after: int = 0,
        until: int | None = None,
        where: EventFilter | None = None,
        lenient: bool = False,
        page: int = ...,
    ) -> AsyncIterator[RecordedEvent]:
        """Every matching event after `after` up to `until` (or the head), page by page."""
        ...

    def subscribe(
        self, *, after: int = 0, where: EventFilter | None = None, lenient: bool = True
    ) -> AsyncIterator[RecordedEvent]:
        """Catch up from `after`, then follow live appends, with no gap and no duplicate.

        Unknown types come back as `UnknownEvent` unless `lenient=False`.
        """
        ...

    async def head(self) -> int:
        """The last position in the log (0 when empty)."""
        ...

    async def stream_version(self, stream_id: str) -> int:
        """The last version of a stream (0 when it does not exist)."""
        ...

    async def import_run(self, run_id: str, events: Iterable[ImportedEvent]) -> int:
        """Write another log's run in one transaction; returns the first new position.

        `events` is iterated once, in order; it may be lazy and block (it may
        read a spool file), so a backend takes it on a worker thread.

        The events get the positions after the head, in the order given;
        their stream versions, data, meta and `recorded_at` are kept, and each
        `causation_id` becomes the new position of its cause (None when the
        cause is not among `events`). Raises `ImportConflict` naming the
        streams of `events` that exist already, `StoreClosed`,
        `StoreUnavailable`; in every case nothing is written. The events are
        trusted to be checked (`parse_export` does: versions from 1, data of
        its type, sizes): the store checks only what needs the log.
        """
        ...

    async def aclose(self) -> None:
        """Close the store; safe to call twice."""
        ...
