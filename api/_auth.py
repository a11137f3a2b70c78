"""Bearer-token auth: every request carries the token when one is configured.

The token comes in `Authorization: Bearer <token>`, or, for GET and HEAD only,
as `?token=<token>`: a browser's `EventSource` cannot set headers. The query
parameter is removed from the request before anything else sees it, so it is
not in the access log and routes need not know about it.

Notes (do not fix without reading this):
1. The comparison is `hmac.compare_digest` on bytes: constant time, so the
   token cannot be guessed byte by byte from response times.
2. Auth runs before routing: without the token, an unknown path is 401, not
   404, so the route list cannot be probed.
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Receive, Scope, Send

from ._problems import problem

__all__ = ["BearerAuth"]

_QUERY_METHODS = frozenset({"GET", "HEAD"})


class BearerAuth:
    """ASGI middleware: answer 401 (problem+json) unless the request carries `token`.

    With `token=None` every request passes.
    """

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self._token = None if token is None else token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = self._given(scope)
        if self._token is None:
            await self.app(scope, receive, send)
            return
        if given is None:
            detail = (
                "this server needs a token: send 'Authorization: Bearer <token>'"
                " (or ?token=<token> on a GET, for EventSource)"
            )
            error = None
        elif hmac.compare_digest(given, self._token):
            await self.app(scope, receive, send)
            return
        else:
            detail = "the token is wrong"
            error = "invalid_token"
        challenge = 'Bearer realm="fleet"' + (f', error="{error}"' if error else "")
        response = problem(
            401, "Unauthorized", detail, slug="unauthorized",
            headers={"WWW-Authenticate": challenge},
        )  # fmt: skip
        await response(scope, receive, send)

    @staticmethod
    def _given(scope: Scope) -> bytes | None:
        """The token the request carries (header first), and strip `?token=` from the scope."""
        header: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, credentials = value.partition(b" ")
                if scheme.lower() == b"bearer" and credentials.strip():
                    header = credentials.strip()
                else:
                    header = b""  # present but not a bearer token: wrong, not missing
                break
        query: bytes | None = None
        raw = scope.get("query_string", b"")
        if b"token" in raw:
            pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
            kept = [(k, v) for k, v in pairs if k != "token"]
            if len(kept) != len(pairs):
                if scope.get("method", "GET") in _QUERY_METHODS or scope["type"] == "websocket":
                    query = next(v for k, v in pairs if k == "token").encode()
                scope["query_string"] = urlencode(kept).encode("ascii")
        return header if header is not None else query
