"""Replay over HTTP: a run's timeline, its export as a download, an export as an upload.

    GET  /v1/runs/{run_id}/timeline   what the run did, step by step (JSON)
    GET  /v1/runs/{run_id}/export     the run as checksummed JSON Lines (a download)
    POST /v1/runs/import              an export as the body: the run lands in this log

An import is checked line by line as it arrives and spooled to a temporary
file, so the server holds a bounded part of it whatever its size; nothing is
written until all of it has checked, and then it lands in one transaction
(`events.import_stream`). The projections have applied it when the 201
answer is sent. One import at a time: another one meanwhile is a 429 with
`Retry-After`. `ApiConfig.max_import_bytes` bounds an upload, and with
`ApiConfig.import_key` only exports signed with that key are taken.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from events import (
    ExportInvalid,
    ImportConflict,
    RunNotFound,
    export_lines,
    import_stream,
)
from projections import ProjectionTimeout, load_timeline

from ._bodies import parse_query, require_identity
from ._models import NoQuery, TimelineQuery
from ._openapi import Operation
from ._polling import ClientGone, answer, reach
from ._routes_views import check_id
from ._state import services
from ._view_models import Timeline
from .errors import HTTPProblem

__all__ = ["EXPORT_MEDIA_TYPE", "ImportedRun", "operations", "routes"]

EXPORT_MEDIA_TYPE = "application/x-ndjson"
IMPORT_RETRY_S = 5
IMPORT_PROJECTION_WAIT_S = 60.0


class ImportedRun(BaseModel):
    """What an import appended."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    events: int = Field(description="how many events were appended")
    streams: list[str] = Field(description="the run's streams, in the order they first appear")
    first_position: int = Field(description="the new position of the run's first event")
    last_position: int = Field(description="the new position of the run's last event")
    projected: bool = Field(
        description="the views show the run already; false when the projections were still "
        "folding a large import after `IMPORT_PROJECTION_WAIT_S` (it is in the log either way)"
    )


def _run_id(request: Request) -> str:
    return check_id(request.path_params["run_id"], "run id")


def _not_found(error: RunNotFound) -> HTTPProblem:
    return HTTPProblem(404, "Run not found", str(error), slug="run-not-found")


async def get_timeline(request: Request) -> Response:
    """`GET /v1/runs/{run_id}/timeline`: the run's timeline, filtered and paged."""
    app = services(request)
    run_id = _run_id(request)
    q = parse_query(TimelineQuery, request)
    try:
        await reach(request, app, q.min_position, q.wait)
    except ClientGone:
        return Response(status_code=499)  # never sent: the client is gone
    # Everything up to the head read before the run is in the timeline read after it.
    position = await app.store.head()
    try:
        timeline = (await load_timeline(app.store, run_id)).to_json()
    except RunNotFound as e:
        raise _not_found(e) from e
    # Paged by position, as the events are: the cursor is the last entry's position.
    entries = [
        e
        for e in timeline["entries"]
        if e["position"] > q.after and (q.agent_id is None or e["agent_id"] == q.agent_id)
    ]
    next_cursor = None
    if q.limit is not None and len(entries) > q.limit:
        entries = entries[: q.limit]
        next_cursor = entries[-1]["position"]
    body = Timeline.model_validate({**timeline, "entries": entries, "next": next_cursor})
    return await answer(request, body.model_dump_json(by_alias=True).encode(), position)


async def get_export(request: Request) -> Response:
    """`GET /v1/runs/{run_id}/export`: the run as a JSON Lines download."""
    app = services(request)
    run_id = _run_id(request)
    parse_query(NoQuery, request)
    try:
        lines = await export_lines(app.store, run_id)
    except RunNotFound as e:
        raise _not_found(e) from e
    return StreamingResponse(
        lines,
        media_type=EXPORT_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{run_id}.jsonl"'},
    )


async def post_import(request: Request) -> Response:
    """`POST /v1/runs/import`: load an export (the body) into this log."""
    app = services(request)
    parse_query(NoQuery, request)
    require_identity(request)
    if not app.imports.take():
        raise HTTPProblem(
            429, "Import in progress",
            "another run is being imported into this log; one import at a time: send this one "
            f"again after {IMPORT_RETRY_S} seconds",
            slug="import-in-progress", headers={"Retry-After": str(IMPORT_RETRY_S)},
        )  # fmt: skip
    key = app.config.import_key
    try:
        result = await import_stream(
            app.store,
            request.stream(),
            source="the request body",
            verify_key=None if key is None else key.get_secret_value().encode(),
        )
    except ExportInvalid as e:
        raise HTTPProblem(422, "Invalid run export", str(e), slug="invalid-export") from e
    except ImportConflict as e:
        raise HTTPProblem(
            409, "Run exists", str(e), slug="run-exists", members={"streams": list(e.streams)}
        ) from e
    finally:
        app.imports.give_back()
    # The run is in the log: a slow fold of a large import is no reason to answer an error
    # (a client retrying it would get a 409).
    wait = max(app.config.wait_timeout_s, IMPORT_PROJECTION_WAIT_S)
    try:
        await app.runner.wait_for(result.last_position, timeout=wait)
        projected = True
    except ProjectionTimeout:
        projected = False
    imported = ImportedRun(
        run_id=result.run_id,
        events=result.events,
        streams=list(result.streams),
        first_position=result.first_position,
        last_position=result.last_position,
        projected=projected,
    )
    return JSONResponse(
        imported.model_dump(),
        status_code=201,
        headers={"Location": f"/v1/runs/{result.run_id}/timeline"},
    )


routes: list[BaseRoute] = [
    Route("/runs/import", post_import, methods=["POST"]),
    Route("/runs/{run_id}/timeline", get_timeline, methods=["GET"]),
    Route("/runs/{run_id}/export", get_export, methods=["GET"]),
]

_RUN = {"run_id": "the run's id, as `GET /v1/runs` lists it"}

operations: list[Operation] = [
    Operation(
        "GET", "/v1/runs/{run_id}/timeline", "A run's timeline",
        "What the run did in log order, one entry per event: agents created, commanded and "
        "ended, each model response (step) and the tools it asked for, each tool call's "
        "outcome, hook decisions, waits, board moves, and a re-execution's divergences. Entries "
        "are paged by position: pass `next` back as `after`. Answers with `Fleet-Position` and "
        "an `ETag` (304 to a matching `If-None-Match`); `?min_position=N&wait=S` answers once "
        "the log has reached position N, or after S seconds (at most 30).",
        query=TimelineQuery, response=Timeline, errors=(400, 404), path_params=_RUN,
        conditional=True, tag="replay",
    ),
    Operation(
        "GET", "/v1/runs/{run_id}/export", "Export a run",
        "Every event of the run's streams as JSON Lines: a header line, one line per event in "
        "position order, and a trailer with the count and a SHA-256 of all lines before it. "
        "`POST /v1/runs/import` (or `fleet import`) loads it into another log.",
        query=NoQuery, errors=(400, 404), path_params=_RUN, tag="replay",
        media_type=EXPORT_MEDIA_TYPE,
        response_schema={"type": "string"},
    ),
    Operation(
        "POST", "/v1/runs/import", "Import a run",
        "The body is an export (JSON Lines, as `GET /v1/runs/{run_id}/export` gives it). It is "
        "checked completely as it arrives (format, order, stream versions, that every stream is "
        "one of the run's, checksum, every event's data, and the signature when the server "
        "requires one) and appended in one transaction with new positions, or refused with "
        "nothing written: 422 for an export that is truncated, reordered, edited, unsigned or "
        "not an export, 409 when the run is in this log already, 429 (with `Retry-After`) "
        "while another import runs.",
        body_schema={"type": "string", "format": "binary", "description": "a run export"},
        body_media_type=EXPORT_MEDIA_TYPE,
        query=NoQuery, response=ImportedRun, status=201, errors=(400, 409, 413, 415, 422, 429),
        tag="replay",
    ),
]  # fmt: skip
