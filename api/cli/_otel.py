"""`fleet otel export RUN`: one run's spans to an OTLP/HTTP receiver, after the fact."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ._common import add_common, console, positive, print_json, resolve_db, resolve_run

ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"

__all__ = ["configure"]


def configure(command: str, parser: argparse.ArgumentParser) -> None:
    """Add `otel export`."""
    commands = parser.add_subparsers(dest="otel_command", metavar="COMMAND", required=True)
    p = commands.add_parser("export", help="send one run as GenAI spans over OTLP/HTTP (protobuf)")
    add_common(p)
    p.add_argument("run", metavar="RUN", help="the run id (a run- prefix is accepted)")
    p.add_argument(
        "--endpoint",
        help=f"the OTLP/HTTP base URL, or the full /v1/traces URL (default: ${ENDPOINT_ENV})",
    )
    p.add_argument(
        "--content",
        action="store_true",
        help="include prompts, model output and tool input and results, truncated "
        "(default: off, or OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true)",
    )
    p.add_argument(
        "--max-content-chars",
        type=positive(int),
        default=4096,
        help="cut each content value to this",
    )
    p.add_argument(
        "--timeout", type=positive(float), default=10.0, help="seconds per export request"
    )
    p.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    import asyncio

    # Imported here: the OpenTelemetry SDK costs a third of a second to load.
    from events import open_store

    from ..otel import SDK_LOG, ExportFailed, content_from_env, export_run

    endpoint = args.endpoint or os.environ.get(ENDPOINT_ENV)
    if not endpoint:
        raise ExportFailed(f"no OTLP endpoint: give --endpoint URL or set {ENDPOINT_ENV}")
    content = args.content or content_from_env()

    async def main() -> Any:
        async with open_store(resolve_db(args.db), readonly=True) as store:
            run_id = await resolve_run(store, args.run)  # a run- prefix or not
            return await export_run(
                store, run_id, endpoint, content=content,
                max_content_chars=args.max_content_chars, timeout_s=args.timeout,
            )  # fmt: skip

    # The error says why a send failed; the SDK's own lines on each retry say it again.
    with SDK_LOG.quieted(not args.verbose):
        summary = asyncio.run(main())
    if args.json:
        print_json(summary.to_json())
    else:
        from rich.markup import escape

        console().print(
            escape(
                f"sent run {summary.run_id}: {summary.spans} spans from {summary.events} events "
                f"to {summary.endpoint} (trace {summary.trace_id})"
            )
        )
    return 0
