"""Opening the listening sockets of `fleet serve`: the host as given, one clear line when it fails.

uvicorn binds its own sockets and, when that fails, logs the error and calls
`sys.exit` inside its task, so `fleet serve` on a port in use printed a
40-line traceback. Here the sockets are opened before uvicorn starts (and
before the app opens the log) and handed to it; a failure is a `ListenError`
whose message is the one line the CLI prints.

Notes (do not fix without reading this):
1. A name may resolve to several addresses (`localhost`: 127.0.0.1 and ::1);
   each is bound, as asyncio's `create_server` would. With port 0 only the
   first is bound: each would get a different free port.
2. IPv6 sockets are IPV6_V6ONLY, so `::` and `0.0.0.0` can be served side by
   side, and SO_REUSEADDR lets a restarted server bind while old
   connections are in TIME_WAIT (not a port another server is listening on).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import socket

from .errors import ListenError

__all__ = ["bind_sockets", "normalize_host"]

_REASONS = {
    errno.EADDRINUSE: "the address is already in use (another server? pick another --port)",
    errno.EACCES: "permission denied (ports below 1024 need privileges)",
    errno.EADDRNOTAVAIL: "it is not an address of this machine",
}


def normalize_host(host: str) -> str:
    """`host` as it is bound: no brackets around an IPv6 address; a name in lower case,
    without a trailing dot."""
    host = host.strip()
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        return bare.rstrip(".").lower() or bare


async def bind_sockets(host: str, port: int) -> list[socket.socket]:
    """Listening sockets on `host`:`port` (every address the name resolves to; note 1).

    Raises `ListenError` (nothing left open) when the name does not resolve or
    an address cannot be bound.
    """
    if not 0 <= port <= 65535:
        raise ListenError(host, port, "a port is a number from 0 to 65535")
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (socket.gaierror, UnicodeError) as e:
        raise ListenError(host, port, f"the name does not resolve ({e})") from None
    addresses = list(dict.fromkeys((info[0], info[4]) for info in infos))
    if port == 0:
        addresses = addresses[:1]
    sockets: list[socket.socket] = []
    try:
        for family, address in addresses:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as e:
                reason = _REASONS.get(e.errno or 0, e.strerror or str(e))
                raise ListenError(str(address[0]), int(address[1]), reason) from None
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
        raise
    return sockets
