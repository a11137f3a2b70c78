"""`fleet serve` (the HTTP API, SSE stream and dashboard) and `fleet hook-forward`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from typing import Any

from pydantic import ValidationError

from hooks import forward

from ._cli_common import add_common, console, resolve_db
from ._config import ApiConfig
from ._serve import serve
from .errors import ApiError

__all__ = ["register"]

_FORWARD_TIMEOUT_S = 2.0
_MAX_STDIN_BYTES = 4 * 1024 * 1024


def register(subparsers: Any) -> None:
    """Add `serve` and `hook-forward`."""
    p = subparsers.add_parser("serve", help="serve the API, the SSE stream and the dashboard")
    add_common(p, json_output=False)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=8000)
    p.add_argument(
        "--token",
        help="require this bearer token (default: $FLEET_TOKEN); needed beyond loopback, "
        "at least 16 characters",
    )
    p.add_argument(
        "--allow-host",
        action="append",
        metavar="NAME",
        help="also answer to this name in the Host header (a proxy's or a DNS name); "
        "repeatable (default: $FLEET_ALLOW_HOSTS)",
    )
    p.add_argument("--workspace", metavar="DIR", help="where agents created over HTTP work")
    p.set_defaults(func=_serve)

    f = subparsers.add_parser(
        "hook-forward",
        help="a Claude Code hook command: post the payload on stdin to a fleet server",
    )
    f.add_argument("--url", default=os.environ.get("FLEET_URL", "http://127.0.0.1:8000"))
    f.add_argument("--source-app", default=None, help="name this session's app in fleet")
    f.add_argument("--token", default=None, help="bearer token (default: $FLEET_TOKEN)")
    f.add_argument("--timeout", type=float, default=_FORWARD_TIMEOUT_S)
    f.set_defaults(func=_hook_forward)


def _serve(args: argparse.Namespace) -> int:
    db = resolve_db(args.db)
    allow = tuple(args.allow_host) if args.allow_host else None
    try:
        config = ApiConfig.from_env(
            db=db, token=args.token, workspace=args.workspace, allow_hosts=allow
        )
    except ValidationError as e:
        raise ApiError(_first_error(e)) from None

    def ready(url: str) -> None:
        console.print(f"fleet serving {db} at [bold]{url}/[/] (API under {url}/v1, Ctrl-C to stop)")

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, config=config, ready=ready, log_level="warning"))
    return 0


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0 to 65535)")
    return int(text)


def _first_error(error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"] if not isinstance(part, int))
    return f"{where.replace('_', '-')}: {first['msg'].removeprefix('Value error, ')}"


def _hook_forward(args: argparse.Namespace) -> int:
    # Never block or fail Claude Code: whatever happens, exit 0 quickly.
    try:
        payload = sys.stdin.buffer.read(_MAX_STDIN_BYTES + 1)
        if not payload or len(payload) > _MAX_STDIN_BYTES:
            return 0
        url = args.url.rstrip("/") + "/v1/hooks/ingest"
        if args.source_app:
            url += f"?source_app={args.source_app}"
        token = args.token or os.environ.get("FLEET_TOKEN") or None
        asyncio.run(forward(payload, url, token, args.timeout))
    except Exception:  # the hook must never break the session it observes
        return 0
    return 0
