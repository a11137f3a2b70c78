"""`fleet serve`: the HTTP API, the SSE stream and the dashboard."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import add_common, console, folder, port, resolve_db

__all__ = ["configure"]


def configure(command: str, parser: argparse.ArgumentParser) -> None:
    """Add the arguments of `serve`."""
    add_common(parser, json_output=False)
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument("--port", type=port, default=8000)
    parser.add_argument(
        "--token",
        help="require this bearer token (default: $FLEET_TOKEN); needed beyond loopback, "
        "at least 16 characters",
    )
    parser.add_argument(
        "--allow-host",
        action="append",
        metavar="NAME",
        help="also answer to this name in the Host header (a proxy's or a DNS name); "
        "repeatable (default: $FLEET_ALLOW_HOSTS)",
    )
    parser.add_argument(
        "--workspace", metavar="DIR", type=folder, help="where agents created over HTTP work"
    )
    parser.add_argument(
        "--otlp-endpoint",
        metavar="URL",
        help="send the log live as OpenTelemetry spans to this OTLP/HTTP receiver "
        "(default: $OTEL_EXPORTER_OTLP_ENDPOINT)",
    )
    parser.add_argument(
        "--verify-imports",
        action="store_true",
        help="take POST /v1/runs/import only for exports signed with $FLEET_EXPORT_KEY "
        "(`fleet export --sign`)",
    )
    drive = parser.add_mutually_exclusive_group()
    drive.add_argument(
        "--no-worker",
        dest="worker",
        action="store_false",
        help="drive no agents here: commands are only appended, and `fleet worker` "
        "processes on the same log drive them",
    )
    drive.add_argument(
        "--worker",
        dest="worker",
        action="store_true",
        default=None,
        help="also work as `fleet worker` does: take over agents no live process drives "
        "(a dead machine's, or those commanded through a --no-worker server)",
    )
    parser.set_defaults(func=_serve, worker=None)  # neither flag: drive what is commanded here


def _serve(args: argparse.Namespace) -> int:
    import asyncio
    import contextlib

    from pydantic import ValidationError

    from .._config import ApiConfig
    from .._serve import serve
    from ..errors import ApiError
    from ._replay import KeyMissing, export_key

    db = resolve_db(args.db)
    allow = tuple(args.allow_host) if args.allow_host else None
    try:
        import_key = export_key().decode() if args.verify_imports else None
    except KeyMissing as e:
        raise ApiError(f"--verify-imports: {e}") from None
    try:
        config = ApiConfig.from_env(
            db=db,
            import_key=import_key,
            token=args.token,
            workspace=args.workspace,
            otlp_endpoint=args.otlp_endpoint,
            allow_hosts=allow,
            drive_agents=None if args.worker is not False else False,
            worker=args.worker or None,
        )
    except ValidationError as e:
        raise ApiError(_first_error(e)) from None

    def ready(url: str) -> None:
        from rich.markup import escape

        from events import without_password

        console().print(
            f"fleet serving {escape(without_password(str(db)))} at [bold]{escape(url)}/[/] "
            f"(API under {escape(url)}/v1, Ctrl-C to stop)"
        )

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, config=config, ready=ready, log_level="warning"))
    return 0


def _first_error(error: Any) -> str:
    """The first problem of a pydantic `ValidationError`, as one line for the terminal."""
    first = error.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"] if not isinstance(part, int))
    return f"{where.replace('_', '-')}: {first['msg'].removeprefix('Value error, ')}"
