"""`GET /v1/events/stream`: the log as Server-Sent Events, resumable, filtered, bounded.

A stream first catches up (from `Last-Event-ID`, else `?from=`, else nothing:
only new events), from the broadcaster's ring of recent frames or by reading
the log in pages, then subscribes to the app's one broadcaster (see
`_broadcast.py` for the seam and the bounds). Each SSE `id` is the event's
position and each `data` is the event's JSON; there is no `event:` field, so
`EventSource.onmessage` sees every event.

Notes (do not fix without reading this):
1. Every way a stream ends runs the generator's `finally`, which removes the
   subscriber: a clean end, a client disconnect (sse-starlette cancels the
   task group; cancellation reaches the generator or, while it is suspended
   at `yield`, sse-starlette `aclose()`s it), a cut-off, an abort, a send
   timeout, and server shutdown (`Broadcaster.end_streams`). A test kills
   connections abruptly and checks the subscriber count returns to zero.
2. A cut-off subscriber's stream ends with a comment saying why; the client
   resumes with Last-Event-ID. One cut off while stuck in a send (its client
   stopped reading) is aborted at once: the comment could never be
   delivered. A stream whose socket accepts nothing for `sse_send_timeout_s`
   is aborted too (sse-starlette's `send_timeout`), whatever it was doing.
3. Bounded: a stream holds at most about `take_bytes` it has taken and not
   sent (a catch-up page from the log is sized from the last one to about
   four times that; from the ring it takes `take_bytes` at a time), and
   small frames are joined into chunks of at most `take_bytes`, a larger
   frame being sent alone (not copied). A page read from the log is held as
   its frames only: its events (their text and envelopes, as much again)
   were kept while the page was sent, and 200 clients catching up from 0 at
   once peaked 140 MB higher. Every send is counted on the
   stream's `Outlet`, so the broadcaster sees what is stuck in a send. The
   socket's kernel send buffer is fixed at `SOCKET_BUFFER_BYTES` (Linux
   would grow it to 4 MiB for a client that does not read): a reader that
   stops shows as stuck after a few hundred KiB, and is cut off sooner.
4. It subscribes once it is at most `Broadcaster.subscribe_lag` events
   behind, so a reconnect from far back does not start over the live lag
   bound; until then it catches up on its own, page by page.
5. A stream may start after a position the broadcaster has not fanned out
   yet: with no position given it starts at the log's head, read from the
   store, and the broadcaster follows the log a little behind (at once for
   this process's appends, at the next poll for another process's). It then
   subscribes at the broadcaster's position and skips what it already has.
   (Catching up from the ring there found nothing to take and never awaited:
   the loop spun and the server hung.)
6. A catch-up from the ring never awaits while the socket takes what is
   written, so a client that resets its connection then goes unnoticed until
   the catch-up ends (up to `sse_recent_bytes`): every chunk was written to
   the dead transport, each a "socket.send() raised exception" warning from
   asyncio. A send to a connection that is closing ends the stream instead.
7. A stream opened without a position starts with `id: <head>` and no data:
   an EventSource sets its lastEventId from it and fires no event. Without
   it, a client that lost the connection before its first event (a filter
   that matched nothing yet, a server restart) reconnected without
   Last-Event-ID, got "only new events" and missed those written meanwhile.
   A stream given a position does not repeat it: a client that counts `id:`
   lines as events sees no phantom one on a reconnect.
8. At most `sse_max_streams` streams are open at once; one more is 503 with
   `Retry-After` (EventSource gives up on a 503: a client that wants to
   come back retries itself). Each stream catching up from the log holds a
   page of up to about 1 MiB while it sends it: 1,000 clients reconnecting
   from 0 at once would have held about 1 GB.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from events import EventFilter

from ._bodies import parse_query
from ._broadcast import Broadcaster, Outlet, Subscriber, sse_frame
from ._models import StreamQuery
from ._state import Services, services
from ._transport import connection_of
from .errors import HTTPProblem

__all__ = ["CATCH_UP_PAGE", "stream_events"]

logger = logging.getLogger(__name__)

CATCH_UP_PAGE = 500
"""The most events read from the log per catch-up page (fewer when they are large; note 3)."""
FIRST_PAGE = 64
"""Events in the first catch-up page, before their size is known."""
RETRY_STREAM_S = 5
"""The `Retry-After` of a stream refused because too many are open (note 8)."""
SOCKET_BUFFER_BYTES = 64 * 1024
"""The kernel send buffer of a stream's socket (note 3)."""

_DIGITS = re.compile(r"[0-9]{1,19}")


class _EventStream(EventSourceResponse):
    """sse-starlette's response, counting its sends on its `Outlet` (note 3) and aborting its
    connection when a send times out (note 2)."""

    def __init__(self, broadcaster: Broadcaster, outlet: Outlet, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._broadcaster = broadcaster
        self._outlet = outlet

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        outlet, broadcaster = self._outlet, self._broadcaster

        async def counted_send(message: Message) -> None:
            if message["type"] != "http.response.body":
                await send(message)
                return
            if connection is not None and connection.closing:
                # The client is gone (note 6): end the stream here, not after the ring.
                cancel_scope.cancel()
                await anyio.lowlevel.checkpoint()
            outlet.sending = len(message.get("body", b""))
            outlet.sends += 1
            outlet.in_send = True
            try:
                await send(message)
            finally:
                outlet.in_send = False
                outlet.sending = 0

        try:
            with anyio.CancelScope() as cancel_scope:
                connection = connection_of(scope)
                if connection is not None:
                    connection.limit_send_buffer(SOCKET_BUFFER_BYTES)
                outlet.attach(cancel_scope.cancel, connection)
                broadcaster.open_outlet(outlet)
                try:
                    await super().__call__(scope, receive, counted_send)
                finally:
                    broadcaster.close_outlet(outlet)
        except SendTimeoutError:
            reason = f"its socket accepted nothing for {self.send_timeout}s"
            broadcaster.abort(outlet, reason)
            logger.info("aborted an SSE stream to %s: %s", scope.get("client"), reason)
        if outlet.aborted:
            logger.debug("SSE stream to %s aborted: %s", scope.get("client"), outlet.aborted)


async def stream_events(request: Request) -> _EventStream:
    """`GET /v1/events/stream`: Server-Sent Events from a position, filtered, then live."""
    app = services(request)
    query = parse_query(StreamQuery, request, lists=("type", "stream_id"))
    after = _resume_from(request, query)
    head = await app.store.head()
    announce = after is None  # the client holds no position yet: tell it this one (note 7)
    if after is None:
        after = head  # only new events: everything after the head as of this request
    elif after > head:
        raise HTTPProblem(
            400, "Invalid resume position",
            f"position {after} is beyond the head of the log ({head}); "
            "resume from a position you received",
            slug="invalid-position",
        )  # fmt: skip
    where = _filter(query)
    config = app.config
    if app.broadcaster.open_streams >= config.sse_max_streams:  # note 8
        raise HTTPProblem(
            503, "Too many streams",
            f"{app.broadcaster.open_streams} event streams are open, the most this server "
            "keeps at once (ApiConfig.sse_max_streams); retry later",
            slug="too-many-streams", headers={"Retry-After": str(RETRY_STREAM_S)},
        )  # fmt: skip
    outlet = Outlet()
    # Counted from now, not from when the response starts, so that no await a middleware
    # may add in between lets requests arriving together miss each other (note 8).
    # `_EventStream` closes it on every path.
    app.broadcaster.open_outlet(outlet)
    return _EventStream(
        app.broadcaster,
        outlet,
        _frames(app, after, where, outlet, announce=announce),
        ping=config.sse_ping_s,
        sep="\n",
        send_timeout=config.sse_send_timeout_s,
        ping_message_factory=lambda: ServerSentEvent(comment="ping", sep="\n"),
        headers={"Cache-Control": "no-store"},
    )


def _resume_from(request: Request, query: StreamQuery) -> int | None:
    header = request.headers.get("last-event-id")
    if header is not None and header.strip():
        value = header.strip()
        if not _DIGITS.fullmatch(value) or int(value) > 2**62:
            raise HTTPProblem(
                400, "Invalid Last-Event-ID",
                "Last-Event-ID must be an event position (a whole number >= 0), "
                f"got {value[:40]!r}",
                slug="invalid-last-event-id",
            )  # fmt: skip
        return int(value)
    return query.from_


def _filter(query: StreamQuery) -> EventFilter | None:
    if not (query.run_id or query.agent_id or query.type or query.stream_id):
        return None
    return EventFilter.of(
        stream_ids=query.stream_id, types=query.type, run_id=query.run_id, agent_id=query.agent_id
    )


async def _frames(
    app: Services, after: int, where: EventFilter | None, outlet: Outlet, *, announce: bool
) -> AsyncIterator[bytes]:
    broadcaster = app.broadcaster
    take = broadcaster.take_bytes
    subscriber: Subscriber | None = None
    try:
        start = b"retry: %d\n" % app.config.sse_retry_ms
        if announce:
            start += b"id: %d\n" % after  # no data: no event, a Last-Event-ID (note 7)
        ready: list[bytes] = [start + b"\n"]
        last = after
        page = FIRST_PAGE
        # Catch up (note 4): from the ring when it reaches back, else from the log.
        while True:
            if last > broadcaster.position:
                # The log's head moved before the broadcaster fanned it out (another
                # process appended, or its wake-up has not run yet): follow from what it
                # has fanned out; the live loop skips the frames up to `last` (note 5).
                subscriber = broadcaster.subscribe(where, outlet)
                break
            if broadcaster.position - last <= broadcaster.subscribe_lag and broadcaster.reaches(
                last
            ):
                # Same synchronous step as `reaches`: the seam is exact (_broadcast note 3).
                subscriber = broadcaster.subscribe(where, outlet, after=last)
                break
            taken = broadcaster.take_after(last, take, where)
            if taken is not None:
                frames, last = taken
                ready.extend(frame.data for frame in frames)
            else:
                encoded, last = await _log_page(app, last, broadcaster.position, where, page)
                page = _next_page(encoded, page, 4 * take)
                ready.extend(encoded)
            for data in _chunks(ready, take):
                yield data
            ready = []
        for data in _chunks(ready, take):
            yield data
        while batch := await subscriber.next_batch(take):
            if batch[0].position <= last:
                batch = [frame for frame in batch if frame.position > last]
                if not batch:
                    continue
            last = batch[-1].position
            if len(batch) == 1:
                yield batch[0].data
            else:
                for data in _chunks([frame.data for frame in batch], take):
                    yield data
        if subscriber.state == "cut_off":
            yield b": cut off: %s; reconnect with Last-Event-ID\n\n" % subscriber.reason.encode()
    finally:
        if subscriber is not None:
            broadcaster.unsubscribe(subscriber)


async def _log_page(
    app: Services, after: int, until: int, where: EventFilter | None, page: int
) -> tuple[list[bytes], int]:
    """Up to `page` events after `after` from the log, as frames, and the position they
    reach; the events themselves are gone before a frame is sent (note 3)."""
    events = await app.store.read_all(
        after=after, until=until, where=where, limit=page, lenient=True
    )
    reached = events[-1].position if len(events) == page else until
    return [sse_frame(event) for event in events], reached


def _next_page(encoded: list[bytes], page: int, page_bytes: int) -> int:
    """The next catch-up page size: about `page_bytes` of events the size of the last ones."""
    if not encoded:
        return page
    average = max(1, sum(len(data) for data in encoded) // len(encoded))
    return max(1, min(CATCH_UP_PAGE, page_bytes // average))


def _chunks(frames: list[bytes], limit: int) -> Iterator[bytes]:
    """`frames` joined into as few chunks as possible of at most `limit` bytes; a frame of
    `limit` bytes or more is its own chunk, not copied (note 3)."""
    start, size = 0, 0
    for i, frame in enumerate(frames):
        if size and size + len(frame) > limit:
            yield frames[start] if i - start == 1 else b"".join(frames[start:i])
            start, size = i, 0
        size += len(frame)
    if start < len(frames):
        yield frames[start] if len(frames) - start == 1 else b"".join(frames[start:])
