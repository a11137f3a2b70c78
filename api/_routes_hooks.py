"""`POST /v1/hooks/ingest`: an external agent's hook payload (a Claude Code session) into the log.

The body is the hook's JSON payload as Claude Code sends it on stdin (or
posts it, with a `type: "http"` hook). It is checked by
`hooks.parse_external` and appended as `ExternalHookReceived` to the stream
`session-<session_id>` with `Meta(source="ingest")` and the agent it is about
(the session's, or its subagent's when the payload has an `agent_id`); the
session then appears in the projections and the live stream like any agent.
The transcripts the payload names are then read in the background for tokens
and cost (`_transcripts.py`), when the poster is on this host (a loopback peer):
another machine's paths are not this one's, and a poster elsewhere must not
have the server read the files it names. The sender is named by `?source_app=` or the
`X-Fleet-Source-App` header. The session's process, named by `fleet
hook-forward` in `X-Fleet-Process`, is kept in the event only when the
poster is on this host (a loopback peer: `projections.parse_process_header`); the
views judge from it whether the session still runs (`projections/_liveness.py`).
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from events import ExternalProcess, Meta, NewEvent
from hooks import parse_external
from projections import (
    PROCESS_HEADER,
    external_agent_id,
    external_subagent_id,
    is_loopback_peer,
    parse_process_header,
)

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


def _agent_of(session_id: str, sub: object) -> str:
    """The agent a payload is about: the session's, or its subagent's (`agent_id`)."""
    if sub is None or sub == "":
        return external_agent_id(session_id)
    agent_id = external_subagent_id(session_id, sub) if isinstance(sub, str) else ""
    if not _SESSION.fullmatch(agent_id):
        raise HTTPProblem(
            422, "Invalid hook payload",
            f"agent_id {str(sub)[:80]!r} does not make an agent id of 1-128 letters, digits "
            "or ._:@- with the session id",
            slug="invalid-hook-payload",
            members={"errors": [{"loc": ["body", "agent_id"], "msg": "invalid agent id"}]},
        )  # fmt: skip
    return agent_id


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
    agent_id = _agent_of(data.session_id, value.get("agent_id"))
    peer = request.client.host if request.client is not None else None
    process = parse_process_header(request.headers.get(PROCESS_HEADER), peer)
    if process is not None:
        data = data.model_copy(update={"process": ExternalProcess(**process)})
    stream_id = f"session-{data.session_id}"
    meta = Meta(agent_id=agent_id, source="ingest")
    (recorded,) = await app.store.append(stream_id, [NewEvent(data, meta)])
    # Read your writes: the views reflect the payload when this answers.
    await app.runner.offer([recorded])
    if app.session_usage is not None and is_loopback_peer(peer):
        # Tokens and cost, read in the background from the files the payload names: only
        # for a poster on this host, whose paths are this host's (as its process is).
        app.session_usage.notify(data)
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
