"""`fleet simulator`: the offline Messages-API simulator on its own, for any client.

    fleet simulator --port 8787
    ANTHROPIC_BASE_URL=http://127.0.0.1:8787 ANTHROPIC_API_KEY=sim-offline claude -p "..."

It prints its base URL alone on the first line of stdout (so a script can read
it), then runs until Ctrl-C or SIGTERM. Its answers are scripted, not a model's.
Like every command module, it imports only the standard library at module
level (the package's note 1); the simulator is imported when the command runs.
"""

from __future__ import annotations

import argparse
import sys

from ._common import not_negative, port

__all__ = ["configure"]


def configure(command: str, parser: argparse.ArgumentParser) -> None:
    """Add the arguments of `simulator`."""
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=port, default=0, help="port to listen on (default: any free port)"
    )
    parser.add_argument(
        "--api-key", metavar="KEY", help="accept only this key (default: any non-empty key)"
    )
    parser.add_argument(
        "--latency",
        type=not_negative,
        default=0.0,
        metavar="SECONDS",
        help="pause before each answer",
    )
    parser.add_argument(
        "--models",
        metavar="FILE",
        help="a models file adding or overriding models (default: $FLEET_MODELS_FILE)",
    )
    parser.set_defaults(func=_simulator)


def _simulator(args: argparse.Namespace) -> int:
    import asyncio
    import contextlib

    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_run(args))
    return 0


async def _run(args: argparse.Namespace) -> int:
    import asyncio
    import os
    import signal

    from runtime import ModelTable, Simulator

    file = args.models or os.environ.get("FLEET_MODELS_FILE") or None
    models = ModelTable.default().with_file(file) if file else ModelTable.default()
    simulator = Simulator(
        host=args.host, port=args.port, models=models, latency_s=args.latency, api_key=args.api_key
    )
    try:
        await simulator.start()
    except OSError as e:
        print(f"fleet: error: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        url = simulator.base_url
        print(url, flush=True)
        print(
            f"fleet simulator: the Messages API at {url} (offline: scripted answers, not a "
            f"model). For Claude Code: ANTHROPIC_BASE_URL={url} ANTHROPIC_API_KEY="
            f"{args.api_key or 'sim-offline'}. Ctrl-C to stop.",
            file=sys.stderr,
            flush=True,
        )
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await simulator.aclose()
    return 0
