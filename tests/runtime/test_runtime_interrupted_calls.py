"""Tool calls requested but not completed when the agent stopped: never repeated blindly."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Generator
from pathlib import Path

from rt_support import events_of, make_agent, watching_the_loop

from events import EventStore, SQLiteEventStore
from runtime import Agent, ModelClient, Simulator, Workspace, worker_toolbox
from runtime._conversation import PendingCall
from runtime._interrupted import ABSENT, write_expectations
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


def chain_editor(situation: Situation) -> Generator[Turn, list[Observation], str]:
    """Three edits of one file, each of what the one before wrote, then a long command."""
    observations = yield Turn(
        "Editing.",
        [
            Call("Edit", {"file_path": "f.txt", "old_string": "one", "new_string": "two"}),
            Call("Edit", {"file_path": "f.txt", "old_string": "two", "new_string": "three"}),
            Call("Edit", {"file_path": "f.txt", "old_string": "three", "new_string": "four"}),
            Call("Bash", {"command": "echo ran >> ran.txt; sleep 30", "timeout": 60_000}),
        ],
    )
    return f"saw {len(observations)} results"


async def test_edits_of_one_file_that_all_landed_before_a_stop_are_all_reported_applied(
    tmp_path: Path, client: ModelClient, sim: Simulator, workspace: Path
) -> None:
    """Regression: each but the last edit was taken for a file changed since its call,
    not run, and the model told it had failed (a build step of a pattern failed then)."""
    sim.register_policy("chain-editor", chain_editor)
    (workspace / "f.txt").write_text("one\n")
    async with SQLiteEventStore(tmp_path / "fleet.db") as store:
        agent = make_agent(store, client, workspace, role="chain-editor")
        await agent.create(task="edit it")
        task = asyncio.create_task(agent.run_until_idle())
        async with asyncio.timeout(30):  # the edits have run; the command runs
            while not (workspace / "ran.txt").is_file():
                await asyncio.sleep(0.02)
        task.cancel()  # stopped before the calls' results were appended
        await asyncio.gather(task, return_exceptions=True)
        assert (workspace / "f.txt").read_text() == "four\n"

        resumed = await Agent.resume(store, "a1", client=client)
        outcome = await resumed.run_until_idle()
        settled = [e.data for e in await events_of(store, type="ToolCallInterrupted")]
        completed = [e.data for e in await events_of(store, type="ToolCallCompleted")]

    assert outcome.status == "completed", outcome.error
    assert [(s.name, s.resolution) for s in settled] == [  # type: ignore[union-attr]
        ("Edit", "already_applied"),
        ("Edit", "already_applied"),
        ("Edit", "already_applied"),
        ("Bash", "not_run"),
    ]
    assert [c.is_error for c in completed] == [False, False, False, True]  # type: ignore[union-attr]
    assert (workspace / "f.txt").read_text() == "four\n"


def special_writer(situation: Situation) -> Generator[Turn, list[Observation], str]:
    """Writes to a FIFO and a socket of the workspace, then to a plain file."""
    observations = yield Turn(
        "Writing.",
        [
            Call("Write", {"file_path": "pipe", "content": "x\n"}),
            Call("Write", {"file_path": "sock", "content": "x\n"}),
            Call("Write", {"file_path": "ok.txt", "content": "fine\n"}),
        ],
    )
    return f"saw {len(observations)} results"


async def test_writes_to_a_fifo_or_a_socket_fail_clearly_and_the_agent_goes_on(
    tmp_path: Path, client: ModelClient, sim: Simulator, workspace: Path
) -> None:
    # Hashing the file before a write (for resume) read it by name: a FIFO blocked the
    # agent forever, a socket failed it before its model response was recorded.
    sim.register_policy("special-writer", special_writer)
    os.mkfifo(workspace / "pipe")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(workspace / "sock"))
        async with SQLiteEventStore(tmp_path / "fleet.db") as store:
            agent = make_agent(store, client, workspace, role="special-writer")
            await agent.create(task="write them")
            async with asyncio.timeout(60):
                outcome = await agent.run_until_idle()

            assert outcome.status == "completed", outcome.error
            assert len(await events_of(store, type="ModelResponded")) == 2
            requested = {
                e.data.input["file_path"]: e.data  # type: ignore[union-attr]
                for e in await events_of(store, type="ToolCallRequested")
            }
            completed = {
                e.data.tool_use_id: e.data  # type: ignore[union-attr]
                for e in await events_of(store, type="ToolCallCompleted")
            }
    for name in ("pipe", "sock"):
        result = completed[requested[name].tool_use_id]
        assert result.is_error and name in result.result and "not a regular file" in result.result
        assert requested[name].before_sha256 is None  # nothing to check it against on resume
    assert not completed[requested["ok.txt"].tool_use_id].is_error
    assert requested["ok.txt"].before_sha256 == ABSENT
    assert (workspace / "ok.txt").read_text() == "fine\n"


async def test_write_expectations_are_computed_off_the_event_loop(tmp_path: Path) -> None:
    # Each edit of a 16 MB file is ~90 ms of decoding, replacing and hashing: on the
    # loop, a response of ten of them held every agent and the server for a second.
    (tmp_path / "big.txt").write_bytes(b"hello world, a line of text\n" * 580_000)
    olds = ["hello"] + [f"v{i}" for i in range(9)]  # each edit changes what the last wrote
    calls = [
        PendingCall(
            f"toolu_{i}",
            "Edit",
            {"file_path": "big.txt", "old_string": old, "new_string": f"v{i}", "replace_all": True},
        )
        for i, old in enumerate(olds)
    ]
    expected, longest, took = await watching_the_loop(
        write_expectations(worker_toolbox(), Workspace(tmp_path), calls)
    )
    assert sorted(expected) == [f"toolu_{i}" for i in range(10)]
    assert all(after is not None for _, after in expected.values())
    assert longest < took / 2, "the loop stood still for most of the work"
