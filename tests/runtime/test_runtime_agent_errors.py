"""No exception leaves an agent working: tool errors reach the model, loop errors fail the agent.

Regression tests for issue 12 item 4: `Read` with a 5,000-character path
raised `OSError` out of the toolbox, nothing was written, and the agent stayed
"working" until every waiter timed out.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Generator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel
from rt_support import events_of, make_agent, types_of

from events import AgentFailed, EventStore, ToolCallCompleted
from runtime import BudgetExceeded, ModelClient, Simulator, Toolbox, ToolResult
from runtime.simulator import Call, Observation, Situation, Turn


class Abort(BaseException):
    """A BaseException that is neither cancellation nor KeyboardInterrupt nor SystemExit."""


class _NoInput(BaseModel):
    """The tool takes nothing."""


class Exploding:
    """A tool that raises the exception it was given."""

    name: ClassVar[str] = "explode"
    description: ClassVar[str] = "Raises."
    input_model: ClassVar[type[BaseModel]] = _NoInput

    def __init__(self, error: BaseException) -> None:
        self.error = error

    async def __call__(self, input: Any, ctx: Any) -> ToolResult:
        raise self.error


def _calls(name: str, tool_input: dict[str, Any]) -> Any:
    def policy(situation: Situation) -> Generator[Turn, list[Observation], str]:
        seen = yield Turn("Trying.", [Call(name, tool_input)])
        return f"is_error={seen[0].is_error} saw: {seen[0].content}"

    return policy


async def _only(store: EventStore, kind: type[Any]) -> Any:
    (event,) = [e.data for e in await events_of(store) if isinstance(e.data, kind)]
    return event


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (OSError(36, "File name too long"), "OSError: [Errno 36] File name too long"),
        (ValueError("bad value"), "ValueError: bad value"),
        (RuntimeError("a bug"), "RuntimeError: a bug"),
        (Abort("stop everything"), "Abort: stop everything"),
    ],
    ids=["OSError", "ValueError", "RuntimeError", "BaseException"],
)
async def test_any_exception_of_a_tool_is_a_tool_error_the_model_sees(
    store: EventStore,
    sim: Simulator,
    client: ModelClient,
    workspace: Path,
    error: BaseException,
    shown: str,
) -> None:
    sim.register_policy("tester", _calls("explode", {}))
    agent = make_agent(store, client, workspace, role="tester", toolbox=Toolbox([Exploding(error)]))
    await agent.create(task="go")
    outcome = await agent.run_until_idle()

    assert outcome.status == "completed", outcome.error
    completed = await _only(store, ToolCallCompleted)
    assert completed.is_error
    assert completed.result == f"the tool failed: {shown}"
    assert outcome.summary == f"is_error=True saw: the tool failed: {shown}"


async def test_read_with_a_5000_character_path_is_a_tool_error_not_a_stuck_agent(
    store: EventStore, sim: Simulator, client: ModelClient, workspace: Path
) -> None:
    sim.register_policy("tester", _calls("Read", {"file_path": "a" * 5_000}))
    agent = make_agent(store, client, workspace, role="tester")
    await agent.create(task="go")
    outcome = await agent.run_until_idle()

    assert outcome.status == "completed", outcome.error
    completed = await _only(store, ToolCallCompleted)
    assert (completed.name, completed.is_error) == ("Read", True)
    assert outcome.summary.startswith("is_error=True saw: ")
    assert await types_of(store) == [
        "AgentCreated",
        "AgentCommanded",
        "ModelResponded",
        "ToolCallRequested",
        "ToolCallCompleted",
        "ModelResponded",
        "AgentCompleted",
    ]


@pytest.mark.parametrize(
    ("call", "shown"),
    [
        (("Glob", {"pattern": "*.txt"}), "caf\ufffd.txt"),
        (("Grep", {"pattern": "hello", "output_mode": "content"}), "caf\ufffd.txt:1:hello"),
        (("Read", {"file_path": "link.txt"}), "hello"),
    ],
    ids=["Glob", "Grep", "Read"],
)
async def test_a_file_name_that_is_not_utf8_does_not_fail_the_agent(
    store: EventStore,
    sim: Simulator,
    client: ModelClient,
    workspace: Path,
    call: tuple[str, dict[str, Any]],
    shown: str,
) -> None:
    # Python gives such a name as lone surrogates, which no event can hold: the
    # ToolCallCompleted was refused and the agent failed.
    name = os.fsdecode(b"caf\xe9.txt")
    (workspace / name).write_text("hello\n")
    (workspace / "link.txt").symlink_to(name)
    sim.register_policy("tester", _calls(*call))
    agent = make_agent(store, client, workspace, role="tester")
    await agent.create(task="go")
    outcome = await agent.run_until_idle()

    assert outcome.status == "completed", outcome.error
    completed = await _only(store, ToolCallCompleted)
    assert not completed.is_error, completed.result
    assert shown in completed.result
    assert "caf\ufffd.txt" in completed.files_read or call[0] == "Glob"


@pytest.mark.parametrize(
    "error", [RuntimeError("the budget service is down"), Abort("stop everything")]
)
async def test_an_exception_in_the_loop_itself_ends_the_agent_with_agent_failed(
    store: EventStore, client: ModelClient, workspace: Path, error: BaseException
) -> None:
    async def broken_budget(agent_id: str) -> BudgetExceeded | None:
        raise error

    agent = make_agent(store, client, workspace, budget_check=broken_budget)
    await agent.create(task="rename `count_words` to `word_count`")
    outcome = await agent.run_until_idle()

    assert outcome.status == "failed"
    failed = await _only(store, AgentFailed)
    name = type(error).__name__
    assert failed.error == f"the agent's loop failed: {name}: {error}"
    assert outcome.error == failed.error
    assert (await types_of(store))[-1] == "AgentFailed"


async def test_cancellation_still_passes_through_and_leaves_the_agent_resumable(
    store: EventStore, client: ModelClient, workspace: Path
) -> None:
    started = asyncio.Event()

    async def slow_budget(agent_id: str) -> BudgetExceeded | None:
        started.set()
        await asyncio.Event().wait()  # never set: the agent waits here until cancelled
        return None

    agent = make_agent(store, client, workspace, budget_check=slow_budget)
    await agent.create(task="rename `count_words` to `word_count`")
    task = agent.start()
    await asyncio.wait_for(started.wait(), timeout=30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert agent.status == "working"
    assert "AgentFailed" not in await types_of(store)
