"""`POST /v1/hooks/ingest`: an external agent's hook payload (a Claude Code session) into the log.

The body is the hook's JSON payload as Claude Code sends it on stdin. It is
checked by `hooks.parse_external` and appended as `ExternalHookReceived` to
the stream `session-<session_id>` with `Meta(source="ingest")`; the external
session then appears in the projections and the live stream like any agent.
The sender is named by `?source_app=` or the `X-Fleet-Source-App` header.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from events import Meta, NewEvent
from hooks import parse_external
from projections import external_agent_id

from ._bodies import parse_query, read_json
from ._models import ID_PATTERN, IngestAccepted, IngestQuery
from ._openapi import Operation
from ._state import services
from .errors import HTTPProblem

__all__ = ["SOURCE_APP_HEADER", "operations", "routes"]

SOURCE_APP_HEADER = "X-Fleet-Source-App"

_SESSION = re.compile(ID_PATTERN)


def _json_kind(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


async def ingest(request: Request) -> Response:
    """Check a hook payload and append it; 201 with where it landed."""
    app = services(request)
    query = parse_query(IngestQuery, request)
    source_app = query.source_app or request.headers.get(SOURCE_APP_HEADER) or None
    value = await read_json(request)
    if not isinstance(value, dict):
        raise HTTPProblem(
            422, "Invalid hook payload",
            f"expected a JSON object (a hook payload), got {_json_kind(value)}",
            slug="invalid-hook-payload",
            members={"errors": [{"loc": ["body"], "msg": "expected an object"}]},
        )  # fmt: skip
    data = parse_external(value, source_app=source_app)
    if not _SESSION.fullmatch(data.session_id):
        raise HTTPProblem(
            422, "Invalid hook payload",
            f"session_id {data.session_id[:80]!r} is not 1-128 letters, digits or ._:@- "
            "starting with a letter or digit",
            slug="invalid-hook-payload",
            members={"errors": [{"loc": ["body", "session_id"], "msg": "invalid session id"}]},
        )  # fmt: skip
    stream_id = f"session-{data.session_id}"
    meta = Meta(agent_id=external_agent_id(data.session_id), source="ingest")
    (recorded,) = await app.store.append(stream_id, [NewEvent(data, meta)])
    # Read your writes: the views reflect the payload when this answers.
    await app.runner.offer([recorded])
    body = IngestAccepted(position=recorded.position, stream_id=stream_id, version=recorded.version)
    return JSONResponse(body.model_dump(), status_code=201)


routes: list[BaseRoute] = [Route("/hooks/ingest", ingest, methods=["POST"])]

operations: list[Operation] = [
    Operation(
        "POST", "/v1/hooks/ingest", "Ingest an external hook payload",
        "The JSON payload a Claude Code hook receives on stdin (any hook point; "
        "`hook_event_name` and `session_id` are required, unknown fields are kept). It is "
        "appended as `ExternalHookReceived` to the stream `session-<session_id>`.",
        query=IngestQuery, body=None, response=IngestAccepted, status=201,
        errors=(400, 413, 422), headers={
            SOURCE_APP_HEADER: ("the sender, if not in the query", {"type": "string"})
        },
        tag="hooks", body_schema={
            "type": "object",
            "required": ["hook_event_name", "session_id"],
            "properties": {
                "hook_event_name": {"type": "string", "minLength": 1},
                "session_id": {"type": "string", "pattern": ID_PATTERN},
            },
            "additionalProperties": True,
        },
    ),
]  # fmt: skip
