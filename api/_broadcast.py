"""One broadcaster per app: it follows the log and fans each event out to the SSE subscribers.

The broadcaster reads the log once (`store.subscribe`), encodes each event once
into its SSE frame (the bytes every subscriber is sent) and keeps the recent
frames in one shared ring. A subscriber is a cursor into that ring (the last
position it took) and a filter; on each wake-up it takes the frames after its
cursor, at most about `take_bytes` at a time, and the stream writes them.

Each SSE response is also an `Outlet`: what the broadcaster knows of its
connection (the bytes it has handed to the server and the server has not
written yet, whether it is stuck in a send) and how to end it at once.

Notes (do not fix without reading this):
1. Bounded, never blocking: the broadcaster never waits for a subscriber.
   One that lags more than `queue_limit` events, or that is stuck in a send
   (its client stopped reading) while more than `lag_bytes` wait for it, is
   cut off at the next flush: removed, and if stuck its connection is
   aborted at once (buffers dropped), not after the send timeout. The client
   reconnects with its Last-Event-ID and catches up from the log.
2. Frames are shared: the ring holds each frame once, whatever the number
   of subscribers; publishing an event costs the same for 1 or 1,000 of
   them. Memory is the ring (`max(recent, queue_limit)` frames, at most
   `recent_bytes`) plus, per stream, what it took and has not written: at
   most about `take_bytes` (or one frame) taken, plus the server's write
   buffer (asyncio pauses a send past 64 KiB). Across streams, what is held
   by streams stuck in a send is bounded by `buffer_bytes`: past it the
   largest are aborted (checked at each flush and every `sweep_s`).
3. The seam: `subscribe()` registers synchronously (no await), at
   `broadcaster.position` at that instant; the frames up to it come from the
   ring (`frames_after()`, also synchronous) or the log. Both in one
   synchronous step is exact: no gap, no duplicate. The stream also skips
   anything at or before its last position.
4. Wake-ups are coalesced: at most one flush per interval (leading edge: an
   idle stream is woken at once). The interval grows with the subscribers,
   `subscribers / wakeups_per_s` capped at `flush_interval`, so one subscriber
   is woken for every event (no added delay) while many share a bounded
   number of wake-ups per second, each carrying many frames.
5. `aclose()` cancels the follower until it is done, not once: on Python
   3.11, `asyncio.wait_for` (used inside `store.subscribe`) can swallow a
   cancellation that lands as its timeout fires, and the follower would go
   on forever.
6. "Stuck in a send" is `Outlet.in_send` seen from a flush: the server's
   `send()` returns at once unless the transport paused writing (its buffer
   is past the high-water mark because the client is not reading), so a
   stream found inside a send by a loop callback is waiting on its client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from types import TracebackType
from typing import Literal, Protocol, Self

from events import EventFilter, EventStore

from ._frames import Frame, Ring, sse_frame

__all__ = [
    "Broadcaster",
    "ConnectionControl",
    "Frame",
    "Outlet",
    "Subscriber",
    "sse_frame",
]

logger = logging.getLogger(__name__)


async def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel `task` and wait for it, cancelling again if a cancel is lost (note 5)."""
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=0.01)
    if not task.cancelled() and task.exception() is not None:
        logger.error("the SSE broadcaster failed", exc_info=task.exception())


class ConnectionControl(Protocol):
    """What an outlet may do to its connection (`api._transport.Connection` under uvicorn)."""

    def write_buffer_size(self) -> int: ...

    def abort(self) -> None: ...


class Outlet:
    """One SSE response as the broadcaster sees it: what it holds unwritten, how to end it.

    The stream sets `in_send`/`sending` around each send (`_sse.py`). `held()`
    is what the response has handed to the server that the client has not
    read: the send in progress plus the transport's write buffer (when the
    server exposes it; see `api/_transport.py`).
    """

    __slots__ = ("_cancel", "_connection", "aborted", "in_send", "sending", "sends")

    def __init__(self) -> None:
        self._cancel: Callable[[], object] | None = None
        self._connection: ConnectionControl | None = None
        self.in_send = False
        """True while the response is inside the server's send (note 6)."""
        self.sending = 0
        """Bytes of the send in progress."""
        self.sends = 0
        """Sends begun: a stream whose count stays put while `in_send` has not moved on."""
        self.aborted = ""
        """Why the broadcaster ended this response ("" while it has not)."""

    def attach(self, cancel: Callable[[], object], connection: ConnectionControl | None) -> None:
        """Set how to end the response: abort its connection, else cancel its task."""
        self._cancel = cancel
        self._connection = connection

    def held(self) -> int:
        """Bytes handed to the server and not written to the socket yet (as far as known)."""
        buffered = self._connection.write_buffer_size() if self._connection is not None else 0
        return self.sending + buffered

    def abort(self, reason: str) -> None:
        """End the response now: drop its connection (and what it buffers), else cancel it."""
        if self.aborted:
            return
        self.aborted = reason
        if self._connection is not None:
            self._connection.abort()
        elif self._cancel is not None:
            self._cancel()


class Subscriber:
    """One SSE client's place in the broadcast: a cursor into the shared ring and a filter."""

    __slots__ = ("_broadcaster", "_wake", "cursor", "limit", "outlet", "reason", "state", "where")

    def __init__(
        self,
        broadcaster: Broadcaster,
        where: EventFilter | None,
        limit: int,
        outlet: Outlet | None = None,
    ) -> None:
        self._broadcaster = broadcaster
        self.where = where
        self.limit = limit
        self.outlet = outlet
        self.cursor = broadcaster.position
        """The last position this subscriber took (or skipped, by its filter)."""
        self.state: Literal["open", "cut_off", "closed"] = "open"
        self.reason = ""
        self._wake = asyncio.Event()

    @property
    def pending(self) -> int:
        """Events of the log between this subscriber and the broadcaster (0 once ended)."""
        return max(0, self._broadcaster.position - self.cursor) if self.state == "open" else 0

    async def next_batch(self, max_bytes: int | None = None) -> list[Frame]:
        """The matching frames ready now (about `max_bytes` of them at most, at least one;
        default the broadcaster's `take_bytes`), waiting for one if none is; [] once cut
        off or closed."""
        broadcaster = self._broadcaster
        limit = broadcaster.take_bytes if max_bytes is None else max_bytes
        while self.state == "open":
            if self.cursor < broadcaster.position:
                taken = broadcaster._ring.take(self.cursor, limit, self.where)
                if taken is None:  # fell out of the ring before a flush could cut it off
                    broadcaster._cut_off(self, "it fell behind the recent events kept")
                    return []
                frames, self.cursor = taken
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
        take_bytes: about how much a subscriber takes from the ring at a time.
        lag_bytes: how many bytes may wait for a subscriber stuck in a send
            (its client stopped reading) before it is cut off (note 1).
        buffer_bytes: the most all streams stuck in a send may hold (note 2).
        sweep_s: how often `buffer_bytes` is checked when no event arrives.
    """

    def __init__(
        self,
        store: EventStore,
        *,
        queue_limit: int = 1024,
        recent: int = 4096,
        recent_bytes: int = 16 * 1024 * 1024,
        flush_interval: float = 0.02,
        wakeups_per_s: float = 10_000,
        take_bytes: int = 64 * 1024,
        lag_bytes: int = 1024 * 1024,
        buffer_bytes: int = 32 * 1024 * 1024,
        sweep_s: float = 1.0,
    ) -> None:
        self._store = store
        self._queue_limit = queue_limit
        self._ring = Ring(max(recent, queue_limit, 1) + 1, recent_bytes)
        self._flush_interval = flush_interval
        self._wakeups_per_s = wakeups_per_s
        self.take_bytes = take_bytes
        self._lag_bytes = lag_bytes
        self._buffer_bytes = buffer_bytes
        self._sweep_s = sweep_s
        self._subscribers: dict[int, Subscriber] = {}
        self._outlets: dict[int, Outlet] = {}
        self._flush_handle: asyncio.Handle | None = None
        self._sweep_handle: asyncio.TimerHandle | None = None
        self._last_flush = 0.0
        self._position = 0
        self._task: asyncio.Task[None] | None = None
        self._state: Literal["new", "open", "closed"] = "new"
        self._accepting = True
        self.cut_offs = 0
        """How many subscribers were cut off for falling behind, since the start."""
        self.aborts = 0
        """How many streams were ended by aborting their connection, since the start."""
        self.failure: BaseException | None = None
        """Why the broadcaster stopped following the log, if it did."""

    # -- lifecycle ----------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._state != "new":
            raise RuntimeError(f"the broadcaster is already {self._state}")
        self._position = await self._store.head()
        self._ring.reset(self._position)  # it reaches back to here, no further
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
        for handle in (self._flush_handle, self._sweep_handle):
            if handle is not None:
                handle.cancel()
        self._flush_handle = self._sweep_handle = None
        if self._task is not None:
            await _cancel(self._task)

    def end_streams(self, reason: str, *, grace: float | None = None) -> None:
        """End every subscriber's stream now and refuse new ones (server shutdown).

        Each stream ends after the chunk it is sending; a client reconnects
        with its Last-Event-ID to another (or the restarted) server. With
        `grace`, streams still open that many seconds later (their client
        stopped reading, so a send is stuck) are aborted.
        """
        self._accepting = False
        if grace is not None and self._outlets:
            asyncio.get_running_loop().call_later(grace, self._abort_outlets, reason)
        for subscriber in list(self._subscribers.values()):
            subscriber._end("closed", reason)
        self._subscribers.clear()

    def open_outlet(self, outlet: Outlet) -> None:
        """Count a response as open (its buffers are bounded from now on) until `close_outlet`."""
        self._outlets[id(outlet)] = outlet
        if self._sweep_handle is None and self._state == "open":
            loop = asyncio.get_running_loop()
            self._sweep_handle = loop.call_later(self._sweep_s, self._sweep)

    def close_outlet(self, outlet: Outlet) -> None:
        """The response ended. Safe to call twice."""
        self._outlets.pop(id(outlet), None)

    def _abort_outlets(self, reason: str) -> None:
        if self._outlets:
            logger.info("aborting %d SSE stream(s) still open: %s", len(self._outlets), reason)
        for outlet in list(self._outlets.values()):
            self.abort(outlet, reason)

    def abort(self, outlet: Outlet, reason: str) -> None:
        """End a stream's response now (see `Outlet.abort`), and count it. Safe to call twice."""
        if not outlet.aborted:
            self.aborts += 1
            outlet.abort(reason)

    @property
    def position(self) -> int:
        """The last position fanned out (the log's head when it started, before any event)."""
        return self._position

    @property
    def subscriber_count(self) -> int:
        """How many subscribers are registered (each is one open SSE stream in its live phase)."""
        return len(self._subscribers)

    @property
    def open_streams(self) -> int:
        """SSE responses open on this broadcaster (catching up or live)."""
        return len(self._outlets)

    @property
    def held_bytes(self) -> int:
        """What the open streams hold unwritten (sends in progress and server buffers), now."""
        return sum(outlet.held() for outlet in self._outlets.values())

    @property
    def ring_bytes(self) -> int:
        """Bytes of the recent frames kept in the ring, now."""
        return self._ring.held_bytes

    @property
    def running(self) -> bool:
        """True while it follows the log."""
        return self._state == "open" and self._task is not None and not self._task.done()

    # -- subscribers ----------------------------------------------------------

    def subscribe(
        self,
        where: EventFilter | None = None,
        outlet: Outlet | None = None,
        *,
        after: int | None = None,
    ) -> Subscriber:
        """Register a subscriber for every matching event after `after` (default `position`).

        `after` must be one the ring reaches back to (`reaches`), checked in the
        same synchronous step (note 3); the subscriber then takes the frames
        from there. `outlet` is its stream's response, ended at once if it is
        cut off while stuck in a send (note 1). After `aclose()` (or a
        failure) the subscriber comes back closed: its stream ends at once.

        Raises `ValueError` for an `after` the ring does not reach.
        """
        if after is not None and not self.reaches(after):
            raise ValueError(f"the recent frames do not reach back to position {after}")
        subscriber = Subscriber(self, where, self._queue_limit, outlet)
        if after is not None:
            subscriber.cursor = after
        if self.running and self._accepting:
            self._subscribers[id(subscriber)] = subscriber
        else:
            subscriber._end("closed", "the server is shutting down")
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Remove a subscriber (its stream ended). Safe to call twice."""
        self._subscribers.pop(id(subscriber), None)
        subscriber._end("closed", "unsubscribed")

    @property
    def subscribe_lag(self) -> int:
        """How far behind (in events) a stream may subscribe; it catches up to that first."""
        return max(0, self._queue_limit // 2)

    def reaches(self, position: int) -> bool:
        """True if the ring holds every frame after `position` (up to `position` now)."""
        return position <= self._position and self._ring.reaches(position)

    def take_after(
        self, position: int, max_bytes: int, where: EventFilter | None = None
    ) -> tuple[list[Frame], int] | None:
        """About `max_bytes` of the matching frames after `position` from the ring, and the
        last position looked at; None when the ring does not reach back that far."""
        return self._ring.take(position, max_bytes, where)

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
        cut: list[tuple[Subscriber, str]] = []
        for subscriber in self._subscribers.values():
            lag = head - subscriber.cursor
            if lag > subscriber.limit:
                cut.append((subscriber, f"more than {subscriber.limit} events behind"))
            elif lag > 0:
                outlet = subscriber.outlet
                if outlet is not None and outlet.in_send:
                    waiting = self._ring.bytes_after(subscriber.cursor)
                    unwritten = None if waiting is None else waiting + outlet.held()
                    if unwritten is None or unwritten > self._lag_bytes:
                        shown = "more" if unwritten is None else f"{unwritten}"
                        cut.append((subscriber, f"not reading, {shown} bytes waiting"))
                        continue
                subscriber._wake.set()
        for subscriber, reason in cut:
            self._cut_off(subscriber, f"{reason} at position {head}")
        self._bound_buffers()

    def _sweep(self) -> None:
        self._sweep_handle = None
        self._bound_buffers()
        if self._outlets and self._state == "open":
            loop = asyncio.get_running_loop()
            self._sweep_handle = loop.call_later(self._sweep_s, self._sweep)

    def _bound_buffers(self) -> None:
        """Abort the streams stuck in a send holding the most, until all hold `buffer_bytes`."""
        stuck = [
            (o.held(), id(o), o) for o in self._outlets.values() if o.in_send and not o.aborted
        ]
        total = sum(held for held, _, _ in stuck)
        if total <= self._buffer_bytes:
            return
        stuck.sort(reverse=True, key=lambda item: item[:2])
        for held, _, outlet in stuck:
            if total <= self._buffer_bytes:
                break
            logger.info("aborting an SSE stream stuck with %d bytes unwritten", held)
            self.abort(outlet, f"the streams' buffers passed {self._buffer_bytes} bytes")
            total -= held

    def _cut_off(self, subscriber: Subscriber, reason: str) -> None:
        if self._subscribers.pop(id(subscriber), None) is None:
            return
        self.cut_offs += 1
        logger.info("cut off an SSE subscriber: %s", reason)
        subscriber._end("cut_off", reason)
        outlet = subscriber.outlet
        if outlet is not None and outlet.in_send:
            self.abort(outlet, reason)  # stuck: its client stopped reading; do not wait for it
