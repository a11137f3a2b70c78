"""An agent's own stream: every append carries the version it expects, and the state follows.

    log = AgentLog(store, spec, stats)
    await log.append([log.event(AgentCommanded(...), causation)])
    log.state.status                 # folded from exactly what was appended

The agent's task is the only writer of `agent-<id>` in its process (its
appends, and those of its detached hooks when they end, and the delete that
stops it, go one at a time through a lock): an append that meets another
version means another process drives the agent, and it raises
`AgentDrivenElsewhere` with nothing written.
The state is folded from the recorded events (`_conversation.py`), never kept
on the side, so a resumed agent and a running one hold the same state. What
is appended is also copied to the agent's transcript (`_transcript.py`);
within `deferred()` (the agent's loop) its lines are written where someone may
read them (`_transcript.py`, note 3), not at every append.

Notes (do not fix without reading this):
1. An append whose caller is cancelled (the agent deleted or stopped mid-step)
   is not abandoned: the store may still commit it after the caller saw
   `CancelledError` (`events/sqlite/_writer.py`, note 5), and the next append
   of this process (the delete's AgentDeleted) would then expect a version
   the stream has left behind, a false `AgentDrivenElsewhere`. So the store's
   append runs shielded, and a cancelled caller waits for its answer and folds
   what landed before the lock is let go and the cancellation goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence

from events import (
    NO_STREAM,
    EventModel,
    EventStore,
    ExpectedVersion,
    Meta,
    NewEvent,
    RecordedEvent,
    VersionConflict,
)

from ._agent_spec import AgentSpec, AgentStats
from ._conversation import AgentState, stream_id_of
from ._transcript import Transcript
from .errors import AgentDrivenElsewhere, InvalidAgentSpec

__all__ = ["AgentLog"]


class AgentLog:
    """Appends to one agent's stream with the expected version; folds what it appends.

    Args:
        store: the event log.
        spec: the agent (its id, run and parent go into every event's meta).
        stats: where the time spent appending is counted.
    """

    def __init__(
        self,
        store: EventStore,
        spec: AgentSpec,
        stats: AgentStats,
        transcript: Transcript | None = None,
    ) -> None:
        self.store = store
        self.spec = spec
        self.stats = stats
        self.stream_id = stream_id_of(spec.agent_id)
        self.state = AgentState(spec.agent_id)
        self.transcript = transcript
        self._lock = asyncio.Lock()
        self._deferring = 0  # inside `deferred()`: transcript lines kept for `flush_transcript`

    def meta(self, causation: int | None, *, source: str = "runtime") -> Meta:
        """The meta of an event of this agent, caused by the event at `causation`."""
        return Meta(
            run_id=self.spec.run_id,
            agent_id=self.spec.agent_id,
            parent_id=self.spec.parent_id,
            causation_id=causation,
            source=source,  # type: ignore[arg-type]
        )

    def event(self, data: EventModel, causation: int | None) -> NewEvent:
        """`data` as a new event of this agent, caused by the event at `causation`."""
        return NewEvent(data, self.meta(causation))  # type: ignore[arg-type]

    async def append(
        self, events: Sequence[NewEvent], *, create: bool = False
    ) -> list[RecordedEvent]:
        """Append `events` at the version the state expects, then fold them in.

        `create=True` expects no stream at all. Raises `InvalidAgentSpec` when
        creating an agent whose stream exists, `AgentDrivenElsewhere` when
        another writer moved the stream on; nothing is written in either case.
        """
        async with self._lock:
            started = time.perf_counter()
            expected = NO_STREAM if create else self.state.version
            try:
                recorded = await self._settled_append(events, expected)
            except VersionConflict as e:
                agent_id = self.spec.agent_id
                if create:
                    raise InvalidAgentSpec(
                        "agent_id", f"an agent {agent_id!r} exists already"
                    ) from e
                raise AgentDrivenElsewhere(agent_id, self.state.version, e.actual) from e
            self.state.apply_all(recorded)
            self.stats.appends += 1
            self.stats.append_s += time.perf_counter() - started
            if self.transcript is not None:
                await self.transcript.record(recorded, keep=self._deferring > 0)
            return recorded

    @contextlib.asynccontextmanager
    async def deferred(self) -> AsyncIterator[None]:
        """Keep the transcript's lines of the appends inside for `flush_transcript`, which runs
        on the way out (`_transcript.py`, note 3)."""
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1
            if not self._deferring:
                await self.flush_transcript()

    async def flush_transcript(self) -> None:
        """Write the transcript lines kept so far (before hooks or tools read the file)."""
        if self.transcript is not None:
            await self.transcript.flush()

    async def _settled_append(
        self, events: Sequence[NewEvent], expected: ExpectedVersion
    ) -> list[RecordedEvent]:
        """The store's append, run to its end even if the caller is cancelled (note 1)."""
        pending = asyncio.ensure_future(
            self.store.append(self.stream_id, events, expected_version=expected)
        )
        try:
            return await asyncio.shield(pending)
        except asyncio.CancelledError:
            while not pending.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait([pending])
            if not pending.cancelled() and pending.exception() is None:
                self.state.apply_all(pending.result())
                if self.transcript is not None:
                    await self.transcript.record(pending.result())
            raise

    async def sync(self) -> None:
        """Fold events of the stream not seen yet (e.g. one a cancelled append still wrote)."""
        async with self._lock:
            missed = await self.store.read_stream(self.stream_id, after_version=self.state.version)
            self.state.apply_all(missed)
            if self.transcript is not None and missed:
                await self.transcript.record(missed)
