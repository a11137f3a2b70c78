"""`fleet serve`: the HTTP API, the SSE stream and the dashboard."""

from __future__ import annotations

import argparse

from ._common import add_common, console, resolve_db

__all__ = ["configure"]


def configure(command: str, parser: argparse.ArgumentParser) -> None:
    """Add the arguments of `serve`."""
    add_common(parser, json_output=False)
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--token",
        help="require this bearer token (default: $FLEET_TOKEN); needed beyond loopback",
    )
    parser.add_argument("--workspace", metavar="DIR", help="where agents created over HTTP work")
    parser.add_argument(
        "--otlp-endpoint",
        metavar="URL",
        help="send the log live as OpenTelemetry spans to this OTLP/HTTP receiver "
        "(default: $OTEL_EXPORTER_OTLP_ENDPOINT)",
    )
    parser.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    import asyncio
    import contextlib

    from .._config import ApiConfig
    from .._serve import serve

    db = resolve_db(args.db)
    config = ApiConfig.from_env(
        db=db, token=args.token, workspace=args.workspace, otlp_endpoint=args.otlp_endpoint
    )

    def ready(url: str) -> None:
        console().print(
            f"fleet serving {db} at [bold]{url}/[/] (API under {url}/v1, Ctrl-C to stop)"
        )

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, config=config, ready=ready, log_level="warning"))
    return 0
