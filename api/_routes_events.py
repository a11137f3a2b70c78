"""The log over HTTP: `GET /v1/events` (query and page), `GET /v1/events/stream` (SSE).

Notes (do not fix without reading this):
1. A page ends at `limit` events or once it holds `ApiConfig.page_bytes` of
   them, whichever comes first, and it is read from the log in chunks sized
   from the events read so far: an event may hold up to 1 MiB, so 1,000 of
   them were a gigabyte of JSON in memory for one request (and again in the
   socket's buffer while a client that stopped reading held it). A page
   always holds at least one event when one is left; `next` goes on.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from events import EventFilter, encode_event

from ._bodies import parse_query
from ._models import MAX_PAGE, EventOut, EventPage, EventsQuery, StreamQuery
from ._openapi import Operation
from ._polling import compressed
from ._sse import stream_events
from ._state import Services, services
from .errors import HTTPProblem

__all__ = ["operations", "routes"]

FIRST_READ = 16
"""Events in a page's first read from the log, before their size is known (note 1)."""


async def list_events(request: Request) -> Response:
    """`GET /v1/events`: one page of the log, in position order, filtered."""
    app = services(request)
    query = parse_query(EventsQuery, request, lists=("type", "stream_id"))
    limit = query.limit or app.config.page_limit
    if query.until is not None and query.until < query.after:
        raise HTTPProblem(
            400, "Invalid query",
            f"until ({query.until}) is before after ({query.after}): the range is empty",
            slug="invalid-query",
        )  # fmt: skip
    where = None
    if query.run_id or query.agent_id or query.type or query.stream_id:
        where = EventFilter.of(
            stream_ids=query.stream_id, types=query.type,
            run_id=query.run_id, agent_id=query.agent_id,
        )  # fmt: skip
    head = await app.store.head()
    encoded, next_after = await _page(app, query.after, query.until, where, limit)
    # The page is assembled from each event's wire JSON: no dict per event.
    body = b'{"events":[%s],"next":%s,"head":%d}' % (
        b",".join(encoded),
        b"null" if next_after is None else b"%d" % next_after,
        head,
    )
    return await compressed(request, body)  # gzip when large and accepted


async def _page(
    app: Services, after: int, until: int | None, where: EventFilter | None, limit: int
) -> tuple[list[bytes], int | None]:
    """Up to `limit` events after `after`, encoded, ending once they hold `page_bytes`
    (note 1); and the next page's cursor, None when no event is left."""
    page_bytes = app.config.page_bytes
    encoded: list[bytes] = []
    size = 0
    cursor = after
    chunk = FIRST_READ
    while True:
        asked = min(chunk, limit - len(encoded)) + 1  # one more: is there another page?
        events = await app.store.read_all(
            after=cursor, until=until, where=where, limit=asked, lenient=True
        )
        for event in events:
            if len(encoded) == limit or size >= page_bytes:
                return encoded, cursor  # this event is the next page's first
            data = encode_event(event)
            encoded.append(data)
            size += len(data)
            cursor = event.position
        if len(events) < asked:
            return encoded, None
        # About the bytes left, at the size of the events so far.
        chunk = max(1, min(MAX_PAGE, (page_bytes - size) * len(encoded) // max(size, 1)))


routes: list[BaseRoute] = [
    Route("/events", list_events, methods=["GET"]),
    Route("/events/stream", stream_events, methods=["GET"]),
]

operations: list[Operation] = [
    Operation(
        "GET",
        "/v1/events",
        "Query the log",
        "A page of events in position order, filtered by run, agent, stream and type, within "
        "`after < position <= until`. Page with `limit` and pass `next` back as `after`; a "
        "page also ends once it holds about 4 MiB of events (`next` goes on). A page of 64 KiB "
        "or more goes gzip-compressed to a client that sends `Accept-Encoding: gzip`.",
        query=EventsQuery,
        response=EventPage,
        errors=(400,),
        tag="events",
    ),
    Operation(
        "GET",
        "/v1/events/stream",
        "Follow the log (Server-Sent Events)",
        "Each SSE `id` is the event's position and each `data` its JSON. Resumes after the "
        "`Last-Event-ID` header (else `?from=`) with no gap and no duplicate, else sends only "
        "new events, starting with an `id:` of the log's head and no data (no event), so a "
        "client that reconnects before its first event resumes from there. Heartbeat comments "
        "keep it open. A client that falls too far behind is cut "
        "off: it reconnects with its Last-Event-ID. Browsers may pass the token as `?token=`.",
        query=StreamQuery,
        response=EventOut,
        media_type="text/event-stream",
        errors=(400,),
        headers={
            "Last-Event-ID": (
                "resume after this position (wins over `from`)",
                {"type": "string", "pattern": "^[0-9]{1,18}$"},
            )
        },
        stream=True,
        tag="events",
    ),
]
