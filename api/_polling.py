"""Cheap polling of the views: the position a view reflects, its ETag, 304, and waiting.

Every view answers with `Fleet-Position` (the log position it reflects) and an
`ETag` (a hash of its body). A client that sends the ETag back in
`If-None-Match` gets `304 Not Modified` with no body while the view is the
same. `?min_position=N&wait=S` holds the request until the projections have
applied position N or S seconds (at most 30) have passed, then answers with
the view as it is; so a monitor can long-poll:

    GET /v1/fleet?min_position=<Fleet-Position + 1>&wait=30   If-None-Match: <ETag>

Notes (do not fix without reading this):
1. A waiting request also listens for the client to go away (`http.disconnect`
   from the ASGI `receive`): uvicorn does not cancel a request's task when its
   connection drops, so without this a dropped long poll would hold its task
   and its wait on the runner for up to 30 s. On a disconnect the wait is
   cancelled and nothing is rendered or sent.
2. The ETag is a hash of the body, not of the position: events that do not
   change a (filtered) view leave its ETag as it was, which is what a monitor
   polling one agent or one run wants. It is a strong validator (equal bytes).
"""

from __future__ import annotations

import hashlib
import logging

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive

from projections import ProjectionTimeout

from ._state import Services
from .errors import HTTPProblem

__all__ = ["POSITION_HEADER", "ClientGone", "answer", "etag_of", "reach"]

logger = logging.getLogger(__name__)

POSITION_HEADER = "Fleet-Position"


class ClientGone(Exception):
    """The client disconnected while its request waited (note 1); nothing is sent."""


async def reach(
    request: Request, app: Services, min_position: int | None, wait: float | None
) -> None:
    """Wait as the query asks before a view is read.

    Without `wait`: a `min_position` beyond the log's head is 400, else the
    projections are waited for up to the config's `wait_timeout_s` (503 after).
    With `wait`: up to `wait` seconds for the projections to apply
    `min_position` (beyond the head too), then return either way.

    Raises `HTTPProblem` (400), `ProjectionTimeout`, `RunnerClosed`, and
    `ClientGone` when the client disconnects while waiting.
    """
    if min_position is None:
        return
    runner = app.runner
    if wait is None:
        head = await app.store.head()
        if min_position > head:
            raise HTTPProblem(
                400, "Invalid position",
                f"min_position {min_position} is beyond the head of the log ({head}); "
                "add wait=SECONDS to wait for it",
                slug="invalid-position",
            )  # fmt: skip
        await runner.wait_for(min_position, timeout=app.config.wait_timeout_s)
        return
    if runner.position >= min_position or wait <= 0:
        return
    gone = False
    async with anyio.create_task_group() as group:

        async def watch() -> None:
            nonlocal gone
            await _disconnected(request.receive)
            gone = True
            group.cancel_scope.cancel()

        group.start_soon(watch)
        try:
            await runner.wait_for(min_position, timeout=wait)
        except ProjectionTimeout:
            logger.debug("wait for position %d ended after %.1f s", min_position, wait)
        group.cancel_scope.cancel()
    if gone:
        logger.debug("client left while waiting for position %d", min_position)
        raise ClientGone


async def _disconnected(receive: Receive) -> None:
    """Return when the client disconnects (a GET's empty body is read and dropped)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


def etag_of(body: bytes) -> str:
    """The strong ETag of a response body (note 2)."""
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def _matches(header: str | None, etag: str) -> bool:
    # RFC 9110 13.1.2: If-None-Match uses the weak comparison; `*` matches any.
    if not header:
        return False
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False


def answer(request: Request, body: bytes, position: int) -> Response:
    """The JSON `body` with its ETag and position; 304 when `If-None-Match` has the ETag."""
    etag = etag_of(body)
    headers = {"ETag": etag, POSITION_HEADER: str(position)}
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)
