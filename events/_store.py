"""The event store protocol: the one seam every backend fits."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ._envelope import ExpectedVersion, NewEvent, RecordedEvent

__all__ = ["EventFilter", "EventStore"]


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events a read or a subscription wants; `None` means any."""

    stream_ids: frozenset[str] | None = None
    types: frozenset[str] | None = None
    run_id: str | None = None
    agent_id: str | None = None

    @classmethod
    def of(
        cls,
        *,
        stream_ids: Collection[str] | None = None,
        types: Collection[str] | None = None,
        run_id: str | None = None,
        agent_id: str | None = None,
    ) -> EventFilter:
        """Build a filter from any collections (empty ones mean 'any')."""
        return cls(
            stream_ids=frozenset(stream_ids) if stream_ids else None,
            types=frozenset(types) if types else None,
            run_id=run_id,
            agent_id=agent_id,
        )

    def matches(self, event: RecordedEvent) -> bool:
        """True if `event` passes this filter (the same test the SQL query makes)."""
        return (
            (self.stream_ids is None or event.stream_id in self.stream_ids)
            and (self.types is None or event.type in self.types)
            and (self.run_id is None or event.meta.run_id == self.run_id)
            and (self.agent_id is None or event.meta.agent_id == self.agent_id)
        )


@runtime_checkable
class EventStore(Protocol):
    """An append-only log of events with global positions and per-stream versions.

    Every backend passes the same contract suite (tests/events/test_store_contract.py).
    """

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

    async def aclose(self) -> None:
        """Close the store; safe to call twice."""
        ...
