"""What every `fleet` command shares: where the log is, JSON output, the console."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

__all__ = ["DEFAULT_DB", "add_common", "console", "print_json", "resolve_db"]

DEFAULT_DB = Path(".fleet") / "fleet.db"

console = Console(stderr=False, highlight=False)


def resolve_db(arg: str | None) -> Path:
    """The log's path: `--db`, else `FLEET_DB`, else `.fleet/fleet.db` in the current folder."""
    if arg:
        return Path(arg)
    env = os.environ.get("FLEET_DB")
    if env:
        return Path(env)
    return DEFAULT_DB


def add_common(parser: argparse.ArgumentParser, *, json_output: bool = True) -> None:
    """Add `--db` (and `--json` where the command prints data) to a subcommand."""
    parser.add_argument(
        "--db", metavar="PATH", help="the log (default: $FLEET_DB, else .fleet/fleet.db)"
    )
    if json_output:
        parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def print_json(data: Any) -> None:
    """Print `data` as JSON on stdout, one document."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()
