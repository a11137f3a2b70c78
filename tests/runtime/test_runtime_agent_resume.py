"""Restart and resume: an agent's conversation is rebuilt from its events, not from memory."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from rt_support import TASK, events_of, make_agent, types_of
from sim_support import holding_simulator, role, turn

from events import EventFilter, EventStore, ModelResponded, SQLiteEventStore
from runtime import (
    Agent,
    AgentNotFound,
    ModelClient,
    Toolbox,
    ToolContext,
    ToolResult,
    WorkspaceMissing,
    worker_toolbox,
)
from runtime._conversation import find_unfinished_agents
from runtime._file_tools import Grep

HERE = Path(__file__).parent
SCOUT = f"Task: {TASK}\n\nWrite your findings to notes/found.md."


async def _reach(store: EventStore, stream: str, version: int) -> None:
    """Wait until `stream` (written by another process) reaches `version`."""
    async for event in store.subscribe(where=EventFilter.of(stream_ids=[stream])):
        if event.version >= version:
            return


async def test_an_agent_killed_mid_run_resumes_from_the_log_and_finishes(
    tmp_path: Path, workspace: Path, client: ModelClient
) -> None:
    db = tmp_path / "killed.db"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), str(HERE)])}
    async with holding_simulator() as (held_sim, holding):
        # Past the second model response (the four reads requested), before the end: its
        # third turn is held until the process is killed.
        third_turn = holding.arm(lambda body: role(body) == "scout" and turn(body) == 3)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(HERE / "rt_agent_process.py"),
            str(db),
            str(workspace),
            "k1",
            held_sim.base_url,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        try:
            assert proc.stdout is not None
            assert (await asyncio.wait_for(proc.stdout.readline(), 120)).strip() == b"created"
            async with SQLiteEventStore(db) as watcher, asyncio.timeout(120):
                await _reach(watcher, "agent-k1", 6)
                await third_turn.wait()
            proc.send_signal(signal.SIGKILL)
        finally:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
    assert proc.returncode == -signal.SIGKILL

    async with SQLiteEventStore(db) as store:
        before = await types_of(store, "k1")
        assert "AgentCompleted" not in before
        assert await find_unfinished_agents(store) == ["k1"]
        agent = await Agent.resume(store, "k1", client=client)
        assert agent.status == "working"
        outcome = await agent.run_until_idle()
        assert outcome.status == "completed", outcome.error
        assert outcome.artifacts == ("notes/found.md",)
        assert (workspace / "notes" / "found.md").read_text().count("textstats/counting.py:6") == 1
        after = await types_of(store, "k1")
        assert after[: len(before)] == before
        assert after.count("AgentCompleted") == 1
        assert after.count("AgentCreated") == 1
        turns = [
            e.data.turn
            for e in await events_of(store, "k1", type="ModelResponded")
            if isinstance(e.data, ModelResponded)
        ]
        assert turns == [1, 2, 3, 4]  # no model response recorded twice
        assert await find_unfinished_agents(store) == []


class HangingGrep:
    """A grep that never returns: the process "dies" while it runs."""

    name = "Grep"
    description = Grep.description
    input_model = Grep.input_model

    async def __call__(self, input: Any, ctx: ToolContext) -> ToolResult:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_tool_call_requested_but_not_completed_runs_again_on_resume(
    store: EventStore, client: ModelClient, workspace: Path
) -> None:
    tools = worker_toolbox()
    hanging = Toolbox(
        [HangingGrep() if name == "Grep" else tools.get(name) for name in tools.names]
    )
    agent = make_agent(store, client, workspace, toolbox=hanging)
    await agent.create(task=SCOUT)
    task = agent.start()
    async with asyncio.timeout(60):
        async for event in store.subscribe(where=EventFilter.of(types=["ToolCallRequested"])):
            assert event.data.name == "Grep"
            break
    await agent.aclose()  # the "crash": the task is cancelled in the middle of the grep
    assert task.cancelled()
    assert (await types_of(store))[-1] == "ToolCallRequested"

    resumed = await Agent.resume(store, "a1", client=client)
    assert [c.name for c in resumed.state.pending] == ["Grep"]
    assert resumed.state.pending[0].requested_at is not None
    outcome = await resumed.run_until_idle()
    assert outcome.status == "completed"
    types = await types_of(store)
    assert types.count("ToolCallRequested") == types.count("ToolCallCompleted") == 6


async def test_a_resumed_agent_has_the_same_conversation_as_the_one_that_ran(
    store: EventStore, client: ModelClient, workspace: Path
) -> None:
    agent = make_agent(store, client, workspace)
    await agent.create(task=SCOUT)
    await agent.run_until_idle()
    resumed = await Agent.resume(store, "a1", client=client)
    assert resumed.state.messages == agent.state.messages
    assert resumed.state.cost_usd == pytest.approx(agent.state.cost_usd)
    assert resumed.outcome() == agent.outcome()


async def test_a_command_after_an_unfinished_tool_call_closes_it_for_the_api(
    store: EventStore, client: ModelClient, workspace: Path
) -> None:
    agent = make_agent(store, client, workspace, max_turns=1)
    await agent.create(task=SCOUT)
    await agent._step()  # the model asks for a grep
    await agent._fail("stopped by the test")
    agent2 = await Agent.resume(store, "a1", client=client)
    await agent2.command(SCOUT)
    outcome = await agent2.run_until_idle()
    assert outcome.status == "failed"
    assert outcome.limit == "turns"
    first_user_after = agent2.state.messages[2]["content"]
    assert first_user_after[0]["type"] == "tool_result"
    assert first_user_after[0]["is_error"] is True


async def test_resuming_an_unknown_agent_or_one_whose_workspace_is_gone_fails_clearly(
    store: EventStore, client: ModelClient, workspace: Path, tmp_path: Path
) -> None:
    with pytest.raises(AgentNotFound):
        await Agent.resume(store, "nobody", client=client)
    agent = make_agent(store, client, workspace)
    await agent.create()
    with pytest.raises(WorkspaceMissing):
        await Agent.resume(store, "a1", client=client, workspace=tmp_path / "gone")
