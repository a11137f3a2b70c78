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
   `wait` say when to answer, not what, and are left out of the key. What a
   view depends on besides the log (the runs' live leases) is in it too
   (`vary`).
4. A body of `GZIP_MIN_BYTES` or more goes gzip-compressed to a client that
   accepts it (`Accept-Encoding`), compressed once on a thread (zlib lets go of
   the GIL) and kept with the body: the agents view of a 1M-event log is 11 MB
   of JSON, 1.25 MB compressed at level 1 in 33 ms (level 6: 0.87 MB in 90 ms),
   which a dashboard across a real network waits for. The compressed answer
   has its own ETag (the body's, marked `-gzip`), as RFC 9110 asks of another
   representation; `If-None-Match` with either gives 304. Smaller bodies go as
   they are: on loopback compressing costs more than it saves. A page of the
   log (`GET /v1/events`, up to 4 MiB) goes the same way (`compressed`), each
   time: it has no ETag and is not kept.
5. When the server shuts down (`Services.closing`), a waiting long poll
   answers at once with the view as it is, as after its `wait`: uvicorn's
   graceful shutdown waits 5 s for open requests, then cancels them, and a
   poll cancelled there gave its client a 500 and the server's log a
   traceback. The client polls again and finds the server gone, or back.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive

from projections import ProjectionTimeout

from .errors import HTTPProblem

if TYPE_CHECKING:
    from ._state import Services

__all__ = [
    "GZIP_MIN_BYTES",
    "POSITION_HEADER",
    "ClientGone",
    "Rendered",
    "Renders",
    "answer",
    "compressed",
    "etag_of",
    "reach",
]

logger = logging.getLogger(__name__)

POSITION_HEADER = "Fleet-Position"

GZIP_MIN_BYTES = 64 * 1024
"""Bodies this large or larger go gzip-compressed to a client that accepts it (note 4)."""

_GZIP_LEVEL = 1


class ClientGone(Exception):
    """The client disconnected while its request waited (note 1); nothing is sent."""


async def reach(
    request: Request, app: Services, min_position: int | None, wait: float | None
) -> None:
    """Wait as the query asks before a view is read.

    Without `wait`: a `min_position` beyond the log's head is 400, else the
    projections are waited for up to the config's `wait_timeout_s` (503 after).
    With `wait`: up to `wait` seconds for the projections to apply
    `min_position` (beyond the head too), then return either way; at once when
    the server shuts down (note 5).

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
    failure: Exception | None = None
    async with anyio.create_task_group() as group:

        async def watch() -> None:
            nonlocal gone
            await _disconnected(request.receive)
            gone = True
            group.cancel_scope.cancel()

        async def shutdown() -> None:
            await app.closing.wait()
            logger.debug("server shutting down: wait for position %d answered", min_position)
            group.cancel_scope.cancel()

        group.start_soon(watch)
        group.start_soon(shutdown)
        try:
            await runner.wait_for(min_position, timeout=wait)
        except ProjectionTimeout:
            logger.debug("wait for position %d ended after %.1f s", min_position, wait)
        except Exception as e:  # raised below as itself: out of the group it is a group
            failure = e
        group.cancel_scope.cancel()
    if failure is not None:
        raise failure
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


def _matches(header: str | None, *etags: str) -> bool:
    # RFC 9110 13.1.2: If-None-Match uses the weak comparison; `*` matches any.
    if not header:
        return False
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") in etags:
            return True
    return False


@dataclass(slots=True)
class Rendered:
    """A view's JSON body, its ETag, and the body gzip-compressed once asked for (note 4)."""

    body: bytes
    etag: str
    gzipped: bytes | None = None

    @classmethod
    def of(cls, body: bytes) -> Rendered:
        return cls(body, etag_of(body))


_LEFT_OUT = frozenset({"min_position", "wait"})


_Key = tuple[str, str, int, Hashable]
"""A rendered view's key: its path, its query, its position and what else it varies by."""


class Renders:
    """The last rendered views by (path, query, position), bounded in count and bytes (note 3)."""

    def __init__(self, *, entries: int = 64, max_bytes: int = 16 * 2**20) -> None:
        self._items: OrderedDict[_Key, Rendered] = OrderedDict()
        self._entries = entries
        self._max_bytes = max_bytes
        self._bytes = 0
        self.hits = 0

    def clear(self) -> None:
        """Forget every body (a benchmark's cold start)."""
        self._items.clear()
        self._bytes = 0

    @staticmethod
    def key(
        request: Request, position: int, vary: Hashable = None
    ) -> tuple[str, str, int, Hashable]:
        query = sorted((k, v) for k, v in request.query_params.multi_items() if k not in _LEFT_OUT)
        return request.url.path, repr(query), position, vary

    async def get(
        self,
        request: Request,
        position: int,
        render: Callable[[], Awaitable[bytes]],
        vary: Hashable = None,
    ) -> Rendered:
        """The view at `position` for this request: cached, or `render()`ed and kept.

        `vary`: what else the body depends on besides the log (the runs' live leases).
        """
        key = self.key(request, position, vary)
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
            self.hits += 1
            return found
        rendered = Rendered.of(await render())
        if len(rendered.body) <= self._max_bytes:
            self._items[key] = rendered
            self._bytes += len(rendered.body)
            while len(self._items) > self._entries or self._bytes > self._max_bytes:
                _, old = self._items.popitem(last=False)
                self._bytes -= len(old.body)
        return rendered


async def answer(request: Request, rendered: Rendered | bytes, position: int) -> Response:
    """The JSON body with its ETag and position, gzipped for a client that accepts it when
    large (note 4); 304 when `If-None-Match` has the ETag."""
    if isinstance(rendered, bytes):
        rendered = Rendered.of(rendered)
    headers = {"ETag": rendered.etag, POSITION_HEADER: str(position)}
    large = len(rendered.body) >= GZIP_MIN_BYTES
    if large:
        headers["Vary"] = "Accept-Encoding"
    zipped = large and _accepts_gzip(request.headers.get("accept-encoding"))
    if zipped:
        headers["ETag"] = rendered.etag[:-1] + '-gzip"'
    if _matches(request.headers.get("if-none-match"), rendered.etag, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    if not zipped:
        return Response(rendered.body, media_type="application/json", headers=headers)
    if rendered.gzipped is None:
        rendered.gzipped = await anyio.to_thread.run_sync(_gzip, rendered.body)
    headers["Content-Encoding"] = "gzip"
    return Response(rendered.gzipped, media_type="application/json", headers=headers)


async def compressed(request: Request, body: bytes) -> Response:
    """The JSON body as it is, or gzip-compressed on a thread when it is large and the
    client accepts gzip (note 4); for answers that are not views (no ETag, not kept)."""
    if len(body) < GZIP_MIN_BYTES:
        return Response(body, media_type="application/json")
    headers = {"Vary": "Accept-Encoding"}
    if _accepts_gzip(request.headers.get("accept-encoding")):
        body = await anyio.to_thread.run_sync(_gzip, body)
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type="application/json", headers=headers)


def _gzip(body: bytes) -> bytes:
    return gzip.compress(body, compresslevel=_GZIP_LEVEL, mtime=0)


def _accepts_gzip(header: str | None) -> bool:
    """Whether `Accept-Encoding` takes gzip (RFC 9110 12.5.3: listed, or `*`, without q=0)."""
    if not header:
        return False
    found: dict[str, bool] = {}
    for item in header.split(","):
        name, *params = (part.strip() for part in item.split(";"))
        q = next((p[2:] for p in params if p.startswith("q=")), "1")
        try:
            found[name.lower()] = float(q) > 0
        except ValueError:
            found[name.lower()] = False
    return found.get("gzip", found.get("x-gzip", found.get("*", False)))
