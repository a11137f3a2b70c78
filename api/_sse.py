"""`GET /v1/events/stream`: the log as Server-Sent Events, resumable, filtered, bounded.

A stream first catches up (from `Last-Event-ID`, else `?from=`, else nothing:
only new events) by reading the log in pages, then switches to the app's one
broadcaster (see `_broadcast.py` for the seam and the bounds). Each SSE `id`
is the event's position and each `data` is the event's JSON; there is no
`event:` field, so `EventSource.onmessage` sees every event.

Notes (do not fix without reading this):
1. Every way a stream ends runs the generator's `finally`, which removes the
   subscriber: a clean end, a client disconnect (sse-starlette cancels the
   task group; cancellation reaches the generator or, while it is suspended
   at `yield`, sse-starlette `aclose()`s it), a cut-off, a send timeout, and
   server shutdown (`Broadcaster.end_streams`). A test kills connections
   abruptly and checks the subscriber count returns to zero.
2. A cut-off subscriber's stream ends with a comment saying why; the client
   resumes with Last-Event-ID. A stream whose socket accepts nothing for
   `sse_send_timeout_s` is closed (sse-starlette's `send_timeout`): its
   subscriber is long gone by then, this frees the connection.
3. Chunks: everything ready is written at once (a catch-up page, or every
   frame a wake-up found), not frame by frame; only a chunk over about
   `CHUNK_BYTES` is split, so a burst of large events is not one huge copy.
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
from starlette.types import Receive, Scope, Send

from events import EventFilter

from ._bodies import parse_query
from ._broadcast import Broadcaster, Subscriber, sse_frame
from ._models import StreamQuery
from ._state import Services, services
from .errors import HTTPProblem

__all__ = ["CATCH_UP_PAGE", "stream_events"]

logger = logging.getLogger(__name__)

CATCH_UP_PAGE = 500
"""Events read from the log per catch-up page."""
CHUNK_BYTES = 1024 * 1024
"""What is ready is written in one chunk, split at about this size (note 3)."""

_DIGITS = re.compile(r"[0-9]{1,19}")


class _EventStream(EventSourceResponse):
    """sse-starlette's response, closing quietly a stream whose client stopped reading (note 2).

    It registers with the broadcaster, which cancels it if it is still stuck
    in a send after server shutdown's grace period.
    """

    def __init__(self, broadcaster: Broadcaster, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._broadcaster = broadcaster

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            with anyio.CancelScope() as cancel_scope:
                untrack = self._broadcaster.track_stream(cancel_scope.cancel)
                try:
                    await super().__call__(scope, receive, send)
                finally:
                    untrack()
        except SendTimeoutError:
            logger.info(
                "closed an SSE stream to %s: its socket accepted nothing for %ss",
                scope.get("client"), self.send_timeout,
            )  # fmt: skip


async def stream_events(request: Request) -> _EventStream:
    """`GET /v1/events/stream`: Server-Sent Events from a position, filtered, then live."""
    app = services(request)
    query = parse_query(StreamQuery, request, lists=("type", "stream_id"))
    after = _resume_from(request, query)
    head = await app.store.head()
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
    return _EventStream(
        app.broadcaster,
        _frames(app, after, where),
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


async def _frames(app: Services, after: int, where: EventFilter | None) -> AsyncIterator[bytes]:
    broadcaster = app.broadcaster
    broadcaster.open_streams += 1
    subscriber: Subscriber | None = None
    try:
        chunk: list[bytes] = [b"retry: %d\n\n" % app.config.sse_retry_ms]
        last = after
        # Catch up from the log until the recent ring reaches back to `last`.
        while True:
            frames = broadcaster.frames_after(last, where)
            if frames is not None:
                # Same synchronous step as frames_after: the seam is exact (_broadcast note 3).
                subscriber = broadcaster.subscribe(where)
                chunk.extend(frame.data for frame in frames)
                last = max(last, broadcaster.position)
                break
            until = broadcaster.position
            events = await app.store.read_all(
                after=last, until=until, where=where, limit=CATCH_UP_PAGE, lenient=True
            )
            chunk.extend(sse_frame(event) for event in events)
            last = events[-1].position if len(events) == CATCH_UP_PAGE else until
            for data in _chunks(chunk):
                yield data
            chunk = []
        for data in _chunks(chunk):
            yield data
        while batch := await subscriber.next_batch():
            if batch[0].position <= last:
                batch = [frame for frame in batch if frame.position > last]
                if not batch:
                    continue
            last = batch[-1].position
            if len(batch) == 1:
                yield batch[0].data
            else:
                for data in _chunks([frame.data for frame in batch]):
                    yield data
        if subscriber.state == "cut_off":
            yield b": cut off: %s; reconnect with Last-Event-ID\n\n" % subscriber.reason.encode()
    finally:
        broadcaster.open_streams -= 1
        if subscriber is not None:
            broadcaster.unsubscribe(subscriber)


def _chunks(frames: list[bytes]) -> Iterator[bytes]:
    """`frames` joined into as few chunks as possible, each at most about `CHUNK_BYTES`."""
    start, size = 0, 0
    for i, frame in enumerate(frames):
        size += len(frame)
        if size >= CHUNK_BYTES:
            yield b"".join(frames[start : i + 1])
            start, size = i + 1, 0
    if start < len(frames):
        yield b"".join(frames[start:])
