"""The `fleet` command line.

Each group of commands lives in its own module with a `register(subparsers)`
function that adds its subcommands; a subcommand's `func(args)` returns the
process exit code. Every command takes `--db PATH` (else `FLEET_DB`, else
`.fleet/fleet.db`) and, where it prints data, `--json`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from events.errors import FleetError

__all__ = ["build_parser", "main"]

# Modules that add subcommands, in the order `fleet --help` lists them.
_COMMAND_MODULES = (
    "api._cli_run",
    "api._cli_serve",
    "api._cli_views",
    "api._cli_replay",
    "api._cli_approvals",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="fleet",
        description="An event-sourced runtime for fleets of LLM agents, observed through hooks.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue  # a command group not written yet
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `fleet` with `argv` (default: the process's arguments); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        code: int = args.func(args)
    except FleetError as e:
        print(f"fleet: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
