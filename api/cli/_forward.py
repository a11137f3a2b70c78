"""`fleet hook-forward`: a Claude Code hook command that posts its payload to a fleet server.

Claude Code runs it on every tool call (twice: Pre and Post) with the hook's
JSON payload on stdin; it posts the payload as it is to the server's
`/v1/hooks/ingest` and always exits 0, quickly, whatever happens (fleet down,
slow, refusing, garbage on stdin): the session it observes is never held up
or broken.

Notes (do not fix without reading this):
1. Standard library only, and little of it: this module is all `fleet
   hook-forward` imports besides `api.cli` itself (tests/cli/test_cli_start.py
   checks it). The POST is written on a socket by hand because `http.client`
   (through the `email` package) and `urllib.request` cost as much to import
   as the interpreter takes to start, and the forwarder needs only a request
   out and a status line back. `ssl` is imported only for an https URL.
2. `timeout` bounds the whole exchange, not each step: every socket operation
   gets what is left of it. Looking up a host name is left to the system's
   resolver and is not bounded (the default URL is an address). Proxy
   variables are not honoured: fleet serves on loopback, or on a network the
   hook reaches directly.
3. A payload over the server's ingest limit (`SEND_LIMIT`, the default
   `hooks.DEFAULT_MAX_INGEST_BYTES`) would be refused, and the tool call lost
   from fleet's view: Claude Code's PostToolUse of a Write holds the file's
   text twice, so writing a 300 KB file did that. Its longest strings are cut
   instead (`_fit`), each ending with a note of its whole length: the event,
   its tool, its paths and its ids arrive. Only then is `json` imported.
4. Each POST names the session's process in `X-Fleet-Process` (`_process`):
   Claude Code's pid (`CLAUDE_PID`, which Claude Code sets for every hook
   command; else the parent, past a `sh -c`), its start time and this host's
   machine id, boot id and pid namespace, read from /proc (nothing is sent
   without it). The server keeps it from a loopback peer only and judges from
   it whether the session still runs (`projections/_liveness.py`, read alike there).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
import urllib.parse

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "MAX_PAYLOAD_BYTES",
    "PROCESS_HEADER",
    "SEND_LIMIT",
    "configure",
    "post_hook",
    "url_problem",
]

DEFAULT_TIMEOUT_S = 2.0
"""How long the whole POST may take before hook-forward gives up (and exits 0)."""

MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
"""A larger payload on stdin is not sent (one up to this is cut to `SEND_LIMIT`, note 3)."""

SEND_LIMIT = 512 * 1024
"""The largest payload sent: the server's default ingest limit (`hooks.DEFAULT_MAX_INGEST_BYTES`,
a test checks they agree); a larger one has its longest strings cut (note 3)."""


PROCESS_HEADER = "X-Fleet-Process"
"""The header naming the session's process (note 4; `projections.PROCESS_HEADER`, a test checks)."""

_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ash", "busybox"})


def configure(command: str, parser: argparse.ArgumentParser) -> None:
    """Add the arguments of `hook-forward`."""
    parser.add_argument(
        "--url",
        default=os.environ.get("FLEET_URL", "http://127.0.0.1:8000"),
        help="the fleet server (default: $FLEET_URL, else http://127.0.0.1:8000)",
    )
    parser.add_argument("--source-app", default=None, help="name this session's app in fleet")
    parser.add_argument("--token", default=None, help="bearer token (default: $FLEET_TOKEN)")
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT_S,
        help=f"seconds for the whole POST (default {DEFAULT_TIMEOUT_S:g})",
    )
    parser.set_defaults(func=_hook_forward)


def _seconds(text: str) -> float:
    # 0, a negative, nan or inf would drop every event unseen (no time, or a socket error).
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _hook_forward(args: argparse.Namespace) -> int:
    # Never block or fail Claude Code: whatever happens, exit 0 quickly.
    try:
        payload = sys.stdin.buffer.read(MAX_PAYLOAD_BYTES + 1)
        if not payload:
            return 0
        if len(payload) > MAX_PAYLOAD_BYTES:  # dropped, and said as a refused one is
            print(
                f"fleet hook-forward: the payload is over {MAX_PAYLOAD_BYTES} bytes: not sent",
                file=sys.stderr,
            )
            return 0
        if len(payload) > SEND_LIMIT:  # cut to what the server takes (note 3)
            payload = _fit(payload, SEND_LIMIT) or payload  # not JSON: the server says so
        if (problem := url_problem(args.url)) is not None:  # a typo would drop every event
            print(f"fleet hook-forward: --url {args.url!r} {problem}", file=sys.stderr)
            return 0
        url = args.url.rstrip("/") + "/v1/hooks/ingest"
        if args.source_app:
            url += "?source_app=" + urllib.parse.quote(args.source_app, safe="")
        token = args.token or os.environ.get("FLEET_TOKEN") or None
        try:
            status = _post(payload, url, token, time.monotonic() + args.timeout, _process())
        except (OSError, ValueError, UnicodeError) as e:
            status = None
            # fleet down or slow is not said; a TLS failure (https to an http server, a
            # certificate not trusted) is a mistake that would drop every event unseen.
            if type(e).__name__.startswith("SSL"):
                print(f"fleet hook-forward: {url}: TLS failed: {e}", file=sys.stderr)
        if status is not None and status >= 300:  # a wrong token, a bad --source-app: said
            redirect = status < 400
            why = ": a redirect, not followed: give --url the address it names" if redirect else ""
            print(
                f"fleet hook-forward: {url} refused the event (HTTP {status}{why})",
                file=sys.stderr,
            )
    except Exception:  # the hook must never break the session it observes
        return 0
    return 0


def _fit(payload: bytes, limit: int) -> bytes | None:
    """`payload` (a JSON object) with its longest strings cut so that it is at most `limit`
    bytes, each cut one ending with a note of its whole length; None if it is no JSON
    object, or cannot be made to fit (note 3)."""
    import json

    try:
        value = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None

    def cut(node: object, cap: int) -> object:
        if isinstance(node, str) and len(node) > cap:
            return f"{node[:cap]}… [cut by fleet hook-forward: {len(node):,} characters in all]"
        if isinstance(node, dict):
            return {key: cut(item, cap) for key, item in node.items()}
        if isinstance(node, list):
            return [cut(item, cap) for item in node]
        return node

    def encoded(cap: int) -> bytes:
        shorter = cut(value, cap)
        try:  # as the server measures it: UTF-8, no escapes
            return json.dumps(shorter, ensure_ascii=False, separators=(",", ":")).encode()
        except UnicodeEncodeError:  # half a surrogate pair: escaped, as it came
            return json.dumps(shorter, separators=(",", ":")).encode()

    def longest(node: object) -> int:
        if isinstance(node, str):
            return len(node)
        items = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        return max((longest(item) for item in items), default=0)

    # The largest cap that fits: strings no longer than it are left whole.
    try:
        low, high, best = 0, longest(value), None
    except RecursionError:
        return None
    while low <= high:
        cap = (low + high) // 2
        try:
            data = encoded(cap)
        except RecursionError:
            return None
        if len(data) <= limit:
            low, best = cap + 1, data
        else:
            high = cap - 1
    return best


def url_problem(url: str) -> str | None:
    """What makes `url` unusable as a server's URL (not http(s), no host, a bad port), or None."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is not 0-65535)
    except ValueError as e:
        return f"is not a valid URL ({e})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "is not an http:// or https:// URL with a host"
    return None


def post_hook(
    payload: bytes, url: str, *, token: str | None = None, timeout: float = DEFAULT_TIMEOUT_S
) -> int | None:
    """POST `payload` (JSON, sent as is) to `url`; the response's HTTP status, or None.

    None when the URL is not http(s) or the server cannot be reached, answers
    garbage or takes longer than `timeout` seconds in all (note 2). Never
    raises. The argument is never mutated.
    """
    try:
        return _post(payload, url, token, time.monotonic() + timeout)
    except (OSError, ValueError, UnicodeError):
        return None


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip() or None
    except (OSError, ValueError):
        return None


def _stat(pid: int) -> tuple[str, int, int] | None:
    """Process `pid`'s name, parent and start time (`/proc/<pid>/stat`), or None."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    try:
        fields = stat[stat.rindex(")") + 2 :].split()
        return stat[stat.index("(") + 1 : stat.rindex(")")], int(fields[1]), int(fields[19])
    except (ValueError, IndexError):
        return None


def _process() -> str | None:
    """The `X-Fleet-Process` value naming the Claude Code process this hook runs for (note 4),
    or None where it cannot be read (no /proc)."""
    claude = os.environ.get("CLAUDE_PID", "")
    pid = int(claude) if claude.isdigit() and len(claude) < 10 else os.getppid()
    stat = _stat(pid)
    if stat is not None and not claude.isdigit() and stat[0] in _SHELLS:
        pid = stat[1]  # the hook ran through `sh -c`: Claude Code is the shell's parent
        stat = _stat(pid)
    boot = _read("/proc/sys/kernel/random/boot_id")
    machine = _read("/etc/machine-id") or _read("/var/lib/dbus/machine-id")
    try:
        pid_ns = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    if stat is None or pid <= 1 or boot is None or machine is None:
        return None
    return f"pid={pid};start={stat[2]};boot_id={boot};machine_id={machine};pid_ns={pid_ns}"


def _post(
    payload: bytes, url: str, token: str | None, deadline: float, process: str | None = None
) -> int | None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    secure = parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    sock = socket.create_connection((parts.hostname, port), timeout=_left(deadline))
    try:
        if secure:
            import ssl

            sock.settimeout(_left(deadline))
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=parts.hostname)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [
            f"POST {target} HTTP/1.1",
            f"Host: {parts.netloc.rpartition('@')[2]}",
            "Content-Type: application/json",
            f"Content-Length: {len(payload)}",
            "Connection: close",
            "User-Agent: fleet-hook-forward",
        ]
        if token:
            lines.append(f"Authorization: Bearer {token}")
        if process:
            lines.append(f"{PROCESS_HEADER}: {process}")
        sock.settimeout(_left(deadline))
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)
        return _status(sock, deadline)
    finally:
        sock.close()


def _status(sock: socket.socket, deadline: float) -> int | None:
    """Read the response's status line (and no more): `HTTP/1.1 202 Accepted`."""
    received = b""
    while b"\r\n" not in received and len(received) < 1024:
        sock.settimeout(_left(deadline))
        chunk = sock.recv(1024)
        if not chunk:
            break
        received += chunk
    version, _, rest = received.partition(b" ")
    code = rest[:3]
    if not version.startswith(b"HTTP/") or not code.isdigit():
        return None
    return int(code)


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("hook-forward: out of time")
    return left
