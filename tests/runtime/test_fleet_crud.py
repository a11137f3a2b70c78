"""CRUD for agents, the sleep pattern and budgets, on a real runtime (simulator over the SDK)."""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import AsyncIterator, Generator
from pathlib import Path

import pytest

from events import EventFilter, EventTooLarge, Meta, NewEvent, RunStarted
from runtime import (
    AgentBusy,
    AgentGone,
    AgentNotFound,
    BudgetExceeded,
    Budgets,
    FleetLimitReached,
    Runtime,
    RuntimeOptions,
    ScriptedWake,
    UnknownModel,
    WorkspaceMissing,
    open_runtime,
)
from runtime._waits import TERMINAL
from runtime.simulator import Call, Observation, Situation, Turn

SCOUT_TASK = "Task: rename `count_words` to `word_count`\n\nWrite your findings to notes/found.md."


def sleeper_policy(situation: Situation) -> Generator[Turn, list[Observation], str]:
    """A role that starts a long command: something to delete mid tool call."""
    yield Turn(
        "Running a long job.",
        [Call("Bash", {"command": "echo $$ > sleeper.pid; exec sleep 30", "timeout": 60_000})],
    )
    return "done"


@pytest.fixture
async def rt(tmp_path: Path, workspace: Path) -> AsyncIterator[Runtime]:
    async with open_runtime(
        RuntimeOptions(db=tmp_path / "fleet.db", workspace=workspace, env={})
    ) as runtime:
        assert runtime.simulator is not None
        runtime.simulator.register_policy("sleeper", sleeper_policy)
        yield runtime


async def _until(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_create_read_command_and_delete_an_agent(rt: Runtime) -> None:
    fleet = rt.fleet
    status = await fleet.create_agent(
        name="scout-api", role="scout", task=SCOUT_TASK, model="haiku"
    )
    agent_id = status["id"]
    assert status["role"] == "scout"
    assert status["model"].startswith("claude-haiku")

    await fleet.wait_all([agent_id])
    assert (await fleet.get_agent_status(agent_id))["status"] == "completed"
    output = await fleet.get_agent_output(agent_id)
    assert output["files_produced"] == ["notes/found.md"]
    assert "textstats/counting.py" in output["files_consumed"]
    assert output["summary"]
    assert "transcript" not in output

    await fleet.command_agent(
        agent_id,
        "Task: rename `count_lines` to `line_count`\n\nWrite your findings to notes/more.md.",
    )
    await fleet.wait_all([agent_id])
    assert "notes/more.md" in (await fleet.get_agent_output(agent_id))["files_produced"]

    listed = await fleet.list_agents(role="scout")
    assert [a["id"] for a in listed] == [agent_id]
    await fleet.delete_agent(agent_id)
    assert (await fleet.get_agent_status(agent_id))["status"] == "deleted"
    with pytest.raises(AgentGone):
        await fleet.command_agent(agent_id, "one more thing")
    with pytest.raises(AgentGone):
        await fleet.delete_agent(agent_id)


async def test_commands_to_unknown_agents_are_refused_and_write_nothing(rt: Runtime) -> None:
    head = await rt.store.head()
    for call in (
        rt.fleet.command_agent("no-such-agent", "hello"),
        rt.fleet.get_agent_status("../../etc/passwd"),
        rt.fleet.delete_agent("no-such-agent"),
    ):
        with pytest.raises(AgentNotFound):
            await call
    assert await rt.store.head() == head


async def test_unknown_model_and_missing_workspace_are_refused_before_anything_is_written(
    rt: Runtime, tmp_path: Path
) -> None:
    with pytest.raises(UnknownModel, match="gpt-4"):
        await rt.fleet.create_agent(name="x", role="scout", task="t", model="gpt-4")
    with pytest.raises(WorkspaceMissing):
        await rt.fleet.create_agent(
            name="x", role="scout", task="t", workspace=tmp_path / "nowhere"
        )
    assert await rt.store.head() == 0


async def test_a_task_too_large_to_record_is_refused_before_the_agent_is_created(
    rt: Runtime,
) -> None:
    """AgentCreated was stored, then the task's AgentCommanded refused as too large: the
    agent stayed "created" for ever, with nothing to do."""
    with pytest.raises(EventTooLarge, match="AgentCommanded"):
        await rt.fleet.create_agent(name="big", role="scout", task="x" * 2_000_000)
    assert await rt.store.head() == 0
    assert rt.runner.view("agents")["agents"] == []


async def test_deleting_a_working_agent_mid_tool_call_cancels_it_and_kills_its_command(
    rt: Runtime, workspace: Path
) -> None:
    status = await rt.fleet.create_agent(name="sleepy", role="sleeper", task="sleep please")
    agent_id = status["id"]
    pid_file = workspace / "sleeper.pid"

    async def started() -> bool:
        return pid_file.is_file() and pid_file.read_text().strip() != ""

    await _until(started)
    pid = int(pid_file.read_text())
    with pytest.raises(AgentBusy):
        await rt.fleet.command_agent(agent_id, "something else")

    await rt.fleet.delete_agent(agent_id)

    events = await rt.store.read_stream(f"agent-{agent_id}")
    deleted = events[-1]
    assert deleted.type == "AgentDeleted"
    assert deleted.data.was_working
    assert [e.type for e in events].count("ToolCallRequested") == 1
    assert "ToolCallCompleted" not in [e.type for e in events]
    await _until(lambda: _gone(pid))
    assert not [t for t in asyncio.all_tasks() if t.get_name() == f"agent-{agent_id}"]


async def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie is gone for our purposes: it holds no resources but its exit status.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] == "Z"


async def test_wait_for_agents_sleeps_until_a_change_and_records_the_wait(rt: Runtime) -> None:
    fleet = rt.fleet
    sleepy = (await fleet.create_agent(name="sleepy", role="sleeper", task="sleep"))["id"]
    scout = (await fleet.create_agent(name="scout", role="scout", task=SCOUT_TASK))["id"]
    recorded: list[object] = []

    async def record(data: object) -> None:
        recorded.append(data)

    wake = await fleet.wait_for_agents([sleepy, scout], 20, waiter_id="me", record=record)

    assert wake.reason == "changed"
    assert wake.changed == [scout]
    assert wake.statuses == {sleepy: "working", scout: "completed"}
    assert [type(d).__name__ for d in recorded] == ["AgentWaiting", "AgentWoke"]

    timeout = await fleet.wait_for_agents([sleepy], 0.2)
    assert timeout.reason == "timeout"
    assert timeout.changed == []
    await fleet.delete_all_agents()
    done = await fleet.wait_for_agents([sleepy, scout], 5)
    assert done.reason == "already_done"


async def test_a_scripted_wait_returns_the_prescribed_wake_once_its_agents_are_done(
    rt: Runtime,
) -> None:
    """A re-execution's `wake_script`: the recorded wake, after what it saw finished has."""
    fleet = rt.fleet
    sleepy = (await fleet.create_agent(name="sleepy", role="sleeper", task="sleep"))["id"]
    scout = (await fleet.create_agent(name="scout", role="scout", task=SCOUT_TASK))["id"]
    prescribed = {
        1: ScriptedWake("already_done", [], {sleepy: "working", scout: "completed"}),
        2: ScriptedWake("changed", [sleepy], {sleepy: "completed"}),
    }
    calls: list[tuple[str, list[str]]] = []

    async def script(waiter_id: str, agent_ids: list[str]) -> ScriptedWake | None:
        calls.append((waiter_id, agent_ids))
        return prescribed.get(len(calls))

    fleet.wake_script = script  # what the replay passes to Fleet(...)
    recorded: list[object] = []

    async def record(data: object) -> None:
        recorded.append(data)

    wake = await fleet.wait_for_agents([sleepy, scout], 60, waiter_id="me", record=record)
    assert (wake.reason, wake.changed, wake.statuses) == (
        "already_done", [], {sleepy: "working", scout: "completed"},
    )  # fmt: skip
    assert (await fleet.get_agent_status(scout))["status"] == "completed"  # it waited for it

    # The sleeper never finishes: after the timeout, the real wake, not the prescribed one.
    real = await fleet.wait_for_agents([sleepy], 0.3, waiter_id="me", record=record)
    assert (real.reason, real.changed, real.statuses) == ("timeout", [], {sleepy: "working"})
    assert calls == [("me", [sleepy, scout]), ("me", [sleepy])]
    await fleet.delete_all_agents()


async def test_creating_agents_past_the_fleet_limit_is_refused(
    tmp_path: Path, workspace: Path
) -> None:
    options = RuntimeOptions(db=tmp_path / "f.db", workspace=workspace, env={}, max_live_agents=2)
    async with open_runtime(options) as rt:
        await rt.fleet.create_agent(name="a", role="scout")
        await rt.fleet.create_agent(name="b", role="scout")
        head = await rt.store.head()
        with pytest.raises(FleetLimitReached, match="limit of 2"):
            await rt.fleet.create_agent(name="c", role="scout")
        assert await rt.store.head() == head


async def test_creates_made_at_once_do_not_pass_the_fleet_limit_together(
    tmp_path: Path, workspace: Path
) -> None:
    """Six creates at once with a limit of 2 (an orchestrator's parallel calls, concurrent
    API requests): two are made, four refused (all six were made when each counted apart)."""
    options = RuntimeOptions(db=tmp_path / "f.db", workspace=workspace, env={}, max_live_agents=2)
    async with open_runtime(options) as rt:
        results = await asyncio.gather(
            *(rt.fleet.create_agent(name=f"a{i}", role="scout") for i in range(6)),
            return_exceptions=True,
        )
        refused = [r for r in results if isinstance(r, FleetLimitReached)]
        made = [r for r in results if not isinstance(r, BaseException)]
        assert (len(made), len(refused)) == (2, 4), results
        live = [a for a in (await rt.fleet.list_agents()) if a["status"] not in TERMINAL]
        assert len(live) == 2


async def test_deletes_and_commands_at_once_take_turns(tmp_path: Path, workspace: Path) -> None:
    """Five deletes at once: one deletes, four find it gone (all five appended AgentDeleted).
    Three commands at once to an agent this process has not loaded: one is accepted."""
    options = RuntimeOptions(db=tmp_path / "f.db", workspace=workspace, env={})
    async with open_runtime(options) as rt:
        doomed = (await rt.fleet.create_agent(name="doomed", role="scout"))["id"]
        idle = (await rt.fleet.create_agent(name="idle", role="scout"))["id"]
        results = await asyncio.gather(
            *(rt.fleet.delete_agent(doomed) for _ in range(5)), return_exceptions=True
        )
        assert sorted(type(r).__name__ for r in results) == ["AgentGone"] * 4 + ["NoneType"]
        deleted = await rt.store.read_stream(f"agent-{doomed}")
        assert [e.type for e in deleted].count("AgentDeleted") == 1
    async with open_runtime(options) as rt:  # a new process: `idle` is not loaded here
        results = await asyncio.gather(
            *(rt.fleet.command_agent(idle, SCOUT_TASK) for _ in range(3)),
            return_exceptions=True,
        )
        assert sorted(type(r).__name__ for r in results) == ["AgentBusy"] * 2 + ["dict"], results
        commanded = await rt.store.read_stream(f"agent-{idle}")
        assert [e.type for e in commanded].count("AgentCommanded") == 1
        await rt.fleet.delete_all_agents()


async def test_a_command_past_the_fleet_budget_is_refused_with_the_limit_named(
    tmp_path: Path, workspace: Path
) -> None:
    options = RuntimeOptions(
        db=tmp_path / "f.db", workspace=workspace, env={}, budgets=Budgets(fleet_tokens=1000)
    )
    async with open_runtime(options) as rt:
        first = (await rt.fleet.create_agent(name="a", role="scout", task=SCOUT_TASK))["id"]
        await rt.fleet.wait_all([first])
        head = await rt.store.head()
        with pytest.raises(BudgetExceeded, match="fleet tokens budget exceeded"):
            await rt.fleet.command_agent(first, "again")
        assert await rt.store.head() == head


async def test_an_agent_crossing_its_cost_budget_mid_run_stops_with_the_limit_named(
    tmp_path: Path, workspace: Path
) -> None:
    options = RuntimeOptions(
        db=tmp_path / "f.db", workspace=workspace, env={}, budgets=Budgets(fleet_usd=0.0001)
    )
    async with open_runtime(options) as rt:
        agent_id = (
            await rt.fleet.create_agent(name="a", role="scout", task=SCOUT_TASK, model="sonnet")
        )["id"]
        await rt.fleet.wait_all([agent_id])
        status = await rt.fleet.get_agent_status(agent_id)
        assert status["status"] == "failed"
        events = await rt.store.read_all(where=EventFilter.of(types=["AgentFailed"]))
        assert events[-1].data.limit == "cost_usd"  # type: ignore[union-attr]
        responses = await rt.store.read_all(where=EventFilter.of(types=["ModelResponded"]))
        assert len(responses) == 1, "it stopped after the response that crossed the budget"


async def test_a_run_budget_counts_that_runs_spending_only(tmp_path: Path, workspace: Path) -> None:
    """Run r1 past its budget is stopped and refused; run r2 still works, though the log as
    a whole (r1's spending) is past it: a run's budget is not the fleet's."""
    options = RuntimeOptions(
        db=tmp_path / "f.db", workspace=workspace, env={}, budgets=Budgets(run_tokens=1000)
    )
    async with open_runtime(options) as rt:
        for run_id in ("r1", "r2"):
            await rt.store.append(
                f"run-{run_id}",
                [NewEvent(RunStarted(run_id=run_id, task="t", pattern="p"), Meta(run_id=run_id))],
            )
        first = (await rt.fleet.create_agent("a", "scout", SCOUT_TASK, run_id="r1"))["id"]
        await rt.fleet.wait_all([first])
        [failed] = await rt.store.read_all(where=EventFilter.of(types=["AgentFailed"]))
        assert failed.stream_id == f"agent-{first}"
        assert failed.data.limit == "tokens"  # type: ignore[union-attr]  # stopped mid-run
        head = await rt.store.head()
        with pytest.raises(BudgetExceeded, match="run r1 tokens budget exceeded"):
            await rt.fleet.command_agent(first, "again")
        assert await rt.store.head() == head

        second = (await rt.fleet.create_agent("b", "scout", SCOUT_TASK, run_id="r2"))["id"]
        await rt.fleet.wait_all([second])
        assert (await rt.fleet.get_agent_status(first))["tokens"] >= 1000
        responded = EventFilter.of(types=["ModelResponded"], agent_id=second)
        assert len(await rt.store.read_all(where=responded)) == 1  # then r2 passed its own


def slow_writer_policy(situation: Situation) -> Generator[Turn, list[Observation], str]:
    """A role whose one tool call runs 30 s, then writes the marker: the test stops the
    process in it (a command of 1 s could end first on a loaded machine)."""
    command = "echo $$ > writer.pid; sleep 30 && echo done > marker.txt"
    done = yield Turn("Working.", [Call("Bash", {"command": command, "timeout": 60_000})])
    return f"finished: {done[0].content.splitlines()[0]}"


async def test_agents_working_when_the_runtime_stopped_resume_from_the_log(
    tmp_path: Path, workspace: Path
) -> None:
    options = RuntimeOptions(db=tmp_path / "fleet.db", workspace=workspace, env={})
    async with open_runtime(options) as first:
        assert first.simulator is not None
        first.simulator.register_policy("slow", slow_writer_policy)
        agent_id = (
            await first.fleet.create_agent(name="slow", role="slow", task="write the marker")
        )["id"]

        pid_file = workspace / "writer.pid"

        async def in_tool_call() -> bool:
            return pid_file.is_file() and pid_file.read_text().strip() != ""

        await _until(in_tool_call)
    # The runtime stopped mid tool call, and killed the command: the log says the agent is
    # still working.
    await _until(lambda: _gone(int(pid_file.read_text())))
    assert not (workspace / "marker.txt").exists()

    async with open_runtime(options) as second:
        assert second.simulator is not None
        second.simulator.register_policy("slow", slow_writer_policy)
        assert (await second.fleet.get_agent_status(agent_id))["status"] == "working"
        assert await second.fleet.resume_unfinished() == [agent_id]
        await second.fleet.wait_all([agent_id], timeout_s=30)
        output = await second.fleet.get_agent_output(agent_id)

    assert output["status"] == "completed"
    # A command cut short is not run again blindly: the model is told (ToolCallInterrupted).
    assert "interrupted" in output["summary"] and "not run again" in output["summary"]
    assert not (workspace / "marker.txt").exists()


async def test_deleting_agents_mid_work_in_one_process_never_conflicts_with_their_appends(
    rt: Runtime,
) -> None:
    """Regression: `delete_all_agents()` while agents worked raised `AgentDrivenElsewhere`
    (an append the cancelled agent had in flight landed after the delete read the stream)."""
    fleet = rt.fleet
    deleted: list[str] = []
    for round_ in range(8):
        for i in range(3):
            await fleet.create_agent(name=f"scout-{round_}-{i}", role="scout", task=SCOUT_TASK)
        # Let the agents get going: each round deletes them at a different point of their work.
        for _ in range(round_):
            await asyncio.sleep(0)
        head = await rt.store.head()
        await _until(functools.partial(_grown, rt, head))
        deleted += await fleet.delete_all_agents()

    agents = await fleet.list_agents()
    assert sorted(a["id"] for a in agents) == sorted(deleted)
    assert {a["status"] for a in agents} == {"deleted"}
    for agent_id in deleted:
        types = [e.type for e in await rt.store.read_stream(f"agent-{agent_id}")]
        assert types[-2:] == ["HookInvoked", "AgentDeleted"] or types[-1] == "AgentDeleted"
        assert types.count("AgentDeleted") == 1


async def _grown(rt: Runtime, head: int) -> bool:
    return await rt.store.head() > head
