"""`fleet worker`: drive agents from a log many processes share, without serving HTTP.

    fleet worker --db postgresql://fleet@db.internal/fleet --workspace /srv/repo

Takes agents by lease (`runtime.Worker`): any number of workers on any
number of machines share the log, each agent driven by one live worker; a
worker that dies has its agents taken over once their leases expire.
Standard library only at import (`api/cli/__init__.py`, note 1).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path

from ._common import add_common, at_least, console, folder, not_negative, positive, resolve_db

__all__ = ["configure"]


def configure(command: str, parser: argparse.ArgumentParser) -> None:
    """Add the arguments of `worker`."""
    add_common(parser, json_output=False)
    parser.add_argument(
        "--workspace",
        metavar="DIR",
        type=folder,
        default=".",
        help="where agents work (default: here)",
    )
    parser.add_argument(
        "--capacity",
        type=positive(int),
        default=32,
        help="agents driven at once, at most (default 32)",
    )
    parser.add_argument(
        "--lease-ttl",
        type=at_least(1, "a shorter lease is renewed all the time and lost on any pause"),
        default=15.0,
        help="seconds an agent's lease lasts unless renewed: how soon a dead worker's "
        "agents are taken over (default 15)",
    )
    parser.add_argument("--model", help="default model for agents (haiku, sonnet, opus, ...)")
    parser.add_argument(
        "--latency", type=not_negative, default=0.0, help="simulator pause per answer, seconds"
    )
    parser.set_defaults(func=_worker_command)


def _worker_command(args: argparse.Namespace) -> int:
    return asyncio.run(_work(args, Path(args.workspace).resolve()))


async def _work(args: argparse.Namespace, workspace: Path) -> int:
    from runtime import RuntimeOptions, open_runtime

    options = RuntimeOptions(
        db=resolve_db(args.db),
        workspace=workspace,
        default_model=args.model or "haiku",
        max_live_agents=args.capacity,
        simulator_latency_s=args.latency,
        lease_ttl_s=args.lease_ttl,
        worker=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with open_runtime(options) as rt:
        assert rt.worker is not None
        simulated = " (model: the offline simulator)" if rt.simulated else ""
        from rich.markup import escape

        where = f"{rt.worker.owner} on {rt.store.location}"
        console().print(f"fleet worker {escape(where)}{simulated}")
        console().file.flush()
        await stop.wait()
    with contextlib.suppress(Exception):
        console().print("fleet worker stopped (its agents' leases were released)")
    return 0
