"""OTLP/HTTP ingest: `POST /v1/otlp/v1/{logs,metrics,traces}`, an external agent's own telemetry.

Point a Claude Code session's exporter here (`OTEL_EXPORTER_OTLP_ENDPOINT=
http://127.0.0.1:8000/v1/otlp`): each record naming a session (`session.id`)
is appended to the stream `session-<id>` as `TelemetryReceived`, and each
`claude_code.api_request` also as a `ModelResponded` of the agent
`ext-<id>`, the same agent the hook ingest creates (see `hooks/_otlp.py`).
When the telemetry arrives before any hook of that session, the agent is
created first (`AgentCreated`, external), once.

Bad input (another content type or encoding, not a message of that signal,
unknown fields, an empty or oversized body) gets a clear 4xx and writes
nothing. The answer is OTLP's own (`Export*ServiceResponse`, in the
request's encoding); records without a session id are reported there as
rejected (a partial success), the rest is kept.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from events import (
    NO_STREAM,
    AgentCreated,
    EventData,
    Meta,
    ModelResponded,
    NewEvent,
    RecordedEvent,
)
from events.errors import VersionConflict
from hooks import (
    DEFAULT_SOURCE_APP,
    OTLP_JSON,
    OTLP_PROTOBUF,
    OTLP_SIGNALS,
    TelemetryInvalid,
    TelemetryTooLarge,
    TelemetryUnsupported,
    otlp_response,
    parse_otlp,
)
from projections import external_agent_id

from ._bodies import parse_query
from ._models import IngestQuery
from ._openapi import Operation
from ._routes_hooks import SOURCE_APP_HEADER
from ._state import services
from .errors import HTTPProblem

__all__ = ["OTLP_PATHS", "operations", "routes"]

logger = logging.getLogger(__name__)

OTLP_PATHS = tuple(f"/v1/otlp/v1/{signal}" for signal in OTLP_SIGNALS)
"""The ingest paths, for the body limit (OTLP batches may be larger than commands)."""


def _problem(error: TelemetryInvalid) -> HTTPProblem:
    if isinstance(error, TelemetryTooLarge):
        return HTTPProblem(413, "Request body too large", error.detail, slug="body-too-large")
    if isinstance(error, TelemetryUnsupported):
        return HTTPProblem(415, "Unsupported OTLP request", error.detail, slug="unsupported-otlp")
    return HTTPProblem(400, "Invalid OTLP request", error.detail, slug="invalid-otlp")


def _first_sight(session_id: str, source_app: str, events: list[EventData]) -> AgentCreated:
    # The first model any record names (api_request events and metric points carry one).
    models = (
        getattr(e, "model", None) or getattr(e, "attributes", {}).get("model") for e in events
    )
    model = next((m for m in models if isinstance(m, str) and m), "unknown")
    return AgentCreated(
        agent_id=external_agent_id(session_id),
        name=f"{source_app}/{session_id[:8]}",
        role="external",
        model=model,
        external=True,
    )


async def _append(
    request: Request, session_id: str, source_app: str, events: list[EventData]
) -> list[RecordedEvent]:
    """Append one session's events; the agent is created first when the stream is new."""
    store = services(request).store
    stream_id = f"session-{session_id}"
    meta = Meta(agent_id=external_agent_id(session_id), source="ingest")
    batch = [NewEvent(data, meta) for data in events]
    if await store.stream_version(stream_id) == 0:
        created = NewEvent(_first_sight(session_id, source_app, events), meta)
        try:
            return await store.append(stream_id, [created, *batch], expected_version=NO_STREAM)
        except VersionConflict:
            logger.debug("session %s appeared meanwhile (its hooks); not creating it", session_id)
    return await store.append(stream_id, batch)


async def _first_count(request: Request, session_id: str, data: EventData) -> bool:
    """False for an `api_request` the session's transcript has already counted (by request id)."""
    usage = services(request).session_usage
    if usage is None or not isinstance(data, ModelResponded) or not data.message_id:
        return True
    return await usage.claim(session_id, data.message_id)


async def ingest(request: Request) -> Response:
    """Decode an OTLP request, append what it holds per session; OTLP's answer."""
    app = services(request)
    signal = request.url.path.rstrip("/").rsplit("/", 1)[-1]
    query = parse_query(IngestQuery, request)
    source_app = query.source_app or request.headers.get(SOURCE_APP_HEADER) or None
    content_type = request.headers.get("content-type")
    try:
        batch = parse_otlp(
            await request.body(),
            signal=signal,
            content_type=content_type,
            content_encoding=request.headers.get("content-encoding"),
            source_app=source_app,
            max_bytes=app.config.max_otlp_bytes,
        )
    except TelemetryInvalid as e:
        raise _problem(e) from None
    recorded: list[RecordedEvent] = []
    source_app = source_app or DEFAULT_SOURCE_APP
    for session_id, events in batch.sessions.items():
        fresh = [e for e in events if await _first_count(request, session_id, e)]
        if fresh:
            recorded.extend(await _append(request, session_id, source_app, fresh))
    if recorded:
        # Read your writes: the views reflect the telemetry when this answers.
        await app.runner.offer(recorded)
    body, media_type = otlp_response(
        batch.signal, content_type, rejected=batch.rejected, message=batch.reason
    )
    return Response(body, media_type=media_type)


routes: list[BaseRoute] = [
    Route(f"/otlp/v1/{signal}", ingest, methods=["POST"]) for signal in OTLP_SIGNALS
]

_BODY: dict[str, Any] = {
    "description": f"An OTLP export request, as `{OTLP_PROTOBUF}` or `{OTLP_JSON}` "
    "(optionally gzip-encoded).",
}

operations: list[Operation] = [
    Operation(
        "POST", f"/v1/otlp/v1/{signal}", f"Ingest OTLP {signal}",
        f"An OTLP/HTTP `Export{kind}ServiceRequest` (protobuf or JSON). Records with a "
        "`session.id` are appended to `session-<id>` as `TelemetryReceived`; a "
        "`claude_code.api_request` log record also as a `ModelResponded` of the agent "
        "`ext-<id>`. The answer is OTLP's own response message, in the request's encoding.",
        query=IngestQuery, body=None, response_schema={"type": "object"},
        errors=(400, 413, 415), tag="hooks", body_schema=_BODY,
        headers={SOURCE_APP_HEADER: ("the sender, if not in the query", {"type": "string"})},
    )
    for signal, kind in (("logs", "Logs"), ("metrics", "Metrics"), ("traces", "Trace"))
]  # fmt: skip
