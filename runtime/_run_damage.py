"""What a run's agents left undone, read from the log: failed edits and failing tests.

A builder that applies 8 of 32 edits still ends its turn `completed`; its
tool calls say otherwise. A run must not end plain `completed` over them
(issue 14), so its end is decided on these facts, not on the agents' status.

Notes (do not fix without reading this):
1. An edit that failed and was made again later with the same input (e.g.
   Claude Code refuses to edit a file not read in its session; the agent reads
   it and retries) is not a failure: only the last attempt of an input counts.
2. A call a hook blocked is a decision, not damage: it is in the log as such.
3. "Tests" are the Bash commands that look like a test run; only the last one
   counts (a builder may run them, fix, and run them again).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass, field

from events import EventFilter, EventStore, ToolCallCompleted, ToolCallRequested

__all__ = ["EDIT_TOOLS", "RunDamage", "run_damage"]

EDIT_TOOLS = frozenset({"Edit", "MultiEdit", "Write", "NotebookEdit"})
_TEST_COMMAND = re.compile(
    r"(^|[;&|]\s*)(\S*python[\d.]* -m (unittest|pytest)|pytest|tox|nox"
    r"|(npm|pnpm|yarn)( run)? test|go test|cargo test|make (test|check))\b"
)


@dataclass
class RunDamage:
    """Failed edits ("path: error", in log order) and the last test command if it failed."""

    failed_edits: list[str] = field(default_factory=list)
    failed_tests: str | None = None

    def __bool__(self) -> bool:
        return bool(self.failed_edits or self.failed_tests)

    def describe(self) -> str:
        """One line for RunFailed's error: what failed, the first few in full."""
        parts = []
        if self.failed_edits:
            shown = "; ".join(self.failed_edits[:3])
            more = f" (and {len(self.failed_edits) - 3} more)" if len(self.failed_edits) > 3 else ""
            parts.append(f"{len(self.failed_edits)} edits failed: {shown}{more}")
        if self.failed_tests:
            parts.append(f"tests fail: {self.failed_tests}")
        return "; ".join(parts)


async def run_damage(
    store: EventStore,
    *,
    agent_ids: Collection[str] | None = None,
    run_id: str | None = None,
    tests: bool = True,
) -> RunDamage:
    """The damage the agents `agent_ids` (or every agent of `run_id`) left, from their calls."""
    where = EventFilter.of(
        stream_ids=[f"agent-{a}" for a in agent_ids] if agent_ids is not None else None,
        run_id=run_id,
        types=("ToolCallRequested", "ToolCallCompleted"),
    )
    requested: dict[str, ToolCallRequested] = {}
    last_edit: dict[str, tuple[bool, str]] = {}  # input -> (failed, "path: error")
    last_test: tuple[bool, str] | None = None
    async for event in store.iter_all(where=where, lenient=True):
        data = event.data
        if isinstance(data, ToolCallRequested):
            requested[data.tool_use_id] = data
        elif isinstance(data, ToolCallCompleted) and data.tool_use_id in requested:
            call = requested.pop(data.tool_use_id)
            first_line = (data.result.strip().splitlines() or [""])[0][:200]
            if call.name in EDIT_TOOLS and not data.blocked:
                key = json.dumps([call.agent_id, call.name, call.input], sort_keys=True)
                path = str(call.input.get("file_path") or call.input.get("notebook_path") or "?")
                last_edit[key] = (data.is_error, f"{path}: {first_line}")
            elif call.name == "Bash" and _TEST_COMMAND.search(str(call.input.get("command", ""))):
                lines = data.result.strip().splitlines()
                said = first_line if len(lines) < 2 else f"{first_line} ... {lines[-1][:200]}"
                last_test = (data.is_error, f"`{call.input.get('command')}`: {said}")
    return RunDamage(
        failed_edits=[what for failed, what in last_edit.values() if failed],
        failed_tests=last_test[1] if tests and last_test and last_test[0] else None,
    )
