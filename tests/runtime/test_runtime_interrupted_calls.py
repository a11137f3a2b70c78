"""Tool calls requested but not completed when the agent stopped: never repeated blindly."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from pathlib import Path

from rt_support import events_of, make_agent

from events import EventStore, SQLiteEventStore
from runtime import Agent, ModelClient, Simulator
from runtime.simulator import Call, Observation, Situation, Turn


def crasher(situation: Situation) -> Generator[Turn, list[Observation], str]:
    """One response of six calls; the first runs long enough to be stopped in."""
    observations = yield Turn(
        "Working.",
        [
            Call("Bash", {"command": "echo ran >> ran.txt; sleep 30", "timeout": 60_000}),
            Call("Read", {"file_path": "keep.txt"}),
            Call("Write", {"file_path": "landed.txt", "content": "new\n"}),
            Call("Write", {"file_path": "todo.txt", "content": "written\n"}),
            Call(
                "Edit", {"file_path": "todo.txt", "old_string": "written", "new_string": "edited"}
            ),
            Call("Write", {"file_path": "changed.txt", "content": "mine\n"}),
        ],
    )
    return f"saw {len(observations)} results"


async def test_a_resumed_agent_reruns_reads_checks_writes_and_does_not_rerun_commands(
    tmp_path: Path, client: ModelClient, sim: Simulator, workspace: Path
) -> None:
    sim.register_policy("crasher", crasher)
    async with SQLiteEventStore(tmp_path / "fleet.db") as store:
        await _check(store, client, workspace)


async def _check(store: EventStore, client: ModelClient, workspace: Path) -> None:
    (workspace / "keep.txt").write_text("kept\n")
    (workspace / "changed.txt").write_text("before\n")
    agent = make_agent(store, client, workspace, role="crasher")
    await agent.create(task="do it")
    task = asyncio.create_task(agent.run_until_idle())
    async with asyncio.timeout(30):  # until the long command runs
        while not (workspace / "ran.txt").is_file():
            await asyncio.sleep(0.02)
    task.cancel()  # the process stops mid-call, as on Ctrl-C or a kill
    await asyncio.gather(task, return_exceptions=True)
    # Before it stopped, the first write had landed; someone else changed changed.txt.
    (workspace / "landed.txt").write_text("new\n")
    (workspace / "changed.txt").write_text("theirs\n")

    resumed = await Agent.resume(store, "a1", client=client)
    outcome = await resumed.run_until_idle()

    assert outcome.status == "completed", outcome.error
    settled = {
        e.data.name + ":" + e.data.tool_use_id[-4:]: e.data.resolution  # type: ignore[union-attr]
        for e in await events_of(store, type="ToolCallInterrupted")
    }
    assert sorted(settled.values()) == sorted(
        ["not_run", "ran_again", "already_applied", "ran_again", "ran_again", "not_run"]
    )
    results = {
        e.data.tool_use_id: e.data  # type: ignore[union-attr]
        for e in await events_of(store, type="ToolCallCompleted")
    }
    requested = [e.data for e in await events_of(store, type="ToolCallRequested")]
    bash, read, landed, todo, edit, changed = (results[r.tool_use_id] for r in requested)  # type: ignore[union-attr]
    assert bash.is_error and "not run again" in bash.result
    assert (workspace / "ran.txt").read_text() == "ran\n", "the command ran once"
    assert not read.is_error and "kept" in read.result
    assert not landed.is_error and "already holds" in landed.result
    assert not todo.is_error and not edit.is_error
    assert (workspace / "todo.txt").read_text() == "edited\n"  # written, then edited, in order
    assert changed.is_error and "has changed" in changed.result
    assert (workspace / "changed.txt").read_text() == "theirs\n", "someone's change is kept"
