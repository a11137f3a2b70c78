"""The log over HTTP: `GET /v1/events` (query and page), `GET /v1/events/stream` (SSE)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from events import EventFilter, encode_event

from ._bodies import parse_query
from ._models import EventOut, EventPage, EventsQuery, StreamQuery
from ._openapi import Operation
from ._sse import stream_events
from ._state import services
from .errors import HTTPProblem

__all__ = ["operations", "routes"]


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
    # One more than asked tells whether another page exists without a second query.
    events = await app.store.read_all(
        after=query.after, until=query.until, where=where, limit=limit + 1, lenient=True
    )
    more = len(events) > limit
    events = events[:limit]
    next_after = events[-1].position if more else None
    # The page is assembled from each event's wire JSON: no dict per event.
    body = b'{"events":[%s],"next":%s,"head":%d}' % (
        b",".join([encode_event(event) for event in events]),
        b"null" if next_after is None else b"%d" % next_after,
        head,
    )
    return Response(body, media_type="application/json")


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
        "`after < position <= until`. Page with `limit` and pass `next` back as `after`.",
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
        "new events. Heartbeat comments keep it open. A client that falls too far behind is cut "
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
