"""Safe by default in a browser: the `Host` a request names, its `Origin`, and its body's type.

A tokenless server on loopback is reachable by every web page the user opens:
a page cannot read our answers (no CORS headers are ever sent), but it can
send requests, and through DNS rebinding (a name of the attacker's that
resolves to 127.0.0.1) it can even read them. `RequestGuard` closes both:

- `Host` must name the address the connection came in on (`scope["server"]`:
  the bound address, or with a wildcard bind the interface reached), or
  `localhost` when that address is loopback, or a name the user allowed
  (`ApiConfig.allow_hosts`, `fleet serve --allow-host`). Anything else is
  421 on every route (API, SSE, dashboard, static files): a rebound name never
  reaches the app.
- A request that may change something (any method but GET, HEAD, OPTIONS)
  carrying an `Origin` that is not the server's own (another port is another
  origin; `null` is nobody's) is 403. Without `Origin`, a browser's
  `Sec-Fetch-Site` other than `same-origin`/`none` is 403 too. Clients that
  are not browsers (curl, the CLI, hooks) send neither and pass.
- Such a request whose body is typed `text/plain`,
  `application/x-www-form-urlencoded` or `multipart/form-data` is 415: those
  are the types a page may send to another origin without asking first (a
  CORS "simple" request). JSON routes go further and take `application/json`
  only (`_bodies.read_json`).

Notes (do not fix without reading this):
1. Starlette's `TrustedHostMiddleware` does not fit: its list is fixed when
   the app is built (the port may be 0, picked at bind time; a wildcard bind
   is reached at whichever address), it splits `Host` at the first colon
   (`[::1]:8000` becomes `[`), and it answers 400 in plain text.
2. The guard is the outermost middleware, before auth: a rebound name gets
   421 whether or not it knows the token, and no byte of its body is read.
3. Ports: a `Host` naming the server's address with a port must carry the
   server's port; without one it is taken (a browser always sends a port
   that is not the scheme's default, and rebinding is about the name, not
   the port). A name from `allow_hosts` may carry any port: it is the name a
   proxy in front of the server answers to.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from ._problems import problem

__all__ = ["RequestGuard", "normalize_host_name"]

logger = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods that change nothing here: no Origin or body-type check on them."""

_SIMPLE_TYPES = frozenset(
    {"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"}
)
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_SAME_SITE_FETCH = frozenset({b"same-origin", b"none"})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def normalize_host_name(name: str) -> str:
    """`name` as hosts are compared: lower case, no brackets, no trailing dot."""
    return name.strip().strip("[]").rstrip(".").lower()


def _ip(text: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # a dual-stack socket reached over IPv4
    return address


def _split_host(value: str) -> tuple[str, int | None] | None:
    """A `Host` value as (name, port); None when it is not a host[:port]."""
    if not value or any(c.isspace() or c in "/?#@\\" for c in value):
        return None
    if value.startswith("["):
        end = value.find("]")
        if end == -1:
            return None
        name, rest = value[1:end], value[end + 1 :]
        if _ip(name) is None:
            return None
    else:
        name, colon, port_text = value.partition(":")
        rest = colon + port_text
    if not name:
        return None
    if not rest:
        return normalize_host_name(name), None
    # ASCII digits only: `isdigit` takes "²" (a Latin-1 byte in a header), which `int` refuses.
    if not rest.startswith(":") or not (rest[1:].isascii() and rest[1:].isdigit()) or len(rest) > 6:
        return None
    port = int(rest[1:])
    return (normalize_host_name(name), port) if 0 < port < 65536 else None


def _header(scope: Scope, name: bytes) -> list[bytes]:
    return [value for key, value in scope["headers"] if key == name]


class RequestGuard:
    """ASGI middleware: 421 for a foreign `Host`, 403 for a foreign `Origin`, 415 for form bodies.

    Args:
        app: the app it guards.
        allow_hosts: names accepted in `Host` besides the server's own address
            (any port); compared without case, brackets or a trailing dot.
    """

    def __init__(self, app: ASGIApp, allow_hosts: Iterable[str] = ()) -> None:
        self.app = app
        self.allow_hosts = frozenset(normalize_host_name(h) for h in allow_hosts if h.strip())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refusal = self._check_host(scope) or self._check_origin(scope)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, title, detail, slug = refusal
        logger.debug("refused %s %s: %s", scope.get("method"), scope.get("path"), detail)
        response = problem(status, title, detail, slug=slug, headers={"Connection": "close"})
        await response(scope, receive, send)

    # -- Host ---------------------------------------------------------------

    def _check_host(self, scope: Scope) -> tuple[int, str, str, str] | None:
        values = _header(scope, b"host")
        if len(values) != 1:
            detail = "the request has no Host header" if not values else "more than one Host header"
            return 400, "Bad Host header", detail, "bad-host"
        raw = values[0].decode("latin-1")
        parsed = _split_host(raw)
        if parsed is None:
            return 400, "Bad Host header", f"Host {raw[:100]!r} is not host[:port]", "bad-host"
        name, port = parsed
        if name in self.allow_hosts or self._is_own_address(scope, name, port):
            return None
        return (
            421,
            "Host not served here",
            f"this server does not answer to Host {raw[:100]!r}: it answers to "
            f"{self._own_hosts(scope)}. A web page behind a name that resolves here "
            "(DNS rebinding) is refused; to reach the server by another name, start it with "
            "`fleet serve --allow-host NAME`",
            "misdirected-request",
        )

    @staticmethod
    def _is_own_address(scope: Scope, name: str, port: int | None) -> bool:
        server = scope.get("server")
        if not server:
            return False
        address, server_port = str(server[0]), server[1]
        if port is not None and server_port is not None and port != server_port:
            return False
        own_ip = _ip(address)
        if own_ip is None:  # not on a socket address (e.g. httpx's ASGITransport): its name
            return name == normalize_host_name(address)
        if name == "localhost":
            return own_ip.is_loopback
        return _ip(name) == own_ip

    def _own_hosts(self, scope: Scope) -> str:
        server = scope.get("server")
        names: list[str] = []
        if server:
            address, port = str(server[0]), server[1]
            ip = _ip(address)
            shown = f"[{ip}]" if isinstance(ip, ipaddress.IPv6Address) else str(ip or address)
            suffix = f":{port}" if port is not None else ""
            names.append(shown + suffix)
            if ip is not None and ip.is_loopback:
                names.append("localhost" + suffix)
        names.extend(sorted(self.allow_hosts))
        return ", ".join(repr(n) for n in names) or "no name at all"

    # -- Origin and body type -------------------------------------------------

    def _check_origin(self, scope: Scope) -> tuple[int, str, str, str] | None:
        if scope.get("method", "GET") in SAFE_METHODS:
            return None
        origins = _header(scope, b"origin")
        if origins:
            origin = origins[0].decode("latin-1")
            host = _header(scope, b"host")[0]
            # Through an allowed name (a proxy, maybe terminating TLS) the page's scheme may
            # differ from the server's; on the server's own address it is the server's.
            name = (_split_host(host.decode("latin-1")) or ("", None))[0]
            scheme = None if name in self.allow_hosts else scope.get("scheme", "http")
            if len(origins) > 1 or not _same_origin(origin, host, scheme):
                return (
                    403, "Cross-origin request refused",
                    f"a request from {origin[:100]!r} may not change anything on this server: "
                    "only pages it serves itself may",
                    "cross-origin",
                )  # fmt: skip
        else:
            site = _header(scope, b"sec-fetch-site")
            if site and site[0].lower() not in _SAME_SITE_FETCH:
                return (
                    403, "Cross-origin request refused",
                    f"a {site[0].decode('latin-1')[:20]} request may not change anything on "
                    "this server: only pages it serves itself may",
                    "cross-origin",
                )  # fmt: skip
        types = _header(scope, b"content-type")
        if types:
            media = types[0].decode("latin-1").partition(";")[0].strip().lower()
            if media in _SIMPLE_TYPES:
                return (
                    415, "Unsupported media type",
                    f"a body of type {media!r} is not accepted here (it is what any web page "
                    "may send to another site): send application/json, or for "
                    "POST /v1/runs/import application/x-ndjson",
                    "unsupported-media-type",
                )  # fmt: skip
        return None


def _same_origin(origin: str, host: bytes, scheme: str | None) -> bool:
    """True if `origin` (scheme://host[:port]) names the same host and port as `host`,
    with `scheme` (or any of http and https when None)."""
    try:
        parts = urlsplit(origin)
        origin_port = parts.port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path:
        return False
    if scheme is not None and parts.scheme != scheme:
        return False
    if parts.username is not None or parts.query or parts.fragment:
        return False
    parsed = _split_host(host.decode("latin-1"))
    if parsed is None:
        return False
    name, port = parsed
    default = _DEFAULT_PORTS[parts.scheme]
    return normalize_host_name(parts.hostname) == name and (origin_port or default) == (
        port or default
    )
