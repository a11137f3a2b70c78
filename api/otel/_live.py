"""The live exporter: a subscriber of the log that sends spans as their events arrive.

It folds each new event into the span mapping, sends the spans that finished,
and only then saves its position, with the mapping's state (the spans still
open), through a `PositionStore`. After a restart it goes on from there: no
span is skipped, and none is sent twice unless the process died between the
receiver's answer and the save (then the same span is sent again with the
same ids, which a tracing back end keeps once).

Notes (do not fix without reading this):
1. `PositionStore` is this module's own narrow seam (load / save a position
   with a state). `CheckpointPositions` keeps it in the log's own
   `CheckpointStore` (`store.checkpoints`, the projections' too), under a name
   no projection uses.
2. A receiver that is down or refuses is retried (with a growing pause, at
   most `max_retry_s`) with the same spans; the exporter does not read further
   meanwhile, so its lag grows and `/metrics` shows it.
3. A saved state of another mapping version is not trusted: the state is
   rebuilt by folding the log up to the saved position without sending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self

from events import Checkpoint, CheckpointStore, EventStore, RecordedEvent
from projections._checkpoints import decode_state, encode_state

from ._export import BATCH_SPANS, SpanSender
from ._mapping import DEFAULT_MAX_CONTENT_CHARS, SpanMapper, SpanRecord
from .errors import ExportFailed

__all__ = ["CheckpointPositions", "LiveExporter", "PositionStore", "SavedPosition"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SavedPosition:
    """Where the exporter stood: the last position sent, and the mapping's state then."""

    position: int
    version: int
    state: dict[str, Any] | None


class PositionStore(Protocol):
    """Where the live exporter keeps its position between runs (note 1)."""

    async def load(self) -> SavedPosition | None:
        """The saved position, or None before the first save."""
        ...

    async def save(self, saved: SavedPosition) -> None:
        """Save position and state together (atomically)."""
        ...


class CheckpointPositions:
    """`PositionStore` on the log's own checkpoint store, under a name of its own (note 1)."""

    def __init__(self, checkpoints: CheckpointStore, name: str) -> None:
        self.name = name
        self._checkpoints = checkpoints

    async def load(self) -> SavedPosition | None:
        found = (await self._checkpoints.load_checkpoints()).get(self.name)
        if found is None:
            return None
        return SavedPosition(found.position, found.version, decode_state(found.state))

    async def save(self, saved: SavedPosition) -> None:
        state = encode_state(saved.state)
        await self._checkpoints.save_checkpoints(
            [Checkpoint(self.name, saved.version, saved.position, state)]
        )


class LiveExporter:
    """Follows the log and sends its spans to an OTLP receiver, resuming where it stopped.

    An async context manager: entering loads the saved position and starts
    following; leaving stops (what was sent is saved already).
    """

    def __init__(
        self,
        store: EventStore,
        sender: SpanSender,
        positions: PositionStore,
        *,
        content: bool = False,
        max_content_chars: int = DEFAULT_MAX_CONTENT_CHARS,
        batch_events: int = 2000,
        max_retry_s: float = 30.0,
    ) -> None:
        self._store = store
        self._sender = sender
        self._positions = positions
        self._mapper = SpanMapper(content=content, max_content_chars=max_content_chars)
        self._batch_events = batch_events
        self._max_retry_s = max_retry_s
        self._task: asyncio.Task[None] | None = None
        self.position = 0
        self.spans_sent = 0
        self.failures = 0
        self.failure: str | None = None

    @property
    def running(self) -> bool:
        """True while it follows the log."""
        return self._task is not None and not self._task.done()

    @property
    def endpoint(self) -> str:
        return self._sender.endpoint

    async def __aenter__(self) -> Self:
        saved = await self._positions.load()
        if saved is not None:
            await self._restore(saved)
        self._task = asyncio.create_task(self._follow(), name="fleet-otel-live")
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop following; safe to call twice."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _restore(self, saved: SavedPosition) -> None:
        self.position = saved.position
        if saved.version == SpanMapper.VERSION and saved.state is not None:
            try:
                self._mapper.load(saved.state)
                return
            except (ValueError, KeyError, TypeError) as e:
                logger.warning("live export state not usable (%s); rebuilding it", e)
        # Note 3: fold up to the saved position again, sending nothing.
        async for event in self._store.iter_all(after=0, until=saved.position, lenient=True):
            self._mapper.apply(event)

    async def _follow(self) -> None:
        queue: asyncio.Queue[RecordedEvent] = asyncio.Queue(maxsize=self._batch_events * 4)

        async def read() -> None:
            async for event in self._store.subscribe(after=self.position):
                await queue.put(event)

        reader = asyncio.create_task(read(), name="fleet-otel-read")
        try:
            while True:
                batch = [await self._next(queue, reader)]
                while len(batch) < self._batch_events and not queue.empty():
                    batch.append(queue.get_nowait())
                spans: list[SpanRecord] = []
                for event in batch:
                    spans.extend(self._mapper.apply(event))
                await self._send(spans)
                last = batch[-1].position
                await self._positions.save(
                    SavedPosition(last, SpanMapper.VERSION, self._mapper.dump())
                )
                self.position = last
        except Exception as e:
            self.failure = f"{type(e).__name__}: {e}"
            logger.error("live OTLP export stopped at position %d: %s", self.position, e)
            raise
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def _next(
        self, queue: asyncio.Queue[RecordedEvent], reader: asyncio.Task[None]
    ) -> RecordedEvent:
        getter = asyncio.ensure_future(queue.get())
        try:
            await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            getter.cancel()
            raise
        if getter.done():
            return getter.result()
        getter.cancel()
        reader.result()  # re-raises what stopped the reader
        raise ExportFailed("the log's subscription ended")

    async def _send(self, spans: list[SpanRecord]) -> None:
        # One batch at a time, each retried until taken: a batch taken is never sent again.
        for start in range(0, len(spans), BATCH_SPANS):
            batch = spans[start : start + BATCH_SPANS]
            pause = 0.05
            while not await self._sender.send(batch):
                self.failures += 1
                where = self._sender.endpoint
                self.failure = self._sender.failed(
                    f"the receiver at {where} did not take {len(batch)} spans"
                )
                logger.warning("%s; retrying in %.2f s", self.failure, pause)
                await asyncio.sleep(pause)
                pause = min(self._max_retry_s, pause * 2)
            self.failure = None
            self.spans_sent += len(batch)
