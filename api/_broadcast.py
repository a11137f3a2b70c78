"""One broadcaster per app: it follows the log and fans each event out to the SSE subscribers.

The broadcaster reads the log once (`store.subscribe`), encodes each event once
into its SSE frame (the bytes every subscriber is sent) and keeps the recent
frames in one shared ring. A subscriber is a cursor into that ring (the last
position it took) and a filter; on each wake-up it takes every frame after
its cursor at once, and the stream writes them in one chunk.

Notes (do not fix without reading this):
1. Bounded, never blocking: a subscriber may lag at most `queue_limit`
   events behind the broadcaster. The broadcaster never waits for a
   subscriber; one that lags further is cut off (removed) at the next flush
   and its stream ends, so a stalled client neither slows the others nor
   holds memory. The client reconnects with its Last-Event-ID and catches up
   from the log.
2. Frames are shared: the ring holds each frame once, whatever the number
   of subscribers; publishing an event costs the same for 1 or 1,000 of
   them, and memory is bounded by the ring (`max(recent, queue_limit)`
   frames, at most `recent_bytes`).
3. The seam: `subscribe()` registers synchronously (no await), at
   `broadcaster.position` at that instant; the frames up to it come from the
   ring (`frames_after()`, also synchronous) or the log. Both in one
   synchronous step is exact: no gap, no duplicate. The stream also skips
   anything at or before its last position.
4. Wake-ups are coalesced: at most one flush per interval (leading edge: an
   idle stream is woken at once). The interval grows with the subscribers,
   `subscribers / wakeups_per_s` capped at `flush_interval`, so one subscriber
   is woken for every event (no added delay) while many share a bounded
   number of wake-ups per second, each carrying many frames in one chunk.
5. `aclose()` cancels the follower until it is done, not once: on Python
   3.11, `asyncio.wait_for` (used inside `store.subscribe`) can swallow a
   cancellation that lands as its timeout fires, and the follower would go
   on forever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Self

from events import EventFilter, EventStore, RecordedEvent, encode_event

__all__ = ["Broadcaster", "Frame", "Subscriber", "sse_frame"]

logger = logging.getLogger(__name__)


async def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel `task` and wait for it, cancelling again if a cancel is lost (note 5)."""
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=0.01)
    if not task.cancelled() and task.exception() is not None:
        logger.error("the SSE broadcaster failed", exc_info=task.exception())


def sse_frame(event: RecordedEvent) -> bytes:
    """The event's SSE frame: `id` is its position, `data` its JSON (on one line)."""
    return b"id: %d\ndata: %s\n\n" % (event.position, encode_event(event))


@dataclass(frozen=True, slots=True)
class Frame:
    """One event's encoded SSE frame, shared by every subscriber, and what filters look at.

    Only the filter keys are kept, not the decoded event: a ring of frames is a
    few small objects each (less memory, and less for the garbage collector).
    """

    position: int
    stream_id: str
    type: str
    run_id: str | None
    agent_id: str | None
    data: bytes

    @classmethod
    def of(cls, event: RecordedEvent) -> Frame:
        """Encode `event` (once)."""
        meta = event.meta
        return cls(
            event.position, event.stream_id, event.type, meta.run_id, meta.agent_id,
            sse_frame(event),
        )  # fmt: skip

    def matches(self, where: EventFilter) -> bool:
        """The test `EventFilter.matches` makes, on the frame's keys."""
        return (
            (where.stream_ids is None or self.stream_id in where.stream_ids)
            and (where.types is None or self.type in where.types)
            and (where.run_id is None or self.run_id == where.run_id)
            and (where.agent_id is None or self.agent_id == where.agent_id)
        )


class _Ring:
    """The last frames (at most `capacity`, at most `max_bytes` of data) in a fixed list
    indexed by position: O(1) append and slice."""

    __slots__ = ("_bytes", "_capacity", "_items", "_max_bytes", "first", "last")

    def __init__(self, capacity: int, max_bytes: int) -> None:
        self._capacity = capacity
        self._max_bytes = max_bytes
        self._items: list[Frame | None] = [None] * capacity
        self._bytes = 0
        self.first = 0  # the oldest position held (0: empty)
        self.last = 0

    def append(self, frame: Frame) -> None:
        position = frame.position
        if self.first == 0 or position != self.last + 1:
            # Empty, or a gap (never from a gap-free log): start over.
            self._items = [None] * self._capacity
            self._bytes = 0
            self.first = position
        elif position - self.first >= self._capacity:
            self._drop_oldest()
        self._items[position % self._capacity] = frame
        self._bytes += len(frame.data)
        self.last = position
        while self._bytes > self._max_bytes and self.first < self.last:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        index = self.first % self._capacity
        oldest = self._items[index]
        if oldest is not None:
            self._bytes -= len(oldest.data)
            self._items[index] = None
        self.first += 1

    def after(self, position: int) -> list[Frame] | None:
        """Frames after `position` up to the last; None when the ring no longer reaches back."""
        if position >= self.last:
            return []
        if self.first == 0 or position + 1 < self.first:
            return None
        a, b = (position + 1) % self._capacity, self.last % self._capacity + 1
        items = self._items[a:b] if a < b else self._items[a:] + self._items[:b]
        return items  # type: ignore[return-value]


class Subscriber:
    """One SSE client's place in the broadcast: a cursor into the shared ring and a filter."""

    __slots__ = ("_broadcaster", "_wake", "cursor", "limit", "reason", "state", "where")

    def __init__(self, broadcaster: Broadcaster, where: EventFilter | None, limit: int) -> None:
        self._broadcaster = broadcaster
        self.where = where
        self.limit = limit
        self.cursor = broadcaster.position
        """The last position this subscriber took (or skipped, by its filter)."""
        self.state: Literal["open", "cut_off", "closed"] = "open"
        self.reason = ""
        self._wake = asyncio.Event()

    @property
    def pending(self) -> int:
        """Events of the log between this subscriber and the broadcaster (0 once ended)."""
        return max(0, self._broadcaster.position - self.cursor) if self.state == "open" else 0

    async def next_batch(self) -> list[Frame]:
        """Every matching frame ready now, waiting for one if none is; [] once cut off or closed."""
        broadcaster = self._broadcaster
        while self.state == "open":
            if self.cursor < broadcaster.position:
                frames = broadcaster._ring.after(self.cursor)
                if frames is None:  # fell out of the ring before a flush could cut it off
                    broadcaster._cut_off(self)
                    return []
                self.cursor = broadcaster.position
                if self.where is not None:
                    where = self.where
                    frames = [frame for frame in frames if frame.matches(where)]
                if frames:
                    return frames
                continue
            self._wake.clear()
            await self._wake.wait()
        return []

    def _end(self, state: Literal["cut_off", "closed"], reason: str) -> None:
        if self.state == "open":
            self.state = state
            self.reason = reason
        self._wake.set()


class Broadcaster:
    """Follows the log and fans each event out to subscribers. An async context manager.

    Args:
        store: the log to follow, from its head at `__aenter__`.
        queue_limit: how far (in events) a subscriber may lag before it is cut off.
        recent: how many recent frames to keep for reconnects (note 3); the
            ring holds `max(recent, queue_limit)` frames...
        recent_bytes: ...and at most this many bytes of them (a subscriber
            lagging beyond the ring is cut off).
        flush_interval: the longest pause between flushes (note 4).
        wakeups_per_s: the stream wake-ups per second flushes aim to stay under.
    """

    def __init__(
        self,
        store: EventStore,
        *,
        queue_limit: int = 1024,
        recent: int = 4096,
        recent_bytes: int = 64 * 1024 * 1024,
        flush_interval: float = 0.02,
        wakeups_per_s: float = 10_000,
    ) -> None:
        self._store = store
        self._queue_limit = queue_limit
        self._ring = _Ring(max(recent, queue_limit, 1) + 1, recent_bytes)
        self._flush_interval = flush_interval
        self._wakeups_per_s = wakeups_per_s
        self._subscribers: dict[int, Subscriber] = {}
        self._flush_handle: asyncio.Handle | None = None
        self._last_flush = 0.0
        self._position = 0
        self._task: asyncio.Task[None] | None = None
        self._state: Literal["new", "open", "closed"] = "new"
        self._accepting = True
        self._stream_cancels: dict[object, Callable[[], object]] = {}
        self.open_streams = 0
        """SSE responses open on this broadcaster (catching up or live); kept by the stream."""
        self.cut_offs = 0
        """How many subscribers were cut off for falling behind, since the start."""
        self.failure: BaseException | None = None
        """Why the broadcaster stopped following the log, if it did."""

    # -- lifecycle ----------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._state != "new":
            raise RuntimeError(f"the broadcaster is already {self._state}")
        self._position = await self._store.head()
        self._task = asyncio.create_task(self._follow(), name="fleet-sse-broadcaster")
        self._state = "open"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop following the log and end every subscriber's stream. Safe to call twice."""
        if self._state == "closed":
            return
        self._state = "closed"
        self.end_streams("the server is shutting down")
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._task is not None:
            await _cancel(self._task)

    def end_streams(self, reason: str, *, grace: float | None = None) -> None:
        """End every subscriber's stream now and refuse new ones (server shutdown).

        Each stream ends after the chunk it is sending; a client reconnects
        with its Last-Event-ID to another (or the restarted) server. With
        `grace`, streams still open that many seconds later (their client
        stopped reading, so a send is stuck) are cancelled.
        """
        self._accepting = False
        if grace is not None and self._stream_cancels:
            asyncio.get_running_loop().call_later(grace, self._cancel_streams)
        for subscriber in list(self._subscribers.values()):
            subscriber._end("closed", reason)
        self._subscribers.clear()

    def track_stream(self, cancel: Callable[[], object]) -> Callable[[], None]:
        """Register a stream's cancel callback (for `end_streams(grace=)`); returns its remover."""
        key = object()
        self._stream_cancels[key] = cancel
        return lambda: self._stream_cancels.pop(key, None) and None

    def _cancel_streams(self) -> None:
        if self._stream_cancels:
            logger.info("cancelling %d SSE stream(s) stuck at shutdown", len(self._stream_cancels))
        for cancel in list(self._stream_cancels.values()):
            cancel()

    @property
    def position(self) -> int:
        """The last position fanned out (the log's head when it started, before any event)."""
        return self._position

    @property
    def subscriber_count(self) -> int:
        """How many subscribers are registered (each is one open SSE stream in its live phase)."""
        return len(self._subscribers)

    @property
    def running(self) -> bool:
        """True while it follows the log."""
        return self._state == "open" and self._task is not None and not self._task.done()

    # -- subscribers ----------------------------------------------------------

    def subscribe(self, where: EventFilter | None = None) -> Subscriber:
        """Register a subscriber for every matching event after `position` (note 3).

        Synchronous on purpose. After `aclose()` (or a failure) the subscriber
        comes back closed: its stream ends at once.
        """
        subscriber = Subscriber(self, where, self._queue_limit)
        if self.running and self._accepting:
            self._subscribers[id(subscriber)] = subscriber
        else:
            subscriber._end("closed", "the server is shutting down")
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Remove a subscriber (its stream ended). Safe to call twice."""
        self._subscribers.pop(id(subscriber), None)
        subscriber._end("closed", "unsubscribed")

    def frames_after(self, position: int, where: EventFilter | None = None) -> list[Frame] | None:
        """The matching frames after `position` from the recent ring.

        None when the ring does not reach back that far (read the log instead).
        """
        frames = self._ring.after(position)
        if frames is None or where is None:
            return frames
        return [frame for frame in frames if frame.matches(where)]

    # -- following the log ----------------------------------------------------

    async def _follow(self) -> None:
        try:
            async for event in self._store.subscribe(after=self._position):
                self._publish(Frame.of(event))
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.failure = e
            logger.exception("the SSE broadcaster stopped following the log")
        finally:
            if self._state == "open":
                self.end_streams("the server stopped following the log")

    def _publish(self, frame: Frame) -> None:
        self._ring.append(frame)
        self._position = frame.position
        if self._flush_handle is None and self._subscribers:
            loop = asyncio.get_running_loop()
            interval = min(self._flush_interval, len(self._subscribers) / self._wakeups_per_s)
            delay = self._last_flush + interval - loop.time()
            if delay <= 0:
                # Soon, not now: the rest of this page of the log joins the same flush.
                self._flush_handle = loop.call_soon(self._flush)
            else:
                self._flush_handle = loop.call_later(delay, self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        self._last_flush = asyncio.get_running_loop().time()
        head = self._position
        cut: list[Subscriber] = []
        for subscriber in self._subscribers.values():
            lag = head - subscriber.cursor
            if lag > subscriber.limit:
                cut.append(subscriber)
            elif lag > 0:
                subscriber._wake.set()
        for subscriber in cut:
            self._cut_off(subscriber)

    def _cut_off(self, subscriber: Subscriber) -> None:
        if self._subscribers.pop(id(subscriber), None) is None:
            return
        self.cut_offs += 1
        lag = self._position - subscriber.cursor
        logger.info(
            "cut off an SSE subscriber %d events behind at position %d", lag, self._position
        )
        subscriber._end(
            "cut_off",
            f"more than {subscriber.limit} events behind at position {self._position}",
        )
