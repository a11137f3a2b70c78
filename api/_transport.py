"""What the SSE stream may know of its connection under uvicorn: bytes not yet written, and abort.

ASGI gives a response no view of its socket: what uvicorn has taken from
`send()` but the client has not read sits in the asyncio transport's write
buffer, out of sight, and a response that gives up can only return, after
which uvicorn *closes* the transport, which waits for the client to read that
buffer (a client that stopped reading keeps it, and its socket, for ever).

`FleetH11Protocol` is uvicorn's h11 protocol that puts a `Connection` in each
request's scope (`scope["extensions"]["fleet.connection"]`): the live stream
counts the transport's buffer among the bytes it holds for a subscriber, and
aborts the connection (buffer dropped, socket closed at once) when it cuts
off a reader that stopped reading. Under another server the extension is
absent and the stream falls back to what ASGI allows (see `_sse.py`).

Notes (do not fix without reading this):
1. The protocol wraps its `app` per connection; that is the one attribute of
   uvicorn's protocol used here besides `transport`, both set in its
   `__init__`/`connection_made` and stable across uvicorn releases. A test
   runs the stream under `serving()` and checks the extension is there.
2. Why h11 and not httptools: fleet installs uvicorn without extras, so
   uvicorn's `auto` picks h11 already; this keeps that choice explicit.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["CONNECTION_EXTENSION", "Connection", "FleetH11Protocol", "connection_of"]

CONNECTION_EXTENSION = "fleet.connection"
"""The key of a request's `Connection` in `scope["extensions"]`."""


class Connection:
    """One client connection's transport, as much of it as a response needs."""

    __slots__ = ("_transport",)

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport

    def write_buffer_size(self) -> int:
        """Bytes handed to the transport that the kernel has not taken yet."""
        return self._transport.get_write_buffer_size()

    def abort(self) -> None:
        """Close the connection now, dropping what is buffered (the client sees a reset)."""
        self._transport.abort()

    def limit_send_buffer(self, size: int) -> None:
        """Fix the kernel's send buffer of the socket at about `size` bytes (no autotuning).

        Linux grows a send buffer to 4 MiB for a client that does not read; a
        fixed one makes a stalled client show as stuck after that much, not
        after megabytes. Does nothing if the socket is gone or refuses.
        """
        sock = self._transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)

    @property
    def closing(self) -> bool:
        """True once the connection is closed or closing."""
        return self._transport.is_closing()


class FleetH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, adding the request's `Connection` to its scope (note 1)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        app: ASGIApp = self.app

        async def with_connection(scope: Scope, receive: Receive, send: Send) -> None:
            extensions = scope.setdefault("extensions", {})
            extensions[CONNECTION_EXTENSION] = Connection(self.transport)
            await app(scope, receive, send)

        self.app = with_connection


def connection_of(scope: Scope) -> Connection | None:
    """The request's `Connection`, or None when the server is not run with `FleetH11Protocol`."""
    found = (scope.get("extensions") or {}).get(CONNECTION_EXTENSION)
    return found if isinstance(found, Connection) else None
