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
   counts (a builder may run them, fix, and run them again). That last one is
   also what `fleet run`'s summary reports (`TestRun`): the command the agents
   chose, in their environment, is the project's own runner; fleet running
   `python -m unittest` itself, with its own Python, said "passed" of a pytest
   repository ("Ran 0 tests") and "failed" of one whose packages fleet lacks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass, field, replace

from events import EventFilter, EventStore, ToolCallCompleted, ToolCallRequested

__all__ = [
    "EDIT_TOOLS",
    "NO_PYTEST",
    "RunDamage",
    "TestRun",
    "found_no_test",
    "run_damage",
]

EDIT_TOOLS = frozenset({"Edit", "MultiEdit", "Write", "NotebookEdit"})
_TEST_COMMAND = re.compile(
    r"(^|[;&|]\s*)(\S*python[\d.]* -m (unittest|pytest)|pytest|tox|nox"
    r"|(npm|pnpm|yarn)( run)? test|go test|cargo test|make (test|check))\b"
)


# What a runner says when it found no test to run: unittest's "Ran 0 tests" (then "OK" or,
# from Python 3.12, "NO TESTS RAN"), pytest's "no tests ran" and "collected 0 items", jest's.
# A runner that is not installed ran none either (`NO_PYTEST`).
NO_PYTEST = "No module named pytest"
"""What `python -m pytest` says where pytest is not installed."""
_NONE_RAN = re.compile(
    r"^Ran 0 tests\b|\bno tests ran\b|\bcollected 0 items\b|^No tests found\b"
    rf"|\b{re.escape(NO_PYTEST)}\b",
    re.I | re.M,
)


def found_no_test(output: str) -> bool:
    """Whether a test command's output says it found no test to run."""
    return _NONE_RAN.search(output) is not None


# The line of a test runner's output that counts them: unittest's "Ran 3 tests in 0.01s",
# pytest's "4 passed, 1 failed in 0.2s", jest's "Tests: 2 failed, 5 total".
_COUNT_LINE = re.compile(r"^Ran \d+ tests?\b|\b\d+ (passed|failed|errors?)\b|^Tests?:", re.I)


def _test_said(result: str) -> str:
    """A test command's output in a line: its first line, the line counting the tests when
    that is not the last (unittest puts "OK" after it: "Ran 0 tests" is what tells), and its
    last."""
    lines = [line[:200] for line in result.strip().splitlines() if line.strip()]
    if len(lines) < 2:
        return lines[0] if lines else ""
    shown = [lines[0]]
    counted = next((line for line in reversed(lines[1:-1]) if _COUNT_LINE.search(line)), None)
    if counted is not None:
        shown.append(counted)
    shown.append(lines[-1])
    return " ... ".join(shown)


@dataclass(frozen=True)
class TestRun:
    """The last test command the agents ran (note 3)."""

    __test__ = False  # not a pytest test class

    command: str
    agent_id: str
    passed: bool
    said: str  # its output's first and last lines
    edits_after: int  # edits and writes made after it, which it did not test
    none_ran: bool = False  # the runner found no test: its exit code 0 proves nothing


@dataclass
class RunDamage:
    """Failed edits ("path: error", in log order) and the last test command if it failed;
    `last_tests`, that command whether it failed or not."""

    failed_edits: list[str] = field(default_factory=list)
    failed_tests: str | None = None
    last_tests: TestRun | None = None

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
    last_test: TestRun | None = None
    edits_after = 0
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
                edits_after += not data.is_error
            elif call.name == "Bash" and _TEST_COMMAND.search(str(call.input.get("command", ""))):
                said = _test_said(data.result)
                command = str(call.input.get("command"))
                none_ran = found_no_test(data.result)
                last_test = TestRun(command, call.agent_id, not data.is_error, said, 0, none_ran)
                edits_after = 0
    if last_test is not None:
        last_test = replace(last_test, edits_after=edits_after)
    failed_tests = None
    # A runner that found no test (pytest exits 5) says nothing failed.
    if tests and last_test is not None and not last_test.passed and not last_test.none_ran:
        failed_tests = f"`{last_test.command}`: {last_test.said}"
    return RunDamage(
        failed_edits=[what for failed, what in last_edit.values() if failed],
        failed_tests=failed_tests,
        last_tests=last_test,
    )
