"""`fleet approvals`, `fleet approve ID` and `fleet deny ID --reason ...`: answer calls on hold.

    fleet approvals                          # the tool calls waiting for a person
    fleet approve apr_1a2b3c4d --reason "fine" --as alice
    fleet deny apr_1a2b3c4d --reason "not on main"

They work on the log directly (`--db`, as every command), like `POST
/v1/approvals/{id}`: the agent waiting may run in any process on the same log
and wakes when the answer lands. `--as` is who answered (default: the login
name), recorded in `ApprovalDecided.by`. An approval answered already, or
whose agent stopped waiting, is refused with the reason (exit code 1).
Standard library only at import (`api/cli/__init__.py`, note 1).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
from pathlib import Path
from typing import Any, Literal

from ._common import (
    actor_text,
    add_common,
    console,
    existing_log,
    print_json,
    reason_text,
    require_log,
)

__all__ = ["configure"]


def configure(command: str, parser: argparse.ArgumentParser) -> None:
    """Add the arguments of `approvals`, `approve` or `deny`."""
    add_common(parser)
    if command == "approvals":
        parser.add_argument("--all", action="store_true", help="answered ones too")
        parser.set_defaults(func=_list_command)
        return
    decision = "allow" if command == "approve" else "deny"
    parser.add_argument("approval_id", metavar="ID")
    parser.add_argument(
        "--reason", type=reason_text, required=decision == "deny", help="why (the agent is told)"
    )
    parser.add_argument(
        "--as",
        dest="who",
        type=actor_text,
        default=None,
        help="who answers (default: your login name)",
    )
    parser.set_defaults(func=_decide_command, decision=decision)


async def _approvals(db: Path | str, status: str | None) -> dict[str, Any]:
    from projections import ProjectionRunner

    from ._common import open_to_read

    async with open_to_read(db) as store, ProjectionRunner(store) as runner:
        await runner.wait_for(await store.head())
        agents = runner.projection("agents")
        return agents.approvals_view(runner.state("agents"), status)  # type: ignore[attr-defined,no-any-return]


async def _decide(
    db: Path | str,
    approval_id: str,
    decision: Literal["allow", "deny"],
    who: str,
    reason: str | None,
) -> int:
    from events import open_store
    from projections import ProjectionRunner
    from runtime import decide_approval

    await require_log(db)  # a PostgreSQL schema is made by opening it for writing
    async with open_store(db) as store, ProjectionRunner(store) as runner:
        recorded = await decide_approval(
            store, runner, approval_id, decision=decision, by=who, reason=reason
        )
        return recorded.position


def _list_command(args: argparse.Namespace) -> int:
    from rich.table import Table
    from rich.text import Text

    found = asyncio.run(_approvals(existing_log(args.db), None if args.all else "pending"))
    if args.json:
        print_json(found)
        return 0
    if not found["approvals"]:
        console().print("no approvals" if args.all else "no tool call is waiting for approval")
        return 0
    # The id is what `fleet approve` takes: never cut (the other columns wrap or shrink).
    table = Table(box=None, header_style="bold")
    widest = max(len(a["id"]) for a in found["approvals"])
    table.add_column("approval", no_wrap=True, min_width=widest)
    for column in ("agent", "tool", "input", "status", "expires", "reason"):
        table.add_column(column, overflow="fold" if column == "input" else "ellipsis")
    for a in found["approvals"]:
        cells = (
            a["id"], a["agent_name"], a["tool_name"],
            json.dumps(a["tool_input"])[:80], a["status"] + (f" by {a['by']}" if a["by"] else ""),
            (a["expires_at"] or "")[11:19], a["reason"] or "",
        )  # fmt: skip
        table.add_row(*(Text(cell) for cell in cells))  # text, never rich markup
    console().print(table)
    return 0


def _decide_command(args: argparse.Namespace) -> int:
    who = args.who or f"cli:{getpass.getuser()}"
    position = asyncio.run(
        _decide(existing_log(args.db), args.approval_id, args.decision, who, args.reason)
    )
    verb = "allowed" if args.decision == "allow" else "denied"
    if args.json:
        print_json({"approval_id": args.approval_id, "decision": args.decision, "by": who,
                    "position": position})  # fmt: skip
    else:
        from rich.markup import escape

        console().print(f"{escape(args.approval_id)} {verb} by {escape(who)} (position {position})")
    return 0
