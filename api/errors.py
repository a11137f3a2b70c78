"""Errors of the API layer. All descend from `FleetError` through `ApiError`.

    FleetError
    └── ApiError                    api/
        ├── HTTPProblem             an HTTP error to answer: status, title, detail (+ members)
        ├── BodyTooLarge            a request body over the configured limit (413)
        ├── InsecureServe           serve() asked to listen beyond loopback without a token
        │   └── WeakToken           ... or with a token too short to stand guessing
        └── ListenError             the address cannot be listened on (in use, no such name)

Only `api/` turns errors into HTTP responses; every other package's errors are
mapped to a status in `api/_problems.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from events.errors import FleetError

__all__ = ["ApiError", "BodyTooLarge", "HTTPProblem", "InsecureServe", "ListenError", "WeakToken"]

MIN_TOKEN_CHARS = 16
"""The shortest token accepted beyond loopback."""


class ApiError(FleetError):
    """Root of the errors raised by the API layer."""


class HTTPProblem(ApiError):
    """An error answered as `application/problem+json` (RFC 9457).

    `slug` names the problem type (`urn:fleet:problem:<slug>`); `members` are
    extra members of the problem document (e.g. `errors` for validation).
    """

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        slug: str | None = None,
        members: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.slug = slug
        self.members = dict(members or {})
        self.headers = dict(headers or {})
        super().__init__(f"{status} {title}: {detail}")


class BodyTooLarge(ApiError):
    """A request body is over the limit; `size` is None when it was not announced."""

    def __init__(self, limit: int, size: int | None = None) -> None:
        self.limit = limit
        self.size = size
        if size is None:  # sent in chunks: refused once it passed the limit
            super().__init__(f"the request body is over the limit of {limit} bytes")
        else:
            super().__init__(f"the request body is {size} bytes, over the limit of {limit} bytes")


class InsecureServe(ApiError):
    """Listening on a non-loopback address needs a bearer token."""

    def __init__(self, host: str) -> None:
        self.host = host
        super().__init__(
            f"refusing to listen on {host!r} without a token: anyone who can reach it could "
            "command the fleet; set FLEET_TOKEN (or --token), or listen on 127.0.0.1"
        )


class WeakToken(InsecureServe):
    """Listening beyond loopback needs a token of at least `MIN_TOKEN_CHARS` characters."""

    def __init__(self, host: str, length: int) -> None:
        self.host = host
        self.length = length
        ApiError.__init__(
            self,
            f"refusing to listen on {host!r} with a token of {length} character"
            f"{'s' if length != 1 else ''}: beyond loopback a token needs at least "
            f"{MIN_TOKEN_CHARS} (make one with: python3 -c "
            "'import secrets; print(secrets.token_urlsafe(24))')",
        )


class ListenError(ApiError):
    """The server cannot listen on `host`:`port`; `reason` says why, in words."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        self.host = host
        self.port = port
        self.reason = reason
        shown = f"[{host}]" if ":" in host else host
        super().__init__(f"cannot listen on {shown}:{port}: {reason}")
