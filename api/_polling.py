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
3. A view is a function of its route, its query and the position it reflects
   (the projections fold the log, nothing else), so `Renders` keeps the last
   bodies by that key: a poll at a position already rendered, or its 304, costs
   a dictionary lookup, whatever the size of the view. `min_position` and
   `wait` say when to answer, not what, and are left out of the key.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive

from projections import ProjectionTimeout

from .errors import HTTPProblem

if TYPE_CHECKING:
    from ._state import Services

__all__ = ["POSITION_HEADER", "ClientGone", "Rendered", "Renders", "answer", "etag_of", "reach"]

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


Rendered = tuple[bytes, str]
"""A view's JSON body and its ETag."""

_LEFT_OUT = frozenset({"min_position", "wait"})


class Renders:
    """The last rendered views by (path, query, position), bounded in count and bytes (note 3)."""

    def __init__(self, *, entries: int = 64, max_bytes: int = 16 * 2**20) -> None:
        self._items: OrderedDict[tuple[str, str, int], Rendered] = OrderedDict()
        self._entries = entries
        self._max_bytes = max_bytes
        self._bytes = 0
        self.hits = 0

    def clear(self) -> None:
        """Forget every body (a benchmark's cold start)."""
        self._items.clear()
        self._bytes = 0

    @staticmethod
    def key(request: Request, position: int) -> tuple[str, str, int]:
        query = sorted((k, v) for k, v in request.query_params.multi_items() if k not in _LEFT_OUT)
        return request.url.path, repr(query), position

    async def get(
        self, request: Request, position: int, render: Callable[[], Awaitable[bytes]]
    ) -> Rendered:
        """The view at `position` for this request: cached, or `render()`ed and kept."""
        key = self.key(request, position)
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
            self.hits += 1
            return found
        body = await render()
        rendered = (body, etag_of(body))
        if len(body) <= self._max_bytes:
            self._items[key] = rendered
            self._bytes += len(body)
            while len(self._items) > self._entries or self._bytes > self._max_bytes:
                _, (old, _etag) = self._items.popitem(last=False)
                self._bytes -= len(old)
        return rendered


def answer(request: Request, rendered: Rendered | bytes, position: int) -> Response:
    """The JSON body with its ETag and position; 304 when `If-None-Match` has the ETag."""
    body, etag = (rendered, etag_of(rendered)) if isinstance(rendered, bytes) else rendered
    headers = {"ETag": etag, POSITION_HEADER: str(position)}
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)
